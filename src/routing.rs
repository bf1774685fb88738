//! Decides, per request, who answers: the legacy translator or the upstream (passthrough).
//!
//! `POST /hooks/session`, `POST /hooks/event` and `GET /shim/usage` are the shim's own. A request is translated when it is a
//! `POST` on one of the configured API paths and its `x-sora-target` (header name
//! case-insensitive, value exact) is listed in `mappings/legacy.toml`. Everything else — no
//! header, other versions, other vendors' prefixes, other methods or paths — passes through.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Method, Request, Response};
use tower::Service;
use tower::util::BoxCloneService;

use crate::body::Body;
use crate::mappings::{LegacyOp, LegacyTargets};
use crate::upstream::TARGET_HEADER;

/// Who produced a response; set by the leaf services, read by logging and by the error layer
/// (a failure status without an origin came from a generic guard layer and gets a legacy body).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyOrigin {
    /// The legacy translator answered.
    Translated,
    /// The upstream answered and its response was streamed back.
    Passthrough,
    /// The shim itself answered with an error.
    Shim,
}

impl ReplyOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplyOrigin::Translated => "translated",
            ReplyOrigin::Passthrough => "passthrough",
            ReplyOrigin::Shim => "shim",
        }
    }
}

/// Path of the session webhook endpoint.
pub const SESSION_HOOK_PATH: &str = "/hooks/session";
/// Path of the event webhook endpoint.
pub const EVENT_HOOK_PATH: &str = "/hooks/event";
/// Path of the migration usage report.
pub const USAGE_PATH: &str = "/shim/usage";

/// Who answers a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Translated,
    SessionHook,
    EventHook,
    Usage,
    Health,
    Ready,
    Metrics,
    /// One of the shim's own paths with a method it does not serve.
    MethodNotAllowed,
    /// Under the shim's own prefixes, but no such endpoint.
    NotFound,
    Passthrough,
}

impl Endpoint {
    const COUNT: usize = 10;

    fn index(self) -> usize {
        self as usize
    }
}

/// The route chosen for a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Translate(LegacyOp),
    Own(Endpoint),
    Passthrough,
}

/// Classifies requests by path, method and target.
#[derive(Clone, Debug)]
pub struct RouteTable {
    api_paths: Arc<[String]>,
    legacy: Arc<LegacyTargets>,
}

impl RouteTable {
    pub fn new(api_paths: &[String], legacy: Arc<LegacyTargets>) -> Self {
        Self { api_paths: api_paths.into(), legacy }
    }

    pub fn route<B>(&self, request: &Request<B>) -> Route {
        let path = request.uri().path();
        if let Some(own) = own_route(request.method(), path) {
            return own;
        }
        if request.method() != Method::POST || !self.api_paths.iter().any(|api| api == path) {
            return Route::Passthrough;
        }
        request
            .headers()
            .get(TARGET_HEADER)
            .and_then(|value| value.to_str().ok())
            .and_then(|target| self.legacy.lookup(target.trim()))
            .map_or(Route::Passthrough, Route::Translate)
    }
}

/// The shim's own paths: `/health`, `/ready`, `/metrics` and everything under `/hooks/` and
/// `/shim/`. They never reach the upstream: a wrong method is 405, an unknown path 404.
fn own_route(method: &Method, path: &str) -> Option<Route> {
    let (endpoint, wanted) = match path {
        SESSION_HOOK_PATH => (Endpoint::SessionHook, Method::POST),
        EVENT_HOOK_PATH => (Endpoint::EventHook, Method::POST),
        USAGE_PATH => (Endpoint::Usage, Method::GET),
        "/health" => (Endpoint::Health, Method::GET),
        "/ready" => (Endpoint::Ready, Method::GET),
        "/metrics" => (Endpoint::Metrics, Method::GET),
        _ if path.starts_with("/hooks/") || path.starts_with("/shim/") => return Some(Route::Own(Endpoint::NotFound)),
        _ => return None,
    };
    let allowed = *method == wanted || (wanted == Method::GET && *method == Method::HEAD);
    Some(Route::Own(if allowed { endpoint } else { Endpoint::MethodNotAllowed }))
}

/// One endpoint's service.
pub type Branch<B> = BoxCloneService<Request<B>, Response<Body>, Infallible>;

/// The innermost service of the stack: sends each request to its endpoint's service.
/// Translated requests carry their [`LegacyOp`] in their extensions.
pub struct Router<B> {
    table: RouteTable,
    branches: [Branch<B>; Endpoint::COUNT],
}

