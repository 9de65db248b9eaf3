//! What travels between this store and its Lua scripts: the batch as `apply.lua` reads it
//! (short field names, numbers as decimal strings, so Lua never formats a number), and
//! the decoding of the scripts' replies back into the store's types. Kept apart from the
//! calls themselves so that `mod.rs` reads as the `Store` implementation.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::conn::unavailable;
use super::leases::LeaseWrite;
use crate::campaign::{Campaign, State};
use crate::store::{Batch, StoreError, StoreResult, UnitPath};

/// A batch as the apply script reads it (`cjson`): short field names, numbers as strings.
#[derive(Serialize)]
pub(super) struct LuaBatch<'a> {
    /// `[session, epoch, seq, viewer, [[kind, count], ...]]`
    pub(super) s: Vec<LuaSession<'a>>,
    /// New viewers.
    pub(super) v: &'a [String],
    /// Viewers that interacted before their socket qualified (`Batch::interactors`).
    pub(super) i: &'a [String],
    /// `[[channel, visits], ...]`
    pub(super) h: Vec<(&'a str, String)>,
    /// `[node, lease JSON, "1" when whole]` (`leases.rs`: otherwise only its changes)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) p: Option<(&'a str, String, &'static str)>,
    /// `[[session, epoch], ...]` to keep alive.
    pub(super) t: Vec<(&'a str, String)>,
    /// `[[session, epoch], ...]` of sockets this node closed (session "" for a moved epoch
    /// it no longer counts).
    pub(super) l: Vec<(&'a str, String)>,
    /// `[[session, path], ...]`: sessions that qualified in a unit.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) us: Vec<(&'a str, usize)>,
    /// `[[path, visits], ...]`: share visits by unit.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) uh: Vec<(usize, String)>,
    /// `[[upper unit code, viewer], ...]` for the units' unique sketches.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub(super) uv: &'a [(String, String)],
}

/// `[session, epoch, seq, viewer, [[kind, count], ...], unit path index (0: none)]`
pub(super) type LuaSession<'a> = (&'a str, String, String, &'a str, Vec<(&'a str, String)>, usize);

/// The distinct units of a batch, each sent once (its code: the roller finds its
/// ancestors in the campaign's tree) and named by its 1-based index. A path is one shared
/// allocation per unit on a node, so it is told apart by its address, not hashed.
#[derive(Default)]
pub(super) struct UnitPaths<'a> {
    list: Vec<&'a str>,
    index: HashMap<*const String, usize>,
}

impl<'a> UnitPaths<'a> {
    pub(super) fn index(&mut self, path: &'a UnitPath) -> usize {
        let Some(unit) = path.last() else { return 0 };
        *self.index.entry(unit as *const String).or_insert_with(|| {
            self.list.push(unit);
            self.list.len()
        })
    }

    /// The units' codes in index order; `None` when there are none.
    pub(super) fn into_list(self) -> Option<Vec<&'a str>> {
        (!self.list.is_empty()).then_some(self.list)
    }
}

/// A presence lease value as stored after the `<updated_at>|` prefix.
#[derive(Deserialize)]
pub(super) struct StoredPresence {
    pub(super) viewers: u64,
    #[serde(default)]
    pub(super) regions: BTreeMap<String, u64>,
}

/// The stats script's answer, in its order.
pub(super) type StatsReply = (
    Vec<String>,
    u64,
    u64,
    u64,
    Vec<String>,
    Vec<String>,
    String,
    String,
    String,
    String,
    Vec<String>,
    // The presence totals, one field or value per line ('' before schema 3).
    String,
);

/// Sockets moved away from a node (`moved` values `<region>|<node>`): how many, and by region.
#[derive(Default)]
pub(super) struct MovedAway {
    pub(super) sockets: u64,
    pub(super) regions: HashMap<String, u64>,
}

/// Groups the stats script's flat `[epoch, region|node, ...]` by node.
pub(super) fn moved_by_node(flat: Vec<String>) -> StoreResult<HashMap<String, MovedAway>> {
    let mut by_node: HashMap<String, MovedAway> = HashMap::new();
    for (_, value) in pairs(flat) {
        let (counted_in, node) = value.split_once('|').ok_or_else(|| corrupt("moved"))?;
        let m = by_node.entry(node.to_owned()).or_default();
        m.sockets += 1;
        for key in crate::store::counting::counted_keys(counted_in) {
            *m.regions.entry(key.to_owned()).or_default() += 1;
        }
    }
    Ok(by_node)
}

pub(super) fn corrupt(what: &str) -> StoreError {
    StoreError::Unavailable(format!("unexpected data in Redis: {what}"))
}

pub(super) fn state_str(state: State) -> &'static str {
    match state {
        State::Live => "live",
        State::Ended => "ended",
    }
}

