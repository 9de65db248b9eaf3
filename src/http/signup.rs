//! Sign-ups: `POST …/registrations` (public, within the client's public writes), and for
//! operators the export (`GET …/registrations?format=csv|json`, streamed page by page from
//! the store) and the erasure of one person (`DELETE …/registrations/{viewer}`).

use std::sync::Arc;

use actix_web::http::header;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use futures_util::stream;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::public::public_write;
use super::{campaign, require_operator, Api};
use crate::auth::TokenError;
use crate::campaign::signup::check_submission;
use crate::campaign::{is_client_id, Access, Campaign};
use crate::error::ApiError;
use crate::protocol::limits::CLIENT_ID;
use crate::store::{Registration, Signups};
use crate::util::csv;

/// Registrations per store read while exporting: all the export holds at a time.
pub const EXPORT_PAGE: usize = 1_000;

#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

/// A registration's `viewer`, `fields` and `unit`, as sent.
type Body = (Option<String>, Option<Map<String, Value>>, Option<String>);

/// `{"viewer": "...", "fields": {...}}`, read field by field so a wrong type names its
/// field. `viewer` may be left out when the join token has `sub`. Other keys are ignored,
/// as in v1 (whose contract was `{"viewer", ...}`): sign-up data goes in `fields` only.
fn parse_body(body: Value) -> Result<Body, ApiError> {
    let Value::Object(body) = body else {
        return Err(ApiError::BadRequest {
            field: None,
            message: "body must be a JSON object".into(),
        });
    };
    let (mut viewer, mut fields, mut unit) = (None, None, None);
    for (name, value) in body {
        match (name.as_str(), value) {
            ("viewer", Value::String(v)) if is_client_id(&v) => viewer = Some(v),
            ("viewer", _) => return Err(ApiError::bad("viewer", format!("viewer must match {CLIENT_ID}"))),
            ("fields", Value::Object(f)) => fields = Some(f),
            ("fields", Value::Null) => {}
            ("fields", _) => return Err(ApiError::bad("fields", "fields must be an object of strings")),
            ("unit", Value::String(u)) if crate::auth::is_unit_code(&u) => unit = Some(u),
            ("unit", Value::Null) => {}
            ("unit", _) => {
                return Err(ApiError::bad(
                    "unit",
                    format!("unit must match {}", crate::protocol::limits::UNIT_CODE),
                ))
            }
            _ => {}
        }
    }
    Ok((viewer, fields, unit))
}

/// The viewer a registration is for. A join token is required on `access:"token"`
/// campaigns (absent 401, invalid 403, as for sockets) and checked when given to a public
/// one; with `sub` it names the viewer, and a different `viewer` is 403. Also the token's
/// `unit` claim, which wins over the body's.
fn viewer_of(
    api: &Api,
    c: &Campaign,
    token: Option<&str>,
    viewer: Option<String>,
) -> Result<(String, Option<String>), ApiError> {
    let token = token.filter(|t| !t.is_empty());
    let (sub, unit) = if c.access == Access::Token || token.is_some() {
        let now_s = (crate::util::now_ms() / 1000) as u64;
        let claims = api.auth.verify_join(token, &c.id, now_s).map_err(|e| match e {
            TokenError::Missing => ApiError::Unauthorized("join token required (?token=)"),
            TokenError::Invalid => ApiError::Forbidden("invalid or expired join token"),
        })?;
        (claims.sub, claims.unit)
    } else {
        (None, None)
    };
    let viewer = match (sub, viewer) {
        (Some(sub), Some(v)) if v != sub => return Err(ApiError::Forbidden("viewer differs from the token's sub")),
        (Some(sub), _) => sub,
        (None, Some(v)) => v,
        (None, None) => return Err(ApiError::bad("viewer", "viewer is required")),
    };
    Ok((viewer, unit))
}

