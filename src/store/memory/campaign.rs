//! One campaign's state in the embedded store: its counts, sessions, presence leases and
//! history, with the bookkeeping that keeps them bounded.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use super::generations::Generations;
use super::signups;
use super::units::UnitData;
use crate::campaign::Campaign;
use crate::store::counting::counted_keys;
use crate::store::hll::HyperLogLog;
use crate::store::Presence;

#[derive(Debug)]
pub(super) struct Lease {
    pub(super) presence: Presence,
    pub(super) updated_at: i64,
    pub(super) expires: Instant,
}

#[derive(Debug)]
pub(super) struct CampaignData {
    pub(super) campaign: Campaign,
    /// Order of creation, for listing oldest first.
    pub(super) created_seq: u64,
    pub(super) interactions: HashMap<String, u64>,
    /// Session → its resume state, forgotten within two session TTLs of its last write.
    pub(super) sessions: Generations<Entry>,
    /// Epoch of a socket whose session was claimed away while its node still counted it →
    /// (node, region): subtracted from that node's lease until the node says it let go.
    pub(super) moved: HashMap<u64, (String, String)>,
    /// Leases started by a node's claims before its first presence write (node → expiry).
    pub(super) claim_leases: HashMap<String, Instant>,
    /// Last epoch handed out; never reset, so epochs are never reused (not even after a
    /// session was forgotten).
    pub(super) last_epoch: u64,
    /// Last applied batch number and its fenced indices, per origin, forgotten like sessions.
    pub(super) applied: Generations<(u64, Vec<usize>)>,
    pub(super) uniques: HyperLogLog,
    pub(super) interactors: HyperLogLog,
    pub(super) registrations: signups::Signups,
    pub(super) shares: BTreeMap<String, u64>,
    pub(super) presence: HashMap<String, Lease>,
    pub(super) peak: u64,
    pub(super) peak_at: Option<i64>,
    pub(super) regions_at_peak: BTreeMap<String, u64>,
    pub(super) viewer_series: BTreeMap<i64, u64>,
    /// bucket → kind → count
    pub(super) interaction_series: BTreeMap<i64, HashMap<String, u64>>,
    /// The numbers per unit of the campaign's org.
    pub(super) units: UnitData,
}

/// A session's resume state.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub(super) epoch: u64,
    pub(super) acked: u64,
    /// `(node, where)` counting the session's socket (`where`: [`Owner::counted_in`]);
    /// `None` once it left.
    ///
    /// [`Owner::counted_in`]: crate::store::Owner::counted_in
    pub(super) owner: Option<(String, String)>,
}

impl CampaignData {
    /// Moves the forgetful parts to the generation of `now`.
    pub(super) fn roll(&mut self, now: Instant) {
        self.sessions.roll(now);
        self.applied.roll(now);
        self.units.sessions.roll(now);
    }

    /// True while `node` holds a lease (from presence or from a claim).
    pub(super) fn alive(&self, node: &str, now: Instant) -> bool {
        self.presence.get(node).is_some_and(|l| l.expires > now)
            || self.claim_leases.get(node).is_some_and(|e| *e > now)
    }

    /// Drops expired leases, and with them the moved marks of their nodes.
    pub(super) fn prune(&mut self, now: Instant) {
        self.presence.retain(|_, l| l.expires > now);
        self.claim_leases.retain(|_, e| *e > now);
        let (presence, claims) = (&self.presence, &self.claim_leases);
        self.moved
            .retain(|_, (node, _)| presence.contains_key(node) || claims.contains_key(node));
    }

    /// A node's presence as counted: its lease less its sockets that moved away.
    pub(super) fn counted(&self, node: &str, lease: &Lease) -> Presence {
        let mut p = lease.presence.clone();
        for (_, counted_in) in self.moved.values().filter(|(n, _)| n == node) {
            p.viewers = p.viewers.saturating_sub(1);
            for key in counted_keys(counted_in) {
                if let Some(r) = p.regions.get_mut(key) {
                    *r = r.saturating_sub(1);
                }
            }
        }
        p.regions.retain(|_, n| *n > 0);
        p
    }
}
