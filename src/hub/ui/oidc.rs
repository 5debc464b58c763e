//! Sign-in with an OpenID Connect provider: authorization code flow with
//! PKCE (issue 17), and what both providers share: the HTTP client for
//! outbound calls ([`ProviderHttp`]) and the identity → user step
//! ([`finish`]).
//!
//! The protocol work (discovery, JWKS, ID-token signature and claims
//! checks) is the `openidconnect` crate's; its HTTP calls go through
//! [`ProviderHttp`], the hub's `ureq` with bounded time and size.
//!
//! Flow:
//! 1. `GET /ui/login/oidc` ([`start`]): counts a sign-in attempt, discovers
//!    the provider (`{issuer}/.well-known/openid-configuration` and its
//!    JWKS, cached [`DISCOVERY_TTL`] per issuer), stores a
//!    [`PendingLogin`] (`nonce`, PKCE verifier) under a random `state` and
//!    sends the browser to the provider (PKCE `S256`, the configured scopes).
//! 2. `GET /ui/callback/oidc` ([`callback`]): takes the pending sign-in of
//!    `state` (once; unknown or expired → 400), exchanges the code
//!    (`client_secret_basic` when a secret is set), validates the ID token
//!    (signature by the JWKS — refetched once when the token names a key id
//!    the cached set lacks —, issuer, audience, expiry, nonce), applies
//!    `auth.oidc.allow`, picks the identity (`oidc:<sub>`, then
//!    `oidc:<e-mail>` when the e-mail is verified) and signs the user in,
//!    provisions one (`auth.autoProvision`), or refuses with a page.
//!
//! Nothing secret (client secret, code, tokens, cookies) is put in a page
//! or a log line; a failed check is logged at info by its name.

use super::session::{random_token, PendingLogin};
use crate::store::now_ms;
use super::{error_page, redirect, Ctx};
use crate::config::auth::{OidcAllow, OidcConfig};
use crate::http::Response;
use base64::Engine as _;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreClientAuthMethod, CoreGenderClaim, CoreProviderMetadata};
use openidconnect::{
    AdditionalClaims, AuthType, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope,
    SignatureVerificationError, TokenResponse, UserInfoClaims,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Connect timeout of a call to a provider.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for a provider's response head, and for its body.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest time one call to a provider may take in all.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response body read from a provider (discovery, JWKS, tokens, user info).
pub const MAX_BODY_BYTES: u64 = 1 << 20;
/// How long a provider's discovery document and JWKS are reused.
pub const DISCOVERY_TTL: Duration = Duration::from_secs(600);

/// Why a call to a provider failed. `Display` names the kind only (never a
/// URL query, a header or a body).
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// No answer within [`CONNECT_TIMEOUT`] / [`READ_TIMEOUT`] / [`CALL_TIMEOUT`].
    #[error("no answer in time")]
    Timeout,
    /// The host could not be resolved or connected to.
    #[error("cannot connect")]
    Connect,
    /// The body was larger than [`MAX_BODY_BYTES`].
    #[error("the answer is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    /// Anything else on the way (TLS, protocol, I/O).
    #[error("transport error ({0})")]
    Transport(&'static str),
}

/// The HTTP client of the sign-in providers: the hub's `ureq` 3 agent with
/// no redirects followed, statuses as values, [`CONNECT_TIMEOUT`],
/// [`READ_TIMEOUT`] and [`CALL_TIMEOUT`], bodies bounded to
/// [`MAX_BODY_BYTES`]. Implements `openidconnect::SyncHttpClient` (ureq 3
/// and openidconnect 4 speak the same `http` 1.x types).
pub struct ProviderHttp {
    agent: ureq::Agent,
}

impl ProviderHttp {
    /// The one client of this process.
    pub fn shared() -> &'static ProviderHttp {
        static ONE: OnceLock<ProviderHttp> = OnceLock::new();
        ONE.get_or_init(|| {
            let config = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .max_redirects_will_error(false)
                .timeout_connect(Some(CONNECT_TIMEOUT))
                .timeout_recv_response(Some(READ_TIMEOUT))
                .timeout_recv_body(Some(READ_TIMEOUT))
                .timeout_global(Some(CALL_TIMEOUT))
                .user_agent("mcphub")
                .build();
            ProviderHttp { agent: ureq::Agent::new_with_config(config) }
        })
    }
}

