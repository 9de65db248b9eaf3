//! The memory store's sign-ups: each registration under its number, so the export pages
//! through them in order, and the count beside them, so an erasure leaves it as it was.

use std::collections::{BTreeMap, HashMap};

use crate::store::Registration;

#[derive(Debug, Default)]
pub(super) struct Signups {
    /// Registrations ever taken, erased ones included: the campaign's `registrations`.
    count: u64,
    /// Viewer → its registration's number.
    numbers: HashMap<String, u64>,
    /// Number → registration, in the order they came.
    by_number: BTreeMap<u64, Registration>,
}

impl Signups {
    pub(super) fn count(&self) -> u64 {
        self.count
    }

    /// Entries held (for `MemoryStore::footprint`).
    pub(super) fn len(&self) -> usize {
        self.numbers.len() + self.by_number.len()
    }

    /// `true` when the viewer had not registered.
    pub(super) fn add(&mut self, r: &Registration) -> bool {
        if self.numbers.contains_key(&r.viewer) {
            return false;
        }
        self.count += 1;
        self.numbers.insert(r.viewer.clone(), self.count);
        self.by_number.insert(self.count, r.clone());
        true
    }

    pub(super) fn page(&self, after: u64, limit: usize) -> Vec<(u64, Registration)> {
        self.by_number
            .range(after.saturating_add(1)..)
            .take(limit)
            .map(|(n, r)| (*n, r.clone()))
            .collect()
    }

    pub(super) fn erase(&mut self, viewer: &str) -> bool {
        match self.numbers.remove(viewer) {
            Some(n) => self.by_number.remove(&n).is_some(),
            None => false,
        }
    }
}
