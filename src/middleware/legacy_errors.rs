//! `LegacyErrorsLayer`: the boundary that makes the stack infallible and legacy-shaped.
//!
//! Below it sit generic layers that know nothing about Sora: load shedding fails with an error,
//! the timeout and body-limit layers answer with a bare status. This layer turns both into the
//! legacy `{"error_type"}` response through the one error function. Responses that carry a
//! [`ReplyOrigin`] (translated replies, shim errors, upstream passthrough) are left untouched.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use http_body_util::Either;
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::body::{Body, BoxError};
use crate::error::{ErrorKind, ShimError, legacy_error_response};
use crate::mappings::ErrorNames;
use crate::routing::ReplyOrigin;

/// Applies [`LegacyErrors`].
#[derive(Clone)]
pub struct LegacyErrorsLayer {
    names: Arc<ErrorNames>,
}

impl LegacyErrorsLayer {
    pub fn new(names: Arc<ErrorNames>) -> Self {
        Self { names }
    }
}

impl<S> Layer<S> for LegacyErrorsLayer {
    type Service = LegacyErrors<S>;

    fn layer(&self, inner: S) -> Self::Service {
        LegacyErrors { inner, names: Arc::clone(&self.names) }
    }
}

/// Maps errors and bare failure statuses from the inner service to legacy responses.
#[derive(Clone)]
pub struct LegacyErrors<S> {
    inner: S,
    names: Arc<ErrorNames>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for LegacyErrors<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
{
    type Response = Response<Either<ResBody, Body>>;
    type Error = Infallible;
    type Future = LegacyErrorsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // An inner readiness error cannot be reported here without dropping the connection; the
        // inner layers used by the stack (load shedding) are always ready and fail in `call`.
        match self.inner.poll_ready(cx) {
            Poll::Ready(Err(error)) => {
                tracing::error!(error = %error.into(), "inner service failed while getting ready");
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        LegacyErrorsFuture { inner: self.inner.call(request), names: Arc::clone(&self.names) }
    }
}

pin_project! {
    /// Response future of [`LegacyErrors`].
    pub struct LegacyErrorsFuture<F> {
        #[pin]
        inner: F,
        names: Arc<ErrorNames>,
    }
}

impl<F, ResBody, E> Future for LegacyErrorsFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<Either<ResBody, Body>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let legacy = |error: ShimError| Ok(legacy_error_response(&error, this.names).map(Either::Right));
        match ready!(this.inner.poll(cx)) {
            Ok(response) => {
                let bare_failure = response.extensions().get::<ReplyOrigin>().is_none()
                    && (response.status().is_client_error() || response.status().is_server_error());
                if bare_failure {
                    Poll::Ready(legacy(error_for_bare_status(response.status())))
                } else {
                    Poll::Ready(Ok(response.map(Either::Left)))
                }
            }
            Err(error) => Poll::Ready(legacy(error_for(error.into()))),
        }
    }
}

fn error_for(error: BoxError) -> ShimError {
    if error.is::<tower::load_shed::error::Overloaded>() {
        ShimError::Overloaded
    } else if error.is::<tower::timeout::error::Elapsed>() {
        ShimError::UpstreamTimeout("request deadline passed".into())
    } else {
        ShimError::Internal(error.to_string())
    }
}

fn error_for_bare_status(status: http::StatusCode) -> ShimError {
    let detail = format!("the stack answered {status}");
    match ErrorKind::for_bare_status(status) {
        ErrorKind::RequestTooLarge => ShimError::RequestTooLarge { limit: None },
        ErrorKind::UpstreamTimeout => ShimError::UpstreamTimeout(format!("request deadline passed ({detail})")),
        ErrorKind::Overloaded => ShimError::Overloaded,
        _ => ShimError::Internal(detail),
    }
}
