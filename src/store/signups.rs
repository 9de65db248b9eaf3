//! The sign-ups seam: registration, the paged export and the erasure of one person.

use async_trait::async_trait;

use super::StoreResult;

/// One sign-up as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub viewer: String,
    /// Unix ms, as the node that took it saw the time.
    pub registered_at: i64,
    /// The sign-up fields as one JSON object string, as `campaign::signup::check_submission`
    /// returns them (`{}` when the campaign declares none).
    pub fields: String,
    /// On a campaign with an org, the unit the registration counts in: its path from the
    /// top (`[""]`: unassigned), counted for the unit and every ancestor. Stored and read
    /// back as its last code alone (a one-code path).
    pub unit: Option<crate::store::UnitPath>,
}

impl Registration {
    /// The unit's code as exports and `registration.created` show it (`unassigned` for
    /// none known); `None` on a campaign without an org.
    pub fn unit_code(&self) -> Option<&str> {
        let code = self.unit.as_ref()?.last().map_or("", String::as_str);
        Some(if code == crate::store::units::UNASSIGNED {
            "unassigned"
        } else {
            code
        })
    }
}

/// A campaign's sign-ups.
#[async_trait]
pub trait Signups: Send + Sync + 'static {
    /// Registers a viewer with its fields; `true` the first time, `false` after (the
    /// first registration wins: a later one changes nothing). Each registration gets the
    /// next number of the campaign (1, 2, ...), the order [`Signups::registrations`] reads.
    async fn register(&self, campaign: &str, registration: &Registration) -> StoreResult<bool>;

    /// Up to `limit` registrations numbered above `after`, with their numbers, in order:
    /// the export reads page after page, passing the last number it got, so it never holds
    /// more than a page and an erasure meanwhile moves nothing it has yet to read.
    async fn registrations(&self, campaign: &str, after: u64, limit: usize) -> StoreResult<Vec<(u64, Registration)>>;

    /// Erases one person's sign-up (viewer id, time and fields); `false` when that viewer
    /// has none. The campaign's `registrations` count is an aggregate and stays. The same
    /// viewer registering again afterwards is a new registration (nothing is kept that
    /// could recognise it).
    async fn erase_registration(&self, campaign: &str, viewer: &str) -> StoreResult<bool>;
}
