//! A campaign's viewers by unit of its organisation, on this node (spec v1.2, "The
//! organisation"). A socket is attributed to one unit when admitted (the token's claim,
//! else the query's `unit`; a code the org lacks, or none: unassigned) and holds that
//! unit's [`Place`]: shared by every socket of the unit on this node, so a socket costs
//! one pointer, not a path of strings.
//!
//! What leaves for the store (docs/consistency.md, "Per-unit counting"): the upper units'
//! sockets inside the presence lease ([`UnitTally::add_presence`]), the deep units' sockets
//! as the changes since the last write ([`UnitTally::deep_changes`]), and per flush the
//! sessions that qualified, the share visits and the upper units' new viewers
//! ([`UnitTally::drain`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use crate::org::Tree;
use crate::protocol::stats::text_frame;
use crate::store::units::{unit_key, UNASSIGNED};
use crate::store::{Presence, UnitCounts, UnitPath};

/// A viewer gets its `unit` frame at most this often (spec: at most every 5 s).
pub const UNIT_FRAME_EVERY_MS: i64 = 5_000;

/// The code and name `unassigned` is shown under.
const UNASSIGNED_CODE: &str = "unassigned";

/// A viewer's `{"type":"unit","path":[{"code","name","viewers"}]}` message: its path down
/// to `--unit-peak-depth` with each unit's live viewers, serialised once per path.
#[derive(Debug, PartialEq, Eq)]
pub struct UnitFrame {
    pub text: String,
    /// `text` as a complete WebSocket text frame.
    pub wire: Bytes,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One unit as this node counts it.
#[derive(Debug)]
pub struct Place {
    /// Codes from the top down to the unit (`[""]`: unassigned).
    pub path: UnitPath,
    /// The lease keys of the path's units at levels ≤ `--unit-peak-depth` (unassigned is
    /// one of them: it is listed at the top).
    pub upper: Box<[String]>,
    /// The path's deeper units.
    deep: usize,
    /// Its upper path's number in the campaign on this node (`Audience::Unit`): every
    /// place below the same unit at `--unit-peak-depth` shares one `unit` frame.
    pub id: u32,
    group: Arc<FrameGroup>,
}

/// The places of one upper path on this node, and their `unit` frame: the frames are
/// made per upper path (a few hundred in the seed's org), not per place (one per village
/// with a viewer here, tens of thousands).
#[derive(Debug)]
struct FrameGroup {
    /// The path's upper codes.
    codes: Box<[String]>,
    /// The viewers per code the last frame showed, and that frame.
    last: Mutex<Option<(Vec<u64>, Arc<UnitFrame>)>>,
}

impl Place {
    /// The codes of the path's upper units.
    pub fn upper_codes(&self) -> &[String] {
        &self.path[..self.path.len() - self.deep]
    }

    fn deep_codes(&self) -> &[String] {
        &self.path[self.path.len() - self.deep..]
    }

