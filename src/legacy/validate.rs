//! Phase 2, validate: turn the parsed JSON into a typed legacy request, with the seed page's rules
//! and the contract's error names.

use serde_json::{Map, Value};

use crate::config::LegacyConfig;
use crate::error::ShimError;
use crate::mappings::LegacyOp;

/// Longest accepted `channel_id`, in bytes.
pub const MAX_CHANNEL_ID_BYTES: usize = 255;

/// A validated StartRecording.
#[derive(Clone, Debug, PartialEq)]
pub struct StartRequest {
    pub channel_id: String,
    pub expire_time: i64,
    pub split_duration: Option<i64>,
    /// `Some` when the client sent the key (it is then echoed); the order uses `false` when absent.
    pub split_only: Option<bool>,
    pub metadata: Option<Value>,
}

/// A validated legacy call.
#[derive(Clone, Debug, PartialEq)]
pub enum LegacyCall {
    Start(StartRequest),
    Stop { channel_id: String },
    GetStarted { channel_id: String },
    ListStarted,
    ListArchiving,
}

impl LegacyCall {
    /// Validates `body` for `op`. List calls take no parameters and ignore their body.
    pub fn from_json(op: LegacyOp, body: Value, rules: &LegacyConfig) -> Result<Self, ShimError> {
        match op {
            LegacyOp::StartRecording => start(object(body)?, rules).map(LegacyCall::Start),
            LegacyOp::StopRecording => Ok(LegacyCall::Stop { channel_id: channel_id(&object(body)?)? }),
            LegacyOp::GetStartedRecording => Ok(LegacyCall::GetStarted { channel_id: channel_id(&object(body)?)? }),
            LegacyOp::ListStartedRecording => Ok(LegacyCall::ListStarted),
            LegacyOp::ListArchiving => Ok(LegacyCall::ListArchiving),
        }
    }

    /// Whether the call reads a body at all.
    pub fn takes_body(op: LegacyOp) -> bool {
        !matches!(op, LegacyOp::ListStartedRecording | LegacyOp::ListArchiving)
    }
}

fn object(body: Value) -> Result<Map<String, Value>, ShimError> {
    match body {
        Value::Object(map) => Ok(map),
        other => Err(ShimError::InvalidJson(format!("expected a JSON object, got {}", kind_of(&other)))),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A present, non-null value for an optional key.
fn optional<'a>(body: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    body.get(key).filter(|value| !value.is_null())
}

fn channel_id(body: &Map<String, Value>) -> Result<String, ShimError> {
    match body.get("channel_id") {
        None => Err(ShimError::InvalidChannelId("missing".into())),
        Some(Value::String(id)) => check_channel_id(id).map(|()| id.clone()).map_err(ShimError::InvalidChannelId),
        Some(other) => Err(ShimError::InvalidChannelId(format!("expected a string, got {}", kind_of(other)))),
    }
}

/// The rules a channel id must meet (also for the probe's `--channel`): why not, if it does not.
pub fn check_channel_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        Err("empty".into())
    } else if id.len() > MAX_CHANNEL_ID_BYTES {
        Err(format!("{} bytes, at most {MAX_CHANNEL_ID_BYTES} allowed", id.len()))
    } else if id.chars().any(char::is_control) {
        Err("contains control characters".into())
    } else {
        Ok(())
    }
}

/// An integer in `min..=max`; floats such as `3600.0` are not integers.
fn integer_in(value: &Value, min: i64, max: u64) -> Result<i64, String> {
    let number = value.as_i64().ok_or_else(|| format!("expected an integer, got {value}"))?;
    if number < min || number as u64 > max {
        return Err(format!("{number} is outside {min}..={max}"));
    }
    Ok(number)
}

