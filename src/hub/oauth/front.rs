//! The public face of the authorization server: the metadata documents a
//! client discovers from a `/mcp` 401 (RFC 9728 protected resource, RFC 8414
//! authorization server) and Dynamic Client Registration (RFC 7591 §3).
//!
//! Every answer here is JSON with `Access-Control-Allow-Origin: *` (browser
//! clients read the metadata cross-origin; MCP authorization "Authorization
//! Server Metadata Discovery") and `OPTIONS` is answered 204 for any path of
//! the module. Metadata is `Cache-Control: no-cache`: its URLs come from
//! `publicUrl` or, without it, the request's loopback `Host`, so a cache must
//! revalidate.
//!
//! The issuer is `ui::base_url` (no trailing `/`), the same bytes in the
//! protected resource's `authorization_servers[0]`, the server metadata's
//! `issuer` and the authorization response's `iss` (Python's client compares
//! them exactly; RFC 8414 §3.3, RFC 9207 §2.4).

use super::{error_response, resource_of, Hub, SCOPES};
use crate::http::{Request, Response};
use crate::users::oauth::RegisteredClient;
use serde_json::{json, Map, Value};

/// Largest `/oauth/register` body (bytes); beyond → 400 `invalid_client_metadata`.
pub const MAX_REGISTRATION_BYTES: usize = 16 * 1024;
/// Most `redirect_uris` of one registration.
pub const MAX_REDIRECT_URIS: usize = 20;
/// Most characters of one redirect URI.
pub const MAX_REDIRECT_URI_CHARS: usize = 2000;
/// Most characters of a `client_name`.
pub const MAX_CLIENT_NAME_CHARS: usize = 200;
/// The prefix of a registered client's id (then 32 hex).
pub const CLIENT_ID_PREFIX: &str = "mcphub_client_";
/// The prefix of a registered client's secret (then 64 hex).
pub const CLIENT_SECRET_PREFIX: &str = "mcphub_cs_";
/// The client authentication methods of the token and revocation endpoints.
pub const AUTH_METHODS: &[&str] = &["none", "client_secret_basic", "client_secret_post"];

/// Serves the metadata documents, `/oauth/register`, and `OPTIONS` on any
/// OAuth path; anything else → 404 JSON. OAuth is enabled (the caller checked).
pub(crate) fn front(hub: &Hub, req: &Request) -> Response {
    if req.method == "OPTIONS" {
        return super::preflight();
    }
    let path = req.path();
    let get = matches!(req.method.as_str(), "GET" | "HEAD");
    match path {
        "/.well-known/oauth-protected-resource" | "/.well-known/oauth-protected-resource/mcp" if get => {
            metadata(protected_resource(&crate::hub::ui::base_url(hub, req)))
        }
        "/.well-known/oauth-authorization-server" | "/.well-known/openid-configuration" if get => {
            let config = hub.config();
            metadata(authorization_server(&crate::hub::ui::base_url(hub, req), &config.auth.oauth))
        }
        "/oauth/register" if hub.config().auth.oauth.dynamic_registration => {
            if req.method != "POST" {
                return error_response(405, "invalid_request", "register with POST and a JSON body (RFC 7591)").with_header("Allow", "POST, OPTIONS");
            }
            register(hub, req)
        }
        p if get && (p.starts_with("/.well-known/") || p == "/oauth/register") => error_response(404, "not_found", "no such metadata document"),
        p if p.starts_with("/.well-known/") => {
            error_response(405, "invalid_request", "metadata documents are read with GET").with_header("Allow", "GET, OPTIONS")
        }
        _ => error_response(404, "not_found", "no such OAuth endpoint"),
    }
}

fn metadata(doc: Value) -> Response {
    super::cors(Response::json(200, &doc)).with_header("Cache-Control", "no-cache")
}

