//! `Reloadable`: the service hyper serves, whose inner stack can be replaced while running
//! (SIGHUP). Each request is handled by the stack in force when it arrived; requests already in
//! flight finish on the stack they started on.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http::{Request, Response};
use hyper::body::Incoming;
use tower::util::Oneshot;
use tower::{Service, ServiceExt};

use super::stack::ShimService;
use crate::body::Body;

/// A replaceable [`ShimService`].
#[derive(Clone)]
pub struct Reloadable {
    current: Arc<Mutex<ShimService>>,
}

impl Reloadable {
    pub fn new(service: ShimService) -> Self {
        Self { current: Arc::new(Mutex::new(service)) }
    }

    /// Puts `service` in force for every request from now on.
    pub fn replace(&self, service: ShimService) {
        *self.current.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = service;
    }
}

impl Service<Request<Incoming>> for Reloadable {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Oneshot<ShimService, Request<Incoming>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness is checked on the stack that takes the request (`oneshot`).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        let service = self.current.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        service.oneshot(request)
    }
}
