//! `POST /hooks/event`: Sora's event webhook, forwarded to `event_webhook.forward_url` with
//! recording events put back into legacy shape.
//!
//! Legacy back-ends match `recording.report` / `archive.available` by the `recording_id` that
//! StartRecording returned and read `metadata`. Under the session API every session's recording
//! has its own id and carries `recording_metadata`. For a recording event whose `session_id` the
//! shim recorded for a legacy order: `recording_id` becomes the legacy id (the upstream id is kept
//! as `session_recording_id`) and `recording_metadata` becomes `metadata`, exactly as the client
//! sent it. Every other event is forwarded byte for byte. The forward target's status and body
//! go back to Sora.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use serde_json::{Map, Value};

use crate::app::App;
use crate::body::{Body, BoxError, full, json_response};
use crate::error::{ShimError, legacy_error_response};
use crate::legacy::parse::read_body;
use crate::mappings::EventWebhookKeys;
use crate::routing::ReplyOrigin;
use crate::store::SessionMapping;

/// Key under which the upstream's own recording id is kept.
pub const SESSION_RECORDING_ID: &str = "session_recording_id";
/// Key under which legacy back-ends read the recording's metadata.
pub const LEGACY_METADATA_KEY: &str = "metadata";
/// Wrapper the shim puts around non-object metadata on the way up.
pub const METADATA_WRAPPER: &str = "legacy_metadata";

/// What happened to one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventOutcome {
    /// A recording event of a legacy order, rewritten.
    Translated,
    /// A recording event (or unparsable body) the shim could not map; forwarded unchanged.
    Unmapped,
    /// Any other event; forwarded unchanged.
    Other,
}

impl EventOutcome {
    /// The metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            EventOutcome::Translated => "translated",
            EventOutcome::Unmapped => "unmapped",
            EventOutcome::Other => "other",
        }
    }
}

/// Answers one event webhook call.
pub async fn answer<B>(app: Arc<App>, request: Request<B>) -> Response<Body>
where
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    handle(&app, request).await.unwrap_or_else(|error| legacy_error_response(&error, &app.mappings.errors))
}

async fn handle<B>(app: &App, request: Request<B>) -> Result<Response<Body>, ShimError>
where
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    let (parts, body) = request.into_parts();
    let bytes = read_body(body, app.config.limits.max_webhook_body_bytes).await?;
    let (outgoing, outcome) = legacy_shape(app, &bytes).await?;
    app.metrics.events.get_or_create(&[("outcome", outcome.as_str())]).inc();
    tracing::debug!(?outcome, "event webhook");

    let Some(target) = &app.event_forward else {
        tracing::warn!("event received but event_webhook.forward_url is not set: nothing to forward it to");
        let mut response = json_response(StatusCode::OK, &Value::Object(Map::new()));
        response.extensions_mut().insert(ReplyOrigin::Translated);
        return Ok(response);
    };
    let deadline = Duration::from_millis(app.config.event_webhook.forward_timeout_ms);
    let forwarded = app
        .forwarder
        .post(target, &parts.headers, outgoing, deadline, app.config.event_webhook.forward_auth.as_ref())
        .await;
    super::forward::count_failure(&app.metrics, "event", &forwarded);
    let reply = forwarded?;
    if outcome == EventOutcome::Translated {
        tracing::info!(status = %reply.status, "recording event rewritten into legacy shape and forwarded");
    }
    let mut response = Response::new(full(reply.body));
    *response.status_mut() = reply.status;
    *response.headers_mut() = reply.headers;
    response.headers_mut().remove(http::header::CONTENT_LENGTH);
    response.extensions_mut().insert(ReplyOrigin::Passthrough);
    Ok(response)
}

