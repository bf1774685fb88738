//! End-to-end tests of `sora-sim --legacy`, the oracle of legacy Sora: the five `Sora_20161101.*`
//! targets with legacy semantics (orders that outlive sessions, expiry, Stop, errors, listings),
//! and how legacy-started recordings show in the state and the event webhooks.

mod sim_support;

use http::StatusCode;
use serde_json::{Value, json};
use sim_support::*;

const START: &str = "Sora_20161101.StartRecording";
const STOP: &str = "Sora_20161101.StopRecording";
const GET_STARTED: &str = "Sora_20161101.GetStartedRecording";
const LIST_STARTED: &str = "Sora_20161101.ListStartedRecording";
const LIST_ARCHIVING: &str = "Sora_20161101.ListArchiving";
const LEGACY_TARGETS: [&str; 5] = [START, STOP, GET_STARTED, LIST_STARTED, LIST_ARCHIVING];
const GET_SESSION: &str = "Sora_20231220.GetSession";

impl Sim {
    /// `sora-sim --legacy` plus `extra_args`.
    fn legacy(extra_args: &[&str]) -> Self {
        Self::start(&[&["--legacy"], extra_args].concat())
    }
}

/// The keys of a JSON object, sorted; empty for anything else.
fn sorted_keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().map(|object| object.keys().cloned().collect()).unwrap_or_default();
    keys.sort();
    keys
}

