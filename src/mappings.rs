//! The data files in `mappings/`: legacy targets, the shim's error names, and everything the
//! contract marks *[assumed]* about the upstream Sora.
//!
//! They are loaded and validated once at start-up (and by `sora-legacy-shim check`). Any unknown
//! key, missing entry or bad value stops start-up with the file, the key and what is wrong, so a
//! typo can never silently fall back to a default. When no mappings directory exists and none was
//! configured, the copies compiled into the binary are used.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::ErrorKind;

/// The three files, parsed and checked.
#[derive(Clone, Debug)]
pub struct Mappings {
    pub legacy: LegacyTargets,
    pub errors: ErrorNames,
    pub upstream: UpstreamMappings,
    /// Where they were read from, for logs and `check`.
    pub source: String,
}

/// A mapping file that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct MappingsError {
    pub file: String,
    pub message: String,
}

const LEGACY_FILE: &str = "legacy.toml";
const ERRORS_FILE: &str = "errors.toml";
const UPSTREAM_FILE: &str = "upstream.toml";

const BUILT_IN: [(&str, &str); 3] = [
    (LEGACY_FILE, include_str!("../mappings/legacy.toml")),
    (ERRORS_FILE, include_str!("../mappings/errors.toml")),
    (UPSTREAM_FILE, include_str!("../mappings/upstream.toml")),
];

impl Mappings {
    /// Loads the files from `dir`, or the built-in copies when `dir` is `None`.
    pub fn load(dir: Option<&Path>) -> Result<Self, MappingsError> {
        if let Some(dir) = dir
            && !dir.is_dir()
        {
            let what = if dir.exists() { "is not a directory" } else { "no such directory" };
            return Err(MappingsError {
                file: dir.display().to_string(),
                message: format!(
                    "{what} (the mappings directory must hold {LEGACY_FILE}, {ERRORS_FILE} and {UPSTREAM_FILE})"
                ),
            });
        }
        let read = |name: &str| -> Result<(String, String), MappingsError> {
            match dir {
                Some(dir) => {
                    let path: PathBuf = dir.join(name);
                    let label = path.display().to_string();
                    std::fs::read_to_string(&path)
                        .map(|text| (label.clone(), text))
                        .map_err(|error| MappingsError { file: label, message: format!("cannot read: {error}") })
                }
                None => {
                    let text =
                        BUILT_IN.iter().find(|(file, _)| *file == name).map(|(_, text)| *text).unwrap_or_default();
                    Ok((format!("built-in mappings/{name}"), text.to_owned()))
                }
            }
        };
        let (legacy_file, legacy_text) = read(LEGACY_FILE)?;
        let (errors_file, errors_text) = read(ERRORS_FILE)?;
        let (upstream_file, upstream_text) = read(UPSTREAM_FILE)?;
        Self::from_texts([(&legacy_file, &legacy_text), (&errors_file, &errors_text), (&upstream_file, &upstream_text)])
            .map(|mut mappings| {
                mappings.source = dir.map_or_else(|| "built-in".to_owned(), |dir| dir.display().to_string());
                mappings
            })
    }

    /// The built-in copies; they are tested to be valid, so this cannot fail in a released binary.
    pub fn built_in() -> Self {
        Self::load(None).expect("the built-in mappings are valid")
    }

    /// Parses and validates the three files given as `(label, text)` in the order legacy, errors, upstream.
    pub fn from_texts(files: [(&str, &str); 3]) -> Result<Self, MappingsError> {
        let [(legacy_file, legacy), (errors_file, errors), (upstream_file, upstream)] = files;
        let legacy: LegacyFile = parse(legacy_file, legacy)?;
        let errors: ErrorsFile = parse(errors_file, errors)?;
        let upstream: UpstreamFile = parse(upstream_file, upstream)?;
        Ok(Self {
            legacy: LegacyTargets::validate(legacy).map_err(|message| at(legacy_file, message))?,
            errors: ErrorNames::validate(errors.names).map_err(|message| at(errors_file, message))?,
            upstream: UpstreamMappings::validate(upstream).map_err(|message| at(upstream_file, message))?,
            source: "texts".to_owned(),
        })
    }
}

