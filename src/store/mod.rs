//! The seam between counting and storing. Everything a node shares with other nodes goes
//! through [`Store`]: the embedded [`memory::MemoryStore`] for a single node, and the Redis
//! store for many. Both pass the same contract suite (`tests/store_contract.rs`).
//!
//! The trait is shaped for Redis from day one: writes arrive as one [`Batch`] per campaign
//! per flush interval (one round trip, applied atomically), reads as one [`Stats`] per
//! campaign per tick, so store traffic grows with the number of campaigns and ticks, never
//! with the interaction rate.

#[cfg(test)]
pub mod flaky;
pub mod hll;
pub mod memory;
pub mod outbox;
pub mod redis;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use crate::campaign::{Campaign, Milestones};
pub use crate::protocol::stats::{NodeShare, Stats};
use outbox::{Lease, Settle};

/// Why a store call failed. Callers branch on it: `Unavailable` is retried (counts stay
/// buffered, acks withheld), the others are answers.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store did not answer (down, hung, failing over). Retry later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A campaign with this id already exists.
    #[error("campaign already exists")]
    Conflict,
    /// No campaign with this id.
    #[error("campaign not found")]
    NotFound,
    /// The campaign is still live, and this call needs it ended.
    #[error("campaign is live")]
    Live,
    /// The store was written by a newer build: this node must not touch it.
    #[error("the store is at schema version {found}, newer than this node's {supported}: upgrade this node first")]
    NewerSchema { found: u64, supported: u64 },
}

pub type StoreResult<T> = Result<T, StoreError>;

/// `--session-ttl`'s default, for stores built without the flag (tests, embedded use).
pub const DEFAULT_SESSION_TTL: Duration = crate::config::defaults::SESSION_TTL.value;

/// One session's counts since its last successful flush.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDelta {
    /// Client-chosen (or server-assigned) session id.
    pub session: String,
    /// The viewer behind the session, added to the `interactors` sketch when `counts` is
    /// non-empty.
    pub viewer: String,
    /// The ownership epoch this node got from [`Store::claim_session`]. A delta whose epoch
    /// is no longer the session's current one was sent through a node that lost the session
    /// to a reconnect elsewhere, and a delta whose session the store has forgotten (see
    /// [`Store::claim_session`]) has no current epoch at all: either is rejected whole, so a
    /// resend is never counted twice.
    pub epoch: u64,
    /// Highest `seq` covered by this delta (0: no sequenced message in it). Stored as the
    /// session's acked seq, never lowered.
    pub seq: u64,
    /// `(kind, count)` pairs, counts > 0.
    pub counts: Vec<(String, u64)>,
}

/// Where the socket a session is claimed for is counted.
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    /// The claiming node's name in presence.
    pub node: &'a str,
    /// The region the socket counts under (as in [`Presence::regions`]).
    pub region: &'a str,
    /// The node's presence lease (`--presence-ttl`). A node's first claim in a campaign
    /// starts its lease (with 0 viewers), so a session claimed away from it before its
    /// first flush is still known to be counted there.
    pub lease: Duration,
}

/// This node's share of a campaign's live audience, published under a lease.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Presence {
    /// Open viewer sockets of the campaign on this node.
    pub viewers: u64,
    /// The same sockets by region (regions with 0 may be omitted).
    pub regions: BTreeMap<String, u64>,
}

/// Everything one node has to write for one campaign in one flush interval. Applied
/// atomically: all of it or none of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub campaign: String,
    /// Who sent the batch (node id and a per-process run id) ...
    pub origin: String,
    /// ... and its number, increasing per campaign and origin. A call that timed out may
    /// still have been applied; the flusher then resends the SAME batch, and the store
    /// recognises it by `(origin, number)` and answers with the first result instead of
    /// counting it twice. 0 turns the check off.
    pub number: u64,
    /// Start of the series bucket (tick-aligned unix ms) the interaction counts fall in.
    pub bucket_ms: i64,
    pub sessions: Vec<SessionDelta>,
    /// Viewer ids that connected since the last flush (for the `unique_viewers` sketch).
    pub new_viewers: Vec<String>,
    /// `(channel, visits)` pairs.
    pub share_visits: Vec<(String, u64)>,
    /// `--max-share-channels`: the store counts visits on a channel beyond the campaign's
    /// first this many distinct ones under `other` (which is not one of them), whichever
    /// node or flush brings them. 0: no bound.
    pub max_share_channels: u64,
    /// This node's presence, when it changed or its lease is due for renewal.
    pub presence: Option<(String, Presence)>,
    /// Lease length for `presence`.
    pub presence_ttl: Duration,
    /// `(session, epoch)` of open sockets that sent nothing lately: their resume state is
    /// kept alive as if they had (see [`Store::claim_session`]). Stale epochs are ignored.
    pub touch: Vec<(String, u64)>,
    /// This node's name in presence, for `left` and [`Applied::moved`] ("": none).
    pub node: String,
    /// `(session, epoch)` of this node's sockets that closed since the last batch, and
    /// `("", epoch)` for epochs of [`Applied::moved`] this node no longer counts: the
    /// store stops counting them as moved away from this node. `presence` (when written)
    /// no longer counts them.
    pub left: Vec<(String, u64)>,
}

