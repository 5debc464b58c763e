//! Legacy upstream sessions: one per (server, context key), created once and
//! shared by every client of that context (docs/decisions.md D3), kept in a
//! [`SessionStore`] (Redis when configured) so a restarted hub or a second
//! instance reuses them.
//!
//! - **Local cache first**: a request takes the slot lock just to clone an
//!   `Arc`; the store is read only on a miss and written on creation (and a
//!   TTL refresh at most once a minute per session).
//! - **Single flight**: each context key has its own slot lock, held only
//!   while that context's session is found or created; across instances a
//!   short store lock (`SET NX PX`) makes one hub initialize while the others
//!   poll the store for its result.
//! - **Healing**: a session the server no longer knows is dropped locally and
//!   compare-and-deleted in the store (a session another instance just made
//!   survives); its id is remembered so a store still holding it is not
//!   trusted again.
//! - **Store down**: every store call fails fast ([`StoreError::Unavailable`]);
//!   sessions are then created and kept locally, and written through again by
//!   [`SessionPool::write_through`] when the store is back.
//!
//! Log markers (debug, `DEBUG_MCPHUB=true`) are the source notes' own
//! (docs/decisions.md D3): 📨 session applied, 🪪 session confirmed by `initialize`, 💾 session
//! saved, ♻️ session invalidated.

use super::transport::Transport;
use super::UpstreamError;
use crate::protocol::{headers, jsonrpc, LATEST_LEGACY};
use crate::singleflight::SlotMap;
use crate::store::{now_ms, SessionMeta, SessionRecord, SessionStore, StoreError};
use crate::users::Secret;
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A session's TTL in the store is refreshed on use at most this often.
pub const TOUCH_EVERY: Duration = Duration::from_secs(60);
/// How long a hub waits between store reads while another instance holds
/// the creation lock.
const LOCK_POLL: Duration = Duration::from_millis(20);

/// One live legacy session on an upstream server.
#[derive(Debug)]
pub struct LegacySession {
    /// The `Mcp-Session-Id` the server minted; `None` when it minted none
    /// (a stateless legacy server).
    pub id: Option<String>,
    /// The protocol version the server answered `initialize` with.
    pub protocol_version: String,
    /// The server's `initialize` result (capabilities, serverInfo, instructions).
    pub init_result: Value,
    /// When it was created (this process's clock; an adopted session: when adopted).
    pub created: Instant,
    /// When it was created, ms since the Unix epoch (kept in the store).
    pub created_ms: u64,
    /// The context key it belongs to.
    pub context_key: String,
    /// Whether it is kept in the store (`false`: `sessionSharing: "client"`
    /// sessions and sessions without an id).
    pub stored: bool,
    /// The user credential headers of its context (sent with every request
    /// on it; never stored, never printed).
    pub credentials: Vec<(String, Secret)>,
    last_touch_ms: AtomicU64,
    /// Whether the server has answered a request on it (a later 404 is an
    /// expiry, not a refusal: [`super::retry::MAX_EXPIRIES`]).
    answered: AtomicBool,
}

impl LegacySession {
    /// A session just confirmed by `initialize`.
    pub fn new(id: Option<String>, protocol_version: String, init_result: Value, context_key: &str) -> LegacySession {
        let now = now_ms();
        LegacySession {
            id,
            protocol_version,
            init_result,
            created: Instant::now(),
            created_ms: now,
            context_key: context_key.to_string(),
            stored: false,
            credentials: Vec::new(),
            last_touch_ms: AtomicU64::new(now),
            answered: AtomicBool::new(false),
        }
    }

    fn adopted(record: SessionRecord, context_key: &str, credentials: &[(String, Secret)]) -> LegacySession {
        let meta = record.meta;
        LegacySession {
            created_ms: meta.created_ms,
            stored: true,
            credentials: credentials.to_vec(),
            ..LegacySession::new(Some(record.session_id), meta.protocol_version, meta.init_result, context_key)
        }
    }

