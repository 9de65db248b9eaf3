//! A session claimed later: a viewer socket admitted while the store could not claim its
//! session (down, failing over, or slower than `--claim-wait`).
//!
//! Until its claim lands the socket has no epoch, so nothing of it may reach the store: it
//! is not in the node's presence share (its tally counts it in `claiming`, which keeps the
//! tally alive but is never published), and the interactions it sends are held here, not
//! in a session slot. A task retries the claim; when it lands the session gets its slot
//! (epoch and stored acked seq) and joins the tally exactly as a socket claimed at
//! admission would, so it enters presence in the flush that follows, the store's
//! "each session once" and fencing hold unchanged, and the socket replays what it held
//! against the stored acked seq (a resend at or below it is dropped as on any socket).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::Notify;

use super::session::SessionSlot;
use super::units::Place;
use super::CampaignTally;
use crate::metrics::Metrics;
use crate::store::{Counting, Owner, StoreResult};

/// Interactions one socket holds while its claim is pending; past it new ones are refused
/// with `store_unavailable` (as at `--max-pending`). Twelve seconds at the default rate
/// limit of 20 a second plus its burst of 40: a store failover takes less, and 24 bytes
/// each keep a socket's worst case at 6 KiB.
pub const MAX_HELD: usize = 256;

/// Longest pause between two tries of a pending claim: a viewer who connected during an
/// outage is counted at most this long after the store is back.
pub const MAX_RETRY: Duration = Duration::from_secs(1);

/// One interaction held until the claim lands: `(kind index, count, seq)`.
pub type Held = (usize, u64, Option<u64>);

/// Where the claim is.
enum State {
    /// Not yet claimed.
    Waiting,
    /// Claimed: the session's slot, joined to the tally.
    Claimed(Arc<SessionSlot>),
    /// The socket closed before the claim landed.
    Gone,
}

