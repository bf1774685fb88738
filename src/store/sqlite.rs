//! The embedded [`Store`]: one SQLite file in WAL mode with `synchronous = FULL`, so an order is
//! on disk before the client hears about it.
//!
//! The single-live-order-per-channel rule is enforced twice: inside a `BEGIN IMMEDIATE`
//! transaction (which serialises writers, also across processes sharing the file) and by a
//! partial unique index as the last line of defence. Blocking SQLite calls run on tokio's
//! blocking pool. Reads use their own connection, so a read (the session webhook's order
//! lookup) never waits behind a write's fsync: WAL lets readers and a writer run at once.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use super::{
    Leg, MAPPING_RETENTION_SECS, OTHER_CLIENTS, OpenLeg, Order, SessionMapping, StoppedOrder, Store, StoreError,
    StoreStats, UsageRow,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS orders (
    recording_id   TEXT PRIMARY KEY,
    channel_id     TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    expire_time    INTEGER NOT NULL,
    expired_at     INTEGER NOT NULL,
    split_duration INTEGER,
    split_only     INTEGER NOT NULL,
    metadata       TEXT,
    stopped_at     INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS orders_one_unstopped_per_channel
    ON orders(channel_id) WHERE stopped_at IS NULL;
CREATE INDEX IF NOT EXISTS orders_by_expiry
    ON orders(expired_at) WHERE stopped_at IS NULL AND expire_time > 0;
CREATE INDEX IF NOT EXISTS orders_stopped
    ON orders(stopped_at) WHERE stopped_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS legs (
    recording_id          TEXT NOT NULL REFERENCES orders(recording_id) ON DELETE CASCADE,
    session_id            TEXT NOT NULL,
    upstream_recording_id TEXT,
    started_at            INTEGER NOT NULL,
    ended_at              INTEGER,
    PRIMARY KEY (recording_id, session_id)
);
CREATE INDEX IF NOT EXISTS legs_by_session ON legs(session_id);
CREATE TABLE IF NOT EXISTS vetoed_sessions (
    session_id TEXT PRIMARY KEY,
    vetoed_at  INTEGER NOT NULL
);
DROP TABLE IF EXISTS session_mappings;
CREATE TABLE IF NOT EXISTS session_links (
    session_id            TEXT NOT NULL,
    recording_id          TEXT NOT NULL,
    channel_id            TEXT NOT NULL,
    metadata              TEXT,
    upstream_recording_id TEXT,
    recorded_at           INTEGER NOT NULL,
    PRIMARY KEY (session_id, recording_id)
);
CREATE TABLE IF NOT EXISTS usage (
    target      TEXT NOT NULL,
    remote_addr TEXT NOT NULL,
    user_agent  TEXT NOT NULL,
    count       INTEGER NOT NULL,
    first_seen  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    PRIMARY KEY (target, remote_addr, user_agent)
);
";

/// Columns of `orders` in the order [`order_from_row`] reads them.
const ORDER_COLUMNS: &str =
    "recording_id, channel_id, created_at, expire_time, expired_at, split_duration, split_only, metadata";

/// [`ORDER_COLUMNS`] with the metadata left out (read as NULL), for long lists.
const LISTED_COLUMNS: &str =
    "recording_id, channel_id, created_at, expire_time, expired_at, split_duration, split_only, NULL";

/// Inserts one order; its parameters come from [`order_params`] in the same column order.
const INSERT_ORDER: &str = "INSERT INTO orders
    (recording_id, channel_id, created_at, expire_time, expired_at, split_duration, split_only, metadata)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

/// Reading connections per store.
const READERS: usize = 3;

/// SQL condition for an order that is neither stopped nor expired at `?now`.
const ACTIVE: &str = "stopped_at IS NULL AND (expire_time = 0 OR expired_at > :now)";

/// SQLite-backed order store.
#[derive(Clone)]
pub struct SqliteStore {
    writer: Arc<Mutex<Connection>>,
    /// A few reading connections, so one slow read (a metrics count, a long list) does not
    /// hold up the quick ones (the session webhook's lookup).
    readers: Arc<[Arc<Mutex<Connection>>]>,
    next_reader: Arc<std::sync::atomic::AtomicUsize>,
    /// Longest wait for a connection in this process, and SQLite's wait for another process's lock.
    busy_timeout: Duration,
    path: PathBuf,
}

type Mutex<T> = tokio::sync::Mutex<T>;

impl SqliteStore {
    /// Opens (creating when needed) the database at `path`; writers wait up to `busy_timeout`
    /// for a lock held by another process.
    pub fn open(path: &Path, busy_timeout: Duration) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|error| {
                StoreError::Unavailable(format!("{}: cannot create directory: {error}", parent.display()))
            })?;
        }
        let open = || -> Result<Connection, StoreError> {
            let connection = Connection::open(path).map_err(|error| unavailable(path, error))?;
            connection.busy_timeout(busy_timeout).map_err(|error| unavailable(path, error))?;
            connection
                .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
                .map_err(|error| unavailable(path, error))?;
            Ok(connection)
        };
        let writer = open()?;
        writer.execute_batch(SCHEMA).map_err(|error| unavailable(path, error))?;
        let readers =
            (0..READERS).map(|_| open().map(|reader| Arc::new(Mutex::new(reader)))).collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            writer: Arc::new(Mutex::new(writer)),
            readers: readers.into(),
            next_reader: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            busy_timeout,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes many orders in one transaction (bulk loads for benchmarks and migrations); the
    /// one-active-order-per-channel rule still holds through the unique index.
    pub async fn insert_many(&self, orders: Vec<Order>) -> Result<(), StoreError> {
        self.with_connection(move |connection| {
            let transaction = connection.transaction().map_err(sql_error)?;
            {
                let mut insert = transaction.prepare_cached(INSERT_ORDER).map_err(sql_error)?;
                for order in &orders {
                    insert.execute(order_params(order)).map_err(sql_error)?;
                }
            }
            transaction.commit().map_err(sql_error)
        })
        .await
    }

    /// Runs `work` on the blocking pool with the writing connection locked.
    async fn with_connection<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.on(Arc::clone(&self.writer), work).await
    }

    /// Runs read-only `work` on the blocking pool with a reading connection: a free one if any,
    /// else the next in turn.
    async fn reading<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let free = self.readers.iter().find(|reader| reader.try_lock().is_ok());
        let reader = match free {
            Some(reader) => reader,
            None => {
                let turn = self.next_reader.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                &self.readers[turn % self.readers.len()]
            }
        };
        self.on(Arc::clone(reader), work).await
    }

    /// Waits at most `busy_timeout` for the connection (calls queued behind a lock held by
    /// another process fail fast instead of piling up), then runs `work` on the blocking pool.
    async fn on<T, F>(&self, connection: Arc<Mutex<Connection>>, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let mut guard = tokio::time::timeout(self.busy_timeout, connection.lock_owned()).await.map_err(|_| {
            StoreError::Unavailable(format!("{}: busy for more than {:?}", self.path.display(), self.busy_timeout))
        })?;
        tokio::task::spawn_blocking(move || work(&mut guard))
            .await
            .map_err(|error| StoreError::Unavailable(format!("store task failed: {error}")))?
    }
}

