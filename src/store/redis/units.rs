//! The Redis store's numbers per unit ([`Units`]). The upper units' peaks and sketches
//! live in the campaign's slot, written by `tick.lua` and `apply.lua` with everything else
//! the tick and the flush write; the counters are folded from there into totals shards
//! spread over the cluster (`rollup.rs`); each node's deep viewers live in a slot of their
//! own (`lt:{cu:<id>:<node>}:viewers`, expiring with the node's lease). So the largest
//! part of the per-unit state, and its writes, stay off the campaign's busy slot.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::try_join_all;

use super::codec::{corrupt, parse_u64};
use super::keys::CampaignKeys;
use super::rollup::{shard_of, UNIT_SHARDS};
use super::RedisStore;
use crate::org::Tree;
use crate::store::{StoreResult, UnitPeak, UnitTotals, Units};

/// The counter fields of one unit, in the order [`totals_of`] reads them back.
fn fields_of(code: &str, kinds: &[String]) -> Vec<String> {
    let mut f = vec![format!("{code}|s"), format!("{code}|r"), format!("{code}|h")];
    f.extend(kinds.iter().map(|k| format!("{code}|i|{k}")));
    f
}

fn number(v: &Option<String>, what: &str) -> StoreResult<u64> {
    v.as_deref().map_or(Ok(0), |s| parse_u64(s, what))
}

fn totals_of(values: &[Option<String>], kinds: &[String]) -> StoreResult<UnitTotals> {
    let mut t = UnitTotals {
        sessions: number(&values[0], "unit sessions")?,
        registrations: number(&values[1], "unit registrations")?,
        share_visits: number(&values[2], "unit share visits")?,
        ..UnitTotals::default()
    };
    for (kind, v) in kinds.iter().zip(&values[3..]) {
        t.interactions.insert(kind.clone(), number(v, "unit interactions")?);
    }
    Ok(t)
}

#[async_trait]
impl Units for RedisStore {
    async fn put_deep_viewers(
        &self,
        campaign: &str,
        node: &str,
        changes: &[(String, u64)],
        full: bool,
        lease: Duration,
    ) -> StoreResult<bool> {
        let key = CampaignKeys(campaign).deep_viewers(node);
        let (gone, set): (Vec<_>, Vec<_>) = changes.iter().partition(|(_, n)| *n == 0);
        let gone: Vec<&str> = gone.iter().map(|(c, _)| c.as_str()).collect();
        let set: Vec<(&str, u64)> = set.iter().map(|(c, n)| (c.as_str(), *n)).collect();
        let ms = lease.as_millis() as i64;
        self.conn
            .call(|mut c| async move {
                // One slot, one round trip: whether the hash was there (its first PEXPIRE),
                // then the write.
                let mut pipe = redis::pipe();
                pipe.pexpire(&key, ms);
                if full {
                    pipe.del(&key).ignore();
                } else if !gone.is_empty() {
                    pipe.hdel(&key, gone).ignore();
                }
                if !set.is_empty() {
                    pipe.hset_multiple(&key, &set).ignore();
                }
                pipe.pexpire(&key, ms).ignore();
                let (was,): (bool,) = pipe.query_async(&mut c).await?;
                Ok(was)
            })
            .await
    }

    async fn deep_viewers(&self, campaign: &str, nodes: &[String], codes: &[String]) -> StoreResult<Vec<u64>> {
        if codes.is_empty() {
            return Ok(vec![]);
        }
        let k = CampaignKeys(campaign);
        // One read per live node, each in its node's slot, all at once.
        let reads = nodes.iter().map(|node| {
            let key = k.deep_viewers(node);
            self.conn.call(|mut c| async move {
                redis::cmd("HMGET")
                    .arg(&key)
                    .arg(codes)
                    .query_async::<Vec<Option<u64>>>(&mut c)
                    .await
            })
        });
        let mut sums = vec![0u64; codes.len()];
        for counts in futures_util::future::try_join_all(reads).await? {
            for (sum, n) in sums.iter_mut().zip(counts) {
                *sum += n.unwrap_or(0);
            }
        }
        Ok(sums)
    }

