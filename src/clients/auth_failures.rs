//! Failed operator authentications per client: more than `--max-auth-failures-per-client`
//! (default [`MAX_FAILURES`]) within [`FAILURE_WINDOW`] lock the client out of every operator route and operator socket for
//! [`LOCKOUT`], right token or not, so guessing tokens costs a minute per ten guesses.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::ClientKey;

/// Failures a client may have within [`FAILURE_WINDOW`] by default; the next one locks it
/// out (`--max-auth-failures-per-client`).
pub const MAX_FAILURES: usize = crate::config::defaults::MAX_AUTH_FAILURES_PER_CLIENT;
/// The window the failures are counted over.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// How long a locked-out client is refused.
pub const LOCKOUT: Duration = Duration::from_secs(60);
/// Entries kept before a sweep drops the stale ones (the sweep point doubles with the
/// live entries, so sweeping stays amortised O(1) per failure).
const SWEEP_AT: usize = 1024;

/// Why an authentication did not pass.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused<E> {
    /// The client is locked out for this long; the credentials were not even looked at.
    LockedOut(Duration),
    /// The credentials were refused with `E`.
    Failed(E),
}

#[derive(Debug, Default)]
struct Failures {
    /// The latest failures, oldest first, at most [`MAX_FAILURES`].
    recent: VecDeque<Instant>,
    locked_until: Option<Instant>,
}

impl Failures {
    /// Nothing to remember at `now`: no lockout and no failure within the window.
    fn stale(&self, now: Instant) -> bool {
        self.locked_until.is_none_or(|t| t <= now)
            && self
                .recent
                .back()
                .is_none_or(|&t| now.duration_since(t) >= FAILURE_WINDOW)
    }
}

/// The failures of every client that failed recently. Operator traffic is rare, so one
/// lock is plenty; a client's entry goes once it is stale.
#[derive(Debug)]
pub struct AuthFailures {
    by_client: Mutex<Clients>,
    /// Failures allowed within the window (`usize::MAX`: never locked out).
    max: usize,
}

#[derive(Debug)]
struct Clients {
    map: HashMap<ClientKey, Failures>,
    sweep_at: usize,
}

impl Default for AuthFailures {
    fn default() -> Self {
        Self::new(MAX_FAILURES)
    }
}

impl AuthFailures {
    /// Locks a client out after `max` failures within the window (0: never).
    pub fn new(max: usize) -> Self {
        Self {
            by_client: Mutex::new(Clients {
                map: HashMap::new(),
                sweep_at: SWEEP_AT,
            }),
            max: if max == 0 { usize::MAX } else { max },
        }
    }

    fn clients(&self) -> std::sync::MutexGuard<'_, Clients> {
        // Every change under the lock leaves an entry valid: a poisoned lock is still good.
        self.by_client.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `authenticate` for `key` at `now`, unless `key` is locked out. A refusal that
    /// `counts` as a failed authentication is recorded; the one too many locks `key` out and
    /// is answered as a lockout too.
    pub fn authenticate<E>(
        &self,
        key: ClientKey,
        now: Instant,
        authenticate: impl FnOnce() -> Result<(), E>,
        counts: impl FnOnce(&E) -> bool,
    ) -> Result<(), Refused<E>> {
        if let Some(wait) = self.locked_out(&key, now) {
            return Err(Refused::LockedOut(wait));
        }
        match authenticate() {
            Ok(()) => Ok(()),
            Err(e) if counts(&e) => match self.failed(key, now) {
                Some(wait) => Err(Refused::LockedOut(wait)),
                None => Err(Refused::Failed(e)),
            },
            Err(e) => Err(Refused::Failed(e)),
        }
    }

    /// How much longer `key` is locked out, if it is.
    fn locked_out(&self, key: &ClientKey, now: Instant) -> Option<Duration> {
        let clients = self.clients();
        let until = clients.map.get(key)?.locked_until?;
        (until > now).then(|| until - now)
    }

