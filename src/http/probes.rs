//! `/metrics`, `/healthz`, `/readyz`.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::Api;

/// `/readyz` waits this long for the store before calling the node unready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(1);

pub async fn metrics(api: web::Data<Api>) -> HttpResponse {
    // Fresh at every scrape: while the store hangs, flushes (which also set it) are slow.
    api.metrics.store_pending.set(api.tallies.pending().get() as i64);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(api.metrics.render())
}

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "alive"}))
}

/// 200 while the node is not shutting down, whether or not the store answers: while it
/// does not, the node still admits viewers of the campaigns it holds (their claims land
/// later, see `tally::claim`), so a balancer must keep sending them. The body says which:
/// `"store":"up"|"down"` (`status` `store_unavailable` while down), `store_kind` names it.
pub async fn readyz(api: web::Data<Api>) -> HttpResponse {
    if api.shutdown.is_cancelled() {
        return HttpResponse::ServiceUnavailable().json(json!({"status": "shutting_down"}));
    }
    let ok = matches!(tokio::time::timeout(READY_TIMEOUT, api.store.ping()).await, Ok(Ok(())));
    api.metrics.store_call(ok);
    HttpResponse::Ok().json(json!({
        "status": if ok { "ready" } else { "store_unavailable" },
        "store": if ok { "up" } else { "down" },
        "store_kind": api.store.kind(),
        "node": api.node_id,
        "pending": api.tallies.pending().get(),
    }))
}
