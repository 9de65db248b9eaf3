//! The seed's organisation for `livetally simulate --org-units N`: six levels in the seed's
//! proportions (1 national office, 31 provinces, ~340 cities, ~2,900 counties, ~33,000
//! townships, the rest villages), each unit's children contiguous, so units of one province
//! are neighbours at every level; viewers are attributed to villages, skewed as real
//! launches are (a few provinces bring most). Then, per unit and level, what every node
//! must show, and the check of what the store shows against it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::node::{UnitNumbers, VirtualNode};
use crate::campaign::Campaign;
use crate::org::{Tree, TreeBuilder};
use crate::store::units::UNASSIGNED;
use crate::store::{Store, StoreError, StoreResult};

/// The seed's units per level, level 1 first (546,000 in all).
const SEED_LEVELS: [u64; 6] = [1, 31, 340, 2_900, 33_000, 509_728];

/// Units asked of the store per read while checking.
const CHUNK: usize = 1_000;

/// Units per level for an org of `units` in the seed's proportions (at least one each).
pub fn levels(units: u64) -> [u64; 6] {
    let seed: u64 = SEED_LEVELS.iter().sum();
    let mut out = [0u64; 6];
    for l in 0..5 {
        out[l] = (SEED_LEVELS[l] * units / seed).max(1);
    }
    out[5] = units.saturating_sub(out[..5].iter().sum()).max(1);
    out
}

/// Builds the org: level `l + 1`'s unit `j` is `L<l+1>-<j>`, child of level `l`'s unit
/// `j * parents / units` (children of one parent contiguous, in parent order).
pub fn tree(units: u64) -> Tree {
    let levels = levels(units);
    let mut b = TreeBuilder::default();
    for (l, &n) in levels.iter().enumerate() {
        for j in 0..n {
            let code = format!("L{}-{j}", l + 1);
            let parent = if l == 0 {
                String::new()
            } else {
                format!("L{l}-{}", j * levels[l - 1] / n)
            };
            // unwrap: codes, parents and names made here follow the upload's rules.
            b.push(&code, &parent, &format!("单位{}-{j}", l + 1)).unwrap();
        }
    }
    b.finish()
}

/// The village viewer `i` is attributed to: `u³` of a hash of `i` spread over the
/// villages, so the first provinces' villages bring most viewers.
pub fn village_of(i: u64, villages: u64) -> u64 {
    let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5851_f42d_4c95_7f2d;
    x ^= x >> 29;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 32;
    let u = (x >> 11) as f64 / (1u64 << 53) as f64;
    ((u * u * u * villages as f64) as u64).min(villages - 1)
}

/// Every unit's numbers rolled up from the villages' (`leaf` → numbers).
pub fn roll_up(tree: &Tree, leaves: &HashMap<u32, UnitNumbers>) -> HashMap<u32, UnitNumbers> {
    let mut all: HashMap<u32, UnitNumbers> = HashMap::new();
    for (&leaf, n) in leaves {
        let mut at = Some(leaf);
        while let Some(i) = at {
            let u = all.entry(i).or_default();
            u.viewers += n.viewers;
            u.sessions += n.sessions;
            u.interactions[0] += n.interactions[0];
            u.interactions[1] += n.interactions[1];
            at = tree.parent(i);
        }
    }
    all
}

/// A unit whose numbers differ, for the report.
pub struct Wrong {
    pub code: String,
    pub level: u8,
    pub want: UnitNumbers,
    pub got: UnitNumbers,
}

/// Reads every unit's numbers from the store as the per-level report does (the upper
/// levels' viewers from a node's tick, `upper`; the deeper ones summed over `nodes`) and compares
/// them with `want`. Returns how many units were checked and the first wrong one.
pub async fn check(
    store: &dyn Store,
    campaign: &Campaign,
    tree: &Arc<Tree>,
    depth: u8,
    upper: &std::collections::BTreeMap<String, u64>,
    nodes: &[String],
    want: &HashMap<u32, UnitNumbers>,
) -> StoreResult<(u64, Option<Wrong>)> {
    // As the per-level report does: every count taken so far folded in first.
    store.fold_units(&campaign.id, tree, None).await?;
    let deep = store.all_deep_viewers(&campaign.id, nodes).await?;
    let all: Vec<u32> = (0..tree.len() as u32).collect();
    let mut checked = 0u64;
    for chunk in all.chunks(CHUNK) {
        let codes: Vec<String> = chunk.iter().map(|&i| tree.code(i).to_owned()).collect();
        let totals = store.unit_totals(&campaign.id, &campaign.kinds, &codes).await?;
        for (k, &i) in chunk.iter().enumerate() {
            let level = tree.level(i);
            let viewers = if level <= depth {
                upper.get(&codes[k]).copied().unwrap_or(0)
            } else {
                deep.get(&codes[k]).copied().unwrap_or(0)
            };
            let t = &totals[k];
            let got = UnitNumbers {
                viewers,
                sessions: t.sessions,
                interactions: [0, 1].map(|x| t.interactions.get(&campaign.kinds[x]).copied().unwrap_or(0)),
            };
            let w = want.get(&i).cloned().unwrap_or_default();
            checked += 1;
            if got != w {
                return Ok((
                    checked,
                    Some(Wrong {
                        code: codes[k].clone(),
                        level,
                        want: w,
                        got,
                    }),
                ));
            }
        }
    }
    // Nobody is unassigned.
    let none = store
        .unit_totals(&campaign.id, &campaign.kinds, &[UNASSIGNED.to_owned()])
        .await?;
    if none[0].sessions != 0 || upper.get(UNASSIGNED).copied().unwrap_or(0) != 0 {
        return Ok((
            checked,
            Some(Wrong {
                code: "unassigned".into(),
                level: 1,
                want: UnitNumbers::default(),
                got: UnitNumbers {
                    viewers: upper.get(UNASSIGNED).copied().unwrap_or(0),
                    sessions: none[0].sessions,
                    interactions: [0, 0],
                },
            }),
        ));
    }
    Ok((checked, None))
}

