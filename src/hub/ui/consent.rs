//! `/oauth/authorize` (issue 18): the authorization request of an MCP
//! client, as a page. The person signs in with the pages' sign-in (the
//! request is resumed after it), then a consent page names the client, its
//! redirect URI and the scopes; Allow sends the browser to the client's
//! redirect URI with `code`, `state` and `iss` (RFC 9207). A consent is
//! remembered per user and client: a later request within it skips the page.
//!
//! The request is checked in the order of RFC 6749 §4.1.2.1 by one function
//! ([`validate`]) for the GET and for the consent form's POST:
//! 1. `client_id` missing or unknown, a metadata document that cannot be
//!    used, or a `redirect_uri` that is not one of the client's → a 400
//!    page, never a redirect (the redirect URI cannot be trusted);
//! 2. then errors go back to the redirect URI with `error`,
//!    `error_description`, `state` and `iss`: a parameter sent twice or
//!    `response_type` missing → `invalid_request`, another `response_type`
//!    → `unsupported_response_type`; `code_challenge` missing or malformed,
//!    or a method other than `S256` → `invalid_request` (PKCE is required,
//!    OAuth 2.1 §4.1.1); a `resource` other than this hub's `/mcp` →
//!    `invalid_target` (RFC 8707 §2); an unknown scope → `invalid_scope`.
//!
//! Loopback redirect URIs (`http://127.0.0.1`, `http://[::1]`,
//! `http://localhost`) match whatever the port (RFC 8252 §7.3).
//!
//! The consent page and the POST's answer carry their own
//! `Content-Security-Policy`: its `form-action` allows the redirect URI's
//! origin (or scheme) as well as `'self'`, as Chromium applies `form-action`
//! to the redirect that follows a form submission.

use super::layout::{csrf_field, page, Nav};
use super::{cookie_name, error_page, html, redirect, Ctx};
use crate::http::{percent_decode, Response};
use crate::hub::oauth::{resolve_client, resource_of, ClientError, ClientInfo, SCOPES, SCOPE_MCP, SCOPE_READ};
use crate::users::oauth::CodeGrant;
use maud::html;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// The authorization endpoint's path (served with the pages: their
/// sign-in, session, CSRF checks and headers).
pub const PATH: &str = "/oauth/authorize";
/// The cookie holding the authorization request (path and query) while the
/// person signs in; [`Ctx::sign_in`] resumes it.
pub const NEXT_COOKIE: &str = "mcphub_oauth_next";
/// How long the resumed request waits for the sign-in (s).
pub const NEXT_COOKIE_SECS: u64 = 600;
/// Longest request kept in [`NEXT_COOKIE`] (browsers drop cookies near 4 KiB).
const MAX_NEXT_BYTES: usize = 3500;

/// Query-value escaping of the redirect's parameters (RFC 3986 unreserved kept).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// A checked authorization request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// The client.
    pub client: ClientInfo,
    /// Where the answer goes: the request's `redirect_uri`, or the client's only one.
    pub redirect_uri: String,
    /// `state`, echoed back.
    pub state: Option<String>,
    /// The PKCE S256 `code_challenge`.
    pub code_challenge: String,
    /// The asked scopes, space-separated in [`SCOPES`] order (`mcp` when none asked).
    pub scope: String,
    /// The request's `resource`, when sent (it equals this hub's `/mcp`).
    pub resource: Option<String>,
}

/// The request's parameters in order (RFC 6749 §3.1: a parameter without a
/// value counts as omitted; one sent twice is an error).
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(text: &str) -> Params {
        Params(
            text.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect(),
        )
    }

    /// The non-empty value of `name`.
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, v)| k == name && !v.is_empty()).map(|(_, v)| v.as_str())
    }

    /// The first OAuth parameter sent more than once.
    fn repeated(&self) -> Option<&'static str> {
        const NAMES: &[&str] =
            &["client_id", "redirect_uri", "response_type", "state", "scope", "code_challenge", "code_challenge_method", "resource"];
        NAMES.iter().copied().find(|n| self.0.iter().filter(|(k, _)| k == n).count() > 1)
    }
}

/// Whether the asked `redirect_uri` is the registered one: equal, or both
/// loopback `http` URIs with the same host, path and query and any port
/// (RFC 8252 §7.3).
pub fn redirect_matches(registered: &str, asked: &str) -> bool {
    registered == asked || matches!((loopback_parts(registered), loopback_parts(asked)), (Some(a), Some(b)) if a == b)
}