/// `POST /api/v1/campaigns/{id}/registrations`: 201 the first time, 200 after (the first
/// registration's fields stay); 429 past the client's public writes, before anything is
/// looked up or counted.
pub async fn register(
    req: HttpRequest,
    api: web::Data<Api>,
    id: web::Path<String>,
    q: web::Query<TokenQuery>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    public_write(&api, &req)
        .map_err(|wait| ApiError::rate_limited("too many registrations and share visits from this address", wait))?;
    let (viewer, fields, body_unit) = parse_body(body.into_inner())?;
    let c = campaign(&api, &id).await?;
    if !c.is_live() {
        return Err(ApiError::Gone);
    }
    let (viewer, claim_unit) = viewer_of(&api, &c, q.token.as_deref(), viewer)?;
    // On a campaign with an org: the claim's unit, else the body's; unknown or none counts
    // under unassigned.
    let unit = match api.tallies.tree(&c).await {
        Ok(Some((tree, _))) => {
            let code = claim_unit.or(body_unit);
            Some(match code.as_deref().and_then(|u| tree.find(u)) {
                Some(i) => tree.unit(i).path.into(),
                None => vec![crate::store::units::UNASSIGNED.to_owned()].into(),
            })
        }
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(campaign = %c.id, error = %e, "org tree not loaded");
            return Err(ApiError::Unavailable(
                "the campaign's org could not be read; retry later".into(),
            ));
        }
    };
    let fields = check_submission(&c.registration_fields, fields).map_err(|e| ApiError::bad(e.field, e.message))?;
    let registration = Registration {
        viewer,
        registered_at: crate::util::now_ms(),
        fields,
        unit,
    };
    let created = api.store.register(&c.id, &registration).await?;
    let body = json!({"campaign": c.id, "viewer": registration.viewer, "registered": true, "created": created});
    Ok(if created {
        HttpResponse::Created().json(body)
    } else {
        HttpResponse::Ok().json(body)
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Json,
}

#[derive(Debug, Deserialize)]
pub struct ExportQuery {
    format: Option<String>,
}

/// `GET /api/v1/campaigns/{id}/registrations?format=csv|json` (operator; JSON when absent).
/// Streamed: one store page of [`EXPORT_PAGE`] at a time becomes one chunk, so the node
/// never holds the whole list. A store failure mid-way aborts the response (the client
/// sees a cut-off transfer, never a short file that looks complete).
pub async fn export(
    req: HttpRequest,
    api: web::Data<Api>,
    id: web::Path<String>,
    q: web::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    require_operator(&req, &api)?;
    let format = match q.format.as_deref() {
        None | Some("json") => Format::Json,
        Some("csv") => Format::Csv,
        Some(_) => return Err(ApiError::bad("format", "format must be csv or json")),
    };
    let c = campaign(&api, &id).await?;
    let (content_type, ext) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Json => ("application/json", "json"),
    };
    let rows = Rows {
        store: api.store.clone(),
        fields: c.registration_fields.iter().map(|f| f.name.clone()).collect(),
        unit: c.org.is_some(),
        campaign: c.id.clone(),
        format,
        after: None,
    };
    let body = stream::unfold(rows, |mut rows| async move {
        let chunk = rows.next_chunk().await?;
        Some((chunk, rows))
    });
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}-registrations.{ext}\"", c.id),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .streaming(body))
}

/// The export's cursor: the header, then page after page, then the end.
struct Rows {
    store: Arc<dyn Signups>,
    campaign: String,
    /// Declared field names: the CSV's columns after `viewer` and `registered_at`.
    fields: Vec<String>,
    /// The campaign counts by an org: a `unit` column after `registered_at`.
    unit: bool,
    format: Format,
    /// `None` before the header; then the number of the last registration written, or
    /// `Some(u64::MAX)` once the end is written.
    after: Option<u64>,
}

