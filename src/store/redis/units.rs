//! The Redis store's numbers per unit ([`Units`]). The counters and the upper units'
//! peaks and sketches live in the campaign's slot, written by `apply.lua` and `tick.lua`
//! with everything else the flush and the tick write; each node's deep viewers live in a
//! slot of their own (`lt:{cu:<id>:<node>}:viewers`, expiring with the node's lease), so
//! the deepest, largest part of the per-unit state spreads over the cluster.

use std::time::Duration;

use async_trait::async_trait;

use super::codec::{corrupt, parse_u64};
use super::keys::CampaignKeys;
use super::RedisStore;
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
        lease: Duration,
    ) -> StoreResult<()> {
        let key = CampaignKeys(campaign).deep_viewers(node);
        let (gone, set): (Vec<_>, Vec<_>) = changes.iter().partition(|(_, n)| *n == 0);
        let gone: Vec<&str> = gone.iter().map(|(c, _)| c.as_str()).collect();
        let set: Vec<(&str, u64)> = set.iter().map(|(c, n)| (c.as_str(), *n)).collect();
        self.conn
            .call(|mut c| async move {
                let mut pipe = redis::pipe();
                if !gone.is_empty() {
                    pipe.hdel(&key, gone).ignore();
                }
                if !set.is_empty() {
                    pipe.hset_multiple(&key, &set).ignore();
                }
                pipe.pexpire(&key, lease.as_millis() as i64).ignore();
                pipe.query_async::<()>(&mut c).await
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

    async fn unit_totals(&self, campaign: &str, kinds: &[String], codes: &[String]) -> StoreResult<Vec<UnitTotals>> {
        if codes.is_empty() {
            return Ok(vec![]);
        }
        let key = CampaignKeys(campaign).units();
        let per = 3 + kinds.len();
        let fields: Vec<String> = codes.iter().flat_map(|c| fields_of(c, kinds)).collect();
        let mut values: Vec<Option<String>> = Vec::with_capacity(fields.len());
        // At most ~4,000 fields per command, so a report of a whole level stays one bounded
        // reply per step.
        for chunk in fields.chunks(per * (4096 / per).max(1)) {
            let key = &key;
            let got: Vec<Option<String>> = self
                .conn
                .call(|mut c| async move { redis::cmd("HMGET").arg(key).arg(chunk).query_async(&mut c).await })
                .await?;
            values.extend(got);
        }
        if values.len() != fields.len() {
            return Err(corrupt("units"));
        }
        values.chunks(per).map(|v| totals_of(v, kinds)).collect()
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
