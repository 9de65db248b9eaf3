//! The campaign: what an operator creates, and the validation of its fields. The rules live
//! here, beside the type, so the HTTP layer and the store agree on what a valid campaign is.

use std::collections::BTreeMap;
pub mod signup;

use serde::{Deserialize, Serialize};

use crate::protocol::limits::{CAMPAIGN_ID, CLIENT_ID, KIND, REGION, SHARE_CHANNEL};
pub use signup::RegistrationField;

/// Interaction kinds a campaign accepts when the operator names none.
pub const DEFAULT_KINDS: [&str; 4] = ["like", "cheer", "comment", "share"];
/// Kinds per campaign are bounded so metric label sets and per-socket counters stay small.
pub const MAX_KINDS: usize = 16;
/// Regions per campaign are bounded for the same reason (plus `unknown` and `other`).
pub const MAX_REGIONS: usize = 64;
/// Declared share channels per campaign: the report's channel table stays small, and the
/// store's flush step checks a visit's channel against at most this many names.
pub const MAX_SHARE_CHANNELS: usize = 64;
/// Where visits on a channel the campaign does not count by name go.
pub const OTHER_CHANNEL: &str = "other";

/// Who may open a viewer socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Anyone with the link.
    #[default]
    Public,
    /// Only viewers holding a join token minted by an operator.
    Token,
}

/// Whether a campaign still counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Live,
    Ended,
}

/// A campaign as the API shows it. Times are unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Campaign {
    pub id: String,
    pub title: String,
    pub stream_url: Option<String>,
    pub kinds: Vec<String>,
    pub regions: Vec<String>,
    pub access: Access,
    pub state: State,
    pub created_at: i64,
    pub ended_at: Option<i64>,
    /// Webhook milestones: metric (`viewers`, `peak_viewers` or a kind) → thresholds.
    #[serde(default)]
    pub milestones: Milestones,
    /// What a registration must carry (`signup`); absent in campaigns stored before.
    #[serde(default)]
    pub registration_fields: Vec<RegistrationField>,
    /// Declared share channels: when not empty, visits count under these names and every
    /// other `via` under `other`, so made-up names cannot take the real ones' places.
    /// Empty: the first `--max-share-channels` distinct names count (v1.1).
    #[serde(default)]
    pub share_channels: Vec<String>,
    /// The organisation this campaign counts by (`"org":"ID"` on create), absent without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// The org's version when the campaign was created: kept, so a later upload of the org
    /// never moves a running campaign's units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_version: Option<u64>,
}

impl Campaign {
    /// Index of `kind` in this campaign's kinds: sockets count by index, not by string.
    pub fn kind_index(&self, kind: &str) -> Option<usize> {
        self.kinds.iter().position(|k| k == kind)
    }

    /// The region a viewer is counted under: absent → `unknown`, outside the list → `other`.
    pub fn region_of(&self, region: Option<&str>) -> String {
        match region {
            None | Some("") => "unknown".to_owned(),
            Some(r) if self.regions.iter().any(|x| x == r) => r.to_owned(),
            Some(_) => "other".to_owned(),
        }
    }

    pub fn is_live(&self) -> bool {
        self.state == State::Live
    }

    /// The name a visit on `via` counts under here: the channel when it is a channel name
    /// and, if the campaign declares its channels, one of them; else `other`. (Without a
    /// declaration the store's first-come bound still applies at the flush.)
    pub fn share_channel<'a>(&self, via: Option<&'a str>) -> &'a str {
        let channel = share_channel(via);
        if self.share_channels.is_empty() || self.share_channels.iter().any(|c| c == channel) {
            channel
        } else {
            OTHER_CHANNEL
        }
    }
}

/// The body of `POST /api/v1/campaigns`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCampaign {
    pub id: Option<String>,
    pub title: Option<String>,
    pub stream_url: Option<String>,
    pub kinds: Option<Vec<String>>,
    pub regions: Option<Vec<String>>,
    pub access: Option<Access>,
    pub milestones: Option<Milestones>,
    pub registration_fields: Option<Vec<RegistrationField>>,
    pub share_channels: Option<Vec<String>>,
    /// An org id; the create route resolves its newest version.
    pub org: Option<String>,
}

/// A field that failed validation, with a message meant for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

fn field_error(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: message.into(),
    }
}

