//! Legacy client sessions minted by the hub (`Mcp-Session-Id`, 2025-11-25
//! transports §Session Management). Ids are 128 random bits from the OS.
//! Idle sessions expire (most clients never DELETE).
//!
//! In memory, and — when the hub has Redis (issue 20, docs/cluster.md §1) — also in
//! Redis, so any instance behind a load balancer serves any client:
//! - the record is JSON ([`SessionRecord`]) under
//!   `mcp:client:session:{<sha256 hex of the id>}` ([`record_key`]; the raw
//!   id is never in a key or a log line), TTL = the idle timeout;
//! - `create` writes it through (`SET … PX idle`); a failed write keeps the
//!   session in memory, marked dirty, written when Redis is back
//!   ([`ClientSessions::write_through`], the store's recovery hook) or at its
//!   next use;
//! - `get` of an id not held here loads the record (the same user check
//!   applies to it as to a local one); a held one is re-validated at most
//!   every [`REVALIDATE`] (a record gone means the session ended elsewhere:
//!   dropped here too) and its TTL refreshed at most every
//!   min(60 s, idle / 4) ([`ClientSessions::refresh_every`]);
//! - `remove` (DELETE) deletes the record; log level and subscriptions are
//!   written through (`SET … XX KEEPTTL`).
//!
//! Redis unreachable (its breaker open): everything works from memory as
//! without Redis. The per-instance `max` bounds the local table only.

use crate::store::redis::RedisStore;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Prefix of the Redis key of a client session record (docs/cluster.md §0).
pub const KEY_PREFIX: &str = "mcp:client:session:";
/// A held session is checked against Redis at most this often (docs/cluster.md §1):
/// a session ended on another instance is gone here within it.
pub const REVALIDATE: Duration = Duration::from_secs(5);
/// Longest interval between two TTL refreshes of one session.
const MAX_REFRESH: Duration = Duration::from_secs(60);
/// The record version this hub writes and reads.
const RECORD_VERSION: u32 = 1;
/// What a deleted session's key holds (for the idle timeout) instead of its
/// record: a tombstone, so that another instance tells "deleted" (404) from
/// "Redis lost the record" (a failover that dropped the last writes, a Redis
/// restarted empty), where the instance holding the session writes it again.
pub const ENDED: &str = "ended";

/// `mcp:client:session:{<sha256 hex of id>}`: the id's digest in a Redis
/// Cluster hash tag; the id itself never appears.
pub fn record_key(id: &str) -> String {
    use sha2::{Digest, Sha256};
    format!("{KEY_PREFIX}{{{}}}", hex::encode(Sha256::digest(id.as_bytes())))
}

/// A client session as stored in Redis (docs/cluster.md §1), JSON:
/// `{"v":1,"protocolVersion","clientInfo","capabilities","user","logLevel","subscriptions":[[server,uri],…],"created":unix_ms}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionRecord {
    /// Record version (1).
    pub v: u32,
    /// The version negotiated at `initialize`.
    pub protocol_version: String,
    /// The client's `clientInfo`.
    #[serde(default)]
    pub client_info: Value,
    /// The client's capabilities.
    #[serde(default)]
    pub capabilities: Value,
    /// The user who created it (`null`: anonymous).
    #[serde(default)]
    pub user: Option<String>,
    /// The level set with `logging/setLevel` (`null`: none set).
    #[serde(default)]
    pub log_level: Option<String>,
    /// `resources/subscribe` subscriptions, `[server, uri]` pairs.
    #[serde(default)]
    pub subscriptions: Vec<(String, String)>,
    /// When it was created, ms since the Unix epoch.
    #[serde(default)]
    pub created: u64,
}

impl SessionRecord {
    /// The record of `s` as it is now.
    pub fn of(s: &ClientSession) -> SessionRecord {
        SessionRecord {
            v: RECORD_VERSION,
            protocol_version: s.protocol_version.clone(),
            client_info: s.client_info.clone(),
            capabilities: s.capabilities.clone(),
            user: s.user.clone(),
            log_level: s.log_level.lock().clone(),
            subscriptions: s.subscriptions.lock().clone(),
            created: s.created_ms,
        }
    }

