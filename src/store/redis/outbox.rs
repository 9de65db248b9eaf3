//! Webhook queues in Redis (see `store/outbox.rs` for the rules, `keys.rs` for the keys).
//! Events are queued inside the campaign's own scripts; this file keeps the receivers
//! setting, leases and settles per receiver, keeps the `due` index (in its own slot, so it
//! is written after the script that queued: a node that dies in between leaves a queue the
//! sweep in [`RedisStore::backlog`] finds again), and edits milestones.

use std::collections::BTreeSet;
use std::time::Duration;

use super::conn::unavailable;
use super::keys::{self, CampaignKeys};
use super::script::NO_ARGS;
use super::RedisStore;
use crate::campaign::{Campaign, Milestones};
use crate::store::outbox::{id_seq, Backlog, Delivery, Lease, LeasedEvent, Receiver, Settle};
use crate::store::{StoreError, StoreResult};

/// Replies of `lease.lua`: `{kind, next due, body, attempts, first}`.
type LeaseReply = (u8, i64, Option<String>, Option<u32>, Option<i64>);

impl RedisStore {
    /// The campaign's queue keys for a script that may queue events, or none while the
    /// deployment has no receiver (the scripts queue nothing then).
    pub(super) fn outbox_keys(&self, k: CampaignKeys<'_>) -> Vec<String> {
        if self.listed().is_empty() {
            vec![]
        } else {
            vec![k.events(), k.event_regs(), k.outbox_state()]
        }
    }

    /// `--webhook-queue-max`, as the queuing scripts take it.
    pub(super) fn queue_max_arg(&self) -> String {
        self.queue_max.to_string()
    }

