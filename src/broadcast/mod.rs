//! Step four: every tick, read each active campaign's global stats from the store, record
//! the tick (peak, series), serialise ONE viewer frame and ONE operator frame
//! ([`Frames`], each also encoded once as a complete WebSocket frame), and deliver them:
//! written straight into every plain-TCP socket of the campaign (`tally.outlets`, see
//! `broadcast::outlet`), and published through the campaign's `watch` channel for sockets over
//! other streams. Broadcast cost per viewer is one non-blocking write, never a
//! serialisation or a task wake-up.
//!
//! Each tick starts by refreshing the node's campaign [`index`], and every read of a live
//! campaign's stats (with sockets here or not) is published there too, so the public
//! reads of every node answer from the tick's numbers.

pub mod index;
pub mod outlet;
pub mod unit_views;
pub mod units;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::protocol::Frames;
use crate::store::{bucket_of, Reads, StoreError};
use crate::tally::{CampaignTally, Tallies};
use index::{CampaignIndex, Entry};
use outlet::Wires;

/// The broadcaster task and the few things it touches.
pub struct Broadcaster {
    pub tallies: Arc<Tallies>,
    /// The one seam it uses: stats read, tick recorded.
    pub store: Arc<dyn Reads>,
    /// Refreshed first thing each tick; gets every stats read of a live campaign.
    pub index: Arc<CampaignIndex>,
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

    /// One tick: the index refreshed, then every campaign with a tally on this node, and
    /// the stats of every other live campaign read for the index.
    pub async fn tick_all(&self, scheduled: Instant) {
        if let Err(e) = self.index.refresh().await {
            tracing::debug!(error = %e, "campaign index not refreshed; keeping what this node knew");
        }
        let tallies = self.tallies.all();
        let others: Vec<_> = self
            .index
            .live()
            .into_iter()
            .filter(|e| self.tallies.get(&e.campaign.id).is_none())
            .collect();
        let started = Instant::now();
        let ticks = futures_util::future::join_all(tallies.into_iter().map(|t| self.tick_campaign(t, scheduled)));
        let reads = futures_util::future::join_all(others.iter().map(|e| self.read_for_index(e)));
        futures_util::future::join(ticks, reads).await;
        self.metrics.broadcast_seconds.observe(started.elapsed().as_secs_f64());
    }

    /// The stats of a live campaign without sockets here, for the public reads.
    async fn read_for_index(&self, entry: &Entry) {
        let c = &entry.campaign;
        let at = crate::util::now_ms();
        let stats = self.store.stats(&c.id, &c.kinds, at).await;
        self.metrics.store_call(stats.is_ok());
        match stats {
            Ok(stats) => entry.publish(Arc::new(Frames::build(&c.id, at, &stats))),
            Err(e) => tracing::debug!(campaign = %c.id, error = %e, "stats read failed; keeping the last ones"),
        }
    }

    /// Gives the index this tick's frames of `tally`'s campaign (unless the index holds
    /// another campaign of the same id: deleted and created again).
    fn publish_to_index(&self, tally: &CampaignTally, frames: &Arc<Frames>) {
        if let Ok(Some(entry)) = self.index.get(&tally.campaign.id) {
            if entry.campaign.created_at == tally.campaign.created_at && entry.campaign.is_live() {
                entry.publish(frames.clone());
            }
        }
    }