/// The body to forward and what was done to it.
async fn legacy_shape(app: &App, bytes: &Bytes) -> Result<(Bytes, EventOutcome), ShimError> {
    let keys = &app.mappings.upstream.event_webhook;
    let Ok(Value::Object(mut event)) = serde_json::from_slice::<Value>(bytes) else {
        return Ok((bytes.clone(), EventOutcome::Unmapped));
    };
    let kind = event.get(&keys.type_key).and_then(Value::as_str).unwrap_or_default();
    if !keys.recording_events.iter().any(|name| name == kind) {
        return Ok((bytes.clone(), EventOutcome::Other));
    }
    let Some(session_id) = event.get(&keys.session_id).and_then(Value::as_str) else {
        return Ok((bytes.clone(), EventOutcome::Unmapped));
    };
    let upstream_recording_id = event.get(&keys.recording_id).and_then(Value::as_str);
    let Some(mapping) = app.session_mapping(session_id, upstream_recording_id).await? else {
        return Ok((bytes.clone(), EventOutcome::Unmapped));
    };
    // A session is one channel's: an event naming another channel (or a channel that is not a
    // string) is not this order's, whatever a session webhook once claimed (its legacy id and metadata must not reach that back-end).
    let channel = event.get(&keys.channel_id);
    if channel.is_some_and(|channel| channel.as_str() != Some(mapping.channel_id.as_str())) {
        tracing::warn!(
            event_channel = %channel.map(|value| value.to_string().chars().take(300).collect::<String>()).unwrap_or_default(),
            order_channel = ?mapping.channel_id,
            "recording event's channel is not its session's order's channel; forwarded unchanged"
        );
        return Ok((bytes.clone(), EventOutcome::Unmapped));
    }
    rewrite(&mut event, &mapping, keys);
    let rewritten =
        serde_json::to_vec(&Value::Object(event)).map_err(|error| ShimError::Internal(error.to_string()))?;
    Ok((Bytes::from(rewritten), EventOutcome::Translated))
}

/// Puts one recording event into legacy shape for `mapping`'s order.
pub fn rewrite(event: &mut Map<String, Value>, mapping: &SessionMapping, keys: &EventWebhookKeys) {
    if let Some(upstream_id) = event.remove(&keys.recording_id) {
        event.insert(SESSION_RECORDING_ID.to_owned(), upstream_id);
    }
    event.insert(keys.recording_id.clone(), Value::String(mapping.recording_id.clone()));
    let carried = event.remove(&keys.recording_metadata);
    let metadata = mapping.metadata.clone().or_else(|| carried.map(unwrap_metadata));
    if let Some(metadata) = metadata {
        event.insert(LEGACY_METADATA_KEY.to_owned(), metadata);
    }
}

/// `{"legacy_metadata": v}` → `v`; anything else as it is.
fn unwrap_metadata(value: Value) -> Value {
    match value {
        Value::Object(mut map) if map.len() == 1 && map.contains_key(METADATA_WRAPPER) => {
            map.remove(METADATA_WRAPPER).unwrap_or(Value::Null)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mappings::Mappings;
    use serde_json::json;

    fn mapping(metadata: Option<Value>) -> SessionMapping {
        SessionMapping { session_id: "S".into(), recording_id: "LEGACY".into(), channel_id: "c".into(), metadata }
    }

    fn event() -> Map<String, Value> {
        json!({"type": "recording.report", "recording_id": "UPSTREAM", "session_id": "S", "channel_id": "c",
               "recording_metadata": {"legacy_metadata": "r1"}})
        .as_object()
        .unwrap()
        .clone()
    }

    #[test]
    fn legacy_id_and_original_metadata() {
        let keys = Mappings::built_in().upstream.event_webhook;
        let mut text = event();
        rewrite(&mut text, &mapping(Some(json!("r1"))), &keys);
        assert_eq!(
            Value::Object(text),
            json!({"type": "recording.report", "recording_id": "LEGACY", "session_recording_id": "UPSTREAM",
                   "session_id": "S", "channel_id": "c", "metadata": "r1"})
        );
        let mut object = event();
        object.insert("recording_metadata".into(), json!({"legacy_metadata": 5, "other": 1}));
        rewrite(&mut object, &mapping(Some(json!({"legacy_metadata": 5, "other": 1}))), &keys);
        assert_eq!(object["metadata"], json!({"legacy_metadata": 5, "other": 1}));
    }

    #[test]
    fn without_stored_metadata_the_carried_one_is_unwrapped() {
        let keys = Mappings::built_in().upstream.event_webhook;
        let mut carried = event();
        rewrite(&mut carried, &mapping(None), &keys);
        assert_eq!(carried["metadata"], json!("r1"));
        let mut none = event();
        none.remove("recording_metadata");
        rewrite(&mut none, &mapping(None), &keys);
        assert!(!none.contains_key("metadata"));
    }
}