    /// Headers for a request on this session: `Mcp-Session-Id` (when
    /// minted), `MCP-Protocol-Version` and the context's credential headers.
    pub fn headers(&self) -> Vec<(String, String)> {
        let mut h = vec![(headers::PROTOCOL_VERSION.to_string(), self.protocol_version.clone())];
        if let Some(id) = &self.id {
            h.push(("Mcp-Session-Id".to_string(), id.clone()));
        }
        h.extend(self.credentials.iter().map(|(k, v)| (k.clone(), v.expose().to_string())));
        h
    }

    /// Notes that the server answered a request on this session.
    pub fn mark_answered(&self) {
        self.answered.store(true, Ordering::Relaxed);
    }

    /// Whether the server has answered a request on this session.
    pub fn has_answered(&self) -> bool {
        self.answered.load(Ordering::Relaxed)
    }

    fn record(&self) -> Option<SessionRecord> {
        Some(SessionRecord {
            session_id: self.id.clone()?,
            meta: SessionMeta {
                protocol_version: self.protocol_version.clone(),
                created_ms: self.created_ms,
                init_result: self.init_result.clone(),
            },
        })
    }

    fn id_str(&self) -> &str {
        self.id.as_deref().unwrap_or("none")
    }
}

/// Whether a new session is kept in the shared store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Shared per (server, context key) and kept in the store.
    Stored,
    /// This process only (`sessionSharing: "client"`).
    Local,
}

/// Sessions of one server by context key: a local cache in front of the store.
pub struct SessionPool {
    server: String,
    store: Arc<dyn SessionStore>,
    ttl: Duration,
    slots: SlotMap<String, Arc<LegacySession>>,
    /// The last id invalidated per context key: a store still holding it
    /// (a failed delete, a lagging instance) is not trusted again.
    dead: Mutex<HashMap<String, String>>,
    /// Sessions this pool initialized (🪪), and sessions found dead (♻️), for `/metrics`.
    created: std::sync::atomic::AtomicU64,
    reestablished: std::sync::atomic::AtomicU64,
}

impl SessionPool {
    /// The pool of `server`, keeping shared sessions in `store` for `ttl`.
    pub fn new(server: &str, store: Arc<dyn SessionStore>, ttl: Duration) -> SessionPool {
        SessionPool {
            server: server.to_string(),
            store,
            ttl,
            slots: SlotMap::default(),
            dead: Mutex::new(HashMap::new()),
            created: Default::default(),
            reestablished: Default::default(),
        }
    }

    /// The session of `key`: cached, else found in the store, else the one
    /// `create` makes (then saved). Concurrent callers for one key wait for
    /// a single lookup/creation; across instances the store lock makes one
    /// instance create while the others wait (until `deadline`) for its record.
    /// `credentials` are the context's credential headers (the same for
    /// every caller of one key: the key is their digest).
    pub fn get_or_create(
        &self,
        key: &str,
        scope: Scope,
        deadline: Instant,
        credentials: &[(String, Secret)],
        create: impl FnOnce() -> Result<LegacySession, UpstreamError>,
    ) -> Result<Arc<LegacySession>, UpstreamError> {
        let create = || {
            let made = create();
            if made.is_ok() {
                self.created.fetch_add(1, Ordering::Relaxed);
            }
            made
        };
        self.slots.get_or_try_fill(&key.to_string(), |_| true, || {
            let session = match scope {
                Scope::Local => LegacySession { context_key: key.to_string(), ..create()? },
                Scope::Stored => self.find_or_create(key, deadline, credentials, create)?,
            };
            Ok(Arc::new(session))
        })
    }

    /// A live store record of `key` that is not known dead.
    fn stored(&self, key: &str) -> Result<Option<SessionRecord>, StoreError> {
        let record = self.store.get(&self.server, key)?;
        let dead = self.dead.lock().get(key).cloned();
        match record {
            Some(r) if Some(&r.session_id) == dead.as_ref() => {
                let _ = self.store.delete_if(&self.server, key, &r.session_id);
                Ok(None)
            }
            other => Ok(other),
        }
    }

