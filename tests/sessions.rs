//! Legacy recording semantics across sessions (cases 10, 11, 14, 15 of the real-client cases),
//! the session webhook and its forwarding, the reconciler, expiry, and upstream failure on Start.
//! The session webhook is always sent by `sora-sim` itself, never faked by the test.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const START: &str = "Sora_20161101.StartRecording";
const STOP: &str = "Sora_20161101.StopRecording";
const GET_STARTED: &str = "Sora_20161101.GetStartedRecording";

/// Reconciler so slow it never acts during a test after its first pass: the webhook must do the work.
fn webhook_only(options: ShimOptions) -> ShimOptions {
    options.env("SORA_SHIM__RECONCILER__INTERVAL_MS", "600000")
}

fn fast_reconciler(options: ShimOptions) -> ShimOptions {
    options.env("SORA_SHIM__RECONCILER__INTERVAL_MS", "200")
}

#[tokio::test]
async fn case_10_start_before_anyone_joins() {
    let (sim, shim, _) = start_pair(webhook_only).await;
    let reply = api(&shim.url, START, json!({"channel_id": "lobby", "expire_time": 600})).await;
    assert_eq!(reply.status, 200);
    let recording_id = reply.json()["recording_id"].clone();
    assert!(is_ulid(&recording_id));
    assert!(sim_session(&sim, "lobby").await.is_none());

    connect(&sim, "lobby").await;
    // The emulator applied the webhook reply before answering the connect: recording from the start.
    let session = sim_session(&sim, "lobby").await.unwrap();
    let recording = &session["recording"];
    assert!(recording.is_object(), "{session}");
    let expire_time = recording["expire_time"].as_i64().unwrap();
    assert!((598..=600).contains(&expire_time), "remaining expire_time {expire_time}");
    assert_eq!(recording["format"], "webm");
    let started = recordings_of(&sim, "lobby").await;
    assert_eq!(started.len(), 1);
    assert_eq!(started[0]["started_by"], "session-webhook");
    assert_eq!(api(&shim.url, GET_STARTED, json!({"channel_id": "lobby"})).await.json()["recording_id"], recording_id);
}