/// Where a check stands: the virtual nodes, those alive, how long to retry, and the phase
/// it reports as.
pub struct At<'a> {
    pub nodes: &'a [VirtualNode],
    pub alive: &'a [usize],
    pub wait: Duration,
    pub when: &'a str,
}

/// Every unit at every level shows exactly what was put in (the live nodes' viewers;
/// everyone's sessions and interactions), read as the units routes read it: the upper
/// levels from a live node's last tick, the deeper ones summed over the live nodes'
/// hashes, the totals from the store ([`check`]). Retried until `at.wait`.
pub async fn check_nodes(
    at: &At<'_>,
    store: &dyn Store,
    campaign: &Campaign,
    tree: &Arc<Tree>,
    depth: u8,
) -> anyhow::Result<bool> {
    let mut leaves: HashMap<u32, UnitNumbers> = HashMap::new();
    for (i, node) in at.nodes.iter().enumerate() {
        let alive = at.alive.contains(&i);
        for (&unit, n) in node.by_unit.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let e = leaves.entry(unit).or_default();
            e.viewers += if alive { n.viewers } else { 0 };
            e.sessions += n.sessions;
            e.interactions[0] += n.interactions[0];
            e.interactions[1] += n.interactions[1];
        }
    }
    let want = roll_up(tree, &leaves);
    let nodes: Vec<String> = at.alive.iter().map(|&i| at.nodes[i].id.clone()).collect();
    let started = Instant::now();
    loop {
        let upper = at.nodes[at.alive[0]]
            .tally
            .frames
            .borrow()
            .stats()
            .map(|s| s.units.clone())
            .unwrap_or_default();
        // A read of hundreds of nodes' unit hashes at once can outlast a call's timeout on a
        // busy master: the check reads again, as an operator's page would on its next tick.
        let (checked, wrong) = match check(store, campaign, tree, depth, &upper, &nodes, &want).await {
            Ok(found) => found,
            Err(e @ StoreError::Unavailable(_)) if started.elapsed() <= at.wait => {
                println!("{}: a read failed ({e}); reading again", at.when);
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        match wrong {
            None => {
                println!(
                    "{}: every unit exact at every level ({checked} units, {} with viewers or counts; {:.1}s to check)",
                    at.when,
                    want.len(),
                    started.elapsed().as_secs_f64()
                );
                return Ok(true);
            }
            Some(w) if started.elapsed() > at.wait => {
                println!(
                    "{}: unit {} (level {}) shows {:?}, expected {:?}",
                    at.when, w.code, w.level, w.got, w.want
                );
                return Ok(false);
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_org_has_six_levels_in_its_proportions() {
        assert_eq!(levels(546_000), SEED_LEVELS);
        let t = tree(5_460);
        assert_eq!(t.len(), 5_460);
        assert_eq!(t.levels(), levels(5_460).to_vec());
        let village = t.find("L6-0").unwrap();
        assert_eq!(t.unit(village).path, ["L1-0", "L2-0", "L3-0", "L4-0", "L5-0", "L6-0"]);
        // Skewed: the first tenth of the villages brings most viewers.
        let v = levels(5_460)[5];
        let first_tenth = (0..10_000).filter(|&i| village_of(i, v) < v / 10).count();
        assert!(first_tenth > 4_000, "{first_tenth}");
    }

    #[test]
    fn numbers_roll_up_to_every_ancestor() {
        let t = tree(5_460);
        let a = t.find("L6-0").unwrap();
        let b = t.find("L6-1").unwrap();
        let one = UnitNumbers {
            viewers: 1,
            sessions: 1,
            interactions: [2, 1],
        };
        let all = roll_up(&t, &HashMap::from([(a, one.clone()), (b, one.clone())]));
        let top = &all[&t.find("L1-0").unwrap()];
        assert_eq!((top.viewers, top.sessions, top.interactions), (2, 2, [4, 2]));
        // Two villages of one township: their own two, and five ancestors once each.
        assert_eq!(t.parent(a), t.parent(b));
        assert_eq!(all.len(), 7);
        assert_eq!(all[&a].viewers, 1);
    }
}
