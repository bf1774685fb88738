//! Test support: start the real `sora-sim` and `sora-legacy-shim` binaries on `127.0.0.1:0`,
//! send HTTP requests to them, and wait on conditions.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// A fresh temporary directory for one test.
pub fn temp_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("shim-it-{label}-{}", ulid::Ulid::generate()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn mappings_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings")
}

/// A child process killed when dropped; its stderr goes to `log`.
pub struct Process {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// Lines printed on stdout before the "listening on" line.
    pub announced: Vec<String>,
    pub log: PathBuf,
}

impl Process {
    fn spawn(mut command: Command, log: PathBuf) -> Process {
        let stderr = std::fs::File::create(&log).unwrap();
        let mut child = command.stdout(Stdio::piped()).stderr(stderr).stdin(Stdio::null()).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut announced = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = sender.send(Ok((url.to_owned(), announced.clone())));
                    announced.clear();
                } else {
                    announced.push(line);
                }
            }
            let _ = sender.send(Err(()));
        });
        match receiver.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok((url, announced))) => Process { child, url, announced, log },
            _ => {
                let _ = child.kill();
                let log_text = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("process did not start; its log:\n{log_text}");
            }
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL and wait.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait up to `deadline` for a clean exit; returns the exit status code.
    pub fn terminate(&mut self, deadline: Duration) -> Option<i32> {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let start = Instant::now();
        while start.elapsed() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn addr(&self) -> &str {
        self.url.trim_start_matches("http://")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `sora-sim` with extra flags.
pub fn start_sim(args: &[&str]) -> Process {
    let dir = temp_dir("sim");
    let mut command = Command::new(env!("CARGO_BIN_EXE_sora-sim"));
    command.args(["--listen", "127.0.0.1:0"]).args(args);
    Process::spawn(command, dir.join("sim.log"))
}

/// How to start a shim.
#[derive(Clone)]
pub struct ShimOptions {
    /// `127.0.0.1:0` unless set (restarts reuse the port the OS gave the first run).
    pub listen: Option<String>,
    /// The repository's `mappings/` unless set.
    pub mappings: Option<PathBuf>,
    pub upstream: Option<String>,
    pub store: PathBuf,
    pub env: Vec<(String, String)>,
    pub args: Vec<String>,
    /// Runs the shim in this directory without `--mappings` (it finds `./mappings` itself).
    pub workdir: Option<PathBuf>,
}

impl ShimOptions {
    pub fn new(upstream: &str) -> Self {
        Self {
            listen: None,
            mappings: None,
            upstream: Some(upstream.to_owned()),
            store: temp_dir("store").join("orders.db"),
            env: Vec::new(),
            args: Vec::new(),
            workdir: None,
        }
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }
}

/// Starts `sora-legacy-shim run`.
pub fn start_shim(options: &ShimOptions) -> Process {
    let dir = temp_dir("shim");
    let mut command = Command::new(env!("CARGO_BIN_EXE_sora-legacy-shim"));
    command
        .arg("run")
        .arg("--listen")
        .arg(options.listen.as_deref().unwrap_or("127.0.0.1:0"))
        .arg("--store")
        .arg(&options.store)
        .args(&options.args)
        .env_remove("RUST_LOG")
        .current_dir(options.workdir.as_ref().unwrap_or(&dir));
    if options.workdir.is_none() {
        command.arg("--mappings").arg(options.mappings.clone().unwrap_or_else(mappings_dir));
    }
    if let Some(upstream) = &options.upstream {
        command.args(["--upstream", upstream]);
    }
    for (key, value) in &options.env {
        command.env(key, value);
    }
    Process::spawn(command, dir.join("shim.log"))
}

/// A complete HTTP reply.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("body is not JSON ({error}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts a legacy error: status, content-type and the exact body.
    pub fn assert_legacy_error(&self, status: u16, name: &str) {
        assert_eq!(self.status, status, "status for {name}; body {}", self.text());
        assert_eq!(self.header("content-type"), Some("application/json"), "content-type for {name}");
        assert_eq!(self.text(), format!("{{\"error_type\":\"{name}\"}}"));
        assert!(self.header("x-request-id").is_some(), "x-request-id on {name}");
    }
}

/// Sends a request and reads the whole reply.
pub async fn send(request: Request<Full<Bytes>>) -> Reply {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let response = tokio::time::timeout(Duration::from_secs(30), client.request(request))
        .await
        .expect("request timed out")
        .expect("request failed");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.expect("body").to_bytes();
    Reply { status, headers, body }
}

/// `POST {base}{path}` with an optional target, a raw body and extra headers.
pub async fn post(base: &str, path: &str, target: Option<&str>, body: &str, headers: &[(&str, &str)]) -> Reply {
    let mut builder = Request::builder().method(Method::POST).uri(format!("{base}{path}"));
    if let Some(target) = target {
        builder = builder.header("x-sora-target", target);
    }
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    send(builder.body(Full::new(Bytes::from(body.to_owned()))).unwrap()).await
}

/// A legacy-style API call with `content-type: application/json`.
pub async fn api(base: &str, target: &str, body: Value) -> Reply {
    post(base, "/", Some(target), &body.to_string(), &[("content-type", "application/json")]).await
}

pub async fn get_json(url: &str) -> Value {
    let request = Request::builder().uri(url).body(Full::new(Bytes::new())).unwrap();
    let reply = send(request).await;
    assert_eq!(reply.status, 200, "GET {url}: {}", reply.text());
    reply.json()
}

pub async fn post_json(url: &str, body: Value) -> Value {
    let request = Request::builder()
        .method(Method::POST)
        .uri(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let reply = send(request).await;
    assert_eq!(reply.status, 200, "POST {url}: {}", reply.text());
    reply.json()
}

/// Connects a client to a channel on the emulator; returns the connection id.
pub async fn connect(sim: &Process, channel: &str) -> String {
    let reply = post_json(&format!("{}/sim/connect", sim.url), serde_json::json!({"channel_id": channel})).await;
    reply["connection_id"].as_str().unwrap().to_owned()
}

pub async fn disconnect(sim: &Process, connection_id: &str) -> Value {
    post_json(&format!("{}/sim/disconnect", sim.url), serde_json::json!({"connection_id": connection_id})).await
}

/// The emulator's live session for a channel, if any.
pub async fn sim_session(sim: &Process, channel: &str) -> Option<Value> {
    let state = get_json(&format!("{}/sim/state", sim.url)).await;
    state["sessions"].as_array().unwrap().iter().find(|session| session["channel_id"] == channel).cloned()
}

/// The wall clock in Unix seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Every recording the emulator made on a channel (running and ended), oldest first.
pub async fn recordings_of(sim: &Process, channel: &str) -> Vec<Value> {
    let state = get_json(&format!("{}/sim/state", sim.url)).await;
    state["recordings"].as_array().unwrap().iter().filter(|r| r["channel_id"] == channel).cloned().collect()
}

/// Waits until the channel's live session records (or not); returns the session.
pub async fn wait_recording(sim: &Process, channel: &str, recording: bool) -> Option<Value> {
    wait_for(&format!("{channel} recording = {recording}"), Duration::from_secs(10), || async {
        let session = sim_session(sim, channel).await;
        let now = session.as_ref().and_then(|s| s.get("recording")).is_some_and(Value::is_object);
        (now == recording).then_some(session)
    })
    .await
}

/// The emulator's journal of API requests with `target`.
pub async fn journal(sim: &Process, target: &str) -> Vec<Value> {
    let all = get_json(&format!("{}/sim/requests?target={target}", sim.url)).await;
    all.as_array().unwrap().clone()
}

/// Polls `check` until it returns `Some`, or fails after `deadline`.
pub async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Writes `bytes` on a fresh TCP connection and returns everything read until the peer closes
/// or `deadline` passes.
pub fn raw_exchange(addr: &str, bytes: &[u8], close_write: bool, deadline: Duration) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(deadline)).unwrap();
    stream.write_all(bytes).unwrap();
    if close_write {
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }
    let mut out = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buffer[..n]),
        }
    }
    out
}

