//! The HTTP side of a node: the JSON API ([`campaigns`] for operators, [`public`] for
//! viewers), the pages ([`pages`]) and the probes ([`probes`]). Routes are declared here,
//! in one place, in the order of the spec.

pub mod campaigns;
pub mod cors;
pub mod openapi;
pub mod orgs;
pub mod pages;
pub mod probes;
pub mod public;
pub mod reports;
pub mod signup;
pub mod units;
pub mod webhooks;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::Method;
use actix_web::mime;
use actix_web::{web, HttpMessage, HttpRequest};
use tokio_util::sync::CancellationToken;

use crate::auth::{Auth, TokenError};
use crate::broadcast::index::{CampaignIndex, Entry};
use crate::clients::auth_failures::AuthFailures;
use crate::clients::writes::PublicWrites;
use crate::clients::{ClientKey, TrustedProxies};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::tally::Tallies;
use crate::ws::not_upgraded;

/// What the HTTP routes touch.
pub struct Api {
    /// `Health`, `Campaigns`, `Reads` and `Signups` (the routes count through the tallies,
    /// and leave the webhook queues to the deliverer); the sign-up export keeps `Signups` only.
    pub store: Arc<dyn Store>,
    /// The campaigns and their stats as of this node's last tick: the public reads answer
    /// from it, and the operator routes that write a campaign tell it.
    pub index: Arc<CampaignIndex>,
    /// For share visits (counted through the tally) and ending a campaign's sockets here.
    pub tallies: Arc<Tallies>,
    pub auth: Arc<Auth>,
    pub metrics: Arc<Metrics>,
    /// This node's name, shown by `/readyz`.
    pub node_id: String,
    /// `--tick`: the series step.
    pub tick: Duration,
    /// Cancelled at shutdown: `/readyz` answers 503.
    pub shutdown: CancellationToken,
    /// `--trusted-proxies`: whose `X-Forwarded-For` names the client.
    pub trusted_proxies: TrustedProxies,
    /// `--allowed-origins`: who may read the public routes from another origin.
    pub allowed_origins: cors::AllowedOrigins,
    /// `--max-public-writes-per-client` for registrations and share visits (`None`: no limit).
    pub public_writes: Option<PublicWrites>,
    /// Failed operator authentications per client, shared with the operator sockets.
    pub auth_failures: Arc<AuthFailures>,
    /// The units reads (`…/units`), shared with the operator sockets' `watch`.
    pub units: Arc<crate::broadcast::unit_views::UnitViews>,
}

impl Api {
    /// Who sent `req` (see `clients::address`).
    pub fn client(&self, req: &HttpRequest) -> ClientKey {
        self.trusted_proxies
            .client(req.peer_addr().map(|a| a.ip()), req.headers())
    }
}

/// Largest JSON body the API accepts.
pub const MAX_JSON_BODY: usize = 64 * 1024;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::JsonConfig::default().limit(MAX_JSON_BODY).error_handler(|err, _| {
        ApiError::BadRequest {
            field: None,
            message: format!("invalid JSON body: {err}"),
        }
        .into()
    }))
    .app_data(web::PathConfig::default().error_handler(|_, _| ApiError::NotFound("route").into()))
    .app_data(web::QueryConfig::default().error_handler(|err, _| {
        ApiError::BadRequest {
            field: None,
            message: format!("invalid query: {err}"),
        }
        .into()
    }))
    .route("/api/v1/openapi.json", web::get().to(openapi::document))
    .service(
        web::scope("/api/v1/campaigns")
            .route("", web::post().to(campaigns::create))
            .route("", web::get().to(campaigns::list))
            .route("/{id}", cors::public(web::get().to(public::get)))
            .route("/{id}", web::delete().to(campaigns::delete))
            .route("/{id}", web::patch().to(campaigns::update))
            .route("/{id}/end", web::post().to(campaigns::end))
            .route("/{id}/tokens", web::post().to(campaigns::mint_token))
            .route("/{id}/tickets", web::post().to(campaigns::mint_ticket))
            .route("/{id}/series", web::get().to(reports::series))
            .route("/{id}/report", web::get().to(reports::report))
            .route("/{id}/report/units", web::get().to(units::report))
            .route("/{id}/units", web::get().to(units::live))
            .route("/{id}/stats", cors::public(web::get().to(public::stats)))
            .route("/{id}/registrations", cors::public(web::post().to(signup::register)))
            .route("/{id}/registrations", web::method(Method::OPTIONS).to(cors::preflight))
            .route("/{id}/registrations", web::get().to(signup::export))
            .route("/{id}/registrations/{viewer}", web::delete().to(signup::erase)),
    )
    .route("/api/v1/webhooks", web::get().to(webhooks::get))
    .route("/api/v1/webhooks", web::put().to(webhooks::put))
    .service(
        web::scope("/api/v1/orgs")
            .route("", web::get().to(orgs::list))
            .route("/{org}", web::put().to(orgs::put))
            .route("/{org}", web::get().to(orgs::get))
            .route("/{org}", web::delete().to(orgs::delete))
            .route("/{org}/units", web::get().to(orgs::search))
            .route("/{org}/units/{code}", web::get().to(orgs::unit)),
    )
    .route("/ws/v1/campaigns/{id}", cors::public(web::get().to(not_upgraded)))
    .route("/s/{id}", web::get().to(public::share))
    .route("/metrics", web::get().to(probes::metrics))
    .route("/healthz", web::get().to(probes::healthz))
    .route("/readyz", web::get().to(probes::readyz))
    .configure(pages::routes)
    .default_service(web::to(|| async {
        Err::<actix_web::HttpResponse, _>(ApiError::NotFound("route"))
    }));
}

