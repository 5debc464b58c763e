//! What to do with the outcome of one attempt of an upstream call: give the
//! answer, heal the legacy session and send again, hold for the wait the
//! server asked and send again, send again after a transport failure, or
//! fail. Pure functions of literal inputs (no clock, no lock, no I/O), so
//! every rule is a table test; [`super::Upstream::request_open`] acts on
//! the decision (invalidates the session, holds the bulkhead, re-acquires).
//!
//! The rules and their sources:
//! - a legacy session the server no longer knows (HTTP 404, or 400 naming the
//!   session: the request was not executed) is re-established and the
//!   request sent again (docs/decisions.md D3): up to [`MAX_HEALS`] times
//!   for sessions the server dropped before answering anything on them, up
//!   to [`MAX_EXPIRIES`] times, before the call's deadline, for sessions it
//!   had answered on and then forgot (an expiry, a restart);
//! - HTTP 429/503 (not executed) holds the server for the wait it names
//!   (`Retry-After`, else the body's `retry_after_seconds`, else
//!   [`DEFAULT_HOLD`]; at most [`MAX_HOLD`]) and the call is sent again
//!   once the hold ends, at most [`MAX_REFUSALS`] times and only when the
//!   hold ends before the call's deadline (docs/decisions.md D7);
//! - a transport failure is sent again once: always when the request never
//!   left, after it may have reached the server only for a repeatable
//!   request (reads, tools annotated read-only or idempotent; D3), never
//!   after the client cancelled the call or past its deadline.

use super::transport::HttpReply;
use crate::limits::bulkhead::{parse_retry_after, retry_after_in_body, whole_secs, DEFAULT_HOLD, MAX_HOLD};
use std::time::{Duration, SystemTime};

/// How many times one request may meet a session the server no longer knows
/// and be sent again on a re-established session: more than once, though the
/// first design said "retry once" (docs/decisions.md D3), because a shared
/// session serves many clients at once, and when the server expires sessions
/// often (the issue-4 test: every 50th request, 70 clients) a retry lands on
/// a session that expires in turn with a probability near the share of calls
/// in flight (measured: 197 of 66 164 calls failed after 3 heals). Each retry
/// uses a session newer than the one that failed, concurrent retries share
/// one re-establishment (single flight), and the hub deadline bounds it all.
pub const MAX_HEALS: u32 = 10;

/// How many times one request may meet a session the server had answered
/// on before and then forgot (expired, restarted), within the call's
/// deadline. Such a server is healthy, only quick to forget: when sessions
/// live fewer requests than are in flight (the issue-4 test: every 50th
/// request, 70 clients), a call on a loaded machine can lose the race for a
/// fresh session ten times in a row (CI, 2026-12-07: 1 of 75 372 calls).
/// The tighter [`MAX_HEALS`] still bounds a server that refuses the
/// sessions it has just minted.
pub const MAX_EXPIRIES: u32 = 100;

/// How many times one call waits out a 429/503 hold and is sent again.
pub const MAX_REFUSALS: u32 = 5;

/// How many times a call is sent again after a transport failure.
pub const MAX_RESENDS: u32 = 1;

/// Longest pause between two attempts to reopen a server's long-lived
/// stream (a legacy session's GET stream, a modern `subscriptions/listen`).
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The pause before reopening a long-lived stream after `failures` failures
/// in a row: 250 ms doubling, at most [`MAX_BACKOFF`]. Both listeners use
/// it and never give up while their session or server is served (a server
/// that restarts is heard again within [`MAX_BACKOFF`]).
pub fn reconnect_backoff(failures: u32) -> Duration {
    Duration::from_millis(250u64.saturating_mul(1 << failures.min(10))).min(MAX_BACKOFF)
}

