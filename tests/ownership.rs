//! Which recordings are the shim's: it never leaves one behind that no order covers (a refused
//! Start, a Stop racing a session webhook reply), and never adopts, stops or relabels one it did
//! not start (a native recording on the same channel or in the same session).

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const START: &str = "Sora_20161101.StartRecording";
const STOP: &str = "Sora_20161101.StopRecording";
const GET_STARTED: &str = "Sora_20161101.GetStartedRecording";
const NATIVE_START: &str = "Sora_20231220.StartRecording";
const NATIVE_STOP: &str = "Sora_20231220.StopRecording";

fn reconciler_every(ms: u64) -> impl FnOnce(ShimOptions) -> ShimOptions {
    move |options| options.env("SORA_SHIM__RECONCILER__INTERVAL_MS", &ms.to_string())
}

/// Waits until the reconcilers have listed the sessions `count` more times.
async fn reconciler_passes(sim: &Process, count: usize) {
    let seen = journal(sim, "Sora_20231220.ListSessions").await.len();
    wait_for(&format!("{count} more reconciler passes"), Duration::from_secs(10), || async {
        (journal(sim, "Sora_20231220.ListSessions").await.len() >= seen + count).then_some(())
    })
    .await;
}

/// Waits until the operator's receiver holds `count` `recording.report` events, and returns them.
async fn recording_reports(receiver: &Receiver, count: usize) -> Vec<Value> {
    wait_for(&format!("{count} recording reports"), Duration::from_secs(10), || async {
        let reports: Vec<Value> = receiver
            .requests()
            .iter()
            .map(|request| serde_json::from_slice::<Value>(&request.body).unwrap())
            .filter(|event| event["type"] == "recording.report")
            .collect();
        (reports.len() >= count).then_some(reports)
    })
    .await
}

/// A legacy Stop on `channel` answers 200, its order is forgotten, and the native recording
/// `native_id` is the channel's only one and still runs: the shim never asked the upstream to stop.
async fn legacy_stop_spares(sim: &Process, shim: &Process, options: &ShimOptions, channel: &str, native_id: &Value) {
    assert_eq!(api(&shim.url, STOP, json!({"channel_id": channel})).await.status, 200);
    wait_for("the stopped order to be forgotten", Duration::from_secs(10), || async {
        stored_orders(&options.store).is_empty().then_some(())
    })
    .await;
    assert!(journal(sim, NATIVE_STOP).await.is_empty(), "the shim asked the upstream to stop");
    let recordings = recordings_of(sim, channel).await;
    assert_eq!(recordings.len(), 1, "{recordings:?}");
    assert_eq!(&recordings[0]["recording_id"], native_id);
    assert!(recordings[0]["end_reason"].is_null(), "{recordings:?}");
}

/// The upstream holds the legacy Start for 1.5 s, then refuses it as a cluster minority.
async fn slow_refusal(sim: &Process) {
    let body = r#"{"error_type":"NOT-CLUSTER-MAJORITY"}"#;
    add_fault(sim, json!({"target": NATIVE_START, "latency_ms": 1500, "status": 400, "body": body, "times": 1})).await;
}

/// Every recording of the channel has ended, stopped by the shim; returns how many there were.
async fn all_stopped(sim: &Process, channel: &str) -> usize {
    wait_recording(sim, channel, false).await;
    let recordings = recordings_of(sim, channel).await;
    for recording in &recordings {
        assert_eq!(recording["end_reason"], "stopped", "{channel}: {recordings:?}");
    }
    recordings.len()
}

#[tokio::test]
async fn a_refused_start_stops_what_the_reconciler_began_meanwhile() {
    let (sim, shim, options) = start_pair(reconciler_every(100)).await;
    connect(&sim, "x1").await;
    slow_refusal(&sim).await;
    // While the upstream holds the Start, the order looks active and the reconciler starts it.
    api(&shim.url, START, json!({"channel_id": "x1", "expire_time": 0}))
        .await
        .assert_legacy_error(400, "NOT-CLUSTER-MAJORITY");
    assert_eq!(all_stopped(&sim, "x1").await, 1, "the reconciler had begun a recording in the window");
    api(&shim.url, GET_STARTED, json!({"channel_id": "x1"})).await.assert_legacy_error(400, "NOT-STARTED-RECORDING");
    wait_for("the withdrawn order to leave the store", Duration::from_secs(10), || async {
        stored_orders(&options.store).is_empty().then_some(())
    })
    .await;
    // Later passes leave the channel alone.
    reconciler_passes(&sim, 3).await;
    assert_eq!(recordings_of(&sim, "x1").await.len(), 1);
}

