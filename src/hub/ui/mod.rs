//! The users' pages under `/ui` (issue 17): sign-in (OpenID Connect,
//! GitHub OAuth, or a pasted hub key), and for the signed-in person their
//! Connect snippets, hub keys, service tokens and activity; for admins the
//! users, upstream sessions and servers.
//!
//! Served by the hub's own HTTP layer and workers as server-rendered HTML
//! (maud: every interpolation escaped); forms work without JavaScript.
//!
//! Rules every answer follows (issue 17 "Sign-in"):
//! - at most `auth.maxConcurrentPages` `/ui` requests at once; beyond → a
//!   503 page with `Retry-After: 1` (pages never hold `/mcp` workers long);
//! - `Content-Security-Policy: default-src 'self'` (so no inline style or
//!   script: [`STYLE`] and [`SCRIPT`] are served under `/ui/static/`),
//!   `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer`,
//!   `X-Content-Type-Options: nosniff`, `Cache-Control: no-store` on pages;
//!   `Server-Timing: render;dur=<ms>` (the server time of the answer);
//! - every POST carries the session's CSRF token (`csrf` form field,
//!   compared in constant time); when the browser sends an `Origin` other
//!   than `null` it must be this hub's, and a `Sec-Fetch-Site` must be
//!   `same-origin` (or `none`); else 403. The key sign-in form, before a session
//!   exists, uses a double-submit cookie instead;
//! - the session cookie is `__Host-mcphub_session` (`Secure`, `HttpOnly`,
//!   `SameSite=Lax`, `Path=/`) when `publicUrl` is https or its host is
//!   loopback (browsers treat `http://127.0.0.1` as a secure context);
//!   otherwise `mcphub_session` without `Secure` (the hub warns at start:
//!   set an https `publicUrl` behind a TLS-terminating proxy);
//! - sign-in attempts are limited per source address ([`SIGNIN_PER_MINUTE`])
//!   and a wrong key counts as a failed authentication (`hub.auth_failures()`).

pub mod activity;
pub mod admin;
pub mod consent;
pub mod github;
pub mod layout;
pub mod oidc;
pub mod pages;
pub mod session;

use super::Hub;
use crate::config::auth::{host_of, is_loopback_host};
use crate::http::{percent_decode, Request, Response};
use crate::users::User;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use maud::Markup;
use session::{BrowserSession, Sessions};
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// The prefix of every page.
pub const PREFIX: &str = "/ui";
/// Sign-in attempts per minute from one source address.
pub const SIGNIN_PER_MINUTE: u32 = 10;
/// The stylesheet (`/ui/static/style.css`).
pub const STYLE: &str = include_str!("static/style.css");
/// The progressive JavaScript (`/ui/static/app.js`): copy buttons only;
/// every page works without it.
pub const SCRIPT: &str = include_str!("static/app.js");
/// The double-submit cookie of the key sign-in form (before a session exists).
const PRE_CSRF: &str = "mcphub_csrf";
/// The session cookie's name (prefixed `__Host-` when secure).
const SESSION: &str = "mcphub_session";

/// The pages' state, owned by the hub.
pub struct Ui {
    sessions: Sessions,
    in_flight: AtomicUsize,
    signins: DefaultKeyedRateLimiter<IpAddr>,
}

impl Ui {
    /// Sessions in `redis` when given, else in memory.
    pub fn new(redis: Option<crate::store::redis::RedisStore>) -> Ui {
        let quota = Quota::per_minute(NonZeroU32::new(SIGNIN_PER_MINUTE).unwrap_or(NonZeroU32::MIN));
        Ui { sessions: Sessions::new(redis), in_flight: AtomicUsize::new(0), signins: RateLimiter::keyed(quota) }
    }

    /// The browser-session store.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }
}

/// Holds one of the pages' concurrency slots until dropped.
struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A parsed `application/x-www-form-urlencoded` body (the last value of a repeated name wins).
pub type Form = HashMap<String, String>;

