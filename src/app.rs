//! What every request handler shares: configuration, mappings, the order store and the upstream.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::Config;
use crate::mappings::Mappings;
use crate::store::Store;
use crate::upstream::Upstream;

/// Shared, read-only application state (the store and client handle their own concurrency).
pub struct App {
    pub config: Config,
    pub mappings: Arc<Mappings>,
    pub store: Arc<dyn Store>,
    pub upstream: Upstream,
}

/// Unix time in whole seconds, the unit of every legacy timestamp.
pub fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs() as i64)
}
