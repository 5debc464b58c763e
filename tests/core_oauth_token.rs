//! `/oauth/token` and `/oauth/revoke` (issue 18), Request → Response without
//! a socket: the bad-input table of the issue for the token side (each
//! answer's status and RFC `error` exactly), and access tokens on `/mcp`
//! (as the user, expiry, scope step-up, never in the query, a deleted
//! user). Codes come from `OauthStore::issue_code` directly (the consent
//! page is `ui::consent`'s).

mod core_util;
mod redis_util;

use core_util::*;
use mcphub::hub::Hub;
use mcphub::users::oauth::{CodeGrant, RegisteredClient};
use serde_json::{json, Value};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

const BASE: &str = "https://hub.example";
const RESOURCE: &str = "https://hub.example/mcp";
const REDIRECT: &str = "http://127.0.0.1:5555/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
/// The S256 challenge of [`VERIFIER`] (RFC 7636 Appendix B).
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const ADMIN: &str = "admin-token-for-tests-0123456789";
/// A public (`none`) DCR client.
const PUBLIC: &str = "mcphub_client_0123456789abcdef0123456789abcdef";
/// A confidential (`client_secret_basic`) DCR client and its secret.
const CONFIDENTIAL: &str = "mcphub_client_fedcba9876543210fedcba9876543210";
const SECRET: &str = "mcphub_cs_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Every log line of this test process (a logger installed once).
fn logs() -> &'static Mutex<Vec<String>> {
    static LINES: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    LINES.get_or_init(|| {
        struct Capture;
        impl log::Log for Capture {
            fn enabled(&self, _: &log::Metadata) -> bool {
                true
            }
            fn log(&self, record: &log::Record) {
                logs().lock().unwrap().push(format!("{} {}", record.level(), record.args()));
            }
            fn flush(&self) {}
        }
        let _ = log::set_boxed_logger(Box::new(Capture));
        log::set_max_level(log::LevelFilter::Info);
        Mutex::new(Vec::new())
    })
}

/// A hub with user alice (a hub key), run-time users allowed (adminToken),
/// `auth.oauth` from `oauth`, one scripted server `up` with tool `echo`,
/// and the two DCR clients registered.
fn oauth_hub(oauth: Value) -> Hub {
    let _ = logs();
    let (h, _traffic) = hub_with_servers(
        json!({
            "publicUrl": BASE,
            "adminToken": ADMIN,
            "users": {"alice": user_with_key(&mcphub::users::new_key())},
            "auth": {"oauth": oauth},
        }),
        vec![("up", json!({}), legacy_server("up", json!([tool("echo")])))],
    );
    let client = |id: &str, method: &str, secret: Option<&str>| RegisteredClient {
        client_id: id.into(),
        client_name: Some("Test client".into()),
        redirect_uris: vec![REDIRECT.into()],
        token_endpoint_auth_method: method.into(),
        secret_digest: secret.map(mcphub::users::key_digest),
        client_uri: None,
        created_ms: mcphub::store::now_ms(),
    };
    assert!(h.oauth().store().register_client(&client(PUBLIC, "none", None)).unwrap());
    assert!(h.oauth().store().register_client(&client(CONFIDENTIAL, "client_secret_basic", Some(SECRET))).unwrap());
    h
}

/// A code for `user` and `client` with `scope`.
fn code_for(h: &Hub, user: &str, client: &str, scope: &str) -> String {
    let grant = CodeGrant {
        client_id: client.into(),
        client_name: "Test client".into(),
        user: user.into(),
        redirect_uri: REDIRECT.into(),
        code_challenge: CHALLENGE.into(),
        scope: scope.into(),
        resource: RESOURCE.into(),
    };
    h.oauth().store().issue_code(&grant).unwrap()
}

fn form(fields: &[(&str, &str)]) -> String {
    let enc = |s: &str| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string();
    fields.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

/// `POST /oauth/token` with `fields` and `headers` (the form content type added).
fn token_with(h: &Hub, fields: &[(&str, &str)], headers: &[(&str, &str)]) -> Answer {
    let mut all = vec![FORM];
    all.extend_from_slice(headers);
    request(h, "POST", "/oauth/token", &all, &form(fields))
}

/// The code exchange of the public client.
fn exchange(h: &Hub, code: &str) -> Answer {
    let fields = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
        ("client_id", PUBLIC),
        ("resource", RESOURCE),
    ];
    token_with(h, &fields, &[])
}

