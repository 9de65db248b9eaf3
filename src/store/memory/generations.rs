//! Forgetting without a timer per entry, for the embedded store's sessions and batch
//! numbers.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Entries kept at least `ttl` and at most `2·ttl` after their last write, without a
/// timer per entry: one map per generation of length `ttl` (counted from `origin`),
/// writes go to the current one, reads look in it and then in the previous one, and
/// anything older is dropped when the generation moves on. The Redis store keeps the
/// same shape in two hashes (`keys.rs`).
#[derive(Debug)]
pub(super) struct Generations<V> {
    ttl: Duration,
    origin: Instant,
    g: u128,
    cur: HashMap<String, V>,
    prev: HashMap<String, V>,
}

impl<V> Generations<V> {
    pub(super) fn new(ttl: Duration, origin: Instant) -> Self {
        Self {
            ttl,
            origin,
            g: 0,
            cur: HashMap::new(),
            prev: HashMap::new(),
        }
    }

    /// Moves to the generation of `now`, dropping what is older than the previous one.
    pub(super) fn roll(&mut self, now: Instant) {
        let g = now.saturating_duration_since(self.origin).as_nanos() / self.ttl.as_nanos().max(1);
        if g == self.g {
            return;
        }
        if g == self.g + 1 {
            self.prev = std::mem::take(&mut self.cur);
        } else {
            self.prev.clear();
            self.cur.clear();
        }
        self.g = g;
    }

    pub(super) fn get(&self, key: &str) -> Option<&V> {
        self.cur.get(key).or_else(|| self.prev.get(key))
    }

    /// Writes into the current generation (so the entry lives another `ttl` at least).
    pub(super) fn put(&mut self, key: &str, value: V) {
        self.prev.remove(key);
        self.cur.insert(key.to_owned(), value);
    }

    /// Forgets `key` now.
    pub(super) fn remove(&mut self, key: &str) {
        self.cur.remove(key);
        self.prev.remove(key);
    }

    pub(super) fn ttl(&self) -> Duration {
        self.ttl
    }

    pub(super) fn len(&self) -> usize {
        self.cur.len() + self.prev.len()
    }

    pub(super) fn clear(&mut self) {
        self.cur.clear();
        self.prev.clear();
    }
}
