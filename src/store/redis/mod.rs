//! The shared store: standalone Redis (through an auto-reconnecting `ConnectionManager`)
//! or Redis Cluster (through `cluster_async::ClusterConnection`). It behaves exactly like
//! [`super::memory::MemoryStore`]; both pass `tests/store_contract.rs`.
//!
//! Where each piece of data lives, and why it is laid out so, is in `keys.rs`; the Lua
//! scripts are in `lua/`, one file each.
//!
//! # Traffic
//!
//! `apply` is one `EVALSHA` per batch. Inside it run at most
//! `23 + 2·regions + 2·kinds + channels + ⌈channels/1000⌉ + 5·⌈(sessions + touched)/1000⌉ + 3·⌈left/1000⌉ +
//! ⌈new_viewers/1000⌉` Redis commands (two more per 1,000 sessions while v1 nodes may still
//! run): the count grows with distinct kinds and channels and, in chunks of 1,000 fields
//! per command, with the sessions that sent something, are refreshed or closed, never with
//! the number of interactions, and never with the number of nodes: the presence totals are
//! kept incrementally (`lua/presence.lua`), so a flush touches its own lease only
//! (`tests/store_contract.rs` checks both against `INFO commandstats`). A campaign with an
//! org adds one `RPUSH` (the batch's unit delta), `2·⌈qualified/1000⌉` and one `PFADD` per
//! upper unit with a new viewer; the unit totals are folded elsewhere (`rollup.rs`).

mod codec;
mod conn;
mod keys;
mod leases;
mod lifecycle;
mod orgs;
mod outbox;
mod reads;
mod rollup;
mod schema;
mod script;
mod secrets;
mod signups;
mod units;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::outbox::{Backlog, Delivery, Lease, Receiver, Settle};
use super::{
    Applied, Batch, Campaigns, Counting, Health, Orgs, Outbox, Owner, Reads, Registration, SeriesMetric, Signups,
    Stats, StoreError, StoreResult, DEFAULT_SESSION_TTL,
};
use crate::campaign::{Campaign, Milestones};
use crate::org::{OrgSummary, Tree};
use codec::{campaign_from_meta, opt_i64};
use conn::{unavailable, Conn};
use keys::{partition, CampaignKeys};
use leases::LeaseWrite;
use schema::Schema;
use script::Scripts;

pub use conn::CALL_TIMEOUT;
pub use schema::VERSION as SCHEMA_VERSION;

/// How long `livetally upgrade-store` waits between marking the upgrade finished and
/// expiring the v1 keys: long enough for every running node to have looked again (twice
/// the 5 s between looks) and for a script started before to have ended.
pub const FINISH_WAIT: Duration = Duration::from_secs(2 * schema::RECHECK.as_secs() + CALL_TIMEOUT.as_secs());

/// Redis-backed [`super::Store`] (every seam) for standalone Redis or Redis Cluster.
pub struct RedisStore {
    conn: Conn,
    scripts: Scripts,
    /// The session TTL this node proposes; a campaign keeps the first one written to it.
    session_ttl: Duration,
    /// The store's schema version: while it is 1, v1 nodes may still be running and the
    /// scripts keep the v1 session keys true as well (see `schema.rs`).
    schema: Schema,
    /// The deployment's receiver ids as last read or written by this node: the scripts
    /// queue events while there is one, and their cursors decide what leaves a queue
    /// (`outbox.rs`). The deliverer reads the setting every poll, which refreshes this.
    receiver_ids: std::sync::Mutex<Vec<String>>,
    /// `--webhook-queue-max`.
    queue_max: usize,
    /// The org trees this node read last (`orgs.rs`).
    trees: orgs::TreeCache,
    /// What this node last wrote of its leases (`leases.rs`).
    leases: leases::Leases,
    /// The regions at each campaign's peak as last read (`reads.rs`).
    peaks: reads::PeakRegions,
}

