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
    pub done: &'a [Done],
    /// From `go` to the last worker's `done`.
    pub window: Duration,
    pub before: Totals,
    pub after: Totals,
    pub side: SideTraffic,
    /// Before connecting, once connected, after the load phase.
    pub readings: &'a [Snapshot; 3],
}

impl Report {
    pub fn build(i: Inputs<'_>) -> Report {
        let secs = i.window.as_secs_f64().max(1e-9);
        let connect = ConnectReport::new(i.args.viewers, i.connected);
        let interactions = InteractionReport::new(i.done, secs);
        let stats = StatsReport::new(i.done, secs);
        let server = ServerReport::new(i.before, i.after, interactions.acked, &i.side);
        let mut failures = BTreeMap::new();
        for (k, v) in i.done.iter().flat_map(|d| &d.failures) {
            *failures.entry(k.clone()).or_insert(0) += v;
        }
        let node = i.args.node_pid.map(|pid| {
            let usage = NodeUsage::from_readings(pid, i.readings);
            NodeReport::new(usage, connect.connected, stats.frames, secs)
        });
        let clean = connect.failed == 0
            && failures.is_empty()
            && interactions.sent == interactions.acked
            && server.totals_equal
            && i.side.registrations_failed == 0
            && i.side.share_visits_failed == 0;
        Report {
            campaign: i.args.campaign.clone(),
            urls: i.args.urls.clone(),
            processes: i.processes,
            machine_load_start: i.load_before,
            machine_load_end: loadavg(),
            load_phase_seconds: secs,
            connect,
            interactions,
            stats,
            http: i.side,
            server,
            node,
            tool_cpu: ToolCpu::from_readings(i.readings, i.done),
            dropped: i.done.iter().map(|d| d.dropped).sum(),
            failures,
            clean,
        }
    }
}

impl ConnectReport {
    fn new(requested: usize, workers: &[Connected]) -> Self {
        let connected: u64 = workers.iter().map(|c| c.connected).sum();
        let seconds = workers.iter().map(|c| c.seconds).fold(0.0, f64::max);
        ConnectReport {
            requested,
            connected,
            failed: workers.iter().map(|c| c.failed).sum(),
            seconds,
            per_sec: if seconds > 0.0 { connected as f64 / seconds } else { 0.0 },
            latency: (&Hist::merged(workers.iter().map(|c| &c.latency))).into(),
        }
    }
}

impl InteractionReport {
    /// Over a load phase of `secs`.
    fn new(done: &[Done], secs: f64) -> Self {
        let sent: u64 = done.iter().map(|d| d.sent).sum();
        let acked: u64 = done.iter().map(|d| d.acked).sum();
        InteractionReport {
            sent,
            acked,
            unacked: sent.saturating_sub(acked),
            errors: done.iter().map(|d| d.errors).sum(),
            acked_per_sec: acked as f64 / secs,
            ack_latency: (&Hist::merged(done.iter().map(|d| &d.ack_latency))).into(),
        }
    }
}

impl StatsReport {
    /// Over a load phase of `secs`.
    fn new(done: &[Done], secs: f64) -> Self {
        let frames: u64 = done.iter().map(|d| d.frames).sum();
        let welcome = done.iter().map(|d| d.last_welcome_ms).max().unwrap_or(0);
        let frame = done.iter().map(|d| d.last_frame_ms).max().unwrap_or(0);
        StatsReport {
            frames,
            frames_per_sec: frames as f64 / secs,
            lag: (&Hist::merged(done.iter().map(|d| &d.stats_lag))).into(),
            viewers_seen: done
                .iter()
                .filter_map(|d| d.viewers_seen)
                .reduce(|a, b| [a[0].min(b[0]), a[1].max(b[1])]),
            last_frame_after_last_welcome_ms: (welcome > 0 && frame > 0).then(|| frame as i64 - welcome as i64),
        }
    }
}

impl ServerReport {
    /// `acked` interactions and the side traffic's successes against the server's totals.
    fn new(before: Totals, after: Totals, acked: u64, side: &SideTraffic) -> Self {
        let totals_equal = after.interactions - before.interactions.min(after.interactions) == acked
            && after.interactions >= before.interactions
            && after.registrations == before.registrations + side.registrations_created
            && after.share_visits == before.share_visits + side.share_visits_ok;
        ServerReport {
            before,
            after,
            totals_equal,
        }
    }
}

