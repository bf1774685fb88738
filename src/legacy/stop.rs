//! StopRecording: the order goes first (durably), then the upstream is asked to stop the
//! channel's recording. The reply never waits for files or webhooks.

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

    // The order is gone whatever the upstream says now; a recording left running by an
    // unreachable upstream is the reconciler's to stop.
    match stop_upstream(app, &channel_id, caller_headers).await {
        Ok(()) => {
            if let Err(error) = app.store.finish_stopped_order(&order.recording_id, now).await {
                tracing::warn!(%channel_id, %error, "could not finish the stopped order; the reconciler will");
            }
        }
        Err(error) => tracing::warn!(
            %channel_id, recording_id = %order.recording_id, %error,
            "upstream stop failed; the order is stopped and the reconciler will stop the recording"
        ),
    }
    Ok(json!({ "channel_id": channel_id }))
}

/// Asks the upstream to stop recording the channel. `Ok` means it no longer records it (stopped
/// now, or there was no session or no recording).
pub async fn stop_upstream(app: &App, channel_id: &str, caller_headers: &HeaderMap) -> Result<(), ShimError> {
    let upstream = &app.mappings.upstream;
    let target = &upstream.targets.stop_recording;
    let reply =
        app.upstream.call_json("stop_recording", target, &json!({ "channel_id": channel_id }), caller_headers).await?;
    if reply.status == StatusCode::OK {
        return Ok(());
    }
    match reply.error_type().and_then(|name| upstream.classify(&name)) {
        Some(UpstreamErrorClass::NoSession | UpstreamErrorClass::NotRecording) => Ok(()),
        Some(UpstreamErrorClass::ClusterMinority) => Err(ShimError::NotClusterMajority),
        _ => {
            if reply.status.is_client_error() {
                app.metrics.upstream_error("stop_recording", "error");
            }
            Err(ShimError::UpstreamError(format!("{target} answered {} {}", reply.status, reply.excerpt())))
        }
    }
}
