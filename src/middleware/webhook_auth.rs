//! `WebhookAuthLayer`: HTTP Basic authentication on the webhook endpoints.
//!
//! Sora can send Basic credentials with its webhooks. When `webhook_auth` is configured, a
//! request without them, or with wrong ones, is answered `401 {"error_type":"UNAUTHORIZED"}`
//! before anything reads the body, changes state or forwards anything. Accepted credentials are
//! removed from the request: they were meant for the shim, not for the operator's own hook.
//! Credentials are compared in constant time and never logged.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::{BoxFuture, FutureExt};
use http::{Request, Response, header};
use tower::{Layer, Service};

use crate::body::Body;
use crate::config::BasicCredentials;
use crate::error::{ShimError, legacy_error_response};
use crate::mappings::ErrorNames;

/// Applies [`WebhookAuth`]; with no credentials configured every request passes.
#[derive(Clone)]
pub struct WebhookAuthLayer {
    expected: Option<Arc<str>>,
    names: Arc<ErrorNames>,
}

impl WebhookAuthLayer {
    pub fn new(credentials: Option<&BasicCredentials>, names: Arc<ErrorNames>) -> Self {
        Self { expected: credentials.map(|credentials| Arc::from(credentials.header_value())), names }
    }
}

impl<S> Layer<S> for WebhookAuthLayer {
    type Service = WebhookAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WebhookAuth { inner, expected: self.expected.clone(), names: Arc::clone(&self.names) }
    }
}

/// Checks Basic credentials before the inner service sees the request.
#[derive(Clone)]
pub struct WebhookAuth<S> {
    inner: S,
    expected: Option<Arc<str>>,
    names: Arc<ErrorNames>,
}

impl<S, B> Service<Request<B>> for WebhookAuth<S>
where
    S: Service<Request<B>, Response = Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        if let Some(expected) = &self.expected {
            let presented =
                request.headers().get(header::AUTHORIZATION).map(|value| value.as_bytes()).unwrap_or_default();
            if !credentials_match(presented, expected.as_bytes()) {
                let response = legacy_error_response(&ShimError::Unauthorized, &self.names);
                return async move { Ok(response) }.boxed();
            }
            request.headers_mut().remove(header::AUTHORIZATION);
        }
        self.inner.call(request).boxed()
    }
}

/// `Basic <token>` equality: the scheme case-insensitively, any run of spaces after it (RFC 9110
/// allows one or more), the token in constant time.
fn credentials_match(presented: &[u8], expected: &[u8]) -> bool {
    const SCHEME: &[u8] = b"Basic";
    let token = |value: &[u8]| -> Option<Vec<u8>> {
        let (scheme, rest) = value.split_at_checked(SCHEME.len())?;
        if !scheme.eq_ignore_ascii_case(SCHEME) || !rest.first().is_some_and(|byte| *byte == b' ' || *byte == b'\t') {
            return None;
        }
        Some(rest.trim_ascii().to_vec())
    };
    let (Some(presented), Some(expected)) = (token(presented), token(expected)) else {
        return false;
    };
    if presented.len() != expected.len() {
        return false;
    }
    presented.iter().zip(&expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use crate::mappings::Mappings;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn credentials() -> BasicCredentials {
        BasicCredentials { username: "sora".into(), password: Secret::new("s3cret") }
    }

    async fn call(layer: &WebhookAuthLayer, authorization: Option<&str>) -> (u16, String, Option<String>) {
        let service = layer.layer(tower::service_fn(|request: Request<()>| async move {
            let forwarded = request.headers().get(header::AUTHORIZATION).map(|v| v.to_str().unwrap().to_owned());
            let mut response = Response::new(crate::body::full("passed"));
            if let Some(value) = forwarded {
                response.headers_mut().insert("x-seen-authorization", value.parse().unwrap());
            }
            Ok::<_, Infallible>(response)
        }));
        let mut builder = Request::builder();
        if let Some(value) = authorization {
            builder = builder.header(header::AUTHORIZATION, value);
        }
        let response = service.oneshot(builder.body(()).unwrap()).await.unwrap();
        let status = response.status().as_u16();
        let seen = response.headers().get("x-seen-authorization").map(|v| v.to_str().unwrap().to_owned());
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap(), seen)
    }

    #[tokio::test]
    async fn good_credentials_pass_and_are_not_passed_on() {
        let layer = WebhookAuthLayer::new(Some(&credentials()), Arc::new(Mappings::built_in().errors));
        for accepted in
            ["Basic c29yYTpzM2NyZXQ=", "basic c29yYTpzM2NyZXQ=", "Basic   c29yYTpzM2NyZXQ=", "BASIC\tc29yYTpzM2NyZXQ= "]
        {
            assert_eq!(call(&layer, Some(accepted)).await, (200, "passed".into(), None), "{accepted:?}");
        }
        assert_eq!(call(&layer, Some("basic c29yYTpzM2NyZXQ=")).await.0, 200);
    }

    #[tokio::test]
    async fn missing_or_wrong_credentials_are_401() {
        let layer = WebhookAuthLayer::new(Some(&credentials()), Arc::new(Mappings::built_in().errors));
        for presented in [
            None,
            Some("Basic c29yYTp3cm9uZw=="),
            Some("Bearer c29yYTpzM2NyZXQ="),
            Some("Basic"),
            Some(""),
            Some("Basicc29yYTpzM2NyZXQ="),
            Some("Basic c29yYTpzM2NyZXQ"),
            Some("Basic c29yYTpzM2NyZXQ=x"),
        ] {
            let (status, body, _) = call(&layer, presented).await;
            assert_eq!((status, body.as_str()), (401, r#"{"error_type":"UNAUTHORIZED"}"#), "{presented:?}");
        }
    }

    #[tokio::test]
    async fn without_configuration_everything_passes_untouched() {
        let layer = WebhookAuthLayer::new(None, Arc::new(Mappings::built_in().errors));
        assert_eq!(call(&layer, None).await.0, 200);
        assert_eq!(call(&layer, Some("Bearer x")).await.2.as_deref(), Some("Bearer x"));
    }
}
