//! The connection to the one upstream Sora: a pooled hyper client with `TCP_NODELAY`, a connect
//! timeout and an idle timeout below Sora's keep-alive, plus helpers for the JSON calls the shim
//! makes itself.
//!
//! The base URL is fixed by configuration; request paths are appended to it and nothing a
//! client sends (Host, absolute-form URIs, headers) can make the shim connect anywhere else.

pub mod headers;
pub mod passthrough;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{PathAndQuery, Uri};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde_json::Value;

use crate::body::{Body, full};
use crate::config::UpstreamConfig;
use crate::error::ShimError;
use crate::metrics::Metrics;

/// Header carrying the API target.
pub const TARGET_HEADER: &str = "x-sora-target";

/// A pooled client bound to one upstream base URL.
#[derive(Clone)]
pub struct Upstream {
    client: Client<HttpConnector, Body>,
    base: Uri,
    timeout: Duration,
    max_reply_bytes: usize,
    metrics: Arc<Metrics>,
}

/// A complete upstream reply to a call the shim made itself.
#[derive(Clone, Debug)]
pub struct UpstreamReply {
    pub status: StatusCode,
    pub body: Bytes,
}

impl UpstreamReply {
    /// The body as JSON; an unparsable body is an [`ShimError::UpstreamError`].
    pub fn json(&self) -> Result<Value, ShimError> {
        serde_json::from_slice(&self.body).map_err(|error| {
            ShimError::UpstreamError(format!(
                "status {} with a non-JSON body ({error}): {}",
                self.status,
                self.excerpt()
            ))
        })
    }

    /// The `error_type` of a Sora-style error reply, if this is one.
    pub fn error_type(&self) -> Option<String> {
        let value: Value = serde_json::from_slice(&self.body).ok()?;
        value.get("error_type")?.as_str().map(str::to_owned)
    }

    /// The start of the body, for logs and error details, control characters escaped (an
    /// upstream body cannot forge log lines).
    pub fn excerpt(&self) -> String {
        let end = self.body.len().min(200);
        String::from_utf8_lossy(&self.body[..end])
            .chars()
            .flat_map(|c| if c.is_control() { c.escape_default().collect::<Vec<_>>() } else { vec![c] })
            .collect()
    }
}

impl Upstream {
    /// A client for `base` (already checked by [`crate::config::upstream_base`]).
    pub fn new(base: Uri, config: &UpstreamConfig, metrics: Arc<Metrics>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_millis(config.connect_timeout_ms)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_millis(config.pool_idle_timeout_ms))
            .pool_timer(TokioTimer::new())
            .build(connector);
        Self {
            client,
            base,
            timeout: Duration::from_millis(config.timeout_ms),
            max_reply_bytes: config.max_reply_bytes,
            metrics,
        }
    }

    pub fn base(&self) -> &Uri {
        &self.base
    }

    /// Whether a TCP connection to the upstream opens within `deadline` (readiness).
    pub async fn reachable(&self, deadline: Duration) -> Result<(), String> {
        let host = self.base.host().unwrap_or("127.0.0.1").trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = self.base.port_u16().unwrap_or(80);
        match tokio::time::timeout(deadline, tokio::net::TcpStream::connect((host.as_str(), port))).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(format!("{host}:{port}: {error}")),
            Err(_) => Err(format!("{host}:{port}: no connection within {deadline:?}")),
        }
    }

    /// The upstream URI for a request's path and query: the base's path prefix, then the request's.
    pub fn uri_for(&self, path_and_query: Option<&PathAndQuery>) -> Uri {
        let prefix = self.base.path().trim_end_matches('/');
        let rest = path_and_query.map_or("/", PathAndQuery::as_str);
        let mut parts = self.base.clone().into_parts();
        let joined = format!("{prefix}{rest}");
        parts.path_and_query = Some(joined.parse().unwrap_or_else(|_| PathAndQuery::from_static("/")));
        Uri::from_parts(parts).unwrap_or_else(|_| self.base.clone())
    }

    /// Sends a prepared request (passthrough) and returns the streaming response.
    pub async fn send(&self, request: Request<Body>) -> Result<Response<Incoming>, ShimError> {
        self.timed("passthrough", self.send_unmetered(request)).await
    }

    async fn send_unmetered(&self, request: Request<Body>) -> Result<Response<Incoming>, ShimError> {
        self.client.request(request).await.map_err(|error| classify_client_error(&error))
    }

    /// Runs one upstream exchange, recording its latency and any failure under `call`.
    async fn timed<T>(
        &self,
        call: &'static str,
        exchange: impl Future<Output = Result<T, ShimError>>,
    ) -> Result<T, ShimError> {
        let started = Instant::now();
        let result = exchange.await;
        self.metrics.upstream_duration.get_or_create(&[("call", call)]).observe(started.elapsed().as_secs_f64());
        if let Err(error) = &result {
            let kind = match error {
                ShimError::UpstreamUnavailable(_) => "unavailable",
                ShimError::UpstreamTimeout(_) => "timeout",
                _ => "error",
            };
            self.metrics.upstream_error(call, kind);
        }
        result
    }

    /// Calls `target` with a JSON body, forwarding the caller's end-to-end `headers`, and reads
    /// the whole reply within the upstream timeout. `call` names the call in the metrics.
    pub async fn call_json(
        &self,
        call: &'static str,
        target: &str,
        body: &Value,
        caller_headers: &HeaderMap,
    ) -> Result<UpstreamReply, ShimError> {
        self.call_json_within(call, target, body, caller_headers, self.timeout).await
    }

    /// The upstream timeout of every call the shim makes itself.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// [`Upstream::call_json`] with its own `deadline` instead of the upstream timeout.
    pub async fn call_json_within(
        &self,
        call: &'static str,
        target: &str,
        body: &Value,
        caller_headers: &HeaderMap,
        deadline: Duration,
    ) -> Result<UpstreamReply, ShimError> {
        let mut request = Request::new(full(body.to_string()));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uri_for(None);
        let headers = request.headers_mut();
        headers::copy_for_translated_call(caller_headers, headers);
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            TARGET_HEADER,
            HeaderValue::from_str(target)
                .map_err(|_| ShimError::Internal(format!("bad upstream target {target:?}")))?,
        );
        let exchange = async {
            let response = self.send_unmetered(request).await?;
            let status = response.status();
            let body = Limited::new(response.into_body(), self.max_reply_bytes)
                .collect()
                .await
                .map_err(|error| ShimError::UpstreamError(format!("reading the reply to {target}: {error}")))?
                .to_bytes();
            Ok(UpstreamReply { status, body })
        };
        let bounded = async {
            match tokio::time::timeout(deadline, exchange).await {
                Ok(result) => result,
                Err(_) => Err(ShimError::UpstreamTimeout(format!("{target} took longer than {deadline:?}"))),
            }
        };
        let result = self.timed(call, bounded).await;
        if result.as_ref().is_ok_and(|reply| reply.status.is_server_error()) {
            self.metrics.upstream_error(call, "error");
        }
        result
    }
}

