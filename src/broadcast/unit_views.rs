//! The units reads operators make (`GET …/units`, an operator socket's `watch`): a page of
//! one unit's children from the campaign's per-tick listing (`units.rs`), found through
//! the node's campaign index and the campaign's org tree.

use std::sync::Arc;

use super::index::{CampaignIndex, Entry};
use crate::campaign::Campaign;
use crate::error::ApiError;
use crate::org::Tree;
use crate::store::Store;
use crate::tally::Tallies;

/// What a units read needs, shared by the route and the operator sockets' `watch`.
pub struct UnitViews {
    pub store: Arc<dyn Store>,
    pub index: Arc<CampaignIndex>,
    pub tallies: Arc<Tallies>,
}

impl UnitViews {
    /// The campaign's tree and `--unit-peak-depth`: 404 `org` when the campaign has none.
    pub async fn tree_of(&self, campaign: &Campaign) -> Result<(Arc<Tree>, u8), ApiError> {
        match self.tallies.tree(campaign).await {
            Ok(Some(t)) => Ok(t),
            Ok(None) => Err(ApiError::NotFound("org")),
            Err(e) => {
                tracing::warn!(campaign = %campaign.id, error = %e, "org tree not loaded");
                Err(ApiError::Unavailable(
                    "the campaign's org could not be read; retry later".into(),
                ))
            }
        }
    }

    /// A page of `parent`'s listing as JSON, what the route answers and the `units` frame
    /// carries (`None` or `""`: the top level). A cursor whose listing is no longer kept
    /// pages on through the latest one.
    pub async fn page(
        &self,
        campaign: &str,
        parent: Option<&str>,
        cursor: Option<(i64, usize)>,
        limit: usize,
    ) -> Result<serde_json::Value, ApiError> {
        let entry: Arc<Entry> = self.index.get(campaign)?.ok_or(ApiError::NotFound("campaign"))?;
        let c = &entry.campaign;
        let (tree, depth) = self.tree_of(c).await?;
        let parent = match parent {
            None | Some("") => None,
            Some(code) => Some(tree.find(code).ok_or(ApiError::NotFound("unit"))?),
        };
        let code = parent.map(|p| tree.code(p));
        let (listing, offset) = match cursor.and_then(|(at, o)| Some((entry.units.pinned(code, at)?, o))) {
            Some(pinned) => pinned,
            None => {
                let frames = entry.frames(&*self.store).await?;
                let listing = entry.units.get(&*self.store, c, &tree, depth, &frames, parent).await?;
                (listing, cursor.map_or(0, |(_, o)| o))
            }
        };
        // unwrap: plain structs of strings and numbers always serialise.
        Ok(serde_json::to_value(listing.page(offset, limit)).unwrap())
    }
}
