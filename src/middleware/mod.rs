//! The shim's own tower middleware, one layer per file. Generic layers (timeouts, load shedding,
//! CORS, body limits, tracing) come from tower and tower-http; [`crate::server::stack`] puts
//! them all in order.

pub mod legacy_errors;
pub mod metrics;
pub mod panic_reply;
pub mod request_id;
pub mod trace;
pub mod usage;
pub mod webhook_auth;
