//! Validation of legacy request bodies, with legacy Sora's rules and error names, checked in a
//! fixed order: JSON, `channel_id`, `expire_time`, `split_duration`, `split_only`.

use serde_json::{Map, Value};

use crate::sim::options::MAX_SECONDS;
use crate::sim::reply::parse_object;

/// Longest accepted `channel_id`, in bytes.
pub const MAX_CHANNEL_ID_BYTES: usize = 255;

/// A valid `Sora_20161101.StartRecording` body.
#[derive(Clone, Debug, PartialEq)]
pub struct LegacyStart {
    pub channel_id: String,
    /// Seconds; 0 means the order never expires.
    pub expire_time: u64,
    pub split_duration: Option<u64>,
    /// `Some` exactly when the client sent a non-null value (it is then echoed).
    pub split_only: Option<bool>,
    /// Any JSON value but `null`, as the client sent it.
    pub metadata: Option<Value>,
}

impl LegacyStart {
    /// Reads a StartRecording body; unknown keys are ignored, `null` optional keys count as absent.
    pub fn parse(body: &[u8]) -> Result<Self, &'static str> {
        let fields = parse_object(body)?;
        let channel_id = legacy_channel_id(&fields)?;
        let expire_time = fields
            .get("expire_time")
            .and_then(Value::as_u64)
            .filter(|seconds| *seconds <= MAX_SECONDS)
            .ok_or("INVALID-EXPIRE-TIME")?;
        let split_duration = present(&fields, "split_duration")
            .map(|value| value.as_u64().filter(|seconds| (1..=MAX_SECONDS).contains(seconds)))
            .map(|seconds| seconds.ok_or("INVALID-SPLIT-DURATION"))
            .transpose()?;
        let split_only =
            present(&fields, "split_only").map(|value| value.as_bool().ok_or("INVALID-SPLIT-ONLY")).transpose()?;
        if split_only == Some(true) && (split_duration.is_none() || expire_time != 0) {
            return Err("INVALID-SPLIT-ONLY");
        }
        let metadata = present(&fields, "metadata").cloned();
        Ok(Self { channel_id, expire_time, split_duration, split_only, metadata })
    }
}

/// The `channel_id` of a Stop / GetStarted body.
pub fn channel_id_of(body: &[u8]) -> Result<String, &'static str> {
    legacy_channel_id(&parse_object(body)?)
}

/// A required string `channel_id` of 1 to [`MAX_CHANNEL_ID_BYTES`] bytes.
fn legacy_channel_id(fields: &Map<String, Value>) -> Result<String, &'static str> {
    match fields.get("channel_id") {
        Some(Value::String(channel_id)) if !channel_id.is_empty() && channel_id.len() <= MAX_CHANNEL_ID_BYTES => {
            Ok(channel_id.clone())
        }
        _ => Err("INVALID-CHANNEL-ID"),
    }
}

/// The value of an optional key, `None` when absent or `null`.
fn present<'a>(fields: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    fields.get(key).filter(|value| !value.is_null())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn start(body: Value) -> Result<LegacyStart, &'static str> {
        LegacyStart::parse(body.to_string().as_bytes())
    }

    #[test]
    fn reads_the_seed_examples() {
        let split = start(json!({"channel_id": "sora", "expire_time": 0, "split_duration": 3600, "split_only": true}));
        assert_eq!(
            split,
            Ok(LegacyStart {
                channel_id: "sora".into(),
                expire_time: 0,
                split_duration: Some(3600),
                split_only: Some(true),
                metadata: None,
            })
        );
        let plain = start(json!({"channel_id": "sora", "expire_time": 3600})).expect("valid");
        assert_eq!((plain.expire_time, plain.split_duration, plain.split_only), (3600, None, None));
    }

    #[test]
    fn body_must_be_a_json_object() {
        for body in [&b"channel_id=sora"[..], b"[]", b"\"sora\"", b"{"] {
            assert_eq!(LegacyStart::parse(body), Err("INVALID-JSON"));
            assert_eq!(channel_id_of(body), Err("INVALID-JSON"));
        }
        assert_eq!(LegacyStart::parse(b""), Err("INVALID-CHANNEL-ID"), "an empty body is {{}}");
        assert_eq!(channel_id_of(b""), Err("INVALID-CHANNEL-ID"));
    }

    #[test]
    fn channel_id_rules() {
        for channel_id in [json!(null), json!(5), json!(""), json!("x".repeat(256))] {
            assert_eq!(start(json!({"channel_id": channel_id, "expire_time": 0})), Err("INVALID-CHANNEL-ID"));
        }
        assert_eq!(start(json!({"expire_time": "bad too"})), Err("INVALID-CHANNEL-ID"), "channel_id is checked first");
        let longest = "é".repeat(127);
        assert_eq!(channel_id_of(json!({"channel_id": longest}).to_string().as_bytes()), Ok(longest));
        assert_eq!(channel_id_of(br#"{"channel_id":"s","expire_time":"ignored"}"#), Ok("s".into()));
    }

    #[test]
    fn expire_time_rules() {
        for expire_time in
            [json!(null), json!(-1), json!(86_401), json!(1.5), json!(3600.0), json!("3600"), json!(true)]
        {
            assert_eq!(start(json!({"channel_id": "c", "expire_time": expire_time})), Err("INVALID-EXPIRE-TIME"));
        }
        assert_eq!(start(json!({"channel_id": "c"})), Err("INVALID-EXPIRE-TIME"));
        assert!(start(json!({"channel_id": "c", "expire_time": 86_400})).is_ok());
    }

    #[test]
    fn split_rules() {
        let with = |extra: Value| {
            let mut body = json!({"channel_id": "c", "expire_time": 0});
            if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
                body.extend(extra.clone());
            }
            start(body)
        };
        for split_duration in [json!(0), json!(86_401), json!("60"), json!(60.0)] {
            assert_eq!(with(json!({"split_duration": split_duration})), Err("INVALID-SPLIT-DURATION"));
        }
        assert_eq!(with(json!({"split_duration": 0, "split_only": "x"})), Err("INVALID-SPLIT-DURATION"));
        assert_eq!(with(json!({"split_only": "true"})), Err("INVALID-SPLIT-ONLY"));
        assert_eq!(with(json!({"split_only": true})), Err("INVALID-SPLIT-ONLY"));
        assert_eq!(with(json!({"split_only": true, "split_duration": null})), Err("INVALID-SPLIT-ONLY"));
        let with_expiry = json!({"channel_id": "c", "expire_time": 60, "split_only": true, "split_duration": 30});
        assert_eq!(start(with_expiry), Err("INVALID-SPLIT-ONLY"));
        let dual = with(json!({"split_duration": 30, "split_only": false})).expect("valid");
        assert_eq!((dual.split_duration, dual.split_only), (Some(30), Some(false)));
    }

    #[test]
    fn nulls_are_absent_and_unknown_keys_ignored() {
        let request = start(json!({
            "channel_id": "c", "expire_time": 5, "split_duration": null, "split_only": null,
            "metadata": null, "surprise": [1]
        }))
        .expect("valid");
        assert_eq!((request.split_duration, request.split_only, request.metadata), (None, None, None));
        let request = start(json!({"channel_id": "c", "expire_time": 5, "metadata": [1, "two"]})).expect("valid");
        assert_eq!(request.metadata, Some(json!([1, "two"])));
    }
}
