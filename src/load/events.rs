//! What the coordinator and its workers tell each other: commands one way, events the
//! other, over channels to an in-process worker or as JSON lines to a child process.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::hist::Sparse;

/// Coordinator → worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cmd {
    /// Open the sockets.
    Start,
    /// Begin the load phase.
    Go,
    /// Close the sockets and exit.
    Close,
}

/// Worker → coordinator.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub enum Event {
    Ready,
    Progress(Progress),
    Connected(Connected),
    Done(Done),
}

/// Running counters, for the progress line.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Progress {
    pub connected: u64,
    pub failed: u64,
    pub sent: u64,
    pub acked: u64,
    pub frames: u64,
}

/// The end of the connect phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Connected {
    pub connected: u64,
    pub failed: u64,
    /// From `start` to the last welcome.
    pub seconds: f64,
    pub latency: Sparse,
}

/// The end of the load phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Done {
    pub sent: u64,
    pub acked: u64,
    pub errors: u64,
    pub frames: u64,
    pub dropped: u64,
    pub failures: BTreeMap<String, u64>,
    pub ack_latency: Sparse,
    pub stats_lag: Sparse,
    /// `[min, max]` of `viewers` in every socket's last stats frame.
    pub viewers_seen: Option<[u64; 2]>,
    /// Unix ms of this worker's latest welcome and latest stats frame (0: none).
    pub last_welcome_ms: u64,
    pub last_frame_ms: u64,
    /// CPU this worker's process used in the load phase (a child's own; for the in-process
    /// worker, the whole tool's).
    pub cpu_seconds: Option<f64>,
}