/// `(host, path and query)` of a loopback `http` URI with an optional numeric port.
fn loopback_parts(uri: &str) -> Option<(&str, &str)> {
    let rest = uri.strip_prefix("http://")?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (h, after) = v6.split_once(']')?;
            (h, after)
        }
        None => match authority.find(':') {
            Some(i) => authority.split_at(i),
            None => (authority, ""),
        },
    };
    let port_ok = port.is_empty() || port.strip_prefix(':').is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    (port_ok && matches!(host, "127.0.0.1" | "::1" | "localhost")).then_some((host, tail))
}

/// The asked scopes in [`SCOPES`] order: none asked → `mcp`; an unknown
/// one → its name (the error).
pub fn parse_scope(asked: Option<&str>) -> Result<String, String> {
    let asked: Vec<&str> = asked.unwrap_or("").split(' ').filter(|s| !s.is_empty()).collect();
    if let Some(unknown) = asked.iter().find(|s| !SCOPES.contains(s)) {
        return Err((*unknown).to_string());
    }
    if asked.is_empty() {
        return Ok(SCOPE_MCP.to_string());
    }
    Ok(SCOPES.iter().copied().filter(|s| asked.contains(s)).collect::<Vec<_>>().join(" "))
}

/// Whether every scope of `asked` is among `granted` (both space-separated).
fn covers(granted: &str, asked: &str) -> bool {
    asked.split(' ').filter(|s| !s.is_empty()).all(|s| granted.split(' ').any(|g| g == s))
}

/// What a scope lets the client do, in words.
pub fn scope_words(scope: &str) -> &'static str {
    match scope {
        SCOPE_MCP => "use your MCP servers through MCPHub: list and call tools, read resources and prompts",
        SCOPE_READ => "list tools and read resources and prompts, without calling tools",
        _ => "an unknown permission",
    }
}

/// `redirect_uri` with `params` added to its query (RFC 6749 §4.1.2).
fn with_query(redirect_uri: &str, params: &[(&str, &str)]) -> String {
    let mut url = redirect_uri.to_string();
    let mut first = !(url.ends_with('?') || url.ends_with('&'));
    for (k, v) in params {
        if first {
            url.push(if url.contains('?') { '&' } else { '?' });
            first = false;
        } else {
            url.push('&');
        }
        url.push_str(k);
        url.push('=');
        url.extend(utf8_percent_encode(v, QUERY_VALUE));
    }
    url
}

/// The error answer sent to the client's redirect URI (RFC 6749 §4.1.2.1,
/// `iss` of RFC 9207 §2).
fn error_redirect(ctx: &Ctx, redirect_uri: &str, state: Option<&str>, error: &str, description: &str) -> Response {
    log::info!("oauth: authorization request refused: {error}: {}", crate::trace::sanitize(description, 200));
    ctx.hub.oauth().count_error(error);
    let mut params = vec![("error", error), ("error_description", description)];
    if let Some(s) = state {
        params.push(("state", s));
    }
    params.push(("iss", ctx.base.as_str()));
    redirect(&with_query(redirect_uri, &params))
}

/// The 400 page of a request that cannot be sent back to the client.
fn bad_request_page(ctx: &Ctx, text: &str) -> Response {
    error_page(ctx, 400, "This connection request cannot be used", text)
}

