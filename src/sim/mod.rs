//! `sora-sim`: an emulator of the session-based Sora API, for tests, demos and users without a
//! Sora licence.
//!
//! It serves the Sora API targets the shim relies on (`POST /` with `x-sora-target`), a control
//! plane under `/sim/` (connect/disconnect clients, inspect state and the request journal, inject
//! faults) and sends `session.*`, `archive.available` and `recording.report` webhooks.
//!
//! With [`SimOptions::legacy`] it also serves the removed legacy recording API (`Sora_20161101.*`)
//! with legacy Sora's semantics, as an oracle to compare the shim against.

mod api;
mod clock;
mod control;
mod emulator;
mod faults;
mod journal;
mod legacy;
mod options;
mod payloads;
mod reply;
mod state;
mod views;
mod webhooks;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use tokio::net::TcpListener;

use crate::body::Body;
use crate::server::{self, ServeOptions};
use emulator::Emulator;
use webhooks::{WebhookUrls, Webhooks};

/// How often due expiries and lingers are applied even when no request arrives.
const TICK_INTERVAL: Duration = Duration::from_millis(100);

/// The `error_type` Sora is assumed to answer when a channel has no session.
pub const DEFAULT_NO_SESSION_ERROR: &str = "SESSION-NOT-FOUND";

/// How the emulator behaves.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// Where `session.created` / `session.destroyed` go; `None` sends none.
    pub session_webhook_url: Option<String>,
    /// Where `archive.available` / `recording.report` go; `None` sends none.
    pub event_webhook_url: Option<String>,
    /// How long a session outlives its last connection, waiting for a rejoin.
    pub session_linger: Duration,
    /// The `error_type` answered when a channel has no session.
    pub no_session_error: String,
    /// Also serve the legacy recording API (`Sora_20161101.*`) as legacy Sora did.
    pub legacy: bool,
    /// `user:password` sent as HTTP Basic credentials with every webhook.
    pub webhook_basic_auth: Option<String>,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            session_webhook_url: None,
            event_webhook_url: None,
            session_linger: Duration::ZERO,
            no_session_error: DEFAULT_NO_SESSION_ERROR.to_owned(),
            legacy: false,
            webhook_basic_auth: None,
        }
    }
}

/// Serves the emulator on `listener` until `shutdown` resolves.
pub async fn run(listener: TcpListener, options: SimOptions, shutdown: impl Future<Output = ()>) {
    let (webhooks, webhook_worker) =
        Webhooks::start(options.session_webhook_url.clone(), options.event_webhook_url.clone());
    webhooks.set_urls(WebhookUrls { basic_auth: options.webhook_basic_auth.clone(), ..webhooks.urls() });
    let emulator = Arc::new(Emulator::new(options, webhooks));
    let ticker = tokio::spawn(tick_forever(Arc::clone(&emulator)));
    let service = tower::service_fn(move |request: Request<Incoming>| {
        let emulator = Arc::clone(&emulator);
        async move { Ok::<_, Infallible>(route(&emulator, request).await) }
    });
    let serve_options = ServeOptions { shutdown_grace: Duration::from_secs(2), ..ServeOptions::default() };
    server::serve(listener, service, serve_options, shutdown).await;
    ticker.abort();
    webhook_worker.abort();
}

/// `/sim/...` is the control plane; every other path is the Sora API.
async fn route(emulator: &Arc<Emulator>, request: Request<Incoming>) -> Response<Body> {
    if request.uri().path().starts_with("/sim/") {
        control::handle(emulator, request).await
    } else {
        api::handle(emulator, request).await
    }
}

async fn tick_forever(emulator: Arc<Emulator>) {
    let mut interval = tokio::time::interval(TICK_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        emulator.tick();
    }
}