impl Batch {
    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
            && self.touch.is_empty()
            && self.left.is_empty()
            && self.new_viewers.is_empty()
            && self.share_visits.is_empty()
            && self.presence.is_none()
    }
}

/// What the store did with a [`Batch`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Indices into `batch.sessions` that were rejected because their epoch is stale.
    pub fenced: Vec<usize>,
    /// True when the campaign has ended (or no longer exists): nothing was counted.
    pub ended: bool,
    /// The campaign's session TTL as the store keeps it (fixed by the first node that
    /// wrote a session, so nodes with different `--session-ttl` flags still agree on when
    /// a session is forgotten). The flusher refreshes open sessions well within it. `None`
    /// when the campaign has ended.
    pub session_ttl: Option<Duration>,
    /// Epochs of `batch.node`'s sockets whose session was claimed by another socket while
    /// this node still counted them: the node closes them (4001) and reports them in
    /// `left`. Until then the store subtracts them from the node's presence.
    pub moved: Vec<u64>,
}

/// One sign-up as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub viewer: String,
    /// Unix ms, as the node that took it saw the time.
    pub registered_at: i64,
    /// The sign-up fields as one JSON object string, as `campaign::signup::check_submission`
    /// returns them (`{}` when the campaign declares none).
    pub fields: String,
}

/// The series bucket of a count or a tick at `at_ms`: the start of its tick, but never
/// before the campaign's creation. Series windows start at `created_at` by default, so a
/// first bucket starting earlier (the campaign was created mid-tick) would fall outside
/// it and its counts would be missing from every default series read.
pub fn bucket_of(created_at: i64, at_ms: i64, tick: Duration) -> i64 {
    let tick_ms = tick.as_millis().max(1) as i64;
    (at_ms - at_ms.rem_euclid(tick_ms)).max(created_at)
}

/// Which series to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeriesMetric {
    /// Total viewers at each tick.
    Viewers,
    /// Interactions counted in each tick bucket, of one kind or (None) of all kinds.
    Interactions(Option<String>),
}