fn http_error(e: ureq::Error) -> HttpError {
    match e {
        ureq::Error::Timeout(_) => HttpError::Timeout,
        ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => HttpError::Connect,
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => HttpError::Connect,
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => HttpError::Timeout,
        ureq::Error::BodyExceedsLimit(_) => HttpError::TooLarge,
        ureq::Error::Io(_) => HttpError::Transport("i/o"),
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) => HttpError::Transport("tls"),
        ureq::Error::BadUri(_) => HttpError::Transport("bad url"),
        _ => HttpError::Transport("protocol"),
    }
}

impl openidconnect::SyncHttpClient for ProviderHttp {
    type Error = HttpError;

    fn call(&self, request: openidconnect::HttpRequest) -> Result<openidconnect::HttpResponse, HttpError> {
        let (parts, body) = request.into_parts();
        let answer = if body.is_empty() {
            self.agent.run(ureq::http::Request::from_parts(parts, ureq::SendBody::none()))
        } else {
            self.agent.run(ureq::http::Request::from_parts(parts, body))
        }
        .map_err(http_error)?;
        let (parts, mut body) = answer.into_parts();
        let bytes = body.with_config().limit(MAX_BODY_BYTES).read_to_vec().map_err(http_error)?;
        Ok(ureq::http::Response::from_parts(parts, bytes))
    }
}

/// Every claim of a UserInfo answer (for `allow.claims` rules on claims
/// the ID token lacks).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct AnyClaims {
    #[serde(flatten)]
    all: Map<String, Value>,
}

impl AdditionalClaims for AnyClaims {}

type Client = CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointMaybeSet, EndpointMaybeSet>;

/// Discovery documents (with their JWKS) by issuer, and when each was fetched.
fn discovery_cache() -> &'static Mutex<HashMap<String, (Instant, CoreProviderMetadata)>> {
    static CACHE: OnceLock<Mutex<HashMap<String, (Instant, CoreProviderMetadata)>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// Why a sign-in failed, as the page and the log line say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The provider could not be reached or answered nonsense (502).
    ProviderDown(String),
    /// The provider refused the code exchange (400): its OAuth error code.
    Refused(String),
    /// An ID-token check failed (403): `signature`, `issuer`, `audience`,
    /// `expiry`, `nonce` or `claims`.
    Check(&'static str),
}

/// The provider's metadata and keys, from the cache unless `fresh` (or older
/// than [`DISCOVERY_TTL`]). A failed fetch is not cached.
fn metadata(issuer: &str, fresh: bool) -> Result<CoreProviderMetadata, Failure> {
    if !fresh {
        if let Some((at, meta)) = discovery_cache().lock().get(issuer) {
            if at.elapsed() < DISCOVERY_TTL {
                return Ok(meta.clone());
            }
        }
    }
    // The config drops a trailing `/`; an issuer that has one (`https://tenant.auth0.com/`)
    // fails discovery's exact issuer check without it: then it is tried with the `/`.
    let discover = |issuer: String| {
        let url = IssuerUrl::new(issuer).map_err(|_| openidconnect::DiscoveryError::Other("the issuer is not a URL".into()))?;
        CoreProviderMetadata::discover(&url, ProviderHttp::shared())
    };
    let meta = match discover(issuer.to_string()) {
        Err(openidconnect::DiscoveryError::Validation(_)) if !issuer.ends_with('/') => discover(format!("{issuer}/")),
        other => other,
    };
    let meta = meta.map_err(|e| {
        use openidconnect::DiscoveryError as D;
        Failure::ProviderDown(match e {
            D::Request(e) => format!("discovery: {e}"),
            D::Response(status, _, _) => format!("discovery: HTTP {}", status.as_u16()),
            D::Parse(_) => "discovery: the document or the JWKS is not valid JSON of the expected shape".into(),
            D::Validation(m) => format!("discovery: {}", crate::trace::sanitize(&m, 200)),
            D::UrlParse(_) => "discovery: bad URL".into(),
            D::Other(m) => format!("discovery: {}", crate::trace::sanitize(&m, 200)),
            _ => "discovery failed".into(),
        })
    })?;
    discovery_cache().lock().insert(issuer.to_string(), (Instant::now(), meta.clone()));
    Ok(meta)
}