#[tokio::test]
async fn a_refused_start_stops_what_the_session_webhook_switched_on_meanwhile() {
    // The reconciler never acts after start-up: the refused Start itself must stop it.
    let (sim, shim, _) = start_pair(reconciler_every(600_000)).await;
    slow_refusal(&sim).await;
    let url = shim.url.clone();
    let start = tokio::spawn(async move { api(&url, START, json!({"channel_id": "x2", "expire_time": 0})).await });
    wait_for("the upstream Start to be held", Duration::from_secs(10), || async {
        (!journal(&sim, NATIVE_START).await.is_empty()).then_some(())
    })
    .await;
    // Someone joins meanwhile: the order still stands, so session.created switches recording on.
    connect(&sim, "x2").await;
    let recording = recordings_of(&sim, "x2").await;
    assert_eq!(recording.len(), 1);
    assert_eq!(recording[0]["started_by"], "session-webhook");
    start.await.unwrap().assert_legacy_error(400, "NOT-CLUSTER-MAJORITY");
    assert_eq!(all_stopped(&sim, "x2").await, 1);
}

#[tokio::test]
async fn a_stop_racing_a_session_webhook_reply_leaves_no_recording_behind() {
    let (sim, shim, _) = start_pair(reconciler_every(200)).await;
    // Sora gets the shim's session.created answer 2 s after the shim gave it.
    let relay = SlowRelay::start(&format!("{}/hooks/session", shim.url), Duration::from_secs(2)).await;
    set_sim_webhooks(&sim, Some(&relay.url), None).await;
    assert_eq!(api(&shim.url, START, json!({"channel_id": "race", "expire_time": 0})).await.status, 200);
    let connecting = tokio::spawn({
        let url = format!("{}/sim/connect", sim.url);
        async move { post_json(&url, json!({"channel_id": "race"})).await }
    });
    wait_for("the shim's answer to be on its way", Duration::from_secs(10), || async {
        (relay.answered() >= 1).then_some(())
    })
    .await;
    // Stop while the answer is in transit: nothing records yet when the shim asks the upstream.
    assert_eq!(api(&shim.url, STOP, json!({"channel_id": "race"})).await.status, 200);
    assert!(recordings_of(&sim, "race").await.is_empty());
    connecting.await.unwrap();
    // The recording Sora begins from that answer is stopped: no order covers it.
    let begun = wait_for("the late recording", Duration::from_secs(10), || async {
        recordings_of(&sim, "race").await.into_iter().next()
    })
    .await;
    assert_eq!(begun["started_by"], "session-webhook");
    assert_eq!(all_stopped(&sim, "race").await, 1);
}

/// Starts a native recording on `channel` through the shim (passthrough) and waits until the
/// clock has moved past the second it began in, so an order made now is strictly younger.
async fn native_recording(sim: &Process, shim: &Process, channel: &str) -> Value {
    let body = json!({"channel_id": channel, "format": "mp4", "metadata": {"native": true}});
    assert_eq!(api(&shim.url, NATIVE_START, body).await.status, 200);
    let session = wait_recording(sim, channel, true).await.unwrap();
    let began = session["recording"]["start_timestamp"].as_i64().unwrap();
    wait_for("the next second", Duration::from_secs(3), || async { (unix_now() > began).then_some(()) }).await;
    session["recording"].clone()
}

#[tokio::test]
async fn a_legacy_start_and_stop_never_touch_a_native_recording() {
    let (sim, shim, options) = start_pair(reconciler_every(100)).await;
    connect(&sim, "n1").await;
    let native = native_recording(&sim, &shim, "n1").await;
    // The legacy order is taken (the channel records already) ...
    assert_eq!(api(&shim.url, START, json!({"channel_id": "n1", "expire_time": 0})).await.status, 200);
    reconciler_passes(&sim, 3).await;
    // ... but the native recording is not adopted, and the legacy Stop does not end it.
    legacy_stop_spares(&sim, &shim, &options, "n1", &native["recording_id"]).await;
    let live = sim_session(&sim, "n1").await.unwrap()["recording"].clone();
    assert_eq!((live["recording_id"].clone(), live["format"].clone()), (native["recording_id"].clone(), json!("mp4")));
}

