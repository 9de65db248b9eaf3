//! The node's campaign index: every campaign the store holds, and each one's latest public
//! stats, so the public reads (`GET /api/v1/campaigns/{id}`, `…/stats`, `/s/{id}`) and the
//! socket's campaign lookup cost the store nothing per request.
//!
//! The broadcaster refreshes it once per tick: one read of the store's index version
//! ([`Campaigns::index_version`]), and the whole list only when that moved (or every
//! [`FULL_READ_EVERY`] ticks, in case a version bump was lost), so a campaign created on
//! any node is known to every node within one tick. The same tick's stats read of each
//! live campaign is published here. An ended campaign's numbers no longer change: they
//! are read once, on first demand, and kept. An id not in the index is unknown without
//! asking the store.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::campaign::Campaign;
use crate::protocol::Frames;
use crate::store::{Campaigns, Reads, Stats, StoreError, StoreResult};

/// Ticks between full reads of the list even when the version did not move: the version
/// lives in the index's own slot and is moved by a second call after a campaign write, so
/// a node that died between the two (or a v1.1 node, which does not move it) would
/// otherwise hide a change until the next one. At the default 1 s tick: a minute.
pub const FULL_READ_EVERY: u32 = 60;

/// One campaign as this node knows it.
pub struct Entry {
    pub campaign: Campaign,
    /// `campaign` as JSON (an object), serialised once, not per request.
    json: String,
    /// The latest stats read (a tick's, or the first demand's); `None` before any.
    frames: RwLock<Option<Arc<Frames>>>,
    /// Held by the one request that reads missing stats, so a burst of requests for a
    /// campaign without them costs one store read, not one each.
    fill: tokio::sync::Mutex<()>,
    /// The units listings operators read, per tick and parent (`GET …/units`, `watch`).
    pub units: super::units::Listings,
}

impl Entry {
    fn new(campaign: Campaign, frames: Option<Arc<Frames>>) -> Self {
        // unwrap: a campaign is plain strings, integers and lists: it always serialises.
        let json = serde_json::to_string(&campaign).unwrap();
        Self {
            campaign,
            json,
            frames: RwLock::new(frames),
            fill: tokio::sync::Mutex::new(()),
            units: Default::default(),
        }
    }

    /// The same campaign (not an id deleted and created again), still in the same state:
    /// its stats carry over.
    fn continues(&self, campaign: &Campaign) -> bool {
        self.campaign.created_at == campaign.created_at && self.campaign.state == campaign.state
    }

    /// Publishes a tick's frames (the broadcaster calls this once per tick per campaign).
    pub fn publish(&self, frames: Arc<Frames>) {
        *self.frames.write().unwrap_or_else(|e| e.into_inner()) = Some(frames);
    }

