//! What a run measured, as a table for people and JSON for machines.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::api::{SideTraffic, Totals};
use super::args::LoadArgs;
use super::events::{Connected, Done};
use super::hist::Hist;
use super::procfs::{loadavg, seconds_between, Snapshot};

/// The node's resource use, from /proc.
#[derive(Debug, Clone, Serialize)]
pub struct NodeUsage {
    pub pid: u32,
    pub rss_before_kib: Option<u64>,
    pub rss_after_kib: Option<u64>,
    /// Node CPU (user + system) while the sockets connected.
    pub connect_cpu_seconds: Option<f64>,
    /// Node CPU (user + system) over the load phase.
    pub cpu_seconds: Option<f64>,
}

/// CPU of the coordinator process (with one process, the whole tool): a run where the
/// tool, not the node, is the bottleneck shows here.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ToolCpu {
    pub connect_seconds: Option<f64>,
    pub load_seconds: Option<f64>,
    /// All worker processes together over the load phase (the whole tool but its
    /// coordinator, when it runs several processes).
    pub workers_load_seconds: Option<f64>,
}

impl NodeUsage {
    /// From the readings before connecting, once connected and after the load phase.
    pub fn from_readings(pid: u32, [start, connected, end]: &[Snapshot; 3]) -> Self {
        NodeUsage {
            pid,
            rss_before_kib: start.node_rss_kib,
            rss_after_kib: connected.node_rss_kib,
            connect_cpu_seconds: seconds_between(start.node_cpu, connected.node_cpu),
            cpu_seconds: seconds_between(connected.node_cpu, end.node_cpu),
        }
    }
}

impl ToolCpu {
    /// The coordinator's own CPU from its readings (all of the tool in a one-process run),
    /// and the workers' from what they reported.
    pub fn from_readings([start, connected, end]: &[Snapshot; 3], done: &[Done]) -> Self {
        ToolCpu {
            connect_seconds: seconds_between(start.tool_cpu, connected.tool_cpu),
            load_seconds: seconds_between(connected.tool_cpu, end.tool_cpu),
            workers_load_seconds: done.iter().map(|d| d.cpu_seconds).sum(),
        }
    }
}

/// Latency summary in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub samples: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl From<&Hist> for Latency {
    fn from(h: &Hist) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            samples: h.count(),
            p50_ms: ms(h.quantile(0.50)),
            p95_ms: ms(h.quantile(0.95)),
            p99_ms: ms(h.quantile(0.99)),
            max_ms: ms(h.quantile(1.0)),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ConnectReport {
    pub requested: usize,
    pub connected: u64,
    pub failed: u64,
    /// From the first connect to the last welcome (slowest process).
    pub seconds: f64,
    pub per_sec: f64,
    pub latency: Latency,
}

