//! Passthrough: every call the shim does not translate goes to the upstream as it came and comes
//! back as it went. Bodies stream both ways; nothing is buffered, validated or parsed. Only
//! hop-by-hop headers are dropped, and `Host` names the upstream.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use http::{Request, Response, header};
use http_body_util::BodyExt;
use tower::Service;

use super::Upstream;
use super::headers::strip_hop_by_hop;
use crate::body::{Body, BoxError};
use crate::error::legacy_error_response;
use crate::mappings::ErrorNames;
use crate::routing::ReplyOrigin;

/// The passthrough leaf service.
#[derive(Clone)]
pub struct Passthrough {
    upstream: Upstream,
    names: Arc<ErrorNames>,
}

impl Passthrough {
    pub fn new(upstream: Upstream, names: Arc<ErrorNames>) -> Self {
        Self { upstream, names }
    }
}

impl<B> Service<Request<B>> for Passthrough
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let upstream = self.upstream.clone();
        let names = Arc::clone(&self.names);
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            parts.uri = upstream.uri_for(parts.uri.path_and_query());
            strip_hop_by_hop(&mut parts.headers);
            // The client sets Host from the upstream URI.
            parts.headers.remove(header::HOST);
            let outgoing = Request::from_parts(parts, body.map_err(Into::into).boxed_unsync());
            let response = match upstream.send(outgoing).await {
                Ok(response) => response,
                Err(error) => {
                    let mut response = legacy_error_response(&error, &names);
                    response.extensions_mut().insert(ReplyOrigin::Passthrough);
                    return Ok(response);
                }
            };
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            parts.extensions.insert(ReplyOrigin::Passthrough);
            Ok(Response::from_parts(parts, body.map_err(Into::into).boxed_unsync()))
        })
    }
}
