//! Operator routes: create, list, milestones and share channels, end, delete, join
//! tokens and operator tickets (the series and the report are in `reports.rs`). The routes that write a campaign tell the node's index at once
//! (other nodes learn it at their next tick).

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::Api;
use super::{campaign, operator_body, require_operator, unknown_field};
use crate::auth::{JoinClaims, DEFAULT_JOIN_TTL_S, MAX_JOIN_TTL_S};
use crate::campaign::{is_campaign_id, validate_milestones, validate_share_channels, Milestones, NewCampaign};
use crate::error::ApiError;
use crate::protocol::limits::{Pattern, CLIENT_ID, REGION, UNIT_CODE};

pub async fn create(req: HttpRequest, api: web::Data<Api>, payload: web::Payload) -> Result<HttpResponse, ApiError> {
    require_operator(&req, &api)?;
    let fields = operator_body(&req, payload)
        .await?
        .ok_or_else(|| ApiError::BadRequest {
            field: None,
            message: "body required: a JSON object with id and title".into(),
        })?;
    let new = parse_new_campaign(fields)?;
    let mut c = new
        .validate(crate::util::now_ms())
        .map_err(|e| ApiError::bad(e.field, e.message))?;
    c.org_version = super::orgs::newest_version(&api, c.org.as_deref()).await?;
    let _writing = api.index.writing().await;
    api.store.create_campaign(&c).await?;
    api.index.put(c.clone(), true);
    tracing::info!(campaign = %c.id, "campaign created");
    Ok(HttpResponse::Created().json(&c))
}

/// Reads the create body field by field, so a wrong type names its field. `null` is
/// accepted only where a campaign shows it (`stream_url`); for any other field it is a
/// wrong type, never a silent default.
fn parse_new_campaign(fields: serde_json::Map<String, serde_json::Value>) -> Result<NewCampaign, ApiError> {
    let mut new = NewCampaign::default();
    for (name, value) in fields {
        let bad = |field: &'static str, what: &str| ApiError::bad(field, format!("{field} must be {what}"));
        match name.as_str() {
            "id" => new.id = Some(parse(value).map_err(|_| bad("id", "a string"))?),
            "title" => new.title = Some(parse(value).map_err(|_| bad("title", "a string"))?),
            "stream_url" => new.stream_url = parse(value).map_err(|_| bad("stream_url", "a string or null"))?,
            "kinds" => new.kinds = Some(parse(value).map_err(|_| bad("kinds", "a list of strings"))?),
            "regions" => new.regions = Some(parse(value).map_err(|_| bad("regions", "a list of strings"))?),
            "access" => new.access = Some(parse(value).map_err(|_| bad("access", "\"public\" or \"token\""))?),
            "milestones" => new.milestones = Some(parse_milestones(value)?),
            "share_channels" => new.share_channels = Some(parse_share_channels(value)?),
            "org" => new.org = Some(parse(value).map_err(|_| bad("org", "a string"))?),
            "registration_fields" => {
                new.registration_fields = Some(parse(value).map_err(|_| {
                    bad(
                        "registration_fields",
                        "a list of {\"name\", \"max\"?, \"required\"?} objects",
                    )
                })?)
            }
            _ => return Err(unknown_field(&name)),
        }
    }
    Ok(new)
}

/// `{"viewers":[1000],"like":[100000]}`: metric → positive integer thresholds.
fn parse_milestones(value: serde_json::Value) -> Result<Milestones, ApiError> {
    parse(value).map_err(|_| {
        ApiError::bad(
            "milestones",
            "milestones must be an object of metric → list of positive integers",
        )
    })
}

/// `["wechat","weibo"]`: a list of channel names (checked by `validate_share_channels`).
fn parse_share_channels(value: serde_json::Value) -> Result<Vec<String>, ApiError> {
    parse(value).map_err(|_| ApiError::bad("share_channels", "share_channels must be a list of strings"))
}

fn parse<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> serde_json::Result<T> {
    serde_json::from_value(v)
}

/// `GET /api/v1/campaigns`
pub async fn list(req: HttpRequest, api: web::Data<Api>) -> Result<HttpResponse, ApiError> {
    require_operator(&req, &api)?;
    let campaigns = api.store.list_campaigns().await?;
    Ok(HttpResponse::Ok().json(json!({ "campaigns": campaigns })))
}

/// `POST /api/v1/campaigns/{id}/end`: idempotent; closes this node's sockets with 4000
/// at once (other nodes see it at their next tick). Takes no body (or `{}`).
pub async fn end(
    req: HttpRequest,
    api: web::Data<Api>,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    require_operator(&req, &api)?;
    no_fields(operator_body(&req, payload).await?)?;
    campaign(&api, &id).await?;
    let _writing = api.index.writing().await;
    let c = api.store.end_campaign(&id, crate::util::now_ms()).await?;
    api.index.put(c.clone(), false);
    if let Some(t) = api.tallies.get(&id) {
        t.ended.cancel();
    }
    tracing::info!(campaign = %c.id, "campaign ended");
    Ok(HttpResponse::Ok().json(&c))
}

