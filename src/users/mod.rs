//! Users of the hub (docs/decisions.md D6): hub keys, service tokens and
//! the servers each user may use.
//!
//! - A hub key is `mcphub_` + 64 hex chars (256 random bits); only its
//!   SHA-256 digest is kept. Presented as `Authorization: Bearer …` or
//!   `?key=…` on `/mcp`.
//! - A service token (`GITHUB_TOKEN`) is a [`Secret`]: its `Debug`/`Display`
//!   print `***`, so it cannot reach a log line by accident.
//!
//! Users come from the config file (read-only) and from the run-time
//! registry (admin API, `/api/me`), kept in Redis or a state file
//! ([`persist`]), tokens sealed with AES-256-GCM ([`secrets`]).
//!
//! Choices:
//! - a config user's own parts (admin, servers, config keys and tokens) are
//!   read-only; it may get run-time keys and tokens; a run-time token with
//!   the name of a config token overrides it; a config key can be revoked at
//!   run time (its digest is recorded in the user's record, `revoked`);
//! - the request path ([`Users::authenticate`], [`Users::get`]) reads a local
//!   map of `Arc<User>`s, replaced whole on every change; with Redis, a
//!   thread polls `mcp:users:version` once a second and reloads when another
//!   instance changed something; an unknown key may ask Redis's key index at
//!   most once a second per digest;
//! - a key's last use ([`KeyView::last_used_ms`], issue 17) is noted in
//!   memory when it authenticates, at most once a minute per key
//!   ([`LAST_USED_EVERY_MS`]); with Redis the poll thread also writes the
//!   notes of the last second in one `HSET mcp:users:lastused <digest> <ms> …`
//!   (never on the request's path; at most [`LAST_USED_PENDING_CAP`] notes
//!   wait, more are dropped until the next minute).

pub mod activity;
pub mod oauth;
pub mod persist;
pub mod secrets;

use crate::config::{Config, UserConfig};
use parking_lot::{Mutex, RwLock};
use persist::{Backend, Claimed, KeyRecord, PersistError, UserRecord};
use secrets::SecretKey;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// A secret value (service token, hub key) that never prints itself.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that must send it (an upstream header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// One user as the request path sees it (immutable; replaced on change).
#[derive(Debug, Clone)]
pub struct User {
    /// The user's name.
    pub name: String,
    /// Whether the user may use `/api/admin/*`.
    pub admin: bool,
    /// The servers the user may use (`None` = all).
    pub servers: Option<Vec<String>>,
    /// Service tokens by name.
    pub tokens: BTreeMap<String, Secret>,
}

impl User {
    /// Whether the user may use `server` at all (before token checks).
    pub fn may_use(&self, server: &str) -> bool {
        self.servers.as_ref().is_none_or(|s| s.iter().any(|n| n == server))
    }

    /// The user's token `name`, if set.
    pub fn token(&self, name: &str) -> Option<&Secret> {
        self.tokens.get(name)
    }
}

/// `mcphub_` + 64 lowercase hex chars from 256 OS-random bits.
pub fn new_key() -> String {
    format!("mcphub_{}", crate::random::hex::<32>())
}

/// SHA-256 of a presented key, 64 lowercase hex (what is stored).
pub fn key_digest(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Equality of two secrets that takes the same time wherever they differ
/// (only a length difference shows): the admin token's digest, CSRF tokens,
/// PKCE challenges, OAuth client secrets' digests. Re-exported as
/// `crate::hub::auth::same_secret`.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether `key` has the hub key shape (`mcphub_` + 64 hex).
pub fn looks_like_key(key: &str) -> bool {
    key.strip_prefix("mcphub_").is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Hub-key masking lives with the log formatter, which needs it too (docs/module-order.md).
pub use crate::logging::mask_keys;

/// How often another instance's changes are looked for (Redis), and the
/// least time between two Redis look-ups of one unknown key digest.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(1);
/// Most unknown digests remembered for the once-a-second rule.
const MISSES_CAP: usize = 10_000;
/// A key's last use is noted at most this often (ms).
pub const LAST_USED_EVERY_MS: u64 = 60_000;
/// Most last-use notes waiting for the Redis writer (the poll thread).
pub const LAST_USED_PENDING_CAP: usize = 10_000;
// The token-value rule is read by the config too (docs/module-order.md).
pub use crate::config::{check_token_value, MAX_TOKEN_BYTES};

/// Why a registry change was refused. `Display` never contains a secret.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// A malformed name, value or field (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// No such user, key or token (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// The change conflicts with what exists (exists already, comes from the config file) (HTTP 409).
    #[error("{0}")]
    Conflict(String),
    /// Tokens cannot be stored: no secret key (HTTP 503).
    #[error("{}", secrets::NO_KEY_MESSAGE)]
    NoSecretKey,
    /// The store cannot be written (HTTP 503).
    #[error(transparent)]
    Store(#[from] PersistError),
}

impl UsersError {
    /// The HTTP status the API answers with.
    pub fn status(&self) -> u16 {
        match self {
            UsersError::Invalid(_) => 400,
            UsersError::NotFound(_) => 404,
            UsersError::Conflict(_) => 409,
            UsersError::NoSecretKey | UsersError::Store(_) => 503,
        }
    }
}

/// One key as the API lists it (never the key or its full digest).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct KeyView {
    /// First 8 hex chars of the key's SHA-256.
    pub id: String,
    /// The label given at issue (`null` for config keys and unlabelled keys).
    pub label: Option<String>,
    /// Issue time, ms since the Unix epoch (`null` for config keys).
    pub created_ms: Option<u64>,
    /// `config` or `runtime`.
    pub source: &'static str,
    /// When the key last authenticated, ms since the Unix epoch, to within
    /// [`LAST_USED_EVERY_MS`] (`null`: not since this hub started, nor, with
    /// Redis, on another instance).
    pub last_used_ms: Option<u64>,
}

/// One user as the API lists it: token names only, never values.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    /// The user's name.
    pub name: String,
    /// Admin role.
    pub admin: bool,
    /// Allowed servers (`null` = all).
    pub servers: Option<Vec<String>>,
    /// `config` or `runtime`.
    pub source: &'static str,
    /// Live keys.
    pub keys: Vec<KeyView>,
    /// Names of the service tokens the user has.
    pub tokens: Vec<String>,
    /// Sign-in identities mapped to the user (config ones first, then
    /// run-time ones; normalised, `github:<login>` / `oidc:<sub or e-mail>`).
    pub identities: Vec<String>,
}

#[derive(Default)]
struct State {
    /// Users by name.
    users: BTreeMap<String, Arc<User>>,
    /// Key digest → user name.
    keys: HashMap<String, String>,
    /// The stored records (run-time users and overlays of config users).
    records: BTreeMap<String, UserRecord>,
    /// The Redis `mcp:users:version` the records were read at.
    version: u64,
    /// Whether the records were read from the backend (a state file that
    /// could not be read is never overwritten).
    loaded: bool,
    /// Records this instance knew that Redis lost (it came back empty):
    /// served from memory until restart, read-only ([`Users::reload`]).
    lost: BTreeMap<String, UserRecord>,
    /// When the last loss was seen, ms since the Unix epoch (0: never).
    lost_at_ms: u64,
    /// Users and keys Redis lost, counted when each loss was seen.
    lost_counts: (usize, usize),
}

/// What Redis lost, for `/readyz` `store.usersLost` (issue 14 hole 7):
/// run-time users (and config users' run-time parts) this instance knew
/// when Redis came back empty, and their keys.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UsersLost {
    /// Users whose records were gone, counted when the loss was seen.
    pub users: usize,
    /// Their run-time keys.
    pub keys: usize,
    /// Of those users, how many this instance still serves from memory (not
    /// stored again since).
    pub served_from_memory: usize,
    /// When the loss was seen, RFC 3339.
    pub since: String,
}

