//! The one way tests wait (issue 14, test suite hygiene; issue 15 item 7):
//! poll observable state until it holds, and fail naming what was awaited
//! when it does not. Never sleep-then-assert: a loaded 2-core machine can be
//! arbitrarily slow, so budgets here are generous and only bound a test that
//! would hang.
#![allow(dead_code)]

use std::time::{Duration, Instant};

/// A generous budget for state a healthy system reaches in milliseconds.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// What a poll of [`wait_until`] returns: `Option<T>` (ready with `Some(t)`,
/// and the wait yields `t`) or `bool` (ready when `true`; the wait yields `()`).
pub trait Poll {
    /// What the wait hands back once the state holds.
    type Ready;
    /// `Some` once the awaited state holds.
    fn ready(self) -> Option<Self::Ready>;
}

impl<T> Poll for Option<T> {
    type Ready = T;
    fn ready(self) -> Option<T> {
        self
    }
}

impl Poll for bool {
    type Ready = ();
    fn ready(self) -> Option<()> {
        self.then_some(())
    }
}

/// Polls `poll` (every 10 ms) until it is ready, and returns what it held:
/// `wait_until("the task to end", PATIENCE, || done(&id))`. `poll` returns
/// `Option<T>` or `bool` (see [`Poll`]); an assertion inside it fails the test
/// at once. Panics with `"timed out after {within:?} waiting for {what}"`
/// when `within` passes first.
pub fn wait_until<P: Poll>(what: &str, within: Duration, mut poll: impl FnMut() -> P) -> P::Ready {
    let end = Instant::now() + within;
    loop {
        if let Some(ready) = poll().ready() {
            return ready;
        }
        if Instant::now() >= end {
            panic!("timed out after {within:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
