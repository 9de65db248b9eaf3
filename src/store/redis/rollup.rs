//! The unit totals' roller: folds the deltas `apply.lua` and `register.lua` append to a
//! campaign's `udelta` list (one packed JSON object per batch, atomic with its acks, each
//! count named by its unit's code) into the totals of the unit and every ancestor (from
//! the campaign's org version, which the node holds), in hashes, [`UNIT_SHARDS`] of them,
//! each in a slot of its own (`lt:{ct:<id>:<g>:<s>}:totals`). The campaign's slot then
//! takes one `RPUSH` per batch however many units it touched, and the half a million
//! units' counters, their writes and their reads spread over the cluster's masters.
//!
//! A fold is exactly-once without a lock: `roll.lua` fixes a *plan* (the entries up to a
//! number), every shard takes a plan once (`fold.lua` keeps the last one it took), and
//! `rolled.lua` trims the entries only after every shard took them. A roller that dies
//! mid-fold leaves the plan in place; the next one folds the same entries, and the shards
//! that already took them skip. The lease only keeps nodes from doing the same work twice.
//!
//! The shards are named by the campaign's totals generation `g` (meta `ugen`, set by its
//! first fold): a roller still folding when the campaign is deleted writes shards that a
//! campaign created again under the same id never reads (nor would their `#plan` make it
//! skip its own first folds), and removes them when `rolled.lua` finds its generation
//! gone.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::try_join_all;
use serde::Deserialize;

