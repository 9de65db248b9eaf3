//! Step three: every flush interval, turn each campaign's tally into ONE [`Batch`] and hand
//! it to the store; on success advance the flushed marks and wake the sockets to ack. On
//! failure nothing moves: the counts stay in the session slots (bounded by
//! `--max-pending`), acks are withheld, and the next flush retries with the larger delta.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use futures_util::stream::{self, StreamExt};
use tokio_util::sync::CancellationToken;

use super::session::{SessionSlot, Snapshot};
use super::CampaignTally;
use crate::node::NodeCtx;
use crate::store::{Batch, SessionDelta};

/// Campaigns flushed concurrently: one slow campaign (or a hung store call) must not hold
/// back the others, yet a node with thousands of campaigns must not open thousands of
/// requests at once.
const FLUSH_CONCURRENCY: usize = 64;

/// What the flusher remembers of a campaign between flushes.
#[derive(Default)]
struct FlushState {
    /// Sessions of a failed flush, retried even if their socket stays quiet.
    retry: Vec<Arc<SessionSlot>>,
    /// Presence version and time last written.
    presence_version: Option<u64>,
    presence_at: Option<Instant>,
}

/// Asks the flusher for an immediate flush; the reply says whether everything was written.
pub type FlushNow = tokio::sync::mpsc::Sender<tokio::sync::oneshot::Sender<bool>>;

/// Runs until `stop` is cancelled, then flushes one last time and leaves presence.
/// `requests` lets shutdown flush (and so ack) before it closes the sockets.
pub async fn run(
    ctx: Arc<NodeCtx>,
    stop: CancellationToken,
    mut requests: tokio::sync::mpsc::Receiver<tokio::sync::oneshot::Sender<bool>>,
) {
    let mut states: HashMap<String, FlushState> = HashMap::new();
    let mut interval = tokio::time::interval(ctx.config.flush_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {
                flush_all(&ctx, &mut states, false).await;
            }
            Some(reply) = requests.recv() => {
                let ok = flush_all(&ctx, &mut states, false).await;
                let _ = reply.send(ok);
            }
            _ = stop.cancelled() => break,
        }
    }
    // Final flushes: sockets are closed by now; write what they left, then leave presence.
    for _ in 0..3 {
        if flush_all(&ctx, &mut states, true).await {
            break;
        }
        tokio::time::sleep(ctx.config.flush_interval).await;
    }
}

/// Flushes every campaign; returns true when everything was written.
async fn flush_all(ctx: &Arc<NodeCtx>, states: &mut HashMap<String, FlushState>, leaving: bool) -> bool {
    let tallies = ctx.tallies.all();
    let mut work = Vec::with_capacity(tallies.len());
    for t in tallies {
        let state = states.remove(&t.campaign.id).unwrap_or_default();
        work.push((t, state));
    }
    let results: Vec<_> = stream::iter(work)
        .map(|(t, state)| flush_campaign(ctx, t, state, leaving))
        .buffer_unordered(FLUSH_CONCURRENCY)
        .collect()
        .await;
    let mut all_ok = true;
    for (id, state, ok, left) in results {
        all_ok &= ok;
        if !left {
            states.insert(id, state);
        }
    }
    ctx.metrics
        .store_pending
        .set(ctx.pending.load(Ordering::Relaxed) as i64);
    all_ok
}

