//! `POST /hooks/session`: Sora's session webhook.
//!
//! On `session.created` for a channel with an active order, the reply gains `"recording": true`
//! plus the order's recording options (contract §5–6), so the new session records from its first
//! moment — that is how a legacy recording "started before anyone joined" begins. The reply only
//! reads the store; the leg is written after the answer. `session.destroyed` ends the leg and
//! keeps the order. With `session_webhook.forward_url`, the operator's own hook is called first
//! and its reply is the base the shim adds to.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use serde_json::{Map, Value, json};

use crate::app::{App, now_secs};
use crate::body::{Body, BoxError, full};
use crate::config::OnForwardError;
use crate::error::{ShimError, legacy_error_response};
use crate::legacy::parse::read_body;
use crate::legacy::session_request::recording_options;
use crate::legacy::stop::stop_recordings_of;
use crate::mappings::SessionWebhookKeys;
use crate::routing::ReplyOrigin;
use crate::store::{Leg, Order, SessionMapping, StoreError};

/// Longest session id the shim records (Sora's are 26-character ULIDs).
pub const MAX_SESSION_ID_BYTES: usize = 255;

/// Answers one session webhook call.
pub async fn answer<B>(app: Arc<App>, request: Request<B>) -> Response<Body>
where
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    handle(&app, request).await.unwrap_or_else(|error| legacy_error_response(&error, &app.mappings.errors))
}

/// The reply the shim builds on: the operator's hook reply, or `200 {}`.
struct BaseReply {
    status: StatusCode,
    headers: HeaderMap,
    body: Result<Map<String, Value>, Bytes>,
}

impl BaseReply {
    fn empty() -> Self {
        Self { status: StatusCode::OK, headers: HeaderMap::new(), body: Ok(Map::new()) }
    }
}

async fn handle<B>(app: &Arc<App>, request: Request<B>) -> Result<Response<Body>, ShimError>
where
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    let (parts, body) = request.into_parts();
    let bytes = read_body(body, app.config.limits.max_webhook_body_bytes).await?;
    let event: Option<Map<String, Value>> = serde_json::from_slice(&bytes).ok();

    let mut base = match &app.session_forward {
        None => {
            if event.is_none() {
                return Err(ShimError::InvalidJson("the session webhook body is not a JSON object".into()));
            }
            BaseReply::empty()
        }
        Some(target) => {
            let deadline = Duration::from_millis(app.config.session_webhook.forward_timeout_ms);
            let ignore = app.config.session_webhook.on_forward_error == OnForwardError::Ignore;
            let auth = app.config.session_webhook.forward_auth.as_ref();
            let forwarded = app.forwarder.post(target, &parts.headers, bytes.clone(), deadline, auth).await;
            super::forward::count_failure(&app.metrics, "session", &forwarded);
            match forwarded {
                Ok(reply) if reply.status.is_success() => {
                    let body = if reply.body.iter().all(u8::is_ascii_whitespace) {
                        Ok(Map::new())
                    } else {
                        serde_json::from_slice::<Map<String, Value>>(&reply.body).map_err(|_| reply.body.clone())
                    };
                    BaseReply { status: reply.status, headers: reply.headers, body }
                }
                Ok(reply) if !ignore => {
                    tracing::warn!(status = %reply.status, "the forwarded session webhook failed; answering Sora with its failure");
                    let mut response = Response::new(full(reply.body));
                    *response.status_mut() = reply.status;
                    *response.headers_mut() = reply.headers;
                    response.extensions_mut().insert(ReplyOrigin::Passthrough);
                    return Ok(response);
                }
                Err(error) if !ignore => return Err(error),
                failed => {
                    let detail = match failed {
                        Ok(reply) => format!("status {}", reply.status),
                        Err(error) => error.to_string(),
                    };
                    tracing::warn!(%detail, "the forwarded session webhook failed; answering anyway (on_forward_error = ignore)");
                    BaseReply::empty()
                }
            }
        }
    };

    if let Some(event) = &event {
        apply_event(app, event, &mut base).await?;
    }

    let mut headers = base.headers;
    headers.remove(header::CONTENT_LENGTH);
    let body = match base.body {
        Ok(map) => {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            Bytes::from(serde_json::to_vec(&Value::Object(map)).unwrap_or_default())
        }
        // The operator's hook answered something else: returned as it came, with its own type.
        Err(raw) => raw,
    };
    let mut response = Response::new(full(body));
    *response.status_mut() = base.status;
    *response.headers_mut() = headers;
    response.extensions_mut().insert(ReplyOrigin::Translated);
    Ok(response)
}