    fn find_or_create(
        &self,
        key: &str,
        deadline: Instant,
        credentials: &[(String, Secret)],
        create: impl FnOnce() -> Result<LegacySession, UpstreamError>,
    ) -> Result<LegacySession, UpstreamError> {
        let adopt = |r: SessionRecord| {
            log::debug!("upstream session found in the {} store ({}/{key}): {}", self.store.kind(), self.server, r.session_id);
            Ok(LegacySession::adopted(r, key, credentials))
        };
        // Another instance may be creating it: take the store lock or wait for its record.
        let lock_ttl = deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(1));
        let token = loop {
            match self.stored(key) {
                Ok(Some(r)) => return adopt(r),
                Ok(None) => {}
                Err(_) => break None, // store down: create locally
            }
            match self.store.try_lock(&self.server, key, lock_ttl) {
                Ok(Some(t)) => break Some(t),
                Ok(None) if Instant::now() + LOCK_POLL < deadline => std::thread::sleep(LOCK_POLL),
                Ok(None) => {
                    return Err(UpstreamError::Timeout {
                        server: self.server.clone(),
                        timeout_ms: lock_ttl.as_millis() as u64,
                    })
                }
                Err(_) => break None,
            }
        };
        // Holding the lock: the holder before us may have finished just now.
        if token.is_some() {
            if let Ok(Some(r)) = self.stored(key) {
                self.unlock(key, token);
                return adopt(r);
            }
        }
        let created = create();
        let result = created.map(|mut s| {
            s.context_key = key.to_string();
            self.save(&mut s);
            s
        });
        self.unlock(key, token);
        result
    }

    fn unlock(&self, key: &str, token: Option<crate::store::LockToken>) {
        if let Some(t) = token {
            let _ = self.store.unlock(&self.server, key, &t);
        }
    }

    /// Writes a new session to the store (💾); a store that is down is
    /// caught up later by [`SessionPool::write_through`].
    fn save(&self, session: &mut LegacySession) {
        let Some(record) = session.record() else { return };
        session.stored = true;
        match self.store.put(&self.server, &session.context_key, &record, self.ttl) {
            Ok(()) => log::debug!("💾 업스트림 세션 저장 ({}/{}): {}", self.server, session.context_key, record.session_id),
            Err(e) => log::debug!("upstream session of {}/{} kept in memory only: {e}", self.server, session.context_key),
        }
    }

    /// Marks `session` used by a request (📨) and refreshes its store TTL
    /// when the last refresh is [`TOUCH_EVERY`] old; a record the store lost
    /// (restarted empty, expired) is written again.
    pub fn applied(&self, session: &LegacySession) {
        log::debug!("📨 업스트림 요청에 세션 적용({}): {}", self.server, session.id_str());
        if !session.stored {
            return;
        }
        let now = now_ms();
        let last = session.last_touch_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) < TOUCH_EVERY.as_millis() as u64
            || session.last_touch_ms.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_err()
        {
            return;
        }
        if let Ok(false) = self.store.touch(&self.server, &session.context_key, self.ttl) {
            if let Some(record) = session.record() {
                if self.store.put(&self.server, &session.context_key, &record, self.ttl).is_ok() {
                    log::debug!("💾 업스트림 세션 저장 ({}/{}): {}", self.server, session.context_key, record.session_id);
                }
            }
        }
    }

    /// Drops `stale` from `key` after the server said it no longer knows it
    /// (♻️): locally unless another caller already replaced it, and in the
    /// store only if the store still holds that id (compare-and-delete).
    pub fn invalidate(&self, key: &str, stale: &Arc<LegacySession>, why: &str) {
        log::debug!("♻️ 세션 무효화 ({}/{key}): {} → 재연결/재시도 ({why})", self.server, stale.id_str());
        self.reestablished.fetch_add(1, Ordering::Relaxed);
        if let Some(id) = &stale.id {
            self.dead.lock().insert(key.to_string(), id.clone());
            if stale.stored {
                let _ = self.store.delete_if(&self.server, key, id);
            }
        }
        self.slots.clear_if(&key.to_string(), |cur| Arc::ptr_eq(cur, stale));
    }

    /// Sessions initialized by this pool, and sessions found dead and
    /// replaced (♻️), since the start: `(created, re-established)`.
    pub fn counts(&self) -> (u64, u64) {
        (self.created.load(Ordering::Relaxed), self.reestablished.load(Ordering::Relaxed))
    }

    /// Forgets `key` locally and in the store (admin delete); returns the
    /// session that was there (local first, else the store's record).
    pub fn remove(&self, key: &str) -> Option<Arc<LegacySession>> {
        let local = self.slots.take(&key.to_string());
        let stored = self.store.delete(&self.server, key).ok().flatten();
        if let Some(id) = local.as_ref().and_then(|s| s.id.clone()).or_else(|| stored.as_ref().map(|r| r.session_id.clone())) {
            self.dead.lock().insert(key.to_string(), id);
        }
        // A session known only to the store is ended upstream without the
        // context's credentials (this instance does not hold them).
        local.or_else(|| stored.map(|r| Arc::new(LegacySession::adopted(r, key, &[]))))
    }

    /// Writes every locally cached shared session to the store again where
    /// the store has none or an older one (after the store was unreachable).
    /// Returns how many were written.
    pub fn write_through(&self) -> usize {
        let mut written = 0;
        for (key, session) in self.slots.snapshot() {
            let Some(record) = session.record().filter(|_| session.stored) else { continue };
            let keep = match self.store.get(&self.server, &key) {
                Ok(Some(r)) => r.session_id == record.session_id || r.meta.created_ms > record.meta.created_ms,
                Ok(None) => false,
                Err(_) => return written,
            };
            if !keep && self.store.put(&self.server, &key, &record, self.ttl).is_ok() {
                log::debug!("💾 업스트림 세션 저장 ({}/{key}): {}", self.server, record.session_id);
                written += 1;
            }
        }
        written
    }

    /// `(context key, session id, stored)` of every locally cached session.
    pub fn list(&self) -> Vec<(String, Option<String>, bool)> {
        let mut out: Vec<_> = self.slots.snapshot().into_iter().map(|(k, s)| (k, s.id.clone(), s.stored)).collect();
        out.sort();
        out
    }

    /// Forgets `key` locally only (a client-scoped session whose client left).
    pub fn take_local(&self, key: &str) -> Option<Arc<LegacySession>> {
        self.slots.take(&key.to_string())
    }

    /// Deletes this pool's store records (compare-and-delete: only the ids
    /// this instance holds), so another pool of the same server name does
    /// not adopt them; the local sessions stay usable. Returns how many.
    pub fn forget_stored(&self) -> usize {
        let mut forgotten = 0;
        for (key, session) in self.slots.snapshot() {
            if let (Some(id), true) = (&session.id, session.stored) {
                if let Ok(true) = self.store.delete_if(&self.server, &key, id) {
                    forgotten += 1;
                }
            }
        }
        forgotten
    }

    /// Removes and returns every locally cached session.
    pub fn drain(&self) -> Vec<Arc<LegacySession>> {
        self.slots.drain()
    }
}

