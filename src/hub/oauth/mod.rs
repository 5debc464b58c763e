//! The hub as OAuth 2.1 authorization server and protected resource for
//! MCP clients (issue 18; MCP authorization 2025-06-18, 2025-11-25 and
//! 2026-07-28, `basic/authorization`). The person's sign-in and the consent
//! page are the users' pages' (`crate::hub::ui::consent`); the records are
//! `crate::users::oauth`; this module is the endpoints:
//!
//! | path | what |
//! | --- | --- |
//! | `/.well-known/oauth-protected-resource[/mcp]` | RFC 9728 metadata of `/mcp` |
//! | `/.well-known/oauth-authorization-server`, `/.well-known/openid-configuration` | RFC 8414 metadata |
//! | `/oauth/authorize` | the authorization request (a page: `ui::consent`) |
//! | `/oauth/token` | `authorization_code` (PKCE S256 required) and `refresh_token` grants |
//! | `/oauth/revoke` | RFC 7009 |
//! | `/oauth/register` | RFC 7591 Dynamic Client Registration |
//!
//! On `/mcp`, a bearer token `mcphub_at_…` is an access token
//! ([`crate::hub::auth`]); a refusal carries `WWW-Authenticate: Bearer
//! resource_metadata="…", scope="mcp"` ([`www_authenticate`]).

pub mod cimd;
mod front;

use super::Hub;
use crate::http::{Request, Response};
use crate::users::oauth::TokenError;
use std::sync::atomic::{AtomicU64, Ordering};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;

/// The scope that lets a token use `/mcp` fully.
pub const SCOPE_MCP: &str = "mcp";
/// The scope that lets a token list and read but not call tools (a token
/// with only it gets 403 `insufficient_scope` on `tools/call`).
pub const SCOPE_READ: &str = "mcp:read";
/// Every scope the hub grants.
pub const SCOPES: &[&str] = &[SCOPE_MCP, SCOPE_READ];

/// The `error` codes counted in `mcphub_oauth_errors_total{error}` (RFC 6749
/// §4.1.2.1 and §5.2, RFC 7009 §2.2.1, RFC 7591 §3.2.2, RFC 8707 §2): a fixed set, so the
/// label is bounded; anything else counts as `other`.
pub const ERRORS: &[&str] = &[
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_target",
    "unsupported_token_type",
    "invalid_redirect_uri",
    "invalid_client_metadata",
    "temporarily_unavailable",
    "server_error",
    "unsupported_response_type",
    "access_denied",
    "other",
];
/// The grants counted in `mcphub_oauth_tokens_issued_total{grant}`.
pub const GRANTS: &[&str] = &["authorization_code", "refresh_token"];
/// `Retry-After` seconds of a 503 `temporarily_unavailable` (the store down).
pub const RETRY_AFTER_SECS: u64 = 2;

/// Counts for `/metrics`.
#[derive(Debug, Default)]
struct Counters {
    /// By [`GRANTS`] index.
    issued: [AtomicU64; 2],
    /// By [`ERRORS`] index.
    errors: [AtomicU64; ERRORS.len()],
}

/// The endpoints' state, owned by the hub.
pub struct Oauth {
    store: crate::users::oauth::OauthStore,
    fetcher: cimd::Fetcher,
    counters: Counters,
    /// `/oauth/register` attempts per source address (`registrationsPerMinute`, read at start).
    registrations: DefaultKeyedRateLimiter<IpAddr>,
}

impl Oauth {
    /// Records in `redis` when given, else memory; limits from `config`.
    /// The metadata fetcher's name lookups run on `threads`.
    pub fn new(redis: Option<crate::store::redis::RedisStore>, config: &crate::config::auth::OauthConfig, threads: &crate::threads::Threads) -> Oauth {
        let quota = Quota::per_minute(NonZeroU32::new(config.registrations_per_minute).unwrap_or(NonZeroU32::MIN));
        Oauth {
            store: crate::users::oauth::OauthStore::new(redis, config),
            fetcher: cimd::Fetcher::with_threads(&config.client_metadata, threads),
            registrations: RateLimiter::keyed(quota),
            counters: Counters::default(),
        }
    }

