//! Operator routes: create, list, milestones and share channels, end, delete, join
//! tokens, series, report. The routes that write a campaign tell the node's index at once
//! (other nodes learn it at their next tick).

use std::fmt::Write;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::Api;
use super::{campaign, operator_body, require_operator, unknown_field};
use crate::auth::{JoinClaims, DEFAULT_JOIN_TTL_S, MAX_JOIN_TTL_S};
use crate::campaign::{is_campaign_id, is_kind, validate_milestones, validate_share_channels, Milestones, NewCampaign};
use crate::error::ApiError;
use crate::protocol::limits::{Pattern, CLIENT_ID, REGION, UNIT_CODE};
use crate::store::SeriesMetric;

/// Most points a series answer may hold when the caller picks the step.
pub const MAX_SERIES_POINTS: i64 = 10_000;
/// Points a series answer holds at most when the step is chosen by the server.
pub const DEFAULT_SERIES_POINTS: i64 = 1_000;

/// `POST /api/v1/campaigns`
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

/// `from`/`to` must be below this: 2^53 is the largest integer a JavaScript client reads
/// exactly, far past any real timestamp, and far enough from `i64::MAX` that no sum of
/// two bounds or a bound and a step can overflow.
pub const MAX_SERIES_MS: i64 = 1 << 53;

/// The series query as sent: numbers are parsed here, so a bad one is a 400 naming its field
/// rather than the query extractor's anonymous one.
#[derive(Debug, Deserialize)]
pub struct SeriesQuery {
    metric: Option<String>,
    kind: Option<String>,
    from: Option<String>,
    to: Option<String>,
    step: Option<String>,
}

/// A window bound: unix ms in `[0, 2^53)`.
fn series_bound(value: Option<&str>, field: &'static str) -> Result<Option<i64>, ApiError> {
    value
        .map(|v| {
            v.parse::<i64>()
                .ok()
                .filter(|t| (0..MAX_SERIES_MS).contains(t))
                .ok_or_else(|| ApiError::bad(field, format!("{field} must be unix ms from 0 to 2^53 - 1")))
        })
        .transpose()
}

/// The step in ms from a positive number of seconds, at most [`MAX_SERIES_MS`] (one point
/// for any window).
fn series_step(value: &str) -> Result<i64, ApiError> {
    match value.parse::<f64>() {
        // `as` saturates, and the bound keeps every later sum far from overflow.
        Ok(s) if s.is_finite() && s > 0.0 => Ok(((s * 1000.0).round() as i64).clamp(1, MAX_SERIES_MS)),
        _ => Err(ApiError::bad("step", "step must be a positive number of seconds")),
    }
}

/// `GET /api/v1/campaigns/{id}/series`
pub async fn series(
    req: HttpRequest,
    api: web::Data<Api>,
    id: web::Path<String>,
    q: web::Query<SeriesQuery>,
) -> Result<HttpResponse, ApiError> {
    require_operator(&req, &api)?;
    let c = campaign(&api, &id).await?;
    let metric_name = q.metric.as_deref().unwrap_or("viewers");
    let metric = match metric_name {
        "viewers" => SeriesMetric::Viewers,
        "interactions" => match q.kind.as_deref().filter(|k| !k.is_empty()) {
            None => SeriesMetric::Interactions(None),
            Some(k) if is_kind(k) && c.kinds.iter().any(|x| x == k) => SeriesMetric::Interactions(Some(k.to_owned())),
            Some(_) => return Err(ApiError::bad("kind", "kind is not one of the campaign's kinds")),
        },
        _ => return Err(ApiError::bad("metric", "metric must be viewers or interactions")),
    };
    let tick_ms = api.tick.as_millis().clamp(1, MAX_SERIES_MS as u128) as i64;
    let given_from = series_bound(q.from.as_deref(), "from")?;
    let given_to = series_bound(q.to.as_deref(), "to")?;
    // Points sit at the start of their tick bucket, so the default start is the bucket the
    // campaign was created in. Defaults are clamped into the same range as given bounds.
    let from = given_from.unwrap_or(c.created_at - c.created_at.rem_euclid(tick_ms));
    let to = given_to.unwrap_or_else(|| c.ended_at.unwrap_or_else(crate::util::now_ms));
    let (from, to) = (from.clamp(0, MAX_SERIES_MS - 1), to.clamp(0, MAX_SERIES_MS - 1));
    if from > to {
        // Name the bound the caller gave: a `to` before the campaign's start is the `to`'s fault.
        let field = if given_from.is_none() { "to" } else { "from" };
        return Err(ApiError::bad(field, "from must not be after to"));
    }
    let span = to - from + 1;
    let step_ms = match q.step.as_deref() {
        Some(s) => series_step(s)?,
        None => tick_ms.max((span + DEFAULT_SERIES_POINTS - 1) / DEFAULT_SERIES_POINTS),
    };
    if (to - from) / step_ms + 1 > MAX_SERIES_POINTS {
        return Err(ApiError::bad(
            "step",
            format!("step too small: more than {MAX_SERIES_POINTS} points"),
        ));
    }
    let raw = api.store.series(&id, &metric, from, to).await?;
    let points = downsample(&raw, from, to, step_ms, matches!(metric, SeriesMetric::Viewers));
    Ok(HttpResponse::Ok().json(json!({"metric": metric_name, "step_ms": step_ms, "points": points})))
}