    /// One tick of one campaign.
    async fn tick_campaign(&self, tally: Arc<CampaignTally>, scheduled: Instant) {
        let c = &tally.campaign;
        let at = crate::util::now_ms();
        let stats = self.store.stats(&c.id, &c.kinds, at).await;
        self.metrics.store_call(stats.is_ok());
        let mut stats = match stats {
            Ok(s) => s,
            // Deleted (so ended) before this node saw it end: close its sockets with 4000.
            Err(StoreError::NotFound) => {
                tally.ended.cancel();
                return;
            }
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
            .record_tick(&c.id, bucket, at, stats.viewers, &stats.regions_and_units())
            .await
        {
            Ok((peak, peak_at)) => {
                stats.peak_viewers = peak;
                stats.peak_at = peak_at;
            }
            Err(e) => tracing::debug!(campaign = %c.id, error = %e, "tick record failed"),
        }
        let frames = Arc::new(Frames::of(&c.id, at, stats));
        self.publish_to_index(&tally, &frames);
        let published = tally.frames.send_if_modified(|current| {
            if current.same_numbers(&frames) {
                false
            } else {
                *current = frames.clone();
                true
            }
        });
        // Viewers in units: their unit's frame after the stats frame, where it changed
        // (at most every 5 s); the path is serialised once per path, the wire once per place.
        let unit_frames = frames
            .stats()
            .zip(tally.units.get())
            .and_then(|(s, u)| u.unit_frames(&s.units, at));
        if published || unit_frames.is_some() {
            let units: Vec<Option<Bytes>> = unit_frames
                .unwrap_or_default()
                .iter()
                .map(|f| {
                    f.as_ref().map(|f| match published {
                        true => [frames.viewer_wire.as_ref(), f.wire.as_ref()].concat().into(),
                        false => f.wire.clone(),
                    })
                })
                .collect();
            // Plain-TCP sockets get the encoded frame written here, one non-blocking write
            // each (a socket that cannot take it now gets it from its own task, which drops
            // a slow one): no task wakes up for a frame. Other sockets took it from `frames`
            // (and their unit's frame from their place).
            tally.outlets.offer_wires(Wires {
                viewer: published.then_some(&frames.viewer_wire),
                operator: published.then_some(&frames.operator_wire),
                units: &units,
            });
        }
        if published {
            self.metrics
                .broadcast_lag_seconds
                .observe(scheduled.elapsed().as_secs_f64());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::store::flaky::{campaign, Flaky};
    use crate::store::{Batch, Campaigns, Counting, Presence, SeriesMetric, SessionDelta, Stats, StoreResult};

    const TICK: Duration = Duration::from_secs(1);

    fn broadcaster(store: Arc<dyn Reads>, tallies: &Arc<Tallies>) -> (Broadcaster, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::new());
        let b = Broadcaster {
            tallies: tallies.clone(),
            store,
            index: Arc::new(CampaignIndex::new(Arc::new(crate::store::memory::MemoryStore::new()))),
            metrics: metrics.clone(),
            tick: TICK,
        };
        (b, metrics)
    }

    /// What a flush from node `n1` with one viewer and `likes` new likes writes.
    async fn flush(store: &Flaky, number: u64, likes: u64) {
        let (epoch, _) = store
            .claim_session("launch", "session-1", &crate::store::flaky::N1)
            .await
            .unwrap();
        let batch = Batch {
            campaign: "launch".into(),
            origin: "n1/run".into(),
            number,
            bucket_ms: crate::util::now_ms(),
            sessions: vec![SessionDelta {
                session: "session-1".into(),
                viewer: "viewer-1".into(),
                epoch,
                seq: 0,
                counts: vec![("like".into(), likes)],
                unit: None,
            }],
            presence: Some((
                "n1".into(),
                Presence {
                    viewers: 1,
                    ..Default::default()
                },
            )),
            presence_ttl: Duration::from_secs(10),
            ..Default::default()
        };
        store.apply(&batch).await.unwrap();
    }

    fn viewer_frame(tally: &CampaignTally) -> serde_json::Value {
        serde_json::from_str(&tally.frames.borrow().viewer_frame).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn each_change_is_published_once_to_every_socket() {
        let store = Arc::new(Flaky::default());
        let c = campaign("launch");
        store.create_campaign(&c).await.unwrap();
        flush(&store, 1, 2).await;
        let tallies = Arc::new(Tallies::new(1_000));
        let tally = tallies.get_or_create(&c);
        let mut socket = tally.frames.subscribe();
        let (b, _) = broadcaster(store.clone(), &tallies);
        let stop = CancellationToken::new();
        let task = tokio::spawn(b.run(stop.clone()));

        socket.changed().await.unwrap();
        let v = viewer_frame(&tally);
        assert_eq!(v["type"], "stats");
        assert_eq!((v["viewers"].as_u64(), v["peak_viewers"].as_u64()), (Some(1), Some(1)));
        assert_eq!(v["interactions"]["like"], 2);
        socket.mark_unchanged();

        tokio::time::sleep(TICK * 3).await;
        assert!(!socket.has_changed().unwrap(), "ticks without a change push nothing");

        flush(&store, 2, 1).await;
        socket.changed().await.unwrap();
        assert_eq!(viewer_frame(&tally)["interactions"]["like"], 3);
        stop.cancel();
        task.await.unwrap();
    }

    /// The broadcaster's one seam, scripted: the stats it answers (`None`: the store is
    /// down) and the ticks recorded. Nothing else of the store is needed to test it.
    #[derive(Default)]
    struct ScriptedReads {
        stats: Mutex<Option<Stats>>,
        ticks: AtomicU64,
    }

    impl ScriptedReads {
        /// One viewer and `likes` likes from now on (`None`: down).
        fn answer(&self, likes: Option<u64>) {
            *self.stats.lock().unwrap() = likes.map(|n| Stats {
                viewers: 1,
                interactions: BTreeMap::from([("like".to_owned(), n)]),
                ..Stats::default()
            });
        }
    }

    #[async_trait]
    impl Reads for ScriptedReads {
        async fn stats(&self, _: &str, _: &[String], _: i64) -> StoreResult<Stats> {
            let stats = self.stats.lock().unwrap().clone();
            stats.ok_or_else(|| StoreError::Unavailable("scripted outage".into()))
        }

        async fn record_tick(
            &self,
            _: &str,
            _: i64,
            at_ms: i64,
            viewers: u64,
            _: &BTreeMap<String, u64>,
        ) -> StoreResult<(u64, Option<i64>)> {
            self.ticks.fetch_add(1, Ordering::SeqCst);
            Ok((viewers, Some(at_ms)))
        }

        async fn series(&self, _: &str, _: &SeriesMetric, _: i64, _: i64) -> StoreResult<Vec<(i64, u64)>> {
            Ok(vec![])
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_outage_keeps_the_last_frame() {
        let reads = Arc::new(ScriptedReads::default());
        reads.answer(Some(2));
        let c = campaign("launch");
        let tallies = Arc::new(Tallies::new(1_000));
        let tally = tallies.get_or_create(&c);
        let mut socket = tally.frames.subscribe();
        let (b, metrics) = broadcaster(reads.clone(), &tallies);
        let stop = CancellationToken::new();
        let task = tokio::spawn(b.run(stop.clone()));
        socket.changed().await.unwrap();
        socket.mark_unchanged();

        reads.answer(None);
        let ticks = reads.ticks.load(Ordering::SeqCst);
        tokio::time::sleep(TICK * 3 + Duration::from_millis(1)).await;
        assert!(!socket.has_changed().unwrap());
        assert_eq!(viewer_frame(&tally)["interactions"]["like"], 2);
        assert_eq!(metrics.store_up.get(), 0);
        assert_eq!(metrics.store_errors.get(), 3, "one failed read per tick");
        assert_eq!(
            reads.ticks.load(Ordering::SeqCst),
            ticks,
            "no tick recorded without stats"
        );

        reads.answer(Some(7));
        socket.changed().await.unwrap();
        assert_eq!(viewer_frame(&tally)["interactions"]["like"], 7);
        assert_eq!(metrics.store_reconnects.get(), 1);
        stop.cancel();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_campaign_ended_on_another_node_closes_its_sockets_here() {
        let store = Arc::new(Flaky::default());
        let c = campaign("launch");
        store.create_campaign(&c).await.unwrap();
        let tallies = Arc::new(Tallies::new(1_000));
        let tally = tallies.get_or_create(&c);
        let (b, _) = broadcaster(store.clone(), &tallies);
        let stop = CancellationToken::new();
        let task = tokio::spawn(b.run(stop.clone()));
        tokio::time::sleep(TICK * 2).await;
        assert!(!tally.ended.is_cancelled());
        store.end_campaign("launch", crate::util::now_ms()).await.unwrap();
        tally.ended.cancelled().await;
        stop.cancel();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_campaign_deleted_before_this_node_saw_it_end_closes_its_sockets_here() {
        let store = Arc::new(Flaky::default());
        let c = campaign("launch");
        store.create_campaign(&c).await.unwrap();
        let tallies = Arc::new(Tallies::new(1_000));
        let tally = tallies.get_or_create(&c);
        store.end_campaign("launch", crate::util::now_ms()).await.unwrap();
        store.delete_campaign("launch").await.unwrap();
        let (b, _) = broadcaster(store.clone(), &tallies);
        let stop = CancellationToken::new();
        let task = tokio::spawn(b.run(stop.clone()));
        tally.ended.cancelled().await;
        stop.cancel();
        task.await.unwrap();
    }
}
