//! Every error name of contract §3 that the shim can produce end to end, each with its status and
//! exact body; and bad input that must never panic, never answer a non-JSON body on a legacy
//! target, and never leave a half-written order. (INTERNAL-ERROR needs a panicking handler and
//! is covered by the stack test `a_panicking_handler_answers_legacy_500`.)

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

const START: &str = "Sora_20161101.StartRecording";
const GET_STARTED: &str = "Sora_20161101.GetStartedRecording";
const LIST_STARTED: &str = "Sora_20161101.ListStartedRecording";
const LIST_ARCHIVING: &str = "Sora_20161101.ListArchiving";

#[tokio::test]
async fn validation_errors_have_their_names() {
    let sim = start_sim(&[]);
    let shim = start_shim(&ShimOptions::new(&sim.url));
    let cases = [
        (json!({"expire_time": 0}), "INVALID-CHANNEL-ID"),
        (json!({"channel_id": 7, "expire_time": 0}), "INVALID-CHANNEL-ID"),
        (json!({"channel_id": "x".repeat(256), "expire_time": 0}), "INVALID-CHANNEL-ID"),
        (json!({"channel_id": "c"}), "INVALID-EXPIRE-TIME"),
        (json!({"channel_id": "c", "expire_time": "60"}), "INVALID-EXPIRE-TIME"),
        (json!({"channel_id": "c", "expire_time": 86401}), "INVALID-EXPIRE-TIME"),
        (json!({"channel_id": "c", "expire_time": -1}), "INVALID-EXPIRE-TIME"),
        (json!({"channel_id": "c", "expire_time": 0, "split_duration": 0}), "INVALID-SPLIT-DURATION"),
        (json!({"channel_id": "c", "expire_time": 0, "split_duration": 1.5}), "INVALID-SPLIT-DURATION"),
        (json!({"channel_id": "c", "expire_time": 0, "split_only": "yes"}), "INVALID-SPLIT-ONLY"),
        (json!({"channel_id": "c", "expire_time": 0, "split_only": true}), "INVALID-SPLIT-ONLY"),
        (json!(["channel_id", "c"]), "INVALID-JSON"),
    ];
    for (body, name) in cases {
        api(&shim.url, START, body).await.assert_legacy_error(400, name);
    }
    post(&shim.url, "/", Some(START), "{\"channel_id\": \"c\",", &[]).await.assert_legacy_error(400, "INVALID-JSON");
    post(&shim.url, "/", Some(GET_STARTED), "channel_id=c", &[("content-type", "application/x-www-form-urlencoded")])
        .await
        .assert_legacy_error(400, "INVALID-JSON");
    assert_eq!(api(&shim.url, LIST_STARTED, json!({})).await.text(), "[]");
}

#[tokio::test]
async fn upstream_cluster_minority_is_not_cluster_majority_and_withdraws_the_order() {
    let sim = start_sim(&[]);
    let shim = start_shim(&ShimOptions::new(&sim.url));
    add_fault(&sim, json!({"target": "Sora_20231220.StartRecording", "status": 400, "body": "{\"error_type\":\"NOT-CLUSTER-MAJORITY\"}"}))
        .await;
    api(&shim.url, START, json!({"channel_id": "minority", "expire_time": 60}))
        .await
        .assert_legacy_error(400, "NOT-CLUSTER-MAJORITY");
    api(&shim.url, GET_STARTED, json!({"channel_id": "minority"}))
        .await
        .assert_legacy_error(400, "NOT-STARTED-RECORDING");
}

