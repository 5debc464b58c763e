//! Who is calling `/mcp`: the hub key (docs/decisions.md D6), or an OAuth
//! access token (issue 18, `mcphub_at_…`, [`crate::users::oauth`]).
//!
//! A key is accepted as `Authorization: Bearer mcphub_…` or as `?key=…` on
//! the URL (Cursor's form: `http://host:3000/mcp?key=mcphub_…`); an access
//! token only as `Authorization: Bearer` (RFC 6750 §2.1; MCP authorization
//! "Token Requirements": never in the query). No key is
//! fine only while no user exists or with `"allowAnonymous": true`. Every
//! refusal is HTTP 401 with `WWW-Authenticate: Bearer` and a JSON-RPC error
//! (`-32000`, `data.httpStatus` 401) whose message says what to do; the
//! presented key never appears in it or in a log line.

use super::refusal::Refusal;
use super::Hub;
use crate::http::{Request, Response};
use crate::users::User;
use std::sync::Arc;

/// Why a request's key was refused; answered as
/// [`super::refusal::Refusal::Key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRefusal {
    /// No key, and anonymous access is off.
    Missing,
    /// A key that is not (or no longer) a user's.
    Unknown,
    /// `Authorization` with a scheme other than Bearer.
    WrongScheme,
    /// An OAuth access token that is unknown, expired or revoked, or whose
    /// user no longer exists (401, `error="invalid_token"`; RFC 6750 §3.1).
    InvalidToken,
    /// A key this instance does not know while the user store (Redis)
    /// cannot be read: it may be a run-time user's; or no key while the
    /// store has not been read since the start and the config file has no
    /// users, so whether a key is needed cannot be told (issue 14 hole 8). 503.
    StoreUnavailable,
}

/// `Retry-After` seconds of a [`KeyRefusal::StoreUnavailable`] (the user
/// registry polls Redis once a second, [`crate::users::RELOAD_INTERVAL`]).
pub const STORE_RETRY_AFTER_SECS: u64 = 2;

impl KeyRefusal {
    /// The message the client gets: what went wrong and what to do.
    pub fn message(self) -> &'static str {
        match self {
            KeyRefusal::Missing => {
                "Unauthorized: an MCPHub key is required. Send it as 'Authorization: Bearer mcphub_…' or add \
                 '?key=mcphub_…' to the /mcp URL (Cursor: \"url\": \"http://HOST:3000/mcp?key=mcphub_…\"). \
                 Your MCPHub admin issues keys (mcphub keygen, or POST /api/admin/users/NAME/keys)."
            }
            KeyRefusal::Unknown => {
                "Unauthorized: this MCPHub key is unknown or revoked. Check the key was copied whole \
                 (mcphub_ followed by 64 hex characters, no quotes or spaces) or ask your MCPHub admin for a new one."
            }
            KeyRefusal::InvalidToken => {
                "Unauthorized: this OAuth access token is invalid, expired or revoked. Refresh it, or sign in again \
                 (your MCP client does this when it supports OAuth)."
            }
            KeyRefusal::WrongScheme => {
                "Unauthorized: send the MCPHub key as 'Authorization: Bearer mcphub_…' (other schemes are not accepted) \
                 or as '?key=mcphub_…' on the URL."
            }
            KeyRefusal::StoreUnavailable => {
                "Service unavailable: the MCPHub user store (Redis) cannot be read, so MCPHub cannot check keys (or whether one is needed) now. \
                 Retry shortly; if it lasts, ask your MCPHub admin to check Redis."
            }
        }
    }

    /// The answer: 401 with `WWW-Authenticate: Bearer`, or for
    /// `StoreUnavailable` 503 with `Retry-After` ([`STORE_RETRY_AFTER_SECS`]).
    pub fn response(self) -> Response {
        Refusal::Key(self).response(None)
    }
}

/// The key a request presents: `Authorization: Bearer …`, else `?key=…`.
///
/// Errors: `WrongScheme` for another `Authorization` scheme.
pub fn presented_key(req: &Request) -> Result<Option<String>, KeyRefusal> {
    if let Some(auth) = req.header("Authorization") {
        let auth = auth.trim();
        let (scheme, rest) = auth.split_once(' ').unwrap_or((auth, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(KeyRefusal::WrongScheme);
        }
        return Ok(Some(rest.trim().to_string()));
    }
    Ok(req.query("key").map(|k| k.trim().to_string()))
}

/// Who a `/mcp` request comes from.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The user; `None` for an anonymous request the hub serves.
    pub user: Option<Arc<User>>,
    /// The granted scopes (space-separated) when the credential is an OAuth
    /// access token; `None` for a hub key (which may do everything its user may).
    pub scope: Option<String>,
}