#[tokio::test]
async fn after_a_failed_stop_a_new_order_records_in_the_same_pass_that_stops_the_old_one() {
    let (sim, shim, _) = start_pair(reconciler_every(300)).await;
    connect(&sim, "again").await;
    let first = api(&shim.url, START, json!({"channel_id": "again", "expire_time": 0})).await.json();
    wait_recording(&sim, "again", true).await;
    add_fault(&sim, json!({"target": NATIVE_STOP, "status": 500, "body": "{}", "times": 1})).await;
    assert_eq!(api(&shim.url, STOP, json!({"channel_id": "again"})).await.status, 200);
    // The old recording still runs (its stop failed) when the client starts again.
    let second = api(&shim.url, START, json!({"channel_id": "again", "expire_time": 0})).await.json();
    assert_ne!(first["recording_id"], second["recording_id"]);
    let recordings = wait_for("the old recording stopped and a new one begun", Duration::from_secs(10), || async {
        let recordings = recordings_of(&sim, "again").await;
        (recordings.len() == 2).then_some(recordings)
    })
    .await;
    assert_eq!(recordings[0]["end_reason"], "stopped");
    assert!(recordings[1]["end_reason"].is_null(), "{recordings:?}");
    // The reconciler's stop and its start of the new order came with no session listing between.
    let requests: Vec<Value> = get_json(&format!("{}/sim/requests", sim.url)).await.as_array().unwrap().clone();
    let last_stop = requests.iter().rposition(|r| r["target"] == NATIVE_STOP).unwrap();
    let next_start = requests.iter().skip(last_stop).position(|r| r["target"] == NATIVE_START).unwrap() + last_stop;
    assert!(
        requests[last_stop..next_start].iter().all(|r| r["target"] != "Sora_20231220.ListSessions"),
        "a whole pass went by without a recording"
    );
}

#[tokio::test]
async fn events_of_a_native_recording_after_a_legacy_one_in_the_same_session_stay_native() {
    // Switched on by the session webhook: the shim learns the upstream id at its next pass.
    legacy_then_native_events(100, 2, "ev", json!({"legacy": 1}), json!({"native": 1})).await;
}

/// A legacy recording switched on by the session webhook and stopped, then a native one in the
/// same session: the legacy recording's events carry the legacy id and metadata, the native
/// one's stay untouched. `passes` reconciler passes run between join and Stop.
async fn legacy_then_native_events(
    reconciler_ms: u64,
    passes: usize,
    channel: &str,
    legacy_metadata: Value,
    native_metadata: Value,
) {
    let receiver = Receiver::start(200, "{}").await;
    let (sim, shim, _) = start_pair(|options| {
        reconciler_every(reconciler_ms)(options)
            .env("SORA_SHIM__EVENT_WEBHOOK__FORWARD_URL", &format!("{}/events", receiver.url))
    })
    .await;
    set_sim_webhooks(&sim, None, Some(&format!("{}/hooks/event", shim.url))).await;
    let start = json!({"channel_id": channel, "expire_time": 0, "metadata": legacy_metadata});
    let legacy = api(&shim.url, START, start).await;
    connect(&sim, channel).await;
    let legacy_upstream = recordings_of(&sim, channel).await[0]["recording_id"].clone();
    if passes > 0 {
        reconciler_passes(&sim, passes).await;
    }
    assert_eq!(api(&shim.url, STOP, json!({"channel_id": channel})).await.status, 200);
    wait_recording(&sim, channel, false).await;
    // A modern client records the same session natively.
    let native = json!({"channel_id": channel, "metadata": native_metadata});
    assert_eq!(api(&shim.url, NATIVE_START, native).await.status, 200);
    let native_upstream = wait_recording(&sim, channel, true).await.unwrap()["recording"]["recording_id"].clone();
    assert_eq!(api(&shim.url, NATIVE_STOP, json!({"channel_id": channel})).await.status, 200);

    let reports = recording_reports(&receiver, 2).await;
    let legacy_report = reports.iter().find(|r| r["session_recording_id"] == legacy_upstream).expect("legacy report");
    assert_eq!(legacy_report["recording_id"], legacy.json()["recording_id"]);
    assert_eq!(legacy_report["metadata"], legacy_metadata);
    let native_report = reports.iter().find(|r| r["recording_id"] == native_upstream).expect("native report untouched");
    assert_eq!(native_report["recording_metadata"], native_metadata);
    assert!(native_report.get("session_recording_id").is_none(), "{native_report}");
}