    /// The records.
    pub fn store(&self) -> &crate::users::oauth::OauthStore {
        &self.store
    }

    /// The metadata-document fetcher.
    pub fn fetcher(&self) -> &cimd::Fetcher {
        &self.fetcher
    }

    /// Counts one error answer by its `error` code (one of [`ERRORS`], else `other`).
    pub fn count_error(&self, error: &str) {
        let i = ERRORS.iter().position(|e| *e == error).unwrap_or(ERRORS.len() - 1);
        self.counters.errors[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one issued token pair by grant type (one of [`GRANTS`]).
    fn count_issued(&self, grant: &str) {
        if let Some(i) = GRANTS.iter().position(|g| *g == grant) {
            self.counters.issued[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `(grant, tokens issued)` since the start, every grant listed.
    pub fn issued_counts(&self) -> Vec<(&'static str, u64)> {
        GRANTS.iter().zip(&self.counters.issued).map(|(g, n)| (*g, n.load(Ordering::Relaxed))).collect()
    }

    /// `(error, answers)` since the start, only codes seen at least once.
    pub fn error_counts(&self) -> Vec<(&'static str, u64)> {
        ERRORS.iter().zip(&self.counters.errors).map(|(e, n)| (*e, n.load(Ordering::Relaxed))).filter(|(_, n)| *n > 0).collect()
    }
}

/// Whether `path` is one of this module's (the hub routes it to [`handle`]).
pub fn owns(path: &str) -> bool {
    path.starts_with("/.well-known/oauth-") || path == "/.well-known/openid-configuration" || path.starts_with("/oauth/")
}

/// Serves the paths of [`owns`] (`/oauth/authorize` goes to the pages):
/// `/oauth/token` and `/oauth/revoke` here, the metadata and registration
/// in [`front`]. With `auth.oauth.enabled` false every path is 404.
/// Every answer carries `Server-Timing: app;dur=<ms>` (the hub's time).
pub fn handle(hub: &Hub, req: &Request) -> Response {
    let started = std::time::Instant::now();
    let r = if !hub.config().auth.oauth.enabled {
        Response::json(404, &serde_json::json!({"error": "not_found", "error_description": "OAuth is disabled on this hub"}))
    } else {
        match req.path() {
            "/oauth/token" => token(hub, req),
            "/oauth/revoke" => revoke(hub, req),
            _ => front::front(hub, req),
        }
    };
    r.with_header("Server-Timing", &format!("app;dur={:.3}", started.elapsed().as_secs_f64() * 1000.0))
}

/// Adds `Access-Control-Allow-Origin: *` (browser-based clients call the
/// token, revocation and registration endpoints and read the metadata).
pub fn cors(r: Response) -> Response {
    r.with_header("Access-Control-Allow-Origin", "*")
}

/// The answer to a CORS preflight (`OPTIONS`) on an OAuth path (Fetch,
/// "CORS protocol"): 204 with the methods and headers a client may use.
pub fn preflight() -> Response {
    cors(Response::empty(204))
        .with_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
        .with_header("Access-Control-Allow-Headers", "Authorization, Content-Type, MCP-Protocol-Version")
        .with_header("Access-Control-Max-Age", "86400")
}

/// [`error_response`], counted in `mcphub_oauth_errors_total`; a 503
/// `temporarily_unavailable` gets `Retry-After`.
fn fail(hub: &Hub, status: u16, error: &str, description: &str) -> Response {
    hub.oauth().count_error(error);
    let r = error_response(status, error, description);
    if status == 503 {
        return r.with_header("Retry-After", &RETRY_AFTER_SECS.to_string());
    }
    r
}

/// The answer when the records cannot be read (Redis down): 503.
fn unavailable(hub: &Hub, e: &crate::store::kv::KvError) -> Response {
    log::warn!("oauth: {e}");
    fail(hub, 503, "temporarily_unavailable", "the token store is unavailable; retry shortly")
}

/// The form of a token or revocation request, or the 400 `invalid_request`
/// (the method is not POST: 405; the body is not
/// `application/x-www-form-urlencoded`, RFC 6749 §3.2: 400).
fn form_of(hub: &Hub, req: &Request) -> Result<super::ui::Form, Response> {
    if req.method != "POST" {
        return Err(fail(hub, 405, "invalid_request", "use POST").with_header("Allow", "POST, OPTIONS"));
    }
    let form_encoded = req
        .header("Content-Type")
        .and_then(|c| c.split(';').next())
        .is_some_and(|c| c.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
    if !form_encoded || std::str::from_utf8(&req.body).is_err() {
        return Err(fail(hub, 400, "invalid_request", "the body must be application/x-www-form-urlencoded"));
    }
    Ok(super::ui::parse_form(&req.body))
}

/// A non-empty form field.
fn field<'a>(form: &'a super::ui::Form, name: &str) -> Option<&'a str> {
    form.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

/// Whether `client_id` names a Client ID Metadata Document (a public
/// client): `clientMetadataDocuments` is on and [`cimd::is_document_url`].
fn is_document_client(hub: &Hub, client_id: &str) -> bool {
    let config = hub.config();
    let o = &config.auth.oauth;
    o.client_metadata_documents && cimd::is_document_url(client_id, o.client_metadata.allow_http)
}

/// The client of a token or revocation request (RFC 6749 §2.3, §3.2.1):
/// `Authorization: Basic` (id and secret form-urlencoded, then base64;
/// RFC 6749 §2.3.1) or `client_id` (+ `client_secret`) in the body. A
/// registered client with a secret must present it (its digest compared in
/// constant time); a `none` client and a metadata-document client (public)
/// send only `client_id` and must not send a secret.
///
/// Errors: 401 `invalid_client` (with `WWW-Authenticate: Basic
/// realm="mcphub"` when Basic was used) for a missing, unknown or
/// wrongly authenticated client; 400 `invalid_request` for two methods at
/// once; 503 when the store is down.
pub fn authenticate_client(hub: &Hub, req: &Request, form: &super::ui::Form) -> Result<String, Response> {
    let basic = req.header("Authorization").and_then(|a| {
        let a = a.trim();
        let (scheme, rest) = a.split_once(' ')?;
        scheme.eq_ignore_ascii_case("basic").then(|| rest.trim().to_string())
    });
    let refuse = |why: &str| {
        let r = fail(hub, 401, "invalid_client", why);
        if basic.is_some() {
            r.with_header("WWW-Authenticate", "Basic realm=\"mcphub\"")
        } else {
            r
        }
    };
    let (client_id, secret) = match &basic {
        Some(b64) => {
            use base64::Engine as _;
            let decoded = base64::engine::general_purpose::STANDARD.decode(b64).ok().and_then(|b| String::from_utf8(b).ok());
            let Some((id, secret)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
                return Err(refuse("malformed Basic credentials"));
            };
            let (id, secret) = (crate::http::percent_decode(id), crate::http::percent_decode(secret));
            if field(form, "client_secret").is_some() {
                return Err(fail(hub, 400, "invalid_request", "use one client authentication method (Basic or client_secret), not both"));
            }
            if field(form, "client_id").is_some_and(|body_id| body_id != id) {
                return Err(refuse("client_id differs from the Basic credentials"));
            }
            (id, Some(secret))
        }
        None => match field(form, "client_id") {
            Some(id) => (id.to_string(), field(form, "client_secret").map(str::to_string)),
            None => return Err(refuse("client authentication is required (client_id)")),
        },
    };
    if is_document_client(hub, &client_id) {
        if secret.is_some() {
            return Err(refuse("a metadata-document client is public: it has no secret"));
        }
        return Ok(client_id);
    }
    let client = match hub.oauth().store().client(&client_id) {
        Ok(Some(c)) => c,
        Ok(None) => return Err(refuse("unknown client")),
        Err(e) => return Err(unavailable(hub, &e)),
    };
    match (&client.secret_digest, secret) {
        (None, None) => Ok(client_id),
        (None, Some(_)) => Err(refuse("this client is public (token_endpoint_auth_method none): it has no secret")),
        (Some(_), None) => Err(refuse("this client must authenticate with its client secret")),
        (Some(digest), Some(s)) => {
            if crate::users::same_secret(crate::users::key_digest(&s).as_bytes(), digest.as_bytes()) {
                Ok(client_id)
            } else {
                Err(refuse("wrong client secret"))
            }
        }
    }
}

/// Whether `resource` names this hub's `/mcp` (a trailing `/` tolerated;
/// RFC 8707 §2).
fn is_our_resource(hub: &Hub, req: &Request, resource: &str) -> bool {
    let ours = resource_of(&super::ui::base_url(hub, req));
    resource.strip_suffix('/').unwrap_or(resource) == ours
}

/// The start of a token or revocation request: a CORS preflight is
/// answered (`Err`), else the form and the authenticated client id, or the
/// refusal.
fn client_request(hub: &Hub, req: &Request) -> Result<(super::ui::Form, String), Response> {
    if req.method == "OPTIONS" {
        return Err(preflight());
    }
    let form = form_of(hub, req)?;
    let client_id = authenticate_client(hub, req, &form)?;
    Ok((form, client_id))
}

/// `POST /oauth/token` (RFC 6749 §3.2, §4.1.3, §6; OAuth 2.1 §4.3): the
/// `authorization_code` grant (PKCE S256 required) and the
/// `refresh_token` grant (rotation). 200 with `{access_token, token_type,
/// expires_in, refresh_token, scope}` and `Cache-Control: no-store`, or an
/// RFC 6749 §5.2 error.
fn token(hub: &Hub, req: &Request) -> Response {
    let (form, client_id) = match client_request(hub, req) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let resource = field(&form, "resource");
    if resource.is_some_and(|r| !is_our_resource(hub, req, r)) {
        return fail(hub, 400, "invalid_target", "resource must be this hub's /mcp URL");
    }
    let store = hub.oauth().store();
    let (grant, result) = match field(&form, "grant_type") {
        Some("authorization_code") => {
            let (Some(code), Some(redirect_uri), Some(verifier)) = (field(&form, "code"), field(&form, "redirect_uri"), field(&form, "code_verifier")) else {
                return fail(hub, 400, "invalid_request", "code, redirect_uri and code_verifier are required");
            };
            ("authorization_code", store.exchange_code(code, &client_id, redirect_uri, verifier, resource))
        }
        Some("refresh_token") => {
            let Some(refresh) = field(&form, "refresh_token") else {
                return fail(hub, 400, "invalid_request", "refresh_token is required");
            };
            ("refresh_token", store.refresh(refresh, &client_id, field(&form, "scope"), resource))
        }
        Some(_) => return fail(hub, 400, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token"),
        None => return fail(hub, 400, "invalid_request", "grant_type is required"),
    };
    match result {
        Ok(pair) => {
            hub.oauth().count_issued(grant);
            log::info!(
                "oauth: {grant} grant: tokens issued to client {} for user {}",
                crate::trace::sanitize(&client_id, 256),
                crate::trace::sanitize(&pair.user, 128)
            );
            let body = serde_json::json!({
                "access_token": pair.access_token,
                "token_type": "Bearer",
                "expires_in": pair.expires_in,
                "refresh_token": pair.refresh_token,
                "scope": pair.scope,
            });
            cors(Response::json(200, &body)).with_header("Cache-Control", "no-store").with_header("Pragma", "no-cache")
        }
        Err(TokenError::InvalidGrant(why)) => fail(hub, 400, "invalid_grant", why),
        Err(TokenError::InvalidScope) => fail(hub, 400, "invalid_scope", "the scope asked for exceeds the granted one"),
        Err(TokenError::InvalidTarget) => fail(hub, 400, "invalid_target", "resource is not the one the grant is for"),
        Err(TokenError::Unavailable(e)) => unavailable(hub, &e),
    }
}

/// `POST /oauth/revoke` (RFC 7009): `token` (+ `token_type_hint`, not
/// needed: the prefix tells), client authentication as at the token
/// endpoint. 200 for any token of a known client (§2.2); a refresh token
/// revokes its whole family.
fn revoke(hub: &Hub, req: &Request) -> Response {
    let (form, client_id) = match client_request(hub, req) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let Some(token) = field(&form, "token") else {
        return fail(hub, 400, "invalid_request", "token is required");
    };
    match hub.oauth().store().revoke_token(token, &client_id) {
        Ok(()) => cors(Response::empty(200)).with_header("Cache-Control", "no-store"),
        Err(e) => unavailable(hub, &e),
    }
}

/// The `WWW-Authenticate` value of a `/mcp` refusal: `Bearer` with
/// `realm`,
/// `resource_metadata` (RFC 9728 §5.1), `scope`, and `error` when given
/// (`invalid_token`, `insufficient_scope`; RFC 6750 §3).
pub fn www_authenticate(base: &str, error: Option<&str>, scope: &str) -> String {
    let mut v = String::from("Bearer realm=\"mcphub\"");
    if let Some(e) = error {
        v.push_str(&format!(", error=\"{e}\""));
    }
    v.push_str(&format!(", scope=\"{scope}\", resource_metadata=\"{base}/.well-known/oauth-protected-resource/mcp\""));
    v
}

/// The resource URL of `/mcp` for a hub reached at `base` (RFC 8707,
/// RFC 9728 `resource`).
pub fn resource_of(base: &str) -> String {
    format!("{base}/mcp")
}

/// An OAuth error answer (RFC 6749 §5.2): JSON `{error, error_description}`
/// with `status`, `Cache-Control: no-store`, and CORS open.
pub fn error_response(status: u16, error: &str, description: &str) -> Response {
    let body = serde_json::json!({"error": error, "error_description": description});
    cors(Response::json(status, &body)).with_header("Cache-Control", "no-store").with_header("Pragma", "no-cache")
}

/// A client as the authorization endpoint knows it: registered (DCR) or
/// described by its metadata document (CIMD).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// The client id.
    pub client_id: String,
    /// What to call it on the consent page and the Keys page.
    pub name: String,
    /// Whether the name was verified (a metadata document's host is; a DCR name is not).
    pub verified_host: Option<String>,
    /// Its redirect URIs.
    pub redirect_uris: Vec<String>,
}

/// Why [`resolve_client`] found no client (the authorization page says it; never a redirect).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No such registered client.
    #[error("unknown client_id")]
    Unknown,
    /// A metadata document that could not be used.
    #[error(transparent)]
    Document(#[from] cimd::CimdError),
    /// The store is unreachable.
    #[error(transparent)]
    Unavailable(#[from] crate::store::kv::KvError),
}

/// The client named `client_id`: a metadata document URL (when
/// `clientMetadataDocuments`) is fetched through [`cimd::Fetcher`]; any other
/// id must be a registered client.
pub fn resolve_client(hub: &Hub, client_id: &str) -> Result<ClientInfo, ClientError> {
    if is_document_client(hub, client_id) {
        let doc = hub.oauth().fetcher().get(client_id)?;
        let host = crate::config::auth::host_of(client_id).to_string();
        return Ok(ClientInfo {
            client_id: client_id.to_string(),
            name: doc.client_name.clone().filter(|n| !n.trim().is_empty()).unwrap_or_else(|| host.clone()),
            verified_host: Some(host),
            redirect_uris: doc.redirect_uris.clone(),
        });
    }
    match hub.oauth().store().client(client_id)? {
        Some(c) => Ok(ClientInfo {
            client_id: c.client_id,
            name: c.client_name.filter(|n| !n.trim().is_empty()).unwrap_or_else(|| "Unnamed client".into()),
            verified_host: None,
            redirect_uris: c.redirect_uris,
        }),
        None => Err(ClientError::Unknown),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_names_the_metadata_and_the_scope() {
        assert_eq!(
            www_authenticate("http://127.0.0.1:3000", None, "mcp"),
            r#"Bearer realm="mcphub", scope="mcp", resource_metadata="http://127.0.0.1:3000/.well-known/oauth-protected-resource/mcp""#
        );
        assert!(www_authenticate("https://hub", Some("insufficient_scope"), "mcp").starts_with(r#"Bearer realm="mcphub", error="insufficient_scope", scope="mcp""#));
    }
}
