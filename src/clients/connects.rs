//! `--max-connects-per-client`: viewer socket upgrades one client may make per minute on
//! this node. `--max-sockets-per-client` bounds what a client holds at once; this bounds
//! how fast it can churn, so a connect-like-close loop cannot mint sessions (and store
//! state) as fast as it can open sockets. A bucket of a [`BURST_SHARE`]th of the minute's
//! budget, refilled evenly, leaves a carrier NAT's reconnect storm room
//! (docs/operations.md, "Limits").

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock, Reference};
use governor::Quota;

use super::writes::PublicWrites;
use super::ClientKey;

/// The bucket is this share of the minute's budget (1,000 of the default 3,000): a NAT
/// whose thousand people all reconnect at once (a node restart, a network blip) gets
/// through in one go, and an operator who raises the budget for a bigger NAT raises the
/// bucket with it; a whole minute's burst would only let a script open more before the
/// even refill paces it.
pub const BURST_SHARE: u32 = 3;

/// The connect budget of every client of the node, and when the ones it refused may try
/// again (a plain GET of the socket URL reports that without spending anything).
pub struct ConnectBudget<C: Clock = DefaultClock> {
    limiter: PublicWrites<C>,
    clock: C,
    /// Clients refused lately → when their budget has a token again. Only refused clients
    /// are here, and only until then.
    refused: Mutex<HashMap<ClientKey, C::Instant>>,
}

impl ConnectBudget {
    /// `per_minute` upgrades a minute per client.
    pub fn per_minute(per_minute: NonZeroU32) -> Self {
        Self::with_clock(per_minute, DefaultClock::default())
    }
}

impl<C: Clock + Clone> ConnectBudget<C> {
    pub fn with_clock(per_minute: NonZeroU32, clock: C) -> Self {
        let burst = NonZeroU32::new(per_minute.get() / BURST_SHARE).unwrap_or(NonZeroU32::MIN);
        // The bucket refills evenly: per_minute tokens a minute, one every 60 s / per_minute.
        let quota = Quota::with_period(Duration::from_secs(60) / per_minute.get())
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
            .allow_burst(burst);
        Self {
            limiter: PublicWrites::with_quota(quota, clock.clone()),
            clock,
            refused: Mutex::new(HashMap::new()),
        }
    }

    fn refused(&self) -> std::sync::MutexGuard<'_, HashMap<ClientKey, C::Instant>> {
        // Every change is one statement: a poisoned lock is still good.
        self.refused.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Spends one upgrade of `key`'s budget, or says how long until it has one again.
    pub fn spend(&self, key: &ClientKey) -> Result<(), Duration> {
        self.limiter.check(key).inspect_err(|wait| {
            let now = self.clock.now();
            let mut refused = self.refused();
            // Refused clients are few (each one is a client past its budget); the ones
            // whose wait is over go whenever another is refused.
            refused.retain(|_, until| *until > now);
            refused.insert(*key, now + (*wait).into());
        })
    }

    /// How long `key` still waits after a refused upgrade, without spending anything:
    /// the answer to a plain GET of the socket URL, which is how a browser (which cannot
    /// read a failed upgrade's status) learns it was refused and for how long.
    pub fn refused_for(&self, key: &ClientKey) -> Option<Duration> {
        let now = self.clock.now();
        let until = *self.refused().get(key)?;
        (until > now).then(|| Duration::from(until.duration_since(now)))
    }

    /// Clients the budget remembers (for tests of the memory bound).
    pub fn clients(&self) -> usize {
        self.limiter.clients()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::key;
    use governor::clock::FakeRelativeClock;

    #[test]
    fn a_bucket_of_a_thousand_refilled_evenly() {
        let clock = FakeRelativeClock::default();
        let budget = ConnectBudget::with_clock(NonZeroU32::new(3_000).unwrap(), clock.clone());
        let a = key("198.51.100.1");
        for i in 0..1_000 {
            assert_eq!(budget.spend(&a), Ok(()), "upgrade {i}");
        }
        // 3,000 a minute: one every 20 ms once the bucket is empty.
        assert_eq!(budget.spend(&a), Err(Duration::from_millis(20)));
        assert_eq!(budget.refused_for(&a), Some(Duration::from_millis(20)));
        assert_eq!(
            budget.spend(&key("198.51.100.2")),
            Ok(()),
            "another client is not limited"
        );
        clock.advance(Duration::from_millis(20));
        assert_eq!(budget.refused_for(&a), None, "the wait is over");
        assert_eq!(budget.spend(&a), Ok(()));
        // A minute later the whole bucket is back.
        clock.advance(Duration::from_secs(20));
        for _ in 0..1_000 {
            budget.spend(&a).unwrap();
        }
        assert!(budget.spend(&a).is_err());
    }

    #[test]
    fn a_small_budget_has_a_small_bucket() {
        let clock = FakeRelativeClock::default();
        let budget = ConnectBudget::with_clock(NonZeroU32::new(6).unwrap(), clock.clone());
        let a = key("2001:db8::1");
        for _ in 0..2 {
            budget.spend(&a).unwrap();
        }
        assert_eq!(budget.spend(&a), Err(Duration::from_secs(10)));
        clock.advance(Duration::from_secs(4));
        // Looking costs nothing; refused again, the wait is the same as before.
        assert_eq!(budget.refused_for(&a), Some(Duration::from_secs(6)));
        assert_eq!(budget.refused_for(&a), Some(Duration::from_secs(6)));
        assert_eq!(budget.spend(&a), Err(Duration::from_secs(6)));
    }
}
