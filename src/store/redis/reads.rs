//! What the broadcaster and the reports read from Redis: a campaign's stats (one script,
//! every count and the presence of every node) and its series. The `Store` methods in
//! `mod.rs` call these.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use super::codec::{corrupt, moved_by_node, opt_i64, pairs, parse_u64, StatsReply, StoredPresence};
use super::keys::{partition, CampaignKeys};
use super::RedisStore;
use crate::store::units::UNIT_PREFIX;
use crate::store::{NodeShare, SeriesMetric, Stats, StoreError, StoreResult};

impl RedisStore {
    /// A campaign's stats; leases are judged by the Redis clock that stamped them.
    pub(super) async fn read_stats(&self, campaign: &str, kinds: &[String]) -> StoreResult<Stats> {
        let k = CampaignKeys(campaign);
        let reply: Option<StatsReply> = self
            .scripts
            .stats
            .run(
                &self.conn,
                &[
                    k.meta(),
                    k.counts(),
                    k.uniq(),
                    k.actors(),
                    k.regs(),
                    k.shares(),
                    k.presence(),
                    k.presence_exp(),
                    k.moved(),
                ]
                .into_iter()
                .chain(k.presence_totals())
                .chain([k.peak_sum()])
                .collect::<Vec<_>>(),
                (self.layout_arg().await, self.peaks.held(campaign)),
            )
            .await?;
        let Some(reply) = reply else {
            self.peaks.hold(campaign, String::new(), &Stats::default());
            return Err(StoreError::NotFound);
        };
        let (counts, uniques, interactors, registrations, shares, live, peak, peak_at, regions, state, moved, totals) =
            reply;
        let counts: HashMap<String, String> = pairs(counts).collect();
        let mut stats = Stats {
            peak_viewers: parse_u64(&peak, "peak")?,
            peak_at: opt_i64(&peak_at, "peak_at")?,
            unique_viewers: uniques,
            interactors,
            registrations,
            ended: state != "live",
            regions_at_peak: match regions.as_str() {
                "" => BTreeMap::new(),
                // Filled from what this node holds once split (below).
                "=" => BTreeMap::new(),
                json if json.starts_with('{') => serde_json::from_str(json).map_err(|_| corrupt("peak_regions"))?,
                sum => at_peak(sum)?,
            },
            ..Stats::default()
        };
        for kind in kinds {
            let n = match counts.get(kind) {
                Some(n) => parse_u64(n, "count")?,
                None => 0,
            };
            stats.interactions.insert(kind.clone(), n);
        }
        for (channel, n) in pairs(shares) {
            let n = parse_u64(&n, "share visits")?;
            stats.share_visits += n;
            stats.share_visits_by_channel.insert(channel, n);
        }
        if totals.is_empty() {
            add_leases(&mut stats, live, moved)?;
        } else {
            add_totals(&mut stats, live, totals.split('\n').map(str::to_owned).collect())?;
        }
        stats.regions.retain(|_, n| *n > 0);
        stats.nodes.sort_by(|a, b| a.node.cmp(&b.node));
        stats.split_units();
        if regions == "=" {
            self.peaks.fill(campaign, &mut stats);
        } else {
            let held = if peak_at.is_empty() {
                String::new()
            } else {
                format!("{peak}|{peak_at}")
            };
            self.peaks.hold(campaign, held, &stats);
        }
        Ok(stats)
    }

    /// The points of `metric` between two buckets, from the hour hashes that cover them.
    pub(super) async fn read_series(
        &self,
        campaign: &str,
        metric: &SeriesMetric,
        from_ms: i64,
        to_ms: i64,
    ) -> StoreResult<Vec<(i64, u64)>> {
        let k = CampaignKeys(campaign);
        // Round trip 1: does the campaign exist, and which hour hashes cover the window.
        let (exists, parts): (bool, Vec<i64>) = self
            .conn
            .call(|mut c| async move {
                redis::pipe()
                    .exists(k.meta())
                    .zrangebyscore(k.series_parts(metric), partition(from_ms), partition(to_ms))
                    .query_async(&mut c)
                    .await
            })
            .await?;
        if !exists {
            return Err(StoreError::NotFound);
        }
        if from_ms > to_ms || parts.is_empty() {
            return Ok(vec![]);
        }
        // Round trip 2: those hashes (one slot, so one pipeline on Cluster too).
        let mut pipe = redis::pipe();
        for p in &parts {
            pipe.hgetall(k.series(metric, *p));
        }
        let hashes: Vec<HashMap<String, String>> = self
            .conn
            .call(|mut c| async move { pipe.query_async(&mut c).await })
            .await?;
        let in_window = |t: i64| from_ms <= t && t <= to_ms;
        let mut points = BTreeMap::new();
        for hash in &hashes {
            match metric {
                SeriesMetric::Viewers => {
                    for (t, v) in hash {
                        let t: i64 = t.parse().map_err(|_| corrupt("series bucket"))?;
                        if in_window(t) {
                            points.insert(t, parse_u64(v, "series value")?);
                        }
                    }
                }
                // A bucket exists when its all-kinds field does (the memory store keeps a
                // bucket for every accepted session, with 0 for kinds not counted in it).
                SeriesMetric::Interactions(kind) => {
                    for (t, total) in hash.iter().filter(|(f, _)| !f.contains(':')) {
                        let tv: i64 = t.parse().map_err(|_| corrupt("series bucket"))?;
                        if !in_window(tv) {
                            continue;
                        }
                        let v = match kind {
                            None => Some(total),
                            Some(k) => hash.get(&format!("{t}:{k}")),
                        };
                        let v = match v {
                            Some(v) => parse_u64(v, "series value")?,
                            None => 0,
                        };
                        points.insert(tv, v);
                    }
                }
            }
        }
        Ok(points.into_iter().collect())
    }
}

