//! Public routes: a campaign with its stats, and share links (registrations: `registrations`).

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::campaign;
use super::Api;
use crate::campaign::share_channel;
use crate::error::ApiError;
use crate::protocol::stats::ViewerStats;

/// The viewer stats object read fresh from the store.
async fn stats_value(api: &Api, c: &crate::campaign::Campaign) -> Result<serde_json::Value, ApiError> {
    let at = crate::util::now_ms();
    let s = api.store.stats(&c.id, &c.kinds, at).await?;
    // unwrap: a struct of strings and integers always serialises.
    Ok(serde_json::to_value(ViewerStats::new(&c.id, at, &s)).unwrap())
}

/// `GET /api/v1/campaigns/{id}`
pub async fn get(api: web::Data<Api>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let c = campaign(&api, &id).await?;
    let stats = stats_value(&api, &c).await?;
    // unwrap: see above.
    let mut body = serde_json::to_value(&c).unwrap();
    body["stats"] = stats;
    Ok(HttpResponse::Ok().json(body))
}

/// `GET /api/v1/campaigns/{id}/stats`
pub async fn stats(api: web::Data<Api>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let c = campaign(&api, &id).await?;
    Ok(HttpResponse::Ok().json(stats_value(&api, &c).await?))
}

/// Takes one of the client's public writes (`--max-public-writes-per-client`, shared by
/// registrations and share visits); past the budget, how long until the next one, and the
/// refusal is counted as `client_rate_limited`.
pub(super) fn public_write(api: &Api, req: &HttpRequest) -> Result<(), Duration> {
    let Some(writes) = &api.public_writes else {
        return Ok(());
    };
    writes
        .check(&api.client(req))
        .inspect_err(|_| api.metrics.rejected("client_rate_limited"))
}

#[derive(Debug, Deserialize)]
pub struct ShareQuery {
    via: Option<String>,
}

/// `GET /s/{id}?via=CHANNEL`: 302 to the viewer page, one share visit counted while live
/// and within the client's public writes (past them the visitor still gets the page).
/// Visits go through the node's tally and reach the store in the next flush, so a viral
/// link costs the store one write per flush, not one per click.
pub async fn share(
    req: HttpRequest,
    api: web::Data<Api>,
    id: web::Path<String>,
    q: web::Query<ShareQuery>,
) -> Result<HttpResponse, ApiError> {
    let c = match api.tallies.get(&id) {
        Some(t) => t.campaign.clone(),
        None => campaign(&api, &id).await?,
    };
    let ended = api.tallies.get(&id).is_some_and(|t| t.ended.is_cancelled());
    if c.is_live() && !ended && public_write(&api, &req).is_ok() {
        api.tallies
            .get_or_create(&c)
            .share_visit(share_channel(q.via.as_deref()));
    }
    Ok(HttpResponse::Found()
        .insert_header(("location", format!("/c/{}", c.id)))
        .insert_header(("cache-control", "no-store"))
        .finish())
}
