//! The memory store's numbers per unit (`store::Units`, implemented in `memory.rs` on
//! these): cumulative totals by code, counted in the same locked step as the campaign's
//! own numbers; each node's deep viewers with the node's lease; the upper units' peaks and
//! unique sketches.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use super::generations::Generations;
use crate::store::hll::HyperLogLog;
use crate::store::units::{UnitPath, UNIT_PREFIX};
use crate::store::{Batch, UnitPeak, UnitTotals};

#[derive(Debug)]
pub(super) struct UnitData {
    totals: HashMap<String, UnitTotals>,
    /// Sessions counted in a unit, forgotten as sessions are.
    pub(super) sessions: Generations<()>,
    /// Node → its lease's end and its open sockets by deep unit.
    deep: HashMap<String, (Instant, HashMap<String, u64>)>,
    /// Upper unit → (peak, when).
    peaks: HashMap<String, (u64, i64)>,
    uniques: HashMap<String, HyperLogLog>,
}

impl UnitData {
    pub(super) fn new(session_ttl: Duration, origin: Instant) -> Self {
        Self {
            totals: HashMap::new(),
            sessions: Generations::new(session_ttl, origin),
            deep: HashMap::new(),
            peaks: HashMap::new(),
            uniques: HashMap::new(),
        }
    }

    fn each(&mut self, path: &UnitPath, mut f: impl FnMut(&mut UnitTotals)) {
        for code in path.iter() {
            f(self.totals.entry(code.clone()).or_default());
        }
    }

    /// An accepted session delta's interactions, into its unit's path.
    pub(super) fn count_interactions(&mut self, path: &UnitPath, counts: &[(String, u64)]) {
        self.each(path, |t| {
            for (kind, n) in counts {
                *t.interactions.entry(kind.clone()).or_default() += n;
            }
        });
    }

    /// The batch's qualified sessions (each once per unit while its resume state lives),
    /// share visits by unit and new viewers of the upper units.
    pub(super) fn count_batch(&mut self, batch: &Batch) {
        for (session, path) in &batch.units.sessions {
            // A session counts in the unit it first qualified in, once: the top level's
            // sessions (and `unassigned`) then add up to the campaign's.
            if self.sessions.get(session).is_some() {
                continue;
            }
            self.sessions.put(session, ());
            self.each(path, |t| t.sessions += 1);
        }
        for (path, n) in &batch.units.share_visits {
            self.each(path, |t| t.share_visits += n);
        }
        for (code, viewer) in &batch.units.new_viewers {
            self.uniques.entry(code.clone()).or_default().add(viewer);
        }
    }

    /// A new registration in `path`.
    pub(super) fn count_registration(&mut self, path: &UnitPath) {
        self.each(path, |t| t.registrations += 1);
    }

    /// Raises the upper units' peaks from a tick's `u:` entries.
    pub(super) fn raise_peaks(&mut self, at_ms: i64, regions: &BTreeMap<String, u64>) {
        for (key, n) in regions {
            if let Some(code) = key.strip_prefix(UNIT_PREFIX) {
                let peak = self.peaks.entry(code.to_owned()).or_insert((0, at_ms));
                if *n > peak.0 {
                    *peak = (*n, at_ms);
                }
            }
        }
    }
}

impl UnitData {
    /// `node`'s deep viewers: `changes` applied, its entry renewed for `lease`; expired
    /// nodes' entries dropped.
    pub(super) fn put_deep_viewers(
        &mut self,
        node: &str,
        changes: &[(String, u64)],
        full: bool,
        lease: Duration,
    ) -> bool {
        let now = Instant::now();
        self.deep.retain(|_, (expires, _)| *expires > now);
        let was = self.deep.contains_key(node);
        let (expires, units) = self
            .deep
            .entry(node.to_owned())
            .or_insert_with(|| (now, HashMap::new()));
        *expires = now + lease;
        if full {
            units.clear();
        }
        for (code, n) in changes {
            if *n == 0 {
                units.remove(code);
            } else {
                units.insert(code.clone(), *n);
            }
        }
        was
    }

    /// Each of `codes`' deep viewers summed over the live entries of `nodes`.
    pub(super) fn deep_viewers(&self, nodes: &[String], codes: &[String]) -> Vec<u64> {
        let now = Instant::now();
        let live: Vec<&HashMap<String, u64>> = nodes
            .iter()
            .filter_map(|n| self.deep.get(n))
            .filter(|(expires, _)| *expires > now)
            .map(|(_, units)| units)
            .collect();
        codes
            .iter()
            .map(|c| live.iter().filter_map(|u| u.get(c)).sum())
            .collect()
    }

    /// Every deep unit's viewers over the live hashes of `nodes`, units with none left out.
    pub(super) fn all_deep_viewers(&self, nodes: &[String]) -> HashMap<String, u64> {
        let now = Instant::now();
        let mut sums = HashMap::new();
        for (_, units) in nodes
            .iter()
            .filter_map(|n| self.deep.get(n))
            .filter(|(expires, _)| *expires > now)
        {
            for (code, &n) in units.iter().filter(|(_, &n)| n > 0) {
                *sums.entry(code.clone()).or_default() += n;
            }
        }
        sums
    }

    /// Each of `codes`' totals, with every one of `kinds`.
    pub(super) fn totals(&self, kinds: &[String], codes: &[String]) -> Vec<UnitTotals> {
        codes
            .iter()
            .map(|c| {
                let mut t = self.totals.get(c).cloned().unwrap_or_default();
                for k in kinds {
                    t.interactions.entry(k.clone()).or_default();
                }
                t
            })
            .collect()
    }

    /// Each of `codes`' peak and unique viewers.
    pub(super) fn peaks(&self, codes: &[String]) -> Vec<UnitPeak> {
        codes
            .iter()
            .map(|c| {
                let (peak_viewers, at) = self.peaks.get(c).copied().unwrap_or_default();
                UnitPeak {
                    peak_viewers,
                    peak_at: (peak_viewers > 0).then_some(at),
                    unique_viewers: self.uniques.get(c).map_or(0, HyperLogLog::count),
                }
            })
            .collect()
    }
}
