//! The OAuth front of the hub (issue 18), Request → Response without a
//! socket: the metadata documents (RFC 9728, RFC 8414) and their CORS, the
//! `/mcp` challenge naming them, Dynamic Client Registration (RFC 7591) and
//! its refusals, and `/oauth/authorize` (RFC 6749 §4.1.2.1 order: 400 pages
//! for a bad client or redirect URI, redirected errors with `state` and
//! `iss` otherwise), the sign-in that resumes it, the consent page, Allow and
//! Deny, a remembered consent, and the Keys page's Connected apps.

mod core_util;

use core_util::*;
use mcphub::hub::Hub;
use mcphub::users::new_key;
use serde_json::{json, Value};

const BASE: &str = "http://127.0.0.1:3000";
/// The `Host` of every request (loopback: the base is `http://` + it).
const CALLBACK: &str = "http://127.0.0.1:9999/callback";
/// A PKCE verifier and its S256 challenge (RFC 7636 appendix B).
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// A hub with user alice (her key returned), `oauth` as `auth.oauth`.
fn oauth_hub(oauth: Value) -> (Hub, String) {
    let key = new_key();
    (hub(json!({"users": {"alice": user_with_key(&key)}, "auth": {"oauth": oauth}})), key)
}

fn assert_page(a: &Answer, status: u16, words: &str) {
    assert_eq!(a.status, status, "{}", a.text);
    assert!(a.header("Content-Type").unwrap_or_default().starts_with("text/html"), "{:?}", a.headers);
    assert!(a.text.contains(words), "want {words:?} in {}", a.text);
}

/// `POST /oauth/register` with a JSON `body` from `peer`.
fn register_from(h: &Hub, peer: &str, body: &str) -> Answer {
    request_from(h, peer, "POST", "/oauth/register", &[HOST, JSON], body)
}

fn register(h: &Hub, body: &Value) -> Answer {
    register_from(h, PEER, &body.to_string())
}

/// A registered public client named `name` with redirect URI [`CALLBACK`]: its id.
fn client(h: &Hub, name: &str) -> String {
    let a = register(h, &json!({"redirect_uris": [CALLBACK], "client_name": name, "token_endpoint_auth_method": "none"}));
    assert_eq!(a.status, 201, "{}", a.text);
    a.json()["client_id"].as_str().unwrap().to_string()
}

/// The usual authorization request of `client_id` with `extra` parameters
/// replacing or adding (a value of "" drops the parameter).
fn authorize_url(client_id: &str, extra: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(&str, &str)> = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", CALLBACK),
        ("state", "st-1"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
        ("scope", "mcp"),
        ("resource", "http://127.0.0.1:3000/mcp"),
    ];
    for (k, v) in extra {
        pairs.retain(|(n, _)| n != k);
        if !v.is_empty() {
            pairs.push((k, v));
        }
    }
    format!("/oauth/authorize?{}", form(&pairs))
}

/// Key sign-in; `extra_cookie` (`name=value`) sent along with the form.
/// The POST's answer and the browser.
fn sign_in_with(h: &Hub, key: &str, extra_cookie: Option<&str>) -> (Answer, Browser) {
    key_sign_in(h, key, HOST, "__Host-", extra_cookie)
}

fn sign_in(h: &Hub, key: &str) -> Browser {
    sign_in_with(h, key, None).1
}

/// The hidden fields of the consent form, in page order.
fn consent_fields(page: &str) -> Vec<(String, String)> {
    let form = page.split("<form id=\"consent\"").nth(1).unwrap_or_else(|| panic!("no consent form in {page}"));
    let form = form.split("</form>").next().unwrap();
    form.split("<input type=\"hidden\" name=\"")
        .skip(1)
        .map(|f| {
            let (name, rest) = f.split_once('"').unwrap();
            let value = rest.split("value=\"").nth(1).unwrap().split('"').next().unwrap();
            (name.to_string(), value.replace("&amp;", "&").replace("&quot;", "\"").replace("&lt;", "<").replace("&gt;", ">"))
        })
        .collect()
}

/// Posts the consent form of `page` with `decision`.
fn decide(h: &Hub, b: &Browser, page: &str, decision: &str) -> Answer {
    let fields = consent_fields(page);
    let mut pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    pairs.push(("decision", decision));
    request(h, "POST", "/oauth/authorize", &[HOST, FORM, ("Cookie", &b.cookie)], &form(&pairs))
}

