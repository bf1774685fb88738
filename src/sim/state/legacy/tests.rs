//! Unit tests of legacy orders in the state machine: recording across sessions, Stop, expiry.

use serde_json::json;

use super::super::{ConnectRequest, Effect, Joined, RecordingOptions, Role, StateError};
use super::*;

/// 0.4 s past a whole second, so second rounding shows.
const T0: Millis = 1_700_000_000_400;

fn order(channel_id: &str, expire_time: u64) -> LegacyStart {
    LegacyStart {
        channel_id: channel_id.into(),
        expire_time,
        split_duration: None,
        split_only: None,
        metadata: Some(json!("m")),
    }
}

fn join(state: &mut SimState, channel_id: &str, now: Millis) -> Joined {
    let request = ConnectRequest {
        channel_id: channel_id.into(),
        role: Role::SendRecv,
        audio: json!(false),
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

/// The channel's live recording: (legacy id, expire_time), if the channel records.
fn live(state: &SimState, channel_id: &str) -> Option<(Option<String>, Option<u64>)> {
    let session = state.active_session(channel_id)?;
    let recording = state.live_recording(session)?;
    Some((recording.legacy_recording_id.clone(), recording.options.expire_time))
}

fn ended(effects: &[Effect]) -> Vec<(String, Option<EndReason>, Option<Millis>)> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::RecordingEnded(recording) => {
                Some((recording.session_id.clone(), recording.end_reason, recording.ended_at))
            }
            Effect::SessionDestroyed { .. } => None,
        })
        .collect()
}

#[test]
fn an_order_before_anyone_joins_records_every_later_session() {
    let mut state = SimState::new(0);
    let placed = state.start_legacy_order(order("c", 60), T0).expect("no order yet");
    assert_eq!(state.legacy_order("c"), Some(&placed));
    assert!(state.recordings().is_empty(), "nobody to record yet");

    let first = join(&mut state, "c", T0 + 10_000);
    assert_eq!(live(&state, "c"), Some((Some(placed.recording_id.clone()), Some(50))));
    let recording = &state.recordings()[0];
    assert_eq!(recording.started_by, StartedBy::Legacy);
    assert_eq!(recording.options.metadata, json!({"legacy_metadata": "m"}).as_object().cloned());

    state.disconnect(&first.connection_id, T0 + 20_000).expect("known connection");
    assert_eq!(
        ended(&state.take_effects()),
        [(first.session_id, Some(EndReason::SessionDestroyed), Some(T0 + 20_000))]
    );
    assert_eq!(state.legacy_order("c"), Some(&placed), "the order outlives the session");

    let second = join(&mut state, "c", T0 + 30_000);
    assert_eq!(live(&state, "c"), Some((Some(placed.recording_id.clone()), Some(30))));
    assert_eq!(state.recordings().len(), 2);
    assert_ne!(state.recordings()[1].recording_id, state.recordings()[0].recording_id);
    assert_eq!(state.recordings()[1].session_id, second.session_id);
}

#[test]
fn an_order_records_the_current_session_at_once() {
    let mut state = SimState::new(0);
    join(&mut state, "c", T0);
    let placed = state.start_legacy_order(order("c", 0), T0 + 1_000).expect("no order yet");
    assert_eq!(live(&state, "c"), Some((Some(placed.recording_id), None)));
    assert_eq!(state.start_legacy_order(order("c", 0), T0 + 2_000), Err(LegacyOrderError::AlreadyOrdered));
}

#[test]
fn stop_ends_the_order_and_its_recording() {
    let mut state = SimState::new(0);
    let joined = join(&mut state, "c", T0);
    state.start_legacy_order(order("c", 0), T0).expect("no order yet");
    state.stop_legacy_order("c", T0 + 5_000).expect("standing order");
    assert_eq!(ended(&state.take_effects()), [(joined.session_id, Some(EndReason::Stopped), Some(T0 + 5_000))]);
    assert_eq!(state.legacy_order("c"), None);
    assert_eq!(state.stop_legacy_order("c", T0 + 6_000), Err(LegacyOrderError::NotOrdered));
    state.disconnect(&joined.connection_id, T0 + 7_000).expect("known connection");
    join(&mut state, "c", T0 + 8_000);
    assert_eq!(live(&state, "c"), None, "no order, no recording");
}

