//! The memory store's webhook queues ([`Queues`]): the same rules as the Redis scripts
//! (`redis/lua/events.lua`, `lease.lua`, `settle.lua`, `retarget.lua`), described in
//! [`crate::store::outbox`].

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::campaign::Campaign;
use crate::store::outbox::*;

/// One queued event in the memory store.
#[derive(Debug)]
struct Event {
    kind: String,
    body: String,
    /// The person a `registration.created` is about (what erasure looks for).
    viewer: Option<String>,
}

/// One receiver's place in a campaign's queue.
#[derive(Debug, Clone, Default)]
struct Cursor {
    /// The last event it passed.
    passed: u64,
    /// The event the delivery fields are about (0: none yet).
    head: u64,
    node: String,
    lease_until: i64,
    attempts: u32,
    first_at: i64,
    next_at: i64,
}

impl Cursor {
    /// When its head may be leased: now unless a lease or a retry wait is on `head`.
    fn due_at(&self, head: u64) -> i64 {
        if self.head == head {
            self.lease_until.max(self.next_at)
        } else {
            0
        }
    }
}

/// A campaign's events in the memory store.
#[derive(Debug, Default)]
struct Queue {
    /// Events queued so far: `<campaign>-<seq>` is the last id.
    seq: u64,
    events: BTreeMap<u64, Event>,
    /// Receiver id → its place.
    cursors: HashMap<String, Cursor>,
    /// When the last `campaign.peak` was queued.
    peak_event_at: Option<i64>,
}

impl Queue {
    /// `receiver`'s next event: the first after its cursor.
    fn head_for(&self, receiver: &str) -> Option<u64> {
        let passed = self.cursors.get(receiver).map_or(0, |c| c.passed);
        self.events.range(passed + 1..).next().map(|(n, _)| *n)
    }

    /// Forgets the cursors of receivers no longer set, and the events every receiver has
    /// passed (all of them when there is no receiver).
    fn trim(&mut self, receivers: &[Receiver]) {
        self.cursors.retain(|id, _| receivers.iter().any(|r| &r.id == id));
        let passed = receivers
            .iter()
            .map(|r| self.cursors.get(&r.id).map_or(0, |c| c.passed))
            .min()
            .unwrap_or(u64::MAX);
        self.events = self.events.split_off(&passed.saturating_add(1));
    }

    /// Past `max` events, drops the oldest `registration.created` (or the oldest event
    /// when there is none); returns how many went.
    fn bound(&mut self, max: usize) -> u64 {
        let mut dropped = 0;
        while self.events.len() > max {
            let oldest = self
                .events
                .iter()
                .find(|(_, e)| e.kind == REGISTRATION)
                .or_else(|| self.events.iter().next())
                .map(|(n, _)| *n);
            let Some(n) = oldest else { break };
            self.events.remove(&n);
            dropped += 1;
        }
        dropped
    }
}

/// The memory store's webhook queues (one per campaign, kept for the life of the process,
/// even after the campaign is deleted, so its last events still go out) and the receivers.
#[derive(Debug)]
pub struct Queues {
    receivers: Option<Vec<Receiver>>,
    /// `--webhook-queue-max`.
    pub max: usize,
    dropped: u64,
    queues: BTreeMap<String, Queue>,
}

impl Default for Queues {
    fn default() -> Self {
        Self {
            receivers: None,
            max: crate::config::defaults::WEBHOOK_QUEUE_MAX,
            dropped: 0,
            queues: BTreeMap::new(),
        }
    }
}

impl Queues {
    fn receiver_list(&self) -> &[Receiver] {
        self.receivers.as_deref().unwrap_or_default()
    }

    fn enabled(&self) -> bool {
        !self.receiver_list().is_empty()
    }

    /// The receivers set (empty when none).
    pub fn receivers(&self) -> Vec<Receiver> {
        self.receiver_list().to_vec()
    }

    /// Replaces the receivers (see [`Outbox::set_receivers`]).
    pub fn set_receivers(&mut self, receivers: &[Receiver]) {
        let old = self.receiver_list().to_vec();
        for q in self.queues.values_mut() {
            for new in receivers.iter().filter(|r| !old.iter().any(|o| o.id == r.id)) {
                let tail = Cursor {
                    passed: q.seq,
                    ..Cursor::default()
                };
                q.cursors.insert(new.id.clone(), tail);
            }
            q.trim(receivers);
        }
        self.receivers = Some(receivers.to_vec());
    }

    /// Sets the receivers if they were never set; true when it did.
    pub fn seed_receivers(&mut self, receivers: &[Receiver]) -> bool {
        if self.receivers.is_some() {
            return false;
        }
        self.set_receivers(receivers);
        true
    }

    /// Queues one event of `campaign` at `now_ms`.
    pub fn push(&mut self, campaign: &str, kind: &str, data: &str, now_ms: i64) {
        self.push_about(campaign, kind, data, None, now_ms);
    }

