//! Per-server bulkheads and upstream back-pressure (issue 6, docs/decisions.md
//! D7; D8: 70 clients passed straight on to a server that limited concurrency
//! got 3 % through).
//!
//! Each upstream server has one [`Bulkhead`]:
//!
//! - **Slots** (`maxConcurrency`, default unlimited): upstream calls in
//!   flight. A call holds its [`Permit`] for the whole upstream exchange, an
//!   SSE answer included (the permit lives in the `CallStream` and is
//!   released when the stream is dropped: finished, timed out, or cut by the
//!   client's cancellation). Every call to the server goes through it: client
//!   calls and the hub's own list fetches alike.
//! - **Wait queue** (`maxQueue`, default [`DEFAULT_MAX_QUEUE`]): calls
//!   waiting for a slot, first come first served, each within its request
//!   deadline. Queue full → [`Refused::Overloaded`] (`UpstreamError::Overloaded`, HTTP 503,
//!   `Retry-After`, `data.retry_after_seconds`); the deadline passes while
//!   queued → [`Refused::Timeout`].
//! - **Hold** (back-pressure): an upstream answer HTTP 429 or 503 makes the
//!   hub hold the server's new calls for the `Retry-After` it names (capped
//!   at [`MAX_HOLD`]; [`DEFAULT_HOLD`] when none is known), shared by every
//!   worker; held calls wait in the queue. A call whose deadline ends before
//!   the hold does fails at once with `Overloaded` naming the hold.
//! - **Circuit breaker** ([`super::breaker`]): after 5 consecutive connect
//!   failures calls fail fast with [`Refused::Unavailable`] for a
//!   cool-down, then one probe goes through.

use super::breaker::Breaker;
use parking_lot::{Condvar, Mutex};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

// `maxQueue`'s default and the largest accepted value are config rules (docs/module-order.md).
pub use crate::config::limits::{DEFAULT_MAX_QUEUE, MAX_LIMIT};
/// The longest hold an upstream's `Retry-After` can impose.
pub const MAX_HOLD: Duration = Duration::from_secs(60);
/// The hold after a 429/503 whose `Retry-After` the hub cannot see.
pub const DEFAULT_HOLD: Duration = Duration::from_secs(1);
/// `retry_after_seconds` when the queue is full and no hold is running.
const QUEUE_FULL_RETRY: Duration = Duration::from_secs(1);

/// Why a call got no slot. `crate::upstream` turns it into the
/// `UpstreamError` variant of the same name and fields (`From`), which the
/// client gets as HTTP 503 + `Retry-After` or -32001; kept here so the
/// bulkhead does not import the upstream layer above it (docs/module-order.md).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The queue is full, or an upstream-imposed hold lasts past the deadline.
    #[error("server '{server}' is overloaded: {cause}; retry after {retry_after_secs} s")]
    Overloaded {
        /// Server name.
        server: String,
        /// When to try again, whole seconds ≥ 1.
        retry_after_secs: u64,
        /// `"queue_full"` or `"upstream_busy"`.
        reason: &'static str,
        /// What is full or busy, for the message.
        cause: String,
    },
    /// The circuit is open ([`super::breaker`]).
    #[error("server '{server}' is unavailable (circuit open after {failures} connect failures); retrying in {retry_after_secs} s")]
    Unavailable {
        /// Server name.
        server: String,
        /// The consecutive connect failures that opened the circuit.
        failures: u32,
        /// Until the next probe, whole seconds ≥ 1.
        retry_after_secs: u64,
    },
    /// The deadline passed while queued.
    #[error("upstream '{server}' timed out after {timeout_ms} ms")]
    Timeout {
        /// Server name.
        server: String,
        /// The time waited, milliseconds.
        timeout_ms: u64,
    },
}

/// One server's slots, wait queue, hold and breaker.
#[derive(Debug)]
pub struct Bulkhead {
    server: String,
    max_concurrency: Option<usize>,
    max_queue: usize,
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    in_flight: usize,
    /// Tickets of waiting calls, oldest first.
    queue: VecDeque<u64>,
    next_ticket: u64,
    /// New calls wait until then (upstream 429/503 `Retry-After`).
    hold_until: Option<Instant>,
    breaker: Breaker,
    /// Calls refused because the queue was full, and because the circuit was open.
    refused_full: u64,
    refused_open: u64,
}