    fn latest(&self) -> Option<Arc<Frames>> {
        self.frames.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The campaign's latest frames: those of the last tick, or (before any, or for an
    /// ended campaign, whose numbers are final) one read shared by every request waiting.
    pub async fn frames(&self, reads: &dyn Reads) -> StoreResult<Arc<Frames>> {
        if let Some(f) = self.latest() {
            return Ok(f);
        }
        let _filling = self.fill.lock().await;
        if let Some(f) = self.latest() {
            return Ok(f);
        }
        let c = &self.campaign;
        let at = crate::util::now_ms();
        let stats = reads.stats(&c.id, &c.kinds, at).await?;
        let frames = Arc::new(Frames::build(&c.id, at, &stats));
        self.publish(frames.clone());
        Ok(frames)
    }

    /// `GET /api/v1/campaigns/{id}`'s body: the campaign with its viewer `stats`.
    pub fn with_stats(&self, frames: &Frames) -> String {
        let object = &self.json[..self.json.len() - 1];
        let mut body = String::with_capacity(object.len() + frames.viewer_stats.len() + 12);
        body.push_str(object);
        body.push_str(r#","stats":"#);
        body.push_str(&frames.viewer_stats);
        body.push('}');
        body
    }
}

#[derive(Default)]
struct Known {
    /// The first read of the list succeeded: an id missing from it is unknown.
    loaded: bool,
    /// The store's index version the list was read at.
    version: u64,
    /// Ticks since the last full read.
    since_full: u32,
    entries: HashMap<String, Arc<Entry>>,
}

/// The campaigns of the store, as this node last read them (see the module doc).
pub struct CampaignIndex {
    store: Arc<dyn Campaigns>,
    known: RwLock<Known>,
    /// Held while the list is re-read, and by this node's own campaign writes from the
    /// store call until the index shows them: a re-read that started before a write
    /// cannot put back what it read over it.
    writes: tokio::sync::Mutex<()>,
}

impl CampaignIndex {
    pub fn new(store: Arc<dyn Campaigns>) -> Self {
        Self {
            store,
            known: RwLock::default(),
            writes: tokio::sync::Mutex::new(()),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Known> {
        self.known.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Known> {
        self.known.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Once per tick: the store's version, and the list when it moved. Returns whether
    /// the list was read. On error the index keeps what it knew.
    pub async fn refresh(&self) -> StoreResult<bool> {
        let _writes = self.writes.lock().await;
        let version = self.store.index_version().await?;
        {
            let mut k = self.write();
            k.since_full += 1;
            if k.loaded && k.version == version && k.since_full < FULL_READ_EVERY {
                return Ok(false);
            }
        }
        let list = self.store.list_campaigns().await?;
        let mut k = self.write();
        let entries = list
            .into_iter()
            .map(|c| {
                let entry = match k.entries.get(&c.id) {
                    Some(old) if old.campaign == c => old.clone(),
                    Some(old) if old.continues(&c) => Arc::new(Entry::new(c, old.latest())),
                    _ => Arc::new(Entry::new(c, None)),
                };
                (entry.campaign.id.clone(), entry)
            })
            .collect();
        *k = Known {
            loaded: true,
            version,
            since_full: 0,
            entries,
        };
        Ok(true)
    }

    /// The campaign `id`: `Ok(None)` when the store does not hold it, `Unavailable`
    /// before the index was first read (the node cannot tell yet). Never asks the store.
    pub fn get(&self, id: &str) -> StoreResult<Option<Arc<Entry>>> {
        let k = self.read();
        match k.entries.get(id) {
            Some(e) => Ok(Some(e.clone())),
            None if k.loaded => Ok(None),
            None => Err(StoreError::Unavailable("the campaign index is not read yet".into())),
        }
    }

    /// The live campaigns: the ones the broadcaster reads stats for each tick.
    pub fn live(&self) -> Vec<Arc<Entry>> {
        self.read()
            .entries
            .values()
            .filter(|e| e.campaign.is_live())
            .cloned()
            .collect()
    }

    /// Taken by a route that writes a campaign, from before its store call until it told
    /// the index ([`CampaignIndex::put`], [`CampaignIndex::remove`]).
    pub async fn writing(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.writes.lock().await
    }

    /// This node wrote `campaign` (created, changed or ended it): known here at once. A
    /// campaign just created has zeros for stats, so none need reading.
    pub fn put(&self, campaign: Campaign, created: bool) {
        let mut k = self.write();
        let frames = match k.entries.get(&campaign.id) {
            Some(old) if old.continues(&campaign) => old.latest(),
            _ if created => {
                let zeros = Stats {
                    interactions: campaign.kinds.iter().map(|k| (k.clone(), 0)).collect(),
                    ..Stats::default()
                };
                Some(Arc::new(Frames::build(&campaign.id, crate::util::now_ms(), &zeros)))
            }
            _ => None,
        };
        k.entries
            .insert(campaign.id.clone(), Arc::new(Entry::new(campaign, frames)));
    }

    /// This node deleted `id`: unknown here at once.
    pub fn remove(&self, id: &str) {
        self.write().entries.remove(id);
    }
}

#[cfg(test)]
mod tests;