impl Rows {
    async fn next_chunk(&mut self) -> Option<Result<Bytes, ApiError>> {
        let Some(after) = self.after else {
            self.after = Some(0);
            return Some(Ok(Bytes::from(match self.format {
                Format::Csv => csv_header(&self.fields, self.unit),
                Format::Json => "[".to_owned(),
            })));
        };
        if after == u64::MAX {
            return None;
        }
        let page = match self.store.registrations(&self.campaign, after, EXPORT_PAGE).await {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(campaign = %self.campaign, error = %e, "registration export cut short");
                self.after = Some(u64::MAX);
                return Some(Err(e.into()));
            }
        };
        let Some((last, _)) = page.last() else {
            self.after = Some(u64::MAX);
            return match self.format {
                Format::Csv => None,
                Format::Json => Some(Ok(Bytes::from_static(b"]\n"))),
            };
        };
        self.after = Some(*last);
        let mut out = String::with_capacity(page.len() * 96);
        for (i, (_, r)) in page.iter().enumerate() {
            match self.format {
                Format::Csv => csv_row(&mut out, r, &self.fields, self.unit),
                Format::Json => {
                    if after > 0 || i > 0 {
                        out.push(',');
                    }
                    json_row(&mut out, r);
                }
            }
        }
        Some(Ok(Bytes::from(out)))
    }
}

/// A registration's stored fields; a value that is not an object of strings (never
/// written so) reads as no fields rather than failing the whole export.
fn stored_fields(r: &Registration) -> Map<String, Value> {
    serde_json::from_str(&r.fields).unwrap_or_default()
}

fn json_row(out: &mut String, r: &Registration) {
    let mut row = json!({"viewer": r.viewer, "registered_at": r.registered_at, "fields": stored_fields(r)});
    if let Some(unit) = r.unit_code() {
        row["unit"] = unit.into();
    }
    out.push_str(&row.to_string());
    out.push('\n');
}

/// With `unit`: the campaign has an org, and each row its registration's unit.
fn csv_header(fields: &[String], unit: bool) -> String {
    let mut out = String::from(if unit {
        "viewer,registered_at,unit"
    } else {
        "viewer,registered_at"
    });
    for f in fields {
        out.push(',');
        csv::text(&mut out, f);
    }
    out.push_str("\r\n");
    out
}

fn csv_row(out: &mut String, r: &Registration, fields: &[String], unit: bool) {
    csv::id(out, &r.viewer);
    out.push(',');
    out.push_str(&r.registered_at.to_string());
    if unit {
        out.push(',');
        csv::id(out, r.unit_code().unwrap_or(""));
    }
    let values = stored_fields(r);
    for f in fields {
        out.push(',');
        csv::text(out, values.get(f).and_then(Value::as_str).unwrap_or(""));
    }
    out.push_str("\r\n");
}

