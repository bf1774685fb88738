//! Who still speaks legacy: every translated call counted by target and by client (remote
//! address and `User-Agent`), with first-seen and last-seen times. Served as JSON on
//! `GET /shim/usage` so a team can see which clients still need migrating, and when one stopped.
//! Passthrough calls are never counted.
//!
//! A migration takes weeks and the shim restarts in between, so the table is kept in the store:
//! calls are counted in memory and added to the store every `usage.flush_interval_ms` and at
//! shutdown ([`Usage::flush`]), which also reads back what other replicas sharing the store
//! counted. A crash loses at most one interval's counts. The table is bounded: past
//! [`MAX_CLIENTS`] distinct clients, new ones are folded into one `"<other>"` row per target.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::Mutex;

use http::{Response, StatusCode};
use serde_json::{Value, json};

use crate::app::{App, now_secs};
use crate::body::{Body, json_response};
use crate::routing::ReplyOrigin;
use crate::store::{OTHER_CLIENTS, Store, StoreError, UsageRow};

/// Most distinct (target, address, user agent) rows kept.
pub const MAX_CLIENTS: usize = 10_000;

/// One client as the report shows it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientKey {
    pub target: String,
    pub remote_addr: String,
    pub user_agent: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ClientUsage {
    pub count: u64,
    pub first_seen: i64,
    pub last_seen: i64,
}

impl ClientUsage {
    fn absorb(&mut self, other: &ClientUsage) {
        self.count += other.count;
        self.first_seen = self.first_seen.min(other.first_seen);
        self.last_seen = self.last_seen.max(other.last_seen);
    }
}

type Rows = HashMap<ClientKey, ClientUsage>;

/// The usage table, shared by the counting layer, the report, the metrics and the flusher.
#[derive(Debug)]
pub struct Usage {
    started_at: i64,
    table: Mutex<Table>,
    /// One flush at a time (the periodic one and the one at shutdown may meet).
    flushing: tokio::sync::Mutex<()>,
}

/// The table in three parts, so the report is whole while a flush is under way.
#[derive(Debug, Default)]
struct Table {
    /// As the store had it at the last flush.
    stored: Rows,
    /// Being added to the store now.
    in_flight: Rows,
    /// Counted since the last flush began.
    pending: Rows,
    /// Named (not `<other>`) keys of `stored`, and of `in_flight` and `pending` not in `stored`,
    /// so the bound is checked in O(1).
    stored_named: usize,
    unstored: usize,
}

impl Table {
    fn knows(&self, key: &ClientKey) -> bool {
        self.stored.contains_key(key) || self.in_flight.contains_key(key) || self.pending.contains_key(key)
    }

    /// Distinct named clients over the three parts (the `<other>` rows take no place).
    fn distinct(&self) -> usize {
        self.stored_named + self.unstored
    }

    /// Recounts [`Table::unstored`] after `stored` changed (once per flush).
    fn recount(&mut self) {
        let stored = &self.stored;
        let in_flight = &self.in_flight;
        let named = |key: &&ClientKey| key.remote_addr != OTHER_CLIENTS;
        self.stored_named = stored.keys().filter(named).count();
        self.unstored = in_flight.keys().filter(named).filter(|key| !stored.contains_key(*key)).count()
            + self
                .pending
                .keys()
                .filter(named)
                .filter(|key| !stored.contains_key(*key) && !in_flight.contains_key(*key))
                .count();
    }
}

impl Default for Usage {
    fn default() -> Self {
        Self { started_at: now_secs(), table: Mutex::new(Table::default()), flushing: tokio::sync::Mutex::new(()) }
    }
}

fn merge_into(target: &mut Rows, rows: &Rows) {
    for (key, usage) in rows {
        target.entry(key.clone()).and_modify(|known| known.absorb(usage)).or_insert_with(|| usage.clone());
    }
}