// ---- metadata -------------------------------------------------------------

#[test]
fn the_metadata_documents_name_one_issuer_and_are_open_to_browsers() {
    let (h, _) = oauth_hub(json!({}));
    for path in ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"] {
        let a = get(&h, path, &[HOST]);
        assert_eq!(a.status, 200, "{path}: {}", a.text);
        assert_eq!(a.header("Content-Type"), Some("application/json"));
        assert_eq!(a.header("Access-Control-Allow-Origin"), Some("*"));
        assert_eq!(a.header("Cache-Control"), Some("no-cache"));
        assert_eq!(
            a.json(),
            json!({"resource": "http://127.0.0.1:3000/mcp", "authorization_servers": [BASE], "scopes_supported": ["mcp", "mcp:read"],
                   "bearer_methods_supported": ["header"], "resource_name": "MCPHub"})
        );
    }
    for path in ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"] {
        let a = get(&h, path, &[HOST]);
        assert_eq!(a.status, 200, "{path}: {}", a.text);
        assert_eq!(a.header("Access-Control-Allow-Origin"), Some("*"));
        let m = a.json();
        assert_eq!(m["issuer"], BASE, "the issuer is byte-identical to authorization_servers[0]");
        assert_eq!(m["authorization_endpoint"], "http://127.0.0.1:3000/oauth/authorize");
        assert_eq!(m["token_endpoint"], "http://127.0.0.1:3000/oauth/token");
        assert_eq!(m["revocation_endpoint"], "http://127.0.0.1:3000/oauth/revoke");
        assert_eq!(m["registration_endpoint"], "http://127.0.0.1:3000/oauth/register");
        assert_eq!(m["response_types_supported"], json!(["code"]));
        assert_eq!(m["response_modes_supported"], json!(["query"]));
        assert_eq!(m["grant_types_supported"], json!(["authorization_code", "refresh_token"]));
        assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(m["token_endpoint_auth_methods_supported"], json!(["none", "client_secret_basic", "client_secret_post"]));
        assert_eq!(m["revocation_endpoint_auth_methods_supported"], json!(["none", "client_secret_basic", "client_secret_post"]));
        assert_eq!(m["scopes_supported"], json!(["mcp", "mcp:read"]));
        assert_eq!(m["authorization_response_iss_parameter_supported"], true);
        assert_eq!(m["client_id_metadata_document_supported"], true);
    }
    // The issuer has no path: the path-suffixed forms are not served.
    for path in ["/.well-known/oauth-authorization-server/mcp", "/.well-known/openid-configuration/mcp"] {
        assert_eq!(get(&h, path, &[HOST]).status, 404, "{path}");
    }
    // A CORS preflight.
    let pre = request(&h, "OPTIONS", "/.well-known/oauth-authorization-server", &[HOST, ("Origin", "https://app.example")], "");
    assert_eq!(pre.status, 204);
    assert_eq!(pre.header("Access-Control-Allow-Origin"), Some("*"));
    assert!(pre.header("Access-Control-Allow-Methods").unwrap_or_default().contains("POST"));
    assert!(pre.header("Access-Control-Allow-Headers").unwrap_or_default().contains("Content-Type"));
    assert_eq!(request(&h, "OPTIONS", "/oauth/register", &[HOST], "").status, 204);
}

#[test]
fn the_public_url_is_the_issuer_whatever_the_host() {
    let h = hub(json!({"publicUrl": "https://hub.example.com"}));
    let prm = get(&h, "/.well-known/oauth-protected-resource/mcp", &[("Host", "localhost:1")]).json();
    assert_eq!(prm["resource"], "https://hub.example.com/mcp");
    assert_eq!(prm["authorization_servers"], json!(["https://hub.example.com"]));
    assert_eq!(get(&h, "/.well-known/oauth-authorization-server", &[]).json()["issuer"], "https://hub.example.com");
}