#[tokio::test]
async fn unknown_upstream_error_is_upstream_error_and_withdraws_the_order() {
    let sim = start_sim(&[]);
    let shim = start_shim(&ShimOptions::new(&sim.url));
    add_fault(
        &sim,
        json!({"target": "Sora_20231220.StartRecording", "status": 400, "body": "{\"error_type\":\"SOMETHING-NEW\"}"}),
    )
    .await;
    let reply = api(&shim.url, START, json!({"channel_id": "odd", "expire_time": 60})).await;
    reply.assert_legacy_error(502, "UPSTREAM-ERROR");
    assert!(reply.header("x-shim-error-detail").unwrap().contains("SOMETHING-NEW"));
    assert_eq!(api(&shim.url, LIST_STARTED, json!({})).await.text(), "[]");
    assert!(shim.log_text().contains("SOMETHING-NEW"), "the raw upstream body is logged");

    add_fault(&sim, json!({"target": "Sora_20231220.ListSessions", "status": 500, "body": "<html>oops</html>"})).await;
    api(&shim.url, LIST_ARCHIVING, json!({})).await.assert_legacy_error(502, "UPSTREAM-ERROR");
}

#[tokio::test]
async fn upstream_timeout_and_unavailable() {
    let mut sim = start_sim(&[]);
    let shim = start_shim(&ShimOptions::new(&sim.url).env("SORA_SHIM__UPSTREAM__TIMEOUT_MS", "300"));
    add_fault(&sim, json!({"target": "Sora_20231220.ListSessions", "latency_ms": 3000})).await;
    api(&shim.url, LIST_ARCHIVING, json!({})).await.assert_legacy_error(504, "UPSTREAM-TIMEOUT");

    // A dropped connection is the upstream not answering.
    clear_faults(&sim).await;
    add_fault(&sim, json!({"target": "Sora_20231220.ListSessions", "drop": true})).await;
    api(&shim.url, LIST_ARCHIVING, json!({})).await.assert_legacy_error(502, "UPSTREAM-UNAVAILABLE");

    sim.kill();
    api(&shim.url, LIST_ARCHIVING, json!({})).await.assert_legacy_error(502, "UPSTREAM-UNAVAILABLE");
    post(&shim.url, "/", Some("Sora_20171010.GetStatsReport"), "", &[])
        .await
        .assert_legacy_error(502, "UPSTREAM-UNAVAILABLE");
    // Start still takes the order (on_upstream_failure = accept) ...
    let accepted = api(&shim.url, START, json!({"channel_id": "later", "expire_time": 0})).await;
    assert_eq!(accepted.status, 200);
    assert!(is_ulid(&accepted.json()["recording_id"]));
    assert_eq!(
        api(&shim.url, GET_STARTED, json!({"channel_id": "later"})).await.json()["recording_id"],
        accepted.json()["recording_id"]
    );
}

#[tokio::test]
async fn reject_mode_answers_upstream_failures_and_keeps_nothing() {
    let mut sim = start_sim(&[]);
    let options = ShimOptions::new(&sim.url).env("SORA_SHIM__LEGACY__ON_UPSTREAM_FAILURE", "reject");
    let store = options.store.clone();
    let shim = start_shim(&options);
    sim.kill();
    api(&shim.url, START, json!({"channel_id": "strict", "expire_time": 0}))
        .await
        .assert_legacy_error(502, "UPSTREAM-UNAVAILABLE");
    assert!(standing_orders(&store).is_empty(), "{:?}", stored_orders(&store));
    api(&shim.url, GET_STARTED, json!({"channel_id": "strict"}))
        .await
        .assert_legacy_error(400, "NOT-STARTED-RECORDING");
    // A retry is refused for the same reason, not met with STARTED-RECORDING.
    api(&shim.url, START, json!({"channel_id": "strict", "expire_time": 0}))
        .await
        .assert_legacy_error(502, "UPSTREAM-UNAVAILABLE");
}

