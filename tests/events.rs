//! Event webhooks back in legacy shape, webhook Basic auth, and the migration usage report.
//! `sora-sim` sends the webhooks; a small receiver stands in for the operator's back-end.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const START: &str = "Sora_20161101.StartRecording";
const STOP: &str = "Sora_20161101.StopRecording";

/// A sim and a shim wired both ways (session and event webhooks), the shim forwarding events to `receiver`.
async fn wired(receiver: &Receiver, tweak: impl FnOnce(ShimOptions) -> ShimOptions) -> (Process, Process) {
    let events = format!("{}/events", receiver.url);
    let (sim, shim, _) = start_pair(|options| {
        tweak(
            options
                .env("SORA_SHIM__EVENT_WEBHOOK__FORWARD_URL", &events)
                .env("SORA_SHIM__RECONCILER__INTERVAL_MS", "600000"),
        )
    })
    .await;
    set_sim_webhooks(&sim, None, Some(&format!("{}/hooks/event", shim.url))).await;
    (sim, shim)
}

fn bodies(receiver: &Receiver) -> Vec<Value> {
    receiver.requests().iter().map(|request| serde_json::from_slice(&request.body).unwrap()).collect()
}

/// Waits until the receiver holds `count` events of `kind` for `channel`, and returns them.
async fn events_of(receiver: &Receiver, kind: &str, channel: &str, count: usize) -> Vec<Value> {
    wait_for(&format!("{count} {kind} for {channel}"), Duration::from_secs(10), || async {
        let found: Vec<Value> = bodies(receiver)
            .into_iter()
            .filter(|event| event["type"] == kind && event["channel_id"] == channel)
            .collect();
        (found.len() >= count).then_some(found)
    })
    .await
}

#[tokio::test]
async fn legacy_flow_delivers_events_with_the_legacy_id_and_metadata() {
    let receiver = Receiver::start(200, "{}").await;
    let (sim, shim) = wired(&receiver, |o| o).await;
    let object =
        api(&shim.url, START, json!({"channel_id": "obj", "expire_time": 0, "metadata": {"room": "r1"}})).await.json();
    let text = api(&shim.url, START, json!({"channel_id": "txt", "expire_time": 0, "metadata": "r1"})).await.json();
    for channel in ["obj", "txt"] {
        let connection = connect(&sim, channel).await;
        disconnect(&sim, &connection).await;
    }
    for (channel, started, metadata) in [("obj", &object, json!({"room": "r1"})), ("txt", &text, json!("r1"))] {
        let upstream_id = recordings_of(&sim, channel).await[0]["recording_id"].clone();
        let report = &events_of(&receiver, "recording.report", channel, 1).await[0];
        let archive = &events_of(&receiver, "archive.available", channel, 1).await[0];
        for event in [report, archive] {
            assert_eq!(event["recording_id"], started["recording_id"], "{event}");
            assert_eq!(event["session_recording_id"], upstream_id);
            assert_eq!(event["metadata"], metadata);
            assert!(event.get("recording_metadata").is_none(), "{event}");
        }
        assert_eq!(report["end_reason"], "session-destroyed");
    }
    let forwarded = receiver.requests();
    assert!(forwarded.iter().all(|request| request.path == "/events"));
}

