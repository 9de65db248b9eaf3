//! Step three: every flush interval, turn each campaign's tally into ONE [`Batch`] and hand
//! it to the store; on success advance the flushed marks and wake the sockets to ack.
//!
//! On failure nothing moves: the batch is kept and resent unchanged (same origin and
//! number, so a store that did apply it before the reply was lost recognises the retry),
//! no newer batch is built until it lands, the counts that keep coming stay in the session
//! slots (bounded by `--max-pending`), and acks are withheld.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use tokio_util::sync::CancellationToken;

use super::session::{SessionSlot, Snapshot};
use super::{CampaignTally, Tallies};
use crate::metrics::Metrics;
use crate::store::{bucket_of, Batch, Counting, SessionDelta, Units, FOLD_EVERY};

/// Campaigns flushed concurrently: one slow campaign (or a hung store call) must not hold
/// back the others, yet a node with thousands of campaigns must not open thousands of
/// requests at once.
const FLUSH_CONCURRENCY: usize = 64;

/// Quiet sessions refreshed per batch: a round over 100,000 open sockets takes 20 flushes
/// (2 s at the default interval), and one batch stays a few dozen Redis commands.
const TOUCH_PER_BATCH: usize = 5_000;

/// Refresh rounds per session TTL. Resume state lives at least one TTL after its last
/// write, so a round every third of it leaves two more rounds to land when one is late
/// (a store outage, a long round).
const TOUCH_ROUNDS_PER_TTL: u32 = 3;

/// Asks the flusher for an immediate flush; the reply says whether everything was written.
pub type FlushNow = tokio::sync::mpsc::Sender<tokio::sync::oneshot::Sender<bool>>;

/// A batch on its way to the store, with what is needed to settle it.
struct InFlight {
    batch: Batch,
    /// The sessions whose snapshots went into the batch (some may have had no delta).
    slots: Vec<Arc<SessionSlot>>,
    snaps: Vec<Snapshot>,
    /// For each `batch.sessions[i]`, its index in `slots`.
    entries: Vec<usize>,
    /// Interactions the batch carries (for the pending gauge and metrics).
    counted: u64,
    presence_version: u64,
}

/// What the flusher remembers of a campaign between flushes.
#[derive(Default)]
struct FlushState {
    /// `created_at` of the campaign this is about: an id deleted and created again is
    /// another campaign, and nothing kept for the old one may reach the new one.
    created_at: Option<i64>,
    /// A batch the store has not confirmed; resent as is until it is.
    inflight: Option<InFlight>,
    /// Presence version and time last written.
    presence_version: Option<u64>,
    presence_at: Option<Instant>,
    /// Open sessions still to refresh in this round (see `Batch::touch`), and when the next
    /// round starts.
    touch_queue: Vec<Arc<SessionSlot>>,
    next_touch: Option<Instant>,
    /// The campaign's session TTL as the store last told it.
    session_ttl: Option<Duration>,
    /// Epochs the store said moved away from this node that no open socket here holds: the
    /// next batch tells the store this node does not count them.
    release: Vec<u64>,
    /// When this node last offered to fold the campaign's unit deltas.
    folded_at: Option<Instant>,
    /// The store holds this node's whole deep-unit map (see `write_deep_viewers`).
    deep_whole: bool,
}

/// The flusher's timing, from the node's flags.
#[derive(Debug, Clone, Copy)]
pub struct FlushTiming {
    /// `--flush-interval`: how often batches go to the store (and acks come back).
    pub flush_interval: Duration,
    /// `--tick`: the series bucket width.
    pub tick: Duration,
    /// `--presence-ttl`: the lease length; it is renewed every third of it.
    pub presence_ttl: Duration,
    /// `--session-ttl`: how long a session's resume state outlives its last write. Open
    /// sockets' sessions are refreshed every third of it (or of the campaign's own TTL, if
    /// the store keeps a shorter one), so a quiet viewer is never forgotten.
    pub session_ttl: Duration,
}