/// Is this a ULID as Sora prints ids: 26 Crockford base32 characters?
pub fn is_ulid(value: &Value) -> bool {
    value.as_str().is_some_and(|text| {
        text.len() == 26
            && text.bytes().all(|b| b.is_ascii_digit() || (b.is_ascii_uppercase() && !b"ILOU".contains(&b)))
    })
}

/// Rows in the shim's order table, read straight from the SQLite file.
pub fn stored_orders(store: &Path) -> Vec<(String, String, Option<i64>)> {
    let connection = rusqlite::Connection::open(store).unwrap();
    let mut statement =
        connection.prepare("SELECT recording_id, channel_id, stopped_at FROM orders ORDER BY recording_id").unwrap();
    statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?))).unwrap().map(Result::unwrap).collect()
}

/// Channels of the orders that stand (neither stopped nor withdrawn), read straight from the file.
/// A refused Start's order is withdrawn, not deleted: it stays, marked, until the reconciler
/// knows nothing records for it.
pub fn standing_orders(store: &Path) -> Vec<String> {
    stored_orders(store)
        .into_iter()
        .filter(|(_, _, stopped)| stopped.is_none())
        .map(|(_, channel, _)| channel)
        .collect()
}

/// Points the emulator's webhooks somewhere (at run time, so a shim on a port chosen by the OS
/// can be wired after both have started). `None` leaves a URL as it is.
pub async fn set_sim_webhooks(sim: &Process, session: Option<&str>, event: Option<&str>) {
    let mut body = serde_json::Map::new();
    if let Some(url) = session {
        body.insert("session_webhook_url".into(), Value::from(url));
    }
    if let Some(url) = event {
        body.insert("event_webhook_url".into(), Value::from(url));
    }
    post_json(&format!("{}/sim/webhooks", sim.url), Value::Object(body)).await;
}

