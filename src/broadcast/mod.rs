//! Step four: every tick, read each active campaign's global stats from the store, record
//! the tick (peak, series), serialise ONE viewer frame and ONE operator frame, and publish
//! them through the campaign's `watch` channel. Every socket sends the same bytes (a
//! reference-counted `Utf8Bytes`), so broadcast cost per viewer is a refcount bump plus
//! the socket write, never a serialisation.

pub mod frame;

use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

pub use frame::Frames;

use crate::node::NodeCtx;
use crate::tally::CampaignTally;

/// Runs until `stop` is cancelled.
pub async fn run(ctx: Arc<NodeCtx>, stop: CancellationToken) {
    let mut interval = tokio::time::interval(ctx.config.tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // `scheduled` is when this tick was due: broadcast lag counts from there, so a
        // starved runtime that runs the tick late shows up in the lag too.
        let scheduled = tokio::select! {
            due = interval.tick() => due.into_std(),
            _ = stop.cancelled() => return,
        };
        let tallies = ctx.tallies.all();
        let started = Instant::now();
        futures_util::future::join_all(tallies.into_iter().map(|t| tick_campaign(&ctx, t, scheduled))).await;
        ctx.metrics.broadcast_seconds.observe(started.elapsed().as_secs_f64());
    }
}

/// The series bucket of a count or a tick at `at_ms`: the start of its tick, but never
/// before the campaign's creation. Series windows start at `created_at` by default, so a
/// first bucket starting earlier (the campaign was created mid-tick) would fall outside
/// it and its counts would be missing from every default series read.
pub fn bucket_of(created_at: i64, at_ms: i64, tick: std::time::Duration) -> i64 {
    let tick_ms = tick.as_millis().max(1) as i64;
    (at_ms - at_ms.rem_euclid(tick_ms)).max(created_at)
}

/// One tick of one campaign.
async fn tick_campaign(ctx: &NodeCtx, tally: Arc<CampaignTally>, scheduled: Instant) {
    let c = &tally.campaign;
    let at = crate::now_ms();
    let stats = ctx.store.stats(&c.id, &c.kinds, at).await;
    ctx.metrics.store_call(stats.is_ok());
    let mut stats = match stats {
        Ok(s) => s,
        Err(e) => {
            ctx.metrics.store_errors.inc();
            tracing::debug!(campaign = %c.id, error = %e, "stats read failed; keeping the last frame");
            return;
        }
    };
    if stats.ended {
        tally.ended.cancel();
        return;
    }
    match ctx
        .store
        .record_tick(
            &c.id,
            bucket_of(c.created_at, at, ctx.config.tick),
            at,
            stats.viewers,
            &stats.regions,
        )
        .await
    {
        Ok((peak, peak_at)) => {
            stats.peak_viewers = peak;
            stats.peak_at = peak_at;
        }
        Err(e) => tracing::debug!(campaign = %c.id, error = %e, "tick record failed"),
    }
    let frames = Frames::build(&c.id, at, &stats);
    let published = tally.frames.send_if_modified(|current| {
        if current.same_numbers(&frames) {
            false
        } else {
            *current = Arc::new(frames);
            true
        }
    });
    if published {
        // Handed to the sockets: each socket task now writes the shared frame on its own
        // (a slow one is dropped, never waited for), so this is the lag the node controls.
        ctx.metrics
            .broadcast_lag_seconds
            .observe(scheduled.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn buckets_are_tick_aligned_but_never_before_the_campaign() {
        let tick = Duration::from_millis(100);
        assert_eq!(bucket_of(1_050, 1_080, tick), 1_050);
        assert_eq!(bucket_of(1_050, 1_100, tick), 1_100);
        assert_eq!(bucket_of(1_050, 1_234, tick), 1_200);
    }
}