/// What one attempt came back with, as far as the decision needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// An answer for the caller: a result, a JSON-RPC error, a stream, or an
    /// error status none of the rules below retries.
    Answer,
    /// The legacy session is gone (404, or 400 naming the session);
    /// `answered`: the server had answered a request on it before.
    SessionExpired {
        /// Whether the server had answered a request on that session before.
        answered: bool,
    },
    /// HTTP 429 or 503: not executed; the server asks for `wait`.
    Busy {
        /// The wait it named (or [`DEFAULT_HOLD`]), at most [`MAX_HOLD`].
        wait: Duration,
    },
    /// The transport failed; `sent`: the request may have reached the server.
    TransportFailed {
        /// Whether the request may have reached the server.
        sent: bool,
    },
    /// Any other failure (a timeout, a protocol error, a refused credential):
    /// nothing to retry.
    Failed,
}

/// What is known of the call itself, besides the attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    /// Time left until the call's deadline.
    pub left: Duration,
    /// The client cancelled the call (its connection was cut).
    pub cut: bool,
    /// The request may be executed twice (docs/decisions.md D3).
    pub repeatable: bool,
}

/// The retries this call has made so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Sessions re-established after the server dropped them unanswered.
    pub heals: u32,
    /// Sessions re-established after the server forgot them (it had answered on them).
    pub expiries: u32,
    /// Holds waited out.
    pub holds: u32,
    /// Sends after a transport failure.
    pub resends: u32,
}

/// The decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Give the caller what came back (an answer, or the error it makes).
    Answer,
    /// Give the caller the error of this attempt (for `Busy`: `Overloaded`,
    /// "upstream_busy", with the wait as `Retry-After`).
    Fail,
    /// Drop the session, establish a new one and send again.
    Heal,
    /// Send again once the server's hold of this long has ended.
    Hold(Duration),
    /// Send again now.
    Resend,
}

/// What `reply` (the answer's head, and the body of a JSON answer) says, for
/// a call on a legacy session (`legacy`: `Some(answered)`, whether the
/// server had answered on that session before; `None`: a modern call) at `now` (an HTTP-date
/// `Retry-After` is relative to it).
pub fn seen(reply: &HttpReply, legacy: Option<bool>, now: SystemTime) -> Seen {
    if let Some(wait) = busy_wait(reply, now) {
        return Seen::Busy { wait };
    }
    if let Some(answered) = legacy {
        if reply.is_session_expired() {
            return Seen::SessionExpired { answered };
        }
    }
    Seen::Answer
}

/// For an HTTP 429 or 503 reply, how long the server asks callers to wait:
/// `Retry-After` (seconds or an HTTP-date), else the body's
/// `error.data.retry_after_seconds`, else [`DEFAULT_HOLD`]; at most
/// [`MAX_HOLD`]. `None` for any other status.
pub fn busy_wait(reply: &HttpReply, now: SystemTime) -> Option<Duration> {
    if !matches!(reply.status, 429 | 503) {
        return None;
    }
    let wait = reply
        .retry_after
        .as_deref()
        .and_then(|v| parse_retry_after(v, now))
        .or_else(|| retry_after_in_body(reply.message.as_ref()))
        .unwrap_or(DEFAULT_HOLD);
    Some(wait.min(MAX_HOLD))
}