/// The RFC 9728 §2 document of `/mcp` for a hub reached at `base`.
pub fn protected_resource(base: &str) -> Value {
    json!({
        "resource": resource_of(base),
        "authorization_servers": [base],
        "scopes_supported": SCOPES,
        "bearer_methods_supported": ["header"],
        "resource_name": "MCPHub",
    })
}

/// The RFC 8414 §2 document of the hub at `base` (the issuer): no
/// `registration_endpoint` when Dynamic Client Registration is off.
pub fn authorization_server(base: &str, config: &crate::config::auth::OauthConfig) -> Value {
    let mut doc = json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/oauth/authorize"),
        "token_endpoint": format!("{base}/oauth/token"),
        "revocation_endpoint": format!("{base}/oauth/revoke"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "scopes_supported": SCOPES,
        "authorization_response_iss_parameter_supported": true,
        "client_id_metadata_document_supported": config.client_metadata_documents,
    });
    if config.dynamic_registration {
        doc["registration_endpoint"] = json!(format!("{base}/oauth/register"));
    }
    doc
}

/// Why a registration is refused: the RFC 7591 §3.2.2 `error` and its description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// `invalid_redirect_uri` or `invalid_client_metadata`.
    pub error: &'static str,
    /// What was wrong (no secret in it).
    pub description: String,
}

fn refused(error: &'static str, description: impl Into<String>) -> Refused {
    Refused { error, description: description.into() }
}

/// A registration request's metadata after the RFC 7591 §2 checks and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// `redirect_uris`, each [`valid_redirect_uri`].
    pub redirect_uris: Vec<String>,
    /// `token_endpoint_auth_method`; omitted → `client_secret_basic` (RFC 7591 §2).
    pub token_endpoint_auth_method: String,
    /// `grant_types` ⊆ {authorization_code, refresh_token}; omitted → both.
    pub grant_types: Vec<String>,
    /// `response_types` ⊆ {code}; omitted → `["code"]`.
    pub response_types: Vec<String>,
    /// `client_name`, at most [`MAX_CLIENT_NAME_CHARS`], no control characters.
    pub client_name: Option<String>,
    /// `client_uri`, an http(s) URL.
    pub client_uri: Option<String>,
    /// `scope`, kept to the scopes the hub grants (RFC 7591 §3.2.1 lets the
    /// server replace it); `None` when not sent or none is known.
    pub scope: Option<String>,
}

