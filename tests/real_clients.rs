//! The client habits of `shared/cases/real-clients.md` (cases 1–9, 12, 13, 16, 17), each through
//! the real shim in front of the real `sora-sim`.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const START: &str = "Sora_20161101.StartRecording";
const STOP: &str = "Sora_20161101.StopRecording";

/// Headers of a passthrough reply must match the direct reply, except the per-response `date`
/// and the `x-request-id` the shim adds.
fn assert_same_reply(direct: &Reply, via_shim: &Reply) {
    assert_eq!(via_shim.status, direct.status);
    assert_eq!(via_shim.body, direct.body, "bodies differ: {} vs {}", via_shim.text(), direct.text());
    let comparable = |reply: &Reply| -> Vec<(String, String)> {
        let mut headers: Vec<(String, String)> = reply
            .headers
            .iter()
            .filter(|(name, _)| !matches!(name.as_str(), "date" | "x-request-id"))
            .map(|(name, value)| (name.to_string(), value.to_str().unwrap_or("").to_owned()))
            .collect();
        headers.sort();
        headers
    };
    assert_eq!(comparable(via_shim), comparable(direct));
}

fn last_body(entries: &[Value]) -> String {
    entries.last().expect("a journal entry")["body"].as_str().unwrap().to_owned()
}

