//! Span and log line per request for tower-http's `TraceLayer`: request id, target, route
//! (translated / passthrough / shim), status and latency. Header values are never logged, so
//! `Authorization` and webhook credentials cannot leak.

use std::time::Duration;

use http::{Request, Response};
use tracing::Span;

use crate::routing::ReplyOrigin;
use crate::upstream::TARGET_HEADER;

/// Opens the request span.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestSpan;

impl<B> tower_http::trace::MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, request: &Request<B>) -> Span {
        let header = |name: &str| request.headers().get(name).and_then(|value| value.to_str().ok()).unwrap_or("");
        tracing::info_span!(
            "request",
            request_id = header("x-request-id"),
            method = %request.method(),
            path = request.uri().path(),
            target = header(TARGET_HEADER),
        )
    }
}

/// Logs the outcome once the response head is ready.
#[derive(Clone, Copy, Debug, Default)]
pub struct ResponseLog;

impl<B> tower_http::trace::OnResponse<B> for ResponseLog {
    fn on_response(self, response: &Response<B>, latency: Duration, _span: &Span) {
        let route = response.extensions().get::<ReplyOrigin>().map_or("shim", |origin| origin.as_str());
        tracing::info!(
            status = response.status().as_u16(),
            route,
            latency_us = latency.as_micros() as u64,
            "request finished"
        );
    }
}
