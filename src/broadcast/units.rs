//! A campaign's units as operators read them live (spec v1.2, "The organisation → Live"):
//! the children of one unit with their numbers, sorted by viewers, built once per tick and
//! parent and kept [`PINNED`] so a cursor pages through the order it started with.
//!
//! Where each number comes from (docs/consistency.md, "Per-unit counting"): the upper
//! units' viewers from the tick's stats (the leases' `u:` entries, no store read); the
//! deeper units' viewers by summing the live nodes' hashes for these children only; the
//! cumulative numbers and the upper units' peaks from the units seam, for these children
//! only. A listing costs the store three or four reads whatever the size of the org.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::campaign::Campaign;
use crate::org::Tree;
use crate::protocol::stats::Frames;
use crate::store::units::UNASSIGNED;
use crate::store::{StoreResult, Units, FOLD_EVERY};

/// How long a listing stays readable by its cursor.
pub const PINNED: Duration = Duration::from_secs(60);

/// The code `unassigned` is listed under.
pub const UNASSIGNED_CODE: &str = "unassigned";

/// One unit's row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitRow {
    pub code: String,
    pub name: String,
    pub level: u8,
    pub viewers: u64,
    pub sessions: u64,
    /// By kind, every kind of the campaign.
    pub interactions: BTreeMap<String, u64>,
    pub registrations: u64,
    pub share_visits: u64,
    /// Units at levels ≤ `--unit-peak-depth` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_viewers: Option<u64>,
}

/// The children of one unit (or the top level) as of one tick, sorted by viewers (then
/// code).
#[derive(Debug)]
pub struct Listing {
    pub at: i64,
    /// The parent's code (`None`: the top level).
    pub parent: Option<String>,
    pub rows: Vec<UnitRow>,
    /// At the top level: viewers without a known unit.
    pub unassigned: Option<UnitRow>,
    made: Instant,
}

/// One page of a [`Listing`], as the route and the `units` frame send it.
#[derive(Debug, Serialize)]
pub struct Page<'a> {
    pub at: i64,
    pub parent: Option<&'a str>,
    pub units: &'a [UnitRow],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unassigned: Option<&'a UnitRow>,
    /// `"<at>.<offset>"` while more rows follow.
    pub next_cursor: Option<String>,
}

impl Listing {
    /// Rows `offset..offset + limit`.
    pub fn page(&self, offset: usize, limit: usize) -> Page<'_> {
        let start = offset.min(self.rows.len());
        let end = start.saturating_add(limit).min(self.rows.len());
        Page {
            at: self.at,
            parent: self.parent.as_deref(),
            units: &self.rows[start..end],
            unassigned: self.unassigned.as_ref(),
            next_cursor: (end < self.rows.len()).then(|| format!("{}.{end}", self.at)),
        }
    }
}

/// A cursor: the tick its listing was built at and the offset of its next row.
pub fn parse_cursor(cursor: &str) -> Option<(i64, usize)> {
    let (at, offset) = cursor.split_once('.')?;
    Some((at.parse().ok()?, offset.parse().ok()?))
}

/// The listings of one campaign, by tick and parent, kept [`PINNED`].
#[derive(Debug, Default)]
pub struct Listings(Mutex<Vec<Arc<Listing>>>);

impl Listings {
    /// The listing of `parent` built at tick `at`, if still kept.
    pub fn pinned(&self, parent: Option<&str>, at: i64) -> Option<Arc<Listing>> {
        find(&self.0.lock().unwrap_or_else(|e| e.into_inner()), parent, at)
    }

    /// The listing of `parent` (`None`: the top level, tree index from [`Tree::find`]) as
    /// of `frames`' tick: built on the first ask of the tick, then shared.
    pub async fn get(
        &self,
        units: &dyn Units,
        campaign: &Campaign,
        tree: &Arc<Tree>,
        depth: u8,
        frames: &Frames,
        parent: Option<u32>,
    ) -> StoreResult<Arc<Listing>> {
        let code = parent.map(|p| tree.code(p));
        if let Some(l) = self.pinned(code, frames.at) {
            return Ok(l);
        }
        let listing = Arc::new(build(units, campaign, tree, depth, frames, parent).await?);
        let mut kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        kept.retain(|l| l.made.elapsed() < PINNED);
        // Another ask of the same tick may have built it meanwhile: one listing is shared.
        if let Some(l) = find(&kept, code, frames.at) {
            return Ok(l);
        }
        kept.push(listing.clone());
        Ok(listing)
    }
}