/// Checks an authorization request (module doc, in that order): the
/// request, or the answer to give (a 400/503 page, or a redirect with the error).
fn validate(ctx: &Ctx, p: &Params) -> Result<Authorization, Response> {
    let Some(client_id) = p.get("client_id") else {
        return Err(bad_request_page(ctx, "The request names no client (client_id is missing). Go back to the app and connect again."));
    };
    let client = match resolve_client(ctx.hub, client_id) {
        Ok(c) => c,
        Err(ClientError::Unknown) => {
            return Err(bad_request_page(
                ctx,
                "The app's client_id is unknown to this hub (its registration may have expired). Go back to the app and connect again: it registers anew.",
            ))
        }
        Err(ClientError::Document(e)) => {
            log::info!("oauth: client metadata document refused: {e}");
            return Err(bad_request_page(ctx, &format!("The app's metadata document cannot be used: {e}.")));
        }
        Err(ClientError::Unavailable(e)) => {
            log::warn!("oauth: authorize: the store is unavailable ({e})");
            return Err(error_page(ctx, 503, "Temporarily unavailable", "The hub cannot reach its store right now. Try again in a few seconds.")
                .with_header("Retry-After", "2"));
        }
    };
    let redirect_uri = match p.get("redirect_uri") {
        Some(asked) if client.redirect_uris.iter().any(|r| redirect_matches(r, asked)) => asked.to_string(),
        Some(_) => {
            return Err(bad_request_page(
                ctx,
                "The app asked to return you to an address it did not register (redirect_uri). The request was stopped; nothing was sent to that address.",
            ))
        }
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        None => return Err(bad_request_page(ctx, "The request has no redirect_uri, and the app registered several. Go back to the app and connect again.")),
    };
    let state = p.get("state").map(str::to_string);
    let fail = |error: &str, description: &str| Err(error_redirect(ctx, &redirect_uri, state.as_deref(), error, description));
    if let Some(name) = p.repeated() {
        return fail("invalid_request", &format!("the parameter {name} was sent more than once"));
    }
    match p.get("response_type") {
        None => return fail("invalid_request", "response_type is required"),
        Some("code") => {}
        Some(_) => return fail("unsupported_response_type", "only response_type=code is supported"),
    }
    let Some(challenge) = p.get("code_challenge") else {
        return fail("invalid_request", "code_challenge is required (PKCE with S256)");
    };
    if !(43..=128).contains(&challenge.len()) || !challenge.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)) {
        return fail("invalid_request", "code_challenge must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~ (RFC 7636)");
    }
    if p.get("code_challenge_method") != Some("S256") {
        return fail("invalid_request", "code_challenge_method must be S256");
    }
    let resource = p.get("resource").map(str::to_string);
    if let Some(r) = &resource {
        if r.strip_suffix('/').unwrap_or(r) != resource_of(&ctx.base) {
            return fail("invalid_target", &format!("resource must be {}", resource_of(&ctx.base)));
        }
    }
    let scope = match parse_scope(p.get("scope")) {
        Ok(s) => s,
        Err(unknown) => return fail("invalid_scope", &format!("unknown scope {}; this hub grants {}", crate::trace::sanitize(&unknown, 40), SCOPES.join(", "))),
    };
    Ok(Authorization { client, redirect_uri, state, code_challenge: challenge.to_string(), scope, resource })
}

/// The `Content-Security-Policy` of the consent page and its POST answer:
/// the pages' policy with the redirect URI's origin (a private-use
/// scheme: the scheme) allowed as a form target.
fn consent_csp(redirect_uri: &str) -> String {
    let scheme = redirect_uri.split(':').next().unwrap_or("").to_ascii_lowercase();
    let target = match redirect_uri.split_once("://") {
        Some((_, rest)) if scheme == "http" || scheme == "https" => {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            // An IPv6 literal is no CSP host-source: allow the scheme.
            if authority.contains('[') {
                format!("{scheme}:")
            } else {
                format!("{scheme}://{authority}")
            }
        }
        _ => format!("{scheme}:"),
    };
    let safe = target.len() > 1 && target.bytes().all(|b| b.is_ascii_alphanumeric() || b"+.-:/".contains(&b));
    let extra = if safe { format!(" {target}") } else { String::new() };
    format!("default-src 'self'; form-action 'self'{extra}; frame-ancestors 'none'; base-uri 'none'")
}

/// Issues the code for `user` and sends the browser back to the client.
fn grant(ctx: &Ctx, user: &str, a: &Authorization) -> Response {
    let code = CodeGrant {
        client_id: a.client.client_id.clone(),
        client_name: a.client.name.clone(),
        user: user.to_string(),
        redirect_uri: a.redirect_uri.clone(),
        code_challenge: a.code_challenge.clone(),
        scope: a.scope.clone(),
        resource: resource_of(&ctx.base),
    };
    match ctx.hub.oauth().store().issue_code(&code) {
        Ok(code) => {
            log::info!("oauth: user {user} authorized client {} ({})", crate::trace::sanitize(&a.client.client_id, 200), a.scope);
            let mut params = vec![("code", code.as_str())];
            if let Some(s) = &a.state {
                params.push(("state", s));
            }
            params.push(("iss", ctx.base.as_str()));
            redirect(&with_query(&a.redirect_uri, &params))
        }
        Err(e) => store_down(ctx, &e),
    }
}

fn store_down(ctx: &Ctx, e: &crate::store::kv::KvError) -> Response {
    log::warn!("oauth: authorize: the store is unavailable ({e})");
    error_page(ctx, 503, "Temporarily unavailable", "The hub cannot reach its store right now. Try again in a few seconds.").with_header("Retry-After", "2")
}

