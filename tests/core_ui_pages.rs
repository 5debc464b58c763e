//! The signed-in person's pages (issue 17), Request → Response without a
//! socket: key sign-in and its cookies, the security headers, CSRF and
//! `Origin` refusals, Keys (create → the key works on `/mcp` → revoke → 401;
//! another user's key id → 404), Service tokens (set, delete, write-only
//! values), escaping of labels and names, logout, and a key's last use
//! (memory, and Redis's `mcp:users:lastused`).

mod core_util;
mod redis_util;

use core_util::*;
use mcphub::hub::Hub;
use mcphub::users::secrets::SecretKey;
use mcphub::users::{key_digest, new_key};
use serde_json::{json, Value};

/// A `${user.GITHUB_TOKEN}` server `gh` and a plain server `plain`; users
/// alice and bob with config keys; `extra` top-level keys on top.
fn pages_hub(extra: Value) -> (Hub, String, String) {
    let (alice, bob) = (new_key(), new_key());
    let mut cfg = json!({"users": {"alice": user_with_key(&alice), "bob": user_with_key(&bob)}});
    for (k, v) in extra.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    let (h, _traffic) = hub_with_servers(
        cfg,
        vec![
            ("gh", json!({"protocol": "legacy", "headers": {"Authorization": "Bearer ${user.GITHUB_TOKEN}"}}), legacy_server("gh", json!([tool("issues")]))),
            ("plain", json!({"protocol": "legacy"}), legacy_server("plain", json!([tool("echo")]))),
        ],
    );
    (h, alice, bob)
}

/// Signs in with `key` through `GET /ui/login` + `POST /ui/login/key` (cookie
/// names with `prefix`: `__Host-` on a secure hub, `` otherwise); the answer
/// of the POST and the browser.
fn sign_in_as(h: &Hub, key: &str, host: (&str, &str), prefix: &str) -> (Answer, Browser) {
    let (r, browser) = key_sign_in(h, key, host, prefix, None);
    assert_eq!((r.status, r.header("location")), (303, Some("/ui/connect")), "{}", r.text);
    (r, browser)
}

fn sign_in(h: &Hub, key: &str) -> Browser {
    sign_in_as(h, key, HOST, "__Host-").1
}

/// `tools/list` on `/mcp` with `key` as a Bearer key: the status.
fn tools_list_status(h: &Hub, key: &str) -> u16 {
    let auth = format!("Bearer {key}");
    modern_with(h, "tools/list", json!({}), &[("Authorization", &auth)]).status
}

/// The key of a `POST /ui/keys/create` answer (`output#new-key`).
fn new_key_of(page: &str) -> String {
    let at = page.find("<output id=\"new-key\">").unwrap_or_else(|| panic!("no output#new-key in {page}")) + "<output id=\"new-key\">".len();
    page[at..].split('<').next().unwrap().to_string()
}

#[test]
fn key_sign_in_sets_a_host_prefixed_secure_session_cookie_on_loopback() {
    let (h, alice, _) = pages_hub(json!({}));
    let (r, _) = sign_in_as(&h, &alice, HOST, "__Host-");
    let c = set_cookie(&r, "__Host-mcphub_session");
    let attrs: Vec<&str> = c.split(';').map(str::trim).collect();
    for a in ["Path=/", "HttpOnly", "SameSite=Lax", "Secure"] {
        assert!(attrs.contains(&a), "{a} missing in {c}");
    }
    assert!(!attrs.iter().any(|a| a.starts_with("Domain")), "a __Host- cookie has no Domain: {c}");
    assert_eq!(cookie_value(c).len(), 43, "32 random bytes, base64url: {c}");
}

#[test]
fn a_plain_http_public_url_gets_an_unprefixed_cookie_without_secure() {
    let (h, alice, _) = pages_hub(json!({"publicUrl": "http://hub.internal:3000"}));
    let (r, b) = sign_in_as(&h, &alice, ("Host", "hub.internal:3000"), "");
    let c = set_cookie(&r, "mcphub_session");
    let attrs: Vec<&str> = c.split(';').map(str::trim).collect();
    assert!(attrs.contains(&"HttpOnly") && attrs.contains(&"SameSite=Lax") && attrs.contains(&"Path=/"), "{c}");
    assert!(!attrs.contains(&"Secure"), "no Secure over plain http: {c}");
    assert!(set_cookies(&r).iter().all(|c| !c.starts_with("__Host-")), "{:?}", r.headers);
    let page = get(&h, "/ui/connect", &[("Host", "hub.internal:3000"), ("Cookie", &b.cookie)]);
    assert!(page.text.contains("http://hub.internal:3000/mcp"), "the endpoint is publicUrl's: {}", page.text);
}

