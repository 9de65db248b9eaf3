//! Public routes: a campaign with its stats, and share links (registrations: `registrations`).
//! All three answer from the node's campaign index (`broadcast::index`): the stats are the
//! last tick's, and no request costs the store a read (an ended campaign's final numbers
//! are read once per node).

use std::time::Duration;

use actix_web::http::header::ContentType;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::{indexed, Api};
use crate::auth::is_unit_code;
use crate::error::ApiError;

/// `GET /api/v1/campaigns/{id}`
pub async fn get(api: web::Data<Api>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let entry = indexed(&api, &id)?;
    let frames = entry.frames(&*api.store).await?;
    Ok(HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(entry.with_stats(&frames)))
}

/// `GET /api/v1/campaigns/{id}/stats`
pub async fn stats(api: web::Data<Api>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let entry = indexed(&api, &id)?;
    let frames = entry.frames(&*api.store).await?;
    Ok(HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(frames.viewer_stats.clone()))
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
    /// The unit of the campaign's org the link was shared through (unverified, like a
    /// socket's `unit` query); kept in the redirect.
    unit: Option<String>,
}

/// `GET /s/{id}?via=CHANNEL&unit=CODE`: 302 to the viewer page (with `?unit=` when given),
/// one share visit counted (for the unit too, on a campaign with an org) while live and
/// within the client's public writes (past them the visitor still gets the page).
/// Visits go through the node's tally and reach the store in the next flush, so a viral
/// link costs the store one write per flush, not one per click.
pub async fn share(
    req: HttpRequest,
    api: web::Data<Api>,
    id: web::Path<String>,
    q: web::Query<ShareQuery>,
) -> Result<HttpResponse, ApiError> {
    let c = &indexed(&api, &id)?.campaign;
    let unit = q.unit.as_deref().filter(|u| is_unit_code(u));
    let ended = api.tallies.get(&id).is_some_and(|t| t.ended.is_cancelled());
    if c.is_live() && !ended && public_write(&api, &req).is_ok() {
        // The index's copy carries the declared channels as of this tick.
        let tally = api.tallies.open(c).await;
        tally.share_visit(c.share_channel(q.via.as_deref()));
        if let Some(units) = tally.units.get() {
            units.share_visit(unit);
        }
    }
    let location = match unit {
        Some(u) => format!("/c/{}?unit={u}", c.id),
        None => format!("/c/{}", c.id),
    };
    Ok(HttpResponse::Found()
        .insert_header(("location", location))
        .insert_header(("cache-control", "no-store"))
        .finish())
}

#[cfg(test)]
mod tests;