impl<B> Clone for Router<B> {
    fn clone(&self) -> Self {
        Self { table: self.table.clone(), branches: self.branches.clone() }
    }
}

impl<B> Router<B> {
    /// `branches` in [`Endpoint`] order: translated, session hook, event hook, usage, health,
    /// ready, metrics, method not allowed, not found, passthrough.
    pub fn new(table: RouteTable, branches: [Branch<B>; Endpoint::COUNT]) -> Self {
        Self { table, branches }
    }
}

impl<B: 'static> Service<Request<B>> for Router<B> {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = <Branch<B> as Service<Request<B>>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Every branch is always ready; polling all keeps the tower contract whichever is called.
        for branch in &mut self.branches {
            if branch.poll_ready(cx).is_pending() {
                return Poll::Pending;
            }
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let endpoint = match self.table.route(&request) {
            Route::Translate(op) => {
                request.extensions_mut().insert(op);
                Endpoint::Translated
            }
            Route::Own(endpoint) => endpoint,
            Route::Passthrough => Endpoint::Passthrough,
        };
        self.branches[endpoint.index()].call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mappings::Mappings;

    fn table() -> RouteTable {
        RouteTable::new(&["/".to_owned(), "/api".to_owned()], Arc::new(Mappings::built_in().legacy))
    }

    fn request(method: Method, path: &str, target: Option<(&str, &str)>) -> Request<()> {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some((name, value)) = target {
            builder = builder.header(name, value);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn legacy_targets_on_api_paths_are_translated() {
        let table = table();
        let start = Some(("x-sora-target", "Sora_20161101.StartRecording"));
        assert_eq!(table.route(&request(Method::POST, "/", start)), Route::Translate(LegacyOp::StartRecording));
        assert_eq!(table.route(&request(Method::POST, "/api", start)), Route::Translate(LegacyOp::StartRecording));
        let upper = Some(("X-Sora-Target", "Sora_20161101.ListArchiving"));
        assert_eq!(table.route(&request(Method::POST, "/", upper)), Route::Translate(LegacyOp::ListArchiving));
    }

    #[test]
    fn the_shims_own_endpoints() {
        let table = table();
        assert_eq!(table.route(&request(Method::POST, "/hooks/session", None)), Route::Own(Endpoint::SessionHook));
        assert_eq!(table.route(&request(Method::POST, "/hooks/event", None)), Route::Own(Endpoint::EventHook));
        assert_eq!(table.route(&request(Method::GET, "/shim/usage", None)), Route::Own(Endpoint::Usage));
        assert_eq!(table.route(&request(Method::GET, "/health", None)), Route::Own(Endpoint::Health));
        assert_eq!(table.route(&request(Method::GET, "/ready", None)), Route::Own(Endpoint::Ready));
        assert_eq!(table.route(&request(Method::GET, "/metrics", None)), Route::Own(Endpoint::Metrics));
        assert_eq!(table.route(&request(Method::HEAD, "/metrics", None)), Route::Own(Endpoint::Metrics));
        assert_eq!(table.route(&request(Method::GET, "/hooks/session", None)), Route::Own(Endpoint::MethodNotAllowed));
        assert_eq!(table.route(&request(Method::POST, "/health", None)), Route::Own(Endpoint::MethodNotAllowed));
        assert_eq!(table.route(&request(Method::GET, "/shim/usage/x", None)), Route::Own(Endpoint::NotFound));
        assert_eq!(table.route(&request(Method::PUT, "/hooks/other", None)), Route::Own(Endpoint::NotFound));
        assert_eq!(table.route(&request(Method::GET, "/healthz", None)), Route::Passthrough);
    }

    #[test]
    fn everything_else_passes_through() {
        let table = table();
        let cases = [
            request(Method::POST, "/", None),
            request(Method::POST, "/", Some(("x-sora-target", ""))),
            request(Method::POST, "/", Some(("x-sora-target", "Sora_20231220.StartRecording"))),
            request(Method::POST, "/", Some(("x-sora-target", "ImageFlux_20200316.StartRecording"))),
            request(Method::POST, "/", Some(("x-sora-target", "sora_20161101.startrecording"))),
            request(Method::GET, "/", Some(("x-sora-target", "Sora_20161101.StartRecording"))),
            request(Method::POST, "/other", Some(("x-sora-target", "Sora_20161101.StartRecording"))),
        ];
        for case in cases {
            assert_eq!(table.route(&case), Route::Passthrough, "{case:?}");
        }
    }
}
