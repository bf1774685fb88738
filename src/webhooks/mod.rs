//! Webhook endpoints that Sora calls: the session webhook (`/hooks/session`), which switches
//! recording on for channels with an active order, and the forwarding of each hook to the
//! operator's own endpoint.

pub mod event;
pub mod forward;
pub mod session;
