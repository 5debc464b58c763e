//! A circuit breaker per upstream server (issue 6, docs/decisions.md D7).
//!
//! Closed → after [`FAILURES_TO_OPEN`] consecutive connect failures
//! (`UpstreamError::Transport` with `sent: false`: refused, unresolvable)
//! → open: calls fail at once for a cool-down of [`FIRST_COOL_DOWN`],
//! doubling at each re-opening up to [`MAX_COOL_DOWN`] → half-open: one
//! probe call goes through, the others still fail fast → the probe reached
//! the server: closed (cool-down reset); it could not connect: open again.
//!
//! Only connect failures count, and only an answer (any, an HTTP error
//! included) closes it again; a timeout or a broken pooled connection
//! changes nothing (a slow server is bounded by the bulkhead instead). Plain state, no locking: [`super::bulkhead::Bulkhead`]
//! keeps it under its mutex.

use std::time::{Duration, Instant};

/// Consecutive connect failures that open the circuit.
pub const FAILURES_TO_OPEN: u32 = 5;
/// The first cool-down after the circuit opens. Short, because at 70
/// concurrent clients an upstream restart of 0.1 s opens the circuit within
/// milliseconds: with 5 s, such a restart cost 5 s of 503s (`make soak`); a
/// server that stays down is probed ever less often.
pub const FIRST_COOL_DOWN: Duration = Duration::from_secs(1);
/// The longest cool-down (1 s doubling: 1, 2, 4, 8, 16, 32, 60, 60, …).
pub const MAX_COOL_DOWN: Duration = Duration::from_secs(60);

/// One server's breaker.
#[derive(Debug, Default)]
pub struct Breaker {
    /// Consecutive connect failures (reset by any call that reached the server).
    failures: u32,
    /// While open: when the next probe may go.
    open_until: Option<Instant>,
    /// Times opened since the last success (drives the cool-down).
    opens: u32,
    /// A half-open probe call is in flight.
    probing: bool,
}

/// Why the breaker refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Open {
    /// The consecutive connect failures that opened it.
    pub failures: u32,
    /// Until the next probe may go (≥ 1 s when a probe is already out).
    pub retry_after: Duration,
}

impl Breaker {
    /// Whether a call may go at `now`: `Ok(false)` closed, `Ok(true)` this
    /// call is the half-open probe (report it with `probe = true`), `Err`
    /// open (or half-open with the probe already out).
    pub fn admit(&mut self, now: Instant) -> Result<bool, Open> {
        let Some(until) = self.open_until else { return Ok(false) };
        if now < until {
            return Err(Open { failures: self.failures, retry_after: until - now });
        }
        if self.probing {
            return Err(Open { failures: self.failures, retry_after: Duration::from_secs(1) });
        }
        self.probing = true;
        Ok(true)
    }

    /// Whether calls are refused at `now` without a probe going (open, or
    /// half-open with the probe out).
    pub fn refusing(&self, now: Instant) -> Option<Open> {
        let until = self.open_until?;
        if now < until {
            Some(Open { failures: self.failures, retry_after: until - now })
        } else {
            None
        }
    }

    /// The outcome of an admitted call: `connect_failed` for a connect
    /// failure. Returns true when this opened the circuit.
    pub fn record(&mut self, now: Instant, connect_failed: bool, probe: bool) -> bool {
        if probe {
            self.probing = false;
        }
        if !connect_failed {
            *self = Breaker::default();
            return false;
        }
        self.failures = self.failures.saturating_add(1);
        let reopen = probe || (self.open_until.is_none() && self.failures >= FAILURES_TO_OPEN);
        if reopen {
            let cool = FIRST_COOL_DOWN.saturating_mul(1 << self.opens.min(6)).min(MAX_COOL_DOWN);
            self.opens = self.opens.saturating_add(1);
            self.open_until = Some(now + cool);
        }
        reopen
    }

    /// An admitted probe ended without an outcome (the client cancelled):
    /// the next call may probe.
    pub fn probe_abandoned(&mut self) {
        self.probing = false;
    }

    /// `"closed"`, `"open"` or `"half-open"` (for `/readyz`).
    pub fn state(&self, now: Instant) -> &'static str {
        match self.open_until {
            None => "closed",
            Some(until) if now < until => "open",
            Some(_) => "half-open",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_n_failures_probes_and_closes() {
        let mut b = Breaker::default();
        let t = Instant::now();
        for _ in 0..FAILURES_TO_OPEN - 1 {
            assert_eq!(b.admit(t), Ok(false));
            assert!(!b.record(t, true, false));
        }
        assert!(b.record(t, true, false), "the 5th failure opens it");
        let open = b.admit(t).unwrap_err();
        assert_eq!((open.failures, open.retry_after), (FAILURES_TO_OPEN, FIRST_COOL_DOWN));
        assert_eq!(b.state(t), "open");
        let later = t + FIRST_COOL_DOWN;
        assert_eq!(b.state(later), "half-open");
        assert_eq!(b.admit(later), Ok(true), "one probe");
        assert!(b.admit(later).is_err(), "only one");
        assert!(b.record(later, true, true), "a failed probe re-opens");
        assert_eq!(b.admit(later).unwrap_err().retry_after, FIRST_COOL_DOWN * 2, "doubled");
        let again = later + FIRST_COOL_DOWN * 2;
        assert_eq!(b.admit(again), Ok(true));
        assert!(!b.record(again, false, true));
        assert_eq!(b.state(again), "closed");
        assert_eq!(b.admit(again), Ok(false));
    }

    #[test]
    fn success_resets_the_count_and_cool_down_caps() {
        let mut b = Breaker::default();
        let t = Instant::now();
        for _ in 0..3 {
            b.record(t, true, false);
        }
        b.record(t, false, false);
        for _ in 0..FAILURES_TO_OPEN - 1 {
            b.record(t, true, false);
        }
        assert_eq!(b.state(t), "closed");
        b.record(t, true, false);
        let mut now = t;
        for _ in 0..8 {
            now += b.admit(now).unwrap_err().retry_after;
            assert_eq!(b.admit(now), Ok(true));
            b.record(now, true, true);
        }
        assert_eq!(b.admit(now).unwrap_err().retry_after, MAX_COOL_DOWN);
        b.probe_abandoned();
    }
}