/// Parses a form body (`a=1&b=x+y`): names and values percent-decoded, `+` as space.
pub fn parse_form(body: &[u8]) -> Form {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// One `/ui` request as a page handler sees it.
pub struct Ctx<'a> {
    /// The hub.
    pub hub: &'a Hub,
    /// The request.
    pub req: &'a Request,
    /// Where browsers reach the hub (no trailing `/`): `publicUrl`, else
    /// `http://` + a loopback `Host`, else `http://{bind}:{port}`.
    pub base: String,
    /// The signed-in session, if the cookie names a live one whose user exists.
    pub session: Option<BrowserSession>,
    /// The session's user.
    pub user: Option<Arc<User>>,
    /// The session cookie's value (for logout).
    cookie: Option<String>,
}

impl Ctx<'_> {
    /// The signed-in user and session, or the answer for a visitor who is
    /// not signed in (303 to `/ui/login`).
    pub fn signed_in(&self) -> Result<(&BrowserSession, &Arc<User>), Response> {
        match (&self.session, &self.user) {
            (Some(s), Some(u)) => Ok((s, u)),
            _ => Err(redirect("/ui/login")),
        }
    }

    /// Like [`Ctx::signed_in`], and the user must be an admin (else a 403 page).
    pub fn admin(&self) -> Result<(&BrowserSession, &Arc<User>), Response> {
        let (s, u) = self.signed_in()?;
        if !u.admin {
            return Err(error_page(self, 403, "Admins only", "This page is for admins. Ask an admin if you need something changed."));
        }
        Ok((s, u))
    }

    /// The request body as a form.
    pub fn form(&self) -> Form {
        parse_form(&self.req.body)
    }

    /// Whether the session cookie carries `Secure` and the `__Host-` prefix.
    pub fn secure_cookies(&self) -> bool {
        secure_base(&self.base)
    }

    /// The session cookie's name for this hub.
    fn session_cookie_name(&self) -> String {
        cookie_name(SESSION, self.secure_cookies())
    }

    /// A `Set-Cookie` value for `name` (prefixed as [`Ctx::secure_cookies`] says).
    fn set_cookie(&self, name: &str, value: &str, max_age_secs: Option<u64>) -> String {
        let secure = self.secure_cookies();
        let mut c = format!("{}={value}; Path=/; HttpOnly; SameSite=Lax", cookie_name(name, secure));
        if secure {
            c.push_str("; Secure");
        }
        if let Some(age) = max_age_secs {
            c.push_str(&format!("; Max-Age={age}"));
        }
        c
    }

    /// The sign-in answer once a provider (or a key) proved who this is:
    /// ends any current session, starts one for `user`, sets the cookie and
    /// sends the browser to `/ui/connect`, or back to the authorization
    /// request that sent it to sign in ([`consent::NEXT_COOKIE`], then
    /// cleared). `via`: `oidc`, `github` or `key`.
    pub fn sign_in(&self, user: &str, via: &str) -> Response {
        let ui = self.hub.ui();
        if let Some(old) = &self.cookie {
            let _ = ui.sessions.end(old);
        }
        let auth = &self.hub.config().auth;
        match ui.sessions.create(user, via, auth.session_idle) {
            Ok((cookie, _)) => {
                super::admin::audit(user, "ui.signin", via);
                let (next, sent) = consent::resume_after_sign_in(self);
                let r = redirect(next.as_deref().unwrap_or("/ui/connect"))
                    .with_header("Set-Cookie", &self.set_cookie(SESSION, &cookie, Some(auth.session_max.as_secs())));
                if sent {
                    r.with_header("Set-Cookie", &self.set_cookie(consent::NEXT_COOKIE, "", Some(0)))
                } else {
                    r
                }
            }
            Err(e) => unavailable(self, &e),
        }
    }

    /// Counts a sign-in attempt from this source; the refusal (429 page +
    /// `Retry-After`) when there were too many in the last minute.
    pub fn signin_attempt(&self) -> Result<(), Response> {
        let ip = self.req.peer.ip();
        if let Some(wait) = self.hub.auth_failures().throttled(ip) {
            return Err(too_many(self, wait));
        }
        match self.hub.ui().signins.check_key(&ip) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default())).as_secs().max(1);
                Err(too_many(self, wait))
            }
        }
    }
}

