//! Runtime configuration: built-in defaults < TOML file (`--config`) < environment
//! (`SORA_SHIM__SECTION__KEY`) < command-line flags.
//!
//! Unknown keys are errors in every source, so a misspelt setting never silently falls back to
//! its default. [`Config::validate`] checks what types alone cannot.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Prefix of environment variables; sections and keys are separated by `__`.
pub const ENV_PREFIX: &str = "SORA_SHIM";

/// Paths the shim serves itself; an API path must not shadow them.
/// The largest `legacy.max_expire_time` / `max_split_duration`: ten years, far below any overflow.
pub const MAX_LEGACY_SECONDS: u64 = 315_360_000;

/// The shim's own paths: exact ones, and prefixes owning everything under them.
pub const RESERVED_PATHS: [&str; 3] = ["/health", "/ready", "/metrics"];
pub const RESERVED_PATH_PREFIXES: [&str; 2] = ["/hooks/", "/shim/"];

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the shim listens on (Sora's API port is 3000 by default).
    #[serde(deserialize_with = "socket_addr")]
    pub listen: SocketAddr,
    /// Paths on which `x-sora-target` calls are translated; everything else passes through.
    #[serde(deserialize_with = "list_or_commas")]
    pub api_paths: Vec<String>,
    /// Directory holding `legacy.toml`, `errors.toml`, `upstream.toml`. Unset: `./mappings` when
    /// it exists, else the copies built into the binary.
    pub mappings_dir: Option<PathBuf>,
    pub upstream: UpstreamConfig,
    pub store: StoreConfig,
    pub limits: LimitsConfig,
    pub legacy: LegacyConfig,
    pub cors: CorsConfig,
    pub log: LogConfig,
    pub session_webhook: SessionWebhookConfig,
    pub event_webhook: EventWebhookConfig,
    /// HTTP Basic credentials Sora must send on `/hooks/session` and `/hooks/event`.
    pub webhook_auth: Option<BasicCredentials>,
    pub reconciler: ReconcilerConfig,
    pub usage: UsageConfig,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Base URL of Sora's API (`http://host:port`). Unset: the bundled `sora-sim` is started.
    pub url: Option<String>,
    /// Deadline for each call the shim itself makes upstream (translated calls).
    pub timeout_ms: u64,
    /// Deadline for establishing a TCP connection to the upstream.
    pub connect_timeout_ms: u64,
    /// Idle pooled connections are closed after this; keep it below the upstream's keep-alive.
    pub pool_idle_timeout_ms: u64,
    /// Largest upstream reply the shim reads when it has to parse one (ListSessions, ...).
    pub max_reply_bytes: usize,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// SQLite database file holding the orders.
    pub path: PathBuf,
    /// How long a write waits for another process holding the database lock (then 503 STORE-UNAVAILABLE).
    pub busy_timeout_ms: u64,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest body accepted on a translated call (bigger: 413 REQUEST-TOO-LARGE).
    pub max_body_bytes: usize,
    /// Largest body accepted on the webhook endpoints.
    pub max_webhook_body_bytes: usize,
    /// Deadline for a whole request until its response head (then 504).
    pub request_timeout_ms: u64,
    /// Requests handled at once; more are refused at once with 503 OVERLOADED.
    pub max_in_flight: usize,
    /// How long a client may take to send its request head.
    pub header_read_timeout_ms: u64,
    /// On SIGINT/SIGTERM, how long in-flight requests may still run.
    pub shutdown_grace_ms: u64,
}