/// Every row `sql` selects with `params`, each read by `read`.
fn all_rows<T, P: rusqlite::Params>(
    connection: &Connection,
    sql: &str,
    params: P,
    read: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    let mut statement = connection.prepare_cached(sql).map_err(sql_error)?;
    let rows = statement.query_map(params, read).map_err(sql_error)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(sql_error)
}

fn unavailable(path: &Path, error: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("{}: {error}", path.display()))
}

fn sql_error(error: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("sqlite: {error}"))
}

fn leg_from_row(row: &Row<'_>) -> rusqlite::Result<Leg> {
    Ok(Leg {
        recording_id: row.get(0)?,
        session_id: row.get(1)?,
        upstream_recording_id: row.get(2)?,
        started_at: row.get(3)?,
        ended_at: row.get(4)?,
    })
}

fn order_from_row(row: &Row<'_>) -> rusqlite::Result<Order> {
    let metadata: Option<String> = row.get(7)?;
    Ok(Order {
        recording_id: row.get(0)?,
        channel_id: row.get(1)?,
        created_at: row.get(2)?,
        expire_time: row.get(3)?,
        expired_at: row.get(4)?,
        split_duration: row.get(5)?,
        split_only: row.get(6)?,
        // The column only ever holds text this module serialised.
        metadata: metadata.and_then(|text| serde_json::from_str(&text).ok()),
    })
}