    /// JSON text.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("a record of strings and JSON values serializes")
    }

    /// A record from its JSON text; `None` when it is not JSON of this shape
    /// or of another version (such a record is treated as absent).
    pub fn decode(raw: &str) -> Option<SessionRecord> {
        serde_json::from_str::<SessionRecord>(raw).ok().filter(|r| r.v == RECORD_VERSION)
    }
}

/// One legacy client session.
#[derive(Debug)]
pub struct ClientSession {
    /// The id the hub minted.
    pub id: String,
    /// The version negotiated at `initialize`.
    pub protocol_version: String,
    /// The client's `clientInfo` from `initialize`.
    pub client_info: Value,
    /// The client's capabilities from `initialize`.
    pub capabilities: Value,
    /// The user who created it (`None`: anonymous); only they may use it.
    pub user: Option<String>,
    /// The level set with `logging/setLevel` (None: everything is relayed).
    /// Change it with [`ClientSessions::set_log_level`] (written through).
    pub log_level: Mutex<Option<String>>,
    /// `resources/subscribe` subscriptions as `(server, uri)`, kept in the
    /// record ([`ClientSessions::set_subscription`]); the hub's routing table
    /// is `relay::Subscriptions`.
    pub subscriptions: Mutex<Vec<(String, String)>>,
    /// When it was created, ms since the Unix epoch.
    pub created_ms: u64,
    last_seen: Mutex<Instant>,
    sync: Mutex<SyncState>,
}

/// Where a session stands with its Redis record.
#[derive(Debug)]
struct SyncState {
    /// Last check against the record (or write of it).
    checked: Instant,
    /// Last TTL refresh (or write).
    refreshed: Instant,
    /// A write failed: the record is older than this entry (or missing).
    dirty: bool,
}

impl ClientSession {
    fn new(id: String, record: SessionRecord) -> ClientSession {
        let now = Instant::now();
        ClientSession {
            id,
            protocol_version: record.protocol_version,
            client_info: record.client_info,
            capabilities: record.capabilities,
            user: record.user,
            log_level: Mutex::new(record.log_level),
            subscriptions: Mutex::new(record.subscriptions),
            created_ms: record.created,
            last_seen: Mutex::new(now),
            sync: Mutex::new(SyncState { checked: now, refreshed: now, dirty: false }),
        }
    }
}

/// Counts of the Redis side of client sessions (for `/metrics`).
#[derive(Debug, Default)]
pub struct StoreCounts {
    /// Sessions loaded from Redis (minted by another instance or dropped here).
    pub loaded: AtomicU64,
    /// Records written (create, updates, dirty write-through).
    pub written: AtomicU64,
    /// Writes that failed (the session stays in memory, dirty).
    pub write_failures: AtomicU64,
    /// Records Redis had lost (no record, no tombstone) written again from
    /// this instance's copy.
    pub restored: AtomicU64,
}

/// All live client sessions.
pub struct ClientSessions {
    map: Mutex<HashMap<String, Arc<ClientSession>>>,
    /// Told the ids of sessions that ended (deleted or expired), outside the locks.
    on_end: std::sync::OnceLock<EndHook>,
    /// Told the id of a session DELETEd here (to tell other instances).
    on_removed: std::sync::OnceLock<EndHook>,
    idle: Duration,
    max: usize,
    last_sweep: Mutex<Instant>,
    /// How long each sweep for idle sessions took (`mcphub_client_session_sweep_seconds`).
    sweeps: prometheus::Histogram,
    /// Where records are shared with other instances (`None`: memory only).
    redis: Option<RedisStore>,
    counts: StoreCounts,
}

/// Receives the ids of client sessions that ended.
pub type EndHook = Box<dyn Fn(&[String]) + Send + Sync>;

/// No room for another session: `max` live sessions, none idle long enough to expire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many client sessions ({0}); retry later")]
pub struct SessionsFull(pub usize);

/// A fresh random session id: 32 lowercase hex characters (128 bits).
pub fn new_session_id() -> String {
    crate::random::hex::<16>()
}

/// What a check of a held session against Redis found.
enum Checked {
    /// The record is there (or Redis could not say): keep the session.
    Live,
    /// The record is gone: the session ended elsewhere (or expired there).
    Gone,
}

impl ClientSessions {
    /// Sessions idle longer than `idle` expire; at most `max` live at once. In memory only.
    pub fn new(idle: Duration, max: usize) -> ClientSessions {
        ClientSessions::with_redis(idle, max, None)
    }

