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

/// The endpoints' state, owned by the hub.
pub struct Oauth {
    store: crate::users::oauth::OauthStore,
    fetcher: cimd::Fetcher,
    /// `/oauth/register` attempts per source address (`registrationsPerMinute`, read at start).
    registrations: DefaultKeyedRateLimiter<IpAddr>,
}

impl Oauth {
    /// Records in `redis` when given, else memory; limits from `config`.
    pub fn new(redis: Option<crate::store::redis::RedisStore>, config: &crate::config::auth::OauthConfig) -> Oauth {
        let quota = Quota::per_minute(NonZeroU32::new(config.registrations_per_minute).unwrap_or(NonZeroU32::MIN));
        Oauth {
            store: crate::users::oauth::OauthStore::new(redis, config),
            fetcher: cimd::Fetcher::new(&config.client_metadata),
            registrations: RateLimiter::keyed(quota),
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
}

/// Whether `path` is one of this module's (the hub routes it to [`handle`]).
pub fn owns(path: &str) -> bool {
    path.starts_with("/.well-known/oauth-") || path == "/.well-known/openid-configuration" || path.starts_with("/oauth/")
}

/// Serves the paths of [`owns`] (`/oauth/authorize` goes to the pages):
/// 404 when `auth.oauth.enabled` is false.
pub fn handle(hub: &Hub, req: &Request) -> Response {
    if !hub.config().auth.oauth.enabled {
        return error_response(404, "invalid_request", "OAuth is turned off on this hub");
    }
    match req.path() {
        "/oauth/token" | "/oauth/revoke" => error_response(404, "invalid_request", "not yet"),
        _ => front::front(hub, req),
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
    let mut r = Response::json(status, &serde_json::json!({"error": error, "error_description": description}));
    r.headers.push(("Cache-Control".into(), "no-store".into()));
    r.headers.push(("Access-Control-Allow-Origin".into(), "*".into()));
    r
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
    let config = hub.config();
    let oauth = &config.auth.oauth;
    // Only a URL can be a document (a registered id never starts so).
    let url_like = client_id.starts_with("https://") || client_id.starts_with("http://");
    if url_like && oauth.client_metadata_documents && cimd::is_document_url(client_id, oauth.client_metadata.allow_http) {
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