fn at(file: &str, message: String) -> MappingsError {
    MappingsError { file: file.to_owned(), message }
}

fn parse<T: for<'de> Deserialize<'de>>(file: &str, text: &str) -> Result<T, MappingsError> {
    toml::from_str(text).map_err(|error| at(file, error.to_string().trim_end().to_owned()))
}

/// Checks the `<Prefix>_<YYYYMMDD>.<Operation>` shape of an `x-sora-target` value.
pub fn is_target_shaped(target: &str) -> bool {
    let Some((version, operation)) = target.rsplit_once('.') else { return false };
    let Some((prefix, date)) = version.rsplit_once('_') else { return false };
    !prefix.is_empty()
        && date.len() == 8
        && date.bytes().all(|b| b.is_ascii_digit())
        && !operation.is_empty()
        && operation.bytes().all(|b| b.is_ascii_alphanumeric())
}

// ---------------------------------------------------------------------------------------------
// legacy.toml

/// The five legacy operations the shim implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LegacyOp {
    StartRecording,
    StopRecording,
    GetStartedRecording,
    ListStartedRecording,
    ListArchiving,
}

impl LegacyOp {
    pub const ALL: [LegacyOp; 5] = [
        LegacyOp::StartRecording,
        LegacyOp::StopRecording,
        LegacyOp::GetStartedRecording,
        LegacyOp::ListStartedRecording,
        LegacyOp::ListArchiving,
    ];

    /// The operation's key in `legacy.toml`, also used as a log and metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            LegacyOp::StartRecording => "start_recording",
            LegacyOp::StopRecording => "stop_recording",
            LegacyOp::GetStartedRecording => "get_started_recording",
            LegacyOp::ListStartedRecording => "list_started_recording",
            LegacyOp::ListArchiving => "list_archiving",
        }
    }
}

impl fmt::Display for LegacyOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LegacyFile {
    targets: HashMap<String, LegacyOp>,
}

/// Which `x-sora-target` values are translated, and into which operation.
#[derive(Clone, Debug)]
pub struct LegacyTargets {
    targets: HashMap<String, LegacyOp>,
}

impl LegacyTargets {
    fn validate(file: LegacyFile) -> Result<Self, String> {
        for target in file.targets.keys() {
            if !is_target_shaped(target) {
                return Err(format!("targets.\"{target}\": not of the form <Prefix>_<YYYYMMDD>.<Operation>"));
            }
        }
        let present: BTreeSet<LegacyOp> = file.targets.values().copied().collect();
        let missing: Vec<&str> =
            LegacyOp::ALL.iter().filter(|op| !present.contains(op)).map(|op| op.as_str()).collect();
        if !missing.is_empty() {
            return Err(format!("targets: no target maps to {}", missing.join(", ")));
        }
        Ok(Self { targets: file.targets })
    }

    /// The operation a target value is translated into, if any.
    pub fn lookup(&self, target: &str) -> Option<LegacyOp> {
        self.targets.get(target).copied()
    }

    /// Every translated target, sorted.
    pub fn targets(&self) -> Vec<&str> {
        let mut all: Vec<&str> = self.targets.keys().map(String::as_str).collect();
        all.sort_unstable();
        all
    }
}