    /// The last `unit` frame made for this place (`None` before the first).
    pub fn frame(&self) -> Option<Arc<UnitFrame>> {
        lock(&self.group.last).as_ref().map(|(_, f)| f.clone())
    }
}

/// A node's open sockets by unit.
#[derive(Debug, Default)]
struct Open {
    /// By upper unit, as lease keys (`u:<code>`).
    upper: HashMap<String, u64>,
    /// By deep unit code.
    deep: HashMap<String, u64>,
    /// Deep units whose number changed since it was last written.
    changed: HashSet<String>,
}

/// The frame groups of a tally: by their deepest upper code, and in order (a group's id
/// is its index).
#[derive(Debug, Default)]
struct Groups {
    by_code: HashMap<String, u32>,
    all: Vec<Arc<FrameGroup>>,
}

/// The units side of one campaign's tally.
pub struct UnitTally {
    tree: Arc<Tree>,
    depth: usize,
    /// By unit index in the tree (`None`: unassigned), created on first use.
    places: Mutex<HashMap<Option<u32>, Arc<Place>>>,
    /// The upper paths of those places.
    groups: Mutex<Groups>,
    /// Since the last flush: qualified sessions, new viewers of upper units, share visits.
    queued: Mutex<UnitCounts>,
    shares: Mutex<HashMap<Option<u32>, u64>>,
    /// This node's open sockets per unit, kept as sockets join and leave, so a flush
    /// costs the units that changed, not every unit touched.
    open: Mutex<Open>,
    /// When `unit` frames were last made (unix ms).
    frames_at: AtomicI64,
}

impl UnitTally {
    /// `depth`: `--unit-peak-depth`.
    pub fn new(tree: Arc<Tree>, depth: u8) -> Self {
        Self {
            tree,
            depth: usize::from(depth),
            places: Mutex::new(HashMap::new()),
            groups: Mutex::new(Groups::default()),
            queued: Mutex::new(UnitCounts::default()),
            shares: Mutex::new(HashMap::new()),
            open: Mutex::new(Open::default()),
            frames_at: AtomicI64::new(i64::MIN),
        }
    }

    pub fn tree(&self) -> &Arc<Tree> {
        &self.tree
    }

    /// The place of `code`: its unit, or unassigned when the org has no such code (or none
    /// was given).
    pub fn place(&self, code: Option<&str>) -> Arc<Place> {
        let index = code.and_then(|c| self.tree.find(c));
        self.place_of(index)
    }

    fn place_of(&self, index: Option<u32>) -> Arc<Place> {
        let mut places = lock(&self.places);
        places
            .entry(index)
            .or_insert_with(|| {
                let path: UnitPath = match index {
                    Some(i) => self.tree.unit(i).path.into(),
                    None => vec![UNASSIGNED.to_owned()].into(),
                };
                let deep = path.len().saturating_sub(self.depth.max(1));
                let upper_codes = &path[..path.len() - deep];
                let upper = upper_codes.iter().map(|c| unit_key(c)).collect();
                let (id, group) = self.group_of(upper_codes);
                Arc::new(Place {
                    path,
                    upper,
                    deep,
                    id,
                    group,
                })
            })
            .clone()
    }

    /// The frame group of an upper path (made on first use).
    fn group_of(&self, codes: &[String]) -> (u32, Arc<FrameGroup>) {
        let mut groups = lock(&self.groups);
        let Groups { by_code, all } = &mut *groups;
        let deepest = codes.last().map_or("", String::as_str);
        if let Some(&id) = by_code.get(deepest) {
            return (id, all[id as usize].clone());
        }
        let id = all.len() as u32;
        let group = Arc::new(FrameGroup {
            codes: codes.into(),
            last: Mutex::new(None),
        });
        by_code.insert(deepest.to_owned(), id);
        all.push(group.clone());
        (id, group)
    }

    /// A socket opened in `place`.
    pub fn joined(&self, place: &Place) {
        let mut open = lock(&self.open);
        for key in place.upper.iter() {
            *open.upper.entry(key.clone()).or_default() += 1;
        }
        for code in place.deep_codes() {
            *open.deep.entry(code.clone()).or_default() += 1;
            open.changed.insert(code.clone());
        }
    }