/// Counters for `/readyz`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Snapshot {
    /// Calls holding a slot.
    pub in_flight: usize,
    /// Calls waiting for one.
    pub queued: usize,
    /// `"closed"`, `"open"` or `"half-open"`.
    pub circuit: &'static str,
    /// Milliseconds left of an upstream-imposed hold (0: none).
    pub hold_ms: u64,
    /// Calls refused so far because the queue was full (503, `queue_full`).
    pub refused_queue_full: u64,
    /// Calls refused so far because the circuit was open (503, unavailable).
    pub refused_circuit_open: u64,
}

/// A slot: held for the whole upstream call, released on drop.
#[derive(Debug)]
pub struct Permit {
    bulkhead: Arc<Bulkhead>,
    /// This call is the breaker's half-open probe.
    probe: bool,
    recorded: bool,
}

impl Permit {
    /// Reports the call's outcome to the breaker: `Some(false)` a connect
    /// failure (`UpstreamError::Transport { sent: false, .. }`), `Some(true)`
    /// the server answered (any answer), `None` nothing learnt (a timeout, a
    /// broken pooled connection, a call never sent).
    pub fn record(&mut self, reached: Option<bool>) {
        let mut st = self.bulkhead.state.lock();
        let Some(reached) = reached else {
            if self.probe {
                st.breaker.probe_abandoned();
            }
            self.recorded = true;
            return;
        };
        if st.breaker.record(Instant::now(), !reached, self.probe) {
            log::warn!(
                "server '{}' is unavailable: circuit open after {} connect failures",
                self.bulkhead.server,
                super::breaker::FAILURES_TO_OPEN
            );
            self.bulkhead.changed.notify_all(); // queued calls fail fast now
        }
        self.recorded = true;
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut st = self.bulkhead.state.lock();
        st.in_flight = st.in_flight.saturating_sub(1);
        if self.probe && !self.recorded {
            st.breaker.probe_abandoned();
        }
        drop(st);
        self.bulkhead.changed.notify_all();
    }
}

/// `d` in whole seconds, rounded up, at least 1: a `Retry-After` value
/// (RFC 9110 §10.2.3 takes whole seconds; 0 would invite an immediate retry).
pub fn whole_secs(d: Duration) -> u64 {
    d.as_millis().div_ceil(1000).clamp(1, u64::MAX as u128) as u64
}

impl Bulkhead {
    /// A bulkhead for `server`: `max_concurrency` slots (`None`: unlimited)
    /// and a queue of `max_queue` waiting calls.
    pub fn new(server: &str, max_concurrency: Option<usize>, max_queue: usize) -> Arc<Bulkhead> {
        Arc::new(Bulkhead {
            server: server.to_string(),
            max_concurrency,
            max_queue,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        })
    }

    fn overloaded(&self, retry_after: Duration, reason: &'static str, cause: String) -> Refused {
        Refused::Overloaded { server: self.server.clone(), retry_after_secs: whole_secs(retry_after), reason, cause }
    }