#[tokio::test]
async fn a_natively_started_recording_is_forwarded_untouched() {
    let receiver = Receiver::start(200, "{}").await;
    let (sim, shim) = wired(&receiver, |o| o).await;
    connect(&sim, "native").await;
    let started = post(
        &shim.url,
        "/",
        Some("Sora_20231220.StartRecording"),
        r#"{"channel_id":"native","metadata":{"k":"v"}}"#,
        &[("content-type", "application/json")],
    )
    .await
    .json();
    post(&shim.url, "/", Some("Sora_20231220.StopRecording"), r#"{"channel_id":"native"}"#, &[]).await;
    let report = &events_of(&receiver, "recording.report", "native", 1).await[0];
    assert_eq!(report["recording_id"], started["recording_id"]);
    assert_eq!(report["recording_metadata"], json!({"k": "v"}));
    assert!(report.get("session_recording_id").is_none() && report.get("metadata").is_none(), "{report}");
}

#[tokio::test]
async fn a_legacy_recording_over_two_sessions_reports_both_with_one_legacy_id() {
    let receiver = Receiver::start(200, "{}").await;
    let (sim, shim) = wired(&receiver, |o| o).await;
    let started = api(&shim.url, START, json!({"channel_id": "two", "expire_time": 3600})).await.json();
    let first = connect(&sim, "two").await;
    disconnect(&sim, &first).await;
    connect(&sim, "two").await;
    assert_eq!(api(&shim.url, STOP, json!({"channel_id": "two"})).await.status, 200);
    let reports = events_of(&receiver, "recording.report", "two", 2).await;
    assert_eq!(reports.len(), 2);
    assert!(reports.iter().all(|report| report["recording_id"] == started["recording_id"]));
    assert_ne!(reports[0]["session_recording_id"], reports[1]["session_recording_id"]);
    assert_ne!(reports[0]["session_id"], reports[1]["session_id"]);
    assert_eq!(reports[1]["end_reason"], "stopped");
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

#[tokio::test]
async fn webhook_basic_auth() {
    let receiver = Receiver::start(200, r#"{"received":true}"#).await;
    let (sim, shim) = wired(&receiver, |o| {
        o.env("SORA_SHIM__WEBHOOK_AUTH__USERNAME", "sora")
            .env("SORA_SHIM__WEBHOOK_AUTH__PASSWORD", "hook-pass-9")
            .env("SORA_SHIM__EVENT_WEBHOOK__FORWARD_AUTH__USERNAME", "backend")
            .env("SORA_SHIM__EVENT_WEBHOOK__FORWARD_AUTH__PASSWORD", "backend-pass-7")
    })
    .await;
    let event = json!({"type": "connection.created", "channel_id": "auth"}).to_string();
    for credentials in [None, Some(basic("sora", "wrong")), Some(basic("other", "hook-pass-9"))] {
        let headers: Vec<(&str, &str)> = credentials.iter().map(|value| ("authorization", value.as_str())).collect();
        post(&shim.url, "/hooks/event", None, &event, &headers).await.assert_legacy_error(401, "UNAUTHORIZED");
        let reply = post(
            &shim.url,
            "/hooks/session",
            None,
            r#"{"type":"session.created","channel_id":"auth","session_id":"S"}"#,
            &headers,
        )
        .await;
        reply.assert_legacy_error(401, "UNAUTHORIZED");
        assert!(reply.header("www-authenticate").unwrap().starts_with("Basic"));
    }
    assert!(receiver.requests().is_empty(), "nothing reached the receiver");

    let good = basic("sora", "hook-pass-9");
    let reply = post(&shim.url, "/hooks/event", None, &event, &[("authorization", good.as_str())]).await;
    assert_eq!((reply.status, reply.text()), (200, r#"{"received":true}"#.to_owned()));
    let forwarded = receiver.requests();
    assert_eq!(forwarded.len(), 1);
    assert_eq!(forwarded[0].body, event.as_bytes(), "forwarded byte for byte");
    let authorization = forwarded[0].headers.get("authorization").unwrap().to_str().unwrap();
    assert_eq!(authorization, basic("backend", "backend-pass-7"), "the receiver gets its own credentials, not Sora's");

    // The emulator without credentials: its session webhook is refused, so nothing records ...
    api(&shim.url, START, json!({"channel_id": "auth", "expire_time": 0})).await;
    connect(&sim, "auth").await;
    assert!(sim_session(&sim, "auth").await.unwrap().get("recording").is_none());
    // ... and with them, the webhook is answered and the session records.
    post_json(&format!("{}/sim/webhooks", sim.url), json!({"basic_auth": "sora:hook-pass-9"})).await;
    api(&shim.url, START, json!({"channel_id": "auth2", "expire_time": 0})).await;
    connect(&sim, "auth2").await;
    assert!(sim_session(&sim, "auth2").await.unwrap()["recording"].is_object());
    let log = shim.log_text();
    for secret in ["hook-pass-9", "backend-pass-7", &good[6..], &basic("backend", "backend-pass-7")[6..]] {
        assert!(!log.contains(secret), "a credential leaked into the log");
    }
}

#[tokio::test]
async fn a_dead_receiver_fails_the_webhook_and_loses_nothing() {
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/events", listener.local_addr().unwrap())
    };
    let (sim, shim, options) = start_pair(|o| o.env("SORA_SHIM__EVENT_WEBHOOK__FORWARD_URL", &dead)).await;
    let started = api(&shim.url, START, json!({"channel_id": "keep", "expire_time": 0})).await.json();
    connect(&sim, "keep").await;
    let session_id = sim_session(&sim, "keep").await.unwrap()["session_id"].clone();
    let event = json!({"type": "recording.report", "recording_id": "U1", "session_id": session_id, "channel_id": "keep",
                       "recording_metadata": {}});
    post(&shim.url, "/hooks/event", None, &event.to_string(), &[])
        .await
        .assert_legacy_error(502, "UPSTREAM-UNAVAILABLE");
    // The order, its session link and the recording are all still there.
    let still = api(&shim.url, "Sora_20161101.GetStartedRecording", json!({"channel_id": "keep"})).await.json();
    assert_eq!(still["recording_id"], started["recording_id"]);
    assert_eq!(stored_orders(&options.store).len(), 1);
    assert!(sim_session(&sim, "keep").await.unwrap()["recording"].is_object());

    let metrics = send(
        http::Request::builder()
            .uri(format!("{}/metrics", shim.url))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap(),
    )
    .await
    .text();
    assert!(metrics.contains("sora_shim_webhook_forward_errors_total{hook=\"event\"} 1"), "{metrics}");

    // Once a receiver answers, the same event is translated with the legacy id.
    let receiver = Receiver::start(200, "{}").await;
    let (_, shim) = {
        let mut restarted_options = options.clone();
        restarted_options.env.retain(|(key, _)| key != "SORA_SHIM__EVENT_WEBHOOK__FORWARD_URL");
        restarted_options
            .env
            .push(("SORA_SHIM__EVENT_WEBHOOK__FORWARD_URL".into(), format!("{}/events", receiver.url)));
        let mut old = shim;
        let restarted = restart_shim(&mut old, &restarted_options);
        ((), restarted)
    };
    assert_eq!(post(&shim.url, "/hooks/event", None, &event.to_string(), &[]).await.status, 200);
    let forwarded = bodies(&receiver);
    assert_eq!(forwarded[0]["recording_id"], started["recording_id"]);
    assert_eq!(forwarded[0]["session_recording_id"], "U1");
}

#[tokio::test]
async fn usage_report_counts_translated_calls_by_client_only() {
    let sim = start_sim(&[]);
    let shim = start_shim(&ShimOptions::new(&sim.url));
    let old = [("user-agent", "old-admin/1.0")];
    let cron = [("user-agent", "nightly-cron/2")];
    post(&shim.url, "/", Some(START), r#"{"channel_id":"u","expire_time":0}"#, &old).await;
    post(&shim.url, "/", Some(START), r#"{"channel_id":"u","expire_time":0}"#, &old).await;
    post(&shim.url, "/", Some("Sora_20161101.ListStartedRecording"), "", &cron).await;
    // Passthrough calls are not legacy usage.
    post(&shim.url, "/", Some("Sora_20231220.ListSessions"), "{}", &cron).await;
    post(&shim.url, "/", Some("Sora_20171010.GetStatsReport"), "", &old).await;

    let report = get_json(&format!("{}/shim/usage", shim.url)).await;
    assert_eq!(report["totals"], json!({"Sora_20161101.StartRecording": 2, "Sora_20161101.ListStartedRecording": 1}));
    let clients = report["clients"].as_array().unwrap();
    assert_eq!(clients.len(), 2, "{report}");
    let admin = clients.iter().find(|c| c["user_agent"] == "old-admin/1.0").unwrap();
    assert_eq!((admin["target"].as_str(), admin["count"].as_u64()), (Some(START), Some(2)));
    assert_eq!(admin["remote_addr"], "127.0.0.1");
    assert!(admin["first_seen"].as_i64().unwrap() <= admin["last_seen"].as_i64().unwrap());
    let nightly = clients.iter().find(|c| c["user_agent"] == "nightly-cron/2").unwrap();
    assert_eq!(
        (nightly["target"].as_str(), nightly["count"].as_u64()),
        (Some("Sora_20161101.ListStartedRecording"), Some(1))
    );
}
