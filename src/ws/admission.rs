//! Admission: everything that can refuse a socket with an HTTP status before the upgrade.
//! [`Admission::check`] has no side effect but recording a failed operator authentication
//! (query, origin, the client's socket limit, campaign, tokens, ids);
//! [`Admission::admit`] reserves a connection and the client's socket, claims the session in
//! the store, registers the viewer and builds the welcome. Counting starts there, and ends
//! when the [`Admitted`] socket is dropped.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::net::IpAddr;

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::web;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::auth::{random_id, Auth, TokenError};
use crate::campaign::{is_campaign_id, is_client_id, is_region, Access, Campaign};
use crate::clients::auth_failures::AuthFailures;
use crate::clients::sockets::{ClientSocket, SocketsPerClient};
use crate::clients::{ClientKey, TrustedProxies};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::protocol::Welcome;
use crate::store::{Owner, Store};
use crate::tally::session::SessionSlot;
use crate::tally::{CampaignTally, Tallies};

/// Open sockets of this node (viewers and operators) against `--max-connections`.
#[derive(Debug)]
pub struct Connections {
    open: AtomicUsize,
    max: usize,
}

impl Connections {
    pub fn new(max: usize) -> Self {
        Self {
            open: AtomicUsize::new(0),
            max,
        }
    }

    /// Takes a place, or `false` at the limit. Taken before the store round trip, so a
    /// connect storm cannot overshoot.
    fn try_take(&self) -> bool {
        if self.open.fetch_add(1, Ordering::Relaxed) >= self.max {
            self.open.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    fn give_back(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

/// What admission touches.
pub struct Admission {
    pub tallies: Arc<Tallies>,
    pub store: Arc<dyn Store>,
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
}

/// Query of `GET /ws/v1/campaigns/{id}`.
#[derive(Debug, Deserialize)]
struct WsQuery {
    viewer: Option<String>,
    session: Option<String>,
    region: Option<String>,
    token: Option<String>,
    role: Option<String>,
}

/// What the checks found: everything needed to admit the socket.
pub struct Checked {
    campaign: Campaign,
    operator: bool,
    viewer: String,
    session: String,
    region: Option<String>,
    client: ClientKey,
}

/// Who is on the other end.
pub enum Peer {
    Viewer { slot: Arc<SessionSlot>, region: usize },
    Operator,
}

impl Peer {
    /// The `role` label of the connection metrics.
    pub fn role(&self) -> &'static str {
        match self {
            Peer::Viewer { .. } => "viewer",
            Peer::Operator => "operator",
        }
    }
}

/// A socket that passed every check, counted in its campaign's tally until dropped.
pub struct Admitted {
    pub tally: Arc<CampaignTally>,
    pub peer: Peer,
    /// The first message to send.
    pub welcome: String,
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
            Peer::Operator => {
                self.tally.watchers.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.connections.give_back();
        self.metrics.connections.with_label_values(&[self.peer.role()]).dec();
    }
}

/// Gives a reserved place back if admission fails after taking it.
struct Reservation<'a>(&'a Connections, bool);

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.1 {
            self.0.give_back();
        }
    }
}

