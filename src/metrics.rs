//! Prometheus metrics (prometheus-client), rendered on `GET /metrics`.
//!
//! Names follow Prometheus conventions: a `sora_shim_` prefix, `_total` on counters (added by the
//! library), base units (`_seconds`), and bounded label sets only — never a channel id, client
//! address or user agent as a label (those are in `/shim/usage`).

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels<const N: usize> = [(&'static str, &'static str); N];
type HistogramFamily<const N: usize> = Family<Labels<N>, Histogram, fn() -> Histogram>;

/// Latency buckets from 50 µs to about 13 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 19))
}

/// Every metric the shim exports.
pub struct Metrics {
    registry: Registry,
    /// Requests by surface (api, session_hook, event_hook, usage, ops), route (translated,
    /// passthrough, shim) and outcome (status class).
    pub requests: Family<Labels<3>, Counter>,
    /// Whole-request latency by surface and route, until the response head.
    pub request_duration: HistogramFamily<2>,
    /// Latency of calls to the upstream by call (start_recording, stop_recording, list_sessions,
    /// list_connections, passthrough).
    pub upstream_duration: HistogramFamily<1>,
    /// Failed upstream calls by call and kind (unavailable, timeout, error).
    pub upstream_errors: Family<Labels<2>, Counter>,
    /// Translated legacy calls by target (the targets of `mappings/legacy.toml`).
    pub legacy_calls: Family<[(&'static str, String); 1], Counter>,
    /// Session webhook replies that switched recording on.
    pub webhook_merges: Counter,
    /// Reconciler actions by action (started, stopped, legs_ended, swept).
    pub reconciler_actions: Family<Labels<1>, Counter>,
    /// Event webhooks by outcome (translated, unmapped, other).
    pub events: Family<Labels<1>, Counter>,
    /// Forwards to the operator's own hooks that failed (unreachable, slow or non-2xx), by hook.
    pub webhook_forward_errors: Family<Labels<1>, Counter>,
    /// Active orders, refreshed at each scrape.
    pub active_orders: Gauge,
    /// Open legs (sessions recording for an order), refreshed at each scrape.
    pub open_legs: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("sora_shim");
        let requests = Family::default();
        registry.register("requests", "Requests by surface, route and outcome", requests.clone());
        let request_duration = HistogramFamily::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register(
            "request_duration_seconds",
            "Request latency until the response head",
            request_duration.clone(),
        );
        let upstream_duration = HistogramFamily::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register(
            "upstream_request_duration_seconds",
            "Latency of calls to the upstream",
            upstream_duration.clone(),
        );
        let upstream_errors = Family::default();
        registry.register("upstream_errors", "Failed upstream calls by call and kind", upstream_errors.clone());
        let legacy_calls = Family::default();
        registry.register("legacy_calls", "Translated legacy calls by target", legacy_calls.clone());
        let webhook_merges = Counter::default();
        registry.register(
            "session_webhook_merges",
            "Session webhook replies that switched recording on",
            webhook_merges.clone(),
        );
        let reconciler_actions = Family::default();
        registry.register("reconciler_actions", "Reconciler actions by kind", reconciler_actions.clone());
        let events = Family::default();
        registry.register("event_webhooks", "Event webhooks by outcome", events.clone());
        let webhook_forward_errors = Family::default();
        registry.register(
            "webhook_forward_errors",
            "Failed forwards to the operator's own webhooks",
            webhook_forward_errors.clone(),
        );
        let active_orders = Gauge::default();
        registry.register("active_orders", "Active legacy recording orders", active_orders.clone());
        let open_legs = Gauge::default();
        registry.register("open_legs", "Upstream sessions recording for an order", open_legs.clone());
        Self {
            registry,
            requests,
            request_duration,
            upstream_duration,
            upstream_errors,
            legacy_calls,
            webhook_merges,
            reconciler_actions,
            events,
            webhook_forward_errors,
            active_orders,
            open_legs,
        }
    }
}

impl Metrics {
    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }

    /// Counts a failed upstream call: `kind` is unavailable, timeout or error (a 5xx, or an
    /// answer the mappings cannot place).
    pub fn upstream_error(&self, call: &'static str, kind: &'static str) {
        self.upstream_errors.get_or_create(&[("call", call), ("kind", kind)]).inc();
    }

    /// Counts a reconciler action `count` times.
    pub fn reconciler(&self, action: &'static str, count: usize) {
        if count > 0 {
            self.reconciler_actions.get_or_create(&[("action", action)]).inc_by(count as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions() {
        let metrics = Metrics::default();
        metrics.requests.get_or_create(&[("surface", "api"), ("route", "translated"), ("outcome", "2xx")]).inc();
        metrics.upstream_duration.get_or_create(&[("call", "list_sessions")]).observe(0.002);
        metrics.legacy_calls.get_or_create(&[("target", "Sora_20161101.StartRecording".to_owned())]).inc();
        metrics.reconciler("started", 2);
        metrics.reconciler("stopped", 0);
        let text = metrics.render();
        assert!(
            text.contains("sora_shim_requests_total{surface=\"api\",route=\"translated\",outcome=\"2xx\"} 1"),
            "{text}"
        );
        assert!(text.contains("sora_shim_upstream_request_duration_seconds_count{call=\"list_sessions\"} 1"), "{text}");
        assert!(text.contains("sora_shim_legacy_calls_total{target=\"Sora_20161101.StartRecording\"} 1"), "{text}");
        assert!(text.contains("sora_shim_reconciler_actions_total{action=\"started\"} 2"), "{text}");
        assert!(!text.contains("action=\"stopped\""), "{text}");
        assert!(text.contains("# TYPE sora_shim_active_orders gauge"), "{text}");
    }
}