impl RedisStore {
    /// Connects to a standalone Redis (`redis://` or `rediss://`, password in the URL).
    /// Fails with `Unavailable` when it cannot connect within [`CALL_TIMEOUT`]; once
    /// connected, lost connections are re-established in the background with exponential
    /// backoff.
    /// Refuses a store written by a newer schema version ([`StoreError::NewerSchema`]).
    pub async fn connect_standalone(url: &str) -> StoreResult<RedisStore> {
        Self::new(Conn::standalone(url).await?).await
    }

    /// Connects to a Redis Cluster through any of its nodes (`redis://` or `rediss://`).
    /// The cluster connection follows slot moves and reconnects to nodes on its own.
    /// Refuses a store written by a newer schema version, as standalone does.
    pub async fn connect_cluster(urls: &[String]) -> StoreResult<RedisStore> {
        Self::new(Conn::cluster(urls).await?).await
    }

    async fn new(conn: Conn) -> StoreResult<Self> {
        Ok(Self {
            schema: Schema::open(&conn).await?,
            conn,
            scripts: Scripts::new(),
            session_ttl: DEFAULT_SESSION_TTL,
            receiver_ids: std::sync::Mutex::default(),
            queue_max: crate::config::defaults::WEBHOOK_QUEUE_MAX,
            trees: orgs::TreeCache::default(),
            leases: leases::Leases::default(),
            peaks: reads::PeakRegions::default(),
        })
    }

    /// A campaign's webhook queue holds at most `max` events (`--webhook-queue-max`).
    pub fn with_queue_max(mut self, max: usize) -> Self {
        self.queue_max = max;
        self
    }

    /// Campaigns that have no session TTL yet get `ttl` (`--session-ttl`).
    pub fn with_session_ttl(mut self, ttl: Duration) -> Self {
        self.session_ttl = ttl;
        self
    }

    fn ttl_ms(&self) -> String {
        self.session_ttl.as_millis().max(1).to_string()
    }