/// Checks a registration body (a JSON object; unknown members ignored, RFC 7591 §2).
pub fn parse_registration(body: &[u8]) -> Result<Registration, Refused> {
    if body.len() > MAX_REGISTRATION_BYTES {
        return Err(refused("invalid_client_metadata", format!("the registration is larger than {MAX_REGISTRATION_BYTES} bytes")));
    }
    let value: Value = serde_json::from_slice(body).map_err(|_| refused("invalid_client_metadata", "the body is not JSON"))?;
    let Some(doc) = value.as_object() else {
        return Err(refused("invalid_client_metadata", "the body is not a JSON object"));
    };
    let strings = |name: &str, error: &'static str| -> Result<Option<Vec<String>>, Refused> {
        match doc.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| i.as_str().map(str::to_string).ok_or_else(|| refused(error, format!("{name} must be an array of strings"))))
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(refused(error, format!("{name} must be an array of strings"))),
        }
    };
    let string = |name: &str| -> Result<Option<String>, Refused> {
        match doc.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(refused("invalid_client_metadata", format!("{name} must be a string"))),
        }
    };
    let redirect_uris = strings("redirect_uris", "invalid_redirect_uri")?.unwrap_or_default();
    if redirect_uris.is_empty() {
        return Err(refused("invalid_redirect_uri", "redirect_uris is required (at least one URI)"));
    }
    if redirect_uris.len() > MAX_REDIRECT_URIS {
        return Err(refused("invalid_redirect_uri", format!("at most {MAX_REDIRECT_URIS} redirect_uris")));
    }
    for uri in &redirect_uris {
        if let Err(why) = valid_redirect_uri(uri) {
            return Err(refused("invalid_redirect_uri", why));
        }
    }
    let method = string("token_endpoint_auth_method")?.unwrap_or_else(|| "client_secret_basic".into());
    if !AUTH_METHODS.contains(&method.as_str()) {
        return Err(refused("invalid_client_metadata", "token_endpoint_auth_method must be none, client_secret_basic or client_secret_post"));
    }
    let grant_types = strings("grant_types", "invalid_client_metadata")?.unwrap_or_else(|| vec!["authorization_code".into(), "refresh_token".into()]);
    if grant_types.is_empty() || grant_types.iter().any(|g| !matches!(g.as_str(), "authorization_code" | "refresh_token")) {
        return Err(refused("invalid_client_metadata", "grant_types may hold authorization_code and refresh_token only"));
    }
    let response_types = strings("response_types", "invalid_client_metadata")?.unwrap_or_else(|| vec!["code".into()]);
    if response_types.is_empty() || response_types.iter().any(|r| r != "code") {
        return Err(refused("invalid_client_metadata", "response_types may hold code only"));
    }
    let client_name = string("client_name")?.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
    if let Some(n) = &client_name {
        if n.chars().count() > MAX_CLIENT_NAME_CHARS || n.chars().any(char::is_control) {
            return Err(refused("invalid_client_metadata", format!("client_name is at most {MAX_CLIENT_NAME_CHARS} characters, without control characters")));
        }
    }
    let client_uri = string("client_uri")?;
    if let Some(u) = &client_uri {
        let ok = (u.starts_with("https://") || u.starts_with("http://")) && u.len() <= MAX_REDIRECT_URI_CHARS && u.bytes().all(|b| b.is_ascii_graphic());
        if !ok {
            return Err(refused("invalid_client_metadata", "client_uri must be an http or https URL"));
        }
    }
    let scope = string("scope")?.and_then(|s| {
        let known: Vec<&str> = SCOPES.iter().copied().filter(|k| s.split(' ').any(|x| x == *k)).collect();
        (!known.is_empty()).then(|| known.join(" "))
    });
    Ok(Registration { redirect_uris, token_endpoint_auth_method: method, grant_types, response_types, client_name, client_uri, scope })
}

/// URI schemes a browser must never be sent to as a redirect URI.
const FORBIDDEN_SCHEMES: &[&str] = &["javascript", "data", "vbscript", "file", "about", "blob", "filesystem", "mailto", "tel", "ftp", "ws", "wss"];

/// Whether `uri` may be a redirect URI (RFC 6749 §3.1.2, RFC 8252 §7 and
/// §8.3; OAuth 2.1 §2.3.1): absolute, no fragment, printable ASCII; `https`
/// with a host; `http` only with a loopback host (`127.0.0.1`, `[::1]`,
/// `localhost`); or a private-use scheme (`cursor://…`, `vscode:/…`,
/// `com.example.app:/cb`) other than `javascript:`, `data:` and their kind.
/// The error says which rule failed.
pub fn valid_redirect_uri(uri: &str) -> Result<(), String> {
    if uri.is_empty() || uri.len() > MAX_REDIRECT_URI_CHARS || !uri.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("a redirect URI is 1 to {MAX_REDIRECT_URI_CHARS} printable ASCII characters, without spaces"));
    }
    if uri.contains('#') {
        return Err("a redirect URI must not have a fragment (#…)".into());
    }
    let Some((scheme, rest)) = uri.split_once(':') else {
        return Err("a redirect URI must be absolute (scheme:…)".into());
    };
    let scheme_ok = scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c));
    if !scheme_ok || rest.is_empty() {
        return Err("a redirect URI must be absolute (scheme:…)".into());
    }
    let scheme = scheme.to_ascii_lowercase();
    match scheme.as_str() {
        "https" | "http" => {
            let Some(after) = rest.strip_prefix("//") else {
                return Err(format!("{scheme} redirect URIs are {scheme}://host/…"));
            };
            let authority = after.split(['/', '?']).next().unwrap_or("");
            if authority.contains('@') {
                return Err("a redirect URI must not carry userinfo (user@)".into());
            }
            let host = crate::config::auth::host_of(uri);
            if host.is_empty() {
                return Err("a redirect URI needs a host".into());
            }
            if scheme == "http" && !crate::config::auth::is_loopback_host(host) {
                return Err("http redirect URIs must be loopback (127.0.0.1, [::1] or localhost); use https".into());
            }
            Ok(())
        }
        s if FORBIDDEN_SCHEMES.contains(&s) => Err(format!("{s}: is not allowed as a redirect URI")),
        _ => Ok(()),
    }
}