/// A viewer socket's session waiting for its claim, shared by the socket and the task
/// that retries the claim.
pub struct PendingClaim {
    pub session: String,
    pub viewer: String,
    /// The socket's region index in its tally.
    pub region: usize,
    /// The unit it counts in (campaigns with an org).
    pub unit: Option<Arc<Place>>,
    /// The client speaks protocol 2: it was welcomed with `acked_seq: null` and is told
    /// the stored acked seq with an `ack` when the claim lands. Other clients get their
    /// welcome only then.
    pub proto2: bool,
    /// `--tick` in ms, for the welcome a protocol-1 client gets when the claim lands.
    pub tick_ms: u64,
    state: Mutex<State>,
    /// What the socket sent before the claim landed, in order (socket side only).
    held: Mutex<Vec<Held>>,
    /// Wakes the socket when the claim landed.
    pub landed: Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl PendingClaim {
    /// A socket of `tally` waiting for its claim; counted in the tally's `claiming` until
    /// it lands or the socket closes.
    pub fn new(
        tally: &CampaignTally,
        session: String,
        viewer: String,
        (region, unit): (usize, Option<Arc<Place>>),
        proto2: bool,
        tick_ms: u64,
    ) -> Self {
        tally.claiming.fetch_add(1, Ordering::Relaxed);
        Self {
            session,
            viewer,
            region,
            unit,
            proto2,
            tick_ms,
            state: Mutex::new(State::Waiting),
            held: Mutex::new(Vec::new()),
            landed: Notify::new(),
        }
    }

    /// The session's slot once the claim landed.
    pub fn slot(&self) -> Option<Arc<SessionSlot>> {
        match &*lock(&self.state) {
            State::Claimed(slot) => Some(slot.clone()),
            _ => None,
        }
    }

    /// Socket side, before it saw the claim land: holds one interaction; false when the
    /// socket already holds [`MAX_HELD`].
    pub fn hold(&self, held: Held) -> bool {
        let mut list = lock(&self.held);
        if list.len() >= MAX_HELD {
            return false;
        }
        list.push(held);
        true
    }

    /// Socket side, once it adopted the slot: what it held, in order.
    pub fn take_held(&self) -> Vec<Held> {
        std::mem::take(&mut *lock(&self.held))
    }

    /// The highest seq held, so the socket can check the next one follows it.
    pub fn last_held_seq(&self) -> Option<u64> {
        lock(&self.held).iter().rev().find_map(|h| h.2)
    }

    /// Claim side: the store claimed the session as `(epoch, acked)`. The slot joins the
    /// tally (presence from the next flush); when the socket is already gone the epoch is
    /// reported as left instead, so the store stops counting it as this node's.
    pub fn land(&self, tally: &CampaignTally, epoch: u64, acked: u64) {
        let mut state = lock(&self.state);
        match *state {
            State::Gone => {
                tally.release_unused(&self.session, epoch);
                return;
            }
            State::Claimed(_) => return,
            State::Waiting => {}
        }
        let slot = Arc::new(
            SessionSlot::new(
                self.session.clone(),
                self.viewer.clone(),
                epoch,
                acked,
                tally.campaign.kinds.len(),
            )
            .with_unit(self.unit.clone()),
        );
        tally.viewer_joined(self.region, &slot);
        tally.claiming.fetch_sub(1, Ordering::Relaxed);
        *state = State::Claimed(slot);
        drop(state);
        self.landed.notify_one();
    }

    /// Socket side, as it closes: the slot to leave the tally with when the claim landed;
    /// otherwise the claim is abandoned (a claim still landing releases its epoch).
    pub fn abandon(&self, tally: &CampaignTally) -> Option<Arc<SessionSlot>> {
        let mut state = lock(&self.state);
        match std::mem::replace(&mut *state, State::Gone) {
            State::Claimed(slot) => Some(slot),
            State::Waiting => {
                tally.claiming.fetch_sub(1, Ordering::Relaxed);
                None
            }
            State::Gone => None,
        }
    }

    fn is_gone(&self) -> bool {
        matches!(&*lock(&self.state), State::Gone)
    }
}

/// What the claim task needs besides the claim.
pub struct Claimer {
    pub store: Arc<dyn Counting>,
    pub metrics: Arc<Metrics>,
    pub node: String,
    /// The socket's region name (as in presence).
    pub region: String,
    /// The socket's unit (campaigns with an org): its claim names the upper units too.
    pub unit: Option<Arc<Place>>,
    /// `--presence-ttl`.
    pub lease: Duration,
    /// The first pause between tries (`--flush-interval`), doubled up to [`MAX_RETRY`].
    pub retry: Duration,
}

impl Claimer {
    /// One claim of `session`, owning everything it borrows, so admission can stop
    /// waiting for it and hand it to [`claim_later`](Self::claim_later) still running:
    /// a claim that was sent is never dropped halfway (it may have landed).
    pub fn claim(&self, campaign: &str, session: &str) -> BoxFuture<'static, StoreResult<(u64, u64)>> {
        let (store, campaign, session) = (self.store.clone(), campaign.to_owned(), session.to_owned());
        let (node, region, lease) = (self.node.clone(), self.region.clone(), self.lease);
        let unit = self.unit.clone();
        Box::pin(async move {
            let owner = Owner {
                node: &node,
                region: &region,
                units: unit.as_ref().map_or(&[][..], |p| &p.upper[..]),
                lease,
            };
            store.claim_session(&campaign, &session, &owner).await
        })
    }

    /// Finishes `first` (the claim admission stopped waiting for, if any), then retries
    /// until the claim lands or the socket closes.
    pub async fn claim_later(
        self,
        claim: Arc<PendingClaim>,
        tally: Arc<CampaignTally>,
        mut first: Option<BoxFuture<'static, StoreResult<(u64, u64)>>>,
    ) {
        let mut pause = self.retry.max(Duration::from_millis(10));
        loop {
            if claim.is_gone() || tally.ended.is_cancelled() {
                return;
            }
            let result = match first.take() {
                Some(f) => f.await,
                None => self.claim(&tally.campaign.id, &claim.session).await,
            };
            match result {
                Ok((epoch, acked)) => return claim.land(&tally, epoch, acked),
                Err(e) => {
                    self.metrics.store_errors.inc();
                    tracing::debug!(campaign = %tally.campaign.id, error = %e, "claim failed; retrying");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = tally.ended.cancelled() => return,
            }
            pause = (pause * 2).min(MAX_RETRY);
        }
    }
}