fn client(cfg: &OidcConfig, meta: CoreProviderMetadata, redirect_uri: &str) -> Result<Client, Failure> {
    let redirect = RedirectUrl::new(redirect_uri.to_string()).map_err(|_| Failure::ProviderDown("the redirect URI is not a URL".into()))?;
    // client_secret_basic unless the provider only takes client_secret_post.
    let post_only = meta.token_endpoint_auth_methods_supported().is_some_and(|m| {
        m.contains(&CoreClientAuthMethod::ClientSecretPost) && !m.contains(&CoreClientAuthMethod::ClientSecretBasic)
    });
    let client = CoreClient::from_provider_metadata(meta, ClientId::new(cfg.client_id.clone()), cfg.client_secret.clone().map(ClientSecret::new))
        .set_redirect_uri(redirect);
    Ok(if post_only { client.set_auth_type(AuthType::RequestBody) } else { client })
}

fn redirect_uri(ctx: &Ctx) -> String {
    format!("{}/ui/callback/oidc", ctx.base)
}

/// The page of a failure, and its info log line (the check's name only).
pub fn failure_page(ctx: &Ctx, provider: &str, f: &Failure) -> Response {
    match f {
        Failure::ProviderDown(why) => {
            log::warn!("ui: {provider} sign-in: the provider did not answer: {why}");
            error_page(ctx, 502, "Sign-in provider unavailable", "The sign-in provider did not answer; try again.")
        }
        Failure::Refused(code) => {
            log::info!("ui: {provider} sign-in refused by the provider: {code}");
            error_page(ctx, 400, "Sign-in refused", &format!("The sign-in provider refused the sign-in ({code}); start again."))
        }
        Failure::Check(check) => {
            log::info!("ui: {provider} sign-in refused: the ID token failed the {check} check");
            error_page(
                ctx,
                403,
                "Sign-in could not be verified",
                &format!("The ID token from the sign-in provider failed the {check} check, so you are not signed in. Start again; if it keeps happening, tell your admin."),
            )
        }
    }
}

/// The page for a callback whose `state` is missing, unknown, used or expired.
pub fn expired_page(ctx: &Ctx, provider: &str) -> Response {
    log::info!("ui: {provider} callback refused: state mismatch (unknown, used or expired)");
    error_page(ctx, 400, "Sign-in expired", "This sign-in link has expired or was already used; start again.")
}

/// The page for a provider's `error` answer (the user said no, …). Only a
/// plain OAuth error code is shown.
pub fn provider_error_page(ctx: &Ctx, provider: &str, code: &str) -> Response {
    let code = if !code.is_empty() && code.len() <= 64 && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') { code } else { "error" };
    log::info!("ui: {provider} sign-in ended by the provider: {code}");
    let text = if code == "access_denied" {
        "The sign-in was cancelled or denied at the provider. Start again if you meant to sign in.".to_string()
    } else {
        format!("The sign-in provider answered with an error ({code}); start again.")
    };
    error_page(ctx, 403, "Sign-in not completed", &text)
}

