//! OAuth 2.1 grants for MCP clients (issue 18): registered clients,
//! consents, authorization codes, and the token families of access and
//! refresh tokens — the records behind the endpoints of `crate::hub::oauth`.
//! Kept in [`crate::store::kv::Kv`]: Redis when configured (every instance
//! accepts every token), else memory.
//!
//! Tokens are opaque: `mcphub_at_` / `mcphub_rt_` + 64 hex (256 random
//! bits); a code is 43 base64url chars. Only SHA-256 digests are keys
//! (like hub keys, [`crate::users::key_digest`]).
//!
//! Records (Redis keys; the same names in memory):
//! - `mcp:oauth:client:<client_id>` → JSON [`RegisteredClient`] (DCR,
//!   RFC 7591), living `clientUnusedSecs` after its last use; the bounded
//!   list `mcp:oauth:clients` ([`crate::store::kv::Kv::bounded_add`], at
//!   most `maxClients`).
//! - `mcp:oauth:code:<digest>` → JSON [`CodeGrant`], `codeSecs`, taken once
//!   (`GETDEL`); once used, `mcp:oauth:usedcode:<digest>` → the family id,
//!   so a second use revokes the tokens the first gave (OAuth 2.1 §4.1.3).
//! - `mcp:oauth:family:<id>` → JSON [`Family`] (one authorization: user,
//!   client, scope, resource, the current refresh token's digest), and
//!   `mcp:oauth:family:<id>:tokens` (set of every token digest issued in it,
//!   so revoking the family deletes them all); `refreshTokenSecs`.
//! - `mcp:oauth:at:<digest>` → JSON [`AccessGrant`], `accessTokenSecs`.
//! - `mcp:oauth:rt:<digest>` → family id; a refresh token is used once:
//!   `SET mcp:oauth:rtused:<digest> NX` claims it, and a second use (a
//!   replay, or a race) revokes the whole family (OAuth 2.1 §4.3.1,
//!   "refresh token rotation").
//! - `mcp:oauth:revoked:<id>` → `1` for 10 minutes after a family is
//!   revoked: a token request racing the revocation (a replayed code or
//!   refresh token arriving while the first use is still writing its tokens)
//!   reads it after writing and deletes what it wrote.
//! - `mcp:oauth:user:<user>:families` (set of family ids) and
//!   `mcp:oauth:consent:<user>` (hash client id → JSON [`ConnectedApp`]):
//!   the user's connected apps; revoking one, or deleting the user, revokes
//!   their families.

use super::{key_digest, same_secret};
use crate::config::auth::OauthConfig;
use crate::store::kv::{Kv, KvError};
use crate::store::now_ms;
use crate::store::redis::RedisStore;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The access-token prefix (then 64 hex).
pub const ACCESS_PREFIX: &str = "mcphub_at_";
/// The refresh-token prefix (then 64 hex).
pub const REFRESH_PREFIX: &str = "mcphub_rt_";

/// A client registered by Dynamic Client Registration (RFC 7591 §3.2.1).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RegisteredClient {
    /// The hub-assigned id (`mcphub_client_` + 32 hex).
    pub client_id: String,
    /// `client_name`, as the client declared it (not verified).
    pub client_name: Option<String>,
    /// `redirect_uris` (at least one).
    pub redirect_uris: Vec<String>,
    /// `none`, `client_secret_basic` or `client_secret_post`.
    pub token_endpoint_auth_method: String,
    /// SHA-256 hex of the client secret (absent for `none`).
    pub secret_digest: Option<String>,
    /// `client_uri`, if declared.
    pub client_uri: Option<String>,
    /// Registration time, ms since the Unix epoch.
    pub created_ms: u64,
}

/// What a person approved at `/oauth/authorize`, bound to one code.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CodeGrant {
    /// The client.
    pub client_id: String,
    /// Its display name at approval time (for the connected apps list).
    pub client_name: String,
    /// The hub user who approved.
    pub user: String,
    /// The `redirect_uri` of the authorization request (the token request must repeat it).
    pub redirect_uri: String,
    /// The PKCE `code_challenge` (S256, RFC 7636 §4.2).
    pub code_challenge: String,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// The resource (RFC 8707): this hub's `/mcp` URL.
    pub resource: String,
}

