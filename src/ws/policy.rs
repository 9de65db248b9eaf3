//! What a socket tolerates, as plain logic with the time passed in: the bad-message window,
//! the rate-limit streak, the idle timeout, and the clock of the rate limiter. The
//! connection task feeds it what happened and when; tests drive it with paused time, no
//! socket needed.

use std::collections::VecDeque;
use std::time::Duration;

use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use tokio::time::Instant;

/// The clock of every socket's rate limiter: tokio's, like every other time here, so the
/// limiter, the streak it starts and the idle timeout all move with paused time in tests.
/// (governor's default reads the TSC through quanta, which calibrates itself with `cpuid`
/// when made: 5% of a connect storm's CPU when each socket made its own.) Zero-sized:
/// nothing to make or share.
#[derive(Debug, Clone, Copy, Default)]
pub struct LimiterClock;

impl governor::clock::Clock for LimiterClock {
    type Instant = std::time::Instant;

    fn now(&self) -> std::time::Instant {
        Instant::now().into_std()
    }
}

/// A socket's rate limiter (`--max-interactions-per-sec`, burst twice that).
pub type Limiter = governor::RateLimiter<NotKeyed, InMemoryState, LimiterClock, NoOpMiddleware<std::time::Instant>>;

/// The server pings this often; browsers answer pings themselves. 25 s (as Centrifugo)
/// keeps proxies with a 60 s idle timeout open while an idle audience of 200,000 costs
/// 8,000 pings a second, not 20,000.
pub const PING_INTERVAL: Duration = Duration::from_secs(25);
/// A socket silent this long (three missed pings) is dropped.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(75);
/// More than this many bad messages within [`BAD_WINDOW`] closes the socket with 1008:
/// a buggy client gets several chances, a fuzzer does not get to keep a socket busy.
pub const MAX_BAD_MESSAGES: usize = 10;
pub const BAD_WINDOW: Duration = Duration::from_secs(10);
/// Being rate limited this long without a single accepted message closes with 1008.
pub const RATE_LIMITED_CLOSE_AFTER: Duration = Duration::from_secs(5);
/// A rate-limit streak ends after this long without a refusal.
pub const LIMIT_STREAK_GAP: Duration = Duration::from_secs(1);

/// Bad messages of the last [`BAD_WINDOW`].
#[derive(Debug, Default)]
pub struct BadWindow {
    times: VecDeque<Instant>,
}

impl BadWindow {
    /// Records a bad message at `now`; true when the socket must close.
    pub fn record(&mut self, now: Instant) -> bool {
        while self.times.front().is_some_and(|t| now.duration_since(*t) > BAD_WINDOW) {
            self.times.pop_front();
        }
        self.times.push_back(now);
        self.times.len() > MAX_BAD_MESSAGES
    }
}

/// The current run of rate-limit refusals: its start and its latest refusal.
#[derive(Debug, Default)]
pub struct RateStreak {
    since: Option<(Instant, Instant)>,
}

impl RateStreak {
    /// Records a refusal at `now`; true when the socket must close. A streak survives the
    /// odd message that slips through on a refilled token; it ends only after
    /// [`LIMIT_STREAK_GAP`] without any refusal.
    pub fn refused(&mut self, now: Instant) -> bool {
        let since = match self.since {
            Some((since, last)) if now.duration_since(last) <= LIMIT_STREAK_GAP => since,
            _ => now,
        };
        self.since = Some((since, now));
        now.duration_since(since) >= RATE_LIMITED_CLOSE_AFTER
    }
}

/// True when a socket last heard from at `last_seen` has been silent too long at `now`.
pub fn is_idle(last_seen: Instant, now: Instant) -> bool {
    now.duration_since(last_seen) >= IDLE_TIMEOUT
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::advance;

    #[tokio::test(start_paused = true)]
    async fn the_eleventh_bad_message_within_ten_seconds_closes() {
        let mut w = BadWindow::default();
        for _ in 0..MAX_BAD_MESSAGES {
            assert!(!w.record(Instant::now()));
            advance(Duration::from_millis(900)).await;
        }
        assert!(w.record(Instant::now()), "11 bad messages in 9 s");
    }

    #[tokio::test(start_paused = true)]
    async fn bad_messages_older_than_the_window_are_forgiven() {
        let mut w = BadWindow::default();
        for _ in 0..MAX_BAD_MESSAGES {
            assert!(!w.record(Instant::now()));
        }
        advance(BAD_WINDOW + Duration::from_millis(1)).await;
        for _ in 0..MAX_BAD_MESSAGES {
            assert!(!w.record(Instant::now()), "the first ten fell out of the window");
        }
        assert!(w.record(Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn five_seconds_of_refusals_close_even_with_a_message_slipping_through() {
        let mut s = RateStreak::default();
        // A refusal every 800 ms: the gaps (a token refilled, a message taken) never end
        // the streak, so it closes once 5 s have passed since its first refusal.
        for _ in 0..6 {
            assert!(!s.refused(Instant::now()));
            advance(Duration::from_millis(800)).await;
        }
        assert!(!s.refused(Instant::now()), "4.8 s into the streak");
        advance(Duration::from_millis(200)).await;
        assert!(s.refused(Instant::now()), "5 s into the streak");
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_second_ends_the_streak() {
        let mut s = RateStreak::default();
        for _ in 0..4 {
            assert!(!s.refused(Instant::now()));
            advance(Duration::from_secs(1)).await;
        }
        advance(Duration::from_millis(1)).await;
        // 1.001 s since the last refusal: a new streak starts here.
        assert!(!s.refused(Instant::now()));
        advance(Duration::from_millis(4_900)).await;
        assert!(!s.refused(Instant::now()), "4.9 s into the new streak, not 9");
    }

    #[tokio::test(start_paused = true)]
    async fn silence_is_idle_after_three_missed_pings() {
        let last_seen = Instant::now();
        advance(IDLE_TIMEOUT - Duration::from_millis(1)).await;
        assert!(!is_idle(last_seen, Instant::now()));
        advance(Duration::from_millis(1)).await;
        assert!(is_idle(last_seen, Instant::now()));
        assert_eq!(IDLE_TIMEOUT, PING_INTERVAL * 3);
    }
}