use super::codec::corrupt;
use super::keys::CampaignKeys;
use super::RedisStore;
use crate::org::{Tree, MAX_DEPTH};
use crate::store::{StoreError, StoreResult};
use crate::util::background;

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
/// ancestor in `tree` (the campaign's org version). A code the tree lacks (`unassigned` is
/// `""`) counts for itself.
///
/// A fold of a storm's two seconds is ~1,000 entries naming ~100,000 villages, so this is
/// the roller's CPU: the counts are summed one level at a time, deepest first, each
/// level's sums handed to the parents as one entry each (a count is hashed once per level
/// it reaches after summing, not once per ancestor), keyed by unit index and a metric
/// number, borrowing from the entries and the tree.
fn by_shard(entries: &[String], tree: &Tree) -> StoreResult<Vec<Vec<(String, i64)>>> {
    let mut metrics: Vec<&str> = Vec::new();
    // Per level (index = level - 1), the counts that reach it: (unit index, metric, n).
    let mut reach: Vec<Vec<(u32, u16, i64)>> = vec![Vec::new(); MAX_DEPTH];
    let mut strays: HashMap<(&str, u16), i64> = HashMap::new();
    for entry in entries {
        let delta: Delta = serde_json::from_str(entry).map_err(|_| corrupt("udelta"))?;
        let units: Vec<Option<u32>> = delta.p.iter().map(|code| tree.find(code)).collect();
        for (unit, metric, n) in delta.c {
            let k = unit
                .checked_sub(1)
                .filter(|&k| k < units.len())
                .ok_or_else(|| corrupt("udelta"))?;
            let m = match metrics.iter().position(|&known| known == metric) {
                Some(m) => m,
                None => {
                    metrics.push(metric);
                    metrics.len() - 1
                }
            };
            // A campaign has a handful of metrics; more than a u16 holds is not a delta.
            let m = u16::try_from(m).map_err(|_| corrupt("udelta"))?;
            match units[k] {
                Some(i) => reach[usize::from(tree.level(i)) - 1].push((i, m, n)),
                None => *strays.entry((delta.p[k], m)).or_default() += n,
            }
        }
    }
    let mut shards: Vec<Vec<(String, i64)>> = vec![vec![]; UNIT_SHARDS];
    let mut push = |code: &str, m: u16, n: i64| {
        if n != 0 {
            shards[shard_of(code)].push((format!("{code}|{}", metrics[usize::from(m)]), n));
        }
    };
    let mut level_sums: HashMap<(u32, u16), i64> = HashMap::new();
    for level in (0..MAX_DEPTH).rev() {
        level_sums.clear();
        for (i, m, n) in std::mem::take(&mut reach[level]) {
            *level_sums.entry((i, m)).or_default() += n;
        }
        for (&(i, m), &n) in &level_sums {
            push(tree.code(i), m, n);
            if let (Some(parent), Some(up)) = (tree.parent(i), level.checked_sub(1)) {
                reach[up].push((parent, m, n));
            }
        }
    }
    for ((code, m), n) in strays {
        push(code, m, n);
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
            let fresh = format!("{:016x}", rand::random::<u64>());
            let planned: Option<(u64, Vec<String>, String)> = self
                .scripts
                .roll
                .run(
                    &self.conn,
                    &[k.udelta(), k.uroll(), k.uroll_lease(), k.meta()],
                    (lease_ms, FOLD_MAX, fresh),
                )
                .await?;
            let Some((plan, entries, gen)) = planned else {
                return Ok(());
            };
            if entries.is_empty() {
                return Ok(());
            }
            let count = entries.len();
            // Summed on a thread of lowest priority: two seconds of a storm's deltas are
            // ~1,000 entries naming ~100,000 units, ~100 ms of a core that this node's
            // ticks and flushes (and, on a shared host, the Redis servers) come before.
            let tree = tree.clone();
            let shards = background::run(move || by_shard(&entries, &tree))
                .await
                .ok_or_else(|| StoreError::Unavailable("unit deltas not summed: no thread to sum them on".into()))??;
            // One shard at a time: each script is ~1/64 of the fold, so a master holds at
            // most one of them ahead of a tick's read; all 64 at once kept the ticks of
            // every node waiting behind a third of the fold each (BENCHMARKS.md, "The fold
            // paced").
            for (s, pairs) in shards.into_iter().enumerate() {
                if !pairs.is_empty() {
                    let key = k.unit_totals(&gen, s);
                    self.scripts.fold.run::<i64>(&self.conn, key, (plan, pairs)).await?;
                }
            }
            let rolled: i64 = self
                .scripts
                .rolled
                .run(&self.conn, &[k.udelta(), k.uroll(), k.meta()], (plan, &gen))
                .await?;
            if rolled < 0 {
                // The campaign was deleted while this fold ran: what it wrote is nobody's.
                return self.drop_unit_totals(campaign, &gen).await;
            }
            if lease.is_some() || count < FOLD_MAX {
                return Ok(());
            }
        }
    }

    /// Removes the totals shards of generation `gen` of a campaign (each in its own slot,
    /// so outside `delete.lua`).
    pub(super) async fn drop_unit_totals(&self, campaign: &str, gen: &str) -> StoreResult<()> {
        let k = CampaignKeys(campaign);
        let dels = (0..UNIT_SHARDS).map(|s| {
            let key = k.unit_totals(gen, s);
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

    /// The level-by-level sums against the plainest fold: every count walked up to the top.
    #[test]
    fn a_six_level_fold_sums_as_walking_every_count_up() {
        use rand::{Rng, SeedableRng};
        let mut b = crate::org::TreeBuilder::default();
        let mut level: Vec<String> = vec!["N".to_owned()];
        b.push("N", "", "N").unwrap();
        for depth in 2..=MAX_DEPTH {
            let mut next = Vec::new();
            for parent in &level {
                for k in 0..3 {
                    let code = format!("{parent}-{depth}{k}");
                    b.push(&code, parent, &code).unwrap();
                    next.push(code);
                }
            }
            level = next;
        }
        let tree = b.finish();
        let mut rng = rand::rngs::StdRng::seed_from_u64(20);
        let metrics = ["s", "h", "r", "i|like", "i|cheer"];
        let mut want: std::collections::BTreeMap<(String, String), i64> = Default::default();
        let mut entries = Vec::new();
        for _ in 0..200 {
            let mut p: Vec<String> = Vec::new();
            let mut c = Vec::new();
            for _ in 0..rng.random_range(1..20) {
                let code = match rng.random_range(0..10) {
                    0 => String::new(),
                    1 => "NOT-IN-TREE".to_owned(),
                    _ => tree.code(rng.random_range(0..tree.len() as u32)).to_owned(),
                };
                p.push(code.clone());
                let metric = metrics[rng.random_range(0..metrics.len())];
                let n: i64 = rng.random_range(-3..10);
                c.push((p.len(), metric, n));
                let mut at = tree.find(&code);
                if at.is_none() {
                    *want.entry((code, metric.to_owned())).or_default() += n;
                }
                while let Some(i) = at {
                    *want.entry((tree.code(i).to_owned(), metric.to_owned())).or_default() += n;
                    at = tree.parent(i);
                }
            }
            entries.push(serde_json::json!({ "p": p, "c": c }).to_string());
        }
        let mut want: Vec<(String, i64)> = want
            .into_iter()
            .filter(|&(_, n)| n != 0)
            .map(|((code, metric), n)| (format!("{code}|{metric}"), n))
            .collect();
        want.sort();
        let shards = by_shard(&entries, &tree).unwrap();
        for (s, pairs) in shards.iter().enumerate() {
            for (field, _) in pairs {
                assert_eq!(shard_of(field.split('|').next().unwrap()), s, "{field}");
            }
        }
        let mut got: Vec<(String, i64)> = shards.into_iter().flatten().collect();
        got.sort();
        assert_eq!(got.len(), want.len());
        assert_eq!(got, want);
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
