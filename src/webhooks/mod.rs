//! Webhook delivery: every node reads the deployment's receivers from the store each poll,
//! looks for due events in the shared queues (`store::outbox`), and for each campaign and
//! receiver leases that receiver's next event, POSTs it signed with that receiver's secret
//! (as [`sign`] describes), and settles the lease: delivered, retried later with
//! exponential backoff and jitter, or given up after [`Timing::give_up`]. Receivers are
//! independent: each has its own cursor, lease, backoff and tasks, so one that fails or
//! hangs never holds back another. A node that dies holding a lease delays that event by
//! the lease only: the next node to look delivers it, with the same `id`. Logs name a
//! receiver by its id, scheme and host ([`Receiver::label`]), never its full URL.
//! docs/webhooks.md is the receiver's side of this.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use serde_json::{json, Value};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::campaign::Campaign;
use crate::metrics::Metrics;
use crate::store::outbox::{self, Delivery, Lease, LeasedEvent, Receiver, Settle};
use crate::store::{Campaigns, Outbox, Reads, Stats, Store};

pub mod receivers;
pub mod sign;

pub use sign::{signature, Signer, SIGNATURE_HEADER};

/// Most campaigns a node delivers for at once, per receiver: a slow receiver holds one
/// task per campaign for up to the timeout, and its other campaigns wait for the next look
/// (other receivers have their own).
const MAX_IN_FLIGHT: usize = 16;
/// How often the backlog is counted (a sweep over every campaign's queue), at most: the
/// pending gauge and the events the bound dropped.
const PENDING_EVERY: Duration = Duration::from_secs(15);

/// The retry schedule and the pace of the delivery loop.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// The first retry comes after half to all of this; each next one doubles.
    pub retry_base: Duration,
    /// Longest wait between tries.
    pub retry_cap: Duration,
    /// An event still failing this long after its first try is dropped.
    pub give_up: Duration,
    /// How long a receiver may take to answer.
    pub timeout: Duration,
    /// How often this node looks for due events.
    pub poll: Duration,
}

impl Timing {
    /// The contract's schedule: first retry within 10 s, at most 10 minutes apart, for 24 h.
    pub fn new(retry_base: Duration, timeout: Duration, poll: Duration) -> Self {
        Self {
            retry_base,
            retry_cap: Duration::from_secs(600),
            give_up: Duration::from_secs(24 * 3600),
            timeout,
            poll,
        }
    }

    /// The wait after the `attempt`-th failed try (1-based): `base·2^(attempt-1)`, capped,
    /// then jittered down to half at random so receivers coming back are not hit by every
    /// campaign's retry in the same second.
    pub fn backoff(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let full = self
            .retry_base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.retry_cap);
        let half = full / 2;
        half + half.mul_f64(rng.random::<f64>())
    }
}

/// A campaign's report: what `GET .../report` answers and `campaign.ended` carries.
pub fn report(c: &Campaign, s: &Stats, now_ms: i64) -> Value {
    let end = c.ended_at.unwrap_or(now_ms);
    json!({
        "campaign": c,
        "duration_s": (end - c.created_at).max(0) / 1000,
        "peak_viewers": s.peak_viewers,
        "peak_at": s.peak_at,
        "unique_viewers": s.unique_viewers,
        "interactors": s.interactors,
        "interactions": s.interactions,
        "registrations": s.registrations,
        "share_visits": s.share_visits,
        "share_visits_by_channel": s.share_visits_by_channel,
        "regions_at_peak": s.regions_at_peak,
    })
}

/// A receiver as the deliverer uses it: its signer built once.
struct Target {
    receiver: Receiver,
    signer: Signer,
    /// How logs name it (id, scheme, host).
    label: String,
}

/// One node's deliverer.
pub struct Webhooks {
    /// The queues it delivers from, and the receivers.
    pub outbox: Arc<dyn Outbox>,
    /// The campaign and its stats, for the report `campaign.ended` carries.
    pub campaigns: Arc<dyn Campaigns>,
    pub reads: Arc<dyn Reads>,
    pub metrics: Arc<Metrics>,
    /// This node's id: whose lease it is.
    pub node: String,
    pub timing: Timing,
    client: reqwest::Client,
    /// `--webhook-url`s with `--webhook-secret`, until they seed the store (or found it
    /// set already).
    seed: Mutex<Option<Vec<Receiver>>>,
    /// The receivers as last read.
    targets: Mutex<Vec<Arc<Target>>>,
    /// `(campaign, receiver id)` pairs this node is delivering for right now.
    busy: Mutex<HashSet<(String, String)>>,
}

