//! Each user's recent `/mcp` requests, for their Activity page (issue 17):
//! the last [`RECENT_CAP`] requests, newest first, and a count per UTC day
//! kept [`KEEP_DAYS`] days.
//!
//! Two stores, picked like the user registry's ([`super::Users::open`]):
//! - **memory** (no Redis): per user a ring of entries and a short list of
//!   (day, count), behind one short `Mutex`;
//! - **Redis** (the hub's one connection, its breaker and timeouts):
//!   `mcp:activity:<user>` is a list of JSON [`Entry`]s (`LPUSH`, `LTRIM 0 99`,
//!   `PEXPIRE` 15 d) and `mcp:activity:<user>:<YYYY-MM-DD>` a counter (`INCR`,
//!   `EXPIRE` 15 d). [`Activity::record`] never talks to Redis: it puts the
//!   entry on a bounded channel ([`QUEUE_CAP`]) read by one writer thread
//!   (`mcphub-activity-writer`), which writes what it finds in one pipeline;
//!   when the channel is full the entry is dropped and counted
//!   ([`Activity::dropped`], `mcphub_activity_dropped_total`).
//!
//! Invariant: recording costs the request a lock or a channel send, never a
//! store round trip; an entry's error text is masked ([`crate::logging::mask_keys`])
//! and at most [`ERROR_CHARS`] characters.

use crate::store::redis::RedisStore;
use crate::store::StoreError;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Entries kept per user (newest first).
pub const RECENT_CAP: usize = 100;
/// Days a per-day count is kept (the page shows 14; one more covers a page
/// rendered just after midnight UTC).
pub const KEEP_DAYS: u64 = 15;
/// Most characters of an entry's error text.
pub const ERROR_CHARS: usize = 200;
/// Entries waiting for the Redis writer; beyond, new entries are dropped.
pub const QUEUE_CAP: usize = 4096;
/// Most entries the Redis writer sends in one pipeline.
const BATCH: usize = 256;
/// How often the idle Redis writer looks at the hub's stop signal.
const STOP_POLL: Duration = Duration::from_millis(100);
/// Redis key prefix: `mcp:activity:<user>` (list) and `mcp:activity:<user>:<YYYY-MM-DD>` (counter).
pub const PREFIX: &str = "mcp:activity:";
const DAY_MS: u64 = 86_400_000;

/// One answered `/mcp` request of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// When it was answered (an SSE answer: when its stream ended), ms since the Unix epoch.
    pub at_ms: u64,
    /// The JSON-RPC method (or `GET`/`DELETE` of a stream), as the request log line has it.
    pub method: String,
    /// The tool or prompt name or the resource URI (sanitized as in the log line).
    #[serde(default)]
    pub name: Option<String>,
    /// The upstream server it reached (`*` when several).
    #[serde(default)]
    pub server: Option<String>,
    /// The HTTP status of the answer.
    pub status: u16,
    /// The JSON-RPC error code of the answer, if it was an error.
    #[serde(default)]
    pub rpc_code: Option<i64>,
    /// Time to answer (an SSE answer: until its stream ended), ms.
    pub duration_ms: u64,
    /// The JSON-RPC error message, masked and at most [`ERROR_CHARS`] characters.
    #[serde(default)]
    pub error: Option<String>,
}

/// `text` as an entry's error: hub keys masked, then cut to [`ERROR_CHARS`]
/// characters (masking first, so a cut never leaves part of a key).
pub fn error_text(text: &str) -> String {
    let masked = crate::logging::mask_keys(text);
    match masked.char_indices().nth(ERROR_CHARS) {
        Some((cut, _)) => masked[..cut].to_string(),
        None => masked,
    }
}

/// The UTC date of `ms` since the Unix epoch, `YYYY-MM-DD`.
pub fn utc_date(ms: u64) -> String {
    let mut stamp = crate::logging::rfc3339(ms);
    stamp.truncate(stamp.find('T').unwrap_or(stamp.len()));
    stamp
}

/// The `days` UTC days ending with the day of `now_ms`, oldest first, as day numbers.
fn last_days(days: usize, now_ms: u64) -> impl Iterator<Item = u64> {
    let today = now_ms / DAY_MS;
    (0..days as u64).rev().filter_map(move |back| today.checked_sub(back))
}

/// `mcp:activity:<user>`.
pub fn list_key(user: &str) -> String {
    format!("{PREFIX}{user}")
}

/// `mcp:activity:<user>:<YYYY-MM-DD>`.
pub fn day_key(user: &str, date: &str) -> String {
    format!("{PREFIX}{user}:{date}")
}

