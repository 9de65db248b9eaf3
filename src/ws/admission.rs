//! Admission: everything that can refuse a socket with an HTTP status before the upgrade.
//! [`Admission::check`] has no side effect but recording a failed operator authentication
//! (query, origin, the client's socket limit, campaign, tokens, ids);
//! [`Admission::admit`] reserves a connection and the client's socket, claims the session in
//! the store, registers the viewer and builds the welcome. Counting starts there, and ends
//! when the [`Admitted`] socket is dropped.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::net::IpAddr;

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::web;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::auth::{is_unit_code, random_id, Auth, TokenError};
use crate::broadcast::index::CampaignIndex;
use crate::campaign::{is_campaign_id, is_client_id, is_region, Access, Campaign};
use crate::clients::auth_failures::AuthFailures;
use crate::clients::connects::ConnectBudget;
use crate::clients::sockets::{ClientSocket, SocketsPerClient};
use crate::clients::{ClientKey, TrustedProxies};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::protocol::limits::{CLIENT_ID, REGION, UNIT_CODE};
use crate::protocol::stats::Frames;
use crate::protocol::Welcome;
use crate::store::{Store, StoreError};
use crate::tally::claim::{Claimer, PendingClaim};
use crate::tally::session::SessionSlot;
use crate::tally::units::Place;
use crate::tally::{CampaignTally, Tallies};

/// What admission touches.
pub struct Admission {
    pub tallies: Arc<Tallies>,
    /// Three seams: `Campaigns` (the campaign asked for), `Counting` (the session claim) and
    /// `Reads` (the welcome's stats).
    pub store: Arc<dyn Store>,
    /// The campaigns this node knows: a socket's campaign is looked up here, never in the
    /// store.
    pub index: Arc<CampaignIndex>,
    pub auth: Arc<Auth>,
    pub metrics: Arc<Metrics>,
    pub connections: Arc<Connections>,
    /// `--allowed-origins` (empty: any).
    pub allowed_origins: Vec<String>,
    /// `--tick`, told to clients in the welcome.
    pub tick: Duration,
    /// This node's name in presence, recorded with every session it claims.
    pub node_id: String,
    /// `--presence-ttl`: a node's first claim in a campaign starts its lease.
    pub lease: Duration,
    /// `--claim-wait`: how long a welcome waits for the session's claim before the socket
    /// is admitted with its claim pending (see `tally::claim`).
    pub claim_wait: Duration,
    /// The first pause between tries of a pending claim (`--flush-interval`).
    pub claim_retry: Duration,
    /// Cancelled at shutdown: new sockets get 503.
    pub shutdown: CancellationToken,
    /// `--trusted-proxies`: whose `X-Forwarded-For` names the client (and whose
    /// `--region-header` is believed).
    pub trusted_proxies: TrustedProxies,
    /// `--region-header`: the edge's word on the viewer's region.
    pub region_header: Option<HeaderName>,
    /// `--max-sockets-per-client` for viewer sockets (`None`: no limit).
    pub sockets_per_client: Option<Arc<SocketsPerClient>>,
    /// Failed operator authentications per client, shared with the operator routes.
    pub auth_failures: Arc<AuthFailures>,
    /// `--max-connects-per-client` for viewer upgrades (`None`: no limit).
    pub connects: Option<Arc<ConnectBudget>>,
}

/// The message of a viewer upgrade past `--max-connects-per-client` (and the way
/// [`reject_reason`] tells it from the operator lockout's 429).
const TOO_MANY_CONNECTS: &str = "too many socket connects from this address; retry later";

/// Query of `GET /ws/v1/campaigns/{id}`.
#[derive(Debug, Deserialize)]
struct WsQuery {
    viewer: Option<String>,
    session: Option<String>,
    region: Option<String>,
    /// The viewer's unit of the campaign's org: unverified (a token's `unit` claim wins).
    unit: Option<String>,
    token: Option<String>,
    role: Option<String>,
    /// The protocol version the client speaks (absent: 1). From 2 it takes a welcome with
    /// `acked_seq: null` while the store cannot claim its session.
    proto: Option<u32>,
    /// An operator ticket (`auth::ticket`): the way to authenticate without the token.
    ticket: Option<String>,
}