/// What StartRecording does when the upstream is unreachable or times out.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum OnUpstreamFailure {
    /// Keep the order and answer 200; the reconciler starts the recording later.
    Accept,
    /// Delete the order and answer 502/504.
    Reject,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LegacyConfig {
    /// Largest `expire_time` accepted (Sora's `recording_max_expire_time`).
    pub max_expire_time: u64,
    /// Largest `split_duration` accepted (Sora's `recording_max_split_duration`).
    pub max_split_duration: u64,
    /// Enforce the seed's split rules (`split_only: true` needs `expire_time: 0` and a `split_duration`).
    pub strict: bool,
    pub on_upstream_failure: OnUpstreamFailure,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct CorsConfig {
    /// Origins allowed to call the API from a browser; empty: the shim does not answer preflights.
    #[serde(deserialize_with = "list_or_commas")]
    pub allowed_origins: Vec<String>,
}

/// What the session webhook answers when the operator's own hook cannot be reached.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum OnForwardError {
    /// Answer Sora with the same failure (502/504, or the hook's own error status and body).
    Fail,
    /// Answer as if the hook had replied `200 {}`.
    Ignore,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SessionWebhookConfig {
    /// The operator's own session webhook; its reply is the base of the shim's reply.
    #[serde(serialize_with = "serialize_shown_url")]
    pub forward_url: Option<String>,
    pub on_forward_error: OnForwardError,
    /// Deadline of the forwarded call (Sora waits for the reply before the session starts).
    pub forward_timeout_ms: u64,
    /// HTTP Basic credentials sent to `forward_url`.
    pub forward_auth: Option<BasicCredentials>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EventWebhookConfig {
    /// Where events go after recording events are put back into legacy shape.
    #[serde(serialize_with = "serialize_shown_url")]
    pub forward_url: Option<String>,
    pub forward_timeout_ms: u64,
    /// HTTP Basic credentials sent to `forward_url`.
    pub forward_auth: Option<BasicCredentials>,
}

/// A forward URL as `check` prints it: its query (which may carry a token) redacted.
fn serialize_shown_url<S: serde::Serializer>(url: &Option<String>, serializer: S) -> Result<S::Ok, S::Error> {
    match url {
        Some(url) => serializer.serialize_some(&shown_url(url)),
        None => serializer.serialize_none(),
    }
}

/// A user name and password for HTTP Basic authentication.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BasicCredentials {
    pub username: String,
    pub password: Secret,
}

impl BasicCredentials {
    /// The `Authorization` header value for these credentials.
    pub fn header_value(&self) -> String {
        use base64::Engine;
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", self.username, self.password.expose()));
        format!("Basic {token}")
    }
}

/// A configuration value never shown: `check`, `Debug` and serialisation print `<redacted>`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("<redacted>")
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct UsageConfig {
    /// How often the migration usage counts are added to the store (and other replicas' read back).
    pub flush_interval_ms: u64,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ReconcilerConfig {
    /// How often upstream sessions are compared with the orders (and expired orders swept).
    pub interval_ms: u64,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `tracing` filter, e.g. `info` or `sora_legacy_shim=debug`.
    pub level: String,
    /// `pretty` for terminals, `json` (one object per line) for log collectors.
    pub format: LogFormat,
    /// Show recording metadata in logs (it may hold personal data; redacted by default).
    pub metadata: bool,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum LogFormat {
    Pretty,
    Json,
}

impl TryFrom<String> for LogFormat {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        match value.as_str() {
            "pretty" => Ok(Self::Pretty),
            "json" => Ok(Self::Json),
            _ => Err(format!("expected \"pretty\" or \"json\", got {value:?}")),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            api_paths: vec!["/".to_owned()],
            mappings_dir: None,
            upstream: UpstreamConfig::default(),
            store: StoreConfig::default(),
            limits: LimitsConfig::default(),
            legacy: LegacyConfig::default(),
            cors: CorsConfig::default(),
            log: LogConfig::default(),
            session_webhook: SessionWebhookConfig::default(),
            event_webhook: EventWebhookConfig::default(),
            webhook_auth: None,
            reconciler: ReconcilerConfig::default(),
            usage: UsageConfig::default(),
        }
    }
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            url: None,
            timeout_ms: 5_000,
            connect_timeout_ms: 1_000,
            // Sora (Cowboy) closes idle keep-alive connections after 60 s by default.
            pool_idle_timeout_ms: 30_000,
            max_reply_bytes: 16 * 1024 * 1024,
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self { path: PathBuf::from("sora-legacy-shim.db"), busy_timeout_ms: 5_000 }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            max_webhook_body_bytes: 1024 * 1024,
            request_timeout_ms: 30_000,
            max_in_flight: 1_024,
            header_read_timeout_ms: 10_000,
            shutdown_grace_ms: 10_000,
        }
    }
}

impl Default for LegacyConfig {
    fn default() -> Self {
        Self {
            max_expire_time: 86_400,
            max_split_duration: 86_400,
            strict: true,
            on_upstream_failure: OnUpstreamFailure::Accept,
        }
    }
}

impl Default for SessionWebhookConfig {
    fn default() -> Self {
        Self {
            forward_url: None,
            on_forward_error: OnForwardError::Fail,
            forward_timeout_ms: 2_000,
            forward_auth: None,
        }
    }
}

impl Default for EventWebhookConfig {
    fn default() -> Self {
        Self { forward_url: None, forward_timeout_ms: 5_000, forward_auth: None }
    }
}

impl Default for ReconcilerConfig {
    fn default() -> Self {
        Self { interval_ms: 5_000 }
    }
}

impl Default for UsageConfig {
    fn default() -> Self {
        Self { flush_interval_ms: 5_000 }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: "info".to_owned(), format: LogFormat::Pretty, metadata: false }
    }
}

impl TryFrom<String> for OnUpstreamFailure {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        match value.as_str() {
            "accept" => Ok(Self::Accept),
            "reject" => Ok(Self::Reject),
            _ => Err(format!("expected \"accept\" or \"reject\", got {value:?}")),
        }
    }
}

