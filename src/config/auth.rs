//! The sign-in settings as data (issue 17): `publicUrl` and the `auth`
//! section — an OpenID Connect provider (`auth.oidc`), GitHub OAuth
//! (`auth.github`), auto-provisioning, key sign-in, browser-session
//! lifetimes and the pages' own concurrency limit. The machinery is
//! `crate::hub::ui`.
//!
//! ```jsonc
//! "publicUrl": "https://hub.example.com",
//! "auth": {
//!   "oidc": {"issuer": "https://idp.example.com", "clientId": "mcphub", "clientSecret": "${env.OIDC_SECRET}",
//!            "scopes": ["openid", "email", "profile"], "label": "Sign in with SSO",
//!            "allow": {"emails": [], "emailDomains": ["example.com"], "claims": {"groups": ["hub-users"]}}},
//!   "github": {"clientId": "…", "clientSecret": "${env.GH_SECRET}", "allowOrgs": ["acme"], "allowUsers": [],
//!              "baseUrl": "https://github.com", "apiUrl": "https://api.github.com"},
//!   "autoProvision": false, "keySignIn": true,
//!   "sessionIdleSecs": 28800, "sessionMaxSecs": 604800, "maxConcurrentPages": 4,
//!   "oauth": {"enabled": true, "accessTokenSecs": 3600, "refreshTokenSecs": 2592000, "codeSecs": 60,
//!             "dynamicRegistration": true, "maxClients": 1000, "registrationsPerMinute": 10,
//!             "clientUnusedSecs": 2592000, "clientMetadataDocuments": true,
//!             "clientMetadata": {"maxBytes": 5120, "timeoutMs": 3000, "maxCacheSecs": 86400,
//!                                "allowHttp": false, "allowPrivateAddresses": false, "caFile": null}}
//! }
//! ```
//!
//! `auth.oauth` (issue 18) makes the hub an OAuth 2.1 authorization server
//! for MCP clients (MCP authorization, 2025-06-18 / 2025-11-25 /
//! 2026-07-28); the machinery is `crate::hub::oauth` and `crate::users::oauth`.

use super::{bounded, check_url, invalid, substitute_env, ConfigError};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// Default browser-session idle expiry: 8 h (issue 17).
pub const DEFAULT_SESSION_IDLE_SECS: u64 = 8 * 3600;
/// Default browser-session absolute expiry: 7 days (issue 17).
pub const DEFAULT_SESSION_MAX_SECS: u64 = 7 * 24 * 3600;
/// Default number of `/ui` requests served at once (`maxConcurrentPages`).
pub const DEFAULT_MAX_CONCURRENT_PAGES: usize = 4;

/// Default OAuth access-token lifetime: 1 h (issue 18).
pub const DEFAULT_ACCESS_TOKEN_SECS: u64 = 3600;
/// Default OAuth refresh-token lifetime: 30 days (issue 18).
pub const DEFAULT_REFRESH_TOKEN_SECS: u64 = 30 * 24 * 3600;
/// Default authorization-code lifetime: 60 s (OAuth 2.1 §4.1.2 recommends at most 10 minutes).
pub const DEFAULT_CODE_SECS: u64 = 60;

/// `auth.oauth.clientMetadata`: how the hub fetches a Client ID Metadata
/// Document (MCP 2026-07-28 authorization, "Client ID Metadata Documents").
#[derive(Debug, Clone, PartialEq)]
pub struct ClientMetadataConfig {
    /// Largest document accepted, bytes (`maxBytes`, 256..=65536, default 5120).
    pub max_bytes: usize,
    /// Connect + read budget of one fetch (`timeoutMs`, 100..=30000, default 3000).
    pub timeout: Duration,
    /// Longest a fetched document is reused, whatever its `Cache-Control`
    /// says (`maxCacheSecs`, 0..=604800, default 86400).
    pub max_cache: Duration,
    /// Accept `http://` client ids (`allowHttp`, default false: https only). For tests.
    pub allow_http: bool,
    /// Fetch from loopback, private and link-local addresses
    /// (`allowPrivateAddresses`, default false: the SSRF guard). For tests.
    pub allow_private_addresses: bool,
    /// Extra trusted CA certificates (PEM file) for metadata hosts, added to
    /// the public roots (`caFile`: an in-house CA; the tests' own CA).
    pub ca_file: Option<std::path::PathBuf>,
}