#[test]
fn a_401_on_mcp_points_at_the_protected_resource_metadata() {
    let (h, _) = oauth_hub(json!({}));
    let a = modern_with(&h, "tools/list", json!({}), &[HOST]);
    assert_eq!(a.status, 401, "{}", a.text);
    assert_eq!(
        a.header("WWW-Authenticate"),
        Some(r#"Bearer realm="mcphub", scope="mcp", resource_metadata="http://127.0.0.1:3000/.well-known/oauth-protected-resource/mcp""#)
    );
}

#[test]
fn with_oauth_off_nothing_is_served_and_the_challenge_has_no_metadata() {
    let (h, _) = oauth_hub(json!({"enabled": false}));
    for path in ["/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"] {
        assert_eq!(get(&h, path, &[HOST]).status, 404, "{path}");
    }
    assert_eq!(register(&h, &json!({"redirect_uris": [CALLBACK]})).status, 404);
    assert_eq!(get(&h, &authorize_url("x", &[]), &[HOST]).status, 404);
    let a = modern_with(&h, "tools/list", json!({}), &[HOST]);
    assert_eq!(a.status, 401);
    assert!(!a.header("WWW-Authenticate").unwrap_or_default().contains("resource_metadata"), "{:?}", a.headers);
}

#[test]
fn with_registration_off_the_metadata_has_no_registration_endpoint() {
    let (h, _) = oauth_hub(json!({"dynamicRegistration": false, "clientMetadataDocuments": false}));
    let m = get(&h, "/.well-known/oauth-authorization-server", &[HOST]).json();
    assert!(m.get("registration_endpoint").is_none(), "{m}");
    assert_eq!(m["client_id_metadata_document_supported"], false);
    assert_eq!(register(&h, &json!({"redirect_uris": [CALLBACK]})).status, 404);
}

// ---- registration ---------------------------------------------------------

#[test]
fn bad_registrations_get_the_rfc_7591_errors() {
    let (h, _) = oauth_hub(json!({"registrationsPerMinute": 1000}));
    let cases: Vec<(String, &str)> = vec![
        (json!({"client_name": "x"}).to_string(), "invalid_redirect_uri"),
        (json!({"redirect_uris": []}).to_string(), "invalid_redirect_uri"),
        (json!({"redirect_uris": ["http://evil.example.com/cb"]}).to_string(), "invalid_redirect_uri"),
        (json!({"redirect_uris": ["javascript:alert(document.cookie)"]}).to_string(), "invalid_redirect_uri"),
        (json!({"redirect_uris": ["data:text/html,<script>x</script>"]}).to_string(), "invalid_redirect_uri"),
        (json!({"redirect_uris": ["https://app.example.com/cb#x"]}).to_string(), "invalid_redirect_uri"),
        (json!({"redirect_uris": ["/relative"]}).to_string(), "invalid_redirect_uri"),
        (json!({"redirect_uris": [CALLBACK], "token_endpoint_auth_method": "private_key_jwt"}).to_string(), "invalid_client_metadata"),
        (json!({"redirect_uris": [CALLBACK], "grant_types": ["client_credentials"]}).to_string(), "invalid_client_metadata"),
        (json!({"redirect_uris": [CALLBACK], "response_types": ["token"]}).to_string(), "invalid_client_metadata"),
        (json!({"redirect_uris": [CALLBACK], "client_name": "n".repeat(201)}).to_string(), "invalid_client_metadata"),
        ("not json".to_string(), "invalid_client_metadata"),
        (json!({"redirect_uris": [CALLBACK], "padding": "p".repeat(17 * 1024)}).to_string(), "invalid_client_metadata"),
    ];
    for (body, error) in cases {
        let a = register_from(&h, PEER, &body);
        assert_eq!(a.status, 400, "{body:.80}: {}", a.text);
        assert_eq!(a.json()["error"], error, "{body:.80}");
        assert!(a.json()["error_description"].as_str().is_some_and(|d| !d.is_empty()));
        assert_eq!(a.header("Access-Control-Allow-Origin"), Some("*"));
    }
    assert_eq!(request(&h, "GET", "/oauth/register", &[HOST], "").status, 405);
}

#[test]
fn registrations_are_limited_per_source_address() {
    let (h, _) = oauth_hub(json!({"registrationsPerMinute": 2}));
    // Refused registrations count too (the limit is on attempts).
    for _ in 0..2 {
        assert_eq!(register_from(&h, "127.0.0.5:1", "{}").status, 400);
    }
    let a = register_from(&h, "127.0.0.5:2", "{}");
    assert_eq!(a.status, 429, "{}", a.text);
    assert_eq!(a.json()["error"], "temporarily_unavailable");
    assert!(a.header("Retry-After").is_some_and(|s| s.parse::<u64>().is_ok_and(|s| s >= 1)), "{:?}", a.headers);
    assert_eq!(register_from(&h, "127.0.0.6:1", "{}").status, 400, "another address has its own budget");
}

#[test]
fn a_registration_answers_201_with_its_metadata_and_a_secret_only_for_secret_methods() {
    let (h, _) = oauth_hub(json!({}));
    let a = register(
        &h,
        &json!({"redirect_uris": [CALLBACK], "client_name": "Claude Code", "scope": "mcp", "application_type": "native",
                "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"]}),
    );
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(a.header("Cache-Control"), Some("no-store"));
    assert_eq!(a.header("Access-Control-Allow-Origin"), Some("*"));
    let c = a.json();
    let id = c["client_id"].as_str().unwrap();
    assert!(id.starts_with("mcphub_client_") && id.len() == 14 + 32, "{id}");
    assert_eq!(c["redirect_uris"], json!([CALLBACK]));
    assert_eq!(c["token_endpoint_auth_method"], "client_secret_basic", "the RFC 7591 default");
    assert_eq!(c["grant_types"], json!(["authorization_code", "refresh_token"]));
    assert_eq!(c["response_types"], json!(["code"]));
    assert_eq!(c["client_name"], "Claude Code");
    assert_eq!(c["scope"], "mcp");
    assert!(c["client_id_issued_at"].as_u64().is_some_and(|t| t > 1_700_000_000 && t < 10_000_000_000));
    let secret = c["client_secret"].as_str().unwrap();
    assert!(secret.starts_with("mcphub_cs_") && secret.len() == 10 + 64, "{secret}");
    assert_eq!(c["client_secret_expires_at"], 0);
    assert!(c.get("application_type").is_none(), "unknown members are ignored");

    let public = register(&h, &json!({"redirect_uris": ["cursor://anysphere.cursor-retrieval/oauth/callback"], "token_endpoint_auth_method": "none"}));
    assert_eq!(public.status, 201, "{}", public.text);
    assert_eq!(public.json()["token_endpoint_auth_method"], "none");
    assert!(public.json().get("client_secret").is_none());
    assert_ne!(public.json()["client_id"], c["client_id"]);
}

