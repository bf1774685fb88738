//! Outgoing webhooks over a hyper-util client: JSON POSTs with a 5 s limit whose failures are
//! logged, never fatal.
//!
//! `session.created` is sent inline because its reply matters; everything else goes through one
//! queue drained by a single task, so webhooks arrive in the order the state produced them.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::clock::Millis;
use super::payloads;
use super::state::Effect;
use crate::body::BoxError;

/// How long one webhook exchange may take.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// One queued POST.
struct Delivery {
    url: String,
    authorization: Option<String>,
    payload: Value,
}

/// Where the webhooks go; changeable at run time through `POST /sim/webhooks`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WebhookUrls {
    pub session: Option<String>,
    pub event: Option<String>,
    /// `user:password` sent as HTTP Basic credentials with every webhook (as Sora can).
    pub basic_auth: Option<String>,
}

impl WebhookUrls {
    /// The `Authorization` header value for [`WebhookUrls::basic_auth`].
    fn authorization(&self) -> Option<String> {
        use base64::Engine;
        self.basic_auth.as_ref().map(|pair| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair)))
    }
}

/// Sends the emulator's webhooks to the configured URLs.
pub struct Webhooks {
    client: HttpClient,
    urls: std::sync::RwLock<WebhookUrls>,
    queue: mpsc::UnboundedSender<Delivery>,
}

impl Webhooks {
    /// Starts the delivery task; it runs until every `Webhooks` is dropped or the handle is aborted.
    pub fn start(session_url: Option<String>, event_url: Option<String>) -> (Self, JoinHandle<()>) {
        let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
        let (queue, mut pending) = mpsc::unbounded_channel::<Delivery>();
        let worker_client = client.clone();
        let worker = tokio::spawn(async move {
            while let Some(delivery) = pending.recv().await {
                match post_json(&worker_client, &delivery.url, delivery.authorization.as_deref(), &delivery.payload)
                    .await
                {
                    Ok((status, _)) if status.is_success() => {
                        tracing::debug!(url = %delivery.url, %status, "webhook delivered")
                    }
                    Ok((status, _)) => tracing::warn!(url = %delivery.url, %status, "webhook answered with a failure"),
                    Err(error) => tracing::warn!(url = %delivery.url, %error, "webhook failed"),
                }
            }
        });
        let urls = std::sync::RwLock::new(WebhookUrls { session: session_url, event: event_url, basic_auth: None });
        (Self { client, urls, queue }, worker)
    }

    /// The URLs in force.
    pub fn urls(&self) -> WebhookUrls {
        self.urls.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Replaces the URLs (tests wire a shim started after the emulator this way).
    pub fn set_urls(&self, urls: WebhookUrls) {
        *self.urls.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = urls;
    }

    /// Whether new sessions must wait for a `session.created` reply.
    pub fn has_session_webhook(&self) -> bool {
        self.urls().session.is_some()
    }

    /// Queues the webhooks `effects` imply for the configured URLs.
    pub fn queue_effects(&self, effects: Vec<Effect>, now: Millis) {
        let urls = self.urls();
        for effect in effects {
            match effect {
                Effect::SessionDestroyed { channel_id, session_id } => {
                    if let Some(url) = &urls.session {
                        self.queue(
                            url,
                            urls.authorization(),
                            payloads::session_destroyed(&channel_id, &session_id, now),
                        );
                    }
                }
                Effect::RecordingEnded(recording) => {
                    if let Some(url) = &urls.event {
                        for payload in payloads::recording_ended(&recording, now) {
                            self.queue(url, urls.authorization(), payload);
                        }
                    }
                }
            }
        }
    }

    /// Sends `session.created` and returns the reply, or `None` when there is no URL or it failed.
    pub async fn send_session_created(&self, payload: &Value) -> Option<(StatusCode, Bytes)> {
        let urls = self.urls();
        let url = urls.session.clone()?;
        match post_json(&self.client, &url, urls.authorization().as_deref(), payload).await {
            Ok(reply) if !reply.0.is_success() => {
                tracing::warn!(%url, status = %reply.0, "session.created webhook answered with a failure; the session starts without recording");
                Some(reply)
            }
            Ok(reply) => Some(reply),
            Err(error) => {
                tracing::warn!(%url, %error, "session.created webhook failed; the session starts without recording");
                None
            }
        }
    }

    fn queue(&self, url: &str, authorization: Option<String>, payload: Value) {
        if self.queue.send(Delivery { url: url.to_owned(), authorization, payload }).is_err() {
            tracing::warn!(url, "webhook queue closed; webhook not sent");
        }
    }
}

/// POSTs `payload` as JSON and collects the reply, all within [`WEBHOOK_TIMEOUT`].
async fn post_json(
    client: &HttpClient,
    url: &str,
    authorization: Option<&str>,
    payload: &Value,
) -> Result<(StatusCode, Bytes), BoxError> {
    let body = Bytes::from(serde_json::to_vec(payload)?);
    let mut request = Request::post(url).header(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(value) = authorization {
        request = request.header(header::AUTHORIZATION, value);
    }
    let request = request.body(Full::new(body))?;
    let exchange = async {
        let response = client.request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok::<_, BoxError>((status, body))
    };
    tokio::time::timeout(WEBHOOK_TIMEOUT, exchange).await.map_err(|_| "timed out")?
}