/// The `reason` label of `livetally_rejected_total` for a refused socket.
pub fn reject_reason(e: &ApiError) -> &'static str {
    match e {
        ApiError::NotFound(_) => "unknown_campaign",
        ApiError::Gone => "campaign_ended",
        ApiError::Unauthorized(_) => "missing_token",
        ApiError::Forbidden(_) => "bad_token",
        ApiError::BadRequest { .. } => "bad_query",
        ApiError::Unavailable(_) => "unavailable",
        ApiError::Conflict | ApiError::Live => "conflict",
        ApiError::TooMany { code, .. } => code,
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
            let check = || {
                self.auth.check_operator(q.token.as_deref()).map_err(|e| match e {
                    TokenError::Missing => ApiError::Unauthorized("operator token required"),
                    TokenError::Invalid => ApiError::Forbidden("wrong operator token"),
                })
            };
            self.auth_failures
                .authenticate(client, Instant::now(), check, ApiError::is_failed_authentication)?;
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
        let (sub, token_region) = claims.map(|c| (c.sub, c.region)).unwrap_or_default();
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
                return Err(ApiError::bad("region", "region must match ^[A-Za-z0-9-]{1,16}$"));
            }
        }
        Ok(Checked {
            campaign,
            operator,
            viewer,
            session,
            // The token's claim, then the edge, then the query.
            region: token_region.or(edge_region.map(str::to_owned)).or(q.region),
            client,
        })
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
            client,
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
        let mut reservation = Reservation(&self.connections, false);
        let tally = self.tallies.get_or_create(&campaign);
        if tally.ended.is_cancelled() {
            return Err(ApiError::Gone);
        }
        let frames = tally.frames.borrow().clone();
        let peer = if operator {
            tally.watchers.fetch_add(1, Ordering::Relaxed);
            Peer::Operator
        } else {
            let region_name = campaign.region_of(region.as_deref());
            let owner = Owner {
                node: &self.node_id,
                region: &region_name,
                lease: self.lease,
            };
            // A session the node made up is claimed too: the client may resume it later, and
            // only a claimed session can be fenced once it is forgotten.
            let (epoch, acked) = self.store.claim_session(id, &session, &owner).await.map_err(|e| {
                self.metrics.store_errors.inc();
                ApiError::from(e)
            })?;
            let region = tally.region_index(&region_name);
            let slot = Arc::new(SessionSlot::new(
                session.clone(),
                viewer.clone(),
                epoch,
                acked,
                campaign.kinds.len(),
            ));
            tally.viewer_joined(region, &slot);
            Peer::Viewer { slot, region }
        };
        let acked_seq = match &peer {
            Peer::Viewer { slot, .. } => slot.acked(),
            Peer::Operator => 0,
        };
        let welcome = Welcome {
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
        .to_text();
        reservation.1 = true;
        let role = peer.role();
        self.metrics.connections.with_label_values(&[role]).inc();
        self.metrics.connections_opened.with_label_values(&[role]).inc();
        Ok(Admitted {
            tally,
            peer,
            welcome,
            connections: self.connections.clone(),
            metrics: self.metrics.clone(),
            _client_socket: client_socket,
        })
    }

    /// The campaign behind a socket: the node's cached copy when a tally exists (no store
    /// round trip per connect), else the store's.
    /// An ended tally sends the question to the store: the id may have been deleted and
    /// created again since.
    async fn load_campaign(&self, id: &str) -> Result<Campaign, ApiError> {
        if let Some(t) = self.tallies.get(id).filter(|t| !t.ended.is_cancelled()) {
            return Ok(t.campaign.clone());
        }
        let c = self
            .store
            .get_campaign(id)
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::NotFound("campaign"))?;
        if !c.is_live() {
            return Err(ApiError::Gone);
        }
        Ok(c)
    }
}

