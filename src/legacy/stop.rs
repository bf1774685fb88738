//! StopRecording: the order goes first (durably), then the upstream is asked to stop the
//! channel's recording when the shim started one for it. The reply never waits for files or
//! webhooks.

use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

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

/// After an order was stopped (or withdrawn): asks the upstream to stop the channel's recording
/// only when the shim switched one on for this order (an open leg, or a session webhook reply
/// whose leg is still being written). A recording on the channel that it did not start (a
/// native one) is not the legacy client's to stop. Whatever is left (a recording whose leg
/// write was lost, one that begins after this call) is the reconciler's.
pub async fn stop_recordings_of(app: &App, recording_id: &str, channel_id: &str, caller_headers: &HeaderMap, now: i64) {
    if !may_record(app, recording_id).await {
        tracing::info!(%channel_id, %recording_id, "stopped an order that recorded nothing");
        return;
    }
    match stop_upstream(app, channel_id, caller_headers).await {
        // Only a recording actually stopped lets the order go at once: "nothing records" may mean
        // Sora has not yet begun the recording a session webhook reply asked for.
        Ok(StopOutcome::Stopped) => {
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

/// Whether the shim may have switched a recording on for the order: an open leg, or a session
/// webhook reply of this process whose leg is not written yet.
async fn may_record(app: &App, recording_id: &str) -> bool {
    let pending = app
        .pending_mappings
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .values()
        .any(|mapping| mapping.recording_id == recording_id);
    // When the legs cannot be read, asking the upstream is the safe side.
    pending || app.store.legs(recording_id).await.map_or(true, |legs| legs.iter().any(|leg| leg.ended_at.is_none()))
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