/// Schema < 3: the viewers, regions and nodes summed from every live lease, less the
/// sockets moved away from each node.
fn add_leases(stats: &mut Stats, live: Vec<String>, moved: Vec<String>) -> StoreResult<()> {
    let moved = moved_by_node(moved)?;
    for (node, value) in pairs(live) {
        let (updated_at, json) = value.split_once('|').ok_or_else(|| corrupt("presence"))?;
        let updated_at: i64 = updated_at.parse().map_err(|_| corrupt("presence"))?;
        let p: StoredPresence = serde_json::from_str(json).map_err(|_| corrupt("presence"))?;
        // Sockets whose sessions moved on are no longer this node's to count.
        let away = moved.get(&node);
        let viewers = p.viewers.saturating_sub(away.map_or(0, |m| m.sockets));
        stats.viewers += viewers;
        for (r, n) in p.regions {
            let n = n.saturating_sub(away.and_then(|m| m.regions.get(&r)).copied().unwrap_or(0));
            *stats.regions.entry(r).or_default() += n;
        }
        stats.nodes.push(NodeShare {
            node,
            viewers,
            updated_at,
        });
    }
    Ok(())
}

/// The regions (and `u:` units) at the peak from the totals copied then (`peak-sum`).
fn at_peak(sum: &str) -> StoreResult<BTreeMap<String, u64>> {
    let mut regions = BTreeMap::new();
    for (field, n) in pairs(sum.split('\n').map(str::to_owned).collect()) {
        if let Some(region) = field.strip_prefix("r:") {
            let n = parse_u64(&n, "peak-sum")?;
            if n > 0 {
                regions.insert(region.to_owned(), n);
            }
        }
    }
    Ok(regions)
}

/// The regions at each campaign's peak as this node last read them, and that peak's
/// `<peak>|<peak_at>`: a stats read brings them back only when the peak moved (with an org they are
/// hundreds of upper units, read by every node every tick).
#[derive(Default)]
pub(super) struct PeakRegions(Mutex<HashMap<String, HeldPeak>>);

/// `<peak>|<peak_at>`, and the regions and the upper units at that peak (split as
/// [`Stats::split_units`] leaves them, so a tick does not split them again).
type HeldPeak = (String, BTreeMap<String, u64>, BTreeMap<String, u64>);

impl PeakRegions {
    /// The `<peak>|<peak_at>` whose regions are held for `campaign` ("" = none).
    pub(super) fn held(&self, campaign: &str) -> String {
        let held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        held.get(campaign).map(|(at, ..)| at.clone()).unwrap_or_default()
    }

    /// `stats`' regions and units at the peak, as held for `campaign`.
    pub(super) fn fill(&self, campaign: &str, stats: &mut Stats) {
        let held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, regions, units)) = held.get(campaign) {
            stats.regions_at_peak.clone_from(regions);
            stats.units_at_peak.clone_from(units);
        }
    }

    /// Holds `stats`' regions and units at the peak `peak` ("": none, forgets them).
    pub(super) fn hold(&self, campaign: &str, peak: String, stats: &Stats) {
        let mut held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if peak.is_empty() {
            held.remove(campaign);
        } else {
            let (regions, units) = (stats.regions_at_peak.clone(), stats.units_at_peak.clone());
            held.insert(campaign.to_owned(), (peak, regions, units));
        }
    }
}

/// Schema 3: the totals as the scripts keep them, and each node's counted share
/// (`<updated_at>|<viewers>`).
fn add_totals(stats: &mut Stats, nodes: Vec<String>, totals: Vec<String>) -> StoreResult<()> {
    for (field, n) in pairs(totals) {
        if field == "viewers" {
            stats.viewers = parse_u64(&n, "presence-sum")?;
        } else if let Some(key) = field.strip_prefix("r:") {
            let n = parse_u64(&n, "presence-sum")?;
            // Upper units straight into `units` (what `Stats::split_units` would move there),
            // those at 0 left out as regions' are.
            match key.strip_prefix(UNIT_PREFIX) {
                Some(code) if n > 0 => {
                    stats.units.insert(code.to_owned(), n);
                }
                Some(_) => {}
                None => {
                    stats.regions.insert(key.to_owned(), n);
                }
            }
        }
    }
    for (node, value) in pairs(nodes) {
        let (updated_at, viewers) = value.split_once('|').ok_or_else(|| corrupt("presence-nodes"))?;
        stats.nodes.push(NodeShare {
            node,
            viewers: parse_u64(viewers, "presence-nodes")?,
            updated_at: updated_at.parse().map_err(|_| corrupt("presence-nodes"))?,
        });
    }
    Ok(())
}
