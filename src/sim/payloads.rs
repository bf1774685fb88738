//! Bodies of the webhooks the emulator sends, and how it reads a `session.created` reply.

use http::StatusCode;
use serde_json::{Map, Value, json};
use ulid::Ulid;

use super::clock::{Millis, rfc3339, unix_seconds};
use super::options::RecordingOptions;
use super::state::{EndReason, Recording};

/// Directory the emulated archive files pretend to live in.
const ARCHIVE_DIR: &str = "/sim/archive";

/// `session.created`, sent before the session becomes visible.
pub fn session_created(channel_id: &str, session_id: &str, created_at: Millis, now: Millis) -> Value {
    let mut object = envelope("session.created", now);
    object.insert("channel_id".into(), channel_id.into());
    object.insert("session_id".into(), session_id.into());
    object.insert("created_timestamp".into(), unix_seconds(created_at).into());
    Value::Object(object)
}

/// `session.destroyed`; its reply is ignored.
pub fn session_destroyed(channel_id: &str, session_id: &str, now: Millis) -> Value {
    let mut object = envelope("session.destroyed", now);
    object.insert("channel_id".into(), channel_id.into());
    object.insert("session_id".into(), session_id.into());
    Value::Object(object)
}

/// One `archive.available` per archived connection, then one `recording.report`.
pub fn recording_ended(recording: &Recording, now: Millis) -> Vec<Value> {
    let format = recording.options.format.as_str();
    let directory = format!("{ARCHIVE_DIR}/{}", recording.recording_id);
    let mut events: Vec<Value> = recording
        .archives
        .iter()
        .map(|source| {
            let filename = format!("{}.{format}", source.connection_id);
            let mut object = recording_event("archive.available", recording, now);
            object.insert("connection_id".into(), source.connection_id.clone().into());
            object.insert("client_id".into(), source.client_id.clone().into());
            object.insert("file_path".into(), format!("{directory}/{filename}").into());
            object.insert("filename".into(), filename.into());
            object.insert("split_only".into(), recording.options.split_only.unwrap_or(false).into());
            object.insert("format".into(), format.into());
            Value::Object(object)
        })
        .collect();
    let filename = format!("report-{}.json", recording.recording_id);
    let mut report = recording_event("recording.report", recording, now);
    report.insert("file_path".into(), format!("{directory}/{filename}").into());
    report.insert("filename".into(), filename.into());
    report.insert("start_timestamp".into(), unix_seconds(recording.started_at).into());
    report.insert("end_timestamp".into(), recording.ended_at.map(unix_seconds).into());
    report.insert("end_reason".into(), recording.end_reason.map(EndReason::as_str).into());
    let archives: Vec<Value> = recording.archives.iter().map(|source| source.connection_id.clone().into()).collect();
    report.insert("archives".into(), archives.into());
    events.push(Value::Object(report));
    events
}

/// Reads a `session.created` reply: `Ok(Some(options))` when it asks for a recording.
///
/// Only a 200 whose body is a JSON object with `"recording": true` asks; bad options in such a
/// reply are an error naming the field.
pub fn requested_recording(status: StatusCode, body: &[u8]) -> Result<Option<RecordingOptions>, &'static str> {
    if status != StatusCode::OK {
        return Ok(None);
    }
    let Ok(Value::Object(reply)) = serde_json::from_slice::<Value>(body) else {
        return Ok(None);
    };
    if reply.get("recording") != Some(&Value::Bool(true)) {
        return Ok(None);
    }
    RecordingOptions::from_fields(&reply, "recording_metadata").map(Some)
}

/// Fields every webhook has.
fn envelope(event_type: &str, now: Millis) -> Map<String, Value> {
    let mut object = Map::new();
    object.insert("type".into(), event_type.into());
    object.insert("id".into(), Ulid::generate().to_string().into());
    object.insert("timestamp".into(), rfc3339(now).into());
    object
}