fn start(body: Map<String, Value>, rules: &LegacyConfig) -> Result<StartRequest, ShimError> {
    let channel_id = channel_id(&body)?;
    let expire_time = match body.get("expire_time") {
        None => return Err(ShimError::InvalidExpireTime("missing".into())),
        Some(value) => integer_in(value, 0, rules.max_expire_time).map_err(ShimError::InvalidExpireTime)?,
    };
    let split_duration = optional(&body, "split_duration")
        .map(|value| integer_in(value, 1, rules.max_split_duration))
        .transpose()
        .map_err(ShimError::InvalidSplitDuration)?;
    let split_only = optional(&body, "split_only")
        .map(|value| value.as_bool().ok_or_else(|| format!("expected a boolean, got {value}")))
        .transpose()
        .map_err(ShimError::InvalidSplitOnly)?;
    if split_only == Some(true) {
        if split_duration.is_none() {
            return Err(ShimError::InvalidSplitOnly("split_only: true needs a split_duration".into()));
        }
        if rules.strict && expire_time != 0 {
            return Err(ShimError::InvalidSplitOnly("split_only: true needs expire_time: 0 (legacy.strict)".into()));
        }
    }
    Ok(StartRequest {
        channel_id,
        expire_time,
        split_duration,
        split_only,
        metadata: optional(&body, "metadata").cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use serde_json::json;

    fn rules() -> LegacyConfig {
        LegacyConfig::default()
    }

    fn start_error(body: Value) -> ErrorKind {
        LegacyCall::from_json(LegacyOp::StartRecording, body, &rules()).unwrap_err().kind()
    }

    #[test]
    fn seed_examples_validate() {
        let call = LegacyCall::from_json(
            LegacyOp::StartRecording,
            json!({"channel_id": "sora", "expire_time": 0, "split_duration": 3600, "split_only": true}),
            &rules(),
        )
        .unwrap();
        assert_eq!(
            call,
            LegacyCall::Start(StartRequest {
                channel_id: "sora".into(),
                expire_time: 0,
                split_duration: Some(3600),
                split_only: Some(true),
                metadata: None,
            })
        );
        let stop = LegacyCall::from_json(LegacyOp::StopRecording, json!({"channel_id": "sora"}), &rules()).unwrap();
        assert_eq!(stop, LegacyCall::Stop { channel_id: "sora".into() });
    }

    #[test]
    fn channel_id_rules() {
        for body in [
            json!({"expire_time": 0}),
            json!({"channel_id": "", "expire_time": 0}),
            json!({"channel_id": 5, "expire_time": 0}),
            json!({"channel_id": null, "expire_time": 0}),
            json!({"channel_id": "x".repeat(256), "expire_time": 0}),
            json!({"channel_id": "a\u{0}b", "expire_time": 0}),
            json!({"channel_id": "line\nbreak", "expire_time": 0}),
        ] {
            assert_eq!(start_error(body), ErrorKind::InvalidChannelId);
        }
        let longest = json!({"channel_id": "x".repeat(255), "expire_time": 0});
        assert!(LegacyCall::from_json(LegacyOp::StartRecording, longest, &rules()).is_ok());
    }

    #[test]
    fn expire_time_rules() {
        for value in [json!(null), json!(-1), json!(86401), json!(1.5), json!(3600.0), json!("3600"), json!(true)] {
            assert_eq!(start_error(json!({"channel_id": "c", "expire_time": value})), ErrorKind::InvalidExpireTime);
        }
        assert_eq!(start_error(json!({"channel_id": "c"})), ErrorKind::InvalidExpireTime);
        let max = json!({"channel_id": "c", "expire_time": 86400});
        assert!(LegacyCall::from_json(LegacyOp::StartRecording, max, &rules()).is_ok());
    }

    #[test]
    fn split_rules() {
        let base = |extra: Value| {
            let mut body = json!({"channel_id": "c", "expire_time": 0});
            body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            body
        };
        assert_eq!(start_error(base(json!({"split_duration": 0}))), ErrorKind::InvalidSplitDuration);
        assert_eq!(start_error(base(json!({"split_duration": 86401}))), ErrorKind::InvalidSplitDuration);
        assert_eq!(start_error(base(json!({"split_duration": "60"}))), ErrorKind::InvalidSplitDuration);
        assert_eq!(start_error(base(json!({"split_only": "true"}))), ErrorKind::InvalidSplitOnly);
        assert_eq!(start_error(base(json!({"split_only": true}))), ErrorKind::InvalidSplitOnly);
        let with_expiry = json!({"channel_id": "c", "expire_time": 60, "split_only": true, "split_duration": 30});
        assert_eq!(start_error(with_expiry.clone()), ErrorKind::InvalidSplitOnly);
        let relaxed = LegacyConfig { strict: false, ..rules() };
        assert!(LegacyCall::from_json(LegacyOp::StartRecording, with_expiry, &relaxed).is_ok());
    }

    #[test]
    fn non_objects_are_invalid_json_and_lists_ignore_bodies() {
        assert_eq!(start_error(json!([1])), ErrorKind::InvalidJson);
        assert_eq!(start_error(json!("sora")), ErrorKind::InvalidJson);
        assert_eq!(
            LegacyCall::from_json(LegacyOp::ListStartedRecording, json!([1]), &rules()).unwrap(),
            LegacyCall::ListStarted
        );
    }

    #[test]
    fn metadata_is_kept_as_any_json_value() {
        let call = LegacyCall::from_json(
            LegacyOp::StartRecording,
            json!({"channel_id": "c", "expire_time": 0, "metadata": "r1"}),
            &rules(),
        )
        .unwrap();
        let LegacyCall::Start(start) = call else { panic!("not a start") };
        assert_eq!(start.metadata, Some(json!("r1")));
    }
}
