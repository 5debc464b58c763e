//! The Redis store: several hub instances share one Redis (docs/decisions.md
//! D3, issue 4). Keys and values are those of [`super`].
//!
//! Three layers:
//! - an r2d2 pool of [`redis::Connection`]s opened by our own [`Manager`],
//!   which bounds the connect (`connectTimeoutMs`) and every read/write
//!   (`ioTimeoutMs`); the stock manager has neither, so a down Redis costs
//!   every checkout the full pool timeout and a hung one blocks forever;
//! - a circuit breaker: the first operation that fails on connectivity (IO
//!   error, timeout, no pooled connection within `checkoutTimeoutMs`) opens
//!   it, logs one warning, and from then on every operation answers
//!   [`StoreError::Unavailable`] at once without touching the pool;
//! - a probe thread (one per store, holding only a `Weak`) that PINGs on a
//!   fresh connection every [`PROBE_INTERVAL`] while the breaker is open,
//!   closes it when Redis answers, logs once, and runs the
//!   [`SessionStore::on_recovered`] hooks.
//!
//! Connections that were pooled before an outage are never reused after it
//! (a generation counter, bumped when the breaker opens): a socket to a
//! Redis that restarted would fail its first command and reopen the breaker.
//! A connection on which a command failed other than by a clean server error
//! reply (a timeout leaves a reply in flight) is dropped, not pooled again.

use super::{
    lock_key, meta_key, now_ms, parse_session_key, session_key, Health, ListedSession, LockToken, RecoveredHook,
    SessionMeta, SessionRecord, SessionStore, StoreError, SESSION_PREFIX,
};
use crate::config::{redact_url, RedisConfig};
use parking_lot::Mutex;
use redis::{ErrorKind, RedisError, RedisResult, ServerErrorKind, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Pause between two probes while the breaker is open.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// `SCAN … COUNT` of [`SessionStore::list`].
const SCAN_COUNT: usize = 100;
/// Most session keys [`SessionStore::list`] reads (the admin API's bound).
const LIST_CAP: usize = 10_000;
/// Keys per GET+TTL pipeline in [`SessionStore::list`].
const LIST_BATCH: usize = 500;

/// Deletes the session and meta keys only if the session key still holds
/// ARGV[1]; 1 when it deleted.
const DELETE_IF_LUA: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[2])
  return 1
end
return 0
";

/// Compare-and-delete: deletes KEYS[1] only if it holds ARGV[1] (a lock
/// token here; the cluster bus's stream-holder records use it too).
pub(crate) const UNLOCK_LUA: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Session records in Redis, behind a pool with timeouts and a circuit
/// breaker (module docs). Cheap to share behind an `Arc<dyn SessionStore>`.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: r2d2::Pool<Manager>,
    /// A second handle on the manager, for the probe's own connections.
    manager: Manager,
    redactor: Redactor,
    checkout_timeout: Duration,
    breaker: Mutex<Option<Outage>>,
    /// Bumped each time the breaker opens; see [`PooledConn::generation`].
    generation: Arc<AtomicU64>,
    hooks: Mutex<Vec<Arc<dyn Fn() + Send + Sync>>>,
    delete_if: redis::Script,
    unlock: redis::Script,
}

/// Why and since when the breaker is open.
#[derive(Debug, Clone)]
struct Outage {
    since_ms: u64,
    error: String,
}

impl RedisStore {
    /// A store for `cfg.url`. Connects lazily: Redis need not be up (the
    /// first operation then answers [`StoreError::Unavailable`] and opens the
    /// breaker). Starts the probe thread (`mcphub-redis-probe`), owned by a
    /// [`crate::threads::Threads`] of its own; it ends after the store is dropped.
    ///
    /// Errors: [`StoreError::Other`] for a URL the redis crate cannot parse
    /// (message with the URL redacted), or if the probe thread cannot start.
    pub fn new(cfg: &RedisConfig) -> Result<RedisStore, StoreError> {
        RedisStore::with_threads(cfg, &crate::threads::Threads::new())
    }