fn header_of(entry: &Value, name: &str) -> Option<String> {
    entry["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|pair| pair[0] == name)
        .map(|pair| pair[1].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn case_01_browser_admin_tool_with_preflight_on_api_path() {
    let sim = start_sim(&[]);
    let shim = start_shim(
        &ShimOptions::new(&sim.url)
            .env("SORA_SHIM__API_PATHS", "/,/api")
            .env("SORA_SHIM__CORS__ALLOWED_ORIGINS", "https://admin.example"),
    );
    let preflight = http::Request::builder()
        .method("OPTIONS")
        .uri(format!("{}/api", shim.url))
        .header("origin", "https://admin.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type,x-sora-target")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let reply = send(preflight).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("access-control-allow-origin"), Some("https://admin.example"));
    let allowed = reply.header("access-control-allow-headers").unwrap().to_ascii_lowercase();
    assert!(allowed.contains("content-type") && allowed.contains("x-sora-target"), "{allowed}");

    let headers =
        [("accept", "application/json"), ("content-type", "application/json"), ("origin", "https://admin.example")];
    let body = r#"{"channel_id":"sora","expire_time":3600}"#;
    let reply = post(&shim.url, "/api", Some(START), body, &headers).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("access-control-allow-origin"), Some("https://admin.example"));
    let json = reply.json();
    assert_eq!(json["channel_id"], "sora");
    assert_eq!(json["expire_time"], 3600);
    assert!(is_ulid(&json["recording_id"]));
    // The tool parses the body before the status: errors are JSON too.
    let error = post(&shim.url, "/api", Some(START), body, &headers).await;
    assert_eq!(error.json(), json!({"error_type": "STARTED-RECORDING"}));
}

#[tokio::test]
async fn case_02_official_one_line_migration_passes_through_byte_for_byte() {
    let sim = start_sim(&[]);
    let shim = start_shim(&ShimOptions::new(&sim.url));
    let body = r#"{"channel_id":"sora","expire_time":3600}"#;
    let target = Some("Sora_20231220.StartRecording");
    let headers = [("content-type", "application/json")];
    // No session: Sora's own error, unchanged.
    let direct = post(&sim.url, "/", target, body, &headers).await;
    let via_shim = post(&shim.url, "/", target, body, &headers).await;
    assert_eq!(direct.status, 400);
    assert_same_reply(&direct, &via_shim);
    assert_eq!(last_body(&journal(&sim, "Sora_20231220.StartRecording").await), body);

    // With a session: the upstream's own 200, recording id and all.
    connect(&sim, "sora").await;
    let via_shim = post(&shim.url, "/", target, body, &headers).await;
    assert_eq!(via_shim.status, 200, "{}", via_shim.text());
    let state = get_json(&format!("{}/sim/state", sim.url)).await;
    let recording = state["recordings"].as_array().unwrap().iter().find(|r| r["channel_id"] == "sora").unwrap().clone();
    assert_eq!(via_shim.json()["recording_id"], recording["recording_id"]);
    assert_eq!(recording["started_by"], "api");
}

#[tokio::test]
async fn case_03_operator_panel_without_content_type_passes_through_untouched() {
    let sim = start_sim(&[]);
    let shim = start_shim(&ShimOptions::new(&sim.url));
    let target = Some("Sora_20231220.StopRecording");
    let direct = post(&sim.url, "/", target, r#"{"channel_id":"sora"}"#, &[]).await;
    let via_shim = post(&shim.url, "/", target, r#"{"channel_id":"sora"}"#, &[]).await;
    assert_same_reply(&direct, &via_shim);
    let entries = journal(&sim, "Sora_20231220.StopRecording").await;
    assert_eq!(entries.len(), 2);
    let forwarded = entries.last().unwrap();
    assert_eq!(forwarded["body"], r#"{"channel_id":"sora"}"#);
    assert_eq!(header_of(forwarded, "content-type"), None, "no Content-Type may be invented");
}

#[tokio::test]
async fn case_04_relay_fields_are_not_stripped_or_reordered() {
    let sim = start_sim(&[]);
    let shim = start_shim(&ShimOptions::new(&sim.url));
    connect(&sim, "relay").await;
    // Unusual key order and spacing, exactly as a relay might produce them.
    let body = "{\"split_only\": false, \"metadata\": {\"z\": 1, \"a\": [2, 1]},\n \"format\": \"webm\", \"channel_id\": \"relay\"}";
    let reply =
        post(&shim.url, "/", Some("Sora_20231220.StartRecording"), body, &[("content-type", "application/json")]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(last_body(&journal(&sim, "Sora_20231220.StartRecording").await), body);
}

#[tokio::test]
async fn case_05_dashboards_list_sessions_as_a_top_level_array() {
    let sim = start_sim(&[]);
    let shim = start_shim(&ShimOptions::new(&sim.url));
    connect(&sim, "dash-a").await;
    connect(&sim, "dash-b").await;
    let target = Some("Sora_20231220.ListSessions");
    for (body, headers) in [
        ("", &[][..]),
        ("{}", &[][..]),
        ("", &[("content-type", "application/json")][..]),
        ("{}", &[("content-type", "application/json")][..]),
    ] {
        let direct = post(&sim.url, "/", target, body, headers).await;
        let via_shim = post(&shim.url, "/", target, body, headers).await;
        assert_same_reply(&direct, &via_shim);
        let sessions = via_shim.json();
        assert!(sessions.is_array(), "{sessions}");
        assert_eq!(sessions.as_array().unwrap().len(), 2);
        assert!(via_shim.text().starts_with('['));
    }
}

#[tokio::test]
async fn case_06_legacy_list_calls_with_content_length_0() {
    let sim = start_sim(&[]);
    let shim = start_shim(&ShimOptions::new(&sim.url));
    for target in ["Sora_20161101.ListStartedRecording", "Sora_20161101.ListArchiving"] {
        let request = format!(
            "POST / HTTP/1.1\r\nHost: {}\r\nAccept: */*\r\nContent-Length: 0\r\nx-sora-target: {target}\r\nConnection: close\r\n\r\n",
            shim.addr()
        );
        let raw =
            String::from_utf8(raw_exchange(shim.addr(), request.as_bytes(), false, Duration::from_secs(10))).unwrap();
        assert!(raw.starts_with("HTTP/1.1 200 OK\r\n"), "{target}: {raw}");
        assert!(raw.to_ascii_lowercase().contains("content-type: application/json\r\n"), "{raw}");
        assert!(raw.ends_with("\r\n\r\n[]"), "{target}: {raw}");
    }
}

#[tokio::test]
async fn case_07_vendor_prefix_keeps_authorization_and_never_logs_it() {
    let sim = start_sim(&[]);
    let shim = start_shim(&ShimOptions::new(&sim.url));
    let token = "Bearer s3cr3t-t0ken-for-case-7";
    let headers = [("authorization", token), ("content-type", "application/json")];
    let direct = post(&sim.url, "/", Some("ImageFlux_20200316.Anything"), "{}", &headers).await;
    let via_shim = post(&shim.url, "/", Some("ImageFlux_20200316.Anything"), "{}", &headers).await;
    assert_same_reply(&direct, &via_shim);
    let entries = journal(&sim, "ImageFlux_20200316.Anything").await;
    assert_eq!(entries.len(), 2);
    assert_eq!(header_of(entries.last().unwrap(), "authorization").as_deref(), Some(token));
    // The header-case variant of the target name also passes through.
    let upper =
        post(&shim.url, "/", None, "{}", &[("X-Sora-Target", "ImageFlux_20200316.Anything"), ("authorization", token)])
            .await;
    assert_same_reply(&direct, &upper);
    let log = shim.log_text();
    assert!(log.contains("request finished"), "the shim logged its requests: {log}");
    assert!(!log.contains("s3cr3t"), "the token leaked into the log");
}

/// The `x-sora-release-channel` values of journal entries that carry one. The reconciler's own
/// calls (its first pass may meet the test's Start) carry none, so they do not count.
fn release_channels(entries: &[Value]) -> Vec<String> {
    entries.iter().filter_map(|entry| header_of(entry, "x-sora-release-channel")).collect()
}

#[tokio::test]
async fn case_08_routing_headers_reach_the_upstream_on_every_kind_of_call() {
    let sim = start_sim(&[]);
    let shim = start_shim(&ShimOptions::new(&sim.url));
    connect(&sim, "canary").await;
    let headers = [("x-sora-release-channel", "canary"), ("content-type", "application/json")];
    let start = post(&shim.url, "/", Some(START), r#"{"channel_id":"canary","expire_time":0}"#, &headers).await;
    assert_eq!(start.status, 200, "{}", start.text());
    let upstream_start = journal(&sim, "Sora_20231220.StartRecording").await;
    assert_eq!(release_channels(&upstream_start), ["canary"], "exactly the client's own call carried it");
    let stop = post(&shim.url, "/", Some(STOP), r#"{"channel_id":"canary"}"#, &headers).await;
    assert_eq!(stop.status, 200);
    let upstream_stop = journal(&sim, "Sora_20231220.StopRecording").await;
    assert_eq!(release_channels(&upstream_stop), ["canary"], "exactly the client's own call carried it");
    let passthrough = post(&shim.url, "/", Some("Sora_20231220.ListSessions"), "{}", &headers).await;
    assert_eq!(passthrough.status, 200);
    let listed = journal(&sim, "Sora_20231220.ListSessions").await;
    assert_eq!(header_of(listed.last().unwrap(), "x-sora-release-channel").as_deref(), Some("canary"));
    // The request id reaches the upstream even when the client names it in `Connection`.
    let named = [("x-request-id", "trace-42"), ("connection", "x-request-id")];
    assert_eq!(post(&shim.url, "/", Some("Sora_20231220.ListSessions"), "{}", &named).await.status, 200);
    let listed = journal(&sim, "Sora_20231220.ListSessions").await;
    assert_eq!(header_of(listed.last().unwrap(), "x-request-id").as_deref(), Some("trace-42"));
}

#[tokio::test]
async fn case_09_monitoring_exporter_polls_within_its_timeout() {
    let sim = start_sim(&[]);
    let shim = start_shim(&ShimOptions::new(&sim.url));
    let target = Some("Sora_20171010.GetStatsReport");
    let direct = post(&sim.url, "/", target, "", &[]).await;
    assert_eq!(direct.status, 200);
    for _ in 0..50 {
        let reply = tokio::time::timeout(Duration::from_secs(1), post(&shim.url, "/", target, "", &[]))
            .await
            .expect("the exporter's 1-second timeout fired");
        assert_same_reply(&direct, &reply);
    }
}

#[tokio::test]
async fn case_12_no_expiry_sends_no_expire_time_upstream() {
    let sim = start_sim(&[]);
    let shim = start_shim(&ShimOptions::new(&sim.url));
    connect(&sim, "sora").await;
    let reply = api(&shim.url, START, json!({"channel_id": "sora", "expire_time": 0})).await;
    assert_eq!(reply.status, 200);
    let body = reply.json();
    assert_eq!(body.as_object().unwrap().len(), 3);
    assert_eq!((body["channel_id"].as_str(), body["expire_time"].as_i64()), (Some("sora"), Some(0)));
    assert!(is_ulid(&body["recording_id"]));
    let upstream: Value =
        serde_json::from_str(&last_body(&journal(&sim, "Sora_20231220.StartRecording").await)).unwrap();
    assert_eq!(upstream, json!({"channel_id": "sora", "format": "webm"}));
    let session = sim_session(&sim, "sora").await.unwrap();
    assert!(session["recording"].is_object(), "the session records: {session}");
    assert!(session["recording"].get("expire_time").is_none() || session["recording"]["expire_time"].is_null());
}

#[tokio::test]
async fn case_12b_expiry_and_metadata_reach_the_upstream() {
    let sim = start_sim(&[]);
    let shim = start_shim(&ShimOptions::new(&sim.url));
    connect(&sim, "meta-object").await;
    connect(&sim, "meta-text").await;
    let reply =
        api(&shim.url, START, json!({"channel_id": "meta-object", "expire_time": 600, "metadata": {"room": "r1"}}))
            .await;
    assert_eq!(reply.status, 200);
    let reply = api(&shim.url, START, json!({"channel_id": "meta-text", "expire_time": 0, "metadata": "r1"})).await;
    assert_eq!(reply.status, 200);
    let starts: Vec<Value> = journal(&sim, "Sora_20231220.StartRecording")
        .await
        .iter()
        .map(|entry| serde_json::from_str(entry["body"].as_str().unwrap()).unwrap())
        .collect();
    let object = starts.iter().find(|body| body["channel_id"] == "meta-object").unwrap();
    assert_eq!(object["metadata"], json!({"room": "r1"}));
    let remaining = object["expire_time"].as_i64().unwrap();
    assert!((599..=600).contains(&remaining), "{remaining}");
    let text = starts.iter().find(|body| body["channel_id"] == "meta-text").unwrap();
    assert_eq!(text["metadata"], json!({"legacy_metadata": "r1"}));
}

#[tokio::test]
async fn case_13_split_only() {
    let sim = start_sim(&[]);
    let shim = start_shim(&ShimOptions::new(&sim.url));
    connect(&sim, "sora").await;
    let reply = api(
        &shim.url,
        START,
        json!({"channel_id": "sora", "expire_time": 0, "split_duration": 3600, "split_only": true}),
    )
    .await;
    assert_eq!(reply.status, 200);
    let body = reply.json();
    assert_eq!((body["split_duration"].as_i64(), body["split_only"].as_bool()), (Some(3600), Some(true)));
    let upstream: Value =
        serde_json::from_str(&last_body(&journal(&sim, "Sora_20231220.StartRecording").await)).unwrap();
    assert_eq!(upstream, json!({"channel_id": "sora", "format": "webm", "split_duration": 3600, "split_only": true}));
    let session = sim_session(&sim, "sora").await.unwrap();
    assert_eq!(session["recording"]["split_only"], true);
    assert_eq!(session["recording"]["split_duration"], 3600);

    let strict = api(
        &shim.url,
        START,
        json!({"channel_id": "other", "expire_time": 60, "split_duration": 30, "split_only": true}),
    )
    .await;
    strict.assert_legacy_error(400, "INVALID-SPLIT-ONLY");
}

#[tokio::test]
async fn case_13b_relaxed_split_rules_when_not_strict() {
    let sim = start_sim(&[]);
    let shim = start_shim(&ShimOptions::new(&sim.url).env("SORA_SHIM__LEGACY__STRICT", "false"));
    let reply = api(
        &shim.url,
        START,
        json!({"channel_id": "c", "expire_time": 3600, "split_duration": 600, "split_only": true}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["split_only"], true);
}

#[tokio::test]
async fn case_16_double_start_and_stop_without_start() {
    let sim = start_sim(&[]);
    let shim = start_shim(&ShimOptions::new(&sim.url));
    assert_eq!(api(&shim.url, START, json!({"channel_id": "twice", "expire_time": 60})).await.status, 200);
    api(&shim.url, START, json!({"channel_id": "twice", "expire_time": 60}))
        .await
        .assert_legacy_error(400, "STARTED-RECORDING");
    api(&shim.url, STOP, json!({"channel_id": "never"})).await.assert_legacy_error(400, "NOT-STARTED-RECORDING");
}

#[tokio::test]
async fn case_17_stop_never_waits_for_files_or_webhooks() {
    // The whole event path is wired (emulator → shim's /hooks/event → the operator's receiver),
    // and the operator's receiver never answers; the shim would wait up to a minute for it.
    let receiver = Stall::start().await;
    let (sim, shim, _) = start_pair(|options| {
        options
            .env("SORA_SHIM__EVENT_WEBHOOK__FORWARD_URL", &format!("{}/events", receiver.url))
            .env("SORA_SHIM__EVENT_WEBHOOK__FORWARD_TIMEOUT_MS", "60000")
    })
    .await;
    set_sim_webhooks(&sim, None, Some(&format!("{}/hooks/event", shim.url))).await;
    connect(&sim, "async").await;
    assert_eq!(api(&shim.url, START, json!({"channel_id": "async", "expire_time": 0})).await.status, 200);
    assert!(sim_session(&sim, "async").await.unwrap()["recording"].is_object());
    assert_eq!(receiver.arrived(), 0);

    // `api` gives up after 30 s: a Stop that waited for the event delivery would fail here.
    let stop = api(&shim.url, STOP, json!({"channel_id": "async"})).await;
    assert_eq!(stop.status, 200);
    assert_eq!(stop.text(), r#"{"channel_id":"async"}"#);
    assert_eq!(stop.header("content-type"), Some("application/json"));
    // The order is gone at once and the upstream recording has ended.
    api(&shim.url, "Sora_20161101.GetStartedRecording", json!({"channel_id": "async"}))
        .await
        .assert_legacy_error(400, "NOT-STARTED-RECORDING");
    assert!(sim_session(&sim, "async").await.unwrap().get("recording").is_none());
    // The recording's events reach the operator's receiver through the shim and stay unanswered
    // there; meanwhile the channel takes a new legacy recording at once.
    wait_for("the recording events held at the operator's receiver", Duration::from_secs(10), || async {
        (receiver.arrived() >= 1).then_some(())
    })
    .await;
    let again = api(&shim.url, START, json!({"channel_id": "async", "expire_time": 0})).await;
    assert_eq!(again.status, 200, "{}", again.text());
    assert_ne!(again.json()["recording_id"], Value::Null);
    assert!(sim_session(&sim, "async").await.unwrap()["recording"].is_object());
}