#[test]
fn registrations_beyond_max_clients_are_refused_503() {
    let (h, _) = oauth_hub(json!({"maxClients": 1}));
    client(&h, "first");
    let a = register(&h, &json!({"redirect_uris": [CALLBACK], "token_endpoint_auth_method": "none"}));
    assert_eq!(a.status, 503, "{}", a.text);
    assert_eq!(a.json()["error"], "temporarily_unavailable");
}

// ---- authorization --------------------------------------------------------

#[test]
fn a_missing_or_unknown_client_is_a_400_page_and_never_a_redirect() {
    let (h, _) = oauth_hub(json!({}));
    let a = get(&h, &authorize_url("", &[]), &[HOST]);
    assert_page(&a, 400, "client_id is missing");
    assert!(a.header("Location").is_none());
    let a = get(&h, &authorize_url("mcphub_client_00000000000000000000000000000000", &[]), &[HOST]);
    assert_page(&a, 400, "unknown to this hub");
    assert!(a.header("Location").is_none());
}

#[test]
fn a_redirect_uri_the_client_did_not_register_is_a_400_page() {
    let (h, _) = oauth_hub(json!({}));
    let id = client(&h, "Tool");
    for uri in ["https://evil.example.com/callback", "http://127.0.0.1:9999/other", "http://localhost:9999/callback"] {
        let a = get(&h, &authorize_url(&id, &[("redirect_uri", uri)]), &[HOST]);
        assert_page(&a, 400, "did not register");
        assert!(a.header("Location").is_none(), "{uri}");
    }
}

