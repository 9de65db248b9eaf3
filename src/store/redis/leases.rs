//! What this node last wrote of each presence lease, so that a write at schema 4 carries
//! only the entries that changed since (`keys.rs`, "Lease hashes"). With an org a lease
//! holds a node's ~400 upper units; a flush changes a handful of them.
//!
//! A write goes whole when nothing of the lease is known to be in the store: the node's
//! first write, the one after a call whose outcome is unknown (a timed-out call may or may
//! not have run), the one after the store found the lease gone (dropped when it expired),
//! and every write below schema 4. Entries travel as absolute numbers, so a write the
//! store already applied can be applied again.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::store::Presence;

/// The last acknowledged lease, by campaign and node (the simulator runs many nodes on
/// one store).
#[derive(Default)]
pub(super) struct Leases {
    stored: Mutex<HashMap<(String, String), Presence>>,
}

/// One lease write as `apply.lua` takes it.
pub(super) struct LeaseWrite {
    /// The whole lease, or its changes (an entry at 0 leaves the lease).
    pub(super) lease: Presence,
    pub(super) whole: bool,
}

impl Leases {
    /// What to write of `now`, `node`'s lease in `campaign`: its changes when `changes`
    /// (schema 4) and the last write was acknowledged, else all of it.
    pub(super) fn write(&self, campaign: &str, node: &str, now: &Presence, changes: bool) -> LeaseWrite {
        let stored = self.stored.lock().unwrap_or_else(|e| e.into_inner());
        match stored.get(&(campaign.to_owned(), node.to_owned())) {
            Some(was) if changes => LeaseWrite {
                lease: diff(was, now),
                whole: false,
            },
            _ => LeaseWrite {
                lease: now.clone(),
                whole: true,
            },
        }
    }

    /// After the call: `now` is what the store holds when `acknowledged` (and the write
    /// was at schema 4); otherwise nothing is known and the next write goes whole.
    pub(super) fn settle(&self, campaign: &str, node: &str, now: &Presence, acknowledged: bool) {
        let mut stored = self.stored.lock().unwrap_or_else(|e| e.into_inner());
        let key = (campaign.to_owned(), node.to_owned());
        if acknowledged {
            stored.insert(key, now.clone());
        } else {
            stored.remove(&key);
        }
    }

    /// The lease is gone (the node left, or the campaign ended).
    pub(super) fn forget(&self, campaign: &str, node: &str) {
        let mut stored = self.stored.lock().unwrap_or_else(|e| e.into_inner());
        stored.remove(&(campaign.to_owned(), node.to_owned()));
    }
}

/// The entries of `now` that differ from `was`, and 0 for those it no longer has; the
/// viewer total always (it is one field).
fn diff(was: &Presence, now: &Presence) -> Presence {
    let mut changes = Presence {
        viewers: now.viewers,
        regions: Default::default(),
    };
    for (k, &n) in &now.regions {
        if was.regions.get(k) != Some(&n) {
            changes.regions.insert(k.clone(), n);
        }
    }
    for k in was.regions.keys() {
        if !now.regions.contains_key(k) {
            changes.regions.insert(k.clone(), 0);
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(viewers: u64, regions: &[(&str, u64)]) -> Presence {
        Presence {
            viewers,
            regions: regions.iter().map(|&(k, n)| (k.to_owned(), n)).collect(),
        }
    }

    #[test]
    fn a_write_is_whole_until_one_is_acknowledged_then_only_changes() {
        let leases = Leases::default();
        let first = lease(3, &[("eu", 2), ("us", 1), ("u:p1", 3)]);
        let w = leases.write("c", "n1", &first, true);
        assert!(w.whole);
        assert_eq!(w.lease, first);
        leases.settle("c", "n1", &first, true);

        let next = lease(3, &[("eu", 3), ("u:p1", 3)]);
        let w = leases.write("c", "n1", &next, true);
        assert!(!w.whole);
        assert_eq!(
            w.lease,
            lease(3, &[("eu", 3), ("us", 0)]),
            "changed, gone; not the same"
        );
        // Another node's lease, and below schema 4, go whole.
        assert!(leases.write("c", "n2", &next, true).whole);
        assert!(leases.write("c", "n1", &next, false).whole);
    }

    #[test]
    fn after_an_unknown_outcome_or_a_leave_the_next_write_is_whole() {
        let leases = Leases::default();
        let p = lease(1, &[("eu", 1)]);
        leases.settle("c", "n1", &p, true);
        leases.settle("c", "n1", &p, false);
        assert!(leases.write("c", "n1", &p, true).whole);
        leases.settle("c", "n1", &p, true);
        leases.forget("c", "n1");
        assert!(leases.write("c", "n1", &p, true).whole);
    }
}
