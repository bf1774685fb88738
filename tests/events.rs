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
        format!("http://{}/events?api_key=Q-SECRET-1", listener.local_addr().unwrap())
    };
    let (sim, shim, options) = start_pair(|o| o.env("SORA_SHIM__EVENT_WEBHOOK__FORWARD_URL", &dead)).await;
    let started = api(&shim.url, START, json!({"channel_id": "keep", "expire_time": 0})).await.json();
    connect(&sim, "keep").await;
    let session = sim_session(&sim, "keep").await.unwrap();
    // The session's real upstream recording id: the reconciler may have bound the leg to it, and
    // an event naming another recording of the session would (rightly) not be the order's.
    let upstream_id = session["recording"]["recording_id"].clone();
    assert!(upstream_id.is_string(), "{session}");
    let event = json!({"type": "recording.report", "recording_id": upstream_id, "session_id": session["session_id"],
                       "channel_id": "keep", "recording_metadata": {}});
    let failed = post(&shim.url, "/hooks/event", None, &event.to_string(), &[]).await;
    failed.assert_legacy_error(502, "UPSTREAM-UNAVAILABLE");
    // The forward URL's query may hold a token: neither the reply nor the log shows it.
    let detail = failed.header("x-shim-error-detail").unwrap();
    assert!(detail.contains("/events?<redacted>") && !detail.contains("Q-SECRET-1"), "{detail}");
    assert!(!shim.log_text().contains("Q-SECRET-1"));
    // The order, its session link and the recording are all still there.
    let still = api(&shim.url, "Sora_20161101.GetStartedRecording", json!({"channel_id": "keep"})).await.json();
    assert_eq!(still["recording_id"], started["recording_id"]);
    assert_eq!(stored_orders(&options.store).len(), 1);
    assert!(sim_session(&sim, "keep").await.unwrap()["recording"].is_object());

    let metrics = metrics_text(&shim).await;
    assert_eq!(sample(&metrics, r#"sora_shim_webhook_forward_errors_total{hook="event"}"#), Some(1.0), "{metrics}");

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
    assert_eq!(forwarded[0]["session_recording_id"], upstream_id);
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
    // A non-ASCII agent is its own client, not merged with clients that send no agent.
    post(&shim.url, "/", Some(STOP), r#"{"channel_id":"u"}"#, &[("user-agent", "Über-admin/3")]).await;
    post(&shim.url, "/", Some(STOP), r#"{"channel_id":"u"}"#, &[]).await;
    let report = get_json(&format!("{}/shim/usage", shim.url)).await;
    let stops: Vec<&Value> = report["clients"].as_array().unwrap().iter().filter(|c| c["target"] == STOP).collect();
    let agents: Vec<&str> = stops.iter().map(|c| c["user_agent"].as_str().unwrap()).collect();
    assert_eq!(agents.len(), 2, "{report}");
    assert!(agents.contains(&"") && agents.contains(&"Über-admin/3"), "{agents:?}");
}

#[tokio::test]
async fn events_nobody_can_map_pass_through_byte_for_byte_and_are_counted() {
    let receiver = Receiver::start(200, "{}").await;
    let (sim, shim) = wired(&receiver, |o| o).await;
    // One rewritten event, so the counts below are told apart from "nothing counted".
    api(&shim.url, START, json!({"channel_id": "mapped", "expire_time": 0})).await;
    let connection = connect(&sim, "mapped").await;
    disconnect(&sim, &connection).await;
    events_of(&receiver, "recording.report", "mapped", 1).await;
    events_of(&receiver, "archive.available", "mapped", 1).await;
    let before = receiver.requests().len();

    let unknown_session = r#"{"type":"recording.report","session_id":"NO-SUCH-SESSION","recording_id":"U9",  "recording_metadata":{"legacy_metadata":1}}"#;
    let no_session = r#"{"type":"archive.available","recording_id":"U8"}"#;
    let not_json = "recording.report? not JSON";
    let other = r#"{"type":"connection.created","channel_id":"mapped","metadata":{"a":1}}"#;
    for body in [unknown_session, no_session, not_json, other] {
        let reply = post(&shim.url, "/hooks/event", None, body, &[("content-type", "application/json")]).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let forwarded = receiver.requests();
    let passed: Vec<&[u8]> = forwarded[before..].iter().map(|request| request.body.as_ref()).collect();
    let sent: Vec<&[u8]> = [unknown_session, no_session, not_json, other].iter().map(|body| body.as_bytes()).collect();
    assert_eq!(passed, sent, "forwarded unchanged, byte for byte, in order");

    let metrics = metrics_text(&shim).await;
    let count = |outcome: &str| sample(&metrics, &format!(r#"sora_shim_event_webhooks_total{{outcome="{outcome}"}}"#));
    assert_eq!(count("unmapped"), Some(3.0), "{metrics}");
    assert_eq!(count("other"), Some(1.0), "{metrics}");
    // The legacy flow's own events: archive.available and recording.report, both rewritten.
    assert_eq!(count("translated"), Some(2.0), "{metrics}");
}

#[tokio::test]
async fn webhook_bodies_have_their_own_size_limit() {
    let receiver = Receiver::start(200, "{}").await;
    let (_sim, shim) = wired(&receiver, |o| {
        o.env("SORA_SHIM__LIMITS__MAX_BODY_BYTES", "1024").env("SORA_SHIM__LIMITS__MAX_WEBHOOK_BODY_BYTES", "8192")
    })
    .await;
    let event_of = |size: usize| json!({"type": "connection.created", "channel_id": "big", "pad": "x".repeat(size)});
    // 4 KiB: over the API limit, under the webhook limit, so it is forwarded.
    let medium = event_of(4096).to_string();
    assert_eq!(post(&shim.url, "/hooks/event", None, &medium, &[]).await.status, 200);
    assert_eq!(receiver.requests().len(), 1);
    assert_eq!(receiver.requests()[0].body, medium.as_bytes());
    // 16 KiB: over the webhook limit, refused on both hooks and nothing forwarded.
    let large = event_of(16 * 1024).to_string();
    post(&shim.url, "/hooks/event", None, &large, &[]).await.assert_legacy_error(413, "REQUEST-TOO-LARGE");
    post(&shim.url, "/hooks/session", None, &large, &[]).await.assert_legacy_error(413, "REQUEST-TOO-LARGE");
    assert_eq!(receiver.requests().len(), 1, "nothing over the limit was forwarded");
    // The same 4 KiB as a legacy call is over the API's own limit.
    let start = json!({"channel_id": "big", "expire_time": 0, "metadata": {"pad": "x".repeat(4096)}}).to_string();
    post(&shim.url, "/", Some(START), &start, &[]).await.assert_legacy_error(413, "REQUEST-TOO-LARGE");
}

/// Usage rows saved in the store file: (target, user agent, count).
fn saved_usage(store: &std::path::Path) -> Vec<(String, String, i64)> {
    let connection = rusqlite::Connection::open(store).unwrap();
    let mut statement =
        connection.prepare("SELECT target, user_agent, count FROM usage ORDER BY target, user_agent").unwrap();
    statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?))).unwrap().map(Result::unwrap).collect()
}

#[tokio::test]
async fn usage_outlives_restarts_and_crashes() {
    let sim = start_sim(&[]);
    let often = ShimOptions::new(&sim.url).env("SORA_SHIM__USAGE__FLUSH_INTERVAL_MS", "1000");
    let mut shim = start_shim(&often);
    let old = [("user-agent", "old-admin/1.0")];
    post(&shim.url, "/", Some(START), r#"{"channel_id":"u","expire_time":0}"#, &old).await;
    post(&shim.url, "/", Some(STOP), r#"{"channel_id":"u"}"#, &old).await;
    // Saved by the periodic flush, so even SIGKILL keeps them.
    let stop_and_start =
        [(START.to_owned(), "old-admin/1.0".to_owned(), 1), (STOP.to_owned(), "old-admin/1.0".to_owned(), 1)];
    wait_for("usage saved", Duration::from_secs(10), || async {
        (saved_usage(&often.store) == stop_and_start).then_some(())
    })
    .await;
    shim.kill();

    // Next run: never flushes on its own, so what it counts is saved only by the clean shutdown.
    let rarely = ShimOptions { env: vec![], ..often.clone() }.env("SORA_SHIM__USAGE__FLUSH_INTERVAL_MS", "600000");
    let mut shim = start_shim(&rarely);
    let report = get_json(&format!("{}/shim/usage", shim.url)).await;
    assert_eq!(report["totals"], json!({START: 1, STOP: 1}), "the last run's counts are back: {report}");
    post(&shim.url, "/", Some(START), r#"{"channel_id":"u","expire_time":0}"#, &old).await;
    let report = get_json(&format!("{}/shim/usage", shim.url)).await;
    let admin = report["clients"].as_array().unwrap().iter().find(|c| c["target"] == START).unwrap().clone();
    assert_eq!(admin["count"], 2, "{report}");
    assert!(report["since"].as_i64().unwrap() <= admin["first_seen"].as_i64().unwrap());
    assert_eq!(saved_usage(&rarely.store)[0].2, 1, "not flushed yet");
    assert_eq!(shim.terminate(Duration::from_secs(10)), Some(0));
    assert_eq!(saved_usage(&rarely.store)[0], (START.to_owned(), "old-admin/1.0".to_owned(), 2));
}

#[tokio::test]
async fn an_event_from_another_channel_is_never_given_a_legacy_id() {
    let receiver = Receiver::start(200, "{}").await;
    let (sim, shim) = wired(&receiver, |o| o).await;
    api(&shim.url, START, json!({"channel_id": "legx", "expire_time": 0, "metadata": "legacy-only"})).await;
    connect(&sim, "nat").await;
    let native_session = sim_session(&sim, "nat").await.unwrap()["session_id"].as_str().unwrap().to_owned();
    // A session webhook claiming the native channel's session for the legacy channel.
    let claim = json!({"type": "session.created", "channel_id": "legx", "session_id": native_session}).to_string();
    assert_eq!(post(&shim.url, "/hooks/session", None, &claim, &[]).await.status, 200);

    let event = json!({"type": "archive.available", "channel_id": "nat", "session_id": native_session,
                       "recording_id": "NATIVE-REC-1", "recording_metadata": {"k": "v"}})
    .to_string();
    assert_eq!(post(&shim.url, "/hooks/event", None, &event, &[]).await.status, 200);
    let forwarded = receiver.requests();
    assert_eq!(forwarded.last().unwrap().body, event.as_bytes(), "forwarded unchanged");
    // Nor is one whose channel is not a string at all (a channel nobody can compare).
    for odd in [json!(42), json!(null), json!(["legx"]), json!({"id": "legx"})] {
        let event = json!({"type": "archive.available", "channel_id": odd, "session_id": native_session,
                           "recording_id": "NATIVE-REC-1"})
        .to_string();
        assert_eq!(post(&shim.url, "/hooks/event", None, &event, &[]).await.status, 200);
        assert_eq!(receiver.requests().last().unwrap().body, event.as_bytes(), "{odd} forwarded unchanged");
    }
    let metrics = metrics_text(&shim).await;
    assert_eq!(sample(&metrics, r#"sora_shim_event_webhooks_total{outcome="unmapped"}"#), Some(5.0), "{metrics}");
    assert_eq!(sample(&metrics, r#"sora_shim_event_webhooks_total{outcome="translated"}"#), None, "{metrics}");
}

#[tokio::test]
async fn https_forward_targets_are_verified_against_the_ca_roots() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    let receiver = Receiver::start_tls(200, r#"{"tls":true}"#).await;
    let event = json!({"type": "connection.created", "channel_id": "tls"}).to_string();
    let with_roots = |file: &str| {
        ShimOptions::new("http://127.0.0.1:9")
            .env("SORA_SHIM__EVENT_WEBHOOK__FORWARD_URL", &format!("{}/events", receiver.url))
            .env("SSL_CERT_FILE", fixtures.join(file).to_str().unwrap())
    };
    // Trusting the CA that signed the receiver's certificate: forwarded over TLS.
    let shim = start_shim(&with_roots("ca.pem"));
    let reply = post(&shim.url, "/hooks/event", None, &event, &[]).await;
    assert_eq!((reply.status, reply.text()), (200, r#"{"tls":true}"#.to_owned()));
    assert_eq!(receiver.requests().len(), 1);
    assert_eq!(receiver.requests()[0].body, event.as_bytes());

    // Trusting another CA only: the certificate does not verify and nothing is delivered.
    let shim = start_shim(&with_roots("other-ca.pem"));
    let reply = post(&shim.url, "/hooks/event", None, &event, &[]).await;
    reply.assert_legacy_error(502, "UPSTREAM-UNAVAILABLE");
    let detail = reply.header("x-shim-error-detail").unwrap();
    assert!(detail.contains("certificate"), "the cause is named, not only `client error (Connect)`: {detail}");
    assert_eq!(receiver.requests().len(), 1, "nothing reached the receiver");

    // A CA file named but missing: refused, even when a CA directory supplies others.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sora-legacy-shim"))
        .args(["check", "--upstream", "http://127.0.0.1:9"])
        .env("SORA_SHIM__EVENT_WEBHOOK__FORWARD_URL", format!("{}/events", receiver.url))
        .env("SSL_CERT_FILE", fixtures.join("no-such-ca.pem"))
        .env("SSL_CERT_DIR", &fixtures)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no-such-ca.pem") && stderr.contains("cannot be read"), "{stderr}");

    // No CA certificate at all: refused at start-up, saying why.
    let empty = temp_dir("no-roots").join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sora-legacy-shim"))
        .args(["check", "--upstream", "http://127.0.0.1:9"])
        .env("SORA_SHIM__EVENT_WEBHOOK__FORWARD_URL", format!("{}/events", receiver.url))
        .env("SSL_CERT_FILE", &empty)
        .env("SSL_CERT_DIR", temp_dir("no-roots-dir"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_ne!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("event_webhook.forward_url") && stderr.contains("SSL_CERT_FILE="), "{stderr}");
}

#[tokio::test]
async fn a_reload_that_shortens_the_flush_interval_applies_at_once() {
    let sim = start_sim(&[]);
    let config = temp_dir("usage-reload").join("shim.toml");
    std::fs::write(&config, "[usage]\nflush_interval_ms = 600000\n").unwrap();
    let mut options = ShimOptions::new(&sim.url);
    options.args = vec!["--config".into(), config.to_str().unwrap().into()];
    let shim = start_shim(&options);
    post(&shim.url, "/", Some(START), r#"{"channel_id":"h","expire_time":0}"#, &[("user-agent", "hup/1")]).await;
    std::fs::write(&config, "[usage]\nflush_interval_ms = 1000\n").unwrap();
    std::process::Command::new("kill").args(["-HUP", &shim.pid().to_string()]).status().unwrap();
    // Saved within about a second of the reload, not ten minutes after start-up.
    wait_for("usage saved after the reload", Duration::from_secs(10), || async {
        (saved_usage(&options.store) == [(START.to_owned(), "hup/1".to_owned(), 1)]).then_some(())
    })
    .await;
}