#[test]
fn other_bad_requests_go_back_to_the_client_with_error_state_and_iss() {
    let (h, _) = oauth_hub(json!({}));
    let id = client(&h, "Tool");
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("code_challenge", "")], "invalid_request"),
        (&[("code_challenge_method", "plain")], "invalid_request"),
        (&[("code_challenge_method", "")], "invalid_request"),
        (&[("code_challenge", "short")], "invalid_request"),
        (&[("response_type", "token")], "unsupported_response_type"),
        (&[("response_type", "")], "invalid_request"),
        (&[("resource", "https://other.example.com/mcp")], "invalid_target"),
        (&[("resource", "http://127.0.0.1:3000/other")], "invalid_target"),
        (&[("scope", "mcp admin")], "invalid_scope"),
    ];
    for (extra, error) in cases {
        let a = get(&h, &authorize_url(&id, extra), &[HOST]);
        assert_eq!(a.status, 303, "{extra:?}: {}", a.text);
        let to = location(&a);
        assert!(to.starts_with(&format!("{CALLBACK}?")), "{to}");
        assert_eq!(param(&to, "error").as_deref(), Some(*error), "{extra:?} → {to}");
        assert!(param(&to, "error_description").is_some_and(|d| !d.is_empty()), "{to}");
        assert_eq!(param(&to, "state").as_deref(), Some("st-1"), "{to}");
        assert_eq!(param(&to, "iss").as_deref(), Some(BASE), "{to}");
        assert!(param(&to, "code").is_none());
    }
    // A parameter sent twice.
    let twice = format!("{}&scope=mcp", authorize_url(&id, &[]));
    assert_eq!(param(&location(&get(&h, &twice, &[HOST])), "error").as_deref(), Some("invalid_request"));
}

#[test]
fn sign_in_resumes_the_request_and_allow_sends_code_state_and_iss() {
    let (h, key) = oauth_hub(json!({}));
    let id = client(&h, "Tool");
    // A loopback redirect URI with another port is the registered one (RFC 8252 §7.3).
    let cb = "http://127.0.0.1:41234/callback";
    let url = authorize_url(&id, &[("redirect_uri", cb), ("resource", "http://127.0.0.1:3000/mcp/")]);
    let a = get(&h, &url, &[HOST]);
    assert_eq!((a.status, location(&a).as_str()), (303, "/ui/login"), "{}", a.text);
    let next = set_cookie(&a, "__Host-mcphub_oauth_next");
    assert!(next.contains("Max-Age=600") && next.contains("HttpOnly") && next.contains("Secure"), "{next}");
    assert_eq!(cookie_value(next), url);

    let next_cookie = format!("__Host-mcphub_oauth_next={}", cookie_value(next));
    let login = get(&h, "/ui/login", &[HOST, ("Cookie", &next_cookie)]);
    assert!(login.text.contains("Sign in to connect <strong>Tool</strong>"), "{}", login.text);
    let (r, b) = sign_in_with(&h, &key, Some(&next_cookie));
    assert_eq!(location(&r), url, "back to the authorization request");
    assert!(set_cookie(&r, "__Host-mcphub_oauth_next").contains("Max-Age=0"), "the cookie is cleared");

    let page = b.get(&h, &url);
    assert_page(&page, 200, "Allow Tool to use MCPHub as alice?");
    assert!(page.text.contains("(name not verified)"), "{}", page.text);
    assert!(page.text.contains(&format!("<code id=\"redirect-uri\">{cb}</code>")), "{}", page.text);
    assert!(page.text.contains("use your MCP servers through MCPHub: list and call tools, read resources and prompts"));
    let csp = page.header("Content-Security-Policy").unwrap_or_default();
    assert!(csp.contains("form-action 'self' http://127.0.0.1:41234;"), "{csp}");
    assert_eq!(page.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case("content-security-policy")).count(), 1);

    let allow = decide(&h, &b, &page.text, "allow");
    assert_eq!(allow.status, 303, "{}", allow.text);
    assert!(allow.header("Content-Security-Policy").unwrap_or_default().contains("http://127.0.0.1:41234"));
    let to = location(&allow);
    assert!(to.starts_with(&format!("{cb}?code=")), "{to}");
    assert_eq!(param(&to, "code").map(|c| c.len()), Some(43), "{to}");
    assert_eq!(param(&to, "state").as_deref(), Some("st-1"));
    assert_eq!(param(&to, "iss").as_deref(), Some(BASE), "iss is the issuer exactly");

    // The consent is remembered: the next request within it skips the page.
    let again = b.get(&h, &authorize_url(&id, &[("state", "st-2"), ("scope", "")]));
    assert_eq!(again.status, 303, "{}", again.text);
    let to2 = location(&again);
    assert!(to2.starts_with(&format!("{CALLBACK}?code=")), "{to2}");
    assert_eq!(param(&to2, "state").as_deref(), Some("st-2"));
    assert_ne!(param(&to2, "code"), param(&to, "code"));
    // A wider request asks again.
    let wider = b.get(&h, &authorize_url(&id, &[("scope", "mcp mcp:read")]));
    assert_page(&wider, 200, "without calling tools");
}