/// Drops the channel's orders that expired by `now`: expired means gone for every target.
fn drop_expired(connection: &Connection, channel_id: &str, now: i64) -> rusqlite::Result<usize> {
    connection.execute(
        "DELETE FROM orders WHERE channel_id = ?1 AND stopped_at IS NULL AND expire_time > 0 AND expired_at <= ?2",
        params![channel_id, now],
    )
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_order(&self, order: &Order) -> Result<(), StoreError> {
        let order = order.clone();
        self.with_connection(move |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql_error)?;
            drop_expired(&transaction, &order.channel_id, order.created_at).map_err(sql_error)?;
            let inserted = transaction.execute(INSERT_ORDER, order_params(&order));
            match inserted {
                Ok(_) => transaction.commit().map_err(sql_error),
                Err(rusqlite::Error::SqliteFailure(failure, _))
                    if failure.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    Err(StoreError::ChannelBusy(order.channel_id))
                }
                Err(error) => Err(sql_error(error)),
            }
        })
        .await
    }

    async fn withdraw_order(&self, recording_id: &str, now: i64) -> Result<(), StoreError> {
        let recording_id = recording_id.to_owned();
        self.with_connection(move |connection| {
            connection
                .execute(
                    "UPDATE orders SET stopped_at = ?2 WHERE recording_id = ?1 AND stopped_at IS NULL",
                    params![recording_id, now],
                )
                .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    async fn bind_upstream_recording(
        &self,
        recording_id: &str,
        session_id: &str,
        upstream_recording_id: &str,
    ) -> Result<(), StoreError> {
        let (recording_id, session_id, upstream) =
            (recording_id.to_owned(), session_id.to_owned(), upstream_recording_id.to_owned());
        self.with_connection(move |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql_error)?;
            for table in ["legs", "session_links"] {
                transaction
                    .execute(
                        &format!(
                            "UPDATE {table} SET upstream_recording_id = ?3
                             WHERE recording_id = ?1 AND session_id = ?2 AND upstream_recording_id IS NULL"
                        ),
                        params![recording_id, session_id, upstream],
                    )
                    .map_err(sql_error)?;
            }
            transaction.commit().map_err(sql_error)
        })
        .await
    }

    async fn active_order(&self, channel_id: &str, now: i64) -> Result<Option<Order>, StoreError> {
        let channel_id = channel_id.to_owned();
        self.reading(move |connection| {
            connection
                .query_row(
                    &format!("SELECT {ORDER_COLUMNS} FROM orders WHERE channel_id = :channel AND {ACTIVE}"),
                    rusqlite::named_params! {":channel": channel_id, ":now": now},
                    order_from_row,
                )
                .optional()
                .map_err(sql_error)
        })
        .await
    }

    async fn stop_order(&self, channel_id: &str, now: i64) -> Result<Option<Order>, StoreError> {
        let channel_id = channel_id.to_owned();
        self.with_connection(move |connection| {
            let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql_error)?;
            drop_expired(&transaction, &channel_id, now).map_err(sql_error)?;
            let stopped = transaction
                .query_row(
                    &format!("UPDATE orders SET stopped_at = :now WHERE channel_id = :channel AND {ACTIVE} RETURNING {ORDER_COLUMNS}"),
                    rusqlite::named_params! {":channel": channel_id, ":now": now},
                    order_from_row,
                )
                .optional()
                .map_err(sql_error)?;
            // The stopped order stays (marked) until the upstream is known to record nothing
            // for it: `finish_stopped_order` deletes it then, by Stop itself or by the reconciler.
            transaction.commit().map_err(sql_error)?;
            Ok(stopped)
        })
        .await
    }

    async fn active_orders(&self, now: i64) -> Result<Vec<Order>, StoreError> {
        self.reading(move |connection| {
            let sql = format!("SELECT {LISTED_COLUMNS} FROM orders WHERE {ACTIVE} ORDER BY channel_id");
            all_rows(connection, &sql, rusqlite::named_params! {":now": now}, order_from_row)
        })
        .await
    }

    async fn record_leg(&self, leg: &Leg) -> Result<(), StoreError> {
        let leg = leg.clone();
        self.with_connection(move |connection| {
            let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql_error)?;
            // A stopped order still gets the leg (so the reconciler knows which session to stop,
            // even when its recording begins late), but the caller hears that it is gone.
            let standing: Option<bool> = transaction
                .query_row("SELECT stopped_at IS NULL FROM orders WHERE recording_id = ?1", params![leg.recording_id], |row| {
                    row.get(0)
                })
                .optional()
                .map_err(sql_error)?;
            let Some(standing) = standing else {
                return Err(StoreError::OrderGone(leg.recording_id.clone()));
            };
            transaction
                .execute(
                    "INSERT INTO legs (recording_id, session_id, upstream_recording_id, started_at, ended_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (recording_id, session_id) DO UPDATE SET
                        upstream_recording_id = COALESCE(excluded.upstream_recording_id, legs.upstream_recording_id),
                        ended_at = excluded.ended_at",
                    params![leg.recording_id, leg.session_id, leg.upstream_recording_id, leg.started_at, leg.ended_at],
                )
                .map_err(|error| match error {
                    rusqlite::Error::SqliteFailure(failure, _) if failure.code == rusqlite::ErrorCode::ConstraintViolation => {
                        StoreError::OrderGone(leg.recording_id.clone())
                    }
                    other => sql_error(other),
                })?;
            // Remember which legacy recording this session is for, beyond the order's life.
            transaction
                .execute(
                    "INSERT INTO session_links (session_id, recording_id, channel_id, metadata, upstream_recording_id, recorded_at)
                     SELECT ?1, recording_id, channel_id, metadata, ?4, ?2 FROM orders WHERE recording_id = ?3
                     ON CONFLICT (session_id, recording_id) DO UPDATE SET
                        upstream_recording_id = COALESCE(excluded.upstream_recording_id, session_links.upstream_recording_id),
                        recorded_at = excluded.recorded_at",
                    params![leg.session_id, leg.started_at, leg.recording_id, leg.upstream_recording_id],
                )
                .map_err(sql_error)?;
            transaction.commit().map_err(sql_error)?;
            if standing { Ok(()) } else { Err(StoreError::OrderGone(leg.recording_id.clone())) }
        })
        .await
    }

    async fn legs(&self, recording_id: &str) -> Result<Vec<Leg>, StoreError> {
        let recording_id = recording_id.to_owned();
        self.reading(move |connection| {
            all_rows(
                connection,
                "SELECT recording_id, session_id, upstream_recording_id, started_at, ended_at
                 FROM legs WHERE recording_id = ?1 ORDER BY started_at, session_id",
                params![recording_id],
                leg_from_row,
            )
        })
        .await
    }

    async fn end_session_legs(&self, session_id: &str, now: i64) -> Result<Vec<Leg>, StoreError> {
        let session_id = session_id.to_owned();
        self.with_connection(move |connection| {
            let mut statement = connection
                .prepare_cached(
                    "UPDATE legs SET ended_at = ?2 WHERE session_id = ?1 AND ended_at IS NULL
                     RETURNING recording_id, session_id, upstream_recording_id, started_at, ended_at",
                )
                .map_err(sql_error)?;
            let ended = statement
                .query_map(params![session_id, now], leg_from_row)
                .map_err(sql_error)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sql_error)?;
            // Late events keep mapping for the retention period counted from the session's end.
            connection
                .execute("UPDATE session_links SET recorded_at = ?2 WHERE session_id = ?1", params![session_id, now])
                .map_err(sql_error)?;
            Ok(ended)
        })
        .await
    }

    async fn open_legs(&self) -> Result<Vec<OpenLeg>, StoreError> {
        self.reading(move |connection| {
            all_rows(
                connection,
                "SELECT legs.recording_id, legs.session_id, legs.upstream_recording_id, legs.started_at, legs.ended_at,
                        orders.channel_id, orders.stopped_at IS NOT NULL
                 FROM legs JOIN orders ON orders.recording_id = legs.recording_id
                 WHERE legs.ended_at IS NULL ORDER BY legs.started_at",
                [],
                |row| Ok(OpenLeg { leg: leg_from_row(row)?, channel_id: row.get(5)?, order_stopped: row.get(6)? }),
            )
        })
        .await
    }

    async fn finish_stopped_order(&self, recording_id: &str, now: i64) -> Result<(), StoreError> {
        let recording_id = recording_id.to_owned();
        self.with_connection(move |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql_error)?;
            transaction
                .execute(
                    "UPDATE legs SET ended_at = ?2 WHERE recording_id = ?1 AND ended_at IS NULL",
                    params![recording_id, now],
                )
                .map_err(sql_error)?;
            transaction
                .execute("DELETE FROM orders WHERE recording_id = ?1 AND stopped_at IS NOT NULL", params![recording_id])
                .map_err(sql_error)?;
            transaction.commit().map_err(sql_error)
        })
        .await
    }

    async fn session_mapping(
        &self,
        session_id: &str,
        upstream_recording_id: Option<&str>,
    ) -> Result<Option<SessionMapping>, StoreError> {
        let session_id = session_id.to_owned();
        let upstream_recording_id = upstream_recording_id.map(str::to_owned);
        self.reading(move |connection| {
            // The link for exactly this upstream recording, else the one whose upstream id is
            // unknown (switched on by the session webhook); a session recorded for another order
            // with a known, different id does not match.
            connection
                .query_row(
                    "SELECT session_id, recording_id, channel_id, metadata FROM session_links
                     WHERE session_id = ?1 AND (upstream_recording_id = ?2 OR upstream_recording_id IS NULL)
                     ORDER BY upstream_recording_id IS NULL, recorded_at DESC LIMIT 1",
                    params![session_id, upstream_recording_id],
                    |row| {
                        let metadata: Option<String> = row.get(3)?;
                        Ok(SessionMapping {
                            session_id: row.get(0)?,
                            recording_id: row.get(1)?,
                            channel_id: row.get(2)?,
                            metadata: metadata.and_then(|text| serde_json::from_str(&text).ok()),
                        })
                    },
                )
                .optional()
                .map_err(sql_error)
        })
        .await
    }

    async fn stopped_orders(&self) -> Result<Vec<StoppedOrder>, StoreError> {
        self.reading(move |connection| {
            all_rows(
                connection,
                "SELECT recording_id, channel_id, created_at, stopped_at FROM orders
                 WHERE stopped_at IS NOT NULL ORDER BY stopped_at",
                [],
                |row| {
                    Ok(StoppedOrder {
                        recording_id: row.get(0)?,
                        channel_id: row.get(1)?,
                        created_at: row.get(2)?,
                        stopped_at: row.get(3)?,
                    })
                },
            )
        })
        .await
    }

    async fn veto_session(&self, session_id: &str, now: i64) -> Result<(), StoreError> {
        let session_id = session_id.to_owned();
        self.with_connection(move |connection| {
            connection
                .execute(
                    "INSERT INTO vetoed_sessions (session_id, vetoed_at) VALUES (?1, ?2) ON CONFLICT (session_id) DO NOTHING",
                    params![session_id, now],
                )
                .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    async fn is_vetoed(&self, session_id: &str) -> Result<bool, StoreError> {
        let session_id = session_id.to_owned();
        self.reading(move |connection| {
            connection
                .query_row("SELECT 1 FROM vetoed_sessions WHERE session_id = ?1", params![session_id], |_| Ok(()))
                .optional()
                .map(|found| found.is_some())
                .map_err(sql_error)
        })
        .await
    }

    async fn stats(&self, now: i64) -> Result<StoreStats, StoreError> {
        self.reading(move |connection| {
            let active_orders = connection
                .query_row(
                    &format!("SELECT count(*) FROM orders WHERE {ACTIVE}"),
                    rusqlite::named_params! {":now": now},
                    |row| row.get(0),
                )
                .map_err(sql_error)?;
            let open_legs = connection
                .query_row("SELECT count(*) FROM legs WHERE ended_at IS NULL", [], |row| row.get(0))
                .map_err(sql_error)?;
            Ok(StoreStats { active_orders, open_legs })
        })
        .await
    }

    async fn check_writable(&self) -> Result<(), StoreError> {
        self.with_connection(|connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql_error)?;
            // Taking the lock is not enough: a read-only file grants it too. A real row write
            // (rolled back, so nothing stays) fails there the way an order's write would.
            transaction
                .execute("INSERT OR REPLACE INTO vetoed_sessions (session_id, vetoed_at) VALUES ('', 0)", [])
                .map_err(sql_error)?;
            transaction.rollback().map_err(sql_error)
        })
        .await
    }

    async fn sweep(&self, now: i64) -> Result<usize, StoreError> {
        self.with_connection(move |connection| {
            connection
                .execute("DELETE FROM session_links WHERE recorded_at < ?1", params![now - MAPPING_RETENTION_SECS])
                .map_err(sql_error)?;
            connection
                .execute("DELETE FROM vetoed_sessions WHERE vetoed_at < ?1", params![now - MAPPING_RETENTION_SECS])
                .map_err(sql_error)?;
            let expired = connection
                .execute(
                    "DELETE FROM orders WHERE stopped_at IS NULL AND expire_time > 0 AND expired_at <= ?1",
                    params![now],
                )
                .map_err(sql_error)?;
            Ok(expired)
        })
        .await
    }

    async fn add_usage(&self, rows: Vec<UsageRow>, max_clients: usize) -> Result<(), StoreError> {
        self.with_connection(move |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql_error)?;
            {
                let mut known = transaction
                    .prepare_cached("SELECT 1 FROM usage WHERE target = ?1 AND remote_addr = ?2 AND user_agent = ?3")
                    .map_err(sql_error)?;
                // The bound counts named clients; the `<other>` rows do not take their places.
                let mut size = transaction
                    .prepare_cached("SELECT COUNT(*) FROM usage WHERE remote_addr != ?1")
                    .map_err(sql_error)?;
                let mut add = transaction
                    .prepare_cached(
                        "INSERT INTO usage (target, remote_addr, user_agent, count, first_seen, last_seen)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                         ON CONFLICT (target, remote_addr, user_agent) DO UPDATE SET
                             count = count + excluded.count,
                             first_seen = MIN(first_seen, excluded.first_seen),
                             last_seen = MAX(last_seen, excluded.last_seen)",
                    )
                    .map_err(sql_error)?;
                // First seen, first placed: past the bound, the later clients are the ones folded.
                let mut rows = rows;
                rows.sort_by(|a, b| {
                    (a.first_seen, &a.target, &a.remote_addr, &a.user_agent).cmp(&(
                        b.first_seen,
                        &b.target,
                        &b.remote_addr,
                        &b.user_agent,
                    ))
                });
                for row in rows {
                    let is_known =
                        known.exists(params![row.target, row.remote_addr, row.user_agent]).map_err(sql_error)?;
                    let full = !is_known
                        && size.query_row([OTHER_CLIENTS], |found| found.get::<_, i64>(0)).map_err(sql_error)? as usize
                            >= max_clients;
                    let (address, agent) = if full {
                        (OTHER_CLIENTS, OTHER_CLIENTS)
                    } else {
                        (row.remote_addr.as_str(), row.user_agent.as_str())
                    };
                    add.execute(params![row.target, address, agent, row.count as i64, row.first_seen, row.last_seen])
                        .map_err(sql_error)?;
                }
            }
            transaction.commit().map_err(sql_error)
        })
        .await
    }

    async fn usage(&self) -> Result<Vec<UsageRow>, StoreError> {
        self.reading(|connection| {
            all_rows(
                connection,
                "SELECT target, remote_addr, user_agent, count, first_seen, last_seen FROM usage
                 ORDER BY target, remote_addr, user_agent",
                [],
                |row| {
                    Ok(UsageRow {
                        target: row.get(0)?,
                        remote_addr: row.get(1)?,
                        user_agent: row.get(2)?,
                        count: row.get::<_, i64>(3)? as u64,
                        first_seen: row.get(4)?,
                        last_seen: row.get(5)?,
                    })
                },
            )
        })
        .await
    }
}

