//! The whole tower stack, assembled in one function, outermost layer first.

use std::convert::Infallible;
use std::sync::Arc;

use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use tower::limit::ConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower::util::BoxCloneService;
use tower::{ServiceBuilder, service_fn};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::app::App;
use crate::body::{Body, BoxError};
use crate::config::CorsConfig;
use crate::error::{ShimError, legacy_error_response};
use crate::mappings::ErrorNames;
use crate::middleware::legacy_errors::LegacyErrorsLayer;
use crate::middleware::metrics::MetricsLayer;
use crate::middleware::panic_reply::PanicReply;
use crate::middleware::request_id::MakeUlidRequestId;
use crate::middleware::trace::{RequestSpan, ResponseLog};
use crate::middleware::usage::UsageLayer;
use crate::middleware::webhook_auth::WebhookAuthLayer;
use crate::ops::OpsEndpoint;
use crate::routing::{RouteTable, Router};
use crate::upstream::passthrough;
use crate::{legacy, ops, webhooks};

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
        // Who still calls legacy targets: counted here, where only translated calls arrive.
        .layer(UsageLayer::new(Arc::clone(&app.usage), Arc::clone(&app.metrics)))
        // Legacy bodies are buffered to be parsed: cap them (413 up front, or while reading).
        .layer(RequestBodyLimitLayer::new(limits.max_body_bytes))
        .service(leaf({
            let app = Arc::clone(&app);
            move |request| legacy::answer(Arc::clone(&app), request)
        }));
    let webhook = |service| {
        ServiceBuilder::new()
            // Sora's webhook credentials are checked before anything is read, changed or forwarded.
            .layer(WebhookAuthLayer::new(app.config.webhook_auth.as_ref(), Arc::clone(&names)))
            .map_response(|response: Response<tower_http::limit::ResponseBody<Body>>| response.map(crate::body::boxed))
            // Webhook bodies are buffered too, under their own limit.
            .layer(RequestBodyLimitLayer::new(limits.max_webhook_body_bytes))
            .service(service)
    };
    let session_hook = webhook(leaf({
        let app = Arc::clone(&app);
        move |request| webhooks::session::answer(Arc::clone(&app), request)
    }));
    let event_hook = webhook(leaf({
        let app = Arc::clone(&app);
        move |request| webhooks::event::answer(Arc::clone(&app), request)
    }));
    let usage = leaf({
        let usage = Arc::clone(&app.usage);
        move |_: Request<B>| std::future::ready(crate::usage::answer(&usage))
    });
    let ops = |endpoint| {
        let app = Arc::clone(&app);
        leaf(move |_: Request<B>| ops::answer(Arc::clone(&app), endpoint))
    };
    let passthrough = leaf({
        let (upstream, names) = (app.upstream.clone(), Arc::clone(&names));
        move |request| {
            let (upstream, names) = (upstream.clone(), Arc::clone(&names));
            async move { passthrough::forward(&upstream, &names, request).await }
        }
    });
    let router = Router::new(
        RouteTable::new(&app.config.api_paths, Arc::new(app.mappings.legacy.clone())),
        [
            BoxCloneService::new(translated),
            BoxCloneService::new(session_hook),
            BoxCloneService::new(event_hook),
            usage,
            ops(OpsEndpoint::Health),
            ops(OpsEndpoint::Ready),
            ops(OpsEndpoint::Metrics),
            refuse(&names, ShimError::MethodNotAllowed),
            refuse(&names, ShimError::NotFound),
            passthrough,
        ],
    );

    let stack = ServiceBuilder::new()
        .map_response(|response: Response<_>| response.map(crate::body::boxed))
        // Every request gets an id first (the caller's own is kept), so logs and replies share it.
        .layer(SetRequestIdLayer::x_request_id(MakeUlidRequestId))
        // Every response carries that id back, errors included.
        .layer(PropagateRequestIdLayer::x_request_id())
        // One span and one log line per request: id, target, route, status, latency.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(RequestSpan)
                .on_request(())
                .on_response(ResponseLog)
                .on_failure(()),
        )
        // Counted and timed by surface, route and outcome, with the final status.
        .layer(MetricsLayer::new(Arc::clone(&app.metrics)))
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