/// `DELETE /api/v1/campaigns/{id}/registrations/{viewer}` (operator): erases that person's
/// sign-up (id, time, fields) → 204; a viewer with none → 404. The campaign's count stays.
pub async fn erase(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    require_operator(&req, &api)?;
    let (id, viewer) = path.into_inner();
    let c = campaign(&api, &id).await?;
    if !is_client_id(&viewer) || !api.store.erase_registration(&c.id, &viewer).await? {
        return Err(ApiError::NotFound("registration"));
    }
    tracing::info!(campaign = %c.id, "registration erased");
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;
    use crate::store::Campaigns;

    fn reg(viewer: &str, fields: &str) -> Registration {
        Registration {
            viewer: viewer.into(),
            registered_at: 1_700_000_000_123,
            fields: fields.into(),
            unit: None,
        }
    }

    #[test]
    fn csv_rows_follow_the_declared_columns() {
        let fields = vec!["phone".to_owned(), "city".to_owned()];
        assert_eq!(csv_header(&fields, false), "viewer,registered_at,phone,city\r\n");
        let mut out = String::new();
        csv_row(
            &mut out,
            &reg("viewer-01", r#"{"city":"Paris, FR","phone":"+33 1"}"#),
            &fields,
            false,
        );
        csv_row(&mut out, &reg("viewer-02", r#"{"phone":"1"}"#), &fields, false);
        assert_eq!(
            out,
            "viewer-01,1700000000123,'+33 1,\"Paris, FR\"\r\nviewer-02,1700000000123,1,\r\n"
        );
        // On a campaign with an org, each row's unit after its time.
        assert_eq!(csv_header(&fields, true), "viewer,registered_at,unit,phone,city\r\n");
        let mut out = String::new();
        let mut r = reg("viewer-03", r#"{"phone":"3"}"#);
        r.unit = Some(vec!["GD".to_owned(), "GD-SZ".to_owned()].into());
        csv_row(&mut out, &r, &fields, true);
        r.unit = Some(vec![String::new()].into());
        csv_row(&mut out, &r, &fields, true);
        assert_eq!(
            out,
            "viewer-03,1700000000123,GD-SZ,3,\r\nviewer-03,1700000000123,unassigned,3,\r\n"
        );
    }

    #[test]
    fn bodies_name_the_offending_field() {
        let field = |v: Value| match parse_body(v) {
            Err(ApiError::BadRequest { field, .. }) => field.map(|f| f.into_owned()),
            other => panic!("{other:?}"),
        };
        assert_eq!(field(json!({"viewer": 5})), Some("viewer".into()));
        assert_eq!(field(json!({"viewer": "short"})), Some("viewer".into()));
        assert_eq!(
            field(json!({"viewer": "viewer-01", "fields": "x"})),
            Some("fields".into())
        );
        assert_eq!(field(json!(["viewer-01"])), None);
        assert_eq!(
            field(json!({"viewer": "viewer-01", "unit": "no spaces"})),
            Some("unit".into())
        );
        let (v, f, u) = parse_body(json!({"viewer": "viewer-01", "fields": {"a": "b"}, "v1_extra": 1})).unwrap();
        assert_eq!((v.as_deref(), u), (Some("viewer-01"), None));
        assert_eq!(f.unwrap()["a"], "b");
        let (_, _, u) = parse_body(json!({"viewer": "viewer-01", "unit": "GD-SZ"})).unwrap();
        assert_eq!(u.as_deref(), Some("GD-SZ"));
    }

    /// The export walks the store a page at a time: each chunk after the header holds at
    /// most one page, and together they are every registration once, in order.
    #[tokio::test]
    async fn the_export_is_read_page_by_page_and_is_exact() {
        let store = Arc::new(MemoryStore::new());
        let c = crate::store::flaky::campaign("big");
        store.create_campaign(&c).await.unwrap();
        let n = 2 * EXPORT_PAGE + 500;
        for i in 0..n {
            store
                .register("big", &reg(&format!("viewer-{i:05}"), "{}"))
                .await
                .unwrap();
        }
        store.erase_registration("big", "viewer-00007").await.unwrap();
        for format in [Format::Csv, Format::Json] {
            let mut rows = Rows {
                store: store.clone(),
                campaign: "big".into(),
                fields: vec![],
                unit: false,
                format,
                after: None,
            };
            let mut chunks = vec![];
            while let Some(chunk) = rows.next_chunk().await {
                chunks.push(String::from_utf8(chunk.unwrap().to_vec()).unwrap());
            }
            let pages = &chunks[1..chunks.len() - usize::from(format == Format::Json)];
            assert_eq!(pages.len(), 3, "{format:?}");
            assert!(pages.iter().all(|p| p.lines().count() <= EXPORT_PAGE));
            let viewers: Vec<String> = match format {
                Format::Csv => chunks
                    .concat()
                    .lines()
                    .skip(1)
                    .map(|l| l.split(',').next().unwrap().to_owned())
                    .collect(),
                Format::Json => serde_json::from_str::<Vec<Value>>(&chunks.concat())
                    .unwrap()
                    .iter()
                    .map(|r| r["viewer"].as_str().unwrap().to_owned())
                    .collect(),
            };
            let expected: Vec<String> = (0..n).filter(|i| *i != 7).map(|i| format!("viewer-{i:05}")).collect();
            assert_eq!(viewers, expected, "{format:?}");
        }
    }
}
