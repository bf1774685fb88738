//! `PanicReply`: what tower-http's `CatchPanicLayer` answers when a handler panics — the legacy
//! `500 {"error_type": "INTERNAL-ERROR"}` through the one error function, never a dropped connection.

use std::any::Any;
use std::sync::Arc;

use http::Response;
use tower_http::catch_panic::ResponseForPanic;

use crate::body::Body;
use crate::error::{ShimError, legacy_error_response};
use crate::mappings::ErrorNames;

/// Builds the legacy answer to a panic.
#[derive(Clone)]
pub struct PanicReply {
    names: Arc<ErrorNames>,
}

impl PanicReply {
    pub fn new(names: Arc<ErrorNames>) -> Self {
        Self { names }
    }
}

impl ResponseForPanic for PanicReply {
    type ResponseBody = Body;

    fn response_for_panic(&mut self, panic: Box<dyn Any + Send + 'static>) -> Response<Body> {
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("non-string panic payload");
        tracing::error!(panic = message, "handler panicked");
        legacy_error_response(&ShimError::Internal(format!("panic: {message}")), &self.names)
    }
}
