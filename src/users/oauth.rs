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
//! - `mcp:oauth:user:<user>:families` (set of family ids) and
//!   `mcp:oauth:consent:<user>` (hash client id → JSON [`ConnectedApp`]):
//!   the user's connected apps; revoking one, or deleting the user, revokes
//!   their families.

use crate::config::auth::OauthConfig;
use crate::store::kv::{Kv, KvError};
use crate::store::redis::RedisStore;
use serde::{Deserialize, Serialize};

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

/// The OAuth records. Cheap to clone.
#[derive(Clone)]
pub struct OauthStore {
    kv: Kv,
    config: std::sync::Arc<parking_lot::RwLock<OauthConfig>>,
}

impl OauthStore {
    /// Records in `redis` when given, else in memory; lifetimes from `config`.
    pub fn new(redis: Option<RedisStore>, config: &OauthConfig) -> OauthStore {
        OauthStore { kv: Kv::new(redis), config: std::sync::Arc::new(parking_lot::RwLock::new(config.clone())) }
    }

    /// Adopts new lifetimes (a reload); records already written keep theirs.
    pub fn set_config(&self, config: &OauthConfig) {
        *self.config.write() = config.clone();
    }

    /// Registers a DCR client (its id already assigned). `Ok(false)` when
    /// `maxClients` live registrations exist.
    pub fn register_client(&self, client: &RegisteredClient) -> Result<bool, KvError> {
        let _ = (client, &self.kv);
        todo!()
    }

    /// A registered client by id; its unused-expiry restarts (at most once a minute).
    pub fn client(&self, client_id: &str) -> Result<Option<RegisteredClient>, KvError> {
        let _ = client_id;
        todo!()
    }

    /// The user's consent to `client_id`, if any.
    pub fn consent(&self, user: &str, client_id: &str) -> Result<Option<ConnectedApp>, KvError> {
        let _ = (user, client_id);
        todo!()
    }

    /// Records (or widens) the user's consent to `client_id` for `scope`.
    pub fn remember_consent(&self, user: &str, client_id: &str, client_name: &str, scope: &str) -> Result<(), KvError> {
        let _ = (user, client_id, client_name, scope);
        todo!()
    }

    /// The user's connected apps, most recently used first.
    pub fn connected_apps(&self, user: &str) -> Result<Vec<ConnectedApp>, KvError> {
        let _ = user;
        todo!()
    }

    /// Forgets the user's consent to `client_id` and revokes every token
    /// family of that user and client (their tokens stop working at once).
    pub fn revoke_app(&self, user: &str, client_id: &str) -> Result<(), KvError> {
        let _ = (user, client_id);
        todo!()
    }

    /// Revokes everything of `user` (the user was deleted).
    pub fn revoke_user(&self, user: &str) -> Result<(), KvError> {
        let _ = user;
        todo!()
    }

    /// Issues a one-time code for `grant`, valid `codeSecs`.
    pub fn issue_code(&self, grant: &CodeGrant) -> Result<String, KvError> {
        let _ = grant;
        todo!()
    }

    /// Exchanges a code (RFC 6749 §4.1.3, PKCE RFC 7636 §4.6): the code must
    /// be live and `client_id`'s, `redirect_uri` the one of the request,
    /// `code_verifier` hash to its challenge, `resource` (when sent) the
    /// granted one. A code used twice revokes the family the first use made.
    pub fn exchange_code(
        &self,
        code: &str,
        client_id: &str,
        redirect_uri: &str,
        code_verifier: &str,
        resource: Option<&str>,
    ) -> Result<TokenPair, TokenError> {
        let _ = (code, client_id, redirect_uri, code_verifier, resource);
        todo!()
    }

    /// Rotates a refresh token (OAuth 2.1 §4.3): a new access and refresh
    /// token; the presented one is spent, and presenting a spent one
    /// revokes its family. `scope`, when sent, must be within the granted.
    pub fn refresh(&self, refresh_token: &str, client_id: &str, scope: Option<&str>, resource: Option<&str>) -> Result<TokenPair, TokenError> {
        let _ = (refresh_token, client_id, scope, resource);
        todo!()
    }

    /// Revokes a token (RFC 7009 §2.1): an access token alone; a refresh
    /// token with its family. A token that is unknown or another client's
    /// is ignored (`Ok`, as §2.2 asks).
    pub fn revoke_token(&self, token: &str, client_id: &str) -> Result<(), KvError> {
        let _ = (token, client_id);
        todo!()
    }

    /// What a live access token grants, or `None` (unknown, expired, revoked).
    pub fn access(&self, token: &str) -> Result<Option<AccessGrant>, KvError> {
        let _ = token;
        todo!()
    }
}
