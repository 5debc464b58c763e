//! Browser sessions of the users' pages and pending sign-ins (issue 17),
//! kept server-side in [`crate::store::kv`]: in Redis when the hub has one
//! (every instance sees them), else in this process's memory.
//!
//! - A session's cookie value is 32 random bytes, base64url (43 chars); only
//!   its SHA-256 is a key: Redis `mcp:ui:session:<64 hex>` → JSON
//!   [`BrowserSession`], `PX` = the time left before the idle or the
//!   absolute expiry, whichever is first (`auth.sessionIdleSecs`, 8 h;
//!   `auth.sessionMaxSecs`, 7 d). `seenMs` is refreshed at most once a
//!   minute.
//! - A pending sign-in (OIDC / GitHub: the `state` sent to the provider) is
//!   `mcp:ui:login:<sha256(state) hex>` → JSON [`PendingLogin`], 10 minutes,
//!   taken once (read and deleted together).
//!
//! Errors: [`SessionError::Unavailable`] when Redis cannot be reached (the
//! page answers 503); never a cookie value in a message.

use crate::store::kv::{Kv, KvError};
use crate::store::now_ms;
use crate::store::redis::RedisStore;
/// SHA-256 of a cookie value or `state`, 64 lowercase hex (what is stored): the hub keys' digest.
use crate::users::key_digest as digest;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How long a pending sign-in waits for the provider's callback.
pub const LOGIN_TTL: Duration = Duration::from_secs(600);
/// `seenMs` is written back at most this often.
const SEEN_GRANULARITY_MS: u64 = 60_000;

/// One signed-in browser.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BrowserSession {
    /// The hub user it is signed in as.
    pub user: String,
    /// This session's CSRF token (`input[name=csrf]` of every form), 43 chars.
    pub csrf: String,
    /// Sign-in time, ms since the Unix epoch.
    pub created_ms: u64,
    /// Last use, ms since the Unix epoch (refreshed at most once a minute).
    pub seen_ms: u64,
    /// How the person signed in: `oidc`, `github` or `key`.
    pub via: String,
}

/// A sign-in sent to a provider, waiting for its callback.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PendingLogin {
    /// `oidc` or `github`.
    pub provider: String,
    /// The OIDC `nonce` (empty for GitHub).
    pub nonce: String,
    /// The PKCE code verifier (RFC 7636).
    pub pkce_verifier: String,
    /// When it was sent, ms since the Unix epoch.
    pub created_ms: u64,
}

/// Why a session could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Redis is unreachable (or its breaker is open).
    #[error("the session store is unavailable: {0}")]
    Unavailable(String),
}

fn unavailable(e: KvError) -> SessionError {
    let KvError::Unavailable(m) = e;
    SessionError::Unavailable(m)
}

/// 32 OS-random bytes as base64url without padding (43 chars): cookie
/// values, CSRF tokens, `state`, `nonce`, PKCE verifiers.
pub fn random_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(crate::random::bytes::<32>())
}

/// The session store: Redis or memory ([`crate::store::kv::Kv`]). Cheap to clone.
#[derive(Clone)]
pub struct Sessions {
    kv: Kv,
}

impl Sessions {
    /// Sessions in `redis` when given, else in memory.
    pub fn new(redis: Option<RedisStore>) -> Sessions {
        Sessions { kv: Kv::new(redis) }
    }

