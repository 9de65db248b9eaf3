//! Prometheus metrics. The names in the spec are the contract; the rest serve on-call
//! (`docs/operations.md` lists them all with the alerts built on them).
//!
//! Conventions: every metric has help text, counters end in `_total`, durations are in
//! seconds. Label values stay bounded: `campaign` only takes operator-created ids, `kind`
//! the campaign's kinds, `reason`/`role`/`route`/`status` fixed sets. A campaign's series
//! are kept for [`CAMPAIGN_SERIES_GRACE`] after its tally left this node (it ended, or its
//! last socket here closed), then removed, so ended campaigns do not accumulate.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// How long a campaign's series outlive its tally on this node. Five minutes is longer
/// than a few scrape intervals and than the `[5m]` windows of the shipped alerts and
/// dashboard, so the final values (viewers 0, the last interaction totals) are scraped and
/// `increase()` over the end of a campaign stays right; after that the series disappear.
pub const CAMPAIGN_SERIES_GRACE: Duration = Duration::from_secs(300);

/// Every metric of a node, registered in its own registry (tests run several nodes in one
/// process).
pub struct Metrics {
    pub registry: Registry,
    pub connections: IntGaugeVec,
    pub connections_opened: IntCounterVec,
    pub connections_closed: IntCounterVec,
    pub campaign_viewers: IntGaugeVec,
    pub interactions: IntCounterVec,
    pub rejected: IntCounterVec,
    pub store_flush_seconds: Histogram,
    pub flush_batch_counts: Histogram,
    pub store_errors: IntCounter,
    pub store_pending: IntGauge,
    pub broadcast_seconds: Histogram,
    pub broadcast_lag_seconds: Histogram,
    pub presence_renewals: IntCounter,
    pub presence_failures: IntCounter,
    pub store_reconnects: IntCounter,
    pub store_pending_limit: IntGauge,
    pub active_campaigns: IntGauge,
    pub max_connections: IntGauge,
    pub store_up: IntGauge,
    pub http_requests: HistogramVec,
    /// Webhook attempts by result (`delivered`, `failed`, `dropped`; see docs/webhooks.md).
    pub webhook_deliveries: IntCounterVec,
    pub webhook_pending: IntGauge,
    /// True after a failed store call, until one succeeds (for `store_reconnects`).
    store_failing: AtomicBool,
    /// Campaigns whose tally left this node: their kinds and when their series go.
    retiring: Mutex<HashMap<String, (Vec<String>, Instant)>>,
}

/// Registration helpers: every metric is a name, a help text and maybe labels or buckets.
/// unwrap (in all of them): names and options are static and unique in this file, so a
/// failure is a programming error the first test run catches.
fn register<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: T) -> T {
    r.register(Box::new(m.clone())).unwrap();
    m
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    register(r, IntCounter::new(name, help).unwrap())
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(r, IntCounterVec::new(Opts::new(name, help), labels).unwrap())
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    register(r, IntGauge::new(name, help).unwrap())
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(r, IntGaugeVec::new(Opts::new(name, help), labels).unwrap())
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    register(
        r,
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)).unwrap(),
    )
}

fn histogram_vec(r: &Registry, name: &str, help: &str, buckets: Vec<f64>, labels: &[&str]) -> HistogramVec {
    register(
        r,
        HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels).unwrap(),
    )
}