/// A poisoned lock only means a task panicked; keep using the data.
fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Webhooks {
    /// Takes the node's store and keeps the seams delivery uses; `seed` is what the flags
    /// name (empty: none).
    pub fn new(
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        node: String,
        seed: Vec<Receiver>,
        timing: Timing,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(timing.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("livetally-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            outbox: store.clone(),
            campaigns: store.clone(),
            reads: store,
            metrics,
            node,
            timing,
            client,
            seed: Mutex::new(Some(seed).filter(|s| !s.is_empty())),
            targets: Mutex::default(),
            busy: Mutex::default(),
        })
    }

    /// The lease of one attempt: the timeout, and as much again for the store calls.
    fn lease(&self) -> Duration {
        self.timing.timeout * 2
    }

    /// Looks for due events every [`Timing::poll`] until `shutdown`; deliveries under way
    /// are abandoned then (their leases expire and another node delivers them).
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tasks = JoinSet::new();
        let mut poll = tokio::time::interval(self.timing.poll);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut backlog = tokio::time::interval(PENDING_EVERY.min(self.timing.poll * 20));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = backlog.tick() => self.count().await,
                _ = poll.tick() => {
                    self.refresh().await;
                    self.look(&mut tasks).await;
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        tasks.shutdown().await;
    }

    /// The pending gauge, and the events the queue bound dropped as `result="dropped"`.
    async fn count(&self) {
        match self.outbox.backlog().await {
            Ok(b) => {
                self.metrics.webhook_pending.set(b.pending as i64);
                if b.dropped > 0 {
                    self.metrics
                        .webhook_deliveries
                        .with_label_values(&["dropped"])
                        .inc_by(b.dropped);
                    tracing::warn!(
                        dropped = b.dropped,
                        "webhook queues full: the oldest registration events dropped"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "webhook queues not counted"),
        }
    }

    /// Seeds the store from the flags (once it answers), then reads the receivers: a
    /// change made on any node is used here from this poll on.
    async fn refresh(&self) {
        let seed = locked(&self.seed).clone();
        if let Some(seed) = seed {
            match self.outbox.seed_receivers(&seed).await {
                Ok(seeded) => {
                    if seeded {
                        tracing::info!(receivers = seed.len(), "webhook receivers set from --webhook-url");
                    }
                    *locked(&self.seed) = None;
                }
                Err(e) => tracing::warn!(error = %e, "cannot seed the webhook receivers yet"),
            }
        }
        let receivers = match self.outbox.receivers().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the webhook receivers");
                return;
            }
        };
        let mut targets = locked(&self.targets);
        let unchanged =
            targets.len() == receivers.len() && targets.iter().zip(&receivers).all(|(t, r)| &t.receiver == r);
        if !unchanged {
            *targets = receivers
                .into_iter()
                .map(|receiver| {
                    Arc::new(Target {
                        signer: Signer::new(&receiver.secret),
                        label: receiver.label(),
                        receiver,
                    })
                })
                .collect();
        }
    }

    async fn look(self: &Arc<Self>, tasks: &mut JoinSet<()>) {
        let targets = locked(&self.targets).clone();
        if targets.is_empty() {
            return;
        }
        let due = match self
            .outbox
            .due_outboxes(crate::util::now_ms(), MAX_IN_FLIGHT * targets.len())
            .await
        {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for webhook events");
                return;
            }
        };
        for campaign in due {
            for target in &targets {
                if !self.claim(&campaign, &target.receiver.id) {
                    continue;
                }
                let (me, campaign, target) = (self.clone(), campaign.clone(), target.clone());
                tasks.spawn(async move {
                    me.drain(&campaign, &target).await;
                    locked(&me.busy).remove(&(campaign, target.receiver.id.clone()));
                });
            }
        }
    }

    /// Marks `(campaign, receiver)` busy unless it is, or the receiver has
    /// [`MAX_IN_FLIGHT`] campaigns under way here already.
    fn claim(&self, campaign: &str, receiver: &str) -> bool {
        let mut busy = locked(&self.busy);
        if busy.iter().filter(|(_, r)| r == receiver).count() >= MAX_IN_FLIGHT {
            return false;
        }
        busy.insert((campaign.to_owned(), receiver.to_owned()))
    }

    /// Delivers a campaign's events to one receiver in order until one must wait (or it
    /// has none left).
    async fn drain(&self, campaign: &str, target: &Target) {
        let receiver = target.receiver.id.as_str();
        loop {
            let event = match self
                .outbox
                .lease_event(campaign, receiver, &self.node, self.lease())
                .await
            {
                Ok(Lease::Leased(e)) => e,
                Ok(Lease::Empty | Lease::NotDue) => return,
                Err(e) => {
                    tracing::warn!(campaign, receiver = %target.label, error = %e, "cannot lease a webhook event");
                    return;
                }
            };
            let outcome = self.attempt(target, &event).await;
            let must_wait = matches!(outcome, Settle::Retry { .. });
            let to = Delivery {
                campaign,
                receiver,
                id: &event.id,
                node: &self.node,
            };
            if let Err(e) = self.outbox.settle_event(&to, outcome).await {
                // The lease expires and the event is tried again: at least once.
                tracing::warn!(campaign, receiver = %target.label, id = %event.id, error = %e, "cannot settle a webhook event");
                return;
            }
            if must_wait {
                return;
            }
        }
    }

    /// One try of one event to one receiver (none when it does not take the type).
    async fn attempt(&self, target: &Target, event: &LeasedEvent) -> Settle {
        if !target.receiver.wants(&event.kind) {
            return Settle::Delivered;
        }
        let body = self.body(event).await;
        let why = match self.post(target, &event.id, &body).await {
            Ok(()) => {
                self.metrics.webhook_deliveries.with_label_values(&["delivered"]).inc();
                return Settle::Delivered;
            }
            Err(why) => why,
        };
        self.metrics.webhook_deliveries.with_label_values(&["failed"]).inc();
        tracing::warn!(campaign = %event.campaign, id = %event.id, receiver = %target.label, attempt = event.attempts, why, "webhook not delivered");
        let tried_for = crate::util::now_ms() - event.first_at_ms;
        if tried_for >= self.timing.give_up.as_millis() as i64 {
            self.metrics.webhook_deliveries.with_label_values(&["dropped"]).inc();
            tracing::error!(campaign = %event.campaign, id = %event.id, receiver = %target.label, attempts = event.attempts, "webhook event dropped after the retry period");
            return Settle::Dropped;
        }
        Settle::Retry {
            after: self.timing.backoff(event.attempts, &mut rand::rng()),
        }
    }

    /// The body to send: as queued, but `campaign.ended` gets the report (the counts of an
    /// ended campaign no longer change, so every try carries the same one).
    async fn body(&self, event: &LeasedEvent) -> String {
        if event.kind != outbox::ENDED {
            return event.body.clone();
        }
        let Ok(mut v) = serde_json::from_str::<Value>(&event.body) else {
            return event.body.clone();
        };
        if let Ok(Some(c)) = self.campaigns.get_campaign(&event.campaign).await {
            if let Ok(s) = self.reads.stats(&c.id, &c.kinds, crate::util::now_ms()).await {
                v["data"] = report(&c, &s, crate::util::now_ms());
            }
        }
        v.to_string()
    }

    async fn post(&self, target: &Target, id: &str, body: &str) -> Result<(), String> {
        let t = crate::util::now_ms() / 1000;
        let mut request = self
            .client
            .post(&target.receiver.url)
            .header("content-type", "application/json");
        for (name, value) in target.signer.headers(id, t, body) {
            request = request.header(name, value);
        }
        let response = request.body(body.to_owned()).send().await.map_err(why_not)?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("answered {status}"))
        }
    }
}

