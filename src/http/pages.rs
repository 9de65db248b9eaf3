//! The pages, embedded in the binary at build time so one binary is the whole product.

use actix_web::{web, HttpResponse};

use crate::campaign::is_campaign_id;
use crate::error::ApiError;

const LANDING: &str = include_str!("../../web/index.html");
const VIEWER: &str = include_str!("../../web/viewer.html");
const OPS: &str = include_str!("../../web/ops.html");

fn html(body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("x-content-type-options", "nosniff"))
        .insert_header(("referrer-policy", "no-referrer"))
        .body(body)
}

/// The page routes: `/`, `/c/{id}`, `/ops`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(landing))
        .route("/c/{id}", web::get().to(viewer))
        .route("/ops", web::get().to(ops));
}

pub async fn landing() -> HttpResponse {
    html(LANDING)
}

/// `GET /c/{id}`: the page itself reads the id from its URL.
pub async fn viewer(id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    if !is_campaign_id(&id) {
        return Err(ApiError::NotFound("campaign"));
    }
    Ok(html(VIEWER))
}

pub async fn ops() -> HttpResponse {
    html(OPS)
}