#[tokio::test]
async fn request_too_large() {
    let sim = start_sim(&[]);
    let options = ShimOptions::new(&sim.url).env("SORA_SHIM__LIMITS__MAX_BODY_BYTES", "1024");
    let store = options.store.clone();
    let shim = start_shim(&options);
    let huge = json!({"channel_id": "big", "expire_time": 0, "metadata": "x".repeat(4096)}).to_string();
    post(&shim.url, "/", Some(START), &huge, &[]).await.assert_legacy_error(413, "REQUEST-TOO-LARGE");
    // Chunked, without Content-Length: the limit trips while reading.
    let head = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nx-sora-target: {START}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    let mut raw = head.into_bytes();
    raw.extend_from_slice(format!("{:x}\r\n{huge}\r\n0\r\n\r\n", huge.len()).as_bytes());
    let reply = String::from_utf8(raw_exchange(shim.addr(), &raw, false, Duration::from_secs(10))).unwrap();
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.ends_with(r#"{"error_type":"REQUEST-TOO-LARGE"}"#), "{reply}");
    assert!(stored_orders(&store).is_empty());
}

#[tokio::test]
async fn overloaded_when_in_flight_limit_is_reached() {
    let sim = start_sim(&[]);
    let shim = start_shim(&ShimOptions::new(&sim.url).env("SORA_SHIM__LIMITS__MAX_IN_FLIGHT", "1"));
    add_fault(&sim, json!({"target": "Sora_20171010.GetStatsReport", "latency_ms": 3000})).await;
    let slow = tokio::spawn({
        let url = shim.url.clone();
        async move { post(&url, "/", Some("Sora_20171010.GetStatsReport"), "", &[]).await }
    });
    // The slow call holds the only slot once the emulator has seen it.
    wait_for("the slow call to reach the emulator", Duration::from_secs(10), || async {
        (!journal(&sim, "Sora_20171010.GetStatsReport").await.is_empty()).then_some(())
    })
    .await;
    api(&shim.url, LIST_STARTED, json!({})).await.assert_legacy_error(503, "OVERLOADED");
    assert_eq!(slow.await.unwrap().status, 200);
    // The slot is free again.
    assert_eq!(api(&shim.url, LIST_STARTED, json!({})).await.status, 200);
}

#[tokio::test]
async fn store_unavailable_when_the_database_is_locked() {
    let sim = start_sim(&[]);
    let options = ShimOptions::new(&sim.url).env("SORA_SHIM__STORE__BUSY_TIMEOUT_MS", "100");
    let store = options.store.clone();
    let shim = start_shim(&options);
    let locker = rusqlite::Connection::open(&store).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    api(&shim.url, START, json!({"channel_id": "locked", "expire_time": 0}))
        .await
        .assert_legacy_error(503, "STORE-UNAVAILABLE");
    locker.execute_batch("ROLLBACK").unwrap();
    assert_eq!(api(&shim.url, START, json!({"channel_id": "locked", "expire_time": 0})).await.status, 200);
}

#[tokio::test]
async fn bad_input_never_panics_never_answers_non_json_and_never_half_writes() {
    let sim = start_sim(&[]);
    let options = ShimOptions::new(&sim.url).env("SORA_SHIM__LIMITS__MAX_BODY_BYTES", "4096");
    let store = options.store.clone();
    let shim = start_shim(&options);
    assert_eq!(api(&shim.url, START, json!({"channel_id": "existing", "expire_time": 0})).await.status, 200);
    let before = stored_orders(&store);
    assert_eq!(before.len(), 1);

    let legacy_bodies: Vec<(String, &str)> = vec![
        ("{".into(), "INVALID-JSON"),
        ("null".into(), "INVALID-JSON"),
        ("\u{0}\u{1}binary".into(), "INVALID-JSON"),
        (r#"{"channel_id": "a", "expire_time": 0"#.into(), "INVALID-JSON"),
        (r#"{"channel_id": ["a"], "expire_time": 0}"#.into(), "INVALID-CHANNEL-ID"),
        (r#"{"channel_id": {"a": 1}, "expire_time": 0}"#.into(), "INVALID-CHANNEL-ID"),
        (r#"{"channel_id": "a", "expire_time": 1e400}"#.into(), "INVALID-JSON"),
        (r#"{"channel_id": "a", "expire_time": 99999999999999999999}"#.into(), "INVALID-EXPIRE-TIME"),
        (r#"{"channel_id": "a", "expire_time": null}"#.into(), "INVALID-EXPIRE-TIME"),
        (r#"{"channel_id": "a", "expire_time": 0, "split_only": 1}"#.into(), "INVALID-SPLIT-ONLY"),
        (
            format!(r#"{{"channel_id": "a", "expire_time": 0, "metadata": "{}"}}"#, "m".repeat(10_000)),
            "REQUEST-TOO-LARGE",
        ),
        ("[".repeat(2_000), "INVALID-JSON"),
    ];
    for (body, name) in &legacy_bodies {
        let status = if *name == "REQUEST-TOO-LARGE" { 413 } else { 400 };
        post(&shim.url, "/", Some(START), body, &[("content-type", "application/json")])
            .await
            .assert_legacy_error(status, name);
    }

    // An empty target is not a legacy target: it passes through to the upstream, which refuses it.
    let empty_target = post(&shim.url, "/", Some(""), r#"{"channel_id":"a","expire_time":0}"#, &[]).await;
    let direct = post(&sim.url, "/", Some(""), r#"{"channel_id":"a","expire_time":0}"#, &[]).await;
    assert_eq!((empty_target.status, &empty_target.body), (direct.status, &direct.body));

    // A truncated body: the client promises 200 bytes, sends 30 and stops sending.
    let partial = r#"{"channel_id":"truncated","exp"#;
    let raw = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nx-sora-target: {START}\r\nContent-Length: 200\r\nConnection: close\r\n\r\n{partial}"
    );
    let reply = String::from_utf8(raw_exchange(shim.addr(), raw.as_bytes(), true, Duration::from_secs(10))).unwrap();
    assert!(reply.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{reply:?}");
    assert!(reply.ends_with(r#"{"error_type":"INVALID-JSON"}"#), "{reply:?}");

    // Nothing was written, nothing was lost, and the shim still answers.
    assert_eq!(stored_orders(&store), before);
    let listed = api(&shim.url, LIST_STARTED, json!({})).await.json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["channel_id"], "existing");
    assert!(!shim.log_text().contains("panicked"), "{}", shim.log_text());
}

#[tokio::test]
async fn a_list_call_whose_ignored_body_arrives_late_still_gets_its_whole_reply() {
    let sim = start_sim(&[]);
    let options = ShimOptions::new(&sim.url);
    // Enough orders for a reply far larger than the socket buffers (about 400 KB).
    let store = sora_legacy_shim::store::sqlite::SqliteStore::open(&options.store, Duration::from_secs(5)).unwrap();
    let now = sora_legacy_shim::app::now_secs();
    let orders = (0..3_000)
        .map(|i| sora_legacy_shim::store::Order {
            recording_id: ulid::Ulid::generate().to_string(),
            channel_id: format!("channel-{i:05}"),
            created_at: now,
            expire_time: 0,
            expired_at: now,
            split_duration: None,
            split_only: false,
            metadata: None,
        })
        .collect();
    store.insert_many(orders).await.unwrap();
    drop(store);
    let shim = start_shim(&options);

    let head = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nx-sora-target: {LIST_STARTED}\r\nContent-Length: 18\r\nConnection: close\r\n\r\n"
    );
    let mut stream = std::net::TcpStream::connect(shim.addr()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    std::io::Write::write_all(&mut stream, head.as_bytes()).unwrap();
    // The body comes after the head, as a slow client sends it: the scenario itself, not a wait.
    std::thread::sleep(Duration::from_millis(50));
    std::io::Write::write_all(&mut stream, br#"{"channel_id":"x"}"#).unwrap();
    let mut raw = Vec::new();
    let read = std::io::Read::read_to_end(&mut stream, &mut raw);
    assert!(read.is_ok(), "the reply was cut off after {} bytes: {read:?}", raw.len());
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    let listed: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 3_000);
}