/// The flusher task and the few things it touches.
pub struct Flusher {
    pub tallies: Arc<Tallies>,
    /// The one seam it writes through: batches and presence.
    pub store: Arc<dyn Counting>,
    pub metrics: Arc<Metrics>,
    /// This node's name in presence.
    pub node_id: String,
    /// `node_id/run id`: tells the store which process sent a batch (see `Batch::origin`).
    pub origin: String,
    pub timing: FlushTiming,
    /// Last batch number handed out (see `Batch::number`), increasing for the process life.
    batch_numbers: AtomicU64,
    /// This round: some batch was sent / some batch failed (see `Pending::set_store_failing`).
    round_sent: AtomicBool,
    round_failed: AtomicBool,
    /// Where the deep units' viewers go (campaigns with an org); `None`: nowhere (tests).
    units: Option<Arc<dyn Units>>,
}

impl Flusher {
    pub fn new(
        tallies: Arc<Tallies>,
        store: Arc<dyn Counting>,
        metrics: Arc<Metrics>,
        node_id: String,
        origin: String,
        timing: FlushTiming,
    ) -> Self {
        Self {
            tallies,
            store,
            metrics,
            node_id,
            origin,
            timing,
            batch_numbers: AtomicU64::new(0),
            round_sent: AtomicBool::new(false),
            round_failed: AtomicBool::new(false),
            units: None,
        }
    }

    /// Writes the deep units' viewers through `units`.
    pub fn with_units(mut self, units: Arc<dyn Units>) -> Self {
        self.units = Some(units);
        self
    }

    /// After a batch landed: this node's sockets in the deep units, the units that changed
    /// since the last write, and the hash's lease renewed with the presence lease. The
    /// first write of a campaign replaces the node's hash (a node restarted under the same
    /// name leaves nothing behind), and so does the write after one that found the hash
    /// gone (expired while this node's writes failed: changes alone would leave it
    /// incomplete). A failed write is retried with the next flush (the changes stay
    /// unwritten); the deep numbers are exact within seconds, not within the flush.
    async fn write_deep_viewers(&self, tally: &CampaignTally, state: &mut FlushState, renew: bool) {
        let (Some(store), Some(units)) = (&self.units, tally.units.get()) else {
            return;
        };
        let full = !state.deep_whole;
        let changes = if full { units.deep_all() } else { units.deep_changes() };
        if changes.is_empty() && !renew && !full {
            return;
        }
        let c = &tally.campaign.id;
        match store
            .put_deep_viewers(c, &self.node_id, &changes, full, self.timing.presence_ttl)
            .await
        {
            Ok(was) => {
                units.deep_written(&changes);
                state.deep_whole = full || was;
            }
            Err(e) => {
                self.metrics.store_errors.inc();
                tracing::debug!(campaign = %c, error = %e, "deep unit viewers not written; next flush");
            }
        }
    }

    /// After a batch landed: the campaign's unit deltas folded into the totals the live
    /// reads show, at most once per [`FOLD_EVERY`] here and, through the store's lease,
    /// by one node per [`FOLD_EVERY`] of all; in a task of its own, so no flush waits on
    /// a fold.
    fn fold_units(&self, tally: &CampaignTally, state: &mut FlushState) {
        let (Some(store), Some(units)) = (&self.units, tally.units.get()) else {
            return;
        };
        if state.folded_at.is_some_and(|at| at.elapsed() < FOLD_EVERY) {
            return;
        }
        state.folded_at = Some(Instant::now());
        let (store, id, metrics) = (store.clone(), tally.campaign.id.clone(), self.metrics.clone());
        let tree = units.tree().clone();
        tokio::spawn(async move {
            if let Err(e) = store.fold_units(&id, &tree, Some(FOLD_EVERY)).await {
                metrics.store_errors.inc();
                tracing::debug!(campaign = %id, error = %e, "unit deltas not folded; next round");
            }
        });
    }