#[test]
fn pages_carry_the_security_headers_and_are_not_cached() {
    let (h, alice, _) = pages_hub(json!({}));
    let b = sign_in(&h, &alice);
    for path in ["/ui/connect", "/ui/keys", "/ui/tokens", "/ui/login"] {
        let r = b.get(&h, path);
        assert!(matches!(r.status, 200 | 303), "{path}: {}", r.status);
        let csp = r.header("content-security-policy").unwrap_or_else(|| panic!("{path}: no CSP"));
        assert!(csp.contains("default-src 'self'"), "{path}: {csp}");
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{path}");
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"), "{path}");
        assert_eq!(r.header("cache-control"), Some("no-store"), "{path}");
        assert!(r.header("server-timing").is_some_and(|t| t.starts_with("render;dur=")), "{path}");
        assert!(!r.text.contains("style=\"") && !r.text.contains("<style") && !r.text.contains("<script>"), "{path}: inline style or script");
    }
}

#[test]
fn a_post_without_or_with_a_wrong_csrf_token_or_a_foreign_origin_is_refused() {
    let (h, alice, _) = pages_hub(json!({}));
    let b = sign_in(&h, &alice);
    let keys_before = h.users().view("alice").unwrap().keys.len();
    let headers = [HOST, FORM, ("Cookie", b.cookie.as_str())];
    let none = request(&h, "POST", "/ui/keys/create", &headers, "label=x");
    assert_eq!(none.status, 403, "{}", none.text);
    assert!(none.text.contains("did not come from this page"), "{}", none.text);
    let wrong = request(&h, "POST", "/ui/keys/create", &headers, &form(&[("csrf", &"A".repeat(43)), ("label", "x")]));
    assert_eq!(wrong.status, 403);
    let foreign = [HOST, FORM, ("Cookie", b.cookie.as_str()), ("Origin", "https://evil.example")];
    let cross = request(&h, "POST", "/ui/keys/create", &foreign, &form(&[("csrf", &b.csrf), ("label", "x")]));
    assert_eq!(cross.status, 403);
    let revoke = request(&h, "POST", &format!("/ui/keys/{}/revoke", &key_digest(&alice)[..8]), &headers, "");
    assert_eq!(revoke.status, 403);
    assert_eq!(h.users().view("alice").unwrap().keys.len(), keys_before, "nothing changed");
    assert_eq!(tools_list_status(&h, &alice), 200);
    // The same form with the token and this hub's own Origin goes through.
    let own = [HOST, FORM, ("Cookie", b.cookie.as_str()), ("Origin", "http://127.0.0.1:3000")];
    let ok = request(&h, "POST", "/ui/keys/create", &own, &form(&[("csrf", &b.csrf), ("label", "x")]));
    assert_eq!(ok.status, 200, "{}", ok.text);
}

