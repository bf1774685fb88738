//! ListArchiving: per-connection archiving state, derived from the upstream's ListSessions and
//! ListConnections (no shim state involved).

use std::collections::HashMap;

use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::app::{App, now_secs};
use crate::error::ShimError;
use crate::mappings::UpstreamErrorClass;
use crate::upstream::UpstreamReply;

/// Runs the upstream-call and map-reply phases of a ListArchiving.
pub async fn list_archiving(app: &App, caller_headers: &HeaderMap) -> Result<Value, ShimError> {
    let upstream = &app.mappings.upstream;
    let body = &upstream.list_request_body;
    let (sessions, connections) = tokio::join!(
        app.upstream.call_json("list_sessions", &upstream.targets.list_sessions, body, caller_headers),
        app.upstream.call_json("list_connections", &upstream.targets.list_connections, body, caller_headers),
    );
    let sessions = array_reply(app, &upstream.targets.list_sessions, sessions?)?;
    let connections = array_reply(app, &upstream.targets.list_connections, connections?)?;
    Ok(Value::Array(archiving_entries(&sessions, &connections, now_secs())))
}

/// A 200 JSON array, or the mapped error.
pub fn array_reply(app: &App, target: &str, reply: UpstreamReply) -> Result<Vec<Value>, ShimError> {
    if reply.status != StatusCode::OK {
        if let Some(UpstreamErrorClass::ClusterMinority) =
            reply.error_type().and_then(|name| app.mappings.upstream.classify(&name))
        {
            return Err(ShimError::NotClusterMajority);
        }
        if reply.status.is_client_error() {
            app.metrics.upstream_error(
                if target == app.mappings.upstream.targets.list_sessions {
                    "list_sessions"
                } else {
                    "list_connections"
                },
                "error",
            );
        }
        return Err(ShimError::UpstreamError(format!("{target} answered {} {}", reply.status, reply.excerpt())));
    }
    match reply.json()? {
        Value::Array(items) => Ok(items),
        other => {
            Err(ShimError::UpstreamError(format!("{target} answered a non-array: {}", truncate(&other.to_string()))))
        }
    }
}

fn truncate(text: &str) -> &str {
    text.get(..200).unwrap_or(text)
}

/// Builds the legacy entries: one per sending connection of a recording session.
pub fn archiving_entries(sessions: &[Value], connections: &[Value], now: i64) -> Vec<Value> {
    let recording_since: HashMap<&str, Option<i64>> = sessions
        .iter()
        .filter_map(|session| {
            let recording = session.get("recording").filter(|value| value.is_object())?;
            let session_id = session.get("session_id")?.as_str()?;
            Some((session_id, recording.get("start_timestamp").and_then(unix_seconds)))
        })
        .collect();
    let mut entries: Vec<Value> = connections
        .iter()
        .filter_map(|connection| {
            let session_id = connection.get("session_id")?.as_str()?;
            let started = *recording_since.get(session_id)?;
            let role = connection.get("role").and_then(Value::as_str).unwrap_or("");
            if role != "sendonly" && role != "sendrecv" {
                return None;
            }
            let joined = connection.get("created_timestamp").and_then(unix_seconds);
            let since = started.into_iter().chain(joined).max().unwrap_or(now);
            let text = |key: &str| connection.get(key).cloned().unwrap_or(Value::Null);
            Some(json!({
                "audio": media(connection.get("audio")),
                "bundle_id": text("bundle_id"),
                "channel_id": text("channel_id"),
                "client_id": text("client_id"),
                "connection_id": text("connection_id"),
                "seconds": now.saturating_sub(since).max(0),
                "video": media(connection.get("video")),
            }))
        })
        .collect();
    entries.sort_by(|a, b| {
        let key = |v: &Value| {
            (v["channel_id"].as_str().unwrap_or("").to_owned(), v["connection_id"].as_str().unwrap_or("").to_owned())
        };
        key(a).cmp(&key(b))
    });
    entries
}

/// Legacy shape of a media description: the object, or `false` when there is none.
fn media(value: Option<&Value>) -> Value {
    match value {
        Some(object @ Value::Object(_)) => object.clone(),
        _ => Value::Bool(false),
    }
}

/// Unix seconds from an integer, a float, or an RFC 3339 string (Sora uses both styles).
pub fn unix_seconds(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64().or_else(|| number.as_f64().map(|f| f.floor() as i64)),
        Value::String(text) => humantime::parse_rfc3339_weak(text.trim_end_matches('Z'))
            .or_else(|_| humantime::parse_rfc3339(text))
            .ok()
            .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|elapsed| elapsed.as_secs() as i64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sending_connections_of_recording_sessions_are_listed() {
        let sessions = [
            json!({"channel_id": "sora", "session_id": "S1", "recording": {"recording_id": "U1", "start_timestamp": 1_000}}),
            json!({"channel_id": "quiet", "session_id": "S2"}),
        ];
        let connections = [
            json!({"channel_id": "sora", "session_id": "S1", "client_id": "c1", "bundle_id": "b1", "connection_id": "K1",
                   "role": "sendrecv", "created_timestamp": 900, "audio": {"codec_type": "OPUS"}, "video": false}),
            json!({"channel_id": "sora", "session_id": "S1", "client_id": "c2", "bundle_id": "b2", "connection_id": "K2",
                   "role": "sendonly", "created_timestamp": 1_100, "audio": false,
                   "video": {"codec_type": "VP9", "bit_rate": 1000}}),
            json!({"channel_id": "sora", "session_id": "S1", "connection_id": "K3", "role": "recvonly", "created_timestamp": 900}),
            json!({"channel_id": "quiet", "session_id": "S2", "connection_id": "K4", "role": "sendrecv", "created_timestamp": 900}),
        ];
        let entries = archiving_entries(&sessions, &connections, 1_146);
        assert_eq!(
            entries,
            vec![
                json!({"audio": {"codec_type": "OPUS"}, "bundle_id": "b1", "channel_id": "sora", "client_id": "c1",
                       "connection_id": "K1", "seconds": 146, "video": false}),
                json!({"audio": false, "bundle_id": "b2", "channel_id": "sora", "client_id": "c2",
                       "connection_id": "K2", "seconds": 46, "video": {"bit_rate": 1000, "codec_type": "VP9"}}),
            ]
        );
    }

    #[test]
    fn absurd_timestamps_do_not_overflow() {
        let sessions = [json!({"session_id": "S", "recording": {"start_timestamp": i64::MIN}})];
        let connections = [json!({"session_id": "S", "role": "sendrecv", "created_timestamp": -1e300})];
        assert_eq!(archiving_entries(&sessions, &connections, 1_000)[0]["seconds"], json!(i64::MAX));
        let future = [json!({"session_id": "S", "role": "sendrecv", "created_timestamp": i64::MAX})];
        assert_eq!(archiving_entries(&sessions, &future, 1_000)[0]["seconds"], json!(0));
    }

    #[test]
    fn timestamps_in_either_style() {
        assert_eq!(unix_seconds(&json!(1_700_000_000)), Some(1_700_000_000));
        assert_eq!(unix_seconds(&json!(1_700_000_000.9)), Some(1_700_000_000));
        assert_eq!(unix_seconds(&json!("2023-11-14T22:13:20Z")), Some(1_700_000_000));
        assert_eq!(unix_seconds(&json!("2023-11-14T22:13:20.123456Z")), Some(1_700_000_000));
        assert_eq!(unix_seconds(&json!("yesterday")), None);
    }
}