/// A sim and a shim in front of it, with the sim's session webhook pointing at the shim.
pub async fn start_pair(options: impl FnOnce(ShimOptions) -> ShimOptions) -> (Process, Process, ShimOptions) {
    let sim = start_sim(&[]);
    let options = options(ShimOptions::new(&sim.url));
    let shim = start_shim(&options);
    set_sim_webhooks(&sim, Some(&format!("{}/hooks/session", shim.url)), None).await;
    (sim, shim, options)
}

/// Restarts a shim on the address it had, so webhooks pointing at it keep working.
pub fn restart_shim(old: &mut Process, options: &ShimOptions) -> Process {
    let address = old.addr().to_owned();
    old.kill();
    start_shim(&ShimOptions { listen: Some(address), ..options.clone() })
}

/// A background task of a test helper, stopped when the helper is dropped.
pub struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One request captured by a [`Receiver`].
#[derive(Clone, Debug)]
pub struct Captured {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A tiny HTTP server standing in for an operator's webhook endpoint: it records every request
/// and answers with a fixed status and body.
pub struct Receiver {
    pub url: String,
    pub captured: std::sync::Arc<std::sync::Mutex<Vec<Captured>>>,
    _task: AbortOnDrop,
}

impl Receiver {
    pub async fn start(status: u16, body: &str) -> Receiver {
        Self::serve(status, body, None).await
    }

    /// The same over HTTPS, with the test certificate for 127.0.0.1 (`tests/fixtures/tls`).
    pub async fn start_tls(status: u16, body: &str) -> Receiver {
        use tokio_rustls::rustls;
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
        let certs = CertificateDer::pem_file_iter(dir.join("server.pem")).unwrap().map(Result::unwrap).collect();
        let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
        let config =
            rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .unwrap();
        Self::serve(status, body, Some(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)))).await
    }

    async fn serve(status: u16, body: &str, tls: Option<tokio_rustls::TlsAcceptor>) -> Receiver {
        use hyper::service::service_fn;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}", listener.local_addr().unwrap());
        let captured = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let reply = Bytes::from(body.to_owned());
        let store = captured.clone();
        let task = AbortOnDrop(tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { break };
                let store = store.clone();
                let reply = reply.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                        let store = store.clone();
                        let reply = reply.clone();
                        async move {
                            let path = request.uri().path().to_owned();
                            let headers = request.headers().clone();
                            let body = request.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
                            store.lock().unwrap().push(Captured { path, headers, body });
                            let mut response = hyper::Response::new(Full::new(reply));
                            *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
                            response.headers_mut().insert("content-type", "application/json".parse().unwrap());
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        None => {
                            let _ = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service).await;
                        }
                        Some(tls) => {
                            // A client that does not trust the certificate fails here: nothing is captured.
                            let Ok(stream) = tls.accept(stream).await else { return };
                            let _ = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service).await;
                        }
                    }
                });
            }
        }));
        Receiver { url, captured, _task: task }
    }

    pub fn requests(&self) -> Vec<Captured> {
        self.captured.lock().unwrap().clone()
    }
}