#[test]
fn a_created_key_is_shown_once_works_on_mcp_shows_its_last_use_and_stops_working_when_revoked() {
    let (h, alice, _) = pages_hub(json!({}));
    let b = sign_in(&h, &alice);
    let connect = b.get(&h, "/ui/connect");
    assert!(connect.text.contains("mcphub_…") && connect.text.contains("create a key"), "{}", connect.text);
    for id in ["snippet-cursor", "snippet-claude", "snippet-claude-json", "snippet-vscode"] {
        assert!(connect.text.contains(&format!("<pre id=\"{id}\">")), "{id}");
        assert!(connect.text.contains(&format!("data-copy=\"{id}\"")), "{id}: copy button");
    }
    assert!(connect.text.contains("http://127.0.0.1:3000/mcp"), "the endpoint");
    let created = b.post(&h, "/ui/keys/create", &[("label", "laptop")]);
    assert_eq!(created.status, 200, "{}", created.text);
    assert_eq!(created.header("cache-control"), Some("no-store"));
    let key = new_key_of(&created.text);
    assert!(mcphub::users::looks_like_key(&key), "{key}");
    assert!(created.text.contains("shown only now"), "{}", created.text);
    assert!(created.text.contains(&format!("http://127.0.0.1:3000/mcp?key={key}")), "Cursor's url carries the key");
    assert!(created.text.contains(&format!("--header &quot;Authorization: Bearer {key}&quot;")), "Claude Code's command");
    assert!(!b.get(&h, "/ui/keys").text.contains(&key), "the key is never shown again");
    assert_eq!(tools_list_status(&h, &key), 200, "the new key works on /mcp");
    let id = &key_digest(&key)[..8];
    let keys = b.get(&h, "/ui/keys");
    assert!(keys.text.contains("<table id=\"keys\">"), "{}", keys.text);
    let row = keys.text.split("<tr>").find(|r| r.contains(id)).unwrap_or_else(|| panic!("no row for {id}: {}", keys.text));
    assert!(row.contains("laptop") && row.contains("runtime") && row.contains(" UTC"), "{row}");
    assert!(!row.contains("never"), "the key was used on /mcp: {row}");
    let revoked = b.post(&h, &format!("/ui/keys/{id}/revoke"), &[]);
    assert_eq!((revoked.status, revoked.header("location")), (303, Some("/ui/keys?done=revoked")));
    assert_eq!(tools_list_status(&h, &key), 401, "a revoked key is refused");
    let after = b.get(&h, "/ui/keys?done=revoked");
    assert!(!after.text.contains(id) && after.text.contains("was revoked"), "{}", after.text);
    // A config key can be revoked too; the session goes on.
    let config_id = &key_digest(&alice)[..8];
    assert_eq!(b.post(&h, &format!("/ui/keys/{config_id}/revoke"), &[]).status, 303);
    assert_eq!(tools_list_status(&h, &alice), 401);
}

#[test]
fn a_label_too_long_is_refused_on_the_page() {
    let (h, alice, _) = pages_hub(json!({}));
    let b = sign_in(&h, &alice);
    let r = b.post(&h, "/ui/keys/create", &[("label", &"x".repeat(65))]);
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("at most 64 characters") && r.text.contains("id=\"create-key\""), "{}", r.text);
    assert_eq!(h.users().view("alice").unwrap().keys.len(), 1, "no key was created");
}

#[test]
fn another_users_key_id_is_not_found_and_that_key_still_works() {
    let (h, alice, bob) = pages_hub(json!({}));
    let b = sign_in(&h, &alice);
    let bobs = &key_digest(&bob)[..8];
    let r = b.post(&h, &format!("/ui/keys/{bobs}/revoke"), &[]);
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(tools_list_status(&h, &bob), 200, "bob's key still works");
    assert_eq!(h.users().view("bob").unwrap().keys.len(), 1);
    assert_eq!(b.post(&h, "/ui/keys/not-an-id/revoke", &[]).status, 404);
}