/// Buckets for store round trips and tick work: 0.5 ms to 2.5 s.
const STORE_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new();
        let build_info = gauge_vec(
            &r,
            "livetally_build_info",
            "Always 1; the version label names the running build.",
            &["version"],
        );
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        #[cfg(target_os = "linux")]
        {
            let pc = prometheus::process_collector::ProcessCollector::for_self();
            let _ = r.register(Box::new(pc));
        }
        let webhook_deliveries = counter_vec(
            &r,
            "livetally_webhook_deliveries_total",
            "Webhook POSTs by result: delivered (2xx), failed (non-2xx, timeout or error: retried), dropped (events given up after the retry period).",
            &["result"],
        );
        for result in ["delivered", "failed", "dropped"] {
            webhook_deliveries.with_label_values(&[result]);
        }
        let (connections, connections_opened, connections_closed, campaign_viewers, interactions, rejected) =
            socket_metrics(&r);
        let (
            store_flush_seconds,
            flush_batch_counts,
            store_errors,
            store_pending,
            store_pending_limit,
            store_reconnects,
            store_up,
        ) = store_metrics(&r);
        let (broadcast_seconds, broadcast_lag_seconds, presence_renewals, presence_failures, active_campaigns) =
            tick_metrics(&r);
        let webhook_pending = gauge(
            &r,
            "livetally_webhook_pending",
            "Webhook events queued in the store and not yet delivered or dropped, over every campaign.",
        );
        let max_connections = gauge(
            &r,
            "livetally_max_connections",
            "Socket limit of this node (--max-connections).",
        );
        let http_requests = histogram_vec(
            &r,
            "livetally_http_request_seconds",
            "HTTP API latency by route and status class.",
            vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0],
            &["route", "status"],
        );
        Self {
            webhook_deliveries,
            webhook_pending,
            connections,
            connections_opened,
            connections_closed,
            campaign_viewers,
            interactions,
            rejected,
            store_flush_seconds,
            flush_batch_counts,
            store_errors,
            store_pending,
            broadcast_seconds,
            broadcast_lag_seconds,
            presence_renewals,
            presence_failures,
            store_reconnects,
            store_pending_limit,
            active_campaigns,
            max_connections,
            store_up,
            http_requests,
            registry: r,
            store_failing: AtomicBool::new(false),
            retiring: Mutex::new(HashMap::new()),
        }
    }

    pub fn rejected(&self, reason: &str) {
        self.rejected.with_label_values(&[reason]).inc();
    }

    pub fn closed(&self, reason: &str) {
        self.connections_closed.with_label_values(&[reason]).inc();
    }

    /// Records the outcome of a store call: `livetally_store_up`, and one
    /// `livetally_store_reconnects_total` when a call succeeds after failed ones.
    pub fn store_call(&self, ok: bool) {
        self.store_up.set(i64::from(ok));
        if ok {
            if self.store_failing.swap(false, Ordering::Relaxed) {
                self.store_reconnects.inc();
            }
        } else {
            self.store_failing.store(true, Ordering::Relaxed);
        }
    }

    /// Records the outcome of one flush batch: the presence lease counters when it carried
    /// this node's presence, and the store's health (see [`Metrics::store_call`]). A batch
    /// that is retried counts once per attempt.
    pub fn batch_sent(&self, carried_presence: bool, ok: bool) {
        if carried_presence {
            if ok {
                self.presence_renewals.inc();
            } else {
                self.presence_failures.inc();
            }
        }
        self.store_call(ok);
    }

    /// Sets this node's viewers of a live campaign, and keeps its series if they were due
    /// to go (the campaign came back to this node within the grace period).
    pub fn set_campaign_viewers(&self, campaign: &str, viewers: u64) {
        {
            let mut retiring = lock(&self.retiring);
            if !retiring.is_empty() {
                retiring.remove(campaign);
            }
        }
        self.campaign_viewers.with_label_values(&[campaign]).set(viewers as i64);
    }

    /// A campaign's tally left this node (it ended, or its last socket here closed): its
    /// series stay for [`CAMPAIGN_SERIES_GRACE`], with viewers at 0, then disappear.
    pub fn forget_campaign(&self, campaign: &str, kinds: &[String]) {
        self.forget_campaign_at(campaign, kinds, Instant::now());
    }

    fn forget_campaign_at(&self, campaign: &str, kinds: &[String], now: Instant) {
        if let Ok(g) = self.campaign_viewers.get_metric_with_label_values(&[campaign]) {
            g.set(0);
        }
        lock(&self.retiring).insert(campaign.to_owned(), (kinds.to_vec(), now + CAMPAIGN_SERIES_GRACE));
        self.sweep(now);
    }

    /// Removes the series of campaigns whose grace period is over.
    fn sweep(&self, now: Instant) {
        let mut retiring = lock(&self.retiring);
        retiring.retain(|campaign, (kinds, until)| {
            if *until > now {
                return true;
            }
            let _ = self.campaign_viewers.remove_label_values(&[campaign]);
            for k in kinds.iter() {
                let _ = self.interactions.remove_label_values(&[campaign, k]);
            }
            false
        });
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        self.sweep(Instant::now());
        let mut buf = Vec::new();
        // unwrap: encoding into a Vec cannot fail.
        TextEncoder::new().encode(&self.registry.gather(), &mut buf).unwrap();
        String::from_utf8(buf).unwrap_or_default()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Middleware feeding `livetally_http_request_seconds`. The route label is the matched
/// pattern (`/api/v1/campaigns/{id}`), never the raw path, so it stays bounded; unknown
/// paths are `unmatched`. A WebSocket is timed until its upgrade response.
pub async fn time_http(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let res = next.call(req).await?;
    if let Some(metrics) = res.request().app_data::<actix_web::web::Data<Metrics>>() {
        let route = res.request().match_pattern();
        let class = match res.status().as_u16() {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        metrics
            .http_requests
            .with_label_values(&[route.as_deref().unwrap_or("unmatched"), class])
            .observe(started.elapsed().as_secs_f64());
    }
    Ok(res)
}

/// The socket layer: sockets open, opened and closed, viewers per campaign, interactions counted, refusals.
#[allow(clippy::type_complexity)]
fn socket_metrics(
    r: &Registry,
) -> (
    IntGaugeVec,
    IntCounterVec,
    IntCounterVec,
    IntGaugeVec,
    IntCounterVec,
    IntCounterVec,
) {
    let connections = gauge_vec(r, "livetally_connections", "Open WebSockets by role.", &["role"]);
    let connections_opened = counter_vec(
        r,
        "livetally_connections_opened_total",
        "WebSockets accepted, by role.",
        &["role"],
    );
    let connections_closed = counter_vec(
        r,
        "livetally_connections_closed_total",
        "WebSockets closed, by reason.",
        &["reason"],
    );
    let campaign_viewers = gauge_vec(
        r,
        "livetally_campaign_viewers",
        "Viewer sockets of a campaign on this node (this node's share).",
        &["campaign"],
    );
    let interactions = counter_vec(
        r,
        "livetally_interactions_total",
        "Interactions written to the store by this node, by campaign and kind.",
        &["campaign", "kind"],
    );
    let rejected = counter_vec(
        r,
        "livetally_rejected_total",
        "Refused connections and messages, by reason (bad input, limits, auth).",
        &["reason"],
    );
    (
        connections,
        connections_opened,
        connections_closed,
        campaign_viewers,
        interactions,
        rejected,
    )
}

/// The flusher and the store: flush times and sizes, errors, the pending buffer and its limit, recoveries, the store being up.
#[allow(clippy::type_complexity)]
fn store_metrics(
    r: &Registry,
) -> (
    Histogram,
    Histogram,
    IntCounter,
    IntGauge,
    IntGauge,
    IntCounter,
    IntGauge,
) {
    let store_flush_seconds = histogram(
        r,
        "livetally_store_flush_seconds",
        "Time to write one campaign's batch to the store.",
        STORE_BUCKETS.to_vec(),
    );
    let flush_batch_counts = histogram(
        r,
        "livetally_flush_batch_interactions",
        "Interactions carried by one successful campaign batch.",
        // unwrap: static, valid arguments.
        prometheus::exponential_buckets(1.0, 4.0, 10).unwrap(),
    );
    let store_errors = counter(
        r,
        "livetally_store_errors_total",
        "Store calls that failed (flushes, reads, claims).",
    );
    let store_pending = gauge(
        r,
        "livetally_store_pending",
        "Interactions counted locally but not yet written to the store.",
    );
    let store_pending_limit = gauge(
        r,
        "livetally_store_pending_limit",
        "Most interactions this node buffers before refusing new ones (--max-pending).",
    );
    let store_reconnects = counter(
        r,
        "livetally_store_reconnects_total",
        "Store recoveries: a successful store call after failed ones (reconnect after an \
             outage, restart or failover).",
    );
    let store_up = gauge(
        r,
        "livetally_store_up",
        "1 when the last store call succeeded, 0 otherwise.",
    );
    (
        store_flush_seconds,
        flush_batch_counts,
        store_errors,
        store_pending,
        store_pending_limit,
        store_reconnects,
        store_up,
    )
}

/// The broadcaster and presence: tick time and lag, presence lease renewals and failures, campaigns held.
#[allow(clippy::type_complexity)]
fn tick_metrics(r: &Registry) -> (Histogram, Histogram, IntCounter, IntCounter, IntGauge) {
    let broadcast_seconds = histogram(
        r,
        "livetally_broadcast_seconds",
        "Time to read stats and publish one tick's frames for all campaigns.",
        STORE_BUCKETS[..11].to_vec(),
    );
    let broadcast_lag_seconds = histogram(
        r,
        "livetally_broadcast_lag_seconds",
        "Time from a tick's scheduled start until its stats frame was published to the \
             campaign's sockets (store read, series record and serialisation included), per \
             campaign and published frame.",
        vec![
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ],
    );
    let presence_renewals = counter(
        r,
        "livetally_presence_lease_renewals_total",
        "Flush batches carrying this node's presence lease that the store applied.",
    );
    let presence_failures = counter(
        r,
        "livetally_presence_lease_failures_total",
        "Flush batches carrying this node's presence lease that failed (lease not renewed).",
    );
    let active_campaigns = gauge(
        r,
        "livetally_active_campaigns",
        "Campaigns with sockets, share visits or unflushed counts on this node.",
    );
    (
        broadcast_seconds,
        broadcast_lag_seconds,
        presence_renewals,
        presence_failures,
        active_campaigns,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has(m: &Metrics, needle: &str) -> bool {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&m.registry.gather(), &mut buf).unwrap();
        String::from_utf8(buf).unwrap().contains(needle)
    }

    #[test]
    fn ended_campaign_series_go_after_the_grace_period() {
        let m = Metrics::new();
        let kinds = vec!["like".to_owned()];
        m.set_campaign_viewers("c1", 3);
        m.interactions.with_label_values(&["c1", "like"]).inc_by(5);
        let t0 = Instant::now();
        m.forget_campaign_at("c1", &kinds, t0);
        assert!(has(&m, r#"livetally_campaign_viewers{campaign="c1"} 0"#));
        assert!(has(&m, r#"livetally_interactions_total{campaign="c1",kind="like"} 5"#));
        m.sweep(t0 + CAMPAIGN_SERIES_GRACE - Duration::from_secs(1));
        assert!(has(&m, r#"campaign="c1""#), "kept during the grace period");
        m.sweep(t0 + CAMPAIGN_SERIES_GRACE);
        assert!(!has(&m, r#"campaign="c1""#), "gone after it");
    }

    #[test]
    fn a_campaign_back_within_the_grace_period_keeps_its_series() {
        let m = Metrics::new();
        let t0 = Instant::now();
        m.set_campaign_viewers("c1", 1);
        m.forget_campaign_at("c1", &["like".to_owned()], t0);
        m.set_campaign_viewers("c1", 2);
        m.sweep(t0 + CAMPAIGN_SERIES_GRACE * 2);
        assert!(has(&m, r#"livetally_campaign_viewers{campaign="c1"} 2"#));
    }

    #[test]
    fn a_success_after_failures_counts_one_reconnect() {
        let m = Metrics::new();
        m.store_call(true);
        assert_eq!(m.store_reconnects.get(), 0);
        m.batch_sent(true, false);
        m.store_call(false);
        assert_eq!(m.store_up.get(), 0);
        m.batch_sent(true, true);
        m.store_call(true);
        assert_eq!(m.store_reconnects.get(), 1);
        assert_eq!(m.store_up.get(), 1);
        assert_eq!(m.presence_failures.get(), 1);
        assert_eq!(m.presence_renewals.get(), 1);
    }
}
