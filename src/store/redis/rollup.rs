//! The unit totals' roller: folds the deltas `apply.lua` and `register.lua` append to a
//! campaign's `udelta` list (one packed JSON object per batch, atomic with its acks, each
//! count named by its unit's code) into the totals of the unit and every ancestor (from
//! the campaign's org version, which the node holds), in hashes, [`UNIT_SHARDS`] of them, each in a slot of its own
//! (`lt:{ct:<id>:<s>}:totals`). The campaign's slot then takes one `RPUSH` per batch
//! however many units it touched, and the half a million units' counters, their writes
//! and their reads spread over the cluster's masters.
//!
//! A fold is exactly-once without a lock: `roll.lua` fixes a *plan* (the entries up to a
//! number), every shard takes a plan once (`fold.lua` keeps the last one it took), and
//! `rolled.lua` trims the entries only after every shard took them. A roller that dies
//! mid-fold leaves the plan in place; the next one folds the same entries, and the shards
//! that already took them skip. The lease only keeps nodes from doing the same work twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::try_join_all;
use serde::Deserialize;

use super::codec::corrupt;
use super::keys::CampaignKeys;
use super::RedisStore;
use crate::org::Tree;
use crate::store::StoreResult;

/// Totals hashes per campaign: enough to spread over any cluster this runs on, few enough
/// that a fold's calls stay a small fan-out.
pub(super) const UNIT_SHARDS: usize = 64;

/// Deltas folded per round: a bounded read from the campaign's slot and a bounded script
/// per shard (at 10 flushes a second from 50 nodes, 1,000 entries are two seconds' worth).
const FOLD_MAX: usize = 1_000;

/// The totals shard of a unit code (FNV-1a, so every node and version agrees).
pub(super) fn shard_of(code: &str) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in code.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % UNIT_SHARDS as u64) as usize
}

/// One entry of `udelta`, as `apply.lua` and `register.lua` write it: unit codes, and
/// counts by 1-based unit index and metric (`s`, `h`, `r`, `i|<kind>`).
///
/// Borrowed: codes (`[A-Za-z0-9_-]`) and metrics (kinds are `[a-z0-9_]`) never need a
/// JSON escape, so nothing is copied.
#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow)]
    p: Vec<&'a str>,
    #[serde(borrow)]
    c: Vec<(usize, &'a str, i64)>,
}

/// The fields of `entries` summed per totals shard: each count added to its unit and every
/// ancestor in `tree` (the campaign's org version), summed by unit and metric first,
/// borrowing from the entries and the tree (a fold of a storm's second is ~100,000 counts
/// over a few thousand distinct fields). A code the tree lacks (`unassigned` is `""`)
/// counts for itself.
fn by_shard(entries: &[String], tree: &Tree) -> StoreResult<Vec<Vec<(String, i64)>>> {
    // By unit, then metric: one lookup in the tree per unit.
    let mut by_unit: HashMap<&str, HashMap<&str, i64>> = HashMap::new();
    for entry in entries {
        let delta: Delta = serde_json::from_str(entry).map_err(|_| corrupt("udelta"))?;
        for (unit, metric, n) in delta.c {
            let unit = unit
                .checked_sub(1)
                .and_then(|i| delta.p.get(i))
                .ok_or_else(|| corrupt("udelta"))?;
            *by_unit.entry(unit).or_default().entry(metric).or_default() += n;
        }
    }
    // By unit index while walking up (the codes only at the end), codes the tree lacks apart.
    let mut sums: HashMap<(u32, &str), i64> = HashMap::new();
    let mut strays: HashMap<(&str, &str), i64> = HashMap::new();
    for (unit, metrics) in by_unit {
        let mut at = tree.find(unit);
        if at.is_none() {
            for (&metric, &n) in &metrics {
                *strays.entry((unit, metric)).or_default() += n;
            }
        }
        while let Some(i) = at {
            for (&metric, &n) in &metrics {
                *sums.entry((i, metric)).or_default() += n;
            }
            at = tree.parent(i);
        }
    }
    let mut shards: Vec<Vec<(String, i64)>> = vec![vec![]; UNIT_SHARDS];
    let codes = sums.into_iter().map(|((i, metric), n)| ((tree.code(i), metric), n));
    for ((code, metric), n) in codes.chain(strays) {
        if n != 0 {
            shards[shard_of(code)].push((format!("{code}|{metric}"), n));
        }
    }
    Ok(shards)
}

