//! Durable orders: one per legacy StartRecording, kept until Stop or expiry.
//!
//! The [`Store`] trait is what the rest of the shim sees; [`sqlite::SqliteStore`] is the embedded
//! backend. A shared backend (PostgreSQL) can implement the same trait so several replicas
//! answer from one set of orders. Every method that changes state is one transaction: an order
//! is either fully written or not at all.

pub mod sqlite;

use async_trait::async_trait;
use serde_json::Value;

/// One legacy recording order.
#[derive(Clone, Debug, PartialEq)]
pub struct Order {
    /// The legacy `recording_id` (a ULID).
    pub recording_id: String,
    pub channel_id: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Seconds; 0 means the order never expires.
    pub expire_time: i64,
    /// `created_at + expire_time` (equals `created_at` when `expire_time` is 0).
    pub expired_at: i64,
    pub split_duration: Option<i64>,
    pub split_only: bool,
    /// Any JSON value, exactly as the client sent it; `None` when it sent none.
    pub metadata: Option<Value>,
}

impl Order {
    /// Whether the order still stands at `now` (unix seconds), ignoring Stop.
    pub fn is_live_at(&self, now: i64) -> bool {
        self.expire_time == 0 || now < self.expired_at
    }

    /// Seconds of recording left at `now`, `None` when the order never expires.
    pub fn remaining_seconds(&self, now: i64) -> Option<i64> {
        (self.expire_time > 0).then(|| (self.expired_at - now).max(0))
    }
}

/// One upstream session recorded for an order.
#[derive(Clone, Debug, PartialEq)]
pub struct Leg {
    pub recording_id: String,
    pub session_id: String,
    pub upstream_recording_id: Option<String>,
    pub started_at: i64,
    pub ended_at: Option<i64>,
}

/// Which legacy recording an upstream session recorded for: kept after the order ends (events
/// arrive after Stop) for [`MAPPING_RETENTION_SECS`].
#[derive(Clone, Debug, PartialEq)]
pub struct SessionMapping {
    pub session_id: String,
    /// The legacy `recording_id`.
    pub recording_id: String,
    pub channel_id: String,
    /// The order's metadata exactly as the client sent it.
    pub metadata: Option<Value>,
}

/// How long a session ↔ legacy recording mapping outlives its leg.
pub const MAPPING_RETENTION_SECS: i64 = 7 * 24 * 3600;

/// Sizes for the metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub active_orders: i64,
    pub open_legs: i64,
}

/// A stopped order still waiting for the upstream to be known to record nothing for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoppedOrder {
    pub recording_id: String,
    pub channel_id: String,
    /// When it was created (Unix seconds): a recording begun before cannot be one the shim started for it.
    pub created_at: i64,
    /// When Stop took it (Unix seconds).
    pub stopped_at: i64,
}

/// An open leg with what the reconciler needs to know about its order.
#[derive(Clone, Debug, PartialEq)]
pub struct OpenLeg {
    pub leg: Leg,
    pub channel_id: String,
    /// The order was stopped: the recording the shim started for it must be stopped too.
    pub order_stopped: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The channel already has an active order.
    #[error("channel {0:?} already has an active order")]
    ChannelBusy(String),
    /// The order a leg refers to no longer exists (stopped or expired meanwhile).
    #[error("order {0:?} no longer exists")]
    OrderGone(String),
    /// The backend could not be used (disk full, file locked, connection lost, ...).
    #[error("{0}")]
    Unavailable(String),
}

/// One row of the migration usage table: one client's translated calls to one target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageRow {
    pub target: String,
    pub remote_addr: String,
    pub user_agent: String,
    pub count: u64,
    pub first_seen: i64,
    pub last_seen: i64,
}

/// Address and user agent of the row that collects clients past the table's bound.
pub const OTHER_CLIENTS: &str = "<other>";

