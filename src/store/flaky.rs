//! A test double: the memory store behind a switch that makes every call fail as an
//! unreachable Redis would, so the tasks that must survive an outage (flusher,
//! broadcaster) are unit-tested without a Redis to kill. It implements every seam; a test
//! of a task that names one seam can use a smaller double of its own (see `broadcast`).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;

use std::time::Duration;

use super::memory::MemoryStore;
use super::outbox::{Backlog, Delivery, Lease, Receiver, Settle};
use super::{
    Applied, Batch, Campaigns, Counting, Health, Orgs, Outbox, Owner, Reads, Registration, Secrets, SeriesMetric,
    Signups, Stats, StoreError, StoreResult, UnitPeak, UnitTotals, Units,
};
use crate::campaign::{Campaign, Milestones};
use crate::org::{OrgSummary, Tree};

/// [`MemoryStore`] that can be taken down and brought back.
#[derive(Default)]
pub struct Flaky {
    pub inner: MemoryStore,
    down: AtomicBool,
    /// `apply` calls that reached the store (failed ones excluded).
    pub applied: AtomicU64,
    /// Calls of any seam's method, failed ones included: what a request cost the store.
    pub calls: AtomicU64,
}

impl Flaky {
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn up(&self) -> StoreResult<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("test store is down".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl Health for Flaky {
    fn kind(&self) -> &'static str {
        "flaky"
    }
    async fn ping(&self) -> StoreResult<()> {
        self.up()
    }
}

#[async_trait]
impl Campaigns for Flaky {
    async fn create_campaign(&self, c: &Campaign) -> StoreResult<()> {
        self.up()?;
        self.inner.create_campaign(c).await
    }
    async fn get_campaign(&self, id: &str) -> StoreResult<Option<Campaign>> {
        self.up()?;
        self.inner.get_campaign(id).await
    }
    async fn list_campaigns(&self) -> StoreResult<Vec<Campaign>> {
        self.up()?;
        self.inner.list_campaigns().await
    }
    async fn end_campaign(&self, id: &str, at_ms: i64) -> StoreResult<Campaign> {
        self.up()?;
        self.inner.end_campaign(id, at_ms).await
    }
    async fn delete_campaign(&self, id: &str) -> StoreResult<()> {
        self.up()?;
        self.inner.delete_campaign(id).await
    }
    async fn set_milestones(&self, id: &str, milestones: &Milestones) -> StoreResult<Campaign> {
        self.up()?;
        self.inner.set_milestones(id, milestones).await
    }
    async fn set_share_channels(&self, id: &str, channels: &[String]) -> StoreResult<Campaign> {
        self.up()?;
        self.inner.set_share_channels(id, channels).await
    }
    async fn index_version(&self) -> StoreResult<u64> {
        self.up()?;
        self.inner.index_version().await
    }
}

#[async_trait]
impl Counting for Flaky {
    async fn claim_session(&self, campaign: &str, session: &str, owner: &Owner<'_>) -> StoreResult<(u64, u64)> {
        self.up()?;
        self.inner.claim_session(campaign, session, owner).await
    }
    async fn apply(&self, batch: &Batch) -> StoreResult<Applied> {
        self.up()?;
        self.applied.fetch_add(1, Ordering::SeqCst);
        self.inner.apply(batch).await
    }
    async fn drop_presence(&self, campaign: &str, node: &str) -> StoreResult<()> {
        self.up()?;
        self.inner.drop_presence(campaign, node).await
    }
}

#[async_trait]
impl Reads for Flaky {
    async fn stats(&self, campaign: &str, kinds: &[String], now_ms: i64) -> StoreResult<Stats> {
        self.up()?;
        self.inner.stats(campaign, kinds, now_ms).await
    }
    async fn record_tick(
        &self,
        campaign: &str,
        bucket_ms: i64,
        at_ms: i64,
        viewers: u64,
        regions: &BTreeMap<String, u64>,
    ) -> StoreResult<(u64, Option<i64>)> {
        self.up()?;
        self.inner
            .record_tick(campaign, bucket_ms, at_ms, viewers, regions)
            .await
    }
    async fn series(
        &self,
        campaign: &str,
        metric: &SeriesMetric,
        from_ms: i64,
        to_ms: i64,
    ) -> StoreResult<Vec<(i64, u64)>> {
        self.up()?;
        self.inner.series(campaign, metric, from_ms, to_ms).await
    }
}

#[async_trait]
impl Signups for Flaky {
    async fn register(&self, campaign: &str, registration: &Registration) -> StoreResult<bool> {
        self.up()?;
        self.inner.register(campaign, registration).await
    }
    async fn registrations(&self, campaign: &str, after: u64, limit: usize) -> StoreResult<Vec<(u64, Registration)>> {
        self.up()?;
        self.inner.registrations(campaign, after, limit).await
    }
    async fn erase_registration(&self, campaign: &str, viewer: &str) -> StoreResult<bool> {
        self.up()?;
        self.inner.erase_registration(campaign, viewer).await
    }
}

#[async_trait]
impl Outbox for Flaky {
    async fn receivers(&self) -> StoreResult<Vec<Receiver>> {
        self.up()?;
        self.inner.receivers().await
    }
    async fn set_receivers(&self, receivers: &[Receiver]) -> StoreResult<()> {
        self.up()?;
        self.inner.set_receivers(receivers).await
    }
    async fn seed_receivers(&self, receivers: &[Receiver]) -> StoreResult<bool> {
        self.up()?;
        self.inner.seed_receivers(receivers).await
    }
    async fn due_outboxes(&self, now_ms: i64, limit: usize) -> StoreResult<Vec<String>> {
        self.up()?;
        self.inner.due_outboxes(now_ms, limit).await
    }
    async fn lease_event(&self, campaign: &str, receiver: &str, node: &str, lease: Duration) -> StoreResult<Lease> {
        self.up()?;
        self.inner.lease_event(campaign, receiver, node, lease).await
    }
    async fn settle_event(&self, to: &Delivery<'_>, outcome: Settle) -> StoreResult<()> {
        self.up()?;
        self.inner.settle_event(to, outcome).await
    }
    async fn backlog(&self) -> StoreResult<Backlog> {
        self.up()?;
        self.inner.backlog().await
    }
}

#[async_trait]
impl Secrets for Flaky {
    async fn join_key(&self) -> StoreResult<Option<Vec<u8>>> {
        self.up()?;
        self.inner.join_key().await
    }
    async fn create_join_key(&self) -> StoreResult<Vec<u8>> {
        self.up()?;
        self.inner.create_join_key().await
    }
    async fn ticket_key(&self) -> StoreResult<Vec<u8>> {
        self.up()?;
        self.inner.ticket_key().await
    }
    async fn spend_once(&self, nonce: &str, ttl: Duration) -> StoreResult<bool> {
        self.up()?;
        self.inner.spend_once(nonce, ttl).await
    }
}

#[async_trait]
impl Orgs for Flaky {
    async fn put_org(&self, org: &str, tree: Arc<Tree>) -> StoreResult<(OrgSummary, bool)> {
        self.up()?;
        self.inner.put_org(org, tree).await
    }
    async fn org_summary(&self, org: &str, version: Option<u64>) -> StoreResult<Option<OrgSummary>> {
        self.up()?;
        self.inner.org_summary(org, version).await
    }
    async fn list_orgs(&self) -> StoreResult<Vec<OrgSummary>> {
        self.up()?;
        self.inner.list_orgs().await
    }
    async fn org_tree(&self, org: &str, version: u64) -> StoreResult<Option<Arc<Tree>>> {
        self.up()?;
        self.inner.org_tree(org, version).await
    }
    async fn prune_org(&self, org: &str, keep: &[u64]) -> StoreResult<()> {
        self.up()?;
        self.inner.prune_org(org, keep).await
    }
    async fn delete_org(&self, org: &str, keep: &[u64]) -> StoreResult<bool> {
        self.up()?;
        self.inner.delete_org(org, keep).await
    }
}

#[async_trait]
impl Units for Flaky {
    async fn put_deep_viewers(
        &self,
        campaign: &str,
        node: &str,
        changes: &[(String, u64)],
        full: bool,
        lease: Duration,
    ) -> StoreResult<bool> {
        self.up()?;
        self.inner.put_deep_viewers(campaign, node, changes, full, lease).await
    }
    async fn deep_viewers(&self, campaign: &str, nodes: &[String], codes: &[String]) -> StoreResult<Vec<u64>> {
        self.up()?;
        self.inner.deep_viewers(campaign, nodes, codes).await
    }
    async fn all_deep_viewers(&self, campaign: &str, nodes: &[String]) -> StoreResult<HashMap<String, u64>> {
        self.up()?;
        self.inner.all_deep_viewers(campaign, nodes).await
    }
    async fn unit_totals(&self, campaign: &str, kinds: &[String], codes: &[String]) -> StoreResult<Vec<UnitTotals>> {
        self.up()?;
        self.inner.unit_totals(campaign, kinds, codes).await
    }
    async fn fold_units(
        &self,
        campaign: &str,
        tree: &Arc<crate::org::Tree>,
        lease: Option<Duration>,
    ) -> StoreResult<()> {
        self.up()?;
        self.inner.fold_units(campaign, tree, lease).await
    }
    async fn unit_peaks(&self, campaign: &str, codes: &[String]) -> StoreResult<Vec<UnitPeak>> {
        self.up()?;
        self.inner.unit_peaks(campaign, codes).await
    }
}

/// The owner unit tests claim sessions for: node `n1`, region `unknown`.
pub const N1: Owner<'static> = Owner {
    node: "n1",
    region: "unknown",
    units: &[],
    lease: std::time::Duration::from_secs(10),
};

/// A live campaign `id` with the default kinds (like, cheer, comment, share), created now.
pub fn campaign(id: &str) -> Campaign {
    crate::campaign::NewCampaign {
        id: Some(id.into()),
        title: Some("test".into()),
        ..Default::default()
    }
    .validate(crate::util::now_ms())
    // unwrap: a valid id and title.
    .unwrap()
}