/// The decision for an attempt that came back as `seen`, for `call`, after
/// the retries in `tally` (rules: the module's doc).
pub fn next(seen: Seen, call: &Call, tally: &Tally) -> Next {
    match seen {
        Seen::Answer => Next::Answer,
        // Out of heals: the reply itself becomes the caller's error.
        Seen::SessionExpired { answered: false } if tally.heals < MAX_HEALS => Next::Heal,
        Seen::SessionExpired { answered: true } if tally.expiries < MAX_EXPIRIES && !call.left.is_zero() => Next::Heal,
        Seen::SessionExpired { .. } => Next::Answer,
        Seen::Busy { wait } => {
            let hold = Duration::from_secs(whole_secs(wait)).min(MAX_HOLD);
            if tally.holds < MAX_REFUSALS && hold < call.left {
                Next::Hold(hold)
            } else {
                Next::Fail
            }
        }
        Seen::TransportFailed { sent } => {
            if tally.resends < MAX_RESENDS && !call.cut && !call.left.is_zero() && (!sent || call.repeatable) {
                Next::Resend
            } else {
                Next::Fail
            }
        }
        Seen::Failed => Next::Fail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reply(status: u16, retry_after: Option<&str>, message: Option<serde_json::Value>, excerpt: &str) -> HttpReply {
        HttpReply { status, session_id: None, message, excerpt: excerpt.into(), retry_after: retry_after.map(str::to_string) }
    }

    const NOW: u64 = 1_780_000_000; // a fixed instant for HTTP-dates

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn what_a_reply_says() {
        let rpc_error = |code: i64, msg: &str| Some(json!({"jsonrpc": "2.0", "id": 1, "error": {"code": code, "message": msg}}));
        let cases: Vec<(HttpReply, Option<bool>, Seen)> = vec![
            (reply(200, None, Some(json!({"jsonrpc": "2.0", "id": 1, "result": {}})), ""), Some(false), Seen::Answer),
            (reply(202, None, None, ""), Some(false), Seen::Answer),
            (reply(404, None, None, "Not Found"), Some(true), Seen::SessionExpired { answered: true }),
            // A modern server has no session to heal: 404 is its answer.
            (reply(404, None, None, "Not Found"), None, Seen::Answer),
            (reply(400, None, rpc_error(-32000, "Bad Request: No valid session ID provided"), ""), Some(true), Seen::SessionExpired { answered: true }),
            (reply(400, None, None, "Session not found"), Some(true), Seen::SessionExpired { answered: true }),
            (reply(400, None, rpc_error(-32602, "bad arguments"), ""), Some(false), Seen::Answer),
            (reply(500, None, None, "oops"), Some(false), Seen::Answer),
            (reply(429, Some("7"), None, ""), Some(false), Seen::Busy { wait: Duration::from_secs(7) }),
            (reply(503, Some("Thu, 01 Jan 1970 00:00:03 GMT"), None, ""), None, Seen::Busy { wait: Duration::ZERO }),
            (reply(503, None, None, ""), Some(false), Seen::Busy { wait: DEFAULT_HOLD }),
            (reply(429, Some("3600"), None, ""), Some(false), Seen::Busy { wait: MAX_HOLD }),
            (
                reply(429, None, Some(json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32000, "message": "busy", "data": {"retry_after_seconds": 2}}})), ""),
                Some(false),
                Seen::Busy { wait: Duration::from_secs(2) },
            ),
            // 429 wins over a body naming the session.
            (reply(429, Some("1"), None, "session"), Some(false), Seen::Busy { wait: Duration::from_secs(1) }),
        ];
        for (r, legacy, want) in cases {
            assert_eq!(seen(&r, legacy, at(NOW)), want, "status {} retry-after {:?} excerpt {:?} legacy {legacy:?}", r.status, r.retry_after, r.excerpt);
        }
        let date = httpdate::fmt_http_date(at(NOW + 30));
        assert_eq!(busy_wait(&reply(503, Some(&date), None, ""), at(NOW)), Some(Duration::from_secs(30)));
        assert_eq!(busy_wait(&reply(200, Some("5"), None, ""), at(NOW)), None);
    }

    #[test]
    fn the_decision_table() {
        let s = Duration::from_secs;
        let call = |left: u64, cut: bool, repeatable: bool| Call { left: s(left), cut, repeatable };
        let tally = |heals: u32, holds: u32, resends: u32| Tally { heals, holds, resends, expiries: 0 };
        let open = call(30, false, false);
        let cases: Vec<(Seen, Call, Tally, Next)> = vec![
            (Seen::Answer, open, tally(0, 0, 0), Next::Answer),
            (Seen::Answer, call(0, true, false), tally(9, 9, 9), Next::Answer),
            (Seen::Failed, open, tally(0, 0, 0), Next::Fail),
            // Heals: up to MAX_HEALS, then the reply is the answer (an error status).
            (Seen::SessionExpired { answered: false }, open, tally(0, 0, 0), Next::Heal),
            (Seen::SessionExpired { answered: false }, open, tally(MAX_HEALS - 1, 0, 0), Next::Heal),
            (Seen::SessionExpired { answered: false }, open, tally(MAX_HEALS, 0, 0), Next::Answer),
            // A session the server had answered on and forgot: up to MAX_EXPIRIES,
            // before the deadline, whatever the count of unanswered ones.
            (Seen::SessionExpired { answered: true }, open, tally(MAX_HEALS, 0, 0), Next::Heal),
            (Seen::SessionExpired { answered: true }, open, Tally { expiries: MAX_EXPIRIES - 1, ..tally(0, 0, 0) }, Next::Heal),
            (Seen::SessionExpired { answered: true }, open, Tally { expiries: MAX_EXPIRIES, ..tally(0, 0, 0) }, Next::Answer),
            (Seen::SessionExpired { answered: true }, call(0, false, false), tally(0, 0, 0), Next::Answer),
            // Holds: whole seconds, before the deadline, at most MAX_REFUSALS.
            (Seen::Busy { wait: s(2) }, open, tally(0, 0, 0), Next::Hold(s(2))),
            (Seen::Busy { wait: Duration::from_millis(1500) }, open, tally(0, 0, 0), Next::Hold(s(2))),
            (Seen::Busy { wait: Duration::ZERO }, open, tally(0, 0, 0), Next::Hold(s(1))),
            (Seen::Busy { wait: s(2) }, call(2, false, false), tally(0, 0, 0), Next::Fail),
            (Seen::Busy { wait: s(2) }, call(3, false, false), tally(0, 0, 0), Next::Hold(s(2))),
            (Seen::Busy { wait: s(2) }, open, tally(0, MAX_REFUSALS - 1, 0), Next::Hold(s(2))),
            (Seen::Busy { wait: s(2) }, open, tally(0, MAX_REFUSALS, 0), Next::Fail),
            (Seen::Busy { wait: s(600) }, call(3600, false, false), tally(0, 0, 0), Next::Hold(MAX_HOLD)),
            // Resends: once; after sending only when repeatable; never cut or late.
            (Seen::TransportFailed { sent: false }, open, tally(0, 0, 0), Next::Resend),
            (Seen::TransportFailed { sent: false }, open, tally(0, 0, MAX_RESENDS), Next::Fail),
            (Seen::TransportFailed { sent: true }, open, tally(0, 0, 0), Next::Fail),
            (Seen::TransportFailed { sent: true }, call(30, false, true), tally(0, 0, 0), Next::Resend),
            (Seen::TransportFailed { sent: false }, call(30, true, true), tally(0, 0, 0), Next::Fail),
            (Seen::TransportFailed { sent: false }, call(0, false, true), tally(0, 0, 0), Next::Fail),
            // Other retries do not use up a resend.
            (Seen::TransportFailed { sent: false }, open, tally(3, 2, 0), Next::Resend),
        ];
        for (seen, call, tally, want) in cases {
            assert_eq!(next(seen, &call, &tally), want, "{seen:?} {call:?} {tally:?}");
        }
        assert_eq!(
            [0, 1, 2, 6, 7, 40].map(reconnect_backoff),
            [Duration::from_millis(250), Duration::from_millis(500), s(1), s(16), MAX_BACKOFF, MAX_BACKOFF]
        );
        assert_eq!((whole_secs(Duration::ZERO), whole_secs(Duration::from_millis(1001)), whole_secs(s(60))), (1, 2, 60));
    }
}