/// `DELETE /api/v1/campaigns/{id}`: removes an ended campaign and all its data → 204. A
/// live one is 409 (end it first), so one call cannot wipe a launch that is running.
/// Takes no body (or `{}`).
pub async fn delete(
    req: HttpRequest,
    api: web::Data<Api>,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    require_operator(&req, &api)?;
    no_fields(operator_body(&req, payload).await?)?;
    if !is_campaign_id(&id) {
        return Err(ApiError::NotFound("campaign"));
    }
    let writing = api.index.writing().await;
    api.store.delete_campaign(&id).await?;
    api.index.remove(&id);
    drop(writing);
    // This node's tally of the ended campaign goes now rather than at the next flush, so
    // the id can be created and joined again at once (other nodes drop theirs within a
    // flush interval of their last socket closing).
    if let Some(t) = api.tallies.get(&id) {
        api.tallies.remove_if_idle(t, &api.metrics);
    }
    tracing::info!(campaign = %id, "campaign deleted");
    Ok(HttpResponse::NoContent().finish())
}

/// `PATCH /api/v1/campaigns/{id}` with `{"milestones": {...}}` and/or
/// `{"share_channels": [...]}`: replaces the campaign's webhook milestones and/or declared
/// share channels (validated as on create, both before either is stored) and returns the
/// campaign. Thresholds the metric has already passed do not fire; share counts already
/// made keep their channel's name.
pub async fn update(
    req: HttpRequest,
    api: web::Data<Api>,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    require_operator(&req, &api)?;
    let fields = operator_body(&req, payload).await?.unwrap_or_default();
    let (mut milestones, mut channels) = (None, None);
    for (name, value) in fields {
        match name.as_str() {
            "milestones" => milestones = Some(parse_milestones(value)?),
            "share_channels" => channels = Some(parse_share_channels(value)?),
            _ => return Err(unknown_field(&name)),
        }
    }
    if milestones.is_none() && channels.is_none() {
        return Err(ApiError::bad("milestones", "milestones or share_channels is required"));
    }
    let mut c = campaign(&api, &id).await?;
    let field = |e: crate::campaign::FieldError| ApiError::bad(e.field, e.message);
    let milestones = milestones
        .map(|m| validate_milestones(m, &c.kinds))
        .transpose()
        .map_err(field)?;
    let channels = channels.map(validate_share_channels).transpose().map_err(field)?;
    let _writing = api.index.writing().await;
    if let Some(milestones) = milestones {
        c = api.store.set_milestones(&id, &milestones).await?;
        tracing::info!(campaign = %c.id, "milestones changed");
    }
    if let Some(channels) = channels {
        c = api.store.set_share_channels(&id, &channels).await?;
        tracing::info!(campaign = %c.id, channels = channels.len(), "share channels changed");
    }
    api.index.put(c.clone(), false);
    Ok(HttpResponse::Ok().json(&c))
}

/// For routes that take no body: none, or an empty object.
fn no_fields(body: Option<serde_json::Map<String, serde_json::Value>>) -> Result<(), ApiError> {
    match body.and_then(|fields| fields.into_iter().next()) {
        Some((name, _)) => Err(unknown_field(&name)),
        None => Ok(()),
    }
}

/// What `POST .../tokens` asks for: the lifetime (the default without a body, else `ttl_s`,
/// an integer number of seconds from 1 to 30 days), and the optional `sub` (the viewer),
/// `region` and `unit` claims, checked here so the token minted is one admission accepts.
fn token_request(body: Option<serde_json::Map<String, serde_json::Value>>) -> Result<(u64, JoinClaims), ApiError> {
    let mut ttl = DEFAULT_JOIN_TTL_S;
    let mut claims = JoinClaims {
        campaign: String::new(),
        exp: 0,
        sub: None,
        region: None,
        unit: None,
    };
    for (name, value) in body.into_iter().flatten() {
        match name.as_str() {
            "ttl_s" => {
                ttl = value
                    .as_u64()
                    .filter(|t| (1..=MAX_JOIN_TTL_S).contains(t))
                    .ok_or_else(|| {
                        ApiError::bad("ttl_s", format!("ttl_s must be an integer from 1 to {MAX_JOIN_TTL_S}"))
                    })?
            }
            "sub" => claims.sub = Some(id_field(value, "sub", CLIENT_ID)?),
            "region" => claims.region = Some(id_field(value, "region", REGION)?),
            "unit" => claims.unit = Some(id_field(value, "unit", UNIT_CODE)?),
            _ => return Err(unknown_field(&name)),
        }
    }
    Ok((ttl, claims))
}