    /// [`RedisStore::new`] with the probe thread owned by `threads` (the
    /// hub's): it also ends at that owner's shutdown.
    ///
    /// Errors: as [`RedisStore::new`].
    pub fn with_threads(cfg: &RedisConfig, threads: &crate::threads::Threads) -> Result<RedisStore, StoreError> {
        let redactor = Redactor::new(cfg);
        let target = Target::new(cfg, &redactor)?;
        let generation = Arc::new(AtomicU64::new(0));
        let manager = Manager {
            target: Arc::new(target),
            connect_timeout: cfg.connect_timeout,
            io_timeout: cfg.io_timeout,
            generation: generation.clone(),
        };
        let pool = r2d2::Pool::builder()
            .max_size(cfg.pool_size.max(1))
            .min_idle(Some(0))
            .connection_timeout(cfg.checkout_timeout)
            .test_on_check_out(false)
            .error_handler(Box::new(DebugErrors(redactor.clone())))
            .build_unchecked(manager.clone());
        let inner = Arc::new(Inner {
            pool,
            manager,
            redactor,
            checkout_timeout: cfg.checkout_timeout,
            breaker: Mutex::new(None),
            generation,
            hooks: Mutex::new(Vec::new()),
            delete_if: redis::Script::new(DELETE_IF_LUA),
            unlock: redis::Script::new(UNLOCK_LUA),
        });
        let weak = Arc::downgrade(&inner);
        threads
            .spawn_owned("redis-probe", crate::threads::Kind::Poller, move |stop| probe_loop(weak, stop))
            .map_err(|e| StoreError::Other(format!("cannot start the Redis probe thread: {e}")))?;
        Ok(RedisStore { inner })
    }
}

impl RedisStore {
    /// Runs `op` on a pooled connection through this store's breaker, for
    /// records other than sessions (the user registry, `src/users/persist.rs`).
    ///
    /// Errors: [`StoreError::Unavailable`] while the breaker is open or on a
    /// connectivity failure (which opens it); [`StoreError::Other`] for an
    /// error reply. Messages have the URL's secrets scrubbed.
    pub fn run<T>(&self, op: impl FnOnce(&mut redis::Connection) -> RedisResult<T>) -> Result<T, StoreError> {
        self.inner.run(op)
    }

    /// Runs `script` with `keys` and `args` (EVALSHA; EVAL once when Redis
    /// does not know the script yet) on a pooled connection, through the
    /// breaker, within the pool's connect/IO timeouts. Used by the rate
    /// limiter (`crate::limits`), whose keys are not session keys.
    ///
    /// Errors: [`StoreError::Unavailable`] when Redis cannot be reached (or
    /// the breaker is open), [`StoreError::Other`] for a script error or a
    /// reply that is not `T`.
    pub fn eval_script<T: redis::FromRedisValue>(
        &self,
        script: &redis::Script,
        keys: &[&str],
        args: &[i64],
    ) -> Result<T, StoreError> {
        self.inner.run(|c| {
            let mut inv = script.prepare_invoke();
            for k in keys {
                inv.key(*k);
            }
            for a in args {
                inv.arg(*a);
            }
            inv.invoke(c)
        })
    }
}

impl RedisStore {
    /// A fresh connection, not pooled, to the current primary (through the
    /// sentinels when configured), with the configured connect and IO
    /// timeouts; for a long-lived reader such as the cluster subscriber
    /// (docs/cluster.md §2/§3), which may change its read timeout. Not through the
    /// breaker: the caller retries with its own back-off.
    ///
    /// Errors: [`StoreError::Unavailable`] when no primary can be reached
    /// (message scrubbed of credentials).
    pub fn open_dedicated(&self) -> Result<redis::Connection, StoreError> {
        self.inner.manager.open().map_err(|e| StoreError::Unavailable(self.inner.redactor.scrub(&e.to_string())))
    }
}

impl Inner {
    /// Runs `op` on a pooled connection, through the breaker.
    fn run<T>(&self, op: impl FnOnce(&mut redis::Connection) -> RedisResult<T>) -> Result<T, StoreError> {
        if let Some(outage) = self.breaker.lock().as_ref() {
            return Err(StoreError::Unavailable(outage.error.clone()));
        }
        let mut conn = self.checkout()?;
        match op(&mut conn.conn) {
            Ok(v) => Ok(v),
            Err(e) => {
                if !leaves_connection_in_sync(&e) {
                    conn.broken = true;
                }
                drop(conn);
                let msg = self.redactor.scrub(&e.to_string());
                if is_connectivity(&e) {
                    self.trip(&msg);
                    Err(StoreError::Unavailable(msg))
                } else {
                    Err(StoreError::Other(msg))
                }
            }
        }
    }

