//! StopRecording: the order goes first (durably), then the upstream is asked to stop the
//! channel's recording. The reply never waits for files or webhooks.

use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::app::{App, now_secs};
use crate::error::ShimError;
use crate::mappings::UpstreamErrorClass;
use crate::store::StoreError;

/// Runs the order/store, upstream-call and map-reply phases of a StopRecording.
pub async fn stop(app: &App, channel_id: String, caller_headers: &HeaderMap) -> Result<Value, ShimError> {
    let now = now_secs();
    let stopped = app.store.stop_order(&channel_id, now).await.map_err(|error| match error {
        StoreError::ChannelBusy(channel) => ShimError::Internal(format!("stop reported a busy channel {channel:?}")),
        StoreError::Unavailable(detail) => ShimError::StoreUnavailable(detail),
    })?;
    let Some(order) = stopped else {
        return Err(ShimError::NotStartedRecording(channel_id));
    };

    // The order is gone whatever the upstream says now; a recording left running by an
    // unreachable upstream is the reconciler's to stop.
    let upstream = &app.mappings.upstream;
    let target = &upstream.targets.stop_recording;
    match app.upstream.call_json(target, &json!({ "channel_id": channel_id }), caller_headers).await {
        Ok(reply) if reply.status == StatusCode::OK => {}
        Ok(reply) => match reply.error_type().and_then(|name| upstream.classify(&name)) {
            Some(UpstreamErrorClass::NoSession | UpstreamErrorClass::NotRecording) => {}
            _ => tracing::warn!(
                %channel_id, recording_id = %order.recording_id, status = %reply.status, body = %reply.excerpt(),
                "upstream refused to stop the recording; the order is stopped anyway"
            ),
        },
        Err(error) => tracing::warn!(
            %channel_id, recording_id = %order.recording_id, %error,
            "upstream stop failed; the order is stopped and the reconciler will stop the recording"
        ),
    }
    Ok(json!({ "channel_id": channel_id }))
}
