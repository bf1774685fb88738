//! The one body type the whole crate speaks, and small constructors for it.
//!
//! Every service in the stack answers `Response<Body>`; passthrough responses are the upstream's
//! streaming body boxed once, translated replies are a single `Bytes` chunk.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty, Full, combinators::UnsyncBoxBody};

/// Error type carried by boxed bodies and by tower's generic layers.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A boxed, streaming HTTP body.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A body holding exactly `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed_unsync()
}

/// A body with no bytes at all.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// Boxes any body whose error converts into [`BoxError`].
pub fn boxed<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// `status` with `value` serialised as the body and `content-type: application/json`.
///
/// `serde_json::Value` keeps object keys sorted, which is how Sora emits them too.
pub fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    json_bytes_response(status, serde_json::to_vec(value).expect("a JSON value always serialises"))
}

/// `status` with `json` (already serialised JSON) as the body and `content-type: application/json`.
pub fn json_bytes_response(status: StatusCode, json: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(full(json));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
