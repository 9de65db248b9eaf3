//! Waiting in tests, in one place. A test waits for what it can observe: [`eventually`]
//! polls a condition until it holds (a count reached, a key expired, a process exited),
//! and [`throughout`] checks that one keeps holding for a while (nothing counted twice,
//! a quiet session kept). Nothing else in the suites polls on its own, and a bare sleep
//! left in a test says why no condition exists (a rate measured over a window).
//!
//! Conditions are looked at every [`POLL`]; a test that waits for a TTL or a tick shortens
//! the node's own setting with its flags instead of sleeping through the default.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant};

use super::node::PATIENCE;

/// How often a condition is looked at again.
pub const POLL: Duration = Duration::from_millis(20);

/// What a probe answers: done (with a value), or not yet, with what it saw when that is
/// worth printing should the wait time out.
pub trait Outcome {
    type Value;
    fn settle(self) -> Result<Self::Value, Option<String>>;
}

impl Outcome for bool {
    type Value = ();
    fn settle(self) -> Result<(), Option<String>> {
        if self {
            Ok(())
        } else {
            Err(None)
        }
    }
}

impl<T> Outcome for Option<T> {
    type Value = T;
    fn settle(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

/// `Err` carries the last thing seen (stats, a status, an error), printed on timeout.
impl<T, E: Display> Outcome for Result<T, E> {
    type Value = T;
    fn settle(self) -> Result<T, Option<String>> {
        self.map_err(|e| Some(e.to_string()))
    }
}

/// Polls `probe` until it settles or `within` has passed; on timeout, what it saw last.
pub async fn poll<O, F, Fut>(within: Duration, mut probe: F) -> Result<O::Value, Option<String>>
where
    O: Outcome,
    F: FnMut() -> Fut,
    Fut: Future<Output = O>,
{
    let deadline = Instant::now() + within;
    loop {
        let last = match probe().await.settle() {
            Ok(v) => return Ok(v),
            Err(last) => last,
        };
        if Instant::now() >= deadline {
            return Err(last);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Polls `probe` until it settles; panics naming `what` after [`PATIENCE`].
pub async fn eventually<O, F, Fut>(what: impl Display, probe: F) -> O::Value
where
    O: Outcome,
    F: FnMut() -> Fut,
    Fut: Future<Output = O>,
{
    eventually_within(PATIENCE, what, probe).await
}

/// [`eventually`] with a bound of the test's own: `within` is part of what it asserts
/// (a lease gone within 5 s, sessions forgotten within two TTLs).
pub async fn eventually_within<O, F, Fut>(within: Duration, what: impl Display, probe: F) -> O::Value
where
    O: Outcome,
    F: FnMut() -> Fut,
    Fut: Future<Output = O>,
{
    poll(within, probe)
        .await
        .unwrap_or_else(|last| panic!("{}", timed_out(&what, within, last)))
}

/// [`poll`] for code that cannot await (starting and stopping processes, `Drop`).
pub fn poll_blocking<O: Outcome>(within: Duration, mut probe: impl FnMut() -> O) -> Result<O::Value, Option<String>> {
    let deadline = Instant::now() + within;
    loop {
        let last = match probe().settle() {
            Ok(v) => return Ok(v),
            Err(last) => last,
        };
        if Instant::now() >= deadline {
            return Err(last);
        }
        std::thread::sleep(POLL);
    }
}

/// [`eventually_within`] for code that cannot await.
pub fn eventually_blocking<O: Outcome>(within: Duration, what: impl Display, probe: impl FnMut() -> O) -> O::Value {
    poll_blocking(within, probe).unwrap_or_else(|last| panic!("{}", timed_out(&what, within, last)))
}

/// Runs `check` (which asserts) again and again for `period`: for what must NOT happen
/// for a while, where no event says it will not happen later.
pub async fn throughout<F, Fut>(period: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let until = Instant::now() + period;
    loop {
        check().await;
        if Instant::now() >= until {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
}

fn timed_out(what: &dyn Display, within: Duration, last: Option<String>) -> String {
    match last {
        Some(last) => format!("timed out after {within:?} waiting for {what}; last seen: {last}"),
        None => format!("timed out after {within:?} waiting for {what}"),
    }
}