/// One user's activity in memory.
#[derive(Default)]
struct Log {
    /// Newest first, at most [`RECENT_CAP`].
    recent: VecDeque<Entry>,
    /// (day number since the epoch, count), oldest first, at most [`KEEP_DAYS`].
    days: VecDeque<(u64, u64)>,
}

impl Log {
    fn push(&mut self, entry: Entry) {
        let day = entry.at_ms / DAY_MS;
        match self.days.back_mut() {
            Some((d, n)) if *d == day => *n += 1,
            // A clock that stepped back: count it on the newest day kept.
            Some((d, n)) if *d > day => *n += 1,
            _ => self.days.push_back((day, 1)),
        }
        while self.days.front().is_some_and(|(d, _)| d + KEEP_DAYS <= day) {
            self.days.pop_front();
        }
        if self.recent.len() == RECENT_CAP {
            self.recent.pop_back();
        }
        self.recent.push_front(entry);
    }
}

enum Store {
    Memory(Mutex<HashMap<String, Log>>),
    Redis { store: RedisStore, tx: Sender<(String, Entry)> },
}

struct Inner {
    store: Store,
    /// Entries not kept (shared with the Redis writer).
    dropped: Arc<AtomicU64>,
}

/// The users' activity (module docs). Cheap to clone; clones share the store.
#[derive(Clone)]
pub struct Activity {
    inner: Arc<Inner>,
}

impl Activity {
    /// Activity kept in this process's memory.
    pub fn memory() -> Activity {
        Activity { inner: Arc::new(Inner { store: Store::Memory(Mutex::new(HashMap::new())), dropped: Arc::default() }) }
    }

    /// Activity kept in Redis through `store` (the hub's one connection),
    /// written by the thread `mcphub-activity-writer` owned by `threads` (it
    /// ends at that owner's shutdown, after writing what is queued, or when
    /// this `Activity` and its clones are dropped). If the thread cannot
    /// start, the activity is kept in memory (logged).
    pub fn redis(store: RedisStore, threads: &crate::threads::Threads) -> Activity {
        let (tx, rx) = crossbeam_channel::bounded(QUEUE_CAP);
        let (writer, dropped) = (store.clone(), Arc::new(AtomicU64::new(0)));
        let lost = dropped.clone();
        let spawned = threads.spawn_owned("activity-writer", crate::threads::Kind::Poller, move |stop| write_loop(&writer, &rx, &lost, stop));
        if let Err(e) = spawned {
            log::error!("activity: cannot start the Redis writer thread ({e}); users' activity is kept in this process's memory");
            return Activity::memory();
        }
        Activity { inner: Arc::new(Inner { store: Store::Redis { store, tx }, dropped }) }
    }

