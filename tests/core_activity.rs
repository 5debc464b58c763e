//! Users' activity recorded on the request path (issue 17), Request →
//! Response without a socket: every answered `/mcp` request with a user is
//! an entry of that user (method, name, server, status, JSON-RPC code,
//! error message masked), anonymous requests none; an SSE answer when its
//! stream ends; an admin deleting a user forgets theirs.

mod core_util;

use core_util::*;
use mcphub::users::new_key;
use serde_json::{json, Value};
use std::sync::Arc;

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// `srv`, a 2026-07-28 server: `echo` answers, `fail` answers -32603 with a
/// message naming `leak` (a hub key).
fn script(leak: String) -> Script {
    let base = modern_server("srv", json!([tool("echo"), tool("fail")]));
    Arc::new(move |body: &Value, headers: &[(String, String)]| {
        if body["method"] == "tools/call" && body["params"]["name"] == "fail" {
            return Reply::error(body, -32603, &format!("<b>broke</b> with {leak}"));
        }
        base(body, headers)
    })
}

#[test]
fn a_users_requests_are_recorded_as_their_activity_and_forgotten_with_them() {
    let (alice, bob, root, leak) = (new_key(), new_key(), new_key(), new_key());
    let mut admin = user_with_key(&root);
    admin["admin"] = json!(true);
    let (h, _traffic) = hub_with_servers(
        json!({"users": {"alice": user_with_key(&alice), "bob": user_with_key(&bob), "root": admin}}),
        vec![("srv", json!({}), script(leak.clone()))],
    );
    let (a, b) = (bearer(&alice), bearer(&bob));
    let ok = modern_with(&h, "tools/call", json!({"name": "echo", "arguments": {"text": "hi"}}), &[("Authorization", &a)]);
    assert_eq!(ok.status, 200, "{}", ok.text);
    let failed = modern_with(&h, "tools/call", json!({"name": "fail", "arguments": {}}), &[("Authorization", &a)]);
    assert_eq!(failed.code(), Some(-32603), "{}", failed.text);
    let listed = modern_with(&h, "tools/list", json!({}), &[("Authorization", &b)]);
    assert_eq!(listed.status, 200, "{}", listed.text);

    let recent = h.activity().recent("alice").unwrap();
    assert_eq!(recent.len(), 2, "{recent:?}");
    let (last, first) = (&recent[0], &recent[1]);
    assert_eq!(first.method, "tools/call");
    assert_eq!(first.name.as_deref(), Some("echo"));
    assert_eq!(first.server.as_deref(), Some("srv"));
    assert_eq!((first.status, first.rpc_code, first.error.as_deref()), (200, None, None));
    assert_eq!(last.name.as_deref(), Some("fail"), "newest first");
    assert_eq!(last.rpc_code, Some(-32603));
    let error = last.error.as_deref().expect("the error message is kept");
    assert!(error.starts_with("<b>broke</b> with mcphub_***"), "kept as text, the key masked: {error}");
    assert!(!error.contains(&leak[7..20]), "no part of the key: {error}");
    let bobs = h.activity().recent("bob").unwrap();
    assert_eq!(bobs.len(), 1, "bob's own: {bobs:?}");
    assert_eq!(bobs[0].method, "tools/list");
    let now = mcphub::store::now_ms();
    assert_eq!(h.activity().per_day("alice", 14, now).unwrap()[13].1, 2);
    assert!(get(&h, "/metrics", &[]).text.contains("mcphub_activity_dropped_total 0"));

    // Deleting a run-time user through the admin API forgets their activity.
    let r = request(&h, "POST", "/api/admin/users", &[JSON, ("Authorization", &bearer(&root))], r#"{"name": "carol"}"#);
    assert_eq!(r.status, 201, "{}", r.text);
    let r = request(&h, "POST", "/api/admin/users/carol/keys", &[JSON, ("Authorization", &bearer(&root))], "{}");
    let carol = r.json()["data"]["key"].as_str().expect("a key").to_string();
    let call = modern_with(&h, "tools/list", json!({}), &[("Authorization", &bearer(&carol))]);
    assert_eq!(call.status, 200, "{}", call.text);
    assert_eq!(h.activity().recent("carol").unwrap().len(), 1);
    let r = request(&h, "DELETE", "/api/admin/users/carol", &[("Authorization", &bearer(&root))], "");
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(h.activity().recent("carol").unwrap().is_empty(), "a deleted user's activity is forgotten");
}

#[test]
fn anonymous_requests_are_not_recorded_and_a_stream_is_recorded_when_it_ends() {
    let alice = new_key();
    let base = legacy_server("leg", json!([tool("slow")]));
    let leg: Script = Arc::new(move |body: &Value, headers: &[(String, String)]| {
        if body["method"] == "tools/call" {
            let note = json!({"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "working"}});
            let done = json!({"jsonrpc": "2.0", "id": body["id"], "result": {"content": [], "isError": false}});
            return Reply::events(vec![note, done]);
        }
        base(body, headers)
    });
    let (h, _traffic) = hub_with_servers(
        json!({"allowAnonymous": true, "users": {"alice": user_with_key(&alice)}}),
        vec![("srv", json!({}), script(String::new())), ("leg", json!({"protocol": "legacy"}), leg)],
    );
    let ok = modern(&h, "tools/call", json!({"name": "echo", "arguments": {"text": "hi"}}));
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert!(h.activity().recent("anonymous").unwrap().is_empty());
    assert!(h.activity().recent("").unwrap().is_empty());
    assert!(h.activity().recent("alice").unwrap().is_empty(), "an anonymous request is nobody's");
    assert_eq!(h.activity().kind(), "memory");

    let a = bearer(&alice);
    let sid = legacy_session_with(&h, &[("Authorization", &a)]);
    let mut headers = legacy_headers(&sid);
    headers.push(("Authorization", &a));
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "slow", "arguments": {}}}).to_string();
    let r = post(&h, &body, &headers);
    assert!(r.sse, "a streamed answer: {}", r.text);
    let recent = h.activity().recent("alice").unwrap();
    let call = recent.iter().find(|e| e.method == "tools/call").unwrap_or_else(|| panic!("the streamed call is recorded: {recent:?}"));
    assert_eq!((call.name.as_deref(), call.server.as_deref(), call.status), (Some("slow"), Some("leg"), 200));
    assert_eq!(recent[0].method, "tools/call", "newest first, after initialize: {recent:?}");
}
