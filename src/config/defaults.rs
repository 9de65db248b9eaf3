//! The flags' defaults that other parts need without a `Config` (the stores, the tallies,
//! the node's builder and the simulator), each said once here: the flag shows it and
//! every other part reads it.

use std::time::Duration;

/// A duration default as the flag shows it, and its value read from that text at
/// compile time, so the two cannot differ.
#[derive(Debug, Clone, Copy)]
pub struct DurationDefault {
    pub text: &'static str,
    pub value: Duration,
}

impl DurationDefault {
    /// Digits and one of `ms`, `s`, `m`, `h` (a subset of `parse_duration`); anything
    /// else fails the build.
    const fn new(text: &'static str) -> Self {
        let b = text.as_bytes();
        let mut i = 0;
        let mut n: u64 = 0;
        while i < b.len() && b[i].is_ascii_digit() {
            n = n * 10 + (b[i] - b'0') as u64;
            i += 1;
        }
        let value = match (b.len() - i, if i < b.len() { b[i] } else { 0 }) {
            (2, b'm') if b[i + 1] == b's' => Duration::from_millis(n),
            (1, b's') => Duration::from_secs(n),
            (1, b'm') => Duration::from_secs(n * 60),
            (1, b'h') => Duration::from_secs(n * 3600),
            _ => panic!("a default duration is digits and ms, s, m or h"),
        };
        Self { text, value }
    }
}

/// `--tick`: how often stats are pushed; a viewer's count is at most this old.
pub const TICK: DurationDefault = DurationDefault::new("1s");
/// `--flush-interval`: a tenth of the tick, so a like reaches the store (and is acked)
/// well before the next push.
pub const FLUSH_INTERVAL: DurationDefault = DurationDefault::new("100ms");
/// `--presence-ttl`: ten ticks; a node that dies stops counting within it
/// (docs/consistency.md).
pub const PRESENCE_TTL: DurationDefault = DurationDefault::new("10s");
/// `--session-ttl`: a viewer who comes back within a day resumes their session
/// (docs/operations.md).
pub const SESSION_TTL: DurationDefault = DurationDefault::new("24h");
/// `--drain-period`: sockets close all at once unless the operator spreads them.
pub const DRAIN_PERIOD: DurationDefault = DurationDefault::new("0s");
/// `--max-interactions-per-sec`: per socket; bursts of twice this are allowed.
pub const MAX_INTERACTIONS_PER_SEC: u32 = 20;
/// `--max-pending`: interactions a node holds through a store outage before refusing
/// new ones (docs/operations.md).
pub const MAX_PENDING: u64 = 1_000_000;
/// `--max-share-channels`: distinct channels counted per campaign before `other`.
pub const MAX_SHARE_CHANNELS: usize = 64;
/// `--claim-wait`: how long a welcome waits for the session's claim before the socket
/// is admitted without it (a store outage refuses no viewer); half a second is a slow
/// connect, not a failed one, and a healthy store claims in a millisecond.
pub const CLAIM_WAIT: DurationDefault = DurationDefault::new("500ms");

/// `--unique-after`: a socket must stay open this long before its viewer counts as
/// unique, longer than a script's connect-like-close loop takes and shorter than anyone
/// who came to watch stays (docs/operations.md, "Limits").
pub const UNIQUE_AFTER: DurationDefault = DurationDefault::new("10s");
/// `--max-connects-per-client`: socket upgrades one client address may make per minute
/// on a node; room for a carrier NAT's reconnect storm, none for a connect loop.
pub const MAX_CONNECTS_PER_CLIENT: u32 = 3_000;

/// `--webhook-queue-max`: events one campaign's webhook queue holds while a receiver
/// is behind; past it the oldest `registration.created` go first.
pub const WEBHOOK_QUEUE_MAX: usize = 100_000;
/// `--max-auth-failures-per-client`: wrong operator tokens an address may present in a
/// minute; a person mistyping a token or a deploy with an old one stays well below it.
pub const MAX_AUTH_FAILURES_PER_CLIENT: usize = 10;
/// `--unit-peak-depth`: the org levels counted in the presence leases. Three levels of the
/// seed's org are ~372 units: what every lease and stats read can carry.
pub const UNIT_PEAK_DEPTH: u8 = 3;
