//! The `stats` message: a campaign's global numbers as the store reads them ([`Stats`]),
//! the objects viewers and operators see, and the [`Frames`] of one tick, serialised once
//! per campaign and shared by every socket (a [`ByteString`] is a reference-counted UTF-8
//! buffer: handing it to a socket is a refcount bump, not a copy).

use std::collections::BTreeMap;

use bytes::Bytes;
use bytestring::ByteString;
use serde::Serialize;

/// A presence share as seen by readers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeShare {
    pub node: String,
    pub viewers: u64,
    pub updated_at: i64,
}

/// The prefix of an upper unit's entry among a lease's regions (`u:<code>`); region names
/// hold no `:` ([`super::limits::REGION`]).
pub const UNIT_PREFIX: &str = "u:";

/// The regions key of an upper unit's live viewers.
pub fn unit_key(code: &str) -> String {
    format!("{UNIT_PREFIX}{code}")
}

/// A campaign's global numbers, read once per tick.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Sum of the live presence leases (0 once ended).
    pub viewers: u64,
    pub peak_viewers: u64,
    pub peak_at: Option<i64>,
    pub unique_viewers: u64,
    pub interactors: u64,
    /// Every kind of the campaign, 0 included.
    pub interactions: BTreeMap<String, u64>,
    pub registrations: u64,
    pub share_visits: u64,
    pub share_visits_by_channel: BTreeMap<String, u64>,
    /// Live viewers by region, summed over live leases.
    pub regions: BTreeMap<String, u64>,
    pub regions_at_peak: BTreeMap<String, u64>,
    pub nodes: Vec<NodeShare>,
    /// The campaign has ended (another node may have ended it).
    pub ended: bool,
    /// Live viewers of the upper units of the campaign's org (`--unit-peak-depth`) by code
    /// (`""`: unassigned): the leases' `u:` entries, split from `regions` by
    /// [`Stats::split_units`]. Operators read them through the units routes only.
    #[serde(skip)]
    pub units: BTreeMap<String, u64>,
    /// The same at the campaign's peak.
    #[serde(skip)]
    pub units_at_peak: BTreeMap<String, u64>,
}

impl Stats {
    /// `regions` with the upper units' entries put back (`u:<code>`): what a tick records,
    /// so the peak keeps the units at it and each upper unit's own peak is raised.
    pub fn regions_and_units(&self) -> std::borrow::Cow<'_, BTreeMap<String, u64>> {
        if self.units.is_empty() {
            return std::borrow::Cow::Borrowed(&self.regions);
        }
        let mut all = self.regions.clone();
        all.extend(self.units.iter().map(|(c, n)| (unit_key(c), *n)));
        std::borrow::Cow::Owned(all)
    }

    /// Moves the upper units' entries (`u:<code>`, summed and stored like regions) out of
    /// `regions` and `regions_at_peak` into `units` and `units_at_peak`. Every store calls
    /// it on what it read.
    pub fn split_units(&mut self) {
        fn split(from: &mut BTreeMap<String, u64>, to: &mut BTreeMap<String, u64>) {
            if !from.keys().any(|k| k.starts_with(UNIT_PREFIX)) {
                return;
            }
            for (k, n) in std::mem::take(from) {
                match k.strip_prefix(UNIT_PREFIX) {
                    Some(code) => {
                        to.insert(code.to_owned(), n);
                    }
                    None => {
                        from.insert(k, n);
                    }
                }
            }
        }
        split(&mut self.regions, &mut self.units);
        split(&mut self.regions_at_peak, &mut self.units_at_peak);
    }
}

/// The stats object every viewer sees (`GET /stats` and the `stats` frame).
#[derive(Debug, Serialize)]
pub struct ViewerStats<'a> {
    pub campaign: &'a str,
    pub at: i64,
    pub viewers: u64,
    pub peak_viewers: u64,
    pub unique_viewers: u64,
    pub interactors: u64,
    pub interactions: &'a BTreeMap<String, u64>,
    pub registrations: u64,
    pub share_visits: u64,
}

/// What operators see on top of [`ViewerStats`].
#[derive(Debug, Serialize)]
pub struct OperatorStats<'a> {
    #[serde(flatten)]
    pub base: ViewerStats<'a>,
    pub peak_at: Option<i64>,
    pub regions: &'a BTreeMap<String, u64>,
    pub share_visits_by_channel: &'a BTreeMap<String, u64>,
    pub nodes: &'a [NodeShare],
}

impl<'a> ViewerStats<'a> {
    pub fn new(campaign: &'a str, at: i64, s: &'a Stats) -> Self {
        Self {
            campaign,
            at,
            viewers: s.viewers,
            peak_viewers: s.peak_viewers,
            unique_viewers: s.unique_viewers,
            interactors: s.interactors,
            interactions: &s.interactions,
            registrations: s.registrations,
            share_visits: s.share_visits,
        }
    }
}

impl<'a> OperatorStats<'a> {
    pub fn new(campaign: &'a str, at: i64, s: &'a Stats) -> Self {
        Self {
            base: ViewerStats::new(campaign, at, s),
            peak_at: s.peak_at,
            regions: &s.regions,
            share_visits_by_channel: &s.share_visits_by_channel,
            nodes: &s.nodes,
        }
    }
}

