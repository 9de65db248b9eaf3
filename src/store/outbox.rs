//! Webhook events as the store keeps them: each one is decided and queued in the same
//! atomic step that changes what it reports (a count, the peak, the state, a
//! registration), so it gets exactly one `id` however many nodes see the change, and it
//! cannot be lost between deciding and queuing.
//!
//! Events are numbered per campaign (`<campaign>-<n>`). Every receiver of the deployment
//! setting ([`Receiver`], `GET/PUT /api/v1/webhooks`) has, in each campaign, its own
//! cursor (the last event it passed), lease and backoff: a receiver that fails waits for
//! its own retry and never holds back another, while each receiver still gets a campaign's
//! events in order. An event leaves the queue once every receiver has passed it (delivered,
//! filtered out by its `types`, or given up on); a receiver added later starts at the tail.
//! Nothing is queued while there is no receiver. A campaign's queue holds at most
//! `--webhook-queue-max` events: past it the oldest `registration.created` go first (then
//! the oldest of any type), counted in [`Backlog::dropped`].
//!
//! Erasure removes a person's queued `registration.created` ([`Signups::erase_registration`]
//! and `delete_campaign` both do), so no queue keeps personal data an operator erased.
//!
//! The Redis layout is in `redis/keys.rs` (`events`, `event-regs`, `cursors`,
//! `outbox-state`, `lt:{webhooks}:due`, `lt:{webhooks}:receivers`) and the logic in
//! `redis/lua/events.lua`, `lease.lua`, `settle.lua` and `retarget.lua`; `memory/queues.rs`
//! is the memory store's copy of the same rules. The deliverer reads them through [`Outbox`].
//!
//! [`Signups::erase_registration`]: super::Signups::erase_registration

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::StoreResult;

/// `campaign.ended`: data is the campaign's report, filled in when it is delivered.
pub const ENDED: &str = "campaign.ended";
/// `campaign.milestone`: data `{"metric","threshold","value"}`.
pub const MILESTONE: &str = "campaign.milestone";
/// `campaign.peak`: data `{"peak_viewers","peak_at"}`, at most every [`PEAK_EVERY_MS`].
pub const PEAK: &str = "campaign.peak";
/// `registration.created`: data `{"viewer","fields"}`.
pub const REGISTRATION: &str = "registration.created";
/// Every event type, for a receiver's `types`.
pub const TYPES: [&str; 4] = [ENDED, MILESTONE, PEAK, REGISTRATION];

/// A rising peak is reported at most once a minute per campaign, so a launch whose
/// audience grows every second does not flood the receiver.
pub const PEAK_EVERY_MS: i64 = 60_000;

/// One receiver of the deployment's webhook setting, as stored (the secret included: it
/// signs every request; the API never shows it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receiver {
    /// The server's id for it (`rcv_<hex>`): cursors and logs name it by this.
    pub id: String,
    pub url: String,
    /// The event types it gets; `None`: every type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub types: Option<Vec<String>>,
    pub secret: String,
}

impl Receiver {
    /// Whether events of type `kind` go to this receiver.
    pub fn wants(&self, kind: &str) -> bool {
        self.types.as_ref().is_none_or(|t| t.iter().any(|k| k == kind))
    }

    /// How logs name it: its id, the URL's scheme and host, never its path or query
    /// (which may hold a receiver's own token).
    pub fn label(&self) -> String {
        match reqwest::Url::parse(&self.url) {
            Ok(u) => format!("{} {}://{}", self.id, u.scheme(), u.host_str().unwrap_or("?")),
            Err(_) => self.id.clone(),
        }
    }
}

/// The webhook queues and the setting that says where they go. Events are queued by the
/// other seams' writes (a count, the peak, the end, a registration), never through this one.
#[async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// The deployment's receivers (empty when none is set). Reading them also tells this
    /// store whether to queue events from now on, and which receivers' cursors count.
    async fn receivers(&self) -> StoreResult<Vec<Receiver>>;

    /// Replaces the receivers. A new one starts at the tail of every queue; the cursors of
    /// removed ones go, and events every remaining receiver has passed leave the queue.
    async fn set_receivers(&self, receivers: &[Receiver]) -> StoreResult<()>;

    /// Sets `receivers` only if the setting was never set (the `--webhook-url` seed);
    /// true when it did.
    async fn seed_receivers(&self, receivers: &[Receiver]) -> StoreResult<bool>;

    /// Campaigns whose queue may have an event due at `now_ms` for some receiver, at most
    /// `limit`.
    async fn due_outboxes(&self, now_ms: i64, limit: usize) -> StoreResult<Vec<String>>;

    /// Leases `receiver`'s next event of `campaign` to `node` for `lease`.
    async fn lease_event(&self, campaign: &str, receiver: &str, node: &str, lease: Duration) -> StoreResult<Lease>;

    /// Ends `node`'s lease of event `id` for `receiver`: passed (delivered, filtered or
    /// given up: the cursor moves on) or retried later.
    async fn settle_event(&self, to: &Delivery<'_>, outcome: Settle) -> StoreResult<()>;

    /// Events queued over every campaign, and those the bound dropped since the last call.
    async fn backlog(&self) -> StoreResult<Backlog>;
}

/// Whose lease a settle ends.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub campaign: &'a str,
    pub receiver: &'a str,
    /// The event id (`<campaign>-<n>`).
    pub id: &'a str,
    pub node: &'a str,
}

/// What [`Outbox::backlog`] counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Events queued and not yet passed by every receiver.
    pub pending: u64,
    /// Events the queue bound dropped since the last call.
    pub dropped: u64,
}

/// A receiver's next event of a campaign, leased to one node until it settles or expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeasedEvent {
    pub campaign: String,
    pub id: String,
    /// The event type (`campaign.ended`, ...).
    pub kind: String,
    /// The JSON body as queued: `{"id","type","campaign","at","data"}` (`data` is `null`
    /// for `campaign.ended` until the deliverer fills in the report).
    pub body: String,
    /// Attempts so far for this receiver, this one included.
    pub attempts: u32,
    /// When the first attempt for this receiver was leased (unix ms, store clock).
    pub first_at_ms: i64,
}

/// What [`Outbox::lease_event`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lease {
    /// Nothing queued for this receiver in the campaign.
    Empty,
    /// Its next event is leased by another node or waits for its next try.
    NotDue,
    /// Its next event is this node's to deliver.
    Leased(LeasedEvent),
}

/// How a leased delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settle {
    /// The receiver answered 2xx, or does not take this type: its cursor moves on.
    Delivered,
    /// Try again after `after`.
    Retry { after: Duration },
    /// Given up (retried for the whole retry period): its cursor moves on.
    Dropped,
}

/// The queued body of an event. `data` is JSON already.
pub fn body(id: &str, kind: &str, campaign: &str, at_ms: i64, data: &str) -> String {
    let s = |v: &str| serde_json::Value::from(v).to_string();
    format!(
        r#"{{"id":{},"type":{},"campaign":{},"at":{at_ms},"data":{data}}}"#,
        s(id),
        s(kind),
        s(campaign)
    )
}

/// The `id` field of a queued body (ids are `<campaign>-<n>`: no quotes or escapes).
pub fn body_id(body: &str) -> Option<&str> {
    body.strip_prefix(r#"{"id":""#)?.split('"').next()
}

/// The number of event `id` (`<campaign>-<n>`).
pub fn id_seq(id: &str) -> Option<u64> {
    id.rsplit_once('-')?.1.parse().ok()
}