/// Operator routes call this first: 401 without a token, 403 with a wrong one, 429 from
/// a client locked out after too many wrong ones (see `clients::auth_failures`).
pub fn require_operator(req: &HttpRequest, api: &Api) -> Result<(), ApiError> {
    let check = || {
        let header = req.headers().get("authorization").and_then(|v| v.to_str().ok());
        let presented = match header {
            Some(h) if h.starts_with("Bearer ") => Some(h),
            Some(_) => return Err(ApiError::Forbidden("Authorization must be a Bearer token")),
            None => None,
        };
        api.auth.check_operator(presented).map_err(|e| match e {
            TokenError::Missing => ApiError::Unauthorized("operator token required (Authorization: Bearer …)"),
            TokenError::Invalid => ApiError::Forbidden("wrong operator token"),
        })
    };
    api.auth_failures
        .authenticate(
            api.client(req),
            Instant::now(),
            check,
            ApiError::is_failed_authentication,
        )
        .map_err(ApiError::from)
}

/// The body of an operator route: `None` when the request carries none (no bytes, whatever
/// its content type), else the JSON object it must be. Anything else is a 400: another
/// content type (a form), bytes that are not JSON, JSON that is not an object. Routes read
/// it after the operator check, so a caller without the token learns nothing from it.
pub async fn operator_body(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<Option<serde_json::Map<String, serde_json::Value>>, ApiError> {
    let body = match payload.to_bytes_limited(MAX_JSON_BODY).await {
        Ok(Ok(body)) => body,
        Ok(Err(e)) => return Err(invalid_body(format!("could not read the body: {e}"))),
        Err(_) => return Err(invalid_body(format!("body over {MAX_JSON_BODY} bytes"))),
    };
    if body.is_empty() {
        return Ok(None);
    }
    let json = match req.mime_type() {
        Ok(Some(m)) => m.type_() == mime::APPLICATION && (m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON)),
        _ => false,
    };
    if !json {
        return Err(invalid_body(
            "body must be JSON (Content-Type: application/json)".into(),
        ));
    }
    match serde_json::from_slice(&body) {
        Ok(serde_json::Value::Object(fields)) => Ok(Some(fields)),
        Ok(_) => Err(invalid_body("body must be a JSON object".into())),
        Err(e) => Err(invalid_body(format!("invalid JSON body: {e}"))),
    }
}

/// A 400 about the body as a whole (no one field to name).
fn invalid_body(message: String) -> ApiError {
    ApiError::BadRequest { field: None, message }
}

/// A 400 for a body field the route does not know.
pub fn unknown_field(name: &str) -> ApiError {
    invalid_body(format!("unknown field {name:?}"))
}

/// A campaign by path id from the node's index, without asking the store: malformed ids
/// and ids the index does not hold are not found.
pub fn indexed(api: &Api, id: &str) -> Result<Arc<Entry>, ApiError> {
    if !crate::campaign::is_campaign_id(id) {
        return Err(ApiError::NotFound("campaign"));
    }
    api.index.get(id)?.ok_or(ApiError::NotFound("campaign"))
}

/// Loads a campaign by path id; malformed ids are simply not found.
pub async fn campaign(api: &Api, id: &str) -> Result<crate::campaign::Campaign, ApiError> {
    if !crate::campaign::is_campaign_id(id) {
        return Err(ApiError::NotFound("campaign"));
    }
    api.store.get_campaign(id).await?.ok_or(ApiError::NotFound("campaign"))
}