    /// A socket of `place` closed.
    pub fn left(&self, place: &Place) {
        let mut open = lock(&self.open);
        for key in place.upper.iter() {
            if let Some(n) = open.upper.get_mut(key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    open.upper.remove(key);
                }
            }
        }
        for code in place.deep_codes() {
            if let Some(n) = open.deep.get_mut(code) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    open.deep.remove(code);
                }
            }
            open.changed.insert(code.clone());
        }
    }

    /// A socket in `place` qualified (`--unique-after`): its session counts in the unit
    /// (once, the store sees to it), its viewer in the upper units' unique sketches.
    pub fn qualified(&self, session: &str, viewer: &str, place: &Place) {
        let mut q = lock(&self.queued);
        q.sessions.push((session.to_owned(), place.path.clone()));
        for code in place.upper_codes() {
            q.new_viewers.push((code.clone(), viewer.to_owned()));
        }
    }

    /// One share visit through a link naming `code`.
    pub fn share_visit(&self, code: Option<&str>) {
        let index = code.and_then(|c| self.tree.find(c));
        *lock(&self.shares).entry(index).or_default() += 1;
    }

    /// Adds this node's sockets per upper unit to its presence (as `u:<code>` entries).
    pub fn add_presence(&self, p: &mut Presence) {
        for (key, n) in &lock(&self.open).upper {
            *p.regions.entry(key.clone()).or_default() += n;
        }
    }

    /// The deep units whose sockets on this node changed since the last
    /// [`deep_written`](Self::deep_written): `(code, sockets)`, 0 for a unit now empty.
    pub fn deep_changes(&self) -> Vec<(String, u64)> {
        let open = lock(&self.open);
        open.changed
            .iter()
            .map(|c| (c.clone(), open.deep.get(c).copied().unwrap_or(0)))
            .collect()
    }

    /// Every deep unit with sockets on this node, `(code, sockets)`: the whole map, for a
    /// write that replaces the store's.
    pub fn deep_all(&self) -> Vec<(String, u64)> {
        let open = lock(&self.open);
        open.deep.iter().map(|(c, n)| (c.clone(), *n)).collect()
    }

    /// The store took `changes`: those still at the number written are no longer changed.
    pub fn deep_written(&self, changes: &[(String, u64)]) {
        let mut open = lock(&self.open);
        for (code, n) in changes {
            if open.deep.get(code).copied().unwrap_or(0) == *n {
                open.changed.remove(code);
            }
        }
    }

    /// At most every [`UNIT_FRAME_EVERY_MS`]: each place's new `unit` frame from a tick's
    /// upper-unit viewers (`units`, [`crate::store::Stats::units`]), by [`Place::id`]
    /// (one per upper path), `None` where it did not change; `None` when none changed or
    /// it is too soon.
    pub fn unit_frames(&self, units: &BTreeMap<String, u64>, now_ms: i64) -> Option<Vec<Option<Arc<UnitFrame>>>> {
        if now_ms.saturating_sub(self.frames_at.load(Ordering::Relaxed)) < UNIT_FRAME_EVERY_MS {
            return None;
        }
        let groups: Vec<Arc<FrameGroup>> = lock(&self.groups).all.clone();
        let mut out = vec![None; groups.len()];
        let mut changed = false;
        for (slot, group) in out.iter_mut().zip(&groups) {
            let viewers: Vec<u64> = group.codes.iter().map(|c| units.get(c).copied().unwrap_or(0)).collect();
            let mut last = lock(&group.last);
            if last.as_ref().is_some_and(|(shown, _)| *shown == viewers) {
                continue;
            }
            let frame = Arc::new(self.frame_of(&group.codes, &viewers));
            *last = Some((viewers, frame.clone()));
            *slot = Some(frame);
            changed = true;
        }
        if !changed {
            return None;
        }
        self.frames_at.store(now_ms, Ordering::Relaxed);
        Some(out)
    }

    fn frame_of(&self, upper: &[String], viewers: &[u64]) -> UnitFrame {
        let path: Vec<serde_json::Value> = upper
            .iter()
            .zip(viewers)
            .map(|(code, &viewers)| {
                let (code, name) = if code == UNASSIGNED {
                    (UNASSIGNED_CODE, UNASSIGNED_CODE)
                } else {
                    let name = self.tree.find(code).map_or(code.as_str(), |i| self.tree.name(i));
                    (code.as_str(), name)
                };
                serde_json::json!({"code": code, "name": name, "viewers": viewers})
            })
            .collect();
        // `type` first, as in every server message.
        let text = format!(r#"{{"type":"unit","path":{}}}"#, serde_json::Value::Array(path));
        UnitFrame {
            wire: text_frame(text.as_bytes()),
            text,
        }
    }

    /// Everything queued for the next flush.
    pub fn drain(&self) -> UnitCounts {
        let mut counts = std::mem::take(&mut *lock(&self.queued));
        let shares = std::mem::take(&mut *lock(&self.shares));
        counts.share_visits = shares
            .into_iter()
            .map(|(index, n)| (self.place_of(index).path.clone(), n))
            .collect();
        counts
    }

    /// Nothing is queued.
    pub fn is_drained(&self) -> bool {
        lock(&self.queued).is_empty() && lock(&self.shares).is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::org::TreeBuilder;

    fn tree() -> Arc<Tree> {
        let mut b = TreeBuilder::default();
        for (code, parent) in [("P", ""), ("C", "P"), ("D", "C"), ("T", "D"), ("V", "T"), ("V2", "T")] {
            b.push(code, parent, code).unwrap();
        }
        Arc::new(b.finish())
    }

    #[test]
    fn a_socket_counts_in_its_upper_units_by_lease_and_its_deep_units_by_change() {
        let u = UnitTally::new(tree(), 3);
        let (v, v2, none) = (u.place(Some("V")), u.place(Some("V2")), u.place(Some("nope")));
        assert_eq!(&v.upper[..], ["u:P", "u:C", "u:D"]);
        assert_eq!(&none.path[..], [""]);
        u.joined(&v);
        u.joined(&v2);
        u.joined(&none);
        let mut p = Presence::default();
        u.add_presence(&mut p);
        assert_eq!((p.regions["u:P"], p.regions["u:D"], p.regions["u:"]), (2, 2, 1));
        let mut changes = u.deep_changes();
        changes.sort();
        assert_eq!(changes, [("T".into(), 2), ("V".into(), 1), ("V2".into(), 1)]);
        u.deep_written(&changes);
        assert!(u.deep_changes().is_empty(), "nothing changed since");
        u.left(&v);
        let mut changes = u.deep_changes();
        changes.sort();
        assert_eq!(changes, [("T".into(), 1), ("V".into(), 0)]);
    }

    #[test]
    fn places_under_one_upper_path_share_one_frame_made_only_when_its_numbers_change() {
        let u = UnitTally::new(tree(), 3);
        let (v, v2, d, none) = (
            u.place(Some("V")),
            u.place(Some("V2")),
            u.place(Some("D")),
            u.place(None),
        );
        assert_eq!((v.id, v2.id, d.id), (0, 0, 0), "all below D share P > C > D");
        assert_eq!(none.id, 1);
        let units = |p: u64| BTreeMap::from([("P".to_owned(), p), ("C".to_owned(), 2), ("D".to_owned(), 1)]);
        let frames = u.unit_frames(&units(3), 10_000).expect("first frames");
        let text = &frames[0].as_ref().unwrap().text;
        assert_eq!(
            text,
            r#"{"type":"unit","path":[{"code":"P","name":"P","viewers":3},{"code":"C","name":"C","viewers":2},{"code":"D","name":"D","viewers":1}]}"#
        );
        assert!(Arc::ptr_eq(&v2.frame().unwrap(), frames[0].as_ref().unwrap()));
        assert_eq!(
            frames[1].as_ref().unwrap().text,
            r#"{"type":"unit","path":[{"code":"unassigned","name":"unassigned","viewers":0}]}"#
        );
        // Too soon, then the same numbers: nothing; then P changed: only that path's frame.
        assert!(u.unit_frames(&units(4), 14_999).is_none());
        assert!(u.unit_frames(&units(3), 15_000).is_none());
        let frames = u.unit_frames(&units(4), 15_000).expect("P changed");
        assert!(frames[0].as_ref().unwrap().text.contains(r#""viewers":4"#));
        assert!(frames[1].is_none());
    }
}
