//! The counting seam: what the socket layer and the flusher write. A socket claims its
//! session, the flusher applies one [`Batch`] per campaign per flush interval (one round
//! trip, applied atomically) and leaves presence at shutdown.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use super::units::{UnitCounts, UnitPath};
use super::StoreResult;

/// One session's counts since its last successful flush.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDelta {
    /// Client-chosen (or server-assigned) session id.
    pub session: String,
    /// The viewer behind the session, added to the `interactors` sketch when `counts` is
    /// non-empty; `""` while the socket has not stayed open `--unique-after` (its counts
    /// count, its viewer not yet: see [`Batch::interactors`]).
    pub viewer: String,
    /// The ownership epoch this node got from [`Counting::claim_session`]. A delta whose epoch
    /// is no longer the session's current one was sent through a node that lost the session
    /// to a reconnect elsewhere, and a delta whose session the store has forgotten (see
    /// [`Counting::claim_session`]) has no current epoch at all: either is rejected whole, so a
    /// resend is never counted twice.
    pub epoch: u64,
    /// Highest `seq` covered by this delta (0: no sequenced message in it). Stored as the
    /// session's acked seq, never lowered.
    pub seq: u64,
    /// `(kind, count)` pairs, counts > 0.
    pub counts: Vec<(String, u64)>,
    /// The unit the session's socket counts in, for campaigns with an org: its counts are
    /// the unit's (and each ancestor's) too, when the delta is accepted.
    pub unit: Option<UnitPath>,
}

/// Where the socket a session is claimed for is counted.
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    /// The claiming node's name in presence.
    pub node: &'a str,
    /// The region the socket counts under (as in [`Presence::regions`]).
    pub region: &'a str,
    /// The upper units (`--unit-peak-depth`) the socket counts in, as their lease keys
    /// ([`super::units::unit_key`]): a moved mark subtracts the socket from them too.
    pub units: &'a [String],
    /// The node's presence lease (`--presence-ttl`). A node's first claim in a campaign
    /// starts its lease (with 0 viewers), so a session claimed away from it before its
    /// first flush is still known to be counted there.
    pub lease: Duration,
}

impl Owner<'_> {
    /// Where the socket counts, as one string: its region, then its upper units' lease
    /// keys, `;`-separated (neither a region nor a unit code holds `;` or `|`). Stored with
    /// the session's entry and its moved mark, so a mark subtracts the socket from each.
    pub fn counted_in(&self) -> String {
        let mut s = self.region.to_owned();
        for u in self.units {
            s.push(';');
            s.push_str(u);
        }
        s
    }
}

/// The keys a moved mark's [`Owner::counted_in`] string subtracts one from.
pub fn counted_keys(counted_in: &str) -> impl Iterator<Item = &str> {
    counted_in.split(';')
}

/// This node's share of a campaign's live audience, published under a lease.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Presence {
    /// Open viewer sockets of the campaign on this node.
    pub viewers: u64,
    /// The same sockets by region (regions with 0 may be omitted), and by upper unit under
    /// `u:<code>` keys ([`super::units::unit_key`]; each socket in every upper unit of its
    /// path): stored and summed as regions are, split from them when read.
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
    /// Viewer ids whose socket qualified since the last flush: it stayed open
    /// `--unique-after` (for the `unique_viewers` sketch).
    pub new_viewers: Vec<String>,
    /// Viewer ids whose socket qualified since the last flush after it had interacted (for
    /// the `interactors` sketch: its counts went out with viewer `""`).
    pub interactors: Vec<String>,
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
    /// kept alive as if they had (see [`Counting::claim_session`]). Stale epochs are ignored.
    pub touch: Vec<(String, u64)>,
    /// This node's name in presence, for `left` and [`Applied::moved`] ("": none).
    pub node: String,
    /// `(session, epoch)` of this node's sockets that closed since the last batch, and
    /// `("", epoch)` for epochs of [`Applied::moved`] this node no longer counts: the
    /// store stops counting them as moved away from this node. A batch with `left` writes
    /// `presence`, which no longer counts them: the store cannot tell whether the lease it
    /// holds still does, and taking the marks off such a lease would count them twice.
    pub left: Vec<(String, u64)>,
    /// Per-unit counts besides the sessions' interactions.
    pub units: UnitCounts,
}

impl Batch {
    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
            && self.touch.is_empty()
            && self.left.is_empty()
            && self.new_viewers.is_empty()
            && self.interactors.is_empty()
            && self.share_visits.is_empty()
            && self.presence.is_none()
            && self.units.is_empty()
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

/// Sessions, counts and presence: the write path of a like.
#[async_trait]
pub trait Counting: Send + Sync + 'static {
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
}
