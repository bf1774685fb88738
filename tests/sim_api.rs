//! End-to-end tests of the `sora-sim` binary: the Sora API targets, the control plane, the
//! request journal, fault rules and outgoing webhooks, over real sockets.

mod sim_support;

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::{Value, json};
use sim_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const START: &str = "Sora_20231220.StartRecording";
const STOP: &str = "Sora_20231220.StopRecording";
const LIST_SESSIONS: &str = "Sora_20231220.ListSessions";
const GET_SESSION: &str = "Sora_20231220.GetSession";
const LIST_CONNECTIONS: &str = "Sora_20201013.ListConnections";
const STATS: &str = "Sora_20171010.GetStatsReport";

#[tokio::test]
async fn recording_needs_a_session_and_shows_in_the_session() {
    let sim = Sim::start(&[]);
    sim.api(START, r#"{"channel_id":"room"}"#).await.assert_error("SESSION-NOT-FOUND");
    sim.api(GET_SESSION, r#"{"channel_id":"room"}"#).await.assert_error("SESSION-NOT-FOUND");
    assert_eq!(sim.api_ok(LIST_SESSIONS, json!({})).await, json!([]));

    let connected = sim.connect(json!({"channel_id": "room"})).await;
    let session_id = connected["session_id"].clone();
    assert!(is_ulid(&session_id) && is_ulid(&connected["connection_id"]));
    assert_eq!(connected["client_id"], connected["connection_id"]);

    let sessions = sim.api_ok(LIST_SESSIONS, json!({"local": true})).await;
    assert_eq!(sessions.as_array().map(Vec::len), Some(1));
    assert_eq!(sessions[0]["channel_id"], "room");
    assert_eq!(sessions[0]["session_id"], session_id);
    assert_eq!(sessions[0]["connections"], 1);
    assert!(sessions[0]["created_timestamp"].as_u64().is_some_and(|seconds| seconds > 1_600_000_000));
    assert!(sessions[0].get("recording").is_none());

    let started = sim
        .api_ok(START, json!({"channel_id": "room", "expire_time": 600, "split_only": false, "metadata": {"k": "v"}}))
        .await;
    let recording_id = started["recording_id"].clone();
    assert!(is_ulid(&recording_id));
    assert_eq!(
        started,
        json!({
            "channel_id": "room", "session_id": session_id, "recording_id": recording_id, "format": "webm",
            "expire_time": 600, "split_only": false, "metadata": {"k": "v"}
        })
    );
    sim.api(START, r#"{"channel_id":"room"}"#).await.assert_error("STARTED-RECORDING");

    let session = sim.api_ok(GET_SESSION, json!({"channel_id": "room"})).await;
    let recording = &session["recording"];
    assert_eq!(recording["recording_id"], recording_id);
    assert_eq!(recording["expire_time"], 600);
    assert_eq!(recording["split_only"], false);
    assert_eq!(recording["format"], "webm");
    assert_eq!(recording["metadata"], json!({"k": "v"}));
    assert!(recording["start_timestamp"].is_u64());

    let stopped = sim.api_ok(STOP, json!({"channel_id": "room"})).await;
    assert_eq!(stopped, json!({"channel_id": "room", "session_id": session_id, "recording_id": recording_id}));
    sim.api(STOP, r#"{"channel_id":"room"}"#).await.assert_error("NOT-STARTED-RECORDING");
    sim.api(STOP, r#"{"channel_id":"elsewhere"}"#).await.assert_error("SESSION-NOT-FOUND");
    assert!(sim.api_ok(GET_SESSION, json!({"channel_id": "room"})).await.get("recording").is_none());

    let history = sim.state().await["recordings"].clone();
    assert_eq!(history.as_array().map(Vec::len), Some(1));
    assert_eq!(history[0]["end_reason"], "stopped");
    assert_eq!(history[0]["started_by"], "api");
    assert!(history[0]["ended_at"].is_u64());
}

#[tokio::test]
async fn list_connections_has_the_sora_fields_in_channel_then_join_order() {
    let sim = Sim::start(&[]);
    let first = sim.connect(json!({"channel_id": "b", "role": "sendonly", "client_id": "alice"})).await;
    let second = sim.connect(json!({"channel_id": "b", "role": "recvonly", "video": false})).await;
    let third = sim.connect(json!({"channel_id": "a"})).await;
    assert_eq!(first["session_id"], second["session_id"]);
    assert_ne!(first["session_id"], third["session_id"]);

    let connections = sim.api_ok(LIST_CONNECTIONS, json!({})).await;
    let ids: Vec<&Value> =
        connections.as_array().expect("top-level array").iter().map(|c| &c["connection_id"]).collect();
    assert_eq!(ids, [&third["connection_id"], &first["connection_id"], &second["connection_id"]]);
    let alice = &connections[1];
    let mut keys: Vec<&String> = alice.as_object().expect("object").keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "audio",
            "bundle_id",
            "channel_id",
            "client_id",
            "connection_id",
            "created_timestamp",
            "role",
            "session_id",
            "video"
        ]
    );
    assert_eq!(alice["client_id"], "alice");
    assert_eq!(alice["role"], "sendonly");
    assert_eq!(alice["channel_id"], "b");
    assert_eq!(alice["session_id"], first["session_id"]);
    assert_eq!(alice["audio"], json!({"codec_type": "OPUS"}));
    assert_eq!(alice["video"], json!({"codec_type": "VP9", "bit_rate": 1000, "vp9_params": {"profile_id": 0}}));
    assert_eq!(connections[2]["video"], json!(false));
    assert_eq!(connections[2]["role"], "recvonly");
    assert_eq!(sim.state().await["connections"], connections);
}

#[tokio::test]
async fn stats_report_is_byte_identical_every_time() {
    let sim = Sim::start(&[]);
    let first = sim.api(STATS, "").await;
    let second = sim.api(STATS, r#"{"ignored":true}"#).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.body, second.body);
    assert!(first.json().as_array().is_some_and(|report| !report.is_empty()));
}

#[tokio::test]
async fn bad_requests_get_sora_style_errors() {
    let sim = Sim::start(&[]);
    sim.send(Method::POST, "/", &[], "{}").await.assert_error("UNKNOWN-TARGET");
    sim.api("", "{}").await.assert_error("UNKNOWN-TARGET");
    sim.api("Sora_20161101.StartRecording", "{}").await.assert_error("UNKNOWN-TARGET");
    sim.api(START, "channel_id=room").await.assert_error("INVALID-JSON");
    sim.api(START, "[]").await.assert_error("INVALID-JSON");
    sim.api(START, "").await.assert_error("INVALID-CHANNEL-ID");
    sim.api(START, r#"{"channel_id":""}"#).await.assert_error("INVALID-CHANNEL-ID");
    sim.api(START, r#"{"channel_id":"c","expire_time":0}"#).await.assert_error("INVALID-EXPIRE-TIME");
    sim.api(START, r#"{"channel_id":"c","split_duration":86401}"#).await.assert_error("INVALID-SPLIT-DURATION");
    sim.api(START, r#"{"channel_id":"c","split_only":"no"}"#).await.assert_error("INVALID-SPLIT-ONLY");
    sim.api(START, r#"{"channel_id":"c","metadata":"m"}"#).await.assert_error("INVALID-METADATA");
    sim.api(START, r#"{"channel_id":"c","format":"ogg"}"#).await.assert_error("INVALID-FORMAT");

    let not_post = sim.send(Method::GET, "/", &[("x-sora-target", LIST_SESSIONS)], "").await;
    assert_eq!(not_post.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(not_post.text(), r#"{"error_type":"METHOD-NOT-ALLOWED"}"#);

    let bad_connect = sim.send(Method::POST, "/sim/connect", &[], r#"{"channel_id":"c","role":"x"}"#).await;
    bad_connect.assert_error("INVALID-ROLE");
    let unknown = sim.send(Method::POST, "/sim/disconnect", &[], r#"{"connection_id":"nope"}"#).await;
    unknown.assert_error("CONNECTION-NOT-FOUND");
    // The list targets ignore their body entirely, even when it is not JSON.
    assert_eq!(sim.api(LIST_SESSIONS, "not json").await.status, StatusCode::OK);
}

#[tokio::test]
async fn journal_keeps_exact_bytes_and_headers() {
    let sim = Sim::start(&[]);
    let body = "{ \"channel_id\" :\"j\" ,\"x\":[1,  2]}";
    let headers = [("X-Sora-Target", START), ("X-Custom", "v1"), ("content-type", "text/plain")];
    sim.send(Method::POST, "/api?a=b%20c", &headers, body).await;
    sim.api(STATS, "").await;
    sim.connect(json!({"channel_id": "not-journaled"})).await;

    let all = sim.control(Method::GET, "/sim/requests", json!({})).await;
    assert_eq!(all.as_array().map(Vec::len), Some(2), "control-plane calls are not journaled: {all}");
    let filtered = sim.control(Method::GET, "/sim/requests?target=Sora_20231220.StartRecording", json!({})).await;
    let [entry] = filtered.as_array().cloned().expect("array").try_into().expect("exactly one StartRecording");
    assert_eq!(entry["body"], body);
    assert_eq!(entry["method"], "POST");
    assert_eq!(entry["path"], "/api");
    assert_eq!(entry["query"], "a=b%20c");
    assert_eq!(entry["target"], START);
    assert_eq!(entry["seq"], 1);
    let received: Vec<Value> = entry["headers"].as_array().expect("header list").clone();
    let position = |name: &str| received.iter().position(|pair| pair[0] == name);
    assert!(received.contains(&json!(["x-custom", "v1"])));
    assert!(received.contains(&json!(["content-type", "text/plain"])));
    assert!(position("x-sora-target") < position("x-custom"), "received order: {received:?}");
    let later = sim.control(Method::GET, "/sim/requests?since=1", json!({})).await;
    assert_eq!(later[0]["target"], STATS);
    assert_eq!(later[0]["query"], Value::Null);
}

#[tokio::test]
async fn fault_rules_replace_delay_and_drop_answers() {
    let sim = Sim::start(&[]);
    let rule = json!({"target": STATS, "status": 503, "body": "{\"error_type\":\"BOOM\"}", "times": 1});
    sim.control(Method::POST, "/sim/faults", rule).await;
    let faulted = sim.api(STATS, "").await;
    assert_eq!(faulted.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(faulted.headers["content-type"], "application/json");
    assert_eq!(faulted.text(), r#"{"error_type":"BOOM"}"#);
    assert_eq!(sim.api(STATS, "").await.status, StatusCode::OK, "the rule applied once only");
    assert_eq!(sim.api(LIST_SESSIONS, "").await.status, StatusCode::OK, "other targets untouched");

    sim.control(Method::POST, "/sim/faults", json!({"drop": true, "target": LIST_SESSIONS})).await;
    let mut stream = TcpStream::connect(sim.address()).await.expect("connect to sora-sim");
    let request = format!(
        "POST / HTTP/1.1\r\nhost: {}\r\nx-sora-target: {LIST_SESSIONS}\r\ncontent-length: 2\r\n\r\n{{}}",
        sim.address()
    );
    stream.write_all(request.as_bytes()).await.expect("send request");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut answer)).await.expect("the connection closes");
    assert!(read.is_err() || answer.is_empty(), "got an answer: {:?}", String::from_utf8_lossy(&answer));
    let journal = sim.control(Method::GET, "/sim/requests?target=Sora_20231220.ListSessions", json!({})).await;
    assert_eq!(journal.as_array().map(Vec::len), Some(2), "dropped requests are journaled too");

    let cleared = sim.control(Method::DELETE, "/sim/faults", json!({})).await;
    assert_eq!(cleared, json!({"cleared": 1}));
    sim.control(Method::POST, "/sim/faults", json!({"latency_ms": 300})).await;
    let started = Instant::now();
    let delayed = sim.api(STATS, "").await;
    assert!(started.elapsed() >= Duration::from_millis(300), "latency applied");
    assert_eq!(delayed.status, StatusCode::OK, "latency alone keeps the real answer");
}

#[tokio::test]
async fn no_session_error_can_be_renamed() {
    let sim = Sim::start(&["--no-session-error", "NO-SUCH-SESSION"]);
    sim.api(START, r#"{"channel_id":"c"}"#).await.assert_error("NO-SUCH-SESSION");
    sim.api(GET_SESSION, r#"{"channel_id":"c"}"#).await.assert_error("NO-SUCH-SESSION");
}

#[tokio::test]
async fn session_webhook_reply_switches_recording_on() {
    let reply = json!({"recording": true, "expire_time": 120, "recording_metadata": {"room": "r1"}, "format": "mp4"});
    let receiver = WebhookReceiver::start(reply).await;
    let sim = Sim::start(&["--session-webhook-url", &receiver.url]);
    let connected = sim.connect(json!({"channel_id": "hooked"})).await;

    let created = receiver.events_of_type("session.created");
    assert_eq!(created.len(), 1, "sent before /sim/connect answered");
    assert_eq!(created[0]["channel_id"], "hooked");
    assert_eq!(created[0]["session_id"], connected["session_id"]);
    assert!(
        is_ulid(&created[0]["id"]) && created[0]["timestamp"].is_string() && created[0]["created_timestamp"].is_u64()
    );

    let session = sim.api_ok(GET_SESSION, json!({"channel_id": "hooked"})).await;
    let recording = &session["recording"];
    assert_eq!(recording["expire_time"], 120);
    assert_eq!(recording["metadata"], json!({"room": "r1"}));
    assert_eq!(recording["format"], "mp4");
    assert_eq!(sim.state().await["recordings"][0]["started_by"], "session-webhook");
    sim.api(START, r#"{"channel_id":"hooked"}"#).await.assert_error("STARTED-RECORDING");

    let second = sim.connect(json!({"channel_id": "hooked"})).await;
    assert_eq!(receiver.events_of_type("session.created").len(), 1, "joining does not create a session");
    for connection in [&connected, &second] {
        sim.control(Method::POST, "/sim/disconnect", json!({"connection_id": connection["connection_id"]})).await;
    }
    let destroyed =
        eventually("session.destroyed", || async { receiver.events_of_type("session.destroyed").into_iter().next() })
            .await;
    assert_eq!(destroyed["session_id"], connected["session_id"]);
    assert_eq!(sim.state().await["recordings"][0]["end_reason"], "session-destroyed");
}

#[tokio::test]
async fn event_webhooks_follow_a_stop() {
    let receiver = WebhookReceiver::start(json!({})).await;
    let sim = Sim::start(&["--event-webhook-url", &receiver.url]);
    let sender = sim.connect(json!({"channel_id": "ev", "client_id": "s"})).await;
    let viewer = sim.connect(json!({"channel_id": "ev", "role": "recvonly"})).await;
    let started = sim.api_ok(START, json!({"channel_id": "ev", "metadata": {"m": 1}})).await;
    let late_sender = sim.connect(json!({"channel_id": "ev", "role": "sendonly"})).await;
    assert!(receiver.all().is_empty(), "nothing is sent while recording");
    sim.api_ok(STOP, json!({"channel_id": "ev"})).await;

    let events = eventually("three recording events", || async {
        let events = receiver.all();
        (events.len() >= 3).then_some(events)
    })
    .await;
    let types: Vec<&Value> = events.iter().map(|event| &event["type"]).collect();
    assert_eq!(types, ["archive.available", "archive.available", "recording.report"]);
    assert_eq!(events[0]["connection_id"], sender["connection_id"]);
    assert_eq!(events[0]["client_id"], "s");
    assert_eq!(events[1]["connection_id"], late_sender["connection_id"]);
    for event in &events {
        assert_eq!(event["recording_id"], started["recording_id"]);
        assert_eq!(event["session_id"], started["session_id"]);
        assert_eq!(event["channel_id"], "ev");
        assert_eq!(event["recording_metadata"], json!({"m": 1}));
        assert!(is_ulid(&event["id"]) && event["filename"].is_string() && event["file_path"].is_string());
    }
    assert_eq!(events[0]["format"], "webm");
    assert_eq!(events[0]["split_only"], false);
    let report = &events[2];
    assert_eq!(report["end_reason"], "stopped");
    assert_eq!(report["archives"], json!([sender["connection_id"], late_sender["connection_id"]]));
    assert!(report["start_timestamp"].is_u64() && report["end_timestamp"].is_u64());
    assert!(!report["archives"].as_array().into_iter().flatten().any(|id| *id == viewer["connection_id"]));
}

#[tokio::test]
async fn recordings_expire_without_any_request() {
    let receiver = WebhookReceiver::start(json!({})).await;
    let sim = Sim::start(&["--event-webhook-url", &receiver.url]);
    let sender = sim.connect(json!({"channel_id": "x"})).await;
    let started = sim.api_ok(START, json!({"channel_id": "x", "expire_time": 1})).await;
    // Only the receiver is polled: the emulator's own ticker must notice the expiry.
    let report = eventually("recording.report for the expiry", || async {
        receiver.events_of_type("recording.report").into_iter().next()
    })
    .await;
    assert_eq!(report["recording_id"], started["recording_id"]);
    assert_eq!(report["end_reason"], "expired");
    assert_eq!(report["archives"], json!([sender["connection_id"]]));
    assert!(sim.api_ok(GET_SESSION, json!({"channel_id": "x"})).await.get("recording").is_none());
}

#[tokio::test]
async fn last_disconnect_destroys_the_session_at_once_by_default() {
    let sim = Sim::start(&[]);
    let connected = sim.connect(json!({"channel_id": "d"})).await;
    sim.api_ok(START, json!({"channel_id": "d"})).await;
    let left = sim.control(Method::POST, "/sim/disconnect", json!({"connection_id": connected["connection_id"]})).await;
    assert_eq!(
        left,
        json!({"connection_id": connected["connection_id"], "session_id": connected["session_id"], "session_destroyed": true})
    );
    assert_eq!(sim.api_ok(LIST_SESSIONS, json!({})).await, json!([]));
    assert_eq!(sim.state().await["recordings"][0]["end_reason"], "session-destroyed");
    let rejoined = sim.connect(json!({"channel_id": "d"})).await;
    assert_ne!(rejoined["session_id"], connected["session_id"]);
}

#[tokio::test]
async fn linger_keeps_the_session_for_a_rejoin() {
    let sim = Sim::start(&["--session-linger", "2"]);
    let first = sim.connect(json!({"channel_id": "l"})).await;
    let left = sim.control(Method::POST, "/sim/disconnect", json!({"connection_id": first["connection_id"]})).await;
    assert_eq!(left["session_destroyed"], false);
    let rejoined = sim.connect(json!({"channel_id": "l"})).await;
    assert_eq!(rejoined["session_id"], first["session_id"]);

    sim.control(Method::POST, "/sim/disconnect", json!({"connection_id": rejoined["connection_id"]})).await;
    let sessions = sim.api_ok(LIST_SESSIONS, json!({})).await;
    assert_eq!(sessions[0]["connections"], 0, "lingering: {sessions}");
    eventually("the lingering session to go", || async {
        (sim.api_ok(LIST_SESSIONS, json!({})).await == json!([])).then_some(())
    })
    .await;
}

#[test]
fn the_emulator_refuses_flags_it_could_not_honour() {
    for args in [
        ["--webhook-basic-auth", "nocolon"],
        ["--session-webhook-url", "not a url"],
        ["--event-webhook-url", "https://example.com/events"],
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_sora-sim"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(args[0]) && stderr.contains("expected"), "{stderr}");
    }
}
