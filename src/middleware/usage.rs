//! `UsageLayer`: counts every translated call in the [`Usage`] table (target, client address,
//! `User-Agent`) and in the `legacy_calls` metric (target only). It sits on the translated branch
//! only, so passthrough is never counted.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, header};
use tower::{Layer, Service};

use crate::app::now_secs;
use crate::metrics::Metrics;
use crate::server::PeerAddr;
use crate::upstream::TARGET_HEADER;
use crate::usage::Usage;

/// Applies [`UsageCount`].
#[derive(Clone)]
pub struct UsageLayer {
    usage: Arc<Usage>,
    metrics: Arc<Metrics>,
}

impl UsageLayer {
    pub fn new(usage: Arc<Usage>, metrics: Arc<Metrics>) -> Self {
        Self { usage, metrics }
    }
}

impl<S> Layer<S> for UsageLayer {
    type Service = UsageCount<S>;

    fn layer(&self, inner: S) -> Self::Service {
        UsageCount { inner, usage: Arc::clone(&self.usage), metrics: Arc::clone(&self.metrics) }
    }
}

/// Records the call, then hands it on.
#[derive(Clone)]
pub struct UsageCount<S> {
    inner: S,
    usage: Arc<Usage>,
    metrics: Arc<Metrics>,
}

impl<S, B> Service<Request<B>> for UsageCount<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let text = |name: &str| request.headers().get(name).and_then(|value| value.to_str().ok()).unwrap_or("");
        let remote = request.extensions().get::<PeerAddr>().map(|peer| peer.0.ip());
        let target = text(TARGET_HEADER).trim();
        // A non-ASCII agent is still a distinct client: kept (lossily), not merged with "no agent".
        let agent = request.headers().get(header::USER_AGENT).map(|value| String::from_utf8_lossy(value.as_bytes()));
        self.usage.record(target, remote, agent.as_deref().unwrap_or(""), now_secs());
        self.metrics.legacy_calls.get_or_create(&[("target", target.to_owned())]).inc();
        self.inner.call(request)
    }
}