impl TryFrom<String> for OnForwardError {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        match value.as_str() {
            "fail" => Ok(Self::Fail),
            "ignore" => Ok(Self::Ignore),
            _ => Err(format!("expected \"fail\" or \"ignore\", got {value:?}")),
        }
    }
}

fn socket_addr<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "{text:?} is not IP:PORT (for example 127.0.0.1:3000 or 0.0.0.0:3000; host names are not accepted)"
        ))
    })
}

/// A list from a TOML array, or from one comma-separated string (how an environment variable
/// gives it): `SORA_SHIM__API_PATHS=/,/api`. Empty items are dropped.
fn list_or_commas<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    use serde_json::Value;
    let wrong = || serde::de::Error::custom("must be a list of strings (or one comma-separated string)");
    match Value::deserialize(deserializer)? {
        Value::Array(items) => {
            items.into_iter().map(|item| item.as_str().map(str::to_owned).ok_or_else(wrong)).collect()
        }
        Value::String(text) => {
            Ok(text.split(',').map(str::trim).filter(|item| !item.is_empty()).map(str::to_owned).collect())
        }
        _ => Err(wrong()),
    }
}

/// Configuration that could not be loaded or does not make sense.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Load(#[from] config::ConfigError),
    #[error("{origin}: {message}")]
    Source { origin: String, message: String },
    #[error("{key}: {message}")]
    Invalid { key: &'static str, message: String },
}

/// A `config` crate error as one plain sentence: the full key (and, from the environment, the
/// variable) first, the problem after; the source is named by the caller, once.
fn describe(error: &config::ConfigError, from_env: bool) -> String {
    let message = describe_raw(error, from_env);
    // Values are quoted back to help, except near credentials (a password in the wrong place).
    if message.contains("auth") || message.contains("password") { without_quoted_strings(&message) } else { message }
}

/// serde's `invalid type: string "…"` without the string, which may be a secret given in the
/// wrong place (`SORA_SHIM__WEBHOOK_AUTH=password`).
fn without_quoted_strings(message: &str) -> String {
    const QUOTED: &str = "string \"";
    let mut out = String::new();
    let mut rest = message;
    while let Some(start) = rest.find(QUOTED) {
        out.push_str(&rest[..start]);
        out.push_str("a string");
        let mut escaped = false;
        let tail = &rest[start + QUOTED.len()..];
        let end = tail.char_indices().find(|&(_, c)| {
            let closes = c == '"' && !escaped;
            escaped = c == '\\' && !escaped;
            closes
        });
        rest = end.map_or("", |(index, _)| &tail[index + 1..]);
    }
    out.push_str(rest);
    out
}

fn describe_raw(error: &config::ConfigError, from_env: bool) -> String {
    let name = |key: &str| {
        if from_env {
            format!("`{key}` (variable {ENV_PREFIX}__{})", key.replace('.', "__").to_ascii_uppercase())
        } else {
            format!("`{key}`")
        }
    };
    match error {
        config::ConfigError::Type { unexpected, expected, key: Some(key), .. } => {
            format!("{}: invalid type: {unexpected}, expected {expected}", name(key))
        }
        config::ConfigError::At { error, key, .. } => {
            let inner = match error.as_ref() {
                config::ConfigError::Message(message) => message.clone(),
                other => describe_raw(other, from_env),
            };
            let section = key.as_deref().filter(|key| !key.is_empty());
            unknown_key(&inner, section, &name).unwrap_or_else(|| match section {
                Some(section) => format!("{}: {inner}", name(section)),
                None => inner,
            })
        }
        config::ConfigError::Message(message) => unknown_key(message, None, &name).unwrap_or_else(|| message.clone()),
        config::ConfigError::FileParse { cause, .. } => without_source_lines(&cause.to_string()),
        other => other.to_string(),
    }
}

/// A TOML parse error without the lines it quotes from the file (`3 | password = "…`), which
/// may hold a secret: the position and the problem are kept.
fn without_source_lines(message: &str) -> String {
    let quoted =
        |line: &str| line.trim_start().trim_start_matches(|c: char| c.is_ascii_digit()).trim_start().starts_with('|');
    message
        .lines()
        .filter(|line| !quoted(line))
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(": ")
}

/// A URL as it may be shown in errors and logs: credentials (`user:pass@`) and the query (which
/// may carry a token) replaced by `<redacted>`, the fragment dropped.
pub fn shown_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("<redacted>@{host}"),
        None => authority.to_owned(),
    };
    let tail = tail.split('#').next().unwrap_or_default();
    let tail = match tail.split_once('?') {
        Some((path, _)) => format!("{path}?<redacted>"),
        None => tail.to_owned(),
    };
    let scheme = if scheme.is_empty() { String::new() } else { format!("{scheme}://") };
    format!("{scheme}{authority}{tail}")
}