#[derive(Debug, Clone, Serialize)]
pub struct InteractionReport {
    pub sent: u64,
    pub acked: u64,
    pub unacked: u64,
    /// `error` messages the server sent (rate limited, ...).
    pub errors: u64,
    /// Acked messages over the load phase (sending plus the drain of the last acks).
    pub acked_per_sec: f64,
    pub ack_latency: Latency,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatsReport {
    /// `stats` frames received by all sockets during the load phase.
    pub frames: u64,
    pub frames_per_sec: f64,
    /// Receive time minus the frame's `at`.
    pub lag: Latency,
    /// `[min, max]` of `viewers` in every socket's last stats frame: with every node
    /// exact, both equal the viewers connected (when nobody else watches the campaign).
    pub viewers_seen: Option<[u64; 2]>,
    /// The latest stats frame any socket received, in ms after the latest welcome: with
    /// no interactions, how long the nodes took to tell everyone the final total.
    pub last_frame_after_last_welcome_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerReport {
    pub before: Totals,
    pub after: Totals,
    /// Server's interaction delta equals what the tool saw acked (and registrations and
    /// share visits equal the successful calls).
    pub totals_equal: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeReport {
    #[serde(flatten)]
    pub usage: NodeUsage,
    pub rss_per_socket_kib: Option<f64>,
    /// Node CPU µs per `stats` frame delivered (includes everything else the node did).
    pub cpu_us_per_frame: Option<f64>,
    pub cpu_utilisation: Option<f64>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub campaign: String,
    pub urls: Vec<String>,
    pub processes: usize,
    /// Load averages (1, 5, 15 min) at the start and the end of the run.
    pub machine_load_start: [f64; 3],
    pub machine_load_end: [f64; 3],
    pub load_phase_seconds: f64,
    pub connect: ConnectReport,
    pub interactions: InteractionReport,
    pub stats: StatsReport,
    pub http: SideTraffic,
    pub server: ServerReport,
    pub node: Option<NodeReport>,
    pub tool_cpu: ToolCpu,
    /// Sockets the server closed or lost before the end.
    pub dropped: u64,
    pub failures: BTreeMap<String, u64>,
    /// No failures, nothing dropped, every message acked, totals equal.
    pub clean: bool,
}

/// Everything [`Report::build`] combines.
pub struct Inputs<'a> {
    pub args: &'a LoadArgs,
    pub processes: usize,
    pub load_before: [f64; 3],
    pub connected: &'a [Connected],
    pub connect_latency: &'a Hist,
    pub done: &'a [Done],
    pub ack_latency: &'a Hist,
    pub stats_lag: &'a Hist,
    pub frames: u64,
    pub window: Duration,
    pub before: Totals,
    pub after: Totals,
    pub side: SideTraffic,
    pub node: Option<NodeUsage>,
    pub tool_cpu: ToolCpu,
}

impl Report {
    pub fn build(i: Inputs<'_>) -> Report {
        let secs = i.window.as_secs_f64().max(1e-9);
        let connected: u64 = i.connected.iter().map(|c| c.connected).sum();
        let failed: u64 = i.connected.iter().map(|c| c.failed).sum();
        let connect_secs = i.connected.iter().map(|c| c.seconds).fold(0.0, f64::max);
        let sent: u64 = i.done.iter().map(|d| d.sent).sum();
        let acked: u64 = i.done.iter().map(|d| d.acked).sum();
        let mut failures = BTreeMap::new();
        for d in i.done {
            for (k, v) in &d.failures {
                *failures.entry(k.clone()).or_insert(0) += v;
            }
        }
        let dropped = i.done.iter().map(|d| d.dropped).sum();
        let totals_equal = i.after.interactions - i.before.interactions.min(i.after.interactions) == acked
            && i.after.interactions >= i.before.interactions
            && i.after.registrations == i.before.registrations + i.side.registrations_created
            && i.after.share_visits == i.before.share_visits + i.side.share_visits_ok;
        let node = i.node.map(|usage| {
            let rss_per_socket_kib = match (usage.rss_before_kib, usage.rss_after_kib) {
                (Some(a), Some(b)) if connected > 0 => Some((b as f64 - a as f64) / connected as f64),
                _ => None,
            };
            let cpu_us_per_frame = usage
                .cpu_seconds
                .filter(|_| i.frames > 0)
                .map(|c| c * 1e6 / i.frames as f64);
            let cpu_utilisation = usage.cpu_seconds.map(|c| c / secs);
            NodeReport {
                usage,
                rss_per_socket_kib,
                cpu_us_per_frame,
                cpu_utilisation,
            }
        });
        let clean = failed == 0
            && failures.is_empty()
            && sent == acked
            && totals_equal
            && i.side.registrations_failed == 0
            && i.side.share_visits_failed == 0;
        Report {
            campaign: i.args.campaign.clone(),
            urls: i.args.urls.clone(),
            processes: i.processes,
            machine_load_start: i.load_before,
            machine_load_end: loadavg(),
            load_phase_seconds: secs,
            connect: ConnectReport {
                requested: i.args.viewers,
                connected,
                failed,
                seconds: connect_secs,
                per_sec: if connect_secs > 0.0 {
                    connected as f64 / connect_secs
                } else {
                    0.0
                },
                latency: i.connect_latency.into(),
            },
            interactions: InteractionReport {
                sent,
                acked,
                unacked: sent.saturating_sub(acked),
                errors: i.done.iter().map(|d| d.errors).sum(),
                acked_per_sec: acked as f64 / secs,
                ack_latency: i.ack_latency.into(),
            },
            stats: StatsReport {
                frames: i.frames,
                frames_per_sec: i.frames as f64 / secs,
                lag: i.stats_lag.into(),
                viewers_seen: i
                    .done
                    .iter()
                    .filter_map(|d| d.viewers_seen)
                    .reduce(|a, b| [a[0].min(b[0]), a[1].max(b[1])]),
                last_frame_after_last_welcome_ms: {
                    let welcome = i.done.iter().map(|d| d.last_welcome_ms).max().unwrap_or(0);
                    let frame = i.done.iter().map(|d| d.last_frame_ms).max().unwrap_or(0);
                    (welcome > 0 && frame > 0).then(|| frame as i64 - welcome as i64)
                },
            },
            http: i.side,
            server: ServerReport {
                before: i.before,
                after: i.after,
                totals_equal,
            },
            node,
            tool_cpu: i.tool_cpu,
            dropped,
            failures,
            clean,
        }
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut rows: Vec<(String, String)> = Vec::new();
        let mut row = |k: &str, v: String| rows.push((k.to_owned(), v));
        let lat = |l: &Latency| {
            format!(
                "p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms  max {:.2} ms  (n={})",
                l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms, l.samples
            )
        };
        let c = &self.connect;
        row("campaign", format!("{} via {}", self.campaign, self.urls.join(", ")));
        row(
            "machine load",
            format!(
                "{:?} at start, {:?} at end",
                self.machine_load_start, self.machine_load_end
            ),
        );
        row("processes", self.processes.to_string());
        row(
            "connected",
            format!(
                "{}/{} in {:.3} s ({:.0}/s), {} failed",
                c.connected, c.requested, c.seconds, c.per_sec, c.failed
            ),
        );
        row("connect latency", lat(&c.latency));
        let it = &self.interactions;
        row(
            "interactions",
            format!(
                "sent {} acked {} unacked {} errors {} over {:.2} s",
                it.sent, it.acked, it.unacked, it.errors, self.load_phase_seconds
            ),
        );
        row("acked/s", format!("{:.0}", it.acked_per_sec));
        row("ack latency", lat(&it.ack_latency));
        row(
            "stats frames",
            format!("{} ({:.0}/s)", self.stats.frames, self.stats.frames_per_sec),
        );
        row("stats lag", lat(&self.stats.lag));
        if let Some([min, max]) = self.stats.viewers_seen {
            let settled = self
                .stats
                .last_frame_after_last_welcome_ms
                .map(|ms| format!("; the last frame came {ms} ms after the last welcome"))
                .unwrap_or_default();
            row(
                "viewers seen",
                format!(
                    "min {min} max {max} in every socket's last stats frame ({} connected){settled}",
                    self.connect.connected
                ),
            );
        }
        let h = &self.http;
        row(
            "registrations",
            format!("{} created, {} failed", h.registrations_created, h.registrations_failed),
        );
        row(
            "share visits",
            format!("{} ok, {} failed", h.share_visits_ok, h.share_visits_failed),
        );
        let s = &self.server;
        row(
            "server totals",
            format!(
                "interactions {} -> {}, registrations {} -> {}, share visits {} -> {}: {}",
                s.before.interactions,
                s.after.interactions,
                s.before.registrations,
                s.after.registrations,
                s.before.share_visits,
                s.after.share_visits,
                if s.totals_equal { "EQUAL to acked" } else { "MISMATCH" }
            ),
        );
        if let Some(n) = &self.node {
            let opt = |v: Option<f64>, unit: &str| v.map(|v| format!("{v:.2} {unit}")).unwrap_or("-".into());
            row(
                "node rss",
                format!(
                    "{:?} KiB -> {:?} KiB, {} per socket",
                    n.usage.rss_before_kib,
                    n.usage.rss_after_kib,
                    opt(n.rss_per_socket_kib, "KiB")
                ),
            );
            row(
                "node cpu connecting",
                format!(
                    "{} ({} µs per connect)",
                    opt(n.usage.connect_cpu_seconds, "s"),
                    n.usage
                        .connect_cpu_seconds
                        .filter(|_| self.connect.connected > 0)
                        .map(|s| format!("{:.1}", s * 1e6 / self.connect.connected as f64))
                        .unwrap_or("-".into())
                ),
            );
            row(
                "node cpu",
                format!(
                    "{} over the load phase ({}), {} per frame",
                    opt(n.usage.cpu_seconds, "s"),
                    opt(n.cpu_utilisation.map(|u| u * 100.0), "%"),
                    opt(n.cpu_us_per_frame, "µs")
                ),
            );
        }
        let opt = |v: Option<f64>| v.map(|v| format!("{v:.2} s")).unwrap_or("-".into());
        row(
            "tool cpu",
            format!(
                "{} connecting, {} in the load phase (coordinator process); workers {} in the load phase",
                opt(self.tool_cpu.connect_seconds),
                opt(self.tool_cpu.load_seconds),
                opt(self.tool_cpu.workers_load_seconds)
            ),
        );
        row("dropped", self.dropped.to_string());
        if !self.failures.is_empty() {
            row("failures", format!("{:?}", self.failures));
        }
        row("clean", self.clean.to_string());
        let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        rows.iter().map(|(k, v)| format!("{k:<w$}  {v}\n")).collect()
    }
}