#[test]
fn deny_sends_access_denied_and_remembers_nothing() {
    let (h, key) = oauth_hub(json!({}));
    let id = client(&h, "Tool");
    let b = sign_in(&h, &key);
    let url = authorize_url(&id, &[]);
    let page = b.get(&h, &url);
    assert_page(&page, 200, "Allow Tool");
    let deny = decide(&h, &b, &page.text, "deny");
    let to = location(&deny);
    assert_eq!(deny.status, 303);
    assert_eq!(param(&to, "error").as_deref(), Some("access_denied"), "{to}");
    assert_eq!(param(&to, "state").as_deref(), Some("st-1"));
    assert_eq!(param(&to, "iss").as_deref(), Some(BASE));
    assert!(param(&to, "code").is_none());
    assert_eq!(b.get(&h, &url).status, 200, "still asks");
    assert!(b.get(&h, "/ui/keys").text.contains("No apps connected yet"));
}

#[test]
fn the_consent_post_needs_the_csrf_token_and_is_checked_again() {
    let (h, key) = oauth_hub(json!({}));
    let id = client(&h, "Tool");
    let b = sign_in(&h, &key);
    let page = b.get(&h, &authorize_url(&id, &[]));
    let fields = consent_fields(&page.text);
    let mut pairs: Vec<(&str, &str)> = fields.iter().filter(|(k, _)| k != "csrf").map(|(k, v)| (k.as_str(), v.as_str())).collect();
    pairs.push(("decision", "allow"));
    let a = request(&h, "POST", "/oauth/authorize", &[HOST, FORM, ("Cookie", &b.cookie)], &form(&pairs));
    assert_eq!(a.status, 403, "{}", a.text);
    assert!(a.header("Location").is_none());
    // A tampered redirect URI in the form is caught by the same checks as the GET.
    let csrf = b.csrf.clone();
    let mut tampered: Vec<(&str, &str)> = vec![("csrf", csrf.as_str())];
    tampered.extend(pairs.iter().map(|(k, v)| if *k == "redirect_uri" { (*k, "https://evil.example.com/cb") } else { (*k, *v) }));
    let a = request(&h, "POST", "/oauth/authorize", &[HOST, FORM, ("Cookie", &b.cookie)], &form(&tampered));
    assert_page(&a, 400, "did not register");
    assert!(a.header("Location").is_none());
}