/// `GET /ui/login/oidc`: to the provider.
pub fn start(ctx: &Ctx) -> Response {
    let Some(cfg) = &ctx.hub.config().auth.oidc else { return not_configured(ctx) };
    if let Err(r) = ctx.signin_attempt() {
        return r;
    }
    let meta = match metadata(&cfg.issuer, false) {
        Ok(m) => m,
        Err(f) => return failure_page(ctx, "oidc", &f),
    };
    let client = match client(cfg, meta, &redirect_uri(ctx)) {
        Ok(c) => c,
        Err(f) => return failure_page(ctx, "oidc", &f),
    };
    let (state, nonce, verifier) = (random_token(), random_token(), random_token());
    let challenge = PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(verifier.clone()));
    let (s, n) = (state.clone(), nonce.clone());
    let mut request = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, move || CsrfToken::new(s), move || Nonce::new(n))
        .set_pkce_challenge(challenge);
    for scope in cfg.scopes.iter().filter(|s| *s != "openid") {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    let (url, _, _) = request.url();
    let pending = PendingLogin { provider: "oidc".into(), nonce, pkce_verifier: verifier, created_ms: now_ms() };
    if let Err(e) = ctx.hub.ui().sessions().put_login(&state, &pending) {
        return super::unavailable(ctx, &e);
    }
    redirect(url.as_str())
}

/// The 404 page of a provider that is not configured.
pub fn not_configured(ctx: &Ctx) -> Response {
    error_page(ctx, 404, "Not available", "This way of signing in is not configured on this hub. Go back to the sign-in page.")
}

/// The pending sign-in of the callback's `state` for `provider`, or the
/// answer to give (provider error, expired/used state, store down).
pub fn take_pending(ctx: &Ctx, provider: &str) -> Result<PendingLogin, Response> {
    let state = ctx.req.query("state").unwrap_or_default();
    let pending = if state.is_empty() {
        None
    } else {
        match ctx.hub.ui().sessions().take_login(&state) {
            Ok(p) => p,
            Err(e) => return Err(super::unavailable(ctx, &e)),
        }
    };
    if let Some(code) = ctx.req.query("error") {
        return Err(provider_error_page(ctx, provider, &code));
    }
    match pending {
        Some(p) if p.provider == provider => Ok(p),
        _ => Err(expired_page(ctx, provider)),
    }
}

/// `GET /ui/callback/oidc`: back from the provider.
pub fn callback(ctx: &Ctx) -> Response {
    let Some(cfg) = &ctx.hub.config().auth.oidc else { return not_configured(ctx) };
    let pending = match take_pending(ctx, "oidc") {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Some(code) = ctx.req.query("code").filter(|c| !c.is_empty()) else {
        return error_page(ctx, 400, "Sign-in incomplete", "The sign-in provider sent no code back; start again.");
    };
    match verify(ctx, cfg, &pending, code) {
        Ok(person) => admit(ctx, cfg, &person),
        Err(f) => failure_page(ctx, "oidc", &f),
    }
}

/// Who the provider says signed in.
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    /// The `sub` claim.
    pub sub: String,
    /// The `email` claim, lowercased.
    pub email: Option<String>,
    /// `email_verified` is not false.
    pub email_verified: bool,
    /// Every claim of the ID token (JSON object).
    pub claims: Map<String, Value>,
    /// Every claim of the UserInfo answer, when one was needed and the provider has the endpoint.
    pub userinfo: Option<Map<String, Value>>,
}

impl Person {
    /// Claim `name` from the ID token, else from UserInfo.
    fn claim(&self, name: &str) -> Option<&Value> {
        self.claims.get(name).or_else(|| self.userinfo.as_ref().and_then(|u| u.get(name)))
    }
}

fn check_name(e: &ClaimsVerificationError) -> &'static str {
    match e {
        ClaimsVerificationError::Expired(_) => "expiry",
        ClaimsVerificationError::InvalidAudience(_) => "audience",
        ClaimsVerificationError::InvalidIssuer(_) => "issuer",
        ClaimsVerificationError::InvalidNonce(_) => "nonce",
        ClaimsVerificationError::SignatureVerification(_) => "signature",
        ClaimsVerificationError::InvalidSubject(_) => "subject",
        ClaimsVerificationError::InvalidAuthTime(_) => "authentication time",
        ClaimsVerificationError::InvalidAuthContext(_) => "authentication context",
        _ => "claims",
    }
}

