//! Unit tests of the state machine: session lifecycle, recordings, expiry, linger and errors.

use serde_json::json;

use super::*;

const T0: Millis = 1_700_000_000_000;

fn join(state: &mut SimState, channel_id: &str, role: Role, now: Millis) -> Joined {
    let request = ConnectRequest {
        channel_id: channel_id.into(),
        role,
        audio: json!({"codec_type": "OPUS"}),
        video: json!(false),
        client_id: None,
        bundle_id: None,
    };
    let joined = state.connect(request, now);
    if joined.session_created {
        state.activate_session(&joined.session_id, None, now).expect("the new session exists");
    }
    joined
}

fn expiring_in(seconds: u64) -> RecordingOptions {
    RecordingOptions { expire_time: Some(seconds), ..RecordingOptions::default() }
}

fn ended(effects: &[Effect]) -> Vec<(String, Option<EndReason>, Option<Millis>)> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::RecordingEnded(recording) => {
                Some((recording.recording_id.clone(), recording.end_reason, recording.ended_at))
            }
            Effect::SessionDestroyed { .. } => None,
        })
        .collect()
}

#[test]
fn first_connection_creates_a_pending_session_that_activation_reveals() {
    let mut state = SimState::new(0);
    let request = ConnectRequest {
        channel_id: "c".into(),
        role: Role::SendRecv,
        audio: json!(false),
        video: json!(false),
        client_id: Some("me".into()),
        bundle_id: None,
    };
    let joined = state.connect(request, T0);
    assert!(joined.session_created);
    assert_eq!(joined.client_id, "me");
    assert_eq!(joined.session_id.len(), 26);
    assert!(state.active_session("c").is_none());
    assert!(state.active_connections().is_empty());
    assert_eq!(state.start_recording("c", RecordingOptions::default(), T0), Err(StateError::NoSession));

    assert_eq!(state.activate_session(&joined.session_id, None, T0), Ok(None));
    let session = state.active_session("c").expect("active after activation");
    assert_eq!(session.session_id, joined.session_id);
    assert_eq!(state.connection_count(&joined.session_id), 1);
    assert_eq!(state.active_connections()[0].bundle_id, joined.connection_id);
}

#[test]
fn later_connections_join_the_same_session() {
    let mut state = SimState::new(0);
    let first = join(&mut state, "c", Role::SendRecv, T0);
    let second = join(&mut state, "c", Role::RecvOnly, T0 + 1);
    let other = join(&mut state, "b", Role::SendOnly, T0 + 2);
    assert!(!second.session_created);
    assert_eq!(first.session_id, second.session_id);
    assert_ne!(first.session_id, other.session_id);
    assert_eq!(second.client_id, second.connection_id);
    let order: Vec<&str> = state.active_connections().iter().map(|c| c.connection_id.as_str()).collect();
    assert_eq!(order, [other.connection_id.as_str(), first.connection_id.as_str(), second.connection_id.as_str()]);
    let channels: Vec<&str> = state.active_sessions().map(|session| session.channel_id.as_str()).collect();
    assert_eq!(channels, ["b", "c"]);
}

#[test]
fn last_disconnect_destroys_the_session_and_its_recording() {
    let mut state = SimState::new(0);
    let joined = join(&mut state, "c", Role::SendRecv, T0);
    let ids = state.start_recording("c", RecordingOptions::default(), T0).expect("session exists");
    let left = state.disconnect(&joined.connection_id, T0 + 5_000).expect("known connection");
    assert!(left.session_destroyed);
    assert!(state.active_session("c").is_none());
    let effects = state.take_effects();
    assert_eq!(ended(&effects), [(ids.recording_id, Some(EndReason::SessionDestroyed), Some(T0 + 5_000))]);
    assert_eq!(
        effects.last(),
        Some(&Effect::SessionDestroyed { channel_id: "c".into(), session_id: joined.session_id })
    );
    assert!(state.take_effects().is_empty());
}

#[test]
fn disconnect_of_an_unknown_connection_is_an_error() {
    let mut state = SimState::new(0);
    assert_eq!(state.disconnect("nope", T0), Err(StateError::UnknownConnection));
}

#[test]
fn start_and_stop_recording() {
    let mut state = SimState::new(0);
    let joined = join(&mut state, "c", Role::SendRecv, T0);
    let ids = state.start_recording("c", expiring_in(60), T0).expect("session exists");
    assert_eq!(ids.session_id, joined.session_id);
    assert_eq!(state.start_recording("c", RecordingOptions::default(), T0), Err(StateError::AlreadyRecording));
    let session = state.active_session("c").expect("session");
    assert_eq!(state.live_recording(session).map(|r| r.recording_id.clone()), Some(ids.recording_id.clone()));

    assert_eq!(state.stop_recording("c", T0 + 10_000), Ok(ids.clone()));
    assert_eq!(state.stop_recording("c", T0 + 10_000), Err(StateError::NotRecording));
    assert_eq!(state.stop_recording("nobody", T0), Err(StateError::NoSession));
    assert_eq!(ended(&state.take_effects()), [(ids.recording_id, Some(EndReason::Stopped), Some(T0 + 10_000))]);
    let recording = state.recordings()[0].clone();
    assert_eq!(recording.started_by, StartedBy::Api);
    assert_eq!(
        recording.archives,
        [ArchiveSource { connection_id: joined.connection_id.clone(), client_id: joined.client_id }]
    );

    let again = state.start_recording("c", RecordingOptions::default(), T0 + 11_000).expect("may record again");
    assert_ne!(again.recording_id, recording.recording_id);
    assert_eq!(state.recordings().len(), 2);
}