/// Acts on one session event: merges recording options on `created`, ends legs on `destroyed`.
async fn apply_event(app: &Arc<App>, event: &Map<String, Value>, base: &mut BaseReply) -> Result<(), ShimError> {
    let keys = &app.mappings.upstream.session_webhook;
    let text = |key: &str| event.get(key).and_then(Value::as_str).map(str::to_owned);
    let (Some(kind), Some(session_id)) = (text(&keys.type_key), text(&keys.session_id)) else {
        return Ok(());
    };
    if session_id.is_empty() || session_id.len() > MAX_SESSION_ID_BYTES {
        tracing::warn!(bytes = session_id.len(), "session webhook with an empty or oversized session_id ignored");
        return Ok(());
    }
    let now = now_secs();
    if kind == keys.created {
        let Some(channel_id) = text(&keys.channel_id) else { return Ok(()) };
        let order = app.store.active_order(&channel_id, now).await?;
        let Some(order) = order else { return Ok(()) };
        let Ok(reply) = &mut base.body else {
            tracing::warn!(%channel_id, "the operator's session webhook reply is not a JSON object; recording not added");
            return Ok(());
        };
        if !merge_recording(reply, &order, now, keys, &app.mappings.upstream.recording.format) {
            tracing::info!(%channel_id, "the operator's session webhook decided `recording` itself; left as is");
            // Remembered, so the reconciler does not overrule the operator later.
            let store = Arc::clone(&app.store);
            tokio::spawn(async move {
                if let Err(error) = store.veto_session(&session_id, now).await {
                    tracing::warn!(%error, %session_id, "could not remember the operator's recording decision");
                }
            });
            return Ok(());
        }
        if base.status == StatusCode::NO_CONTENT {
            // A 204 cannot carry the recording keys.
            base.status = StatusCode::OK;
        }
        tracing::info!(%channel_id, %session_id, recording_id = %order.recording_id, "session created: recording switched on");
        app.metrics.webhook_merges.inc();
        let store = Arc::clone(&app.store);
        let mapping = SessionMapping {
            session_id: session_id.clone(),
            recording_id: order.recording_id.clone(),
            channel_id: channel_id.clone(),
            metadata: order.metadata.clone(),
        };
        app.pending_mappings
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(session_id.clone(), mapping);
        let leg = Leg {
            recording_id: order.recording_id,
            session_id,
            upstream_recording_id: None,
            started_at: now,
            ended_at: None,
        };
        let channel_id = channel_id.clone();
        // Written after the answer: Sora is waiting for it before the session starts.
        let app_for_leg = Arc::clone(app);
        tokio::spawn(async move {
            let written = store.record_leg(&leg).await;
            app_for_leg
                .pending_mappings
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .remove(&leg.session_id);
            match written {
                Ok(()) => {}
                Err(StoreError::OrderGone(_)) => {
                    // Stopped between the lookup and now: undo the recording just switched on
                    // (the leg is kept for a stopped order). Sora starts it after reading the
                    // reply, so look once now and once a moment later; the reconciler does the rest.
                    for delay in [Duration::ZERO, Duration::from_secs(1)] {
                        tokio::time::sleep(delay).await;
                        stop_recordings_of(&app_for_leg, &leg.recording_id, &channel_id, &HeaderMap::new(), now_secs())
                            .await;
                    }
                }
                Err(error) => tracing::warn!(%error, session_id = %leg.session_id, "could not record the session leg"),
            }
        });
    } else if kind == keys.destroyed {
        let store = Arc::clone(&app.store);
        tokio::spawn(async move {
            match store.end_session_legs(&session_id, now).await {
                Ok(ended) if !ended.is_empty() => {
                    tracing::info!(%session_id, legs = ended.len(), "session destroyed: legs ended")
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, %session_id, "could not end the session's legs"),
            }
        });
    }
    Ok(())
}