/// The ID token's payload as JSON (after its signature was verified).
fn payload(jwt: &str) -> Map<String, Value> {
    let part = jwt.split('.').nth(1).unwrap_or("");
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .ok()
        .and_then(|b| serde_json::from_slice::<Map<String, Value>>(&b).ok())
        .unwrap_or_default()
}

/// Code exchange and ID-token validation.
fn verify(ctx: &Ctx, cfg: &OidcConfig, pending: &PendingLogin, code: String) -> Result<Person, Failure> {
    let http = ProviderHttp::shared();
    let meta = metadata(&cfg.issuer, false)?;
    let client = client(cfg, meta, &redirect_uri(ctx))?;
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|_| Failure::ProviderDown("the provider has no token endpoint".into()))?
        .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
        .request(http)
        .map_err(|e| match e {
            RequestTokenError::ServerResponse(r) => {
                let code = r.error().to_string();
                Failure::Refused(if code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') && code.len() <= 64 { code } else { "error".into() })
            }
            RequestTokenError::Request(e) => Failure::ProviderDown(format!("token endpoint: {e}")),
            RequestTokenError::Parse(_, _) => Failure::ProviderDown("token endpoint: the answer is not a token response".into()),
            RequestTokenError::Other(_) => Failure::ProviderDown("token endpoint: unexpected answer".into()),
        })?;
    let Some(id_token) = tokens.id_token() else {
        return Err(Failure::ProviderDown("token endpoint: no ID token in the answer".into()));
    };
    let nonce = Nonce::new(pending.nonce.clone());
    let claims = match id_token.claims(&client.id_token_verifier(), &nonce) {
        Ok(c) => c.clone(),
        // A key id the cached JWKS lacks: the provider rotated its keys; fetch them once more.
        Err(ClaimsVerificationError::SignatureVerification(SignatureVerificationError::NoMatchingKey)) => {
            let fresh = client_fresh(ctx, cfg)?;
            let checked = id_token.claims(&fresh.id_token_verifier(), &nonce).cloned();
            checked.map_err(|e| Failure::Check(check_name(&e)))?
        }
        Err(e) => return Err(Failure::Check(check_name(&e))),
    };
    let raw = payload(&id_token.to_string());
    let email = claims.email().map(|e| e.as_str().to_ascii_lowercase());
    let mut person = Person {
        sub: claims.subject().as_str().to_string(),
        email,
        email_verified: claims.email_verified() != Some(false),
        claims: raw,
        userinfo: None,
    };
    // UserInfo only for allow.claims rules naming a claim the ID token lacks.
    let missing = cfg.allow.claims.keys().any(|name| !person.claims.contains_key(name));
    if missing && client.user_info_url().is_some() {
        let request = client
            .user_info(tokens.access_token().clone(), Some(claims.subject().clone()))
            .map_err(|_| Failure::ProviderDown("the provider has no UserInfo endpoint".into()))?;
        let info: UserInfoClaims<AnyClaims, CoreGenderClaim> = request.request(http).map_err(|e| {
            use openidconnect::UserInfoError as U;
            match e {
                U::ClaimsVerification(e) => Failure::Check(check_name(&e)),
                U::Request(e) => Failure::ProviderDown(format!("userinfo: {e}")),
                U::Response(status, _, _) => Failure::ProviderDown(format!("userinfo: HTTP {}", status.as_u16())),
                _ => Failure::ProviderDown("userinfo: unexpected answer".into()),
            }
        })?;
        person.userinfo = serde_json::to_value(&info).ok().and_then(|v| match v {
            Value::Object(m) => Some(m),
            _ => None,
        });
    }
    Ok(person)
}