    /// Queues `registration.created` for `viewer` (data `{"viewer","fields"}`).
    pub fn push_registration(&mut self, campaign: &str, viewer: &str, fields: &str, unit: Option<&str>, now_ms: i64) {
        let data = match unit {
            Some(u) => format!(
                r#"{{"viewer":{},"fields":{fields},"unit":{}}}"#,
                serde_json::Value::from(viewer),
                serde_json::Value::from(u)
            ),
            None => format!(r#"{{"viewer":{},"fields":{fields}}}"#, serde_json::Value::from(viewer)),
        };
        self.push_about(campaign, REGISTRATION, &data, Some(viewer), now_ms);
    }

    fn push_about(&mut self, campaign: &str, kind: &str, data: &str, viewer: Option<&str>, now_ms: i64) {
        if !self.enabled() {
            return;
        }
        let q = self.queues.entry(campaign.to_owned()).or_default();
        q.seq += 1;
        let id = format!("{campaign}-{}", q.seq);
        let event = Event {
            kind: kind.to_owned(),
            body: body(&id, kind, campaign, now_ms, data),
            viewer: viewer.map(str::to_owned),
        };
        q.events.insert(q.seq, event);
        self.dropped += q.bound(self.max);
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
        if !self.enabled() || new <= old {
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

    /// Erasure: `viewer`'s queued `registration.created` of `campaign` go.
    pub fn erase(&mut self, campaign: &str, viewer: &str) {
        if let Some(q) = self.queues.get_mut(campaign) {
            q.events.retain(|_, e| e.viewer.as_deref() != Some(viewer));
        }
    }

    /// A deleted campaign keeps no personal data queued: its `registration.created` go
    /// (its other events still go out).
    pub fn forget_people(&mut self, campaign: &str) {
        if let Some(q) = self.queues.get_mut(campaign) {
            q.events.retain(|_, e| e.viewer.is_none());
        }
    }

    /// Campaigns where some receiver's next event may be due at `now_ms`, at most `limit`.
    pub fn due(&self, now_ms: i64, limit: usize) -> Vec<String> {
        let receivers = self.receiver_list();
        self.queues
            .iter()
            .filter(|(_, q)| {
                receivers.iter().any(|r| {
                    q.head_for(&r.id)
                        .is_some_and(|h| q.cursors.get(&r.id).map_or(0, |c| c.due_at(h)) <= now_ms)
                })
            })
            .map(|(c, _)| c.clone())
            .take(limit)
            .collect()
    }

    /// Leases `receiver`'s next event of `campaign` to `node` until `now_ms + lease`.
    pub fn lease(&mut self, campaign: &str, receiver: &str, node: &str, lease: Duration, now_ms: i64) -> Lease {
        let Some(q) = self.queues.get_mut(campaign) else {
            return Lease::Empty;
        };
        let Some(head) = q.head_for(receiver) else {
            return Lease::Empty;
        };
        let c = q.cursors.entry(receiver.to_owned()).or_default();
        if c.head != head {
            *c = Cursor {
                passed: c.passed,
                head,
                first_at: now_ms,
                ..Cursor::default()
            };
        }
        if c.due_at(head) > now_ms {
            return Lease::NotDue;
        }
        c.node = node.to_owned();
        c.lease_until = now_ms + lease.as_millis() as i64;
        c.attempts += 1;
        let e = &q.events[&head];
        Lease::Leased(LeasedEvent {
            campaign: campaign.to_owned(),
            id: format!("{campaign}-{head}"),
            kind: e.kind.clone(),
            body: e.body.clone(),
            attempts: c.attempts,
            first_at_ms: c.first_at,
        })
    }

    /// Settles a delivery. A settle for an event that is no longer the receiver's head
    /// (passed meanwhile by a node that found the lease expired) does nothing, nor does a
    /// retry from a node whose lease was taken over.
    pub fn settle(&mut self, to: &Delivery<'_>, outcome: Settle, now_ms: i64) {
        let receivers = self.receiver_list().to_vec();
        let (Some(q), Some(seq)) = (self.queues.get_mut(to.campaign), id_seq(to.id)) else {
            return;
        };
        let Some(c) = q.cursors.get_mut(to.receiver).filter(|c| c.head == seq) else {
            return;
        };
        match outcome {
            Settle::Retry { after } => {
                if c.node == to.node {
                    c.node.clear();
                    c.lease_until = 0;
                    c.next_at = now_ms + after.as_millis() as i64;
                }
            }
            Settle::Delivered | Settle::Dropped => {
                *c = Cursor {
                    passed: c.passed.max(seq),
                    ..Cursor::default()
                };
                q.trim(&receivers);
            }
        }
    }

    /// Events queued and not yet passed by every receiver, and those the bound dropped
    /// since the last call.
    pub fn backlog(&mut self) -> Backlog {
        Backlog {
            pending: self.queues.values().map(|q| q.events.len() as u64).sum(),
            dropped: std::mem::take(&mut self.dropped),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(30);

    fn receiver(id: &str) -> Receiver {
        Receiver {
            id: id.into(),
            url: format!("https://{id}.example/hook?token=x"),
            types: None,
            secret: "0123456789abcdef".into(),
        }
    }

    fn leased(o: &mut Queues, r: &str, node: &str, now: i64) -> LeasedEvent {
        match o.lease("c", r, node, LEASE, now) {
            Lease::Leased(e) => e,
            other => panic!("{r}: {other:?}"),
        }
    }

    fn pass(o: &mut Queues, r: &str, e: &LeasedEvent, node: &str, now: i64) {
        let to = Delivery {
            campaign: "c",
            receiver: r,
            id: &e.id,
            node,
        };
        o.settle(&to, Settle::Delivered, now);
    }

    #[test]
    fn bodies_carry_their_id_first() {
        let b = body("launch-7", ENDED, "launch", 5, "null");
        assert_eq!(
            b,
            r#"{"id":"launch-7","type":"campaign.ended","campaign":"launch","at":5,"data":null}"#
        );
        assert_eq!(body_id(&b), Some("launch-7"));
        assert_eq!(id_seq("launch-x-7"), Some(7));
    }

    #[test]
    fn nothing_is_queued_without_a_receiver() {
        let mut o = Queues::default();
        o.push("c", MILESTONE, "{}", 0);
        assert_eq!(o.backlog().pending, 0);
    }

    #[test]
    fn a_failing_receiver_holds_back_no_other() {
        let mut o = Queues::default();
        o.set_receivers(&[receiver("dead"), receiver("live")]);
        for v in ["v1", "v2", "v3"] {
            o.push_registration("c", v, "{}", None, 0);
        }
        let e = leased(&mut o, "dead", "a", 0);
        let retry = Delivery {
            campaign: "c",
            receiver: "dead",
            id: &e.id,
            node: "a",
        };
        o.settle(&retry, Settle::Retry { after: LEASE }, 1);
        for n in 1..=3 {
            let e = leased(&mut o, "live", "a", 2);
            assert_eq!(e.id, format!("c-{n}"));
            pass(&mut o, "live", &e, "a", 2);
        }
        assert_eq!(o.lease("c", "live", "a", LEASE, 3), Lease::Empty);
        assert_eq!(o.lease("c", "dead", "a", LEASE, 3), Lease::NotDue);
        assert_eq!(o.backlog().pending, 3, "the dead one has not passed them");
        // Its retry comes: the same event, the second attempt.
        let e = leased(&mut o, "dead", "b", 30_001);
        assert_eq!((e.id.as_str(), e.attempts, e.first_at_ms), ("c-1", 2, 0));
        pass(&mut o, "dead", &e, "b", 30_001);
        assert_eq!(o.backlog().pending, 2, "c-1 passed by both leaves the queue");
        // A late settle of the old lease changes nothing.
        pass(&mut o, "dead", &e, "a", 30_002);
        assert_eq!(leased(&mut o, "dead", "b", 30_003).id, "c-2");
    }

    #[test]
    fn a_new_receiver_starts_at_the_tail_and_a_removed_one_holds_nothing() {
        let mut o = Queues::default();
        o.set_receivers(&[receiver("old")]);
        o.push("c", MILESTONE, "{}", 0);
        o.set_receivers(&[receiver("old"), receiver("new")]);
        o.push("c", MILESTONE, "{}", 0);
        assert_eq!(leased(&mut o, "new", "a", 0).id, "c-2");
        o.set_receivers(&[receiver("new")]);
        assert_eq!(o.backlog().pending, 1, "only c-2 is still wanted");
        o.set_receivers(&[]);
        assert_eq!(o.backlog().pending, 0);
        assert!(o.due(i64::MAX, 10).is_empty());
    }

    #[test]
    fn the_bound_drops_the_oldest_registrations_first_and_erasure_removes_a_person() {
        let mut o = Queues {
            max: 3,
            ..Queues::default()
        };
        o.set_receivers(&[receiver("r")]);
        o.push("c", MILESTONE, "{}", 0);
        o.push_registration("c", "v1", r#"{"phone":"1"}"#, None, 0);
        o.push_registration("c", "v2", r#"{"phone":"2"}"#, None, 0);
        o.push_registration("c", "v3", r#"{"phone":"3"}"#, None, 0);
        assert_eq!(o.backlog(), Backlog { pending: 3, dropped: 1 });
        assert_eq!(o.backlog().dropped, 0, "counted once");
        o.erase("c", "v3");
        let bodies: Vec<&str> = o.queues["c"].events.values().map(|e| e.body.as_str()).collect();
        assert_eq!(bodies.len(), 2);
        assert!(bodies[0].contains("campaign.milestone") && bodies[1].contains(r#""phone":"2""#));
        o.forget_people("c");
        assert_eq!(o.backlog().pending, 1);
    }

    #[test]
    fn receivers_are_named_without_their_path() {
        assert_eq!(receiver("rcv_1").label(), "rcv_1 https://rcv_1.example");
    }
}