/// Adds `recording: true` and the order's options to `reply` unless it already decides
/// `recording`; returns whether it added them.
pub fn merge_recording(
    reply: &mut Map<String, Value>,
    order: &Order,
    now: i64,
    keys: &SessionWebhookKeys,
    format: &str,
) -> bool {
    if reply.contains_key(&keys.reply_recording) {
        return false;
    }
    reply.insert(keys.reply_recording.clone(), json!(true));
    // The recording is the shim's decision, so its options are the order's alone: an option the
    // operator's reply set (say an `expire_time` for a recording the order wants unlimited) goes.
    for key in [
        &keys.reply_expire_time,
        &keys.reply_split_only,
        &keys.reply_split_duration,
        &keys.reply_metadata,
        &keys.reply_format,
    ] {
        reply.remove(key);
    }
    for (option, value) in recording_options(order, now, format) {
        let key = match option.as_str() {
            "expire_time" => &keys.reply_expire_time,
            "split_only" => &keys.reply_split_only,
            "split_duration" => &keys.reply_split_duration,
            "metadata" => &keys.reply_metadata,
            "format" => &keys.reply_format,
            _ => continue,
        };
        reply.insert(key.clone(), value);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mappings::Mappings;

    fn order(expire_time: i64, metadata: Option<Value>) -> Order {
        Order {
            recording_id: "R".into(),
            channel_id: "sora".into(),
            created_at: 1_000,
            expire_time,
            expired_at: 1_000 + expire_time,
            split_duration: Some(60),
            split_only: true,
            metadata,
        }
    }

    #[test]
    fn merges_remaining_time_options_and_wrapped_metadata_under_mapped_keys() {
        let keys = Mappings::built_in().upstream.session_webhook;
        let mut reply = Map::new();
        reply.insert("operator".into(), json!("kept"));
        assert!(merge_recording(&mut reply, &order(600, Some(json!("r1"))), 1_100, &keys, "webm"));
        assert_eq!(
            Value::Object(reply),
            json!({"operator": "kept", "recording": true, "expire_time": 500, "split_only": true, "split_duration": 60,
                   "recording_metadata": {"legacy_metadata": "r1"}, "format": "webm"})
        );
    }

    #[test]
    fn unlimited_orders_send_no_expire_time() {
        let keys = Mappings::built_in().upstream.session_webhook;
        let mut reply = Map::new();
        assert!(merge_recording(&mut reply, &order(0, Some(json!({"room": 1}))), 5_000, &keys, "webm"));
        assert!(!reply.contains_key("expire_time"));
        assert_eq!(reply["recording_metadata"], json!({"room": 1}));
    }

    #[test]
    fn operator_recording_options_give_way_to_the_orders() {
        let keys = Mappings::built_in().upstream.session_webhook;
        let mut reply = Map::new();
        reply.insert("expire_time".into(), json!(5));
        reply.insert("format".into(), json!("mp4"));
        reply.insert("audio".into(), json!(true));
        assert!(merge_recording(&mut reply, &order(0, None), 1_000, &keys, "webm"));
        assert!(!reply.contains_key("expire_time"), "{reply:?}");
        assert_eq!((reply["format"].as_str(), reply["audio"].as_bool()), (Some("webm"), Some(true)));
    }

    #[test]
    fn an_operator_decision_on_recording_wins() {
        let keys = Mappings::built_in().upstream.session_webhook;
        let mut reply = Map::new();
        reply.insert("recording".into(), json!(false));
        assert!(!merge_recording(&mut reply, &order(0, None), 1_000, &keys, "webm"));
        assert_eq!(Value::Object(reply), json!({"recording": false}));
    }
}
