//! How long the session webhook takes to answer `session.created`, with 0 and with N active
//! orders in the store (N = 10,000 unless given as the first argument). The real stack is served
//! on loopback in this process; a keep-alive client sends half the events for channels with an
//! order (the reply gains the recording keys) and half for channels without one.
//!
//! Run: `cargo bench --bench session_webhook [-- N]`. Prints percentiles; asserts nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sora_legacy_shim::app::{App, now_secs};
use sora_legacy_shim::config::Config;
use sora_legacy_shim::mappings::Mappings;
use sora_legacy_shim::server::{ServeOptions, serve, stack};
use sora_legacy_shim::store::Order;
use sora_legacy_shim::store::sqlite::SqliteStore;
use sora_legacy_shim::upstream::Upstream;

const REQUESTS: usize = 5_000;
const WARM_UP: usize = 500;

#[tokio::main]
async fn main() {
    let orders: usize = std::env::args().skip(1).find_map(|arg| arg.parse().ok()).unwrap_or(10_000);
    println!("session webhook reply time, {REQUESTS} requests after {WARM_UP} warm-up, keep-alive, loopback");
    println!("{:>10} {:>10} {:>10} {:>10} {:>10} {:>10}", "orders", "p50 µs", "p90 µs", "p99 µs", "max µs", "req/s");
    for count in [0, orders] {
        let (p50, p90, p99, max, rate) = measure(count).await;
        println!("{count:>10} {p50:>10} {p90:>10} {p99:>10} {max:>10} {rate:>10.0}");
    }
}

async fn measure(count: usize) -> (u128, u128, u128, u128, f64) {
    let dir = std::env::temp_dir().join(format!("shim-bench-{}", ulid::Ulid::generate()));
    let store = SqliteStore::open(&dir.join("orders.db"), Duration::from_secs(5)).unwrap();
    let now = now_secs();
    let orders: Vec<Order> = (0..count)
        .map(|i| Order {
            recording_id: ulid::Ulid::generate().to_string(),
            channel_id: format!("channel-{i:07}"),
            created_at: now,
            expire_time: 0,
            expired_at: now,
            split_duration: None,
            split_only: false,
            metadata: Some(serde_json::json!({"n": i})),
        })
        .collect();
    store.insert_many(orders).await.unwrap();

    let mut config = Config::default();
    config.upstream.url = Some("http://127.0.0.1:9".into());
    let metrics = Arc::new(sora_legacy_shim::metrics::Metrics::default());
    let upstream = Upstream::new("http://127.0.0.1:9".parse().unwrap(), &config.upstream, Arc::clone(&metrics));
    let app = Arc::new(App::new(config, Mappings::built_in(), Arc::new(store), upstream, metrics).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, stack::build(app), ServeOptions::default(), async {
        let _ = stopped.await;
    }));

    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let url: http::Uri = format!("http://{address}/hooks/session").parse().unwrap();
    let mut latencies = Vec::with_capacity(REQUESTS);
    let begun = Instant::now();
    for i in 0..WARM_UP + REQUESTS {
        let channel =
            if i % 2 == 0 && count > 0 { format!("channel-{:07}", (i * 7919) % count) } else { format!("nobody-{i}") };
        let event =
            serde_json::json!({"type": "session.created", "channel_id": channel, "session_id": format!("S{i}")});
        let request = http::Request::post(url.clone()).body(Full::new(Bytes::from(event.to_string()))).unwrap();
        let sent = Instant::now();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        response.into_body().collect().await.unwrap();
        if i >= WARM_UP {
            latencies.push(sent.elapsed().as_micros());
        }
    }
    let elapsed = begun.elapsed();
    let _ = stop.send(());
    let _ = server.await;
    let _ = std::fs::remove_dir_all(&dir);
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    (at(0.50), at(0.90), at(0.99), *latencies.last().unwrap(), (WARM_UP + REQUESTS) as f64 / elapsed.as_secs_f64())
}
