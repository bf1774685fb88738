//! StopRecording: the order goes first (durably), then the upstream is asked to stop the
//! channel's recording when the shim started one for it. The reply never waits for files or
//! webhooks.

use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::sessions::{leg_owns, live_sessions};
use crate::app::{App, now_secs};
use crate::error::ShimError;
use crate::mappings::UpstreamErrorClass;

/// Runs the order/store, upstream-call and map-reply phases of a StopRecording.
pub async fn stop(app: &App, channel_id: String, caller_headers: &HeaderMap) -> Result<Value, ShimError> {
    let now = now_secs();
    let stopped = app.store.stop_order(&channel_id, now).await?;
    let Some(order) = stopped else {
        return Err(ShimError::NotStartedRecording(channel_id));
    };

    stop_recordings_of(app, &order.recording_id, &channel_id, caller_headers, now).await;
    Ok(json!({ "channel_id": channel_id }))
}

/// After an order was stopped (or withdrawn): stops the recording the shim switched on for it,
/// if one runs now. The upstream's stop is channel-wide, so the session's running recording is
/// checked against the order's legs first (see [`leg_owns`]): a recording the shim did not start
/// (a native one, also one begun in a session after the shim's ended there) is never stopped.
/// A webhook leg learns its recording's upstream id here, so later events of another recording
/// in that session are not taken for the legacy one. Whatever is left (a recording whose leg
/// write was lost or is still under way, one that begins after this call) is the reconciler's.
pub async fn stop_recordings_of(app: &App, recording_id: &str, channel_id: &str, caller_headers: &HeaderMap, now: i64) {
    let legs = match app.store.legs(recording_id).await {
        Ok(legs) => legs.into_iter().filter(|leg| leg.ended_at.is_none()).collect::<Vec<_>>(),
        Err(error) => {
            tracing::warn!(%channel_id, %recording_id, %error, "could not read the order's legs; the reconciler will stop its recording");
            return;
        }
    };
    if legs.is_empty() {
        tracing::info!(%channel_id, %recording_id, "stopped an order with no recording known to the shim");
        return;
    }
    let sessions = match live_sessions(app).await {
        Ok(sessions) => sessions,
        Err(error) => {
            tracing::warn!(%channel_id, %recording_id, %error, "could not list sessions; the reconciler will stop the recording");
            return;
        }
    };
    let mut running = None;
    for leg in &legs {
        let Some(session) = sessions.get(&leg.session_id).filter(|session| session.channel_id == channel_id) else {
            continue;
        };
        if leg_owns(leg, session) {
            if let Some(upstream_id) = session.recording.as_deref().filter(|id| !id.is_empty())
                && leg.upstream_recording_id.is_none()
                && let Err(error) = app.store.bind_upstream_recording(recording_id, &leg.session_id, upstream_id).await
            {
                tracing::warn!(%channel_id, %error, "could not name the recording of a leg");
            }
            running = Some(leg.session_id.clone());
        }
    }
    let Some(session_id) = running else {
        // Nothing of the shim's records now; Sora may still begin the recording a session webhook
        // answer asked for, so the order stays (stopped) for the reconciler to watch.
        tracing::info!(%channel_id, %recording_id, "no recording of this order runs now");
        return;
    };
    match stop_upstream(app, channel_id, caller_headers).await {
        Ok(StopOutcome::Stopped) => {
            tracing::info!(%channel_id, %recording_id, %session_id, "recording stopped");
            if let Err(error) = app.store.finish_stopped_order(recording_id, now).await {
                tracing::warn!(%channel_id, %error, "could not finish the stopped order; the reconciler will");
            }
        }
        Ok(StopOutcome::NothingRecording) => {}
        Err(error) => tracing::warn!(
            %channel_id, %recording_id, %error,
            "upstream stop failed; the order is stopped and the reconciler will stop the recording"
        ),
    }
}

/// What an upstream stop found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopOutcome {
    /// A recording was running and is stopped now.
    Stopped,
    /// There was no session, or it did not record.
    NothingRecording,
}

/// Asks the upstream to stop recording the channel. `Ok` means it no longer records it.
pub async fn stop_upstream(app: &App, channel_id: &str, caller_headers: &HeaderMap) -> Result<StopOutcome, ShimError> {
    let upstream = &app.mappings.upstream;
    let target = &upstream.targets.stop_recording;
    let reply =
        app.upstream.call_json("stop_recording", target, &json!({ "channel_id": channel_id }), caller_headers).await?;
    if reply.status == StatusCode::OK {
        return Ok(StopOutcome::Stopped);
    }
    match reply.error_type().and_then(|name| upstream.classify(&name)) {
        Some(UpstreamErrorClass::NoSession | UpstreamErrorClass::NotRecording) => Ok(StopOutcome::NothingRecording),
        Some(UpstreamErrorClass::ClusterMinority) => Err(ShimError::NotClusterMajority),
        _ => {
            if reply.status.is_client_error() {
                app.metrics.upstream_error("stop_recording", "error");
            }
            Err(ShimError::UpstreamError(format!("{target} answered {} {}", reply.status, reply.excerpt())))
        }
    }
}
