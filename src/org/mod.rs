//! The organisation: a tree of at most six levels of units (a national office, its
//! provinces, cities, counties, townships and villages) that a campaign counts by.
//!
//! An operator uploads it as one CSV or NDJSON file ([`parse`]); the node reads the body as
//! a stream and builds a compact, immutable [`Tree`] while it reads, stopping at the first
//! error with its line and field. The store keeps every version of an org until no campaign
//! uses it (`store::Orgs`); a version never changes, so a node may keep a tree it has read.

pub mod parse;
pub mod tree;

use serde::{Deserialize, Serialize};

pub use parse::{parse_csv, parse_ndjson, UploadError};
pub use tree::{Tree, TreeBuilder, UnitView};

/// Units per org: the seed's ~546,000 and room to double, while a tree stays within ~70 MB
/// of node memory (`Tree`'s layout is ~60 bytes per unit).
pub const MAX_UNITS: usize = 1_000_000;

/// Levels of an org: the seed's national office down to its villages.
pub const MAX_DEPTH: usize = 6;

/// A unit's name, in characters of any script (a village's official name fits).
pub const MAX_NAME_CHARS: usize = 100;

/// The largest upload body: 1,000,000 units of 32-byte codes and 100 four-byte
/// characters would be ~470 MB, but real names are short (the seed's 546,000 units are
/// ~20 MB); the cap bounds what a wrong file can make the node read.
pub const MAX_BODY_BYTES: u64 = 256 * 1024 * 1024;

/// What every read of an org version shows (`PUT`'s reply, `GET /api/v1/orgs/{org}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgSummary {
    pub org: String,
    /// 1, 2, …: every upload of the same org id takes the next one, never reused (a node
    /// may keep a version's tree by its number).
    pub version: u64,
    pub units: u64,
    /// Units per level, level 1 (the top) first.
    pub levels: Vec<u64>,
}

impl OrgSummary {
    pub fn of(org: &str, version: u64, tree: &Tree) -> Self {
        Self {
            org: org.to_owned(),
            version,
            units: tree.len() as u64,
            levels: tree.levels(),
        }
    }
}

/// An org id: the same pattern as a campaign id.
pub fn is_org_id(s: &str) -> bool {
    crate::protocol::limits::CAMPAIGN_ID.matches(s)
}