/// `POST /oauth/register` (RFC 7591 §3): counted against
/// `registrationsPerMinute` for the source address (→ 429), checked
/// ([`parse_registration`] → 400), stored unless `maxClients` live
/// registrations exist (→ 503), answered 201 with the metadata, `client_id`,
/// `client_id_issued_at` and, for `client_secret_*`, `client_secret` (shown
/// once; stored as its SHA-256) with `client_secret_expires_at: 0`.
fn register(hub: &Hub, req: &Request) -> Response {
    let limiter = &hub.oauth().registrations;
    if let Err(not_until) = limiter.check_key(&req.peer.ip()) {
        let wait = not_until.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default())).as_secs().max(1);
        hub.oauth().count_error("temporarily_unavailable");
        return error_response(429, "temporarily_unavailable", &format!("too many registrations from your address; try again in {wait} s"))
            .with_header("Retry-After", &wait.to_string());
    }
    let reg = match parse_registration(&req.body) {
        Ok(r) => r,
        Err(r) => {
            log::info!("oauth: registration refused: {}", crate::trace::sanitize(&r.description, 200));
            hub.oauth().count_error(r.error);
            return error_response(400, r.error, &r.description);
        }
    };
    let client_id = format!("{CLIENT_ID_PREFIX}{}", crate::random::hex::<16>());
    let secret = (reg.token_endpoint_auth_method != "none").then(|| format!("{CLIENT_SECRET_PREFIX}{}", crate::random::hex::<32>()));
    let now = crate::store::now_ms();
    let client = RegisteredClient {
        client_id: client_id.clone(),
        client_name: reg.client_name.clone(),
        redirect_uris: reg.redirect_uris.clone(),
        token_endpoint_auth_method: reg.token_endpoint_auth_method.clone(),
        secret_digest: secret.as_deref().map(crate::users::key_digest),
        client_uri: reg.client_uri.clone(),
        created_ms: now,
    };
    match hub.oauth().store().register_client(&client) {
        Ok(true) => {}
        Ok(false) => {
            log::warn!("oauth: registration refused: auth.oauth.maxClients registered clients exist");
            hub.oauth().count_error("temporarily_unavailable");
            return error_response(503, "temporarily_unavailable", "this hub has as many registered clients as it keeps; try again later")
                .with_header("Retry-After", "60");
        }
        Err(e) => {
            log::warn!("oauth: registration: the store is unavailable ({e})");
            hub.oauth().count_error("temporarily_unavailable");
            return error_response(503, "temporarily_unavailable", "the hub cannot reach its store right now").with_header("Retry-After", "2");
        }
    }
    log::info!(
        "oauth: registered client {client_id} ({}, {})",
        crate::trace::sanitize(reg.client_name.as_deref().unwrap_or("no name"), 100),
        reg.token_endpoint_auth_method
    );
    let mut answer = Map::new();
    answer.insert("client_id".into(), json!(client_id));
    answer.insert("client_id_issued_at".into(), json!(now / 1000));
    answer.insert("redirect_uris".into(), json!(reg.redirect_uris));
    answer.insert("token_endpoint_auth_method".into(), json!(reg.token_endpoint_auth_method));
    answer.insert("grant_types".into(), json!(reg.grant_types));
    answer.insert("response_types".into(), json!(reg.response_types));
    for (k, v) in [("client_name", &reg.client_name), ("client_uri", &reg.client_uri), ("scope", &reg.scope)] {
        if let Some(v) = v {
            answer.insert(k.into(), json!(v));
        }
    }
    if let Some(s) = secret {
        answer.insert("client_secret".into(), json!(s));
        answer.insert("client_secret_expires_at".into(), json!(0));
    }
    Response::json(201, &Value::Object(answer))
        .with_header("Cache-Control", "no-store")
        .with_header("Pragma", "no-cache")
        .with_header("Access-Control-Allow-Origin", "*")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_are_https_loopback_http_or_a_private_scheme() {
        for ok in [
            "https://app.example.com/cb",
            "http://127.0.0.1:33418/callback",
            "http://localhost/cb",
            "http://[::1]:8080/cb?x=1",
            "cursor://anysphere.cursor-retrieval/oauth/callback",
            "vscode://vscode.github-authentication/did-authenticate",
            "com.example.app:/oauth2redirect",
        ] {
            assert_eq!(valid_redirect_uri(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "/relative",
            "http://evil.example.com/cb",
            "http://10.0.0.1/cb",
            "https://app.example.com/cb#frag",
            "https:///nohost",
            "https://user@app.example.com/cb",
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "data:text/html,x",
            "https://app.example.com/a b",
            "1http://x",
            "https:app.example.com",
        ] {
            assert!(valid_redirect_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_registration_gets_the_rfc_7591_defaults_and_ignores_unknown_members() {
        let r = parse_registration(br#"{"redirect_uris":["http://127.0.0.1:1/cb"],"application_type":"native","client_name":" Tool ","scope":"mcp offline_access"}"#).unwrap();
        assert_eq!(r.token_endpoint_auth_method, "client_secret_basic");
        assert_eq!(r.grant_types, ["authorization_code", "refresh_token"]);
        assert_eq!(r.response_types, ["code"]);
        assert_eq!(r.client_name.as_deref(), Some("Tool"));
        assert_eq!(r.scope.as_deref(), Some("mcp"));
        let bad = |body: &str| parse_registration(body.as_bytes()).unwrap_err().error;
        assert_eq!(bad("{}"), "invalid_redirect_uri");
        assert_eq!(bad(r#"{"redirect_uris":"http://127.0.0.1/cb"}"#), "invalid_redirect_uri");
        assert_eq!(bad(r#"{"redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"private_key_jwt"}"#), "invalid_client_metadata");
        assert_eq!(bad(r#"{"redirect_uris":["http://127.0.0.1/cb"],"grant_types":["implicit"]}"#), "invalid_client_metadata");
        assert_eq!(bad(r#"{"redirect_uris":["http://127.0.0.1/cb"],"response_types":["token"]}"#), "invalid_client_metadata");
        assert_eq!(bad(r#"{"redirect_uris":["http://127.0.0.1/cb"],"client_name":7}"#), "invalid_client_metadata");
        assert_eq!(bad("[1]"), "invalid_client_metadata");
        assert_eq!(bad("not json"), "invalid_client_metadata");
        let long = format!(r#"{{"redirect_uris":["http://127.0.0.1/cb"],"client_name":"{}"}}"#, "x".repeat(201));
        assert_eq!(bad(&long), "invalid_client_metadata");
    }

    #[test]
    fn the_metadata_names_one_issuer_and_drops_registration_when_off() {
        let base = "http://127.0.0.1:3000";
        let prm = protected_resource(base);
        assert_eq!(prm["resource"], "http://127.0.0.1:3000/mcp");
        assert_eq!(prm["authorization_servers"][0], base);
        let mut config = crate::config::auth::OauthConfig::default();
        let asm = authorization_server(base, &config);
        assert_eq!(asm["issuer"], base);
        assert_eq!(asm["registration_endpoint"], "http://127.0.0.1:3000/oauth/register");
        config.dynamic_registration = false;
        assert!(authorization_server(base, &config).get("registration_endpoint").is_none());
    }
}
