//! The report as a table for people: one row per reading, keys aligned.

use super::report::{Latency, NodeReport, Report};

/// Rows of key and value.
#[derive(Default)]
struct Table {
    rows: Vec<(&'static str, String)>,
}

impl Table {
    fn row(&mut self, key: &'static str, value: String) {
        self.rows.push((key, value));
    }

    fn render(&self) -> String {
        let w = self.rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        self.rows.iter().map(|(k, v)| format!("{k:<w$}  {v}\n")).collect()
    }
}

fn latency(l: &Latency) -> String {
    if l.samples == 0 {
        return "- (no samples)".to_owned();
    }
    format!(
        "p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms  max {:.2} ms  ({} samples)",
        l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms, l.samples
    )
}

/// The 1, 5 and 15 minute load averages, as `uptime` prints them.
fn load_average(l: &[f64; 3]) -> String {
    format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2])
}

/// Kibibytes, or `-` when they were not read.
fn kib(v: Option<u64>) -> String {
    v.map(|v| format!("{v} KiB")).unwrap_or("-".into())
}

/// `v` with two decimals and its unit, or `-` when it was not measured.
fn opt(v: Option<f64>, unit: &str) -> String {
    v.map(|v| format!("{v:.2} {unit}")).unwrap_or("-".into())
}

impl Report {
    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut t = Table::default();
        self.connect_rows(&mut t);
        self.traffic_rows(&mut t);
        self.server_rows(&mut t);
        if let Some(n) = &self.node {
            self.node_rows(n, &mut t);
        }
        self.outcome_rows(&mut t);
        t.render()
    }

    /// The run and its connect phase.
    fn connect_rows(&self, t: &mut Table) {
        t.row("campaign", format!("{} via {}", self.campaign, self.urls.join(", ")));
        t.row(
            "machine load",
            format!(
                "{} at start, {} at end (1, 5, 15 min averages)",
                load_average(&self.machine_load_start),
                load_average(&self.machine_load_end)
            ),
        );
        t.row("processes", self.processes.to_string());
        let c = &self.connect;
        t.row(
            "connected",
            format!(
                "{}/{} in {:.3} s ({:.0}/s), {} failed",
                c.connected, c.requested, c.seconds, c.per_sec, c.failed
            ),
        );
        t.row("connect latency", latency(&c.latency));
    }

    /// What the sockets sent and received in the load phase.
    fn traffic_rows(&self, t: &mut Table) {
        let it = &self.interactions;
        t.row(
            "interactions",
            format!(
                "{} sent, {} acked, {} unacked, {} refused by the server, over {:.2} s",
                it.sent, it.acked, it.unacked, it.errors, self.load_phase_seconds
            ),
        );
        // A rate over no time at all (a run with no load phase) means nothing.
        let rate = if self.load_phase_seconds < 1e-3 {
            "-".to_owned()
        } else {
            format!("{:.0}", it.acked_per_sec)
        };
        t.row("acked/s", rate);
        t.row("ack latency", latency(&it.ack_latency));
        t.row(
            "stats frames",
            format!("{} ({:.0}/s)", self.stats.frames, self.stats.frames_per_sec),
        );
        t.row("stats lag", latency(&self.stats.lag));
        if let Some([min, max]) = self.stats.viewers_seen {
            let settled = self
                .stats
                .last_frame_after_last_welcome_ms
                .map(|ms| format!("; the last frame came {ms} ms after the last welcome"))
                .unwrap_or_default();
            t.row(
                "viewers seen",
                format!(
                    "min {min} max {max} in every socket's last stats frame ({} connected){settled}",
                    self.connect.connected
                ),
            );
        }
    }

    /// The HTTP side traffic and the server's totals.
    fn server_rows(&self, t: &mut Table) {
        let h = &self.http;
        t.row(
            "registrations",
            format!("{} created, {} failed", h.registrations_created, h.registrations_failed),
        );
        t.row(
            "share visits",
            format!("{} ok, {} failed", h.share_visits_ok, h.share_visits_failed),
        );
        let s = &self.server;
        t.row(
            "server totals",
            format!(
                "interactions {} -> {}, registrations {} -> {}, share visits {} -> {}: {}",
                s.before.interactions,
                s.after.interactions,
                s.before.registrations,
                s.after.registrations,
                s.before.share_visits,
                s.after.share_visits,
                if s.totals_equal {
                    "the change equals what was acked"
                } else {
                    "the change DIFFERS from what was acked"
                }
            ),
        );
    }

    /// The node's memory and CPU (with `--node-pid`).
    fn node_rows(&self, n: &NodeReport, t: &mut Table) {
        t.row(
            "node memory (rss)",
            format!(
                "{} before connecting, {} connected: {} per socket",
                kib(n.usage.rss_before_kib),
                kib(n.usage.rss_after_kib),
                opt(n.rss_per_socket_kib, "KiB")
            ),
        );
        let per_connect = n
            .usage
            .connect_cpu_seconds
            .filter(|_| self.connect.connected > 0)
            .map(|s| format!("{:.1}", s * 1e6 / self.connect.connected as f64))
            .unwrap_or("-".into());
        t.row(
            "node cpu connecting",
            format!(
                "{} ({per_connect} µs per connect)",
                opt(n.usage.connect_cpu_seconds, "s")
            ),
        );
        t.row(
            "node cpu",
            format!(
                "{} over the load phase ({}), {} per frame",
                opt(n.usage.cpu_seconds, "s"),
                opt(n.cpu_utilisation.map(|u| u * 100.0), "%"),
                opt(n.cpu_us_per_frame, "µs")
            ),
        );
    }

    /// The tool's own CPU, and whether the run was clean.
    fn outcome_rows(&self, t: &mut Table) {
        t.row(
            "tool cpu",
            format!(
                "{} connecting, {} in the load phase (coordinator process); workers {} in the load phase",
                opt(self.tool_cpu.connect_seconds, "s"),
                opt(self.tool_cpu.load_seconds, "s"),
                opt(self.tool_cpu.workers_load_seconds, "s")
            ),
        );
        t.row("sockets dropped", self.dropped.to_string());
        if !self.failures.is_empty() {
            let failures: Vec<String> = self.failures.iter().map(|(why, n)| format!("{n} {why}")).collect();
            t.row("failures", failures.join(", "));
        }
        t.row(
            "clean",
            if self.clean {
                "yes".to_owned()
            } else {
                "no: something failed, was dropped or unacked, or the totals differ (exit 1)".to_owned()
            },
        );
    }
}
