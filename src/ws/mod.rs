//! Step one: the viewer socket. [`handshake::accept`] takes the upgrade request from
//! actix-http, [`check`]s everything that can be refused with an HTTP status before the
//! upgrade (campaign, origin, tokens, ids), [`admit`]s the socket (connection limit,
//! session claim in the store, viewer count), then hands it to [`connection::run`].

pub mod connection;
pub mod handshake;
pub mod protocol;
pub mod transport;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use actix_web::http::header::HeaderValue;
use actix_web::{web, HttpRequest};
use serde::Deserialize;

use crate::auth::{random_id, TokenError};
use crate::campaign::{is_campaign_id, is_client_id, is_region, Access, Campaign};
use crate::error::ApiError;
use crate::node::NodeCtx;
use crate::tally::session::SessionSlot;
use crate::tally::CampaignTally;
use connection::Peer;

/// Query of `GET /ws/v1/campaigns/{id}`.
#[derive(Debug, Deserialize)]
pub struct WsQuery {
    viewer: Option<String>,
    session: Option<String>,
    region: Option<String>,
    token: Option<String>,
    role: Option<String>,
}

/// `GET /ws/v1/campaigns/{id}` without upgrade headers (a WebSocket upgrade never gets
/// here: actix-http hands it to [`handshake::accept`]). Answers what the upgrade would be
/// refused with, else 400; it never counts anyone.
pub async fn not_upgraded(
    req: HttpRequest,
    path: web::Path<String>,
    ctx: web::Data<NodeCtx>,
) -> Result<actix_web::HttpResponse, ApiError> {
    match check(&ctx, &path, req.query_string(), req.headers().get("origin")).await {
        Err(e) => {
            ctx.metrics.rejected(reject_reason(&e));
            Err(e)
        }
        Ok(_) => {
            ctx.metrics.rejected("not_websocket");
            Err(not_websocket())
        }
    }
}

fn not_websocket() -> ApiError {
    ApiError::BadRequest {
        field: None,
        message: "expected a WebSocket upgrade request".into(),
    }
}

pub(crate) fn reject_reason(e: &ApiError) -> &'static str {
    match e {
        ApiError::NotFound(_) => "unknown_campaign",
        ApiError::Gone => "campaign_ended",
        ApiError::Unauthorized(_) => "missing_token",
        ApiError::Forbidden(_) => "bad_token",
        ApiError::BadRequest { .. } => "bad_query",
        ApiError::Unavailable(_) => "unavailable",
        ApiError::Conflict => "conflict",
    }
}

/// A socket that passed every check, registered in its campaign's tally.
pub struct Admitted {
    tally: Arc<CampaignTally>,
    peer: Peer,
    welcome: String,
}

/// Decrements the connection count if admission fails after reserving a place.
struct Reservation<'a>(&'a NodeCtx, bool);

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.1 {
            self.0.connections.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// What the checks found: everything needed to admit the socket.
pub struct Checked {
    campaign: Campaign,
    operator: bool,
    viewer: String,
    session: String,
    given_session: bool,
    region: Option<String>,
}

/// Every refusal that needs no side effect: shutdown, query, origin, campaign, tokens, ids.
pub async fn check(ctx: &NodeCtx, id: &str, query: &str, origin: Option<&HeaderValue>) -> Result<Checked, ApiError> {
    if ctx.shutdown.is_cancelled() {
        return Err(ApiError::Unavailable("node is shutting down".into()));
    }
    let q = web::Query::<WsQuery>::from_query(query)
        .map_err(|e| ApiError::BadRequest {
            field: None,
            message: format!("bad query: {e}"),
        })?
        .into_inner();
    if !ctx.config.allowed_origins.is_empty() {
        if let Some(origin) = origin {
            if !ctx
                .config
                .allowed_origins
                .iter()
                .any(|a| a.as_bytes() == origin.as_bytes())
            {
                return Err(ApiError::Forbidden("origin not allowed"));
            }
        }
    }
    if !is_campaign_id(id) {
        return Err(ApiError::NotFound("campaign"));
    }
    let campaign = load_campaign(ctx, id).await?;
    let operator = q.role.as_deref() == Some("operator");
    if let Some(role) = q.role.as_deref() {
        if role != "operator" && role != "viewer" {
            return Err(ApiError::bad("role", "role must be viewer or operator"));
        }
    }
    if operator {
        ctx.auth.check_operator(q.token.as_deref()).map_err(|e| match e {
            TokenError::Missing => ApiError::Unauthorized("operator token required"),
            TokenError::Invalid => ApiError::Forbidden("wrong operator token"),
        })?;
    } else if campaign.access == Access::Token {
        ctx.auth
            .verify_join(q.token.as_deref(), id, (crate::now_ms() / 1000) as u64)
            .map_err(|e| match e {
                TokenError::Missing => ApiError::Unauthorized("join token required"),
                TokenError::Invalid => ApiError::Forbidden("invalid or expired join token"),
            })?;
    }
    let viewer = client_id(q.viewer, "viewer")?;
    let given_session = q.session.is_some();
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
        given_session,
        region: q.region,
    })
}

