//! The memory store's [`Counting`]: session claims, batches (applied in the steps below,
//! all under the one lock) and presence.

use std::collections::BTreeMap;
use std::time::Instant;

use async_trait::async_trait;

use super::campaign::{CampaignData, Entry, Lease};
use super::MemoryStore;
use crate::campaign::{State, OTHER_CHANNEL};
use crate::store::{Applied, Batch, Counting, Owner, Presence, StoreError, StoreResult};

/// True when `channel` is counted under its own name. With `declared` channels: it is one
/// of them (or `other`). Without: it is known already, it is `other`, or the campaign has
/// fewer than `max` distinct channels besides `other` (0: no bound).
fn share_channel_fits(shares: &BTreeMap<String, u64>, declared: &[String], channel: &str, max: u64) -> bool {
    if channel == OTHER_CHANNEL {
        return true;
    }
    if !declared.is_empty() {
        return declared.iter().any(|c| c == channel);
    }
    let distinct = shares.len() - usize::from(shares.contains_key(OTHER_CHANNEL));
    max == 0 || shares.contains_key(channel) || (distinct as u64) < max
}

#[async_trait]
impl Counting for MemoryStore {
    async fn claim_session(&self, campaign: &str, session: &str, owner: &Owner<'_>) -> StoreResult<(u64, u64)> {
        let mut map = self.lock();
        let d = map.get_mut(campaign).ok_or(StoreError::NotFound)?;
        let now = Instant::now();
        d.roll(now);
        let old = d.sessions.get(session).cloned();
        if let Some(Entry {
            epoch,
            owner: Some((node, region)),
            ..
        }) = &old
        {
            if d.alive(node, now) {
                d.moved.insert(*epoch, (node.clone(), region.clone()));
            }
        }
        if !d.alive(owner.node, now) {
            d.claim_leases.insert(owner.node.to_owned(), now + owner.lease);
        }
        d.last_epoch += 1;
        let acked = old.map_or(0, |e| e.acked);
        let entry = Entry {
            epoch: d.last_epoch,
            acked,
            owner: Some((owner.node.to_owned(), owner.counted_in())),
        };
        d.sessions.put(session, entry);
        Ok((d.last_epoch, acked))
    }

    async fn apply(&self, batch: &Batch) -> StoreResult<Applied> {
        let mut map = self.lock();
        let ended = Applied {
            ended: true,
            ..Applied::default()
        };
        let Some(d) = map.get_mut(&batch.campaign) else {
            return Ok(ended);
        };
        if d.campaign.state == State::Ended {
            return Ok(ended);
        }
        d.roll(Instant::now());
        let session_ttl = Some(d.sessions.ttl());
        if batch.number > 0 {
            if let Some((n, fenced)) = d.applied.get(&batch.origin) {
                if *n >= batch.number {
                    return Ok(Applied {
                        fenced: fenced.clone(),
                        ended: false,
                        session_ttl,
                        moved: vec![],
                    });
                }
            }
        }
        touch(d, batch);
        let fenced = self.count_sessions(d, batch);
        count_visits(d, batch);
        d.units.count_batch(batch);
        let moved = leave(d, batch);
        if let Some((node, presence)) = &batch.presence {
            self.write_presence(d, node, presence, batch);
        }
        if batch.number > 0 {
            d.applied.put(&batch.origin, (batch.number, fenced.clone()));
        }
        Ok(Applied {
            fenced,
            ended: false,
            session_ttl,
            moved,
        })
    }

    async fn drop_presence(&self, campaign: &str, node: &str) -> StoreResult<()> {
        if let Some(d) = self.lock().get_mut(campaign) {
            d.presence.remove(node);
            d.claim_leases.remove(node);
        }
        Ok(())
    }
}

/// Keeps the resume state of quiet open sockets alive (stale epochs are ignored).
fn touch(d: &mut CampaignData, batch: &Batch) {
    for (session, epoch) in &batch.touch {
        if let Some(entry) = d.sessions.get(session).filter(|e| e.epoch == *epoch).cloned() {
            d.sessions.put(session, entry);
        }
    }
}

