//! Races and interruptions found by trying to break the shim: a client that goes away in the
//! middle of a Start, a store locked by another process, and a Stop that overtakes a slow Start.

mod common;

use std::io::Write;
use std::time::Duration;

use common::*;
use serde_json::json;

const START: &str = "Sora_20161101.StartRecording";
const STOP: &str = "Sora_20161101.StopRecording";
const GET_STARTED: &str = "Sora_20161101.GetStartedRecording";

#[tokio::test]
async fn a_client_going_away_mid_start_leaves_no_refused_order() {
    let sim = start_sim(&[]);
    let options = ShimOptions::new(&sim.url);
    let store = options.store.clone();
    let shim = start_shim(&options);
    // The upstream takes its time, then refuses the start with an error the shim cannot map.
    add_fault(
        &sim,
        json!({"target": "Sora_20231220.StartRecording", "latency_ms": 1500, "status": 400, "body": "{\"error_type\":\"SOMETHING-NEW\"}"}),
    )
    .await;
    let body = json!({"channel_id": "gone", "expire_time": 0}).to_string();
    let request =
        format!("POST / HTTP/1.1\r\nHost: x\r\nx-sora-target: {START}\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    let mut stream = std::net::TcpStream::connect(shim.addr()).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    wait_for("the order to be written", Duration::from_secs(10), || async {
        (!stored_orders(&store).is_empty()).then_some(())
    })
    .await;
    drop(stream);
    // The refusal still withdraws the order although nobody is there to hear it.
    wait_for("the refused order to be withdrawn", Duration::from_secs(10), || async {
        standing_orders(&store).is_empty().then_some(())
    })
    .await;
    api(&shim.url, GET_STARTED, json!({"channel_id": "gone"})).await.assert_legacy_error(400, "NOT-STARTED-RECORDING");
}

#[tokio::test]
async fn a_store_locked_by_another_process_fails_writes_fast_and_keeps_reads_going() {
    let sim = start_sim(&[]);
    let options = ShimOptions::new(&sim.url).env("SORA_SHIM__STORE__BUSY_TIMEOUT_MS", "200");
    let store = options.store.clone();
    let shim = start_shim(&options);
    assert_eq!(api(&shim.url, START, json!({"channel_id": "before", "expire_time": 0})).await.status, 200);

    let locker = rusqlite::Connection::open(&store).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let starts: Vec<_> = (0..8)
        .map(|i| {
            let url = shim.url.clone();
            tokio::spawn(async move {
                api(&url, START, json!({"channel_id": format!("locked{i}"), "expire_time": 0})).await
            })
        })
        .collect();
    // Reads use their own connection and are not queued behind the stuck writes.
    let read = api(&shim.url, GET_STARTED, json!({"channel_id": "before"})).await;
    assert_eq!(read.status, 200, "{}", read.text());
    for start in starts {
        start.await.unwrap().assert_legacy_error(503, "STORE-UNAVAILABLE");
    }
    locker.execute_batch("ROLLBACK").unwrap();
    drop(locker);
    let channels: Vec<String> = stored_orders(&store).into_iter().map(|(_, channel, _)| channel).collect();
    assert_eq!(channels, vec!["before".to_owned()], "no order behind a 503");
}

#[tokio::test]
async fn a_stop_overtaking_a_slow_start_leaves_no_recording_behind() {
    let (sim, shim, _) = start_pair(|o| o.env("SORA_SHIM__RECONCILER__INTERVAL_MS", "600000")).await;
    connect(&sim, "orph").await;
    add_fault(&sim, json!({"target": "Sora_20231220.StartRecording", "latency_ms": 1500, "times": 1})).await;
    let start = tokio::spawn({
        let url = shim.url.clone();
        async move { api(&url, START, json!({"channel_id": "orph", "expire_time": 0})).await }
    });
    wait_for("the slow start to reach the emulator", Duration::from_secs(10), || async {
        (!journal(&sim, "Sora_20231220.StartRecording").await.is_empty()).then_some(())
    })
    .await;
    assert_eq!(api(&shim.url, STOP, json!({"channel_id": "orph"})).await.status, 200);
    assert_eq!(start.await.unwrap().status, 200);
    // Start, then Stop: nothing may keep recording.
    wait_for("the orphaned recording to be stopped", Duration::from_secs(10), || async {
        let session = sim_session(&sim, "orph").await?;
        session.get("recording").is_none().then_some(())
    })
    .await;
    api(&shim.url, GET_STARTED, json!({"channel_id": "orph"})).await.assert_legacy_error(400, "NOT-STARTED-RECORDING");
}
