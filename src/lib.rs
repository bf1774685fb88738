//! sora-legacy-shim: a reverse proxy that keeps Sora's removed legacy recording API alive on top
//! of the session-based recording API, plus `sora-sim`, the Sora emulator used to test it.

pub mod body;
pub mod server;