    /// A connection of the current generation (older ones are dropped).
    fn checkout(&self) -> Result<r2d2::PooledConnection<Manager>, StoreError> {
        loop {
            match self.pool.get() {
                Ok(mut conn) if conn.generation != self.generation.load(Ordering::Acquire) => {
                    // From before an outage: let the pool drop it, take another.
                    // Bounded: the pool holds at most max_size of them.
                    conn.broken = true;
                }
                Ok(conn) => return Ok(conn),
                Err(e) => {
                    let msg = self.redactor.scrub(&format!(
                        "no connection within {} ms ({e})",
                        self.checkout_timeout.as_millis()
                    ));
                    self.trip(&msg);
                    return Err(StoreError::Unavailable(msg));
                }
            }
        }
    }

    /// Opens the breaker (once per outage: later calls keep the first error).
    fn trip(&self, error: &str) {
        let mut breaker = self.breaker.lock();
        if breaker.is_some() {
            return;
        }
        *breaker = Some(Outage { since_ms: now_ms(), error: error.to_string() });
        self.generation.fetch_add(1, Ordering::AcqRel);
        drop(breaker);
        log::warn!("{}", unavailable_line(&self.redactor.shown, error));
    }

    /// Closes the breaker (if open), logs once, runs the hooks outside any lock.
    fn recover(&self) {
        if self.breaker.lock().take().is_none() {
            return;
        }
        log::info!("Redis back ({}): sessions, users and rate limits use it again", self.redactor.shown);
        let hooks: Vec<Arc<dyn Fn() + Send + Sync>> = self.hooks.lock().clone();
        for hook in hooks {
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook())).is_err() {
                log::error!("a Redis recovery hook panicked");
            }
        }
    }

    /// One probe: PING on a fresh connection (bounded by connect + IO timeouts).
    fn probe(&self) -> RedisResult<()> {
        let mut conn = r2d2::ManageConnection::connect(&self.manager)?;
        ping(&mut conn.conn)
    }
}

/// While the store lives: every [`PROBE_INTERVAL`], if the breaker is open,
/// probe and close it on success.
fn probe_loop(store: Weak<Inner>, stop: &crate::threads::Stop) {
    loop {
        if stop.sleep(PROBE_INTERVAL) {
            return;
        }
        let Some(inner) = store.upgrade() else { return };
        if inner.breaker.lock().is_none() {
            continue;
        }
        match inner.probe() {
            Ok(()) => inner.recover(),
            Err(e) => log::debug!("Redis probe ({}): {}", inner.redactor.shown, inner.redactor.scrub(&e.to_string())),
        }
    }
}

/// The warning logged when the breaker opens.
fn unavailable_line(shown_url: &str, error: &str) -> String {
    format!("Redis unavailable ({shown_url}): {error}; serving sessions, users and rate limits from memory")
}

/// Whether `e` means Redis cannot be reached or used now (opens the
/// breaker), as opposed to an answer about the data (WRONGTYPE, a script
/// error), which does not.
fn is_connectivity(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(
            e.kind(),
            ErrorKind::Server(ServerErrorKind::BusyLoading)
                | ErrorKind::Server(ServerErrorKind::MasterDown)
                | ErrorKind::Server(ServerErrorKind::ReadOnly)
                | ErrorKind::AuthenticationFailed
        )
}

/// Whether the connection can be pooled again after `e`: only when Redis
/// answered with an error reply (or a reply of an unexpected type) that was
/// read in full. After an IO error or a timeout a reply may still be in
/// flight, so the connection is dropped.
/// A READONLY reply means the connection's server is a replica now (a
/// failover demoted it): the connection is dropped too, so the next one is
/// opened through the sentinels (docs/cluster.md §3).
fn leaves_connection_in_sync(e: &RedisError) -> bool {
    matches!(e.kind(), ErrorKind::Server(_) | ErrorKind::UnexpectedReturnType)
        && !matches!(e.kind(), ErrorKind::Server(ServerErrorKind::ReadOnly))
}

