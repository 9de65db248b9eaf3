//! A campaign's numbers by unit of its org, for operators (spec v1.2, "The organisation"):
//! live, one unit's children at a time from the node's per-tick listing
//! (`broadcast::units`), and after the event, every active unit of one level, streamed.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::stream;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{indexed, require_operator, Api};
use crate::broadcast::units::{parse_cursor, UNASSIGNED_CODE};
use crate::campaign::Campaign;
use crate::error::ApiError;
use crate::org::Tree;
use crate::store::units::UNASSIGNED;
use crate::store::{Store, UnitPeak, UnitTotals};

/// Rows a live page holds when the caller does not say; at most [`MAX_LIMIT`].
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1_000;
/// Units read from the store per chunk of the per-level report.
const REPORT_PAGE: usize = 1_000;

#[derive(Debug, Deserialize)]
pub struct LiveQuery {
    parent: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// `GET /api/v1/campaigns/{id}/units?parent=CODE&limit=N&cursor=C` (operator): `parent`'s
/// children (the top level and `unassigned` without it), sorted by viewers, as of this
/// node's last tick. A cursor pages through the order of the tick it came from while that
/// listing is kept (60 s), then through the latest one.
pub async fn live(
    req: HttpRequest,
    api: web::Data<Api>,
    id: web::Path<String>,
    q: web::Query<LiveQuery>,
) -> Result<HttpResponse, ApiError> {
    require_operator(&req, &api)?;
    indexed(&api, &id)?;
    let limit = match q.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| ApiError::bad("limit", format!("limit must be 1 to {MAX_LIMIT}")))?,
    };
    let cursor = match q.cursor.as_deref() {
        None => None,
        Some(c) => Some(parse_cursor(c).ok_or_else(|| ApiError::bad("cursor", "cursor is not one this route gave"))?),
    };
    let body = api.units.page(&id, q.parent.as_deref(), cursor, limit).await?;
    Ok(HttpResponse::Ok().json(body))
}

/// The report's `units_at_peak`: the viewers at the campaign's peak of each unit of the
/// first level with more than one unit (`unassigned` among them at level 1), when that
/// level is within `--unit-peak-depth`; `{}` otherwise.
pub fn at_peak(tree: &Tree, depth: u8, units_at_peak: &std::collections::BTreeMap<String, u64>) -> Value {
    let Some(level) = tree.levels().iter().position(|&n| n > 1).map(|l| l as u8 + 1) else {
        return json!({});
    };
    let mut out = serde_json::Map::new();
    if level <= depth {
        for i in tree.at_level(level) {
            if let Some(&n) = units_at_peak.get(tree.code(i)).filter(|&&n| n > 0) {
                out.insert(tree.code(i).to_owned(), n.into());
            }
        }
        if let Some(&n) = units_at_peak.get(UNASSIGNED).filter(|&&n| n > 0 && level == 1) {
            out.insert(UNASSIGNED_CODE.to_owned(), n.into());
        }
    }
    Value::Object(out)
}

#[derive(Debug, Deserialize)]
pub struct ReportQuery {
    level: Option<String>,
    format: Option<String>,
}

/// `GET /api/v1/campaigns/{id}/report/units?level=N&format=json|csv` (operator): every
/// unit of level `N` with any activity, with its parent and all its numbers, viewers now
/// included (level 1 with `unassigned` too). Streamed a chunk of units at a time, so the node holds one chunk of
/// numbers whatever the size of the level.
pub async fn report(
    req: HttpRequest,
    api: web::Data<Api>,
    id: web::Path<String>,
    q: web::Query<ReportQuery>,
) -> Result<HttpResponse, ApiError> {
    require_operator(&req, &api)?;
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError::bad("format", "format must be json or csv")),
    };
    let c = super::campaign(&api, &id).await?;
    let (tree, depth) = api.units.tree_of(&c).await?;
    // Every count taken so far, in the totals before the first row is read.
    api.store.fold_units(&c.id, &tree, None).await?;
    let level = q
        .level
        .as_deref()
        .and_then(|l| l.parse::<u8>().ok())
        .filter(|&l| l >= 1 && usize::from(l) <= tree.levels().len())
        .ok_or_else(|| ApiError::bad("level", format!("level must be 1 to {}", tree.levels().len())))?;
    let mut units: Vec<Option<u32>> = tree.at_level(level).map(Some).collect();
    if level == 1 {
        units.push(None);
    }
    // Viewers now: the upper units' from the last tick, the deeper ones read once from
    // the nodes it saw live, whole (an ended campaign's are 0).
    let frames = indexed(&api, &id)?.frames(&*api.store).await?;
    let live = match frames.stats() {
        Some(s) if !s.ended && level <= depth => s.units.iter().map(|(c, &n)| (c.clone(), n)).collect(),
        Some(s) if !s.ended => {
            let nodes: Vec<String> = s.nodes.iter().map(|n| n.node.clone()).collect();
            api.store.all_deep_viewers(&c.id, &nodes).await?
        }
        _ => HashMap::new(),
    };
    let rows = Rows {
        store: api.store.clone(),
        tree,
        campaign: c,
        upper: level <= depth,
        live,
        units,
        next: 0,
        csv,
        written: 0,
        started: false,
        done: false,
    };
    let body = stream::unfold(rows, |mut rows| async move {
        let chunk = rows.next_chunk().await?;
        Some((chunk, rows))
    });
    let (content_type, ext) = if csv {
        ("text/csv; charset=utf-8", "csv")
    } else {
        ("application/json", "json")
    };
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"livetally-{id}-units-level-{level}.{ext}\""),
        ))
        .streaming(body))
}