/// Adds a fault rule to the emulator (`POST /sim/faults`).
pub async fn add_fault(sim: &Process, rule: Value) {
    post_json(&format!("{}/sim/faults", sim.url), rule).await;
}

/// Clears every fault rule of the emulator (`DELETE /sim/faults`).
pub async fn clear_faults(sim: &Process) {
    let request = Request::builder()
        .method(Method::DELETE)
        .uri(format!("{}/sim/faults", sim.url))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(request).await.status, 200, "faults cleared");
}

/// An endpoint that reads requests and never answers them (a hung operator hook): it counts the
/// requests that reached it, so a test can wait until callers are stuck on it.
pub struct Stall {
    pub url: String,
    arrived: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    _task: AbortOnDrop,
}

impl Stall {
    pub async fn start() -> Stall {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let arrived = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = arrived.clone();
        let task = AbortOnDrop(tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let count = count.clone();
                tokio::spawn(async move {
                    let mut buffer = [0u8; 4096];
                    let mut counted = false;
                    // Read whatever comes, answer nothing, hold the connection until the peer goes.
                    while let Ok(n) = stream.read(&mut buffer).await {
                        if n == 0 {
                            break;
                        }
                        if !counted {
                            counted = true;
                            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                });
            }
        }));
        Stall { url, arrived, _task: task }
    }

    /// How many connections have sent a request so far.
    pub fn arrived(&self) -> usize {
        self.arrived.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A relay in front of one webhook endpoint (`target`, whatever path it is called on) that holds each answer for `delay` before passing it
/// on (Sora's side of a slow network): it counts the answers it got and is holding.
pub struct SlowRelay {
    pub url: String,
    answered: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    _task: AbortOnDrop,
}

impl SlowRelay {
    pub async fn start(target: &str, delay: Duration) -> SlowRelay {
        use hyper::service::service_fn;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (count, target) = (answered.clone(), target.to_owned());
        let task = AbortOnDrop(tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (count, target) = (count.clone(), target.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                        let (count, target) = (count.clone(), target.clone());
                        async move {
                            let (parts, body) = request.into_parts();
                            let body = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
                            let mut forward = Request::builder().method(parts.method).uri(target.as_str());
                            for (name, value) in &parts.headers {
                                if name != http::header::HOST {
                                    forward = forward.header(name, value);
                                }
                            }
                            let reply = send(forward.body(Full::new(body)).unwrap()).await;
                            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            tokio::time::sleep(delay).await;
                            let mut response = hyper::Response::new(Full::new(reply.body));
                            *response.status_mut() = http::StatusCode::from_u16(reply.status).unwrap();
                            *response.headers_mut() = reply.headers;
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        }));
        SlowRelay { url, answered, _task: task }
    }

    /// How many answers the relay got from its target (and holds, or has passed on).
    pub fn answered(&self) -> usize {
        self.answered.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The shim's `/metrics` text (checked to be OpenMetrics).
pub async fn metrics_text(shim: &Process) -> String {
    let request = http::Request::builder()
        .uri(format!("{}/metrics", shim.url))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let reply = send(request).await;
    assert_eq!(reply.status, 200);
    assert!(reply.header("content-type").unwrap().contains("openmetrics-text"));
    reply.text()
}

/// The value of one exact series (name and labels) in a metrics text.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series).and_then(|rest| rest.trim().split(' ').next()?.parse().ok()))
}