fn ping(conn: &mut redis::Connection) -> RedisResult<()> {
    let pong: String = redis::cmd("PING").query(conn)?;
    if pong == "PONG" {
        Ok(())
    } else {
        Err((ErrorKind::UnexpectedReturnType, "PING answered", pong).into())
    }
}

/// Whole seconds for `EX`: rounded up, at least 1.
fn ttl_secs(ttl: Duration) -> u64 {
    ttl.as_millis().div_ceil(1000).clamp(1, u64::MAX as u128) as u64
}

/// Milliseconds for `PX`: at least 1.
fn ttl_ms(ttl: Duration) -> u64 {
    ttl.as_millis().clamp(1, u64::MAX as u128) as u64
}

/// The metadata under a meta key; defaults (newest legacy version, created
/// 0, `{}`) when it is missing or not [`SessionMeta`] JSON.
fn decode_meta(raw: Option<&[u8]>) -> SessionMeta {
    raw.and_then(|b| serde_json::from_slice::<SessionMeta>(b).ok()).unwrap_or_else(|| SessionMeta {
        protocol_version: crate::protocol::LATEST_LEGACY.to_string(),
        created_ms: 0,
        init_result: serde_json::json!({}),
    })
}

/// A session id as stored (bytes), or an error for one that is not UTF-8.
fn decode_id(raw: Vec<u8>, key: &str) -> Result<String, StoreError> {
    String::from_utf8(raw).map_err(|_| StoreError::Other(format!("the value under {key} is not a UTF-8 session id")))
}

/// `TTL` reply → [`ListedSession::ttl`]: `None` for no expiry (-1),
/// `Some(secs)` otherwise; the outer `None` for a key that is gone (-2).
fn listed_ttl(ttl: i64) -> Option<Option<i64>> {
    match ttl {
        -2 => None,
        t if t < 0 => Some(None),
        t => Some(Some(t)),
    }
}

