//! Process lifecycle: orders survive a restart (also after SIGKILL), and SIGTERM lets in-flight
//! requests finish before the shim exits cleanly.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

const START: &str = "Sora_20161101.StartRecording";
const STOP: &str = "Sora_20161101.StopRecording";
const GET_STARTED: &str = "Sora_20161101.GetStartedRecording";
const LIST_STARTED: &str = "Sora_20161101.ListStartedRecording";

#[tokio::test]
async fn orders_survive_a_restart_against_the_same_store() {
    let sim = start_sim(&[]);
    let options = ShimOptions::new(&sim.url);
    let mut shim = start_shim(&options);
    let started = [
        api(&shim.url, START, json!({"channel_id": "a", "expire_time": 0})).await.json(),
        api(&shim.url, START, json!({"channel_id": "b", "expire_time": 3600, "metadata": {"room": 1}})).await.json(),
        api(&shim.url, START, json!({"channel_id": "c", "expire_time": 0, "split_duration": 60, "split_only": true}))
            .await
            .json(),
    ];
    let before = api(&shim.url, LIST_STARTED, json!({})).await.json();
    assert_eq!(before.as_array().unwrap().len(), 3);

    // SIGKILL: no chance to flush anything; what was answered 200 must already be on disk.
    shim.kill();
    let shim = start_shim(&options);
    let after = api(&shim.url, LIST_STARTED, json!({})).await.json();
    assert_eq!(after, before);
    for (order, channel) in started.iter().zip(["a", "b", "c"]) {
        let got = api(&shim.url, GET_STARTED, json!({"channel_id": channel})).await.json();
        assert_eq!(got["recording_id"], order["recording_id"]);
    }
    assert_eq!(after[2]["split_only"], true);
    // The restarted shim keeps enforcing them ...
    api(&shim.url, START, json!({"channel_id": "a", "expire_time": 0}))
        .await
        .assert_legacy_error(400, "STARTED-RECORDING");
    // ... and can stop them.
    assert_eq!(api(&shim.url, STOP, json!({"channel_id": "b"})).await.status, 200);
    assert_eq!(api(&shim.url, LIST_STARTED, json!({})).await.json().as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_then_exits_cleanly() {
    let sim = start_sim(&[]);
    let mut shim = start_shim(&ShimOptions::new(&sim.url));
    add_fault(&sim, json!({"target": "Sora_20171010.GetStatsReport", "latency_ms": 800})).await;
    let in_flight = tokio::spawn({
        let url = shim.url.clone();
        async move { post(&url, "/", Some("Sora_20171010.GetStatsReport"), "", &[]).await }
    });
    wait_for("the request to reach the emulator", Duration::from_secs(10), || async {
        (!journal(&sim, "Sora_20171010.GetStatsReport").await.is_empty()).then_some(())
    })
    .await;
    let code = tokio::task::spawn_blocking(move || {
        let code = shim.terminate(Duration::from_secs(10));
        (code, shim)
    });
    let reply = in_flight.await.unwrap();
    assert_eq!(reply.status, 200, "the in-flight request finished: {}", reply.text());
    let (code, shim) = code.await.unwrap();
    assert_eq!(code, Some(0), "clean exit after SIGTERM; log:\n{}", shim.log_text());
    assert!(shim.log_text().contains("SIGTERM received"));
}

#[tokio::test]
async fn check_subcommand_reports_bad_mappings_with_file_and_key() {
    let dir = temp_dir("bad-mappings");
    for file in ["legacy.toml", "errors.toml", "upstream.toml"] {
        std::fs::copy(mappings_dir().join(file), dir.join(file)).unwrap();
    }
    let good = std::process::Command::new(env!("CARGO_BIN_EXE_sora-legacy-shim"))
        .args(["check", "--mappings"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(good.status.success(), "{}", String::from_utf8_lossy(&good.stderr));
    assert!(String::from_utf8_lossy(&good.stdout).contains("translated: Sora_20161101.StartRecording"));

    let upstream = std::fs::read_to_string(dir.join("upstream.toml")).unwrap();
    std::fs::write(dir.join("upstream.toml"), upstream.replace("no_session = ", "no_sesion = ")).unwrap();
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_sora-legacy-shim"))
        .args(["check", "--mappings"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("upstream.toml") && stderr.contains("no_sesion"), "{stderr}");

    // The same file stops `run` before it listens.
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_sora-legacy-shim"))
        .args(["run", "--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:9", "--mappings"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("no_sesion"));
}

#[tokio::test]
async fn check_subcommand_reports_bad_configuration() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sora-legacy-shim"))
        .args(["check", "--upstream", "https://sora.example:3000"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("upstream.url"));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sora-legacy-shim"))
        .arg("check")
        .env("SORA_SHIM__LIMITS__MAX_IN_FLIGHTS", "3")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unknown key `limits.max_in_flights` (variable SORA_SHIM__LIMITS__MAX_IN_FLIGHTS)"),
        "{stderr}"
    );
}

#[test]
fn check_output_into_a_closed_pipe_exits_quietly() {
    // `check | head -1`: the reader goes away after the first line.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sora-legacy-shim"))
        .args(["check", "--upstream", "http://127.0.0.1:9"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.code(), Some(0), "{stderr}");
}

#[tokio::test]
async fn without_an_upstream_the_bundled_emulator_is_started_and_announced() {
    let options = ShimOptions { upstream: None, ..ShimOptions::new("unused") };
    let shim = start_shim(&options);
    let announced = shim.announced.join("\n");
    assert!(announced.contains("bundled sora-sim"), "{announced}");
    assert!(shim.log_text().contains("NO UPSTREAM CONFIGURED"));
    // The emulator answers behind the shim: a passthrough call and a legacy flow both work.
    let stats = post(&shim.url, "/", Some("Sora_20171010.GetStatsReport"), "", &[]).await;
    assert_eq!(stats.status, 200);
    let sim_url = announced.split_whitespace().nth(1).unwrap().to_owned();
    post_json(&format!("{sim_url}/sim/connect"), json!({"channel_id": "demo"})).await;
    assert_eq!(api(&shim.url, START, json!({"channel_id": "demo", "expire_time": 0})).await.status, 200);
    let state = get_json(&format!("{sim_url}/sim/state")).await;
    assert!(state["sessions"][0]["recording"].is_object(), "{state}");
}