#[test]
fn archives_list_sending_connections_present_while_recording() {
    let mut state = SimState::new(0);
    let sender = join(&mut state, "c", Role::SendOnly, T0);
    join(&mut state, "c", Role::RecvOnly, T0);
    state.start_recording("c", RecordingOptions::default(), T0).expect("session exists");
    let late_sender = join(&mut state, "c", Role::SendRecv, T0 + 1);
    join(&mut state, "c", Role::RecvOnly, T0 + 2);
    state.stop_recording("c", T0 + 3).expect("recording");
    join(&mut state, "c", Role::SendRecv, T0 + 4);
    let archived: Vec<&str> =
        state.recordings()[0].archives.iter().map(|source| source.connection_id.as_str()).collect();
    assert_eq!(archived, [sender.connection_id.as_str(), late_sender.connection_id.as_str()]);
}

#[test]
fn recordings_expire_lazily_at_their_deadline() {
    let mut state = SimState::new(0);
    join(&mut state, "c", Role::SendRecv, T0);
    let ids = state.start_recording("c", expiring_in(2), T0).expect("session exists");
    state.advance(T0 + 1_999);
    assert!(state.take_effects().is_empty());
    assert_eq!(state.start_recording("c", RecordingOptions::default(), T0 + 1_999), Err(StateError::AlreadyRecording));
    // The next operation after the deadline sees the recording gone.
    assert_eq!(state.stop_recording("c", T0 + 2_500), Err(StateError::NotRecording));
    assert_eq!(ended(&state.take_effects()), [(ids.recording_id, Some(EndReason::Expired), Some(T0 + 2_000))]);
}

#[test]
fn linger_keeps_the_session_for_a_rejoin() {
    let mut state = SimState::new(1_000);
    let first = join(&mut state, "c", Role::SendRecv, T0);
    let ids = state.start_recording("c", RecordingOptions::default(), T0).expect("session exists");
    let left = state.disconnect(&first.connection_id, T0 + 100).expect("known connection");
    assert!(!left.session_destroyed);
    assert_eq!(state.active_session("c").map(|session| session.linger_until), Some(Some(T0 + 1_100)));

    let rejoined = join(&mut state, "c", Role::SendRecv, T0 + 900);
    assert!(!rejoined.session_created);
    assert_eq!(rejoined.session_id, first.session_id);
    state.advance(T0 + 5_000);
    assert!(state.take_effects().is_empty(), "a rejoin cancels the linger");
    let session = state.active_session("c").expect("still alive");
    assert_eq!(state.live_recording(session).map(|r| r.recording_id.clone()), Some(ids.recording_id));
}

#[test]
fn linger_ends_by_destroying_the_session() {
    let mut state = SimState::new(1_000);
    let joined = join(&mut state, "c", Role::SendRecv, T0);
    let ids = state.start_recording("c", expiring_in(60), T0).expect("session exists");
    state.disconnect(&joined.connection_id, T0).expect("known connection");
    state.advance(T0 + 999);
    assert!(state.active_session("c").is_some());
    state.advance(T0 + 120_000);
    assert!(state.active_session("c").is_none());
    let effects = state.take_effects();
    // The linger ran out long before the expiry would have.
    assert_eq!(ended(&effects), [(ids.recording_id, Some(EndReason::SessionDestroyed), Some(T0 + 1_000))]);
    assert!(matches!(effects.last(), Some(Effect::SessionDestroyed { .. })));

    let fresh = join(&mut state, "c", Role::SendRecv, T0 + 130_000);
    assert!(fresh.session_created);
    assert_ne!(fresh.session_id, joined.session_id);
}

#[test]
fn activation_can_start_a_webhook_recording() {
    let mut state = SimState::new(0);
    let request = ConnectRequest {
        channel_id: "c".into(),
        role: Role::SendRecv,
        audio: json!(false),
        video: json!(false),
        client_id: None,
        bundle_id: None,
    };
    let joined = state.connect(request, T0);
    let started = state.activate_session(&joined.session_id, Some(expiring_in(30)), T0).expect("session exists");
    let ids = started.expect("a recording started");
    let recording = &state.recordings()[0];
    assert_eq!(recording.recording_id, ids.recording_id);
    assert_eq!(recording.started_by, StartedBy::SessionWebhook);
    assert_eq!(recording.expires_at(), Some(T0 + 30_000));
    assert_eq!(recording.archives.len(), 1);
}

#[test]
fn activating_a_vanished_session_is_an_error() {
    let mut state = SimState::new(0);
    assert_eq!(state.activate_session("gone", None, T0), Err(StateError::NoSession));
}