    /// Takes a slot, waiting in the queue until `deadline` if needed.
    ///
    /// Errors: `Unavailable` (circuit open), `Overloaded` (queue full, or a
    /// hold lasting past `deadline`), `Timeout` (the deadline passed while
    /// queued; `timeout_ms` = the time waited).
    pub fn acquire(self: &Arc<Self>, deadline: Instant) -> Result<Permit, Refused> {
        let started = Instant::now();
        let mut st = self.state.lock();
        let unavailable = |open: super::breaker::Open| Refused::Unavailable {
            server: self.server.clone(),
            failures: open.failures,
            retry_after_secs: whole_secs(open.retry_after),
        };
        let probe = match st.breaker.admit(started) {
            Ok(p) => p,
            Err(open) => {
                st.refused_open += 1;
                return Err(unavailable(open));
            }
        };
        let permit = |st: &mut State, probe| {
            st.in_flight += 1;
            Permit { bulkhead: self.clone(), probe, recorded: false }
        };
        if probe {
            return Ok(permit(&mut st, true)); // one call tests the server; nothing else is going
        }
        let free = |st: &State| self.max_concurrency.is_none_or(|m| st.in_flight < m);
        let held = |st: &State, now: Instant| st.hold_until.filter(|h| *h > now);
        if let Some(h) = held(&st, started).filter(|h| *h >= deadline) {
            let cause = format!("it asked the hub to wait {} s, past this request's deadline", whole_secs(h - started));
            return Err(self.overloaded(h - started, "upstream_busy", cause));
        }
        if st.queue.is_empty() && free(&st) && held(&st, started).is_none() {
            return Ok(permit(&mut st, false));
        }
        if st.queue.len() >= self.max_queue {
            let wait = held(&st, started).map_or(QUEUE_FULL_RETRY, |h| h - started);
            let cause = format!("{} calls in flight and its queue of {} is full", st.in_flight, self.max_queue);
            st.refused_full += 1;
            return Err(self.overloaded(wait, "queue_full", cause));
        }
        let ticket = st.next_ticket;
        st.next_ticket += 1;
        st.queue.push_back(ticket);
        loop {
            let now = Instant::now();
            let leave = |st: &mut State| {
                st.queue.retain(|t| *t != ticket);
                self.changed.notify_all();
            };
            if let Some(open) = st.breaker.refusing(now) {
                leave(&mut st);
                st.refused_open += 1;
                return Err(unavailable(open));
            }
            let hold = held(&st, now);
            if hold.is_none() && st.queue.front() == Some(&ticket) && free(&st) {
                st.queue.pop_front();
                self.changed.notify_all(); // the next in line may fit too
                return Ok(permit(&mut st, false));
            }
            if now >= deadline {
                leave(&mut st);
                return Err(Refused::Timeout { server: self.server.clone(), timeout_ms: (now - started).as_millis() as u64 });
            }
            if let Some(h) = hold.filter(|h| *h >= deadline) {
                leave(&mut st);
                let cause = format!("it asked the hub to wait {} s, past this request's deadline", whole_secs(h - now));
                return Err(self.overloaded(h - now, "upstream_busy", cause));
            }
            let wake = hold.map_or(deadline, |h| h.min(deadline));
            self.changed.wait_until(&mut st, wake);
        }
    }

    /// Holds new calls for `retry_after` (capped at [`MAX_HOLD`]); a longer
    /// hold already running stays.
    pub fn hold(&self, retry_after: Duration) {
        let until = Instant::now() + retry_after.min(MAX_HOLD);
        let mut st = self.state.lock();
        if st.hold_until.is_none_or(|h| h < until) {
            st.hold_until = Some(until);
        }
    }

    /// Current counters.
    pub fn snapshot(&self) -> Snapshot {
        let now = Instant::now();
        let st = self.state.lock();
        Snapshot {
            in_flight: st.in_flight,
            queued: st.queue.len(),
            circuit: st.breaker.state(now),
            hold_ms: st.hold_until.map_or(0, |h| h.saturating_duration_since(now).as_millis() as u64),
            refused_queue_full: st.refused_full,
            refused_circuit_open: st.refused_open,
        }
    }
}

/// A `Retry-After` value (RFC 9110 §10.2.3): delay-seconds or an HTTP-date
/// (RFC 9110 §5.6.7: IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT`, and the
/// obsolete RFC 850 and asctime forms a recipient must accept; parsed by
/// `httpdate`), as a wait from `now`, capped at [`MAX_HOLD`]. `None` when
/// unparseable, an impossible date (wrong weekday, 30 Feb, second 60)
/// included; a past date is zero.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s).min(MAX_HOLD));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO).min(MAX_HOLD))
}

