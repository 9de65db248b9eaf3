//! One org version as a node holds it: compact and immutable.
//!
//! Half a million units as `String`s in a map would cost ~200 bytes each; here a unit is a
//! 16-byte [`Node`] plus its code and name bytes in one shared `text`, and two sorted
//! index arrays (by code, by name) of 4 bytes each serve lookups and prefix search by
//! binary search: ~24 bytes + code + name per unit (the seed's 546,000 units: ~35 MB).

use std::collections::hash_map::{Entry, HashMap};
use std::fmt::Write;
use std::ops::Range;

use serde::Serialize;

use super::{MAX_DEPTH, MAX_NAME_CHARS, MAX_UNITS};
use crate::protocol::limits::UNIT_CODE;

/// No parent: a top-level unit.
const NONE: u32 = u32::MAX;

/// One unit, pointing into the tree's `text` (code, then name).
#[derive(Debug, Clone, Copy)]
struct Node {
    start: u32,
    code_len: u8,
    level: u8,
    name_len: u16,
    parent: u32,
    children: u32,
}

/// An org version's units, in upload order (a parent always before its children).
#[derive(Debug, Default)]
pub struct Tree {
    text: String,
    nodes: Vec<Node>,
    by_code: Vec<u32>,
    by_name: Vec<u32>,
    /// Code → index as an open-addressing table of indices ([`NONE`]: empty), at most
    /// three quarters full: a lookup reads a slot or two where a binary search over
    /// `by_code` reads ~20 units scattered over memory (the roller looks up every unit a
    /// storm's counts touch, every fold). 4 to 8 bytes a unit.
    slots: Vec<u32>,
    /// Children by parent, parents in index order (the top level last): unit `i`'s are
    /// `kids[kids_at[i]..kids_at[i + 1]]`, in upload order. 8 bytes a unit.
    kids: Vec<u32>,
    kids_at: Vec<u32>,
}

/// A unit as the API shows it (`GET /api/v1/orgs/{org}/units/{code}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitView {
    pub code: String,
    pub name: String,
    /// `None` for a top-level unit.
    pub parent: Option<String>,
    /// 1 = top.
    pub level: u8,
    /// Codes from the top down to this unit (itself last).
    pub path: Vec<String>,
    /// Direct children.
    pub children: u32,
}

impl Tree {
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Units per level, level 1 first, up to the deepest level present.
    pub fn levels(&self) -> Vec<u64> {
        let mut levels = vec![0u64; MAX_DEPTH];
        for n in &self.nodes {
            levels[usize::from(n.level) - 1] += 1;
        }
        while levels.last() == Some(&0) {
            levels.pop();
        }
        levels
    }

    /// The units whose parent is `parent` (`None`: the top level), in upload order.
    pub fn children(&self, parent: Option<u32>) -> &[u32] {
        let p = parent.map_or(self.nodes.len(), |p| p as usize);
        match (self.kids_at.get(p), self.kids_at.get(p + 1)) {
            (Some(&a), Some(&b)) => &self.kids[a as usize..b as usize],
            _ => &[],
        }
    }

