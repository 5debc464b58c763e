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
//!
//! **Stream ids** are `s` + 128 random bits (hex): unguessable, and unique
//! across hub instances.
//!
//! **Across instances** (Redis configured; docs/cluster.md §4): each stream is also
//! a Redis stream `mcp:resume:{<stream id>}:<sha256 hex of the owning
//! session id>` — the session is recorded only as a digest, and in the key,
//! so a resume names the key from its own session and another session's
//! stream is simply not there (the same refusal as an unknown id). Entries:
//! `0-1 p 1` when the stream opens (so a resume from the priming event finds
//! it), `<seq>-1 d <event data>` per event, `<last seq>-2 end 1` when the
//! call ends; `XADD … MAXLEN ~ 256` and `PEXPIRE` [`REDIS_KEEP`] (refreshed
//! on every write), [`KEEP_AFTER_END`] after the end entry. Each write is one
//! pipelined round trip (XADD + PEXPIRE) on the stream's own thread, before
//! the event goes to the client, so an event a client saw is in Redis. A
//! write that fails (Redis down, breaker open) is skipped (debug log): a
//! resume on another instance then sees the stream without it. A resume on
//! an instance that does not hold the stream in memory ([`Remote`]) reads the
//! events after the given seq (`XRANGE`), then `XREAD BLOCK` ≤ [`BLOCK`] per
//! round on a connection of its own (never a pooled one: a blocked read must
//! not starve the pool), until the end entry, the client leaving, or the key
//! expiring (its writer died). Memory-only installs: unchanged.