// ---------------------------------------------------------------------------------------------
// errors.toml

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ErrorsFile {
    names: ErrorNamesFile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ErrorNamesFile {
    started_recording: String,
    not_started_recording: String,
    not_cluster_majority: String,
    invalid_json: String,
    invalid_channel_id: String,
    invalid_expire_time: String,
    invalid_split_duration: String,
    invalid_split_only: String,
    request_too_large: String,
    unauthorized: String,
    not_found: String,
    method_not_allowed: String,
    overloaded: String,
    store_unavailable: String,
    upstream_unavailable: String,
    upstream_timeout: String,
    upstream_error: String,
    internal_error: String,
}

/// The `error_type` name of every [`ErrorKind`].
#[derive(Clone, Debug)]
pub struct ErrorNames {
    names: HashMap<ErrorKind, String>,
}

impl ErrorNames {
    fn validate(file: ErrorNamesFile) -> Result<Self, String> {
        let pairs = [
            (ErrorKind::StartedRecording, file.started_recording),
            (ErrorKind::NotStartedRecording, file.not_started_recording),
            (ErrorKind::NotClusterMajority, file.not_cluster_majority),
            (ErrorKind::InvalidJson, file.invalid_json),
            (ErrorKind::InvalidChannelId, file.invalid_channel_id),
            (ErrorKind::InvalidExpireTime, file.invalid_expire_time),
            (ErrorKind::InvalidSplitDuration, file.invalid_split_duration),
            (ErrorKind::InvalidSplitOnly, file.invalid_split_only),
            (ErrorKind::RequestTooLarge, file.request_too_large),
            (ErrorKind::Unauthorized, file.unauthorized),
            (ErrorKind::NotFound, file.not_found),
            (ErrorKind::MethodNotAllowed, file.method_not_allowed),
            (ErrorKind::Overloaded, file.overloaded),
            (ErrorKind::StoreUnavailable, file.store_unavailable),
            (ErrorKind::UpstreamUnavailable, file.upstream_unavailable),
            (ErrorKind::UpstreamTimeout, file.upstream_timeout),
            (ErrorKind::UpstreamError, file.upstream_error),
            (ErrorKind::InternalError, file.internal_error),
        ];
        let mut seen: HashMap<String, ErrorKind> = HashMap::new();
        for (kind, name) in &pairs {
            let well_formed = !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
            if !well_formed {
                return Err(format!(
                    "names.{}: {name:?} is not an upper-case error name (A-Z, 0-9, '-', '_')",
                    kind.key()
                ));
            }
            if let Some(other) = seen.insert(name.clone(), *kind) {
                return Err(format!("names.{}: {name:?} is already used by names.{}", kind.key(), other.key()));
            }
        }
        Ok(Self { names: pairs.into_iter().collect() })
    }

    /// The name answered for `kind`.
    pub fn name(&self, kind: ErrorKind) -> &str {
        self.names.get(&kind).map_or("INTERNAL-ERROR", String::as_str)
    }
}

// ---------------------------------------------------------------------------------------------
// upstream.toml

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpstreamFile {
    targets: UpstreamTargets,
    list_request: ListRequestFile,
    error_classes: ErrorClassesFile,
    start_reply: StartReplyKeys,
    session_webhook: SessionWebhookKeys,
    event_webhook: EventWebhookKeys,
    recording: RecordingDefaults,
}

/// The session-based targets the shim calls.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTargets {
    pub start_recording: String,
    pub stop_recording: String,
    pub list_sessions: String,
    pub list_connections: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListRequestFile {
    body: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ErrorClassesFile {
    no_session: Vec<String>,
    already_recording: Vec<String>,
    not_recording: Vec<String>,
    cluster_minority: Vec<String>,
}

/// What an upstream 400 `error_type` means to the shim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamErrorClass {
    NoSession,
    AlreadyRecording,
    NotRecording,
    ClusterMinority,
}

/// Keys read from a 200 StartRecording reply.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartReplyKeys {
    pub recording_id: String,
    pub session_id: String,
}

/// Session webhook field names, event types and reply keys.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionWebhookKeys {
    #[serde(rename = "type")]
    pub type_key: String,
    pub channel_id: String,
    pub session_id: String,
    pub created: String,
    pub destroyed: String,
    pub reply_recording: String,
    pub reply_expire_time: String,
    pub reply_split_only: String,
    pub reply_split_duration: String,
    pub reply_metadata: String,
    pub reply_format: String,
}