/// What the checks found: everything needed to admit the socket.
pub struct Checked {
    campaign: Campaign,
    operator: bool,
    viewer: String,
    session: String,
    region: Option<String>,
    /// The token's `unit` claim, else the query's.
    unit: Option<String>,
    client: ClientKey,
    /// The client speaks protocol 2 or later.
    proto2: bool,
}

impl Checked {
    /// An operator watcher (exempt from the per-client socket limits).
    pub fn is_operator(&self) -> bool {
        self.operator
    }
}

/// Who is on the other end.
pub enum Peer {
    Viewer {
        slot: Arc<SessionSlot>,
        region: usize,
    },
    /// A viewer admitted while its session's claim was pending: counted once it lands.
    Claiming(Arc<PendingClaim>),
    Operator,
}

impl Peer {
    /// The `role` label of the connection metrics.
    pub fn role(&self) -> &'static str {
        match self {
            Peer::Viewer { .. } | Peer::Claiming(_) => "viewer",
            Peer::Operator => "operator",
        }
    }
}

/// A socket that passed every check, counted in its campaign's tally until dropped.
pub struct Admitted {
    pub tally: Arc<CampaignTally>,
    pub peer: Peer,
    /// The first message to send, taken by whoever sends it (the handshake, with its 101).
    pub welcome: String,
    /// The frames whose stats the welcome carries: a socket that starts getting frames
    /// after a newer one was published catches up on it (`ws::feed`).
    pub welcomed: Arc<Frames>,
    connections: Arc<Connections>,
    metrics: Arc<Metrics>,
    /// The viewer's place in its client's socket limit, given back as this drops.
    _client_socket: Option<ClientSocket>,
}