    /// `redis` or `memory`.
    pub fn kind(&self) -> &'static str {
        self.kv.kind()
    }

    fn put(&self, prefix: &str, key: String, value: String, ttl: Duration) -> Result<(), SessionError> {
        self.kv.set(&format!("mcp:ui:{prefix}:{key}"), &value, ttl.max(Duration::from_millis(1))).map_err(unavailable)
    }

    fn get(&self, prefix: &str, key: &str, take: bool) -> Result<Option<String>, SessionError> {
        let k = format!("mcp:ui:{prefix}:{key}");
        if take { self.kv.take(&k) } else { self.kv.get(&k) }.map_err(unavailable)
    }

    fn delete(&self, prefix: &str, key: &str) -> Result<(), SessionError> {
        self.kv.del(&[format!("mcp:ui:{prefix}:{key}")]).map_err(unavailable)
    }

    /// Starts a session for `user`; returns the cookie value (shown to the
    /// browser only) and the record.
    pub fn create(&self, user: &str, via: &str, idle: Duration) -> Result<(String, BrowserSession), SessionError> {
        let cookie = random_token();
        let now = now_ms();
        let s = BrowserSession { user: user.to_string(), csrf: random_token(), created_ms: now, seen_ms: now, via: via.to_string() };
        let json = serde_json::to_string(&s).unwrap_or_default();
        self.put("session", digest(&cookie), json, idle)?;
        Ok((cookie, s))
    }

    /// The live session of cookie value `cookie`, its `seenMs` refreshed
    /// (at most once a minute); `None` when unknown, idle past `idle` or
    /// older than `max` (then it is deleted).
    pub fn find(&self, cookie: &str, idle: Duration, max: Duration) -> Result<Option<BrowserSession>, SessionError> {
        let key = digest(cookie);
        let Some(json) = self.get("session", &key, false)? else { return Ok(None) };
        let Ok(mut s) = serde_json::from_str::<BrowserSession>(&json) else {
            self.delete("session", &key)?;
            return Ok(None);
        };
        let now = now_ms();
        let (idle_ms, max_ms) = (idle.as_millis() as u64, max.as_millis() as u64);
        if now >= s.seen_ms.saturating_add(idle_ms) || now >= s.created_ms.saturating_add(max_ms) {
            self.delete("session", &key)?;
            return Ok(None);
        }
        if now.saturating_sub(s.seen_ms) >= SEEN_GRANULARITY_MS {
            s.seen_ms = now;
            let left = (now + idle_ms).min(s.created_ms + max_ms) - now;
            self.put("session", key, serde_json::to_string(&s).unwrap_or_default(), Duration::from_millis(left))?;
        }
        Ok(Some(s))
    }

    /// Ends the session of cookie value `cookie` (logout).
    pub fn end(&self, cookie: &str) -> Result<(), SessionError> {
        self.delete("session", &digest(cookie))
    }

    /// Records a pending sign-in under `state` for [`LOGIN_TTL`].
    pub fn put_login(&self, state: &str, login: &PendingLogin) -> Result<(), SessionError> {
        self.put("login", digest(state), serde_json::to_string(login).unwrap_or_default(), LOGIN_TTL)
    }

    /// Takes (reads and deletes) the pending sign-in of `state`, if any and not expired.
    pub fn take_login(&self, state: &str) -> Result<Option<PendingLogin>, SessionError> {
        let Some(json) = self.get("login", &digest(state), true)? else { return Ok(None) };
        let login = serde_json::from_str::<PendingLogin>(&json).ok().filter(|l| now_ms() < l.created_ms + LOGIN_TTL.as_millis() as u64);
        Ok(login)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_found_by_its_cookie_and_ends() {
        let s = Sessions::new(None);
        let (cookie, rec) = s.create("alice", "key", Duration::from_secs(60)).unwrap();
        assert_eq!(cookie.len(), 43);
        let found = s.find(&cookie, Duration::from_secs(60), Duration::from_secs(600)).unwrap().unwrap();
        assert_eq!(found, rec);
        assert!(s.find("nope", Duration::from_secs(60), Duration::from_secs(600)).unwrap().is_none());
        s.end(&cookie).unwrap();
        assert!(s.find(&cookie, Duration::from_secs(60), Duration::from_secs(600)).unwrap().is_none());
    }

    #[test]
    fn an_old_session_is_refused_by_the_absolute_expiry() {
        let s = Sessions::new(None);
        let (cookie, mut rec) = s.create("alice", "key", Duration::from_secs(60)).unwrap();
        rec.created_ms -= 3_600_000;
        s.put("session", digest(&cookie), serde_json::to_string(&rec).unwrap(), Duration::from_secs(60)).unwrap();
        assert!(s.find(&cookie, Duration::from_secs(60), Duration::from_secs(600)).unwrap().is_none());
        rec.created_ms += 3_600_000;
        rec.seen_ms -= 120_000;
        s.put("session", digest(&cookie), serde_json::to_string(&rec).unwrap(), Duration::from_secs(60)).unwrap();
        assert!(s.find(&cookie, Duration::from_secs(60), Duration::from_secs(600)).unwrap().is_none(), "idle past 60 s");
    }

    #[test]
    fn a_pending_login_is_taken_once() {
        let s = Sessions::new(None);
        let l = PendingLogin { provider: "oidc".into(), nonce: "n".into(), pkce_verifier: "v".into(), created_ms: now_ms() };
        s.put_login("st", &l).unwrap();
        assert_eq!(s.take_login("other").unwrap(), None);
        assert_eq!(s.take_login("st").unwrap(), Some(l));
        assert_eq!(s.take_login("st").unwrap(), None);
    }
}