/// `records` with the lost records whose names Redis does not have again.
fn with_lost<'a>(records: &'a BTreeMap<String, UserRecord>, lost: &BTreeMap<String, UserRecord>) -> std::borrow::Cow<'a, BTreeMap<String, UserRecord>> {
    if lost.is_empty() {
        return std::borrow::Cow::Borrowed(records);
    }
    let mut all = records.clone();
    for (n, r) in lost {
        all.entry(n.clone()).or_insert_with(|| r.clone());
    }
    std::borrow::Cow::Owned(all)
}

/// The message a change to a user Redis lost gets (409).
fn lost_message(name: &str) -> String {
    format!(
        "user '{name}' was lost from Redis (it came back empty) and is served from this instance's memory until it restarts, \
         read-only; create it again (POST /api/admin/users) to change it — that also ends its old keys on every instance"
    )
}

/// What the config file says (replaced in place on reload, [`Users::reconfigure`]).
struct Settings {
    allow_anonymous: bool,
    config: Vec<UserConfig>,
    /// Server names a run-time user may be given.
    known_servers: Vec<String>,
}

struct Shared {
    state: RwLock<State>,
    settings: RwLock<Settings>,
    backend: Backend,
    secret: RwLock<Option<SecretKey>>,
    /// Unknown digests → when Redis's index was last asked about them.
    misses: Mutex<HashMap<String, Instant>>,
    /// Serializes changes and reloads on this instance.
    write: Mutex<()>,
    /// The last Redis read (reload, poll, key index) failed; cleared by the
    /// next that succeeds. With it, an unknown key is "cannot tell" (503),
    /// not "unknown" (401): issue 14 hole 8.
    down: std::sync::atomic::AtomicBool,
    /// Key digest → its last use noted here, ms since the Unix epoch.
    last_used: RwLock<HashMap<String, AtomicU64>>,
    /// Notes not yet written to Redis (digest → ms); Redis only.
    last_used_pending: Mutex<HashMap<String, u64>>,
}

/// The server names of `config` (served and skipped), which run-time users may be given.
fn known_servers(config: &Config) -> Vec<String> {
    config.servers.iter().map(|s| s.name.clone()).chain(config.skipped.iter().map(|s| s.name.clone())).collect()
}

/// The registry: users by name and by key digest. Cheap to clone.
#[derive(Clone)]
pub struct Users {
    inner: Arc<Shared>,
}

impl Users {
    /// The config file's users; run-time changes are kept in memory only.
    pub fn from_config(users: &[UserConfig], allow_anonymous: bool) -> Users {
        Users::build(users.to_vec(), allow_anonymous, Vec::new(), Backend::None, None)
    }

    /// The registry of a hub: config users plus the stored ones — in Redis
    /// when `config.redis` is set (polled for other instances' changes), else
    /// in `{stateDir}/users.json` ([`state_dir`]). The secret key comes from
    /// the environment ([`SecretKey::from_env`]); an unreadable one is logged
    /// and treated as absent. A store that cannot be read is logged; Redis is
    /// retried every second.
    /// `redis` is the hub's one connection ([`crate::store::open_redis`]);
    /// the poll thread is owned by `threads` (it ends at its shutdown).
    pub fn open(config: &Config, redis: Option<crate::store::redis::RedisStore>, threads: &crate::threads::Threads) -> Users {
        let backend = match redis {
            Some(store) => Backend::Redis(store),
            None => Backend::File(state_dir(config)),
        };
        let secret = SecretKey::from_env().unwrap_or_else(|e| {
            log::error!("{e}; run-time tokens cannot be stored or read");
            None
        });
        let users = Users::build(config.users.clone(), config.allow_anonymous, known_servers(config), backend, secret);
        if let Err(e) = users.reload() {
            log::warn!("users: {e}");
        }
        if matches!(users.inner.backend, Backend::Redis(_)) {
            let weak = Arc::downgrade(&users.inner);
            if let Err(e) = threads.spawn_owned("users-reload", crate::threads::Kind::Poller, move |stop| poll_loop(weak, stop)) {
                log::error!("users: cannot start the reload thread ({e}); other instances' changes are not seen");
            }
        }
        users
    }