#[test]
fn a_hostile_client_name_is_escaped_on_the_consent_page() {
    let (h, key) = oauth_hub(json!({}));
    let id = client(&h, "<script>alert(1)</script>");
    let b = sign_in(&h, &key);
    let page = b.get(&h, &authorize_url(&id, &[("state", "\"><img src=x>")]));
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(!page.text.contains("<script>alert"), "{}", page.text);
    assert!(!page.text.contains("<img src=x>"), "{}", page.text);
    assert!(page.text.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
}

#[test]
fn connected_apps_are_listed_on_the_keys_page_and_revoked_there() {
    let (h, key) = oauth_hub(json!({}));
    let b = sign_in(&h, &key);
    let keys = b.get(&h, "/ui/keys");
    assert!(keys.text.contains("No apps connected yet. MCP clients that support OAuth"), "{}", keys.text);
    assert!(keys.text.contains("http://127.0.0.1:3000/mcp"));
    let id = client(&h, "Cursor");
    let page = b.get(&h, &authorize_url(&id, &[]));
    assert_eq!(decide(&h, &b, &page.text, "allow").status, 303);
    let keys = b.get(&h, "/ui/keys");
    assert!(keys.text.contains("<table id=\"apps\">"), "{}", keys.text);
    assert!(keys.text.contains("<td>Cursor</td>"), "{}", keys.text);
    assert!(keys.text.contains(&format!("mcphub_client_{}…", &id[14..22])), "{}", keys.text);
    assert!(keys.text.contains(&format!("name=\"client\" value=\"{id}\"")));
    // CSRF is checked as on every POST.
    let refused = request(&h, "POST", "/ui/apps/revoke", &[HOST, FORM, ("Cookie", &b.cookie)], &form(&[("client", &id)]));
    assert_eq!(refused.status, 403);
    let r = b.post(&h, "/ui/apps/revoke", &[("client", &id)]);
    assert_eq!((r.status, location(&r).as_str()), (303, "/ui/keys?done=app-revoked"), "{}", r.text);
    let keys = b.get(&h, "/ui/keys?done=app-revoked");
    assert!(keys.text.contains("The app was disconnected"), "{}", keys.text);
    assert!(keys.text.contains("No apps connected yet"), "{}", keys.text);
    // The consent is forgotten: the page asks again.
    assert_eq!(b.get(&h, &authorize_url(&id, &[])).status, 200);
}

#[test]
fn the_code_of_an_allow_buys_a_token_that_works_until_the_app_is_revoked() {
    let (h, key) = oauth_hub(json!({}));
    let id = client(&h, "Tool");
    let b = sign_in(&h, &key);
    let page = b.get(&h, &authorize_url(&id, &[]));
    let to = location(&decide(&h, &b, &page.text, "allow"));
    let code = param(&to, "code").unwrap();
    let body = form(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", CALLBACK),
        ("code_verifier", VERIFIER),
        ("client_id", &id),
        ("resource", "http://127.0.0.1:3000/mcp"),
    ]);
    let t = request(&h, "POST", "/oauth/token", &[HOST, FORM], &body);
    assert_eq!(t.status, 200, "{}", t.text);
    let access = t.json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(t.json()["scope"], "mcp");
    let bearer = format!("Bearer {access}");
    assert_eq!(modern_with(&h, "tools/list", json!({}), &[HOST, ("Authorization", &bearer)]).status, 200);
    let keys = b.get(&h, "/ui/keys");
    assert!(keys.text.contains("<td>Tool</td>"), "{}", keys.text);
    assert_eq!(b.post(&h, "/ui/apps/revoke", &[("client", &id)]).status, 303);
    let a = modern_with(&h, "tools/list", json!({}), &[HOST, ("Authorization", &bearer)]);
    assert_eq!(a.status, 401, "{}", a.text);
    assert!(a.header("WWW-Authenticate").unwrap_or_default().contains("resource_metadata="), "{:?}", a.headers);
}

/// A loopback HTTP server answering every request with `doc` as JSON
/// (one request per connection): its base URL.
fn document_server(doc: impl Fn(&str) -> Value + Send + 'static) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let own = base.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                    break;
                }
            }
            let text = doc(&format!("{own}{target}")).to_string();
            let _ = write!(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}", text.len());
        }
    });
    base
}

#[test]
fn a_metadata_document_that_cannot_be_fetched_is_a_400_page() {
    // The guard refuses a loopback host before any connection.
    let (h, _) = oauth_hub(json!({"clientMetadata": {"allowHttp": true}}));
    let a = get(&h, &authorize_url("https://127.0.0.1:1/client.json", &[]), &[HOST]);
    assert_page(&a, 400, "metadata document cannot be used");
    assert!(a.header("Location").is_none());
}

#[test]
fn a_metadata_document_client_is_shown_with_its_verified_host() {
    let base = document_server(|url| json!({"client_id": url, "client_name": "Doc Tool", "redirect_uris": [CALLBACK], "token_endpoint_auth_method": "none"}));
    let (h, key) = oauth_hub(json!({"clientMetadata": {"allowHttp": true, "allowPrivateAddresses": true}}));
    let id = format!("{base}/client.json");
    let b = sign_in(&h, &key);
    let page = b.get(&h, &authorize_url(&id, &[]));
    assert_page(&page, 200, "Allow Doc Tool to use MCPHub as alice?");
    assert!(page.text.contains("<strong id=\"client-host\">127.0.0.1</strong>"), "{}", page.text);
    assert!(!page.text.contains("(name not verified)"));
    let to = location(&decide(&h, &b, &page.text, "allow"));
    assert!(param(&to, "code").is_some(), "{to}");
    let keys = b.get(&h, "/ui/keys");
    assert!(keys.text.contains("<td>Doc Tool</td>") && keys.text.contains("<code title=\""), "{}", keys.text);
    // A redirect URI the document does not list: the 400 page.
    let bad = b.get(&h, &authorize_url(&id, &[("redirect_uri", "https://evil.example.com/cb")]));
    assert_page(&bad, 400, "did not register");
}
