//! Operations endpoints: `GET /health` (the process answers; always cheap), `GET /ready` (the
//! store takes writes and the upstream accepts connections) and `GET /metrics` (Prometheus text).
//! Each answers JSON (or metrics text) with the shim's version; none touches the API surface.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Response, StatusCode, header};
use serde_json::json;

use crate::app::{App, now_secs};
use crate::body::{Body, full, json_response};
use crate::routing::ReplyOrigin;

/// The shim's version, as Cargo knows it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Which operations endpoint a service answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpsEndpoint {
    Health,
    Ready,
    Metrics,
}

/// Answers one of the operations endpoints.
pub async fn answer(app: Arc<App>, endpoint: OpsEndpoint) -> Response<Body> {
    let mut response = match endpoint {
        OpsEndpoint::Health => json_response(StatusCode::OK, &json!({"status": "ok", "version": VERSION})),
        OpsEndpoint::Ready => ready(&app).await,
        OpsEndpoint::Metrics => metrics(&app).await,
    };
    response.extensions_mut().insert(ReplyOrigin::Shim);
    response
}

/// 200 when the store takes writes and the upstream accepts connections, else 503; the body
/// says which part is not ready.
async fn ready(app: &App) -> Response<Body> {
    let (store, upstream) = tokio::join!(app.store.check_writable(), app.upstream.reachable(Duration::from_secs(1)));
    let store = store.map_or_else(|error| error.to_string(), |()| "ok".to_owned());
    let upstream = upstream.map_or_else(|error| error, |()| "ok".to_owned());
    let ready = store == "ok" && upstream == "ok";
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    json_response(status, &json!({"ready": ready, "store": store, "upstream": upstream, "version": VERSION}))
}

/// The Prometheus text, with the store-derived gauges refreshed first.
async fn metrics(app: &App) -> Response<Body> {
    match app.store.stats(now_secs()).await {
        Ok(stats) => {
            app.metrics.active_orders.set(stats.active_orders);
            app.metrics.open_legs.set(stats.open_legs);
        }
        Err(error) => tracing::warn!(%error, "metrics: store sizes unavailable"),
    }
    let mut response = Response::new(full(app.metrics.render()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}