impl SessionStore for RedisStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn health(&self) -> Health {
        match self.inner.breaker.lock().as_ref() {
            None => Health::Up,
            Some(o) => Health::Degraded { since_ms: o.since_ms, error: o.error.clone() },
        }
    }

    fn get(&self, server: &str, context_key: &str) -> Result<Option<SessionRecord>, StoreError> {
        let sk = session_key(server, context_key);
        let mk = meta_key(server, context_key);
        let (id, meta): (Option<Vec<u8>>, Option<Vec<u8>>) =
            self.inner.run(|c| redis::pipe().cmd("GET").arg(&sk).cmd("GET").arg(&mk).query(c))?;
        let Some(id) = id else { return Ok(None) };
        Ok(Some(SessionRecord { session_id: decode_id(id, &sk)?, meta: decode_meta(meta.as_deref()) }))
    }

    fn put(&self, server: &str, context_key: &str, record: &SessionRecord, ttl: Duration) -> Result<(), StoreError> {
        let secs = ttl_secs(ttl);
        let meta = serde_json::to_string(&record.meta).map_err(|e| StoreError::Other(format!("session metadata: {e}")))?;
        self.inner.run(|c| {
            redis::pipe()
                .atomic()
                .cmd("SET")
                .arg(session_key(server, context_key))
                .arg(&record.session_id)
                .arg("EX")
                .arg(secs)
                .ignore()
                .cmd("SET")
                .arg(meta_key(server, context_key))
                .arg(&meta)
                .arg("EX")
                .arg(secs)
                .ignore()
                .query::<()>(c)
        })
    }

    fn touch(&self, server: &str, context_key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let secs = ttl_secs(ttl);
        let (session, _meta): (bool, bool) = self.inner.run(|c| {
            redis::pipe()
                .cmd("EXPIRE")
                .arg(session_key(server, context_key))
                .arg(secs)
                .cmd("EXPIRE")
                .arg(meta_key(server, context_key))
                .arg(secs)
                .query(c)
        })?;
        Ok(session)
    }

    fn delete_if(&self, server: &str, context_key: &str, session_id: &str) -> Result<bool, StoreError> {
        let deleted: i64 = self.inner.run(|c| {
            self.inner
                .delete_if
                .key(session_key(server, context_key))
                .key(meta_key(server, context_key))
                .arg(session_id)
                .invoke(c)
        })?;
        Ok(deleted == 1)
    }

    fn delete(&self, server: &str, context_key: &str) -> Result<Option<SessionRecord>, StoreError> {
        let sk = session_key(server, context_key);
        let mk = meta_key(server, context_key);
        // One transaction: what is read is exactly what is deleted.
        let (id, meta): (Option<Vec<u8>>, Option<Vec<u8>>) = self.inner.run(|c| {
            redis::pipe()
                .atomic()
                .cmd("GET")
                .arg(&sk)
                .cmd("GET")
                .arg(&mk)
                .cmd("DEL")
                .arg(&sk)
                .arg(&mk)
                .ignore()
                .query(c)
        })?;
        let Some(id) = id else { return Ok(None) };
        Ok(Some(SessionRecord { session_id: decode_id(id, &sk)?, meta: decode_meta(meta.as_deref()) }))
    }

    fn list(&self) -> Result<Vec<ListedSession>, StoreError> {
        let pattern = format!("{SESSION_PREFIX}*");
        let keys: Vec<String> = self.inner.run(|c| {
            let mut keys = Vec::new();
            let mut cursor: u64 = 0;
            loop {
                let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(SCAN_COUNT)
                    .query(c)?;
                // Keys that are not UTF-8 or not session keys are not ours.
                keys.extend(
                    batch
                        .into_iter()
                        .filter_map(|k| String::from_utf8(k).ok())
                        .filter(|k| parse_session_key(k).is_some()),
                );
                if next == 0 || keys.len() >= LIST_CAP {
                    break;
                }
                cursor = next;
            }
            keys.truncate(LIST_CAP);
            keys.sort();
            keys.dedup(); // SCAN may return a key twice
            Ok(keys)
        })?;
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(LIST_BATCH) {
            // Per-command results: a key of another type is skipped, not fatal.
            let replies: Vec<RedisResult<Value>> = self.inner.run(|c| {
                let mut pipe = redis::pipe();
                for k in chunk {
                    pipe.cmd("GET").arg(k).cmd("TTL").arg(k);
                }
                pipe.ignore_errors().query(c)
            })?;
            for (key, pair) in chunk.iter().zip(replies.chunks(2)) {
                let (Some((server, context)), [Ok(id), Ok(ttl)]) = (parse_session_key(key), pair) else { continue };
                let Ok(Some(id)) = redis::from_redis_value::<Option<String>>(id.clone()) else { continue };
                let Some(ttl) = redis::from_redis_value::<i64>(ttl.clone()).ok().and_then(listed_ttl) else { continue };
                out.push(ListedSession {
                    server_name: server.to_string(),
                    context_key: context.to_string(),
                    session_id: id,
                    ttl,
                });
            }
        }
        out.sort_by(|a, b| (&a.server_name, &a.context_key).cmp(&(&b.server_name, &b.context_key)));
        Ok(out)
    }

    fn try_lock(&self, server: &str, context_key: &str, ttl: Duration) -> Result<Option<LockToken>, StoreError> {
        let token = LockToken::random();
        let ms = ttl_ms(ttl);
        let reply: Option<String> = self.inner.run(|c| {
            redis::cmd("SET").arg(lock_key(server, context_key)).arg(&token.0).arg("NX").arg("PX").arg(ms).query(c)
        })?;
        Ok(reply.is_some_and(|r| r == "OK").then_some(token))
    }

    fn unlock(&self, server: &str, context_key: &str, token: &LockToken) -> Result<(), StoreError> {
        let _deleted: i64 =
            self.inner.run(|c| self.inner.unlock.key(lock_key(server, context_key)).arg(&token.0).invoke(c))?;
        Ok(())
    }

    fn on_recovered(&self, hook: RecoveredHook) {
        self.inner.hooks.lock().push(Arc::from(hook));
    }
}

