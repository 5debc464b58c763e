//! Resumable call streams for legacy clients (2025-11-25 transports,
//! "Resumability and Redelivery"): every event the hub writes on a relayed
//! call's stream gets an id `{stream}:{seq}`, the stream opens with a priming
//! event (an id, `retry:`, empty data), and the events are kept in a bounded
//! log, so a client whose connection broke can `GET /mcp` with
//! `Last-Event-ID` and receive the rest — including events written while it
//! was away (a legacy client's disconnect does not cancel its call).
//!
//! Limits: [`MAX_EVENTS`] events and [`MAX_BYTES`] per stream (older events
//! are dropped; a resume from before them gets what is left), a finished
//! stream is kept [`KEEP_AFTER_END`], at most [`MAX_STREAMS`] logs.

use parking_lot::{Condvar, Mutex};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Events kept per stream.
pub const MAX_EVENTS: usize = 256;
/// Bytes of event data kept per stream.
pub const MAX_BYTES: usize = 1024 * 1024;
/// How long a finished stream can still be resumed.
pub const KEEP_AFTER_END: Duration = Duration::from_secs(60);
/// Most stream logs kept at once (the oldest finished ones go first).
pub const MAX_STREAMS: usize = 10_000;
/// The `retry:` sent in the priming event, in ms.
pub const RETRY_MS: u64 = 1_000;

#[derive(Default)]
struct LogState {
    events: VecDeque<(u64, String)>,
    bytes: usize,
    next_seq: u64,
    ended_at: Option<Instant>,
}

/// The events of one relayed call stream.
pub struct StreamLog {
    /// The stream's id (the part of event ids before `:`).
    pub id: String,
    /// The legacy client session the stream belongs to.
    pub session: String,
    state: Mutex<LogState>,
    changed: Condvar,
}

impl StreamLog {
    /// The id of the priming event (`{stream}:0`).
    pub fn priming_id(&self) -> String {
        self.event_id(0)
    }

    /// The id of event `seq`: `{stream}:{seq}`.
    pub fn event_id(&self, seq: u64) -> String {
        format!("{}:{seq}", self.id)
    }

    /// Appends an event; returns its id.
    pub fn push(&self, data: String) -> String {
        let mut st = self.state.lock();
        st.next_seq += 1;
        let seq = st.next_seq;
        st.bytes += data.len();
        st.events.push_back((seq, data));
        while st.events.len() > MAX_EVENTS || (st.bytes > MAX_BYTES && st.events.len() > 1) {
            if let Some((_, old)) = st.events.pop_front() {
                st.bytes -= old.len();
            }
        }
        drop(st);
        self.changed.notify_all();
        self.event_id(seq)
    }

    /// Marks the stream finished (its final event was pushed, or it broke).
    pub fn end(&self) {
        self.state.lock().ended_at = Some(Instant::now());
        self.changed.notify_all();
    }

    /// Events after `seq` (seq, data), and whether the stream has ended;
    /// waits up to `wait` for something new when there is nothing yet.
    pub fn after(&self, seq: u64, wait: Duration) -> (Vec<(u64, String)>, bool) {
        let mut st = self.state.lock();
        if st.ended_at.is_none() && st.next_seq <= seq {
            self.changed.wait_for(&mut st, wait);
        }
        let events = st.events.iter().filter(|(s, _)| *s > seq).cloned().collect();
        (events, st.ended_at.is_some())
    }
}

/// Splits an event id `{stream}:{seq}`.
pub fn parse_event_id(id: &str) -> Option<(&str, u64)> {
    let (stream, seq) = id.rsplit_once(':')?;
    Some((stream, seq.parse().ok()?))
}

/// All resumable streams.
#[derive(Default)]
pub struct Streams {
    map: Mutex<HashMap<String, Arc<StreamLog>>>,
    next: AtomicU64,
}

impl Streams {
    /// Opens a log for a new stream of `session`.
    pub fn open(&self, session: &str) -> Arc<StreamLog> {
        let id = format!("s{}", self.next.fetch_add(1, Ordering::Relaxed) + 1);
        let log = Arc::new(StreamLog { id: id.clone(), session: session.to_string(), state: Mutex::default(), changed: Condvar::new() });
        let mut map = self.map.lock();
        map.retain(|_, l| l.state.lock().ended_at.is_none_or(|t| t.elapsed() < KEEP_AFTER_END));
        if map.len() >= MAX_STREAMS {
            let oldest = map
                .iter()
                .filter_map(|(k, l)| l.state.lock().ended_at.map(|t| (t, k.clone())))
                .min()
                .map(|(_, k)| k);
            if let Some(k) = oldest {
                map.remove(&k);
            }
        }
        map.insert(id, log.clone());
        log
    }

    /// The stream an event id belongs to, if `session` owns it and it is
    /// still kept.
    pub fn find(&self, session: &str, stream: &str) -> Option<Arc<StreamLog>> {
        let log = self.map.lock().get(stream).cloned()?;
        let kept = log.state.lock().ended_at.is_none_or(|t| t.elapsed() < KEEP_AFTER_END);
        (log.session == session && kept).then_some(log)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_after_an_id_are_replayed_and_the_log_is_bounded() {
        let streams = Streams::default();
        let log = streams.open("sess-a");
        assert!(log.priming_id().ends_with(":0"));
        let first = log.push("one".into());
        log.push("two".into());
        let (stream, seq) = parse_event_id(&first).unwrap();
        assert_eq!(stream, log.id);
        let (events, ended) = log.after(seq, Duration::ZERO);
        assert_eq!(events.iter().map(|(_, d)| d.as_str()).collect::<Vec<_>>(), vec!["two"]);
        assert!(!ended);
        log.end();
        assert!(log.after(0, Duration::ZERO).1);
        for i in 0..(MAX_EVENTS + 10) {
            log.push(format!("e{i}"));
        }
        assert_eq!(log.after(0, Duration::ZERO).0.len(), MAX_EVENTS);
    }

    #[test]
    fn only_the_owning_session_finds_a_stream() {
        let streams = Streams::default();
        let log = streams.open("sess-a");
        assert!(streams.find("sess-a", &log.id).is_some());
        assert!(streams.find("sess-b", &log.id).is_none());
        assert!(streams.find("sess-a", "s999").is_none());
        assert_eq!(parse_event_id("nope"), None);
        assert_eq!(parse_event_id("s1:x"), None);
    }

    #[test]
    fn a_waiting_reader_is_woken_by_a_new_event() {
        let log = Streams::default().open("s");
        let writer = {
            let log = log.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                log.push("late".into());
            })
        };
        let (events, _) = log.after(0, Duration::from_secs(5));
        writer.join().unwrap();
        assert_eq!(events.len(), 1);
    }
}
