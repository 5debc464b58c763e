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
//!   "sessionIdleSecs": 28800, "sessionMaxSecs": 604800, "maxConcurrentPages": 4
//! }
//! ```

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