fn find(kept: &[Arc<Listing>], parent: Option<&str>, at: i64) -> Option<Arc<Listing>> {
    kept.iter()
        .find(|l| l.at == at && l.parent.as_deref() == parent)
        .cloned()
}

/// Reads the numbers of `parent`'s children (and, at the top, of unassigned).
async fn build(
    units: &dyn Units,
    campaign: &Campaign,
    tree: &Arc<Tree>,
    depth: u8,
    frames: &Frames,
    parent: Option<u32>,
) -> StoreResult<Listing> {
    let level = parent.map_or(1, |p| tree.level(p) + 1);
    let children = tree.children(parent);
    let mut codes: Vec<String> = children.iter().map(|&i| tree.code(i).to_owned()).collect();
    let top = parent.is_none();
    if top {
        codes.push(UNASSIGNED.to_owned());
    }
    let default_stats = Default::default();
    let stats = frames.stats().unwrap_or(&default_stats);
    let upper = level <= depth;
    let viewers: Vec<u64> = if upper {
        codes.iter().map(|c| stats.units.get(c).copied().unwrap_or(0)).collect()
    } else {
        let nodes: Vec<String> = stats.nodes.iter().map(|n| n.node.clone()).collect();
        units.deep_viewers(&campaign.id, &nodes, &codes).await?
    };
    // A campaign no node flushes (sign-ups only) is folded by its readers.
    units.fold_units(&campaign.id, tree, Some(FOLD_EVERY)).await?;
    let totals = units.unit_totals(&campaign.id, &campaign.kinds, &codes).await?;
    let peaks = if upper {
        Some(units.unit_peaks(&campaign.id, &codes).await?)
    } else {
        None
    };
    let mut rows: Vec<UnitRow> = codes
        .iter()
        .enumerate()
        .map(|(k, code)| {
            let t = &totals[k];
            let unassigned = code == UNASSIGNED;
            UnitRow {
                code: if unassigned {
                    UNASSIGNED_CODE.to_owned()
                } else {
                    code.clone()
                },
                name: match children.get(k) {
                    Some(&i) => tree.name(i).to_owned(),
                    None => UNASSIGNED_CODE.to_owned(),
                },
                level,
                viewers: viewers[k],
                sessions: t.sessions,
                interactions: t.interactions.clone(),
                registrations: t.registrations,
                share_visits: t.share_visits,
                peak_viewers: peaks.as_ref().map(|p| p[k].peak_viewers),
            }
        })
        .collect();
    let unassigned = if top { rows.pop() } else { None };
    rows.sort_by(|a, b| b.viewers.cmp(&a.viewers).then_with(|| a.code.cmp(&b.code)));
    Ok(Listing {
        at: frames.at,
        parent: parent.map(|p| tree.code(p).to_owned()),
        rows,
        unassigned,
        made: Instant::now(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(code: &str, viewers: u64) -> UnitRow {
        UnitRow {
            code: code.into(),
            name: code.into(),
            level: 1,
            viewers,
            sessions: 0,
            interactions: BTreeMap::new(),
            registrations: 0,
            share_visits: 0,
            peak_viewers: None,
        }
    }

    #[test]
    fn pages_follow_the_order_with_a_cursor_to_the_next() {
        let l = Listing {
            at: 1_000,
            parent: Some("GD".into()),
            rows: vec![row("a", 3), row("b", 2), row("c", 1)],
            unassigned: None,
            made: Instant::now(),
        };
        let p = l.page(0, 2);
        assert_eq!(p.units.iter().map(|r| r.code.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(p.next_cursor.as_deref(), Some("1000.2"));
        assert_eq!(parse_cursor("1000.2"), Some((1_000, 2)));
        let p = l.page(2, 2);
        assert_eq!(p.units.len(), 1);
        assert_eq!(p.next_cursor, None);
        assert!(l.page(9, 2).units.is_empty());
        assert_eq!(parse_cursor("x.2"), None);
        assert_eq!(parse_cursor("12"), None);
    }
}