impl NewCampaign {
    /// Checks every field and builds a live campaign created at `now_ms`.
    pub fn validate(self, now_ms: i64) -> Result<Campaign, FieldError> {
        let id = self.id.ok_or_else(|| field_error("id", "id is required"))?;
        if !is_campaign_id(&id) {
            return Err(field_error(
                "id",
                format!("id must match {CAMPAIGN_ID} (lowercase letters, digits, dashes)"),
            ));
        }
        let title = self.title.ok_or_else(|| field_error("title", "title is required"))?;
        let title = title.trim().to_owned();
        let len = title.chars().count();
        if len == 0 || len > 200 {
            return Err(field_error("title", "title must be 1 to 200 characters"));
        }
        if let Some(url) = &self.stream_url {
            let ok = (url.starts_with("https://") || url.starts_with("http://"))
                && url.len() <= 2048
                && !url.chars().any(|c| c.is_whitespace() || c.is_control());
            if !ok {
                return Err(field_error(
                    "stream_url",
                    "stream_url must be an http(s) URL of at most 2048 characters",
                ));
            }
        }
        let kinds = match self.kinds {
            None => DEFAULT_KINDS.iter().map(|k| k.to_string()).collect(),
            Some(kinds) => {
                if kinds.is_empty() || kinds.len() > MAX_KINDS {
                    return Err(field_error("kinds", format!("kinds must list 1 to {MAX_KINDS} kinds")));
                }
                for (i, k) in kinds.iter().enumerate() {
                    if !is_kind(k) {
                        return Err(field_error("kinds", format!("kind {k:?} must match {KIND}")));
                    }
                    if kinds[..i].contains(k) {
                        return Err(field_error("kinds", format!("kind {k:?} is listed twice")));
                    }
                }
                kinds
            }
        };
        let regions = self.regions.unwrap_or_default();
        if regions.len() > MAX_REGIONS {
            return Err(field_error("regions", format!("at most {MAX_REGIONS} regions")));
        }
        for (i, r) in regions.iter().enumerate() {
            if !is_region(r) || r == "unknown" || r == "other" {
                return Err(field_error(
                    "regions",
                    format!("region {r:?} must match {REGION} and not be unknown/other"),
                ));
            }
            if regions[..i].contains(r) {
                return Err(field_error("regions", format!("region {r:?} is listed twice")));
            }
        }
        if let Some(org) = &self.org {
            if !CAMPAIGN_ID.matches(org) {
                return Err(field_error("org", format!("org must match {CAMPAIGN_ID}")));
            }
        }
        let milestones = validate_milestones(self.milestones.unwrap_or_default(), &kinds)?;
        let registration_fields = self.registration_fields.unwrap_or_default();
        signup::check_declarations(&registration_fields)?;
        let share_channels = validate_share_channels(self.share_channels.unwrap_or_default())?;
        Ok(Campaign {
            id,
            title,
            stream_url: self.stream_url,
            kinds,
            regions,
            access: self.access.unwrap_or_default(),
            state: State::Live,
            created_at: now_ms,
            ended_at: None,
            milestones,
            registration_fields,
            share_channels,
            org: self.org,
            org_version: None,
        })
    }
}

/// Checks a campaign's declared share channels (field `share_channels`): at most
/// [`MAX_SHARE_CHANNELS`] names matching [`SHARE_CHANNEL`], none twice, not `other` (where
/// the rest goes). An empty list withdraws the declaration.
pub fn validate_share_channels(channels: Vec<String>) -> Result<Vec<String>, FieldError> {
    if channels.len() > MAX_SHARE_CHANNELS {
        return Err(field_error(
            "share_channels",
            format!("at most {MAX_SHARE_CHANNELS} share channels"),
        ));
    }
    for (i, c) in channels.iter().enumerate() {
        if !SHARE_CHANNEL.matches(c) || c == OTHER_CHANNEL {
            return Err(field_error(
                "share_channels",
                format!("share channel {c:?} must match {SHARE_CHANNEL} and not be other"),
            ));
        }
        if channels[..i].contains(c) {
            return Err(field_error(
                "share_channels",
                format!("share channel {c:?} is listed twice"),
            ));
        }
    }
    Ok(channels)
}

/// Metric → ascending thresholds at which a `campaign.milestone` webhook fires.
pub type Milestones = BTreeMap<String, Vec<u64>>;
/// Thresholds per campaign, over all metrics: each one is checked in the store step that
/// moves its metric, so the bound keeps that step short.
pub const MAX_MILESTONES: usize = 32;
/// Thresholds stay below 2^53 so they are exact in JSON and in Redis' Lua numbers.
pub const MAX_THRESHOLD: u64 = (1 << 53) - 1;

/// Checks `milestones` against the campaign's `kinds` (field `milestones`), and returns
/// each metric's thresholds sorted and without repeats.
pub fn validate_milestones(milestones: Milestones, kinds: &[String]) -> Result<Milestones, FieldError> {
    let mut total = 0;
    let mut out = Milestones::new();
    for (metric, mut thresholds) in milestones {
        if metric != "viewers" && metric != "peak_viewers" && !kinds.contains(&metric) {
            return Err(field_error(
                "milestones",
                format!("milestone metric {metric:?} must be viewers, peak_viewers or one of the campaign's kinds"),
            ));
        }
        if thresholds.iter().any(|t| *t == 0 || *t > MAX_THRESHOLD) {
            return Err(field_error(
                "milestones",
                format!("{metric} thresholds must be integers from 1 to 2^53-1"),
            ));
        }
        thresholds.sort_unstable();
        thresholds.dedup();
        total += thresholds.len();
        if total > MAX_MILESTONES {
            return Err(field_error(
                "milestones",
                format!("at most {MAX_MILESTONES} thresholds per campaign"),
            ));
        }
        if !thresholds.is_empty() {
            out.insert(metric, thresholds);
        }
    }
    Ok(out)
}

