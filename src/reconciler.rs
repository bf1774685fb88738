//! The reconciler (contract §4.1): a background loop that makes the upstream match the orders.
//!
//! Webhooks can be missed (the shim restarted while a session was created, the upstream was
//! briefly down, the webhook is misconfigured). Every `reconciler.interval_ms` it lists the
//! upstream sessions once and
//! - starts recording in every session whose channel has an active order but no recording;
//! - stops recording in sessions the shim started for an order that has since been stopped;
//! - ends legs whose session is gone, and sweeps expired and finished orders from the store.
//!
//! It never touches a recording it did not start (no leg, no stop). Every action is idempotent
//! (an upstream "already recording" / "not recording" answer counts as done), so several shim
//! replicas may run it against one store at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use serde_json::Value;

use crate::app::{App, now_secs};
use crate::error::ShimError;
use crate::legacy::archiving::array_reply;
use crate::legacy::start::start_upstream;
use crate::legacy::stop::stop_upstream;

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pass {
    pub started: usize,
    pub stopped: usize,
    pub legs_ended: usize,
    pub swept: usize,
}

/// Runs passes forever, the first one at once, each with the application state in force then
/// (a reload may replace it).
pub async fn run(live: Arc<std::sync::RwLock<Arc<App>>>) {
    let current = || Arc::clone(&live.read().unwrap_or_else(|poisoned| poisoned.into_inner()));
    loop {
        let app = current();
        match pass(&app).await {
            Ok(pass) if pass != Pass::default() => tracing::info!(
                started = pass.started,
                stopped = pass.stopped,
                legs_ended = pass.legs_ended,
                swept = pass.swept,
                "reconciler pass"
            ),
            Ok(_) => tracing::trace!("reconciler pass: nothing to do"),
            Err(error) => tracing::warn!(%error, "reconciler pass skipped"),
        }
        tokio::time::sleep(Duration::from_millis(app.config.reconciler.interval_ms)).await;
    }
}

/// One session as the reconciler sees it.
struct LiveSession {
    channel_id: String,
    recording: bool,
    /// The upstream id of the recording running now, when the upstream says.
    recording_id: Option<String>,
}

/// One reconciliation pass.
pub async fn pass(app: &App) -> Result<Pass, ShimError> {
    let mut done = Pass::default();
    let now = now_secs();
    let upstream = &app.mappings.upstream;
    let no_headers = HeaderMap::new();

    let reply = app
        .upstream
        .call_json("list_sessions", &upstream.targets.list_sessions, &upstream.list_request_body, &no_headers)
        .await?;
    let sessions: HashMap<String, LiveSession> = array_reply(app, &upstream.targets.list_sessions, reply)?
        .iter()
        .filter_map(|session| {
            let session_id = session.get("session_id")?.as_str()?.to_owned();
            let channel_id = session.get("channel_id")?.as_str()?.to_owned();
            let recording = session.get("recording").filter(|value| value.is_object());
            let recording_id = recording.and_then(|r| r.get("recording_id")).and_then(Value::as_str).map(str::to_owned);
            Some((session_id, LiveSession { channel_id, recording: recording.is_some(), recording_id }))
        })
        .collect();

    // Start: sessions that do not record and whose channel has an active order (looked up per
    // such session, so a pass costs what the sessions cost, however many orders wait).
    for (session_id, session) in &sessions {
        if session.recording {
            continue;
        }
        let Some(order) = app.store.active_order(&session.channel_id, now).await? else { continue };
        if app.store.is_vetoed(session_id).await? {
            continue;
        }
        match start_upstream(app, &order, now, &no_headers).await {
            Ok(()) => {
                tracing::info!(channel_id = %session.channel_id, %session_id, recording_id = %order.recording_id,
                    "reconciler started a missed recording");
                done.started += 1;
            }
            Err(error) => {
                tracing::warn!(channel_id = %session.channel_id, %error, "reconciler could not start a recording")
            }
        }
    }

    // Legs: gone sessions end; live recordings of stopped orders are stopped.
    for open in app.store.open_legs().await? {
        match sessions.get(&open.leg.session_id) {
            None => {
                done.legs_ended += app.store.end_session_legs(&open.leg.session_id, now).await?.len();
            }
            Some(session) if open.order_stopped => {
                // A different recording than the one the shim started (a native one begun
                // since) is not the shim's to stop.
                let ours = match (&open.leg.upstream_recording_id, &session.recording_id) {
                    (Some(started), Some(running)) => started == running,
                    _ => true,
                };
                if session.recording && ours {
                    if let Err(error) = stop_upstream(app, &open.channel_id, &no_headers).await {
                        tracing::warn!(channel_id = %open.channel_id, %error, "reconciler could not stop a recording");
                        continue;
                    }
                    tracing::info!(channel_id = %open.channel_id, session_id = %open.leg.session_id,
                        recording_id = %open.leg.recording_id, "reconciler stopped the recording of a stopped order");
                    done.stopped += 1;
                }
                app.store.finish_stopped_order(&open.leg.recording_id, now).await?;
            }
            Some(_) => {}
        }
    }

    done.swept = app.store.sweep(now).await?;
    for (action, count) in
        [("started", done.started), ("stopped", done.stopped), ("legs_ended", done.legs_ended), ("swept", done.swept)]
    {
        app.metrics.reconciler(action, count);
    }
    Ok(done)
}
