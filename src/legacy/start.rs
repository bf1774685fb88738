//! StartRecording: store the order durably, then ask the upstream to record the channel's
//! current session. No session yet is fine: the order stays armed for the next session.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, StatusCode};
use serde_json::{Map, Value, json};

use super::session_request::start_request;
use super::stop::{stop_recordings_of, stop_upstream};
use super::validate::StartRequest;
use crate::app::{App, now_secs};
use crate::config::OnUpstreamFailure;
use crate::error::ShimError;
use crate::mappings::UpstreamErrorClass;
use crate::store::{Leg, Order, StoreError};

/// How long the upstream Start of a call whose upstream timeout passed is still awaited, so that
/// a recording it begins after all is tied to its order, or stopped when no order stands.
const LATE_START_WATCH: Duration = Duration::from_secs(60);

/// What an upstream Start did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Started {
    /// The session records now (a 200).
    Recording,
    /// No session yet: the order is armed for the next one.
    Armed,
    /// The session already recorded (the session webhook got there first).
    AlreadyRecording,
}

/// Runs the order/store, upstream-call and map-reply phases of a StartRecording.
pub async fn start(app: &Arc<App>, request: StartRequest, caller_headers: &HeaderMap) -> Result<Value, ShimError> {
    let now = now_secs();
    let order = Order {
        recording_id: ulid::Ulid::generate().to_string(),
        channel_id: request.channel_id.clone(),
        created_at: now,
        expire_time: request.expire_time,
        expired_at: now + request.expire_time,
        split_duration: request.split_duration,
        split_only: request.split_only.unwrap_or(false),
        metadata: request.metadata.clone(),
    };

    // Order/store: durable before anything else happens.
    app.store.create_order(&order).await?;

    // Upstream call.
    if let Err(error) = start_or_watch(app, &order, now, caller_headers).await {
        let keep = matches!(error, ShimError::UpstreamUnavailable(_) | ShimError::UpstreamTimeout(_))
            && app.config.legacy.on_upstream_failure == OnUpstreamFailure::Accept;
        if keep {
            tracing::warn!(
                channel_id = %order.channel_id, recording_id = %order.recording_id, %error,
                "upstream start failed; the order is kept and will start when the upstream answers"
            );
        } else {
            // Withdrawn, not deleted: a recording the session webhook or the reconciler switched
            // on for it while the upstream call was pending is still known, and gets stopped.
            let withdrawn_at = now_secs();
            match app.store.withdraw_order(&order.recording_id, withdrawn_at).await {
                Ok(()) => {
                    stop_recordings_of(app, &order.recording_id, &order.channel_id, caller_headers, withdrawn_at).await
                }
                Err(withdraw_error) => {
                    tracing::error!(recording_id = %order.recording_id, %withdraw_error, "could not withdraw a refused order")
                }
            }
            return Err(error);
        }
    }

    let shown = match (&order.metadata, app.config.log.metadata) {
        (None, _) => "none".to_owned(),
        (Some(metadata), true) => metadata.to_string(),
        (Some(_), false) => "<redacted>".to_owned(),
    };
    tracing::info!(channel_id = %order.channel_id, recording_id = %order.recording_id, expire_time = order.expire_time,
        metadata = %shown, "order stored");

    // Map reply: the seed's shape, echoing split options only when the client sent them.
    let mut reply = Map::new();
    reply.insert("channel_id".into(), json!(order.channel_id));
    reply.insert("expire_time".into(), json!(order.expire_time));
    reply.insert("recording_id".into(), json!(order.recording_id));
    if let Some(split_duration) = request.split_duration {
        reply.insert("split_duration".into(), json!(split_duration));
    }
    if let Some(split_only) = request.split_only {
        reply.insert("split_only".into(), json!(split_only));
    }
    Ok(Value::Object(reply))
}

