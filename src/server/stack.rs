//! The whole tower stack, assembled in one function, outermost layer first.

use std::convert::Infallible;
use std::sync::Arc;

use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use tower::limit::ConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower::util::BoxCloneService;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::app::App;
use crate::body::{Body, BoxError};
use crate::config::CorsConfig;
use crate::legacy::LegacyService;
use crate::middleware::legacy_errors::LegacyErrorsLayer;
use crate::middleware::panic_reply::PanicReply;
use crate::middleware::request_id::MakeUlidRequestId;
use crate::middleware::trace::{RequestSpan, ResponseLog};
use crate::routing::{RouteTable, Router};
use crate::upstream::passthrough::Passthrough;

/// The service hyper serves: infallible, answering `Response<impl Body>`.
pub type ShimService = BoxCloneService<Request<Incoming>, Response<Body>, Infallible>;

/// Builds the shim's service for `app`.
pub fn build(app: Arc<App>) -> ShimService {
    build_for::<Incoming>(app)
}

/// [`build`] for any request body type (stack tests use in-memory bodies).
pub fn build_for<B>(app: Arc<App>) -> BoxCloneService<Request<B>, Response<Body>, Infallible>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let names = Arc::new(app.mappings.errors.clone());
    let limits = &app.config.limits;

    let translated = ServiceBuilder::new()
        .map_response(|response: Response<tower_http::limit::ResponseBody<Body>>| response.map(crate::body::boxed))
        // Legacy bodies are buffered to be parsed: cap them (413 up front, or while reading).
        .layer(RequestBodyLimitLayer::new(limits.max_body_bytes))
        .service(LegacyService::new(Arc::clone(&app)));
    let passthrough = Passthrough::new(app.upstream.clone(), Arc::clone(&names));
    let router = Router::new(
        RouteTable::new(&app.config.api_paths, Arc::new(app.mappings.legacy.clone())),
        BoxCloneService::new(translated),
        BoxCloneService::new(passthrough),
    );

    let stack = ServiceBuilder::new()
        .map_response(|response: Response<_>| response.map(crate::body::boxed))
        // Every request gets an id first (the caller's own is kept), so logs and replies share it.
        .layer(SetRequestIdLayer::x_request_id(MakeUlidRequestId))
        // Every response carries that id back, errors included.
        .layer(PropagateRequestIdLayer::x_request_id())
        // One span and one log line per request: id, target, route, status, latency.
        .layer(TraceLayer::new_for_http().make_span_with(RequestSpan).on_request(()).on_response(ResponseLog).on_failure(()))
        // From here down errors and bare failure statuses become {"error_type"}: the stack is infallible.
        .layer(LegacyErrorsLayer::new(Arc::clone(&names)))
        // A panic anywhere below answers 500 INTERNAL-ERROR instead of dropping the connection.
        .layer(CatchPanicLayer::custom(PanicReply::new(Arc::clone(&names))))
        // Browser preflights are answered here when origins are configured (else they pass through).
        .option_layer(cors_layer(&app.config.cors))
        // Refuse at once (503 OVERLOADED) rather than queue when the limit below is reached.
        .layer(LoadShedLayer::new())
        // At most this many requests in flight.
        .layer(ConcurrencyLimitLayer::new(limits.max_in_flight))
        // A request that has no response head by the deadline answers 504.
        .layer(TimeoutLayer::with_status_code(StatusCode::GATEWAY_TIMEOUT, app.config.request_timeout()))
        // Translated or passthrough, by path, method and x-sora-target.
        .service(router);

    BoxCloneService::new(stack)
}

/// CORS as legacy Sora answered it, when `cors.allowed_origins` is set.
fn cors_layer(config: &CorsConfig) -> Option<CorsLayer> {
    if config.allowed_origins.is_empty() {
        return None;
    }
    let origin = if config.allowed_origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(config.allowed_origins.iter().filter_map(|origin| HeaderValue::from_str(origin).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(origin)
            .allow_methods([Method::POST, Method::OPTIONS])
            .allow_headers([
                header::ORIGIN,
                HeaderName::from_static("x-requested-with"),
                header::CONTENT_TYPE,
                header::ACCEPT,
                HeaderName::from_static("x-sora-target"),
            ])
            .max_age(std::time::Duration::from_secs(1000)),
    )
}