/// The frames of one tick: the stats objects (for `welcome`) and the full `stats` messages.
#[derive(Debug)]
pub struct Frames {
    /// When the numbers were read (unix ms): a tick's time.
    pub at: i64,
    /// Numbers without `at` and node timestamps, to skip ticks where nothing changed.
    numbers: Option<Stats>,
    pub viewer_stats: ByteString,
    pub operator_stats: ByteString,
    pub viewer_frame: ByteString,
    pub operator_frame: ByteString,
    /// `viewer_frame` as a complete WebSocket text frame (header and payload), written as
    /// is to every plain-TCP viewer socket.
    pub viewer_wire: Bytes,
    /// `operator_frame` likewise.
    pub operator_wire: Bytes,
}

/// A complete unmasked WebSocket text frame (FIN, opcode 1) carrying `payload`: what a
/// server writes to the socket for one text message (RFC 6455 section 5.2).
pub fn text_frame(payload: &[u8]) -> Bytes {
    let mut f = Vec::with_capacity(payload.len() + 10);
    push_text_frame(&mut f, payload);
    Bytes::from(f)
}

/// Appends [`text_frame`]`(payload)` to `out`.
pub fn push_text_frame(out: &mut Vec<u8>, payload: &[u8]) {
    let len = payload.len();
    out.push(0x81);
    if len < 126 {
        out.push(len as u8);
    } else if len <= usize::from(u16::MAX) {
        out.push(126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(payload);
}

/// `{"type":"stats",` + the object's fields.
fn as_message(object: &str) -> ByteString {
    let mut s = String::with_capacity(object.len() + 16);
    s.push_str(r#"{"type":"stats","#);
    s.push_str(&object[1..]);
    ByteString::from(s)
}

impl Frames {
    /// Before the first tick: zeros, so a welcome always carries a stats object.
    pub fn empty(campaign: &str) -> Self {
        let mut f = Self::build(campaign, crate::util::now_ms(), &Stats::default());
        f.numbers = None;
        f
    }

    pub fn build(campaign: &str, at: i64, stats: &Stats) -> Self {
        Self::of(campaign, at, stats.clone())
    }

    /// [`Self::build`] keeping `stats` rather than a copy (the tick's, with an org's
    /// hundreds of upper units).
    pub fn of(campaign: &str, at: i64, stats: Stats) -> Self {
        // unwrap: serialising plain structs of strings and integers cannot fail.
        let viewer = serde_json::to_string(&ViewerStats::new(campaign, at, &stats)).unwrap();
        let operator = serde_json::to_string(&OperatorStats::new(campaign, at, &stats)).unwrap();
        let mut numbers = stats;
        for n in &mut numbers.nodes {
            n.updated_at = 0;
        }
        let (viewer_frame, operator_frame) = (as_message(&viewer), as_message(&operator));
        Self {
            at,
            numbers: Some(numbers),
            viewer_wire: text_frame(viewer_frame.as_bytes()),
            operator_wire: text_frame(operator_frame.as_bytes()),
            viewer_frame,
            operator_frame,
            viewer_stats: ByteString::from(viewer),
            operator_stats: ByteString::from(operator),
        }
    }

    /// The tick's numbers (`None` for [`Frames::empty`]): the units routes read the upper
    /// units' viewers and the live nodes from here.
    pub fn stats(&self) -> Option<&Stats> {
        self.numbers.as_ref()
    }

    /// False for [`Frames::empty`]: no stats were read yet.
    pub fn has_numbers(&self) -> bool {
        self.numbers.is_some()
    }

    /// True when `other` carries the same numbers (so no push is needed this tick).
    pub fn same_numbers(&self, other: &Frames) -> bool {
        self.numbers.is_some() && self.numbers == other.numbers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_the_object_with_a_type() {
        let mut s = Stats {
            viewers: 3,
            ..Default::default()
        };
        s.interactions.insert("like".into(), 2);
        let f = Frames::build("c1", 7, &s);
        let v: serde_json::Value = serde_json::from_str(&f.viewer_frame).unwrap();
        assert_eq!(v["type"], "stats");
        assert_eq!(v["viewers"], 3);
        assert_eq!(v["interactions"]["like"], 2);
        assert!(v.get("regions").is_none());
        let o: serde_json::Value = serde_json::from_str(&f.operator_frame).unwrap();
        assert_eq!(o["regions"], serde_json::json!({}));
        assert_eq!(o["at"], 7);
        assert!(f.same_numbers(&Frames::build("c1", 9, &s)));
    }

    #[test]
    fn wire_frames_are_what_tungstenite_writes() {
        use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
        use tokio_tungstenite::tungstenite::protocol::frame::Frame;
        for len in [0, 1, 125, 126, 127, 65_535, 65_536, 70_000] {
            let payload = "x".repeat(len);
            let mut theirs = Vec::new();
            Frame::message(payload.clone().into_bytes(), OpCode::Data(Data::Text), true)
                .format(&mut theirs)
                .unwrap();
            assert_eq!(
                &text_frame(payload.as_bytes())[..],
                &theirs[..],
                "payload of {len} bytes"
            );
        }
        let f = Frames::build("c1", 7, &Stats::default());
        assert_eq!(&f.viewer_wire[..], &text_frame(f.viewer_frame.as_bytes())[..]);
        assert_eq!(&f.operator_wire[..], &text_frame(f.operator_frame.as_bytes())[..]);
    }
}