/// One authorization's token family: its access and refresh tokens.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Family {
    /// 32 hex.
    pub id: String,
    /// The hub user.
    pub user: String,
    /// The client.
    pub client_id: String,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// The resource the tokens are for.
    pub resource: String,
    /// The digest of the one refresh token that may be used next.
    pub refresh_digest: String,
    /// When the code was exchanged, ms since the Unix epoch.
    pub created_ms: u64,
}

/// What an access token grants: who, through which client, with what scope.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AccessGrant {
    /// The hub user.
    pub user: String,
    /// The client.
    pub client_id: String,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// The resource the token is for.
    pub resource: String,
    /// The family it belongs to.
    pub family: String,
    /// Expiry, ms since the Unix epoch.
    pub expires_ms: u64,
}

impl AccessGrant {
    /// Whether `scope` is among the granted scopes.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.split(' ').any(|s| s == scope)
    }
}

/// A client a user approved: the "Connected apps" of the Keys page.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ConnectedApp {
    /// The client id (a URL for a metadata-document client).
    pub client_id: String,
    /// Its display name at approval.
    pub client_name: String,
    /// Approved scopes, space-separated (a later request within them skips the consent page).
    pub scope: String,
    /// First approval, ms since the Unix epoch.
    pub consented_ms: u64,
    /// Last time one of its tokens was used or refreshed (noted at most once a minute).
    pub last_used_ms: Option<u64>,
}

/// The tokens of a successful token request (RFC 6749 §5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPair {
    /// The hub user the tokens act for (for the endpoint's log line; not sent).
    pub user: String,
    /// `access_token`.
    pub access_token: String,
    /// `refresh_token`.
    pub refresh_token: String,
    /// `expires_in`, seconds.
    pub expires_in: u64,
    /// `scope`.
    pub scope: String,
}

