//! Recording options: the fields shared by `StartRecording` and a `session.created` reply, with
//! Sora-style validation that names the offending field in the error.

use serde_json::{Map, Value};

/// Upper bound of `expire_time` and `split_duration`, in seconds.
pub const MAX_SECONDS: u64 = 86_400;

/// The container a recording is written in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RecordingFormat {
    #[default]
    Webm,
    Mp4,
}

impl RecordingFormat {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webm => "webm",
            Self::Mp4 => "mp4",
        }
    }
}

/// How a recording should be made; `None` means the client did not give the field.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecordingOptions {
    pub expire_time: Option<u64>,
    pub split_only: Option<bool>,
    pub split_duration: Option<u64>,
    pub metadata: Option<Map<String, Value>>,
    pub format: RecordingFormat,
}

impl RecordingOptions {
    /// Reads the options from `fields`, taking the metadata from `metadata_key`.
    ///
    /// Returns the `error_type` to answer when a field is present but wrong (`null` counts as wrong).
    pub fn from_fields(fields: &Map<String, Value>, metadata_key: &str) -> Result<Self, &'static str> {
        let expire_time =
            fields.get("expire_time").map(seconds_in_range).transpose().map_err(|()| "INVALID-EXPIRE-TIME")?;
        let split_only =
            fields.get("split_only").map(|value| value.as_bool().ok_or("INVALID-SPLIT-ONLY")).transpose()?;
        let split_duration =
            fields.get("split_duration").map(seconds_in_range).transpose().map_err(|()| "INVALID-SPLIT-DURATION")?;
        let metadata =
            fields.get(metadata_key).map(|value| value.as_object().cloned().ok_or("INVALID-METADATA")).transpose()?;
        let format = match fields.get("format") {
            None => RecordingFormat::default(),
            Some(value) => match value.as_str() {
                Some("webm") => RecordingFormat::Webm,
                Some("mp4") => RecordingFormat::Mp4,
                _ => return Err("INVALID-FORMAT"),
            },
        };
        Ok(Self { expire_time, split_only, split_duration, metadata, format })
    }

    /// Adds the fields the client gave (and always `format`) to `object`, metadata under `metadata_key`.
    pub fn echo_into(&self, object: &mut Map<String, Value>, metadata_key: &str) {
        object.insert("format".into(), self.format.as_str().into());
        if let Some(expire_time) = self.expire_time {
            object.insert("expire_time".into(), expire_time.into());
        }
        if let Some(split_only) = self.split_only {
            object.insert("split_only".into(), split_only.into());
        }
        if let Some(split_duration) = self.split_duration {
            object.insert("split_duration".into(), split_duration.into());
        }
        if let Some(metadata) = &self.metadata {
            object.insert(metadata_key.into(), Value::Object(metadata.clone()));
        }
    }
}

/// An integer number of seconds in `1..=MAX_SECONDS`.
fn seconds_in_range(value: &Value) -> Result<u64, ()> {
    value.as_u64().filter(|seconds| (1..=MAX_SECONDS).contains(seconds)).ok_or(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Value) -> Result<RecordingOptions, &'static str> {
        RecordingOptions::from_fields(value.as_object().expect("test input is an object"), "metadata")
    }

    #[test]
    fn empty_fields_give_webm_and_nothing_else() {
        assert_eq!(parse(json!({})), Ok(RecordingOptions::default()));
    }

    #[test]
    fn reads_every_field() {
        let options = parse(json!({
            "expire_time": 60, "split_only": true, "split_duration": 30,
            "metadata": {"room": "r1"}, "format": "mp4"
        }))
        .expect("valid options");
        assert_eq!(options.expire_time, Some(60));
        assert_eq!(options.split_only, Some(true));
        assert_eq!(options.split_duration, Some(30));
        assert_eq!(options.metadata, json!({"room": "r1"}).as_object().cloned());
        assert_eq!(options.format, RecordingFormat::Mp4);
    }

    #[test]
    fn names_the_bad_field() {
        assert_eq!(parse(json!({"expire_time": 0})), Err("INVALID-EXPIRE-TIME"));
        assert_eq!(parse(json!({"expire_time": 86_401})), Err("INVALID-EXPIRE-TIME"));
        assert_eq!(parse(json!({"expire_time": 1.5})), Err("INVALID-EXPIRE-TIME"));
        assert_eq!(parse(json!({"expire_time": "60"})), Err("INVALID-EXPIRE-TIME"));
        assert_eq!(parse(json!({"expire_time": null})), Err("INVALID-EXPIRE-TIME"));
        assert_eq!(parse(json!({"split_only": "yes"})), Err("INVALID-SPLIT-ONLY"));
        assert_eq!(parse(json!({"split_duration": -1})), Err("INVALID-SPLIT-DURATION"));
        assert_eq!(parse(json!({"metadata": "r1"})), Err("INVALID-METADATA"));
        assert_eq!(parse(json!({"format": "mkv"})), Err("INVALID-FORMAT"));
    }

    #[test]
    fn accepts_the_range_limits() {
        assert_eq!(parse(json!({"expire_time": 1})).map(|options| options.expire_time), Ok(Some(1)));
        assert_eq!(parse(json!({"split_duration": 86_400})).map(|options| options.split_duration), Ok(Some(86_400)));
    }

    #[test]
    fn reads_metadata_from_the_given_key() {
        let fields = json!({"recording_metadata": {"a": 1}, "metadata": "ignored"});
        let options = RecordingOptions::from_fields(fields.as_object().expect("object"), "recording_metadata");
        assert_eq!(options.map(|options| options.metadata), Ok(json!({"a": 1}).as_object().cloned()));
    }

    #[test]
    fn echoes_only_given_fields_plus_format() {
        let options = parse(json!({"expire_time": 5, "metadata": {"k": "v"}})).expect("valid options");
        let mut object = Map::new();
        options.echo_into(&mut object, "metadata");
        assert_eq!(Value::Object(object), json!({"expire_time": 5, "format": "webm", "metadata": {"k": "v"}}));
    }
}