    /// As [`ClientSessions::new`], with the records also in `redis` when
    /// given (module docs, docs/cluster.md §1). `max` bounds this instance's table.
    pub fn with_redis(idle: Duration, max: usize, redis: Option<RedisStore>) -> ClientSessions {
        ClientSessions {
            map: Mutex::new(HashMap::new()),
            on_end: std::sync::OnceLock::new(),
            on_removed: std::sync::OnceLock::new(),
            idle,
            max,
            last_sweep: Mutex::new(Instant::now()),
            sweeps: crate::metrics::client_session_sweep_histogram(),
            redis,
            counts: StoreCounts::default(),
        }
    }

    /// The durations of the sweeps for idle sessions (`mcphub_client_session_sweep_seconds`).
    pub fn sweeps(&self) -> &prometheus::Histogram {
        &self.sweeps
    }

    /// Counts of records loaded, written and failed writes (all 0 without Redis).
    pub fn store_counts(&self) -> &StoreCounts {
        &self.counts
    }

    /// How often a held session's TTL in Redis is refreshed: min(60 s, idle / 4).
    pub fn refresh_every(&self) -> Duration {
        MAX_REFRESH.min(self.idle / 4)
    }

    /// Sets who is told when sessions end (once; later calls are ignored).
    /// Called for sessions deleted here ([`ClientSessions::remove`]) or
    /// expired here; not for [`ClientSessions::forget_local`] nor for a
    /// session found gone from Redis (it ended on another instance, whose hook ran).
    pub fn set_on_end(&self, hook: EndHook) {
        let _ = self.on_end.set(hook);
    }

    /// Sets who is told the id of a session ended by [`ClientSessions::remove`]
    /// (a DELETE here), after its record is deleted and after the end hook —
    /// for broadcasting `SessionEnded` to other instances (docs/cluster.md §2).
    /// Once; later calls are ignored.
    pub fn set_on_removed(&self, hook: EndHook) {
        let _ = self.on_removed.set(hook);
    }

    fn ended(&self, ids: &[String]) {
        if let (Some(hook), false) = (self.on_end.get(), ids.is_empty()) {
            hook(ids);
        }
    }

    /// Creates a session after `initialize`. When `max` sessions are live,
    /// expired ones are dropped first (at most once a second, so a flood of
    /// `initialize` does not sweep the whole table each time); if none is,
    /// `SessionsFull`. The check and the insert happen under one lock. With
    /// Redis, the record is then written (`SET … PX idle`; a failure leaves
    /// the session dirty, served from memory).
    pub fn create(&self, protocol_version: &str, client_info: Value, capabilities: Value, user: Option<String>) -> Result<Arc<ClientSession>, SessionsFull> {
        let mut map = self.map.lock();
        let mut expired = Vec::new();
        {
            let mut last = self.last_sweep.lock();
            let since = last.elapsed();
            let due = since >= Duration::from_secs(60) || (map.len() >= self.max && since >= Duration::from_secs(1));
            if due {
                let timer = self.sweeps.start_timer();
                let idle = self.idle;
                map.retain(|id, s| {
                    let keep = s.last_seen.lock().elapsed() <= idle;
                    if !keep {
                        expired.push(id.clone());
                    }
                    keep
                });
                timer.observe_duration();
                *last = Instant::now();
            }
        }
        if !expired.is_empty() {
            drop(map);
            let ended = self.still_in_redis(expired);
            self.ended(&ended);
            map = self.map.lock();
        }
        if map.len() >= self.max {
            return Err(SessionsFull(self.max));
        }
        let record = SessionRecord {
            v: RECORD_VERSION,
            protocol_version: protocol_version.to_string(),
            client_info,
            capabilities,
            user,
            log_level: None,
            subscriptions: Vec::new(),
            created: crate::store::now_ms(),
        };
        let s = Arc::new(ClientSession::new(new_session_id(), record));
        map.insert(s.id.clone(), s.clone());
        drop(map);
        self.write(&s);
        Ok(s)
    }

