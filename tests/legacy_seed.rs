//! Every HTTPie example of Sora's legacy recording API page, replayed against the real shim in
//! front of the real `sora-sim`, with the headers HTTPie sent and the documented answer shapes.

mod common;

use common::*;
use serde_json::{Value, json};

const START: &str = "Sora_20161101.StartRecording";
const STOP: &str = "Sora_20161101.StopRecording";
const GET_STARTED: &str = "Sora_20161101.GetStartedRecording";
const LIST_STARTED: &str = "Sora_20161101.ListStartedRecording";
const LIST_ARCHIVING: &str = "Sora_20161101.ListArchiving";

/// A request as HTTPie sends one with `key=value` arguments: a compact JSON body with spaces.
async fn httpie(base: &str, target: &str, body: Option<Value>) -> Reply {
    match body {
        Some(body) => {
            let text = serde_json::to_string(&body).unwrap().replace("\":", "\": ").replace(",\"", ", \"");
            post(
                base,
                "/",
                Some(target),
                &text,
                &[
                    ("accept", "application/json, */*"),
                    ("content-type", "application/json"),
                    ("user-agent", "HTTPie/0.9.9"),
                ],
            )
            .await
        }
        // The list examples: `Content-Length: 0`, no Content-Type.
        None => post(base, "/", Some(target), "", &[("accept", "*/*"), ("user-agent", "HTTPie/2.4.0")]).await,
    }
}

fn keys(value: &Value) -> Vec<&str> {
    value.as_object().unwrap().keys().map(String::as_str).collect()
}

fn assert_json_ok(reply: &Reply) {
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert!(reply.header("x-request-id").is_some());
}

#[tokio::test]
async fn start_with_expire_time_0() {
    let sim = start_sim(&[]);
    let shim = start_shim(&ShimOptions::new(&sim.url));
    let reply = httpie(&shim.url, START, Some(json!({"channel_id": "sora", "expire_time": 0}))).await;
    assert_json_ok(&reply);
    let body = reply.json();
    assert_eq!(keys(&body), ["channel_id", "expire_time", "recording_id"]);
    assert_eq!(body["channel_id"], "sora");
    assert_eq!(body["expire_time"], 0);
    assert!(is_ulid(&body["recording_id"]), "{body}");
    // Keys are emitted sorted, like Sora's own replies.
    assert!(reply.text().starts_with("{\"channel_id\":\"sora\",\"expire_time\":0,\"recording_id\":\""));
}

#[tokio::test]
async fn start_with_expire_time_3600_then_started_recording() {
    let sim = start_sim(&[]);
    let shim = start_shim(&ShimOptions::new(&sim.url));
    let reply = httpie(&shim.url, START, Some(json!({"channel_id": "sora", "expire_time": 3600}))).await;
    assert_json_ok(&reply);
    let body = reply.json();
    assert_eq!(keys(&body), ["channel_id", "expire_time", "recording_id"]);
    assert_eq!((body["channel_id"].as_str(), body["expire_time"].as_i64()), (Some("sora"), Some(3600)));
    assert!(is_ulid(&body["recording_id"]));

    // The error example: the same Start again.
    let again = httpie(&shim.url, START, Some(json!({"channel_id": "sora", "expire_time": 3600}))).await;
    again.assert_legacy_error(400, "STARTED-RECORDING");
}

#[tokio::test]
async fn start_with_split_only() {
    let sim = start_sim(&[]);
    let shim = start_shim(&ShimOptions::new(&sim.url));
    let reply = httpie(
        &shim.url,
        START,
        Some(json!({"channel_id": "sora", "expire_time": 0, "split_duration": 3600, "split_only": true})),
    )
    .await;
    assert_json_ok(&reply);
    let body = reply.json();
    assert_eq!(keys(&body), ["channel_id", "expire_time", "recording_id", "split_duration", "split_only"]);
    assert_eq!(body["split_duration"], 3600);
    assert_eq!(body["split_only"], true);
    assert_eq!(body["expire_time"], 0);
}