/// Flushes one campaign. Returns `(id, state, ok, removed)`.
async fn flush_campaign(
    ctx: &Arc<NodeCtx>,
    tally: Arc<CampaignTally>,
    mut state: FlushState,
    leaving: bool,
) -> (String, FlushState, bool, bool) {
    let id = tally.campaign.id.clone();
    let super::Drained {
        dirty,
        new_viewers,
        share_visits,
    } = tally.drain();
    let mut seen = HashSet::new();
    let slots: Vec<Arc<SessionSlot>> = std::mem::take(&mut state.retry)
        .into_iter()
        .chain(dirty)
        .filter(|s| seen.insert(Arc::as_ptr(s) as usize))
        .collect();
    let snaps: Vec<Snapshot> = slots.iter().map(|s| s.take_snapshot()).collect();
    let mut entries = Vec::new(); // index into slots for each batch session
    let mut sessions = Vec::new();
    for (i, (slot, snap)) in slots.iter().zip(&snaps).enumerate() {
        let (counts, seq) = slot.delta(snap);
        if counts.is_empty() && seq == 0 {
            continue;
        }
        entries.push(i);
        sessions.push(SessionDelta {
            session: slot.session.clone(),
            viewer: slot.viewer.clone(),
            epoch: slot.epoch,
            seq,
            counts: counts
                .into_iter()
                .map(|(k, n)| (tally.campaign.kinds[k].clone(), n))
                .collect(),
        });
    }
    let now = Instant::now();
    let version = tally.presence_version();
    let renew_every = ctx.config.presence_ttl / 3;
    let presence_due = state.presence_version != Some(version)
        || state.presence_at.is_none_or(|at| now.duration_since(at) >= renew_every);
    let idle = tally.sockets() == 0;
    let presence = (presence_due && !(leaving || idle)).then(|| (ctx.node_id.clone(), tally.presence()));
    let tick_ms = ctx.config.tick.as_millis().max(1) as i64;
    let at = crate::now_ms();
    let batch = Batch {
        campaign: id.clone(),
        bucket_ms: at - at.rem_euclid(tick_ms),
        sessions,
        new_viewers,
        share_visits,
        presence,
        presence_ttl: ctx.config.presence_ttl,
    };
    let counted: u64 = batch.sessions.iter().flat_map(|s| s.counts.iter().map(|c| c.1)).sum();
    let mut ok = true;
    if !batch.is_empty() {
        let started = Instant::now();
        let result = ctx.store.apply(&batch).await;
        ctx.metrics.store_flush_seconds.observe(started.elapsed().as_secs_f64());
        match result {
            Ok(applied) => {
                let fenced: HashSet<usize> = applied.fenced.iter().map(|&e| entries[e]).collect();
                for (i, (slot, snap)) in slots.iter().zip(&snaps).enumerate() {
                    if fenced.contains(&i) {
                        slot.mark_fenced(snap);
                    } else {
                        slot.mark_flushed(snap);
                    }
                }
                ctx.pending.fetch_sub(counted, Ordering::Relaxed);
                let mut by_kind: HashMap<&str, u64> = HashMap::new();
                for (i, s) in batch.sessions.iter().enumerate() {
                    if !applied.fenced.contains(&i) {
                        for (k, n) in &s.counts {
                            *by_kind.entry(k.as_str()).or_default() += n;
                        }
                    }
                }
                for (k, n) in by_kind {
                    ctx.metrics.interactions.with_label_values(&[id.as_str(), k]).inc_by(n);
                }
                ctx.metrics.flush_batch_counts.observe(counted as f64);
                if batch.presence.is_some() {
                    state.presence_version = Some(version);
                    state.presence_at = Some(now);
                }
                if applied.ended {
                    tally.ended.cancel();
                }
            }
            Err(e) => {
                ok = false;
                ctx.metrics.store_errors.inc();
                tracing::warn!(campaign = %id, error = %e, "flush failed; counts stay buffered");
                state.retry = slots;
                tally.requeue(batch.new_viewers, batch.share_visits);
            }
        }
    }
    ctx.metrics
        .campaign_viewers
        .with_label_values(&[id.as_str()])
        .set(tally.local_viewers() as i64);
    let mut removed = false;
    if ok && (idle || leaving) && state.retry.is_empty() {
        // The last socket left: give back this node's share now rather than at lease expiry.
        if state.presence_version.is_some() || leaving {
            if ctx.store.drop_presence(&id, &ctx.node_id).await.is_ok() {
                state.presence_version = None;
            } else {
                ok = false;
            }
        }
        if ok && idle {
            let kinds = tally.campaign.kinds.clone();
            drop(tally);
            removed = ctx.tallies.remove_if_idle(&id);
            if removed {
                ctx.metrics.forget_campaign(&id, &kinds);
            }
        }
    }
    (id, state, ok, removed)
}
