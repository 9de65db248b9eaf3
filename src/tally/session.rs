//! One viewer session's counts, written by its socket task and read by the flusher without a
//! lock. The socket is the only writer, the flusher the only reader, so a seqlock over
//! cumulative counters is enough: the flusher always sees a consistent `(seq, counts)` pair
//! and sends the difference from what it flushed last. A failed flush simply leaves
//! `flushed` where it was; the next one sends the larger difference. Buffering while the
//! store is down costs nothing extra.

use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

use super::units::Place;

/// Counters of one session on this node.
pub struct SessionSlot {
    pub session: String,
    pub viewer: String,
    /// Ownership epoch from `Counting::claim_session`.
    pub epoch: u64,
    /// The unit the socket counts in (campaigns with an org).
    pub unit: Option<Arc<Place>>,
    /// Seqlock version: odd while the socket is writing.
    version: AtomicU64,
    /// Highest accepted `seq` (cumulative, never lowered).
    seq: AtomicU64,
    /// Cumulative counts per kind index.
    counts: Box<[AtomicU64]>,
    /// Set by the socket when it has something unflushed; cleared by the flusher.
    dirty: AtomicBool,
    /// Flusher-owned: counts and seq already written to the store.
    flushed_counts: Box<[AtomicU64]>,
    flushed_seq: AtomicU64,
    /// Highest seq the store has durably taken (what the socket may ack).
    acked: AtomicU64,
    /// Set when the store fenced this session: it was resumed on another socket.
    fenced: AtomicBool,
    /// Wakes the socket when `acked` moved or the session was fenced.
    pub wake: Notify,
    /// Flusher-owned: this socket stayed open `--unique-after`, so its viewer counts in
    /// `unique_viewers` and, with counts, in `interactors`. Per socket: a connect loop
    /// qualifies nobody.
    qualified: AtomicBool,
}

/// A consistent read of a session's cumulative counters.
pub struct Snapshot {
    pub seq: u64,
    pub counts: Vec<u64>,
}

impl SessionSlot {
    pub fn new(session: String, viewer: String, epoch: u64, acked: u64, kinds: usize) -> Self {
        let zeros = || {
            (0..kinds)
                .map(|_| AtomicU64::new(0))
                .collect::<Vec<_>>()
                .into_boxed_slice()
        };
        Self {
            session,
            viewer,
            epoch,
            unit: None,
            version: AtomicU64::new(0),
            seq: AtomicU64::new(acked),
            counts: zeros(),
            dirty: AtomicBool::new(false),
            flushed_counts: zeros(),
            flushed_seq: AtomicU64::new(acked),
            acked: AtomicU64::new(acked),
            fenced: AtomicBool::new(false),
            wake: Notify::new(),
            qualified: AtomicBool::new(false),
        }
    }

    /// The socket counts in `unit` (see [`super::units`]).
    pub fn with_unit(mut self, unit: Option<Arc<Place>>) -> Self {
        self.unit = unit;
        self
    }

