//! Webhook queues in Redis (see `store/outbox.rs` for the rules, `keys.rs` for the keys).
//! Events are queued inside the campaign's own scripts; this file leases and settles
//! them, keeps the `due` index (in its own slot, so it is written after the script that
//! queued: a node that dies in between leaves a queue the sweep in [`RedisStore::pending`]
//! finds again), and edits milestones.

use std::collections::BTreeSet;
use std::time::Duration;

use super::conn::unavailable;
use super::keys::{self, CampaignKeys};
use super::RedisStore;
use crate::campaign::{Campaign, Milestones};
use crate::store::outbox::{Lease, LeasedEvent, Settle};
use crate::store::{StoreError, StoreResult};

/// Replies of `lease.lua`: `{0}`, `{1, due}` or `{2, body, attempts, first, done, until}`.
type LeaseReply = (
    u8,
    Option<String>,
    Option<u32>,
    Option<i64>,
    Option<String>,
    Option<i64>,
);

impl RedisStore {
    /// The campaign's queue keys for a script that may queue events, or none when this
    /// node has no webhooks (the scripts queue nothing then).
    pub(super) fn outbox_keys(&self, k: CampaignKeys<'_>) -> Vec<String> {
        if self.events {
            vec![k.outbox(), k.outbox_state()]
        } else {
            vec![]
        }
    }

    /// After a script queued events: the campaign goes in the `due` index (kept where it
    /// is when already there, e.g. waiting for a retry of an earlier event). A failure
    /// here loses nothing: the sweep finds the queue.
    pub(super) async fn mark_due(&self, campaign: &str, queued: u64) {
        if queued == 0 {
            return;
        }
        let added = self
            .conn
            .call(|mut c| async move {
                redis::cmd("ZADD")
                    .arg(keys::DUE)
                    .arg("NX")
                    .arg(0)
                    .arg(campaign)
                    .query_async::<()>(&mut c)
                    .await
            })
            .await;
        if let Err(e) = added {
            tracing::warn!(campaign, error = %e, "webhook queue not indexed yet; the sweep will find it");
        }
    }

    /// Sets when to look at `campaign`'s queue again (-1: it is empty, so it leaves the
    /// index, unless an event was queued meanwhile).
    async fn reschedule(&self, campaign: &str, at_ms: i64) -> StoreResult<()> {
        if at_ms >= 0 {
            return self
                .conn
                .call(|mut c| async move {
                    redis::cmd("ZADD")
                        .arg(keys::DUE)
                        .arg(at_ms)
                        .arg(campaign)
                        .query_async::<()>(&mut c)
                        .await
                })
                .await;
        }
        // Remove first, then look: an event queued before the look is seen by it, one
        // queued after adds the campaign again itself.
        self.conn
            .call(|mut c| async move {
                redis::cmd("ZREM")
                    .arg(keys::DUE)
                    .arg(campaign)
                    .query_async::<()>(&mut c)
                    .await
            })
            .await?;
        let outbox = CampaignKeys(campaign).outbox();
        let left: u64 = self
            .conn
            .call(|mut c| async move { redis::cmd("LLEN").arg(&outbox).query_async(&mut c).await })
            .await?;
        self.mark_due(campaign, left).await;
        Ok(())
    }

    pub(super) async fn due(&self, now_ms: i64, limit: usize) -> StoreResult<Vec<String>> {
        self.conn
            .call(|mut c| async move {
                redis::cmd("ZRANGEBYSCORE")
                    .arg(keys::DUE)
                    .arg("-inf")
                    .arg(now_ms)
                    .arg("LIMIT")
                    .arg(0)
                    .arg(limit)
                    .query_async(&mut c)
                    .await
            })
            .await
    }

