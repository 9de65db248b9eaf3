//! The embedded store: one node, no Redis. Everything lives in one `std::sync::Mutex`
//! guarded map. A blocking mutex is right here (as in mini-redis `db.rs`): critical
//! sections are short, never span an `.await`, and the store is called once per campaign
//! per flush or tick, not per frame.

mod campaign;
mod counting;
mod generations;
mod orgs;
mod queues;
mod secrets;
mod signups;
mod units;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use self::campaign::CampaignData;
use self::generations::Generations;
use super::hll::HyperLogLog;
use super::outbox::{self, Backlog, Delivery, Receiver, Settle};
use super::{
    Campaigns, Health, NodeShare, Outbox, Reads, Registration, SeriesMetric, Signups, Stats, StoreError, StoreResult,
    UnitPeak, UnitTotals, Units, DEFAULT_SESSION_TTL,
};
use crate::campaign::{Campaign, Milestones, State};
use queues::Queues;

/// In-memory [`super::Store`]: every seam, one map under one lock.
pub struct MemoryStore {
    inner: Mutex<HashMap<String, CampaignData>>,
    /// Campaigns created so far: the creation sequence (not the map's size, which shrinks
    /// when a campaign is deleted).
    created: AtomicU64,
    /// The session TTL new campaigns get (see [`super::Counting::claim_session`]).
    session_ttl: Duration,
    /// Generation 0 starts here, for every campaign.
    started: Instant,
    /// The campaign index's version (see [`Campaigns::index_version`]), moved under
    /// `inner`'s lock by every write to a campaign itself.
    version: AtomicU64,
    /// Webhook events, queued under `inner`'s lock by the step that decides them (lock
    /// order: `inner`, then `outbox`).
    outbox: Mutex<Queues>,
    /// The join and ticket keys of this process, and the spent ticket nonces.
    keys: secrets::Keys,
    /// Organisations (`memory/orgs.rs`), apart from the campaigns: no call needs both.
    orgs: Mutex<orgs::OrgsData>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            inner: Mutex::default(),
            created: AtomicU64::new(0),
            session_ttl: DEFAULT_SESSION_TTL,
            started: Instant::now(),
            version: AtomicU64::new(0),
            outbox: Mutex::default(),
            keys: secrets::Keys::default(),
            orgs: Mutex::default(),
        }
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Campaigns created from now on forget sessions after `ttl` (`--session-ttl`).
    pub fn with_session_ttl(mut self, ttl: Duration) -> Self {
        self.session_ttl = ttl;
        self
    }

    /// How many entries the store holds for a campaign, over every map (counts, sessions,
    /// retry records, registrations, shares, presence, series): for tests that check the
    /// store does not grow with the sessions it has seen. 0 for an unknown campaign.
    pub fn footprint(&self, campaign: &str) -> usize {
        let mut map = self.lock();
        let Some(d) = map.get_mut(campaign) else { return 0 };
        d.roll(Instant::now());
        d.interactions.len()
            + d.sessions.len()
            + d.applied.len()
            + d.moved.len()
            + d.claim_leases.len()
            + d.registrations.len()
            + d.shares.len()
            + d.presence.len()
            + d.viewer_series.len()
            + d.interaction_series.values().map(HashMap::len).sum::<usize>()
    }

    /// A campaign's webhook queue holds at most `max` events (`--webhook-queue-max`).
    pub fn with_queue_max(self, max: usize) -> Self {
        self.outbox().max = max;
        self
    }

    fn outbox(&self) -> MutexGuard<'_, Queues> {
        self.outbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves the index version (called with `inner` locked, after the change).
    fn changed(&self) {
        self.version.fetch_add(1, Ordering::Release);
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, CampaignData>> {
        // A panic while holding this lock would be a bug in this file; keep serving the data.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Health for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }
}

#[async_trait]
impl Campaigns for MemoryStore {
    async fn create_campaign(&self, campaign: &Campaign) -> StoreResult<()> {
        let mut map = self.lock();
        if map.contains_key(&campaign.id) {
            return Err(StoreError::Conflict);
        }
        let created_seq = self.created.fetch_add(1, Ordering::Relaxed);
        map.insert(
            campaign.id.clone(),
            CampaignData {
                campaign: campaign.clone(),
                created_seq,
                interactions: HashMap::new(),
                sessions: Generations::new(self.session_ttl, self.started),
                moved: HashMap::new(),
                claim_leases: HashMap::new(),
                last_epoch: 0,
                applied: Generations::new(self.session_ttl, self.started),
                uniques: HyperLogLog::default(),
                interactors: HyperLogLog::default(),
                registrations: signups::Signups::default(),
                shares: BTreeMap::new(),
                presence: HashMap::new(),
                peak: 0,
                peak_at: None,
                regions_at_peak: BTreeMap::new(),
                viewer_series: BTreeMap::new(),
                interaction_series: BTreeMap::new(),
                units: units::UnitData::new(self.session_ttl, self.started),
            },
        );
        self.changed();
        Ok(())
    }

    async fn get_campaign(&self, id: &str) -> StoreResult<Option<Campaign>> {
        Ok(self.lock().get(id).map(|d| d.campaign.clone()))
    }

    async fn list_campaigns(&self) -> StoreResult<Vec<Campaign>> {
        let map = self.lock();
        let mut all: Vec<_> = map.values().collect();
        all.sort_by_key(|d| (d.campaign.created_at, d.created_seq));
        Ok(all.into_iter().map(|d| d.campaign.clone()).collect())
    }

    async fn end_campaign(&self, id: &str, at_ms: i64) -> StoreResult<Campaign> {
        let mut map = self.lock();
        let d = map.get_mut(id).ok_or(StoreError::NotFound)?;
        if d.campaign.state == State::Live {
            d.campaign.state = State::Ended;
            d.campaign.ended_at = Some(at_ms);
            d.presence.clear();
            d.sessions.clear();
            d.moved.clear();
            d.claim_leases.clear();
            self.outbox().push(id, outbox::ENDED, "null", crate::util::now_ms());
            self.changed();
        }
        Ok(d.campaign.clone())
    }

    /// A campaign's data is one map entry, so removing the entry removes all of it.
    async fn delete_campaign(&self, id: &str) -> StoreResult<()> {
        let mut map = self.lock();
        match map.get(id) {
            None => Err(StoreError::NotFound),
            Some(d) if d.campaign.state == State::Live => Err(StoreError::Live),
            Some(_) => {
                map.remove(id);
                self.changed();
                self.outbox().forget_people(id);
                Ok(())
            }
        }
    }

    async fn set_milestones(&self, id: &str, milestones: &Milestones) -> StoreResult<Campaign> {
        let mut map = self.lock();
        let d = map.get_mut(id).ok_or(StoreError::NotFound)?;
        d.campaign.milestones = milestones.clone();
        self.changed();
        Ok(d.campaign.clone())
    }

    async fn set_share_channels(&self, id: &str, channels: &[String]) -> StoreResult<Campaign> {
        let mut map = self.lock();
        let d = map.get_mut(id).ok_or(StoreError::NotFound)?;
        d.campaign.share_channels = channels.to_vec();
        self.changed();
        Ok(d.campaign.clone())
    }

    async fn index_version(&self) -> StoreResult<u64> {
        Ok(self.version.load(Ordering::Acquire))
    }
}

#[async_trait]
impl Reads for MemoryStore {
    async fn stats(&self, campaign: &str, kinds: &[String], _now_ms: i64) -> StoreResult<Stats> {
        let mut map = self.lock();
        let d = map.get_mut(campaign).ok_or(StoreError::NotFound)?;
        let now = Instant::now();
        d.prune(now);
        // Read every tick while anyone watches: forgotten sessions leave memory here too.
        d.roll(now);
        let mut stats = Stats {
            peak_viewers: d.peak,
            peak_at: d.peak_at,
            unique_viewers: d.uniques.count(),
            interactors: d.interactors.count(),
            registrations: d.registrations.count(),
            share_visits: d.shares.values().sum(),
            share_visits_by_channel: d.shares.clone(),
            regions_at_peak: d.regions_at_peak.clone(),
            ended: d.campaign.state == State::Ended,
            ..Stats::default()
        };
        for k in kinds {
            stats
                .interactions
                .insert(k.clone(), d.interactions.get(k).copied().unwrap_or(0));
        }
        let mut nodes: Vec<_> = d
            .presence
            .iter()
            .map(|(n, l)| (n, l.updated_at, d.counted(n, l)))
            .collect();
        nodes.sort_by(|a, b| a.0.cmp(b.0));
        for (node, updated_at, presence) in nodes {
            stats.viewers += presence.viewers;
            for (r, n) in &presence.regions {
                *stats.regions.entry(r.clone()).or_default() += n;
            }
            stats.nodes.push(NodeShare {
                node: node.clone(),
                viewers: presence.viewers,
                updated_at,
            });
        }
        stats.regions.retain(|_, n| *n > 0);
        stats.split_units();
        Ok(stats)
    }

    async fn record_tick(
        &self,
        campaign: &str,
        bucket_ms: i64,
        at_ms: i64,
        viewers: u64,
        regions: &BTreeMap<String, u64>,
    ) -> StoreResult<(u64, Option<i64>)> {
        let mut map = self.lock();
        let d = map.get_mut(campaign).ok_or(StoreError::NotFound)?;
        if d.campaign.state == State::Ended {
            return Ok((d.peak, d.peak_at));
        }
        d.viewer_series.insert(bucket_ms, viewers);
        d.units.raise_peaks(at_ms, regions);
        if viewers > d.peak {
            self.outbox()
                .peak(&d.campaign, d.peak, viewers, at_ms, crate::util::now_ms());
            d.peak = viewers;
            d.peak_at = Some(at_ms);
            d.regions_at_peak = regions.clone();
        }
        Ok((d.peak, d.peak_at))
    }

    async fn series(
        &self,
        campaign: &str,
        metric: &SeriesMetric,
        from_ms: i64,
        to_ms: i64,
    ) -> StoreResult<Vec<(i64, u64)>> {
        let map = self.lock();
        let d = map.get(campaign).ok_or(StoreError::NotFound)?;
        if from_ms > to_ms {
            return Ok(vec![]);
        }
        Ok(match metric {
            SeriesMetric::Viewers => d.viewer_series.range(from_ms..=to_ms).map(|(t, v)| (*t, *v)).collect(),
            SeriesMetric::Interactions(kind) => d
                .interaction_series
                .range(from_ms..=to_ms)
                .map(|(t, by_kind)| {
                    let v = match kind {
                        Some(k) => by_kind.get(k).copied().unwrap_or(0),
                        None => by_kind.values().sum(),
                    };
                    (*t, v)
                })
                .collect(),
        })
    }
}

#[async_trait]
impl Signups for MemoryStore {
    async fn register(&self, campaign: &str, registration: &Registration) -> StoreResult<bool> {
        let mut map = self.lock();
        let d = map.get_mut(campaign).ok_or(StoreError::NotFound)?;
        let added = d.registrations.add(registration);
        if added {
            if let Some(path) = &registration.unit {
                d.units.count_registration(path);
            }
            self.outbox().push_registration(
                campaign,
                &registration.viewer,
                &registration.fields,
                registration.unit_code(),
                crate::util::now_ms(),
            );
        }
        Ok(added)
    }

    async fn registrations(&self, campaign: &str, after: u64, limit: usize) -> StoreResult<Vec<(u64, Registration)>> {
        let map = self.lock();
        let d = map.get(campaign).ok_or(StoreError::NotFound)?;
        Ok(d.registrations.page(after, limit))
    }

    async fn erase_registration(&self, campaign: &str, viewer: &str) -> StoreResult<bool> {
        let mut map = self.lock();
        let d = map.get_mut(campaign).ok_or(StoreError::NotFound)?;
        let erased = d.registrations.erase(viewer);
        self.outbox().erase(campaign, viewer);
        Ok(erased)
    }
}

#[async_trait]
impl Outbox for MemoryStore {
    async fn receivers(&self) -> StoreResult<Vec<Receiver>> {
        Ok(self.outbox().receivers())
    }

    async fn set_receivers(&self, receivers: &[Receiver]) -> StoreResult<()> {
        self.outbox().set_receivers(receivers);
        Ok(())
    }

    async fn seed_receivers(&self, receivers: &[Receiver]) -> StoreResult<bool> {
        Ok(self.outbox().seed_receivers(receivers))
    }

    async fn due_outboxes(&self, now_ms: i64, limit: usize) -> StoreResult<Vec<String>> {
        Ok(self.outbox().due(now_ms, limit))
    }

    async fn lease_event(
        &self,
        campaign: &str,
        receiver: &str,
        node: &str,
        lease: Duration,
    ) -> StoreResult<outbox::Lease> {
        Ok(self
            .outbox()
            .lease(campaign, receiver, node, lease, crate::util::now_ms()))
    }

    async fn settle_event(&self, to: &Delivery<'_>, outcome: Settle) -> StoreResult<()> {
        self.outbox().settle(to, outcome, crate::util::now_ms());
        Ok(())
    }

    async fn backlog(&self) -> StoreResult<Backlog> {
        Ok(self.outbox().backlog())
    }
}

#[async_trait]
impl Units for MemoryStore {
    async fn put_deep_viewers(
        &self,
        campaign: &str,
        node: &str,
        changes: &[(String, u64)],
        full: bool,
        lease: Duration,
    ) -> StoreResult<bool> {
        let mut map = self.lock();
        let d = map.get_mut(campaign).ok_or(StoreError::NotFound)?;
        Ok(d.units.put_deep_viewers(node, changes, full, lease))
    }

    async fn deep_viewers(&self, campaign: &str, nodes: &[String], codes: &[String]) -> StoreResult<Vec<u64>> {
        let map = self.lock();
        Ok(map
            .get(campaign)
            .ok_or(StoreError::NotFound)?
            .units
            .deep_viewers(nodes, codes))
    }

    async fn all_deep_viewers(&self, campaign: &str, nodes: &[String]) -> StoreResult<HashMap<String, u64>> {
        let map = self.lock();
        Ok(map
            .get(campaign)
            .ok_or(StoreError::NotFound)?
            .units
            .all_deep_viewers(nodes))
    }

    async fn unit_totals(&self, campaign: &str, kinds: &[String], codes: &[String]) -> StoreResult<Vec<UnitTotals>> {
        let map = self.lock();
        Ok(map
            .get(campaign)
            .ok_or(StoreError::NotFound)?
            .units
            .totals(kinds, codes))
    }

    /// Counted in place: nothing to fold.
    async fn fold_units(
        &self,
        _campaign: &str,
        _tree: &std::sync::Arc<crate::org::Tree>,
        _lease: Option<Duration>,
    ) -> StoreResult<()> {
        Ok(())
    }

    async fn unit_peaks(&self, campaign: &str, codes: &[String]) -> StoreResult<Vec<UnitPeak>> {
        let map = self.lock();
        Ok(map.get(campaign).ok_or(StoreError::NotFound)?.units.peaks(codes))
    }
}