/// Why a request failed, without its URL (reqwest's message names it, query and all):
/// the error and its causes.
fn why_not(e: reqwest::Error) -> String {
    if e.is_timeout() {
        return "timeout".to_owned();
    }
    let e = e.without_url();
    let mut why = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        why.push_str(": ");
        why.push_str(&c.to_string());
        cause = c.source();
    }
    why
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_start_within_ten_seconds_and_stay_within_ten_minutes() {
        let t = Timing::new(Duration::from_secs(8), Duration::from_secs(5), Duration::from_secs(1));
        let mut rng = rand::rng();
        for _ in 0..100 {
            let first = t.backoff(1, &mut rng);
            assert!(
                first >= Duration::from_secs(4) && first <= Duration::from_secs(8),
                "{first:?}"
            );
            assert!(t.backoff(7, &mut rng) >= Duration::from_secs(256));
            assert!(t.backoff(30, &mut rng) <= Duration::from_secs(600));
            assert!(t.backoff(u32::MAX, &mut rng) >= Duration::from_secs(300));
        }
        // Enough tries to cover 24 h: after the ramp-up, one at least every 10 minutes.
        let ramp: Duration = (1..=7).map(|a| t.retry_base * (1 << (a - 1))).sum();
        assert!(ramp < Duration::from_secs(3600));
    }
}