/// Fields every recording event has.
fn recording_event(event_type: &str, recording: &Recording, now: Millis) -> Map<String, Value> {
    let mut object = envelope(event_type, now);
    object.insert("recording_id".into(), recording.recording_id.clone().into());
    object.insert("session_id".into(), recording.session_id.clone().into());
    object.insert("channel_id".into(), recording.channel_id.clone().into());
    if let Some(metadata) = &recording.options.metadata {
        object.insert("recording_metadata".into(), json!(metadata));
    }
    object
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::options::RecordingFormat;
    use crate::sim::state::{ArchiveSource, StartedBy};

    const T0: Millis = 1_700_000_000_000;

    fn ended_recording() -> Recording {
        Recording {
            recording_id: "R".into(),
            channel_id: "c".into(),
            session_id: "S".into(),
            started_at: T0,
            ended_at: Some(T0 + 5_000),
            end_reason: Some(EndReason::Stopped),
            options: RecordingOptions {
                metadata: json!({"room": "r"}).as_object().cloned(),
                format: RecordingFormat::Mp4,
                ..RecordingOptions::default()
            },
            started_by: StartedBy::Api,
            legacy_recording_id: None,
            archives: vec![
                ArchiveSource { connection_id: "A".into(), client_id: "a".into() },
                ArchiveSource { connection_id: "B".into(), client_id: "b".into() },
            ],
        }
    }

    fn without_envelope(mut value: Value) -> Value {
        let object = value.as_object_mut().expect("object");
        assert_eq!(object.remove("id").and_then(|id| id.as_str().map(str::len)), Some(26));
        assert_eq!(object.remove("timestamp"), Some(json!("2023-11-14T22:13:20.000Z")));
        value
    }

    #[test]
    fn recording_end_lists_archives_then_the_report() {
        let events: Vec<Value> = recording_ended(&ended_recording(), T0).into_iter().map(without_envelope).collect();
        assert_eq!(
            events,
            [
                json!({
                    "type": "archive.available", "recording_id": "R", "session_id": "S", "channel_id": "c",
                    "connection_id": "A", "client_id": "a", "recording_metadata": {"room": "r"},
                    "filename": "A.mp4", "file_path": "/sim/archive/R/A.mp4", "split_only": false, "format": "mp4"
                }),
                json!({
                    "type": "archive.available", "recording_id": "R", "session_id": "S", "channel_id": "c",
                    "connection_id": "B", "client_id": "b", "recording_metadata": {"room": "r"},
                    "filename": "B.mp4", "file_path": "/sim/archive/R/B.mp4", "split_only": false, "format": "mp4"
                }),
                json!({
                    "type": "recording.report", "recording_id": "R", "session_id": "S", "channel_id": "c",
                    "recording_metadata": {"room": "r"}, "filename": "report-R.json",
                    "file_path": "/sim/archive/R/report-R.json", "start_timestamp": 1_700_000_000u64,
                    "end_timestamp": 1_700_000_005u64, "end_reason": "stopped", "archives": ["A", "B"]
                }),
            ]
        );
    }

    #[test]
    fn session_created_carries_the_creation_time() {
        assert_eq!(
            without_envelope(session_created("c", "S", T0 + 1_500, T0)),
            json!({"type": "session.created", "channel_id": "c", "session_id": "S", "created_timestamp": 1_700_000_001u64})
        );
    }

    #[test]
    fn session_destroyed_names_the_session() {
        assert_eq!(
            without_envelope(session_destroyed("c", "S", T0)),
            json!({"type": "session.destroyed", "channel_id": "c", "session_id": "S"})
        );
    }

    #[test]
    fn reply_asks_for_recording_only_with_recording_true() {
        let ok = StatusCode::OK;
        assert_eq!(requested_recording(ok, b""), Ok(None));
        assert_eq!(requested_recording(ok, b"[]"), Ok(None));
        assert_eq!(requested_recording(ok, br#"{"recording": "true"}"#), Ok(None));
        assert_eq!(requested_recording(StatusCode::CREATED, br#"{"recording": true}"#), Ok(None));
        assert_eq!(requested_recording(ok, br#"{"recording": true}"#), Ok(Some(RecordingOptions::default())));
    }

    #[test]
    fn reply_options_are_read_and_checked() {
        let body = br#"{"recording": true, "expire_time": 30, "recording_metadata": {"k": 1}, "metadata": 5}"#;
        let options = requested_recording(StatusCode::OK, body).expect("valid").expect("asks to record");
        assert_eq!(options.expire_time, Some(30));
        assert_eq!(options.metadata, json!({"k": 1}).as_object().cloned());
        assert_eq!(
            requested_recording(StatusCode::OK, br#"{"recording": true, "format": "avi"}"#),
            Err("INVALID-FORMAT")
        );
    }
}
