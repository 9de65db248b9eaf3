//! The node's HTTP API as the tool uses it: creating the campaign, reading its totals, and
//! the side traffic of the load phase (registrations, share visits).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::args::Target;
use super::http;

/// Side traffic calls in flight at once.
const SIDE_CONCURRENCY: usize = 8;

/// Server-side totals the tool checks.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Totals {
    pub interactions: u64,
    pub registrations: u64,
    pub share_visits: u64,
}

/// Creates `campaign` with the operator `token`; one that already exists is used as it is.
pub async fn create_campaign(api: &Target, campaign: &str, token: &str) -> anyhow::Result<()> {
    let body = serde_json::json!({"id": campaign, "title": "load rehearsal"});
    let r = http::call(api, "POST", "/api/v1/campaigns", Some(&body), Some(token)).await?;
    if r.status != 201 && r.status != 409 {
        bail!("creating campaign {campaign}: HTTP {}", r.status);
    }
    Ok(())
}

/// The campaign's totals of `kind`, registrations and share visits, from its public stats.
pub async fn totals(addr: &Target, campaign: &str, kind: &str) -> anyhow::Result<Totals> {
    let r = http::call(addr, "GET", &format!("/api/v1/campaigns/{campaign}/stats"), None, None)
        .await
        .context("GET stats")?;
    if r.status != 200 {
        bail!("GET /api/v1/campaigns/{campaign}/stats answered {}", r.status);
    }
    let v = r.json();
    Ok(Totals {
        interactions: v["interactions"][kind].as_u64().unwrap_or(0),
        registrations: v["registrations"].as_u64().unwrap_or(0),
        share_visits: v["share_visits"].as_u64().unwrap_or(0),
    })
}

/// What the HTTP side traffic did.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct SideTraffic {
    pub registrations_created: u64,
    pub registrations_failed: u64,
    pub share_visits_ok: u64,
    pub share_visits_failed: u64,
}

/// Spreads `registrations` and `share_visits` calls evenly over `duration`.
pub async fn side_traffic(
    api: Target,
    campaign: String,
    run_id: String,
    registrations: u64,
    share_visits: u64,
    duration: Duration,
) -> SideTraffic {
    let gate = Arc::new(Semaphore::new(SIDE_CONCURRENCY));
    let start = Instant::now();
    let total = registrations + share_visits;
    let mut tasks = Vec::new();
    for i in 0..total {
        tokio::time::sleep_until(start + duration.mul_f64(i as f64 / total.max(1) as f64)).await;
        // unwrap: the semaphore is never closed.
        let permit = gate.clone().acquire_owned().await.expect("semaphore open");
        let campaign = campaign.clone();
        let api = api.clone();
        // Call i is a registration when it moves the registration share up a whole call, so
        // both kinds are spread evenly and exactly `registrations` are made.
        let registration = (i + 1) * registrations / total > i * registrations / total;
        let viewer = format!("{run_id}r{i:08}");
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            if registration {
                let body = serde_json::json!({ "viewer": viewer });
                let path = format!("/api/v1/campaigns/{campaign}/registrations");
                let r = http::call(&api, "POST", &path, Some(&body), None).await;
                (true, matches!(r, Ok(r) if r.status == 201))
            } else {
                let path = format!("/s/{campaign}?via=load");
                let r = http::call(&api, "GET", &path, None, None).await;
                (false, matches!(r, Ok(r) if r.status == 302))
            }
        }));
    }
    let mut out = SideTraffic::default();
    for t in tasks {
        match t.await {
            Ok((true, true)) => out.registrations_created += 1,
            Ok((true, false)) => out.registrations_failed += 1,
            Ok((false, true)) => out.share_visits_ok += 1,
            _ => out.share_visits_failed += 1,
        }
    }
    out
}
