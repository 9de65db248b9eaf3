//! Operator routes for organisations: upload (`PUT`, CSV or NDJSON, read as a stream),
//! the summaries, a unit, the search, and `DELETE`.
//!
//! The upload's parser is synchronous (the `csv` crate reads a `std::io::Read`) and takes
//! about a second of CPU for the seed's 546,000 units, so it runs on a blocking thread and
//! the request's body reaches it through a bounded channel: the node holds the tree being
//! built and a few body chunks, never the body.

use std::io::{self, Read};
use std::sync::Arc;

use actix_web::mime;
use actix_web::web::Bytes;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::{require_operator, Api};
use crate::error::ApiError;
use crate::org::{self, is_org_id, OrgSummary, Tree, UploadError, MAX_BODY_BYTES};

/// Body chunks queued between the request and the parser: enough to keep the parser busy
/// while the next chunk arrives, few enough that a slow parser holds back the client.
const QUEUED_CHUNKS: usize = 4;

/// Most results of one search: a page of suggestions, not an export.
pub const MAX_SEARCH_RESULTS: usize = 50;

/// Which parser a body's content type picks.
#[derive(Clone, Copy)]
enum Format {
    Csv,
    Ndjson,
}

fn format_of(req: &HttpRequest) -> Result<Format, ApiError> {
    let mime = req.mime_type().ok().flatten();
    match mime.as_ref().map(|m| (m.type_(), m.subtype().as_str())) {
        Some((mime::TEXT, "csv")) => Ok(Format::Csv),
        Some((mime::APPLICATION, "x-ndjson")) => Ok(Format::Ndjson),
        _ => Err(ApiError::BadRequest {
            field: None,
            message: "body must be text/csv (code,parent,name) or application/x-ndjson".into(),
        }),
    }
}

/// The org of a path: a malformed id is simply not found (as for campaigns).
fn org_id(path: &str) -> Result<&str, ApiError> {
    if is_org_id(path) {
        Ok(path)
    } else {
        Err(ApiError::NotFound("org"))
    }
}

/// The body as a `Read`, chunk by chunk from the request task.
struct ChannelReader {
    chunks: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                None => return Ok(0),
                Some(chunk) => self.current = chunk?,
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Reads and checks the body into a tree, streaming (see the module doc).
async fn read_tree(format: Format, mut payload: web::Payload) -> Result<Tree, ApiError> {
    let (tx, rx) = mpsc::channel(QUEUED_CHUNKS);
    let reader = ChannelReader {
        chunks: rx,
        current: Bytes::new(),
    };
    let parser = tokio::task::spawn_blocking(move || match format {
        Format::Csv => org::parse_csv(reader),
        Format::Ndjson => org::parse_ndjson(reader),
    });
    let mut total = 0u64;
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(io::Error::other).and_then(|b| {
            total += b.len() as u64;
            if total > MAX_BODY_BYTES {
                return Err(io::Error::other(format!("the body is over {MAX_BODY_BYTES} bytes")));
            }
            Ok(b)
        });
        let last = chunk.is_err();
        // A closed channel: the parser stopped at an error, which it returns below.
        if tx.send(chunk).await.is_err() || last {
            break;
        }
    }
    drop(tx);
    let parsed = parser
        .await
        .map_err(|e| ApiError::Unavailable(format!("the upload's parser failed: {e}")))?;
    parsed.map_err(|UploadError { line, field, message }| ApiError::Upload { line, field, message })
}

/// Versions of `org` that campaigns count by: kept when the org is replaced or deleted.
/// The second value lists the live campaigns that use it.
async fn versions_in_use(api: &Api, org: &str) -> Result<(Vec<u64>, Vec<String>), ApiError> {
    let mut versions = Vec::new();
    let mut live = Vec::new();
    for c in api.store.list_campaigns().await? {
        if c.org.as_deref() != Some(org) {
            continue;
        }
        versions.extend(c.org_version);
        if c.is_live() {
            live.push(c.id);
        }
    }
    Ok((versions, live))
}

/// `PUT /api/v1/orgs/{org}`
pub async fn put(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    require_operator(&req, &api)?;
    let org = path.into_inner();
    if !is_org_id(&org) {
        let pattern = crate::protocol::limits::CAMPAIGN_ID;
        return Err(ApiError::bad("org", format!("org must match {pattern}")));
    }
    let tree = read_tree(format_of(&req)?, payload).await?;
    let (summary, replaced) = api.store.put_org(&org, Arc::new(tree)).await?;
    // The version just replaced stays until the next upload too: a campaign created while
    // this one ran may have taken it without being listed yet.
    let (mut keep, _) = versions_in_use(&api, &org).await?;
    keep.push(summary.version - 1);
    api.store.prune_org(&org, &keep).await?;
    tracing::info!(org = %org, version = summary.version, units = summary.units, "org uploaded");
    Ok(if replaced {
        HttpResponse::Ok().json(summary)
    } else {
        HttpResponse::Created().json(summary)
    })
}