/// Event webhook field names and which event types are recording events.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventWebhookKeys {
    #[serde(rename = "type")]
    pub type_key: String,
    pub recording_events: Vec<String>,
    pub session_id: String,
    /// The event's channel, checked against the order's before a rewrite (absent from copies of
    /// `upstream.toml` older than this key: `channel_id` then).
    #[serde(default = "default_event_channel_id")]
    pub channel_id: String,
    pub recording_id: String,
    pub recording_metadata: String,
}

fn default_event_channel_id() -> String {
    "channel_id".to_owned()
}

/// Options the shim sets on every recording it starts.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingDefaults {
    pub format: String,
}

/// `upstream.toml`, checked.
#[derive(Clone, Debug)]
pub struct UpstreamMappings {
    pub targets: UpstreamTargets,
    /// Body of ListSessions / ListConnections calls.
    pub list_request_body: serde_json::Value,
    pub start_reply: StartReplyKeys,
    pub session_webhook: SessionWebhookKeys,
    pub event_webhook: EventWebhookKeys,
    pub recording: RecordingDefaults,
    error_classes: HashMap<String, UpstreamErrorClass>,
}

impl UpstreamMappings {
    fn validate(file: UpstreamFile) -> Result<Self, String> {
        let targets = [
            ("start_recording", &file.targets.start_recording),
            ("stop_recording", &file.targets.stop_recording),
            ("list_sessions", &file.targets.list_sessions),
            ("list_connections", &file.targets.list_connections),
        ];
        for (key, target) in targets {
            if !is_target_shaped(target) {
                return Err(format!("targets.{key}: {target:?} is not of the form <Prefix>_<YYYYMMDD>.<Operation>"));
            }
        }
        let list_request_body: serde_json::Value = serde_json::from_str(&file.list_request.body)
            .map_err(|error| format!("list_request.body: not JSON: {error}"))?;
        if !list_request_body.is_object() {
            return Err("list_request.body: must be a JSON object".to_owned());
        }
        let classes = [
            ("no_session", UpstreamErrorClass::NoSession, file.error_classes.no_session),
            ("already_recording", UpstreamErrorClass::AlreadyRecording, file.error_classes.already_recording),
            ("not_recording", UpstreamErrorClass::NotRecording, file.error_classes.not_recording),
            ("cluster_minority", UpstreamErrorClass::ClusterMinority, file.error_classes.cluster_minority),
        ];
        let mut error_classes = HashMap::new();
        for (key, class, names) in classes {
            if names.is_empty() {
                return Err(format!("error_classes.{key}: needs at least one error_type"));
            }
            for name in names {
                if name.trim().is_empty() {
                    return Err(format!("error_classes.{key}: empty error_type"));
                }
                if error_classes.insert(name.clone(), class).is_some() {
                    return Err(format!("error_classes.{key}: {name:?} is listed in two classes"));
                }
            }
        }
        let keys = [
            ("start_reply.recording_id", &file.start_reply.recording_id),
            ("start_reply.session_id", &file.start_reply.session_id),
            ("session_webhook.type", &file.session_webhook.type_key),
            ("session_webhook.channel_id", &file.session_webhook.channel_id),
            ("session_webhook.session_id", &file.session_webhook.session_id),
            ("session_webhook.created", &file.session_webhook.created),
            ("session_webhook.destroyed", &file.session_webhook.destroyed),
            ("session_webhook.reply_recording", &file.session_webhook.reply_recording),
            ("session_webhook.reply_expire_time", &file.session_webhook.reply_expire_time),
            ("session_webhook.reply_split_only", &file.session_webhook.reply_split_only),
            ("session_webhook.reply_split_duration", &file.session_webhook.reply_split_duration),
            ("session_webhook.reply_metadata", &file.session_webhook.reply_metadata),
            ("session_webhook.reply_format", &file.session_webhook.reply_format),
            ("recording.format", &file.recording.format),
            ("event_webhook.type", &file.event_webhook.type_key),
            ("event_webhook.session_id", &file.event_webhook.session_id),
            ("event_webhook.channel_id", &file.event_webhook.channel_id),
            ("event_webhook.recording_id", &file.event_webhook.recording_id),
            ("event_webhook.recording_metadata", &file.event_webhook.recording_metadata),
        ];
        for (key, value) in keys {
            if value.trim().is_empty() {
                return Err(format!("{key}: must not be empty"));
            }
        }
        // Names that share one object (or one field) must differ, or one would shadow another.
        let groups: [&[&str]; 5] = [
            &["start_reply.recording_id", "start_reply.session_id"],
            &["session_webhook.type", "session_webhook.channel_id", "session_webhook.session_id"],
            &["session_webhook.created", "session_webhook.destroyed"],
            &[
                "session_webhook.reply_recording",
                "session_webhook.reply_expire_time",
                "session_webhook.reply_split_only",
                "session_webhook.reply_split_duration",
                "session_webhook.reply_metadata",
                "session_webhook.reply_format",
            ],
            &[
                "event_webhook.type",
                "event_webhook.session_id",
                "event_webhook.channel_id",
                "event_webhook.recording_id",
                "event_webhook.recording_metadata",
            ],
        ];
        let value_of = |name: &str| keys.iter().find(|(key, _)| *key == name).map(|(_, value)| value.as_str());
        for group in groups {
            for (position, first) in group.iter().enumerate() {
                if let Some(second) = group[position + 1..].iter().find(|second| value_of(second) == value_of(first)) {
                    return Err(format!("{second}: {:?} is also {first}", value_of(second).unwrap_or_default()));
                }
            }
        }
        if file.event_webhook.recording_events.iter().any(|name| name.trim().is_empty()) {
            return Err("event_webhook.recording_events: empty event name".to_owned());
        }
        Ok(Self {
            targets: file.targets,
            list_request_body,
            start_reply: file.start_reply,
            session_webhook: file.session_webhook,
            event_webhook: file.event_webhook,
            recording: file.recording,
            error_classes,
        })
    }

