//! Hub keys on `/mcp`, the `/api/me` and `/api/admin` refusals, and the
//! throttling of a guessing source (issue 5, issue 14 hole 10), Request →
//! Response without a socket (issue 15 item 7): the source address is the
//! request's peer value, so two sources need no second loopback address.
//! Keys against real upstreams (service tokens, isolation) are in
//! tests/hub_users.rs; the log lines in tests/hub_auth_audit.rs.

mod core_util;

use core_util::*;
use mcphub::users::new_key;
use serde_json::json;

const ADMIN: &str = "admin-token-for-tests-0123456789";

struct Keys {
    alice: String,
    bob: String,
    root: String,
}

/// A hub with users alice and bob (plain) and root (admin), and an `adminToken`.
fn users_hub() -> (mcphub::hub::Hub, Keys) {
    let keys = Keys { alice: new_key(), bob: new_key(), root: new_key() };
    let mut root = user_with_key(&keys.root);
    root["admin"] = json!(true);
    let h = hub(json!({
        "adminToken": ADMIN,
        "users": {"alice": user_with_key(&keys.alice), "bob": user_with_key(&keys.bob), "root": root},
    }));
    (h, keys)
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

#[test]
fn keys_are_required_and_checked_on_mcp() {
    let (h, keys) = users_hub();
    let init = initialize_body("2025-11-25");
    let unknown = bearer(&new_key());
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: [Case; 5] = [
        ("no key", vec![], "Unauthorized: an MCPHub key is required."),
        ("unknown key", vec![("Authorization", &unknown)], "Unauthorized: this MCPHub key is unknown or revoked."),
        ("wrong scheme", vec![("Authorization", "Basic YWxpY2U6eA==")], "Unauthorized: send the MCPHub key as 'Authorization: Bearer mcphub_…'"),
        ("empty bearer", vec![("Authorization", "Bearer ")], "Unauthorized: an MCPHub key is required."),
        ("key in x-auth-token (not read on /mcp)", vec![("x-auth-token", &keys.alice)], "Unauthorized: an MCPHub key is required."),
    ];
    for (what, extra, says) in cases {
        let mut hdrs = vec![ACCEPT, JSON];
        hdrs.extend(extra);
        let r = post(&h, &init, &hdrs);
        assert_eq!(r.status, 401, "{what}: {}", r.text);
        // The OAuth challenge (issue 18, on by default) names the resource metadata.
        let challenge = r.header("www-authenticate").unwrap_or_default();
        assert!(
            challenge.starts_with("Bearer realm=\"mcphub\", scope=\"mcp\", resource_metadata=\"http://")
                && challenge.ends_with("/.well-known/oauth-protected-resource/mcp\""),
            "{what}: {challenge}"
        );
        let msg = r.json();
        assert_eq!((msg["jsonrpc"].as_str(), msg["id"].is_null()), (Some("2.0"), true), "{what}");
        assert_eq!(msg["error"]["code"], -32000, "{what}");
        assert_eq!(msg["error"]["data"], json!({"httpStatus": 401}), "{what}");
        assert!(msg["error"]["message"].as_str().unwrap().starts_with(says), "{what}: {msg}");
        assert!(!r.text.contains(&keys.alice[7..]), "a presented key is never echoed");
    }
    assert_eq!(h.sessions().len(), 0);
    // GET and DELETE, and a modern request, are refused the same way.
    assert_eq!(get(&h, "/mcp", &[ACCEPT]).status, 401);
    assert_eq!(delete(&h, &[("Mcp-Session-Id", "x")]).status, 401);
    assert_eq!(modern(&h, "server/discover", json!({})).status, 401);
    // The key as Bearer (any case of the scheme) or as ?key= (Cursor's form).
    let alice = bearer(&keys.alice);
    assert_eq!(post(&h, &init, &[ACCEPT, JSON, ("Authorization", &alice)]).status, 200);
    let lower = format!("bearer {}", keys.alice);
    assert_eq!(post(&h, &init, &[ACCEPT, JSON, ("Authorization", &lower)]).status, 200);
    let r = request(&h, "POST", &format!("/mcp?key={}", keys.alice), &[ACCEPT, JSON], &init);
    assert_eq!(r.status, 200, "{}", r.text);
    let r = request(&h, "POST", &format!("/mcp?key={}", new_key()), &[ACCEPT, JSON], &init);
    assert_eq!(r.status, 401);
    // Only unknown keys and wrong schemes count as failures (2 above, 1 in the URL).
    assert_eq!(metric(&h, "mcphub_auth_failures_total{kind=\"hub_key\"}"), "mcphub_auth_failures_total{kind=\"hub_key\"} 3");
}

#[test]
fn a_key_revoked_at_run_time_is_refused_and_sessions_belong_to_their_user() {
    let (h, keys) = users_hub();
    let users = h.users();
    let (late, view) = users.issue_key("bob", Some("laptop".into())).unwrap();
    let late_auth = bearer(&late);
    let sid = legacy_session_with(&h, &[("Authorization", &late_auth)]);
    let mut hdrs = legacy_headers(&sid);
    hdrs.push(("Authorization", &late_auth));
    assert_eq!(post(&h, r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#, &hdrs).status, 200);
    users.revoke_key("bob", &view.id).unwrap();
    let r = post(&h, r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#, &hdrs);
    assert_eq!(r.status, 401, "a revoked key: {}", r.text);
    assert!(r.message().contains("unknown or revoked"), "{}", r.message());

    // A session id used with another user's key is not found; nor can that user end it.
    let (alice, bob) = (bearer(&keys.alice), bearer(&keys.bob));
    let sid = legacy_session_with(&h, &[("Authorization", &alice)]);
    let mut as_bob = legacy_headers(&sid);
    as_bob.push(("Authorization", &bob));
    let stolen = post(&h, r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#, &as_bob);
    assert_eq!((stolen.status, stolen.code()), (404, Some(-32600)));
    assert_eq!(stolen.message(), "Session not found or expired; initialize again");
    let d = delete(&h, &[("Authorization", &bob), ("Mcp-Session-Id", &sid)]);
    assert_eq!(d.status, 404, "bob cannot end alice's session");
    let mut as_alice = legacy_headers(&sid);
    as_alice.push(("Authorization", &alice));
    let ok = post(&h, r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#, &as_alice);
    assert_eq!(ok.status, 200, "alice's session lives on: {}", ok.text);
    assert_eq!(delete(&h, &[("Authorization", &alice), ("Mcp-Session-Id", &sid)]).status, 200);
}

#[test]
fn api_me_and_api_admin_refuse_missing_wrong_and_unprivileged_credentials() {
    let (h, keys) = users_hub();
    let refusals = [
        ("/api/me", vec![], 401, "a hub key is required: send Authorization: Bearer mcphub_… (your key)"),
        ("/api/me", vec![("Authorization", bearer(&new_key()))], 401, "unknown or revoked hub key: ask your admin for a new one"),
        ("/api/me", vec![("x-auth-token", ADMIN.to_string())], 401, "unknown or revoked hub key: ask your admin for a new one"),
        ("/api/admin/users", vec![], 401, "admin credential required: send Authorization: Bearer <an admin's hub key> (or x-auth-token)"),
        ("/api/admin/users", vec![("x-auth-token", "not-the-admin-token".to_string())], 401, "invalid admin credential (unknown or revoked key, or wrong adminToken)"),
        ("/api/admin/users", vec![("Authorization", bearer(&new_key()))], 401, "invalid admin credential (unknown or revoked key, or wrong adminToken)"),
        ("/api/admin/users", vec![("Authorization", bearer(&keys.alice))], 403, "user 'alice' is not an admin"),
    ];
    for (path, hdrs, status, says) in &refusals {
        let hdrs: Vec<(&str, &str)> = hdrs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = get(&h, path, &hdrs);
        assert_eq!(r.status, *status, "{path} {hdrs:?}: {}", r.text);
        assert_eq!(r.json(), json!({"success": false, "error": says}), "{path} {hdrs:?}");
        if *status == 401 {
            let realm = if path.starts_with("/api/admin") { "Bearer realm=\"mcphub-admin\"" } else { "Bearer realm=\"mcphub\"" };
            assert_eq!(r.header("www-authenticate"), Some(realm), "{path} {hdrs:?}");
        }
    }
    // Accepted: the user's own view, the admin user's key, the adminToken.
    let me = get(&h, "/api/me", &[("Authorization", &bearer(&keys.alice))]);
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!((me.json()["success"].as_bool(), me.json()["data"]["name"].as_str()), (Some(true), Some("alice")));
    assert_eq!(me.header("cache-control"), Some("no-store"));
    assert!(!me.text.contains(&keys.alice[7..]), "a key is never answered");
    for auth in [("Authorization", bearer(&keys.root)), ("x-auth-token", ADMIN.to_string())] {
        let r = get(&h, "/api/admin/users", &[(auth.0, &auth.1)]);
        assert_eq!(r.status, 200, "{}", r.text);
        let users = r.json()["data"].clone();
        let names: Vec<&str> = users.as_array().unwrap().iter().filter_map(|u| u["name"].as_str()).collect();
        assert_eq!(names, ["alice", "bob", "root"], "{users}");
    }
    // Unknown keys and wrong admin credentials are counted by kind.
    assert_eq!(metric(&h, "mcphub_auth_failures_total{kind=\"hub_key\"}"), "mcphub_auth_failures_total{kind=\"hub_key\"} 2");
    assert_eq!(metric(&h, "mcphub_auth_failures_total{kind=\"admin\"}"), "mcphub_auth_failures_total{kind=\"admin\"} 2");
}

#[test]
fn without_users_or_admin_token_the_admin_api_is_off_and_mcp_is_keyless() {
    let h = hub(json!({}));
    assert_eq!(post(&h, &initialize_body("2025-11-25"), &[ACCEPT, JSON]).status, 200, "no user: key-less access");
    let r = get(&h, "/api/admin/users", &[]);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json()["error"],
        "the admin API is off: give a user \"admin\": true (mcphub keygen --admin) or set adminToken in the config"
    );
    // allowAnonymous keeps key-less access with users configured.
    let key = new_key();
    let h = hub(json!({"allowAnonymous": true, "users": {"u": user_with_key(&key)}}));
    assert_eq!(post(&h, &initialize_body("2025-11-25"), &[ACCEPT, JSON]).status, 200);
    let unknown = bearer(&new_key());
    assert_eq!(post(&h, &initialize_body("2025-11-25"), &[ACCEPT, JSON, ("Authorization", &unknown)]).status, 401, "a wrong key is still wrong");
}

#[test]
fn a_guessing_source_is_throttled_while_other_sources_keep_working() {
    let (h, keys) = users_hub();
    let init = initialize_body("2025-11-25");
    let guesser = "10.1.1.1:5000";
    for i in 0..20 {
        let guess = bearer(&new_key());
        let r = request_from(&h, guesser, "POST", "/mcp", &[ACCEPT, JSON, ("Authorization", &guess)], &init);
        assert_eq!(r.status, 401, "guess {i}: {}", r.text);
    }
    // The 21st attempt from this address is refused before its key is looked at, a valid one too.
    for key in [new_key(), keys.root.clone()] {
        let auth = bearer(&key);
        let r = request_from(&h, guesser, "POST", "/mcp", &[ACCEPT, JSON, ("Authorization", &auth)], &init);
        assert_eq!(r.status, 429, "{}", r.text);
        let wait: u64 = r.header("retry-after").expect("Retry-After").parse().unwrap();
        assert!((59..=60).contains(&wait), "a minute: {wait}");
        assert_eq!(r.code(), Some(-32000));
        assert_eq!(r.json()["error"]["data"], json!({"httpStatus": 429, "retry_after_seconds": wait, "reason": "auth_failures"}));
        assert!(r.message().starts_with("Too many failed authentications from this address"), "{}", r.message());
    }
    // Another port of the same address is the same source; /api/* are throttled too.
    let root = bearer(&keys.root);
    let r = request_from(&h, "10.1.1.1:5001", "GET", "/api/me", &[("Authorization", &root)], "");
    assert_eq!(r.status, 429, "{}", r.text);
    assert!(r.header("retry-after").is_some());
    assert!(r.json()["error"].as_str().unwrap().starts_with("too many failed authentications from this address: retry after"));
    assert_eq!(request_from(&h, guesser, "GET", "/api/admin/users", &[("x-auth-token", ADMIN)], "").status, 429);
    // Another address: the valid key works; wrong admin credentials are 401s, counted apart.
    let other = "10.2.2.2:5000";
    assert_eq!(request_from(&h, other, "POST", "/mcp", &[ACCEPT, JSON, ("Authorization", &root)], &init).status, 200);
    assert_eq!(request_from(&h, other, "GET", "/api/me", &[("Authorization", &root)], "").status, 200);
    assert_eq!(request_from(&h, other, "GET", "/api/admin/users", &[("Authorization", &root)], "").status, 200);
    for _ in 0..3 {
        assert_eq!(request_from(&h, other, "GET", "/api/admin/users", &[("x-auth-token", "not-the-admin-token")], "").status, 401);
    }
    assert_eq!(metric(&h, "mcphub_auth_failures_total{kind=\"hub_key\"}"), "mcphub_auth_failures_total{kind=\"hub_key\"} 20");
    assert_eq!(metric(&h, "mcphub_auth_failures_total{kind=\"admin\"}"), "mcphub_auth_failures_total{kind=\"admin\"} 3");
    // Health and metrics need no credential and are never throttled.
    assert_eq!(request_from(&h, guesser, "GET", "/healthz", &[], "").status, 200);
}