/// Builds a campaign from the meta hash: the JSON as created, overlaid with the fields
/// `end_campaign` changes (so Lua never has to re-encode the JSON).
pub(super) fn campaign_from_meta(json: &str, state: Option<&str>, ended_at: Option<&str>) -> StoreResult<Campaign> {
    let mut c: Campaign = serde_json::from_str(json).map_err(|_| corrupt("campaign JSON"))?;
    c.state = match state {
        Some("ended") => State::Ended,
        _ => State::Live,
    };
    c.ended_at = match ended_at {
        Some(s) if !s.is_empty() => Some(s.parse().map_err(|_| corrupt("ended_at"))?),
        _ => None,
    };
    Ok(c)
}

/// Pairs up a flat `[field, value, ...]` reply.
pub(super) fn pairs(flat: Vec<String>) -> impl Iterator<Item = (String, String)> {
    let mut it = flat.into_iter();
    std::iter::from_fn(move || Some((it.next()?, it.next()?)))
}

pub(super) fn parse_u64(s: &str, what: &str) -> StoreResult<u64> {
    s.parse().map_err(|_| corrupt(what))
}

pub(super) fn opt_i64(s: &str, what: &str) -> StoreResult<Option<i64>> {
    if s.is_empty() {
        Ok(None)
    } else {
        s.parse().map(Some).map_err(|_| corrupt(what))
    }
}

/// A batch as `apply.lua` reads it ([`LuaArgs`]): the batch as one JSON object; its units
/// apart (a JSON array of codes, each sent once, named by their 1-based index in `s`, `us`
/// and `uh`), so the script passes them on into the unit delta without decoding them; and
/// its unit counts already summed.
pub(super) fn batch_json(batch: &Batch, lease: Option<&LeaseWrite>) -> StoreResult<LuaArgs> {
    let presence = match (&batch.presence, lease) {
        (Some((node, _)), Some(w)) => Some((
            node.as_str(),
            serde_json::to_string(&w.lease).map_err(unavailable)?,
            if w.whole { "1" } else { "0" },
        )),
        _ => None,
    };
    let mut paths = UnitPaths::default();
    let lua = LuaBatch {
        s: batch
            .sessions
            .iter()
            .map(|s| {
                (
                    s.session.as_str(),
                    s.epoch.to_string(),
                    s.seq.to_string(),
                    s.viewer.as_str(),
                    s.counts.iter().map(|(k, n)| (k.as_str(), n.to_string())).collect(),
                    s.unit.as_ref().map_or(0, |p| paths.index(p)),
                )
            })
            .collect(),
        us: batch
            .units
            .sessions
            .iter()
            .map(|(s, p)| (s.as_str(), paths.index(p)))
            .collect(),
        uh: batch
            .units
            .share_visits
            .iter()
            .map(|(p, n)| (paths.index(p), n.to_string()))
            .collect(),
        uv: &batch.units.new_viewers,
        v: &batch.new_viewers,
        i: &batch.interactors,
        h: batch
            .share_visits
            .iter()
            .map(|(c, n)| (c.as_str(), n.to_string()))
            .collect(),
        p: presence,
        t: batch.touch.iter().map(|(s, e)| (s.as_str(), e.to_string())).collect(),
        l: batch.left.iter().map(|(s, e)| (s.as_str(), e.to_string())).collect(),
    };
    let counted = unit_counts(&lua);
    let paths = match paths.into_list() {
        Some(list) => serde_json::to_string(&list).map_err(unavailable)?,
        None => String::new(),
    };
    Ok(LuaArgs {
        batch: serde_json::to_string(&lua).map_err(unavailable)?,
        units: paths,
        counted,
    })
}

/// A batch's interactions and share visits by unit and metric, as the entries of a unit
/// delta's `c` (`[unit, "i|<kind>", n]`, `[unit, "h", n]`), so `apply.lua` need not sum
/// them (unless it fenced a session).
fn unit_counts(lua: &LuaBatch) -> String {
    let mut sums: BTreeMap<(usize, &str, &str), u64> = BTreeMap::new();
    for s in &lua.s {
        if s.5 > 0 {
            for (kind, n) in &s.4 {
                *sums.entry((s.5, "i|", kind)).or_default() += n.parse::<u64>().unwrap_or(0);
            }
        }
    }
    for (unit, n) in &lua.uh {
        *sums.entry((*unit, "h", "")).or_default() += n.parse::<u64>().unwrap_or(0);
    }
    let mut out = String::new();
    for ((unit, metric, kind), n) in sums {
        if n > 0 {
            if !out.is_empty() {
                out.push(',');
            }
            // Kinds are `[a-z0-9_]`: nothing to escape.
            out.push_str(&format!("[{unit},\"{metric}{kind}\",{n}]"));
        }
    }
    out
}

/// What `apply.lua` takes besides the keys and settings (see [`batch_json`]).
pub(super) struct LuaArgs {
    /// The batch (ARGV 1).
    pub(super) batch: String,
    /// Its units, a JSON array of codes ('' = none) (ARGV 14).
    pub(super) units: String,
    /// Its interactions and share visits by unit (ARGV 15).
    pub(super) counted: String,
}