/// Where connections go: one URL, or the primary the sentinels name.
enum Target {
    Direct(redis::Client),
    Sentinel {
        master_name: String,
        /// One client per sentinel node, asked in order.
        sentinels: Vec<redis::Client>,
        /// AUTH password and db of the primary.
        password: Option<String>,
        db: i64,
    },
}

impl Target {
    fn new(cfg: &RedisConfig, redactor: &Redactor) -> Result<Target, StoreError> {
        let open = |url: &str| {
            redis::Client::open(url).map_err(|e| {
                StoreError::Other(redactor.scrub(&format!("'{}' is not a valid Redis URL: {e}", redact_url(url))))
            })
        };
        match &cfg.sentinel {
            None => Ok(Target::Direct(open(&cfg.url)?)),
            Some(s) => Ok(Target::Sentinel {
                master_name: s.master_name.clone(),
                sentinels: s.nodes.iter().map(|n| open(n)).collect::<Result<_, _>>()?,
                password: s.password.clone(),
                db: s.db,
            }),
        }
    }
}

/// Opens connections with the configured timeouts (module docs).
#[derive(Clone)]
struct Manager {
    target: Arc<Target>,
    connect_timeout: Duration,
    io_timeout: Duration,
    generation: Arc<AtomicU64>,
}

/// A pooled connection.
struct PooledConn {
    conn: redis::Connection,
    /// The breaker generation it was opened in; one from an earlier
    /// generation predates an outage and is not used.
    generation: u64,
    /// A command on it failed in a way that may leave a reply in flight.
    broken: bool,
}

impl r2d2::ManageConnection for Manager {
    type Connection = PooledConn;
    type Error = RedisError;

    fn connect(&self) -> Result<PooledConn, RedisError> {
        let generation = self.generation.load(Ordering::Acquire);
        let conn = self.open()?;
        Ok(PooledConn { conn, generation, broken: false })
    }

    fn is_valid(&self, conn: &mut PooledConn) -> Result<(), RedisError> {
        ping(&mut conn.conn)
    }

    fn has_broken(&self, conn: &mut PooledConn) -> bool {
        use redis::ConnectionLike;
        conn.broken || !conn.conn.is_open() || conn.generation != self.generation.load(Ordering::Acquire)
    }
}

