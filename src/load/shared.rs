//! What every socket of a worker shares: the plan of its run, the phase it follows, and
//! the counters and histograms it adds to, read by the worker's progress reporter and at
//! the end of each phase.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use super::hist::Hist;

/// Where the worker is in its run; sockets follow it through a watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Connected, idle (answering pings, reading stats).
    Hold,
    /// The load phase began at this instant.
    Go,
    /// Close the sockets.
    Close,
}

/// What every socket of a worker shares: its plan and the counters it adds to.
pub struct Shared {
    pub campaign: String,
    pub kind: String,
    /// Seconds between two messages of one socket; `None`: as fast as acks allow; 0 rate:
    /// no messages at all (see [`Shared::sends`]).
    pub interval: Option<f64>,
    pub sends: bool,
    pub max_unacked: u64,
    pub duration: Duration,
    pub drain_timeout: Duration,
    pub counters: Counters,
    pub ack_latency: Mutex<Hist>,
    pub stats_lag: Mutex<Hist>,
    pub connect_latency: Mutex<Hist>,
    pub failures: Mutex<BTreeMap<String, u64>>,
}

/// Counters of one worker, read by its progress reporter.
#[derive(Default)]
pub struct Counters {
    pub connected: AtomicU64,
    pub failed: AtomicU64,
    /// Sockets done with the load phase (drained or failed).
    pub finished: AtomicU64,
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    /// `error` messages from the server.
    pub errors: AtomicU64,
    /// `stats` frames received after the load phase began.
    pub frames: AtomicU64,
    /// Sockets the server closed (or lost) before the tool did.
    pub dropped: AtomicU64,
    /// µs from the worker's start to the latest welcome.
    pub last_welcome_us: AtomicU64,
    /// The `viewers` of every socket's last stats frame: what each node told its viewers.
    pub viewers_seen: SeenRange,
    /// Unix ms of the latest welcome and of the latest stats frame, over all sockets (wall
    /// clock, so workers in other processes compare).
    pub last_welcome_ms: AtomicU64,
    pub last_frame_ms: AtomicU64,
}

/// Smallest and largest of a set of numbers gathered from many tasks.
pub struct SeenRange {
    min: AtomicU64,
    max: AtomicU64,
}

impl Default for SeenRange {
    fn default() -> Self {
        Self {
            min: AtomicU64::new(u64::MAX),
            max: AtomicU64::new(0),
        }
    }
}

impl SeenRange {
    pub fn add(&self, v: u64) {
        self.min.fetch_min(v, Ordering::Relaxed);
        self.max.fetch_max(v, Ordering::Relaxed);
    }

    /// `[min, max]`, or `None` when nothing was added.
    pub fn get(&self) -> Option<[u64; 2]> {
        let min = self.min.load(Ordering::Relaxed);
        (min != u64::MAX).then(|| [min, self.max.load(Ordering::Relaxed)])
    }
}

impl Shared {
    /// A connect that failed.
    pub fn fail(&self, reason: impl Into<String>) {
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
        self.note(reason);
    }

    /// Counts a failure by reason (a connect failure, or a socket lost later).
    pub fn note(&self, reason: impl Into<String>) {
        *self
            .failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(reason.into())
            .or_default() += 1;
    }
}