    /// The units at `level` (1 = top), in upload order.
    pub fn at_level(&self, level: u8) -> impl Iterator<Item = u32> + '_ {
        (0..self.nodes.len() as u32).filter(move |&i| self.nodes[i as usize].level == level)
    }

    /// Unit `i`'s level (1 = top).
    pub fn level(&self, i: u32) -> u8 {
        self.nodes[i as usize].level
    }

    /// Unit `i`'s parent (`None` at the top).
    pub fn parent(&self, i: u32) -> Option<u32> {
        Some(self.nodes[i as usize].parent).filter(|&p| p != NONE)
    }

    pub fn code(&self, i: u32) -> &str {
        let n = &self.nodes[i as usize];
        let start = n.start as usize;
        &self.text[start..start + usize::from(n.code_len)]
    }

    pub fn name(&self, i: u32) -> &str {
        let n = &self.nodes[i as usize];
        let start = n.start as usize + usize::from(n.code_len);
        &self.text[start..start + usize::from(n.name_len)]
    }

    /// The unit with this code.
    pub fn find(&self, code: &str) -> Option<u32> {
        let mask = self.slots.len().checked_sub(1)?;
        let mut at = slot_of(code) & mask;
        loop {
            match self.slots[at] {
                NONE => return None,
                i if self.code(i) == code => return Some(i),
                _ => at = (at + 1) & mask,
            }
        }
    }

    /// The unit at index `i` (from [`Tree::find`] or [`Tree::search`]).
    pub fn unit(&self, i: u32) -> UnitView {
        let n = self.nodes[i as usize];
        let mut path = Vec::with_capacity(usize::from(n.level));
        let mut at = i;
        while at != NONE {
            path.push(self.code(at).to_owned());
            at = self.nodes[at as usize].parent;
        }
        path.reverse();
        UnitView {
            code: self.code(i).to_owned(),
            name: self.name(i).to_owned(),
            parent: (n.parent != NONE).then(|| self.code(n.parent).to_owned()),
            level: n.level,
            path,
            children: n.children,
        }
    }

    /// Up to `limit` units whose code, then whose name, begins with `prefix` (codes and
    /// names compared as written: `gd` does not find `GD`), each once, codes in order.
    pub fn search(&self, prefix: &str, limit: usize) -> Vec<u32> {
        let mut found: Vec<u32> = Vec::new();
        for (index, text) in [(&self.by_code, 0), (&self.by_name, 1)] {
            let of = |i: u32| if text == 0 { self.code(i) } else { self.name(i) };
            let start = index.partition_point(|&i| of(i) < prefix);
            for &i in index[start..].iter().take_while(|&&i| of(i).starts_with(prefix)) {
                if found.len() >= limit {
                    return found;
                }
                if !found.contains(&i) {
                    found.push(i);
                }
            }
        }
        found
    }

    /// Units `range` as text lines `code\tparent index\tname\n` (parent index empty at the
    /// top): what the Redis store keeps per chunk. Names hold no control characters, so
    /// tabs and newlines separate.
    pub fn pack(&self, range: Range<usize>) -> String {
        let mut out = String::with_capacity(range.len() * 32);
        for i in range {
            let n = self.nodes[i];
            out.push_str(self.code(i as u32));
            out.push('\t');
            if n.parent != NONE {
                // Writing to a String cannot fail.
                let _ = write!(out, "{}", n.parent);
            }
            out.push('\t');
            out.push_str(self.name(i as u32));
            out.push('\n');
        }
        out
    }

    /// Rebuilds a tree from [`Tree::pack`]'s chunks, in order. A malformed chunk (a store
    /// written by something else) is an error, never a panic.
    pub fn unpack<'a>(chunks: impl IntoIterator<Item = &'a str>) -> Result<Tree, String> {
        let mut b = TreeBuilder::default();
        for chunk in chunks {
            for line in chunk.lines() {
                let mut cols = line.splitn(3, '\t');
                let (Some(code), Some(parent), Some(name)) = (cols.next(), cols.next(), cols.next()) else {
                    return Err(format!("malformed unit line {line:?}"));
                };
                let parent = match parent {
                    "" => NONE,
                    p => p
                        .parse::<u32>()
                        .ok()
                        .filter(|&p| (p as usize) < b.tree.nodes.len())
                        .ok_or_else(|| format!("bad parent index in {line:?}"))?,
                };
                b.add(code, parent, name).map_err(|(_, m)| m)?;
            }
        }
        Ok(b.finish())
    }
}

/// Where a code's search starts in [`Tree`]'s `slots`: FNV-1a, 64 bits.
fn slot_of(code: &str) -> usize {
    code.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    }) as usize
}

/// Builds a [`Tree`] unit by unit, checking each as it comes (the upload's rules): the
/// parser reports the first failure with its line.
#[derive(Default)]
pub struct TreeBuilder {
    tree: Tree,
    /// Code → index, while building only (dropped by `finish`, which sorts `by_code`).
    index: HashMap<Box<str>, u32>,
}