    /// Of sessions that expired here, those whose record is gone too (with
    /// Redis; all of them without, or when Redis cannot say): another
    /// instance may have kept one alive, which is then only forgotten here.
    fn still_in_redis(&self, expired: Vec<String>) -> Vec<String> {
        let Some(redis) = &self.redis else { return expired };
        let exists: Result<Vec<bool>, _> = redis.run(|c| {
            let mut pipe = redis::pipe();
            for id in &expired {
                pipe.cmd("EXISTS").arg(record_key(id));
            }
            pipe.query(c)
        });
        match exists {
            Ok(exists) => expired.into_iter().zip(exists).filter(|(_, live)| !live).map(|(id, _)| id).collect(),
            Err(_) => expired,
        }
    }

    /// The live session with this id, marking it used; `None` when unknown,
    /// expired, or (with Redis) ended on another instance. With Redis: a
    /// held session is checked and its TTL refreshed when due (module docs);
    /// one not held here is loaded from its record.
    pub fn get(&self, id: &str) -> Option<Arc<ClientSession>> {
        let held = self.map.lock().get(id).cloned();
        if let Some(s) = held {
            let mut seen = s.last_seen.lock();
            if seen.elapsed() <= self.idle {
                *seen = Instant::now();
                drop(seen);
                if let Checked::Gone = self.check(&s) {
                    self.drop_entry(&s);
                    return None;
                }
                return Some(s);
            }
            drop(seen);
            // Idle here. Without Redis, or when its record is gone too, it ended.
            let dropped = self.drop_entry(&s);
            match self.load(id) {
                Some(loaded) => return Some(loaded),
                None => {
                    if dropped {
                        self.ended(&[id.to_string()]);
                    }
                    return None;
                }
            }
        }
        self.load(id)
    }

    /// Removes `s`'s entry if it is still the one held (no hook).
    fn drop_entry(&self, s: &Arc<ClientSession>) -> bool {
        let mut map = self.map.lock();
        if map.get(&s.id).is_some_and(|held| Arc::ptr_eq(held, s)) {
            map.remove(&s.id);
            return true;
        }
        false
    }

    /// With Redis: writes a dirty session through, or, when due, reads its
    /// record (adopting the log level and subscriptions set elsewhere) and
    /// refreshes its TTL. One request per session does it; the others go on.
    fn check(&self, s: &Arc<ClientSession>) -> Checked {
        let Some(redis) = &self.redis else { return Checked::Live };
        let (dirty, refresh) = {
            let mut sync = s.sync.lock();
            if sync.dirty {
                (true, false)
            } else {
                let refresh = sync.refreshed.elapsed() >= self.refresh_every();
                if sync.checked.elapsed() < REVALIDATE && !refresh {
                    return Checked::Live;
                }
                sync.checked = Instant::now();
                if refresh {
                    sync.refreshed = Instant::now();
                }
                (false, refresh)
            }
        };
        if dirty {
            // Written at once when Redis is up; else at its recovery (one
            // failed write counted, not one per request).
            if matches!(crate::store::SessionStore::health(redis), crate::store::Health::Up) {
                self.write(s);
            }
            return Checked::Live;
        }
        let key = record_key(&s.id);
        let idle_ms = ttl_ms(self.idle);
        let read: Result<(Option<String>,), _> = redis.run(|c| {
            let mut pipe = redis::pipe();
            pipe.cmd("GET").arg(&key);
            if refresh {
                pipe.cmd("PEXPIRE").arg(&key).arg(idle_ms).ignore();
            }
            pipe.query(c)
        });
        match read {
            Ok((Some(raw),)) if raw == ENDED => Checked::Gone,
            Ok((Some(raw),)) => {
                if let Some(r) = SessionRecord::decode(&raw) {
                    *s.log_level.lock() = r.log_level;
                    *s.subscriptions.lock() = r.subscriptions;
                }
                Checked::Live
            }
            Ok((None,)) => {
                // Neither a record nor a tombstone: Redis lost it (not a
                // DELETE, which leaves [`ENDED`]); this copy is written again.
                self.restore(redis, std::slice::from_ref(s));
                Checked::Live
            }
            Err(e) => {
                log::debug!("client session check: {e}");
                Checked::Live
            }
        }
    }