/// The refresh of the public client.
fn refresh(h: &Hub, refresh_token: &str) -> Answer {
    token_with(h, &[("grant_type", "refresh_token"), ("refresh_token", refresh_token), ("client_id", PUBLIC), ("resource", RESOURCE)], &[])
}

/// `(access_token, refresh_token)` of a successful answer.
fn pair(a: &Answer) -> (String, String) {
    assert_eq!(a.status, 200, "{}", a.text);
    let v = a.json();
    (v["access_token"].as_str().unwrap().to_string(), v["refresh_token"].as_str().unwrap().to_string())
}

/// Alice's tokens through the public client.
fn tokens(h: &Hub, scope: &str) -> (String, String) {
    pair(&exchange(h, &code_for(h, "alice", PUBLIC, scope)))
}

/// Asserts an OAuth error answer: `status`, `error`, no-store, CORS.
fn assert_error(a: &Answer, status: u16, error: &str, what: &str) {
    assert_eq!((a.status, a.json()["error"].as_str()), (status, Some(error)), "{what}: {}", a.text);
    assert!(a.json()["error_description"].is_string(), "{what}");
    assert_eq!(a.header("Cache-Control"), Some("no-store"), "{what}");
    assert_eq!(a.header("Access-Control-Allow-Origin"), Some("*"), "{what}");
}

/// A `tools/list` on a new legacy session with `Authorization: Bearer token`.
fn mcp_status(h: &Hub, token: &str) -> Answer {
    let auth = format!("Bearer {token}");
    post(h, &initialize_body("2025-06-18"), &[ACCEPT, JSON, ("Authorization", &auth)])
}

/// Waits until the clock passed `ms` (a record's expiry; memory expiry is
/// read from the same clock), polling, at most 5 s.
fn wait_past(ms: u64) {
    wait_until("the lifetime to pass", Duration::from_secs(5), || mcphub::store::now_ms() > ms);
}

#[test]
fn an_access_token_reaches_mcp_as_its_user_and_refreshes() {
    let h = oauth_hub(json!({}));
    let a = exchange(&h, &code_for(&h, "alice", PUBLIC, "mcp"));
    let v = a.json();
    assert_eq!((v["token_type"].as_str(), v["expires_in"].as_u64(), v["scope"].as_str()), (Some("Bearer"), Some(3600), Some("mcp")), "{v}");
    assert_eq!((a.header("Cache-Control"), a.header("Pragma")), (Some("no-store"), Some("no-cache")));
    assert_eq!(a.header("Access-Control-Allow-Origin"), Some("*"));
    let (access, refresh_token) = pair(&a);
    assert!(access.starts_with("mcphub_at_") && refresh_token.starts_with("mcphub_rt_"));
    let auth = format!("Bearer {access}");
    let sid = legacy_session_with(&h, &[("Authorization", &auth)]);
    let mut hdrs = legacy_headers(&sid);
    hdrs.push(("Authorization", &auth));
    let list = post(&h, &jsonrpc_request("tools/list", json!({})), &hdrs);
    assert_eq!(list.status, 200, "{}", list.text);
    assert!(tool_name(&list).contains("echo"), "{}", list.text);
    // Refresh: a new pair that works; the old refresh token is spent.
    let (access2, _) = pair(&refresh(&h, &refresh_token));
    assert_eq!(mcp_status(&h, &access2).status, 200);
    assert_eq!(metric(&h, "mcphub_oauth_tokens_issued_total{grant=\"authorization_code\"}"), "mcphub_oauth_tokens_issued_total{grant=\"authorization_code\"} 1");
    assert_eq!(metric(&h, "mcphub_oauth_tokens_issued_total{grant=\"refresh_token\"}"), "mcphub_oauth_tokens_issued_total{grant=\"refresh_token\"} 1");
    let lines = logs().lock().unwrap().clone();
    assert!(lines.iter().any(|l| l.contains("authorization_code grant") && l.contains("alice") && l.contains(PUBLIC)), "{lines:?}");
    for secret in [&access, &refresh_token, &access2] {
        assert!(!lines.iter().any(|l| l.contains(&secret[10..])), "a token in the log");
    }
}

/// The body of a JSON-RPC request with id 1.
fn jsonrpc_request(method: &str, params: Value) -> String {
    mcphub::protocol::jsonrpc::request(&json!(1), method, params).to_string()
}