fn client_fresh(ctx: &Ctx, cfg: &OidcConfig) -> Result<Client, Failure> {
    client(cfg, metadata(&cfg.issuer, true)?, &redirect_uri(ctx))
}

/// Whether `person` passes `allow` (each non-empty rule must match); the
/// refusal text when not. An e-mail rule needs a verified e-mail.
pub fn allowed(allow: &OidcAllow, person: &Person) -> Result<(), String> {
    let email = person.email.as_deref().filter(|_| person.email_verified);
    let who = person.email.clone().unwrap_or_else(|| format!("oidc:{}", person.sub));
    let refused = || Err(format!("{who} is not allowed to sign in here; ask your admin if you should be."));
    if !allow.emails.is_empty() && !email.is_some_and(|e| allow.emails.iter().any(|a| a == e)) {
        return refused();
    }
    if !allow.email_domains.is_empty() {
        let domain = email.and_then(|e| e.rsplit_once('@')).map(|(_, d)| d);
        if !domain.is_some_and(|d| allow.email_domains.iter().any(|a| a == d)) {
            return refused();
        }
    }
    for (name, accepted) in &allow.claims {
        let holds = |v: &Value| match v {
            Value::String(s) => accepted.contains(s),
            Value::Bool(b) => accepted.contains(&b.to_string()),
            Value::Number(n) => accepted.contains(&n.to_string()),
            _ => false,
        };
        let ok = match person.claim(name) {
            Some(Value::Array(items)) => items.iter().any(holds),
            Some(v) => holds(v),
            None => false,
        };
        if !ok {
            return refused();
        }
    }
    Ok(())
}

/// The identities of `person`, preferred first: `oidc:<sub>`, then
/// `oidc:<e-mail>` when the e-mail is verified.
pub fn identities(person: &Person) -> Vec<String> {
    let mut ids = vec![format!("oidc:{}", person.sub)];
    if let Some(e) = person.email.as_deref().filter(|_| person.email_verified) {
        ids.push(format!("oidc:{e}"));
    }
    ids
}

/// The name a provisioned user gets: the e-mail's local part, else the `sub`.
fn wanted_name(person: &Person) -> String {
    match person.email.as_deref().and_then(|e| e.split_once('@')) {
        Some((local, _)) if !local.is_empty() => local.to_string(),
        _ => person.sub.clone(),
    }
}

fn admit(ctx: &Ctx, cfg: &OidcConfig, person: &Person) -> Response {
    if let Err(text) = allowed(&cfg.allow, person) {
        log::info!("ui: oidc sign-in refused by auth.oidc.allow");
        return error_page(ctx, 403, "Not allowed", &text);
    }
    finish(ctx, "oidc", &identities(person), &wanted_name(person))
}

/// The refusal of an identity no user has, without auto-provisioning.
pub fn unlinked_text(identities: &[String]) -> String {
    format!("No MCPHub user is linked to {}; ask your admin to add it to your user's identities.", identities.join(" or "))
}

