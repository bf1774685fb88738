//! The session request (contract §5): how an order becomes the options of an upstream recording,
//! built afresh at every upstream start from the order and the clock.

use serde_json::{Map, Value, json};

use crate::store::Order;

/// Largest `expire_time` the session-based API accepts.
pub const MAX_UPSTREAM_EXPIRE_TIME: i64 = 86_400;

/// The recording options for `order` at `now`, with the session API's key names.
/// `format` is the mapped default (`recording.format` in `mappings/upstream.toml`).
pub fn recording_options(order: &Order, now: i64, format: &str) -> Map<String, Value> {
    let mut options = Map::new();
    if let Some(remaining) = order.remaining_seconds(now) {
        // Whole seconds already round up; never ask for less than 1 or more than the API allows.
        options.insert("expire_time".into(), json!(remaining.clamp(1, MAX_UPSTREAM_EXPIRE_TIME)));
    }
    if order.split_only {
        options.insert("split_only".into(), json!(true));
    }
    if let Some(split_duration) = order.split_duration {
        options.insert("split_duration".into(), json!(split_duration));
    }
    if let Some(metadata) = &order.metadata {
        options.insert("metadata".into(), upstream_metadata(metadata));
    }
    options.insert("format".into(), json!(format));
    options
}

/// The upstream StartRecording body: `channel_id` plus [`recording_options`].
pub fn start_request(order: &Order, now: i64, format: &str) -> Value {
    let mut body = recording_options(order, now, format);
    body.insert("channel_id".into(), json!(order.channel_id));
    Value::Object(body)
}

/// The session API takes object metadata only; anything else is wrapped.
pub fn upstream_metadata(metadata: &Value) -> Value {
    match metadata {
        Value::Object(_) => metadata.clone(),
        other => json!({ "legacy_metadata": other }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(expire_time: i64) -> Order {
        Order {
            recording_id: "R".into(),
            channel_id: "sora".into(),
            created_at: 1_000,
            expire_time,
            expired_at: 1_000 + expire_time,
            split_duration: None,
            split_only: false,
            metadata: None,
        }
    }

    #[test]
    fn no_expiry_means_no_expire_time() {
        assert_eq!(start_request(&order(0), 5_000, "webm"), json!({"channel_id": "sora", "format": "webm"}));
    }

    #[test]
    fn expire_time_is_what_remains_at_least_one() {
        assert_eq!(start_request(&order(3600), 1_000, "webm")["expire_time"], json!(3600));
        assert_eq!(start_request(&order(3600), 1_600, "webm")["expire_time"], json!(3000));
        assert_eq!(start_request(&order(3600), 4_600, "webm")["expire_time"], json!(1));
        assert_eq!(start_request(&order(200_000), 1_000, "webm")["expire_time"], json!(86_400));
    }

    #[test]
    fn split_options_and_metadata() {
        let mut split = order(0);
        split.split_only = true;
        split.split_duration = Some(3600);
        split.metadata = Some(json!("r1"));
        assert_eq!(
            start_request(&split, 1_000, "mp4"),
            json!({"channel_id": "sora", "format": "mp4", "split_only": true, "split_duration": 3600,
                   "metadata": {"legacy_metadata": "r1"}})
        );
        split.metadata = Some(json!({"room": "r1"}));
        assert_eq!(start_request(&split, 1_000, "webm")["metadata"], json!({"room": "r1"}));
    }
}
