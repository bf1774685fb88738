//! The shim's one error type, and the one function that turns any error into the legacy
//! `{"error_type": "<NAME>"}` response.
//!
//! Whatever fails (validation, the store, the upstream, a timeout, a panic, overload), the client
//! sees the same shape: a status from the contract's table, a body of exactly one key, and the
//! human-readable reason in the `x-shim-error-detail` header and the log, never in the body.

use http::{HeaderName, HeaderValue, Response, StatusCode};

use crate::body::{Body, json_response};
use crate::mappings::ErrorNames;
use crate::routing::ReplyOrigin;

/// Response header carrying the human-readable reason of an error.
pub const ERROR_DETAIL_HEADER: HeaderName = HeaderName::from_static("x-shim-error-detail");

/// Every error the shim can answer with; the name of each is configurable in `mappings/errors.toml`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    StartedRecording,
    NotStartedRecording,
    NotClusterMajority,
    InvalidJson,
    InvalidChannelId,
    InvalidExpireTime,
    InvalidSplitDuration,
    InvalidSplitOnly,
    RequestTooLarge,
    Unauthorized,
    NotFound,
    MethodNotAllowed,
    Overloaded,
    StoreUnavailable,
    UpstreamUnavailable,
    UpstreamTimeout,
    UpstreamError,
    InternalError,
}

impl ErrorKind {
    /// The HTTP status the contract fixes for this error.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::StartedRecording
            | ErrorKind::NotStartedRecording
            | ErrorKind::NotClusterMajority
            | ErrorKind::InvalidJson
            | ErrorKind::InvalidChannelId
            | ErrorKind::InvalidExpireTime
            | ErrorKind::InvalidSplitDuration
            | ErrorKind::InvalidSplitOnly => StatusCode::BAD_REQUEST,
            ErrorKind::RequestTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::Overloaded | ErrorKind::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::UpstreamUnavailable | ErrorKind::UpstreamError => StatusCode::BAD_GATEWAY,
            ErrorKind::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The key naming this error in `mappings/errors.toml`.
    pub fn key(self) -> &'static str {
        match self {
            ErrorKind::StartedRecording => "started_recording",
            ErrorKind::NotStartedRecording => "not_started_recording",
            ErrorKind::NotClusterMajority => "not_cluster_majority",
            ErrorKind::InvalidJson => "invalid_json",
            ErrorKind::InvalidChannelId => "invalid_channel_id",
            ErrorKind::InvalidExpireTime => "invalid_expire_time",
            ErrorKind::InvalidSplitDuration => "invalid_split_duration",
            ErrorKind::InvalidSplitOnly => "invalid_split_only",
            ErrorKind::RequestTooLarge => "request_too_large",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::NotFound => "not_found",
            ErrorKind::MethodNotAllowed => "method_not_allowed",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::StoreUnavailable => "store_unavailable",
            ErrorKind::UpstreamUnavailable => "upstream_unavailable",
            ErrorKind::UpstreamTimeout => "upstream_timeout",
            ErrorKind::UpstreamError => "upstream_error",
            ErrorKind::InternalError => "internal_error",
        }
    }

    /// The error a bare status from a generic layer (timeout, body limit, load shedding) stands for.
    pub fn for_bare_status(status: StatusCode) -> Self {
        match status {
            StatusCode::PAYLOAD_TOO_LARGE => ErrorKind::RequestTooLarge,
            StatusCode::GATEWAY_TIMEOUT | StatusCode::REQUEST_TIMEOUT => ErrorKind::UpstreamTimeout,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => ErrorKind::Overloaded,
            _ => ErrorKind::InternalError,
        }
    }
}

/// An error with its reason. The reason is for operators; clients only see the kind's name.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ShimError {
    #[error("channel {0:?} already has an active recording order")]
    StartedRecording(String),
    #[error("channel {0:?} has no active recording order")]
    NotStartedRecording(String),
    #[error("upstream reports that its node is in a cluster minority")]
    NotClusterMajority,
    #[error("invalid JSON body: {0}")]
    InvalidJson(String),
    #[error("invalid channel_id: {0}")]
    InvalidChannelId(String),
    #[error("invalid expire_time: {0}")]
    InvalidExpireTime(String),
    #[error("invalid split_duration: {0}")]
    InvalidSplitDuration(String),
    #[error("invalid split_only: {0}")]
    InvalidSplitOnly(String),
    #[error("request body larger than {}", limit.map_or_else(|| "the configured limit (limits.max_body_bytes or limits.max_webhook_body_bytes)".to_owned(), |limit| format!("{limit} bytes")))]
    RequestTooLarge { limit: Option<usize> },
    #[error("webhook credentials missing or wrong")]
    Unauthorized,
    #[error("no such endpoint of the shim: {0}")]
    NotFound(String),
    #[error("method not allowed on the shim's endpoint {0}")]
    MethodNotAllowed(String),
    #[error("too many requests in flight")]
    Overloaded,
    #[error("store unavailable: {0}")]
    StoreUnavailable(String),
    #[error("upstream unavailable: {0}")]
    UpstreamUnavailable(String),
    #[error("upstream timeout: {0}")]
    UpstreamTimeout(String),
    #[error("upstream answered something unmappable: {0}")]
    UpstreamError(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ShimError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ShimError::StartedRecording(_) => ErrorKind::StartedRecording,
            ShimError::NotStartedRecording(_) => ErrorKind::NotStartedRecording,
            ShimError::NotClusterMajority => ErrorKind::NotClusterMajority,
            ShimError::InvalidJson(_) => ErrorKind::InvalidJson,
            ShimError::InvalidChannelId(_) => ErrorKind::InvalidChannelId,
            ShimError::InvalidExpireTime(_) => ErrorKind::InvalidExpireTime,
            ShimError::InvalidSplitDuration(_) => ErrorKind::InvalidSplitDuration,
            ShimError::InvalidSplitOnly(_) => ErrorKind::InvalidSplitOnly,
            ShimError::RequestTooLarge { .. } => ErrorKind::RequestTooLarge,
            ShimError::Unauthorized => ErrorKind::Unauthorized,
            ShimError::NotFound(_) => ErrorKind::NotFound,
            ShimError::MethodNotAllowed(_) => ErrorKind::MethodNotAllowed,
            ShimError::Overloaded => ErrorKind::Overloaded,
            ShimError::StoreUnavailable(_) => ErrorKind::StoreUnavailable,
            ShimError::UpstreamUnavailable(_) => ErrorKind::UpstreamUnavailable,
            ShimError::UpstreamTimeout(_) => ErrorKind::UpstreamTimeout,
            ShimError::UpstreamError(_) => ErrorKind::UpstreamError,
            ShimError::Internal(_) => ErrorKind::InternalError,
        }
    }
}

