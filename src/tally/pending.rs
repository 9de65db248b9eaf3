//! Interactions taken by sockets and not yet in the store, node-wide. Sockets add what
//! they take, the flusher subtracts what the store took; the difference is what a store
//! outage leaves buffered, and `--max-pending` bounds it.

use std::sync::atomic::{AtomicU64, Ordering};

/// The node's count of unflushed interactions, with its limit.
#[derive(Debug)]
pub struct Pending {
    count: AtomicU64,
    limit: u64,
}

impl Pending {
    pub fn new(limit: u64) -> Self {
        Self {
            count: AtomicU64::new(0),
            limit,
        }
    }

    /// Takes `n` more unless the buffer is already at its limit (then the caller refuses
    /// the message: nothing is counted that could not be kept).
    pub fn try_take(&self, n: u64) -> bool {
        if self.count.load(Ordering::Relaxed) >= self.limit {
            return false;
        }
        self.count.fetch_add(n, Ordering::Relaxed);
        true
    }

    /// `n` interactions reached the store (or were settled another way).
    pub fn settle(&self, n: u64) {
        self.count.fetch_sub(n, Ordering::Relaxed);
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
    fn refuses_only_once_the_limit_is_reached() {
        let p = Pending::new(10);
        assert!(p.try_take(9));
        assert!(p.try_take(5), "below the limit a whole message is taken");
        assert!(!p.try_take(1));
        p.settle(14);
        assert_eq!(p.get(), 0);
        assert!(p.try_take(1));
    }
}
