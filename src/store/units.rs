//! The units seam: a campaign's numbers per unit of its organisation (spec v1.2, "The
//! organisation"). How each number is kept, and why there, is docs/consistency.md's
//! "Per-unit counting"; in short:
//!
//! - `viewers` of the upper levels (≤ `--unit-peak-depth`) ride in each node's presence
//!   lease as `u:<code>` entries beside its regions ([`unit_key`]), so they carry the
//!   campaign's guarantee: a session counts once (a moved socket's claim names its units
//!   too), a dead node's share goes with its lease. Their peaks come from the tick
//!   ([`super::Reads::record_tick`]), their unique viewers from the batch.
//! - `viewers` of the deeper levels: each node keeps a hash of its own, written with the
//!   units that changed since its last flush and expiring with its lease
//!   ([`Units::put_deep_viewers`]); a read sums the live nodes' hashes for the units asked.
//! - the cumulative numbers of every level (sessions, interactions by kind,
//!   registrations, share visits) are counters per unit, raised for a unit and each of its
//!   ancestors in the same atomic step that counts the campaign's own numbers, so a fenced
//!   delta or a retried batch adds nothing. The Redis store takes them there as one packed
//!   delta and folds them later into totals spread over the cluster
//!   ([`Units::fold_units`]), so its campaign slot's work per flush does not grow with the
//!   units touched.
//!
//! The store keeps no tree: every write names the unit's whole path ([`UnitPath`]), which
//! the node knows from its copy of the org version, and the one step that rolls counts
//! up later ([`Units::fold_units`]) is handed that copy.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use super::StoreResult;
use crate::org::Tree;

/// A unit's codes from the top down to the unit itself. [`UNASSIGNED`] alone is the path
/// of viewers without a known unit.
pub type UnitPath = Arc<[String]>;

/// The key `unassigned` is counted under: no unit code is empty, so it cannot collide.
pub const UNASSIGNED: &str = "";

pub use crate::protocol::stats::{unit_key, UNIT_PREFIX};

/// How often a campaign's unit counts are folded into the totals the live reads show
/// (see [`Units::fold_units`]): within the spec's 5 s for cumulative numbers with room
/// for the fold itself, and rare enough that a like-storm's second folds a unit's counts
/// in one `HINCRBY` per field, not one per flush.
pub const FOLD_EVERY: Duration = Duration::from_secs(2);

/// A unit's cumulative numbers, its descendants' included.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UnitTotals {
    /// Sessions that qualified (`--unique-after`) in the unit, once per unit while their
    /// resume state lives.
    pub sessions: u64,
    /// By kind (kinds with none left out).
    pub interactions: BTreeMap<String, u64>,
    pub registrations: u64,
    pub share_visits: u64,
}

impl UnitTotals {
    /// Interactions of every kind.
    pub fn interactions_total(&self) -> u64 {
        self.interactions.values().sum()
    }

    /// True when nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.sessions == 0 && self.interactions_total() == 0 && self.registrations == 0 && self.share_visits == 0
    }
}

/// An upper unit's peak and unique viewers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitPeak {
    pub peak_viewers: u64,
    pub peak_at: Option<i64>,
    pub unique_viewers: u64,
}

/// What one flush counts per unit, besides the sessions' interactions (which travel with
/// their [`super::SessionDelta`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitCounts {
    /// Sessions that qualified since the last flush, with their unit: each counts for its
    /// path unless the store already counted the session in that unit.
    pub sessions: Vec<(String, UnitPath)>,
    /// Share visits by the unit the link named.
    pub share_visits: Vec<(UnitPath, u64)>,
    /// `(upper unit code, viewer)`: viewers whose socket qualified in that unit, for its
    /// unique sketch.
    pub new_viewers: Vec<(String, String)>,
}

impl UnitCounts {
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty() && self.share_visits.is_empty() && self.new_viewers.is_empty()
    }
}

/// Per-unit reads, and the deep viewers each node writes.
#[async_trait]
pub trait Units: Send + Sync + 'static {
    /// Writes `node`'s open sockets in the deeper units of `campaign`: `(code, sockets)`
    /// of the units whose number changed since its last call (0 removes it), or, with
    /// `full`, its whole map (the hash is replaced); and renews the node's hash for
    /// `lease` (it is gone `lease` after the node's last call). Returns whether the hash
    /// was there before the call: when it was not (expired while the node's writes
    /// failed), changes alone leave it incomplete and the node writes it in full next.
    async fn put_deep_viewers(
        &self,
        campaign: &str,
        node: &str,
        changes: &[(String, u64)],
        full: bool,
        lease: Duration,
    ) -> StoreResult<bool>;

    /// The deep viewers of each of `codes`, summed over the hashes of `nodes` (the live
    /// ones, from the stats read).
    async fn deep_viewers(&self, campaign: &str, nodes: &[String], codes: &[String]) -> StoreResult<Vec<u64>>;

    /// Every deep unit's viewers summed over the hashes of `nodes`, units with none left
    /// out: one read of each node's whole hash, as long as that node's units with sockets.
    /// For a whole level at once (the per-level report, the simulator's check), where
    /// [`Self::deep_viewers`] would read every node for every unit of the level.
    async fn all_deep_viewers(&self, campaign: &str, nodes: &[String]) -> StoreResult<HashMap<String, u64>>;

    /// The cumulative numbers of each of `codes`, with every one of `kinds` (0 included).
    async fn unit_totals(&self, campaign: &str, kinds: &[String], codes: &[String]) -> StoreResult<Vec<UnitTotals>>;

    /// Brings [`Self::unit_totals`] up to date with the counts taken so far (the Redis
    /// store folds them into its totals after the fact; the memory store counts in place).
    /// With a `lease`, at most one caller per `lease` does the work and the others return
    /// at once (the live reads, exact within seconds); `None` folds everything pending now
    /// (a report after the event).
    /// `tree` is the campaign's org version: the counts name their unit only, and the
    /// fold adds each to the unit's ancestors too.
    async fn fold_units(&self, campaign: &str, tree: &Arc<Tree>, lease: Option<Duration>) -> StoreResult<()>;

    /// The peak and unique viewers of each of `codes` (upper units).
    async fn unit_peaks(&self, campaign: &str, codes: &[String]) -> StoreResult<Vec<UnitPeak>>;
}