#[test]
fn html_in_a_key_label_or_a_token_name_renders_escaped() {
    let (h, alice, _) = pages_hub(json!({}));
    let b = sign_in(&h, &alice);
    let label = "<script>alert(1)</script>";
    assert_eq!(b.post(&h, "/ui/keys/create", &[("label", label)]).status, 200);
    let keys = b.get(&h, "/ui/keys");
    assert!(keys.text.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{}", keys.text);
    assert!(!keys.text.contains(label));
    let notice = b.get(&h, "/ui/tokens?done=set-%3Cimg%20src%3Dx%3E");
    assert!(notice.text.contains("&lt;img src=x&gt;") && !notice.text.contains("<img"), "{}", notice.text);
    let bad = b.post(&h, "/ui/tokens/%3Cb%3Ebold%3C%2Fb%3E", &[("value", "v")]);
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert!(bad.text.contains("&lt;b&gt;bold&lt;/b&gt;") && !bad.text.contains("<b>bold"), "{}", bad.text);
}

#[test]
fn service_tokens_are_set_and_deleted_write_only() {
    let (h, alice, _) = pages_hub(json!({}));
    h.users().set_secret_key(Some(SecretKey::from_bytes([7; 32])));
    let b = sign_in(&h, &alice);
    let tokens = b.get(&h, "/ui/tokens");
    assert!(tokens.text.contains("GITHUB_TOKEN") && tokens.text.contains("not set"), "{}", tokens.text);
    assert!(tokens.text.contains("class=\"set-token row\"") && tokens.text.contains("type=\"password\""), "{}", tokens.text);
    assert!(tokens.text.contains("autocomplete=\"off\""));
    let connect = b.get(&h, "/ui/connect");
    assert!(connect.text.contains("GITHUB_TOKEN not set") && connect.text.contains("href=\"/ui/tokens\""), "{}", connect.text);

    let secret = "ghp_page_secret_value_42";
    let set = b.post(&h, "/ui/tokens/GITHUB_TOKEN", &[("name", "GITHUB_TOKEN"), ("value", secret)]);
    assert_eq!((set.status, set.header("location")), (303, Some("/ui/tokens?done=set-GITHUB_TOKEN")), "{}", set.text);
    assert_eq!(h.users().get("alice").unwrap().token("GITHUB_TOKEN").map(|s| s.expose().to_string()).as_deref(), Some(secret));
    let after = b.get(&h, "/ui/tokens?done=set-GITHUB_TOKEN");
    assert!(after.text.contains("was saved") && after.text.contains("Replace") && after.text.contains("/ui/tokens/GITHUB_TOKEN/delete"), "{}", after.text);
    // A value that cannot be a header: the rule, never the value.
    let bad = b.post(&h, "/ui/tokens/GITHUB_TOKEN", &[("value", "ghp_other_secretÉ")]);
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert!(bad.text.contains("RFC 9110") && !bad.text.contains("ghp_other_secret"), "{}", bad.text);
    // A token no server needs is listed and can be deleted.
    assert_eq!(b.post(&h, "/ui/tokens/SPARE_TOKEN", &[("value", "spare_secret_1")]).status, 303);
    let listed = b.get(&h, "/ui/tokens");
    assert!(listed.text.contains("SPARE_TOKEN") && listed.text.contains("no server you may use"), "{}", listed.text);
    for path in ["/ui/tokens", "/ui/connect", "/ui/keys", "/ui/tokens?done=set-GITHUB_TOKEN"] {
        let page = b.get(&h, path);
        assert!(!page.text.contains(secret) && !page.text.contains("spare_secret_1"), "{path} shows a token value");
    }
    let deleted = b.post(&h, "/ui/tokens/SPARE_TOKEN/delete", &[]);
    assert_eq!((deleted.status, deleted.header("location")), (303, Some("/ui/tokens?done=deleted-SPARE_TOKEN")));
    assert_eq!(b.post(&h, "/ui/tokens/GITHUB_TOKEN/delete", &[]).status, 303);
    assert!(h.users().get("alice").unwrap().tokens.is_empty());
    let gone = b.post(&h, "/ui/tokens/GITHUB_TOKEN/delete", &[]);
    assert_eq!(gone.status, 404, "{}", gone.text);
}

#[test]
fn without_a_secret_key_setting_a_token_explains_what_the_admin_must_do() {
    let (h, alice, _) = pages_hub(json!({}));
    h.users().set_secret_key(None);
    let b = sign_in(&h, &alice);
    let r = b.post(&h, "/ui/tokens/GITHUB_TOKEN", &[("value", "ghp_unstorable_1")]);
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(r.text.contains("MCPHUB_SECRET_KEY_FILE") && !r.text.contains("ghp_unstorable_1"), "{}", r.text);
}

#[test]
fn logout_ends_the_session() {
    let (h, alice, _) = pages_hub(json!({}));
    let b = sign_in(&h, &alice);
    let out = b.post(&h, "/ui/logout", &[]);
    assert_eq!((out.status, out.header("location")), (303, Some("/ui/login")));
    assert!(set_cookie(&out, "__Host-mcphub_session").contains("Max-Age=0"), "{:?}", out.headers);
    for path in ["/ui/connect", "/ui/keys", "/ui/tokens"] {
        let r = b.get(&h, path);
        assert_eq!((r.status, r.header("location")), (303, Some("/ui/login")), "{path} after logout");
    }
    let late = b.post(&h, "/ui/keys/create", &[("label", "late")]);
    assert_eq!((late.status, late.header("location")), (303, Some("/ui/login")));
    assert_eq!(h.users().view("alice").unwrap().keys.len(), 1);
}

#[test]
fn with_redis_a_keys_last_use_is_written_to_the_lastused_hash() {
    let redis = redis_util::RedisServer::start();
    let (h, alice, _) = pages_hub(json!({"redis": {"url": redis.url()}}));
    assert_eq!(tools_list_status(&h, &alice), 200);
    let digest = key_digest(&alice);
    let ms: u64 = wait_until("the poll thread to write the key's last use", PATIENCE, || {
        redis.cli(&["HGET", "mcp:users:lastused", &digest]).trim().parse().ok()
    });
    assert!(ms > 1_700_000_000_000, "{ms} is ms since the epoch");
    assert_eq!(h.users().view("alice").unwrap().keys[0].last_used_ms, Some(ms));
}