/// An error with every cause under it (`client error (Connect): invalid peer certificate: ...`),
/// so a certificate problem reads differently from a refused connection.
pub fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut detail = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    detail
}

fn classify_client_error(error: &hyper_util::client::legacy::Error) -> ShimError {
    let detail = with_causes(error);
    if error.is_connect() && detail.contains("timed out") {
        ShimError::UpstreamTimeout(detail)
    } else {
        // Refused, reset, or closed before a complete response: the upstream is not answering.
        ShimError::UpstreamUnavailable(detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(base: &str) -> Upstream {
        Upstream::new(base.parse().unwrap(), &UpstreamConfig::default(), Arc::new(Metrics::default()))
    }

    #[tokio::test]
    async fn uri_keeps_the_base_authority_whatever_the_request_path() {
        let plain = upstream("http://sora:3000");
        assert_eq!(plain.uri_for(Some(&"/api?x=1".parse().unwrap())).to_string(), "http://sora:3000/api?x=1");
        assert_eq!(plain.uri_for(None).to_string(), "http://sora:3000/");
        let prefixed = upstream("http://sora:3000/base/");
        assert_eq!(prefixed.uri_for(Some(&"/".parse().unwrap())).to_string(), "http://sora:3000/base/");
        // An absolute-looking path stays a path on the configured host.
        assert_eq!(
            plain.uri_for(Some(&"//evil.example/x".parse().unwrap())).authority().unwrap().as_str(),
            "sora:3000"
        );
    }

    #[tokio::test]
    async fn refused_connection_is_upstream_unavailable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let error = upstream(&format!("http://{address}"))
            .call_json("list_sessions", "Sora_20231220.ListSessions", &serde_json::json!({}), &HeaderMap::new())
            .await
            .unwrap_err();
        assert!(matches!(error, ShimError::UpstreamUnavailable(_)), "{error:?}");
    }

    #[test]
    fn reply_helpers() {
        let reply =
            UpstreamReply { status: StatusCode::BAD_REQUEST, body: Bytes::from_static(b"{\"error_type\":\"X\"}") };
        assert_eq!(reply.error_type().as_deref(), Some("X"));
        let garbage = UpstreamReply { status: StatusCode::OK, body: Bytes::from_static(b"<html>") };
        assert!(matches!(garbage.json(), Err(ShimError::UpstreamError(_))));
        assert_eq!(garbage.error_type(), None);
    }

    #[test]
    fn excerpts_escape_control_characters() {
        let forged = UpstreamReply {
            status: StatusCode::BAD_REQUEST,
            body: Bytes::from_static(b"oops\r\n2026-01-01 INFO fake line\0"),
        };
        assert_eq!(forged.excerpt(), "oops\\r\\n2026-01-01 INFO fake line\\u{0}");
    }
}