    /// `memory` or `redis`.
    pub fn kind(&self) -> &'static str {
        match self.inner.store {
            Store::Memory(_) => "memory",
            Store::Redis { .. } => "redis",
        }
    }

    /// Records `entry` for `user`. Never waits for a store: memory takes a
    /// short lock; Redis queues it for the writer, and drops it (counted in
    /// [`dropped`](Self::dropped)) when the queue is full.
    pub fn record(&self, user: &str, entry: Entry) {
        match &self.inner.store {
            Store::Memory(map) => {
                let mut map = map.lock();
                match map.get_mut(user) {
                    Some(log) => log.push(entry),
                    None => map.entry(user.to_string()).or_default().push(entry),
                }
            }
            Store::Redis { tx, .. } => match tx.try_send((user.to_string(), entry)) {
                Ok(()) => {}
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    self.inner.dropped.fetch_add(1, Ordering::Relaxed);
                }
            },
        }
    }

    /// Entries dropped so far because the Redis writer's queue was full
    /// (or the writer had ended), or because Redis refused a batch.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// `user`'s last [`RECENT_CAP`] entries, newest first. With Redis,
    /// entries still queued for the writer are not there yet.
    ///
    /// Errors: Redis unavailable or answering something else than a list.
    pub fn recent(&self, user: &str) -> Result<Vec<Entry>, StoreError> {
        match &self.inner.store {
            Store::Memory(map) => Ok(map.lock().get(user).map(|l| l.recent.iter().cloned().collect()).unwrap_or_default()),
            Store::Redis { store, .. } => {
                let raws: Vec<Vec<u8>> =
                    store.run(|c| redis::cmd("LRANGE").arg(list_key(user)).arg(0).arg(RECENT_CAP as i64 - 1).query(c))?;
                Ok(raws.iter().filter_map(|raw| serde_json::from_slice::<Entry>(raw).ok()).collect())
            }
        }
    }

    /// `user`'s requests per UTC day for the `days` days ending today
    /// (`now_ms`): (`YYYY-MM-DD`, count), oldest first, days without
    /// requests as 0. Only the last [`KEEP_DAYS`] days are kept.
    ///
    /// Errors: Redis unavailable.
    pub fn per_day(&self, user: &str, days: usize, now_ms: u64) -> Result<Vec<(String, u64)>, StoreError> {
        let wanted: Vec<u64> = last_days(days, now_ms).collect();
        match &self.inner.store {
            Store::Memory(map) => {
                let map = map.lock();
                let kept = map.get(user).map(|l| &l.days);
                Ok(wanted
                    .iter()
                    .map(|day| {
                        let n = kept.and_then(|k| k.iter().find(|(d, _)| d == day)).map_or(0, |(_, n)| *n);
                        (utc_date(day * DAY_MS), n)
                    })
                    .collect())
            }
            Store::Redis { store, .. } => {
                let dates: Vec<String> = wanted.iter().map(|d| utc_date(d * DAY_MS)).collect();
                if dates.is_empty() {
                    return Ok(Vec::new());
                }
                let counts: Vec<Option<u64>> = store.run(|c| {
                    let mut cmd = redis::cmd("MGET");
                    for d in &dates {
                        cmd.arg(day_key(user, d));
                    }
                    cmd.query(c)
                })?;
                Ok(dates.into_iter().zip(counts.into_iter().chain(std::iter::repeat(None))).map(|(d, n)| (d, n.unwrap_or(0))).collect())
            }
        }
    }

    /// Forgets everything of `user` (a deleted user). With Redis, deletes
    /// the list and the day counters of the last [`KEEP_DAYS`] days; entries
    /// still queued for the writer may write a few back, which expire within
    /// [`KEEP_DAYS`].
    ///
    /// Errors: Redis unavailable.
    pub fn forget(&self, user: &str) -> Result<(), StoreError> {
        let now_ms = crate::store::now_ms();
        match &self.inner.store {
            Store::Memory(map) => {
                map.lock().remove(user);
                Ok(())
            }
            Store::Redis { store, .. } => store.run(|c| {
                let mut cmd = redis::cmd("DEL");
                cmd.arg(list_key(user));
                for day in last_days(KEEP_DAYS as usize + 1, now_ms) {
                    cmd.arg(day_key(user, &utc_date(day * DAY_MS)));
                }
                cmd.query::<()>(c)
            }),
        }
    }
}

/// The Redis writer: takes what is queued (up to [`BATCH`] at a time) and
/// writes it in one pipeline, until the hub stops (then writes what is still
/// queued) or every sender is gone.
fn write_loop(store: &RedisStore, rx: &Receiver<(String, Entry)>, dropped: &AtomicU64, stop: &crate::threads::Stop) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut failing = false;
    loop {
        match rx.recv_timeout(STOP_POLL) {
            Ok(first) => batch.push(first),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                if stop.is_stopped() {
                    batch.extend(rx.try_iter().take(QUEUE_CAP));
                    if !batch.is_empty() {
                        write_batch(store, &mut batch, dropped, &mut failing);
                    }
                    return;
                }
                continue;
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
        }
        batch.extend(rx.try_iter().take(BATCH - 1));
        write_batch(store, &mut batch, dropped, &mut failing);
    }
}

