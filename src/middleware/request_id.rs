//! `MakeUlidRequestId`: request ids for tower-http's `SetRequestIdLayer` — a fresh ULID unless the
//! caller sent its own `x-request-id`, which the layer keeps.

use http::{HeaderValue, Request};
use tower_http::request_id::{MakeRequestId, RequestId};

/// Generates ULID request ids.
#[derive(Clone, Copy, Debug, Default)]
pub struct MakeUlidRequestId;

impl MakeRequestId for MakeUlidRequestId {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&ulid::Ulid::generate().to_string()).ok().map(RequestId::new)
    }
}