impl Manager {
    /// A connection with the configured timeouts: to the URL, or (Sentinel)
    /// to the primary the first answering sentinel names, checked with
    /// `ROLE` to be a master (docs/cluster.md §3). Every step is bounded by the
    /// connect and IO timeouts (the redis crate's own sentinel client has
    /// none, which is why it is not used).
    fn open(&self) -> RedisResult<redis::Connection> {
        match &*self.target {
            Target::Direct(client) => self.timed(client),
            Target::Sentinel { master_name, sentinels, password, db } => {
                let mut last: Option<RedisError> = None;
                for sentinel in sentinels {
                    let addr: RedisResult<Option<(String, u16)>> = self
                        .timed(sentinel)
                        .and_then(|mut c| redis::cmd("SENTINEL").arg("GET-MASTER-ADDR-BY-NAME").arg(master_name).query(&mut c));
                    let (host, port) = match addr {
                        Ok(Some(a)) => a,
                        Ok(None) => {
                            last = Some((ErrorKind::Io, "a sentinel does not know the master name").into());
                            continue;
                        }
                        Err(e) => {
                            last = Some(e);
                            continue;
                        }
                    };
                    let auth = password.as_deref().map_or(String::new(), |p| {
                        format!(":{}@", percent_encoding::utf8_percent_encode(p, percent_encoding::NON_ALPHANUMERIC))
                    });
                    let host = if host.contains(':') { format!("[{host}]") } else { host };
                    let primary = redis::Client::open(format!("redis://{auth}{host}:{port}/{db}"))?;
                    match self.timed(&primary).and_then(|mut c| is_master(&mut c).map(|()| c)) {
                        Ok(c) => return Ok(c),
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.unwrap_or_else(|| (ErrorKind::Io, "no sentinel configured").into()))
            }
        }
    }

    /// A connection to `client` with the connect and IO timeouts.
    fn timed(&self, client: &redis::Client) -> RedisResult<redis::Connection> {
        let conn = client.get_connection_with_timeout(self.connect_timeout)?;
        conn.set_read_timeout(Some(self.io_timeout))?;
        conn.set_write_timeout(Some(self.io_timeout))?;
        Ok(conn)
    }
}

/// `ROLE` answers `master` first (else the sentinels' answer is stale: a
/// failover is under way).
fn is_master(conn: &mut redis::Connection) -> RedisResult<()> {
    let role: Vec<Value> = redis::cmd("ROLE").query(conn)?;
    match role.first().map(|v| redis::from_redis_value::<String>(v.clone())) {
        Some(Ok(r)) if r == "master" => Ok(()),
        _ => Err((ErrorKind::Io, "the server the sentinels named is not a master (yet)").into()),
    }
}

/// r2d2's connect errors (retried in its background threads while Redis is
/// down) go to the debug log: the breaker's one warning says it already.
#[derive(Debug)]
struct DebugErrors(Redactor);

impl r2d2::HandleError<RedisError> for DebugErrors {
    fn handle_error(&self, error: RedisError) {
        log::debug!("Redis connect ({}): {}", self.0.shown, self.0.scrub(&error.to_string()));
    }
}

/// Keeps credentials of the Redis URL(s) out of messages.
#[derive(Debug, Clone)]
struct Redactor {
    /// Each URL with its [`redact_url`] form.
    urls: Vec<(String, String)>,
    /// What is shown for the store: the redacted URL, or the sentinel summary.
    shown: String,
    /// The passwords (raw and percent-decoded) and query values, longest first.
    secrets: Vec<String>,
}

impl Redactor {
    fn new(cfg: &RedisConfig) -> Redactor {
        let mut urls: Vec<String> = cfg.sentinel.as_ref().map_or_else(|| vec![cfg.url.clone()], |s| s.nodes.clone());
        urls.retain(|u| !u.is_empty());
        let mut secrets: Vec<String> = urls.iter().flat_map(|u| url_secrets(u)).collect();
        if let Some(p) = cfg.sentinel.as_ref().and_then(|s| s.password.clone()).filter(|p| !p.is_empty()) {
            secrets.push(percent_encoding::utf8_percent_encode(&p, percent_encoding::NON_ALPHANUMERIC).to_string());
            secrets.push(p);
        }
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { urls: urls.iter().map(|u| (u.clone(), redact_url(u))).collect(), shown: cfg.shown(), secrets }
    }

    /// `msg` with the URLs replaced by their redacted forms and every secret by `***`.
    fn scrub(&self, msg: &str) -> String {
        let mut out = msg.to_string();
        for (url, shown) in &self.urls {
            out = out.replace(url.as_str(), shown);
        }
        for s in &self.secrets {
            out = out.replace(s.as_str(), "***");
        }
        out
    }
}

/// The secret parts of a Redis URL: the password of `user:password@` (the
/// whole user info when it has no `:`), and the values of the query, each
/// also percent-decoded. Longest first, so a secret containing another is
/// replaced whole.
fn url_secrets(url: &str) -> Vec<String> {
    let mut raw = Vec::new();
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    if let Some((_, rest)) = base.split_once("://") {
        let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            raw.push(userinfo.split_once(':').map_or(userinfo, |(_, p)| p).to_string());
        }
    }
    for pair in query.split('&') {
        raw.push(pair.split_once('=').map_or("", |(_, v)| v).to_string());
    }
    let mut out: Vec<String> = raw.iter().flat_map(|s| [s.clone(), percent_decode(s)]).filter(|s| !s.is_empty()).collect();
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out.dedup();
    out
}