/// Writes `batch` (emptied) in one pipeline; a failure counts its entries
/// in `dropped` and is logged once until a write succeeds again.
fn write_batch(store: &RedisStore, batch: &mut Vec<(String, Entry)>, dropped: &AtomicU64, failing: &mut bool) {
    let keep_ms = KEEP_DAYS * DAY_MS;
    let result = store.run(|c| {
        let mut p = redis::pipe();
        for (user, entry) in batch.iter() {
            let list = list_key(user);
            let body = serde_json::to_vec(entry).unwrap_or_default();
            p.cmd("LPUSH").arg(&list).arg(body).ignore();
            p.cmd("LTRIM").arg(&list).arg(0).arg(RECENT_CAP as i64 - 1).ignore();
            p.cmd("PEXPIRE").arg(&list).arg(keep_ms).ignore();
            let day = day_key(user, &utc_date(entry.at_ms));
            p.cmd("INCR").arg(&day).ignore();
            p.cmd("EXPIRE").arg(&day).arg(keep_ms / 1000).ignore();
        }
        p.query::<()>(c)
    });
    match result {
        Ok(()) if *failing => {
            *failing = false;
            log::info!("activity: users' activity is written to Redis again");
        }
        Ok(()) => {}
        Err(e) => {
            dropped.fetch_add(batch.len() as u64, Ordering::Relaxed);
            if !*failing {
                *failing = true;
                log::warn!("activity: {} entries not written ({e}); users' Activity pages miss them", batch.len());
            }
        }
    }
    batch.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(at_ms: u64, n: usize) -> Entry {
        Entry {
            at_ms,
            method: "tools/call".into(),
            name: Some(format!("tool{n}")),
            server: Some("srv".into()),
            status: 200,
            rpc_code: None,
            duration_ms: 3,
            error: None,
        }
    }

    /// 2026-12-06T12:00:00Z.
    const NOON: u64 = 1_796_558_400_000;

    #[test]
    fn dates_are_utc_days() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(NOON), "2026-12-06");
        assert_eq!(utc_date(NOON - 12 * 3_600_000 - 1), "2026-12-05", "a millisecond before midnight UTC");
        assert_eq!(utc_date(NOON - 12 * 3_600_000), "2026-12-06");
    }

    #[test]
    fn the_ring_keeps_the_newest_hundred_newest_first_per_user() {
        let a = Activity::memory();
        for i in 0..150 {
            a.record("alice", entry(NOON + i as u64, i));
        }
        a.record("bob", entry(NOON, 999));
        let recent = a.recent("alice").unwrap();
        assert_eq!(recent.len(), RECENT_CAP);
        assert_eq!(recent[0].name.as_deref(), Some("tool149"), "newest first");
        assert_eq!(recent[99].name.as_deref(), Some("tool50"), "the oldest 50 fell off");
        assert_eq!(a.recent("bob").unwrap().len(), 1, "users are separate");
        assert!(a.recent("carol").unwrap().is_empty());
        let days = a.per_day("alice", 14, NOON).unwrap();
        assert_eq!(days.len(), 14);
        assert_eq!(days[13], ("2026-12-06".to_string(), 150), "the day counts all, not only the kept entries");
        assert_eq!(days[0], ("2026-11-23".to_string(), 0));
        a.forget("alice").unwrap();
        assert!(a.recent("alice").unwrap().is_empty());
        assert_eq!(a.per_day("alice", 1, NOON).unwrap(), vec![("2026-12-06".to_string(), 0)]);
        assert_eq!(a.recent("bob").unwrap().len(), 1);
    }

    #[test]
    fn days_are_counted_filled_with_zeros_and_kept_fifteen_days() {
        let a = Activity::memory();
        for back in 0..20u64 {
            for _ in 0..=back {
                a.record("alice", entry(NOON - (19 - back) * DAY_MS + 5, 0));
            }
        }
        // Days recorded oldest first: 19 days ago got 1, …, today 20.
        let days = a.per_day("alice", 20, NOON).unwrap();
        assert_eq!(days.len(), 20);
        assert_eq!(days[19], ("2026-12-06".to_string(), 20));
        assert_eq!(days[18], ("2026-12-05".to_string(), 19));
        let kept: Vec<u64> = days.iter().map(|(_, n)| *n).collect();
        assert_eq!(&kept[..5], &[0, 0, 0, 0, 0], "older than 15 days: forgotten");
        assert_eq!(kept[5], 6, "the 15th day back is kept");
        // A gap shows as zeros.
        let b = Activity::memory();
        b.record("bob", entry(NOON - 3 * DAY_MS, 0));
        b.record("bob", entry(NOON, 0));
        let n: Vec<u64> = b.per_day("bob", 5, NOON).unwrap().into_iter().map(|(_, n)| n).collect();
        assert_eq!(n, vec![0, 1, 0, 0, 1]);
        // Dates run oldest to newest, one a day, across a month's end.
        let dates: Vec<String> = b.per_day("bob", 8, NOON).unwrap().into_iter().map(|(d, _)| d).collect();
        assert_eq!(dates.first().map(String::as_str), Some("2026-11-29"));
        assert_eq!(dates.get(2).map(String::as_str), Some("2026-12-01"));
    }

    #[test]
    fn error_text_is_masked_then_cut() {
        let key = format!("mcphub_{}", "a".repeat(64));
        let long = format!("{}{key} tail", "x".repeat(190));
        let e = error_text(&long);
        assert_eq!(e.chars().count(), ERROR_CHARS);
        assert!(!e.contains("aaaaaaaaaa"), "no part of the key survives the cut: {e}");
        assert!(e.ends_with("xmcphub_***"), "{e}");
        assert_eq!(error_text("short é"), "short é");
        let wide = "é".repeat(300);
        assert_eq!(error_text(&wide).chars().count(), ERROR_CHARS, "cut on characters, not bytes");
    }

    #[test]
    fn entries_are_camel_case_json() {
        let e = Entry { rpc_code: Some(-32601), error: Some("no".into()), ..entry(1, 0) };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["atMs"], 1);
        assert_eq!(v["rpcCode"], -32601);
        assert_eq!(v["durationMs"], 3);
        assert_eq!(serde_json::from_value::<Entry>(v).unwrap(), e);
    }
}