#[tokio::test]
async fn stop_recording() {
    let sim = start_sim(&[]);
    let shim = start_shim(&ShimOptions::new(&sim.url));
    assert_json_ok(&httpie(&shim.url, START, Some(json!({"channel_id": "sora", "expire_time": 3600}))).await);
    let reply = httpie(&shim.url, STOP, Some(json!({"channel_id": "sora"}))).await;
    assert_json_ok(&reply);
    assert_eq!(reply.text(), r#"{"channel_id":"sora"}"#);
    // Stopped means gone.
    httpie(&shim.url, GET_STARTED, Some(json!({"channel_id": "sora"})))
        .await
        .assert_legacy_error(400, "NOT-STARTED-RECORDING");
}

#[tokio::test]
async fn get_started_recording_and_not_started() {
    let sim = start_sim(&[]);
    let shim = start_shim(&ShimOptions::new(&sim.url));
    httpie(&shim.url, GET_STARTED, Some(json!({"channel_id": "sora"})))
        .await
        .assert_legacy_error(400, "NOT-STARTED-RECORDING");

    let started = httpie(&shim.url, START, Some(json!({"channel_id": "sora", "expire_time": 3600}))).await.json();
    let reply = httpie(&shim.url, GET_STARTED, Some(json!({"channel_id": "sora"}))).await;
    assert_json_ok(&reply);
    let body = reply.json();
    assert_eq!(keys(&body), ["channel_id", "created_at", "expire_time", "expired_at", "recording_id", "split_only"]);
    assert_eq!(body["channel_id"], "sora");
    assert_eq!(body["expire_time"], 3600);
    assert_eq!(body["recording_id"], started["recording_id"]);
    assert_eq!(body["split_only"], false);
    let created_at = body["created_at"].as_i64().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((now - created_at).abs() <= 5, "created_at {created_at} vs now {now}");
    assert_eq!(body["expired_at"].as_i64().unwrap(), created_at + 3600);
}

#[tokio::test]
async fn list_started_recording_sorted_by_channel() {
    let sim = start_sim(&[]);
    let shim = start_shim(&ShimOptions::new(&sim.url));
    let empty = httpie(&shim.url, LIST_STARTED, None).await;
    assert_json_ok(&empty);
    assert_eq!(empty.text(), "[]");

    let zakuro = httpie(&shim.url, START, Some(json!({"channel_id": "zakuro", "expire_time": 3600}))).await.json();
    let sora = httpie(&shim.url, START, Some(json!({"channel_id": "sora", "expire_time": 3600}))).await.json();
    let reply = httpie(&shim.url, LIST_STARTED, None).await;
    assert_json_ok(&reply);
    let list = reply.json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["channel_id"], "sora");
    assert_eq!(list[0]["recording_id"], sora["recording_id"]);
    assert_eq!(list[1]["channel_id"], "zakuro");
    assert_eq!(list[1]["recording_id"], zakuro["recording_id"]);
    for entry in list {
        assert_eq!(
            keys(entry),
            ["channel_id", "created_at", "expire_time", "expired_at", "recording_id", "split_only"]
        );
        assert_eq!(entry["expire_time"], 3600);
        assert_eq!(entry["split_only"], false);
        assert_eq!(entry["expired_at"].as_i64().unwrap(), entry["created_at"].as_i64().unwrap() + 3600);
    }
}

#[tokio::test]
async fn list_archiving_per_connection() {
    let sim = start_sim(&[]);
    let shim = start_shim(&ShimOptions::new(&sim.url));
    let empty = httpie(&shim.url, LIST_ARCHIVING, None).await;
    assert_json_ok(&empty);
    assert_eq!(empty.text(), "[]");

    // One sender with the seed's media, one sender without video, one receiver (not archived).
    let seed_video = json!({"bit_rate": 1000, "codec_type": "VP9", "vp9_params": {"profile_id": 0}});
    let sender = post_json(
        &format!("{}/sim/connect", sim.url),
        json!({"channel_id": "sora", "role": "sendrecv", "audio": {"codec_type": "OPUS"}, "video": seed_video}),
    )
    .await;
    let audio_only = post_json(
        &format!("{}/sim/connect", sim.url),
        json!({"channel_id": "sora", "role": "sendonly", "video": false}),
    )
    .await;
    post_json(&format!("{}/sim/connect", sim.url), json!({"channel_id": "sora", "role": "recvonly"})).await;
    // A session exists, so the legacy Start records it at once.
    assert_json_ok(&httpie(&shim.url, START, Some(json!({"channel_id": "sora", "expire_time": 0}))).await);

    let reply = httpie(&shim.url, LIST_ARCHIVING, None).await;
    assert_json_ok(&reply);
    let list = reply.json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    let entry =
        list.iter().find(|entry| entry["connection_id"] == sender["connection_id"]).expect("the sender is listed");
    assert_eq!(keys(entry), ["audio", "bundle_id", "channel_id", "client_id", "connection_id", "seconds", "video"]);
    assert_eq!(entry["audio"], json!({"codec_type": "OPUS"}));
    assert_eq!(entry["video"], seed_video);
    assert_eq!(entry["channel_id"], "sora");
    assert_eq!(entry["client_id"], sender["client_id"]);
    assert!(entry["bundle_id"].is_string());
    assert!(entry["seconds"].as_i64().unwrap() >= 0);
    let other =
        list.iter().find(|entry| entry["connection_id"] == audio_only["connection_id"]).expect("audio-only sender");
    assert_eq!(other["video"], false);
    assert!(other["audio"].is_object());

    // Stop: nothing is archiving any more.
    assert_json_ok(&httpie(&shim.url, STOP, Some(json!({"channel_id": "sora"}))).await);
    assert_eq!(httpie(&shim.url, LIST_ARCHIVING, None).await.text(), "[]");
}