/// The wait an upstream's refusal names in its JSON-RPC body
/// (`error.data.retry_after_seconds`, as MCPHub's own 429/503 carry), capped
/// at [`MAX_HOLD`].
pub fn retry_after_in_body(message: Option<&serde_json::Value>) -> Option<Duration> {
    let s = crate::protocol::jsonrpc::at(message?, &["error", "data", "retry_after_seconds"])?.as_u64()?;
    Some(Duration::from_secs(s).min(MAX_HOLD))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("3600", now), Some(MAX_HOLD));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now), Some(Duration::from_secs(10)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:30 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", UNIX_EPOCH), Some(Duration::ZERO));
        // The obsolete forms RFC 9110 §5.6.7 makes a recipient accept.
        assert_eq!(parse_retry_after("Sunday, 06-Nov-94 08:49:47 GMT", now), Some(Duration::from_secs(10)));
        assert_eq!(parse_retry_after("Sun Nov  6 08:49:47 1994", now), Some(Duration::from_secs(10)));
        let junk = [
            "",
            "-1",
            "soon",
            "Sun, 06 Nov 1994 25:00:00 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Mon, 06 Nov 1994 08:49:37 GMT", // wrong weekday
            "Thu, 30 Feb 1995 08:49:37 GMT", // no such day
            "Sun, 06 Nov 1994 08:49:60 GMT",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Nov 1969 08:49:37 GMT",
            "Fri, 31 Dec 10000 23:59:59 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT\u{e9}",
        ];
        for junk in junk {
            assert_eq!(parse_retry_after(junk, now), None, "{junk}");
        }
        let body = serde_json::json!({"error": {"code": -32000, "data": {"retry_after_seconds": 2}}});
        assert_eq!(retry_after_in_body(Some(&body)), Some(Duration::from_secs(2)));
        assert_eq!(retry_after_in_body(None), None);
    }

    #[test]
    fn slots_queue_and_overload() {
        let b = Bulkhead::new("s", Some(1), 1);
        let soon = || Instant::now() + Duration::from_millis(50);
        let first = b.acquire(soon()).unwrap();
        let b2 = b.clone();
        let waiter = std::thread::spawn(move || b2.acquire(Instant::now() + Duration::from_secs(5)).map(|_| ()));
        while b.snapshot().queued == 0 {
            std::thread::yield_now();
        }
        let full = b.acquire(soon()).unwrap_err();
        assert!(matches!(full, Refused::Overloaded { reason: "queue_full", retry_after_secs: 1, .. }), "{full}");
        drop(first);
        waiter.join().unwrap().expect("the queued call got the freed slot");
        let s = b.snapshot();
        assert_eq!((s.in_flight, s.queued, s.circuit), (0, 0, "closed"));
    }

    #[test]
    fn a_queued_call_times_out_at_its_deadline() {
        let b = Bulkhead::new("s", Some(1), 4);
        let _held = b.acquire(Instant::now() + Duration::from_secs(1)).unwrap();
        let e = b.acquire(Instant::now() + Duration::from_millis(30)).unwrap_err();
        assert!(matches!(e, Refused::Timeout { .. }), "{e}");
        assert_eq!(b.snapshot().queued, 0, "it left the queue");
    }

    #[test]
    fn a_hold_past_the_deadline_fails_at_once_and_a_short_one_is_waited_out() {
        let b = Bulkhead::new("s", None, 4);
        b.hold(Duration::from_secs(30));
        let e = b.acquire(Instant::now() + Duration::from_secs(1)).unwrap_err();
        assert!(matches!(e, Refused::Overloaded { reason: "upstream_busy", retry_after_secs: 30, .. }), "{e}");
        let b = Bulkhead::new("s", None, 4);
        b.hold(Duration::from_millis(40));
        assert!(b.snapshot().hold_ms > 0);
        b.acquire(Instant::now() + Duration::from_secs(5)).expect("admitted after the hold");
    }

    #[test]
    fn the_breaker_fails_fast_with_the_documented_message() {
        let b = Bulkhead::new("jira", None, 4);
        for _ in 0..super::super::breaker::FAILURES_TO_OPEN {
            b.acquire(Instant::now() + Duration::from_secs(1)).unwrap().record(Some(false));
        }
        let e = b.acquire(Instant::now() + Duration::from_secs(1)).unwrap_err();
        assert_eq!(e.to_string(), "server 'jira' is unavailable (circuit open after 5 connect failures); retrying in 1 s");
        // The client sees it as the upstream error of the same name, same message.
        let up = crate::upstream::UpstreamError::from(e.clone());
        assert!(matches!(up, crate::upstream::UpstreamError::Unavailable { failures: 5, retry_after_secs: 1, .. }), "{up}");
        assert_eq!(up.to_string(), e.to_string());
        assert_eq!(b.snapshot().circuit, "open");
    }
}