/// serde's "unknown field `x`, expected one of ..." as "unknown key `section.x`; expected one of ...".
fn unknown_key(message: &str, section: Option<&str>, name: &dyn Fn(&str) -> String) -> Option<String> {
    let (field, expected) = message.strip_prefix("unknown field `")?.split_once('`')?;
    let full = section.map_or_else(|| field.to_owned(), |section| format!("{section}.{field}"));
    Some(format!("unknown key {}{}", name(&full), expected.replacen(", expected", "; expected", 1)))
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key, message: message.into() }
}

impl Config {
    /// Loads the layered configuration. `env` replaces the process environment (tests);
    /// `overrides` are flag values as `("section.key", value)`.
    pub fn load(
        file: Option<&Path>,
        env: Option<HashMap<String, String>>,
        overrides: &[(&str, String)],
    ) -> Result<Self, ConfigError> {
        let config = match Self::layered(file, env.clone(), overrides, true) {
            Ok(config) => config,
            Err(error) => return Err(Self::attribute(error, file, env, overrides)),
        };
        config.validate()?;
        Ok(config)
    }

    /// Builds from the given sources (the environment only when `with_env`).
    fn layered(
        file: Option<&Path>,
        env: Option<HashMap<String, String>>,
        overrides: &[(&str, String)],
        with_env: bool,
    ) -> Result<Self, config::ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(file) = file {
            builder = builder.add_source(config::File::from(file).format(config::FileFormat::Toml).required(true));
        }
        if with_env {
            builder = builder.add_source(
                config::Environment::with_prefix(ENV_PREFIX)
                    .prefix_separator("__")
                    .separator("__")
                    // No type guessing: a password `007` must stay `007` (numbers and booleans are
                    // still read from their text where the field wants one).
                    .try_parsing(false)
                    .source(env),
            );
        }
        for (key, value) in overrides {
            builder = builder.set_override(*key, value.as_str())?;
        }
        builder.build()?.try_deserialize()
    }

    /// Names the source at fault when the layered load failed: the file alone, then the
    /// environment alone, then the flags alone.
    fn attribute(
        error: config::ConfigError,
        file: Option<&Path>,
        env: Option<HashMap<String, String>>,
        overrides: &[(&str, String)],
    ) -> ConfigError {
        let (source, from_env) = if file.is_some_and(|file| Self::layered(Some(file), None, &[], false).is_err()) {
            (format!("in {}", file.map(Path::display).map(|d| d.to_string()).unwrap_or_default()), false)
        } else if Self::layered(None, env, &[], true).is_err() {
            (format!("in the environment ({ENV_PREFIX}__* variables)"), true)
        } else if Self::layered(None, None, overrides, false).is_err() {
            ("in the command-line flags".to_owned(), false)
        } else {
            return ConfigError::Load(error);
        };
        ConfigError::Source { origin: source, message: describe(&error, from_env) }
    }

    /// Checks what the types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.api_paths.is_empty() {
            return Err(invalid("api_paths", "needs at least one path, e.g. [\"/\"]"));
        }
        for path in &self.api_paths {
            if !path.starts_with('/') {
                return Err(invalid("api_paths", format!("{path:?} must start with '/'")));
            }
            // Compared with a request's path as it arrives: only a plain, ASCII path can match.
            let plain = path.bytes().all(|byte| byte.is_ascii_graphic())
                && http::uri::PathAndQuery::try_from(path.as_str()).is_ok_and(|parsed| parsed.as_str() == path)
                && !path.contains(['?', '#']);
            if !plain {
                return Err(invalid(
                    "api_paths",
                    format!(
                        "{path:?} can never match a request: give a plain path (no query, fragment, spaces or non-ASCII; percent-encode)"
                    ),
                ));
            }
            let reserved = RESERVED_PATHS
                .iter()
                .find(|own| path == *own)
                .or_else(|| RESERVED_PATH_PREFIXES.iter().find(|prefix| path.starts_with(*prefix)));
            if let Some(reserved) = reserved {
                return Err(invalid("api_paths", format!("{path:?} collides with the shim's own {reserved}")));
            }
        }
        if let Some(url) = &self.upstream.url {
            upstream_base(url).map_err(|message| invalid("upstream.url", message))?;
        }
        if let Some(url) = &self.session_webhook.forward_url {
            forward_url(url).map_err(|message| invalid("session_webhook.forward_url", message))?;
        }
        if let Some(url) = &self.event_webhook.forward_url {
            forward_url(url).map_err(|message| invalid("event_webhook.forward_url", message))?;
        }
        for (key, credentials) in [
            ("webhook_auth", &self.webhook_auth),
            ("session_webhook.forward_auth", &self.session_webhook.forward_auth),
            ("event_webhook.forward_auth", &self.event_webhook.forward_auth),
        ] {
            if let Some(credentials) = credentials {
                if credentials.username.is_empty() || credentials.username.contains(':') {
                    return Err(invalid(key, "username must be non-empty and contain no ':'"));
                }
                if credentials.password.expose().is_empty() {
                    return Err(invalid(key, "password must not be empty"));
                }
            }
        }
        let positive = [
            ("upstream.timeout_ms", self.upstream.timeout_ms),
            ("upstream.connect_timeout_ms", self.upstream.connect_timeout_ms),
            ("upstream.pool_idle_timeout_ms", self.upstream.pool_idle_timeout_ms),
            ("upstream.max_reply_bytes", self.upstream.max_reply_bytes as u64),
            ("limits.max_body_bytes", self.limits.max_body_bytes as u64),
            ("limits.max_webhook_body_bytes", self.limits.max_webhook_body_bytes as u64),
            ("session_webhook.forward_timeout_ms", self.session_webhook.forward_timeout_ms),
            ("event_webhook.forward_timeout_ms", self.event_webhook.forward_timeout_ms),
            ("reconciler.interval_ms", self.reconciler.interval_ms),
            ("limits.request_timeout_ms", self.limits.request_timeout_ms),
            ("limits.max_in_flight", self.limits.max_in_flight as u64),
            ("limits.header_read_timeout_ms", self.limits.header_read_timeout_ms),
            ("legacy.max_expire_time", self.legacy.max_expire_time),
            ("legacy.max_split_duration", self.legacy.max_split_duration),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(invalid(key, "must be greater than 0"));
        }
        // Each flush reads the whole usage table back (other replicas' counts): not every instant.
        if self.usage.flush_interval_ms < 1_000 {
            return Err(invalid("usage.flush_interval_ms", "must be at least 1000 (1 s)"));
        }
        for (key, value) in [
            ("legacy.max_expire_time", self.legacy.max_expire_time),
            ("legacy.max_split_duration", self.legacy.max_split_duration),
        ] {
            if value > MAX_LEGACY_SECONDS {
                return Err(invalid(key, format!("{value} is more than ten years ({MAX_LEGACY_SECONDS} s)")));
            }
        }
        let longest = self.longest_translated_call_ms();
        if self.limits.request_timeout_ms <= longest {
            return Err(invalid(
                "limits.request_timeout_ms",
                format!(
                    "{} ms must be more than the longest a translated call may take, {longest} ms \
                     (2 × store.busy_timeout_ms + upstream.timeout_ms, or 2 × upstream.timeout_ms): \
                     else a call could be answered 504 and still succeed; lower those or raise this",
                    self.limits.request_timeout_ms
                ),
            ));
        }
        if let Err(error) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err(invalid("log.level", format!("{:?} is not a tracing filter: {error}", self.log.level)));
        }
        if self.store.path.as_os_str().is_empty() {
            return Err(invalid("store.path", "must not be empty"));
        }
        for origin in &self.cors.allowed_origins {
            if http::HeaderValue::from_str(origin).is_err()
                || !(origin.starts_with("http://") || origin.starts_with("https://") || origin == "*")
            {
                return Err(invalid(
                    "cors.allowed_origins",
                    format!("{origin:?} is not an origin like https://admin.example.com or *"),
                ));
            }
        }
        Ok(())
    }

    /// The longest a translated call can run, from its own bounds: Start and Stop wait for the
    /// store twice around one upstream call; ListArchiving makes two upstream calls.
    pub fn longest_translated_call_ms(&self) -> u64 {
        let store_upstream_store =
            self.store.busy_timeout_ms.saturating_mul(2).saturating_add(self.upstream.timeout_ms);
        store_upstream_store.max(self.upstream.timeout_ms.saturating_mul(2))
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.limits.request_timeout_ms)
    }
}

