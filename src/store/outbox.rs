//! Webhook events as the store keeps them: each one is decided and queued in the same
//! atomic step that changes what it reports (a count, the peak, the state, a
//! registration), so it gets exactly one `id` however many nodes see the change, and it
//! cannot be lost between deciding and queuing. Each campaign has its own queue, delivered
//! head first: event n+1 of a campaign waits until n is delivered or dropped. Any node may
//! lease the head of a queue; a lease that is not settled in time expires, and the next
//! node to look delivers it again with the same `id` (at least once).
//!
//! The Redis layout is in `redis/keys.rs` (`outbox`, `outbox-state`, `lt:{webhooks}:due`)
//! and the logic in `redis/lua/events.lua`, `lease.lua` and `settle.lua`; [`Queues`] is the
//! memory store's copy of the same rules. The webhook deliverer reads the queues through the
//! [`Outbox`] seam.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use async_trait::async_trait;

use super::StoreResult;
use crate::campaign::Campaign;

/// `campaign.ended`: data is the campaign's report, filled in when it is delivered.
pub const ENDED: &str = "campaign.ended";
/// `campaign.milestone`: data `{"metric","threshold","value"}`.
pub const MILESTONE: &str = "campaign.milestone";
/// `campaign.peak`: data `{"peak_viewers","peak_at"}`, at most every [`PEAK_EVERY_MS`].
pub const PEAK: &str = "campaign.peak";
/// `registration.created`: data `{"viewer","fields"}`.
pub const REGISTRATION: &str = "registration.created";

/// A rising peak is reported at most once a minute per campaign, so a launch whose
/// audience grows every second does not flood the receiver.
pub const PEAK_EVERY_MS: i64 = 60_000;

/// The webhook queues, as the deliverer sees them: events are queued by the other seams'
/// writes (a count, the peak, the end, a registration), never through this one.
#[async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// Webhook queues (see the module doc) whose head may be due at `now_ms`, at most `limit`.
    async fn due_outboxes(&self, now_ms: i64, limit: usize) -> StoreResult<Vec<String>>;

    /// Leases the head of a campaign's webhook queue to `node` for `lease`.
    async fn lease_event(&self, campaign: &str, node: &str, lease: Duration) -> StoreResult<Lease>;

    /// Ends `node`'s lease of event `id`: delivered or dropped (it leaves the queue), or
    /// retried later.
    async fn settle_event(&self, campaign: &str, id: &str, node: &str, outcome: Settle) -> StoreResult<()>;

    /// Webhook events queued and not yet delivered or dropped, over every campaign.
    async fn pending_events(&self) -> StoreResult<u64>;
}

/// The head of a campaign's queue, leased to one node until `lease_until_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeasedEvent {
    pub campaign: String,
    pub id: String,
    /// The event type (`campaign.ended`, ...).
    pub kind: String,
    /// The JSON body as queued: `{"id","type","campaign","at","data"}` (`data` is `null`
    /// for `campaign.ended` until the deliverer fills in the report).
    pub body: String,
    /// Attempts so far, this one included.
    pub attempts: u32,
    /// When the first attempt was leased (unix ms, store clock).
    pub first_at_ms: i64,
    /// Receivers (URLs) that already answered 2xx for this event: not sent to again.
    pub delivered: Vec<String>,
}

/// What [`Outbox::lease_event`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lease {
    /// Nothing queued for the campaign.
    Empty,
    /// The head is leased by another node or waits for its next try.
    NotDue,
    /// The head is this node's to deliver.
    Leased(LeasedEvent),
}

/// How a leased delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settle {
    /// Every receiver answered 2xx: the event leaves the queue.
    Delivered,
    /// Try again after `after`; `delivered` lists the receivers that need it no more.
    Retry { after: Duration, delivered: Vec<String> },
    /// Given up (retried for the whole retry period): the event leaves the queue.
    Dropped,
}

