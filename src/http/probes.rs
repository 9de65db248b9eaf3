//! `/metrics`, `/healthz`, `/readyz`.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::node::NodeCtx;

/// `/readyz` waits this long for the store before calling the node unready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(1);

pub async fn metrics(ctx: web::Data<NodeCtx>) -> HttpResponse {
    // Fresh at every scrape: while the store hangs, flushes (which also set it) are slow.
    ctx.metrics
        .store_pending
        .set(ctx.pending.load(std::sync::atomic::Ordering::Relaxed) as i64);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(ctx.metrics.render())
}

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "alive"}))
}

/// 200 only while the store answers and the node is not shutting down.
pub async fn readyz(ctx: web::Data<NodeCtx>) -> HttpResponse {
    if ctx.shutdown.is_cancelled() {
        return HttpResponse::ServiceUnavailable().json(json!({"status": "shutting_down"}));
    }
    let ok = matches!(tokio::time::timeout(READY_TIMEOUT, ctx.store.ping()).await, Ok(Ok(())));
    ctx.metrics.store_call(ok);
    let body = json!({
        "status": if ok { "ready" } else { "store_unavailable" },
        "store": ctx.store.kind(),
        "node": ctx.node_id,
        "pending": ctx.pending.load(std::sync::atomic::Ordering::Relaxed),
    });
    if ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