/// An endpoint's handler (an `async fn(Request) -> Response`) as an always-ready, infallible service.
fn leaf<B, F, Fut>(handler: F) -> BoxCloneService<Request<B>, Response<Body>, Infallible>
where
    B: 'static,
    F: Fn(Request<B>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Response<Body>> + Send + 'static,
{
    BoxCloneService::new(service_fn(move |request| {
        let answer = handler(request);
        async move { Ok::<_, Infallible>(answer.await) }
    }))
}

/// Answers every request with the error `make` builds from its path.
fn refuse<B: 'static>(
    names: &Arc<ErrorNames>,
    make: fn(String) -> ShimError,
) -> BoxCloneService<Request<B>, Response<Body>, Infallible> {
    let names = Arc::clone(names);
    leaf(move |request: Request<B>| {
        let response = legacy_error_response(&make(request.uri().path().to_owned()), &names);
        std::future::ready(response)
    })
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

#[cfg(test)]
mod tests {
    //! Stack tests: the real stack, driven with `oneshot`, in front of an upstream that refuses
    //! connections or never answers.
    use super::*;
    use crate::config::Config;
    use crate::mappings::Mappings;
    use crate::store::sqlite::SqliteStore;
    use crate::upstream::Upstream;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full, StreamBody};
    use std::time::Duration;
    use tower::ServiceExt;

    type TestService = BoxCloneService<Request<Full<Bytes>>, Response<Body>, Infallible>;

    /// An upstream address that refuses connections.
    fn refused_upstream() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        format!("http://{address}")
    }

    /// An upstream that accepts connections and never answers (kept alive by the returned listener).
    fn silent_upstream() -> (String, std::net::TcpListener) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        (format!("http://{}", listener.local_addr().unwrap()), listener)
    }

    fn app(upstream: &str, tweak: impl FnOnce(&mut Config)) -> Arc<App> {
        let mut config = Config::default();
        config.upstream.url = Some(upstream.to_owned());
        tweak(&mut config);
        let path = std::env::temp_dir().join(format!("shim-stack-{}", ulid::Ulid::generate())).join("orders.db");
        let store = SqliteStore::open(&path, Duration::from_secs(5)).unwrap();
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let upstream = Upstream::new(upstream.parse().unwrap(), &config.upstream, Arc::clone(&metrics));
        Arc::new(App::new(config, Mappings::built_in(), Arc::new(store), upstream, metrics).unwrap())
    }

    fn request(target: Option<&str>, body: &'static str) -> Request<Full<Bytes>> {
        let mut builder = Request::builder().method(Method::POST).uri("/");
        if let Some(target) = target {
            builder = builder.header("x-sora-target", target);
        }
        builder.body(Full::new(Bytes::from_static(body.as_bytes()))).unwrap()
    }

    fn call(
        service: &TestService,
        request: Request<Full<Bytes>>,
    ) -> impl std::future::Future<Output = (Response<()>, String)> + Send + 'static {
        let future = service.clone().oneshot(request);
        async move {
            let (parts, body) = future.await.unwrap().into_parts();
            let bytes = body.collect().await.unwrap().to_bytes();
            (Response::from_parts(parts, ()), String::from_utf8(bytes.to_vec()).unwrap())
        }
    }

    fn assert_ulid_request_id(response: &Response<()>) {
        let id = response.headers()["x-request-id"].to_str().unwrap();
        assert!(ulid::Ulid::from_string(id).is_ok(), "x-request-id {id:?} is not a ULID");
    }

    #[tokio::test]
    async fn start_with_unreachable_upstream_keeps_the_order_and_answers_200() {
        let app = app(&refused_upstream(), |_| {});
        let service = build_for::<Full<Bytes>>(Arc::clone(&app));
        let (response, body) =
            call(&service, request(Some("Sora_20161101.StartRecording"), r#"{"channel_id":"sora","expire_time":60}"#))
                .await;
        assert_eq!(response.status(), 200, "{body}");
        assert_ulid_request_id(&response);
        let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
        let stored = app.store.active_order("sora", crate::app::now_secs()).await.unwrap().unwrap();
        assert_eq!(reply["recording_id"], stored.recording_id);
        let (response, body) =
            call(&service, request(Some("Sora_20161101.GetStartedRecording"), r#"{"channel_id":"sora"}"#)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["recording_id"], stored.recording_id);
    }

    #[tokio::test]
    async fn reject_mode_withdraws_the_order_and_answers_502() {
        let app = app(&refused_upstream(), |config| {
            config.legacy.on_upstream_failure = crate::config::OnUpstreamFailure::Reject
        });
        let service = build_for::<Full<Bytes>>(Arc::clone(&app));
        let (response, body) =
            call(&service, request(Some("Sora_20161101.StartRecording"), r#"{"channel_id":"sora","expire_time":60}"#))
                .await;
        assert_eq!((response.status().as_u16(), body.as_str()), (502, r#"{"error_type":"UPSTREAM-UNAVAILABLE"}"#));
        assert!(app.store.active_orders(crate::app::now_secs()).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn passthrough_to_a_dead_upstream_is_a_legacy_502_with_the_callers_request_id() {
        let service = build_for::<Full<Bytes>>(app(&refused_upstream(), |_| {}));
        let mut request = request(Some("Sora_20231220.ListSessions"), "{}");
        request.headers_mut().insert("x-request-id", HeaderValue::from_static("caller-id-1"));
        let (response, body) = call(&service, request).await;
        assert_eq!(response.status(), 502);
        assert_eq!(body, r#"{"error_type":"UPSTREAM-UNAVAILABLE"}"#);
        assert_eq!(response.headers()["x-request-id"], "caller-id-1");
        assert!(response.headers().contains_key("x-shim-error-detail"));
    }

    #[tokio::test]
    async fn oversized_bodies_are_413_by_length_or_while_streaming() {
        let app = app(&refused_upstream(), |config| config.limits.max_body_bytes = 64);
        let service = build_for::<Full<Bytes>>(Arc::clone(&app));
        let big: &'static str = Box::leak(
            format!(r#"{{"channel_id":"sora","expire_time":60,"pad":"{}"}}"#, "x".repeat(100)).into_boxed_str(),
        );
        let mut with_length = request(Some("Sora_20161101.StartRecording"), big);
        with_length.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(big.len()));
        let (response, body) = call(&service, with_length).await;
        assert_eq!((response.status().as_u16(), body.as_str()), (413, r#"{"error_type":"REQUEST-TOO-LARGE"}"#));
        assert_ulid_request_id(&response);

        // No Content-Length: the limit trips while the body streams in.
        type Chunk = Result<http_body::Frame<Bytes>, Infallible>;
        let chunks: Vec<Chunk> = (0..4).map(|_| Ok(http_body::Frame::data(Bytes::from_static(&[b' '; 40])))).collect();
        let streaming = StreamBody::new(futures_util::stream::iter(chunks));
        let service = build_for::<StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Chunk>>>>(Arc::clone(&app));
        let request = Request::builder()
            .method(Method::POST)
            .uri("/")
            .header("x-sora-target", "Sora_20161101.StartRecording")
            .body(streaming)
            .unwrap();
        let response = service.oneshot(request).await.unwrap();
        assert_eq!(response.status(), 413);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, Bytes::from_static(br#"{"error_type":"REQUEST-TOO-LARGE"}"#));
        assert!(app.store.active_orders(crate::app::now_secs()).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn request_deadline_answers_504_upstream_timeout() {
        let (url, _listener) = silent_upstream();
        let service = build_for::<Full<Bytes>>(app(&url, |config| {
            config.limits.request_timeout_ms = 200;
            config.upstream.timeout_ms = 60_000;
        }));
        let (response, body) = call(&service, request(Some("Sora_20171010.GetStatsReport"), "{}")).await;
        assert_eq!((response.status().as_u16(), body.as_str()), (504, r#"{"error_type":"UPSTREAM-TIMEOUT"}"#));
        assert_ulid_request_id(&response);
    }

    #[tokio::test]
    async fn requests_beyond_the_in_flight_limit_are_shed_with_503() {
        let (url, listener) = silent_upstream();
        let service = build_for::<Full<Bytes>>(app(&url, |config| {
            config.limits.max_in_flight = 1;
            config.limits.request_timeout_ms = 2_000;
        }));
        let first = tokio::spawn(call(&service, request(Some("Sora_20171010.GetStatsReport"), "{}")));
        // Once the upstream sees the first request's connection, that request holds the only slot.
        listener.set_nonblocking(true).unwrap();
        let mut accepted = None;
        for _ in 0..400 {
            if let Ok((connection, _)) = listener.accept() {
                accepted = Some(connection);
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(accepted.is_some(), "the first request never reached the upstream");
        let (response, body) = call(&service, request(None, "{}")).await;
        assert_eq!((response.status().as_u16(), body.as_str()), (503, r#"{"error_type":"OVERLOADED"}"#));
        let (first_response, _) = first.await.unwrap();
        assert_eq!(first_response.status(), 504);
    }

    #[tokio::test]
    async fn cors_preflight_is_answered_like_legacy_sora_when_configured() {
        let service = build_for::<Full<Bytes>>(app(&refused_upstream(), |config| {
            config.cors.allowed_origins = vec!["http://127.0.0.1:5000".into()];
        }));
        let preflight = Request::builder()
            .method(Method::OPTIONS)
            .uri("/api")
            .header("origin", "http://127.0.0.1:5000")
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type,x-sora-target")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let (response, _) = call(&service, preflight).await;
        assert_eq!(response.status(), 200);
        let headers = response.headers();
        assert_eq!(headers["access-control-allow-origin"], "http://127.0.0.1:5000");
        assert_eq!(headers["access-control-allow-methods"], "POST,OPTIONS");
        assert_eq!(headers["access-control-max-age"], "1000");
        let allowed = headers["access-control-allow-headers"].to_str().unwrap().to_ascii_lowercase();
        for name in ["origin", "x-requested-with", "content-type", "accept", "x-sora-target"] {
            assert!(allowed.contains(name), "{name} missing from {allowed}");
        }
    }

    #[tokio::test]
    async fn without_cors_config_preflights_pass_through() {
        let service = build_for::<Full<Bytes>>(app(&refused_upstream(), |_| {}));
        let preflight = Request::builder()
            .method(Method::OPTIONS)
            .uri("/")
            .header("origin", "http://127.0.0.1:5000")
            .header("access-control-request-method", "POST")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let (response, body) = call(&service, preflight).await;
        // Passed through to the (dead) upstream rather than answered by the shim.
        assert_eq!((response.status().as_u16(), body.as_str()), (502, r#"{"error_type":"UPSTREAM-UNAVAILABLE"}"#));
        assert!(!response.headers().contains_key("access-control-allow-origin"));
    }

    /// A request body that panics when read: a bug deep inside a handler, reachable through the
    /// real stack.
    struct PanickingBody;

    impl http_body::Body for PanickingBody {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
            panic!("a bug while reading the body")
        }
    }

    async fn call_panicking(app: Arc<App>, path: &str, target: Option<&str>) -> (Response<()>, Bytes) {
        let service = build_for::<PanickingBody>(app);
        let mut builder = Request::builder().method(Method::POST).uri(path);
        if let Some(target) = target {
            builder = builder.header("x-sora-target", target);
        }
        let response = service.oneshot(builder.body(PanickingBody).unwrap()).await.unwrap();
        let (parts, body) = response.into_parts();
        (Response::from_parts(parts, ()), body.collect().await.unwrap().to_bytes())
    }

    #[tokio::test]
    async fn a_panic_in_the_stack_answers_legacy_500_through_catch_panic() {
        // The session webhook reads its body in the request's own future: the panic unwinds
        // through the stack and only the catch-panic layer turns it into an answer.
        let app = app(&refused_upstream(), |_| {});
        let (response, body) = call_panicking(Arc::clone(&app), "/hooks/session", None).await;
        assert_eq!((response.status().as_u16(), &body[..]), (500, &br#"{"error_type":"INTERNAL-ERROR"}"#[..]));
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        assert_ulid_request_id(&response);
        // The stack still serves the next request.
        let service = build_for::<Full<Bytes>>(app);
        let (response, body) = call(&service, request(Some("Sora_20161101.ListStartedRecording"), "")).await;
        assert_eq!((response.status().as_u16(), body.as_str()), (200, "[]"));
    }

    #[tokio::test]
    async fn a_panic_in_a_translated_call_answers_legacy_500_and_stores_nothing() {
        // Translated calls run in their own task: its panic comes back as a join error.
        let app = app(&refused_upstream(), |_| {});
        let (response, body) = call_panicking(Arc::clone(&app), "/", Some("Sora_20161101.StartRecording")).await;
        assert_eq!((response.status().as_u16(), &body[..]), (500, &br#"{"error_type":"INTERNAL-ERROR"}"#[..]));
        assert_ulid_request_id(&response);
        assert!(app.store.active_orders(crate::app::now_secs()).await.unwrap().is_empty());
    }
}
