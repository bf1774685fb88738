//! A legacy recording order: what one `Sora_20161101.StartRecording` asked for. While it stands,
//! every session of its channel records. Its times are whole Unix seconds, as legacy Sora's were.

use serde_json::{Map, Value, json};
use ulid::Ulid;

use super::request::LegacyStart;
use crate::sim::clock::{Millis, unix_seconds};
use crate::sim::options::{RecordingFormat, RecordingOptions};

/// One standing order, per channel.
#[derive(Clone, Debug, PartialEq)]
pub struct LegacyOrder {
    /// The legacy `recording_id`, shared by every session recording of the order.
    pub recording_id: String,
    pub channel_id: String,
    /// Unix seconds.
    pub created_at: u64,
    /// Seconds; 0 means the order never expires.
    pub expire_time: u64,
    pub split_duration: Option<u64>,
    /// As the client gave it; `None` means `false`.
    pub split_only: Option<bool>,
    /// Any JSON value, as the client gave it.
    pub metadata: Option<Value>,
}

impl LegacyOrder {
    /// A new order with a fresh ULID, created at `now`.
    pub fn new(request: LegacyStart, now: Millis) -> Self {
        Self {
            recording_id: Ulid::generate().to_string(),
            channel_id: request.channel_id,
            created_at: unix_seconds(now),
            expire_time: request.expire_time,
            split_duration: request.split_duration,
            split_only: request.split_only,
            metadata: request.metadata,
        }
    }

    /// `created_at + expire_time`, Unix seconds (equal to `created_at` when the order never expires).
    pub fn expired_at(&self) -> u64 {
        self.created_at + self.expire_time
    }

    /// The instant the order stops standing, `None` when it never expires.
    pub fn deadline(&self) -> Option<Millis> {
        (self.expire_time > 0).then(|| self.expired_at() * 1000)
    }

    /// How a session recording for this order is made at `now`: the remaining time rounded up
    /// (at least 1 s), the split options, metadata as an object (anything else wrapped), WebM.
    pub fn session_options(&self, now: Millis) -> RecordingOptions {
        let expire_time = self.deadline().map(|deadline| deadline.saturating_sub(now).div_ceil(1000).max(1));
        let metadata = self.metadata.as_ref().map(|metadata| match metadata {
            Value::Object(object) => object.clone(),
            other => Map::from_iter([("legacy_metadata".to_owned(), other.clone())]),
        });
        RecordingOptions {
            expire_time,
            split_only: self.split_only,
            split_duration: self.split_duration,
            metadata,
            format: RecordingFormat::Webm,
        }
    }

    /// The StartRecording reply: split options only when the request had them; no metadata.
    pub fn start_reply(&self) -> Value {
        let mut object = Map::new();
        object.insert("channel_id".into(), self.channel_id.clone().into());
        object.insert("expire_time".into(), self.expire_time.into());
        object.insert("recording_id".into(), self.recording_id.clone().into());
        if let Some(split_duration) = self.split_duration {
            object.insert("split_duration".into(), split_duration.into());
        }
        if let Some(split_only) = self.split_only {
            object.insert("split_only".into(), split_only.into());
        }
        Value::Object(object)
    }

    /// The order as GetStartedRecording / ListStartedRecording show it.
    pub fn started_reply(&self) -> Value {
        json!({
            "channel_id": self.channel_id,
            "created_at": self.created_at,
            "expire_time": self.expire_time,
            "expired_at": self.expired_at(),
            "recording_id": self.recording_id,
            "split_only": self.split_only.unwrap_or(false),
        })
    }

    /// The order as `GET /sim/state` shows it: the started shape plus the optional fields.
    pub fn state_view(&self) -> Value {
        let mut view = self.started_reply();
        if let Some(object) = view.as_object_mut() {
            if let Some(split_duration) = self.split_duration {
                object.insert("split_duration".into(), split_duration.into());
            }
            if let Some(metadata) = &self.metadata {
                object.insert("metadata".into(), metadata.clone());
            }
        }
        view
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Millis = 1_700_000_000_400;

    fn order(request: Value) -> LegacyOrder {
        let request = LegacyStart::parse(request.to_string().as_bytes()).expect("valid request");
        LegacyOrder::new(request, T0)
    }

    #[test]
    fn times_are_whole_seconds() {
        let expiring = order(json!({"channel_id": "c", "expire_time": 60}));
        assert_eq!(expiring.recording_id.len(), 26);
        assert_eq!((expiring.created_at, expiring.expired_at()), (1_700_000_000, 1_700_000_060));
        assert_eq!(expiring.deadline(), Some(1_700_000_060_000));
        let forever = order(json!({"channel_id": "c", "expire_time": 0}));
        assert_eq!((forever.expired_at(), forever.deadline()), (1_700_000_000, None));
    }

    #[test]
    fn session_options_carry_the_remaining_time_rounded_up() {
        let expiring = order(json!({"channel_id": "c", "expire_time": 60, "split_duration": 10}));
        let options = expiring.session_options(T0);
        assert_eq!(options.expire_time, Some(60));
        assert_eq!(options.split_duration, Some(10));
        assert_eq!(options.format, RecordingFormat::Webm);
        assert_eq!(expiring.session_options(1_700_000_058_001).expire_time, Some(2));
        assert_eq!(expiring.session_options(1_700_000_059_999).expire_time, Some(1));
        assert_eq!(expiring.session_options(1_700_000_070_000).expire_time, Some(1), "never below 1");
        let forever = order(json!({"channel_id": "c", "expire_time": 0, "split_only": true, "split_duration": 5}));
        assert_eq!(forever.session_options(T0).expire_time, None);
        assert_eq!(forever.session_options(T0).split_only, Some(true));
    }

    #[test]
    fn metadata_objects_pass_and_other_values_are_wrapped() {
        let object = order(json!({"channel_id": "c", "expire_time": 0, "metadata": {"room": 1}}));
        assert_eq!(object.session_options(T0).metadata, json!({"room": 1}).as_object().cloned());
        let text = order(json!({"channel_id": "c", "expire_time": 0, "metadata": "r1"}));
        assert_eq!(text.session_options(T0).metadata, json!({"legacy_metadata": "r1"}).as_object().cloned());
        assert_eq!(order(json!({"channel_id": "c", "expire_time": 0})).session_options(T0).metadata, None);
    }

    #[test]
    fn start_reply_echoes_split_options_only_when_given() {
        let plain = order(json!({"channel_id": "sora", "expire_time": 3600, "metadata": {"m": 1}}));
        let id = plain.recording_id.clone();
        assert_eq!(plain.start_reply(), json!({"channel_id": "sora", "expire_time": 3600, "recording_id": id}));
        let split = order(json!({"channel_id": "sora", "expire_time": 0, "split_duration": 3600, "split_only": true}));
        let id = split.recording_id.clone();
        assert_eq!(
            split.start_reply(),
            json!({"channel_id": "sora", "expire_time": 0, "recording_id": id, "split_duration": 3600, "split_only": true})
        );
    }

    #[test]
    fn started_and_state_views() {
        let order = order(json!({"channel_id": "c", "expire_time": 10, "split_duration": 5, "metadata": [1]}));
        let id = order.recording_id.clone();
        let started = json!({
            "channel_id": "c", "created_at": 1_700_000_000u64, "expire_time": 10, "expired_at": 1_700_000_010u64,
            "recording_id": id, "split_only": false
        });
        assert_eq!(order.started_reply(), started);
        let mut state = started;
        state["split_duration"] = json!(5);
        state["metadata"] = json!([1]);
        assert_eq!(order.state_view(), state);
    }
}