/// Runs the legacy handshake: `initialize` (newest legacy version, declaring
/// the sampling/elicitation/roots capabilities the hub relays), then
/// `notifications/initialized` on the minted session.
///
/// Errors: transport errors and timeouts; an `initialize` answered with a
/// JSON-RPC error or without a result → `Protocol`.
pub fn initialize(
    transport: &dyn Transport,
    server: &str,
    context_key: &str,
    credentials: &[(String, Secret)],
    id: Value,
    budget: Duration,
) -> Result<LegacySession, UpstreamError> {
    let params = json!({
        "protocolVersion": LATEST_LEGACY,
        // The hub relays these to the client whose call the request belongs to
        // (issue 3); a client without the capability gets them refused.
        "capabilities": {"sampling": {}, "elicitation": {}, "roots": {}},
        "clientInfo": super::hub_client_info(),
    });
    let started = Instant::now();
    let creds: Vec<(String, String)> = credentials.iter().map(|(k, v)| (k.clone(), v.expose().to_string())).collect();
    let reply = transport.post(&jsonrpc::request(&id, "initialize", params), &creds, budget, &mut |_| {})?;
    let protocol_error = |detail: String| UpstreamError::Protocol { server: server.to_string(), detail };
    if matches!(reply.status, 401 | 403) {
        // The credential was refused: a status the caller can act on (issue 14).
        return Err(UpstreamError::Status { server: server.to_string(), status: reply.status, detail: reply.excerpt });
    }
    let message = reply
        .message
        .ok_or_else(|| protocol_error(format!("initialize answered HTTP {}: {}", reply.status, reply.excerpt)))?;
    let result = match (message.get("result"), message.get("error")) {
        (Some(r), _) => r.clone(),
        (None, Some(e)) => return Err(protocol_error(format!("initialize failed: {e}"))),
        _ => return Err(protocol_error("initialize answered without a result".into())),
    };
    let version = result.get("protocolVersion").and_then(Value::as_str).unwrap_or(LATEST_LEGACY).to_string();
    let mut session = LegacySession::new(reply.session_id, version, result, context_key);
    session.credentials = credentials.to_vec();
    log::debug!("🪪 서버 세션 확인({server}): {}", session.id_str());
    let remaining = budget.saturating_sub(started.elapsed()).max(Duration::from_millis(100));
    let note = jsonrpc::notification("notifications/initialized", json!({}));
    if let Err(e) = transport.post(&note, &session.headers(), remaining, &mut |_| {}) {
        log::warn!("notifications/initialized to '{server}' failed: {e}");
    }
    Ok(session)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;
    use std::sync::atomic::AtomicUsize;

    fn session(id: &str) -> LegacySession {
        LegacySession::new(Some(id.into()), "2025-11-25".into(), json!({"capabilities": {"tools": {}}}), "shared")
    }

    fn pool(store: &Arc<MemoryStore>) -> SessionPool {
        SessionPool::new("srv", store.clone(), Duration::from_secs(3600))
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[test]
    fn concurrent_first_calls_create_one_session_and_save_it() {
        let store = Arc::new(MemoryStore::new());
        let pool = Arc::new(pool(&store));
        let creations = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..16)
            .map(|_| {
                let (pool, creations) = (pool.clone(), creations.clone());
                std::thread::spawn(move || {
                    pool.get_or_create("shared", Scope::Stored, soon(), &[], || {
                        creations.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        Ok(session("s1"))
                    })
                    .map(|s| s.id.clone())
                })
            })
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap().unwrap().as_deref(), Some("s1"));
        }
        assert_eq!(creations.load(Ordering::SeqCst), 1);
        let rec = store.get("srv", "shared").unwrap().unwrap();
        assert_eq!(rec.session_id, "s1");
        assert_eq!(rec.meta.init_result, json!({"capabilities": {"tools": {}}}));
    }

    #[test]
    fn a_stored_session_is_adopted_without_creating() {
        let store = Arc::new(MemoryStore::new());
        pool(&store).get_or_create("shared", Scope::Stored, soon(), &[], || Ok(session("s1"))).unwrap();
        // A second pool (a restarted hub, another instance) on the same store.
        let other = pool(&store);
        let s = other.get_or_create("shared", Scope::Stored, soon(), &[], || panic!("must not initialize")).unwrap();
        assert_eq!(s.id.as_deref(), Some("s1"));
        assert_eq!(s.init_result, json!({"capabilities": {"tools": {}}}));
        assert!(s.stored);
    }

    #[test]
    fn invalidate_drops_only_the_stale_session_here_and_in_the_store() {
        let store = Arc::new(MemoryStore::new());
        let pool = pool(&store);
        let old = pool.get_or_create("k", Scope::Stored, soon(), &[], || Ok(session("old"))).unwrap();
        pool.invalidate("k", &old, "HTTP 404");
        assert_eq!(store.get("srv", "k").unwrap(), None);
        let new = pool.get_or_create("k", Scope::Stored, soon(), &[], || Ok(session("new"))).unwrap();
        pool.invalidate("k", &old, "HTTP 404"); // a late invalidation of the old one
        let again = pool.get_or_create("k", Scope::Stored, soon(), &[], || Ok(session("third"))).unwrap();
        assert!(Arc::ptr_eq(&new, &again));
        assert_eq!(pool.list(), vec![("k".to_string(), Some("new".to_string()), true)]);
        assert_eq!(store.get("srv", "k").unwrap().unwrap().session_id, "new");
    }

    #[test]
    fn a_dead_id_still_in_the_store_is_not_adopted_again() {
        let store = Arc::new(MemoryStore::new());
        let a = pool(&store);
        let b = pool(&store);
        let s = a.get_or_create("k", Scope::Stored, soon(), &[], || Ok(session("s1"))).unwrap();
        // `a` learns s1 is dead but its store delete is lost; then `a`'s
        // store entry comes back (e.g. another instance's write-through).
        a.invalidate("k", &s, "HTTP 404");
        store.put("srv", "k", &s.record().unwrap(), Duration::from_secs(60)).unwrap();
        let fresh = a.get_or_create("k", Scope::Stored, soon(), &[], || Ok(session("s2"))).unwrap();
        assert_eq!(fresh.id.as_deref(), Some("s2"));
        assert_eq!(b.get_or_create("k", Scope::Stored, soon(), &[], || panic!("adopts s2")).unwrap().id.as_deref(), Some("s2"));
    }

    #[test]
    fn local_sessions_stay_out_of_the_store() {
        let store = Arc::new(MemoryStore::new());
        let pool = pool(&store);
        pool.get_or_create("client:ab", Scope::Local, soon(), &[], || Ok(session("c1"))).unwrap();
        assert_eq!(store.get("srv", "client:ab").unwrap(), None);
        assert_eq!(pool.take_local("client:ab").and_then(|s| s.id.clone()).as_deref(), Some("c1"));
        assert!(pool.list().is_empty());
    }

    #[test]
    fn write_through_restores_records_a_store_lost() {
        let store = Arc::new(MemoryStore::new());
        let pool = pool(&store);
        pool.get_or_create("shared", Scope::Stored, soon(), &[], || Ok(session("s1"))).unwrap();
        store.delete("srv", "shared").unwrap(); // the store restarted empty
        assert_eq!(pool.write_through(), 1);
        assert_eq!(store.get("srv", "shared").unwrap().unwrap().session_id, "s1");
        assert_eq!(pool.write_through(), 0, "nothing to do when the store has it");
    }

    #[test]
    fn the_creation_lock_makes_a_second_instance_wait_for_the_first() {
        let store = Arc::new(MemoryStore::new());
        let token = store.try_lock("srv", "shared", Duration::from_secs(5)).unwrap().unwrap();
        let b = Arc::new(pool(&store));
        let waiter = {
            let b = b.clone();
            std::thread::spawn(move || b.get_or_create("shared", Scope::Stored, soon(), &[], || panic!("the lock holder creates")))
        };
        std::thread::sleep(Duration::from_millis(50));
        store.put("srv", "shared", &session("s1").record().unwrap(), Duration::from_secs(60)).unwrap();
        store.unlock("srv", "shared", &token).unwrap();
        assert_eq!(waiter.join().unwrap().unwrap().id.as_deref(), Some("s1"));
    }
}