/// Parses an upstream base URL: `http://host:port` with an optional path prefix, nothing else.
pub fn upstream_base(url: &str) -> Result<http::Uri, String> {
    let shown = shown_url(url);
    let uri: http::Uri = url.parse().map_err(|error| format!("{shown:?} is not a URL: {error}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(format!("{shown:?}: https upstreams are not supported; reach Sora's API port over http"));
        }
        _ => return Err(format!("{shown:?} must start with http://")),
    }
    if uri.authority().is_none() {
        return Err(format!("{shown:?} has no host"));
    }
    if uri.authority().is_some_and(|authority| authority.as_str().contains('@')) {
        return Err("credentials in the upstream URL are not supported".to_owned());
    }
    if uri.query().is_some() {
        return Err(format!("{shown:?} must not have a query"));
    }
    Ok(uri)
}

/// Parses a webhook forward target: an absolute `http://` or `https://` URL.
pub fn forward_url(url: &str) -> Result<http::Uri, String> {
    let shown = shown_url(url);
    let uri: http::Uri = url.parse().map_err(|error| format!("{shown:?} is not a URL: {error}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
        return Err(format!("{shown:?} must be an absolute http:// or https:// URL"));
    }
    if uri.authority().is_some_and(|authority| authority.as_str().contains('@')) {
        return Err(
            "credentials do not belong in the URL: use forward_auth.username / forward_auth.password".to_owned()
        );
    }
    Ok(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Option<HashMap<String, String>> {
        Some(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
    }

    #[test]
    fn defaults_are_valid() {
        let config = Config::load(None, env(&[]), &[]).unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.listen.port(), 3000);
        assert!(config.legacy.strict);
    }

    #[test]
    fn layers_apply_in_order_file_env_flags() {
        let dir = std::env::temp_dir().join(format!("shim-config-{}", ulid::Ulid::generate()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("shim.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:4000\"\n[upstream]\nurl = \"http://file:1\"\ntimeout_ms = 111\n[legacy]\nstrict = false\n",
        )
        .unwrap();
        let config = Config::load(
            Some(&file),
            env(&[("SORA_SHIM__UPSTREAM__URL", "http://env:2"), ("SORA_SHIM__LIMITS__MAX_IN_FLIGHT", "7")]),
            &[("listen", "127.0.0.1:5000".to_owned())],
        )
        .unwrap();
        assert_eq!(config.listen, "127.0.0.1:5000".parse().unwrap());
        assert_eq!(config.upstream.url.as_deref(), Some("http://env:2"));
        assert_eq!(config.upstream.timeout_ms, 111);
        assert_eq!(config.limits.max_in_flight, 7);
        assert!(!config.legacy.strict);
    }

    #[test]
    fn a_request_deadline_shorter_than_a_translated_call_is_refused() {
        let error = Config::load(None, env(&[("SORA_SHIM__LIMITS__REQUEST_TIMEOUT_MS", "1000")]), &[]).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("limits.request_timeout_ms") && text.contains("15000 ms"), "{text}");
        // Lowering the bounds of the call makes the same deadline fine.
        let config = Config::load(
            None,
            env(&[
                ("SORA_SHIM__LIMITS__REQUEST_TIMEOUT_MS", "1000"),
                ("SORA_SHIM__UPSTREAM__TIMEOUT_MS", "300"),
                ("SORA_SHIM__STORE__BUSY_TIMEOUT_MS", "200"),
            ]),
            &[],
        )
        .unwrap();
        assert_eq!(config.longest_translated_call_ms(), 700);
        // ListArchiving's two upstream calls count too.
        let error = Config::load(
            None,
            env(&[
                ("SORA_SHIM__LIMITS__REQUEST_TIMEOUT_MS", "1000"),
                ("SORA_SHIM__UPSTREAM__TIMEOUT_MS", "500"),
                ("SORA_SHIM__STORE__BUSY_TIMEOUT_MS", "10"),
            ]),
            &[],
        )
        .unwrap_err();
        assert!(error.to_string().contains("1000 ms"), "{error}");
    }

    #[test]
    fn legacy_maxima_are_bounded() {
        let error = Config::load(None, env(&[("SORA_SHIM__LEGACY__MAX_EXPIRE_TIME", "18446744073709551615")]), &[])
            .unwrap_err();
        assert!(error.to_string().contains("legacy.max_expire_time"), "{error}");
        let error =
            Config::load(None, env(&[("SORA_SHIM__LEGACY__MAX_SPLIT_DURATION", "315360001")]), &[]).unwrap_err();
        assert!(error.to_string().contains("legacy.max_split_duration"), "{error}");
        let config = Config::load(None, env(&[("SORA_SHIM__LEGACY__MAX_EXPIRE_TIME", "315360000")]), &[]).unwrap();
        assert_eq!(config.legacy.max_expire_time, MAX_LEGACY_SECONDS);
    }

    #[test]
    fn secrets_never_print() {
        let config = Config::load(
            None,
            env(&[
                ("SORA_SHIM__WEBHOOK_AUTH__USERNAME", "sora"),
                ("SORA_SHIM__WEBHOOK_AUTH__PASSWORD", "hunter2-secret"),
            ]),
            &[],
        )
        .unwrap();
        let credentials = config.webhook_auth.clone().unwrap();
        assert_eq!(credentials.password.expose(), "hunter2-secret");
        assert_eq!(credentials.header_value(), "Basic c29yYTpodW50ZXIyLXNlY3JldA==");
        assert!(!format!("{config:?}").contains("hunter2"));
        assert!(!toml::to_string(&config).unwrap().contains("hunter2"));
        let error = Config::load(None, env(&[("SORA_SHIM__WEBHOOK_AUTH__USERNAME", "sora")]), &[]).unwrap_err();
        assert!(error.to_string().contains("password"), "{error}");
    }

    #[test]
    fn env_values_are_taken_as_written() {
        for written in ["007", "1e5", "TRUE", "+5", "0x1F", " spaced "] {
            let config = Config::load(
                None,
                env(&[
                    ("SORA_SHIM__WEBHOOK_AUTH__USERNAME", "12"),
                    ("SORA_SHIM__WEBHOOK_AUTH__PASSWORD", written),
                    ("SORA_SHIM__EVENT_WEBHOOK__FORWARD_AUTH__USERNAME", "false"),
                    ("SORA_SHIM__EVENT_WEBHOOK__FORWARD_AUTH__PASSWORD", written),
                    ("SORA_SHIM__LIMITS__MAX_IN_FLIGHT", "17"),
                    ("SORA_SHIM__LEGACY__STRICT", "false"),
                ]),
                &[],
            )
            .unwrap();
            let credentials = config.webhook_auth.unwrap();
            assert_eq!((credentials.username.as_str(), credentials.password.expose()), ("12", written));
            let forward = config.event_webhook.forward_auth.unwrap();
            assert_eq!((forward.username.as_str(), forward.password.expose()), ("false", written));
            // Numbers and booleans are still read from their text.
            assert_eq!((config.limits.max_in_flight, config.legacy.strict), (17, false));
        }
        let error = Config::load(None, env(&[("SORA_SHIM__API_PATHS", "")]), &[]).unwrap_err();
        assert!(error.to_string().contains("api_paths"), "{error}");
    }

    #[test]
    fn urls_and_parse_errors_never_show_secrets() {
        assert_eq!(shown_url("https://admin:TopSecret1@sora:3000/api"), "https://<redacted>@sora:3000/api");
        assert_eq!(shown_url("http://be/e?api_key=Q1&x=2#frag"), "http://be/e?<redacted>");
        assert_eq!(shown_url("http://127.0.0.1:8080/events"), "http://127.0.0.1:8080/events");
        assert_eq!(shown_url("ht tp://a:b@x"), "ht tp://<redacted>@x");
        for url in ["https://admin:TopSecret1@sora:3000", "http://a:TopSecret1@h:1", "http://h:1/?k=TopSecret1"] {
            let error = upstream_base(url).unwrap_err();
            assert!(!error.contains("TopSecret1"), "{error}");
            let error = forward_url(&url.replace("http://", "ftp://")).unwrap_err();
            assert!(!error.contains("TopSecret1"), "{error}");
        }
        let config = Config::load(
            None,
            env(&[("SORA_SHIM__EVENT_WEBHOOK__FORWARD_URL", "http://be/e?api_key=TopSecret2")]),
            &[],
        )
        .unwrap();
        assert_eq!(config.event_webhook.forward_url.as_deref(), Some("http://be/e?api_key=TopSecret2"));
        assert!(toml::to_string(&config).unwrap().contains("forward_url = \"http://be/e?<redacted>\""));

        let dir = std::env::temp_dir().join(format!("shim-config-{}", ulid::Ulid::generate()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("shim.toml");
        std::fs::write(&file, "[webhook_auth]\nusername = \"sora\"\npassword = \"unterminated-Secret5\n").unwrap();
        let error = Config::load(Some(&file), env(&[]), &[]).unwrap_err().to_string();
        assert!(!error.contains("Secret5"), "{error}");
        assert!(error.contains("line 3"), "{error}");
    }

    #[test]
    fn type_errors_do_not_quote_strings_back() {
        let error = Config::load(None, env(&[("SORA_SHIM__WEBHOOK_AUTH", "hunter2secret")]), &[]).unwrap_err();
        assert!(!error.to_string().contains("hunter2"), "{error}");
        assert!(error.to_string().contains("webhook_auth"), "{error}");
        let error = Config::load(None, env(&[("SORA_SHIM__USAGE__FLUSH_INTERVAL_MS", "10")]), &[]).unwrap_err();
        assert!(error.to_string().contains("usage.flush_interval_ms"), "{error}");
    }

    #[test]
    fn env_lists_split_on_commas() {
        let config = Config::load(
            None,
            env(&[("SORA_SHIM__CORS__ALLOWED_ORIGINS", "https://a.example,https://b.example")]),
            &[],
        )
        .unwrap();
        assert_eq!(config.cors.allowed_origins, vec!["https://a.example", "https://b.example"]);
        let config =
            Config::load(None, env(&[("SORA_SHIM__API_PATHS", "/, /api,/healthz,/hooks,/%C3%A4")]), &[]).unwrap();
        assert_eq!(config.api_paths, ["/", "/api", "/healthz", "/hooks", "/%C3%A4"]);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let error = Config::load(None, env(&[("SORA_SHIM__UPSTREAM__URLL", "http://x:1")]), &[]).unwrap_err();
        assert!(
            error.to_string().starts_with(
                "in the environment (SORA_SHIM__* variables): unknown key `upstream.urll` (variable SORA_SHIM__UPSTREAM__URLL); expected one of"
            ),
            "{error}"
        );
        let error = Config::load(None, env(&[("SORA_SHIM__UPSTREAM__TIMEOUT_MS", "abc")]), &[]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "in the environment (SORA_SHIM__* variables): `upstream.timeout_ms` (variable SORA_SHIM__UPSTREAM__TIMEOUT_MS): \
             invalid type: string \"abc\", expected an integer"
        );
        let dir = std::env::temp_dir().join(format!("shim-config-{}", ulid::Ulid::generate()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("typo.toml");
        std::fs::write(&file, "[upstream]\ntimeout = 5\n").unwrap();
        let error = Config::load(Some(&file), env(&[]), &[]).unwrap_err();
        let prefix = format!("in {}: unknown key `upstream.timeout`; expected one of", file.display());
        assert!(error.to_string().starts_with(&prefix), "{error}");
        assert_eq!(error.to_string().matches(&file.display().to_string()).count(), 1, "{error}");
        std::fs::write(&file, "[upstream]\ntimeout_ms = \"fast\"\n").unwrap();
        let error = Config::load(Some(&file), env(&[]), &[]).unwrap_err();
        let expected =
            format!("in {}: `upstream.timeout_ms`: invalid type: string \"fast\", expected an integer", file.display());
        assert_eq!(error.to_string(), expected);
        std::fs::write(&file, "listen = \"127.0.0.1:1\"\nunknown_top = 1\n[upstream\n").unwrap();
        let error = Config::load(Some(&file), env(&[]), &[]).unwrap_err();
        assert!(!error.to_string().ends_with('\n'), "{error:?}");
        assert_eq!(error.to_string().matches(&file.display().to_string()).count(), 1, "{error}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            (vec![("SORA_SHIM__UPSTREAM__URL", "https://sora:3000")], "upstream.url"),
            (vec![("SORA_SHIM__UPSTREAM__URL", "sora:3000")], "upstream.url"),
            (vec![("SORA_SHIM__API_PATHS", "/hooks/x")], "api_paths"),
            (vec![("SORA_SHIM__API_PATHS", "/metrics")], "api_paths"),
            (vec![("SORA_SHIM__API_PATHS", "/api?x=1")], "api_paths"),
            (vec![("SORA_SHIM__API_PATHS", "/api#f")], "api_paths"),
            (vec![("SORA_SHIM__API_PATHS", "/a b")], "api_paths"),
            (vec![("SORA_SHIM__API_PATHS", "/ä")], "api_paths"),
            (vec![("SORA_SHIM__API_PATHS", "api")], "api_paths"),
            (vec![("SORA_SHIM__LIMITS__MAX_IN_FLIGHT", "0")], "limits.max_in_flight"),
            (vec![("SORA_SHIM__SESSION_WEBHOOK__FORWARD_URL", "/relative")], "session_webhook.forward_url"),
            (vec![("SORA_SHIM__EVENT_WEBHOOK__FORWARD_URL", "http://user:pw@host/x")], "event_webhook.forward_url"),
            (vec![("SORA_SHIM__RECONCILER__INTERVAL_MS", "0")], "reconciler.interval_ms"),
            (vec![("SORA_SHIM__CORS__ALLOWED_ORIGINS", "not an origin")], "cors.allowed_origins"),
        ];
        for (vars, key) in cases {
            let error = Config::load(None, env(&vars), &[]).unwrap_err();
            assert!(error.to_string().starts_with(key), "{vars:?}: {error}");
        }
        let error = Config::load(None, env(&[("SORA_SHIM__LEGACY__ON_UPSTREAM_FAILURE", "maybe")]), &[]).unwrap_err();
        assert!(error.to_string().contains(r#"expected "accept" or "reject", got "maybe""#), "{error}");
        let error = Config::load(None, env(&[]), &[("listen", "localhost:3000".to_owned())]).unwrap_err();
        assert!(error.to_string().contains("is not IP:PORT"), "{error}");
        assert!(error.to_string().starts_with("in the command-line flags"), "{error}");
        let error = Config::load(None, env(&[("SORA_SHIM__LOG__LEVEL", "nonsense==")]), &[]).unwrap_err();
        assert!(error.to_string().starts_with("log.level"), "{error}");
    }
}