impl RedisStore {
    /// Folds the pending deltas of `campaign`. With a `lease`, only if no other node
    /// folded within it, one round; without, now and until nothing is pending (a report
    /// after the event reads every number).
    pub(super) async fn fold_deltas(
        &self,
        campaign: &str,
        tree: &Arc<Tree>,
        lease: Option<Duration>,
    ) -> StoreResult<()> {
        let k = CampaignKeys(campaign);
        let lease_ms = lease.map_or(0, |d| d.as_millis().max(1) as u64);
        loop {
            let planned: Option<(u64, Vec<String>)> = self
                .scripts
                .roll
                .run(
                    &self.conn,
                    &[k.udelta(), k.uroll(), k.uroll_lease()],
                    (lease_ms, FOLD_MAX),
                )
                .await?;
            let Some((plan, entries)) = planned else {
                return Ok(());
            };
            if entries.is_empty() {
                return Ok(());
            }
            let count = entries.len();
            // Parsed and summed off the async workers: a storm's second of deltas is
            // megabytes of JSON, and the ticks of this node must not wait behind it.
            let tree = tree.clone();
            let shards = tokio::task::spawn_blocking(move || by_shard(&entries, &tree))
                .await
                .map_err(|_| corrupt("udelta"))??;
            let folds = shards
                .into_iter()
                .enumerate()
                .filter(|(_, s)| !s.is_empty())
                .map(|(s, pairs)| {
                    let key = k.unit_totals(s);
                    async move { self.scripts.fold.run::<i64>(&self.conn, key, (plan, pairs)).await }
                });
            try_join_all(folds).await?;
            let _: i64 = self
                .scripts
                .rolled
                .run(&self.conn, &[k.udelta(), k.uroll()], plan)
                .await?;
            if lease.is_some() || count < FOLD_MAX {
                return Ok(());
            }
        }
    }

    /// Removes the totals shards of a deleted campaign (each in its own slot, so outside
    /// `delete.lua`).
    pub(super) async fn drop_unit_totals(&self, campaign: &str) -> StoreResult<()> {
        let k = CampaignKeys(campaign);
        let dels = (0..UNIT_SHARDS).map(|s| {
            let key = k.unit_totals(s);
            self.conn
                .call(|mut c| async move { redis::cmd("DEL").arg(key).query_async::<i64>(&mut c).await })
        });
        try_join_all(dels).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_goes_to_its_unit_and_every_ancestor_once_per_field() {
        let mut b = crate::org::TreeBuilder::default();
        for (code, parent) in [("GD", ""), ("SZ", "GD"), ("GZ", "GD")] {
            b.push(code, parent, code).unwrap();
        }
        let tree = b.finish();
        let entries = [
            r#"{"p":["SZ",""],"c":[[1,"i|like",3],[2,"s",1],[1,"s",1]]}"#.to_owned(),
            r#"{"p":["GZ","XX"],"c":[[1,"i|like",2],[1,"r",1],[2,"h",4]]}"#.to_owned(),
        ];
        let mut got: Vec<(String, i64)> = by_shard(&entries, &tree).unwrap().into_iter().flatten().collect();
        got.sort();
        let want = [
            ("GD|i|like", 5),
            ("GD|r", 1),
            ("GD|s", 1),
            ("GZ|i|like", 2),
            ("GZ|r", 1),
            ("SZ|i|like", 3),
            ("SZ|s", 1),
            ("XX|h", 4),
            ("|s", 1),
        ];
        assert_eq!(got, want.map(|(f, n)| (f.to_owned(), n)));
        for bad in [
            r#"{"p":["GD"],"c":[[2,"s",1]]}"#,
            r#"{"p":["GD"],"c":[[0,"s",1]]}"#,
            "nonsense",
        ] {
            assert!(by_shard(&[bad.to_owned()], &tree).is_err(), "{bad}");
        }
    }

    #[test]
    fn shards_are_stable_and_spread() {
        // Pinned: a shard moved by a code change would orphan stored totals.
        let pinned: Vec<usize> = ["", "P01", "gd", "V000123"].iter().map(|c| shard_of(c)).collect();
        assert_eq!(pinned, [37, 52, 38, 61]);
        let mut used = [0usize; UNIT_SHARDS];
        for i in 0..6_400 {
            used[shard_of(&format!("V{i:06}"))] += 1;
        }
        assert!(used.iter().all(|&n| (50..=150).contains(&n)), "{used:?}");
    }
}