/// A valid client id, or a fresh one when absent.
fn client_id(given: Option<String>, field: &'static str) -> Result<String, ApiError> {
    match given {
        None => Ok(random_id(16)),
        Some(v) if is_client_id(&v) => Ok(v),
        Some(_) => Err(ApiError::bad(
            field,
            format!("{field} must match ^[A-Za-z0-9_-]{{8,64}}$"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Batch, SessionDelta};
    use crate::ws::testing::{rig, rig_with};
    use actix_web::ResponseError;

    fn client(ip: &str) -> ClientKey {
        ClientKey::of(ip.parse().unwrap())
    }

    async fn admit_from(a: &Admission, query: &str, from: &str) -> Result<Admitted, ApiError> {
        a.admit(a.check("launch", query, None, None, client(from)).await?).await
    }

    async fn admit(a: &Admission, query: &str) -> Result<Admitted, ApiError> {
        admit_from(a, query, "198.51.100.1").await
    }

    #[tokio::test]
    async fn the_connection_limit_refuses_until_a_socket_leaves() {
        let rig = rig_with(1).await;
        let a = &rig.admission;
        let first = admit(a, "").await.unwrap();
        let refused = admit(a, "").await.err().unwrap();
        assert_eq!(refused.status_code().as_u16(), 503);
        assert_eq!(a.connections.open(), 1);
        drop(first);
        assert_eq!(a.connections.open(), 0);
        let again = admit(a, "").await.unwrap();
        assert_eq!(again.tally.local_viewers(), 1);
        assert_eq!(a.metrics.connections.with_label_values(&["viewer"]).get(), 1);
    }

    #[tokio::test]
    async fn a_resumed_session_is_welcomed_with_what_the_store_acked() {
        let rig = rig().await;
        let (epoch, _) = rig
            .store
            .claim_session("launch", "session-0001", &crate::store::flaky::N1)
            .await
            .unwrap();
        let delta = SessionDelta {
            session: "session-0001".into(),
            viewer: "viewer-0001".into(),
            epoch,
            seq: 5,
            counts: vec![("like".into(), 5)],
        };
        let batch = Batch {
            campaign: "launch".into(),
            sessions: vec![delta],
            ..Default::default()
        };
        rig.store.apply(&batch).await.unwrap();
        let s = admit(&rig.admission, "viewer=viewer-0001&session=session-0001")
            .await
            .unwrap();
        let welcome: serde_json::Value = serde_json::from_str(&s.welcome).unwrap();
        assert_eq!(welcome["acked_seq"], 5);
        assert_eq!(welcome["session"], "session-0001");
        assert_eq!(welcome["stats"]["viewers"], 0, "zeros until the first tick");
    }

    #[tokio::test]
    async fn refusals_carry_their_status_and_count_nobody() {
        let rig = rig().await;
        let a = &rig.admission;
        for (query, status) in [
            ("viewer=short", 400),
            ("region=far%20away", 400),
            ("role=admin", 400),
            ("role=operator", 401),
            ("role=operator&token=wrong-token-0123456789", 403),
        ] {
            let e = admit(a, query).await.err().unwrap();
            assert_eq!(e.status_code().as_u16(), status, "{query}");
        }
        assert_eq!(
            a.check("nope", "", None, None, client("198.51.100.1"))
                .await
                .err()
                .unwrap()
                .status_code()
                .as_u16(),
            404
        );
        rig.admission.shutdown.cancel();
        assert_eq!(admit(a, "").await.err().unwrap().status_code().as_u16(), 503);
        assert_eq!(a.connections.open(), 0);
        assert_eq!(rig.tallies.get("launch").map(|t| t.sockets()).unwrap_or(0), 0);
    }

    #[tokio::test]
    async fn a_client_at_its_socket_limit_is_refused_until_one_of_its_sockets_leaves() {
        let mut rig = rig().await;
        rig.admission.sockets_per_client = Some(Arc::new(SocketsPerClient::new(2.try_into().unwrap())));
        let a = &rig.admission;
        let first = admit(a, "").await.unwrap();
        let _second = admit(a, "").await.unwrap();
        let refused = admit(a, "").await.err().unwrap();
        assert_eq!(refused.status_code().as_u16(), 429);
        assert_eq!(refused.code(), "too_many_connections");
        // Before the upgrade and before the store: nothing was counted.
        assert_eq!(a.connections.open(), 2);
        assert_eq!(rig.tallies.get("launch").unwrap().local_viewers(), 2);
        // Another client, and operators of the same one, are not limited.
        let _other = admit_from(a, "", "198.51.100.2").await.unwrap();
        let query = format!("role=operator&token={}", crate::ws::testing::OPERATOR_TOKEN);
        let _operator = admit(a, &query).await.unwrap();
        drop(first);
        let _again = admit(a, "").await.unwrap();
    }

    #[tokio::test]
    async fn wrong_operator_tokens_lock_the_client_out_of_operator_sockets() {
        let rig = rig().await;
        let a = &rig.admission;
        let wrong = "role=operator&token=wrong-token-0123456789";
        for _ in 0..crate::clients::auth_failures::MAX_FAILURES {
            assert_eq!(admit(a, wrong).await.err().unwrap().status_code().as_u16(), 403);
        }
        let locked = admit(a, wrong).await.err().unwrap();
        assert_eq!((locked.status_code().as_u16(), locked.code()), (429, "rate_limited"));
        let right = format!("role=operator&token={}", crate::ws::testing::OPERATOR_TOKEN);
        assert_eq!(admit(a, &right).await.err().unwrap().status_code().as_u16(), 429);
        // Viewers of that client and operators elsewhere are not affected.
        admit(a, "").await.unwrap();
        admit_from(a, &right, "198.51.100.2").await.unwrap();
    }

    fn join_token(a: &Admission, sub: Option<&str>, region: Option<&str>) -> String {
        a.auth.mint_join(&crate::auth::JoinClaims {
            campaign: "launch".into(),
            exp: (crate::util::now_ms() / 1000) as u64 + 60,
            sub: sub.map(Into::into),
            region: region.map(Into::into),
        })
    }

    #[tokio::test]
    async fn a_token_names_the_viewer_and_region() {
        let rig = rig().await;
        let a = &rig.admission;
        let check = |query: String| async move { a.check("launch", &query, None, None, client("198.51.100.1")).await };
        let t = join_token(a, Some("viewer-from-sub"), Some("DE"));
        let c = check(format!("token={t}&region=US")).await.unwrap();
        assert_eq!(
            (c.viewer.as_str(), c.region.as_deref()),
            ("viewer-from-sub", Some("DE"))
        );
        let c = check(format!("token={t}&viewer=viewer-from-sub")).await.unwrap();
        assert_eq!(c.viewer, "viewer-from-sub");
        let e = check(format!("token={t}&viewer=someone-else")).await.err().unwrap();
        assert_eq!(e.status_code().as_u16(), 403);
        // Without claims the query decides, as in v1.
        let plain = join_token(a, None, None);
        let c = check(format!("token={plain}&viewer=viewer-0001&region=US"))
            .await
            .unwrap();
        assert_eq!((c.viewer.as_str(), c.region.as_deref()), ("viewer-0001", Some("US")));
        // A token given to a public campaign must still be valid.
        let e = check("token=nonsense".into()).await.err().unwrap();
        assert_eq!(e.status_code().as_u16(), 403);
    }

    #[tokio::test]
    async fn the_edge_region_is_believed_only_from_trusted_proxies_and_loses_to_the_token() {
        let mut rig = rig().await;
        let mut headers = HeaderMap::new();
        headers.insert(HeaderName::from_static("cf-ipcountry"), HeaderValue::from_static("DE"));
        let peer = Some("10.0.0.7".parse().unwrap());
        assert_eq!(rig.admission.edge_region(peer, &headers), None, "no --region-header");
        rig.admission.region_header = Some(HeaderName::from_static("cf-ipcountry"));
        let a = &rig.admission;
        assert_eq!(a.edge_region(peer, &headers), Some("DE"), "no proxies: any peer");
        let check = |query: String, edge: Option<&'static str>| async move {
            a.check("launch", &query, None, edge, client("198.51.100.1"))
                .await
                .unwrap()
                .region
        };
        assert_eq!(check("region=US".into(), Some("DE")).await.as_deref(), Some("DE"));
        let t = join_token(a, None, Some("FR"));
        assert_eq!(
            check(format!("token={t}&region=US"), Some("DE")).await.as_deref(),
            Some("FR")
        );
        assert_eq!(check("region=US".into(), None).await.as_deref(), Some("US"));
        // Behind proxies only theirs counts; a value that is not a region is ignored.
        let mut rig = rig;
        rig.admission.trusted_proxies = TrustedProxies::new(vec![crate::config::parse_cidr("10.0.0.0/8").unwrap()]);
        let a = &rig.admission;
        assert_eq!(a.edge_region(peer, &headers), Some("DE"));
        assert_eq!(a.edge_region(Some("198.51.100.9".parse().unwrap()), &headers), None);
        assert_eq!(a.edge_region(None, &headers), None);
        headers.insert(
            HeaderName::from_static("cf-ipcountry"),
            HeaderValue::from_static("far away"),
        );
        assert_eq!(a.edge_region(peer, &headers), None);
    }
}
