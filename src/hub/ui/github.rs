//! Sign-in with GitHub OAuth 2.0 (issue 17; GitHub is OAuth, not OIDC).
//!
//! 1. `GET /ui/login/github` ([`start`]): counts a sign-in attempt, stores a
//!    [`PendingLogin`] under a random `state`, and sends the browser to
//!    `{baseUrl}/login/oauth/authorize?client_id&redirect_uri&scope&state`
//!    (scopes [`SCOPES`]: the profile, e-mail addresses, and organization
//!    memberships — without `read:org` a private membership is not listed).
//! 2. `GET /ui/callback/github` ([`callback`]): takes the pending sign-in of
//!    `state` (once; unknown or expired → 400), exchanges the code at
//!    `POST {baseUrl}/login/oauth/access_token` (form, JSON answer; GitHub
//!    answers a bad code with 200 and `{"error": "bad_verification_code"}`),
//!    reads `GET {apiUrl}/user` and, when `allowOrgs` is set,
//!    `GET {apiUrl}/user/orgs`, applies `allowUsers` / `allowOrgs` (either
//!    list matching allows; both empty: anyone), and signs in the user of
//!    `github:<login lowercased>` (or provisions / refuses, as
//!    [`super::oidc::finish`] does).
//!
//! The access token is used for those two calls only and then dropped:
//! never stored, logged or shown. Every call is bounded in time and size
//! ([`ProviderHttp`]).

use super::oidc::{failure_page, finish, not_configured, take_pending, Failure, ProviderHttp};
use super::session::{random_token, PendingLogin};
use crate::store::now_ms;
use super::{error_page, redirect, Ctx};
use crate::config::auth::GithubConfig;
use crate::http::Response;
use openidconnect::SyncHttpClient as _;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::Deserialize;
use serde_json::Value;

/// The scopes asked of GitHub.
pub const SCOPES: &str = "read:user user:email read:org";
/// `X-GitHub-Api-Version` sent with API calls.
const API_VERSION: &str = "2022-11-28";

/// Everything but RFC 3986 unreserved characters is percent-encoded.
const NOT_UNRESERVED: &percent_encoding::AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

fn enc(s: &str) -> String {
    utf8_percent_encode(s, NOT_UNRESERVED).to_string()
}

fn redirect_uri(ctx: &Ctx) -> String {
    format!("{}/ui/callback/github", ctx.base)
}

/// The authorize URL the browser is sent to.
pub fn authorize_url(cfg: &GithubConfig, redirect_uri: &str, state: &str) -> String {
    format!(
        "{}/login/oauth/authorize?client_id={}&redirect_uri={}&scope={}&state={}",
        cfg.base_url,
        enc(&cfg.client_id),
        enc(redirect_uri),
        enc(SCOPES),
        enc(state)
    )
}

/// `GET /ui/login/github`: to the provider.
pub fn start(ctx: &Ctx) -> Response {
    let Some(cfg) = &ctx.hub.config().auth.github else { return not_configured(ctx) };
    if let Err(r) = ctx.signin_attempt() {
        return r;
    }
    let state = random_token();
    let pending = PendingLogin { provider: "github".into(), nonce: String::new(), pkce_verifier: String::new(), created_ms: now_ms() };
    if let Err(e) = ctx.hub.ui().sessions().put_login(&state, &pending) {
        return super::unavailable(ctx, &e);
    }
    redirect(&authorize_url(cfg, &redirect_uri(ctx), &state))
}

/// `GET /ui/callback/github`: back from the provider.
pub fn callback(ctx: &Ctx) -> Response {
    let Some(cfg) = &ctx.hub.config().auth.github else { return not_configured(ctx) };
    if let Err(r) = take_pending(ctx, "github") {
        return r;
    }
    let Some(code) = ctx.req.query("code").filter(|c| !c.is_empty()) else {
        return error_page(ctx, 400, "Sign-in incomplete", "GitHub sent no code back; start again.");
    };
    let account = match account(ctx, cfg, &code) {
        Ok(a) => a,
        Err(f) => return failure_page(ctx, "github", &f),
    };
    if let Err(text) = allowed(cfg, &account) {
        log::info!("ui: github sign-in refused by auth.github.allowUsers/allowOrgs");
        return error_page(ctx, 403, "Not allowed", &text);
    }
    finish(ctx, "github", &[format!("github:{}", account.login)], &account.login)
}

/// Who GitHub says signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The login, lowercased.
    pub login: String,
    /// The logins of the user's organizations, lowercased (empty when not asked).
    pub orgs: Vec<String>,
}

/// Whether `account` may sign in: in `allowUsers`, or a member of one of
/// `allowOrgs`; both empty → anyone. The refusal text when not.
pub fn allowed(cfg: &GithubConfig, account: &Account) -> Result<(), String> {
    if cfg.allow_users.is_empty() && cfg.allow_orgs.is_empty() {
        return Ok(());
    }
    if cfg.allow_users.contains(&account.login) || account.orgs.iter().any(|o| cfg.allow_orgs.contains(o)) {
        return Ok(());
    }
    Err(format!(
        "github:{} is not allowed to sign in here (not an allowed user, nor a member of an allowed organization); ask your admin if you should be.",
        account.login
    ))
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct UserAnswer {
    login: String,
}

#[derive(Deserialize)]
struct OrgAnswer {
    login: String,
}

/// A plain OAuth error code, or `error`.
fn error_code(code: &str) -> String {
    if !code.is_empty() && code.len() <= 64 && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        code.to_string()
    } else {
        "error".to_string()
    }
}