// The id patterns are the protocol's ([`crate::protocol::limits`]); these name the checks
// the rest of the server calls.

/// A campaign id: [`CAMPAIGN_ID`].
pub fn is_campaign_id(s: &str) -> bool {
    CAMPAIGN_ID.matches(s)
}

/// An interaction kind: [`KIND`].
pub fn is_kind(s: &str) -> bool {
    KIND.matches(s)
}

/// A region: [`REGION`].
pub fn is_region(s: &str) -> bool {
    REGION.matches(s)
}

/// A viewer or session id: [`CLIENT_ID`].
pub fn is_client_id(s: &str) -> bool {
    CLIENT_ID.matches(s)
}

/// The share channel a visit counts under: `via` when it matches [`SHARE_CHANNEL`], else
/// `other`.
pub fn share_channel(via: Option<&str>) -> &str {
    match via {
        Some(v) if SHARE_CHANNEL.matches(v) => v,
        _ => OTHER_CHANNEL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(id: &str, title: &str) -> NewCampaign {
        NewCampaign {
            id: Some(id.into()),
            title: Some(title.into()),
            stream_url: None,
            kinds: None,
            regions: None,
            access: None,
            milestones: None,
            registration_fields: None,
            share_channels: None,
            org: None,
        }
    }

    #[test]
    fn ids_follow_the_contract_pattern() {
        assert!(is_campaign_id("launch-2026"));
        assert!(is_campaign_id("0"));
        assert!(!is_campaign_id("-x"));
        assert!(!is_campaign_id("Upper"));
        assert!(!is_campaign_id(&"a".repeat(64)));
        assert!(is_campaign_id(&"a".repeat(63)));
    }

    #[test]
    fn validation_names_the_field() {
        assert_eq!(new("ok", "").validate(0).unwrap_err().field, "title");
        assert_eq!(new("Bad", "t").validate(0).unwrap_err().field, "id");
        let mut n = new("ok", "t");
        n.kinds = Some(vec!["like".into(), "like".into()]);
        assert_eq!(n.validate(0).unwrap_err().field, "kinds");
        let c = new("ok", " Launch ").validate(5).unwrap();
        assert_eq!(c.title, "Launch");
        assert_eq!(c.kinds, DEFAULT_KINDS);
        assert_eq!(c.created_at, 5);
    }

    #[test]
    fn milestones_name_viewers_peak_or_a_kind() {
        let mut n = new("ok", "t");
        n.milestones = Some(Milestones::from([
            ("like".into(), vec![100, 10, 100]),
            ("viewers".into(), vec![1]),
        ]));
        let c = n.validate(0).unwrap();
        assert_eq!(c.milestones["like"], [10, 100]);
        for bad in [
            ("nope", vec![1]),
            ("like", vec![0]),
            ("like", vec![1 << 53]),
            ("like", (1..=33).collect()),
        ] {
            let mut n = new("ok", "t");
            n.milestones = Some(Milestones::from([(bad.0.to_owned(), bad.1)]));
            assert_eq!(n.validate(0).unwrap_err().field, "milestones");
        }
    }

    #[test]
    fn regions_and_channels_fold_unknown_values() {
        let mut n = new("ok", "t");
        n.regions = Some(vec!["CN-BJ".into()]);
        let c = n.validate(0).unwrap();
        assert_eq!(c.region_of(None), "unknown");
        assert_eq!(c.region_of(Some("CN-BJ")), "CN-BJ");
        assert_eq!(c.region_of(Some("US")), "other");
        assert_eq!(share_channel(Some("wechat")), "wechat");
        assert_eq!(share_channel(Some("WeChat")), "other");
        assert_eq!(share_channel(None), "other");
    }

    #[test]
    fn declared_share_channels_take_every_other_via_to_other() {
        let mut n = new("ok", "t");
        n.share_channels = Some(vec!["wechat".into(), "weibo".into()]);
        let c = n.validate(0).unwrap();
        assert_eq!(c.share_channel(Some("wechat")), "wechat");
        assert_eq!(c.share_channel(Some("made-up-1")), "other");
        assert_eq!(c.share_channel(Some("WeChat")), "other");
        let undeclared = new("ok", "t").validate(0).unwrap();
        assert_eq!(undeclared.share_channel(Some("made-up-1")), "made-up-1");
        for bad in [
            vec!["other".to_owned()],
            vec!["WeChat".to_owned()],
            vec!["a".to_owned(), "a".to_owned()],
            (0..=MAX_SHARE_CHANNELS).map(|i| format!("c{i}")).collect(),
        ] {
            let mut n = new("ok", "t");
            n.share_channels = Some(bad);
            assert_eq!(n.validate(0).unwrap_err().field, "share_channels");
        }
    }
}
