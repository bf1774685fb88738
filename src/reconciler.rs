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

use http::HeaderMap;

use crate::app::{App, now_secs};
use crate::error::ShimError;
use crate::legacy::sessions::{LiveSession, leg_owns, live_sessions};
use crate::legacy::start::start_upstream;
use crate::legacy::stop::stop_upstream;
use crate::store::{Leg, OpenLeg, StoppedOrder};

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pass {
    pub started: usize,
    pub adopted: usize,
    pub stopped: usize,
    pub legs_ended: usize,
    pub swept: usize,
}

/// How many passes in a row must miss a session before the shim believes it is gone. One list
/// that lacks a session (a glitch, a node answering for itself) must not make the shim forget a
/// recording it may still have to stop.
const MISSES_TO_FORGET: u32 = 2;

/// How long a leg's session may stay unlisted before misses count: the session webhook answers
/// before Sora creates (and lists) the session, and the answer may still be on its way.
const LEG_GRACE_SECS: i64 = 10;

/// What the reconciler remembers between passes.
#[derive(Debug, Default)]
pub struct Memory {
    /// Sessions (or channels, for stopped orders) missing from the last passes, and how often.
    misses: HashMap<String, u32>,
}

impl Memory {
    /// Counts one more miss of `key`; true once it has been missed often enough.
    fn missed(&mut self, key: &str) -> bool {
        let count = self.misses.entry(key.to_owned()).or_insert(0);
        *count += 1;
        *count >= MISSES_TO_FORGET
    }

    fn seen(&mut self, key: &str) {
        self.misses.remove(key);
    }
}

/// Runs passes forever, the first one at once, each with the application state in force then
/// (a reload may replace it).
pub async fn run(live: Arc<std::sync::RwLock<Arc<App>>>) {
    let mut memory = Memory::default();
    loop {
        let began = tokio::time::Instant::now();
        let app = crate::app::current(&live);
        match pass(&app, &mut memory).await {
            Ok(pass) if pass != Pass::default() => tracing::info!(
                started = pass.started,
                adopted = pass.adopted,
                stopped = pass.stopped,
                legs_ended = pass.legs_ended,
                swept = pass.swept,
                "reconciler pass"
            ),
            Ok(_) => tracing::trace!("reconciler pass: nothing to do"),
            Err(error) => tracing::warn!(%error, "reconciler pass skipped"),
        }
        crate::app::sleep_until_due(&live, began, |app| app.config.reconciler.interval_ms).await;
    }
}

