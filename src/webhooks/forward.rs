//! Forwards a webhook request to the operator's own endpoint and returns its complete reply.
//!
//! Forward targets may be `http://` or `https://` (back-end webhooks are often HTTPS-only). TLS
//! is rustls with the system's CA certificates (`SSL_CERT_FILE` / `SSL_CERT_DIR` replace them,
//! e.g. with a private CA); without any, an `https://` target is refused at start-up.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::body::{Body, full};
use crate::config::BasicCredentials;
use crate::error::ShimError;
use crate::upstream::headers::strip_hop_by_hop;

/// A TLS configuration that trusts nothing (so every `https://` target fails verification).
fn no_roots() -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth()
}

/// Counts `result` in the metrics when the forward to `hook` (session, event) failed.
pub fn count_failure(metrics: &crate::metrics::Metrics, hook: &'static str, result: &Result<Forwarded, ShimError>) {
    if !result.as_ref().is_ok_and(|reply| reply.status.is_success()) {
        metrics.webhook_forward_errors.get_or_create(&[("hook", hook)]).inc();
    }
}

/// The complete reply of a forward target.
#[derive(Clone, Debug)]
pub struct Forwarded {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A pooled client for webhook forward targets.
#[derive(Clone)]
pub struct Forwarder {
    client: Client<HttpsConnector<HttpConnector>, Body>,
    max_reply_bytes: usize,
    /// Whether any CA certificate was found, so `https://` targets can be verified.
    has_ca_roots: bool,
}

impl Forwarder {
    pub fn new(connect_timeout: Duration, max_reply_bytes: usize) -> Self {
        let mut tcp = HttpConnector::new();
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(connect_timeout));
        tcp.enforce_http(false);
        let (tls, has_ca_roots) = match hyper_rustls::HttpsConnectorBuilder::new().with_native_roots() {
            Ok(tls) => (tls, true),
            Err(_) => (hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(no_roots()), false),
        };
        let connector = tls.https_or_http().enable_http1().wrap_connector(tcp);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_timer(TokioTimer::new())
            .build(connector);
        Self { client, max_reply_bytes, has_ca_roots }
    }

    /// Whether every configured target (`(config key, URL)`) can be reached: `https://` needs CA
    /// certificates to verify it.
    pub fn can_reach_all(&self, targets: &[(&str, Option<&Uri>)]) -> Result<(), String> {
        for (key, target) in targets {
            let https = target.is_some_and(|target| target.scheme() == Some(&http::uri::Scheme::HTTPS));
            // A CA file named but unreadable is a mistake, even when a directory supplies others.
            if https
                && let Some(file) = std::env::var_os("SSL_CERT_FILE")
                && std::fs::File::open(&file).is_err()
            {
                return Err(format!(
                    "{key}: SSL_CERT_FILE={file:?} cannot be read, so https:// cannot be verified as meant"
                ));
            }
            if https && !self.has_ca_roots {
                let named: Vec<String> = ["SSL_CERT_FILE", "SSL_CERT_DIR"]
                    .iter()
                    .filter_map(|name| std::env::var_os(name).map(|value| format!("{name}={value:?}")))
                    .collect();
                let looked_in = if named.is_empty() {
                    "the system's store".to_owned()
                } else {
                    format!("{} (instead of the system's store)", named.join(", "))
                };
                return Err(format!(
                    "{key}: https:// needs CA certificates, and none were found in {looked_in}: install \
                     the system's (ca-certificates) or point SSL_CERT_FILE at a PEM file that exists"
                ));
            }
        }
        Ok(())
    }

    /// POSTs `body` with the caller's end-to-end headers to `target` within `deadline`, with
    /// `auth` as the `Authorization` when given.
    pub async fn post(
        &self,
        target: &Uri,
        caller_headers: &HeaderMap,
        body: Bytes,
        deadline: Duration,
        auth: Option<&BasicCredentials>,
    ) -> Result<Forwarded, ShimError> {
        let mut request = Request::new(full(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = target.clone();
        let mut headers = caller_headers.clone();
        strip_hop_by_hop(&mut headers);
        headers.remove(header::HOST);
        headers.remove(header::CONTENT_LENGTH);
        if let Some(auth) = auth {
            let value = HeaderValue::from_str(&auth.header_value())
                .map_err(|_| ShimError::Internal("forward credentials are not a valid header value".into()))?;
            headers.insert(header::AUTHORIZATION, value);
        }
        *request.headers_mut() = headers;
        let shown = crate::config::shown_url(&target.to_string());
        let exchange = async {
            let response = self.client.request(request).await.map_err(|error| {
                ShimError::UpstreamUnavailable(format!(
                    "webhook forward to {shown}: {}",
                    crate::upstream::with_causes(&error)
                ))
            })?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, self.max_reply_bytes)
                .collect()
                .await
                .map_err(|error| {
                    ShimError::UpstreamError(format!("webhook forward to {shown}: reading the reply: {error}"))
                })?
                .to_bytes();
            let mut headers = parts.headers;
            strip_hop_by_hop(&mut headers);
            Ok(Forwarded { status: parts.status, headers, body })
        };
        tokio::time::timeout(deadline, exchange).await.unwrap_or_else(|_| {
            Err(ShimError::UpstreamTimeout(format!("webhook forward to {shown} took longer than {deadline:?}")))
        })
    }
}