    /// Records a failure of `key`; returns the lockout when it was one too many.
    fn failed(&self, key: ClientKey, now: Instant) -> Option<Duration> {
        let mut clients = self.clients();
        if clients.map.len() >= clients.sweep_at {
            clients.map.retain(|_, f| !f.stale(now));
            clients.sweep_at = (clients.map.len() * 2).max(SWEEP_AT);
        }
        let f = clients.map.entry(key).or_default();
        while f
            .recent
            .front()
            .is_some_and(|&t| now.duration_since(t) >= FAILURE_WINDOW)
        {
            f.recent.pop_front();
        }
        if f.recent.len() < self.max {
            f.recent.push_back(now);
            return None;
        }
        // The eleventh within the window: lock out, and count afresh afterwards.
        f.recent.clear();
        f.locked_until = Some(now + LOCKOUT);
        Some(LOCKOUT)
    }

    /// Clients remembered (for tests of the memory bound).
    pub fn remembered(&self) -> usize {
        self.clients().map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::key;

    /// One attempt with a wrong (`false`) or right (`true`) token.
    fn attempt(f: &AuthFailures, key: ClientKey, now: Instant, right: bool) -> Result<(), Refused<&'static str>> {
        f.authenticate(key, now, || if right { Ok(()) } else { Err("wrong") }, |_| true)
    }

    #[test]
    fn the_eleventh_failure_within_a_minute_locks_the_client_out_for_a_minute() {
        let f = AuthFailures::default();
        let (a, b) = (key("198.51.100.1"), key("198.51.100.2"));
        let t0 = Instant::now();
        for i in 0..10 {
            let at = t0 + Duration::from_secs(5 * i);
            assert_eq!(attempt(&f, a, at, false), Err(Refused::Failed("wrong")));
        }
        let t = t0 + Duration::from_secs(50);
        assert_eq!(attempt(&f, a, t, false), Err(Refused::LockedOut(LOCKOUT)));
        // Locked out with the right token too; another client is not.
        let later = t + Duration::from_secs(20);
        assert_eq!(
            attempt(&f, a, later, true),
            Err(Refused::LockedOut(Duration::from_secs(40)))
        );
        assert_eq!(attempt(&f, b, later, false), Err(Refused::Failed("wrong")));
        assert_eq!(attempt(&f, b, later, true), Ok(()));
        // A minute after the lockout began, the right token passes again.
        assert_eq!(attempt(&f, a, t + LOCKOUT, true), Ok(()));
    }

    #[test]
    fn the_flag_sets_the_failures_allowed_and_0_never_locks_out() {
        let (a, now) = (key("198.51.100.1"), Instant::now());
        let three = AuthFailures::new(3);
        for _ in 0..3 {
            assert_eq!(attempt(&three, a, now, false), Err(Refused::Failed("wrong")));
        }
        assert_eq!(attempt(&three, a, now, false), Err(Refused::LockedOut(LOCKOUT)));
        let never = AuthFailures::new(0);
        for _ in 0..1_000 {
            assert_eq!(attempt(&never, a, now, false), Err(Refused::Failed("wrong")));
        }
    }

    #[test]
    fn failures_spread_over_more_than_a_minute_never_lock_out() {
        let f = AuthFailures::default();
        let a = key("2001:db8::1");
        let t0 = Instant::now();
        for i in 0..100 {
            let at = t0 + Duration::from_secs(7 * i);
            assert_eq!(attempt(&f, a, at, false), Err(Refused::Failed("wrong")), "failure {i}");
        }
    }

    #[test]
    fn refusals_that_do_not_count_and_successes_are_not_limited() {
        let f = AuthFailures::default();
        let a = key("198.51.100.1");
        let now = Instant::now();
        for _ in 0..50 {
            assert_eq!(
                f.authenticate(a, now, || Err("missing"), |_| false),
                Err(Refused::Failed("missing"))
            );
            assert_eq!(attempt(&f, a, now, true), Ok(()));
        }
        assert_eq!(f.remembered(), 0);
    }

    #[test]
    fn stale_clients_are_swept() {
        let f = AuthFailures::default();
        let t0 = Instant::now();
        for i in 0..SWEEP_AT as u32 {
            let ip = std::net::Ipv4Addr::from(0xC633_6400 + i);
            let _ = attempt(&f, ClientKey::of(ip.into()), t0, false);
        }
        assert_eq!(f.remembered(), SWEEP_AT);
        let _ = attempt(&f, key("203.0.113.1"), t0 + FAILURE_WINDOW, false);
        assert_eq!(
            f.remembered(),
            1,
            "a minute later only the newest failure is remembered"
        );
    }
}