impl Usage {
    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts one translated call.
    pub fn record(&self, target: &str, remote: Option<IpAddr>, user_agent: &str, now: i64) {
        let mut key = ClientKey {
            target: target.to_owned(),
            remote_addr: remote.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string()),
            user_agent: user_agent.chars().take(200).collect(),
        };
        let mut table = self.table();
        if !table.knows(&key) {
            if table.distinct() >= MAX_CLIENTS {
                key = ClientKey {
                    target: key.target,
                    remote_addr: OTHER_CLIENTS.into(),
                    user_agent: OTHER_CLIENTS.into(),
                };
            }
            if !table.knows(&key) && key.remote_addr != OTHER_CLIENTS {
                table.unstored += 1;
            }
        }
        let entry = table.pending.entry(key).or_insert(ClientUsage { count: 0, first_seen: now, last_seen: now });
        entry.count += 1;
        entry.last_seen = entry.last_seen.max(now);
    }

    /// Every row, sorted by target, address and user agent.
    pub fn snapshot(&self) -> Vec<(ClientKey, ClientUsage)> {
        let table = self.table();
        let mut merged = table.stored.clone();
        merge_into(&mut merged, &table.in_flight);
        merge_into(&mut merged, &table.pending);
        let mut rows: Vec<_> = merged.into_iter().collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows
    }

    /// Adds what was counted since the last flush to `store`, then reads the whole table back
    /// (with what other replicas added). On failure nothing counted is dropped: it is kept for
    /// the next flush.
    pub async fn flush(&self, store: &dyn Store) -> Result<(), StoreError> {
        let _one_at_a_time = self.flushing.lock().await;
        let batch: Vec<UsageRow> = {
            let mut table = self.table();
            table.in_flight = std::mem::take(&mut table.pending);
            table.in_flight.iter().map(|(key, usage)| row(key, usage)).collect()
        };
        if !batch.is_empty()
            && let Err(error) = store.add_usage(batch, MAX_CLIENTS).await
        {
            let mut table = self.table();
            let unsaved = std::mem::take(&mut table.in_flight);
            merge_into(&mut table.pending, &unsaved);
            return Err(error);
        }
        let read = store.usage().await;
        let mut table = self.table();
        match read {
            Ok(rows) => {
                table.stored = rows.into_iter().map(key_and_usage).collect();
                table.in_flight.clear();
                table.recount();
                Ok(())
            }
            Err(error) => {
                // Saved, but not read back: keep showing it until the next read.
                let saved = std::mem::take(&mut table.in_flight);
                merge_into(&mut table.stored, &saved);
                table.recount();
                Err(error)
            }
        }
    }

    /// The JSON report.
    pub fn report(&self) -> Value {
        let rows = self.snapshot();
        let mut totals: HashMap<&str, u64> = HashMap::new();
        let mut since = self.started_at;
        for (key, usage) in &rows {
            *totals.entry(key.target.as_str()).or_default() += usage.count;
            since = since.min(usage.first_seen);
        }
        let clients: Vec<Value> = rows
            .iter()
            .map(|(key, usage)| {
                json!({
                    "target": key.target,
                    "remote_addr": key.remote_addr,
                    "user_agent": key.user_agent,
                    "count": usage.count,
                    "first_seen": usage.first_seen,
                    "last_seen": usage.last_seen,
                })
            })
            .collect();
        json!({ "since": since, "totals": totals, "clients": clients })
    }
}

fn row(key: &ClientKey, usage: &ClientUsage) -> UsageRow {
    UsageRow {
        target: key.target.clone(),
        remote_addr: key.remote_addr.clone(),
        user_agent: key.user_agent.clone(),
        count: usage.count,
        first_seen: usage.first_seen,
        last_seen: usage.last_seen,
    }
}

fn key_and_usage(row: UsageRow) -> (ClientKey, ClientUsage) {
    (
        ClientKey { target: row.target, remote_addr: row.remote_addr, user_agent: row.user_agent },
        ClientUsage { count: row.count, first_seen: row.first_seen, last_seen: row.last_seen },
    )
}

/// Flushes the running app's usage table to its store every `usage.flush_interval_ms`, for ever.
pub async fn flush_periodically(live: Arc<std::sync::RwLock<Arc<App>>>) {
    loop {
        crate::app::sleep_until_due(&live, tokio::time::Instant::now(), |app| app.config.usage.flush_interval_ms).await;
        let app = crate::app::current(&live);
        if let Err(error) = app.usage.flush(app.store.as_ref()).await {
            tracing::warn!(%error, "usage counts not saved; kept for the next try");
        }
    }
}