/// The upstream Start of a legacy Start: the client waits the upstream timeout, as for any call
/// (then the order is kept or withdrawn by `on_upstream_failure`). The call itself goes on, up to
/// [`LATE_START_WATCH`]: a recording the upstream begins late gets its leg when the order still
/// stands, and is stopped again when none does (withdrawn by `reject`, or stopped meanwhile), so
/// a Start never leaves a recording that no order covers.
async fn start_or_watch(app: &Arc<App>, order: &Order, now: i64, caller_headers: &HeaderMap) -> Result<(), ShimError> {
    let timeout = app.upstream.timeout();
    let mut call = tokio::spawn({
        let (app, order, headers) = (Arc::clone(app), order.clone(), caller_headers.clone());
        async move { start_upstream_within(&app, &order, now, &headers, LATE_START_WATCH.max(timeout)).await }
    });
    match tokio::time::timeout(timeout, &mut call).await {
        Ok(joined) => joined.map_err(|error| ShimError::Internal(format!("upstream start task: {error}")))?.map(drop),
        Err(_) => {
            let (late_app, channel_id, headers) = (Arc::clone(app), order.channel_id.clone(), caller_headers.clone());
            tokio::spawn(async move {
                let app = late_app;
                match call.await {
                    Ok(Ok(Started::Recording)) => {
                        // A new order on the channel (the client retried) owns the recording now.
                        if matches!(app.store.active_order(&channel_id, now_secs()).await, Ok(None)) {
                            tracing::warn!(%channel_id, "a timed-out Start began recording late upstream with no order standing; stopping it");
                            if let Err(error) = stop_upstream(&app, &channel_id, &headers).await.map(drop) {
                                tracing::warn!(%channel_id, %error, "could not stop a late-started recording");
                            }
                        }
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => {
                        tracing::warn!(%channel_id, %error, "the timed-out upstream start did not finish")
                    }
                    Err(error) => {
                        tracing::warn!(%channel_id, %error, "the timed-out upstream start task failed")
                    }
                }
            });
            Err(ShimError::UpstreamTimeout(format!(
                "{} took longer than {timeout:?}",
                app.mappings.upstream.targets.start_recording
            )))
        }
    }
}

/// Asks the upstream to record the channel's session now, recording a leg when it does. `Ok`
/// covers "recording" and "no session yet" (armed); an error means the order must not stand (or,
/// for unavailability, depends on `on_upstream_failure`). The reconciler uses it too.
pub async fn start_upstream(app: &App, order: &Order, now: i64, caller_headers: &HeaderMap) -> Result<(), ShimError> {
    start_upstream_within(app, order, now, caller_headers, app.upstream.timeout()).await.map(drop)
}

/// [`start_upstream`] with its own deadline for the upstream call, saying what it did.
async fn start_upstream_within(
    app: &App,
    order: &Order,
    now: i64,
    caller_headers: &HeaderMap,
    deadline: Duration,
) -> Result<Started, ShimError> {
    let upstream = &app.mappings.upstream;
    let body = start_request(order, now, &upstream.recording.format);
    let reply = app
        .upstream
        .call_json_within("start_recording", &upstream.targets.start_recording, &body, caller_headers, deadline)
        .await?;
    if reply.status == StatusCode::OK {
        // The upstream records now, whatever its body says; an unreadable body only costs the leg.
        let json = reply.json().unwrap_or_else(|error| {
            tracing::warn!(%error, "upstream StartRecording answered 200 with an unreadable body");
            Value::Null
        });
        let session_id = json
            .get(&upstream.start_reply.session_id)
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty() && id.len() <= crate::webhooks::session::MAX_SESSION_ID_BYTES);
        if let Some(session_id) = session_id {
            let leg = Leg {
                recording_id: order.recording_id.clone(),
                session_id: session_id.to_owned(),
                upstream_recording_id: json
                    .get(&upstream.start_reply.recording_id)
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                started_at: now,
                ended_at: None,
            };
            match app.store.record_leg(&leg).await {
                Ok(()) => {}
                Err(StoreError::OrderGone(_)) => {
                    // A Stop (or expiry) won the race while the upstream was starting: the
                    // recording just begun has no order any more, so it is stopped again.
                    tracing::info!(channel_id = %order.channel_id, "order stopped while its recording was starting; stopping it");
                    stop_recordings_of(app, &order.recording_id, &order.channel_id, caller_headers, now_secs()).await;
                }
                // The order itself is stored; a missing leg only costs the reconciler a look.
                Err(error) => {
                    tracing::warn!(recording_id = %order.recording_id, %error, "could not record the session leg")
                }
            }
        }
        return Ok(Started::Recording);
    }
    if reply.status.is_server_error() {
        // 5xx: the upstream is there but cannot serve now; as good as unreachable.
        return Err(ShimError::UpstreamUnavailable(format!(
            "{} answered {} {}",
            upstream.targets.start_recording,
            reply.status,
            reply.excerpt()
        )));
    }
    match reply.error_type().and_then(|name| upstream.classify(&name)) {
        Some(UpstreamErrorClass::NoSession) => {
            tracing::debug!(channel_id = %order.channel_id, "no session yet; the order is armed");
            Ok(Started::Armed)
        }
        Some(UpstreamErrorClass::AlreadyRecording) => Ok(Started::AlreadyRecording),
        Some(UpstreamErrorClass::ClusterMinority) => Err(ShimError::NotClusterMajority),
        Some(UpstreamErrorClass::NotRecording) | None => {
            app.metrics.upstream_error("start_recording", "error");
            Err(ShimError::UpstreamError(format!(
                "{} answered {} {}",
                upstream.targets.start_recording,
                reply.status,
                reply.excerpt()
            )))
        }
    }
}