/// `auth.oauth`: the hub as an OAuth 2.1 authorization server and protected
/// resource for MCP clients (issue 18).
#[derive(Debug, Clone, PartialEq)]
pub struct OauthConfig {
    /// Whether `/mcp` advertises OAuth and `/oauth/*` answers (`enabled`, default true).
    pub enabled: bool,
    /// Access-token lifetime (`accessTokenSecs`, 1..=86400, default 1 h;
    /// seconds are allowed so tests can watch one expire).
    pub access_token: Duration,
    /// Refresh-token lifetime (`refreshTokenSecs`, 60..=31536000, default 30 d).
    pub refresh_token: Duration,
    /// Authorization-code lifetime (`codeSecs`, 1..=600, default 60 s).
    pub code: Duration,
    /// Dynamic Client Registration (RFC 7591) at `/oauth/register` (`dynamicRegistration`, default true).
    pub dynamic_registration: bool,
    /// Most registered (DCR) clients at once (`maxClients`, 1..=100000, default 1000).
    pub max_clients: usize,
    /// Registrations per minute from one source address (`registrationsPerMinute`, 1..=1000, default 10).
    pub registrations_per_minute: u32,
    /// A registered client unused this long is forgotten (`clientUnusedSecs`, 3600..=31536000, default 30 d).
    pub client_unused: Duration,
    /// Accept Client ID Metadata Documents (`clientMetadataDocuments`, default true).
    pub client_metadata_documents: bool,
    /// `clientMetadata`.
    pub client_metadata: ClientMetadataConfig,
}