fn too_many(ctx: &Ctx, wait: u64) -> Response {
    error_page(ctx, 429, "Too many sign-in attempts", &format!("Too many sign-in attempts from your address. Try again in {wait} s."))
        .with_header("Retry-After", &wait.to_string())
}

/// Whether cookies for a hub at `base` can be `Secure` (https, or a loopback host).
pub fn secure_base(base: &str) -> bool {
    base.starts_with("https://") || is_loopback_host(host_of(base))
}

fn cookie_name(name: &str, secure: bool) -> String {
    if secure {
        format!("__Host-{name}")
    } else {
        name.to_string()
    }
}

/// A cookie of the request by name.
fn cookie<'r>(req: &'r Request, name: &str) -> Option<&'r str> {
    req.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("cookie"))
        .flat_map(|(_, v)| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// Where browsers reach the hub (see [`Ctx::base`]).
pub fn base_url(hub: &Hub, req: &Request) -> String {
    let config = hub.config();
    if let Some(u) = &config.public_url {
        return u.clone();
    }
    if let Some(host) = req.header("Host") {
        if is_loopback_host(host_of(host)) && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"[]:.-".contains(&b)) {
            return format!("http://{host}");
        }
    }
    match config.bind {
        IpAddr::V6(v6) => format!("http://[{v6}]:{}", config.port),
        IpAddr::V4(v4) if v4.is_unspecified() => format!("http://127.0.0.1:{}", config.port),
        IpAddr::V4(v4) => format!("http://{v4}:{}", config.port),
    }
}

/// A page answer.
pub fn html(status: u16, page: Markup) -> Response {
    let mut r = Response::text(status, &page.into_string());
    r.headers = vec![("Content-Type".into(), "text/html; charset=utf-8".into()), ("Cache-Control".into(), "no-store".into())];
    r
}

/// `303 See Other` to `to` (a path under `/ui`).
pub fn redirect(to: &str) -> Response {
    let mut r = Response::empty(303);
    r.headers = vec![("Location".into(), to.to_string()), ("Cache-Control".into(), "no-store".into())];
    r
}

/// An error page: `title` as the heading, `text` saying what happened and what to do.
pub fn error_page(ctx: &Ctx, status: u16, title: &str, text: &str) -> Response {
    html(status, layout::message(ctx, title, text))
}

/// The 503 page for a session store that cannot be reached.
pub fn unavailable(ctx: &Ctx, e: &session::SessionError) -> Response {
    log::warn!("ui: {e}");
    error_page(ctx, 503, "Temporarily unavailable", "The hub cannot reach its session store right now. Try again in a few seconds.")
        .with_header("Retry-After", "2")
}

/// Serves `/ui` and everything under it.
pub fn handle(hub: &Hub, req: &Request) -> Response {
    let started = Instant::now();
    let ui = hub.ui();
    let max = hub.config().auth.max_concurrent_pages;
    let resp = if ui.in_flight.fetch_add(1, Ordering::AcqRel) >= max {
        ui.in_flight.fetch_sub(1, Ordering::AcqRel);
        let mut r = Response::text(503, "The pages are busy; try again in a second.\n");
        r.headers.push(("Retry-After".into(), "1".into()));
        r
    } else {
        let _slot = Slot(&ui.in_flight);
        route(hub, req)
    };
    finish(resp, started)
}

/// The headers every `/ui` answer carries (a `Content-Security-Policy`
/// the answer already has is kept: the consent page's, `consent::authorize`).
fn finish(mut r: Response, started: Instant) -> Response {
    if !r.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("Content-Security-Policy")) {
        r.headers.push(("Content-Security-Policy".into(), "default-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'".into()));
    }
    for (k, v) in [
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "no-referrer"),
        ("X-Content-Type-Options", "nosniff"),
    ] {
        r.headers.push((k.into(), v.into()));
    }
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    r.headers.push(("Server-Timing".into(), format!("render;dur={ms:.3}")));
    r
}

fn static_file(body: &str, content_type: &str) -> Response {
    let mut r = Response::text(200, body);
    r.headers = vec![("Content-Type".into(), content_type.into()), ("Cache-Control".into(), "public, max-age=3600".into())];
    r
}