    /// What an upstream `error_type` means, or `None` when the mappings do not know it.
    pub fn classify(&self, error_type: &str) -> Option<UpstreamErrorClass> {
        self.error_classes.get(error_type).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_replaced(file_index: usize, from: &str, to: &str) -> Result<Mappings, MappingsError> {
        let mut texts: Vec<String> = BUILT_IN.iter().map(|(_, text)| (*text).to_owned()).collect();
        assert!(texts[file_index].contains(from), "fixture text {from:?} not found");
        texts[file_index] = texts[file_index].replacen(from, to, 1);
        Mappings::from_texts([(LEGACY_FILE, &texts[0]), (ERRORS_FILE, &texts[1]), (UPSTREAM_FILE, &texts[2])])
    }

    #[test]
    fn names_sharing_one_object_must_differ() {
        let error = with_replaced(2, r#"reply_format = "format""#, r#"reply_format = "recording""#).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("session_webhook.reply_format") && text.contains("reply_recording"), "{text}");
        let error =
            with_replaced(2, r#"destroyed = "session.destroyed""#, r#"destroyed = "session.created""#).unwrap_err();
        assert!(error.to_string().contains("session_webhook.destroyed"), "{error}");
        let error = with_replaced(2, r#"recording_metadata = "recording_metadata""#, r#"recording_metadata = "type""#)
            .unwrap_err();
        assert!(error.to_string().contains("event_webhook.recording_metadata"), "{error}");
    }

    #[test]
    fn built_in_files_are_valid_and_complete() {
        let mappings = Mappings::built_in();
        assert_eq!(mappings.legacy.lookup("Sora_20161101.StartRecording"), Some(LegacyOp::StartRecording));
        assert_eq!(mappings.legacy.lookup("Sora_20161101.ListArchiving"), Some(LegacyOp::ListArchiving));
        assert_eq!(mappings.legacy.lookup("Sora_20231220.StartRecording"), None);
        assert_eq!(mappings.legacy.targets().len(), 5);
        assert_eq!(mappings.errors.name(ErrorKind::StartedRecording), "STARTED-RECORDING");
        assert_eq!(mappings.errors.name(ErrorKind::UpstreamTimeout), "UPSTREAM-TIMEOUT");
        assert_eq!(mappings.upstream.classify("SESSION-NOT-FOUND"), Some(UpstreamErrorClass::NoSession));
        assert_eq!(mappings.upstream.classify("SOMETHING-ELSE"), None);
        assert_eq!(mappings.upstream.list_request_body, serde_json::json!({"local": true}));
        assert_eq!(mappings.upstream.recording.format, "webm");
    }

    #[test]
    fn files_on_disk_load_like_the_built_in_copies() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings");
        let mappings = Mappings::load(Some(&dir)).expect("repository mappings load");
        assert_eq!(mappings.legacy.targets(), Mappings::built_in().legacy.targets());
    }

    #[test]
    fn unknown_key_names_file_and_key() {
        let error = with_replaced(2, "[recording]\n", "[recording]\nfromat = \"mp4\"\n").unwrap_err();
        assert_eq!(error.file, UPSTREAM_FILE);
        assert!(error.message.contains("fromat"), "{error}");
    }

    #[test]
    fn a_missing_directory_is_named_as_such() {
        let dir = std::env::temp_dir().join(format!("shim-no-mappings-{}", ulid::Ulid::generate()));
        let error = Mappings::load(Some(&dir)).unwrap_err();
        assert_eq!(error.file, dir.display().to_string());
        assert!(error.message.starts_with("no such directory"), "{error}");
        std::fs::write(&dir, "not a directory").unwrap();
        let error = Mappings::load(Some(&dir)).unwrap_err();
        assert!(error.message.starts_with("is not a directory"), "{error}");
        std::fs::remove_file(&dir).unwrap();
    }

    #[test]
    fn missing_legacy_target_is_reported() {
        let error = with_replaced(0, "\"Sora_20161101.ListArchiving\" = \"list_archiving\"\n", "").unwrap_err();
        assert_eq!(error.file, LEGACY_FILE);
        assert!(error.message.contains("no target maps to list_archiving"), "{error}");
    }

    #[test]
    fn unknown_legacy_operation_is_reported() {
        let error = with_replaced(0, "= \"list_archiving\"", "= \"list_archives\"").unwrap_err();
        assert!(error.message.contains("list_archives"), "{error}");
    }

    #[test]
    fn malformed_target_is_reported() {
        let error = with_replaced(2, "\"Sora_20231220.StartRecording\"", "\"StartRecording\"").unwrap_err();
        assert!(error.message.contains("targets.start_recording"), "{error}");
    }

    #[test]
    fn bad_error_name_and_duplicates_are_reported() {
        let error = with_replaced(1, "\"OVERLOADED\"", "\"overloaded\"").unwrap_err();
        assert!(error.message.contains("names.overloaded"), "{error}");
        let error = with_replaced(1, "\"OVERLOADED\"", "\"INTERNAL-ERROR\"").unwrap_err();
        assert!(error.message.contains("already used"), "{error}");
    }

    #[test]
    fn error_type_in_two_classes_is_reported() {
        let error =
            with_replaced(2, "not_recording = [\"NOT-STARTED-RECORDING\"]", "not_recording = [\"SESSION-NOT-FOUND\"]")
                .unwrap_err();
        assert!(error.message.contains("two classes"), "{error}");
    }

    #[test]
    fn list_body_must_be_a_json_object() {
        let error = with_replaced(2, "body = '{\"local\": true}'", "body = '[1]'").unwrap_err();
        assert!(error.message.contains("list_request.body"), "{error}");
    }

    #[test]
    fn target_shape() {
        assert!(is_target_shaped("Sora_20161101.StartRecording"));
        assert!(is_target_shaped("ImageFlux_20200316.Anything"));
        assert!(!is_target_shaped("Sora_2016.StartRecording"));
        assert!(!is_target_shaped("Sora_20161101."));
        assert!(!is_target_shaped("StartRecording"));
    }
}