impl From<crate::store::StoreError> for ShimError {
    fn from(error: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match error {
            StoreError::ChannelBusy(channel) => ShimError::StartedRecording(channel),
            StoreError::Unavailable(detail) => ShimError::StoreUnavailable(detail),
            gone @ StoreError::OrderGone(_) => ShimError::Internal(gone.to_string()),
        }
    }
}

/// Turns any error into the legacy response. This is the only place such a response is built.
pub fn legacy_error_response(error: &ShimError, names: &ErrorNames) -> Response<Body> {
    let kind = error.kind();
    let status = kind.status();
    let name = names.name(kind);
    if status.is_server_error() {
        tracing::warn!(error_type = name, %error, "request failed");
    } else {
        tracing::info!(error_type = name, %error, "request rejected");
    }
    let mut response = json_response(status, &serde_json::json!({ "error_type": name }));
    response.headers_mut().insert(ERROR_DETAIL_HEADER, detail_header(&error.to_string()));
    if kind == ErrorKind::Unauthorized {
        response
            .headers_mut()
            .insert(http::header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"sora-legacy-shim\""));
    }
    response.extensions_mut().insert(ReplyOrigin::Shim);
    response
}

/// A header-safe rendering of `detail`: visible ASCII only, at most 300 bytes.
fn detail_header(detail: &str) -> HeaderValue {
    let cleaned: String =
        detail.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).take(300).collect();
    HeaderValue::from_str(&cleaned).unwrap_or_else(|_| HeaderValue::from_static("unprintable detail"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mappings::Mappings;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn every_kind_has_a_legacy_body_and_its_contract_status() {
        let names = Mappings::built_in().errors;
        let cases = [
            (ShimError::StartedRecording("sora".into()), 400, "STARTED-RECORDING"),
            (ShimError::NotStartedRecording("sora".into()), 400, "NOT-STARTED-RECORDING"),
            (ShimError::NotClusterMajority, 400, "NOT-CLUSTER-MAJORITY"),
            (ShimError::InvalidJson("x".into()), 400, "INVALID-JSON"),
            (ShimError::InvalidChannelId("x".into()), 400, "INVALID-CHANNEL-ID"),
            (ShimError::InvalidExpireTime("x".into()), 400, "INVALID-EXPIRE-TIME"),
            (ShimError::InvalidSplitDuration("x".into()), 400, "INVALID-SPLIT-DURATION"),
            (ShimError::InvalidSplitOnly("x".into()), 400, "INVALID-SPLIT-ONLY"),
            (ShimError::RequestTooLarge { limit: Some(10) }, 413, "REQUEST-TOO-LARGE"),
            (ShimError::Unauthorized, 401, "UNAUTHORIZED"),
            (ShimError::NotFound("/shim/x".into()), 404, "NOT-FOUND"),
            (ShimError::MethodNotAllowed("/health".into()), 405, "METHOD-NOT-ALLOWED"),
            (ShimError::Overloaded, 503, "OVERLOADED"),
            (ShimError::StoreUnavailable("x".into()), 503, "STORE-UNAVAILABLE"),
            (ShimError::UpstreamUnavailable("x".into()), 502, "UPSTREAM-UNAVAILABLE"),
            (ShimError::UpstreamTimeout("x".into()), 504, "UPSTREAM-TIMEOUT"),
            (ShimError::UpstreamError("x".into()), 502, "UPSTREAM-ERROR"),
            (ShimError::Internal("x".into()), 500, "INTERNAL-ERROR"),
        ];
        for (error, status, name) in cases {
            let response = legacy_error_response(&error, &names);
            assert_eq!(response.status().as_u16(), status, "{name}");
            assert_eq!(response.headers()["content-type"], "application/json");
            assert!(response.headers().contains_key(ERROR_DETAIL_HEADER));
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body, format!("{{\"error_type\":\"{name}\"}}").as_bytes());
        }
    }

    #[test]
    fn detail_header_survives_non_ascii_and_control_characters() {
        let value = detail_header("チャネル\n\"sora\"");
        assert_eq!(value.to_str().unwrap(), "?????\"sora\"");
    }
}
