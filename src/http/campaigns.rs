//! Operator routes: create, list, end, join tokens, series, report.

use std::fmt::Write;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::Api;
use super::{campaign, require_operator};
use crate::auth::{DEFAULT_JOIN_TTL_S, MAX_JOIN_TTL_S};
use crate::campaign::{is_kind, NewCampaign};
use crate::error::ApiError;
use crate::store::SeriesMetric;

/// Most points a series answer may hold when the caller picks the step.
pub const MAX_SERIES_POINTS: i64 = 10_000;
/// Points a series answer holds at most when the step is chosen by the server.
pub const DEFAULT_SERIES_POINTS: i64 = 1_000;

/// `POST /api/v1/campaigns`
pub async fn create(
    req: HttpRequest,
    api: web::Data<Api>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    require_operator(&req, &api)?;
    let new = parse_new_campaign(body.into_inner())?;
    let c = new
        .validate(crate::util::now_ms())
        .map_err(|e| ApiError::bad(e.field, e.message))?;
    api.store.create_campaign(&c).await?;
    tracing::info!(campaign = %c.id, "campaign created");
    Ok(HttpResponse::Created().json(&c))
}

/// Reads the create body field by field, so a wrong type names its field.
fn parse_new_campaign(body: serde_json::Value) -> Result<NewCampaign, ApiError> {
    let serde_json::Value::Object(fields) = body else {
        return Err(ApiError::BadRequest {
            field: None,
            message: "body must be a JSON object".into(),
        });
    };
    let mut new = NewCampaign::default();
    for (name, value) in fields {
        let value = (!value.is_null()).then_some(value);
        let bad = |field: &'static str, what: &str| ApiError::bad(field, format!("{field} must be {what}"));
        match name.as_str() {
            "id" => new.id = parse(value).map_err(|_| bad("id", "a string"))?,
            "title" => new.title = parse(value).map_err(|_| bad("title", "a string"))?,
            "stream_url" => new.stream_url = parse(value).map_err(|_| bad("stream_url", "a string"))?,
            "kinds" => new.kinds = parse(value).map_err(|_| bad("kinds", "a list of strings"))?,
            "regions" => new.regions = parse(value).map_err(|_| bad("regions", "a list of strings"))?,
            "access" => new.access = parse(value).map_err(|_| bad("access", "\"public\" or \"token\""))?,
            _ => {
                return Err(ApiError::BadRequest {
                    field: None,
                    message: format!("unknown field {name:?}"),
                })
            }
        }
    }
    Ok(new)
}

fn parse<T: serde::de::DeserializeOwned>(v: Option<serde_json::Value>) -> serde_json::Result<Option<T>> {
    v.map(serde_json::from_value).transpose()
}

/// `GET /api/v1/campaigns`
pub async fn list(req: HttpRequest, api: web::Data<Api>) -> Result<HttpResponse, ApiError> {
    require_operator(&req, &api)?;
    let campaigns = api.store.list_campaigns().await?;
    Ok(HttpResponse::Ok().json(json!({ "campaigns": campaigns })))
}

/// `POST /api/v1/campaigns/{id}/end`: idempotent; closes this node's sockets with 4000
/// at once (other nodes see it at their next tick).
pub async fn end(req: HttpRequest, api: web::Data<Api>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    require_operator(&req, &api)?;
    campaign(&api, &id).await?;
    let c = api.store.end_campaign(&id, crate::util::now_ms()).await?;
    if let Some(t) = api.tallies.get(&id) {
        t.ended.cancel();
    }
    tracing::info!(campaign = %c.id, "campaign ended");
    Ok(HttpResponse::Ok().json(&c))
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    ttl_s: Option<u64>,
}

/// `POST /api/v1/campaigns/{id}/tokens`
pub async fn mint_token(
    req: HttpRequest,
    api: web::Data<Api>,
    id: web::Path<String>,
    body: Option<web::Json<TokenRequest>>,
) -> Result<HttpResponse, ApiError> {
    require_operator(&req, &api)?;
    let c = campaign(&api, &id).await?;
    if !c.is_live() {
        return Err(ApiError::Gone);
    }
    let ttl = body.and_then(|b| b.ttl_s).unwrap_or(DEFAULT_JOIN_TTL_S);
    if ttl == 0 || ttl > MAX_JOIN_TTL_S {
        return Err(ApiError::bad("ttl_s", format!("ttl_s must be 1 to {MAX_JOIN_TTL_S}")));
    }
    let exp = (crate::util::now_ms() / 1000) as u64 + ttl;
    let token = api.auth.mint_join(&id, exp);
    Ok(HttpResponse::Created().json(json!({"token": token, "expires_at": exp as i64 * 1000})))
}

#[derive(Debug, Deserialize)]
pub struct SeriesQuery {
    metric: Option<String>,
    kind: Option<String>,
    from: Option<i64>,
    to: Option<i64>,
    step: Option<f64>,
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
    let tick_ms = api.tick.as_millis().max(1) as i64;
    // Points sit at the start of their tick bucket, so the default start is the bucket the
    // campaign was created in.
    let from = q.from.unwrap_or(c.created_at - c.created_at.rem_euclid(tick_ms));
    let to = q.to.unwrap_or_else(|| c.ended_at.unwrap_or_else(crate::util::now_ms));
    if from > to {
        return Err(ApiError::bad("from", "from must not be after to"));
    }
    let span = to - from + 1;
    let step_ms = match q.step {
        Some(s) if s.is_finite() && s > 0.0 => ((s * 1000.0).round() as i64).max(1),
        Some(_) => return Err(ApiError::bad("step", "step must be a positive number of seconds")),
        None => tick_ms.max((span + DEFAULT_SERIES_POINTS - 1) / DEFAULT_SERIES_POINTS),
    };
    if span / step_ms > MAX_SERIES_POINTS {
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
pub fn downsample(raw: &[(i64, u64)], from: i64, to: i64, step_ms: i64, max: bool) -> Vec<[i64; 2]> {
    let mut out: Vec<[i64; 2]> = Vec::new();
    if !max {
        let mut t = from;
        while t <= to {
            out.push([t, 0]);
            t += step_ms;
        }
    }
    for &(t, v) in raw {
        if t < from || t > to {
            continue;
        }
        let b = from + (t - from) / step_ms * step_ms;
        let v = v as i64;
        if max {
            match out.last_mut() {
                Some(last) if last[0] == b => last[1] = last[1].max(v),
                _ => out.push([b, v]),
            }
        } else {
            let i = ((b - from) / step_ms) as usize;
            if let Some(p) = out.get_mut(i) {
                p[1] += v;
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
    let end = c.ended_at.unwrap_or_else(crate::util::now_ms);
    let duration_s = ((end - c.created_at).max(0)) / 1000;
    let body = json!({
        "campaign": c,
        "duration_s": duration_s,
        "peak_viewers": s.peak_viewers,
        "peak_at": s.peak_at,
        "unique_viewers": s.unique_viewers,
        "interactors": s.interactors,
        "interactions": s.interactions,
        "registrations": s.registrations,
        "share_visits": s.share_visits,
        "share_visits_by_channel": s.share_visits_by_channel,
        "regions_at_peak": s.regions_at_peak,
    });
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

/// RFC 4180 quoting, and a leading `'` for values a spreadsheet would run as a formula.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) && s.parse::<f64>().is_err() {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
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
    fn csv_quotes_and_defuses() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
        assert_eq!(csv_field("-5"), "-5");
    }
}
