//! Who still speaks legacy: every translated call counted by target and by client (remote
//! address and `User-Agent`), with first-seen and last-seen times. Served as JSON on
//! `GET /shim/usage` so a team can see which clients still need migrating, and when one stopped.
//! Passthrough calls are never counted. The table is bounded: past [`MAX_CLIENTS`] distinct
//! clients, new ones are folded into one `"<other>"` row.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use http::{Response, StatusCode};
use serde_json::{Value, json};

use crate::app::now_secs;
use crate::body::{Body, json_response};
use crate::routing::ReplyOrigin;

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

/// The usage table, shared by the counting layer, the report and the metrics.
#[derive(Debug)]
pub struct Usage {
    started_at: i64,
    clients: Mutex<HashMap<ClientKey, ClientUsage>>,
}

impl Default for Usage {
    fn default() -> Self {
        Self { started_at: now_secs(), clients: Mutex::new(HashMap::new()) }
    }
}

impl Usage {
    /// Counts one translated call.
    pub fn record(&self, target: &str, remote: Option<IpAddr>, user_agent: &str, now: i64) {
        let mut key = ClientKey {
            target: target.to_owned(),
            remote_addr: remote.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string()),
            user_agent: user_agent.chars().take(200).collect(),
        };
        let mut clients = self.clients.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !clients.contains_key(&key) && clients.len() >= MAX_CLIENTS {
            key = ClientKey { target: key.target, remote_addr: "<other>".into(), user_agent: "<other>".into() };
        }
        let entry = clients.entry(key).or_insert(ClientUsage { count: 0, first_seen: now, last_seen: now });
        entry.count += 1;
        entry.last_seen = now;
    }

    /// Every row, sorted by target, address and user agent.
    pub fn snapshot(&self) -> Vec<(ClientKey, ClientUsage)> {
        let clients = self.clients.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut rows: Vec<_> = clients.iter().map(|(key, usage)| (key.clone(), usage.clone())).collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows
    }

    /// The JSON report.
    pub fn report(&self) -> Value {
        let rows = self.snapshot();
        let mut totals: HashMap<&str, u64> = HashMap::new();
        for (key, usage) in &rows {
            *totals.entry(key.target.as_str()).or_default() += usage.count;
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
        json!({ "since": self.started_at, "totals": totals, "clients": clients })
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
}