    /// Socket side: counts `n` of kind `kind` (and `seq` when given). Returns true when the
    /// slot just became dirty, i.e. the caller must queue it for the flusher.
    pub fn add(&self, kind: usize, n: u64, seq: Option<u64>) -> bool {
        let v = self.version.load(Ordering::Relaxed);
        self.version.store(v + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        self.counts[kind].fetch_add(n, Ordering::Relaxed);
        if let Some(s) = seq {
            self.seq.store(s, Ordering::Relaxed);
        }
        self.version.store(v + 2, Ordering::Release);
        !self.dirty.swap(true, Ordering::SeqCst)
    }

    /// Flusher side: clears the dirty mark, then reads a consistent snapshot. Clearing first
    /// means a write racing with this read re-queues the slot rather than being missed.
    pub fn take_snapshot(&self) -> Snapshot {
        self.dirty.store(false, Ordering::SeqCst);
        loop {
            let v1 = self.version.load(Ordering::Acquire);
            if v1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let seq = self.seq.load(Ordering::Relaxed);
            let counts = self.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
            fence(Ordering::Acquire);
            if self.version.load(Ordering::Relaxed) == v1 {
                return Snapshot { seq, counts };
            }
        }
    }

    /// Flusher side: what `snap` adds over the last successful flush, as `(kind index, n)`,
    /// and the seq to store (0 when no new sequenced message is covered).
    pub fn delta(&self, snap: &Snapshot) -> (Vec<(usize, u64)>, u64) {
        let counts = snap
            .counts
            .iter()
            .zip(self.flushed_counts.iter())
            .enumerate()
            .filter_map(|(i, (now, done))| {
                let d = now - done.load(Ordering::Relaxed);
                (d > 0).then_some((i, d))
            })
            .collect();
        let seq = if snap.seq > self.flushed_seq.load(Ordering::Relaxed) {
            snap.seq
        } else {
            0
        };
        (counts, seq)
    }

    /// Flusher side, after the store took `snap`: advance the flushed mark and release acks.
    pub fn mark_flushed(&self, snap: &Snapshot) {
        self.advance(snap);
        if snap.seq > self.acked.load(Ordering::Relaxed) {
            self.acked.store(snap.seq, Ordering::Release);
            self.wake.notify_one();
        }
    }

    /// Flusher side, when the store refused `snap` because the campaign has ended: its
    /// counts are settled without being counted, so they are never resent and never acked
    /// (an ack means counted); the socket closes with 4000 and the client treats what was
    /// unacked as not counted.
    pub fn mark_refused(&self, snap: &Snapshot) {
        self.advance(snap);
    }

    /// Flusher side, when the store fenced this session: its unflushed counts belong to a
    /// socket that lost the session, so they are dropped (the client resends them from the
    /// new socket's `acked_seq`), and the socket is told to close.
    pub fn mark_fenced(&self, snap: &Snapshot) {
        self.advance(snap);
        self.fenced.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Moves the flushed marks to `snap`: its counts are settled, one way or the other.
    fn advance(&self, snap: &Snapshot) {
        for (done, now) in self.flushed_counts.iter().zip(&snap.counts) {
            done.store(*now, Ordering::Relaxed);
        }
        self.flushed_seq.store(snap.seq, Ordering::Relaxed);
    }

    /// Socket side: the highest seq durably taken by the store.
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Acquire)
    }

    /// Flusher side, when the store says another socket claimed this session while this
    /// one was still counted here: the socket closes (4001) at once, so this node stops
    /// counting it; counts it still holds are fenced at the next flush.
    pub fn mark_moved(&self) {
        self.fenced.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    pub fn is_fenced(&self) -> bool {
        self.fenced.load(Ordering::Acquire)
    }

    /// Flusher side: the socket stayed open `--unique-after`. Returns whether it has
    /// interacted already: its viewer is then an interactor too, though the counts went
    /// out without it (see [`Self::interactor`]).
    pub fn qualify(&self) -> bool {
        self.qualified.store(true, Ordering::Relaxed);
        self.counts.iter().any(|c| c.load(Ordering::Relaxed) > 0)
    }

    /// Flusher side: the viewer that counts in `interactors` for this socket's counts: its
    /// id once the socket qualified, `""` before (the counts count, the viewer not yet).
    pub fn interactor(&self) -> &str {
        if self.qualified.load(Ordering::Relaxed) {
            &self.viewer
        } else {
            ""
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_is_what_was_added_since_the_last_flush() {
        let s = SessionSlot::new("s".into(), "v".into(), 1, 3, 2);
        assert!(s.add(0, 2, Some(4)));
        assert!(!s.add(1, 5, Some(5)), "already dirty");
        let snap = s.take_snapshot();
        assert_eq!(s.delta(&snap), (vec![(0, 2), (1, 5)], 5));
        // A failed flush leaves the mark: the next delta includes everything.
        assert!(s.add(0, 1, None));
        let snap = s.take_snapshot();
        assert_eq!(s.delta(&snap), (vec![(0, 3), (1, 5)], 5));
        s.mark_flushed(&snap);
        assert_eq!(s.acked(), 5);
        // Nothing is left unflushed.
        let snap = s.take_snapshot();
        assert_eq!(s.delta(&snap), (vec![], 0));
    }
}