/// The parameters of [`INSERT_ORDER`] for `order`, metadata stored as its JSON text.
fn order_params(order: &Order) -> impl rusqlite::Params + '_ {
    (
        &order.recording_id,
        &order.channel_id,
        order.created_at,
        order.expire_time,
        order.expired_at,
        order.split_duration,
        order.split_only,
        order.metadata.as_ref().map(serde_json::Value::to_string),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn temp_store() -> (SqliteStore, PathBuf) {
        let dir = std::env::temp_dir().join(format!("shim-store-{}", ulid::Ulid::generate()));
        let path = dir.join("orders.db");
        (SqliteStore::open(&path, Duration::from_secs(5)).unwrap(), path)
    }

    fn order(channel: &str, created_at: i64, expire_time: i64) -> Order {
        Order {
            recording_id: ulid::Ulid::generate().to_string(),
            channel_id: channel.to_owned(),
            created_at,
            expire_time,
            expired_at: created_at + expire_time,
            split_duration: None,
            split_only: false,
            metadata: Some(json!({"room": "r1"})),
        }
    }

    #[tokio::test]
    async fn one_active_order_per_channel() {
        let (store, _) = temp_store();
        let first = order("sora", 1_000, 60);
        store.create_order(&first).await.unwrap();
        let second = order("sora", 1_010, 60);
        assert!(
            matches!(store.create_order(&second).await, Err(StoreError::ChannelBusy(channel)) if channel == "sora")
        );
        assert_eq!(store.active_order("sora", 1_010).await.unwrap(), Some(first));
    }

    #[tokio::test]
    async fn concurrent_starts_on_one_channel_have_exactly_one_winner() {
        let (store, _) = temp_store();
        let attempts: Vec<_> = (0..16)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.create_order(&order("race", 1_000, 0)).await })
            })
            .collect();
        let mut won = 0;
        for attempt in attempts {
            match attempt.await.unwrap() {
                Ok(()) => won += 1,
                Err(StoreError::ChannelBusy(_)) => {}
                Err(other) => panic!("unexpected {other}"),
            }
        }
        assert_eq!(won, 1);
    }

    #[tokio::test]
    async fn expired_orders_are_gone_and_free_the_channel() {
        let (store, _) = temp_store();
        store.create_order(&order("sora", 1_000, 2)).await.unwrap();
        assert!(store.active_order("sora", 1_001).await.unwrap().is_some());
        assert!(store.active_order("sora", 1_002).await.unwrap().is_none());
        assert!(store.active_orders(1_002).await.unwrap().is_empty());
        assert!(store.stop_order("sora", 1_002).await.unwrap().is_none());
        store.create_order(&order("sora", 1_003, 2)).await.unwrap();
    }

    #[tokio::test]
    async fn zero_expire_time_never_expires() {
        let (store, _) = temp_store();
        store.create_order(&order("forever", 1_000, 0)).await.unwrap();
        assert!(store.active_order("forever", i64::from(i32::MAX)).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn stop_frees_the_channel_and_keeps_orders_with_open_legs() {
        let (store, path) = temp_store();
        let with_leg = order("a", 1_000, 0);
        store.create_order(&with_leg).await.unwrap();
        store
            .record_leg(&Leg {
                recording_id: with_leg.recording_id.clone(),
                session_id: "S1".into(),
                upstream_recording_id: Some("U1".into()),
                started_at: 1_001,
                ended_at: None,
            })
            .await
            .unwrap();
        store.create_order(&order("b", 1_000, 0)).await.unwrap();
        assert_eq!(store.stop_order("a", 1_005).await.unwrap().unwrap().recording_id, with_leg.recording_id);
        assert!(store.stop_order("b", 1_005).await.unwrap().is_some());
        assert!(store.stop_order("b", 1_006).await.unwrap().is_none());
        assert!(store.active_orders(1_006).await.unwrap().is_empty());
        let rows: i64 =
            Connection::open(&path).unwrap().query_row("SELECT count(*) FROM orders", [], |r| r.get(0)).unwrap();
        assert_eq!(rows, 2, "stopped orders stay until their upstream recording is known to be stopped");
        assert_eq!(store.stopped_orders().await.unwrap().len(), 2);
        store.create_order(&order("a", 1_007, 0)).await.unwrap();
    }

    #[tokio::test]
    async fn orders_survive_reopening_and_keep_metadata_types() {
        let (store, path) = temp_store();
        let mut text_metadata = order("b", 1_000, 0);
        text_metadata.metadata = Some(json!("r1"));
        text_metadata.split_duration = Some(3600);
        text_metadata.split_only = true;
        store.create_order(&text_metadata).await.unwrap();
        let mut no_metadata = order("a", 1_000, 60);
        no_metadata.metadata = None;
        store.create_order(&no_metadata).await.unwrap();
        drop(store);
        let reopened = SqliteStore::open(&path, Duration::from_secs(5)).unwrap();
        assert_eq!(reopened.active_order("a", 1_001).await.unwrap(), Some(no_metadata.clone()));
        assert_eq!(reopened.active_order("b", 1_001).await.unwrap(), Some(text_metadata.clone()));
        // The list leaves the metadata out and keeps everything else.
        let listed = reopened.active_orders(1_001).await.unwrap();
        text_metadata.metadata = None;
        assert_eq!(listed, vec![no_metadata, text_metadata]);
    }

    fn leg(order: &Order, session: &str) -> Leg {
        Leg {
            recording_id: order.recording_id.clone(),
            session_id: session.into(),
            upstream_recording_id: None,
            started_at: 1_001,
            ended_at: None,
        }
    }

    #[tokio::test]
    async fn open_legs_follow_sessions_and_stopped_orders() {
        let (store, path) = temp_store();
        let kept = order("kept", 1_000, 0);
        let stopped = order("stopped", 1_000, 0);
        store.create_order(&kept).await.unwrap();
        store.create_order(&stopped).await.unwrap();
        store.record_leg(&leg(&kept, "S-kept")).await.unwrap();
        store.record_leg(&leg(&stopped, "S-stopped")).await.unwrap();
        store.stop_order("stopped", 1_002).await.unwrap();
        let open = store.open_legs().await.unwrap();
        assert_eq!(open.len(), 2);
        let flags: Vec<(&str, bool)> = open.iter().map(|o| (o.channel_id.as_str(), o.order_stopped)).collect();
        assert!(flags.contains(&("kept", false)) && flags.contains(&("stopped", true)), "{flags:?}");

        // The kept order's session ends: its leg closes, the order stays.
        let ended = store.end_session_legs("S-kept", 1_003).await.unwrap();
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].ended_at, Some(1_003));
        assert!(store.active_order("kept", 1_003).await.unwrap().is_some());

        // The stopped order's recording was stopped upstream: the order goes.
        store.finish_stopped_order(&stopped.recording_id, 1_004).await.unwrap();
        assert!(store.open_legs().await.unwrap().is_empty());
        let rows: i64 =
            Connection::open(&path).unwrap().query_row("SELECT count(*) FROM orders", [], |r| r.get(0)).unwrap();
        assert_eq!(rows, 1);
    }

    #[tokio::test]
    async fn sweep_deletes_expired_and_finished_orders_only() {
        let (store, path) = temp_store();
        store.create_order(&order("expired", 1_000, 10)).await.unwrap();
        store.create_order(&order("live", 1_000, 100)).await.unwrap();
        store.create_order(&order("forever", 1_000, 0)).await.unwrap();
        let stopped_with_leg = order("stopped", 1_000, 0);
        store.create_order(&stopped_with_leg).await.unwrap();
        store.record_leg(&leg(&stopped_with_leg, "S")).await.unwrap();
        store.stop_order("stopped", 1_001).await.unwrap();
        assert_eq!(store.sweep(1_050).await.unwrap(), 1);
        let count = || -> i64 {
            Connection::open(&path).unwrap().query_row("SELECT count(*) FROM orders", [], |r| r.get(0)).unwrap()
        };
        assert_eq!(count(), 3, "expired order deleted; live, forever and the stopped one kept");
        store.end_session_legs("S", 1_060).await.unwrap();
        assert_eq!(store.sweep(1_060).await.unwrap(), 0, "a stopped order waits for finish_stopped_order");
        store.finish_stopped_order(&stopped_with_leg.recording_id, 1_061).await.unwrap();
        assert_eq!(count(), 2);
    }

    #[tokio::test]
    async fn a_leg_for_a_stopped_order_is_kept_but_order_gone() {
        let (store, _) = temp_store();
        let gone = order("gone", 1_000, 0);
        store.create_order(&gone).await.unwrap();
        store.stop_order("gone", 1_001).await.unwrap();
        assert!(
            matches!(store.record_leg(&leg(&gone, "S")).await, Err(StoreError::OrderGone(id)) if id == gone.recording_id)
        );
        // The reconciler sees the leg of the stopped order, to stop that session's recording.
        let open = store.open_legs().await.unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!((open[0].leg.session_id.as_str(), open[0].order_stopped), ("S", true));
        // Once the order is finished (deleted), a leg has nothing to attach to.
        store.finish_stopped_order(&gone.recording_id, 1_002).await.unwrap();
        assert!(matches!(store.record_leg(&leg(&gone, "T")).await, Err(StoreError::OrderGone(_))));
        assert!(store.open_legs().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_withdrawn_order_is_stopped_and_keeps_its_channel_free() {
        let (store, _) = temp_store();
        let refused = order("c", 1_000, 0);
        store.create_order(&refused).await.unwrap();
        store.withdraw_order(&refused.recording_id, 1_001).await.unwrap();
        assert_eq!(store.active_order("c", 1_002).await.unwrap(), None);
        let stopped = store.stopped_orders().await.unwrap();
        assert_eq!(stopped.len(), 1);
        assert_eq!((stopped[0].created_at, stopped[0].stopped_at), (1_000, 1_001));
        store.create_order(&order("c", 1_002, 0)).await.unwrap();
        // Withdrawing again (or an order stopped meanwhile) changes nothing.
        store.withdraw_order(&refused.recording_id, 1_003).await.unwrap();
        assert_eq!(store.stopped_orders().await.unwrap()[0].stopped_at, 1_001);
        assert!(store.active_order("c", 1_003).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn binding_names_only_unknown_upstream_ids() {
        let (store, _) = temp_store();
        let webhook = order("c", 1_000, 0);
        store.create_order(&webhook).await.unwrap();
        store.record_leg(&Leg { upstream_recording_id: None, ..leg(&webhook, "S") }).await.unwrap();
        store.bind_upstream_recording(&webhook.recording_id, "S", "U1").await.unwrap();
        store.bind_upstream_recording(&webhook.recording_id, "S", "U2").await.unwrap();
        assert_eq!(store.legs(&webhook.recording_id).await.unwrap()[0].upstream_recording_id.as_deref(), Some("U1"));
        assert!(store.session_mapping("S", Some("U1")).await.unwrap().is_some());
        assert!(store.session_mapping("S", Some("U2")).await.unwrap().is_none(), "a later, native recording");
    }

    #[tokio::test]
    async fn session_mappings_outlive_the_order() {
        let (store, _) = temp_store();
        let mut text = order("mapped", 1_000, 0);
        text.metadata = Some(json!("r1"));
        store.create_order(&text).await.unwrap();
        store.record_leg(&leg(&text, "S1")).await.unwrap();
        store.stop_order("mapped", 1_002).await.unwrap();
        store.finish_stopped_order(&text.recording_id, 1_003).await.unwrap();
        assert!(store.active_orders(1_003).await.unwrap().is_empty());
        let mapping = store.session_mapping("S1", None).await.unwrap().unwrap();
        assert_eq!(
            mapping,
            SessionMapping {
                session_id: "S1".into(),
                recording_id: text.recording_id.clone(),
                channel_id: "mapped".into(),
                metadata: Some(json!("r1"))
            }
        );
        assert_eq!(store.session_mapping("S2", None).await.unwrap(), None);
        store.sweep(1_001 + MAPPING_RETENTION_SECS + 1).await.unwrap();
        assert_eq!(store.session_mapping("S1", None).await.unwrap(), None);
    }

    #[tokio::test]
    async fn stats_and_writability() {
        let (store, path) = temp_store();
        let with_leg = order("a", 1_000, 0);
        store.create_order(&with_leg).await.unwrap();
        store.create_order(&order("b", 1_000, 5)).await.unwrap();
        store.record_leg(&leg(&with_leg, "S")).await.unwrap();
        assert_eq!(store.stats(1_001).await.unwrap(), StoreStats { active_orders: 2, open_legs: 1 });
        assert_eq!(store.stats(1_010).await.unwrap(), StoreStats { active_orders: 1, open_legs: 1 });
        store.check_writable().await.unwrap();
        let locker = Connection::open(&path).unwrap();
        locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
        let short = SqliteStore::open(&path, Duration::from_millis(50)).unwrap();
        assert!(matches!(short.check_writable().await, Err(StoreError::Unavailable(_))));
        drop(locker);
        // A store that grants the write lock but refuses writes (as a read-only file does).
        short.check_writable().await.unwrap();
        short.writer.lock().await.execute_batch("PRAGMA query_only = ON").unwrap();
        let error = short.check_writable().await.unwrap_err();
        assert!(error.to_string().contains("readonly"), "{error}");
        assert!(!short.is_vetoed("").await.unwrap(), "the probe row never stays");
    }

    #[tokio::test]
    async fn events_map_to_the_order_whose_recording_they_are() {
        let (store, _) = temp_store();
        let first = order("same-session", 1_000, 0);
        store.create_order(&first).await.unwrap();
        store.record_leg(&leg(&first, "S")).await.unwrap();
        store.stop_order("same-session", 1_002).await.unwrap();
        store.finish_stopped_order(&first.recording_id, 1_002).await.unwrap();
        let mut second = order("same-session", 1_003, 0);
        second.metadata = Some(json!("second"));
        store.create_order(&second).await.unwrap();
        store.record_leg(&Leg { upstream_recording_id: Some("U2".into()), ..leg(&second, "S") }).await.unwrap();
        let by = |upstream: &'static str| {
            let store = store.clone();
            async move { store.session_mapping("S", Some(upstream)).await.unwrap().unwrap().recording_id }
        };
        assert_eq!(by("U2").await, second.recording_id);
        assert_eq!(
            by("U1").await,
            first.recording_id,
            "the webhook-started recording, id unknown, is the first order's"
        );
    }

    #[tokio::test]
    async fn vetoes_are_remembered_and_swept() {
        let (store, _) = temp_store();
        assert!(!store.is_vetoed("S").await.unwrap());
        store.veto_session("S", 1_000).await.unwrap();
        store.veto_session("S", 1_001).await.unwrap();
        assert!(store.is_vetoed("S").await.unwrap());
        store.sweep(1_001 + MAPPING_RETENTION_SECS).await.unwrap();
        assert!(!store.is_vetoed("S").await.unwrap());
    }

    #[tokio::test]
    async fn legs_upsert() {
        let (store, _) = temp_store();
        let order = order("c", 1_000, 0);
        store.create_order(&order).await.unwrap();
        let mut leg = Leg {
            recording_id: order.recording_id.clone(),
            session_id: "S".into(),
            upstream_recording_id: None,
            started_at: 1_001,
            ended_at: None,
        };
        store.record_leg(&leg).await.unwrap();
        leg.upstream_recording_id = Some("U".into());
        store.record_leg(&leg).await.unwrap();
        assert_eq!(store.legs(&order.recording_id).await.unwrap(), vec![leg]);
    }
}
