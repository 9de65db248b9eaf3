//! After-event reads for operators: the series of a campaign (downsampled to a step) and
//! its report (JSON or CSV).

use std::fmt::Write;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::Api;
use super::{campaign, require_operator};
use crate::campaign::is_kind;
use crate::error::ApiError;
use crate::store::SeriesMetric;

/// Most points a series answer may hold when the caller picks the step.
pub const MAX_SERIES_POINTS: i64 = 10_000;
/// Points a series answer holds at most when the step is chosen by the server.
pub const DEFAULT_SERIES_POINTS: i64 = 1_000;

/// `POST /api/v1/campaigns`
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
    let mut body = crate::webhooks::report(&c, &s, crate::util::now_ms());
    if let (Ok(Some((tree, depth))), Some(o)) = (api.tallies.tree(&c).await, body.as_object_mut()) {
        o.insert(
            "units_at_peak".into(),
            super::units::at_peak(&tree, depth, &s.units_at_peak),
        );
    }
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
    fn csv_quotes_and_defuses() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
        assert_eq!(csv_field("-5"), "-5");
    }
}