/// Where orders live.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Writes `order` durably unless its channel already has an active order at `order.created_at`.
    /// Two concurrent calls for one channel: exactly one succeeds, the other gets `ChannelBusy`.
    async fn create_order(&self, order: &Order) -> Result<(), StoreError>;

    /// Withdraws an order that must not stand (its start was refused upstream): it is marked
    /// stopped at `now` like a stopped order, so it vanishes from every target at once while
    /// anything switched on for it meanwhile (by the session webhook or the reconciler) is still
    /// known, to be stopped. No-op when it is stopped already.
    async fn withdraw_order(&self, recording_id: &str, now: i64) -> Result<(), StoreError>;

    /// The channel's active order at `now`, if any.
    async fn active_order(&self, channel_id: &str, now: i64) -> Result<Option<Order>, StoreError>;

    /// Stops the channel's active order at `now` and returns it; `None` when there is none. The
    /// order stays, marked stopped, until [`Store::finish_stopped_order`].
    async fn stop_order(&self, channel_id: &str, now: i64) -> Result<Option<Order>, StoreError>;

    /// Every active order at `now`, sorted by channel id, **without its metadata** (`None`): the
    /// listing's shape, kept light because the list can be long. [`Store::active_order`] has it.
    async fn active_orders(&self, now: i64) -> Result<Vec<Order>, StoreError>;

    /// Records (or refreshes) that `leg.session_id` records for `leg.recording_id`. `OrderGone`
    /// when the order was stopped meanwhile (the leg is kept then, for the reconciler to stop
    /// that session's recording) or is gone altogether (nothing written).
    async fn record_leg(&self, leg: &Leg) -> Result<(), StoreError>;

    /// Names the upstream recording a leg switched on without knowing its id (the session
    /// webhook's), so events of a later, different recording in that session are not taken for it.
    /// Only legs (and session links) whose upstream id is still unknown change.
    async fn bind_upstream_recording(
        &self,
        recording_id: &str,
        session_id: &str,
        upstream_recording_id: &str,
    ) -> Result<(), StoreError>;

    /// The legs of one order, oldest first.
    async fn legs(&self, recording_id: &str) -> Result<Vec<Leg>, StoreError>;

    /// Ends every open leg of `session_id` (the session is gone) and returns them.
    async fn end_session_legs(&self, session_id: &str, now: i64) -> Result<Vec<Leg>, StoreError>;

    /// Every open leg, with its order's channel and whether the order was stopped.
    async fn open_legs(&self) -> Result<Vec<OpenLeg>, StoreError>;

    /// The recordings of a stopped order have been stopped upstream: end its legs and delete it.
    async fn finish_stopped_order(&self, recording_id: &str, now: i64) -> Result<(), StoreError>;

    /// The legacy recording an upstream recording (`upstream_recording_id`, when the event
    /// names it) of a session was made for, if the shim started it.
    async fn session_mapping(
        &self,
        session_id: &str,
        upstream_recording_id: Option<&str>,
    ) -> Result<Option<SessionMapping>, StoreError>;

    /// Stopped orders still waiting for the upstream to be known to record nothing for them,
    /// oldest stop first.
    async fn stopped_orders(&self) -> Result<Vec<StoppedOrder>, StoreError>;

    /// Remembers that the operator's own session hook decided `recording` for this session, so
    /// the reconciler leaves it alone.
    async fn veto_session(&self, session_id: &str, now: i64) -> Result<(), StoreError>;

    /// Whether the operator's hook decided `recording` for this session.
    async fn is_vetoed(&self, session_id: &str) -> Result<bool, StoreError>;

    /// How many orders are active at `now`, and how many legs are open.
    async fn stats(&self, now: i64) -> Result<StoreStats, StoreError>;

    /// Proves the store takes writes now (takes and releases the write lock).
    async fn check_writable(&self) -> Result<(), StoreError>;

    /// Deletes expired orders (and old session links and vetoes); returns how many orders went.
    async fn sweep(&self, now: i64) -> Result<usize, StoreError>;

    /// Adds `rows` to the usage table in one transaction: counts are summed, first-seen is the
    /// earliest and last-seen the latest. A client new to a table that already holds
    /// `max_clients` rows is added to the [`OTHER_CLIENTS`] row of its target instead.
    async fn add_usage(&self, rows: Vec<UsageRow>, max_clients: usize) -> Result<(), StoreError>;

    /// The whole usage table.
    async fn usage(&self) -> Result<Vec<UsageRow>, StoreError>;
}
