//! This node's open sockets against `--max-connections`, and the place a socket reserves
//! while admission decides.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Open sockets of this node (viewers and operators) against `--max-connections`.
#[derive(Debug)]
pub struct Connections {
    open: AtomicUsize,
    max: usize,
}

impl Connections {
    pub fn new(max: usize) -> Self {
        Self {
            open: AtomicUsize::new(0),
            max,
        }
    }

    /// Takes a place, or `false` at the limit. Taken before the store round trip, so a
    /// connect storm cannot overshoot.
    pub(super) fn try_take(&self) -> bool {
        if self.open.fetch_add(1, Ordering::Relaxed) >= self.max {
            self.open.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    pub(super) fn give_back(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

/// Gives a reserved place back if admission fails after taking it.
pub(super) struct Reservation<'a> {
    connections: &'a Connections,
    /// Admission succeeded: the place is the socket's now, given back when it closes.
    kept: bool,
}

impl<'a> Reservation<'a> {
    pub(super) fn new(connections: &'a Connections) -> Self {
        Self {
            connections,
            kept: false,
        }
    }

    /// The socket was admitted: its place stays taken.
    pub(super) fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.kept {
            self.connections.give_back();
        }
    }
}
