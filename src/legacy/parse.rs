//! Phase 1, parse: read the (size-limited) body and parse it as JSON, whatever the Content-Type.
//! An empty or all-whitespace body is `{}`, as legacy clients send list calls with no body.

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::LengthLimitError;
use serde_json::Value;

use crate::body::BoxError;
use crate::error::ShimError;

/// Reads the whole body. Bodies reach this phase wrapped in `http_body_util::Limited` by the
/// stack's body-limit layer, so an oversized chunked body fails here with `RequestTooLarge`.
pub async fn read_body<B>(body: B, limit: usize) -> Result<Bytes, ShimError>
where
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    match body.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) => {
            let error: BoxError = error.into();
            if error.downcast_ref::<LengthLimitError>().is_some() {
                Err(ShimError::RequestTooLarge { limit: Some(limit) })
            } else {
                Err(ShimError::InvalidJson(format!("the request body could not be read: {error}")))
            }
        }
    }
}

/// Parses `bytes` as JSON; empty means `{}`.
pub fn parse_json(bytes: &[u8]) -> Result<Value, ShimError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    serde_json::from_slice(bytes).map_err(|error| ShimError::InvalidJson(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Full, Limited};

    #[test]
    fn empty_bodies_are_empty_objects() {
        assert_eq!(parse_json(b"").unwrap(), serde_json::json!({}));
        assert_eq!(parse_json(b" \r\n").unwrap(), serde_json::json!({}));
    }

    #[test]
    fn malformed_json_is_invalid_json() {
        for bad in [&b"{"[..], b"channel_id=sora&expire_time=0", b"{\"a\":1}x", b"\xff\xfe"] {
            assert!(matches!(parse_json(bad), Err(ShimError::InvalidJson(_))), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn oversized_bodies_are_request_too_large() {
        let body = Limited::new(Full::new(Bytes::from(vec![b' '; 100])), 10);
        assert!(matches!(read_body(body, 10).await, Err(ShimError::RequestTooLarge { limit: Some(10) })));
        let body = Limited::new(Full::new(Bytes::from_static(b"{}")), 10);
        assert_eq!(read_body(body, 10).await.unwrap(), Bytes::from_static(b"{}"));
    }
}