#[tokio::test]
async fn without_the_flag_legacy_targets_are_unknown() {
    let sim = Sim::start(&[]);
    for target in LEGACY_TARGETS {
        sim.api(target, r#"{"channel_id":"sora","expire_time":0}"#).await.assert_error("UNKNOWN-TARGET");
    }
    assert_eq!(sim.state().await["legacy_orders"], json!([]));
}

#[tokio::test]
async fn an_order_placed_before_anyone_joins_records_every_session() {
    let sim = Sim::legacy(&[]);
    let started = sim.api_ok(START, json!({"channel_id": "sora", "expire_time": 0, "metadata": "m", "extra": 1})).await;
    let recording_id = started["recording_id"].clone();
    assert!(is_ulid(&recording_id));
    assert_eq!(started, json!({"channel_id": "sora", "expire_time": 0, "recording_id": recording_id}));

    let got = sim.api_ok(GET_STARTED, json!({"channel_id": "sora"})).await;
    let created_at = got["created_at"].clone();
    assert!(created_at.as_u64().is_some_and(|seconds| seconds > 1_600_000_000));
    assert_eq!(
        got,
        json!({
            "channel_id": "sora", "created_at": created_at, "expire_time": 0, "expired_at": created_at,
            "recording_id": recording_id, "split_only": false
        })
    );
    assert_eq!(
        sim.state().await["legacy_orders"],
        json!([{
            "channel_id": "sora", "created_at": created_at, "expire_time": 0, "expired_at": created_at,
            "recording_id": recording_id, "split_only": false, "metadata": "m"
        }])
    );

    let first = sim.connect(json!({"channel_id": "sora"})).await;
    let recording = sim.live_recording("sora").await.expect("the first session records at creation");
    assert_eq!(recording["format"], "webm");
    assert_eq!(recording["metadata"], json!({"legacy_metadata": "m"}));
    assert!(recording.get("expire_time").is_none(), "the order never expires: {recording}");
    let session = sim.api_ok(GET_SESSION, json!({"channel_id": "sora"})).await;
    assert_eq!(session["recording"], recording, "the session API shows the same recording");

    sim.disconnect(&first).await;
    let history = sim.state().await["recordings"].clone();
    assert_eq!(history[0]["end_reason"], "session-destroyed");
    assert_eq!(history[0]["started_by"], "legacy");
    assert_eq!(history[0]["legacy_recording_id"], recording_id);
    assert_ne!(history[0]["recording_id"], recording_id, "each session recording has its own internal id");

    let second = sim.connect(json!({"channel_id": "sora"})).await;
    assert_ne!(second["session_id"], first["session_id"]);
    assert!(sim.live_recording("sora").await.is_some(), "the next session records again");
    let history = sim.state().await["recordings"].clone();
    assert_eq!(history.as_array().map(Vec::len), Some(2));
    assert_eq!(history[1]["session_id"], second["session_id"]);
    assert_eq!(history[1]["legacy_recording_id"], recording_id);
    assert_eq!(sim.api_ok(GET_STARTED, json!({"channel_id": "sora"})).await, got, "still the same order");
}

#[tokio::test]
async fn an_order_records_the_session_already_there_with_its_remaining_time() {
    let sim = Sim::legacy(&[]);
    sim.connect(json!({"channel_id": "live"})).await;
    assert!(sim.live_recording("live").await.is_none());
    sim.api_ok(START, json!({"channel_id": "live", "expire_time": 3600, "metadata": {"room": 1}})).await;
    let recording = sim.live_recording("live").await.expect("records at once");
    assert!(recording["expire_time"].as_u64().is_some_and(|seconds| (3599..=3600).contains(&seconds)), "{recording}");
    assert_eq!(recording["metadata"], json!({"room": 1}));
}

#[tokio::test]
async fn an_expired_order_is_gone_and_its_recording_ends() {
    let events = WebhookReceiver::start(json!({})).await;
    let sim = Sim::legacy(&["--event-webhook-url", &events.url]);
    let started = sim.api_ok(START, json!({"channel_id": "short", "expire_time": 2})).await;
    let got = sim.api_ok(GET_STARTED, json!({"channel_id": "short"})).await;
    assert_eq!(got["expired_at"].as_u64(), got["created_at"].as_u64().map(|created_at| created_at + 2));
    let connected = sim.connect(json!({"channel_id": "short"})).await;
    assert!(sim.live_recording("short").await.is_some());

    eventually("the order to expire", || async {
        let reply = sim.api(GET_STARTED, r#"{"channel_id":"short"}"#).await;
        (reply.status == StatusCode::BAD_REQUEST).then_some(reply)
    })
    .await
    .assert_error("NOT-STARTED-RECORDING");
    assert!(sim.live_recording("short").await.is_none(), "the recording ended with the order");
    assert_eq!(sim.api_ok(LIST_STARTED, json!({})).await, json!([]));
    assert_eq!(sim.state().await["legacy_orders"], json!([]));
    sim.api(STOP, r#"{"channel_id":"short"}"#).await.assert_error("NOT-STARTED-RECORDING");

    let report = eventually("recording.report", || async { events.events_of_type("recording.report").pop() }).await;
    assert_eq!(report["end_reason"], "expired");
    assert_eq!(report["archives"], json!([connected["connection_id"]]));
    let history = sim.state().await["recordings"].clone();
    assert_eq!(report["recording_id"], history[0]["recording_id"]);
    assert_eq!(history[0]["legacy_recording_id"], started["recording_id"]);

    sim.disconnect(&connected).await;
    sim.connect(json!({"channel_id": "short"})).await;
    assert!(sim.live_recording("short").await.is_none(), "a later session does not record");
    // A new order on the channel is possible again.
    sim.api_ok(START, json!({"channel_id": "short", "expire_time": 0})).await;
}

#[tokio::test]
async fn stop_ends_the_order_and_the_recording_at_once() {
    let events = WebhookReceiver::start(json!({})).await;
    let sim = Sim::legacy(&["--event-webhook-url", &events.url]);
    let connected = sim.connect(json!({"channel_id": "sora", "client_id": "alice"})).await;
    let started = sim.api_ok(START, json!({"channel_id": "sora", "expire_time": 3600, "metadata": {"k": "v"}})).await;
    assert!(sim.live_recording("sora").await.is_some());

    assert_eq!(sim.api_ok(STOP, json!({"channel_id": "sora"})).await, json!({"channel_id": "sora"}));
    assert!(sim.live_recording("sora").await.is_none());
    sim.api(GET_STARTED, r#"{"channel_id":"sora"}"#).await.assert_error("NOT-STARTED-RECORDING");
    sim.api(STOP, r#"{"channel_id":"sora"}"#).await.assert_error("NOT-STARTED-RECORDING");

    let report = eventually("recording.report", || async { events.events_of_type("recording.report").pop() }).await;
    assert_eq!(report["end_reason"], "stopped");
    assert_eq!(report["recording_metadata"], json!({"k": "v"}));
    assert_ne!(report["recording_id"], started["recording_id"], "events carry the internal recording id");
    let archive = events.events_of_type("archive.available").pop().expect("sent before the report");
    assert_eq!(archive["connection_id"], connected["connection_id"]);
    assert_eq!(archive["client_id"], "alice");
    assert_eq!(archive["recording_id"], report["recording_id"]);

    sim.disconnect(&connected).await;
    sim.connect(json!({"channel_id": "sora"})).await;
    assert!(sim.live_recording("sora").await.is_none(), "no order, no recording");
}

#[tokio::test]
async fn a_second_start_on_an_ordered_channel_is_refused() {
    let sim = Sim::legacy(&[]);
    let first = sim.api_ok(START, json!({"channel_id": "sora", "expire_time": 3600})).await;
    sim.api(START, r#"{"channel_id":"sora","expire_time":0}"#).await.assert_error("STARTED-RECORDING");
    sim.api_ok(START, json!({"channel_id": "other", "expire_time": 0})).await;
    sim.api_ok(STOP, json!({"channel_id": "sora"})).await;
    let again = sim.api_ok(START, json!({"channel_id": "sora", "expire_time": 0})).await;
    assert_ne!(again["recording_id"], first["recording_id"]);
}

#[tokio::test]
async fn start_echoes_the_split_options_it_was_given() {
    let sim = Sim::legacy(&[]);
    let body = json!({"channel_id": "sora", "expire_time": 0, "split_duration": 3600, "split_only": true});
    let started = sim.api_ok(START, body).await;
    assert_eq!(
        started,
        json!({
            "channel_id": "sora", "expire_time": 0, "recording_id": started["recording_id"],
            "split_duration": 3600, "split_only": true
        })
    );
    let nulls = json!({"channel_id": "b", "expire_time": 5, "split_duration": null, "split_only": null});
    assert_eq!(sorted_keys(&sim.api_ok(START, nulls).await), ["channel_id", "expire_time", "recording_id"]);
    let dual = sim.api_ok(START, json!({"channel_id": "c", "expire_time": 5, "split_duration": 60})).await;
    assert_eq!(dual["split_duration"], 60);
    assert!(dual.get("split_only").is_none());
    assert_eq!(sim.api_ok(GET_STARTED, json!({"channel_id": "sora"})).await["split_only"], true);
}

#[tokio::test]
async fn bad_requests_get_legacy_errors_in_order() {
    let sim = Sim::legacy(&[]);
    let long_id = "x".repeat(256);
    let cases: &[(&str, String, &str)] = &[
        (START, "channel_id=sora&expire_time=0".into(), "INVALID-JSON"),
        (START, "[]".into(), "INVALID-JSON"),
        (START, "{".into(), "INVALID-JSON"),
        (START, String::new(), "INVALID-CHANNEL-ID"),
        (START, r#"{"channel_id":"","expire_time":0}"#.into(), "INVALID-CHANNEL-ID"),
        (START, r#"{"channel_id":7,"expire_time":0}"#.into(), "INVALID-CHANNEL-ID"),
        (START, json!({"channel_id": long_id, "expire_time": 0}).to_string(), "INVALID-CHANNEL-ID"),
        (START, r#"{"expire_time":"x"}"#.into(), "INVALID-CHANNEL-ID"),
        (START, r#"{"channel_id":"c"}"#.into(), "INVALID-EXPIRE-TIME"),
        (START, r#"{"channel_id":"c","expire_time":3600.0}"#.into(), "INVALID-EXPIRE-TIME"),
        (START, r#"{"channel_id":"c","expire_time":-1}"#.into(), "INVALID-EXPIRE-TIME"),
        (START, r#"{"channel_id":"c","expire_time":86401}"#.into(), "INVALID-EXPIRE-TIME"),
        (START, r#"{"channel_id":"c","expire_time":null,"split_duration":0}"#.into(), "INVALID-EXPIRE-TIME"),
        (START, r#"{"channel_id":"c","expire_time":0,"split_duration":0}"#.into(), "INVALID-SPLIT-DURATION"),
        (START, r#"{"channel_id":"c","expire_time":0,"split_duration":86401}"#.into(), "INVALID-SPLIT-DURATION"),
        (
            START,
            r#"{"channel_id":"c","expire_time":0,"split_duration":"1","split_only":1}"#.into(),
            "INVALID-SPLIT-DURATION",
        ),
        (START, r#"{"channel_id":"c","expire_time":0,"split_only":"true"}"#.into(), "INVALID-SPLIT-ONLY"),
        (START, r#"{"channel_id":"c","expire_time":0,"split_only":true}"#.into(), "INVALID-SPLIT-ONLY"),
        (
            START,
            r#"{"channel_id":"c","expire_time":60,"split_only":true,"split_duration":30}"#.into(),
            "INVALID-SPLIT-ONLY",
        ),
        (STOP, "nope".into(), "INVALID-JSON"),
        (STOP, String::new(), "INVALID-CHANNEL-ID"),
        (STOP, r#"{"channel_id":"c"}"#.into(), "NOT-STARTED-RECORDING"),
        (GET_STARTED, "1".into(), "INVALID-JSON"),
        (GET_STARTED, r#"{"channel_id":null}"#.into(), "INVALID-CHANNEL-ID"),
        (GET_STARTED, r#"{"channel_id":"c"}"#.into(), "NOT-STARTED-RECORDING"),
    ];
    for (target, body, error_type) in cases {
        let reply = sim.api(target, body).await;
        assert_eq!(reply.text(), format!(r#"{{"error_type":"{error_type}"}}"#), "{target} {body}");
        reply.assert_error(error_type);
    }
    assert_eq!(sim.state().await["legacy_orders"], json!([]), "nothing refused was ordered");
}

#[tokio::test]
async fn list_started_is_sorted_by_channel_and_ignores_its_body() {
    let sim = Sim::legacy(&[]);
    assert_eq!(sim.api(LIST_STARTED, "").await.json(), json!([]));
    for channel_id in ["zakuro", "sora", "a"] {
        sim.api_ok(START, json!({"channel_id": channel_id, "expire_time": 3600})).await;
    }
    let reply = sim.api(LIST_STARTED, "not json at all").await;
    assert_eq!(reply.status, StatusCode::OK);
    let listed = reply.json();
    let channels: Vec<&Value> = listed.as_array().into_iter().flatten().map(|order| &order["channel_id"]).collect();
    assert_eq!(channels, ["a", "sora", "zakuro"]);
    for order in listed.as_array().into_iter().flatten() {
        assert_eq!(
            sorted_keys(order),
            ["channel_id", "created_at", "expire_time", "expired_at", "recording_id", "split_only"]
        );
        assert_eq!(*order, sim.api_ok(GET_STARTED, json!({"channel_id": order["channel_id"]})).await);
    }
}

#[tokio::test]
async fn list_archiving_shows_sending_connections_of_recording_sessions() {
    let sim = Sim::legacy(&[]);
    assert_eq!(sim.api(LIST_ARCHIVING, "").await.json(), json!([]));
    let sender = sim
        .connect(
            json!({"channel_id": "sora", "role": "sendonly", "client_id": "alice", "bundle_id": "b1", "audio": false}),
        )
        .await;
    let both = sim.connect(json!({"channel_id": "sora"})).await;
    sim.connect(json!({"channel_id": "sora", "role": "recvonly"})).await;
    sim.connect(json!({"channel_id": "quiet"})).await;
    assert_eq!(sim.api(LIST_ARCHIVING, "").await.json(), json!([]), "nothing records yet");

    sim.api_ok(START, json!({"channel_id": "sora", "expire_time": 0})).await;
    let reply = sim.api(LIST_ARCHIVING, "ignored").await;
    assert_eq!(reply.status, StatusCode::OK);
    let listed = reply.json();
    let mut expected_ids = [sender["connection_id"].clone(), both["connection_id"].clone()];
    expected_ids.sort_by(|left, right| left.as_str().cmp(&right.as_str()));
    let ids: Vec<Value> = listed.as_array().into_iter().flatten().map(|entry| entry["connection_id"].clone()).collect();
    assert_eq!(ids, expected_ids, "sendonly and sendrecv only, sorted by connection id");

    let alice = listed.as_array().into_iter().flatten().find(|entry| entry["client_id"] == "alice").expect("listed");
    assert!(alice["seconds"].as_u64().is_some_and(|seconds| seconds <= 2), "{alice}");
    assert_eq!(
        *alice,
        json!({
            "audio": false, "bundle_id": "b1", "channel_id": "sora", "client_id": "alice",
            "connection_id": sender["connection_id"], "seconds": alice["seconds"],
            "video": {"codec_type": "VP9", "bit_rate": 1000, "vp9_params": {"profile_id": 0}}
        })
    );

    sim.api_ok(STOP, json!({"channel_id": "sora"})).await;
    assert_eq!(sim.api(LIST_ARCHIVING, "").await.json(), json!([]));
}
