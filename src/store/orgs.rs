//! The orgs seam: organisations, each a series of immutable versions of its tree of units.
//! The HTTP org routes own it; campaigns read the version they were created with.
//!
//! An upload is staged and switched in one step: a reader sees the old newest version or
//! the new one, never part of one. Version numbers are never handed out twice for an org
//! (not even after it is deleted and uploaded again), so a node may keep a version's tree
//! by `(org, version)` for as long as it likes.

use std::sync::Arc;

use async_trait::async_trait;

use super::StoreResult;
use crate::org::{OrgSummary, Tree};

/// Organisations as the store keeps them.
#[async_trait]
pub trait Orgs: Send + Sync + 'static {
    /// Stores `tree` as the org's next version and makes it the newest, atomically.
    /// Returns its summary and whether it replaced a newest version (the route's 200
    /// rather than 201). Older versions stay until [`Orgs::prune_org`].
    async fn put_org(&self, org: &str, tree: Arc<Tree>) -> StoreResult<(OrgSummary, bool)>;

    /// The summary of `version` of a current org (`None`: its newest); `None` when the org
    /// is unknown or deleted, or has no such version.
    async fn org_summary(&self, org: &str, version: Option<u64>) -> StoreResult<Option<OrgSummary>>;

    /// Every current org's newest version, by id.
    async fn list_orgs(&self) -> StoreResult<Vec<OrgSummary>>;

    /// A stored version's units (kept after the org is deleted while a campaign uses it);
    /// `None` when that version is gone.
    async fn org_tree(&self, org: &str, version: u64) -> StoreResult<Option<Arc<Tree>>>;

    /// Removes the org's stored versions other than its newest and `keep` (the versions
    /// campaigns use).
    async fn prune_org(&self, org: &str, keep: &[u64]) -> StoreResult<()>;

    /// Removes the org from the reads and every version of it but `keep`; `false` when it
    /// was not there.
    async fn delete_org(&self, org: &str, keep: &[u64]) -> StoreResult<bool>;
}