    /// A session not held here, from its Redis record (and its TTL
    /// refreshed); held from now on when the table has room.
    fn load(&self, id: &str) -> Option<Arc<ClientSession>> {
        let redis = self.redis.as_ref()?;
        let key = record_key(id);
        let idle_ms = ttl_ms(self.idle);
        let read: Result<(Option<String>,), _> =
            redis.run(|c| redis::pipe().cmd("GET").arg(&key).cmd("PEXPIRE").arg(&key).arg(idle_ms).ignore().query(c));
        let raw = match read {
            Ok((raw,)) => raw.filter(|r| r != ENDED)?,
            Err(e) => {
                log::debug!("client session load: {e}");
                return None;
            }
        };
        let Some(record) = SessionRecord::decode(&raw) else {
            log::warn!("a client session record in Redis is not a version {RECORD_VERSION} record; ignored");
            return None;
        };
        self.counts.loaded.fetch_add(1, Ordering::Relaxed);
        let s = Arc::new(ClientSession::new(id.to_string(), record));
        let mut map = self.map.lock();
        if let Some(held) = map.get(id) {
            return Some(held.clone()); // loaded by a concurrent request
        }
        if map.len() < self.max {
            map.insert(id.to_string(), s.clone());
        }
        Some(s)
    }

    /// `SET key record PX idle`: creation, or a dirty session written through.
    fn write(&self, s: &ClientSession) {
        let Some(redis) = &self.redis else { return };
        let json = SessionRecord::of(s).encode();
        let key = record_key(&s.id);
        let ms = ttl_ms(self.idle);
        let wrote = redis.run(|c| redis::cmd("SET").arg(&key).arg(&json).arg("PX").arg(ms).query::<()>(c));
        self.wrote(s, wrote.map(|_| ()));
    }

    /// Counts a write and records its outcome on `s`.
    fn wrote(&self, s: &ClientSession, result: Result<(), crate::store::StoreError>) {
        let mut sync = s.sync.lock();
        match result {
            Ok(()) => {
                self.counts.written.fetch_add(1, Ordering::Relaxed);
                sync.dirty = false;
                sync.checked = Instant::now();
                sync.refreshed = Instant::now();
            }
            Err(e) => {
                self.counts.write_failures.fetch_add(1, Ordering::Relaxed);
                sync.dirty = true;
                log::debug!("client session record not written (kept in memory): {e}");
            }
        }
    }

    /// The updated record of a held session (`SET … XX KEEPTTL`: a record
    /// deleted meanwhile is not brought back; the next check drops it).
    fn update(&self, s: &ClientSession) {
        let Some(redis) = &self.redis else { return };
        if s.sync.lock().dirty {
            return self.write(s);
        }
        let json = SessionRecord::of(s).encode();
        let key = record_key(&s.id);
        let wrote = redis.run(|c| redis::cmd("SET").arg(&key).arg(&json).arg("XX").arg("KEEPTTL").query::<Option<String>>(c));
        self.wrote(s, wrote.map(|_| ()));
    }

    /// Sets the session's `logging/setLevel` level, written through.
    pub fn set_log_level(&self, s: &ClientSession, level: &str) {
        *s.log_level.lock() = Some(level.to_string());
        self.update(s);
    }

    /// Adds (`on`) or removes a `(server, uri)` subscription of the session,
    /// written through (no write when nothing changed).
    pub fn set_subscription(&self, s: &ClientSession, server: &str, uri: &str, on: bool) {
        let changed = {
            let mut subs = s.subscriptions.lock();
            let at = subs.iter().position(|(a, b)| a == server && b == uri);
            match (at, on) {
                (None, true) => {
                    subs.push((server.to_string(), uri.to_string()));
                    true
                }
                (Some(i), false) => {
                    subs.remove(i);
                    true
                }
                _ => false,
            }
        };
        if changed {
            self.update(s);
        }
    }

    /// Ends a session: drops it here, deletes its record (with Redis), tells
    /// the end hook. False when it was unknown here.
    pub fn remove(&self, id: &str) -> bool {
        let removed = self.map.lock().remove(id).is_some();
        if let Some(redis) = &self.redis {
            let ms = ttl_ms(self.idle);
            if let Err(e) = redis.run(|c| redis::cmd("SET").arg(record_key(id)).arg(ENDED).arg("PX").arg(ms).query::<()>(c)) {
                self.counts.write_failures.fetch_add(1, Ordering::Relaxed);
                log::warn!("a deleted client session's record could not be deleted from Redis (it expires with its TTL): {e}");
            }
        }
        if removed {
            let ids = [id.to_string()];
            self.ended(&ids);
            if let Some(hook) = self.on_removed.get() {
                hook(&ids);
            }
        }
        removed
    }