/// Why a token request failed; the endpoint maps it to RFC 6749 §5.2.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// `invalid_grant`: the code or refresh token is unknown, expired, used,
    /// revoked, or not this client's; the PKCE verifier or `redirect_uri`
    /// does not match. The text is the `error_description` (no secret in it).
    #[error("invalid_grant: {0}")]
    InvalidGrant(&'static str),
    /// `invalid_scope`: a refresh asked for more than was granted.
    #[error("invalid_scope")]
    InvalidScope,
    /// `invalid_target`: the `resource` is not the one granted (RFC 8707 §2).
    #[error("invalid_target")]
    InvalidTarget,
    /// The store is unreachable (answered 503, `temporarily_unavailable`).
    #[error(transparent)]
    Unavailable(#[from] KvError),
}

/// How long a used code's `usedcode` marker (and a revoked family's
/// `revoked` marker) is kept: longer than any code lives and any token
/// request takes.
const MARKER_TTL: Duration = Duration::from_secs(600);
/// `lastUsedMs` of a connected app, and a client's unused-expiry, are
/// written at most this often (per family, per client).
const NOTE_EVERY_MS: u64 = 60_000;
/// Most entries of each in-memory "noted lately" gate; beyond, old ones go.
const GATE_CAP: usize = 10_000;
/// The key prefix of every record.
const PREFIX: &str = "mcp:oauth:";

fn key(rest: &str) -> String {
    format!("{PREFIX}{rest}")
}

/// `prefix` + 64 hex from 256 OS-random bits.
fn new_token(prefix: &str) -> String {
    format!("{prefix}{}", crate::random::hex::<32>())
}

/// Whether `v` is a PKCE code verifier: 43..=128 of `[A-Za-z0-9-._~]` (RFC 7636 §4.1).
fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// The S256 challenge of `verifier`: base64url-nopad(SHA-256(verifier)) (RFC 7636 §4.2).
fn s256(verifier: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

/// `a` and `b` equal, a trailing `/` aside (the resource URL).
fn same_resource(a: &str, b: &str) -> bool {
    a.strip_suffix('/').unwrap_or(a) == b.strip_suffix('/').unwrap_or(b)
}

/// A "noted at most once a minute" gate: whether `id` is due, marked noted if so.
fn due(gate: &Mutex<HashMap<String, u64>>, id: &str, now: u64) -> bool {
    let mut g = gate.lock();
    if g.get(id).is_some_and(|t| now.saturating_sub(*t) < NOTE_EVERY_MS) {
        return false;
    }
    if g.len() >= GATE_CAP && !g.contains_key(id) {
        g.retain(|_, t| now.saturating_sub(*t) < NOTE_EVERY_MS);
        if g.len() >= GATE_CAP {
            g.clear();
        }
    }
    g.insert(id.to_string(), now);
    true
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// The OAuth records. Cheap to clone.
#[derive(Clone)]
pub struct OauthStore {
    kv: Kv,
    config: Arc<RwLock<OauthConfig>>,
    /// Family id → when its consent's `lastUsedMs` was last noted here.
    family_noted: Arc<Mutex<HashMap<String, u64>>>,
    /// Client id → when its unused-expiry was last restarted here.
    client_noted: Arc<Mutex<HashMap<String, u64>>>,
}

impl OauthStore {
    /// Records in `redis` when given, else in memory; lifetimes from `config`.
    pub fn new(redis: Option<RedisStore>, config: &OauthConfig) -> OauthStore {
        OauthStore {
            kv: Kv::new(redis),
            config: Arc::new(RwLock::new(config.clone())),
            family_noted: Default::default(),
            client_noted: Default::default(),
        }
    }

    /// Adopts new lifetimes (a reload); records already written keep theirs.
    pub fn set_config(&self, config: &OauthConfig) {
        *self.config.write() = config.clone();
    }

    fn config(&self) -> OauthConfig {
        self.config.read().clone()
    }

    /// Registers a DCR client (its id already assigned). `Ok(false)` when
    /// `maxClients` live registrations exist.
    pub fn register_client(&self, client: &RegisteredClient) -> Result<bool, KvError> {
        let c = self.config();
        let expires = now_ms() + c.client_unused.as_millis() as u64;
        if !self.kv.bounded_add(&key("clients"), &client.client_id, expires, c.max_clients)? {
            return Ok(false);
        }
        self.kv.set(&key(&format!("client:{}", client.client_id)), &json(client), c.client_unused)?;
        Ok(true)
    }

    /// A registered client by id; its unused-expiry restarts (at most once a minute).
    pub fn client(&self, client_id: &str) -> Result<Option<RegisteredClient>, KvError> {
        let k = key(&format!("client:{client_id}"));
        let Some(text) = self.kv.get(&k)? else { return Ok(None) };
        let Ok(client) = serde_json::from_str::<RegisteredClient>(&text) else { return Ok(None) };
        let now = now_ms();
        if due(&self.client_noted, client_id, now) {
            let unused = self.config().client_unused;
            self.kv.set(&k, &text, unused)?;
            self.kv.bounded_add(&key("clients"), client_id, now + unused.as_millis() as u64, usize::MAX)?;
        }
        Ok(Some(client))
    }

    /// The user's consent to `client_id`, if any.
    pub fn consent(&self, user: &str, client_id: &str) -> Result<Option<ConnectedApp>, KvError> {
        let text = self.kv.hash_get(&key(&format!("consent:{user}")), client_id)?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    /// Records (or widens) the user's consent to `client_id` for `scope`.
    pub fn remember_consent(&self, user: &str, client_id: &str, client_name: &str, scope: &str) -> Result<(), KvError> {
        let app = match self.consent(user, client_id)? {
            Some(mut app) => {
                for s in scope.split(' ').filter(|s| !s.is_empty()) {
                    if !app.scope.split(' ').any(|g| g == s) {
                        app.scope = if app.scope.is_empty() { s.to_string() } else { format!("{} {s}", app.scope) };
                    }
                }
                app.client_name = client_name.to_string();
                app
            }
            None => ConnectedApp {
                client_id: client_id.to_string(),
                client_name: client_name.to_string(),
                scope: scope.to_string(),
                consented_ms: now_ms(),
                last_used_ms: None,
            },
        };
        self.kv.hash_set(&key(&format!("consent:{user}")), client_id, &json(&app), self.config().refresh_token)
    }

    /// The user's connected apps, most recently used first.
    pub fn connected_apps(&self, user: &str) -> Result<Vec<ConnectedApp>, KvError> {
        let mut apps: Vec<ConnectedApp> =
            self.kv.hash_all(&key(&format!("consent:{user}")))?.iter().filter_map(|(_, v)| serde_json::from_str(v).ok()).collect();
        // Used ones first (latest first), then never-used ones (latest consent first).
        apps.sort_by(|a, b| (b.last_used_ms, b.consented_ms).cmp(&(a.last_used_ms, a.consented_ms)).then_with(|| a.client_id.cmp(&b.client_id)));
        Ok(apps)
    }

    /// Forgets the user's consent to `client_id` and revokes every token
    /// family of that user and client (their tokens stop working at once).
    pub fn revoke_app(&self, user: &str, client_id: &str) -> Result<(), KvError> {
        self.kv.hash_del(&key(&format!("consent:{user}")), client_id)?;
        let families = key(&format!("user:{user}:families"));
        for fid in self.kv.set_members(&families)? {
            match self.family(&fid)? {
                Some(f) if f.client_id == client_id => self.revoke_family(&fid)?,
                Some(_) => {}
                None => self.kv.set_remove(&families, &fid)?,
            }
        }
        Ok(())
    }

    /// Revokes everything of `user` (the user was deleted).
    pub fn revoke_user(&self, user: &str) -> Result<(), KvError> {
        let families = key(&format!("user:{user}:families"));
        for fid in self.kv.set_members(&families)? {
            self.revoke_family(&fid)?;
        }
        self.kv.del(&[families, key(&format!("consent:{user}"))])
    }

    /// Issues a one-time code for `grant`, valid `codeSecs`.
    pub fn issue_code(&self, grant: &CodeGrant) -> Result<String, KvError> {
        use base64::Engine as _;
        let code = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(crate::random::bytes::<32>());
        self.kv.set(&key(&format!("code:{}", key_digest(&code))), &json(grant), self.config().code)?;
        Ok(code)
    }

    /// Exchanges a code (RFC 6749 §4.1.3, PKCE RFC 7636 §4.6): the code must
    /// be live and `client_id`'s, `redirect_uri` the one of the request,
    /// `code_verifier` hash to its challenge, `resource` (when sent) the
    /// granted one. A code used twice revokes the family the first use made.
    ///
    /// Order: the code is taken (`GETDEL`) and marked used before any check,
    /// so a failed exchange spends it too (no tokens).
    pub fn exchange_code(
        &self,
        code: &str,
        client_id: &str,
        redirect_uri: &str,
        code_verifier: &str,
        resource: Option<&str>,
    ) -> Result<TokenPair, TokenError> {
        let d = key_digest(code);
        let Some(text) = self.kv.take(&key(&format!("code:{d}")))? else {
            return match self.kv.get(&key(&format!("usedcode:{d}")))? {
                Some(fid) => {
                    self.revoke_family(&fid)?;
                    Err(TokenError::InvalidGrant("authorization code was already used; the tokens issued for it are revoked"))
                }
                None => Err(TokenError::InvalidGrant("unknown or expired authorization code")),
            };
        };
        let fid = crate::random::hex::<16>();
        self.kv.set(&key(&format!("usedcode:{d}")), &fid, MARKER_TTL)?;
        let Ok(grant) = serde_json::from_str::<CodeGrant>(&text) else {
            return Err(TokenError::InvalidGrant("unknown or expired authorization code"));
        };
        if grant.client_id != client_id {
            return Err(TokenError::InvalidGrant("the authorization code was issued to another client"));
        }
        if grant.redirect_uri != redirect_uri {
            return Err(TokenError::InvalidGrant("redirect_uri does not match the authorization request"));
        }
        if !valid_verifier(code_verifier) || !same_secret(s256(code_verifier).as_bytes(), grant.code_challenge.as_bytes()) {
            return Err(TokenError::InvalidGrant("code_verifier does not match the code_challenge"));
        }
        if resource.is_some_and(|r| !same_resource(r, &grant.resource)) {
            return Err(TokenError::InvalidTarget);
        }
        let family = Family {
            id: fid,
            user: grant.user,
            client_id: grant.client_id,
            scope: grant.scope,
            resource: grant.resource,
            refresh_digest: String::new(),
            created_ms: now_ms(),
        };
        self.issue(family)
    }

    /// Rotates a refresh token (OAuth 2.1 §4.3): a new access and refresh
    /// token; the presented one is spent, and presenting a spent one
    /// revokes its family. `scope`, when sent, must be within the granted.
    ///
    /// Order: the token is claimed (`SET rtused NX`) before the family,
    /// client, scope and resource checks, so a refused refresh spends it.
    pub fn refresh(&self, refresh_token: &str, client_id: &str, scope: Option<&str>, resource: Option<&str>) -> Result<TokenPair, TokenError> {
        let d = key_digest(refresh_token);
        let fid = match refresh_token.starts_with(REFRESH_PREFIX) {
            true => self.kv.get(&key(&format!("rt:{d}")))?,
            false => None,
        };
        let Some(fid) = fid else { return Err(TokenError::InvalidGrant("unknown or expired refresh token")) };
        let Some(family) = self.family(&fid)? else { return Err(TokenError::InvalidGrant("the grant of this refresh token was revoked")) };
        if family.refresh_digest != d {
            // A rotated-out token presented again: a replay (OAuth 2.1 §4.3.1).
            self.revoke_family(&fid)?;
            return Err(TokenError::InvalidGrant("refresh token was already used; its grant is revoked"));
        }
        // A request refused for its client, scope or resource does not spend
        // the token (the rightful client's next refresh must not look like a replay).
        if family.client_id != client_id {
            return Err(TokenError::InvalidGrant("the refresh token was issued to another client"));
        }
        if let Some(asked) = scope {
            if !asked.split(' ').filter(|s| !s.is_empty()).all(|s| family.scope.split(' ').any(|g| g == s)) {
                return Err(TokenError::InvalidScope);
            }
        }
        if resource.is_some_and(|r| !same_resource(r, &family.resource)) {
            return Err(TokenError::InvalidTarget);
        }
        // The claim: of two uses racing (two instances), one wins; the other is a replay.
        if !self.kv.set_nx(&key(&format!("rtused:{d}")), &fid, self.config().refresh_token)? {
            self.revoke_family(&fid)?;
            return Err(TokenError::InvalidGrant("refresh token was already used; its grant is revoked"));
        }
        self.issue(family)
    }

    /// Revokes a token (RFC 7009 §2.1): an access token alone; a refresh
    /// token with its family. A token that is unknown or another client's
    /// is ignored (`Ok`, as §2.2 asks).
    pub fn revoke_token(&self, token: &str, client_id: &str) -> Result<(), KvError> {
        let d = key_digest(token);
        if token.starts_with(ACCESS_PREFIX) {
            let k = key(&format!("at:{d}"));
            let grant = self.kv.get(&k)?.and_then(|t| serde_json::from_str::<AccessGrant>(&t).ok());
            if let Some(g) = grant.filter(|g| g.client_id == client_id) {
                self.kv.del(&[k])?;
                self.kv.set_remove(&key(&format!("family:{}:tokens", g.family)), &format!("at:{d}"))?;
            }
        } else if token.starts_with(REFRESH_PREFIX) {
            if let Some(fid) = self.kv.get(&key(&format!("rt:{d}")))? {
                if self.family(&fid)?.is_some_and(|f| f.client_id == client_id) {
                    self.revoke_family(&fid)?;
                }
            }
        }
        Ok(())
    }

    /// What a live access token grants, or `None` (unknown, expired, revoked).
    /// Notes the connected app's `lastUsedMs` at most once a minute per family.
    pub fn access(&self, token: &str) -> Result<Option<AccessGrant>, KvError> {
        if !token.starts_with(ACCESS_PREFIX) {
            return Ok(None);
        }
        let Some(text) = self.kv.get(&key(&format!("at:{}", key_digest(token))))? else { return Ok(None) };
        let Some(grant) = serde_json::from_str::<AccessGrant>(&text).ok() else { return Ok(None) };
        let now = now_ms();
        if grant.expires_ms <= now {
            return Ok(None);
        }
        if due(&self.family_noted, &grant.family, now) {
            // Best effort: a failed note does not refuse the token.
            let _ = self.note_used(&grant.user, &grant.client_id, now);
        }
        Ok(Some(grant))
    }

    /// Sets `lastUsedMs` of the user's consent to `client_id` (when there is one).
    fn note_used(&self, user: &str, client_id: &str, now: u64) -> Result<(), KvError> {
        let Some(mut app) = self.consent(user, client_id)? else { return Ok(()) };
        app.last_used_ms = Some(now);
        self.kv.hash_set(&key(&format!("consent:{user}")), client_id, &json(&app), self.config().refresh_token)
    }

    fn family(&self, fid: &str) -> Result<Option<Family>, KvError> {
        Ok(self.kv.get(&key(&format!("family:{fid}")))?.and_then(|t| serde_json::from_str(&t).ok()))
    }

    /// Issues a new access and refresh token in `family` and writes it with
    /// the new refresh token's digest. The tokens join the family's set
    /// before they are written, and the `revoked` marker is read after, so a
    /// revocation racing this (a replayed code or refresh token) either
    /// deletes them or is seen here (then they are deleted, `invalid_grant`).
    fn issue(&self, mut family: Family) -> Result<TokenPair, TokenError> {
        let c = self.config();
        let (access, refresh) = (new_token(ACCESS_PREFIX), new_token(REFRESH_PREFIX));
        let (ad, rd) = (key_digest(&access), key_digest(&refresh));
        let tokens = key(&format!("family:{}:tokens", family.id));
        self.kv.set_add(&tokens, &format!("at:{ad}"), c.refresh_token)?;
        self.kv.set_add(&tokens, &format!("rt:{rd}"), c.refresh_token)?;
        let now = now_ms();
        let grant = AccessGrant {
            user: family.user.clone(),
            client_id: family.client_id.clone(),
            scope: family.scope.clone(),
            resource: family.resource.clone(),
            family: family.id.clone(),
            expires_ms: now + c.access_token.as_millis() as u64,
        };
        self.kv.set(&key(&format!("at:{ad}")), &json(&grant), c.access_token)?;
        self.kv.set(&key(&format!("rt:{rd}")), &family.id, c.refresh_token)?;
        family.refresh_digest = rd;
        self.kv.set(&key(&format!("family:{}", family.id)), &json(&family), c.refresh_token)?;
        self.kv.set_add(&key(&format!("user:{}:families", family.user)), &family.id, c.refresh_token)?;
        if self.kv.get(&key(&format!("revoked:{}", family.id)))?.is_some() {
            self.revoke_family(&family.id)?;
            return Err(TokenError::InvalidGrant("the grant was revoked"));
        }
        if due(&self.family_noted, &family.id, now) {
            let _ = self.note_used(&family.user, &family.client_id, now);
        }
        Ok(TokenPair { user: family.user.clone(), access_token: access, refresh_token: refresh, expires_in: c.access_token.as_secs(), scope: family.scope })
    }

    /// Revokes family `fid`: marks it revoked (for a racing [`Self::issue`]),
    /// deletes its record, every token of it and its set, and drops it from
    /// its user's families.
    fn revoke_family(&self, fid: &str) -> Result<(), KvError> {
        self.kv.set(&key(&format!("revoked:{fid}")), "1", MARKER_TTL)?;
        let tokens = key(&format!("family:{fid}:tokens"));
        let family = self.family(fid)?;
        let mut keys: Vec<String> = self.kv.set_members(&tokens)?.iter().map(|m| key(m)).collect();
        keys.push(key(&format!("family:{fid}")));
        keys.push(tokens);
        self.kv.del(&keys)?;
        if let Some(f) = family {
            self.kv.set_remove(&key(&format!("user:{}:families", f.user)), fid)?;
        }
        self.family_noted.lock().remove(fid);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESOURCE: &str = "http://127.0.0.1:3000/mcp";
    const REDIRECT: &str = "http://127.0.0.1:5555/callback";
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

    fn store() -> OauthStore {
        OauthStore::new(None, &OauthConfig::default())
    }

    fn grant(scope: &str) -> CodeGrant {
        CodeGrant {
            client_id: "app".into(),
            client_name: "App".into(),
            user: "alice".into(),
            redirect_uri: REDIRECT.into(),
            code_challenge: s256(VERIFIER),
            scope: scope.into(),
            resource: RESOURCE.into(),
        }
    }

    /// A code for alice's `app` exchanged at once.
    fn tokens(s: &OauthStore) -> TokenPair {
        let code = s.issue_code(&grant("mcp")).unwrap();
        s.exchange_code(&code, "app", REDIRECT, VERIFIER, Some(RESOURCE)).unwrap()
    }

    fn invalid_grant<T: std::fmt::Debug>(r: Result<T, TokenError>) -> &'static str {
        match r {
            Err(TokenError::InvalidGrant(d)) => d,
            other => panic!("expected invalid_grant, got {other:?}"),
        }
    }

    fn wait(what: &str, done: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn the_rfc_7636_example_challenge() {
        assert_eq!(s256(VERIFIER), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert!(valid_verifier(VERIFIER) && !valid_verifier("short") && !valid_verifier(&format!("{VERIFIER}!")));
    }

    #[test]
    fn code_to_tokens_to_access_to_refresh_to_access() {
        let s = store();
        s.remember_consent("alice", "app", "App", "mcp").unwrap();
        let code = s.issue_code(&grant("mcp")).unwrap();
        assert_eq!(code.len(), 43);
        let t = s.exchange_code(&code, "app", REDIRECT, VERIFIER, Some(RESOURCE)).unwrap();
        assert!(t.access_token.starts_with(ACCESS_PREFIX) && t.access_token.len() == 74, "{}", t.access_token);
        assert!(t.refresh_token.starts_with(REFRESH_PREFIX) && t.refresh_token.len() == 74);
        assert_eq!((t.expires_in, t.scope.as_str()), (3600, "mcp"));
        let g = s.access(&t.access_token).unwrap().expect("a live token");
        assert_eq!((g.user.as_str(), g.client_id.as_str(), g.resource.as_str()), ("alice", "app", RESOURCE));
        assert!(g.has_scope("mcp") && !g.has_scope("mcp:read"));
        let t2 = s.refresh(&t.refresh_token, "app", None, Some(&format!("{RESOURCE}/"))).unwrap();
        assert_ne!(t2.access_token, t.access_token);
        assert_eq!(s.access(&t2.access_token).unwrap().unwrap().family, g.family);
        assert!(s.access(&t.access_token).unwrap().is_some(), "rotation leaves the old access token to its expiry");
        assert!(s.connected_apps("alice").unwrap()[0].last_used_ms.is_some());
        assert!(s.access("mcphub_at_nope").unwrap().is_none() && s.access("mcphub_0000").unwrap().is_none());
    }

    #[test]
    fn a_wrong_verifier_redirect_or_client_spends_the_code() {
        let s = store();
        for (client, redirect, verifier) in [
            ("app", REDIRECT, "x".repeat(43).as_str()),
            ("app", "http://127.0.0.1:5555/other", VERIFIER),
            ("other", REDIRECT, VERIFIER),
        ] {
            let code = s.issue_code(&grant("mcp")).unwrap();
            invalid_grant(s.exchange_code(&code, client, redirect, verifier, None));
            let second = invalid_grant(s.exchange_code(&code, "app", REDIRECT, VERIFIER, None));
            assert!(second.contains("already used"), "{second}");
        }
    }

    #[test]
    fn an_expired_code_is_refused() {
        let s = OauthStore::new(None, &OauthConfig { code: Duration::from_secs(1), ..OauthConfig::default() });
        let code = s.issue_code(&grant("mcp")).unwrap();
        let d = key_digest(&code);
        wait("the code to expire", || s.kv.get(&key(&format!("code:{d}"))).unwrap().is_none());
        let e = invalid_grant(s.exchange_code(&code, "app", REDIRECT, VERIFIER, None));
        assert_eq!(e, "unknown or expired authorization code");
    }

    #[test]
    fn a_reused_code_revokes_the_family() {
        let s = store();
        let code = s.issue_code(&grant("mcp")).unwrap();
        let t = s.exchange_code(&code, "app", REDIRECT, VERIFIER, None).unwrap();
        assert!(s.access(&t.access_token).unwrap().is_some());
        invalid_grant(s.exchange_code(&code, "app", REDIRECT, VERIFIER, None));
        assert!(s.access(&t.access_token).unwrap().is_none());
        invalid_grant(s.refresh(&t.refresh_token, "app", None, None));
    }

    #[test]
    fn a_replayed_refresh_token_revokes_the_family() {
        let s = store();
        let t = tokens(&s);
        let t2 = s.refresh(&t.refresh_token, "app", None, None).unwrap();
        let e = invalid_grant(s.refresh(&t.refresh_token, "app", None, None));
        assert!(e.contains("already used"), "{e}");
        assert!(s.access(&t2.access_token).unwrap().is_none() && s.access(&t.access_token).unwrap().is_none());
        invalid_grant(s.refresh(&t2.refresh_token, "app", None, None));
    }

    #[test]
    fn a_refresh_cannot_widen_the_scope_nor_change_the_resource() {
        let s = store();
        let code = s.issue_code(&grant("mcp:read")).unwrap();
        let t = s.exchange_code(&code, "app", REDIRECT, VERIFIER, None).unwrap();
        assert!(matches!(s.refresh(&t.refresh_token, "app", Some("mcp"), None), Err(TokenError::InvalidScope)));
        let t = tokens(&s);
        let t2 = s.refresh(&t.refresh_token, "app", Some("mcp"), None).unwrap();
        assert!(matches!(s.refresh(&t2.refresh_token, "app", None, Some("https://other/mcp")), Err(TokenError::InvalidTarget)));
        let code = s.issue_code(&grant("mcp")).unwrap();
        assert!(matches!(s.exchange_code(&code, "app", REDIRECT, VERIFIER, Some("https://other/mcp")), Err(TokenError::InvalidTarget)));
    }

    #[test]
    fn another_clients_refresh_is_refused_without_revoking() {
        let s = store();
        let t = tokens(&s);
        invalid_grant(s.refresh(&t.refresh_token, "other", None, None));
        assert!(s.access(&t.access_token).unwrap().is_some());
    }

    #[test]
    fn revoking_an_access_token_or_a_refresh_token() {
        let s = store();
        let t = tokens(&s);
        s.revoke_token(&t.access_token, "other").unwrap();
        assert!(s.access(&t.access_token).unwrap().is_some(), "another client's revocation is ignored");
        s.revoke_token(&t.access_token, "app").unwrap();
        assert!(s.access(&t.access_token).unwrap().is_none());
        let t2 = s.refresh(&t.refresh_token, "app", None, None).unwrap();
        assert!(s.access(&t2.access_token).unwrap().is_some(), "revoking the access token left the family");
        s.revoke_token(&t2.refresh_token, "app").unwrap();
        assert!(s.access(&t2.access_token).unwrap().is_none());
        invalid_grant(s.refresh(&t2.refresh_token, "app", None, None));
        s.revoke_token("garbage", "app").unwrap();
    }

    #[test]
    fn revoking_an_app_or_a_user_kills_their_tokens() {
        let s = store();
        s.remember_consent("alice", "app", "App", "mcp").unwrap();
        let t = tokens(&s);
        let mut other = grant("mcp");
        other.client_id = "other".into();
        let code = s.issue_code(&other).unwrap();
        let o = s.exchange_code(&code, "other", REDIRECT, VERIFIER, None).unwrap();
        s.revoke_app("alice", "app").unwrap();
        assert!(s.access(&t.access_token).unwrap().is_none());
        assert!(s.consent("alice", "app").unwrap().is_none());
        assert!(s.access(&o.access_token).unwrap().is_some(), "another app stays");
        s.revoke_user("alice").unwrap();
        assert!(s.access(&o.access_token).unwrap().is_none());
        invalid_grant(s.refresh(&o.refresh_token, "other", None, None));
    }

    #[test]
    fn connected_apps_are_listed_and_consent_widens() {
        let s = store();
        assert!(s.connected_apps("alice").unwrap().is_empty());
        s.remember_consent("alice", "a", "A", "mcp:read").unwrap();
        s.remember_consent("alice", "b", "B", "mcp").unwrap();
        s.remember_consent("alice", "a", "A2", "mcp").unwrap();
        let a = s.consent("alice", "a").unwrap().unwrap();
        assert_eq!((a.scope.as_str(), a.client_name.as_str()), ("mcp:read mcp", "A2"));
        let mut used = grant("mcp");
        used.client_id = "b".into();
        let code = s.issue_code(&used).unwrap();
        s.exchange_code(&code, "b", REDIRECT, VERIFIER, None).unwrap();
        let apps = s.connected_apps("alice").unwrap();
        assert_eq!(apps.iter().map(|a| a.client_id.as_str()).collect::<Vec<_>>(), ["b", "a"], "most recently used first");
        assert!(apps[0].last_used_ms.is_some() && apps[1].last_used_ms.is_none());
        assert!(s.connected_apps("bob").unwrap().is_empty());
    }

    #[test]
    fn clients_are_registered_within_max_clients() {
        let s = OauthStore::new(None, &OauthConfig { max_clients: 1, ..OauthConfig::default() });
        let c = RegisteredClient {
            client_id: "mcphub_client_1".into(),
            client_name: Some("C".into()),
            redirect_uris: vec![REDIRECT.into()],
            token_endpoint_auth_method: "none".into(),
            secret_digest: None,
            client_uri: None,
            created_ms: now_ms(),
        };
        assert!(s.register_client(&c).unwrap());
        assert_eq!(s.client("mcphub_client_1").unwrap(), Some(c.clone()));
        assert!(s.client("mcphub_client_2").unwrap().is_none());
        let c2 = RegisteredClient { client_id: "mcphub_client_2".into(), ..c };
        assert!(!s.register_client(&c2).unwrap(), "maxClients");
    }
}
