//! Test support for the `sora-sim` end-to-end tests (`sim_api`, `sim_legacy`): start the real
//! binary on `127.0.0.1:0`, call its Sora API and control plane, receive its webhooks, and wait
//! on conditions.
#![allow(dead_code)]

use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use sora_legacy_shim::body::{Body, json_response};
use sora_legacy_shim::server::{self, ServeOptions};
use tokio::net::TcpListener;

/// How long a condition may take to come true before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// A running `sora-sim` child process, killed on drop.
pub struct Sim {
    child: Child,
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Sim {
    /// `sora-sim` listening on a free loopback port, with `extra_args` after the defaults.
    pub fn start(extra_args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sora-sim"))
            .args(["--listen", "127.0.0.1:0", "--log-level", "error"])
            .args(extra_args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("sora-sim starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("sora-sim prints its address");
        let address: SocketAddr = line
            .trim_end()
            .strip_prefix("listening on http://")
            .and_then(|address| address.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        assert!(address.ip().is_loopback());
        assert_ne!(address.port(), 0, "the real port is printed");
        let client = Client::builder(TokioExecutor::new()).build_http();
        Self { child, base: format!("http://{address}"), client }
    }

    /// `HOST:PORT` the emulator listens on.
    pub fn address(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    pub async fn send(&self, method: Method, path_and_query: &str, headers: &[(&str, &str)], body: &str) -> Reply {
        let mut request = Request::builder().method(method).uri(format!("{}{path_and_query}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(Bytes::from(body.to_owned()))).expect("valid request");
        let response = self.client.request(request).await.expect("sora-sim answers");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.expect("whole body").to_bytes();
        Reply { status, headers, body }
    }

    /// A Sora API call with `x-sora-target`.
    pub async fn api(&self, target: &str, body: &str) -> Reply {
        self.send(Method::POST, "/", &[("x-sora-target", target)], body).await
    }

    /// A successful API call's JSON.
    pub async fn api_ok(&self, target: &str, body: Value) -> Value {
        let reply = self.api(target, &body.to_string()).await;
        assert_eq!(reply.status, StatusCode::OK, "{target} {body}: {}", reply.text());
        assert_eq!(reply.headers["content-type"], "application/json");
        reply.json()
    }

    /// A successful control-plane (`/sim/...`) call's JSON.
    pub async fn control(&self, method: Method, path: &str, body: Value) -> Value {
        let reply = self.send(method, path, &[], &body.to_string()).await;
        assert_eq!(reply.status, StatusCode::OK, "{path} {body}: {}", reply.text());
        reply.json()
    }

    pub async fn connect(&self, body: Value) -> Value {
        self.control(Method::POST, "/sim/connect", body).await
    }

    /// Disconnects the connection `connected` (a `/sim/connect` answer) describes.
    pub async fn disconnect(&self, connected: &Value) -> Value {
        self.control(Method::POST, "/sim/disconnect", json!({"connection_id": connected["connection_id"]})).await
    }

    pub async fn state(&self) -> Value {
        self.control(Method::GET, "/sim/state", json!({})).await
    }

    /// The `recording` object of the channel's session in `/sim/state`, `None` when it does not record.
    pub async fn live_recording(&self, channel_id: &str) -> Option<Value> {
        let state = self.state().await;
        let sessions = state["sessions"].as_array().cloned().unwrap_or_default();
        let session = sessions.into_iter().find(|session| session["channel_id"] == channel_id)?;
        session.get("recording").cloned()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A whole HTTP answer.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| panic!("not JSON ({error}): {}", self.text()))
    }

    /// Asserts a Sora-style error: 400, JSON, exactly `{"error_type":"<error_type>"}`.
    pub fn assert_error(&self, error_type: &str) {
        assert_eq!(self.status, StatusCode::BAD_REQUEST, "{}", self.text());
        assert_eq!(self.headers["content-type"], "application/json");
        assert_eq!(self.text(), format!(r#"{{"error_type":"{error_type}"}}"#));
    }
}

/// A webhook receiver: records every posted JSON body, answers `session.created` with a fixed
/// reply and every other event with `{}`.
pub struct WebhookReceiver {
    pub url: String,
    received: Arc<Mutex<Vec<Value>>>,
    server: tokio::task::JoinHandle<()>,
}

impl WebhookReceiver {
    pub async fn start(session_created_reply: Value) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a free port");
        let url = format!("http://{}/hook", listener.local_addr().expect("bound address"));
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&received);
        let service = tower::service_fn(move |request: Request<Incoming>| {
            let log = Arc::clone(&log);
            let session_created_reply = session_created_reply.clone();
            async move {
                let bytes =
                    request.into_body().collect().await.map(http_body_util::Collected::to_bytes).unwrap_or_default();
                let event: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let reply = if event["type"] == "session.created" { session_created_reply } else { json!({}) };
                log.lock().expect("receiver log").push(event);
                Ok::<Response<Body>, Infallible>(json_response(StatusCode::OK, &reply))
            }
        });
        let server = tokio::spawn(server::serve(listener, service, ServeOptions::default(), std::future::pending()));
        Self { url, received, server }
    }

    /// The received events of `event_type`, in arrival order.
    pub fn events_of_type(&self, event_type: &str) -> Vec<Value> {
        self.received
            .lock()
            .expect("receiver log")
            .iter()
            .filter(|event| event["type"] == event_type)
            .cloned()
            .collect()
    }

    /// Every received event, in arrival order.
    pub fn all(&self) -> Vec<Value> {
        self.received.lock().expect("receiver log").clone()
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Polls `probe` until it yields a value, failing the test after [`DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether `value` is a string shaped like a ULID (26 ASCII alphanumerics).
pub fn is_ulid(value: &Value) -> bool {
    value.as_str().is_some_and(|text| text.len() == 26 && text.bytes().all(|byte| byte.is_ascii_alphanumeric()))
}
