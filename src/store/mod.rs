//! Where upstream session records live (docs/decisions.md D3), shared by every hub
//! instance that points at the same store.
//!
//! Keys (the source notes' format, docs/decisions.md D3):
//! - `mcp:upstream:session:{server}:{contextKey}` → the upstream
//!   `Mcp-Session-Id` as a plain string, so `redis-cli GET` shows the id;
//! - `mcp:upstream:session-meta:{server}:{contextKey}` → JSON metadata
//!   (protocol version, created time, the server's `initialize` result), with
//!   the same TTL; a missing one is tolerated (defaults);
//! - `mcp:upstream:lock:{server}:{contextKey}` → a short creation lock
//!   (`SET NX PX`) so two hub instances starting together create one session.
//!
//! Server names are `[A-Za-z0-9_.-]` (config.rs), so the first `:` after the
//! prefix ends the server name; context keys may contain `:` (`tok:…`).
//!
//! Two implementations: [`memory::MemoryStore`] (the embedded default, one
//! instance) and [`redis::RedisStore`] (several instances; a circuit breaker
//! turns an unreachable Redis into fast [`StoreError::Unavailable`] answers,
//! and callers keep serving from their local cache).

pub mod kv;
pub mod memory;
pub mod redis;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Prefix of session keys (value: the upstream `Mcp-Session-Id`).
pub const SESSION_PREFIX: &str = "mcp:upstream:session:";
/// Prefix of session metadata keys (value: [`SessionMeta`] as JSON).
pub const META_PREFIX: &str = "mcp:upstream:session-meta:";
/// Prefix of creation lock keys.
pub const LOCK_PREFIX: &str = "mcp:upstream:lock:";

/// `mcp:upstream:session:{server}:{contextKey}`.
pub fn session_key(server: &str, context_key: &str) -> String {
    format!("{SESSION_PREFIX}{server}:{context_key}")
}

/// `mcp:upstream:session-meta:{server}:{contextKey}`.
pub fn meta_key(server: &str, context_key: &str) -> String {
    format!("{META_PREFIX}{server}:{context_key}")
}

/// `mcp:upstream:lock:{server}:{contextKey}`.
pub fn lock_key(server: &str, context_key: &str) -> String {
    format!("{LOCK_PREFIX}{server}:{context_key}")
}

/// `(server, contextKey)` of a session key, or `None` if it is not one.
pub fn parse_session_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix(SESSION_PREFIX)?;
    let (server, context) = rest.split_once(':')?;
    (!server.is_empty() && !context.is_empty()).then_some((server, context))
}

/// The context key of an upstream session (docs/decisions.md D3): `shared`
/// when the server injects no per-user credential, else `tok:` + the first 32
/// hex chars of SHA-256 over the sorted `NAME=value` lines of the credentials
/// actually injected (not the source notes' `tok:` + sorted token names, which
/// would give two users with different tokens one session). Same credentials → same key; different credentials →
/// different keys; no secret appears in the key.
pub fn context_key(injected: &[(&str, &str)]) -> String {
    use sha2::{Digest, Sha256};
    if injected.is_empty() {
        return "shared".to_string();
    }
    let mut pairs: Vec<String> = injected.iter().map(|(n, v)| format!("{n}={v}")).collect();
    pairs.sort();
    pairs.dedup();
    let mut hasher = Sha256::new();
    for p in &pairs {
        hasher.update(p.as_bytes());
        hasher.update(b"\n");
    }
    let digest = hex::encode(hasher.finalize());
    format!("tok:{}", &digest[..32])
}

/// What is kept beside a session id: enough to use the session after a
/// restart without a new `initialize`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionMeta {
    /// The protocol version the server answered `initialize` with.
    pub protocol_version: String,
    /// When the session was created, ms since the Unix epoch.
    pub created_ms: u64,
    /// The server's `initialize` result (capabilities, serverInfo, instructions).
    #[serde(default)]
    pub init_result: Value,
}

/// One stored upstream session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    /// The upstream `Mcp-Session-Id`.
    pub session_id: String,
    /// Its metadata (defaults when the metadata key is missing or unreadable:
    /// newest legacy version, created 0, `{}` result).
    pub meta: SessionMeta,
}

/// A session as listed by the admin API.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListedSession {
    /// The server's name.
    pub server_name: String,
    /// The context key.
    pub context_key: String,
    /// The upstream `Mcp-Session-Id`.
    pub session_id: String,
    /// Seconds until the record expires (`None`: no expiry known).
    pub ttl: Option<i64>,
}

/// A held creation lock (its random token; release with [`SessionStore::unlock`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockToken(pub String);

impl LockToken {
    /// A new random 128-bit token.
    pub fn random() -> LockToken {
        LockToken(crate::random::hex::<16>())
    }
}

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached now (connect/IO error, timeout, or the
    /// circuit breaker is open). Callers serve from memory.
    #[error("session store unavailable: {0}")]
    Unavailable(String),
    /// The store answered something unexpected (a wrong type under a key).
    #[error("session store error: {0}")]
    Other(String),
}