impl Caller {
    /// Whether the caller may send `method` (a hub key may send any; an
    /// access token needs `mcp` for `tools/call`, `mcp:read` does the rest;
    /// issue 18, "step-up").
    pub fn may_send(&self, method: &str) -> bool {
        !self.limited() || (self.has(super::oauth::SCOPE_READ) && method != "tools/call")
    }

    /// Whether some method may be refused: an access token without `mcp`.
    /// Only then does the `/mcp` edge read the body's methods ([`Caller::may_send`]).
    pub fn limited(&self) -> bool {
        self.scope.is_some() && !self.has(super::oauth::SCOPE_MCP)
    }

    fn has(&self, scope: &str) -> bool {
        self.scope.as_deref().is_some_and(|granted| granted.split(' ').any(|g| g == scope))
    }
}

/// The caller of a `/mcp` request.
///
/// Errors: every [`KeyRefusal`]; an access token (`mcphub_at_…`) sent as
/// `?key=` is refused as `Unknown`.
pub fn authenticate(hub: &Hub, req: &Request) -> Result<Caller, KeyRefusal> {
    let presented = presented_key(req)?;
    if let Some(token) = presented.as_deref().filter(|k| k.starts_with(crate::users::oauth::ACCESS_PREFIX)) {
        if req.header("Authorization").is_none() || !hub.config().auth.oauth.enabled {
            return Err(KeyRefusal::Unknown);
        }
        return match hub.oauth().store().access(token) {
            Ok(Some(grant)) => match hub.users().get(&grant.user) {
                Some(user) => Ok(Caller { user: Some(user), scope: Some(grant.scope) }),
                None => Err(KeyRefusal::InvalidToken),
            },
            Ok(None) => Err(KeyRefusal::InvalidToken),
            Err(_) => Err(KeyRefusal::StoreUnavailable),
        };
    }
    let user = match presented {
        Some(key) if !key.is_empty() => match hub.users().authenticate_checked(&key) {
            Ok(Some(user)) => Ok(Some(user)),
            Ok(None) => Err(KeyRefusal::Unknown),
            Err(_) => Err(KeyRefusal::StoreUnavailable),
        },
        _ => match hub.users().anonymous_access() {
            Ok(true) => Ok(None),
            Ok(false) => Err(KeyRefusal::Missing),
            Err(_) => Err(KeyRefusal::StoreUnavailable),
        },
    }?;
    Ok(Caller { user, scope: None })
}

/// Constant-time equality of two secrets (lives in `users`, below the hub,
/// so the OAuth records' PKCE check shares it).
pub use crate::users::same_secret;

/// Whether `user` may see and call `server` at all (its allow-list); token
/// checks come after ([`crate::upstream::Upstream::missing_tokens`]).
pub fn may_use(user: Option<&User>, server: &str) -> bool {
    user.is_none_or(|u| u.may_use(server))
}

/// What a failed authentication presented, for `/metrics`
/// (`mcphub_auth_failures_total{kind}`) and the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// A hub key on `/mcp` or `/api/me` that is no user's (or another scheme).
    HubKey,
    /// A credential on `/api/admin/*` that is no admin key nor `adminToken`.
    Admin,
}

impl FailureKind {
    /// The `kind` label: `hub_key` or `admin`.
    pub fn label(self) -> &'static str {
        match self {
            FailureKind::HubKey => "hub_key",
            FailureKind::Admin => "admin",
        }
    }
}

/// Failures from one source address within [`FAILURE_WINDOW`] after which
/// the source is throttled (issue 14 hole 10).
pub const MAX_FAILURES: u32 = 20;
/// The window failures are counted in, the least time between two log lines
/// about one source, and how long a throttled source is refused.
pub const FAILURE_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);
/// Most source addresses tracked at once; beyond, a new source is counted in
/// `/metrics` but neither logged on its own nor throttled until entries age out.
pub const MAX_SOURCES: usize = 10_000;

#[derive(Debug)]
struct Source {
    /// Start of the current counting window and the failures in it.
    window: (std::time::Instant, u32),
    /// Refused with 429 until then.
    blocked_until: Option<std::time::Instant>,
    /// When the last log line about this source was written, and the
    /// failures since (the next line's count).
    logged: Option<std::time::Instant>,
    unlogged: u64,
}