#[test]
fn a_client_that_half_closes_after_its_request_still_gets_the_answer() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (_sim, shim, options) = runtime.block_on(start_pair(|options| options));
    let body = json!({"channel_id": "half", "expire_time": 0}).to_string();
    let request =
        format!("POST / HTTP/1.1\r\nHost: x\r\nx-sora-target: {START}\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    // Like `nc -N`: the whole request, then the write side shut.
    let reply =
        String::from_utf8(raw_exchange(shim.addr(), request.as_bytes(), true, Duration::from_secs(10))).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply:?}");
    let json: Value = serde_json::from_str(reply.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(json["channel_id"], "half");
    assert_eq!(standing_orders(&options.store), ["half"]);
}

#[tokio::test]
async fn a_native_recording_begun_in_the_legacy_orders_own_second_is_left_alone() {
    let (sim, shim, options) = start_pair(reconciler_every(100)).await;
    connect(&sim, "same").await;
    // Both Starts right at the beginning of a fresh second: whole-second timestamps cannot tell
    // them apart, so the shim must not take the native recording for its own.
    let second = unix_now();
    wait_for("a fresh second", Duration::from_secs(3), || async { (unix_now() > second).then_some(()) }).await;
    let native = json!({"channel_id": "same", "metadata": {"native": true}});
    assert_eq!(api(&shim.url, NATIVE_START, native).await.status, 200);
    assert_eq!(api(&shim.url, START, json!({"channel_id": "same", "expire_time": 0})).await.status, 200);
    let native_id = wait_recording(&sim, "same", true).await.unwrap()["recording"]["recording_id"].clone();
    reconciler_passes(&sim, 3).await;
    legacy_stop_spares(&sim, &shim, &options, "same", &native_id).await;
}

#[tokio::test]
async fn a_legacy_stop_spares_a_native_recording_that_replaced_the_legacy_one_in_its_session() {
    let (sim, shim, _) = start_pair(reconciler_every(100)).await;
    connect(&sim, "swap").await;
    assert_eq!(api(&shim.url, START, json!({"channel_id": "swap", "expire_time": 0})).await.status, 200);
    let legacy_id = wait_recording(&sim, "swap", true).await.unwrap()["recording"]["recording_id"].clone();
    // A modern client ends the legacy recording and records the same session natively.
    assert_eq!(api(&shim.url, NATIVE_STOP, json!({"channel_id": "swap"})).await.status, 200);
    assert_eq!(api(&shim.url, NATIVE_START, json!({"channel_id": "swap"})).await.status, 200);
    let native_id = wait_recording(&sim, "swap", true).await.unwrap()["recording"]["recording_id"].clone();
    assert_ne!(legacy_id, native_id);
    reconciler_passes(&sim, 3).await;
    assert_eq!(api(&shim.url, STOP, json!({"channel_id": "swap"})).await.status, 200);
    reconciler_passes(&sim, 3).await;
    assert_eq!(journal(&sim, NATIVE_STOP).await.len(), 1, "only the modern client's own stop");
    let live = sim_session(&sim, "swap").await.unwrap()["recording"]["recording_id"].clone();
    assert_eq!(live, native_id);
}

#[tokio::test]
async fn a_legacy_stop_names_the_webhook_recording_so_later_native_events_stay_native() {
    // No reconciler pass after start-up: only the Stop can learn the upstream id.
    legacy_then_native_events(600_000, 0, "quick", json!("legacy-A"), json!({"mine": 1})).await;
}
