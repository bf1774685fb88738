//! `Sora_20161101.ListArchiving`: one entry per sending connection of a session recording now.

use serde_json::{Value, json};

use crate::sim::clock::{Millis, unix_seconds};
use crate::sim::state::{Connection, SimState};

/// The entries at `now`, sorted by channel id, then connection id.
///
/// `seconds` counts whole seconds since the later of the recording's start and the connection's
/// creation, both taken as Unix seconds.
pub fn entries(state: &SimState, now: Millis) -> Value {
    let mut recorded: Vec<(&Connection, Millis)> = state
        .active_connections()
        .into_iter()
        .filter(|connection| connection.role.sends_media())
        .filter_map(|connection| {
            let session = state.active_session(&connection.channel_id)?;
            Some((connection, state.live_recording(session)?.started_at))
        })
        .collect();
    recorded.sort_by(|(left, _), (right, _)| {
        (&left.channel_id, &left.connection_id).cmp(&(&right.channel_id, &right.connection_id))
    });
    recorded
        .into_iter()
        .map(|(connection, recording_started_at)| {
            let since = unix_seconds(recording_started_at).max(unix_seconds(connection.created_at));
            json!({
                "audio": connection.audio,
                "bundle_id": connection.bundle_id,
                "channel_id": connection.channel_id,
                "client_id": connection.client_id,
                "connection_id": connection.connection_id,
                "seconds": unix_seconds(now).saturating_sub(since),
                "video": connection.video,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::options::RecordingOptions;
    use crate::sim::state::{ConnectRequest, Role};

    const T0: Millis = 1_700_000_000_000;

    fn join(state: &mut SimState, channel_id: &str, role: Role, now: Millis) -> String {
        let request = ConnectRequest {
            channel_id: channel_id.into(),
            role,
            audio: json!({"codec_type": "OPUS"}),
            video: json!(false),
            client_id: Some(format!("client-{channel_id}")),
            bundle_id: None,
        };
        let joined = state.connect(request, now);
        if joined.session_created {
            state.activate_session(&joined.session_id, None, now).expect("the new session exists");
        }
        joined.connection_id
    }

    #[test]
    fn lists_senders_of_recording_sessions_only() {
        let mut state = SimState::new(0);
        let early = join(&mut state, "b", Role::SendRecv, T0);
        join(&mut state, "b", Role::RecvOnly, T0);
        join(&mut state, "idle", Role::SendOnly, T0);
        state.start_recording("b", RecordingOptions::default(), T0 + 10_000).expect("session exists");
        let late = join(&mut state, "b", Role::SendOnly, T0 + 25_000);
        let other = join(&mut state, "a", Role::SendOnly, T0 + 26_000);
        state.start_recording("a", RecordingOptions::default(), T0 + 26_000).expect("session exists");

        let listed = entries(&state, T0 + 30_500);
        let ids: Vec<&Value> = listed.as_array().into_iter().flatten().map(|entry| &entry["connection_id"]).collect();
        let mut expected_b = [early.clone(), late.clone()];
        expected_b.sort();
        assert_eq!(ids, [&json!(other), &json!(expected_b[0]), &json!(expected_b[1])]);
        let by_id = |id: &str| listed.as_array().into_iter().flatten().find(|entry| entry["connection_id"] == id);
        assert_eq!(by_id(&early).map(|entry| entry["seconds"].clone()), Some(json!(20)));
        assert_eq!(by_id(&late).map(|entry| entry["seconds"].clone()), Some(json!(5)));
        assert_eq!(
            by_id(&early).cloned(),
            Some(json!({
                "audio": {"codec_type": "OPUS"}, "bundle_id": early, "channel_id": "b", "client_id": "client-b",
                "connection_id": early, "seconds": 20, "video": false
            }))
        );
    }

    #[test]
    fn nothing_without_recordings() {
        let mut state = SimState::new(0);
        join(&mut state, "c", Role::SendRecv, T0);
        assert_eq!(entries(&state, T0), json!([]));
    }
}
