//! Step two of a like's path: the node-local tally of each campaign. Sockets write here
//! without locks on the hot path (see [`session`]); the [`flusher`] drains it into the store.
//!
//! A campaign's tally exists on a node while it has sockets there (or counts still to
//! flush). It also holds what every socket of the campaign listens to: the shared stats
//! frames and the `ended` signal.

pub mod claim;
pub mod flusher;
pub mod pending;
pub mod session;
pub mod units;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::broadcast::outlet::Outlets;
use crate::campaign::Campaign;
use crate::metrics::Metrics;
use crate::org::Tree;
use crate::protocol::Frames;
use crate::store::{Orgs, Presence, UnitCounts};
pub use pending::Pending;
use session::SessionSlot;
use units::UnitTally;

/// Distinct share channels a tally holds per flush at least; more are folded into `other`.
/// The store bounds a campaign's channels (`--max-share-channels`); this bounds the node's
/// memory between flushes, and is never below the store's bound, so it folds nothing the
/// store would have counted under its own name unless one flush brings more channels
/// than the campaign may have.
pub const MAX_SHARE_CHANNELS: usize = 256;

/// The node-local state of one campaign.
pub struct CampaignTally {
    pub campaign: Campaign,
    /// Open viewer sockets per region index (`campaign.regions`, then `unknown`, `other`).
    region_viewers: Box<[AtomicI64]>,
    /// Open operator watcher sockets (kept alive, never counted).
    pub watchers: AtomicI64,
    /// Viewer sockets admitted whose session's claim has not landed (see [`claim`]): they
    /// keep the tally, but are in no presence share until it lands.
    pub claiming: AtomicI64,
    /// Sessions with unflushed counts, queued once per flush by the socket that dirtied them.
    dirty: Mutex<Vec<Arc<SessionSlot>>>,
    /// The session of every open viewer socket, by epoch (unique per campaign), so the
    /// flusher can keep their resume state alive while they are quiet, and find the one
    /// the store says moved away.
    open: Mutex<HashMap<u64, Arc<SessionSlot>>>,
    /// `(session, epoch)` of viewer sockets closed since the last flush.
    left: Mutex<Vec<(String, u64)>>,
    /// Viewers whose socket qualified since the last flush (for the unique sketch).
    new_viewers: Mutex<Vec<String>>,
    /// `--unique-after`: how long a socket stays open before its viewer counts as unique
    /// (zero: at once, as in v1).
    unique_after: Duration,
    /// Open (or lately closed) sockets not yet qualified, oldest first, with when they
    /// opened: the dwell is the same for all, so the due ones are always at the front.
    waiting: Mutex<VecDeque<(Instant, Arc<SessionSlot>)>>,
    /// Share visits since the last flush.
    shares: Mutex<HashMap<String, u64>>,
    /// Distinct channels `shares` holds before folding into `other`.
    share_fold: usize,
    /// Bumped on every connect and leave, so the flusher knows presence changed.
    presence_version: AtomicU64,
    /// Cancelled when the campaign ends: every socket closes with 4000.
    pub ended: CancellationToken,
    /// The latest shared frames; sockets over other streams than plain TCP (TLS, tests)
    /// wait on `changed()`.
    pub frames: watch::Sender<Arc<Frames>>,
    /// The plain-TCP sockets, which the broadcaster writes each tick's frame to itself.
    pub outlets: Outlets,
    /// Viewers by unit, for a campaign with an org (set once its tree is loaded).
    pub units: OnceLock<UnitTally>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl CampaignTally {
    fn new(campaign: Campaign, share_fold: usize, unique_after: Duration) -> Self {
        let regions = campaign.regions.len() + 2;
        Self {
            share_fold,
            unique_after,
            waiting: Mutex::new(VecDeque::new()),
            region_viewers: (0..regions).map(|_| AtomicI64::new(0)).collect(),
            watchers: AtomicI64::new(0),
            claiming: AtomicI64::new(0),
            dirty: Mutex::new(Vec::new()),
            open: Mutex::new(HashMap::new()),
            left: Mutex::new(Vec::new()),
            new_viewers: Mutex::new(Vec::new()),
            shares: Mutex::new(HashMap::new()),
            presence_version: AtomicU64::new(0),
            ended: CancellationToken::new(),
            frames: watch::Sender::new(Arc::new(Frames::empty(&campaign.id))),
            outlets: Outlets::default(),
            units: OnceLock::new(),
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
        if let (Some(place), Some(units)) = (&slot.unit, self.units.get()) {
            units.joined(place);
        }
        self.presence_version.fetch_add(1, Ordering::Release);
        if self.unique_after.is_zero() {
            slot.qualify();
            self.qualified_in_unit(slot);
            lock(&self.new_viewers).push(slot.viewer.clone());
        } else {
            lock(&self.waiting).push_back((Instant::now(), slot.clone()));
        }
        lock(&self.open).insert(slot.epoch, slot.clone());
    }

    /// Qualifies the sockets that have stayed open `--unique-after` by now: their viewers
    /// join the unique sketch, and those that interacted already join the interactors
    /// (their counts went out without them). Sockets that closed before are dropped
    /// uncounted: a connect loop adds nobody. Returns the new interactors.
    fn qualify_due(&self) -> Vec<String> {
        let now = Instant::now();
        let mut due = Vec::new();
        {
            let mut waiting = lock(&self.waiting);
            while waiting
                .front()
                .is_some_and(|(at, _)| now.duration_since(*at) >= self.unique_after)
            {
                due.extend(waiting.pop_front().map(|(_, slot)| slot));
            }
        }
        if due.is_empty() {
            return Vec::new();
        }
        self.retain_open(&mut due);
        let mut interactors = Vec::new();
        let mut new_viewers = lock(&self.new_viewers);
        for slot in due {
            if slot.qualify() {
                interactors.push(slot.viewer.clone());
            }
            self.qualified_in_unit(&slot);
            new_viewers.push(slot.viewer.clone());
        }
        interactors
    }

    /// A socket with a unit qualified: its session and viewer count there too.
    fn qualified_in_unit(&self, slot: &SessionSlot) {
        if let (Some(place), Some(units)) = (&slot.unit, self.units.get()) {
            units.qualified(&slot.session, &slot.viewer, place);
        }
    }

    /// A viewer socket closed. It leaves presence before it is queued as left: a flush
    /// that drains `left` before reading presence may miss a socket in `left` that its
    /// presence already dropped (the store then undercounts it for one flush), never the
    /// other way round (which could count a session twice).
    pub fn viewer_left(&self, region: usize, slot: &Arc<SessionSlot>) {
        lock(&self.open).remove(&slot.epoch);
        self.region_viewers[region].fetch_sub(1, Ordering::Relaxed);
        if let (Some(place), Some(units)) = (&slot.unit, self.units.get()) {
            units.left(place);
        }
        self.presence_version.fetch_add(1, Ordering::Release);
        lock(&self.left).push((slot.session.clone(), slot.epoch));
    }

    /// A claim landed for a socket that had closed meanwhile: the epoch is reported as
    /// left, so the store does not count it as this node's.
    pub fn release_unused(&self, session: &str, epoch: u64) {
        lock(&self.left).push((session.to_owned(), epoch));
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
        let channel = if shares.len() >= self.share_fold && !shares.contains_key(channel) {
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
        if let Some(units) = self.units.get() {
            units.add_presence(&mut p);
        }
        p
    }

    pub fn presence_version(&self) -> u64 {
        self.presence_version.load(Ordering::Acquire)
    }

    /// Sockets of any role on this node.
    pub fn sockets(&self) -> u64 {
        self.local_viewers()
            + self.watchers.load(Ordering::Relaxed).max(0) as u64
            + self.claiming.load(Ordering::Relaxed).max(0) as u64
    }

    /// Flusher side: takes everything queued since the last flush, and the sockets that
    /// qualified by now.
    pub fn drain(&self) -> Drained {
        // Before `dirty` is taken: a socket qualified here sends its viewer with its counts.
        let interactors = self.qualify_due();
        Drained {
            interactors,
            left: std::mem::take(&mut *lock(&self.left)),
            dirty: std::mem::take(&mut *lock(&self.dirty)),
            new_viewers: std::mem::take(&mut *lock(&self.new_viewers)),
            share_visits: std::mem::take(&mut *lock(&self.shares)).into_iter().collect(),
            units: self.units.get().map(UnitTally::drain).unwrap_or_default(),
        }
    }

    /// Nothing is queued for the flusher.
    pub fn is_drained(&self) -> bool {
        self.counts_drained() && lock(&self.left).is_empty()
    }

    /// No count is queued (closed sockets may be: for an ended campaign they no longer
    /// matter, the store refuses its batches).
    fn counts_drained(&self) -> bool {
        lock(&self.dirty).is_empty()
            && lock(&self.new_viewers).is_empty()
            && lock(&self.shares).is_empty()
            && self.units.get().is_none_or(UnitTally::is_drained)
    }
}

/// What a campaign's tally queued for one flush.
pub struct Drained {
    pub dirty: Vec<Arc<SessionSlot>>,
    /// `(session, epoch)` of viewer sockets closed since the last flush.
    pub left: Vec<(String, u64)>,
    pub new_viewers: Vec<String>,
    /// Viewers of sockets that qualified in this flush after they had interacted.
    pub interactors: Vec<String>,
    pub share_visits: Vec<(String, u64)>,
    /// Per-unit counts (campaigns with an org).
    pub units: UnitCounts,
}

/// All campaign tallies of this node. The map is touched on connect, leave and per flush,
/// never per frame.
pub struct Tallies {
    map: Mutex<HashMap<String, Arc<CampaignTally>>>,
    /// Interactions in any tally not yet in the store (bounded by `--max-pending`).
    pending: Arc<Pending>,
    /// `--max-share-channels`: sent with every batch, the store applies it.
    max_share_channels: usize,
    /// `--unique-after`: given to every campaign's tally.
    unique_after: Duration,
    /// The org versions campaigns count by, loaded once per node.
    trees: Option<Trees>,
}

/// The org trees this node loaded: (org, version) → tree. A version never changes, so a
/// tree is read from the store once and kept while the node runs.
struct Trees {
    store: Arc<dyn Orgs>,
    /// `--unit-peak-depth`.
    depth: u8,
    loaded: tokio::sync::Mutex<HashMap<(String, u64), Arc<Tree>>>,
}

impl Tallies {
    /// No tallies yet; at most `max_pending` interactions buffered node-wide.
    pub fn new(max_pending: u64) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            pending: Arc::new(Pending::new(max_pending)),
            max_share_channels: crate::config::defaults::MAX_SHARE_CHANNELS,
            unique_after: Duration::ZERO,
            trees: None,
        }
    }

    /// Counting by unit for campaigns with an org: trees read from `store`, upper units
    /// down to level `depth` (`--unit-peak-depth`).
    pub fn with_orgs(mut self, store: Arc<dyn Orgs>, depth: u8) -> Self {
        self.trees = Some(Trees {
            store,
            depth,
            loaded: tokio::sync::Mutex::new(HashMap::new()),
        });
        self
    }

    /// The tally of `campaign` (as [`get_or_create`](Self::get_or_create)), its units
    /// ready when the campaign counts by an org: the org version's tree is read from the
    /// store on this node's first use of it. When that read fails, the tally counts
    /// without units until a later call succeeds (the log says so).
    pub async fn open(&self, campaign: &Campaign) -> Arc<CampaignTally> {
        let tally = self.get_or_create(campaign);
        if let (Some(trees), Some(org), Some(version)) = (&self.trees, &campaign.org, campaign.org_version) {
            if tally.units.get().is_none() {
                match trees.get(org, version).await {
                    Ok(tree) => {
                        let _ = tally.units.set(UnitTally::new(tree, trees.depth));
                    }
                    Err(e) => {
                        tracing::warn!(campaign = %campaign.id, %org, version, error = %e, "org not loaded; counting without units for now")
                    }
                }
            }
        }
        tally
    }

    /// The tree of `campaign`'s org version and `--unit-peak-depth`, for the units reads
    /// (`None`: the campaign has no org, or this node counts without orgs). Read from the
    /// store on first use, like [`Tallies::open`]'s.
    pub async fn tree(&self, campaign: &Campaign) -> Result<Option<(Arc<Tree>, u8)>, String> {
        let (Some(trees), Some(org), Some(version)) = (&self.trees, &campaign.org, campaign.org_version) else {
            return Ok(None);
        };
        Ok(Some((trees.get(org, version).await?, trees.depth)))
    }

    /// With `--unique-after`: a socket's viewer counts as unique (and, with counts, as an
    /// interactor) once the socket has stayed open this long.
    pub fn with_unique_after(mut self, dwell: Duration) -> Self {
        self.unique_after = dwell;
        self
    }

    /// With `--max-share-channels` distinct share channels per campaign.
    pub fn with_max_share_channels(mut self, n: usize) -> Self {
        self.max_share_channels = n;
        self
    }

    /// Distinct share channels a campaign counts under their own name.
    pub fn max_share_channels(&self) -> usize {
        self.max_share_channels
    }

    /// The node-wide count of unflushed interactions.
    pub fn pending(&self) -> &Arc<Pending> {
        &self.pending
    }

    /// The tally of `campaign`, created on first use. A tally belongs to one campaign, not
    /// to its id: when the id was deleted and created again (another `created_at`), the
    /// ended tally left by the old campaign is replaced once nothing of it is left to
    /// flush, so the new campaign is joined at once even while the old sockets are still
    /// closing with 4000.
    pub fn get_or_create(&self, campaign: &Campaign) -> Arc<CampaignTally> {
        let mut map = lock(&self.map);
        if let Some(t) = map.get(&campaign.id) {
            let stale = t.campaign.created_at != campaign.created_at && t.ended.is_cancelled() && t.counts_drained();
            if !stale {
                return t.clone();
            }
        }
        let fold = self.max_share_channels.max(MAX_SHARE_CHANNELS);
        let t = Arc::new(CampaignTally::new(campaign.clone(), fold, self.unique_after));
        map.insert(campaign.id.clone(), t.clone());
        t
    }

    pub fn get(&self, id: &str) -> Option<Arc<CampaignTally>> {
        lock(&self.map).get(id).cloned()
    }

    pub fn all(&self) -> Vec<Arc<CampaignTally>> {
        lock(&self.map).values().cloned().collect()
    }

    /// Forgets `tally` (handing back the caller's reference) and retires its metric series,
    /// unless a socket joined since it was found idle or someone else still holds it.
    pub fn remove_if_idle(&self, tally: Arc<CampaignTally>, metrics: &Metrics) -> bool {
        let id = tally.campaign.id.clone();
        let kinds = tally.campaign.kinds.clone();
        drop(tally);
        let removed = {
            let mut map = lock(&self.map);
            match map.get(&id) {
                Some(t) if Arc::strong_count(t) == 1 && t.sockets() == 0 && t.is_drained() => {
                    map.remove(&id);
                    true
                }
                _ => false,
            }
        };
        if removed {
            metrics.forget_campaign(&id, &kinds);
        }
        removed
    }
}

impl Trees {
    async fn get(&self, org: &str, version: u64) -> Result<Arc<Tree>, String> {
        let mut loaded = self.loaded.lock().await;
        if let Some(t) = loaded.get(&(org.to_owned(), version)) {
            return Ok(t.clone());
        }
        let tree = match self.store.org_tree(org, version).await {
            Ok(Some(t)) => t,
            Ok(None) => return Err("the org version is gone".into()),
            Err(e) => return Err(e.to_string()),
        };
        loaded.insert((org.to_owned(), version), tree.clone());
        Ok(tree)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::flaky::campaign;

    #[test]
    fn a_campaign_created_again_under_its_id_gets_a_tally_of_its_own() {
        let tallies = Tallies::new(10);
        let mut old = campaign("launch");
        old.created_at -= 1_000;
        let t = tallies.get_or_create(&old);
        let slot = Arc::new(SessionSlot::new("session-1".into(), "viewer-1".into(), 1, 0, 4));
        t.viewer_joined(0, &slot);
        let new = campaign("launch");
        assert!(
            Arc::ptr_eq(&tallies.get_or_create(&new), &t),
            "not while the old one is live"
        );
        t.ended.cancel();
        t.share_visit("wechat");
        assert!(
            Arc::ptr_eq(&tallies.get_or_create(&new), &t),
            "nor while it has counts to flush"
        );
        t.drain();
        let fresh = tallies.get_or_create(&new);
        assert!(!Arc::ptr_eq(&fresh, &t) && !fresh.ended.is_cancelled());
        assert_eq!((fresh.campaign.created_at, fresh.local_viewers()), (new.created_at, 0));
        assert!(Arc::ptr_eq(&tallies.get_or_create(&new), &fresh));
    }

    #[tokio::test(start_paused = true)]
    async fn a_viewer_counts_once_its_socket_stayed_the_dwell() {
        let tallies = Tallies::new(10).with_unique_after(Duration::from_secs(10));
        let t = tallies.get_or_create(&campaign("dwell"));
        let slot = |n: u64| Arc::new(SessionSlot::new(format!("session-{n}"), format!("viewer-{n}"), n, 0, 4));
        let (stays, leaves, liked) = (slot(1), slot(2), slot(3));
        t.viewer_joined(0, &stays);
        t.viewer_joined(0, &leaves);
        t.viewer_joined(0, &liked);
        liked.add(0, 1, None);
        assert_eq!(liked.interactor(), "", "counts before the dwell carry nobody");
        tokio::time::advance(Duration::from_millis(9_900)).await;
        let early = t.drain();
        assert!(early.new_viewers.is_empty() && early.interactors.is_empty());
        t.viewer_left(0, &leaves);
        tokio::time::advance(Duration::from_millis(100)).await;
        let due = t.drain();
        assert_eq!(
            due.new_viewers,
            ["viewer-1", "viewer-3"],
            "the one that left never counts"
        );
        assert_eq!(due.interactors, ["viewer-3"], "it liked before it qualified");
        assert_eq!(liked.interactor(), "viewer-3");
        assert!(t.drain().new_viewers.is_empty(), "each socket qualifies once");
    }
}