/// `?version=N` of the org reads (absent: the newest).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionQuery {
    version: Option<u64>,
}

/// `?q=TEXT&version=N` of the search.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    q: Option<String>,
    version: Option<u64>,
}

async fn summary(api: &Api, org: &str, version: Option<u64>) -> Result<OrgSummary, ApiError> {
    api.store
        .org_summary(org_id(org)?, version)
        .await?
        .ok_or(ApiError::NotFound("org"))
}

/// The tree of the version a read names (or the newest).
async fn tree(api: &Api, org: &str, version: Option<u64>) -> Result<(OrgSummary, Arc<Tree>), ApiError> {
    let summary = summary(api, org, version).await?;
    let tree = api
        .store
        .org_tree(org, summary.version)
        .await?
        .ok_or(ApiError::NotFound("org"))?;
    Ok((summary, tree))
}

/// `GET /api/v1/orgs`
pub async fn list(req: HttpRequest, api: web::Data<Api>) -> Result<HttpResponse, ApiError> {
    require_operator(&req, &api)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "orgs": api.store.list_orgs().await? })))
}

/// `GET /api/v1/orgs/{org}`
pub async fn get(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<String>,
    q: web::Query<VersionQuery>,
) -> Result<HttpResponse, ApiError> {
    require_operator(&req, &api)?;
    Ok(HttpResponse::Ok().json(summary(&api, &path, q.version).await?))
}

/// `GET /api/v1/orgs/{org}/units/{code}`
pub async fn unit(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<(String, String)>,
    q: web::Query<VersionQuery>,
) -> Result<HttpResponse, ApiError> {
    require_operator(&req, &api)?;
    let (org, code) = path.into_inner();
    let (_, tree) = tree(&api, &org, q.version).await?;
    let at = tree.find(&code).ok_or(ApiError::NotFound("unit"))?;
    Ok(HttpResponse::Ok().json(tree.unit(at)))
}

/// `GET /api/v1/orgs/{org}/units?q=TEXT`: units whose code or name begins with `q`.
pub async fn search(
    req: HttpRequest,
    api: web::Data<Api>,
    path: web::Path<String>,
    q: web::Query<SearchQuery>,
) -> Result<HttpResponse, ApiError> {
    require_operator(&req, &api)?;
    let text = q.q.as_deref().unwrap_or("");
    let chars = text.chars().count();
    if chars == 0 || chars > org::MAX_NAME_CHARS {
        return Err(ApiError::bad("q", "q must be 1 to 100 characters"));
    }
    let (summary, tree) = tree(&api, &path, q.version).await?;
    let units: Vec<_> = tree
        .search(text, MAX_SEARCH_RESULTS)
        .into_iter()
        .map(|i| tree.unit(i))
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "org": summary.org,
        "version": summary.version,
        "units": units,
    })))
}

/// Resolves a new campaign's `org` to its newest version: 400 naming `org` when there is
/// no such org.
pub async fn newest_version(api: &Api, org: Option<&str>) -> Result<Option<u64>, ApiError> {
    let Some(org) = org else { return Ok(None) };
    match api.store.org_summary(org, None).await? {
        Some(s) => Ok(Some(s.version)),
        None => Err(ApiError::bad("org", format!("no org {org:?}: upload it first"))),
    }
}

/// `DELETE /api/v1/orgs/{org}`: 409 while a live campaign counts by it. Versions that
/// ended campaigns use are kept for their reports.
pub async fn delete(req: HttpRequest, api: web::Data<Api>, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    require_operator(&req, &api)?;
    let org = org_id(&path)?;
    let (keep, live) = versions_in_use(&api, org).await?;
    if let Some(first) = live.first() {
        return Err(ApiError::InUse(format!(
            "org {org} is used by live campaign {first} ({} live): end them first",
            live.len()
        )));
    }
    if !api.store.delete_org(org, &keep).await? {
        return Err(ApiError::NotFound("org"));
    }
    tracing::info!(org = %org, "org deleted");
    Ok(HttpResponse::NoContent().finish())
}