fn send(request: ureq::http::Request<Vec<u8>>, what: &str) -> Result<(u16, Vec<u8>), Failure> {
    let answer = ProviderHttp::shared().call(request).map_err(|e| Failure::ProviderDown(format!("{what}: {e}")))?;
    Ok((answer.status().as_u16(), answer.into_body()))
}

fn bad_request(what: &str) -> Failure {
    Failure::ProviderDown(format!("{what}: the request could not be built"))
}

/// The code exchange and the profile calls; the token goes out of scope at the end.
fn account(ctx: &Ctx, cfg: &GithubConfig, code: &str) -> Result<Account, Failure> {
    let form = format!(
        "client_id={}&client_secret={}&code={}&redirect_uri={}",
        enc(&cfg.client_id),
        enc(&cfg.client_secret),
        enc(code),
        enc(&redirect_uri(ctx))
    );
    let request = ureq::http::Request::post(format!("{}/login/oauth/access_token", cfg.base_url))
        .header("Accept", "application/json")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form.into_bytes())
        .map_err(|_| bad_request("access_token"))?;
    let (status, body) = send(request, "access_token")?;
    let answer: Option<TokenAnswer> = serde_json::from_slice(&body).ok();
    let token = match answer {
        Some(TokenAnswer { error: Some(e), .. }) => return Err(Failure::Refused(error_code(&e))),
        Some(TokenAnswer { access_token: Some(t), .. }) if status == 200 && !t.is_empty() => t,
        _ if (400..500).contains(&status) => return Err(Failure::Refused(format!("http_{status}"))),
        _ => return Err(Failure::ProviderDown(format!("access_token: HTTP {status} without a token"))),
    };
    let get = |path: &str| {
        ureq::http::Request::get(format!("{}{path}", cfg.api_url))
            .header("Authorization", format!("Bearer {token}"))
            .header("Accept", "application/vnd.github+json")
            .header("User-Agent", "mcphub")
            .header("X-GitHub-Api-Version", API_VERSION)
            .body(Vec::new())
            .map_err(|_| bad_request(path))
    };
    let (status, body) = send(get("/user")?, "/user")?;
    if status != 200 {
        return Err(Failure::ProviderDown(format!("/user: HTTP {status}")));
    }
    let user: UserAnswer = serde_json::from_slice(&body).map_err(|_| Failure::ProviderDown("/user: not a user object".into()))?;
    let login = user.login.to_ascii_lowercase();
    if login.is_empty() || !crate::config::auth::valid_identity(&format!("github:{login}")) {
        return Err(Failure::ProviderDown("/user: no usable login".into()));
    }
    let mut orgs = Vec::new();
    if !cfg.allow_orgs.is_empty() && !cfg.allow_users.contains(&login) {
        let (status, body) = send(get("/user/orgs?per_page=100")?, "/user/orgs")?;
        if status != 200 {
            return Err(Failure::ProviderDown(format!("/user/orgs: HTTP {status}")));
        }
        let list: Vec<Value> = serde_json::from_slice(&body).map_err(|_| Failure::ProviderDown("/user/orgs: not a list".into()))?;
        orgs = list
            .into_iter()
            .filter_map(|o| serde_json::from_value::<OrgAnswer>(o).ok())
            .map(|o| o.login.to_ascii_lowercase())
            .collect();
    }
    Ok(Account { login, orgs })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(users: &[&str], orgs: &[&str]) -> GithubConfig {
        GithubConfig {
            client_id: "Iv1.abc".into(),
            client_secret: "s".into(),
            allow_orgs: orgs.iter().map(|s| s.to_string()).collect(),
            allow_users: users.iter().map(|s| s.to_string()).collect(),
            base_url: "https://github.example".into(),
            api_url: "https://api.github.example".into(),
        }
    }

    #[test]
    fn either_list_matching_allows_and_both_empty_allow_anyone() {
        let octo = Account { login: "octocat".into(), orgs: vec!["acme".into()] };
        let mallory = Account { login: "mallory".into(), orgs: vec![] };
        assert!(allowed(&cfg(&[], &[]), &mallory).is_ok());
        assert!(allowed(&cfg(&[], &["acme"]), &octo).is_ok());
        assert!(allowed(&cfg(&["mallory"], &["acme"]), &mallory).is_ok());
        let e = allowed(&cfg(&[], &["acme"]), &mallory).unwrap_err();
        assert!(e.starts_with("github:mallory is not allowed to sign in here"), "{e}");
    }

    #[test]
    fn the_authorize_url_carries_client_redirect_scopes_and_state() {
        let u = authorize_url(&cfg(&[], &[]), "http://127.0.0.1:3000/ui/callback/github", "st-1");
        assert_eq!(
            u,
            "https://github.example/login/oauth/authorize?client_id=Iv1.abc&redirect_uri=http%3A%2F%2F127.0.0.1%3A3000%2Fui%2Fcallback%2Fgithub\
             &scope=read%3Auser%20user%3Aemail%20read%3Aorg&state=st-1"
        );
        assert_eq!(error_code("bad_verification_code"), "bad_verification_code");
        assert_eq!(error_code("<b>"), "error");
    }
}