impl Drop for Admitted {
    /// Undoes what admission counted: the viewer (or watcher) and the connection (the
    /// client's socket goes with the `_client_socket` field).
    fn drop(&mut self) {
        match self.peer {
            Peer::Viewer { ref slot, region } => self.tally.viewer_left(region, slot),
            Peer::Claiming(ref claim) => {
                if let Some(slot) = claim.abandon(&self.tally) {
                    self.tally.viewer_left(claim.region, &slot);
                }
            }
            Peer::Operator => {
                self.tally.watchers.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.connections.give_back();
        self.metrics.connections.with_label_values(&[self.peer.role()]).dec();
    }
}

/// The `reason` label of `livetally_rejected_total` for a refused socket.
pub fn reject_reason(e: &ApiError) -> &'static str {
    match e {
        ApiError::NotFound(_) => "unknown_campaign",
        ApiError::Gone => "campaign_ended",
        ApiError::Unauthorized(_) => "missing_token",
        ApiError::Forbidden(_) => "bad_token",
        ApiError::BadRequest { .. } | ApiError::Upload { .. } => "bad_query",
        ApiError::Unavailable(_) => "unavailable",
        ApiError::Conflict | ApiError::Live | ApiError::InUse(_) => "conflict",
        // Counted with the other per-client budgets (public writes).
        ApiError::TooMany {
            message: TOO_MANY_CONNECTS,
            ..
        } => "client_rate_limited",
        ApiError::TooMany { code, .. } => code.code(),
    }
}

impl Admission {
    /// The region the edge names in `--region-header`, when that is set, the header is
    /// believed from `peer` and its value is a region (anything else is not the viewer's
    /// fault, so it is ignored rather than refused).
    pub fn edge_region<'h>(&self, peer: Option<IpAddr>, headers: &'h HeaderMap) -> Option<&'h str> {
        let name = self.region_header.as_ref()?;
        if !self.trusted_proxies.believes_edge_headers_from(peer) {
            return None;
        }
        headers.get(name)?.to_str().ok().filter(|r| is_region(r))
    }

    /// Every refusal that needs no side effect: shutdown, query, origin, the socket limit of
    /// `client`, campaign, tokens, ids. (A wrong operator token is recorded against
    /// `client`: that is how guessing is limited.) `edge_region`: see
    /// [`edge_region`](Self::edge_region).
    pub async fn check(
        &self,
        id: &str,
        query: &str,
        origin: Option<&HeaderValue>,
        edge_region: Option<&str>,
        client: ClientKey,
    ) -> Result<Checked, ApiError> {
        if self.shutdown.is_cancelled() {
            return Err(ApiError::Unavailable("node is shutting down".into()));
        }
        let q = web::Query::<WsQuery>::from_query(query)
            .map_err(|e| ApiError::BadRequest {
                field: None,
                message: format!("bad query: {e}"),
            })?
            .into_inner();
        if !self.allowed_origins.is_empty() {
            if let Some(origin) = origin {
                if !self.allowed_origins.iter().any(|a| a.as_bytes() == origin.as_bytes()) {
                    return Err(ApiError::Forbidden("origin not allowed"));
                }
            }
        }
        let operator = q.role.as_deref() == Some("operator");
        if let Some(role) = q.role.as_deref() {
            if role != "operator" && role != "viewer" {
                return Err(ApiError::bad("role", "role must be viewer or operator"));
            }
        }
        // Before the store is asked anything: a client at its limit costs no round trip.
        if !operator && self.sockets_per_client.as_ref().is_some_and(|s| s.is_full(&client)) {
            return Err(ApiError::too_many_connections());
        }
        if !is_campaign_id(id) {
            return Err(ApiError::NotFound("campaign"));
        }
        let campaign = self.load_campaign(id).await?;
        if operator {
            self.authenticate_operator(id, &q, client).await?;
        }
        // A viewer's token: required on `access:"token"` campaigns, and when given to a public
        // one it still names the viewer and region, so it must be valid there too.
        let claims =
            if operator || (campaign.access != Access::Token && q.token.as_deref().unwrap_or_default().is_empty()) {
                None
            } else {
                let claims = self
                    .auth
                    .verify_join(q.token.as_deref(), id, (crate::util::now_ms() / 1000) as u64)
                    .map_err(|e| match e {
                        TokenError::Missing => ApiError::Unauthorized("join token required"),
                        TokenError::Invalid => ApiError::Forbidden("invalid or expired join token"),
                    })?;
                Some(claims)
            };
        let (sub, token_region, token_unit) = claims.map(|c| (c.sub, c.region, c.unit)).unwrap_or_default();
        let viewer = match sub {
            Some(sub) if q.viewer.as_ref().is_some_and(|v| *v != sub) => {
                return Err(ApiError::Forbidden("viewer differs from the token's sub"));
            }
            Some(sub) => sub,
            None => client_id(q.viewer, "viewer")?,
        };
        let session = client_id(q.session, "session")?;
        if let Some(r) = q.region.as_deref() {
            if !is_region(r) {
                return Err(ApiError::bad("region", format!("region must match {REGION}")));
            }
        }
        if q.unit.as_deref().is_some_and(|u| !is_unit_code(u)) {
            return Err(ApiError::bad("unit", format!("unit must match {UNIT_CODE}")));
        }
        Ok(Checked {
            campaign,
            operator,
            viewer,
            session,
            unit: token_unit.or(q.unit),
            // The token's claim, then the edge, then the query.
            region: token_region.or(edge_region.map(str::to_owned)).or(q.region),
            client,
            proto2: q.proto.is_some_and(|p| p >= 2),
        })
    }

    /// An operator socket's credentials: a ticket, spent here once and for all (the one
    /// side effect of [`check`](Self::check) besides a failure recorded against `client`),
    /// or the token in the query, deprecated since it ends up in logs.
    async fn authenticate_operator(&self, id: &str, q: &WsQuery, client: ClientKey) -> Result<(), ApiError> {
        let Some(ticket) = q.ticket.as_deref() else {
            let check = || {
                self.auth.check_operator(q.token.as_deref()).map_err(|e| match e {
                    TokenError::Missing => ApiError::Unauthorized("operator ticket or token required"),
                    TokenError::Invalid => ApiError::Forbidden("wrong operator token"),
                })
            };
            return Ok(self.auth_failures.authenticate(
                client,
                Instant::now(),
                check,
                ApiError::is_failed_authentication,
            )?);
        };
        let verified = self.auth.verify_ticket(ticket, id, crate::util::now_ms());
        let check = || match &verified {
            Ok(_) => Ok(()),
            Err(_) => Err(ApiError::Forbidden("invalid or expired operator ticket")),
        };
        self.auth_failures
            .authenticate(client, Instant::now(), check, ApiError::is_failed_authentication)?;
        let Ok(spend) = verified else {
            return Err(ApiError::Forbidden("invalid or expired operator ticket"));
        };
        match self.store.spend_once(&spend.nonce, spend.ttl).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(ApiError::Forbidden("operator ticket already used")),
            Err(e) => {
                self.metrics.store_errors.inc();
                Err(ApiError::from(e))
            }
        }
    }

    /// The frames a welcome carries. Before this node's first tick of the campaign they
    /// are read from the store once (and published, so the sockets behind it skip the
    /// read): a welcome with zeros would show a page 0 likes until the next tick. A failed
    /// read keeps the zeros; the tick corrects them.
    async fn first_frames(&self, tally: &CampaignTally) -> Arc<Frames> {
        let frames = tally.frames.borrow().clone();
        if frames.has_numbers() {
            return frames;
        }
        let c = &tally.campaign;
        let at = crate::util::now_ms();
        // Within the claim's wait: a store that hangs must not hold the welcome longer.
        match tokio::time::timeout(self.claim_wait, self.store.stats(&c.id, &c.kinds, at)).await {
            Ok(Ok(stats)) if !stats.ended => {
                let read = Arc::new(Frames::build(&c.id, at, &stats));
                tally.frames.send_if_modified(|current| {
                    let first = !current.has_numbers();
                    if first {
                        *current = read.clone();
                    }
                    first
                });
                read
            }
            _ => frames,
        }
    }

    /// Admits a checked socket: reserves a connection (and a viewer's place in its
    /// client's limit), claims the session in the store, registers the viewer and builds the
    /// welcome. Counting starts here.
    pub async fn admit(&self, checked: Checked) -> Result<Admitted, ApiError> {
        let Checked {
            campaign,
            operator,
            viewer,
            session,
            region,
            unit,
            client,
            proto2,
        } = checked;
        let id = campaign.id.as_str();
        // Taken for real here (`check` only looked), so a burst from one client cannot
        // slip past the limit between its checks.
        let client_socket = match &self.sockets_per_client {
            Some(sockets) if !operator => Some(sockets.try_take(client).ok_or_else(ApiError::too_many_connections)?),
            _ => None,
        };
        if !self.connections.try_take() {
            return Err(ApiError::Unavailable("node is at its connection limit".into()));
        }
        let reservation = Reservation::new(&self.connections);
        let tally = self.tallies.open(&campaign).await;
        if tally.ended.is_cancelled() {
            return Err(ApiError::Gone);
        }
        // Last of the checks, so only an upgrade that passed every other one spends a
        // token; before the claim, so a refused one leaves no session state.
        if !operator {
            self.spend_connect(client)?;
        }
        let frames = self.first_frames(&tally).await;
        let peer = if operator {
            tally.watchers.fetch_add(1, Ordering::Relaxed);
            Peer::Operator
        } else {
            let unit = tally.units.get().map(|u| u.place(unit.as_deref()));
            self.claim(
                &tally,
                (session.clone(), viewer.clone()),
                (region.as_deref(), unit),
                proto2,
            )
            .await?
        };
        let acked_seq = match &peer {
            Peer::Viewer { slot, .. } => Some(slot.acked()),
            Peer::Claiming(_) => None,
            Peer::Operator => Some(0),
        };
        // A client of protocol 1 gets its welcome when the claim lands (`ws::connection`).
        let welcome = match &peer {
            Peer::Claiming(claim) if !claim.proto2 => String::new(),
            _ => Welcome {
                campaign: id,
                role: peer.role(),
                viewer: &viewer,
                session: &session,
                acked_seq,
                tick_ms: self.tick.as_millis() as u64,
                stats: if operator {
                    &frames.operator_stats
                } else {
                    &frames.viewer_stats
                },
            }
            .to_text(),
        };
        reservation.keep();
        let role = peer.role();
        self.metrics.connections.with_label_values(&[role]).inc();
        self.metrics.connections_opened.with_label_values(&[role]).inc();
        Ok(Admitted {
            tally,
            peer,
            welcome,
            welcomed: frames,
            connections: self.connections.clone(),
            metrics: self.metrics.clone(),
            _client_socket: client_socket,
        })
    }

    /// Claims a viewer's session, waiting at most `--claim-wait`. A session the node made up
    /// is claimed too: the client may resume it later, and only a claimed session can be
    /// fenced once it is forgotten. When the store fails or is slower, the socket is
    /// admitted with its claim pending and a task finishes it (`tally::claim`): a store
    /// outage refuses no viewer of a campaign this node holds.
    async fn claim(
        &self,
        tally: &Arc<CampaignTally>,
        (session, viewer): (String, String),
        (region, unit): (Option<&str>, Option<Arc<Place>>),
        proto2: bool,
    ) -> Result<Peer, ApiError> {
        let campaign = &tally.campaign;
        let region_name = campaign.region_of(region);
        let region = tally.region_index(&region_name);
        let claimer = Claimer {
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            node: self.node_id.clone(),
            region: region_name,
            unit: unit.clone(),
            lease: self.lease,
            retry: self.claim_retry,
        };
        let mut first = claimer.claim(&campaign.id, &session);
        let first = match tokio::time::timeout(self.claim_wait, &mut first).await {
            Ok(Ok((epoch, acked))) => {
                let slot =
                    Arc::new(SessionSlot::new(session, viewer, epoch, acked, campaign.kinds.len()).with_unit(unit));
                tally.viewer_joined(region, &slot);
                return Ok(Peer::Viewer { slot, region });
            }
            Ok(Err(e @ StoreError::Unavailable(_))) => {
                self.metrics.store_errors.inc();
                tracing::debug!(campaign = %campaign.id, error = %e, "claim failed; admitted, claimed later");
                None
            }
            Ok(Err(e)) => {
                self.metrics.store_errors.inc();
                return Err(ApiError::from(e));
            }
            Err(_) => Some(first),
        };
        let claim = Arc::new(PendingClaim::new(
            tally,
            session,
            viewer,
            (region, unit),
            proto2,
            self.tick.as_millis() as u64,
        ));
        tokio::spawn(claimer.claim_later(claim.clone(), tally.clone(), first));
        Ok(Peer::Claiming(claim))
    }

    /// Spends one viewer upgrade of `client`'s connect budget, or refuses it (429).
    fn spend_connect(&self, client: ClientKey) -> Result<(), ApiError> {
        match &self.connects {
            Some(budget) => budget
                .spend(&client)
                .map_err(|wait| ApiError::rate_limited(TOO_MANY_CONNECTS, wait)),
            None => Ok(()),
        }
    }

    /// What a plain GET of the socket URL answers for `client` once every other check
    /// passed: 429 while an upgrade of its was refused for its connect budget (nothing is
    /// spent: the SDK asks this after a failed upgrade, before its next try).
    pub fn connect_refused(&self, client: &ClientKey) -> Result<(), ApiError> {
        match self.connects.as_ref().and_then(|b| b.refused_for(client)) {
            Some(wait) => Err(ApiError::rate_limited(TOO_MANY_CONNECTS, wait)),
            None => Ok(()),
        }
    }

    /// The campaign behind a socket, from the node's index (no store round trip per
    /// connect; a campaign created on another node is there within a tick).
    async fn load_campaign(&self, id: &str) -> Result<Campaign, ApiError> {
        let entry = self.index.get(id)?.ok_or(ApiError::NotFound("campaign"))?;
        if !entry.campaign.is_live() {
            return Err(ApiError::Gone);
        }
        Ok(entry.campaign.clone())
    }
}

/// A valid client id, or a fresh one when absent.
fn client_id(given: Option<String>, field: &'static str) -> Result<String, ApiError> {
    match given {
        None => Ok(random_id(16)),
        Some(v) if is_client_id(&v) => Ok(v),
        Some(_) => Err(ApiError::bad(field, format!("{field} must match {CLIENT_ID}"))),
    }
}

mod connections;

pub use connections::Connections;
use connections::Reservation;

#[cfg(test)]
mod tests;
