//! Prometheus metrics. The names in the spec are the contract; the rest serve on-call.
//! Label values stay bounded: `campaign` only takes operator-created ids, and a campaign's
//! series are removed when its tally leaves this node.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

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
    pub max_connections: IntGauge,
    pub store_up: IntGauge,
    pub http_requests: HistogramVec,
}

fn reg<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: T) -> T {
    // unwrap: names are static and unique in this file; a clash is a programming error
    // caught by the first test run.
    r.register(Box::new(m.clone())).unwrap();
    m
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new();
        // unwrap (all below): metric options are static and valid.
        let connections = reg(
            &r,
            IntGaugeVec::new(
                Opts::new("livetally_connections", "Open WebSockets by role."),
                &["role"],
            )
            .unwrap(),
        );
        let connections_opened = reg(
            &r,
            IntCounterVec::new(
                Opts::new("livetally_connections_opened_total", "WebSockets accepted, by role."),
                &["role"],
            )
            .unwrap(),
        );
        let connections_closed = reg(
            &r,
            IntCounterVec::new(
                Opts::new("livetally_connections_closed_total", "WebSockets closed, by reason."),
                &["reason"],
            )
            .unwrap(),
        );
        let campaign_viewers = reg(
            &r,
            IntGaugeVec::new(
                Opts::new(
                    "livetally_campaign_viewers",
                    "Viewer sockets of a campaign on this node (this node's share).",
                ),
                &["campaign"],
            )
            .unwrap(),
        );
        let interactions = reg(
            &r,
            IntCounterVec::new(
                Opts::new(
                    "livetally_interactions_total",
                    "Interactions written to the store by this node, by campaign and kind.",
                ),
                &["campaign", "kind"],
            )
            .unwrap(),
        );
        let rejected = reg(
            &r,
            IntCounterVec::new(
                Opts::new(
                    "livetally_rejected_total",
                    "Refused connections and messages, by reason (bad input, limits, auth).",
                ),
                &["reason"],
            )
            .unwrap(),
        );
        let store_flush_seconds = reg(
            &r,
            Histogram::with_opts(
                HistogramOpts::new(
                    "livetally_store_flush_seconds",
                    "Time to write one campaign's batch to the store.",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ]),
            )
            .unwrap(),
        );
        let flush_batch_counts = reg(
            &r,
            Histogram::with_opts(
                HistogramOpts::new(
                    "livetally_flush_batch_interactions",
                    "Interactions carried by one successful campaign batch.",
                )
                .buckets(prometheus::exponential_buckets(1.0, 4.0, 10).unwrap()),
            )
            .unwrap(),
        );
        let store_errors = reg(
            &r,
            IntCounter::new(
                "livetally_store_errors_total",
                "Store calls that failed (flushes, reads, claims).",
            )
            .unwrap(),
        );
        let store_pending = reg(
            &r,
            IntGauge::new(
                "livetally_store_pending",
                "Interactions counted locally but not yet written to the store.",
            )
            .unwrap(),
        );
        let broadcast_seconds = reg(
            &r,
            Histogram::with_opts(
                HistogramOpts::new(
                    "livetally_broadcast_seconds",
                    "Time to read stats and publish one tick's frames for all campaigns.",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                ]),
            )
            .unwrap(),
        );
        let max_connections = reg(
            &r,
            IntGauge::new(
                "livetally_max_connections",
                "Socket limit of this node (--max-connections).",
            )
            .unwrap(),
        );
        let store_up = reg(
            &r,
            IntGauge::new(
                "livetally_store_up",
                "1 when the last store call succeeded, 0 otherwise.",
            )
            .unwrap(),
        );
        let http_requests = reg(
            &r,
            HistogramVec::new(
                HistogramOpts::new(
                    "livetally_http_request_seconds",
                    "HTTP API latency by route and status class.",
                )
                .buckets(vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]),
                &["route", "status"],
            )
            .unwrap(),
        );
        #[cfg(target_os = "linux")]
        {
            let pc = prometheus::process_collector::ProcessCollector::for_self();
            let _ = r.register(Box::new(pc));
        }
        Self {
            registry: r,
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
            max_connections,
            store_up,
            http_requests,
        }
    }

    pub fn rejected(&self, reason: &str) {
        self.rejected.with_label_values(&[reason]).inc();
    }

    pub fn closed(&self, reason: &str) {
        self.connections_closed.with_label_values(&[reason]).inc();
    }

    /// Removes the per-campaign series of a campaign that left this node.
    pub fn forget_campaign(&self, campaign: &str, kinds: &[String]) {
        let _ = self.campaign_viewers.remove_label_values(&[campaign]);
        for k in kinds {
            let _ = self.interactions.remove_label_values(&[campaign, k]);
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // unwrap: encoding into a Vec cannot fail.
        TextEncoder::new().encode(&self.registry.gather(), &mut buf).unwrap();
        String::from_utf8(buf).unwrap_or_default()
    }
}