/// The store's state, for `/readyz` and logs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum Health {
    /// In-memory store: always fine.
    Memory,
    /// Redis reachable.
    Up,
    /// Redis unreachable since `since_ms` (Unix ms); serving from memory.
    Degraded {
        /// When it went down, ms since the Unix epoch.
        since_ms: u64,
        /// The error that opened the breaker (no credentials: URLs redacted).
        error: String,
    },
}

/// Called when a store that was unreachable is back (to write through again).
pub type RecoveredHook = Box<dyn Fn() + Send + Sync>;

/// Upstream session records, shared by hub instances using the same store.
///
/// Every method returns quickly: the Redis implementation has connect and IO
/// timeouts and a circuit breaker; while it is open, calls fail at once with
/// [`StoreError::Unavailable`].
pub trait SessionStore: Send + Sync {
    /// `"memory"` or `"redis"`.
    fn kind(&self) -> &'static str;
    /// Current state.
    fn health(&self) -> Health;
    /// The record of `(server, context)`, if any.
    fn get(&self, server: &str, context_key: &str) -> Result<Option<SessionRecord>, StoreError>;
    /// Stores a record (both keys) with `ttl`, replacing any.
    fn put(&self, server: &str, context_key: &str, record: &SessionRecord, ttl: Duration) -> Result<(), StoreError>;
    /// Extends the record's TTL; `Ok(false)` when there is no record (expired,
    /// deleted, or the store restarted empty).
    fn touch(&self, server: &str, context_key: &str, ttl: Duration) -> Result<bool, StoreError>;
    /// Deletes the record only if its id is still `session_id`
    /// (compare-and-delete: a session another instance just created survives).
    /// `Ok(true)` when it deleted.
    fn delete_if(&self, server: &str, context_key: &str, session_id: &str) -> Result<bool, StoreError>;
    /// Deletes the record whatever it holds; returns what was there.
    fn delete(&self, server: &str, context_key: &str) -> Result<Option<SessionRecord>, StoreError>;
    /// Every stored session with its remaining TTL, sorted by (server, context).
    fn list(&self) -> Result<Vec<ListedSession>, StoreError>;
    /// Takes the creation lock of `(server, context)` for `ttl` if free.
    fn try_lock(&self, server: &str, context_key: &str, ttl: Duration) -> Result<Option<LockToken>, StoreError>;
    /// Releases a lock this caller holds (a lock that expired and was taken
    /// by someone else is left alone).
    fn unlock(&self, server: &str, context_key: &str, token: &LockToken) -> Result<(), StoreError>;
    /// Registers `hook`, run (on a store thread) each time the store comes
    /// back after being unreachable. The memory store never calls it.
    fn on_recovered(&self, hook: RecoveredHook);
}

/// The Redis connection a configuration names (`redis`; it need not be
/// reachable now): one pool, breaker and probe thread, shared by the session
/// store, the user registry and the rate limits (clones share it). The probe
/// thread is owned by `threads` (it ends at its shutdown).
///
/// Errors: a Redis URL the client cannot use (the message is redacted).
pub fn open_redis(config: &crate::config::Config, threads: &crate::threads::Threads) -> Result<Option<redis::RedisStore>, StoreError> {
    config.redis.as_ref().map(|r| redis::RedisStore::with_threads(r, threads)).transpose()
}

/// The session store over `redis` (else in memory).
pub fn sessions(redis: Option<&redis::RedisStore>) -> std::sync::Arc<dyn SessionStore> {
    match redis {
        Some(r) => std::sync::Arc::new(r.clone()),
        None => std::sync::Arc::new(memory::MemoryStore::new()),
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_notes_format() {
        assert_eq!(session_key("jira", "shared"), "mcp:upstream:session:jira:shared");
        assert_eq!(parse_session_key("mcp:upstream:session:jira:tok:ab12"), Some(("jira", "tok:ab12")));
        assert_eq!(parse_session_key("mcp:upstream:session-meta:jira:shared"), None);
        assert_eq!(parse_session_key("mcp:upstream:session:jira"), None);
    }

    #[test]
    fn context_keys_digest_sorted_credentials() {
        assert_eq!(context_key(&[]), "shared");
        let a = context_key(&[("GITHUB_TOKEN", "ghp_a"), ("JIRA_TOKEN", "j1")]);
        let b = context_key(&[("JIRA_TOKEN", "j1"), ("GITHUB_TOKEN", "ghp_a")]);
        assert_eq!(a, b, "order does not matter");
        assert!(a.starts_with("tok:") && a.len() == 4 + 32, "{a}");
        assert_ne!(a, context_key(&[("GITHUB_TOKEN", "ghp_b"), ("JIRA_TOKEN", "j1")]), "values matter, not only names");
        assert!(!a.contains("ghp_a"));
        // The digest is over NAME=value lines: sha256("GITHUB_TOKEN=x\n").
        let expect = {
            use sha2::{Digest, Sha256};
            hex::encode(Sha256::digest(b"GITHUB_TOKEN=x\n"))
        };
        assert_eq!(context_key(&[("GITHUB_TOKEN", "x")]), format!("tok:{}", &expect[..32]));
    }
}