/// A string field that must match `pattern` (a 400 naming `field` and `pattern` otherwise).
fn id_field(value: serde_json::Value, field: &'static str, pattern: Pattern) -> Result<String, ApiError> {
    match value {
        serde_json::Value::String(s) if pattern.matches(&s) => Ok(s),
        _ => Err(ApiError::bad(field, format!("{field} must match {pattern}"))),
    }
}

/// `POST /api/v1/campaigns/{id}/tickets`: a single-use ticket for an operator socket on
/// the campaign, so the operator token never rides in a socket URL (`auth::ticket`).
pub async fn mint_ticket(
    req: HttpRequest,
    api: web::Data<Api>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require_operator(&req, &api)?;
    let c = campaign(&api, &id).await?;
    let (ticket, expires_at) = api.auth.mint_ticket(&c.id, crate::util::now_ms());
    Ok(HttpResponse::Created()
        .insert_header(("cache-control", "no-store"))
        .json(json!({"ticket": ticket, "expires_at": expires_at})))
}

/// `POST /api/v1/campaigns/{id}/tokens`
pub async fn mint_token(
    req: HttpRequest,
    api: web::Data<Api>,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    require_operator(&req, &api)?;
    let (ttl, claims) = token_request(operator_body(&req, payload).await?)?;
    let c = campaign(&api, &id).await?;
    if !c.is_live() {
        return Err(ApiError::Gone);
    }
    let exp = (crate::util::now_ms() / 1000) as u64 + ttl;
    let token = api.auth.mint_join(&JoinClaims {
        campaign: id.into_inner(),
        exp,
        ..claims
    });
    Ok(HttpResponse::Created().json(json!({"token": token, "expires_at": exp as i64 * 1000})))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: serde_json::Value) -> Option<serde_json::Map<String, serde_json::Value>> {
        match json {
            serde_json::Value::Object(m) => Some(m),
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_token_body_is_ttl_s_sub_region_and_unit_or_nothing() {
        let ttl = |b| token_request(b).map(|(ttl, _)| ttl);
        assert_eq!(ttl(None).unwrap(), DEFAULT_JOIN_TTL_S);
        assert_eq!(ttl(body(serde_json::json!({}))).unwrap(), DEFAULT_JOIN_TTL_S);
        assert_eq!(ttl(body(serde_json::json!({"ttl_s": 60}))).unwrap(), 60);
        let (ttl, claims) = token_request(body(
            serde_json::json!({"ttl_s": 60, "sub": "viewer-0001", "region": "DE", "unit": "gd-0755"}),
        ))
        .unwrap();
        assert_eq!(ttl, 60);
        assert_eq!(
            (claims.sub.as_deref(), claims.region.as_deref(), claims.unit.as_deref()),
            (Some("viewer-0001"), Some("DE"), Some("gd-0755"))
        );
        for bad in [
            serde_json::json!({"ttl_s": "60"}),
            serde_json::json!({"ttl_s": -5}),
            serde_json::json!({"ttl_s": 0}),
            serde_json::json!({"ttl_s": 60.5}),
            serde_json::json!({"ttl_s": null}),
            serde_json::json!({"ttl_s": MAX_JOIN_TTL_S + 1}),
            serde_json::json!({"ttl": 60}),
            serde_json::json!({"ttl_s": 60, "sub": "viewer1"}),
            serde_json::json!({"unit": "no spaces"}),
            serde_json::json!({"sub": 12345678}),
            serde_json::json!({"region": "far away"}),
            serde_json::json!({"region": null}),
            serde_json::json!({"sub": "viewer-0001", "aud": "x"}),
        ] {
            assert!(token_request(body(bad.clone())).is_err(), "{bad}");
        }
        assert!(no_fields(None).is_ok() && no_fields(body(serde_json::json!({}))).is_ok());
        assert!(no_fields(body(serde_json::json!({"at": 5}))).is_err());
    }

    #[test]
    fn a_create_body_has_no_nulls_but_stream_url() {
        let ok = parse_new_campaign(body(serde_json::json!({"id": "a", "title": "t", "stream_url": null})).unwrap());
        assert!(ok.is_ok());
        for (bad, field) in [
            (serde_json::json!({"kinds": null}), "kinds"),
            (serde_json::json!({"title": null}), "title"),
            (serde_json::json!({"access": 1}), "access"),
            (serde_json::json!({"registration_fields": null}), "registration_fields"),
            (
                serde_json::json!({"registration_fields": [{"name": "p", "len": 3}]}),
                "registration_fields",
            ),
            (
                serde_json::json!({"registration_fields": [{"name": "p", "max": "3"}]}),
                "registration_fields",
            ),
        ] {
            match parse_new_campaign(body(bad).unwrap()) {
                Err(ApiError::BadRequest { field: f, .. }) => assert_eq!(f.as_deref(), Some(field)),
                other => panic!("{other:?}"),
            }
        }
    }
}
