//! JSON renderings of the state, shared by the Sora API and `GET /sim/state`.

use serde_json::{Map, Value, json};

use super::clock::unix_seconds;
use super::legacy::order::LegacyOrder;
use super::state::{Connection, EndReason, Recording, Session, SimState};

/// A session as `ListSessions` / `GetSession` show it; `recording` only while it records.
pub fn session(state: &SimState, session: &Session) -> Value {
    let mut object = Map::new();
    object.insert("channel_id".into(), session.channel_id.clone().into());
    object.insert("session_id".into(), session.session_id.clone().into());
    object.insert("created_timestamp".into(), unix_seconds(session.created_at).into());
    object.insert("connections".into(), state.connection_count(&session.session_id).into());
    if let Some(recording) = state.live_recording(session) {
        object.insert("recording".into(), live_recording(recording));
    }
    Value::Object(object)
}

/// Every active session, sorted by channel id.
pub fn sessions(state: &SimState) -> Value {
    state.active_sessions().map(|item| session(state, item)).collect()
}

/// Every connection of an active session, sorted by channel id, then join order.
pub fn connections(state: &SimState) -> Value {
    state.active_connections().into_iter().map(connection).collect()
}

/// Every recording ever made, with how it ended.
pub fn recordings(state: &SimState) -> Value {
    state.recordings().iter().map(recording_history).collect()
}

/// Every standing legacy order, sorted by channel id.
pub fn legacy_orders(state: &SimState) -> Value {
    state.legacy_orders().map(LegacyOrder::state_view).collect()
}

fn connection(connection: &Connection) -> Value {
    json!({
        "channel_id": connection.channel_id,
        "session_id": connection.session_id,
        "client_id": connection.client_id,
        "bundle_id": connection.bundle_id,
        "connection_id": connection.connection_id,
        "role": connection.role.as_str(),
        "created_timestamp": unix_seconds(connection.created_at),
        "audio": connection.audio,
        "video": connection.video,
    })
}

/// The `recording` object inside a session.
fn live_recording(recording: &Recording) -> Value {
    let mut object = Map::new();
    recording.options.echo_into(&mut object, "metadata");
    object.insert("split_only".into(), recording.options.split_only.unwrap_or(false).into());
    object.insert("recording_id".into(), recording.recording_id.clone().into());
    object.insert("start_timestamp".into(), unix_seconds(recording.started_at).into());
    Value::Object(object)
}

fn recording_history(recording: &Recording) -> Value {
    let mut object = Map::new();
    recording.options.echo_into(&mut object, "metadata");
    object.insert("split_only".into(), recording.options.split_only.unwrap_or(false).into());
    object.insert("recording_id".into(), recording.recording_id.clone().into());
    object.insert("channel_id".into(), recording.channel_id.clone().into());
    object.insert("session_id".into(), recording.session_id.clone().into());
    object.insert("started_at".into(), unix_seconds(recording.started_at).into());
    object.insert("ended_at".into(), recording.ended_at.map(unix_seconds).into());
    object.insert("end_reason".into(), recording.end_reason.map(EndReason::as_str).into());
    object.insert("started_by".into(), recording.started_by.as_str().into());
    if let Some(legacy_recording_id) = &recording.legacy_recording_id {
        object.insert("legacy_recording_id".into(), legacy_recording_id.clone().into());
    }
    let archives: Vec<Value> = recording.archives.iter().map(|source| source.connection_id.clone().into()).collect();
    object.insert("archives".into(), archives.into());
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::options::RecordingOptions;
    use crate::sim::state::{ConnectRequest, Role};

    const T0: u64 = 1_700_000_000_500;

    fn state_with_recording() -> (SimState, String, String) {
        let mut state = SimState::new(0);
        let request = ConnectRequest {
            channel_id: "c".into(),
            role: Role::SendOnly,
            audio: json!({"codec_type": "OPUS"}),
            video: json!(false),
            client_id: Some("cl".into()),
            bundle_id: Some("bu".into()),
        };
        let joined = state.connect(request, T0);
        state.activate_session(&joined.session_id, None, T0).expect("session exists");
        let options = RecordingOptions {
            expire_time: Some(60),
            metadata: json!({"room": "r"}).as_object().cloned(),
            ..RecordingOptions::default()
        };
        let ids = state.start_recording("c", options, T0 + 1_000).expect("session exists");
        (state, joined.connection_id, ids.recording_id)
    }

    #[test]
    fn session_shows_its_recording() {
        let (state, _, recording_id) = state_with_recording();
        let [rendered] = sessions(&state).as_array().cloned().expect("array").try_into().expect("one session");
        let session_id = rendered["session_id"].clone();
        assert_eq!(
            rendered,
            json!({
                "channel_id": "c", "session_id": session_id, "created_timestamp": 1_700_000_000u64,
                "connections": 1,
                "recording": {
                    "recording_id": recording_id, "start_timestamp": 1_700_000_001u64, "format": "webm",
                    "expire_time": 60, "split_only": false, "metadata": {"room": "r"}
                }
            })
        );
    }

    #[test]
    fn connection_has_the_listed_fields() {
        let (state, connection_id, _) = state_with_recording();
        let rendered = connections(&state)[0].clone();
        assert_eq!(rendered["connection_id"], connection_id);
        assert_eq!(rendered["client_id"], "cl");
        assert_eq!(rendered["bundle_id"], "bu");
        assert_eq!(rendered["role"], "sendonly");
        assert_eq!(rendered["audio"], json!({"codec_type": "OPUS"}));
        assert_eq!(rendered["video"], json!(false));
        assert_eq!(rendered.as_object().map(Map::len), Some(9));
    }

    #[test]
    fn history_shows_live_and_ended_recordings() {
        let (mut state, connection_id, recording_id) = state_with_recording();
        assert_eq!(recordings(&state)[0]["ended_at"], Value::Null);
        state.stop_recording("c", T0 + 9_000).expect("recording");
        let rendered = recordings(&state)[0].clone();
        assert_eq!(rendered["recording_id"], recording_id);
        assert_eq!(rendered["ended_at"], 1_700_000_009u64);
        assert_eq!(rendered["end_reason"], "stopped");
        assert_eq!(rendered["started_by"], "api");
        assert_eq!(rendered["archives"], json!([connection_id]));
        assert!(sessions(&state)[0].get("recording").is_none());
    }
}