/// Groups raw tick points into `step_ms` buckets aligned on `from`: viewers keep the
/// bucket's maximum (and buckets without data are left out), interactions are summed (and
/// empty buckets are 0, so a chart shows the quiet time).
///
/// The caller bounds the number of steps (`series` allows [`MAX_SERIES_POINTS`]); the
/// arithmetic is checked all the same, so no window can make it wrap and loop.
pub fn downsample(raw: &[(i64, u64)], from: i64, to: i64, step_ms: i64, max: bool) -> Vec<[i64; 2]> {
    let step_ms = step_ms.max(1);
    let mut out: Vec<[i64; 2]> = Vec::new();
    if !max {
        let mut t = Some(from);
        while let Some(at) = t.filter(|at| *at <= to) {
            out.push([at, 0]);
            t = at.checked_add(step_ms);
        }
    }
    for &(t, v) in raw {
        let Some(offset) = t.checked_sub(from).filter(|_| t <= to && t >= from) else {
            continue;
        };
        let steps = offset / step_ms;
        let b = from + steps * step_ms;
        let v = i64::try_from(v).unwrap_or(i64::MAX);
        if max {
            match out.last_mut() {
                Some(last) if last[0] == b => last[1] = last[1].max(v),
                _ => out.push([b, v]),
            }
        } else {
            if let Some(p) = usize::try_from(steps).ok().and_then(|i| out.get_mut(i)) {
                p[1] = p[1].saturating_add(v);
            }
        }
    }
    out
}

#[derive(Debug, Deserialize)]
pub struct ReportQuery {
    format: Option<String>,
}

/// `GET /api/v1/campaigns/{id}/report` (JSON, or CSV with `?format=csv` / `Accept: text/csv`)
pub async fn report(
    req: HttpRequest,
    api: web::Data<Api>,
    id: web::Path<String>,
    q: web::Query<ReportQuery>,
) -> Result<HttpResponse, ApiError> {
    require_operator(&req, &api)?;
    let c = campaign(&api, &id).await?;
    let s = api.store.stats(&id, &c.kinds, crate::util::now_ms()).await?;
    let body = crate::webhooks::report(&c, &s, crate::util::now_ms());
    let wants_csv = match q.format.as_deref() {
        Some("csv") => true,
        Some("json") | None => req
            .headers()
            .get("accept")
            .and_then(|a| a.to_str().ok())
            .is_some_and(|a| a.contains("text/csv")),
        Some(_) => return Err(ApiError::bad("format", "format must be json or csv")),
    };
    if !wants_csv {
        return Ok(HttpResponse::Ok().json(body));
    }
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "content-disposition",
            format!("attachment; filename=\"livetally-{}-report.csv\"", c.id),
        ))
        .body(report_csv(&body)))
}

/// Flattens the report into `metric,value` rows: nested objects become dotted names.
pub fn report_csv(report: &serde_json::Value) -> String {
    let mut out = String::from("metric,value\n");
    let mut rows = Vec::new();
    flatten("", report, &mut rows);
    for (k, v) in rows {
        let _ = writeln!(out, "{},{}", csv_field(&k), csv_field(&v));
    }
    out
}

fn flatten(prefix: &str, v: &serde_json::Value, rows: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&name, v, rows);
            }
        }
        serde_json::Value::Array(items) => {
            let joined: Vec<String> = items
                .iter()
                .map(|i| i.as_str().map(str::to_owned).unwrap_or_else(|| i.to_string()))
                .collect();
            rows.push((prefix.to_owned(), joined.join(" ")));
        }
        serde_json::Value::Null => rows.push((prefix.to_owned(), String::new())),
        serde_json::Value::String(s) => rows.push((prefix.to_owned(), s.clone())),
        other => rows.push((prefix.to_owned(), other.to_string())),
    }
}

/// One cell of the report, written by the export's one rule (`util::csv`).
fn csv_field(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    crate::util::csv::text(&mut out, s);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downsampling_sums_interactions_and_maxes_viewers() {
        let raw = [(0, 1), (100, 2), (250, 4)];
        assert_eq!(downsample(&raw, 0, 299, 200, false), vec![[0, 3], [200, 4]]);
        assert_eq!(downsample(&raw, 0, 299, 200, true), vec![[0, 2], [200, 4]]);
    }

    #[test]
    fn downsampling_never_wraps_whatever_the_step() {
        assert_eq!(downsample(&[(5, 2)], 1, 10, i64::MAX, false), vec![[1, 2]]);
        assert_eq!(
            downsample(&[(i64::MIN, 1), (5, 2)], 1, 10, i64::MAX, true),
            vec![[1, 2]]
        );
        assert_eq!(
            downsample(&[(5, u64::MAX), (6, 1)], 0, 9, 10, false),
            vec![[0, i64::MAX]]
        );
    }

    #[test]
    fn series_bounds_are_unix_ms_below_2_pow_53() {
        let field = |r: Result<Option<i64>, ApiError>| match r {
            Err(ApiError::BadRequest { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(series_bound(Some("0"), "from").unwrap(), Some(0));
        assert_eq!(
            series_bound(Some("9007199254740991"), "to").unwrap(),
            Some(MAX_SERIES_MS - 1)
        );
        assert_eq!(series_bound(None, "to").unwrap(), None);
        for bad in ["-1", "9007199254740992", "9223372036854775807", "1e3", "", "now"] {
            assert_eq!(field(series_bound(Some(bad), "from")).as_deref(), Some("from"), "{bad}");
        }
        assert_eq!(series_step("1e300").unwrap(), MAX_SERIES_MS);
        assert_eq!(series_step("0.0001").unwrap(), 1);
        for bad in ["0", "-1", "NaN", "inf", "x"] {
            assert!(series_step(bad).is_err(), "{bad}");
        }
    }

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

    #[test]
    fn csv_quotes_and_defuses() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
        assert_eq!(csv_field("-5"), "-5");
    }
}