/// One reconciliation pass.
pub async fn pass(app: &App, memory: &mut Memory) -> Result<Pass, ShimError> {
    let mut done = Pass::default();
    let now = now_secs();
    let no_headers = HeaderMap::new();

    let sessions = live_sessions(app).await?;
    let open = app.store.open_legs().await?;

    // Start or adopt: sessions of channels with an active order (looked up per session, so a
    // pass costs what the sessions cost, however many orders wait). A session that records with
    // no leg was switched on by a webhook reply whose leg never reached the store: adopt it, so
    // Stop and the event webhook know it.
    for (session_id, session) in &sessions {
        let Some(order) = app.store.active_order(&session.channel_id, now).await? else { continue };
        match &session.recording {
            None => {
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
            Some(running) => {
                let leg = open
                    .iter()
                    .find(|leg| leg.leg.session_id == *session_id && leg.leg.recording_id == order.recording_id);
                if let Some(leg) = leg {
                    // A leg the session webhook opened does not know its recording's upstream id:
                    // name it now, so a later native recording in this session keeps its own events.
                    if leg.leg.upstream_recording_id.is_none()
                        && !running.is_empty()
                        && session.recording_started.is_none_or(|started| started >= leg.leg.started_at - 1)
                    {
                        app.store.bind_upstream_recording(&order.recording_id, session_id, running).await?;
                    }
                } else if session.recording_started.is_none_or(|started| started > order.created_at) {
                    let leg = Leg {
                        recording_id: order.recording_id.clone(),
                        session_id: session_id.clone(),
                        upstream_recording_id: (!running.is_empty()).then(|| running.clone()),
                        started_at: now,
                        ended_at: None,
                    };
                    app.store.record_leg(&leg).await?;
                    tracing::info!(channel_id = %session.channel_id, %session_id, "reconciler adopted a recording without a leg");
                    done.adopted += 1;
                } else {
                    // Running since before the order, or since its very second (whole seconds cannot
                    // tell a native recording begun then from the shim's): not the shim's to adopt,
                    // and so never the legacy Stop's to end. A stopped order's is handled below.
                    tracing::debug!(channel_id = %session.channel_id, %session_id, "session records since before its order; left alone");
                }
            }
        }
    }

    // Stopped orders: stop what still records for them, then forget them.
    for stopped in app.store.stopped_orders().await? {
        let StoppedOrder { recording_id, channel_id, .. } = &stopped;
        let recording_here =
            sessions.iter().any(|(session_id, session)| records_for_stopped(&stopped, session_id, session, &open));
        let key = format!("stopped:{recording_id}");
        if recording_here {
            memory.seen(&key);
            if let Err(error) = stop_upstream(app, channel_id, &no_headers).await {
                tracing::warn!(%channel_id, %error, "reconciler could not stop a recording");
                continue;
            }
            tracing::info!(%channel_id, %recording_id, "reconciler stopped the recording of a stopped order");
            done.stopped += 1;
            app.store.finish_stopped_order(recording_id, now).await?;
            // A newer order on the channel (started while the old recording still ran) records
            // from now on, not one pass later.
            if let Some(order) = app.store.active_order(channel_id, now).await? {
                match start_upstream(app, &order, now, &no_headers).await {
                    Ok(()) => done.started += 1,
                    Err(error) => tracing::warn!(%channel_id, %error, "reconciler could not start the newer order"),
                }
            }
        } else if !young(&open, recording_id, now) && memory.missed(&key) {
            app.store.finish_stopped_order(recording_id, now).await?;
            memory.seen(&key);
        }
    }

    // Legs whose session is gone (missed by consecutive passes) end.
    for leg in &open {
        if sessions.contains_key(&leg.leg.session_id) {
            memory.seen(&leg.leg.session_id);
        } else if now - leg.leg.started_at >= LEG_GRACE_SECS && memory.missed(&leg.leg.session_id) {
            done.legs_ended += app.store.end_session_legs(&leg.leg.session_id, now).await?.len();
            memory.seen(&leg.leg.session_id);
        }
    }

    done.swept = app.store.sweep(now).await?;
    for (action, count) in [
        ("started", done.started),
        ("adopted", done.adopted),
        ("stopped", done.stopped),
        ("legs_ended", done.legs_ended),
        ("swept", done.swept),
    ] {
        app.metrics.reconciler(action, count);
    }
    Ok(done)
}

/// Whether the recording running in `session` may still be one the shim started for the
/// `stopped` order. With legs: the one a leg of it names. Without any (its leg write was lost, or
/// an upstream start's outcome was never known): a recording on its channel that no other order's
/// leg claims and that began after the second the order was made and before the second of the
/// Stop — one begun before (or in the same second) may be a native one, one begun since a new
/// order's or a native one; neither is ever touched.
fn records_for_stopped(stopped: &StoppedOrder, session_id: &str, session: &LiveSession, open: &[OpenLeg]) -> bool {
    if session.channel_id != stopped.channel_id || session.recording.is_none() {
        return false;
    }
    let mut legs = open.iter().filter(|leg| leg.leg.recording_id == stopped.recording_id).peekable();
    if legs.peek().is_some() {
        return legs.any(|leg| leg.leg.session_id == session_id && leg_owns(&leg.leg, session));
    }
    let claimed =
        open.iter().any(|leg| leg.leg.session_id == session_id && !leg.order_stopped && leg_owns(&leg.leg, session));
    let began_in_its_life =
        session.recording_started.is_none_or(|started| started > stopped.created_at && started < stopped.stopped_at);
    !claimed && began_in_its_life
}

/// Whether the order has a leg too recent to judge by its session's absence (see [`LEG_GRACE_SECS`]).
fn young(open: &[OpenLeg], recording_id: &str, now: i64) -> bool {
    open.iter().any(|leg| leg.leg.recording_id == recording_id && now - leg.leg.started_at < LEG_GRACE_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stopped() -> StoppedOrder {
        StoppedOrder { recording_id: "A".into(), channel_id: "c".into(), created_at: 900, stopped_at: 1_000 }
    }

    fn session(started: Option<i64>) -> LiveSession {
        LiveSession { channel_id: "c".into(), recording: Some("U1".into()), recording_started: started }
    }

    fn open_leg(recording_id: &str, session_id: &str, order_stopped: bool) -> OpenLeg {
        OpenLeg {
            leg: Leg {
                recording_id: recording_id.into(),
                session_id: session_id.into(),
                upstream_recording_id: Some("U1".into()),
                started_at: 900,
                ended_at: None,
            },
            channel_id: "c".into(),
            order_stopped,
        }
    }

    #[test]
    fn a_legless_stopped_order_claims_only_unclaimed_recordings_begun_before_its_stop() {
        assert!(records_for_stopped(&stopped(), "S", &session(Some(999)), &[]));
        assert!(records_for_stopped(&stopped(), "S", &session(None), &[]), "no start time: may be its own");
        assert!(!records_for_stopped(&stopped(), "S", &session(Some(1_000)), &[]), "begun in the second of the Stop");
        assert!(!records_for_stopped(&stopped(), "S", &session(Some(1_005)), &[]), "begun after the Stop");
        assert!(!records_for_stopped(&stopped(), "S", &session(Some(899)), &[]), "begun before the order: native");
        assert!(!records_for_stopped(&stopped(), "S", &session(Some(900)), &[]), "begun in the second of the order");
        assert!(records_for_stopped(&stopped(), "S", &session(Some(901)), &[]));
        let other = [open_leg("B", "S", false)];
        assert!(!records_for_stopped(&stopped(), "S", &session(Some(999)), &other), "another order's recording");
        let elsewhere = LiveSession { channel_id: "d".into(), ..session(Some(999)) };
        assert!(!records_for_stopped(&stopped(), "S", &elsewhere, &[]));
        let idle = LiveSession { recording: None, ..session(Some(999)) };
        assert!(!records_for_stopped(&stopped(), "S", &idle, &[]));
    }

    #[test]
    fn a_stopped_order_with_legs_claims_what_its_legs_name() {
        let legs = [open_leg("A", "S", true)];
        assert!(records_for_stopped(&stopped(), "S", &session(Some(1_005)), &legs));
        assert!(!records_for_stopped(&stopped(), "T", &session(Some(999)), &legs));
        let native = LiveSession { recording: Some("U2".into()), ..session(Some(999)) };
        assert!(!records_for_stopped(&stopped(), "S", &native, &legs), "a native recording begun since");
    }
}