/// The one tool name of a `tools/list` answer (JSON or SSE).
fn tool_name(a: &Answer) -> String {
    let msg = a.events().pop().unwrap_or_else(|| a.json());
    names(&msg, "tools").pop().expect("a tool")
}

#[test]
fn the_token_endpoint_answers_each_bad_input_with_its_rfc_error() {
    let h = oauth_hub(json!({}));
    let mut seen = Vec::new();
    let mut check = |what: &str, a: Answer, status: u16, error: &str| {
        assert_error(&a, status, error, what);
        seen.push(a.text);
    };
    // Wrong PKCE verifier.
    let code = code_for(&h, "alice", PUBLIC, "mcp");
    let wrong = "x".repeat(43);
    let fields = [("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT), ("code_verifier", &wrong), ("client_id", PUBLIC)];
    check("wrong verifier", token_with(&h, &fields, &[]), 400, "invalid_grant");
    // redirect_uri mismatch.
    let code = code_for(&h, "alice", PUBLIC, "mcp");
    let fields = [("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", "http://127.0.0.1:5555/other"), ("code_verifier", VERIFIER), ("client_id", PUBLIC)];
    check("redirect_uri mismatch", token_with(&h, &fields, &[]), 400, "invalid_grant");
    // Unknown client.
    let code = code_for(&h, "alice", PUBLIC, "mcp");
    let fields = [("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT), ("code_verifier", VERIFIER), ("client_id", "mcphub_client_nope")];
    check("unknown client", token_with(&h, &fields, &[]), 401, "invalid_client");
    check("no client at all", token_with(&h, &[("grant_type", "refresh_token"), ("refresh_token", "x")], &[]), 401, "invalid_client");
    // A resource naming another server.
    let fields = [("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT), ("code_verifier", VERIFIER), ("client_id", PUBLIC), ("resource", "https://other.example/mcp")];
    check("resource of another server", token_with(&h, &fields, &[]), 400, "invalid_target");
    // Unsupported grant type; missing code_verifier; missing grant_type.
    check("grant_type password", token_with(&h, &[("grant_type", "password"), ("client_id", PUBLIC)], &[]), 400, "unsupported_grant_type");
    let fields = [("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT), ("client_id", PUBLIC)];
    check("missing code_verifier", token_with(&h, &fields, &[]), 400, "invalid_request");
    check("missing grant_type", token_with(&h, &[("client_id", PUBLIC)], &[]), 400, "invalid_request");
    // A body that is not form-encoded.
    let body = json!({"grant_type": "authorization_code", "client_id": PUBLIC}).to_string();
    check("JSON body", request(&h, "POST", "/oauth/token", &[JSON], &body), 400, "invalid_request");
    check("no content type", request(&h, "POST", "/oauth/token", &[], "grant_type=refresh_token"), 400, "invalid_request");
    // The code was not spent by the requests refused before the exchange.
    assert_eq!(exchange(&h, &code).status, 200);
    let text = seen.join("\n");
    assert!(!text.contains(&code) && !text.contains(VERIFIER), "no code or verifier echoed");
    assert_eq!(metric(&h, "mcphub_oauth_errors_total{error=\"invalid_grant\"}"), "mcphub_oauth_errors_total{error=\"invalid_grant\"} 2");
    assert_eq!(metric(&h, "mcphub_oauth_errors_total{error=\"invalid_client\"}"), "mcphub_oauth_errors_total{error=\"invalid_client\"} 2");
}

#[test]
fn a_reused_code_revokes_the_tokens_of_its_first_use() {
    let h = oauth_hub(json!({}));
    let code = code_for(&h, "alice", PUBLIC, "mcp");
    let (access, _) = pair(&exchange(&h, &code));
    assert_eq!(mcp_status(&h, &access).status, 200);
    assert_error(&exchange(&h, &code), 400, "invalid_grant", "reused code");
    let r = mcp_status(&h, &access);
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(!r.text.contains(&access[10..]));
}

#[test]
fn a_replayed_refresh_token_revokes_its_family() {
    let h = oauth_hub(json!({}));
    let (_, rt1) = tokens(&h, "mcp");
    let (access2, rt2) = pair(&refresh(&h, &rt1));
    assert_eq!(mcp_status(&h, &access2).status, 200);
    assert_error(&refresh(&h, &rt1), 400, "invalid_grant", "replayed refresh token");
    let r = mcp_status(&h, &access2);
    assert_eq!(r.status, 401, "the newest access token of the family is revoked: {}", r.text);
    assert!(r.header("WWW-Authenticate").unwrap().contains("error=\"invalid_token\""));
    assert_error(&refresh(&h, &rt2), 400, "invalid_grant", "the newest refresh token is revoked too");
}

#[test]
fn an_expired_code_is_invalid_grant() {
    let h = oauth_hub(json!({"codeSecs": 1}));
    let code = code_for(&h, "alice", PUBLIC, "mcp");
    wait_past(mcphub::store::now_ms() + 1000);
    assert_error(&exchange(&h, &code), 400, "invalid_grant", "expired code");
}

#[test]
fn confidential_clients_authenticate_with_their_secret() {
    let h = oauth_hub(json!({}));
    use base64::Engine as _;
    let basic = |id: &str, secret: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}")));
    let fields = |code: &str| {
        vec![
            ("grant_type", "authorization_code".to_string()),
            ("code", code.to_string()),
            ("redirect_uri", REDIRECT.to_string()),
            ("code_verifier", VERIFIER.to_string()),
        ]
    };
    let send = |code: &str, extra: &[(&str, &str)], headers: &[(&str, &str)]| {
        let f = fields(code);
        let mut all: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
        all.extend_from_slice(extra);
        token_with(&h, &all, headers)
    };
    // Wrong secret by Basic: 401 with the Basic challenge; in the body: 401.
    let code = code_for(&h, "alice", CONFIDENTIAL, "mcp");
    let wrong = basic(CONFIDENTIAL, "mcphub_cs_wrong");
    let a = send(&code, &[], &[("Authorization", &wrong)]);
    assert_error(&a, 401, "invalid_client", "wrong secret (Basic)");
    assert_eq!(a.header("WWW-Authenticate"), Some("Basic realm=\"mcphub\""));
    let a = send(&code, &[("client_id", CONFIDENTIAL), ("client_secret", "nope")], &[]);
    assert_error(&a, 401, "invalid_client", "wrong secret (body)");
    assert_eq!(a.header("WWW-Authenticate"), None);
    assert_error(&send(&code, &[("client_id", CONFIDENTIAL)], &[]), 401, "invalid_client", "no secret");
    assert!(!a.text.contains(SECRET));
    // The right secret, by Basic (with client_id in the body too, as Python does) and in the body.
    let right = basic(CONFIDENTIAL, SECRET);
    pair(&send(&code, &[("client_id", CONFIDENTIAL)], &[("Authorization", &right)]));
    let code = code_for(&h, "alice", CONFIDENTIAL, "mcp");
    pair(&send(&code, &[("client_id", CONFIDENTIAL), ("client_secret", SECRET)], &[]));
    // A public client presenting a secret is refused.
    let code = code_for(&h, "alice", PUBLIC, "mcp");
    assert_error(&send(&code, &[("client_id", PUBLIC), ("client_secret", "x")], &[]), 401, "invalid_client", "public client with a secret");
}

#[test]
fn an_expired_access_token_is_refused_with_the_oauth_challenge() {
    let h = oauth_hub(json!({"accessTokenSecs": 1}));
    let (access, _) = tokens(&h, "mcp");
    let issued = mcphub::store::now_ms();
    assert_eq!(mcp_status(&h, &access).status, 200);
    wait_past(issued + 1000);
    let r = mcp_status(&h, &access);
    assert_eq!(r.status, 401, "{}", r.text);
    let challenge = r.header("WWW-Authenticate").unwrap();
    assert!(challenge.contains("error=\"invalid_token\"") && challenge.contains("resource_metadata=\"https://hub.example/.well-known/oauth-protected-resource/mcp\""), "{challenge}");
    assert!(!r.text.contains(&access[10..]));
}

#[test]
fn a_read_only_token_lists_but_does_not_call() {
    let h = oauth_hub(json!({}));
    let (access, _) = tokens(&h, "mcp:read");
    let auth = format!("Bearer {access}");
    let sid = legacy_session_with(&h, &[("Authorization", &auth)]);
    let mut hdrs = legacy_headers(&sid);
    hdrs.push(("Authorization", &auth));
    let list = post(&h, &jsonrpc_request("tools/list", json!({})), &hdrs);
    assert_eq!(list.status, 200, "{}", list.text);
    assert!(tool_name(&list).contains("echo"), "{}", list.text);
    let call = post(&h, &jsonrpc_request("tools/call", json!({"name": tool_name(&list), "arguments": {"text": "hi"}})), &hdrs);
    assert_eq!(call.status, 403, "{}", call.text);
    assert!(call.header("WWW-Authenticate").unwrap().contains("error=\"insufficient_scope\""));
}

#[test]
fn an_access_token_in_the_query_is_refused() {
    let h = oauth_hub(json!({}));
    let (access, _) = tokens(&h, "mcp");
    let r = request(&h, "POST", &format!("/mcp?key={access}"), &[ACCEPT, JSON], &initialize_body("2025-06-18"));
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(!r.text.contains(&access[10..]));
}

#[test]
fn a_deleted_users_token_is_refused() {
    let h = oauth_hub(json!({}));
    let admin = [JSON, ("x-auth-token", ADMIN)];
    assert_eq!(request(&h, "POST", "/api/admin/users", &admin, r#"{"name": "carol"}"#).status, 201);
    let (access, rt) = pair(&exchange(&h, &code_for(&h, "carol", PUBLIC, "mcp")));
    assert_eq!(mcp_status(&h, &access).status, 200);
    assert_eq!(request(&h, "DELETE", "/api/admin/users/carol", &admin, "").status, 200);
    assert_eq!(mcp_status(&h, &access).status, 401);
    assert_error(&refresh(&h, &rt), 400, "invalid_grant", "the deleted user's grants are revoked");
}

#[test]
fn revocation_needs_a_known_client_and_answers_200() {
    let h = oauth_hub(json!({}));
    let (access, rt) = tokens(&h, "mcp");
    let revoke = |fields: &[(&str, &str)]| request(&h, "POST", "/oauth/revoke", &[FORM], &form(fields));
    assert_error(&revoke(&[("token", &access), ("client_id", "mcphub_client_nope")]), 401, "invalid_client", "unknown client");
    assert_error(&revoke(&[("client_id", PUBLIC)]), 400, "invalid_request", "no token");
    assert_eq!(revoke(&[("token", "garbage"), ("client_id", PUBLIC)]).status, 200);
    let a = revoke(&[("token", &access), ("token_type_hint", "access_token"), ("client_id", PUBLIC)]);
    assert_eq!((a.status, a.header("Access-Control-Allow-Origin")), (200, Some("*")));
    assert_eq!(mcp_status(&h, &access).status, 401);
    let (access2, rt2) = pair(&refresh(&h, &rt));
    assert_eq!(revoke(&[("token", &rt2), ("client_id", PUBLIC)]).status, 200);
    assert_eq!(mcp_status(&h, &access2).status, 401, "a refresh token's revocation takes its family");
}

#[test]
fn preflight_and_other_methods() {
    let h = oauth_hub(json!({}));
    for path in ["/oauth/token", "/oauth/revoke"] {
        let p = request(&h, "OPTIONS", path, &[("Origin", "https://app.example")], "");
        assert_eq!(p.status, 204, "{path}");
        assert_eq!(p.header("Access-Control-Allow-Origin"), Some("*"));
        assert_eq!(p.header("Access-Control-Allow-Methods"), Some("GET, POST, OPTIONS"));
        assert_eq!(p.header("Access-Control-Allow-Headers"), Some("Authorization, Content-Type, MCP-Protocol-Version"));
        assert_eq!(request(&h, "GET", path, &[], "").status, 405);
    }
    let off = hub(json!({"auth": {"oauth": {"enabled": false}}}));
    assert_eq!(request(&off, "POST", "/oauth/token", &[FORM], "grant_type=refresh_token").status, 404);
}

#[test]
fn the_store_down_is_503_temporarily_unavailable() {
    let mut redis = redis_util::RedisServer::start();
    let h = hub(json!({"publicUrl": BASE, "redis": {"url": redis.url()}}));
    let client = RegisteredClient {
        client_id: PUBLIC.into(),
        client_name: None,
        redirect_uris: vec![REDIRECT.into()],
        token_endpoint_auth_method: "none".into(),
        secret_digest: None,
        client_uri: None,
        created_ms: mcphub::store::now_ms(),
    };
    assert!(h.oauth().store().register_client(&client).unwrap());
    let code = code_for(&h, "alice", PUBLIC, "mcp");
    assert!(redis.cli(&["KEYS", "mcp:oauth:code:*"]).starts_with("mcp:oauth:code:"), "the code is in Redis");
    redis.stop();
    let a = exchange(&h, &code);
    assert_error(&a, 503, "temporarily_unavailable", "Redis down");
    assert_eq!(a.header("Retry-After"), Some("2"));
}
