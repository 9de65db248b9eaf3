//! The reads seam: what the broadcaster reads every tick (and the tick it records), and
//! what the reports, the public stats and the series read.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

use super::StoreResult;
pub use crate::protocol::stats::{NodeShare, Stats};

/// The series bucket of a count or a tick at `at_ms`: the start of its tick, but never
/// before the campaign's creation. Series windows start at `created_at` by default, so a
/// first bucket starting earlier (the campaign was created mid-tick) would fall outside
/// it and its counts would be missing from every default series read.
pub fn bucket_of(created_at: i64, at_ms: i64, tick: Duration) -> i64 {
    let tick_ms = tick.as_millis().max(1) as i64;
    (at_ms - at_ms.rem_euclid(tick_ms)).max(created_at)
}

/// Which series to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeriesMetric {
    /// Total viewers at each tick.
    Viewers,
    /// Interactions counted in each tick bucket, of one kind or (None) of all kinds.
    Interactions(Option<String>),
}

/// A campaign's numbers: stats, the per-tick record, the series.
#[async_trait]
pub trait Reads: Send + Sync + 'static {
    /// Reads the campaign's global numbers at `now_ms` (expired leases ignored). `kinds`
    /// lists the campaign's kinds so every one appears in `interactions`.
    async fn stats(&self, campaign: &str, kinds: &[String], now_ms: i64) -> StoreResult<Stats>;

    /// Records one tick: the viewers point of the series at `bucket_ms`, and the peak
    /// (with `at_ms` and the regions) when `viewers` exceeds it. Returns `(peak, peak_at)`.
    async fn record_tick(
        &self,
        campaign: &str,
        bucket_ms: i64,
        at_ms: i64,
        viewers: u64,
        regions: &BTreeMap<String, u64>,
    ) -> StoreResult<(u64, Option<i64>)>;

    /// Raw series points `(bucket_ms, value)` with `from_ms <= bucket_ms <= to_ms`,
    /// ascending. Buckets with nothing recorded are absent.
    async fn series(
        &self,
        campaign: &str,
        metric: &SeriesMetric,
        from_ms: i64,
        to_ms: i64,
    ) -> StoreResult<Vec<(i64, u64)>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_tick_aligned_but_never_before_the_campaign() {
        let tick = Duration::from_millis(100);
        assert_eq!(bucket_of(1_050, 1_080, tick), 1_050);
        assert_eq!(bucket_of(1_050, 1_100, tick), 1_100);
        assert_eq!(bucket_of(1_050, 1_234, tick), 1_200);
    }
}