#[test]
fn expiry_ends_the_order_and_its_recording_at_the_whole_second_deadline() {
    let mut state = SimState::new(0);
    let joined = join(&mut state, "c", T0);
    let placed = state.start_legacy_order(order("c", 2), T0).expect("no order yet");
    assert_eq!(placed.expired_at(), 1_700_000_002);
    assert_eq!(live(&state, "c"), Some((Some(placed.recording_id), Some(2))));
    state.advance(1_700_000_001_999);
    assert!(state.legacy_order("c").is_some());
    state.advance(1_700_000_003_000);
    assert_eq!(state.legacy_order("c"), None);
    assert_eq!(ended(&state.take_effects()), [(joined.session_id, Some(EndReason::Expired), Some(1_700_000_002_000))]);
    state.disconnect(&joined.connection_id, T0 + 4_000).expect("known connection");
    join(&mut state, "c", T0 + 5_000);
    assert_eq!(live(&state, "c"), None, "an expired order records nothing");
}

#[test]
fn a_session_lingering_out_before_the_deadline_ends_as_destroyed() {
    let mut state = SimState::new(1_000);
    let joined = join(&mut state, "c", T0);
    state.start_legacy_order(order("c", 10), T0).expect("no order yet");
    state.disconnect(&joined.connection_id, T0 + 1_000).expect("known connection");
    state.advance(T0 + 60_000);
    let effects = state.take_effects();
    assert_eq!(ended(&effects), [(joined.session_id, Some(EndReason::SessionDestroyed), Some(T0 + 2_000))]);
    assert_eq!(state.legacy_order("c"), None);
}

#[test]
fn recordings_the_order_did_not_start_are_left_alone() {
    let mut state = SimState::new(0);
    join(&mut state, "c", T0);
    let api = state.start_recording("c", RecordingOptions::default(), T0).expect("session exists");
    state.start_legacy_order(order("c", 0), T0).expect("no order yet");
    assert_eq!(live(&state, "c"), Some((None, None)), "the session records already");
    state.stop_legacy_order("c", T0 + 1_000).expect("standing order");
    assert!(state.take_effects().is_empty());
    assert_eq!(state.stop_recording("c", T0 + 2_000), Ok(api));
}

#[test]
fn a_session_webhook_reply_asking_to_record_wins_over_the_order() {
    let mut state = SimState::new(0);
    state.start_legacy_order(order("c", 0), T0).expect("no order yet");
    let request = ConnectRequest {
        channel_id: "c".into(),
        role: Role::SendRecv,
        audio: json!(false),
        video: json!(false),
        client_id: None,
        bundle_id: None,
    };
    let joined = state.connect(request, T0);
    assert!(state.active_session("c").is_none(), "pending until activated");
    let options = RecordingOptions { expire_time: Some(5), ..RecordingOptions::default() };
    state.activate_session(&joined.session_id, Some(options), T0).expect("session exists");
    assert_eq!(live(&state, "c"), Some((None, Some(5))));
    assert_eq!(state.activate_session("gone", None, T0), Err(StateError::NoSession));
}

#[test]
fn orders_list_by_channel() {
    let mut state = SimState::new(0);
    for channel_id in ["zakuro", "sora", "b"] {
        state.start_legacy_order(order(channel_id, 0), T0).expect("no order yet");
    }
    let channels: Vec<&str> = state.legacy_orders().map(|order| order.channel_id.as_str()).collect();
    assert_eq!(channels, ["b", "sora", "zakuro"]);
}