/// Failed authentications by source address (issue 14 hole 10): counted
/// per kind for `/metrics`, logged at most once per source per
/// [`FAILURE_WINDOW`] with a count (never the credential), and a source
/// with [`MAX_FAILURES`] failures in a window is refused with 429 +
/// `Retry-After` for a window — before its credential is even checked, so
/// guessing stops; other addresses are not affected.
///
/// Why not `governor`: its keyed GCRA would give the rate, but the
/// block-for-a-minute and the per-source log counts need a per-source
/// entry anyway; one bounded map ([`MAX_SOURCES`]) does all three. The
/// source is the TCP peer (a reverse proxy in front makes every client one
/// source; `X-Forwarded-For` is not trusted).
#[derive(Debug, Default)]
pub struct Failures {
    sources: parking_lot::Mutex<std::collections::HashMap<std::net::IpAddr, Source>>,
    hub_key: std::sync::atomic::AtomicU64,
    admin: std::sync::atomic::AtomicU64,
    /// Whether any source was ever throttled: until then every request's
    /// [`Failures::throttled`] skips the map's lock.
    any_blocked: std::sync::atomic::AtomicBool,
}

impl Failures {
    /// `Some(seconds)` to wait while `ip` is throttled, else `None`.
    pub fn throttled(&self, ip: std::net::IpAddr) -> Option<u64> {
        if !self.any_blocked.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        let now = std::time::Instant::now();
        let sources = self.sources.lock();
        let until = sources.get(&ip)?.blocked_until.filter(|u| *u > now)?;
        Some(until.duration_since(now).as_secs_f64().ceil().max(1.0) as u64)
    }

    /// Records one failed authentication from `ip`.
    pub fn record(&self, ip: std::net::IpAddr, kind: FailureKind) {
        use std::sync::atomic::Ordering::Relaxed;
        match kind {
            FailureKind::HubKey => self.hub_key.fetch_add(1, Relaxed),
            FailureKind::Admin => self.admin.fetch_add(1, Relaxed),
        };
        let now = std::time::Instant::now();
        let mut sources = self.sources.lock();
        if !sources.contains_key(&ip) && sources.len() >= MAX_SOURCES {
            sources.retain(|_, s| now.duration_since(s.window.0) < FAILURE_WINDOW || s.blocked_until.is_some_and(|u| u > now));
            if sources.len() >= MAX_SOURCES {
                return;
            }
        }
        let s = sources.entry(ip).or_insert(Source { window: (now, 0), blocked_until: None, logged: None, unlogged: 0 });
        if now.duration_since(s.window.0) >= FAILURE_WINDOW {
            s.window = (now, 0);
        }
        s.window.1 += 1;
        s.unlogged += 1;
        if s.logged.is_none_or(|t| now.duration_since(t) >= FAILURE_WINDOW) {
            log::warn!("auth: {} failed authentication(s) from {ip} (last: {})", s.unlogged, kind.label());
            s.logged = Some(now);
            s.unlogged = 0;
        }
        if s.window.1 >= MAX_FAILURES && s.blocked_until.is_none_or(|u| u <= now) {
            s.blocked_until = Some(now + FAILURE_WINDOW);
            self.any_blocked.store(true, Relaxed);
            log::warn!("auth: {ip} throttled for {} s after {} failed authentications within {} s", FAILURE_WINDOW.as_secs(), s.window.1, FAILURE_WINDOW.as_secs());
        }
    }

    /// `(kind label, failures)` since the start, for `/metrics`.
    pub fn counts(&self) -> [(&'static str, u64); 2] {
        use std::sync::atomic::Ordering::Relaxed;
        [("hub_key", self.hub_key.load(Relaxed)), ("admin", self.admin.load(Relaxed))]
    }
}

/// The 429 a throttled source gets on `/mcp` (JSON-RPC error, `-32000`).
pub fn throttled_response(retry_after_secs: u64) -> Response {
    Refusal::AuthThrottled { retry_after_secs }.response(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_in_full() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd") && !same_secret(b"abc", b"ab") && !same_secret(b"", b"a"));
    }

    #[test]
    fn a_source_is_throttled_after_max_failures_and_others_are_not() {
        let f = Failures::default();
        let (bad, good): (std::net::IpAddr, std::net::IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..MAX_FAILURES - 1 {
            f.record(bad, FailureKind::HubKey);
        }
        assert_eq!(f.throttled(bad), None, "one failure short");
        f.record(bad, FailureKind::Admin);
        let wait = f.throttled(bad).expect("throttled at MAX_FAILURES");
        assert!((1..=FAILURE_WINDOW.as_secs()).contains(&wait), "{wait}");
        assert_eq!(f.throttled(good), None);
        assert_eq!(f.counts(), [("hub_key", 19), ("admin", 1)]);
    }

    #[test]
    fn tracked_sources_are_bounded() {
        let f = Failures::default();
        for i in 0..(MAX_SOURCES as u32 + 50) {
            f.record(std::net::IpAddr::V4(std::net::Ipv4Addr::from(i)), FailureKind::HubKey);
        }
        assert_eq!(f.sources.lock().len(), MAX_SOURCES);
        assert_eq!(f.counts()[0].1, MAX_SOURCES as u64 + 50, "every failure is counted");
    }
}