/// Answers `GET /shim/usage`.
pub fn answer(usage: &Usage) -> Response<Body> {
    let mut response = json_response(StatusCode::OK, &usage.report());
    response.extensions_mut().insert(ReplyOrigin::Shim);
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn counts_by_target_and_client_with_first_and_last_seen() {
        let usage = Usage::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        usage.record("Sora_20161101.StartRecording", Some(a), "old-client/1", 100);
        usage.record("Sora_20161101.StartRecording", Some(a), "old-client/1", 150);
        usage.record("Sora_20161101.StopRecording", None, "", 160);
        let report = usage.report();
        assert_eq!(report["totals"], json!({"Sora_20161101.StartRecording": 2, "Sora_20161101.StopRecording": 1}));
        assert_eq!(
            report["clients"][0],
            json!({"target": "Sora_20161101.StartRecording", "remote_addr": "10.0.0.1", "user_agent": "old-client/1",
                   "count": 2, "first_seen": 100, "last_seen": 150})
        );
        assert_eq!(report["clients"][1]["remote_addr"], "unknown");
    }

    #[test]
    fn the_table_is_bounded() {
        let usage = Usage::default();
        for i in 0..MAX_CLIENTS + 5 {
            usage.record("T", None, &format!("agent-{i}"), 1);
        }
        let rows = usage.snapshot();
        assert_eq!(rows.len(), MAX_CLIENTS + 1);
        let other = rows.iter().find(|(key, _)| key.remote_addr == "<other>").unwrap();
        assert_eq!(other.1.count, 5);
    }

    fn temp_store(busy: Duration) -> (crate::store::sqlite::SqliteStore, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!("shim-usage-{}", ulid::Ulid::generate())).join("orders.db");
        (crate::store::sqlite::SqliteStore::open(&path, busy).unwrap(), path)
    }

    fn counts(usage: &Usage) -> Vec<(String, String, u64, i64, i64)> {
        usage
            .snapshot()
            .into_iter()
            .map(|(key, usage)| (key.target, key.user_agent, usage.count, usage.first_seen, usage.last_seen))
            .collect()
    }

    #[tokio::test]
    async fn counts_survive_a_restart_and_add_up_across_replicas() {
        let (store, _) = temp_store(Duration::from_secs(5));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let first = Usage::default();
        first.flush(&store).await.unwrap();
        first.record("Start", Some(a), "old/1", 100);
        first.record("Start", Some(a), "old/1", 120);
        first.flush(&store).await.unwrap();
        // A second replica (or the next run) on the same store starts from what was saved.
        let second = Usage::default();
        second.flush(&store).await.unwrap();
        assert_eq!(counts(&second), [("Start".into(), "old/1".into(), 2, 100, 120)]);
        second.record("Start", Some(a), "old/1", 130);
        second.record("Stop", Some(a), "old/1", 131);
        first.record("Start", Some(a), "old/1", 90);
        second.flush(&store).await.unwrap();
        first.flush(&store).await.unwrap();
        let expected = [("Start".into(), "old/1".into(), 4, 90, 130), ("Stop".into(), "old/1".into(), 1, 131, 131)];
        assert_eq!(counts(&first), expected);
        second.flush(&store).await.unwrap();
        assert_eq!(counts(&second), expected);
        // Flushing with nothing new changes nothing.
        first.flush(&store).await.unwrap();
        assert_eq!(counts(&first), expected);
    }

    #[tokio::test]
    async fn a_failed_flush_keeps_the_counts_for_the_next() {
        let (store, path) = temp_store(Duration::from_millis(100));
        let usage = Usage::default();
        usage.record("Start", None, "old/1", 100);
        let blocker = rusqlite::Connection::open(&path).unwrap();
        blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
        assert!(usage.flush(&store).await.is_err());
        usage.record("Start", None, "old/1", 110);
        assert_eq!(counts(&usage), [("Start".into(), "old/1".into(), 2, 100, 110)], "still shown while unsaved");
        blocker.execute_batch("ROLLBACK").unwrap();
        usage.flush(&store).await.unwrap();
        let saved = store.usage().await.unwrap();
        assert_eq!((saved.len(), saved[0].count, saved[0].first_seen, saved[0].last_seen), (1, 2, 100, 110));
        assert_eq!(counts(&usage), [("Start".into(), "old/1".into(), 2, 100, 110)]);
    }

    #[tokio::test]
    async fn the_stored_table_is_bounded_too() {
        let (store, _) = temp_store(Duration::from_secs(5));
        let rows = |range: std::ops::Range<usize>| {
            range
                .map(|i| UsageRow {
                    target: "T".into(),
                    remote_addr: "10.0.0.1".into(),
                    user_agent: format!("agent-{i}"),
                    count: 1,
                    first_seen: 1,
                    last_seen: 1,
                })
                .collect::<Vec<_>>()
        };
        store.add_usage(rows(0..3), 3).await.unwrap();
        store.add_usage(rows(2..6), 3).await.unwrap();
        let saved = store.usage().await.unwrap();
        let agents: Vec<(&str, u64)> = saved.iter().map(|row| (row.user_agent.as_str(), row.count)).collect();
        assert_eq!(agents, [("agent-0", 1), ("agent-1", 1), ("agent-2", 2), (OTHER_CLIENTS, 3)]);
        // With room for one more (the `<other>` row takes none), the client seen first gets it,
        // whatever order the batch came in.
        let mut late = rows(10..12);
        late[0].first_seen = 5;
        late[1].first_seen = 4;
        store.add_usage(late, 4).await.unwrap();
        let saved = store.usage().await.unwrap();
        let agents: Vec<(&str, u64)> = saved.iter().map(|row| (row.user_agent.as_str(), row.count)).collect();
        assert_eq!(agents, [("agent-0", 1), ("agent-1", 1), ("agent-11", 1), ("agent-2", 2), (OTHER_CLIENTS, 4)]);
    }
}