/// `%XX` decoded (RFC 3986 §2.1; `+` stays `+`). A `%` not followed by two
/// hex digits is kept as it is; a result that is not UTF-8 gives `s` back
/// unchanged.
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8().map_or_else(|_| s.to_string(), |d| d.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_round_up_to_whole_seconds_at_least_one() {
        assert_eq!(ttl_secs(Duration::from_secs(3600)), 3600);
        assert_eq!(ttl_secs(Duration::from_millis(1500)), 2);
        assert_eq!(ttl_secs(Duration::ZERO), 1);
        assert_eq!(ttl_ms(Duration::ZERO), 1);
        assert_eq!(ttl_ms(Duration::from_secs(5)), 5000);
    }

    #[test]
    fn missing_or_unreadable_meta_gives_defaults() {
        let d = decode_meta(None);
        assert_eq!(d.protocol_version, crate::protocol::LATEST_LEGACY);
        assert_eq!((d.created_ms, d.init_result.clone()), (0, serde_json::json!({})));
        assert_eq!(decode_meta(Some(b"not json")), d);
        assert_eq!(decode_meta(Some(br#"{"protocolVersion":"2025-06-18"}"#)), d, "createdMs missing");
        let m = decode_meta(Some(br#"{"protocolVersion":"2025-06-18","createdMs":7}"#));
        assert_eq!((m.protocol_version.as_str(), m.created_ms, m.init_result), ("2025-06-18", 7, serde_json::Value::Null));
    }

    #[test]
    fn listed_ttls_follow_redis_ttl_replies() {
        assert_eq!(listed_ttl(-2), None, "vanished key is skipped");
        assert_eq!(listed_ttl(-1), Some(None), "no expiry");
        assert_eq!(listed_ttl(42), Some(Some(42)));
    }

    #[test]
    fn secrets_of_a_url_are_found_and_scrubbed() {
        assert_eq!(url_secrets("redis://127.0.0.1:6379/0"), Vec::<String>::new());
        assert_eq!(url_secrets("redis://user:p%40ss@host:6379"), vec!["p%40ss".to_string(), "p@ss".to_string()]);
        assert_eq!(url_secrets("redis://:onlypw@host"), vec!["onlypw".to_string()]);
        assert_eq!(url_secrets("rediss://tok@host/?password=qv"), vec!["tok".to_string(), "qv".to_string()]);
        let r = Redactor::new(&RedisConfig::new("redis://u:hunter2@10.0.0.1:6379/1"));
        let msg = r.scrub("cannot reach redis://u:hunter2@10.0.0.1:6379/1 (auth hunter2)");
        assert_eq!(msg, "cannot reach redis://***@10.0.0.1:6379/1 (auth ***)");
        let line = unavailable_line(&r.shown, &r.scrub("refused"));
        assert!(!line.contains("hunter2") && line.contains("redis://***@10.0.0.1:6379/1"), "{line}");
    }

    #[test]
    fn percent_decoding_keeps_invalid_escapes() {
        assert_eq!(percent_decode("a%20b"), "a b");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz%"), "%zz%");
        assert_eq!(percent_decode("%ff"), "%ff", "not UTF-8: kept");
        assert_eq!(percent_decode("a%ffb%41"), "a%ffb%41", "not UTF-8: the whole value kept");
        assert_eq!(percent_decode("%4%41+"), "%4A+", "a bad escape consumes only its `%`; `+` stays");
        assert_eq!(percent_decode("p%40ss%3Aw%2fd"), "p@ss:w/d");
    }

    #[test]
    fn only_connectivity_errors_open_the_breaker() {
        let io: RedisError = std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into();
        assert!(is_connectivity(&io) && !leaves_connection_in_sync(&io));
        let timeout: RedisError = std::io::Error::from(std::io::ErrorKind::WouldBlock).into();
        assert!(is_connectivity(&timeout) && !leaves_connection_in_sync(&timeout));
        let readonly = RedisError::from((ErrorKind::Server(ServerErrorKind::ReadOnly), "READONLY You can't write against a read only replica."));
        assert!(is_connectivity(&readonly) && !leaves_connection_in_sync(&readonly), "a demoted primary: dropped, breaker opened");
        let typ: RedisError = (ErrorKind::UnexpectedReturnType, "x").into();
        assert!(!is_connectivity(&typ) && leaves_connection_in_sync(&typ));
    }

    #[test]
    fn an_unparseable_url_is_refused_without_its_password() {
        let err = RedisStore::new(&RedisConfig::new("redis://u:hunter2@[::1")).err().expect("refused");
        let msg = err.to_string();
        assert!(matches!(err, StoreError::Other(_)) && !msg.contains("hunter2"), "{msg}");
    }
}
