//! sora-legacy-shim: a reverse proxy that keeps Sora's removed legacy recording API alive on top
//! of the session-based recording API, plus `sora-sim`, the Sora emulator used to test it.

pub mod app;
pub mod body;
pub mod cli;
pub mod config;
pub mod error;
pub mod legacy;
pub mod mappings;
pub mod metrics;
pub mod middleware;
pub mod ops;
pub mod probe;
pub mod reconciler;
pub mod routing;
pub mod server;
pub mod sim;
pub mod store;
pub mod upstream;
pub mod usage;
pub mod webhooks;