fn route(hub: &Hub, req: &Request) -> Response {
    let path = req.path();
    let rest = if path == consent::PATH { "/oauth/authorize" } else { path.strip_prefix(PREFIX).unwrap_or("") };
    let parts: Vec<String> = rest.split('/').filter(|p| !p.is_empty()).map(percent_decode).collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    let method = req.method.as_str();
    match (method, parts.as_slice()) {
        ("GET", ["static", "style.css"]) => return static_file(STYLE, "text/css; charset=utf-8"),
        ("GET", ["static", "app.js"]) => return static_file(SCRIPT, "text/javascript; charset=utf-8"),
        _ => {}
    }
    let mut ctx = Ctx { hub, req, base: base_url(hub, req), session: None, user: None, cookie: None };
    let auth = &hub.config().auth;
    if let Some(c) = cookie(req, &ctx.session_cookie_name()).map(str::to_string) {
        match hub.ui().sessions.find(&c, auth.session_idle, auth.session_max) {
            Ok(Some(s)) => {
                // A user deleted since sign-in is signed out.
                ctx.user = hub.users().get(&s.user);
                if ctx.user.is_some() {
                    ctx.session = Some(s);
                }
            }
            Ok(None) => {}
            Err(e) => return unavailable(&ctx, &e),
        }
        ctx.cookie = Some(c);
    }
    if method == "POST" {
        if let Err(refused) = check_post(&ctx, &parts) {
            return refused;
        }
    }
    match (method, parts.as_slice()) {
        ("GET", []) => redirect(if ctx.session.is_some() { "/ui/connect" } else { "/ui/login" }),
        ("GET", ["login"]) => login_page(&ctx, None),
        ("POST", ["login", "key"]) => key_sign_in(&ctx),
        ("GET", ["login", "oidc"]) => oidc::start(&ctx),
        ("GET", ["callback", "oidc"]) => oidc::callback(&ctx),
        ("GET", ["login", "github"]) => github::start(&ctx),
        ("GET", ["callback", "github"]) => github::callback(&ctx),
        ("POST", ["logout"]) => logout(&ctx),
        ("GET", ["connect"]) => pages::connect(&ctx),
        ("GET", ["keys"]) => pages::keys(&ctx),
        ("POST", ["keys", "create"]) => pages::create_key(&ctx),
        ("POST", ["keys", id, "revoke"]) => pages::revoke_key(&ctx, id),
        ("POST", ["apps", "revoke"]) => pages::revoke_app(&ctx),
        ("GET", ["tokens"]) => pages::tokens(&ctx),
        ("POST", ["tokens", name]) => pages::set_token(&ctx, name),
        ("POST", ["tokens", name, "delete"]) => pages::delete_token(&ctx, name),
        ("GET", ["activity"]) => activity::page(&ctx),
        ("GET", ["oauth", "authorize"]) if path == consent::PATH => consent::authorize(&ctx),
        ("POST", ["oauth", "authorize"]) if path == consent::PATH => consent::decide(&ctx),
        (_, ["admin", rest @ ..]) => admin::route(&ctx, rest),
        ("GET", _) | ("POST", _) => error_page(&ctx, 404, "Not found", "There is no such page. Start again from the Connect page."),
        _ => error_page(&ctx, 405, "Method not allowed", "The pages take GET and POST only.").with_header("Allow", "GET, POST"),
    }
}