    pub(super) async fn lease(&self, campaign: &str, node: &str, lease: Duration) -> StoreResult<Lease> {
        let k = CampaignKeys(campaign);
        let lease_ms = lease.as_millis().max(1) as u64;
        let reply: LeaseReply = self
            .scripts
            .lease
            .run(&self.conn, &[k.outbox(), k.outbox_state()], (node, lease_ms))
            .await?;
        match reply {
            (0, ..) => {
                self.reschedule(campaign, -1).await?;
                Ok(Lease::Empty)
            }
            (1, Some(due), ..) => {
                self.reschedule(campaign, due.parse().map_err(unavailable)?).await?;
                Ok(Lease::NotDue)
            }
            (2, Some(body), Some(attempts), Some(first_at_ms), Some(done), Some(until)) => {
                let event = leased(campaign, body, attempts, first_at_ms, &done)?;
                // Other nodes look again when the lease would have expired.
                self.reschedule(campaign, until).await?;
                Ok(Lease::Leased(event))
            }
            _ => Err(StoreError::Unavailable("lease.lua: unexpected reply".into())),
        }
    }

    pub(super) async fn settle(&self, campaign: &str, id: &str, node: &str, outcome: Settle) -> StoreResult<()> {
        let k = CampaignKeys(campaign);
        let (what, after, delivered) = match &outcome {
            Settle::Delivered | Settle::Dropped => ("done", 0, String::from("[]")),
            Settle::Retry { after, delivered } => (
                "retry",
                after.as_millis() as u64,
                serde_json::to_string(delivered).map_err(unavailable)?,
            ),
        };
        let next: i64 = self
            .scripts
            .settle
            .run(
                &self.conn,
                &[k.outbox(), k.outbox_state()],
                (id, node, what, after, delivered),
            )
            .await?;
        self.reschedule(campaign, next).await
    }

    /// Events queued over every campaign (those in the index and those in `due`, which
    /// keeps deleted campaigns' last events). On the way, a queue missing from `due` (its
    /// node died between queuing and indexing) is put back.
    pub(super) async fn pending(&self) -> StoreResult<u64> {
        // Two slots ({campaigns} and {webhooks}): two calls, as Cluster requires.
        let zrange = |key: &'static str| {
            self.conn.call(move |mut c| async move {
                redis::cmd("ZRANGE")
                    .arg(key)
                    .arg(0)
                    .arg(-1)
                    .query_async::<Vec<String>>(&mut c)
                    .await
            })
        };
        let ids = zrange(keys::INDEX).await?;
        let due = zrange(keys::DUE).await?;
        let indexed: BTreeSet<&String> = due.iter().collect();
        let all: BTreeSet<&String> = ids.iter().chain(&due).collect();
        let mut total = 0;
        for id in all {
            let outbox = CampaignKeys(id).outbox();
            let n: u64 = self
                .conn
                .call(|mut c| async move { redis::cmd("LLEN").arg(&outbox).query_async(&mut c).await })
                .await?;
            if n > 0 && !indexed.contains(id) {
                self.mark_due(id, n).await;
            }
            total += n;
        }
        Ok(total)
    }

    /// Compare and set on the stored campaign JSON, so a concurrent change is not lost.
    pub(super) async fn replace_milestones(&self, id: &str, milestones: &Milestones) -> StoreResult<Campaign> {
        let value = serde_json::to_value(milestones).map_err(unavailable)?;
        self.amend(id, "milestones", value, None).await
    }
}

fn leased(campaign: &str, body: String, attempts: u32, first_at_ms: i64, done: &str) -> StoreResult<LeasedEvent> {
    #[derive(serde::Deserialize)]
    struct Head {
        id: String,
        #[serde(rename = "type")]
        kind: String,
    }
    let head: Head =
        serde_json::from_str(&body).map_err(|_| StoreError::Unavailable("corrupt webhook event".into()))?;
    Ok(LeasedEvent {
        campaign: campaign.to_owned(),
        id: head.id,
        kind: head.kind,
        body,
        attempts,
        first_at_ms,
        delivered: serde_json::from_str(done).map_err(unavailable)?,
    })
}