/// The request's path and query as a cookie value (`"`, `,`, `;`, `\`,
/// spaces and non-ASCII percent-encoded; the meaning is unchanged).
fn cookie_safe(target: &str) -> String {
    let mut out = String::with_capacity(target.len());
    for b in target.bytes() {
        if b.is_ascii_graphic() && !b"\",;\\".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `GET /oauth/authorize`.
pub fn authorize(ctx: &Ctx) -> Response {
    if !ctx.hub.config().auth.oauth.enabled {
        return error_page(ctx, 404, "Not found", "OAuth is turned off on this hub: connect your client with a hub key.");
    }
    let params = Params::parse(ctx.req.target.split_once('?').map_or("", |(_, q)| q));
    let a = match validate(ctx, &params) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let (Some(_), Some(user)) = (&ctx.session, &ctx.user) else {
        let next = cookie_safe(&ctx.req.target);
        let r = redirect("/ui/login");
        if next.len() > MAX_NEXT_BYTES {
            return r;
        }
        return r.with_header("Set-Cookie", &ctx.set_cookie(NEXT_COOKIE, &next, Some(NEXT_COOKIE_SECS)));
    };
    match ctx.hub.oauth().store().consent(&user.name, &a.client.client_id) {
        Ok(Some(app)) if covers(&app.scope, &a.scope) => grant(ctx, &user.name, &a),
        Ok(_) => consent_page(ctx, &user.name, &a),
        Err(e) => store_down(ctx, &e),
    }
}

/// The consent page: who asks, where the browser goes back, what it may do; Allow / Deny.
fn consent_page(ctx: &Ctx, user: &str, a: &Authorization) -> Response {
    let title = format!("Allow {} to use MCPHub as {user}?", a.client.name);
    let hidden = [
        ("client_id", Some(a.client.client_id.as_str())),
        ("redirect_uri", Some(a.redirect_uri.as_str())),
        ("response_type", Some("code")),
        ("state", a.state.as_deref()),
        ("code_challenge", Some(a.code_challenge.as_str())),
        ("code_challenge_method", Some("S256")),
        ("scope", Some(a.scope.as_str())),
        ("resource", a.resource.as_deref()),
    ];
    let body = html! {
        div.card.consent {
            p.lead { "An app asks to use your MCP servers through MCPHub, as you." }
            dl.facts {
                dt { "App" }
                dd id="client" {
                    @if let Some(host) = &a.client.verified_host {
                        (a.client.name) ", published by " strong id="client-host" { (host) }
                    } @else {
                        (a.client.name) " " span.muted id="unverified" { "(name not verified)" }
                    }
                }
                dt { "Returns you to" }
                dd { code id="redirect-uri" { (a.redirect_uri) } }
                dt { "It may" }
                dd {
                    ul id="scopes" {
                        @for s in a.scope.split(' ') { li { (scope_words(s)) } }
                    }
                }
            }
            form id="consent" method="post" action=(PATH) {
                (csrf_field(ctx))
                @for (name, value) in hidden {
                    @if let Some(v) = value { input type="hidden" name=(name) value=(v); }
                }
                button.primary type="submit" name="decision" value="allow" id="allow" { "Allow" }
                " "
                button.secondary type="submit" name="decision" value="deny" id="deny" { "Deny" }
            }
            p.muted { "Only allow apps you started yourself. You can disconnect an app at any time on the Keys page, under Connected apps." }
        }
    };
    html(200, page(ctx, Nav::None, &title, body)).with_header("Content-Security-Policy", &consent_csp(&a.redirect_uri))
}

/// `POST /oauth/authorize`: the consent form's Allow or Deny (the CSRF
/// check ran before); the request is checked again as on the GET.
pub fn decide(ctx: &Ctx) -> Response {
    if !ctx.hub.config().auth.oauth.enabled {
        return error_page(ctx, 404, "Not found", "OAuth is turned off on this hub: connect your client with a hub key.");
    }
    let (_, user) = match ctx.signed_in() {
        Ok(s) => s,
        Err(r) => return r,
    };
    let params = Params::parse(&String::from_utf8_lossy(&ctx.req.body));
    let a = match validate(ctx, &params) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let csp = consent_csp(&a.redirect_uri);
    let answer = match params.get("decision") {
        Some("allow") => match ctx.hub.oauth().store().remember_consent(&user.name, &a.client.client_id, &a.client.name, &a.scope) {
            Ok(()) => grant(ctx, &user.name, &a),
            Err(e) => store_down(ctx, &e),
        },
        Some("deny") => error_redirect(ctx, &a.redirect_uri, a.state.as_deref(), "access_denied", "the user denied the request"),
        _ => error_redirect(ctx, &a.redirect_uri, a.state.as_deref(), "invalid_request", "the consent form had no decision"),
    };
    answer.with_header("Content-Security-Policy", &csp)
}

/// Where [`Ctx::sign_in`] sends the browser: the authorization request kept
/// in [`NEXT_COOKIE`] when there is one (only `/oauth/authorize?…`), and
/// whether the cookie was sent (to clear it).
pub(super) fn resume_after_sign_in(ctx: &Ctx) -> (Option<String>, bool) {
    let Some(v) = super::cookie(ctx.req, &cookie_name(NEXT_COOKIE, ctx.secure_cookies())) else {
        return (None, false);
    };
    let ok = v.starts_with(&format!("{PATH}?")) && v.len() <= MAX_NEXT_BYTES && v.bytes().all(|b| b.is_ascii_graphic());
    (ok.then(|| v.to_string()), true)
}

/// The name of the client whose authorization request waits for this
/// sign-in ([`NEXT_COOKIE`]), for the sign-in page's "Sign in to connect …".
pub(super) fn waiting_client(ctx: &Ctx) -> Option<String> {
    let next = resume_after_sign_in(ctx).0?;
    let params = Params::parse(next.split_once('?').map_or("", |(_, q)| q));
    resolve_client(ctx.hub, params.get("client_id")?).ok().map(|c| c.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_redirects_match_any_port_and_others_exactly() {
        assert!(redirect_matches("http://127.0.0.1/callback", "http://127.0.0.1:51234/callback"));
        assert!(redirect_matches("http://127.0.0.1:3000/callback", "http://127.0.0.1:51234/callback"));
        assert!(redirect_matches("http://[::1]:1/cb", "http://[::1]:2/cb"));
        assert!(redirect_matches("http://localhost:1/cb?a=1", "http://localhost/cb?a=1"));
        assert!(!redirect_matches("http://127.0.0.1:1/callback", "http://127.0.0.1:1/other"));
        assert!(!redirect_matches("http://127.0.0.1:1/cb", "http://localhost:1/cb"));
        assert!(!redirect_matches("http://127.0.0.1:1/cb", "http://127.0.0.1:x/cb"));
        assert!(!redirect_matches("https://app.example.com/cb", "https://app.example.com:444/cb"));
        assert!(!redirect_matches("http://127.0.0.1:1/cb", "https://127.0.0.1:1/cb"));
        assert!(redirect_matches("cursor://a.b/cb", "cursor://a.b/cb"));
    }

    #[test]
    fn scopes_default_to_mcp_and_unknown_ones_are_named() {
        assert_eq!(parse_scope(None).unwrap(), "mcp");
        assert_eq!(parse_scope(Some("")).unwrap(), "mcp");
        assert_eq!(parse_scope(Some("mcp:read mcp mcp")).unwrap(), "mcp mcp:read");
        assert_eq!(parse_scope(Some("mcp admin")).unwrap_err(), "admin");
        assert!(covers("mcp mcp:read", "mcp:read") && !covers("mcp:read", "mcp"));
    }

    #[test]
    fn the_redirect_gets_its_parameters_escaped_after_its_own_query() {
        assert_eq!(with_query("http://127.0.0.1:1/cb", &[("code", "a b"), ("iss", "http://h:1")]), "http://127.0.0.1:1/cb?code=a%20b&iss=http%3A%2F%2Fh%3A1");
        assert_eq!(with_query("https://a/cb?x=1", &[("state", "s&t")]), "https://a/cb?x=1&state=s%26t");
    }

    #[test]
    fn the_consent_csp_allows_the_redirect_origin_or_scheme() {
        assert!(consent_csp("http://127.0.0.1:5000/cb").contains("form-action 'self' http://127.0.0.1:5000;"));
        assert!(consent_csp("cursor://anysphere.cursor-retrieval/oauth").contains("form-action 'self' cursor:;"));
        assert!(consent_csp("http://[::1]:5/cb").contains("form-action 'self' http:;"));
        assert!(consent_csp("https://evil;script-src *").contains("form-action 'self';"));
    }

    #[test]
    fn the_resumed_request_is_cookie_safe() {
        assert_eq!(cookie_safe("/oauth/authorize?a=1;b=\"x\",y"), "/oauth/authorize?a=1%3Bb=%22x%22%2Cy");
    }
}
