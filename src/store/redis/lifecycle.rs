//! A campaign's life in Redis: created (index first, then meta), listed oldest first, ended,
//! and deleted with everything it kept. The `Store` methods in `mod.rs` call these; the
//! counting path (claims, batches, stats, ticks, series) stays there.

use std::collections::HashMap;

use super::codec::{campaign_from_meta, state_str};
use super::conn::{unavailable, Conn};
use super::keys::{self, CampaignKeys};
use super::script::NO_ARGS;
use super::{MetaFields, RedisStore};
use crate::campaign::Campaign;
use crate::store::{StoreError, StoreResult};

impl RedisStore {
    pub(super) async fn create(&self, campaign: &Campaign) -> StoreResult<()> {
        let json = serde_json::to_string(campaign).map_err(unavailable)?;
        // Index first: a create cut short after it is finished by a retry (the index
        // script is idempotent), and list skips index entries without meta.
        let _: i64 = self
            .scripts
            .index
            .run(
                &self.conn,
                &[keys::INDEX, keys::ORDER, keys::NEXT],
                (&campaign.id, campaign.created_at),
            )
            .await?;
        let ended_at = campaign.ended_at.map(|t| t.to_string()).unwrap_or_default();
        let created: i64 = self
            .scripts
            .create
            .run(
                &self.conn,
                &[CampaignKeys(&campaign.id).meta()],
                (
                    json,
                    state_str(campaign.state),
                    ended_at,
                    self.ttl_ms(),
                    campaign.share_channels.join(","),
                ),
            )
            .await?;
        if created == 1 {
            self.bump_index().await;
            Ok(())
        } else {
            Err(StoreError::Conflict)
        }
    }

    /// Moves the index version after a write to a campaign itself. It lives in the index's
    /// slot, not the campaign's, so it cannot move in the write's own script; when this
    /// call fails the write stands, and nodes still find it at their periodic full re-read
    /// of the index (`broadcast::index::FULL_READ_EVERY`).
    pub(super) async fn bump_index(&self) {
        let bumped: StoreResult<u64> = self
            .conn
            .call(|mut c| async move { redis::cmd("INCR").arg(keys::VERSION).query_async(&mut c).await })
            .await;
        if let Err(e) = bumped {
            tracing::warn!(error = %e, "campaign index version not moved; nodes see the change at their next full read");
        }
    }

