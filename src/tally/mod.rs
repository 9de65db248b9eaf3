//! Step two of a like's path: the node-local tally of each campaign. Sockets write here
//! without locks on the hot path (see [`session`]); the [`flusher`] drains it into the store.
//!
//! A campaign's tally exists on a node while it has sockets there (or counts still to
//! flush). It also holds what every socket of the campaign listens to: the shared stats
//! frames and the `ended` signal.

pub mod flusher;
pub mod pending;
pub mod session;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::campaign::Campaign;
use crate::protocol::Frames;
use crate::store::Presence;
pub use pending::Pending;
use session::SessionSlot;

/// Distinct share channels counted per campaign and flush; more are folded into `other` so
/// a crafted link cannot grow the store without bound.
pub const MAX_SHARE_CHANNELS: usize = 256;

/// The node-local state of one campaign.
pub struct CampaignTally {
    pub campaign: Campaign,
    /// Open viewer sockets per region index (`campaign.regions`, then `unknown`, `other`).
    region_viewers: Box<[AtomicI64]>,
    /// Open operator watcher sockets (kept alive, never counted).
    pub watchers: AtomicI64,
    /// Sessions with unflushed counts, queued once per flush by the socket that dirtied them.
    dirty: Mutex<Vec<Arc<SessionSlot>>>,
    /// The session of every open viewer socket, by epoch (unique per campaign), so the
    /// flusher can keep their resume state alive while they are quiet, and find the one
    /// the store says moved away.
    open: Mutex<HashMap<u64, Arc<SessionSlot>>>,
    /// `(session, epoch)` of viewer sockets closed since the last flush.
    left: Mutex<Vec<(String, u64)>>,
    /// Viewers that connected since the last flush (for the unique sketch).
    new_viewers: Mutex<Vec<String>>,
    /// Share visits since the last flush.
    shares: Mutex<HashMap<String, u64>>,
    /// Bumped on every connect and leave, so the flusher knows presence changed.
    presence_version: AtomicU64,
    /// Cancelled when the campaign ends: every socket closes with 4000.
    pub ended: CancellationToken,
    /// The latest shared frames; sockets wait on `changed()`.
    pub frames: watch::Sender<Arc<Frames>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl CampaignTally {
    fn new(campaign: Campaign) -> Self {
        let regions = campaign.regions.len() + 2;
        Self {
            region_viewers: (0..regions).map(|_| AtomicI64::new(0)).collect(),
            watchers: AtomicI64::new(0),
            dirty: Mutex::new(Vec::new()),
            open: Mutex::new(HashMap::new()),
            left: Mutex::new(Vec::new()),
            new_viewers: Mutex::new(Vec::new()),
            shares: Mutex::new(HashMap::new()),
            presence_version: AtomicU64::new(0),
            ended: CancellationToken::new(),
            frames: watch::Sender::new(Arc::new(Frames::empty(&campaign.id))),
            campaign,
        }
    }

    /// Region index for a region name as returned by `Campaign::region_of`.
    pub fn region_index(&self, region: &str) -> usize {
        let n = self.campaign.regions.len();
        match region {
            "unknown" => n,
            "other" => n + 1,
            r => self.campaign.regions.iter().position(|x| x == r).unwrap_or(n + 1),
        }
    }

    fn region_name(&self, i: usize) -> &str {
        let n = self.campaign.regions.len();
        if i < n {
            &self.campaign.regions[i]
        } else if i == n {
            "unknown"
        } else {
            "other"
        }
    }

    /// A viewer socket opened (called once per connection, off the hot path).
    pub fn viewer_joined(&self, region: usize, slot: &Arc<SessionSlot>) {
        self.region_viewers[region].fetch_add(1, Ordering::Relaxed);
        self.presence_version.fetch_add(1, Ordering::Release);
        lock(&self.new_viewers).push(slot.viewer.clone());
        lock(&self.open).insert(slot.epoch, slot.clone());
    }

    /// A viewer socket closed. It leaves presence before it is queued as left: a flush
    /// that drains `left` before reading presence may miss a socket in `left` that its
    /// presence already dropped (the store then undercounts it for one flush), never the
    /// other way round (which could count a session twice).
    pub fn viewer_left(&self, region: usize, slot: &Arc<SessionSlot>) {
        lock(&self.open).remove(&slot.epoch);
        self.region_viewers[region].fetch_sub(1, Ordering::Relaxed);
        self.presence_version.fetch_add(1, Ordering::Release);
        lock(&self.left).push((slot.session.clone(), slot.epoch));
    }

    /// The sessions of the open viewer sockets.
    pub fn open_sessions(&self) -> Vec<Arc<SessionSlot>> {
        lock(&self.open).values().cloned().collect()
    }

    /// Keeps those of `slots` whose socket is still open.
    pub fn retain_open(&self, slots: &mut Vec<Arc<SessionSlot>>) {
        let open = lock(&self.open);
        slots.retain(|s| open.contains_key(&s.epoch));
    }

    /// The open socket holding `epoch`, if any.
    pub fn open_slot(&self, epoch: u64) -> Option<Arc<SessionSlot>> {
        lock(&self.open).get(&epoch).cloned()
    }

    /// Queues a session the socket just made dirty (once per flush interval at most).
    pub fn queue_dirty(&self, slot: &Arc<SessionSlot>) {
        lock(&self.dirty).push(slot.clone());
    }

    /// Counts one share visit for `channel`.
    pub fn share_visit(&self, channel: &str) {
        let mut shares = lock(&self.shares);
        let channel = if shares.len() >= MAX_SHARE_CHANNELS && !shares.contains_key(channel) {
            "other"
        } else {
            channel
        };
        *shares.entry(channel.to_owned()).or_default() += 1;
    }

    /// Open viewer sockets on this node.
    pub fn local_viewers(&self) -> u64 {
        self.region_viewers
            .iter()
            .map(|c| c.load(Ordering::Relaxed).max(0) as u64)
            .sum()
    }

    /// This node's presence share.
    pub fn presence(&self) -> Presence {
        let mut p = Presence::default();
        for (i, c) in self.region_viewers.iter().enumerate() {
            let n = c.load(Ordering::Relaxed).max(0) as u64;
            if n > 0 {
                p.viewers += n;
                p.regions.insert(self.region_name(i).to_owned(), n);
            }
        }
        p
    }

    pub fn presence_version(&self) -> u64 {
        self.presence_version.load(Ordering::Acquire)
    }

    /// Sockets of any role on this node.
    pub fn sockets(&self) -> u64 {
        self.local_viewers() + self.watchers.load(Ordering::Relaxed).max(0) as u64
    }

    /// Flusher side: takes everything queued since the last flush.
    pub fn drain(&self) -> Drained {
        Drained {
            left: std::mem::take(&mut *lock(&self.left)),
            dirty: std::mem::take(&mut *lock(&self.dirty)),
            new_viewers: std::mem::take(&mut *lock(&self.new_viewers)),
            share_visits: std::mem::take(&mut *lock(&self.shares)).into_iter().collect(),
        }
    }

    /// Nothing is queued for the flusher.
    pub fn is_drained(&self) -> bool {
        lock(&self.dirty).is_empty()
            && lock(&self.new_viewers).is_empty()
            && lock(&self.shares).is_empty()
            && lock(&self.left).is_empty()
    }
}

/// What a campaign's tally queued for one flush.
pub struct Drained {
    pub dirty: Vec<Arc<SessionSlot>>,
    /// `(session, epoch)` of viewer sockets closed since the last flush.
    pub left: Vec<(String, u64)>,
    pub new_viewers: Vec<String>,
    pub share_visits: Vec<(String, u64)>,
}

/// All campaign tallies of this node. The map is touched on connect, leave and per flush,
/// never per frame.
pub struct Tallies {
    map: Mutex<HashMap<String, Arc<CampaignTally>>>,
    /// Interactions in any tally not yet in the store (bounded by `--max-pending`).
    pending: Arc<Pending>,
}

impl Tallies {
    /// No tallies yet; at most `max_pending` interactions buffered node-wide.
    pub fn new(max_pending: u64) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            pending: Arc::new(Pending::new(max_pending)),
        }
    }

    /// The node-wide count of unflushed interactions.
    pub fn pending(&self) -> &Arc<Pending> {
        &self.pending
    }

    /// The tally of `campaign`, created on first use.
    pub fn get_or_create(&self, campaign: &Campaign) -> Arc<CampaignTally> {
        lock(&self.map)
            .entry(campaign.id.clone())
            .or_insert_with(|| Arc::new(CampaignTally::new(campaign.clone())))
            .clone()
    }

    pub fn get(&self, id: &str) -> Option<Arc<CampaignTally>> {
        lock(&self.map).get(id).cloned()
    }

    pub fn all(&self) -> Vec<Arc<CampaignTally>> {
        lock(&self.map).values().cloned().collect()
    }

    /// Forgets a tally, unless a socket joined since `idle` was checked (the caller holds
    /// the only other references).
    pub fn remove_if_idle(&self, id: &str) -> bool {
        let mut map = lock(&self.map);
        match map.get(id) {
            Some(t) if Arc::strong_count(t) == 1 && t.sockets() == 0 && t.is_drained() => {
                map.remove(id);
                true
            }
            _ => false,
        }
    }
}