use crate::config::RedisConfig;
use crate::store::redis::RedisStore;
use parking_lot::{Condvar, Mutex};
use redis::Value as RValue;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
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
/// How long a stream's Redis key lives after its last write while the call runs.
pub const REDIS_KEEP: Duration = Duration::from_secs(600);
/// Longest `XREAD BLOCK` of one round of a resume on another instance.
pub const BLOCK: Duration = Duration::from_millis(1000);
/// Most resumes of this instance reading Redis with a blocking connection of
/// their own at once; beyond it a resume polls through the pool every
/// [`POLL_EVERY`].
pub const MAX_BLOCKING_READERS: usize = 64;
/// The polling pause of a resume beyond [`MAX_BLOCKING_READERS`].
pub const POLL_EVERY: Duration = Duration::from_millis(250);
/// Key prefix of the Redis streams.
pub const KEY_PREFIX: &str = "mcp:resume:";

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
    /// The Redis copy (docs/cluster.md §4): the store and this stream's key.
    mirror: Option<(RedisStore, String)>,
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
        let copy = self.mirror.is_some().then(|| data.clone());
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
        // Pushes of one stream come from its relay thread, in order; an
        // out-of-order XADD id would be refused by Redis, never reordered.
        if let Some(data) = copy {
            self.mirror_write(&format!("{seq}-1"), "d", &data, REDIS_KEEP);
        }
        self.changed.notify_all();
        self.event_id(seq)
    }

    /// Marks the stream finished (its final event was pushed, or it broke).
    pub fn end(&self) {
        let last = {
            let mut st = self.state.lock();
            st.ended_at = Some(Instant::now());
            st.next_seq
        };
        self.mirror_write(&format!("{last}-2"), "end", "1", KEEP_AFTER_END);
        self.changed.notify_all();
    }

    /// One pipelined round trip: `XADD key MAXLEN ~ MAX_EVENTS id field value`
    /// + `PEXPIRE key keep`. Errors: debug log, nothing else.
    fn mirror_write(&self, id: &str, field: &str, value: &str, keep: Duration) {
        let Some((redis, key)) = &self.mirror else { return };
        let written = redis.run(|c| {
            redis::pipe()
                .cmd("XADD").arg(key).arg("MAXLEN").arg("~").arg(MAX_EVENTS).arg(id).arg(field).arg(value).ignore()
                .cmd("PEXPIRE").arg(key).arg(keep.as_millis() as u64).ignore()
                .query::<()>(c)
        });
        if let Err(e) = written {
            log::debug!("resumable stream {}: entry {id} not written to Redis: {e}", self.id);
        }
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

/// Whether `id` has the shape of a stream id this hub mints (`s` + 32
/// hex), so a client's string never becomes an arbitrary Redis key.
pub fn is_stream_id(id: &str) -> bool {
    id.len() == 33 && id.starts_with('s') && id[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// The Redis key of stream `stream` owned by client session `session`:
/// `mcp:resume:{<stream>}:<sha256 hex of session>` (hash tag: the stream id).
pub fn redis_key(stream: &str, session: &str) -> String {
    use sha2::{Digest, Sha256};
    format!("{KEY_PREFIX}{{{stream}}}:{}", hex::encode(Sha256::digest(session.as_bytes())))
}

/// All resumable streams.
#[derive(Default)]
pub struct Streams {
    map: Mutex<HashMap<String, Arc<StreamLog>>>,
    /// The shared store and its settings (the blocking readers' connections).
    redis: Option<(RedisStore, RedisConfig)>,
    /// Resumes reading Redis with a blocking connection now.
    blocking_readers: Arc<AtomicUsize>,
}

impl Streams {
    /// The streams of a hub; with `redis` (and its settings) each stream is
    /// also written to Redis for resumes on other instances (module docs).
    pub fn new(redis: Option<(RedisStore, RedisConfig)>) -> Streams {
        Streams { redis, ..Streams::default() }
    }

    /// Opens a log for a new stream of `session` (with Redis: one round trip
    /// writing its opening entry).
    pub fn open(&self, session: &str) -> Arc<StreamLog> {
        let id = format!("s{}", crate::random::hex::<16>());
        let mirror = self.redis.as_ref().map(|(r, _)| (r.clone(), redis_key(&id, session)));
        let log = Arc::new(StreamLog { id: id.clone(), session: session.to_string(), state: Mutex::default(), changed: Condvar::new(), mirror });
        log.mirror_write("0-1", "p", "1", REDIS_KEEP);
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

    /// A resume of `session`'s stream `stream` after `seq` from Redis (a
    /// stream another instance writes or wrote): `None` without Redis, for
    /// an id this hub never mints, or when Redis has no such stream of this
    /// session (unknown, expired, another session's, Redis down).
    pub fn remote(&self, session: &str, stream: &str, seq: u64) -> Option<Remote> {
        let (redis, cfg) = self.redis.as_ref()?;
        if !is_stream_id(stream) {
            return None;
        }
        let key = redis_key(stream, session);
        let exists: i64 = redis.run(|c| redis::cmd("EXISTS").arg(&key).query(c)).map_err(|e| log::debug!("resume lookup: {e}")).ok()?;
        (exists == 1).then(|| Remote {
            redis: redis.clone(),
            cfg: cfg.clone(),
            key,
            stream: stream.to_string(),
            after: format!("{seq}-1"),
            ended: false,
            conn: None,
            readers: self.blocking_readers.clone(),
            polling: false,
        })
    }
}

/// A resume reading a stream from Redis ([`Streams::remote`]).
pub struct Remote {
    redis: RedisStore,
    cfg: RedisConfig,
    key: String,
    stream: String,
    /// The Redis id of the last entry delivered (exclusive start of the next read).
    after: String,
    ended: bool,
    /// The blocking reader's own connection (counted in `readers`).
    conn: Option<redis::Connection>,
    readers: Arc<AtomicUsize>,
    /// Beyond [`MAX_BLOCKING_READERS`], or no own connection: polling through the pool.
    polling: bool,
}

/// What one read of a [`Remote`] found.
#[derive(Debug, Default, PartialEq)]
pub struct RemoteRead {
    /// Events `(seq, data)`, in order.
    pub events: Vec<(u64, String)>,
    /// The call ended (its end entry was read).
    pub ended: bool,
    /// The key is gone (expired: the writing instance stopped long ago, or Redis was emptied).
    pub gone: bool,
}

impl Remote {
    /// The event id of `seq` in this stream: `{stream}:{seq}`.
    pub fn event_id(&self, seq: u64) -> String {
        format!("{}:{seq}", self.stream)
    }

    /// The next events: what is already there at once, else waits up to
    /// [`BLOCK`] (`XREAD BLOCK`, a connection of its own) or [`POLL_EVERY`]
    /// (polling). A Redis error reads as nothing new this round.
    pub fn read(&mut self) -> RemoteRead {
        if self.ended {
            return RemoteRead { ended: true, ..RemoteRead::default() };
        }
        let start = format!("({}", self.after);
        let now: Result<(i64, RValue), _> = self.redis.run(|c| {
            redis::pipe().cmd("EXISTS").arg(&self.key).cmd("XRANGE").arg(&self.key).arg(&start).arg("+").arg("COUNT").arg(MAX_EVENTS).query(c)
        });
        let entries = match now {
            Ok((0, _)) => return RemoteRead { gone: true, ..RemoteRead::default() },
            Ok((_, v)) => entries_of(&v),
            Err(e) => {
                log::debug!("resume read: {e}");
                std::thread::sleep(POLL_EVERY);
                return RemoteRead::default();
            }
        };
        let entries = if entries.is_empty() { self.wait() } else { entries };
        self.take(entries)
    }

    /// Waits for entries after `self.after`.
    fn wait(&mut self) -> Vec<Entry> {
        if self.conn.is_none() && !self.polling {
            let taken = self.readers.fetch_add(1, Ordering::SeqCst) < MAX_BLOCKING_READERS;
            self.conn = taken.then(|| dedicated(&self.redis, &self.cfg)).flatten();
            if self.conn.is_none() {
                self.readers.fetch_sub(1, Ordering::SeqCst);
                self.polling = true;
            }
        }
        let Some(conn) = self.conn.as_mut() else {
            std::thread::sleep(POLL_EVERY);
            return Vec::new();
        };
        let read: redis::RedisResult<RValue> = redis::cmd("XREAD")
            .arg("COUNT").arg(MAX_EVENTS).arg("BLOCK").arg(BLOCK.as_millis() as u64)
            .arg("STREAMS").arg(&self.key).arg(&self.after)
            .query(conn);
        match read {
            Ok(v) => entries_of_xread(&v),
            Err(e) => {
                log::debug!("resume blocking read: {e}");
                self.drop_conn();
                self.polling = true;
                Vec::new()
            }
        }
    }

    fn take(&mut self, entries: Vec<Entry>) -> RemoteRead {
        let mut read = RemoteRead::default();
        for (id, field, value) in entries {
            self.after = id.clone();
            match field.as_str() {
                "d" => {
                    if let Some(seq) = id.strip_suffix("-1").and_then(|s| s.parse().ok()) {
                        read.events.push((seq, value));
                    }
                }
                "end" => {
                    self.ended = true;
                    read.ended = true;
                }
                _ => {}
            }
        }
        read
    }

    fn drop_conn(&mut self) {
        if self.conn.take().is_some() {
            self.readers.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        self.drop_conn();
    }
}

/// A connection of its own to the configured Redis, read timeout [`BLOCK`] +
/// `ioTimeoutMs` (so a blocked XREAD ends by Redis, not by the socket).
/// `None` when it cannot be opened (debug log, the URL never shown).
fn dedicated(redis: &RedisStore, cfg: &RedisConfig) -> Option<redis::Connection> {
    let opened = redis.open_dedicated().and_then(|conn| {
        conn.set_read_timeout(Some(BLOCK + cfg.io_timeout)).map_err(|e| crate::store::StoreError::Unavailable(format!("{:?}", e.kind())))?;
        Ok(conn)
    });
    opened.map_err(|e| log::debug!("resume: no connection of its own to Redis ({e}); polling")).ok()
}

/// One stream entry: (Redis id, first field, its value).
type Entry = (String, String, String);

fn text(v: &RValue) -> Option<String> {
    match v {
        RValue::BulkString(b) => String::from_utf8(b.clone()).ok(),
        RValue::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// The entries of an `XRANGE` reply (pure): `[[id, [field, value, …]], …]`.
fn entries_of(v: &RValue) -> Vec<Entry> {
    let RValue::Array(items) = v else { return Vec::new() };
    items
        .iter()
        .filter_map(|item| {
            let RValue::Array(pair) = item else { return None };
            let id = text(pair.first()?)?;
            let RValue::Array(fields) = pair.get(1)? else { return None };
            Some((id, text(fields.first()?)?, text(fields.get(1)?)?))
        })
        .collect()
}

/// The entries of an `XREAD` reply of one stream (pure): nil, or
/// `[[key, entries]]` (RESP2) / `{key: entries}` (RESP3).
fn entries_of_xread(v: &RValue) -> Vec<Entry> {
    match v {
        RValue::Array(streams) => streams.iter().find_map(|s| if let RValue::Array(kv) = s { kv.get(1).map(entries_of) } else { None }).unwrap_or_default(),
        RValue::Map(kv) => kv.first().map(|(_, e)| entries_of(e)).unwrap_or_default(),
        _ => Vec::new(),
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
        assert!(is_stream_id(&log.id), "{}", log.id);
        assert_ne!(log.id, streams.open("sess-a").id);
        for bad in ["s1", "x0123456789abcdef0123456789abcdef", "s0123456789abcdef0123456789abcdeg", "*"] {
            assert!(!is_stream_id(bad), "{bad}");
        }
        assert_ne!(redis_key(&log.id, "sess-a"), redis_key(&log.id, "sess-b"));
        assert!(!redis_key(&log.id, "sess-a").contains("sess-a"), "the session is only a digest");
        assert_eq!(parse_event_id("nope"), None);
        assert_eq!(parse_event_id("s1:x"), None);
    }

    #[test]
    fn stream_replies_are_read_into_entries() {
        let b = |s: &str| RValue::BulkString(s.as_bytes().to_vec());
        let entry = |id: &str, f: &str, v: &str| RValue::Array(vec![b(id), RValue::Array(vec![b(f), b(v)])]);
        let range = RValue::Array(vec![entry("1-1", "d", "one"), entry("1-2", "end", "1"), RValue::Int(3)]);
        assert_eq!(entries_of(&range), vec![("1-1".into(), "d".into(), "one".into()), ("1-2".into(), "end".into(), "1".into())]);
        let xread = RValue::Array(vec![RValue::Array(vec![b("k"), RValue::Array(vec![entry("2-1", "d", "two")])])]);
        assert_eq!(entries_of_xread(&xread).len(), 1);
        assert_eq!(entries_of_xread(&RValue::Map(vec![(b("k"), range)])).len(), 2);
        assert!(entries_of_xread(&RValue::Nil).is_empty());
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