    /// The version plus the creation counter (`index.lua` moves it on every create, v1.1
    /// nodes' too, which do not move the version): one `MGET` in the index's slot, and a
    /// campaign a v1.1 node creates during a rolling upgrade is still seen within a tick.
    pub(super) async fn version(&self) -> StoreResult<u64> {
        let (v, created): (Option<u64>, Option<u64>) = self
            .conn
            .call(|mut c| async move {
                redis::cmd("MGET")
                    .arg(keys::VERSION)
                    .arg(keys::NEXT)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(v.unwrap_or(0) + created.unwrap_or(0))
    }

    /// Sets `field` of the stored campaign JSON to `value` (compare and set, so a
    /// concurrent change is not lost), with `meta` (a meta field and its value) beside it.
    pub(super) async fn amend(
        &self,
        id: &str,
        field: &str,
        value: serde_json::Value,
        meta: Option<(&str, String)>,
    ) -> StoreResult<Campaign> {
        let k = CampaignKeys(id);
        loop {
            let (json, state, ended_at) = self.meta_fields(k.meta()).await?;
            let Some(json) = json else {
                return Err(StoreError::NotFound);
            };
            let mut stored: serde_json::Value = serde_json::from_str(&json).map_err(unavailable)?;
            stored[field] = value.clone();
            let new = stored.to_string();
            let mut args = vec![json, new.clone()];
            if let Some((name, v)) = &meta {
                args.extend([name.to_string(), v.clone()]);
            }
            let set: Option<i64> = self.scripts.milestones.run(&self.conn, &[k.meta()], args).await?;
            match set {
                None => return Err(StoreError::NotFound),
                Some(1) => {
                    self.bump_index().await;
                    return campaign_from_meta(&new, state.as_deref(), ended_at.as_deref());
                }
                Some(_) => continue,
            }
        }
    }

    pub(super) async fn list(&self) -> StoreResult<Vec<Campaign>> {
        let (ids, order): (Vec<String>, HashMap<String, u64>) = self
            .conn
            .call(|mut c| async move {
                redis::pipe()
                    .zrange(keys::INDEX, 0, -1)
                    .hgetall(keys::ORDER)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        // An empty pipeline is an error in redis-rs (the index is empty before the first
        // campaign and after the last one is deleted).
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let metas: Vec<MetaFields> = match &self.conn {
            // One pipeline: one round trip for every campaign.
            Conn::Standalone(_) => {
                let mut pipe = redis::pipe();
                for id in &ids {
                    pipe.cmd("HMGET")
                        .arg(CampaignKeys(id).meta())
                        .arg("campaign")
                        .arg("state")
                        .arg("ended_at");
                }
                self.conn
                    .call(|mut c| async move { pipe.query_async(&mut c).await })
                    .await?
            }
            // Metas live in different slots: concurrent reads on the multiplexed
            // connections, bounded so thousands of campaigns do not flood one node.
            Conn::Cluster(_) => {
                use futures_util::stream::{self, StreamExt, TryStreamExt};
                let metas: Vec<String> = ids.iter().map(|id| CampaignKeys(id).meta()).collect();
                stream::iter(metas)
                    .map(|meta| self.meta_fields(meta))
                    .buffered(32)
                    .try_collect()
                    .await?
            }
        };
        let mut all = Vec::with_capacity(ids.len());
        for (id, (json, state, ended_at)) in ids.iter().zip(metas) {
            let Some(json) = json else { continue };
            let c = campaign_from_meta(&json, state.as_deref(), ended_at.as_deref())?;
            let seq = order.get(id).copied().unwrap_or(u64::MAX);
            all.push((c.created_at, seq, c));
        }
        all.sort_by_key(|(created_at, seq, _)| (*created_at, *seq));
        Ok(all.into_iter().map(|(_, _, c)| c).collect())
    }

    pub(super) async fn end(&self, id: &str, at_ms: i64) -> StoreResult<Campaign> {
        let k = CampaignKeys(id);
        let [s0, s1] = k.session_gens();
        let [a0, a1] = k.applied_gens();
        let mut keys = vec![
            k.meta(),
            k.presence(),
            k.presence_exp(),
            k.epochs(),
            k.sessions(),
            s0,
            s1,
            a0,
            a1,
            k.applied(),
            k.moved(),
        ];
        keys.extend(k.presence_totals());
        keys.extend(self.outbox_keys(k));
        let reply: Option<(String, Option<String>, Option<String>)> = self
            .scripts
            .end
            .run(&self.conn, &keys, (at_ms, self.queue_max_arg()))
            .await?;
        let (json, state, ended_at) = reply.ok_or(StoreError::NotFound)?;
        self.bump_index().await;
        if !self.outbox_keys(k).is_empty() && ended_at.as_deref() == Some(at_ms.to_string().as_str()) {
            self.mark_due(id, 1).await;
        }
        campaign_from_meta(&json, state.as_deref(), ended_at.as_deref())
    }

    /// Three steps. (1) One pipeline reads the state and the series' hour partitions from
    /// `vparts`/`iparts`: the campaign already records every hour hash it writes there
    /// (series reads use them), and once ended it writes no new one, so this list is
    /// complete. A SCAN for `lt:{c:<id>}:*` would find the same keys but walk the whole
    /// keyspace on a standalone server, and on Cluster it would have to be sent to the node
    /// owning the slot, outside the one-call-per-campaign shape of everything else.
    /// (2) `delete.lua` re-checks the state and deletes all of it atomically, then the unit
    /// totals' shards of the generation read in (1) go. (3) The index
    /// entries, in their own slot. If (3) fails the call is `Unavailable` and the campaign is
    /// gone but for an index entry without meta, which listing skips and a new campaign of
    /// the same id reuses.
    pub(super) async fn delete(&self, id: &str) -> StoreResult<()> {
        let k = CampaignKeys(id);
        type Found = (Option<String>, Option<String>, Vec<i64>, Vec<i64>, Vec<String>);
        let (state, gen, vparts, iparts, sketched): Found = self
            .conn
            .call(|mut c| async move {
                redis::pipe()
                    .hget(k.meta(), "state")
                    .hget(k.meta(), "ugen")
                    .zrange(k.vparts(), 0, -1)
                    .zrange(k.iparts(), 0, -1)
                    .smembers(k.uuniq_codes())
                    .query_async(&mut c)
                    .await
            })
            .await?;
        match state.as_deref() {
            None => return Err(StoreError::NotFound),
            Some("ended") => {}
            Some(_) => return Err(StoreError::Live),
        }
        // The queued sign-ups go first: a campaign deleted keeps no personal data anywhere.
        self.forget(id, "").await?;
        let mut keys = k.fixed().to_vec();
        keys.extend(vparts.into_iter().map(|p| k.vseries(p)));
        keys.extend(iparts.into_iter().map(|p| k.iseries(p)));
        keys.extend(sketched.into_iter().map(|code| format!("{}{code}", k.uuniq_prefix())));
        let deleted: i64 = self.scripts.delete.run(&self.conn, &keys, NO_ARGS).await?;
        match deleted {
            1 => {}
            0 => return Err(StoreError::NotFound),
            _ => return Err(StoreError::Live),
        }
        // The unit totals' shards (a fold that began after the read above is dropped by
        // its roller, whose `rolled.lua` finds the generation gone).
        if let Some(gen) = gen {
            self.drop_unit_totals(id, &gen).await?;
        }
        self.conn
            .call(|mut c| async move {
                redis::pipe()
                    .zrem(keys::INDEX, id)
                    .ignore()
                    .hdel(keys::ORDER, id)
                    .ignore()
                    .incr(keys::VERSION, 1)
                    .ignore()
                    .query_async::<()>(&mut c)
                    .await
            })
            .await
    }
}
