//! Webhook delivery: every node looks for due events in the store's shared queues
//! (`store::outbox`), leases the head of a campaign's queue, POSTs it signed to every
//! `--webhook-url` (signed as [`sign`] describes), and settles the lease: delivered, retried later with exponential
//! backoff and jitter, or dropped after [`Timing::give_up`]. A node that dies holding a
//! lease delays its event by the lease only: the next node to look delivers it, with the
//! same `id`. docs/webhooks.md is the receiver's side of this.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use serde_json::{json, Value};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::campaign::Campaign;
use crate::metrics::Metrics;
use crate::store::outbox::{self, Lease, LeasedEvent, Settle};
use crate::store::{Campaigns, Outbox, Reads, Stats, Store};

pub mod sign;

pub use sign::{signature, Signer, SIGNATURE_HEADER};

/// Most campaigns a node delivers for at once: a slow receiver holds one task per
/// campaign for up to the timeout, and the rest wait for the next look.
const MAX_IN_FLIGHT: usize = 16;
/// How often the pending gauge is refreshed (a sweep over every campaign's queue length).
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

/// One node's deliverer.
pub struct Webhooks {
    /// The queues it delivers from.
    pub outbox: Arc<dyn Outbox>,
    /// The campaign and its stats, for the report `campaign.ended` carries.
    pub campaigns: Arc<dyn Campaigns>,
    pub reads: Arc<dyn Reads>,
    pub metrics: Arc<Metrics>,
    /// This node's id: whose lease it is.
    pub node: String,
    pub urls: Vec<String>,
    signer: Signer,
    pub timing: Timing,
    client: reqwest::Client,
    /// Campaigns this node is delivering for right now.
    busy: Mutex<HashSet<String>>,
}

impl Webhooks {
    /// Takes the node's store and keeps the three seams delivery uses.
    pub fn new(
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        node: String,
        urls: Vec<String>,
        secret: String,
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
            urls,
            signer: Signer::new(&secret),
            timing,
            client,
            busy: Mutex::default(),
        })
    }

    /// The lease: long enough to try every receiver once at the full timeout.
    fn lease(&self) -> Duration {
        self.timing.timeout * (self.urls.len() as u32 + 1)
    }

    /// Looks for due events every [`Timing::poll`] until `shutdown`; deliveries under way
    /// are abandoned then (their leases expire and another node delivers them).
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tasks = JoinSet::new();
        let mut poll = tokio::time::interval(self.timing.poll);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pending = tokio::time::interval(PENDING_EVERY);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = pending.tick() => match self.outbox.pending_events().await {
                    Ok(n) => self.metrics.webhook_pending.set(n as i64),
                    Err(e) => tracing::warn!(error = %e, "webhook queues not counted"),
                },
                _ = poll.tick() => self.look(&mut tasks).await,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        tasks.shutdown().await;
    }

    async fn look(self: &Arc<Self>, tasks: &mut JoinSet<()>) {
        let room = MAX_IN_FLIGHT.saturating_sub(tasks.len());
        if room == 0 {
            return;
        }
        let due = match self.outbox.due_outboxes(crate::util::now_ms(), MAX_IN_FLIGHT).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for webhook events");
                return;
            }
        };
        for campaign in due.into_iter().take(room) {
            // unwrap-free: a poisoned set only means a task panicked; keep using it.
            if !self
                .busy
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(campaign.clone())
            {
                continue;
            }
            let me = self.clone();
            tasks.spawn(async move {
                me.drain(&campaign).await;
                me.busy.lock().unwrap_or_else(|e| e.into_inner()).remove(&campaign);
            });
        }
    }

    /// Delivers a campaign's events in order until one must wait (or the queue is empty).
    async fn drain(&self, campaign: &str) {
        loop {
            let event = match self.outbox.lease_event(campaign, &self.node, self.lease()).await {
                Ok(Lease::Leased(e)) => e,
                Ok(Lease::Empty | Lease::NotDue) => return,
                Err(e) => {
                    tracing::warn!(campaign, error = %e, "cannot lease a webhook event");
                    return;
                }
            };
            let outcome = self.attempt(&event).await;
            let delivered = outcome == Settle::Delivered || outcome == Settle::Dropped;
            if let Err(e) = self.outbox.settle_event(campaign, &event.id, &self.node, outcome).await {
                // The lease expires and the event is tried again: at least once.
                tracing::warn!(campaign, id = %event.id, error = %e, "cannot settle a webhook event");
                return;
            }
            if !delivered {
                return;
            }
        }
    }

    /// One try of one event to every receiver that still needs it.
    async fn attempt(&self, event: &LeasedEvent) -> Settle {
        let body = self.body(event).await;
        let mut delivered = event.delivered.clone();
        for url in &self.urls {
            if delivered.contains(url) {
                continue;
            }
            match self.post(url, &event.id, &body).await {
                Ok(()) => {
                    self.metrics.webhook_deliveries.with_label_values(&["delivered"]).inc();
                    delivered.push(url.clone());
                }
                Err(why) => {
                    self.metrics.webhook_deliveries.with_label_values(&["failed"]).inc();
                    tracing::warn!(campaign = %event.campaign, id = %event.id, url, attempt = event.attempts, why, "webhook not delivered");
                }
            }
        }
        if self.urls.iter().all(|u| delivered.contains(u)) {
            return Settle::Delivered;
        }
        let tried_for = crate::util::now_ms() - event.first_at_ms;
        if tried_for >= self.timing.give_up.as_millis() as i64 {
            self.metrics.webhook_deliveries.with_label_values(&["dropped"]).inc();
            tracing::error!(campaign = %event.campaign, id = %event.id, attempts = event.attempts, "webhook event dropped after the retry period");
            return Settle::Dropped;
        }
        Settle::Retry {
            after: self.timing.backoff(event.attempts, &mut rand::rng()),
            delivered,
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

    async fn post(&self, url: &str, id: &str, body: &str) -> Result<(), String> {
        let t = crate::util::now_ms() / 1000;
        let mut request = self.client.post(url).header("content-type", "application/json");
        for (name, value) in self.signer.headers(id, t, body) {
            request = request.header(name, value);
        }
        let response = request.body(body.to_owned()).send().await.map_err(|e| {
            if e.is_timeout() {
                "timeout".to_owned()
            } else {
                e.to_string()
            }
        })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("answered {status}"))
        }
    }
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