impl Default for OauthConfig {
    fn default() -> OauthConfig {
        OauthConfig {
            enabled: true,
            access_token: Duration::from_secs(DEFAULT_ACCESS_TOKEN_SECS),
            refresh_token: Duration::from_secs(DEFAULT_REFRESH_TOKEN_SECS),
            code: Duration::from_secs(DEFAULT_CODE_SECS),
            dynamic_registration: true,
            max_clients: 1000,
            registrations_per_minute: 10,
            client_unused: Duration::from_secs(DEFAULT_REFRESH_TOKEN_SECS),
            client_metadata_documents: true,
            client_metadata: ClientMetadataConfig {
                max_bytes: 5120,
                timeout: Duration::from_millis(3000),
                max_cache: Duration::from_secs(86400),
                allow_http: false,
                allow_private_addresses: false,
                ca_file: None,
            },
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawOauth {
    enabled: Option<bool>,
    access_token_secs: Option<u64>,
    refresh_token_secs: Option<u64>,
    code_secs: Option<u64>,
    dynamic_registration: Option<bool>,
    max_clients: Option<u64>,
    registrations_per_minute: Option<u64>,
    client_unused_secs: Option<u64>,
    client_metadata_documents: Option<bool>,
    client_metadata: Option<RawClientMetadata>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawClientMetadata {
    max_bytes: Option<u64>,
    timeout_ms: Option<u64>,
    max_cache_secs: Option<u64>,
    allow_http: Option<bool>,
    allow_private_addresses: Option<bool>,
    ca_file: Option<String>,
}

impl OauthConfig {
    fn parse(raw: Option<RawOauth>) -> Result<OauthConfig, ConfigError> {
        let d = OauthConfig::default();
        let Some(r) = raw else { return Ok(d) };
        let m = r.client_metadata.unwrap_or_default();
        let secs = |key: &str, v: Option<u64>, default: Duration, min: u64, max: u64| {
            bounded(key, v, default.as_secs(), min, max).map(Duration::from_secs)
        };
        Ok(OauthConfig {
            enabled: r.enabled.unwrap_or(d.enabled),
            access_token: secs("auth.oauth.accessTokenSecs", r.access_token_secs, d.access_token, 1, 86400)?,
            refresh_token: secs("auth.oauth.refreshTokenSecs", r.refresh_token_secs, d.refresh_token, 60, 365 * 24 * 3600)?,
            code: secs("auth.oauth.codeSecs", r.code_secs, d.code, 1, 600)?,
            dynamic_registration: r.dynamic_registration.unwrap_or(d.dynamic_registration),
            max_clients: bounded("auth.oauth.maxClients", r.max_clients, d.max_clients as u64, 1, 100_000)? as usize,
            registrations_per_minute: bounded("auth.oauth.registrationsPerMinute", r.registrations_per_minute, 10, 1, 1000)? as u32,
            client_unused: secs("auth.oauth.clientUnusedSecs", r.client_unused_secs, d.client_unused, 3600, 365 * 24 * 3600)?,
            client_metadata_documents: r.client_metadata_documents.unwrap_or(d.client_metadata_documents),
            client_metadata: ClientMetadataConfig {
                max_bytes: bounded("auth.oauth.clientMetadata.maxBytes", m.max_bytes, 5120, 256, 65536)? as usize,
                timeout: Duration::from_millis(bounded("auth.oauth.clientMetadata.timeoutMs", m.timeout_ms, 3000, 100, 30_000)?),
                max_cache: secs("auth.oauth.clientMetadata.maxCacheSecs", m.max_cache_secs, d.client_metadata.max_cache, 0, 7 * 24 * 3600)?,
                allow_http: m.allow_http.unwrap_or(false),
                allow_private_addresses: m.allow_private_addresses.unwrap_or(false),
                ca_file: match m.ca_file {
                    None => None,
                    Some(f) => {
                        let f = substitute_env(&f).map_err(|e| invalid("auth.oauth.clientMetadata.caFile", e))?;
                        let path = std::path::PathBuf::from(&f);
                        if !path.is_file() {
                            return Err(invalid("auth.oauth.clientMetadata.caFile", format!("'{f}' is not a readable file")));
                        }
                        Some(path)
                    }
                },
            },
        })
    }
}

/// `auth.oidc`: an OpenID Connect provider (authorization code flow + PKCE).
#[derive(Debug, Clone, PartialEq)]
pub struct OidcConfig {
    /// The issuer URL (discovery at `{issuer}/.well-known/openid-configuration`).
    pub issuer: String,
    /// The client id registered at the provider.
    pub client_id: String,
    /// The client secret (`${env.NAME}` substituted); `None`: a public client (PKCE only).
    pub client_secret: Option<String>,
    /// Scopes asked for (default `openid email profile`; `openid` always included).
    pub scopes: Vec<String>,
    /// The sign-in button's text (default "Sign in with SSO").
    pub label: String,
    /// Who may sign in (every non-empty rule must match).
    pub allow: OidcAllow,
}

/// `auth.oidc.allow`: each non-empty list must match; all empty → anyone
/// the provider authenticates (still subject to the identity mapping).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OidcAllow {
    /// Exact e-mail addresses (compared ignoring ASCII case).
    pub emails: Vec<String>,
    /// E-mail domains (the part after `@`, ignoring ASCII case).
    pub email_domains: Vec<String>,
    /// Claim name → accepted values; the claim (a string or an array of
    /// strings) must hold one of them.
    pub claims: BTreeMap<String, Vec<String>>,
}

/// `auth.github`: GitHub OAuth 2.0 (not OIDC).
#[derive(Debug, Clone, PartialEq)]
pub struct GithubConfig {
    /// OAuth app client id.
    pub client_id: String,
    /// OAuth app client secret (`${env.NAME}` substituted).
    pub client_secret: String,
    /// Members of any of these organisations may sign in (logins, ignoring case).
    pub allow_orgs: Vec<String>,
    /// These logins may sign in (ignoring case). Both lists empty: anyone.
    pub allow_users: Vec<String>,
    /// Where `login/oauth/authorize` and `login/oauth/access_token` live
    /// (default `https://github.com`; GitHub Enterprise: its own host).
    pub base_url: String,
    /// The REST API base for `/user` and `/user/orgs` (default
    /// `https://api.github.com`; GitHub Enterprise: `https://HOST/api/v3`).
    pub api_url: String,
}

/// The `auth` section.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthConfig {
    /// `auth.oidc`.
    pub oidc: Option<OidcConfig>,
    /// `auth.github`.
    pub github: Option<GithubConfig>,
    /// An identity no user lists becomes a new non-admin run-time user on
    /// first sign-in, within the allow rules (`autoProvision`, default false).
    pub auto_provision: bool,
    /// Sign in to the pages by pasting a hub key (`keySignIn`, default true).
    pub key_sign_in: bool,
    /// A browser session unused this long ends (`sessionIdleSecs`, default 8 h).
    pub session_idle: Duration,
    /// A browser session ends this long after sign-in (`sessionMaxSecs`, default 7 d).
    pub session_max: Duration,
    /// `/ui` requests served at once; beyond, 503 (`maxConcurrentPages`, 1..=64, default 4).
    pub max_concurrent_pages: usize,
    /// `auth.oauth`: OAuth 2.1 for MCP clients (issue 18).
    pub oauth: OauthConfig,
}

impl Default for AuthConfig {
    fn default() -> AuthConfig {
        AuthConfig {
            oidc: None,
            github: None,
            auto_provision: false,
            key_sign_in: true,
            session_idle: Duration::from_secs(DEFAULT_SESSION_IDLE_SECS),
            session_max: Duration::from_secs(DEFAULT_SESSION_MAX_SECS),
            max_concurrent_pages: DEFAULT_MAX_CONCURRENT_PAGES,
            oauth: OauthConfig::default(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawAuth {
    oidc: Option<RawOidc>,
    github: Option<RawGithub>,
    auto_provision: Option<bool>,
    key_sign_in: Option<bool>,
    session_idle_secs: Option<u64>,
    session_max_secs: Option<u64>,
    max_concurrent_pages: Option<u64>,
    oauth: Option<RawOauth>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawOidc {
    issuer: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    scopes: Option<Vec<String>>,
    label: Option<String>,
    allow: Option<RawOidcAllow>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawOidcAllow {
    #[serde(default)]
    emails: Vec<String>,
    #[serde(default)]
    email_domains: Vec<String>,
    #[serde(default)]
    claims: BTreeMap<String, Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawGithub {
    client_id: Option<String>,
    client_secret: Option<String>,
    #[serde(default)]
    allow_orgs: Vec<String>,
    #[serde(default)]
    allow_users: Vec<String>,
    base_url: Option<String>,
    api_url: Option<String>,
}

/// The keys known under `auth…` (for "did you mean" on an unknown key).
pub(super) fn known_keys(path: &[&str]) -> Option<&'static [&'static str]> {
    Some(match path {
        ["auth"] => super::declared_keys::<RawAuth>(),
        ["auth", "oidc"] => super::declared_keys::<RawOidc>(),
        ["auth", "oidc", "allow"] => super::declared_keys::<RawOidcAllow>(),
        ["auth", "github"] => super::declared_keys::<RawGithub>(),
        ["auth", "oauth"] => super::declared_keys::<RawOauth>(),
        ["auth", "oauth", "clientMetadata"] => super::declared_keys::<RawClientMetadata>(),
        _ => return None,
    })
}

fn required(key: &str, v: Option<String>) -> Result<String, ConfigError> {
    let v = v.ok_or_else(|| invalid(key, "is required"))?;
    let v = substitute_env(&v).map_err(|m| invalid(key, m))?;
    if v.trim().is_empty() {
        return Err(invalid(key, "must not be empty"));
    }
    Ok(v)
}

/// A base URL without its trailing `/`; http(s) only.
fn base_url(key: &str, v: Option<String>, default: &str) -> Result<String, ConfigError> {
    let v = match v {
        None => default.to_string(),
        Some(v) => substitute_env(&v).map_err(|m| invalid(key, m))?,
    };
    check_url(&v).map_err(|m| invalid(key, m))?;
    Ok(v.trim_end_matches('/').to_string())
}

/// `publicUrl`: where browsers and clients reach the hub (scheme, host,
/// optional port and path prefix; no query). Returned without a trailing `/`.
pub(super) fn public_url(raw: String) -> Result<String, ConfigError> {
    let url = substitute_env(&raw).map_err(|m| invalid("publicUrl", m))?;
    check_url(&url).map_err(|m| invalid("publicUrl", m))?;
    if url.contains(['?', '#']) {
        return Err(invalid("publicUrl", "must not have a query or fragment (scheme://host[:port][/prefix])"));
    }
    Ok(url.trim_end_matches('/').to_string())
}

impl AuthConfig {
    /// Reads `auth` (`None`: absent → defaults). Errors name the key
    /// (`auth.oidc.issuer`, …) and never print a secret.
    pub(super) fn parse(raw: Option<RawAuth>) -> Result<AuthConfig, ConfigError> {
        let Some(raw) = raw else { return Ok(AuthConfig::default()) };
        let oidc = match raw.oidc {
            None => None,
            Some(o) => {
                let issuer = base_url("auth.oidc.issuer", Some(required("auth.oidc.issuer", o.issuer)?), "")?;
                let mut scopes = o.scopes.unwrap_or_else(|| vec!["openid".into(), "email".into(), "profile".into()]);
                if let Some(bad) = scopes.iter().find(|s| s.is_empty() || !s.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')) {
                    return Err(invalid("auth.oidc.scopes", format!("'{bad}' is not a valid scope (RFC 6749 §3.3)")));
                }
                if !scopes.iter().any(|s| s == "openid") {
                    scopes.insert(0, "openid".into());
                }
                let allow = o.allow.unwrap_or_default();
                let mut claims = BTreeMap::new();
                for (name, v) in allow.claims {
                    let values = match v {
                        Value::String(s) => vec![s],
                        Value::Array(a) if a.iter().all(Value::is_string) && !a.is_empty() => {
                            a.into_iter().filter_map(|v| v.as_str().map(str::to_string)).collect()
                        }
                        _ => return Err(invalid(format!("auth.oidc.allow.claims.{name}"), "expected a string or a non-empty array of strings")),
                    };
                    claims.insert(name, values);
                }
                Some(OidcConfig {
                    issuer,
                    client_id: required("auth.oidc.clientId", o.client_id)?,
                    client_secret: o.client_secret.map(|s| required("auth.oidc.clientSecret", Some(s))).transpose()?,
                    scopes,
                    label: o.label.unwrap_or_else(|| "Sign in with SSO".into()),
                    allow: OidcAllow {
                        emails: allow.emails.iter().map(|e| e.to_ascii_lowercase()).collect(),
                        email_domains: allow.email_domains.iter().map(|d| d.trim_start_matches('@').to_ascii_lowercase()).collect(),
                        claims,
                    },
                })
            }
        };
        let github = match raw.github {
            None => None,
            Some(g) => Some(GithubConfig {
                client_id: required("auth.github.clientId", g.client_id)?,
                client_secret: required("auth.github.clientSecret", g.client_secret)?,
                allow_orgs: g.allow_orgs.iter().map(|o| o.to_ascii_lowercase()).collect(),
                allow_users: g.allow_users.iter().map(|u| u.to_ascii_lowercase()).collect(),
                base_url: base_url("auth.github.baseUrl", g.base_url, "https://github.com")?,
                api_url: base_url("auth.github.apiUrl", g.api_url, "https://api.github.com")?,
            }),
        };
        let idle = bounded("auth.sessionIdleSecs", raw.session_idle_secs, DEFAULT_SESSION_IDLE_SECS, 60, 30 * 24 * 3600)?;
        let max = bounded("auth.sessionMaxSecs", raw.session_max_secs, DEFAULT_SESSION_MAX_SECS, 60, 365 * 24 * 3600)?;
        Ok(AuthConfig {
            oidc,
            github,
            auto_provision: raw.auto_provision.unwrap_or(false),
            key_sign_in: raw.key_sign_in.unwrap_or(true),
            session_idle: Duration::from_secs(idle),
            session_max: Duration::from_secs(max.max(idle)),
            max_concurrent_pages: bounded("auth.maxConcurrentPages", raw.max_concurrent_pages, DEFAULT_MAX_CONCURRENT_PAGES as u64, 1, 64)? as usize,
            oauth: OauthConfig::parse(raw.oauth)?,
        })
    }
}

/// What loads but deserves the operator's eye (`Config::warnings`): a
/// provider without `publicUrl` (its redirect URI then follows the
/// request's loopback `Host`, which only works on the hub's own machine),
/// and an `http://` `publicUrl` that is not loopback (the session cookie
/// cannot be `Secure`: put the hub behind a TLS-terminating proxy and set
/// an `https://` `publicUrl`).
pub(super) fn warnings(public_url: Option<&str>, auth: &AuthConfig) -> Vec<String> {
    let mut out = Vec::new();
    if public_url.is_none() && (auth.oidc.is_some() || auth.github.is_some()) {
        out.push("publicUrl: not set while auth.oidc or auth.github is: sign-in redirect URIs use the request's loopback Host, which works only on this machine; set publicUrl to the address browsers use".to_string());
    }
    let m = &auth.oauth.client_metadata;
    if auth.oauth.enabled && auth.oauth.client_metadata_documents && (m.allow_http || m.allow_private_addresses) {
        out.push("auth.oauth.clientMetadata: allowHttp or allowPrivateAddresses is on: client metadata documents may be fetched over plain http or from this network's private addresses (SSRF guard off); for tests only".to_string());
    }
    if let Some(u) = public_url.filter(|u| u.starts_with("http://") && !is_loopback_host(host_of(u))) {
        out.push(format!(
            "publicUrl: {u} is plain http on a non-loopback host: the pages' session cookie cannot be Secure; serve the hub behind a TLS-terminating proxy and set an https publicUrl"
        ));
    }
    out
}

/// The host of `scheme://host[:port][/…]` or of a bare `host[:port]` (a
/// `Host` header); IPv6 without its brackets.
pub fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or("");
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or("");
    }
    authority.split(':').next().unwrap_or("")
}

/// Whether `host` is `localhost` or a loopback address: browsers treat such
/// an origin as secure, so a `Secure` cookie works over plain http there.
pub fn is_loopback_host(host: &str) -> bool {
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether `identity` has the shape `github:<login>` or `oidc:<sub or e-mail>`
/// (`users.NAME.identities`): a known provider, a non-empty printable value ≤ 256.
pub fn valid_identity(identity: &str) -> bool {
    let Some((provider, value)) = identity.split_once(':') else { return false };
    matches!(provider, "github" | "oidc") && !value.is_empty() && value.len() <= 256 && value.bytes().all(|b| b.is_ascii_graphic())
}

/// The stored form of an identity: GitHub logins and e-mail addresses are
/// compared ignoring ASCII case, OIDC `sub`s exactly.
pub fn normalize_identity(identity: &str) -> String {
    match identity.split_once(':') {
        Some(("github", login)) => format!("github:{}", login.to_ascii_lowercase()),
        Some(("oidc", v)) if v.contains('@') => format!("oidc:{}", v.to_ascii_lowercase()),
        _ => identity.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn parse(auth: &str) -> Result<Config, ConfigError> {
        Config::parse(&format!(r#"{{"auth": {auth}, "mcpServers": {{}}}}"#))
    }

    #[test]
    fn defaults_and_public_url() {
        let c = Config::parse(r#"{"mcpServers": {}}"#).unwrap();
        assert_eq!(c.public_url, None);
        assert_eq!(c.auth, AuthConfig::default());
        let c = Config::parse(r#"{"publicUrl": "https://hub.example.com/", "mcpServers": {}}"#).unwrap();
        assert_eq!(c.public_url.as_deref(), Some("https://hub.example.com"));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let c = Config::parse(r#"{"publicUrl": "http://hub.internal:3000", "mcpServers": {}}"#).unwrap();
        assert!(c.warnings.iter().any(|w| w.starts_with("publicUrl:") && w.contains("Secure")), "{:?}", c.warnings);
        let c = Config::parse(r#"{"auth": {"github": {"clientId": "a", "clientSecret": "b"}}, "mcpServers": {}}"#).unwrap();
        assert!(c.warnings.iter().any(|w| w.contains("not set")), "{:?}", c.warnings);
        let e = Config::parse(r#"{"publicUrl": "ftp://x", "mcpServers": {}}"#).unwrap_err().to_string();
        assert!(e.contains("publicUrl"), "{e}");
    }

    #[test]
    fn client_metadata_section() {
        let m = parse(r#"{"oauth": {}}"#).unwrap().auth.oauth.client_metadata;
        assert_eq!(m, OauthConfig::default().client_metadata);
        let ca = std::env::temp_dir().join(format!("mcphub-config-ca-{}.pem", std::process::id()));
        std::fs::write(&ca, "not checked here").unwrap();
        let c = parse(&format!(
            r#"{{"oauth": {{"clientMetadata": {{"maxBytes": 256, "timeoutMs": 300, "maxCacheSecs": 0,
                "allowHttp": true, "allowPrivateAddresses": true, "caFile": "{}"}}}}}}"#,
            ca.display()
        ))
        .unwrap();
        let m = &c.auth.oauth.client_metadata;
        assert_eq!((m.max_bytes, m.timeout, m.max_cache), (256, Duration::from_millis(300), Duration::ZERO));
        assert!(m.allow_http && m.allow_private_addresses);
        assert_eq!(m.ca_file.as_deref(), Some(ca.as_path()));
        assert!(c.warnings.iter().any(|w| w.starts_with("auth.oauth.clientMetadata:")), "{:?}", c.warnings);
        let _ = std::fs::remove_file(&ca);
        for (bad, key) in [
            (r#"{"maxBytes": 255}"#, "maxBytes"),
            (r#"{"maxBytes": 65537}"#, "maxBytes"),
            (r#"{"timeoutMs": 99}"#, "timeoutMs"),
            (r#"{"maxCacheSecs": 604801}"#, "maxCacheSecs"),
            (r#"{"caFile": "/nonexistent/mcphub-ca.pem"}"#, "caFile"),
        ] {
            let e = parse(&format!(r#"{{"oauth": {{"clientMetadata": {bad}}}}}"#)).unwrap_err().to_string();
            assert!(e.contains(&format!("auth.oauth.clientMetadata.{key}")), "{bad}: {e}");
        }
    }

    #[test]
    fn oidc_and_github_sections() {
        std::env::set_var("MCPHUB_TEST_OIDC_SECRET", "s3cret-value");
        let c = parse(
            r#"{"oidc": {"issuer": "http://127.0.0.1:9/", "clientId": "hub", "clientSecret": "${env.MCPHUB_TEST_OIDC_SECRET}",
                "scopes": ["email"], "allow": {"emailDomains": ["@Example.com"], "claims": {"groups": "ops"}}},
               "github": {"clientId": "gh", "clientSecret": "x", "allowOrgs": ["Acme"]}, "autoProvision": true}"#,
        )
        .unwrap();
        let o = c.auth.oidc.unwrap();
        assert_eq!(o.issuer, "http://127.0.0.1:9");
        assert_eq!(o.client_secret.as_deref(), Some("s3cret-value"));
        assert_eq!(o.scopes, vec!["openid", "email"]);
        assert_eq!(o.allow.email_domains, vec!["example.com"]);
        assert_eq!(o.allow.claims["groups"], vec!["ops"]);
        let g = c.auth.github.unwrap();
        assert_eq!((g.base_url.as_str(), g.api_url.as_str()), ("https://github.com", "https://api.github.com"));
        assert_eq!(g.allow_orgs, vec!["acme"]);
        assert!(c.auth.auto_provision);
    }

    #[test]
    fn errors_name_the_key_and_never_the_secret() {
        let e = parse(r#"{"oidc": {"clientId": "hub"}}"#).unwrap_err().to_string();
        assert!(e.contains("auth.oidc.issuer"), "{e}");
        let e = parse(r#"{"github": {"clientId": "gh", "clientSecret": "topsecret", "allowOrg": []}}"#).unwrap_err().to_string();
        assert!(e.contains("auth.github.allowOrg") && e.contains("allowOrgs") && !e.contains("topsecret"), "{e}");
        let e = parse(r#"{"sessionIdleSecs": 5}"#).unwrap_err().to_string();
        assert!(e.contains("auth.sessionIdleSecs"), "{e}");
    }

    #[test]
    fn identities() {
        assert!(valid_identity("github:octocat") && valid_identity("oidc:alice@example.com"));
        assert!(!valid_identity("gitlab:x") && !valid_identity("github:") && !valid_identity("oidc:a b"));
        assert_eq!(normalize_identity("github:OctoCat"), "github:octocat");
        assert_eq!(normalize_identity("oidc:Alice@Example.com"), "oidc:alice@example.com");
        assert_eq!(normalize_identity("oidc:AbC"), "oidc:AbC");
        let c = Config::parse(r#"{"users": {"a": {"identities": ["github:OctoCat"]}}, "mcpServers": {}}"#).unwrap();
        assert_eq!(c.users[0].identities, vec!["github:octocat"]);
        let e = Config::parse(r#"{"users": {"a": {"identities": ["x"]}, "b": {}}, "mcpServers": {}}"#).unwrap_err().to_string();
        assert!(e.contains("users.a.identities"), "{e}");
        let e = Config::parse(r#"{"users": {"a": {"identities": ["github:x"]}, "b": {"identities": ["github:X"]}}, "mcpServers": {}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("users.b.identities"), "{e}");
    }
}