/// The queued body of an event. `data` is JSON already.
pub fn body(id: &str, kind: &str, campaign: &str, at_ms: i64, data: &str) -> String {
    let s = |v: &str| serde_json::Value::from(v).to_string();
    format!(
        r#"{{"id":{},"type":{},"campaign":{},"at":{at_ms},"data":{data}}}"#,
        s(id),
        s(kind),
        s(campaign)
    )
}

/// The `id` field of a queued body (ids are `<campaign>-<n>`: no quotes or escapes).
pub fn body_id(body: &str) -> Option<&str> {
    body.strip_prefix(r#"{"id":""#)?.split('"').next()
}

/// A campaign's events in the memory store.
#[derive(Debug, Default)]
struct Queue {
    /// Events queued so far: `<campaign>-<seq>` is the next id.
    seq: u64,
    events: VecDeque<(String, String, String)>,
    /// The head's delivery: `(node, lease until, attempts, first at, next try at, delivered)`.
    head: Option<Delivery>,
    /// When the last `campaign.peak` was queued.
    peak_event_at: Option<i64>,
}

#[derive(Debug, Clone)]
struct Delivery {
    node: String,
    lease_until: i64,
    attempts: u32,
    first_at: i64,
    next_at: i64,
    delivered: Vec<String>,
}

/// The memory store's webhook queues (one per campaign, kept for the life of the process,
/// even after the campaign is deleted, so its last events still go out). Off unless
/// webhooks are configured: nothing is queued then.
#[derive(Debug, Default)]
pub struct Queues {
    pub enabled: bool,
    queues: BTreeMap<String, Queue>,
}

impl Queues {
    /// Queues one event of `campaign` at `now_ms`.
    pub fn push(&mut self, campaign: &str, kind: &str, data: &str, now_ms: i64) {
        if !self.enabled {
            return;
        }
        let q = self.queues.entry(campaign.to_owned()).or_default();
        q.seq += 1;
        let id = format!("{campaign}-{}", q.seq);
        let body = body(&id, kind, campaign, now_ms, data);
        q.events.push_back((id, kind.to_owned(), body));
    }

    /// A counted metric of `c` moved from `old` to `new`: thresholds in `(old, new]` are
    /// reached now, for the first time.
    pub fn reached(&mut self, c: &Campaign, metric: &str, old: u64, new: u64, now_ms: i64) {
        let Some(thresholds) = c.milestones.get(metric) else {
            return;
        };
        for t in thresholds.iter().filter(|t| old < **t && **t <= new) {
            let data = format!(
                r#"{{"metric":{},"threshold":{t},"value":{new}}}"#,
                serde_json::Value::from(metric)
            );
            self.push(&c.id, MILESTONE, &data, now_ms);
        }
    }

    /// The peak of `c` rose from `old` to `new` (at `at_ms`): the `viewers` and
    /// `peak_viewers` milestones in between, and `campaign.peak` unless one went out less
    /// than [`PEAK_EVERY_MS`] ago.
    pub fn peak(&mut self, c: &Campaign, old: u64, new: u64, at_ms: i64, now_ms: i64) {
        if !self.enabled || new <= old {
            return;
        }
        self.reached(c, "viewers", old, new, now_ms);
        self.reached(c, "peak_viewers", old, new, now_ms);
        let q = self.queues.entry(c.id.clone()).or_default();
        if q.peak_event_at.is_some_and(|t| now_ms - t < PEAK_EVERY_MS) {
            return;
        }
        q.peak_event_at = Some(now_ms);
        self.push(
            &c.id,
            PEAK,
            &format!(r#"{{"peak_viewers":{new},"peak_at":{at_ms}}}"#),
            now_ms,
        );
    }

    /// Campaigns whose head may be due at `now_ms`, at most `limit`.
    pub fn due(&self, now_ms: i64, limit: usize) -> Vec<String> {
        self.queues
            .iter()
            .filter(|(_, q)| {
                !q.events.is_empty() && q.head.as_ref().is_none_or(|d| d.lease_until.max(d.next_at) <= now_ms)
            })
            .map(|(c, _)| c.clone())
            .take(limit)
            .collect()
    }

    /// Leases the head of `campaign`'s queue to `node` until `now_ms + lease`.
    pub fn lease(&mut self, campaign: &str, node: &str, lease: Duration, now_ms: i64) -> Lease {
        let Some(q) = self.queues.get_mut(campaign) else {
            return Lease::Empty;
        };
        let Some((id, kind, body)) = q.events.front() else {
            return Lease::Empty;
        };
        let d = q.head.get_or_insert_with(|| Delivery {
            node: String::new(),
            lease_until: 0,
            attempts: 0,
            first_at: now_ms,
            next_at: 0,
            delivered: vec![],
        });
        if d.lease_until.max(d.next_at) > now_ms {
            return Lease::NotDue;
        }
        d.node = node.to_owned();
        d.lease_until = now_ms + lease.as_millis() as i64;
        d.attempts += 1;
        Lease::Leased(LeasedEvent {
            campaign: campaign.to_owned(),
            id: id.clone(),
            kind: kind.clone(),
            body: body.clone(),
            attempts: d.attempts,
            first_at_ms: d.first_at,
            delivered: d.delivered.clone(),
        })
    }

    /// Settles `node`'s delivery of event `id`. A settle for an event that is no longer
    /// the head (delivered meanwhile by a node that found the lease expired) does nothing.
    pub fn settle(&mut self, campaign: &str, id: &str, node: &str, outcome: Settle, now_ms: i64) {
        let Some(q) = self.queues.get_mut(campaign) else { return };
        if q.events.front().is_none_or(|(head, _, _)| head != id) {
            return;
        }
        match outcome {
            Settle::Delivered | Settle::Dropped => {
                q.events.pop_front();
                q.head = None;
            }
            Settle::Retry { after, delivered } => {
                if let Some(d) = q.head.as_mut().filter(|d| d.node == node) {
                    d.node.clear();
                    d.lease_until = 0;
                    d.next_at = now_ms + after.as_millis() as i64;
                    d.delivered = delivered;
                }
            }
        }
    }

    /// Events queued and not yet delivered or dropped, over every campaign.
    pub fn pending(&self) -> u64 {
        self.queues.values().map(|q| q.events.len() as u64).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_carry_their_id_first() {
        let b = body("launch-7", ENDED, "launch", 5, "null");
        assert_eq!(
            b,
            r#"{"id":"launch-7","type":"campaign.ended","campaign":"launch","at":5,"data":null}"#
        );
        assert_eq!(body_id(&b), Some("launch-7"));
    }

    #[test]
    fn the_head_is_leased_once_and_waits_for_its_retry() {
        let mut o = Queues {
            enabled: true,
            ..Queues::default()
        };
        o.push("c", REGISTRATION, "{}", 0);
        o.push("c", REGISTRATION, "{}", 0);
        let lease = Duration::from_secs(30);
        let Lease::Leased(e) = o.lease("c", "a", lease, 0) else {
            panic!()
        };
        assert_eq!((e.id.as_str(), e.attempts), ("c-1", 1));
        assert_eq!(o.lease("c", "b", lease, 1), Lease::NotDue);
        // The lease expires: another node gets the same event.
        let Lease::Leased(e) = o.lease("c", "b", lease, 30_000) else {
            panic!()
        };
        assert_eq!((e.id.as_str(), e.attempts), ("c-1", 2));
        let retry = Settle::Retry {
            after: Duration::from_secs(5),
            delivered: vec!["u".into()],
        };
        o.settle("c", "c-1", "b", retry, 30_000);
        assert!(o.due(34_999, 10).is_empty());
        let Lease::Leased(e) = o.lease("c", "a", lease, 35_000) else {
            panic!()
        };
        assert_eq!(e.delivered, ["u"]);
        o.settle("c", "c-1", "a", Settle::Delivered, 35_001);
        // A late settle of the old lease does not pop the next event.
        o.settle("c", "c-1", "b", Settle::Delivered, 35_002);
        let Lease::Leased(e) = o.lease("c", "a", lease, 35_003) else {
            panic!()
        };
        assert_eq!((e.id.as_str(), e.attempts), ("c-2", 1));
        assert_eq!(o.pending(), 1);
    }
}