/// A failed unit: the field at fault and why.
pub type UnitError = (&'static str, String);

impl TreeBuilder {
    pub fn len(&self) -> usize {
        self.tree.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.nodes.is_empty()
    }

    /// Adds a unit: `parent` empty for a top-level unit, else the code of a unit added
    /// before.
    pub fn push(&mut self, code: &str, parent: &str, name: &str) -> Result<(), UnitError> {
        if self.tree.nodes.len() >= MAX_UNITS {
            return Err(("units", format!("an org has at most {MAX_UNITS} units")));
        }
        if !UNIT_CODE.matches(code) {
            return Err(("code", format!("code {code:?} must match {UNIT_CODE}")));
        }
        let parent = match parent {
            "" => NONE,
            p => *self.index.get(p).ok_or_else(|| {
                (
                    "parent",
                    format!("parent {p:?} is not the code of a unit on an earlier line"),
                )
            })?,
        };
        self.add(code, parent, name)
    }

    fn add(&mut self, code: &str, parent: u32, name: &str) -> Result<(), UnitError> {
        let chars = name.chars().count();
        if chars == 0 || chars > MAX_NAME_CHARS {
            return Err(("name", format!("name must be 1 to {MAX_NAME_CHARS} characters")));
        }
        if name.chars().any(char::is_control) {
            return Err((
                "name",
                "name must not hold control characters (tabs, line breaks)".into(),
            ));
        }
        let level = match parent {
            NONE => 1,
            p => self.tree.nodes[p as usize].level + 1,
        };
        if usize::from(level) > MAX_DEPTH {
            return Err((
                "parent",
                format!("unit {code:?} would be at level {level}: at most {MAX_DEPTH}"),
            ));
        }
        let i = self.tree.nodes.len() as u32;
        match self.index.entry(code.into()) {
            Entry::Occupied(_) => return Err(("code", format!("code {code:?} is already taken by an earlier line"))),
            Entry::Vacant(slot) => slot.insert(i),
        };
        if parent != NONE {
            self.tree.nodes[parent as usize].children += 1;
        }
        self.tree.nodes.push(Node {
            start: self.tree.text.len() as u32,
            code_len: code.len() as u8,
            level,
            // name is at most 100 chars of at most 4 bytes.
            name_len: name.len() as u16,
            parent,
            children: 0,
        });
        self.tree.text.push_str(code);
        self.tree.text.push_str(name);
        Ok(())
    }

    /// The tree, with its search indexes.
    pub fn finish(self) -> Tree {
        drop(self.index);
        let mut tree = self.tree;
        tree.text.shrink_to_fit();
        tree.nodes.shrink_to_fit();
        let all: Vec<u32> = (0..tree.nodes.len() as u32).collect();
        let mut by_code = all.clone();
        by_code.sort_unstable_by(|&a, &b| tree.code(a).cmp(tree.code(b)));
        let mut by_name = all;
        by_name.sort_by(|&a, &b| tree.name(a).cmp(tree.name(b)));
        tree.by_code = by_code;
        tree.by_name = by_name;
        let mut slots = vec![NONE; (tree.nodes.len() * 4 / 3 + 1).next_power_of_two()];
        let mask = slots.len() - 1;
        for i in 0..tree.nodes.len() as u32 {
            let mut at = slot_of(tree.code(i)) & mask;
            while slots[at] != NONE {
                at = (at + 1) & mask;
            }
            slots[at] = i;
        }
        tree.slots = slots;
        // Counting sort by parent (the top level as parent `len`).
        let n = tree.nodes.len();
        let parent_of = |node: &Node| if node.parent == NONE { n } else { node.parent as usize };
        let mut at = vec![0u32; n + 2];
        for node in &tree.nodes {
            at[parent_of(node) + 1] += 1;
        }
        for i in 1..at.len() {
            at[i] += at[i - 1];
        }
        let mut next = at.clone();
        let mut kids = vec![0u32; n];
        for (i, node) in tree.nodes.iter().enumerate() {
            let slot = &mut next[parent_of(node)];
            kids[*slot as usize] = i as u32;
            *slot += 1;
        }
        tree.kids = kids;
        tree.kids_at = at;
        tree
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Tree {
        let mut b = TreeBuilder::default();
        b.push("cn", "", "中国").unwrap();
        b.push("gd", "cn", "广东省").unwrap();
        b.push("gz", "gd", "广州市").unwrap();
        b.push("sz", "gd", "深圳市").unwrap();
        b.push("bj", "cn", "北京市").unwrap();
        b.finish()
    }

    #[test]
    fn every_code_is_found_and_no_other() {
        let mut b = TreeBuilder::default();
        b.push("top", "", "Top").unwrap();
        for i in 0..20_000 {
            b.push(&format!("u{i}"), "top", "Unit").unwrap();
        }
        let t = b.finish();
        for i in 0..t.len() as u32 {
            assert_eq!(t.find(t.code(i)), Some(i));
        }
        for absent in ["", "u20000", "U1", "top "] {
            assert_eq!(t.find(absent), None, "{absent:?}");
        }
        assert_eq!(TreeBuilder::default().finish().find("top"), None, "an empty tree");
    }

    #[test]
    fn children_are_listed_by_parent_in_upload_order() {
        let t = sample();
        let codes = |ids: &[u32]| ids.iter().map(|&i| t.code(i).to_owned()).collect::<Vec<_>>();
        assert_eq!(codes(t.children(None)), ["cn"]);
        assert_eq!(codes(t.children(t.find("cn"))), ["gd", "bj"]);
        assert_eq!(codes(t.children(t.find("gd"))), ["gz", "sz"]);
        assert!(t.children(t.find("sz")).is_empty());
        assert_eq!(codes(&t.at_level(3).collect::<Vec<_>>()), ["gz", "sz"]);
        assert!(Tree::default().children(None).is_empty());
    }

    #[test]
    fn units_know_their_path_level_and_children() {
        let t = sample();
        assert_eq!(t.levels(), [1, 2, 2]);
        let sz = t.unit(t.find("sz").unwrap());
        assert_eq!(sz.name, "深圳市");
        assert_eq!(sz.path, ["cn", "gd", "sz"]);
        assert_eq!(sz.level, 3);
        assert_eq!(sz.parent.as_deref(), Some("gd"));
        assert_eq!(t.unit(t.find("gd").unwrap()).children, 2);
        assert_eq!(t.unit(t.find("cn").unwrap()).parent, None);
        assert_eq!(t.find("nope"), None);
    }

    #[test]
    fn search_finds_code_then_name_prefixes() {
        let t = sample();
        let codes = |q: &str, n| t.search(q, n).into_iter().map(|i| t.unit(i).code).collect::<Vec<_>>();
        assert_eq!(codes("g", 50), ["gd", "gz"]);
        assert_eq!(codes("广", 50), ["gd", "gz"]);
        assert_eq!(codes("g", 1), ["gd"]);
        assert!(codes("x", 50).is_empty());
    }

    #[test]
    fn pack_and_unpack_round_trip_in_chunks() {
        let t = sample();
        let chunks = [t.pack(0..2), t.pack(2..5)];
        let back = Tree::unpack(chunks.iter().map(String::as_str)).unwrap();
        assert_eq!(back.len(), 5);
        assert_eq!(back.unit(back.find("sz").unwrap()), t.unit(t.find("sz").unwrap()));
        assert!(Tree::unpack(["a\t7\tx\n"]).is_err());
        assert!(Tree::unpack(["a\n"]).is_err());
    }

    #[test]
    fn rules_name_their_field() {
        let mut b = TreeBuilder::default();
        assert_eq!(b.push("a b", "", "x").unwrap_err().0, "code");
        assert_eq!(b.push("a", "zz", "x").unwrap_err().0, "parent");
        assert_eq!(b.push("a", "", "").unwrap_err().0, "name");
        assert_eq!(b.push("a", "", &"名".repeat(101)).unwrap_err().0, "name");
        b.push("a", "", &"名".repeat(100)).unwrap();
        assert_eq!(b.push("a", "", "x").unwrap_err().0, "code");
        for level in 2..=6 {
            b.push(
                &format!("l{level}"),
                &if level == 2 {
                    "a".into()
                } else {
                    format!("l{}", level - 1)
                },
                "x",
            )
            .unwrap();
        }
        assert_eq!(b.push("l7", "l6", "x").unwrap_err().0, "parent");
    }
}
