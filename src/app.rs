//! What every request handler shares: configuration, mappings, the order store, the upstream
//! and the webhook forwarder.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::Uri;

use crate::config::{Config, forward_url};
use crate::mappings::Mappings;
use crate::metrics::Metrics;
use crate::store::{SessionMapping, Store};
use crate::upstream::Upstream;
use crate::usage::Usage;
use crate::webhooks::forward::Forwarder;

/// Shared, read-only application state (the store and clients handle their own concurrency).
pub struct App {
    pub config: Config,
    pub mappings: Arc<Mappings>,
    pub store: Arc<dyn Store>,
    pub upstream: Upstream,
    pub forwarder: Forwarder,
    /// `session_webhook.forward_url`, parsed.
    pub session_forward: Option<Uri>,
    /// `event_webhook.forward_url`, parsed.
    pub event_forward: Option<Uri>,
    /// Everything `/metrics` shows.
    pub metrics: Arc<Metrics>,
    /// Translated calls by target and client.
    pub usage: Arc<Usage>,
    /// Session ↔ order links answered by the session webhook but not yet in the store; events
    /// for a very short session can arrive before the store write ends.
    pub pending_mappings: Mutex<HashMap<String, SessionMapping>>,
}

impl App {
    /// Assembles the state; `config` must have passed [`Config::validate`].
    /// `metrics` must be the registry `upstream` was built with.
    pub fn new(
        config: Config,
        mappings: Mappings,
        store: Arc<dyn Store>,
        upstream: Upstream,
        metrics: Arc<Metrics>,
    ) -> Result<Self, String> {
        let session_forward = config
            .session_webhook
            .forward_url
            .as_deref()
            .map(forward_url)
            .transpose()
            .map_err(|message| format!("session_webhook.forward_url: {message}"))?;
        let event_forward = config
            .event_webhook
            .forward_url
            .as_deref()
            .map(forward_url)
            .transpose()
            .map_err(|message| format!("event_webhook.forward_url: {message}"))?;
        let forwarder =
            Forwarder::new(Duration::from_millis(config.upstream.connect_timeout_ms), config.upstream.max_reply_bytes);
        forwarder.can_reach_all(&[
            ("session_webhook.forward_url", session_forward.as_ref()),
            ("event_webhook.forward_url", event_forward.as_ref()),
        ])?;
        Ok(Self {
            config,
            mappings: Arc::new(mappings),
            store,
            upstream,
            forwarder,
            session_forward,
            event_forward,
            metrics,
            usage: Arc::new(Usage::default()),
            pending_mappings: Mutex::new(HashMap::new()),
        })
    }
}

impl App {
    /// The legacy recording a session records for: a pending webhook answer, else the store.
    pub async fn session_mapping(
        &self,
        session_id: &str,
        upstream_recording_id: Option<&str>,
    ) -> Result<Option<SessionMapping>, crate::store::StoreError> {
        let pending =
            self.pending_mappings.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get(session_id).cloned();
        match pending {
            Some(mapping) => Ok(Some(mapping)),
            None => self.store.session_mapping(session_id, upstream_recording_id).await,
        }
    }
}

/// The application state in force (a reload may replace it).
pub fn current(live: &std::sync::RwLock<Arc<App>>) -> Arc<App> {
    Arc::clone(&live.read().unwrap_or_else(|poisoned| poisoned.into_inner()))
}

/// Sleeps until `interval_ms(app in force)` has passed since `since`, looking at the app again at
/// least every 250 ms, so a reload that shortens an interval applies at once, not after the old one.
pub async fn sleep_until_due(
    live: &std::sync::RwLock<Arc<App>>,
    since: tokio::time::Instant,
    interval_ms: fn(&App) -> u64,
) {
    loop {
        let due = since + Duration::from_millis(interval_ms(&current(live)));
        let now = tokio::time::Instant::now();
        if now >= due {
            return;
        }
        tokio::time::sleep((due - now).min(Duration::from_millis(250))).await;
    }
}

/// Unix time in whole seconds, the unit of every legacy timestamp.
pub fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs() as i64)
}
