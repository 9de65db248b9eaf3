//! `--max-public-writes-per-client`: registrations and share visits one client may make per
//! minute on this node, one budget for both. Past it the write is not counted, so a script
//! cannot inflate a campaign's sign-ups or its share funnel.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use super::ClientKey;

/// How often clients that have not written for a minute are dropped from the limiter. Its
/// map then holds the clients of at most the last minute and this period; dropping more
/// often would walk the whole map more often in a storm of writes from many addresses.
pub const RETAIN_EVERY: Duration = Duration::from_secs(10);

/// One keyed GCRA limiter per node: a burst of N, then one write every 60/N s.
pub struct PublicWrites<C: Clock = DefaultClock> {
    limiter: RateLimiter<ClientKey, DefaultKeyedStateStore<ClientKey>, C, NoOpMiddleware<C::Instant>>,
    start: C::Instant,
    /// When stale clients were last dropped, in nanoseconds since `start`.
    retained_at: AtomicU64,
}

impl PublicWrites {
    /// `per_minute` writes a minute per client.
    pub fn per_minute(per_minute: NonZeroU32) -> Self {
        Self::with_clock(per_minute, DefaultClock::default())
    }
}

impl<C: Clock> PublicWrites<C> {
    pub fn with_clock(per_minute: NonZeroU32, clock: C) -> Self {
        Self::with_quota(Quota::per_minute(per_minute), clock)
    }

    /// Any `quota` per client (the connect budget's bucket is smaller than a minute's).
    pub fn with_quota(quota: Quota, clock: C) -> Self {
        let start = clock.now();
        Self {
            limiter: RateLimiter::new(quota, DefaultKeyedStateStore::default(), clock),
            start,
            retained_at: AtomicU64::new(0),
        }
    }

    /// Takes one write of `key`'s budget, or says how long until it has one again.
    pub fn check(&self, key: &ClientKey) -> Result<(), Duration> {
        let now = self.limiter.clock().now();
        self.retain_recent(now);
        self.limiter
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(now))
    }

    /// Drops the clients whose budget is full again, at most once per [`RETAIN_EVERY`]
    /// (whichever call finds it due does it; the others go on).
    fn retain_recent(&self, now: C::Instant) {
        let since_start = now.duration_since(self.start).as_u64();
        let last = self.retained_at.load(Ordering::Relaxed);
        if since_start.saturating_sub(last) < RETAIN_EVERY.as_nanos() as u64 {
            return;
        }
        if self
            .retained_at
            .compare_exchange(last, since_start, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
    }

    /// Clients the limiter remembers.
    pub fn clients(&self) -> usize {
        self.limiter.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::key;
    use governor::clock::FakeRelativeClock;

    #[test]
    fn past_the_budget_a_client_waits_and_others_do_not() {
        let clock = FakeRelativeClock::default();
        let writes = PublicWrites::with_clock(NonZeroU32::new(6).unwrap(), clock.clone());
        let a = key("198.51.100.1");
        for _ in 0..6 {
            writes.check(&a).unwrap();
        }
        // Six a minute: the next one is 10 s away.
        assert_eq!(writes.check(&a), Err(Duration::from_secs(10)));
        writes.check(&key("198.51.100.2")).unwrap();
        clock.advance(Duration::from_secs(4));
        assert_eq!(writes.check(&a), Err(Duration::from_secs(6)));
        clock.advance(Duration::from_secs(6));
        writes.check(&a).unwrap();
        assert!(writes.check(&a).is_err());
    }

    #[test]
    fn clients_that_stopped_writing_are_forgotten() {
        let clock = FakeRelativeClock::default();
        let writes = PublicWrites::with_clock(NonZeroU32::new(600).unwrap(), clock.clone());
        for i in 0..1000u32 {
            let ip = std::net::Ipv4Addr::from(0xC633_6400 + i);
            writes.check(&ClientKey::of(ip.into())).unwrap();
        }
        assert_eq!(writes.clients(), 1000);
        // A budget refills within a minute; the next check after that (and RETAIN_EVERY)
        // drops everyone who has not written since.
        clock.advance(Duration::from_secs(61));
        writes.check(&key("198.51.100.1")).unwrap();
        assert_eq!(writes.clients(), 1);
    }
}
