//! The campaigns seam: a campaign's life (create, read, list, end, delete) and its
//! webhook milestones. The HTTP routes own it; admission and the webhook deliverer read
//! campaigns through it.

use async_trait::async_trait;

use super::StoreResult;
use crate::campaign::{Campaign, Milestones};

/// Campaigns as the store keeps them.
#[async_trait]
pub trait Campaigns: Send + Sync + 'static {
    /// Creates a campaign; `Conflict` when the id is taken.
    async fn create_campaign(&self, campaign: &Campaign) -> StoreResult<()>;
    async fn get_campaign(&self, id: &str) -> StoreResult<Option<Campaign>>;
    /// All campaigns, oldest first.
    async fn list_campaigns(&self) -> StoreResult<Vec<Campaign>>;
    /// Marks the campaign ended at `at_ms` (a no-op when already ended), drops every
    /// presence lease so `viewers` reads 0, and returns the campaign. `NotFound` if unknown.
    async fn end_campaign(&self, id: &str, at_ms: i64) -> StoreResult<Campaign>;

    /// Removes an ended campaign and everything kept for it: counters, series, sessions,
    /// registrations, presence, retry marks, sketches, share channels and its index entry.
    /// The id can be created again afterwards. `Live` when it has not ended (nothing is
    /// removed), `NotFound` if unknown.
    async fn delete_campaign(&self, id: &str) -> StoreResult<()>;

    /// Replaces a campaign's webhook milestones (validated by the caller) and returns the
    /// campaign. Thresholds its metric has already passed do not fire. `NotFound` if unknown.
    async fn set_milestones(&self, id: &str, milestones: &Milestones) -> StoreResult<Campaign>;

    /// Replaces a campaign's declared share channels (validated by the caller; empty: no
    /// declaration) and returns the campaign. The flush step counts visits by the stored
    /// list from then on, whichever node sent them; counts already made keep their names.
    /// `NotFound` if unknown.
    async fn set_share_channels(&self, id: &str, channels: &[String]) -> StoreResult<Campaign>;

    /// The campaign index's version: it moves whenever a campaign is created, changed,
    /// ended or deleted. Nodes read it once per tick and re-read the whole list only when
    /// it moved, so knowing every campaign costs one small read per tick (`broadcast::index`).
    async fn index_version(&self) -> StoreResult<u64>;
}
