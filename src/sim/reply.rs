//! HTTP helpers shared by the API and the control plane: JSON answers, Sora-style errors,
//! body reading and the connection-dropping body.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{Map, Value, json};

use crate::body::{Body, BoxError, boxed, json_response};

/// Largest request body the emulator reads.
pub const BODY_LIMIT: usize = 16 * 1024 * 1024;

/// 200 with `value` as JSON.
pub fn ok(value: &Value) -> Response<Body> {
    json_response(StatusCode::OK, value)
}

/// `status` with the body exactly `{"error_type":"NAME"}`.
pub fn error(status: StatusCode, error_type: &str) -> Response<Body> {
    json_response(status, &json!({ "error_type": error_type }))
}

/// 400 with `{"error_type":"NAME"}`, Sora's answer to a bad request.
pub fn bad_request(error_type: &str) -> Response<Body> {
    error(StatusCode::BAD_REQUEST, error_type)
}

/// Reads the whole body, or answers 413 / 400 when it is too large or broken.
pub async fn read_body(body: Incoming) -> Result<Bytes, Response<Body>> {
    match Limited::new(body, BODY_LIMIT).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(failure) if failure.is::<http_body_util::LengthLimitError>() => {
            Err(error(StatusCode::PAYLOAD_TOO_LARGE, "REQUEST-TOO-LARGE"))
        }
        Err(failure) => {
            tracing::debug!(error = %failure, "could not read the request body");
            Err(bad_request("INVALID-BODY"))
        }
    }
}

/// Parses `bytes` as a JSON object whatever the content-type; an empty (or blank) body is `{}`.
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, &'static str> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(object)) => Ok(object),
        _ => Err("INVALID-JSON"),
    }
}

/// A body that fails before its first byte: hyper then closes the connection without flushing
/// the buffered response head, so the client sees the connection drop with no answer at all.
pub fn severed() -> Body {
    boxed(SeveredBody)
}

struct SeveredBody;

impl http_body::Body for SeveredBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Poll::Ready(Some(Err("connection dropped by a sim fault rule".into())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_bodies_are_empty_objects() {
        assert_eq!(parse_object(b""), Ok(Map::new()));
        assert_eq!(parse_object(b" \r\n"), Ok(Map::new()));
    }

    #[test]
    fn only_objects_parse() {
        assert_eq!(parse_object(br#"{"a":1}"#).map(|object| object.len()), Ok(1));
        assert_eq!(parse_object(b"[]"), Err("INVALID-JSON"));
        assert_eq!(parse_object(b"channel_id=x"), Err("INVALID-JSON"));
    }

    #[tokio::test]
    async fn errors_are_exact_json() {
        let response = bad_request("X");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()["content-type"], "application/json");
        let bytes = response.into_body().collect().await.expect("full body").to_bytes();
        assert_eq!(&bytes[..], br#"{"error_type":"X"}"#);
    }
}