    /// Drops the local entry only: no Redis, no end hook (docs/cluster.md §1: a
    /// session another instance ended). False when it was not held here.
    pub fn forget_local(&self, id: &str) -> bool {
        self.map.lock().remove(id).is_some()
    }

    /// The store's recovery hook: writes the records of the sessions whose
    /// write failed, and writes again every other held session's record that
    /// Redis lost while it was away (`SET … NX`: a record or a tombstone
    /// there is kept). Returns how many dirty records were written.
    pub fn write_through(&self) -> usize {
        let Some(redis) = &self.redis else { return 0 };
        let held: Vec<Arc<ClientSession>> = self.map.lock().values().cloned().collect();
        let (dirty, clean): (Vec<_>, Vec<_>) = held.into_iter().partition(|s| s.sync.lock().dirty);
        let mut written = 0;
        for s in dirty {
            self.write(&s);
            if !s.sync.lock().dirty {
                written += 1;
            }
        }
        for chunk in clean.chunks(500) {
            self.restore(redis, chunk);
        }
        written
    }

    /// `SET key record PX idle NX` for each of `sessions` (one pipeline):
    /// their records again where Redis has neither a record nor a tombstone.
    fn restore(&self, redis: &RedisStore, sessions: &[Arc<ClientSession>]) {
        if sessions.is_empty() {
            return;
        }
        let ms = ttl_ms(self.idle);
        let wrote: Result<Vec<Option<String>>, _> = redis.run(|c| {
            let mut pipe = redis::pipe();
            for s in sessions {
                pipe.cmd("SET").arg(record_key(&s.id)).arg(SessionRecord::of(s).encode()).arg("PX").arg(ms).arg("NX");
            }
            pipe.query(c)
        });
        match wrote {
            Ok(replies) => {
                let n = replies.iter().filter(|r| r.is_some()).count() as u64;
                if n > 0 {
                    self.counts.restored.fetch_add(n, Ordering::Relaxed);
                    log::info!("{n} client session record(s) Redis had lost were written again from this instance");
                }
            }
            Err(e) => log::debug!("client session records not restored: {e}"),
        }
    }