impl NodeReport {
    /// Per socket over `connected` sockets, per frame over `frames`, over `secs` of load.
    fn new(usage: NodeUsage, connected: u64, frames: u64, secs: f64) -> Self {
        let rss_per_socket_kib = match (usage.rss_before_kib, usage.rss_after_kib) {
            (Some(a), Some(b)) if connected > 0 => Some((b as f64 - a as f64) / connected as f64),
            _ => None,
        };
        let cpu_us_per_frame = usage
            .cpu_seconds
            .filter(|_| frames > 0)
            .map(|c| c * 1e6 / frames as f64);
        let cpu_utilisation = usage.cpu_seconds.map(|c| c / secs);
        NodeReport {
            usage,
            rss_per_socket_kib,
            cpu_us_per_frame,
            cpu_utilisation,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::super::hist::Sparse;
    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: LoadArgs,
    }

    fn sample(us: &[u64]) -> Sparse {
        let mut h = Hist::default();
        us.iter().for_each(|v| h.record(*v));
        h.to_sparse()
    }

    fn connected(connected: u64, failed: u64, seconds: f64, latency: &[u64]) -> Connected {
        let latency = sample(latency);
        Connected {
            connected,
            failed,
            seconds,
            latency,
        }
    }

    fn done(sent: u64, acked: u64, frames: u64, seen: [u64; 2], dropped: u64, cpu: f64) -> Done {
        Done {
            sent,
            acked,
            errors: 1,
            frames,
            dropped,
            failures: (dropped > 0)
                .then(|| ("dropped".to_owned(), dropped))
                .into_iter()
                .collect(),
            ack_latency: sample(&[300, 400, 700_000]),
            stats_lag: sample(&[2_000, 3_000]),
            viewers_seen: Some(seen),
            last_welcome_ms: 1_000,
            last_frame_ms: 1_850,
            cpu_seconds: Some(cpu),
        }
    }

    fn report(args: &LoadArgs, done: &[Done], window_ms: u64, after: Totals, side: SideTraffic) -> String {
        let readings =
            [(Some(10_000), 100, 50), (Some(13_000), 130, 70), (None, 330, 170)].map(|(rss, node, tool)| Snapshot {
                node_rss_kib: rss,
                node_cpu: Some(node),
                tool_cpu: Some(tool),
            });
        let mut r = Report::build(Inputs {
            args,
            processes: if args.node_pid.is_some() { 2 } else { 1 },
            load_before: [1.0, 2.0, 3.0],
            connected: &[
                connected(150, 0, 0.5, &[900, 1200, 5000]),
                connected(149, 1, 0.75, &[800, 20_000]),
            ],
            done,
            window: Duration::from_millis(window_ms),
            before: BEFORE,
            after,
            side,
            readings: &readings,
        });
        r.machine_load_end = [0.5, 0.25, 0.125];
        format!("{}\n{}\n", r.table(), serde_json::to_string_pretty(&r).unwrap())
    }

    const BEFORE: Totals = Totals {
        interactions: 5,
        registrations: 1,
        share_visits: 2,
    };

    /// The table and the JSON, with every optional row, then without them, as scripts and
    /// rehearsal notes read them: a change here is a change of the tool's output.
    #[test]
    fn the_report_reads_as_documented() {
        let mut args = Cli::parse_from(["t", "--campaign", "c1", "--viewers", "300", "--url", "ws://127.0.0.1:1"]).args;
        args.node_pid = Some(4242);
        let done_full = [
            done(600, 600, 400, [298, 299], 0, 0.25),
            done(601, 598, 410, [297, 299], 1, 0.5),
        ];
        let after = Totals {
            interactions: 1203,
            registrations: 4,
            share_visits: 2,
        };
        let side = SideTraffic {
            registrations_created: 3,
            share_visits_failed: 1,
            ..Default::default()
        };
        let mut out = report(&args, &done_full, 2500, after, side);
        let done_bare = done_full.map(|mut d| {
            (d.viewers_seen, d.last_frame_ms, d.cpu_seconds, d.frames) = (None, 0, None, 0);
            d.failures.clear();
            d.ack_latency = Sparse::default();
            d
        });
        args.node_pid = None;
        out += &report(&args, &done_bare, 0, BEFORE, SideTraffic::default());
        assert_eq!(out, include_str!("testdata/report.txt"));
    }
}