/// The CSRF and `Origin` checks of a POST (403 page on failure). The key
/// sign-in form is checked against its double-submit cookie instead.
fn check_post(ctx: &Ctx, parts: &[&str]) -> Result<(), Response> {
    let refused = |why: &str| {
        log::info!("ui: POST {} refused: {why}", crate::trace::sanitize(ctx.req.path(), 128));
        Err(error_page(
            ctx,
            403,
            "This form cannot be accepted",
            "This form has expired or did not come from this page. Go back, reload the page and try again.",
        ))
    };
    // A browser posting a form from a page served with `Referrer-Policy:
    // no-referrer` sends `Origin: null` (Fetch, "serializing a request
    // origin"): then `Sec-Fetch-Site` tells, when sent; the CSRF token
    // decides in every case.
    if let Some(origin) = ctx.req.header("Origin").filter(|o| *o != "null") {
        let own = ctx.base.split('/').take(3).collect::<Vec<_>>().join("/");
        if origin != own && !ctx.hub.config().allowed_origins.iter().any(|o| o == origin) {
            return refused("Origin is not this hub");
        }
    }
    if let Some(site) = ctx.req.header("Sec-Fetch-Site") {
        if !matches!(site, "same-origin" | "none") {
            return refused("Sec-Fetch-Site is not same-origin");
        }
    }
    let form = ctx.form();
    let sent = form.get("csrf").map(String::as_str).unwrap_or("");
    let expected = if parts == ["login", "key"] {
        cookie(ctx.req, &cookie_name(PRE_CSRF, ctx.secure_cookies())).unwrap_or("").to_string()
    } else {
        match &ctx.session {
            Some(s) => s.csrf.clone(),
            None => return Err(redirect("/ui/login")),
        }
    };
    if expected.is_empty() || !super::auth::same_secret(sent.as_bytes(), expected.as_bytes()) {
        return refused("missing or wrong CSRF token");
    }
    Ok(())
}

/// The sign-in page: the configured providers' buttons and, unless
/// `auth.keySignIn` is false, the hub-key form. `problem`: a line shown above.
pub fn login_page(ctx: &Ctx, problem: Option<&str>) -> Response {
    if ctx.session.is_some() && problem.is_none() {
        return redirect("/ui/connect");
    }
    let token = session::random_token();
    let page = layout::login(ctx, &ctx.hub.config().auth, &token, problem, consent::waiting_client(ctx).as_deref());
    html(if problem.is_some() { 401 } else { 200 }, page).with_header("Set-Cookie", &ctx.set_cookie(PRE_CSRF, &token, Some(3600)))
}

/// `POST /ui/login/key`: sign in by pasting a hub key.
fn key_sign_in(ctx: &Ctx) -> Response {
    if !ctx.hub.config().auth.key_sign_in {
        return error_page(ctx, 404, "Not available", "Signing in with a hub key is turned off on this hub.");
    }
    if let Err(r) = ctx.signin_attempt() {
        return r;
    }
    let form = ctx.form();
    let key = form.get("key").map(|k| k.trim()).unwrap_or("");
    match ctx.hub.users().authenticate_checked(key) {
        Ok(Some(user)) => ctx.sign_in(&user.name, "key"),
        Ok(None) => {
            ctx.hub.auth_failures().record(ctx.req.peer.ip(), super::auth::FailureKind::HubKey);
            login_page(ctx, Some("That key is unknown or revoked. Check you copied the whole key (it starts with mcphub_)."))
        }
        Err(e) => {
            log::warn!("ui: key sign-in: {e}");
            error_page(ctx, 503, "Temporarily unavailable", "The hub cannot check keys right now. Try again in a few seconds.")
                .with_header("Retry-After", "2")
        }
    }
}

/// `POST /ui/logout`: ends the session, clears the cookie.
fn logout(ctx: &Ctx) -> Response {
    if let Some(c) = &ctx.cookie {
        if let Err(e) = ctx.hub.ui().sessions.end(c) {
            return unavailable(ctx, &e);
        }
    }
    redirect("/ui/login").with_header("Set-Cookie", &ctx.set_cookie(SESSION, "", Some(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_plus_and_percent() {
        let f = parse_form(b"label=my+key%21&csrf=a%2Bb&empty=&flag");
        assert_eq!(f["label"], "my key!");
        assert_eq!(f["csrf"], "a+b");
        assert_eq!(f["empty"], "");
        assert_eq!(f["flag"], "");
    }

    #[test]
    fn cookies_are_secure_on_https_and_loopback_only() {
        assert!(secure_base("https://hub.example.com"));
        assert!(secure_base("http://127.0.0.1:3000") && secure_base("http://localhost:8") && secure_base("http://[::1]:3000"));
        assert!(!secure_base("http://hub.internal:3000") && !secure_base("http://10.0.0.1"));
    }
}