    async fn all_deep_viewers(&self, campaign: &str, nodes: &[String]) -> StoreResult<HashMap<String, u64>> {
        let k = CampaignKeys(campaign);
        let reads = nodes.iter().map(|node| {
            let key = k.deep_viewers(node);
            self.conn.call(|mut c| async move {
                redis::cmd("HGETALL")
                    .arg(&key)
                    .query_async::<Vec<(String, u64)>>(&mut c)
                    .await
            })
        });
        let mut sums = HashMap::new();
        for units in try_join_all(reads).await? {
            for (code, n) in units {
                *sums.entry(code).or_default() += n;
            }
        }
        Ok(sums)
    }

    async fn unit_totals(&self, campaign: &str, kinds: &[String], codes: &[String]) -> StoreResult<Vec<UnitTotals>> {
        if codes.is_empty() {
            return Ok(vec![]);
        }
        let k = CampaignKeys(campaign);
        let per = 3 + kinds.len();
        // No generation: nothing was ever folded (and no stale roller's shards are read).
        let gen: Option<String> = self
            .conn
            .call(|mut c| async move { redis::cmd("HGET").arg(k.meta()).arg("ugen").query_async(&mut c).await })
            .await?;
        let Some(gen) = gen else {
            return Ok(vec![totals_of(&vec![None; per], kinds)?; codes.len()]);
        };
        let gen = &gen;
        // The codes by shard, each shard read with one `HMGET` (of at most ~4,000 fields,
        // so a report of a whole level stays bounded replies), all shards at once.
        let mut by_shard: Vec<Vec<usize>> = vec![vec![]; UNIT_SHARDS];
        for (i, code) in codes.iter().enumerate() {
            by_shard[shard_of(code)].push(i);
        }
        let reads = by_shard
            .iter()
            .enumerate()
            .filter(|(_, ix)| !ix.is_empty())
            .flat_map(|(s, ix)| {
                let key = k.unit_totals(gen, s);
                ix.chunks((4096 / per).max(1)).map(move |ix| {
                    let fields: Vec<String> = ix.iter().flat_map(|&i| fields_of(&codes[i], kinds)).collect();
                    let key = key.clone();
                    async move {
                        let values: Vec<Option<String>> =
                            self.conn
                                .call(|mut c| async move {
                                    redis::cmd("HMGET").arg(key).arg(fields).query_async(&mut c).await
                                })
                                .await?;
                        if values.len() != ix.len() * per {
                            return Err(corrupt("unit totals"));
                        }
                        Ok((ix, values))
                    }
                })
            });
        let mut out = vec![UnitTotals::default(); codes.len()];
        for (ix, values) in try_join_all(reads).await? {
            for (&i, v) in ix.iter().zip(values.chunks(per)) {
                out[i] = totals_of(v, kinds)?;
            }
        }
        Ok(out)
    }

    async fn fold_units(&self, campaign: &str, tree: &Arc<Tree>, lease: Option<Duration>) -> StoreResult<()> {
        self.fold_deltas(campaign, tree, lease).await
    }

    async fn unit_peaks(&self, campaign: &str, codes: &[String]) -> StoreResult<Vec<UnitPeak>> {
        if codes.is_empty() {
            return Ok(vec![]);
        }
        let k = CampaignKeys(campaign);
        let (peaks, uniques): (Vec<Option<String>>, Vec<u64>) = self
            .conn
            .call(|mut c| async move {
                let mut pipe = redis::pipe();
                pipe.cmd("HMGET").arg(k.upeak()).arg(codes);
                // One pipeline of one slot: a PFCOUNT per sketch, not one of many keys
                // (which would merge them).
                let mut counts = redis::pipe();
                for code in codes {
                    counts.cmd("PFCOUNT").arg(format!("{}{code}", k.uuniq_prefix()));
                }
                let (peaks,): (Vec<Option<String>>,) = pipe.query_async(&mut c).await?;
                let uniques: Vec<u64> = counts.query_async(&mut c).await?;
                Ok((peaks, uniques))
            })
            .await?;
        let mut out = Vec::with_capacity(codes.len());
        for (peak, unique_viewers) in peaks.into_iter().zip(uniques) {
            let (peak_viewers, peak_at) = match peak.as_deref().and_then(|p| p.split_once('|')) {
                Some((n, at)) => (parse_u64(n, "upeak")?, Some(at.parse().map_err(|_| corrupt("upeak"))?)),
                None => (0, None),
            };
            out.push(UnitPeak {
                peak_viewers,
                peak_at,
                unique_viewers,
            });
        }
        Ok(out)
    }
}