/// The end of every provider sign-in: the first of `identities` (preferred
/// first) that maps to a user signs that user in (`via`: `oidc` or
/// `github`); else, with `auth.autoProvision`, a new user named from
/// `wanted` holding the first identity; else a 403 page.
pub fn finish(ctx: &Ctx, via: &str, identities: &[String], wanted: &str) -> Response {
    let users = ctx.hub.users();
    if let Some(user) = identities.iter().find_map(|i| users.user_of_identity(i)) {
        return ctx.sign_in(&user, via);
    }
    let Some(primary) = identities.first() else {
        return error_page(ctx, 403, "Not linked", "The sign-in provider did not say who you are; start again.");
    };
    if !ctx.hub.config().auth.auto_provision {
        log::info!("ui: {via} sign-in refused: the identity is linked to no user");
        return error_page(ctx, 403, "No linked user", &unlinked_text(identities));
    }
    match users.provision(wanted, primary) {
        Ok(user) => ctx.sign_in(&user, via),
        Err(e) => {
            log::warn!("ui: {via} sign-in: cannot create the user: {e}");
            let status = e.status();
            let text = if status == 503 {
                "The hub cannot store users right now; try again in a few seconds.".to_string()
            } else {
                "The hub could not create a user for you; ask your admin.".to_string()
            };
            error_page(ctx, status, "Cannot sign you in", &text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn person(email: Option<&str>, verified: bool, claims: Value) -> Person {
        Person {
            sub: "s-1".into(),
            email: email.map(str::to_string),
            email_verified: verified,
            claims: match claims {
                Value::Object(m) => m,
                _ => Map::new(),
            },
            userinfo: None,
        }
    }

    #[test]
    fn every_non_empty_allow_rule_must_match() {
        let any = OidcAllow::default();
        assert!(allowed(&any, &person(None, false, Value::Null)).is_ok(), "no rules: anyone");
        let domains = OidcAllow { email_domains: vec!["example.com".into()], ..OidcAllow::default() };
        assert!(allowed(&domains, &person(Some("alice@example.com"), true, Value::Null)).is_ok());
        let e = allowed(&domains, &person(Some("eve@evil.example"), true, Value::Null)).unwrap_err();
        assert_eq!(e, "eve@evil.example is not allowed to sign in here; ask your admin if you should be.");
        assert!(allowed(&domains, &person(Some("alice@example.com"), false, Value::Null)).is_err(), "an unverified e-mail proves nothing");
        assert!(allowed(&domains, &person(None, true, Value::Null)).is_err());
        let emails = OidcAllow { emails: vec!["bob@example.com".into()], ..domains.clone() };
        assert!(allowed(&emails, &person(Some("bob@example.com"), true, Value::Null)).is_ok());
        assert!(allowed(&emails, &person(Some("alice@example.com"), true, Value::Null)).is_err(), "both rules must match");
        let groups = OidcAllow { claims: BTreeMap::from([("groups".to_string(), vec!["hub-users".to_string()])]), ..OidcAllow::default() };
        assert!(allowed(&groups, &person(None, true, serde_json::json!({"groups": ["x", "hub-users"]}))).is_ok());
        assert!(allowed(&groups, &person(None, true, serde_json::json!({"groups": "hub-users"}))).is_ok());
        assert!(allowed(&groups, &person(None, true, serde_json::json!({"groups": ["x"]}))).is_err());
        let e = allowed(&groups, &person(None, true, serde_json::json!({}))).unwrap_err();
        assert!(e.starts_with("oidc:s-1 is not allowed"), "{e}");
        let mut p = person(None, true, serde_json::json!({}));
        p.userinfo = Some(serde_json::json!({"groups": ["hub-users"]}).as_object().unwrap().clone());
        assert!(allowed(&groups, &p).is_ok(), "a claim the ID token lacks is read from UserInfo");
    }

    #[test]
    fn the_sub_identity_comes_first_and_the_email_only_when_verified() {
        assert_eq!(identities(&person(Some("alice@example.com"), true, Value::Null)), vec!["oidc:s-1", "oidc:alice@example.com"]);
        assert_eq!(identities(&person(Some("alice@example.com"), false, Value::Null)), vec!["oidc:s-1"]);
        assert_eq!(wanted_name(&person(Some("alice@example.com"), true, Value::Null)), "alice");
        assert_eq!(wanted_name(&person(None, true, Value::Null)), "s-1");
        assert_eq!(
            unlinked_text(&["github:octocat".to_string()]),
            "No MCPHub user is linked to github:octocat; ask your admin to add it to your user's identities."
        );
    }

    #[test]
    fn the_payload_of_a_jwt_is_read() {
        let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"sub":"x","groups":["a"]}"#);
        let claims = payload(&format!("e30.{body}.sig"));
        assert_eq!(claims["groups"], serde_json::json!(["a"]));
        assert!(payload("garbage").is_empty());
    }
}