/// The per-level report's cursor: the header, then chunk after chunk, then the end.
struct Rows {
    store: Arc<dyn Store>,
    tree: Arc<Tree>,
    campaign: Campaign,
    /// The level is at most `--unit-peak-depth`: peaks and unique viewers are kept.
    upper: bool,
    /// The level's viewers now, by code (units with none left out).
    live: HashMap<String, u64>,
    /// The level's units (`None`: unassigned), and the next to read.
    units: Vec<Option<u32>>,
    next: usize,
    csv: bool,
    /// Rows written so far (for the JSON commas).
    written: usize,
    started: bool,
    done: bool,
}

impl Rows {
    fn header(&self) -> String {
        let mut h = String::from("code,name,level,parent,viewers,sessions,interactions");
        for k in &self.campaign.kinds {
            h.push_str(",interactions.");
            crate::util::csv::text(&mut h, k);
        }
        h.push_str(",registrations,share_visits");
        if self.upper {
            h.push_str(",peak_viewers,peak_at,unique_viewers");
        }
        h.push('\n');
        h
    }

    async fn next_chunk(&mut self) -> Option<Result<Bytes, ApiError>> {
        if self.done {
            return None;
        }
        if !self.started {
            self.started = true;
            return Some(Ok(Bytes::from(if self.csv { self.header() } else { "[".to_owned() })));
        }
        let end = (self.next + REPORT_PAGE).min(self.units.len());
        if self.next >= end {
            self.done = true;
            return (!self.csv).then(|| Ok(Bytes::from_static(b"]\n")));
        }
        let chunk = &self.units[self.next..end];
        let codes: Vec<String> = chunk
            .iter()
            .map(|u| u.map_or(UNASSIGNED.to_owned(), |i| self.tree.code(i).to_owned()))
            .collect();
        let c = &self.campaign;
        let viewers: Vec<u64> = codes.iter().map(|c| self.live.get(c).copied().unwrap_or(0)).collect();
        let read = async {
            let totals = self.store.unit_totals(&c.id, &c.kinds, &codes).await?;
            let peaks = if self.upper {
                self.store.unit_peaks(&c.id, &codes).await?
            } else {
                vec![UnitPeak::default(); codes.len()]
            };
            Ok::<_, crate::store::StoreError>((totals, peaks))
        };
        let (totals, peaks) = match read.await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(campaign = %c.id, error = %e, "units report cut short");
                self.done = true;
                return Some(Err(e.into()));
            }
        };
        let mut out = String::new();
        for (k, unit) in chunk.iter().enumerate() {
            let (t, p, v) = (&totals[k], &peaks[k], viewers[k]);
            if t.is_empty() && p.peak_viewers == 0 && v == 0 {
                continue;
            }
            let (code, name, parent) = match *unit {
                Some(i) => (
                    self.tree.code(i),
                    self.tree.name(i),
                    self.tree.parent(i).map(|p| self.tree.code(p)),
                ),
                None => (UNASSIGNED_CODE, UNASSIGNED_CODE, None),
            };
            let level = unit.map_or(1, |i| self.tree.level(i));
            if self.csv {
                self.csv_row(
                    &mut out,
                    [code, name, &level.to_string(), parent.unwrap_or("")],
                    v,
                    t,
                    p,
                );
            } else {
                if self.written > 0 {
                    out.push(',');
                }
                let mut row = json!({
                    "code": code, "name": name, "level": level, "parent": parent,
                    "viewers": v, "sessions": t.sessions, "interactions": t.interactions,
                    "registrations": t.registrations, "share_visits": t.share_visits,
                });
                if let Some(o) = row.as_object_mut().filter(|_| self.upper) {
                    o.insert("peak_viewers".into(), p.peak_viewers.into());
                    o.insert("peak_at".into(), p.peak_at.into());
                    o.insert("unique_viewers".into(), p.unique_viewers.into());
                }
                out.push_str(&row.to_string());
            }
            self.written += 1;
        }
        self.next = end;
        Some(Ok(Bytes::from(out)))
    }

    fn csv_row(&self, out: &mut String, cells: [&str; 4], viewers: u64, t: &UnitTotals, p: &UnitPeak) {
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            crate::util::csv::text(out, cell);
        }
        let mut numbers = vec![viewers, t.sessions, t.interactions_total()];
        numbers.extend(
            self.campaign
                .kinds
                .iter()
                .map(|k| t.interactions.get(k).copied().unwrap_or(0)),
        );
        numbers.extend([t.registrations, t.share_visits]);
        for n in numbers {
            out.push(',');
            out.push_str(&n.to_string());
        }
        if self.upper {
            out.push_str(&format!(
                ",{},{},{}",
                p.peak_viewers,
                p.peak_at.map_or(String::new(), |a| a.to_string()),
                p.unique_viewers
            ));
        }
        out.push('\n');
    }
}