    /// Number of sessions held here.
    pub fn len(&self) -> usize {
        self.map.lock().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Milliseconds for `PX`/`PEXPIRE`, at least 1.
fn ttl_ms(ttl: Duration) -> u64 {
    (ttl.as_millis() as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_are_random_hex_and_sessions_expire_when_idle() {
        let a = new_session_id();
        assert_eq!(a.len(), 32);
        assert_ne!(a, new_session_id());
        let sessions = ClientSessions::new(Duration::from_millis(30), 10);
        let s = sessions.create("2025-06-18", json!({}), json!({}), None).unwrap();
        assert!(sessions.get(&s.id).is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert!(sessions.get(&s.id).is_none());
        assert!(sessions.is_empty());
    }

    #[test]
    fn records_encode_the_design_shape_and_round_trip() {
        let sessions = ClientSessions::new(Duration::from_secs(60), 10);
        let s = sessions.create("2025-06-18", json!({"name": "c"}), json!({"roots": {}}), Some("alice".into())).unwrap();
        sessions.set_log_level(&s, "warning");
        sessions.set_subscription(&s, "files", "file:///a", true);
        sessions.set_subscription(&s, "files", "file:///a", true);
        let r = SessionRecord::of(&s);
        let v: Value = serde_json::from_str(&r.encode()).unwrap();
        assert_eq!(v["v"], 1);
        assert_eq!(v["protocolVersion"], "2025-06-18");
        assert_eq!(v["clientInfo"], json!({"name": "c"}));
        assert_eq!(v["capabilities"], json!({"roots": {}}));
        assert_eq!(v["user"], "alice");
        assert_eq!(v["logLevel"], "warning");
        assert_eq!(v["subscriptions"], json!([["files", "file:///a"]]), "no duplicates");
        assert!(v["created"].as_u64().unwrap() > 1_700_000_000_000, "unix ms");
        assert!(!r.encode().contains(&s.id), "the id is not in the record");
        assert_eq!(SessionRecord::decode(&r.encode()), Some(r.clone()));
        sessions.set_subscription(&s, "files", "file:///a", false);
        assert!(SessionRecord::of(&s).subscriptions.is_empty());
    }

    #[test]
    fn records_of_other_versions_or_shapes_are_absent_and_missing_fields_default() {
        assert_eq!(SessionRecord::decode("not json"), None);
        assert_eq!(SessionRecord::decode(r#"{"v":2,"protocolVersion":"2025-06-18"}"#), None);
        assert_eq!(SessionRecord::decode(r#"{"protocolVersion":"2025-06-18"}"#), None, "v is required");
        let r = SessionRecord::decode(r#"{"v":1,"protocolVersion":"2025-03-26","extra":true}"#).unwrap();
        assert_eq!((r.user, r.log_level, r.subscriptions.len(), r.created), (None, None, 0, 0));
        assert_eq!(r.client_info, Value::Null);
    }

    #[test]
    fn keys_hold_the_ids_digest_in_a_hash_tag_never_the_id() {
        let id = "0123456789abcdef0123456789abcdef";
        let k = record_key(id);
        // sha256("0123456789abcdef0123456789abcdef")
        use sha2::{Digest, Sha256};
        assert_eq!(k, format!("mcp:client:session:{{{}}}", hex::encode(Sha256::digest(id))));
        assert_eq!(k.len(), "mcp:client:session:{}".len() + 64);
        assert!(!k.contains(id));
    }

    #[test]
    fn forget_local_drops_without_the_end_hook_and_refresh_is_bounded() {
        let sessions = ClientSessions::new(Duration::from_secs(3600), 10);
        let ended = Arc::new(Mutex::new(Vec::<String>::new()));
        let seen = ended.clone();
        sessions.set_on_end(Box::new(move |ids: &[String]| seen.lock().extend_from_slice(ids)));
        let a = sessions.create("2025-06-18", json!({}), json!({}), None).unwrap();
        let b = sessions.create("2025-06-18", json!({}), json!({}), None).unwrap();
        assert!(sessions.forget_local(&a.id));
        assert!(!sessions.forget_local(&a.id));
        assert!(sessions.get(&a.id).is_none());
        let removed = Arc::new(Mutex::new(Vec::<String>::new()));
        let seen = removed.clone();
        sessions.set_on_removed(Box::new(move |ids: &[String]| seen.lock().extend_from_slice(ids)));
        assert!(sessions.remove(&b.id));
        assert_eq!(*ended.lock(), vec![b.id.clone()], "only remove tells the hook");
        assert_eq!(*removed.lock(), vec![b.id.clone()]);
        assert_eq!(sessions.refresh_every(), Duration::from_secs(60));
        assert_eq!(ClientSessions::new(Duration::from_secs(20), 1).refresh_every(), Duration::from_secs(5));
        assert_eq!(sessions.write_through(), 0, "memory only: nothing to write");
    }

    #[test]
    fn removed_sessions_are_gone() {
        let sessions = ClientSessions::new(Duration::from_secs(60), 10);
        let s = sessions.create("2025-06-18", json!({}), json!({}), None).unwrap();
        assert!(sessions.remove(&s.id));
        assert!(!sessions.remove(&s.id));
        assert!(sessions.get(&s.id).is_none());
    }

    #[test]
    fn a_full_table_expires_idle_sessions_first_then_refuses() {
        let sessions = ClientSessions::new(Duration::from_millis(40), 2);
        sessions.create("2025-06-18", json!({}), json!({}), None).unwrap();
        sessions.create("2025-06-18", json!({}), json!({}), None).unwrap();
        assert_eq!(sessions.create("2025-06-18", json!({}), json!({}), None).unwrap_err(), SessionsFull(2));
        // Forced sweeps run at most once a second.
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(sessions.sweeps().get_sample_count(), 0, "no sweep while the table had room");
        assert!(sessions.create("2025-06-18", json!({}), json!({}), None).is_ok(), "expired sessions make room");
        assert_eq!(sessions.len(), 1);
        assert_eq!(sessions.sweeps().get_sample_count(), 1, "the forced sweep is observed once");
    }
}
