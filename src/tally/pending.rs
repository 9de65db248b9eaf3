//! Interactions taken by sockets and not yet in the store, node-wide. Sockets add what
//! they take, the flusher subtracts what the store took; the difference is what a store
//! outage leaves buffered, and `--max-pending` bounds it.
//!
//! The bound applies only while the store is failing: a healthy store takes every
//! flush, so whatever the message rate or `count`, what sits here is at most about one
//! flush interval of interactions (and a slow store at most one call timeout of them). The
//! flusher says which it is: failing once a batch fails, healthy again once one lands.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The node's count of unflushed interactions, with its limit.
#[derive(Debug)]
pub struct Pending {
    count: AtomicU64,
    limit: u64,
    /// Set by the flusher: the last flush round's batches failed.
    store_failing: AtomicBool,
}

impl Pending {
    pub fn new(limit: u64) -> Self {
        Self {
            count: AtomicU64::new(0),
            limit,
            store_failing: AtomicBool::new(false),
        }
    }

    /// Takes `n` more unless the store is failing and the buffer is already at its limit
    /// (then the caller refuses the message: nothing is counted that could not be kept).
    pub fn try_take(&self, n: u64) -> bool {
        if self.store_failing.load(Ordering::Relaxed) && self.count.load(Ordering::Relaxed) >= self.limit {
            return false;
        }
        self.count.fetch_add(n, Ordering::Relaxed);
        true
    }

    /// `n` interactions reached the store (or were settled another way).
    pub fn settle(&self, n: u64) {
        self.count.fetch_sub(n, Ordering::Relaxed);
    }

    /// Flusher side: whether the store failed the last batches it was sent.
    pub fn set_store_failing(&self, failing: bool) {
        self.store_failing.store(failing, Ordering::Relaxed);
    }

    pub fn is_store_failing(&self) -> bool {
        self.store_failing.load(Ordering::Relaxed)
    }

    pub fn get(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_healthy_store_is_never_a_reason_to_refuse() {
        let p = Pending::new(10);
        for _ in 0..100 {
            assert!(p.try_take(100));
        }
        assert_eq!(p.get(), 10_000);
    }

    #[test]
    fn a_failing_store_refuses_only_once_the_limit_is_reached() {
        let p = Pending::new(10);
        p.set_store_failing(true);
        assert!(p.try_take(9));
        assert!(p.try_take(5), "below the limit a whole message is taken");
        assert!(!p.try_take(1));
        p.set_store_failing(false);
        assert!(p.try_take(1), "healthy again: taken, over the limit or not");
        p.settle(15);
        assert_eq!(p.get(), 0);
        p.set_store_failing(true);
        assert!(p.try_take(1));
    }
}
