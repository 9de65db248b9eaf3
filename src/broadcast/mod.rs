//! Step four: every tick, read each active campaign's global stats from the store, record
//! the tick (peak, series), serialise ONE viewer frame and ONE operator frame
//! ([`Frames`]), and publish them through the campaign's `watch` channel. Every socket
//! sends the same bytes (a reference-counted buffer), so broadcast cost per viewer is a
//! refcount bump plus the socket write, never a serialisation.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::protocol::Frames;
use crate::store::{bucket_of, Store};
use crate::tally::{CampaignTally, Tallies};

/// The broadcaster task and the few things it touches.
pub struct Broadcaster {
    pub tallies: Arc<Tallies>,
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    /// `--tick`: how often stats are read and pushed.
    pub tick: Duration,
}

impl Broadcaster {
    /// Runs until `stop` is cancelled.
    pub async fn run(self, stop: CancellationToken) {
        let mut interval = tokio::time::interval(self.tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // `scheduled` is when this tick was due: broadcast lag counts from there, so a
            // starved runtime that runs the tick late shows up in the lag too.
            let scheduled = tokio::select! {
                due = interval.tick() => due.into_std(),
                _ = stop.cancelled() => return,
            };
            self.tick_all(scheduled).await;
        }
    }

    /// One tick of every campaign with a tally on this node.
    pub async fn tick_all(&self, scheduled: Instant) {
        let tallies = self.tallies.all();
        let started = Instant::now();
        futures_util::future::join_all(tallies.into_iter().map(|t| self.tick_campaign(t, scheduled))).await;
        self.metrics.broadcast_seconds.observe(started.elapsed().as_secs_f64());
    }

    /// One tick of one campaign.
    async fn tick_campaign(&self, tally: Arc<CampaignTally>, scheduled: Instant) {
        let c = &tally.campaign;
        let at = crate::util::now_ms();
        let stats = self.store.stats(&c.id, &c.kinds, at).await;
        self.metrics.store_call(stats.is_ok());
        let mut stats = match stats {
            Ok(s) => s,
            Err(e) => {
                self.metrics.store_errors.inc();
                tracing::debug!(campaign = %c.id, error = %e, "stats read failed; keeping the last frame");
                return;
            }
        };
        if stats.ended {
            tally.ended.cancel();
            return;
        }
        let bucket = bucket_of(c.created_at, at, self.tick);
        match self
            .store
            .record_tick(&c.id, bucket, at, stats.viewers, &stats.regions)
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
            self.metrics
                .broadcast_lag_seconds
                .observe(scheduled.elapsed().as_secs_f64());
        }
    }
}