/// New viewers into the unique sketch (and those that interacted before they qualified
/// into the interactors), share visits by channel (bounded).
fn count_visits(d: &mut CampaignData, batch: &Batch) {
    for v in &batch.new_viewers {
        d.uniques.add(v);
    }
    for v in &batch.interactors {
        d.interactors.add(v);
    }
    for (channel, n) in &batch.share_visits {
        let declared = &d.campaign.share_channels;
        let channel = if share_channel_fits(&d.shares, declared, channel, batch.max_share_channels) {
            channel.as_str()
        } else {
            OTHER_CHANNEL
        };
        *d.shares.entry(channel.to_owned()).or_default() += n;
    }
}

/// Sockets this node closed: no longer counted by it, nor moved away from it. A session
/// whose last socket closed without ever sending a `seq` has no resume state worth
/// keeping, so it is forgotten at once: a connect loop leaves nothing behind. (Its epoch
/// is gone with it, so a delta still holding that epoch is fenced.) Returns the epochs
/// still counted as moved away from `batch.node`, ascending.
fn leave(d: &mut CampaignData, batch: &Batch) -> Vec<u64> {
    for (session, epoch) in &batch.left {
        d.moved.remove(epoch);
        if let Some(mut entry) = d.sessions.get(session).filter(|e| e.epoch == *epoch).cloned() {
            if entry.acked == 0 {
                d.sessions.remove(session);
                continue;
            }
            entry.owner = None;
            d.sessions.put(session, entry);
        }
    }
    let mut moved: Vec<u64> = d
        .moved
        .iter()
        .filter(|(_, (node, _))| *node == batch.node)
        .map(|(e, _)| *e)
        .collect();
    moved.sort_unstable();
    moved
}

impl MemoryStore {
    /// The sessions' deltas: acked seqs, counts (per kind and into the series bucket), the
    /// interactor sketch, milestone events. Returns the indices fenced for a stale epoch.
    fn count_sessions(&self, d: &mut CampaignData, batch: &Batch) -> Vec<usize> {
        let mut fenced = Vec::new();
        for (i, s) in batch.sessions.iter().enumerate() {
            let Some(mut entry) = d.sessions.get(&s.session).filter(|e| e.epoch == s.epoch).cloned() else {
                fenced.push(i);
                continue;
            };
            entry.acked = entry.acked.max(s.seq);
            d.sessions.put(&s.session, entry);
            if !s.counts.is_empty() && !s.viewer.is_empty() {
                d.interactors.add(&s.viewer);
            }
            if let Some(path) = &s.unit {
                d.units.count_interactions(path, &s.counts);
            }
            let bucket = d.interaction_series.entry(batch.bucket_ms).or_default();
            for (kind, n) in &s.counts {
                let total = d.interactions.entry(kind.clone()).or_default();
                *total += n;
                *bucket.entry(kind.clone()).or_default() += n;
                let total = *total;
                self.outbox()
                    .reached(&d.campaign, kind, total - n, total, crate::util::now_ms());
            }
        }
        fenced
    }

    /// Writes `node`'s presence lease and raises the peak to the sum of the live leases.
    fn write_presence(&self, d: &mut CampaignData, node: &str, presence: &Presence, batch: &Batch) {
        let now = crate::util::now_ms();
        let instant = Instant::now();
        d.presence.insert(
            node.to_owned(),
            Lease {
                presence: presence.clone(),
                updated_at: now,
                expires: instant + batch.presence_ttl,
            },
        );
        // The peak moves with presence, so it is exact to the flush, not just the tick.
        d.prune(instant);
        let counted: Vec<Presence> = d.presence.iter().map(|(n, l)| d.counted(n, l)).collect();
        let total: u64 = counted.iter().map(|p| p.viewers).sum();
        if total > d.peak {
            let mut regions = BTreeMap::new();
            for p in &counted {
                for (r, n) in &p.regions {
                    *regions.entry(r.clone()).or_default() += n;
                }
            }
            self.outbox().peak(&d.campaign, d.peak, total, now, now);
            d.peak = total;
            d.peak_at = Some(now);
            d.regions_at_peak = regions;
        }
    }
}
