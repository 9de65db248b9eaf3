//! The seam between counting and storing. Everything a node shares with other nodes goes
//! through the store: the embedded [`memory::MemoryStore`] for a single node, and the Redis
//! store for many. Both pass the same contract suite (`tests/store_contract.rs`).
//!
//! The store is not one wall but nine small seams, split where the tasks that use them
//! differ (as centrifuge splits `Broker` from `PresenceManager`): each task names the seam
//! it uses, and a test double implements that one only.
//!
//! | seam | what it is for | used by |
//! |---|---|---|
//! | [`Health`] | `kind`, `ping` | `/readyz`, logs |
//! | [`Campaigns`] | a campaign's life and its milestones | HTTP routes, admission, webhooks |
//! | [`Counting`] | session claims, batches, presence | admission, flusher |
//! | [`Reads`] | stats, the tick's record, series | broadcaster, admission, HTTP, webhooks |
//! | [`Signups`] | registrations, the export, erasure | HTTP sign-up routes |
//! | [`Outbox`] | webhook queues: due, lease, settle, pending | webhook deliverer |
//! | [`Secrets`] | the stored join and ticket keys, single-use nonces | auth at start, operator tickets, `upgrade-store` |
//! | [`Orgs`] | organisations: versions of a tree of units, staged and switched | HTTP org routes |
//! | [`Units`] | a campaign's numbers per unit: deep viewers per node, totals, peaks | flusher, units routes |
//!
//! [`Store`] is all nine, implemented for every type that implements them; the node wires
//! one `Arc<dyn Store>` and hands each task the seams it names (`Arc<dyn Store>` coerces
//! to `Arc<dyn Reads>` and the others).
//!
//! The seams are shaped for Redis from day one: writes arrive as one [`Batch`] per campaign
//! per flush interval (one round trip, applied atomically), reads as one [`Stats`] per
//! campaign per tick, so store traffic grows with the number of campaigns and ticks, never
//! with the interaction rate.

pub mod campaigns;
pub mod counting;
#[cfg(test)]
pub mod flaky;
pub mod hll;
pub mod memory;
pub mod orgs;
pub mod outbox;
pub mod reads;
pub mod redis;
pub mod secrets;
pub mod signups;
pub mod units;

use std::time::Duration;

use async_trait::async_trait;

pub use campaigns::Campaigns;
pub use counting::{Applied, Batch, Counting, Owner, Presence, SessionDelta};
pub use orgs::Orgs;
pub use outbox::Outbox;
pub use reads::{bucket_of, NodeShare, Reads, SeriesMetric, Stats};
pub use secrets::Secrets;
pub use signups::{Registration, Signups};
pub use units::{UnitCounts, UnitPath, UnitPeak, UnitTotals, Units, FOLD_EVERY};

/// Why a store call failed. Callers branch on it: `Unavailable` is retried (counts stay
/// buffered, acks withheld), the others are answers.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store did not answer (down, hung, failing over). Retry later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A campaign with this id already exists.
    #[error("campaign already exists")]
    Conflict,
    /// No campaign with this id.
    #[error("campaign not found")]
    NotFound,
    /// The campaign is still live, and this call needs it ended.
    #[error("campaign is live")]
    Live,
    /// The store was written by a newer build: this node must not touch it.
    #[error("the store is at schema version {found}, newer than this node's {supported}: upgrade this node first")]
    NewerSchema { found: u64, supported: u64 },
}

pub type StoreResult<T> = Result<T, StoreError>;

/// `--session-ttl`'s default, for stores built without the flag (tests, embedded use).
pub const DEFAULT_SESSION_TTL: Duration = crate::config::defaults::SESSION_TTL.value;

/// Which store this is and whether it answers: what `/readyz` and the logs need.
#[async_trait]
pub trait Health: Send + Sync + 'static {
    /// A short name for logs and `/readyz` ("memory", "redis", "redis-cluster").
    fn kind(&self) -> &'static str;

    /// Answers when the store is reachable (for `/readyz`).
    async fn ping(&self) -> StoreResult<()>;
}

/// Every seam at once: what a backend is, and what the node wires (`Arc<dyn Store>`). Never
/// implemented by hand: a type that implements every seam is a `Store`.
pub trait Store: Health + Campaigns + Counting + Reads + Signups + Outbox + Secrets + Orgs + Units {}

impl<T: Health + Campaigns + Counting + Reads + Signups + Outbox + Secrets + Orgs + Units> Store for T {}