    /// The receiver ids as last read or written here.
    fn listed(&self) -> Vec<String> {
        self.receiver_ids.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn remember(&self, receivers: &[Receiver]) {
        *self.receiver_ids.lock().unwrap_or_else(|e| e.into_inner()) = receivers.iter().map(|r| r.id.clone()).collect();
    }

    pub(super) async fn read_receivers(&self) -> StoreResult<Vec<Receiver>> {
        let json: Option<String> = self
            .conn
            .call(|mut c| async move { redis::cmd("GET").arg(keys::RECEIVERS).query_async(&mut c).await })
            .await?;
        let receivers: Vec<Receiver> = match json {
            Some(j) => {
                serde_json::from_str(&j).map_err(|_| StoreError::Unavailable("corrupt webhook receivers".into()))?
            }
            None => vec![],
        };
        self.remember(&receivers);
        Ok(receivers)
    }

    /// Moves every queue to the new receivers (`retarget.lua`), then stores them: a node
    /// that reads the new setting finds the new receivers' cursors at the tail already.
    pub(super) async fn write_receivers(&self, receivers: &[Receiver]) -> StoreResult<()> {
        let old: BTreeSet<String> = self.read_receivers().await?.into_iter().map(|r| r.id).collect();
        let new: Vec<&str> = receivers
            .iter()
            .map(|r| r.id.as_str())
            .filter(|id| !old.contains(*id))
            .collect();
        let all: Vec<&str> = receivers.iter().map(|r| r.id.as_str()).collect();
        let (new, all) = (new.join(" "), all.join(" "));
        let campaigns: Vec<String> = self
            .conn
            .call(|mut c| async move {
                redis::cmd("ZRANGE")
                    .arg(keys::DUE)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        for campaign in &campaigns {
            let k = CampaignKeys(campaign);
            let next: i64 = self
                .scripts
                .retarget
                .run(
                    &self.conn,
                    &[k.events(), k.event_regs(), k.cursors(), k.outbox_state()],
                    (&new, &all),
                )
                .await?;
            self.reschedule(campaign, next).await?;
        }
        let json = serde_json::to_string(receivers).map_err(unavailable)?;
        self.conn
            .call(|mut c| async move {
                redis::cmd("SET")
                    .arg(keys::RECEIVERS)
                    .arg(&json)
                    .query_async::<()>(&mut c)
                    .await
            })
            .await?;
        self.remember(receivers);
        Ok(())
    }

    /// `SET NX`: only a store that never had the setting takes the seed.
    pub(super) async fn seed(&self, receivers: &[Receiver]) -> StoreResult<bool> {
        let json = serde_json::to_string(receivers).map_err(unavailable)?;
        let set: Option<String> = self
            .conn
            .call(|mut c| async move {
                redis::cmd("SET")
                    .arg(keys::RECEIVERS)
                    .arg(&json)
                    .arg("NX")
                    .query_async(&mut c)
                    .await
            })
            .await?;
        self.read_receivers().await?;
        Ok(set.is_some())
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

    /// Sets when to look at `campaign`'s queue again (-1: no receiver has an event left,
    /// so it leaves the index, unless an event was queued meanwhile).
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
        let events = CampaignKeys(campaign).events();
        let left: u64 = self
            .conn
            .call(|mut c| async move { redis::cmd("ZCARD").arg(&events).query_async(&mut c).await })
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

    pub(super) async fn lease(
        &self,
        campaign: &str,
        receiver: &str,
        node: &str,
        lease: Duration,
    ) -> StoreResult<Lease> {
        let k = CampaignKeys(campaign);
        let lease_ms = lease.as_millis().max(1) as u64;
        let all = self.listed().join(" ");
        let reply: LeaseReply = self
            .scripts
            .lease
            .run(&self.conn, &[k.events(), k.cursors()], (receiver, node, lease_ms, all))
            .await?;
        // Other nodes look again when some receiver's next event is due.
        self.reschedule(campaign, reply.1).await?;
        match reply {
            (0, ..) => Ok(Lease::Empty),
            (1, ..) => Ok(Lease::NotDue),
            (2, _, Some(body), Some(attempts), Some(first_at_ms)) => {
                Ok(Lease::Leased(leased(campaign, body, attempts, first_at_ms)?))
            }
            _ => Err(StoreError::Unavailable("lease.lua: unexpected reply".into())),
        }
    }

    pub(super) async fn settle(&self, to: &Delivery<'_>, outcome: Settle) -> StoreResult<()> {
        let k = CampaignKeys(to.campaign);
        let seq = id_seq(to.id).ok_or_else(|| StoreError::Unavailable("not an event id".into()))?;
        let (what, after) = match &outcome {
            Settle::Delivered | Settle::Dropped => ("done", 0),
            Settle::Retry { after } => ("retry", after.as_millis() as u64),
        };
        let all = self.listed().join(" ");
        let next: i64 = self
            .scripts
            .settle
            .run(
                &self.conn,
                &[k.events(), k.event_regs(), k.cursors()],
                (to.receiver, seq, to.node, what, after, all),
            )
            .await?;
        self.reschedule(to.campaign, next).await
    }

    /// Campaigns that may have queued events (those in the index and those in `due`,
    /// which keeps deleted campaigns' last events), and those in `due`.
    async fn queue_owners(&self) -> StoreResult<(BTreeSet<String>, BTreeSet<String>)> {
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
        let due: BTreeSet<String> = zrange(keys::DUE).await?.into_iter().collect();
        let mut all = due.clone();
        all.extend(zrange(keys::INDEX).await?);
        Ok((all, due))
    }

    /// Events queued over every campaign (those in the index and those in `due`, which
    /// keeps deleted campaigns' last events), and those the bound dropped since the last
    /// sweep. On the way, a queue missing from `due` (its node died between queuing and
    /// indexing) is put back.
    pub(super) async fn backlog(&self) -> StoreResult<Backlog> {
        let (all, due) = self.queue_owners().await?;
        let mut total = Backlog::default();
        for id in &all {
            let k = CampaignKeys(id);
            let (queued, legacy, dropped): (u64, u64, u64) = self
                .scripts
                .count
                .run(&self.conn, &[k.events(), k.outbox_state(), k.outbox()], NO_ARGS)
                .await?;
            if queued > 0 && !due.contains(id) {
                self.mark_due(id, queued).await;
            }
            total.pending += queued + legacy;
            total.dropped += dropped;
        }
        Ok(total)
    }

    /// Erasure in the queues: `viewer`'s queued `registration.created` (every one of the
    /// campaign's when `viewer` is empty) go.
    pub(super) async fn forget(&self, campaign: &str, viewer: &str) -> StoreResult<()> {
        let k = CampaignKeys(campaign);
        let _: i64 = self
            .scripts
            .forget
            .run(&self.conn, &[k.events(), k.event_regs(), k.outbox()], viewer)
            .await?;
        Ok(())
    }

    /// `livetally upgrade-store`: every campaign's v1.1 `outbox` list moves into the
    /// schema 4 queue (see `moveout.lua`). Returns the events moved.
    pub(super) async fn move_outboxes(&self) -> StoreResult<u64> {
        let (all, _) = self.queue_owners().await?;
        let mut moved = 0;
        for id in &all {
            let k = CampaignKeys(id);
            let n: u64 = self
                .scripts
                .moveout
                .run(
                    &self.conn,
                    &[k.outbox(), k.events(), k.event_regs(), k.outbox_state()],
                    NO_ARGS,
                )
                .await?;
            self.mark_due(id, n).await;
            moved += n;
        }
        Ok(moved)
    }

    /// Compare and set on the stored campaign JSON, so a concurrent change is not lost.
    pub(super) async fn replace_milestones(&self, id: &str, milestones: &Milestones) -> StoreResult<Campaign> {
        let value = serde_json::to_value(milestones).map_err(unavailable)?;
        self.amend(id, "milestones", value, None).await
    }
}

fn leased(campaign: &str, body: String, attempts: u32, first_at_ms: i64) -> StoreResult<LeasedEvent> {
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
    })
}