    fn build(config: Vec<UserConfig>, allow_anonymous: bool, known_servers: Vec<String>, backend: Backend, secret: Option<SecretKey>) -> Users {
        let mut state = State { loaded: matches!(backend, Backend::None), ..State::default() };
        (state.users, state.keys) = derive(&config, &state.records, secret.as_ref());
        Users {
            inner: Arc::new(Shared {
                state: RwLock::new(state),
                settings: RwLock::new(Settings { allow_anonymous, config, known_servers }),
                backend,
                secret: RwLock::new(secret),
                misses: Mutex::new(HashMap::new()),
                write: Mutex::new(()),
                down: std::sync::atomic::AtomicBool::new(false),
                last_used: RwLock::new(HashMap::new()),
                last_used_pending: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Applies a reloaded config file's `users`, `groups`, `allowAnonymous`
    /// and server names in place (SIGHUP, `Hub::reload`): the same backend,
    /// secret key, stored records and poll thread go on, and changes made
    /// through the admin API meanwhile are serialized with it (`write`).
    pub fn reconfigure(&self, config: &Config) {
        let _w = self.inner.write.lock();
        *self.inner.settings.write() =
            Settings { allow_anonymous: config.allow_anonymous, config: config.users.clone(), known_servers: known_servers(config) };
        self.rederive();
    }

    /// Installs (or removes) the secret key and re-reads the stored tokens
    /// with it. `mcphub serve` reads it from the environment; tests set it here.
    pub fn set_secret_key(&self, key: Option<SecretKey>) {
        *self.inner.secret.write() = key;
        let _w = self.inner.write.lock();
        self.rederive();
    }

    /// Whether a secret key is configured (run-time tokens can be stored).
    pub fn has_secret_key(&self) -> bool {
        self.inner.secret.read().is_some()
    }

    /// Where run-time users are kept: `redis`, `file` or `none`.
    pub fn store_kind(&self) -> &'static str {
        self.inner.backend.kind()
    }

    /// Whether any user exists (then a key is required unless anonymous access is allowed).
    pub fn is_empty(&self) -> bool {
        self.inner.state.read().users.is_empty()
    }

    /// Whether requests without a key are served: no users at all, or `allowAnonymous`.
    pub fn anonymous_allowed(&self) -> bool {
        self.inner.settings.read().allow_anonymous || self.is_empty()
    }

    /// Whether a request without a key is served: `Ok(true)` with
    /// `allowAnonymous` or when there are no users at all, `Ok(false)` when
    /// some user exists. `Err(Unavailable)` when the config file has no users
    /// and the Redis user store has not been read since the start: run-time
    /// users may exist, so "no users" cannot be told — the caller answers
    /// 503 + `Retry-After` rather than serve the request anonymously
    /// (issue 14 hole 8).
    pub fn anonymous_access(&self) -> Result<bool, PersistError> {
        if self.inner.settings.read().allow_anonymous {
            return Ok(true);
        }
        let state = self.inner.state.read();
        if !state.users.is_empty() {
            return Ok(false);
        }
        if !state.loaded && matches!(self.inner.backend, Backend::Redis(_)) {
            return Err(PersistError::Unavailable("run-time users may exist and cannot be read".into()));
        }
        Ok(true)
    }

    /// The user owning `key`, if it is a live key. A local map look-up; with
    /// Redis, a digest unknown here is looked up in `mcp:user-key:{digest}`
    /// at most once per [`RELOAD_INTERVAL`] (a key just issued on another
    /// instance), and a hit reloads the registry.
    pub fn authenticate(&self, key: &str) -> Option<Arc<User>> {
        self.authenticate_checked(key).ok().flatten()
    }

    /// [`Users::authenticate`], telling "unknown" from "cannot tell":
    /// `Ok(None)` for a key that is no user's, `Err(Unavailable)` for a
    /// hub-shaped key this instance does not know while Redis cannot be read
    /// (never read since the start, or its last read failed) — it may be a
    /// run-time user's, so the caller answers 503 + `Retry-After`, not 401
    /// (issue 14 hole 8). Keys from the config file are known without Redis.
    pub fn authenticate_checked(&self, key: &str) -> Result<Option<Arc<User>>, PersistError> {
        let digest = key_digest(key);
        if let Some(u) = self.lookup(&digest) {
            self.note_used(&digest, crate::store::now_ms());
            return Ok(Some(u));
        }
        if !matches!(self.inner.backend, Backend::Redis(_)) || !looks_like_key(key) {
            return Ok(None);
        }
        let unavailable = || PersistError::Unavailable("this key may be a run-time user's and cannot be checked".into());
        if !self.inner.state.read().loaded {
            return Err(unavailable());
        }
        if !self.may_ask_about(&digest) {
            return if self.is_down() { Err(unavailable()) } else { Ok(None) };
        }
        match self.inner.backend.owner_of(&digest) {
            Ok(Some(_)) => {
                self.set_down(false);
                if let Err(e) = self.reload() {
                    log::warn!("users: {e}");
                }
                let found = self.lookup(&digest);
                if found.is_some() {
                    self.note_used(&digest, crate::store::now_ms());
                }
                Ok(found)
            }
            Ok(None) => {
                self.set_down(false);
                Ok(None)
            }
            Err(e) => {
                log::debug!("users: key index look-up: {e}");
                self.set_down(true);
                Err(unavailable())
            }
        }
    }

    /// Whether the last read of the Redis user store failed (or none succeeded yet).
    pub fn is_down(&self) -> bool {
        self.inner.down.load(std::sync::atomic::Ordering::Relaxed) || !self.inner.state.read().loaded
    }

    fn set_down(&self, down: bool) {
        self.inner.down.store(down, std::sync::atomic::Ordering::Relaxed);
    }

    fn lookup(&self, digest: &str) -> Option<Arc<User>> {
        let state = self.inner.state.read();
        let name = state.keys.get(digest)?;
        state.users.get(name).cloned()
    }

    /// Notes that the key with `digest` authenticated at `now_ms`, unless it
    /// was noted less than [`LAST_USED_EVERY_MS`] before; with Redis the note
    /// also waits for the poll thread's `HSET`. Whether it was noted.
    ///
    /// Cost on the request path: one read lock, a hash look-up and an atomic
    /// load for a key noted within the minute (measured ≈ 120 ns a call,
    /// release build on 2 shared cores, against ≈ 1.2 µs for the whole
    /// `authenticate` with its SHA-256); once a minute per key a
    /// compare-exchange and a short mutex for the Redis queue. No I/O: the
    /// `HSET` is the poll thread's, batched once a second.
    pub fn note_used(&self, digest: &str, now_ms: u64) -> bool {
        let noted = {
            let map = self.inner.last_used.read();
            match map.get(digest) {
                Some(at) => {
                    let was = at.load(Ordering::Relaxed);
                    now_ms.saturating_sub(was) >= LAST_USED_EVERY_MS
                        && at.compare_exchange(was, now_ms, Ordering::Relaxed, Ordering::Relaxed).is_ok()
                }
                None => {
                    drop(map);
                    let mut map = self.inner.last_used.write();
                    match map.get(digest) {
                        Some(_) => false, // another request noted it just now
                        None => {
                            map.insert(digest.to_string(), AtomicU64::new(now_ms));
                            true
                        }
                    }
                }
            }
        };
        if noted && matches!(self.inner.backend, Backend::Redis(_)) {
            let mut pending = self.inner.last_used_pending.lock();
            if pending.len() < LAST_USED_PENDING_CAP || pending.contains_key(digest) {
                pending.insert(digest.to_string(), now_ms);
            }
        }
        noted
    }

    /// Writes the waiting last-use notes to Redis in one `HSET` (the poll
    /// thread, every [`RELOAD_INTERVAL`]). Notes that cannot be written are
    /// dropped: the next use after a minute notes the key again.
    fn flush_last_used(&self) {
        let Backend::Redis(r) = &self.inner.backend else { return };
        let pending = std::mem::take(&mut *self.inner.last_used_pending.lock());
        if pending.is_empty() {
            return;
        }
        let written = r.run(|c| {
            let mut cmd = redis::cmd("HSET");
            cmd.arg(persist::LAST_USED_KEY);
            for (d, ms) in &pending {
                cmd.arg(d).arg(ms);
            }
            cmd.query::<u64>(c)
        });
        if let Err(e) = written {
            log::debug!("users: {} last-use notes not written: {e}", pending.len());
        }
    }

    /// The last use of each key digest: this instance's notes, and with
    /// Redis the later of those and `mcp:users:lastused` (one `HMGET`; when
    /// Redis cannot be read, this instance's notes alone).
    fn last_used_of(&self, digests: &[&str]) -> Vec<Option<u64>> {
        let mut out: Vec<Option<u64>> = {
            let map = self.inner.last_used.read();
            digests.iter().map(|d| map.get(*d).map(|a| a.load(Ordering::Relaxed))).collect()
        };
        if let (Backend::Redis(r), false) = (&self.inner.backend, digests.is_empty()) {
            let stored = r.run(|c| {
                let mut cmd = redis::cmd("HMGET");
                cmd.arg(persist::LAST_USED_KEY);
                for d in digests {
                    cmd.arg(*d);
                }
                cmd.query::<Vec<Option<u64>>>(c)
            });
            match stored {
                Ok(v) => {
                    for (o, s) in out.iter_mut().zip(v) {
                        *o = (*o).max(s);
                    }
                }
                Err(e) => log::debug!("users: last uses not read: {e}"),
            }
        }
        out
    }

    /// Forgets the last-use notes of digests that are no key any more. Caller holds `write`.
    fn prune_last_used(&self) {
        let state = self.inner.state.read();
        self.inner.last_used.write().retain(|d, _| state.keys.contains_key(d));
    }

    /// Whether Redis may be asked about `digest` now (once per interval).
    fn may_ask_about(&self, digest: &str) -> bool {
        let now = Instant::now();
        let mut misses = self.inner.misses.lock();
        if misses.get(digest).is_some_and(|t| now.duration_since(*t) < RELOAD_INTERVAL) {
            return false;
        }
        if misses.len() >= MISSES_CAP {
            misses.retain(|_, t| now.duration_since(*t) < RELOAD_INTERVAL);
            if misses.len() >= MISSES_CAP {
                return false;
            }
        }
        misses.insert(digest.to_string(), now);
        true
    }

    /// The user named `name`.
    pub fn get(&self, name: &str) -> Option<Arc<User>> {
        self.inner.state.read().users.get(name).cloned()
    }

    /// Re-reads every stored record and rebuilds the users.
    ///
    /// Errors: the store cannot be read (the loaded copy stays).
    ///
    /// A Redis whose change counter went back (`mcp:users:version` below
    /// the one last read: it restarted without persistence, or was flushed)
    /// lost the records. Then one ERROR line says how many users and keys
    /// this instance knew, `/readyz` shows them (`store.usersLost`), and the
    /// lost records are served from memory, read-only, until this instance
    /// restarts or a user of that name is stored again (issue 14 hole 7).
    ///
    /// Why not write them back: Redis is the one truth of every instance,
    /// and this copy may be up to [`RELOAD_INTERVAL`] old — another instance
    /// may have revoked a key or deleted a user just before the loss. Each
    /// instance writing back its own copy could resurrect that key in Redis
    /// for everyone and for good. Serving from memory keeps what each
    /// instance itself saw (no revoked key it knew of comes back), keeps
    /// users working through a Redis restart, and ends at the next restart;
    /// an admin who needs a lost user's keys ended at once creates the user
    /// again, which supersedes the memory copy on every instance.
    pub fn reload(&self) -> Result<(), PersistError> {
        let _w = self.inner.write.lock();
        let (records, version) = self.inner.backend.load()?;
        let secret = self.inner.secret.read().clone();
        let (mut lost, mut lost_at_ms, mut lost_counts) = {
            let s = self.inner.state.read();
            (s.lost.clone(), s.lost_at_ms, s.lost_counts)
        };
        {
            let s = self.inner.state.read();
            if s.loaded && matches!(self.inner.backend, Backend::Redis(_)) && version < s.version {
                let gone: BTreeMap<String, UserRecord> =
                    s.records.iter().filter(|(n, _)| !records.contains_key(*n)).map(|(n, r)| (n.clone(), r.clone())).collect();
                let keys: usize = gone.values().map(|r| r.keys.len()).sum();
                log::error!(
                    "users: the user store (Redis) came back empty (mcp:users:version {} → {version}): {} users with {keys} keys \
                     this instance knew are gone from it; they are served from this instance's memory until it restarts \
                     (read-only; create a user again to change it). Run Redis with persistence (appendonly yes): see README",
                    s.version,
                    gone.len()
                );
                lost_counts = (lost_counts.0 + gone.len(), lost_counts.1 + keys);
                lost.extend(gone);
                lost_at_ms = crate::store::now_ms();
            }
        }
        lost.retain(|n, _| !records.contains_key(n));
        let (users, keys) = derive(&self.inner.settings.read().config, &with_lost(&records, &lost), secret.as_ref());
        *self.inner.state.write() = State { users, keys, records, version, loaded: true, lost, lost_at_ms, lost_counts };
        self.prune_last_used();
        Ok(())
    }

    /// What Redis lost while this instance ran (`None`: nothing), for `/readyz`.
    pub fn lost(&self) -> Option<UsersLost> {
        let s = self.inner.state.read();
        (s.lost_at_ms > 0).then(|| UsersLost {
            users: s.lost_counts.0,
            keys: s.lost_counts.1,
            served_from_memory: s.lost.len(),
            since: crate::logging::rfc3339(s.lost_at_ms),
        })
    }

    fn is_lost(&self, name: &str) -> bool {
        let s = self.inner.state.read();
        s.lost.contains_key(name) && !s.records.contains_key(name)
    }

    /// Rebuilds users from the current records (after a key change). Caller holds `write`.
    fn rederive(&self) {
        let records = {
            let s = self.inner.state.read();
            with_lost(&s.records, &s.lost).into_owned()
        };
        let secret = self.inner.secret.read().clone();
        let (users, keys) = derive(&self.inner.settings.read().config, &records, secret.as_ref());
        {
            let mut state = self.inner.state.write();
            state.users = users;
            state.keys = keys;
        }
        self.prune_last_used();
    }

    /// Every user, for `GET /api/admin/users`.
    pub fn list(&self) -> Vec<UserView> {
        let mut views: Vec<(UserView, Vec<String>)> = {
            let state = self.inner.state.read();
            state.users.values().map(|u| self.view_of(&state, u)).collect()
        };
        self.fill_last_used(&mut views);
        views.into_iter().map(|(v, _)| v).collect()
    }

    /// One user, for `GET /api/me` and the users' pages.
    pub fn view(&self, name: &str) -> Option<UserView> {
        let mut one = {
            let state = self.inner.state.read();
            let u = state.users.get(name)?;
            vec![self.view_of(&state, u)]
        };
        self.fill_last_used(&mut one);
        one.pop().map(|(v, _)| v)
    }

    /// Sets `last_used_ms` of every key of `views` (each with its keys' digests, in order).
    fn fill_last_used(&self, views: &mut [(UserView, Vec<String>)]) {
        let digests: Vec<&str> = views.iter().flat_map(|(_, d)| d.iter().map(String::as_str)).collect();
        let mut uses = self.last_used_of(&digests).into_iter();
        for (v, _) in views.iter_mut() {
            for k in &mut v.keys {
                k.last_used_ms = uses.next().flatten();
            }
        }
    }

    /// The user's view (last uses not filled in) and its keys' digests, in order.
    fn view_of(&self, state: &State, u: &User) -> (UserView, Vec<String>) {
        let conf = self.config_user(&u.name);
        let rec = state.records.get(&u.name).or_else(|| state.lost.get(&u.name));
        let revoked: BTreeSet<&str> = rec.iter().flat_map(|r| r.revoked.iter().map(String::as_str)).collect();
        let (mut keys, mut digests): (Vec<KeyView>, Vec<String>) = conf
            .iter()
            .flat_map(|c| c.key_digests.iter())
            .filter(|d| !revoked.contains(d.as_str()))
            .map(|d| (KeyView { id: key_id(d), label: None, created_ms: None, source: "config", last_used_ms: None }, d.clone()))
            .unzip();
        for k in rec.iter().flat_map(|r| r.keys.iter()) {
            keys.push(KeyView { id: k.id.clone(), label: k.label.clone(), created_ms: Some(k.created_ms), source: "runtime", last_used_ms: None });
            digests.push(k.digest.clone());
        }
        let view = UserView {
            name: u.name.clone(),
            admin: u.admin,
            servers: u.servers.clone(),
            source: if conf.is_some() { "config" } else { "runtime" },
            keys,
            tokens: u.tokens.keys().cloned().collect(),
            identities: conf.iter().flat_map(|c| c.identities.iter()).chain(rec.iter().flat_map(|r| r.identities.iter())).cloned().collect(),
        };
        (view, digests)
    }

    /// The user a sign-in identity (`github:octocat`, `oidc:<sub>`,
    /// `oidc:<e-mail>`) belongs to: a config user listing it in `identities`
    /// first, else a run-time user whose record holds it. Compared in the
    /// normalised form ([`crate::config::auth::normalize_identity`]).
    pub fn user_of_identity(&self, identity: &str) -> Option<String> {
        let identity = crate::config::auth::normalize_identity(identity);
        if let Some(c) = self.inner.settings.read().config.iter().find(|c| c.identities.contains(&identity)) {
            return Some(c.name.clone());
        }
        let state = self.inner.state.read();
        state
            .records
            .values()
            .chain(state.lost.values())
            .find(|r| r.identities.contains(&identity) && state.users.contains_key(&r.name))
            .map(|r| r.name.clone())
    }

    /// The user `identity` signs in as, creating it when it has none: a new
    /// non-admin run-time user (all servers, no keys or tokens) holding the
    /// identity, named from `wanted_name` (the login or the e-mail's local
    /// part) made valid ([`provision_name`]), suffixed `-2`, `-3`, … while
    /// the name is taken. `auth.autoProvision` (issue 17).
    ///
    /// Atomic with respect to a concurrent sign-in of the same identity, on
    /// this instance and (with Redis) on others: when the identity got
    /// mapped meanwhile, that user is returned and nothing is created.
    ///
    /// Errors: 400 a malformed identity, 409 no free name, 503 store down.
    pub fn provision(&self, wanted_name: &str, identity: &str) -> Result<String, UsersError> {
        if !crate::config::auth::valid_identity(identity) {
            return Err(UsersError::Invalid("identities are \"github:<login>\" or \"oidc:<sub or e-mail>\"".into()));
        }
        let identity = crate::config::auth::normalize_identity(identity);
        if let Some(owner) = self.user_of_identity(&identity) {
            return Ok(owner);
        }
        let base = provision_name(wanted_name);
        let _w = self.inner.write.lock();
        let records = self.loaded_records()?;
        for n in 1..=1000u32 {
            let name = if n == 1 {
                base.clone()
            } else {
                let suffix = format!("-{n}");
                format!("{}{suffix}", truncate_at_char(&base, 64 - suffix.len()))
            };
            if self.config_user(&name).is_some() || self.inner.state.read().lost.contains_key(&name) {
                continue;
            }
            let record = UserRecord {
                name: name.clone(),
                created_ms: crate::store::now_ms(),
                identities: vec![identity.clone()],
                ..UserRecord::default()
            };
            match self.inner.backend.claim_identity(&name, &identity, &records, |old| old.is_none().then(|| record.clone()))? {
                Claimed::Declined => continue,
                Claimed::IdentityOf(owner) => {
                    // Mapped meanwhile (by another instance): read it in so the session finds the user.
                    drop(_w);
                    self.reload()?;
                    return Ok(owner);
                }
                Claimed::Stored(record, version) => {
                    let mut records = records;
                    records.insert(name.clone(), record);
                    self.install(records, &name, version);
                    log::info!("users: user '{name}' provisioned at its first sign-in as {identity}");
                    return Ok(name);
                }
            }
        }
        Err(UsersError::Conflict(format!("no free user name for '{base}' (tried up to {base}-1000)")))
    }

    /// Links sign-in `identity` to user `name` (an admin's change; a config
    /// user gets it in its run-time overlay). An identity belongs to one
    /// user: atomic against another instance linking it at the same time.
    ///
    /// Errors: 400 a malformed identity, 404 unknown user, 409 the identity
    /// is another user's (config or run-time), 503 store down.
    pub fn add_identity(&self, name: &str, identity: &str) -> Result<(), UsersError> {
        check_user_name(name)?;
        if !crate::config::auth::valid_identity(identity) {
            return Err(UsersError::Invalid("identities are \"github:<login>\" or \"oidc:<sub or e-mail>\"".into()));
        }
        let identity = crate::config::auth::normalize_identity(identity);
        let taken = |owner: &str| UsersError::Conflict(format!("identity {identity} belongs to user '{owner}': an identity belongs to one user"));
        match self.user_of_identity(&identity) {
            Some(owner) if owner == name => return Ok(()),
            Some(owner) => return Err(taken(&owner)),
            None => {}
        }
        let _w = self.inner.write.lock();
        let records = self.loaded_records()?;
        let mut refused = None;
        let claimed = self.inner.backend.claim_identity(name, &identity, &records, |old| match self.record_for(name, old) {
            Ok(mut r) => {
                refused = None;
                r.identities.push(identity.clone());
                Some(r)
            }
            Err(e) => {
                refused = Some(e);
                None
            }
        })?;
        match claimed {
            Claimed::Declined => Err(refused.unwrap_or_else(|| UsersError::NotFound(format!("no user named '{name}'")))),
            Claimed::IdentityOf(owner) if owner == name => Ok(()),
            Claimed::IdentityOf(owner) => Err(taken(&owner)),
            Claimed::Stored(record, version) => {
                let mut records = records;
                records.insert(name.to_string(), record);
                self.install(records, name, version);
                log::debug!("users: identity {identity} linked to '{name}'");
                Ok(())
            }
        }
    }

    /// Unlinks sign-in `identity` from run-time user `name` (or a config
    /// user's overlay; identities in the config file stay).
    ///
    /// Errors: 404 unknown user or identity, 409 the identity is in the config file.
    pub fn remove_identity(&self, name: &str, identity: &str) -> Result<(), UsersError> {
        check_user_name(name)?;
        let identity = crate::config::auth::normalize_identity(identity);
        if self.config_user(name).is_some_and(|c| c.identities.contains(&identity)) {
            return Err(UsersError::Conflict(format!("identity {identity} of '{name}' comes from the config file; remove it there")));
        }
        self.modify(name, |old| {
            let mut r = self.record_for(name, old)?;
            let before = r.identities.len();
            r.identities.retain(|i| *i != identity);
            if r.identities.len() == before {
                return Err(UsersError::NotFound(format!("user '{name}' has no identity {identity}")));
            }
            Ok(Some(r))
        })?;
        log::debug!("users: identity {identity} unlinked from '{name}'");
        Ok(())
    }

    /// Every stored record, read from the state file first if this process
    /// could not read it yet (never overwrite a file it did not read).
    /// Caller holds `write`.
    fn loaded_records(&self) -> Result<BTreeMap<String, UserRecord>, PersistError> {
        let (records, loaded) = {
            let s = self.inner.state.read();
            (s.records.clone(), s.loaded)
        };
        if !loaded && matches!(self.inner.backend, Backend::File(_)) {
            let records = self.inner.backend.load()?.0;
            self.inner.state.write().loaded = true;
            return Ok(records);
        }
        Ok(records)
    }

    /// Makes `records` (just stored, `name` changed, Redis `version` after
    /// the change or 0) this instance's copy. Caller holds `write`.
    fn install(&self, records: BTreeMap<String, UserRecord>, name: &str, version: u64) {
        let secret = self.inner.secret.read().clone();
        let mut state = self.inner.state.write();
        state.lost.remove(name); // stored again: the memory copy is superseded
        let (users, keys) = derive(&self.inner.settings.read().config, &with_lost(&records, &state.lost), secret.as_ref());
        if version != 0 && version == state.version + 1 {
            state.version = version;
        }
        state.users = users;
        state.keys = keys;
        state.records = records;
        drop(state);
        self.prune_last_used();
    }

    fn config_user(&self, name: &str) -> Option<UserConfig> {
        self.inner.settings.read().config.iter().find(|c| c.name == name).cloned()
    }

    /// Applies `change` to `name`'s record through the backend, then to the
    /// local copy (at once on this instance).
    fn modify(
        &self,
        name: &str,
        change: impl FnMut(Option<UserRecord>) -> Result<Option<UserRecord>, UsersError>,
    ) -> Result<Option<UserRecord>, UsersError> {
        let _w = self.inner.write.lock();
        // Never overwrite a state file this process could not read: read it now or refuse.
        let mut records = self.loaded_records()?;
        let (new, version) = self.inner.backend.update(name, &records, change)??;
        match &new {
            Some(r) => records.insert(name.to_string(), r.clone()),
            None => records.remove(name),
        };
        self.install(records, name, version);
        Ok(new)
    }

    /// Creates run-time user `name` (`POST /api/admin/users`).
    ///
    /// Errors: 400 for a bad name or an unknown server, 409 if the user exists.
    pub fn create(&self, name: &str, admin: bool, servers: Option<Vec<String>>) -> Result<UserView, UsersError> {
        check_user_name(name)?;
        let servers = match servers {
            None => None,
            Some(mut list) => {
                if let Some(s) = list.iter().find(|s| !self.inner.settings.read().known_servers.contains(s)) {
                    return Err(UsersError::Invalid(format!("'{s}' is not a server in mcpServers (give server names; groups are config-only)")));
                }
                list.sort();
                list.dedup();
                Some(list)
            }
        };
        if self.config_user(name).is_some() {
            return Err(UsersError::Conflict(format!("user '{name}' exists (in the config file)")));
        }
        self.modify(name, |old| match old {
            Some(_) => Err(UsersError::Conflict(format!("user '{name}' exists"))),
            None => Ok(Some(UserRecord {
                name: name.to_string(),
                admin,
                servers: servers.clone(),
                created_ms: crate::store::now_ms(),
                ..UserRecord::default()
            })),
        })?;
        log::debug!("users: user '{name}' created (admin: {admin})");
        self.view(name).ok_or_else(|| UsersError::NotFound(format!("no user named '{name}'")))
    }

    /// Deletes run-time user `name` with its keys and tokens.
    ///
    /// Errors: 404 unknown, 409 for a config user (edit the config file).
    pub fn delete(&self, name: &str) -> Result<(), UsersError> {
        check_user_name(name)?;
        if self.config_user(name).is_some() {
            return Err(UsersError::Conflict(format!("user '{name}' comes from the config file; remove it there")));
        }
        self.modify(name, |old| match old {
            Some(r) if !r.overlay => Ok(None),
            None if self.is_lost(name) => Err(UsersError::Conflict(lost_message(name))),
            _ => Err(UsersError::NotFound(format!("no user named '{name}'"))),
        })?;
        log::debug!("users: user '{name}' deleted");
        Ok(())
    }

    /// Gives run-time user `name` the admin role or takes it away (the admin
    /// pages). A config user's role is the config file's.
    ///
    /// Errors: 404 unknown, 409 for a config user or one Redis lost, 503 store down.
    pub fn set_admin(&self, name: &str, admin: bool) -> Result<UserView, UsersError> {
        check_user_name(name)?;
        if self.config_user(name).is_some() {
            return Err(UsersError::Conflict(format!("user '{name}' comes from the config file; change \"admin\" there")));
        }
        self.modify(name, |old| match old {
            Some(r) if !r.overlay => Ok(Some(UserRecord { admin, ..r })),
            None if self.is_lost(name) => Err(UsersError::Conflict(lost_message(name))),
            _ => Err(UsersError::NotFound(format!("no user named '{name}'"))),
        })?;
        log::debug!("users: user '{name}' admin: {admin}");
        self.view(name).ok_or_else(|| UsersError::NotFound(format!("no user named '{name}'")))
    }

    /// The record to change for user `name`: the stored one, or a new overlay
    /// for a config user.
    fn record_for(&self, name: &str, old: Option<UserRecord>) -> Result<UserRecord, UsersError> {
        if old.is_none() && self.is_lost(name) {
            if self.config_user(name).is_none() {
                return Err(UsersError::Conflict(lost_message(name)));
            }
            // A config user's lost overlay: a fresh one that keeps only its
            // revocations (writing those back can only take access away);
            // its run-time keys from before the loss end.
            let revoked = self.inner.state.read().lost.get(name).map(|r| r.revoked.clone()).unwrap_or_default();
            return Ok(UserRecord { name: name.to_string(), overlay: true, created_ms: crate::store::now_ms(), revoked, ..UserRecord::default() });
        }
        match old {
            Some(r) if !r.overlay || self.config_user(name).is_some() => Ok(r),
            _ if self.config_user(name).is_some() => {
                Ok(UserRecord { name: name.to_string(), overlay: true, created_ms: crate::store::now_ms(), ..UserRecord::default() })
            }
            _ => Err(UsersError::NotFound(format!("no user named '{name}'"))),
        }
    }

    /// Issues a new key for `name`: `(key, view)`; the key is shown once,
    /// only its digest is stored.
    ///
    /// Errors: 400 bad name/label, 404 unknown user, 503 store down.
    pub fn issue_key(&self, name: &str, label: Option<String>) -> Result<(String, KeyView), UsersError> {
        check_user_name(name)?;
        if let Some(l) = &label {
            if l.chars().count() > 64 || l.chars().any(char::is_control) {
                return Err(UsersError::Invalid("a key label is at most 64 characters, no control characters".into()));
            }
        }
        let key = new_key();
        let digest = key_digest(&key);
        let record = KeyRecord { id: key_id(&digest), digest, label, created_ms: crate::store::now_ms() };
        self.modify(name, |old| {
            let mut r = self.record_for(name, old)?;
            r.keys.push(record.clone());
            Ok(Some(r))
        })?;
        log::debug!("users: key {} issued for '{name}'", record.id);
        Ok((key, KeyView { id: record.id, label: record.label, created_ms: Some(record.created_ms), source: "runtime", last_used_ms: None }))
    }

    /// Revokes `name`'s key `id` (8 hex): a run-time key is removed, a config
    /// key's digest is recorded as revoked.
    ///
    /// Errors: 404 unknown user or key, 503 store down.
    pub fn revoke_key(&self, name: &str, id: &str) -> Result<(), UsersError> {
        check_user_name(name)?;
        if id.len() != 8 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(UsersError::Invalid("a key id is the 8 hex characters the users list shows".into()));
        }
        let id = id.to_ascii_lowercase();
        let config_digests: Vec<String> = self
            .config_user(name)
            .map(|c| c.key_digests.iter().filter(|d| key_id(d) == id).cloned().collect())
            .unwrap_or_default();
        self.modify(name, |old| {
            let mut r = self.record_for(name, old)?;
            let before = (r.keys.len(), r.revoked.len());
            r.keys.retain(|k| k.id != id);
            for d in &config_digests {
                if !r.revoked.contains(d) {
                    r.revoked.push(d.clone());
                }
            }
            if (r.keys.len(), r.revoked.len()) == before {
                return Err(UsersError::NotFound(format!("user '{name}' has no live key '{id}'")));
            }
            Ok(Some(r))
        })?;
        log::debug!("users: key {id} of '{name}' revoked");
        Ok(())
    }

    /// Sets `name`'s service token `token` (sealed with the secret key).
    ///
    /// Errors: 400 bad names/value, 404 unknown user, 503 no secret key or store down.
    pub fn set_token(&self, name: &str, token: &str, value: &str) -> Result<(), UsersError> {
        check_user_name(name)?;
        check_token_name(token)?;
        check_token_value(token, value).map_err(UsersError::Invalid)?;
        let Some(secret) = self.inner.secret.read().clone() else {
            return Err(UsersError::NoSecretKey);
        };
        self.modify(name, |old| {
            let mut r = self.record_for(name, old)?;
            r.tokens.insert(token.to_string(), secret.seal(name, token, value));
            Ok(Some(r))
        })?;
        log::debug!("users: token {token} of '{name}' set");
        Ok(())
    }

    /// Deletes `name`'s run-time token `token`.
    ///
    /// Errors: 404 unknown user or token, 409 a config token (edit the config file).
    pub fn delete_token(&self, name: &str, token: &str) -> Result<(), UsersError> {
        check_user_name(name)?;
        check_token_name(token)?;
        let in_config = self.config_user(name).is_some_and(|c| c.tokens.iter().any(|(t, _)| t == token));
        self.modify(name, |old| {
            let mut r = self.record_for(name, old)?;
            if r.tokens.remove(token).is_none() {
                return Err(if in_config {
                    UsersError::Conflict(format!("token {token} of '{name}' comes from the config file; remove it there"))
                } else {
                    UsersError::NotFound(format!("user '{name}' has no token {token}"))
                });
            }
            Ok(Some(r))
        })?;
        log::debug!("users: token {token} of '{name}' deleted");
        Ok(())
    }
}

/// While the registry lives: every [`RELOAD_INTERVAL`], reload when
/// `mcp:users:version` moved (or the first load failed).
fn poll_loop(users: Weak<Shared>, stop: &crate::threads::Stop) {
    let mut failing = false;
    loop {
        if stop.sleep(RELOAD_INTERVAL) {
            return;
        }
        let Some(inner) = users.upgrade() else { return };
        let users = Users { inner };
        users.flush_last_used();
        let (known, loaded) = {
            let s = users.inner.state.read();
            (s.version, s.loaded)
        };
        let result = users.inner.backend.version().and_then(|v| if v != known || !loaded { users.reload() } else { Ok(()) });
        users.set_down(result.is_err());
        match result {
            Ok(()) if failing => {
                failing = false;
                log::info!("users: the user store answers again");
            }
            Ok(()) => {}
            Err(e) if !failing => {
                failing = true;
                log::warn!("users: {e}");
            }
            Err(_) => {}
        }
    }
}

/// The state directory without Redis: `stateDir` (or `MCPHUB_STATE_DIR`,
/// applied by `mcphub serve`), else `$STATE_DIRECTORY` (systemd's
/// `StateDirectory=`, first entry), else `./state`.
pub fn state_dir(config: &Config) -> PathBuf {
    if let Some(d) = &config.state_dir {
        return d.clone();
    }
    if let Some(d) = std::env::var_os("STATE_DIRECTORY").filter(|d| !d.is_empty()) {
        let first = d.to_string_lossy().split(':').next().unwrap_or("").to_string();
        if !first.is_empty() {
            return PathBuf::from(first);
        }
    }
    PathBuf::from("state")
}

/// `name` for a message if it is a valid user name, else `<invalid name>`
/// (a client may put anything there, a key included).
pub fn printable_name(name: &str) -> &str {
    if crate::config::valid_user_name(name) {
        name
    } else {
        "<invalid name>"
    }
}

/// A valid user name made from `wanted` (a GitHub login, an e-mail's local
/// part, an OIDC `sub`): every character outside `[A-Za-z0-9_.@-]` becomes
/// `-`, at most 64 characters, `user` when nothing is left.
pub fn provision_name(wanted: &str) -> String {
    let name: String = wanted
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "_.@-".contains(c) { c } else { '-' })
        .take(64)
        .collect();
    let name = name.trim_matches('-');
    if name.is_empty() {
        "user".to_string()
    } else {
        name.to_string()
    }
}

/// The first `max` bytes of an ASCII `s` (user names are ASCII).
fn truncate_at_char(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// First 8 hex chars of a key digest (the id the API uses).
pub fn key_id(digest: &str) -> String {
    digest.chars().take(8).collect()
}

fn check_user_name(name: &str) -> Result<(), UsersError> {
    if crate::config::valid_user_name(name) {
        Ok(())
    } else {
        Err(UsersError::Invalid("user names are 1..=64 characters of [A-Za-z0-9_.@-]".into()))
    }
}

fn check_token_name(name: &str) -> Result<(), UsersError> {
    if crate::config::valid_token_name(name) {
        Ok(())
    } else {
        Err(UsersError::Invalid("token names are 1..=64 characters of [A-Za-z0-9_]".into()))
    }
}

/// Config users merged with the stored records → users and the key index.
fn derive(
    config: &[UserConfig],
    records: &BTreeMap<String, UserRecord>,
    secret: Option<&SecretKey>,
) -> (BTreeMap<String, Arc<User>>, HashMap<String, String>) {
    let mut users = BTreeMap::new();
    let mut keys = HashMap::new();
    let open_tokens = |r: &UserRecord, into: &mut BTreeMap<String, Secret>| {
        for (t, sealed) in &r.tokens {
            match secret.map(|k| k.open(&r.name, t, sealed)) {
                // Stored before values were checked when set: it could never be sent as a header.
                Some(Some(v)) if check_token_value(t, &v).is_err() => log::warn!(
                    "users: stored token {t} of '{}' is not a valid HTTP field value (RFC 9110 §5.5); ignored until it is set again",
                    r.name
                ),
                Some(Some(v)) => {
                    into.insert(t.clone(), Secret::new(v));
                }
                Some(None) => log::warn!(
                    "users: token {t} of '{}' cannot be decrypted with the configured secret key (another key, or the record was altered); ignored",
                    r.name
                ),
                None => log::warn!("users: token {t} of '{}' is stored encrypted but no secret key is set; ignored", r.name),
            }
        }
    };
    for u in config {
        let rec = records.get(&u.name);
        let mut tokens: BTreeMap<String, Secret> = u.tokens.iter().map(|(n, v)| (n.clone(), Secret::new(v.clone()))).collect();
        if let Some(r) = rec {
            open_tokens(r, &mut tokens);
        }
        for d in &u.key_digests {
            if !rec.is_some_and(|r| r.revoked.contains(d)) {
                keys.entry(d.clone()).or_insert_with(|| u.name.clone());
            }
        }
        for k in rec.iter().flat_map(|r| r.keys.iter()) {
            keys.entry(k.digest.clone()).or_insert_with(|| u.name.clone());
        }
        users.insert(u.name.clone(), Arc::new(User { name: u.name.clone(), admin: u.admin, servers: u.servers.clone(), tokens }));
    }
    for (name, r) in records {
        if users.contains_key(name) {
            continue;
        }
        if r.overlay {
            log::warn!("users: stored keys/tokens of '{name}' extend a config user that is no longer in the config file; ignored");
            continue;
        }
        let mut tokens = BTreeMap::new();
        open_tokens(r, &mut tokens);
        for k in &r.keys {
            keys.entry(k.digest.clone()).or_insert_with(|| name.clone());
        }
        users.insert(name.clone(), Arc::new(User { name: name.clone(), admin: r.admin, servers: r.servers.clone(), tokens }));
    }
    (users, keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_documented_shape_and_authenticate_by_digest() {
        let k = new_key();
        assert!(looks_like_key(&k), "{k}");
        assert_ne!(k, new_key());
        let cfg = UserConfig {
            name: "alice".into(),
            key_digests: vec![key_digest(&k)],
            admin: false,
            servers: Some(vec!["github".into()]),
            tokens: vec![("GITHUB_TOKEN".into(), "ghp_x".into())],
            identities: Vec::new(),
        };
        let users = Users::from_config(&[cfg], false);
        let alice = users.authenticate(&k).unwrap();
        assert_eq!(alice.name, "alice");
        assert!(alice.may_use("github") && !alice.may_use("jira"));
        assert!(users.authenticate(&new_key()).is_none());
        assert!(!users.anonymous_allowed());
        assert_eq!(format!("{:?} {}", alice.token("GITHUB_TOKEN").unwrap(), alice.token("GITHUB_TOKEN").unwrap()), "Secret(***) ***");
        assert!(!format!("{alice:?}").contains("ghp_x"));
        assert_eq!(mask_keys(&format!("bad key {k} here; mcphub_ok")), "bad key mcphub_*** here; mcphub_ok");
    }

    #[test]
    fn a_keys_last_use_is_noted_when_it_authenticates_at_most_once_a_minute() {
        let (used, idle) = (new_key(), new_key());
        let cfg = UserConfig {
            name: "alice".into(),
            key_digests: vec![key_digest(&used), key_digest(&idle)],
            admin: false,
            servers: None,
            tokens: Vec::new(),
            identities: Vec::new(),
        };
        let users = Users::from_config(&[cfg], false);
        let last = |users: &Users| users.view("alice").unwrap().keys.iter().map(|k| k.last_used_ms).collect::<Vec<_>>();
        assert_eq!(last(&users), vec![None, None], "no key used yet");
        let before = crate::store::now_ms();
        assert!(users.authenticate(&used).is_some());
        let noted = last(&users)[0].expect("the key that authenticated has a last use");
        assert!(noted >= before && noted <= crate::store::now_ms(), "{noted} is now");
        assert_eq!(last(&users)[1], None, "the other key was not used");
        assert!(users.authenticate(&new_key()).is_none());
        let d = key_digest(&used);
        assert!(!users.note_used(&d, noted + LAST_USED_EVERY_MS - 1), "within the minute: not noted again");
        assert_eq!(last(&users)[0], Some(noted));
        assert!(users.note_used(&d, noted + LAST_USED_EVERY_MS), "a minute later: noted");
        assert_eq!(last(&users)[0], Some(noted + LAST_USED_EVERY_MS));
        assert!(users.inner.last_used_pending.lock().is_empty(), "nothing waits for Redis without Redis");
        // A revoked key's note is forgotten.
        users.revoke_key("alice", &key_id(&d)).unwrap();
        assert!(!users.inner.last_used.read().contains_key(&d));
        assert_eq!(last(&users), vec![None]);
    }

    #[test]
    fn a_token_value_must_be_an_http_field_value_and_errors_name_the_rule_not_the_value() {
        let rule = "is not a valid HTTP field value (RFC 9110 §5.5: visible ASCII, space and tab only)";
        assert_eq!(check_token_value("GH", "ghp_abc DEF\t~!"), Ok(()));
        assert_eq!(check_token_value("GH", "ghp_é"), Err(format!("token GH {rule}: character 5 is not ASCII")));
        assert_eq!(check_token_value("GH", "a\u{2028}b"), Err(format!("token GH {rule}: character 2 is not ASCII")));
        assert_eq!(check_token_value("GH", "a\nb"), Err(format!("token GH {rule}: character 2 is a control character")));
        assert_eq!(check_token_value("GH", "ab\r"), Err(format!("token GH {rule}: character 3 is a control character")));
        assert_eq!(check_token_value("GH", "a\u{7f}"), Err(format!("token GH {rule}: character 2 is a control character")));
        assert_eq!(check_token_value("GH", "\u{0}"), Err(format!("token GH {rule}: character 1 is a control character")));
        assert_eq!(check_token_value("GH", " ghp"), Err("token GH starts or ends with a space or tab (RFC 9110 §5.5: a receiver strips them)".into()));
        assert_eq!(check_token_value("GH", "ghp\t"), Err("token GH starts or ends with a space or tab (RFC 9110 §5.5: a receiver strips them)".into()));
        assert_eq!(check_token_value("GH", ""), Err("token GH is empty".into()));
        assert_eq!(check_token_value("GH", &"a".repeat(MAX_TOKEN_BYTES)), Ok(()));
        assert_eq!(check_token_value("GH", &"a".repeat(MAX_TOKEN_BYTES + 1)), Err("token GH is longer than 8192 bytes".into()));
        assert!(!check_token_value("GH", "SECRETé").unwrap_err().contains("SECRET"));
    }

    #[test]
    fn a_run_time_user_is_made_admin_and_back() {
        let users = Users::from_config(&[], true);
        users.create("bob", false, None).unwrap();
        assert!(users.set_admin("bob", true).unwrap().admin);
        assert!(users.get("bob").unwrap().admin, "the request path sees it");
        assert!(!users.set_admin("bob", false).unwrap().admin);
        assert!(!users.get("bob").unwrap().admin);
        assert_eq!(users.set_admin("nobody", true).unwrap_err().status(), 404);
        assert_eq!(users.set_admin("bad name", true).unwrap_err().status(), 400);
    }

    #[test]
    fn a_stored_token_that_is_not_an_http_field_value_is_ignored_when_loaded() {
        let key = SecretKey::from_bytes([9; 32]);
        let mut record = UserRecord { name: "eve".into(), ..UserRecord::default() };
        record.tokens.insert("GOOD".into(), key.seal("eve", "GOOD", "ghp_fine"));
        record.tokens.insert("BAD".into(), key.seal("eve", "BAD", "ghp_\u{2028}"));
        let records = BTreeMap::from([("eve".to_string(), record)]);
        let (users, _) = derive(&[], &records, Some(&key));
        let eve = &users["eve"];
        assert_eq!(eve.token("GOOD").map(Secret::expose), Some("ghp_fine"));
        assert!(eve.token("BAD").is_none());
    }

    fn config_user(name: &str, identities: &[&str]) -> UserConfig {
        UserConfig {
            name: name.into(),
            key_digests: Vec::new(),
            admin: false,
            servers: None,
            tokens: Vec::new(),
            identities: identities.iter().map(|i| i.to_string()).collect(),
        }
    }

    #[test]
    fn provision_names_are_made_valid() {
        assert_eq!(provision_name("Alice"), "Alice");
        assert_eq!(provision_name("john+tag"), "john-tag");
        assert_eq!(provision_name("  "), "user");
        assert_eq!(provision_name("é"), "user");
        assert_eq!(provision_name(&"a".repeat(100)).len(), 64);
    }

    #[test]
    fn an_identity_maps_to_its_config_user_first_then_a_provisioned_one() {
        let users = Users::from_config(&[config_user("alice", &["github:octocat"]), config_user("bob", &[])], false);
        assert_eq!(users.user_of_identity("github:OctoCat").as_deref(), Some("alice"));
        assert_eq!(users.provision("octocat", "github:octocat").unwrap(), "alice", "mapped: nothing created");
        assert!(users.user_of_identity("oidc:bob@example.com").is_none());

        // "bob" is a config user: the provisioned one is bob-2, non-admin, holding the identity.
        let name = users.provision("bob", "oidc:Bob@Example.com").unwrap();
        assert_eq!(name, "bob-2");
        let view = users.view("bob-2").unwrap();
        assert!(!view.admin && view.source == "runtime" && view.servers.is_none());
        assert_eq!(view.identities, vec!["oidc:bob@example.com"]);
        assert_eq!(users.user_of_identity("oidc:bob@example.com").as_deref(), Some("bob-2"));
        assert_eq!(users.provision("other", "oidc:bob@example.com").unwrap(), "bob-2", "same identity: same user");
        assert_eq!(users.provision("bob", "oidc:sub-123").unwrap(), "bob-3");
        assert_eq!(users.view("alice").unwrap().identities, vec!["github:octocat"]);

        // A deleted user's identity is free again.
        users.delete("bob-2").unwrap();
        assert!(users.user_of_identity("oidc:bob@example.com").is_none());
        assert!(matches!(users.provision("x", "gitlab:x"), Err(UsersError::Invalid(_))));
    }

    #[test]
    fn an_identity_is_linked_to_one_user_only() {
        let users = Users::from_config(&[config_user("alice", &["github:octocat"]), config_user("bob", &[])], false);
        users.create("carol", false, None).unwrap();
        users.add_identity("carol", "oidc:Carol@Example.com").unwrap();
        users.add_identity("carol", "oidc:carol@example.com").unwrap(); // already hers: no change
        assert_eq!(users.view("carol").unwrap().identities, vec!["oidc:carol@example.com"]);
        assert_eq!(users.user_of_identity("oidc:carol@example.com").as_deref(), Some("carol"));
        let e = users.add_identity("bob", "oidc:carol@example.com").unwrap_err();
        assert_eq!(e.status(), 409, "{e}");
        let e = users.add_identity("carol", "github:OctoCat").unwrap_err();
        assert!(e.status() == 409 && e.to_string().contains("'alice'"), "{e}");
        assert_eq!(users.add_identity("nobody", "github:x").unwrap_err().status(), 404);
        assert_eq!(users.add_identity("carol", "x").unwrap_err().status(), 400);
        // A config user gets a run-time identity in its overlay.
        users.add_identity("bob", "github:bobby").unwrap();
        assert_eq!(users.user_of_identity("github:bobby").as_deref(), Some("bob"));
        assert_eq!(users.remove_identity("alice", "github:octocat").unwrap_err().status(), 409);
        users.remove_identity("carol", "oidc:CAROL@example.com").unwrap();
        assert!(users.user_of_identity("oidc:carol@example.com").is_none());
        assert_eq!(users.remove_identity("carol", "oidc:carol@example.com").unwrap_err().status(), 404);
    }

    #[test]
    fn concurrent_first_sign_ins_of_one_identity_make_one_user() {
        let users = Users::from_config(&[], false);
        let names: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8).map(|_| s.spawn(|| users.provision("carol", "github:carol").unwrap())).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(names.iter().all(|n| n == "carol"), "{names:?}");
        assert_eq!(users.list().len(), 1);
    }

    #[test]
    fn provisioned_users_and_identities_survive_a_restart_on_the_state_file() {
        let dir = std::env::temp_dir().join(format!("mcphub-provision-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let open = || Users::build(Vec::new(), false, Vec::new(), Backend::File(dir.clone()), None);
        let users = open();
        assert_eq!(users.provision("dave@example.com", "oidc:dave@example.com").unwrap(), "dave@example.com");
        let again = open();
        again.reload().unwrap();
        assert_eq!(again.user_of_identity("oidc:DAVE@example.com").as_deref(), Some("dave@example.com"));
        assert_eq!(again.provision("dave", "oidc:dave@example.com").unwrap(), "dave@example.com");
        assert_eq!(again.list().len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
