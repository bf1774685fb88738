//! `MetricsLayer`: counts every request and times it until its response head, by surface
//! (api, session_hook, event_hook, usage, ops), route (translated, passthrough, shim) and
//! outcome (status class). It sits outside the error layer, so it sees the final status.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::metrics::Metrics;
use crate::routing::{EVENT_HOOK_PATH, ReplyOrigin, SESSION_HOOK_PATH, USAGE_PATH};

/// Applies [`RequestMetrics`].
#[derive(Clone)]
pub struct MetricsLayer {
    metrics: Arc<Metrics>,
}

impl MetricsLayer {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = RequestMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestMetrics { inner, metrics: Arc::clone(&self.metrics) }
    }
}

/// Records one request in the metrics.
#[derive(Clone)]
pub struct RequestMetrics<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

/// The surface a path belongs to (a bounded label).
pub fn surface(path: &str) -> &'static str {
    match path {
        SESSION_HOOK_PATH => "session_hook",
        EVENT_HOOK_PATH => "event_hook",
        USAGE_PATH => "usage",
        "/metrics" | "/health" | "/ready" => "ops",
        _ => "api",
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequestMetrics<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = MetricsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        MetricsFuture {
            surface: surface(request.uri().path()),
            started: Instant::now(),
            metrics: Arc::clone(&self.metrics),
            inner: self.inner.call(request),
        }
    }
}

pin_project! {
    /// Response future of [`RequestMetrics`].
    pub struct MetricsFuture<F> {
        #[pin]
        inner: F,
        surface: &'static str,
        started: Instant,
        metrics: Arc<Metrics>,
    }
}

impl<F, B, E> Future for MetricsFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        if let Ok(response) = &result {
            let route = response.extensions().get::<ReplyOrigin>().map_or("shim", |origin| origin.as_str());
            let outcome = match response.status().as_u16() {
                100..=199 => "1xx",
                200..=299 => "2xx",
                300..=399 => "3xx",
                400..=499 => "4xx",
                _ => "5xx",
            };
            this.metrics
                .requests
                .get_or_create(&[("surface", this.surface), ("route", route), ("outcome", outcome)])
                .inc();
            this.metrics
                .request_duration
                .get_or_create(&[("surface", this.surface), ("route", route)])
                .observe(this.started.elapsed().as_secs_f64());
        }
        Poll::Ready(result)
    }
}