/// Admits a checked socket: reserves a connection, claims the session in the store,
/// registers the viewer and builds the welcome. Counting starts here.
pub async fn admit(ctx: &NodeCtx, checked: Checked) -> Result<Admitted, ApiError> {
    let Checked {
        campaign,
        operator,
        viewer,
        session,
        given_session,
        region,
    } = checked;
    let id = campaign.id.as_str();
    // Reserve a place before the store round trip so a connect storm cannot overshoot.
    if ctx.connections.fetch_add(1, Ordering::Relaxed) >= ctx.max_connections {
        ctx.connections.fetch_sub(1, Ordering::Relaxed);
        return Err(ApiError::Unavailable("node is at its connection limit".into()));
    }
    let mut reservation = Reservation(ctx, false);
    let tally = ctx.tallies.get_or_create(&campaign);
    if tally.ended.is_cancelled() {
        return Err(ApiError::Gone);
    }
    let stats = tally.frames.borrow().clone();
    let welcome_stats = if operator {
        &stats.operator_stats
    } else {
        &stats.viewer_stats
    };
    let tick_ms = ctx.config.tick.as_millis();
    let peer = if operator {
        tally.watchers.fetch_add(1, Ordering::Relaxed);
        Peer::Operator
    } else {
        let (epoch, acked) = if given_session {
            ctx.store.claim_session(id, &session).await.map_err(|e| {
                ctx.metrics.store_errors.inc();
                ApiError::from(e)
            })?
        } else {
            (0, 0)
        };
        let region = tally.region_index(&campaign.region_of(region.as_deref()));
        let slot = Arc::new(SessionSlot::new(
            session.clone(),
            viewer.clone(),
            epoch,
            acked,
            campaign.kinds.len(),
        ));
        tally.viewer_joined(region, &viewer);
        Peer::Viewer { slot, region }
    };
    let acked = match &peer {
        Peer::Viewer { slot, .. } => slot.acked(),
        Peer::Operator => 0,
    };
    let welcome = format!(
        r#"{{"type":"welcome","campaign":{},"role":"{}","viewer":{},"session":{},"acked_seq":{},"tick_ms":{},"stats":{}}}"#,
        json_str(id),
        if operator { "operator" } else { "viewer" },
        json_str(&viewer),
        json_str(&session),
        acked,
        tick_ms,
        welcome_stats
    );
    reservation.1 = true;
    let role = peer.role();
    ctx.metrics.connections.with_label_values(&[role]).inc();
    ctx.metrics.connections_opened.with_label_values(&[role]).inc();
    Ok(Admitted { tally, peer, welcome })
}

fn json_str(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// The campaign behind a socket: the node's cached copy when a tally exists (no store
/// round trip per connect), else the store's.
async fn load_campaign(ctx: &NodeCtx, id: &str) -> Result<Campaign, ApiError> {
    if let Some(t) = ctx.tallies.get(id) {
        if t.ended.is_cancelled() {
            return Err(ApiError::Gone);
        }
        return Ok(t.campaign.clone());
    }
    let c = ctx
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