    /// `"1"` while v1 nodes may still run (the scripts' last argument).
    async fn mixed_arg(&self) -> &'static str {
        if self.schema.mixed(&self.conn).await {
            "1"
        } else {
            "0"
        }
    }

    /// The presence layout older nodes allow (`Schema::presence_layout`).
    async fn layout_arg(&self) -> &'static str {
        self.schema.presence_layout(&self.conn).await
    }

    /// One run of `apply.lua` (see its header for the reply).
    async fn run_apply(&self, batch: &Batch, lease: Option<&LeaseWrite>, layout: &str) -> StoreResult<ApplyReply> {
        let args = codec::batch_json(batch, lease)?;
        let k = CampaignKeys(&batch.campaign);
        let part = partition(batch.bucket_ms);
        let ttl_ms = batch.presence_ttl.as_millis() as u64;
        let [s0, s1] = k.session_gens();
        let [a0, a1] = k.applied_gens();
        let mut keys = vec![
            k.meta(),
            k.epochs(),
            k.sessions(),
            k.counts(),
            k.iseries(part),
            k.iparts(),
            k.uniq(),
            k.actors(),
            k.shares(),
            k.presence(),
            k.presence_exp(),
            a0,
            a1,
            s0,
            s1,
            k.moved(),
        ];
        keys.extend(k.presence_totals());
        let [su0, su1] = k.sunit_gens();
        keys.extend([k.udelta(), su0, su1, k.uuniq_codes(), k.peak_sum()]);
        keys.extend(self.outbox_keys(k));
        self.scripts
            .apply
            .run(
                &self.conn,
                &keys,
                (
                    (
                        args.batch,
                        batch.bucket_ms,
                        part,
                        ttl_ms,
                        &batch.origin,
                        batch.number.to_string(),
                        self.ttl_ms(),
                        self.mixed_arg().await,
                        &batch.node,
                        batch.max_share_channels.to_string(),
                        layout,
                        self.queue_max_arg(),
                    ),
                    k.uuniq_prefix(),
                    args.units,
                    args.counted,
                ),
            )
            .await
    }

    /// Finishes a node-by-node upgrade from v1 (`livetally upgrade-store`, once no v1 node
    /// runs): marks the store as version 2, waits `wait` (see [`FINISH_WAIT`]) so every
    /// running node stops writing the v1 session keys, then gives those keys of every
    /// campaign an expiry of two session TTLs. Sessions v2 has not taken over by then are
    /// forgotten like any quiet session. Every v1.1 webhook `outbox` list then moves into
    /// the schema 4 queue (seed the receivers first: see `node::finish_upgrade`). Returns
    /// the number of campaigns. Safe to run again.
    pub async fn finish_upgrade(&self, wait: Duration) -> StoreResult<usize> {
        schema::finish(&self.conn).await?;
        tokio::time::sleep(wait).await;
        let moved = self.move_outboxes().await?;
        tracing::info!(events = moved, "v1.1 webhook queues moved to the per-receiver queues");
        let ids: Vec<String> = self
            .conn
            .call(|mut c| async move {
                redis::cmd("ZRANGE")
                    .arg(keys::INDEX)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        for id in &ids {
            let k = CampaignKeys(id);
            let ttl: Option<u64> = self
                .conn
                .call(|mut c| async move {
                    redis::cmd("HGET")
                        .arg(k.meta())
                        .arg("session_ttl")
                        .query_async(&mut c)
                        .await
                })
                .await?;
            let ms = 2 * ttl.unwrap_or(self.session_ttl.as_millis() as u64).max(1);
            let mut pipe = redis::pipe();
            for key in [k.epochs(), k.sessions(), k.applied()] {
                pipe.cmd("PEXPIRE").arg(key).arg(ms).arg("NX").ignore();
            }
            self.conn
                .call(|mut c| async move { pipe.query_async::<()>(&mut c).await })
                .await?;
        }
        Ok(ids.len())
    }

    /// `HMGET` of the meta fields a campaign is built from.
    async fn meta_fields(&self, meta: String) -> StoreResult<MetaFields> {
        self.conn
            .call(|mut c| async move {
                redis::cmd("HMGET")
                    .arg(&meta)
                    .arg("campaign")
                    .arg("state")
                    .arg("ended_at")
                    .query_async(&mut c)
                    .await
            })
            .await
    }
}

/// `(campaign JSON, state, ended_at)` of a meta hash; all `None` for an unknown campaign.
/// `apply.lua`'s reply: ended, fenced, session TTL ms, moved epochs, events queued, lease lost.
type ApplyReply = (u8, Vec<usize>, u64, Vec<u64>, u64, u8);

pub(super) type MetaFields = (Option<String>, Option<String>, Option<String>);

#[async_trait]
impl Health for RedisStore {
    fn kind(&self) -> &'static str {
        match self.conn {
            Conn::Standalone(_) => "redis",
            Conn::Cluster(_) => "redis-cluster",
        }
    }

    async fn ping(&self) -> StoreResult<()> {
        let _: String = self
            .conn
            .call(|mut c| async move { redis::cmd("PING").query_async(&mut c).await })
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Campaigns for RedisStore {
    async fn create_campaign(&self, campaign: &Campaign) -> StoreResult<()> {
        self.create(campaign).await
    }

    async fn get_campaign(&self, id: &str) -> StoreResult<Option<Campaign>> {
        match self.meta_fields(CampaignKeys(id).meta()).await? {
            (Some(json), state, ended_at) => campaign_from_meta(&json, state.as_deref(), ended_at.as_deref()).map(Some),
            (None, _, _) => Ok(None),
        }
    }

    async fn list_campaigns(&self) -> StoreResult<Vec<Campaign>> {
        self.list().await
    }

    async fn end_campaign(&self, id: &str, at_ms: i64) -> StoreResult<Campaign> {
        self.end(id, at_ms).await
    }

    async fn delete_campaign(&self, id: &str) -> StoreResult<()> {
        self.delete(id).await
    }

    async fn set_milestones(&self, id: &str, milestones: &Milestones) -> StoreResult<Campaign> {
        self.replace_milestones(id, milestones).await
    }

    async fn set_share_channels(&self, id: &str, channels: &[String]) -> StoreResult<Campaign> {
        let value = serde_json::to_value(channels).map_err(unavailable)?;
        self.amend(
            id,
            "share_channels",
            value,
            Some(("share_channels", channels.join(","))),
        )
        .await
    }

    async fn index_version(&self) -> StoreResult<u64> {
        self.version().await
    }
}

#[async_trait]
impl Counting for RedisStore {
    async fn claim_session(&self, campaign: &str, session: &str, owner: &Owner<'_>) -> StoreResult<(u64, u64)> {
        let k = CampaignKeys(campaign);
        let [s0, s1] = k.session_gens();
        let lease_ms = owner.lease.as_millis().max(1) as u64;
        let reply: Option<(u64, u64)> = self
            .scripts
            .claim
            .run(
                &self.conn,
                [
                    k.meta(),
                    s0,
                    s1,
                    k.epochs(),
                    k.sessions(),
                    k.presence_exp(),
                    k.moved(),
                    k.presence(),
                ]
                .into_iter()
                .chain(k.presence_totals())
                .collect::<Vec<_>>(),
                (
                    session,
                    self.ttl_ms(),
                    self.mixed_arg().await,
                    owner.node,
                    owner.counted_in(),
                    lease_ms,
                    self.layout_arg().await,
                ),
            )
            .await?;
        reply.ok_or(StoreError::NotFound)
    }

    async fn apply(&self, batch: &Batch) -> StoreResult<Applied> {
        let layout = self.layout_arg().await;
        let lease = batch
            .presence
            .as_ref()
            .map(|(node, p)| self.leases.write(&batch.campaign, node, p, layout == "4"));
        let mut reply = self.run_apply(batch, lease.as_ref(), layout).await;
        if let (Ok((0, .., 1)), Some((_, p))) = (&reply, &batch.presence) {
            // Its changes found no lease: it expired while this node could not write.
            // Written again at once, whole and alone (nothing else of the batch twice).
            let alone = Batch {
                campaign: batch.campaign.clone(),
                origin: batch.origin.clone(),
                bucket_ms: batch.bucket_ms,
                presence: batch.presence.clone(),
                presence_ttl: batch.presence_ttl,
                node: batch.node.clone(),
                ..Batch::default()
            };
            let whole = LeaseWrite {
                lease: p.clone(),
                whole: true,
            };
            reply = match self.run_apply(&alone, Some(&whole), layout).await {
                Ok(again) => reply.map(|r| (r.0, r.1, r.2, r.3, r.4, again.5)),
                Err(e) => Err(e),
            };
        }
        if let Some((node, p)) = &batch.presence {
            let held = matches!(reply, Ok((0, .., 0)));
            self.leases.settle(&batch.campaign, node, p, held && layout == "4");
        }
        let (ended, fenced, session_ttl_ms, moved, queued, _) = reply?;
        self.mark_due(&batch.campaign, queued).await;
        Ok(Applied {
            fenced,
            ended: ended == 1,
            session_ttl: (ended == 0).then(|| Duration::from_millis(session_ttl_ms)),
            moved,
        })
    }

    async fn drop_presence(&self, campaign: &str, node: &str) -> StoreResult<()> {
        self.leases.forget(campaign, node);
        let k = CampaignKeys(campaign);
        let _: i64 = self
            .scripts
            .leave
            .run(
                &self.conn,
                [k.presence(), k.presence_exp(), k.moved()]
                    .into_iter()
                    .chain(k.presence_totals())
                    .collect::<Vec<_>>(),
                (node, self.layout_arg().await),
            )
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Reads for RedisStore {
    /// Leases are judged by the Redis clock that stamped them, not by `now_ms`.
    async fn stats(&self, campaign: &str, kinds: &[String], _now_ms: i64) -> StoreResult<Stats> {
        self.read_stats(campaign, kinds).await
    }

    async fn record_tick(
        &self,
        campaign: &str,
        bucket_ms: i64,
        at_ms: i64,
        viewers: u64,
        regions: &BTreeMap<String, u64>,
    ) -> StoreResult<(u64, Option<i64>)> {
        let k = CampaignKeys(campaign);
        let regions = serde_json::to_string(regions).map_err(unavailable)?;
        let part = partition(bucket_ms);
        let mut keys = vec![k.meta(), k.vseries(part), k.vparts(), k.upeak(), k.upeak_bucket()];
        keys.extend(self.outbox_keys(k));
        let reply: Option<(u64, String, u64)> = self
            .scripts
            .tick
            .run(
                &self.conn,
                &keys,
                (bucket_ms, at_ms, viewers, regions, part, self.queue_max_arg()),
            )
            .await?;
        let (peak, peak_at, queued) = reply.ok_or(StoreError::NotFound)?;
        self.mark_due(campaign, queued).await;
        Ok((peak, opt_i64(&peak_at, "peak_at")?))
    }

    async fn series(
        &self,
        campaign: &str,
        metric: &SeriesMetric,
        from_ms: i64,
        to_ms: i64,
    ) -> StoreResult<Vec<(i64, u64)>> {
        self.read_series(campaign, metric, from_ms, to_ms).await
    }
}

#[async_trait]
impl Signups for RedisStore {
    async fn register(&self, campaign: &str, registration: &Registration) -> StoreResult<bool> {
        self.add_registration(campaign, registration).await
    }

    async fn registrations(&self, campaign: &str, after: u64, limit: usize) -> StoreResult<Vec<(u64, Registration)>> {
        self.registration_page(campaign, after, limit).await
    }

    async fn erase_registration(&self, campaign: &str, viewer: &str) -> StoreResult<bool> {
        self.erase(campaign, viewer).await
    }
}

#[async_trait]
impl Orgs for RedisStore {
    async fn put_org(&self, org: &str, tree: Arc<Tree>) -> StoreResult<(OrgSummary, bool)> {
        self.org_put(org, tree).await
    }

    async fn org_summary(&self, org: &str, version: Option<u64>) -> StoreResult<Option<OrgSummary>> {
        self.org_read(org, version).await
    }

    async fn list_orgs(&self) -> StoreResult<Vec<OrgSummary>> {
        self.org_list().await
    }

    async fn org_tree(&self, org: &str, version: u64) -> StoreResult<Option<Arc<Tree>>> {
        self.org_load(org, version).await
    }

    async fn prune_org(&self, org: &str, keep: &[u64]) -> StoreResult<()> {
        self.org_prune(org, keep).await
    }

    async fn delete_org(&self, org: &str, keep: &[u64]) -> StoreResult<bool> {
        self.org_delete(org, keep).await
    }
}

#[async_trait]
impl Outbox for RedisStore {
    async fn receivers(&self) -> StoreResult<Vec<Receiver>> {
        self.read_receivers().await
    }

    async fn set_receivers(&self, receivers: &[Receiver]) -> StoreResult<()> {
        self.write_receivers(receivers).await
    }

    async fn seed_receivers(&self, receivers: &[Receiver]) -> StoreResult<bool> {
        self.seed(receivers).await
    }

    async fn due_outboxes(&self, now_ms: i64, limit: usize) -> StoreResult<Vec<String>> {
        self.due(now_ms, limit).await
    }

    async fn lease_event(&self, campaign: &str, receiver: &str, node: &str, lease: Duration) -> StoreResult<Lease> {
        self.lease(campaign, receiver, node, lease).await
    }

    async fn settle_event(&self, to: &Delivery<'_>, outcome: Settle) -> StoreResult<()> {
        self.settle(to, outcome).await
    }

    async fn backlog(&self) -> StoreResult<Backlog> {
        self.backlog().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::State;

    #[test]
    fn meta_fields_overlay_the_stored_json() {
        let json = r#"{"id":"a","title":"t","stream_url":null,"kinds":[],"regions":[],
            "access":"public","state":"live","created_at":5,"ended_at":null}"#;
        let c = campaign_from_meta(json, Some("ended"), Some("9")).unwrap();
        assert_eq!(c.state, State::Ended);
        assert_eq!(c.ended_at, Some(9));
        assert!(campaign_from_meta(json, Some("live"), None).unwrap().is_live());
    }
}
