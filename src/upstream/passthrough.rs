//! Passthrough: every call the shim does not translate goes to the upstream as it came and comes
//! back as it went. Bodies stream both ways; nothing is buffered, validated or parsed. Only
//! hop-by-hop headers are dropped, and `Host` names the upstream.

use http::{Request, Response, header};
use http_body_util::BodyExt;

use super::Upstream;
use super::headers::strip_hop_by_hop;
use crate::body::{Body, BoxError};
use crate::error::legacy_error_response;
use crate::mappings::ErrorNames;
use crate::routing::ReplyOrigin;

const REQUEST_ID: &str = "x-request-id";

/// Sends one request to the upstream as it came and streams the answer back.
pub async fn forward<B>(upstream: &Upstream, names: &ErrorNames, request: Request<B>) -> Response<Body>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let (mut parts, body) = request.into_parts();
    parts.uri = upstream.uri_for(parts.uri.path_and_query());
    // The request id travels on even when a `Connection` header names it hop-by-hop.
    let request_id = parts.headers.get(REQUEST_ID).cloned();
    strip_hop_by_hop(&mut parts.headers);
    if let Some(request_id) = request_id {
        parts.headers.insert(REQUEST_ID, request_id);
    }
    // The client sets Host from the upstream URI.
    parts.headers.remove(header::HOST);
    let outgoing = Request::from_parts(parts, body.map_err(Into::into).boxed_unsync());
    let response = match upstream.send(outgoing).await {
        Ok(response) => response,
        Err(error) => {
            let mut response = legacy_error_response(&error, names);
            response.extensions_mut().insert(ReplyOrigin::Passthrough);
            return response;
        }
    };
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    parts.extensions.insert(ReplyOrigin::Passthrough);
    Response::from_parts(parts, body.map_err(Into::into).boxed_unsync())
}
