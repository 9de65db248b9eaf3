//! One virtual node: the real tally, flusher and broadcaster of a node, with synthetic
//! sessions in place of sockets. What a socket would do (claim, join, like) is done by the
//! simulator through the same calls the socket layer makes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::broadcast::Broadcaster;
use crate::campaign::Campaign;
use crate::load::hist::Hist;
use crate::node::Builder;
use crate::org::Tree;
use crate::store::{Owner, Store, StoreResult};
use crate::tally::flusher::FlushTiming;
use crate::tally::session::SessionSlot;
use crate::tally::units::UnitTally;
use crate::tally::{CampaignTally, Tallies};

/// The numbers a node's last operator frame shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct Shown {
    pub viewers: u64,
    pub peak_viewers: u64,
    pub interactions: std::collections::BTreeMap<String, u64>,
    pub regions: std::collections::BTreeMap<String, u64>,
}

impl std::fmt::Display for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} viewers (peak {}), regions {}, interactions {}",
            self.viewers,
            self.peak_viewers,
            super::counts(&self.regions),
            super::counts(&self.interactions)
        )
    }
}

/// Per unit (tree index), what was put in: open viewers, sessions, likes and hearts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitNumbers {
    pub viewers: u64,
    pub sessions: u64,
    pub interactions: [u64; 2],
}

/// Tick durations (stats read, tick record, both frames encoded), shared by every node.
pub type TickHist = Arc<Mutex<Hist>>;

pub struct VirtualNode {
    pub id: String,
    tallies: Arc<Tallies>,
    pub tally: Arc<CampaignTally>,
    store: Arc<dyn Store>,
    presence_ttl: Duration,
    /// Sessions open here, for the like-storm, with their unit (tree index).
    slots: Mutex<Vec<(Arc<SessionSlot>, Option<u32>)>>,
    /// Viewers joined here, by region index.
    pub joined: Vec<AtomicU64>,
    /// With an org: viewers joined and interactions counted here, by unit (tree index).
    pub by_unit: Mutex<HashMap<u32, UnitNumbers>>,
    stop: CancellationToken,
    flusher: JoinHandle<()>,
    ticker: JoinHandle<()>,
}

impl VirtualNode {
    /// Starts the node's flusher and broadcaster; its first tick is `phase` from now, so
    /// nodes do not all read in the same instant.
    pub fn start(
        id: String,
        campaign: &Campaign,
        store: Arc<dyn Store>,
        timing: FlushTiming,
        phase: Duration,
        ticks: TickHist,
        org: Option<(Arc<Tree>, u8)>,
    ) -> Self {
        let mut builder = Builder::new(store.clone(), id.clone());
        builder.origin = format!("{id}/sim");
        builder.timing = timing;
        let tallies = builder.tallies.clone();
        let tally = tallies.get_or_create(campaign);
        // One tree shared by every virtual node (a real node reads its own copy once).
        if let Some((tree, depth)) = org {
            let _ = tally.units.set(UnitTally::new(tree, depth));
        }
        let stop = CancellationToken::new();
        // No one asks it to flush early: the sender is dropped and the arm never fires.
        let (_, flusher) = builder.spawn_flusher(stop.clone());
        let ticker = tokio::spawn(tick_loop(
            builder.broadcaster(),
            timing.tick,
            phase,
            ticks,
            stop.clone(),
        ));
        Self {
            id,
            joined: (0..campaign.regions.len() + 2).map(|_| AtomicU64::new(0)).collect(),
            tallies,
            tally,
            store,
            presence_ttl: timing.presence_ttl,
            slots: Mutex::new(Vec::new()),
            by_unit: Mutex::new(HashMap::new()),
            stop,
            flusher,
            ticker,
        }
    }

    /// What admission does for a viewer socket: claim the session, open its slot, count it
    /// (in `unit`, a tree index, on a campaign with an org).
    pub async fn join(&self, session: String, viewer: String, region: usize, unit: Option<u32>) -> StoreResult<()> {
        let region_name = self.tally.campaign.regions[region].clone();
        let place = match (self.tally.units.get(), unit) {
            (Some(units), Some(i)) => Some(units.place(Some(units.tree().code(i)))),
            _ => None,
        };
        let owner = Owner {
            node: &self.id,
            region: &region_name,
            units: place.as_ref().map_or(&[], |p| &p.upper),
            lease: self.presence_ttl,
        };
        let (epoch, acked) = self
            .store
            .claim_session(&self.tally.campaign.id, &session, &owner)
            .await?;
        let slot = SessionSlot::new(session, viewer, epoch, acked, self.tally.campaign.kinds.len()).with_unit(place);
        let slot = Arc::new(slot);
        self.tally.viewer_joined(region, &slot);
        self.joined[region].fetch_add(1, Ordering::Relaxed);
        if let Some(i) = unit.filter(|_| slot.unit.is_some()) {
            let mut by_unit = self.by_unit.lock().unwrap_or_else(|e| e.into_inner());
            let n = by_unit.entry(i).or_default();
            n.viewers += 1;
            n.sessions += 1;
        }
        self.slots.lock().unwrap_or_else(|e| e.into_inner()).push((slot, unit));
        Ok(())
    }

    /// What a socket does with a `like`: within `--max-pending`, into the session's slot.
    /// Returns false when the node refused it (nothing counted).
    pub fn interact(&self, pick: usize, kind: usize) -> bool {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if slots.is_empty() || !self.tallies.pending().try_take(1) {
            return false;
        }
        let (slot, unit) = &slots[pick % slots.len()];
        if slot.add(kind, 1, None) {
            self.tally.queue_dirty(slot);
        }
        if let Some(i) = unit.filter(|_| slot.unit.is_some()) {
            self.by_unit
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(i)
                .or_default()
                .interactions[kind] += 1;
        }
        true
    }

    /// Interactions taken but not yet written to the store.
    pub fn pending(&self) -> u64 {
        self.tallies.pending().get()
    }

    /// The numbers of the node's current operator frame.
    pub fn shown(&self) -> Option<Shown> {
        let frames = self.tally.frames.borrow().clone();
        serde_json::from_str(&frames.operator_frame).ok()
    }

    /// The node's viewers as its viewer frame shows them (cheaper than [`Self::shown`]).
    pub fn shown_viewers(&self) -> Option<u64> {
        let frames = self.tally.frames.borrow().clone();
        crate::protocol::peek::number_after(&frames.viewer_frame, "\"viewers\":")
    }

    /// Gone like a crashed process: no last flush, no graceful leave. Its lease expires.
    pub fn kill(&self) {
        self.flusher.abort();
        self.ticker.abort();
    }

    /// Stopped like a node at shutdown (last flush, presence dropped).
    pub async fn stop(self) {
        self.stop.cancel();
        self.ticker.abort();
        let _ = self.flusher.await;
    }
}

async fn tick_loop(b: Broadcaster, tick: Duration, phase: Duration, ticks: TickHist, stop: CancellationToken) {
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + phase, tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let due = tokio::select! {
            due = interval.tick() => due.into_std(),
            _ = stop.cancelled() => return,
        };
        let started = Instant::now();
        b.tick_all(due).await;
        let us = started.elapsed().as_micros() as u64;
        ticks.lock().unwrap_or_else(|e| e.into_inner()).record(us);
    }
}