#[tokio::test]
async fn case_11_recording_across_sessions() {
    let (sim, shim, options) = start_pair(webhook_only).await;
    let started = api(&shim.url, START, json!({"channel_id": "c", "expire_time": 3600})).await.json();
    let first = connect(&sim, "c").await;
    let first_session = sim_session(&sim, "c").await.unwrap();
    assert!(first_session["recording"].is_object());

    let left = disconnect(&sim, &first).await;
    assert_eq!(left["session_destroyed"], true);
    assert!(sim_session(&sim, "c").await.is_none());
    let still = api(&shim.url, GET_STARTED, json!({"channel_id": "c"})).await;
    assert_eq!(still.status, 200);
    assert_eq!(still.json()["recording_id"], started["recording_id"]);

    connect(&sim, "c").await;
    let second_session = sim_session(&sim, "c").await.unwrap();
    assert_ne!(second_session["session_id"], first_session["session_id"]);
    assert!(second_session["recording"].is_object(), "the new session records too");

    let stop = api(&shim.url, STOP, json!({"channel_id": "c"})).await;
    assert_eq!((stop.status, stop.text()), (200, r#"{"channel_id":"c"}"#.to_owned()));
    wait_recording(&sim, "c", false).await;
    let recordings = recordings_of(&sim, "c").await;
    assert_eq!(recordings.len(), 2);
    assert_eq!(recordings[0]["end_reason"], "session-destroyed");
    assert_eq!(recordings[1]["end_reason"], "stopped");

    // Both legs were recorded against the one order, and the finished order left the store.
    wait_for("the stopped order to leave the store", Duration::from_secs(5), || async {
        stored_orders(&options.store).is_empty().then_some(())
    })
    .await;
}

#[tokio::test]
async fn case_14_expiry_mid_way() {
    let (sim, shim, options) = start_pair(webhook_only).await;
    let begun = Instant::now();
    assert_eq!(api(&shim.url, START, json!({"channel_id": "short", "expire_time": 2})).await.status, 200);
    assert_eq!(api(&shim.url, GET_STARTED, json!({"channel_id": "short"})).await.status, 200);
    // After 3 s the order is gone for every target.
    tokio::time::sleep(Duration::from_secs(3).saturating_sub(begun.elapsed())).await;
    api(&shim.url, GET_STARTED, json!({"channel_id": "short"})).await.assert_legacy_error(400, "NOT-STARTED-RECORDING");
    assert_eq!(api(&shim.url, "Sora_20161101.ListStartedRecording", json!({})).await.text(), "[]");
    // A session created after that does not record.
    connect(&sim, "short").await;
    let session = sim_session(&sim, "short").await.unwrap();
    assert!(session.get("recording").is_none(), "{session}");
    assert!(recordings_of(&sim, "short").await.is_empty());
    // Hidden from every target, the row itself waits for the sweep (the reconciler is idle here;
    // `expired_orders_are_swept_from_the_store` covers the deletion).
    let stored: Vec<String> = stored_orders(&options.store).into_iter().map(|(_, channel, _)| channel).collect();
    assert_eq!(stored, ["short"]);
}

#[tokio::test]
async fn expiry_during_a_session_ends_the_upstream_recording() {
    let (sim, shim, _) = start_pair(webhook_only).await;
    connect(&sim, "mid").await;
    assert_eq!(api(&shim.url, START, json!({"channel_id": "mid", "expire_time": 2})).await.status, 200);
    assert!(sim_session(&sim, "mid").await.unwrap()["recording"].is_object());
    wait_recording(&sim, "mid", false).await;
    assert_eq!(recordings_of(&sim, "mid").await[0]["end_reason"], "expired");
}

#[tokio::test]
async fn expired_orders_are_swept_from_the_store() {
    let (_sim, shim, options) = start_pair(fast_reconciler).await;
    assert_eq!(api(&shim.url, START, json!({"channel_id": "sweep", "expire_time": 1})).await.status, 200);
    assert_eq!(stored_orders(&options.store).len(), 1);
    // Nobody reads the order again: the periodic sweep alone deletes it.
    wait_for("the sweep", Duration::from_secs(10), || async { stored_orders(&options.store).is_empty().then_some(()) })
        .await;
}

#[tokio::test]
async fn case_15_metadata_reaches_the_upstream_as_object_or_wrapped() {
    let (sim, shim, _) = start_pair(webhook_only).await;
    api(&shim.url, START, json!({"channel_id": "m-object", "expire_time": 0, "metadata": {"room": "r1"}})).await;
    api(&shim.url, START, json!({"channel_id": "m-text", "expire_time": 0, "metadata": "r1"})).await;
    connect(&sim, "m-object").await;
    connect(&sim, "m-text").await;
    assert_eq!(sim_session(&sim, "m-object").await.unwrap()["recording"]["metadata"], json!({"room": "r1"}));
    assert_eq!(sim_session(&sim, "m-text").await.unwrap()["recording"]["metadata"], json!({"legacy_metadata": "r1"}));
}

#[tokio::test]
async fn split_options_reach_the_session_through_the_webhook() {
    let (sim, shim, _) = start_pair(webhook_only).await;
    api(&shim.url, START, json!({"channel_id": "split", "expire_time": 0, "split_duration": 3600, "split_only": true}))
        .await;
    connect(&sim, "split").await;
    let recording = sim_session(&sim, "split").await.unwrap()["recording"].clone();
    assert_eq!((recording["split_only"].as_bool(), recording["split_duration"].as_i64()), (Some(true), Some(3600)));
    assert!(recording.get("expire_time").is_none() || recording["expire_time"].is_null());
}

#[tokio::test]
async fn reconciler_starts_a_recording_whose_webhook_was_missed() {
    let sim = start_sim(&[]);
    let options = fast_reconciler(ShimOptions::new(&sim.url));
    let shim = start_shim(&options);
    // The emulator's session webhook is not wired to the shim: the webhook is "missed".
    assert_eq!(api(&shim.url, START, json!({"channel_id": "missed", "expire_time": 0})).await.status, 200);
    connect(&sim, "missed").await;
    wait_recording(&sim, "missed", true).await;
    assert_eq!(recordings_of(&sim, "missed").await[0]["started_by"], "api");
}

#[tokio::test]
async fn reconciler_stops_a_recording_whose_order_was_stopped_while_the_upstream_was_unreachable() {
    let (sim, shim, options) = start_pair(fast_reconciler).await;
    assert_eq!(api(&shim.url, START, json!({"channel_id": "stuck", "expire_time": 0})).await.status, 200);
    connect(&sim, "stuck").await;
    wait_recording(&sim, "stuck", true).await;

    // The upstream drops every StopRecording: the shim's own stop fails.
    add_fault(&sim, json!({"target": "Sora_20231220.StopRecording", "drop": true})).await;
    assert_eq!(api(&shim.url, STOP, json!({"channel_id": "stuck"})).await.status, 200);
    api(&shim.url, GET_STARTED, json!({"channel_id": "stuck"})).await.assert_legacy_error(400, "NOT-STARTED-RECORDING");
    assert!(sim_session(&sim, "stuck").await.unwrap()["recording"].is_object(), "still recording upstream");
    assert_eq!(stored_orders(&options.store).len(), 1, "the stopped order is kept while its recording runs");

    // The upstream answers again: the reconciler stops the recording and forgets the order.
    clear_faults(&sim).await;
    wait_recording(&sim, "stuck", false).await;
    assert_eq!(recordings_of(&sim, "stuck").await[0]["end_reason"], "stopped");
    wait_for("the finished order to leave the store", Duration::from_secs(5), || async {
        stored_orders(&options.store).is_empty().then_some(())
    })
    .await;
}

#[tokio::test]
async fn two_shims_reconciling_one_store_start_each_recording_once_and_stop_only_stopped_orders() {
    // No session webhook: the two reconcilers alone make the upstream match the shared orders.
    let sim = start_sim(&[]);
    let one = ShimOptions::new(&sim.url).env("SORA_SHIM__RECONCILER__INTERVAL_MS", "100");
    let two = ShimOptions { store: one.store.clone(), ..one.clone() };
    let (first, second) = (start_shim(&one), start_shim(&two));
    let channels: Vec<String> = (0..10).map(|i| format!("r{i}")).collect();
    for (i, channel) in channels.iter().enumerate() {
        let shim = if i % 2 == 0 { &first } else { &second };
        assert_eq!(api(&shim.url, START, json!({"channel_id": channel, "expire_time": 0})).await.status, 200);
        connect(&sim, channel).await;
    }
    // Both replicas answer from the one store.
    let listed = |shim: &Process| {
        let url = shim.url.clone();
        async move { api(&url, "Sora_20161101.ListStartedRecording", json!({})).await.json() }
    };
    assert_eq!(listed(&first).await, listed(&second).await);
    assert_eq!(listed(&first).await.as_array().unwrap().len(), 10);

    let passes = || async { journal(&sim, "Sora_20231220.ListSessions").await.len() };
    let mut recording_ids = Vec::new();
    for channel in &channels {
        let session = wait_recording(&sim, channel, true).await.unwrap();
        recording_ids.push(session["recording"]["recording_id"].clone());
    }
    assert!(recording_ids.iter().all(Value::is_string), "{recording_ids:?}");
    // Several passes of both replicas later, each session has recorded exactly once.
    let seen = passes().await;
    wait_for("six more reconciler passes", Duration::from_secs(10), || async {
        (passes().await >= seen + 6).then_some(())
    })
    .await;
    for channel in &channels {
        let recordings = recordings_of(&sim, channel).await;
        assert_eq!(recordings.len(), 1, "{channel}: {recordings:?}");
        assert!(recordings[0]["end_reason"].is_null(), "{channel}: {recordings:?}");
    }

    // Stops through either replica while the upstream drops every StopRecording: the shims' own
    // stops fail, so the reconcilers must stop those recordings, and only those.
    add_fault(&sim, json!({"target": "Sora_20231220.StopRecording", "drop": true})).await;
    for (i, channel) in channels[..5].iter().enumerate() {
        let shim = if i % 2 == 0 { &second } else { &first };
        assert_eq!(api(&shim.url, STOP, json!({"channel_id": channel})).await.status, 200);
    }
    clear_faults(&sim).await;
    for channel in &channels[..5] {
        wait_recording(&sim, channel, false).await;
        assert_eq!(recordings_of(&sim, channel).await[0]["end_reason"], "stopped");
    }
    wait_for("the stopped orders to leave the store", Duration::from_secs(10), || async {
        (stored_orders(&one.store).len() == 5).then_some(())
    })
    .await;
    let seen = passes().await;
    wait_for("six more reconciler passes", Duration::from_secs(10), || async {
        (passes().await >= seen + 6).then_some(())
    })
    .await;
    for (channel, recording_id) in channels.iter().zip(&recording_ids).skip(5) {
        let recordings = recordings_of(&sim, channel).await;
        assert_eq!(recordings.len(), 1, "{channel} was never stopped or restarted: {recordings:?}");
        assert_eq!(&recordings[0]["recording_id"], recording_id);
        assert!(recordings[0]["end_reason"].is_null(), "{channel}: {recordings:?}");
    }
    assert_eq!(listed(&second).await.as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn reject_mode_stops_a_recording_that_a_timed_out_start_began_late() {
    let (sim, shim, options) = start_pair(|o| {
        webhook_only(o)
            .env("SORA_SHIM__LEGACY__ON_UPSTREAM_FAILURE", "reject")
            .env("SORA_SHIM__UPSTREAM__TIMEOUT_MS", "300")
    })
    .await;
    connect(&sim, "late").await;
    // Sora takes 1.5 s to start: the client is told 504 after 0.3 s, but the recording begins after all.
    add_fault(&sim, json!({"target": "Sora_20231220.StartRecording", "latency_ms": 1500, "times": 1})).await;
    api(&shim.url, START, json!({"channel_id": "late", "expire_time": 0}))
        .await
        .assert_legacy_error(504, "UPSTREAM-TIMEOUT");
    assert!(standing_orders(&options.store).is_empty(), "a refused Start keeps no order standing");
    let recording = wait_for("the late recording to begin", Duration::from_secs(10), || async {
        recordings_of(&sim, "late").await.into_iter().next()
    })
    .await;
    assert!(recording["recording_id"].is_string());
    // ... and the shim stops it again: no recording stays that no order covers.
    wait_recording(&sim, "late", false).await;
    assert_eq!(recordings_of(&sim, "late").await[0]["end_reason"], "stopped");
    api(&shim.url, GET_STARTED, json!({"channel_id": "late"})).await.assert_legacy_error(400, "NOT-STARTED-RECORDING");
}

#[tokio::test]
async fn a_stopped_order_without_a_leg_leaves_later_recordings_on_its_channel_alone() {
    let (sim, shim, options) = start_pair(fast_reconciler).await;
    // Order A never recorded (nobody joined); its Stop's upstream call is lost.
    let first = api(&shim.url, START, json!({"channel_id": "again", "expire_time": 0})).await.json();
    add_fault(&sim, json!({"target": "Sora_20231220.StopRecording", "drop": true, "times": 1})).await;
    assert_eq!(api(&shim.url, STOP, json!({"channel_id": "again"})).await.status, 200);
    // Order B on the same channel, then a session: it records for B.
    let second = api(&shim.url, START, json!({"channel_id": "again", "expire_time": 0})).await.json();
    assert_ne!(first["recording_id"], second["recording_id"]);
    connect(&sim, "again").await;
    wait_recording(&sim, "again", true).await;
    // A native recording on another channel whose legacy order was stopped the same way.
    api(&shim.url, START, json!({"channel_id": "mixed", "expire_time": 0})).await;
    add_fault(&sim, json!({"target": "Sora_20231220.StopRecording", "drop": true, "times": 1})).await;
    assert_eq!(api(&shim.url, STOP, json!({"channel_id": "mixed"})).await.status, 200);
    connect(&sim, "mixed").await;
    let native = post(&shim.url, "/", Some("Sora_20231220.StartRecording"), r#"{"channel_id":"mixed"}"#, &[]).await;
    assert_eq!(native.status, 200, "{}", native.text());

    // The reconciler forgets both stopped orders (nothing of theirs records) ...
    wait_for("the stopped orders to be forgotten", Duration::from_secs(10), || async {
        let orders = stored_orders(&options.store);
        (orders.len() == 1 && orders[0].0 == second["recording_id"]).then_some(())
    })
    .await;
    // ... and never stopped B's recording or the native one.
    for channel in ["again", "mixed"] {
        let recordings = recordings_of(&sim, channel).await;
        assert_eq!(recordings.len(), 1, "{channel}: {recordings:?}");
        assert!(recordings[0]["end_reason"].is_null(), "{channel}: {recordings:?}");
    }
    assert_eq!(
        api(&shim.url, GET_STARTED, json!({"channel_id": "again"})).await.json()["recording_id"],
        second["recording_id"]
    );
}

#[tokio::test]
async fn reconciler_never_touches_recordings_it_did_not_start() {
    let (sim, shim, _) = start_pair(fast_reconciler).await;
    connect(&sim, "native").await;
    let native = post(&shim.url, "/", Some("Sora_20231220.StartRecording"), r#"{"channel_id":"native"}"#, &[]).await;
    assert_eq!(native.status, 200);
    // A legacy order on another channel, started and stopped, gives the reconciler work to do.
    connect(&sim, "legacy").await;
    api(&shim.url, START, json!({"channel_id": "legacy", "expire_time": 0})).await;
    api(&shim.url, STOP, json!({"channel_id": "legacy"})).await;
    // Several reconciler passes later the native recording still runs.
    let journal_len = |entries: Vec<Value>| entries.len();
    let passes_before = journal_len(journal(&sim, "Sora_20231220.ListSessions").await);
    wait_for("three reconciler passes", Duration::from_secs(10), || async {
        (journal_len(journal(&sim, "Sora_20231220.ListSessions").await) >= passes_before + 3).then_some(())
    })
    .await;
    let session = sim_session(&sim, "native").await.unwrap();
    assert_eq!(session["recording"]["recording_id"], native.json()["recording_id"]);
}

#[tokio::test]
async fn upstream_failure_on_start_is_accepted_and_started_later() {
    let (sim, shim, _) = start_pair(fast_reconciler).await;
    connect(&sim, "flaky").await;
    add_fault(&sim, json!({"target": "Sora_20231220.StartRecording", "drop": true})).await;
    let reply = api(&shim.url, START, json!({"channel_id": "flaky", "expire_time": 0})).await;
    assert_eq!(reply.status, 200, "accepted although the upstream dropped the start");
    assert!(sim_session(&sim, "flaky").await.unwrap().get("recording").is_none());
    clear_faults(&sim).await;
    wait_recording(&sim, "flaky", true).await;
}

/// Sends a legacy Start in its own task; the task yields `(channel, recording_id)` when it was
/// answered 200 within `deadline`, `None` otherwise (refused, reset by a killed shim, ...).
fn start_in_background(
    url: &str,
    channel: &str,
    deadline: Duration,
) -> tokio::task::JoinHandle<Option<(String, String)>> {
    let (url, channel) = (url.to_owned(), channel.to_owned());
    tokio::spawn(async move {
        use http_body_util::BodyExt;
        let body = json!({"channel_id": channel, "expire_time": 0}).to_string();
        let request = http::Request::builder()
            .method("POST")
            .uri(format!("{url}/"))
            .header("x-sora-target", START)
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .unwrap();
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http::<http_body_util::Full<bytes::Bytes>>();
        let response = tokio::time::timeout(deadline, client.request(request)).await.ok()?.ok()?;
        if response.status() != 200 {
            return None;
        }
        let body = response.into_body().collect().await.ok()?.to_bytes();
        let json: Value = serde_json::from_slice(&body).ok()?;
        Some((channel, json["recording_id"].as_str()?.to_owned()))
    })
}

#[tokio::test]
async fn orders_answered_200_survive_sigkill_during_session_creation_and_the_reconciler_catches_up() {
    // The operator's own session hook hangs, so session.created webhooks stay open in the shim:
    // sessions are "being created" at the moment of the kill, for as long as the test needs.
    let stall = Stall::start().await;
    let hook = format!("{}/operator-hook", stall.url);
    let (sim, mut shim, options) = start_pair(|o| {
        fast_reconciler(o)
            .env("SORA_SHIM__SESSION_WEBHOOK__FORWARD_URL", &hook)
            .env("SORA_SHIM__SESSION_WEBHOOK__FORWARD_TIMEOUT_MS", "60000")
    })
    .await;
    let channels: Vec<String> = (0..20).map(|i| format!("k{i:02}")).collect();

    // k00-k09: Starts answered 200 before anything else (nobody connected: armed orders).
    let mut answered = Vec::new();
    for channel in &channels[..10] {
        let pair = start_in_background(&shim.url, channel, Duration::from_secs(10)).await.unwrap();
        answered.push(pair.unwrap_or_else(|| panic!("{channel}: Start not answered 200")));
    }

    // k00-k04 get their first client: the emulator waits for the shim's webhook reply, the shim
    // waits for the hung operator hook.
    let creating: Vec<_> = channels[..5]
        .iter()
        .map(|channel| {
            let url = format!("{}/sim/connect", sim.url);
            let channel = channel.clone();
            tokio::spawn(async move { post_json(&url, json!({"channel_id": channel})).await })
        })
        .collect();
    wait_for("five session.created webhooks stuck in the shim", Duration::from_secs(10), || async {
        (stall.arrived() >= 5).then_some(())
    })
    .await;

    // k10-k19: Starts in flight, their orders written and their upstream calls held by the emulator.
    add_fault(&sim, json!({"target": "Sora_20231220.StartRecording", "latency_ms": 60000})).await;
    let in_flight: Vec<_> =
        channels[10..].iter().map(|channel| start_in_background(&shim.url, channel, Duration::from_secs(30))).collect();
    wait_for("ten upstream Starts held by the emulator", Duration::from_secs(10), || async {
        let held = journal(&sim, "Sora_20231220.StartRecording").await;
        channels[10..]
            .iter()
            .all(|channel| held.iter().any(|entry| entry["body"].as_str().unwrap_or("").contains(channel.as_str())))
            .then_some(())
    })
    .await;
    assert!(creating.iter().all(|task| !task.is_finished()), "the sessions are still being created at the kill");

    shim.kill();
    clear_faults(&sim).await;
    for task in in_flight {
        assert_eq!(task.await.unwrap(), None, "a Start in flight at the kill cannot have been answered 200");
    }
    // The stuck session.created webhooks fail with the shim: those sessions start without recording.
    for task in creating {
        task.await.unwrap();
    }
    // k05-k14 are joined while the shim is down: their webhooks fail too.
    for channel in &channels[5..15] {
        connect(&sim, channel).await;
    }
    for channel in &channels[..15] {
        let session = sim_session(&sim, channel).await.unwrap_or_else(|| panic!("{channel} has a session"));
        assert!(session.get("recording").is_none(), "{channel} records before the restart: {session}");
    }
    let webhooks_before = stall.arrived();

    let shim = restart_shim(&mut shim, &options);
    for (channel, recording_id) in &answered {
        let got = api(&shim.url, GET_STARTED, json!({"channel_id": channel})).await;
        assert_eq!(got.status, 200, "{channel}: an order answered 200 was lost");
        assert_eq!(got.json()["recording_id"], recording_id.as_str());
    }
    // The unanswered Starts had written their orders before their upstream calls: all twenty stand.
    let active = api(&shim.url, "Sora_20161101.ListStartedRecording", json!({})).await.json();
    let active: Vec<&str> =
        active.as_array().unwrap().iter().map(|order| order["channel_id"].as_str().unwrap()).collect();
    assert_eq!(active, channels.iter().map(String::as_str).collect::<Vec<_>>());
    // Every session (k00-k14) ends up recording, started by the reconciler: no new webhook was sent.
    for channel in &channels[..15] {
        let session = wait_recording(&sim, channel, true).await.unwrap();
        let recordings = recordings_of(&sim, channel).await;
        assert_eq!(recordings.len(), 1, "{channel} recorded once: {recordings:?}");
        assert_eq!(recordings[0]["started_by"], "api", "{channel}: {session}");
    }
    assert_eq!(stall.arrived(), webhooks_before, "no session webhook was sent after the restart");
}

/// A session.created event as Sora sends it (for the tests that look at the reply itself).
fn created_event(channel: &str) -> Value {
    json!({"type": "session.created", "channel_id": channel, "session_id": "S-test", "id": "E1"})
}

#[tokio::test]
async fn forwarded_session_webhook_reply_is_the_base() {
    let receiver = Receiver::start(200, r#"{"operator_key":"kept"}"#).await;
    let hook = format!("{}/operator-hook", receiver.url);
    let (sim, shim, _) = start_pair(|o| webhook_only(o).env("SORA_SHIM__SESSION_WEBHOOK__FORWARD_URL", &hook)).await;
    api(&shim.url, START, json!({"channel_id": "fwd", "expire_time": 0})).await;
    connect(&sim, "fwd").await;
    assert!(sim_session(&sim, "fwd").await.unwrap()["recording"].is_object());
    let forwarded = receiver.requests();
    assert_eq!(forwarded.len(), 1);
    assert_eq!(forwarded[0].path, "/operator-hook");
    let event: Value = serde_json::from_slice(&forwarded[0].body).unwrap();
    assert_eq!((event["type"].as_str(), event["channel_id"].as_str()), (Some("session.created"), Some("fwd")));

    // The reply merges the operator's keys with the recording keys.
    let reply = post(&shim.url, "/hooks/session", None, &created_event("fwd").to_string(), &[]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), json!({"operator_key": "kept", "recording": true, "format": "webm"}));
    // Without an order, the operator's reply goes back as it is.
    let reply = post(&shim.url, "/hooks/session", None, &created_event("no-order").to_string(), &[]).await;
    assert_eq!(reply.json(), json!({"operator_key": "kept"}));
}

#[tokio::test]
async fn an_operator_reply_that_sets_recording_wins_also_over_the_reconciler() {
    let receiver = Receiver::start(200, r#"{"recording":false}"#).await;
    let hook = format!("{}/hook", receiver.url);
    let (sim, shim, _) = start_pair(|o| fast_reconciler(o).env("SORA_SHIM__SESSION_WEBHOOK__FORWARD_URL", &hook)).await;
    api(&shim.url, START, json!({"channel_id": "veto", "expire_time": 0})).await;
    connect(&sim, "veto").await;
    assert!(sim_session(&sim, "veto").await.unwrap().get("recording").is_none());
    // Several reconciler passes later the operator's decision still stands.
    let starts_before = journal(&sim, "Sora_20231220.StartRecording").await.len();
    let passes_before = journal(&sim, "Sora_20231220.ListSessions").await.len();
    wait_for("three reconciler passes", Duration::from_secs(10), || async {
        (journal(&sim, "Sora_20231220.ListSessions").await.len() >= passes_before + 3).then_some(())
    })
    .await;
    assert!(sim_session(&sim, "veto").await.unwrap().get("recording").is_none());
    assert_eq!(journal(&sim, "Sora_20231220.StartRecording").await.len(), starts_before, "no start was tried");
}

#[tokio::test]
async fn forward_failures_fail_by_default_and_can_be_ignored() {
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hook", listener.local_addr().unwrap())
    };
    let (sim, shim, _) = start_pair(|o| webhook_only(o).env("SORA_SHIM__SESSION_WEBHOOK__FORWARD_URL", &dead)).await;
    api(&shim.url, START, json!({"channel_id": "down", "expire_time": 0})).await;
    post(&shim.url, "/hooks/session", None, &created_event("down").to_string(), &[])
        .await
        .assert_legacy_error(502, "UPSTREAM-UNAVAILABLE");
    connect(&sim, "down").await;
    assert!(sim_session(&sim, "down").await.unwrap().get("recording").is_none(), "Sora got the failure");

    let (sim, shim, _) = start_pair(|o| {
        webhook_only(o)
            .env("SORA_SHIM__SESSION_WEBHOOK__FORWARD_URL", &dead)
            .env("SORA_SHIM__SESSION_WEBHOOK__ON_FORWARD_ERROR", "ignore")
    })
    .await;
    api(&shim.url, START, json!({"channel_id": "down", "expire_time": 0})).await;
    connect(&sim, "down").await;
    assert!(sim_session(&sim, "down").await.unwrap()["recording"].is_object());

    // An operator hook answering an error: that very answer goes back to Sora.
    let failing = Receiver::start(500, r#"{"error":"operator says no"}"#).await;
    let hook = format!("{}/hook", failing.url);
    let (_sim, shim, _) = start_pair(|o| webhook_only(o).env("SORA_SHIM__SESSION_WEBHOOK__FORWARD_URL", &hook)).await;
    let reply = post(&shim.url, "/hooks/session", None, &created_event("x").to_string(), &[]).await;
    assert_eq!((reply.status, reply.text()), (500, r#"{"error":"operator says no"}"#.to_owned()));
}

#[tokio::test]
async fn session_webhook_rejects_non_json_without_a_forward_target() {
    let (_sim, shim, _) = start_pair(webhook_only).await;
    post(&shim.url, "/hooks/session", None, "not json", &[]).await.assert_legacy_error(400, "INVALID-JSON");
    let other = post(&shim.url, "/hooks/session", None, r#"{"type":"session.updated","session_id":"S"}"#, &[]).await;
    assert_eq!((other.status, other.text()), (200, "{}".to_owned()));
}

#[tokio::test]
async fn an_operator_hook_answering_204_still_gets_recording_switched_on() {
    let receiver = Receiver::start(204, "").await;
    let hook = format!("{}/hook", receiver.url);
    let (sim, shim, _) = start_pair(|o| webhook_only(o).env("SORA_SHIM__SESSION_WEBHOOK__FORWARD_URL", &hook)).await;
    api(&shim.url, START, json!({"channel_id": "nc", "expire_time": 0})).await;
    connect(&sim, "nc").await;
    assert_eq!(recordings_of(&sim, "nc").await[0]["started_by"], "session-webhook");
}

#[tokio::test]
async fn a_recording_whose_leg_never_reached_the_store_is_adopted_and_later_stopped() {
    let (sim, shim, options) = start_pair(|o| fast_reconciler(o).env("SORA_SHIM__STORE__BUSY_TIMEOUT_MS", "100")).await;
    let started = api(&shim.url, START, json!({"channel_id": "adopt", "expire_time": 0})).await.json();
    // A recording begun in the order's own second is never adopted (it may be a native one).
    let created_at =
        api(&shim.url, GET_STARTED, json!({"channel_id": "adopt"})).await.json()["created_at"].as_i64().unwrap();
    wait_for("the next second", Duration::from_secs(3), || async { (unix_now() > created_at).then_some(()) }).await;
    // The store is locked by another process while the session is created: the webhook answers
    // (reads are not blocked) but its leg cannot be written.
    let locker = rusqlite::Connection::open(&options.store).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    connect(&sim, "adopt").await;
    assert!(sim_session(&sim, "adopt").await.unwrap()["recording"].is_object());
    wait_for("the failed leg write", Duration::from_secs(5), || async {
        shim.log_text().contains("could not record the session leg").then_some(())
    })
    .await;
    locker.execute_batch("ROLLBACK").unwrap();
    drop(locker);
    let session_id = sim_session(&sim, "adopt").await.unwrap()["session_id"].as_str().unwrap().to_owned();
    wait_for("the reconciler to adopt the recording", Duration::from_secs(10), || async {
        let count: i64 = rusqlite::Connection::open(&options.store)
            .unwrap()
            .query_row("SELECT count(*) FROM legs WHERE session_id = ?1", [&session_id], |row| row.get(0))
            .unwrap_or(0);
        (count == 1).then_some(())
    })
    .await;
    // A Stop whose upstream call is dropped still ends the recording later: the order is kept.
    add_fault(&sim, json!({"target": "Sora_20231220.StopRecording", "drop": true})).await;
    assert_eq!(api(&shim.url, STOP, json!({"channel_id": "adopt"})).await.status, 200);
    assert_eq!(stored_orders(&options.store).len(), 1);
    clear_faults(&sim).await;
    wait_recording(&sim, "adopt", false).await;
    assert!(started["recording_id"].is_string());
}

#[tokio::test]
async fn one_list_missing_a_session_does_not_make_the_shim_forget_a_pending_stop() {
    let (sim, shim, options) = start_pair(fast_reconciler).await;
    assert_eq!(api(&shim.url, START, json!({"channel_id": "glitch", "expire_time": 0})).await.status, 200);
    connect(&sim, "glitch").await;
    wait_recording(&sim, "glitch", true).await;
    add_fault(&sim, json!({"target": "Sora_20231220.StopRecording", "drop": true})).await;
    assert_eq!(api(&shim.url, STOP, json!({"channel_id": "glitch"})).await.status, 200);
    // One ListSessions answer lacks every session.
    add_fault(&sim, json!({"target": "Sora_20231220.ListSessions", "status": 200, "body": "[]", "times": 1})).await;
    let lists_before = journal(&sim, "Sora_20231220.ListSessions").await.len();
    wait_for("the glitch and one more pass", Duration::from_secs(10), || async {
        (journal(&sim, "Sora_20231220.ListSessions").await.len() >= lists_before + 2).then_some(())
    })
    .await;
    assert_eq!(stored_orders(&options.store).len(), 1, "the stopped order is still remembered");
    clear_faults(&sim).await;
    wait_recording(&sim, "glitch", false).await;
    wait_for("the order to be forgotten", Duration::from_secs(10), || async {
        stored_orders(&options.store).is_empty().then_some(())
    })
    .await;
}