/// The store behind a node. See the module doc for the shape of the traffic.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A short name for logs and `/readyz` ("memory", "redis", "redis-cluster").
    fn kind(&self) -> &'static str;

    /// Answers when the store is reachable (for `/readyz`).
    async fn ping(&self) -> StoreResult<()>;

    /// Creates a campaign; `Conflict` when the id is taken.
    async fn create_campaign(&self, campaign: &Campaign) -> StoreResult<()>;
    async fn get_campaign(&self, id: &str) -> StoreResult<Option<Campaign>>;
    /// All campaigns, oldest first.
    async fn list_campaigns(&self) -> StoreResult<Vec<Campaign>>;
    /// Marks the campaign ended at `at_ms` (a no-op when already ended), drops every
    /// presence lease so `viewers` reads 0, and returns the campaign. `NotFound` if unknown.
    async fn end_campaign(&self, id: &str, at_ms: i64) -> StoreResult<Campaign>;

    /// Removes an ended campaign and everything kept for it: counters, series, sessions,
    /// registrations, presence, retry marks, sketches, share channels and its index entry.
    /// The id can be created again afterwards. `Live` when it has not ended (nothing is
    /// removed), `NotFound` if unknown.
    async fn delete_campaign(&self, id: &str) -> StoreResult<()>;

    /// Takes ownership of a session for a new socket: gives it a new epoch and returns
    /// `(epoch, acked_seq)`. Deltas carrying an older epoch are fenced from then on.
    ///
    /// Epochs come from one counter per campaign, so a new epoch never equals one handed
    /// out before, to this session or any other. That is what lets the store forget: a
    /// session's resume state (epoch and acked seq) lives at least the campaign's session
    /// TTL and at most twice it after it was last written (by a claim, a delta or a
    /// [`Batch::touch`]); a forgotten session is claimed again with acked seq 0, and a delta
    /// of a socket that still holds an old epoch finds no entry, or a newer epoch, and is
    /// fenced. Every viewer socket claims, including those whose session the node made up.
    ///
    /// Each session counts once: the store records where the session's socket is counted
    /// (`owner`). When a claim finds the session still counted by a node with a live lease
    /// (a crashed node whose lease has not expired, a half-open socket on a live node, or
    /// the claiming node itself), it marks the old socket as moved: stats and the peak
    /// subtract it from that node's lease at once, the node learns it in its next
    /// [`Applied::moved`], and a dead node's marks go with its lease.
    async fn claim_session(&self, campaign: &str, session: &str, owner: &Owner<'_>) -> StoreResult<(u64, u64)>;

    /// Applies one flush atomically: interaction counts (per kind, and into the series
    /// bucket), acked seqs, the unique and interactor sketches, share visits (bounded by
    /// `batch.max_share_channels`) and the presence lease. When presence is written, the peak (with its time and regions) is
    /// raised to the sum of the live leases if that is higher, so the peak is exact to the
    /// flush. Counts of an ended campaign are dropped (`Applied::ended`).
    async fn apply(&self, batch: &Batch) -> StoreResult<Applied>;

    /// Removes this node's presence lease for a campaign (graceful leave).
    async fn drop_presence(&self, campaign: &str, node: &str) -> StoreResult<()>;

    /// Reads the campaign's global numbers at `now_ms` (expired leases ignored). `kinds`
    /// lists the campaign's kinds so every one appears in `interactions`.
    async fn stats(&self, campaign: &str, kinds: &[String], now_ms: i64) -> StoreResult<Stats>;

    /// Records one tick: the viewers point of the series at `bucket_ms`, and the peak
    /// (with `at_ms` and the regions) when `viewers` exceeds it. Returns `(peak, peak_at)`.
    async fn record_tick(
        &self,
        campaign: &str,
        bucket_ms: i64,
        at_ms: i64,
        viewers: u64,
        regions: &BTreeMap<String, u64>,
    ) -> StoreResult<(u64, Option<i64>)>;

    /// Registers a viewer with its fields; `true` the first time, `false` after (the
    /// first registration wins: a later one changes nothing). Each registration gets the
    /// next number of the campaign (1, 2, ...), the order [`Store::registrations`] reads.
    async fn register(&self, campaign: &str, registration: &Registration) -> StoreResult<bool>;

    /// Up to `limit` registrations numbered above `after`, with their numbers, in order:
    /// the export reads page after page, passing the last number it got, so it never holds
    /// more than a page and an erasure meanwhile moves nothing it has yet to read.
    async fn registrations(&self, campaign: &str, after: u64, limit: usize) -> StoreResult<Vec<(u64, Registration)>>;

    /// Erases one person's sign-up (viewer id, time and fields); `false` when that viewer
    /// has none. The campaign's `registrations` count is an aggregate and stays. The same
    /// viewer registering again afterwards is a new registration (nothing is kept that
    /// could recognise it).
    async fn erase_registration(&self, campaign: &str, viewer: &str) -> StoreResult<bool>;

    /// Raw series points `(bucket_ms, value)` with `from_ms <= bucket_ms <= to_ms`,
    /// ascending. Buckets with nothing recorded are absent.
    async fn series(
        &self,
        campaign: &str,
        metric: &SeriesMetric,
        from_ms: i64,
        to_ms: i64,
    ) -> StoreResult<Vec<(i64, u64)>>;

    /// Replaces a campaign's webhook milestones (validated by the caller) and returns the
    /// campaign. Thresholds its metric has already passed do not fire. `NotFound` if unknown.
    async fn set_milestones(&self, id: &str, milestones: &Milestones) -> StoreResult<Campaign>;

    /// Webhook queues (see [`outbox`]) whose head may be due at `now_ms`, at most `limit`.
    async fn due_outboxes(&self, now_ms: i64, limit: usize) -> StoreResult<Vec<String>>;

    /// Leases the head of a campaign's webhook queue to `node` for `lease`.
    async fn lease_event(&self, campaign: &str, node: &str, lease: Duration) -> StoreResult<Lease>;

    /// Ends `node`'s lease of event `id`: delivered or dropped (it leaves the queue), or
    /// retried later.
    async fn settle_event(&self, campaign: &str, id: &str, node: &str, outcome: Settle) -> StoreResult<()>;

    /// Webhook events queued and not yet delivered or dropped, over every campaign.
    async fn pending_events(&self) -> StoreResult<u64>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_tick_aligned_but_never_before_the_campaign() {
        let tick = Duration::from_millis(100);
        assert_eq!(bucket_of(1_050, 1_080, tick), 1_050);
        assert_eq!(bucket_of(1_050, 1_100, tick), 1_100);
        assert_eq!(bucket_of(1_050, 1_234, tick), 1_200);
    }
}
