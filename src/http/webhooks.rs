//! `GET/PUT /api/v1/webhooks` (operator): the deployment's webhook receivers, one setting
//! in the store for every node. A receiver's secret is written here and never shown again
//! (a `PUT` without it keeps the stored one); logs name receivers by id and host only.

use actix_web::{web, HttpRequest, HttpResponse};

use super::{operator_body, require_operator, Api};
use crate::error::ApiError;
use crate::webhooks::receivers;

/// `GET /api/v1/webhooks`: `{"receivers":[{"id","url","types"?}]}`.
pub async fn get(req: HttpRequest, api: web::Data<Api>) -> Result<HttpResponse, ApiError> {
    require_operator(&req, &api)?;
    let stored = api.store.receivers().await?;
    Ok(HttpResponse::Ok().json(receivers::public(&stored)))
}

/// `PUT /api/v1/webhooks` with `{"receivers":[{"id"?,"url","types"?,"secret"?}]}`:
/// replaces the receivers (see [`receivers::merge`]) and answers as `GET` does.
pub async fn put(req: HttpRequest, api: web::Data<Api>, payload: web::Payload) -> Result<HttpResponse, ApiError> {
    require_operator(&req, &api)?;
    let body = operator_body(&req, payload)
        .await?
        .ok_or_else(|| ApiError::bad("receivers", "receivers is required"))?;
    let stored = api.store.receivers().await?;
    let new = receivers::merge(&body, &stored).map_err(|e| ApiError::bad(e.field, e.message))?;
    api.store.set_receivers(&new).await?;
    let names: Vec<String> = new.iter().map(|r| r.label()).collect();
    tracing::info!(receivers = ?names, "webhook receivers changed");
    Ok(HttpResponse::Ok().json(receivers::public(&new)))
}
