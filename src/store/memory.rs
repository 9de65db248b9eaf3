//! The embedded store: one node, no Redis. Everything lives in one `std::sync::Mutex`
//! guarded map. A blocking mutex is right here (as in mini-redis `db.rs`): critical
//! sections are short, never span an `.await`, and the store is called once per campaign
//! per flush or tick, not per frame.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use async_trait::async_trait;

use super::hll::HyperLogLog;
use super::{Applied, Batch, NodeShare, Presence, SeriesMetric, Stats, Store, StoreError, StoreResult};
use crate::campaign::{Campaign, State};

/// In-memory [`Store`].
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<HashMap<String, CampaignData>>,
    /// Campaigns created so far: the creation sequence (not the map's size, which shrinks
    /// when a campaign is deleted).
    created: AtomicU64,
}

#[derive(Debug)]
struct Lease {
    presence: Presence,
    updated_at: i64,
    expires: Instant,
}

#[derive(Debug)]
struct CampaignData {
    campaign: Campaign,
    /// Order of creation, for listing oldest first.
    created_seq: u64,
    interactions: HashMap<String, u64>,
    sessions: HashMap<String, (u64, u64)>,
    /// Last applied batch number and its fenced indices, per origin.
    applied: HashMap<String, (u64, Vec<usize>)>,
    uniques: HyperLogLog,
    interactors: HyperLogLog,
    registrations: HashSet<String>,
    shares: BTreeMap<String, u64>,
    presence: HashMap<String, Lease>,
    peak: u64,
    peak_at: Option<i64>,
    regions_at_peak: BTreeMap<String, u64>,
    viewer_series: BTreeMap<i64, u64>,
    /// bucket → kind → count
    interaction_series: BTreeMap<i64, HashMap<String, u64>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, CampaignData>> {
        // A panic while holding this lock would be a bug in this file; keep serving the data.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Where visits beyond a campaign's channel bound are counted.
const OTHER_CHANNEL: &str = "other";

/// True when `channel` is counted under its own name: it is known already, it is `other`,
/// or the campaign has fewer than `max` distinct channels besides `other` (0: no bound).
fn share_channel_fits(shares: &BTreeMap<String, u64>, channel: &str, max: u64) -> bool {
    let distinct = shares.len() - usize::from(shares.contains_key(OTHER_CHANNEL));
    max == 0 || channel == OTHER_CHANNEL || shares.contains_key(channel) || (distinct as u64) < max
}

#[async_trait]
impl Store for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }

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
                sessions: HashMap::new(),
                applied: HashMap::new(),
                uniques: HyperLogLog::default(),
                interactors: HyperLogLog::default(),
                registrations: HashSet::new(),
                shares: BTreeMap::new(),
                presence: HashMap::new(),
                peak: 0,
                peak_at: None,
                regions_at_peak: BTreeMap::new(),
                viewer_series: BTreeMap::new(),
                interaction_series: BTreeMap::new(),
            },
        );
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
                Ok(())
            }
        }
    }

    async fn claim_session(&self, campaign: &str, session: &str) -> StoreResult<(u64, u64)> {
        let mut map = self.lock();
        let d = map.get_mut(campaign).ok_or(StoreError::NotFound)?;
        let entry = d.sessions.entry(session.to_owned()).or_insert((0, 0));
        entry.0 += 1;
        Ok(*entry)
    }

    async fn apply(&self, batch: &Batch) -> StoreResult<Applied> {
        let mut map = self.lock();
        let Some(d) = map.get_mut(&batch.campaign) else {
            return Ok(Applied {
                fenced: vec![],
                ended: true,
            });
        };
        if d.campaign.state == State::Ended {
            return Ok(Applied {
                fenced: vec![],
                ended: true,
            });
        }
        if batch.number > 0 {
            if let Some((n, fenced)) = d.applied.get(&batch.origin) {
                if *n >= batch.number {
                    return Ok(Applied {
                        fenced: fenced.clone(),
                        ended: false,
                    });
                }
            }
        }
        let mut fenced = Vec::new();
        for (i, s) in batch.sessions.iter().enumerate() {
            let (epoch, acked) = d.sessions.get(&s.session).copied().unwrap_or((0, 0));
            if epoch != s.epoch {
                fenced.push(i);
                continue;
            }
            if s.seq > acked {
                d.sessions.insert(s.session.clone(), (epoch, s.seq));
            }
            if !s.counts.is_empty() {
                d.interactors.add(&s.viewer);
            }
            let bucket = d.interaction_series.entry(batch.bucket_ms).or_default();
            for (kind, n) in &s.counts {
                *d.interactions.entry(kind.clone()).or_default() += n;
                *bucket.entry(kind.clone()).or_default() += n;
            }
        }
        for v in &batch.new_viewers {
            d.uniques.add(v);
        }
        for (channel, n) in &batch.share_visits {
            let channel = if share_channel_fits(&d.shares, channel, batch.max_share_channels) {
                channel.as_str()
            } else {
                OTHER_CHANNEL
            };
            *d.shares.entry(channel.to_owned()).or_default() += n;
        }
        if let Some((node, presence)) = &batch.presence {
            let now = crate::util::now_ms();
            let instant = Instant::now();
            d.presence.insert(
                node.clone(),
                Lease {
                    presence: presence.clone(),
                    updated_at: now,
                    expires: instant + batch.presence_ttl,
                },
            );
            // The peak moves with presence, so it is exact to the flush, not just the tick.
            d.presence.retain(|_, l| l.expires > instant);
            let total: u64 = d.presence.values().map(|l| l.presence.viewers).sum();
            if total > d.peak {
                let mut regions = BTreeMap::new();
                for l in d.presence.values() {
                    for (r, n) in &l.presence.regions {
                        *regions.entry(r.clone()).or_default() += n;
                    }
                }
                d.peak = total;
                d.peak_at = Some(now);
                d.regions_at_peak = regions;
            }
        }
        if batch.number > 0 {
            d.applied.insert(batch.origin.clone(), (batch.number, fenced.clone()));
        }
        Ok(Applied { fenced, ended: false })
    }

    async fn drop_presence(&self, campaign: &str, node: &str) -> StoreResult<()> {
        if let Some(d) = self.lock().get_mut(campaign) {
            d.presence.remove(node);
        }
        Ok(())
    }

    async fn stats(&self, campaign: &str, kinds: &[String], _now_ms: i64) -> StoreResult<Stats> {
        let mut map = self.lock();
        let d = map.get_mut(campaign).ok_or(StoreError::NotFound)?;
        let now = Instant::now();
        d.presence.retain(|_, l| l.expires > now);
        let mut stats = Stats {
            peak_viewers: d.peak,
            peak_at: d.peak_at,
            unique_viewers: d.uniques.count(),
            interactors: d.interactors.count(),
            registrations: d.registrations.len() as u64,
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
        let mut nodes: Vec<_> = d.presence.iter().collect();
        nodes.sort_by(|a, b| a.0.cmp(b.0));
        for (node, lease) in nodes {
            stats.viewers += lease.presence.viewers;
            for (r, n) in &lease.presence.regions {
                *stats.regions.entry(r.clone()).or_default() += n;
            }
            stats.nodes.push(NodeShare {
                node: node.clone(),
                viewers: lease.presence.viewers,
                updated_at: lease.updated_at,
            });
        }
        stats.regions.retain(|_, n| *n > 0);
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
        if viewers > d.peak {
            d.peak = viewers;
            d.peak_at = Some(at_ms);
            d.regions_at_peak = regions.clone();
        }
        Ok((d.peak, d.peak_at))
    }

    async fn register(&self, campaign: &str, viewer: &str) -> StoreResult<bool> {
        let mut map = self.lock();
        let d = map.get_mut(campaign).ok_or(StoreError::NotFound)?;
        Ok(d.registrations.insert(viewer.to_owned()))
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
