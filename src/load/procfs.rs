//! Readings taken from /proc, outside the sockets: the node's memory and CPU, the tool's
//! own CPU, and the machine load.

/// Clock ticks per second of /proc/PID/stat times: 100 on every Linux configuration this
/// tool runs on (USER_HZ is fixed at 100 for x86-64 and arm64 user space).
pub const CLOCK_TICKS: u64 = 100;

/// `/proc/loadavg`: the 1, 5 and 15 minute load averages.
pub fn loadavg() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = text.split_whitespace().map(|s| s.parse().unwrap_or(0.0));
    [(); 3].map(|_| it.next().unwrap_or(0.0))
}

/// Resident memory of `pid` in KiB (VmRSS).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// utime + stime of `pid`, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at state (field 3).
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// What the coordinator reads at each step of a run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot {
    /// The node's resident memory and CPU ticks (with `--node-pid`).
    pub node_rss_kib: Option<u64>,
    pub node_cpu: Option<u64>,
    /// This process's CPU ticks.
    pub tool_cpu: Option<u64>,
}

impl Snapshot {
    pub fn take(node_pid: Option<u32>) -> Self {
        Self {
            node_rss_kib: node_pid.and_then(rss_kib),
            node_cpu: node_pid.and_then(cpu_ticks),
            tool_cpu: cpu_ticks(std::process::id()),
        }
    }
}

/// Seconds between two [`cpu_ticks`] readings; `None` when either is missing.
pub fn seconds_between(from: Option<u64>, to: Option<u64>) -> Option<f64> {
    match (from, to) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / CLOCK_TICKS as f64),
        _ => None,
    }
}