    /// Runs until `stop` is cancelled, then flushes one last time and leaves presence.
    /// `requests` lets shutdown flush (and so ack) before it closes the sockets.
    pub async fn run(
        self,
        stop: CancellationToken,
        mut requests: tokio::sync::mpsc::Receiver<tokio::sync::oneshot::Sender<bool>>,
    ) {
        let mut states: HashMap<String, FlushState> = HashMap::new();
        let mut interval = tokio::time::interval(self.timing.flush_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {
                    self.flush_all(&mut states, false).await;
                }
                Some(reply) = requests.recv() => {
                    let ok = self.flush_all(&mut states, false).await;
                    let _ = reply.send(ok);
                }
                _ = stop.cancelled() => break,
            }
        }
        // Final flushes: sockets are closed by now; write what they left, then leave presence.
        for _ in 0..3 {
            if self.flush_all(&mut states, true).await {
                break;
            }
            tokio::time::sleep(self.timing.flush_interval).await;
        }
    }

    /// Flushes every campaign; returns true when everything was written.
    async fn flush_all(&self, states: &mut HashMap<String, FlushState>, leaving: bool) -> bool {
        let work: Vec<_> = self
            .tallies
            .all()
            .into_iter()
            .map(|t| {
                let mut state = states.remove(&t.campaign.id).unwrap_or_default();
                if state.created_at.is_some_and(|at| at != t.campaign.created_at) {
                    // The old campaign ended before it was deleted, so the store would have
                    // refused this batch anyway: its counts are settled, never sent.
                    if let Some(old) = state.inflight.take() {
                        self.tallies.pending().settle(old.counted);
                    }
                    state = FlushState::default();
                }
                state.created_at = Some(t.campaign.created_at);
                (t, state)
            })
            .collect();
        let results: Vec<_> = stream::iter(work)
            .map(|(t, state)| self.flush_campaign(t, state, leaving))
            .buffer_unordered(FLUSH_CONCURRENCY)
            .collect()
            .await;
        // The store is failing while a round's batches fail, healthy once one lands; a round
        // that sent nothing changes nothing. Sockets refuse at --max-pending only meanwhile.
        if self.round_sent.swap(false, Ordering::Relaxed) {
            let failed = self.round_failed.swap(false, Ordering::Relaxed);
            self.tallies.pending().set_store_failing(failed);
        }
        let mut all_ok = true;
        for (id, state, ok, removed) in results {
            all_ok &= ok;
            if !removed {
                states.insert(id, state);
            }
        }
        self.metrics.store_pending.set(self.tallies.pending().get() as i64);
        self.metrics.active_campaigns.set(states.len() as i64);
        all_ok
    }

    /// Flushes one campaign: first the batch still in flight, then a new one. Returns
    /// `(id, state, ok, removed)`.
    async fn flush_campaign(
        &self,
        tally: Arc<CampaignTally>,
        mut state: FlushState,
        leaving: bool,
    ) -> (String, FlushState, bool, bool) {
        let id = tally.campaign.id.clone();
        if let Some(inflight) = state.inflight.take() {
            if let Err(inflight) = self.send(&tally, &mut state, inflight).await {
                state.inflight = Some(inflight);
                return (id, state, false, false);
            }
        }
        let idle = tally.sockets() == 0;
        let inflight = self.build(&tally, &mut state, leaving || idle);
        if !inflight.batch.is_empty() {
            if let Err(inflight) = self.send(&tally, &mut state, inflight).await {
                state.inflight = Some(inflight);
                return (id, state, false, false);
            }
        }
        self.metrics.set_campaign_viewers(&id, tally.local_viewers());
        let mut ok = true;
        let mut removed = false;
        if idle || leaving {
            // The last socket left: give back this node's share now rather than at lease expiry.
            if state.presence_version.is_some() || leaving {
                if self.store.drop_presence(&id, &self.node_id).await.is_ok() {
                    state.presence_version = None;
                } else {
                    ok = false;
                }
            }
            if ok && idle {
                removed = self.tallies.remove_if_idle(tally, &self.metrics);
            }
        }
        (id, state, ok, removed)
    }

    /// Builds the next batch from what the sockets queued.
    fn build(&self, tally: &CampaignTally, state: &mut FlushState, no_presence: bool) -> InFlight {
        // Closed sockets are drained before presence is read below (see `viewer_left`).
        let super::Drained {
            dirty,
            mut left,
            new_viewers,
            interactors,
            share_visits,
            units,
        } = tally.drain();
        left.extend(state.release.drain(..).map(|e| (String::new(), e)));
        let mut seen = HashSet::new();
        let slots: Vec<Arc<SessionSlot>> = dirty
            .into_iter()
            .filter(|s| seen.insert(Arc::as_ptr(s) as usize))
            .collect();
        let snaps: Vec<Snapshot> = slots.iter().map(|s| s.take_snapshot()).collect();
        let mut entries = Vec::new();
        let mut sessions = Vec::new();
        let mut counted = 0;
        for (i, (slot, snap)) in slots.iter().zip(&snaps).enumerate() {
            let (counts, seq) = slot.delta(snap);
            if counts.is_empty() && seq == 0 {
                continue;
            }
            entries.push(i);
            counted += counts.iter().map(|c| c.1).sum::<u64>();
            sessions.push(SessionDelta {
                session: slot.session.clone(),
                viewer: slot.interactor().to_owned(),
                epoch: slot.epoch,
                seq,
                counts: counts
                    .into_iter()
                    .map(|(k, n)| (tally.campaign.kinds[k].clone(), n))
                    .collect(),
                unit: slot.unit.as_ref().map(|p| p.path.clone()),
            });
        }
        let touch = self.touch(tally, state);
        let version = tally.presence_version();
        let presence_due = state.presence_version != Some(version)
            || state
                .presence_at
                .is_none_or(|at| at.elapsed() >= self.timing.presence_ttl / 3);
        // A batch that reports closed sockets writes the presence that no longer counts them,
        // idle or leaving too: the store takes a closed socket's moved mark off this node's
        // lease in the same step, and the lease it held may still count the socket (written
        // before it closed). Without a new one, the socket would count again, next to its
        // replacement elsewhere, until `drop_presence`: long enough for a tick to make it peak.
        let presence =
            ((presence_due && !no_presence) || !left.is_empty()).then(|| (self.node_id.clone(), tally.presence()));
        let at = crate::util::now_ms();
        let mut batch = Batch {
            campaign: tally.campaign.id.clone(),
            origin: self.origin.clone(),
            number: 0,
            bucket_ms: bucket_of(tally.campaign.created_at, at, self.timing.tick),
            sessions,
            new_viewers,
            interactors,
            share_visits,
            max_share_channels: self.tallies.max_share_channels() as u64,
            presence,
            presence_ttl: self.timing.presence_ttl,
            touch,
            node: self.node_id.clone(),
            left,
            units,
        };
        if !batch.is_empty() {
            // Numbered from one node-wide counter, not per tally: a campaign's tally can leave
            // the node and come back, and its new batches must still number above the old ones.
            batch.number = self.batch_numbers.fetch_add(1, Ordering::Relaxed) + 1;
        }
        InFlight {
            batch,
            slots,
            snaps,
            entries,
            counted,
            presence_version: version,
        }
    }

    /// The open sessions this batch refreshes. The store forgets a session's resume state
    /// one to two TTLs after its last write; sockets that send keep theirs fresh through
    /// their deltas, but a viewer who only watches writes nothing. So every TTL/3 the
    /// flusher starts a round over the campaign's open sockets on this node and sends their
    /// `(session, epoch)` in chunks with the next batches, whatever else they carry. A
    /// socket that closed before its chunk went out is skipped, so a session is forgotten
    /// within two TTLs of its last socket closing. Presence renewal could have carried the
    /// sessions instead, but it runs every few seconds; a round per TTL/3 costs next to
    /// nothing at the default TTL of 24 h.
    fn touch(&self, tally: &CampaignTally, state: &mut FlushState) -> Vec<(String, u64)> {
        let now = Instant::now();
        let ttl = state
            .session_ttl
            .map_or(self.timing.session_ttl, |t| t.min(self.timing.session_ttl));
        let every = ttl / TOUCH_ROUNDS_PER_TTL;
        match state.next_touch {
            // Sockets open now were claimed just now: their claim wrote their state.
            None => state.next_touch = Some(now + every),
            Some(at) if now >= at => {
                state.touch_queue = tally.open_sessions();
                state.next_touch = Some(now + every);
            }
            Some(_) => {}
        }
        let queue = &mut state.touch_queue;
        let mut chunk = queue.split_off(queue.len().saturating_sub(TOUCH_PER_BATCH));
        tally.retain_open(&mut chunk);
        chunk.iter().map(|s| (s.session.clone(), s.epoch)).collect()
    }

    /// Sends one batch; on success settles it (acks, fencing, metrics), on failure hands it back.
    async fn send(&self, tally: &CampaignTally, state: &mut FlushState, inflight: InFlight) -> Result<(), InFlight> {
        let started = Instant::now();
        let result = self.store.apply(&inflight.batch).await;
        self.metrics
            .store_flush_seconds
            .observe(started.elapsed().as_secs_f64());
        // Presence lease renewals/failures and store recoveries (see `Metrics::batch_sent`).
        self.metrics
            .batch_sent(inflight.batch.presence.is_some(), result.is_ok());
        self.round_sent.store(true, Ordering::Relaxed);
        let applied = match result {
            Ok(a) => a,
            Err(e) => {
                self.round_failed.store(true, Ordering::Relaxed);
                self.metrics.store_errors.inc();
                tracing::warn!(campaign = %tally.campaign.id, error = %e, "flush failed; counts stay buffered");
                return Err(inflight);
            }
        };
        if inflight.batch.presence.is_some() {
            state.presence_version = Some(inflight.presence_version);
            state.presence_at = Some(started);
        }
        if applied.ended {
            // Nothing of the batch was counted: no slot is acked, the counts are settled
            // (never to be counted or resent), and the sockets close with 4000.
            for (slot, snap) in inflight.slots.iter().zip(&inflight.snaps) {
                slot.mark_refused(snap);
            }
            self.tallies.pending().settle(inflight.counted);
            tally.ended.cancel();
            return Ok(());
        }
        let fenced: HashSet<usize> = applied
            .fenced
            .iter()
            .filter_map(|&e| inflight.entries.get(e).copied())
            .collect();
        for (i, (slot, snap)) in inflight.slots.iter().zip(&inflight.snaps).enumerate() {
            if fenced.contains(&i) {
                slot.mark_fenced(snap);
            } else {
                slot.mark_flushed(snap);
            }
        }
        self.tallies.pending().settle(inflight.counted);
        self.metrics.flush_batch_counts.observe(inflight.counted as f64);
        let mut by_kind: HashMap<&str, u64> = HashMap::new();
        for (i, s) in inflight.batch.sessions.iter().enumerate() {
            if !applied.fenced.contains(&i) {
                for (k, n) in &s.counts {
                    *by_kind.entry(k.as_str()).or_default() += n;
                }
            }
        }
        for (k, n) in by_kind {
            self.metrics
                .interactions
                .with_label_values(&[inflight.batch.campaign.as_str(), k])
                .inc_by(n);
        }
        if applied.session_ttl.is_some() {
            state.session_ttl = applied.session_ttl;
        }
        self.write_deep_viewers(tally, state, inflight.batch.presence.is_some())
            .await;
        self.fold_units(tally, state);
        // Sessions claimed by another socket while this node still counted the old one: close
        // it now (4001) rather than at its next message, so this node stops counting it.
        for &epoch in &applied.moved {
            match tally.open_slot(epoch) {
                Some(slot) => slot.mark_moved(),
                None => state.release.push(epoch),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
