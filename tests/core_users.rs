//! Users on the request path (issue 5, docs/decisions.md D6) in front of
//! scripted upstreams, Request → Response without a socket (issue 15 item
//! 7): service tokens injected into the upstream's headers (never the hub
//! key), one upstream session per credential, servers a user may not use or
//! lacks a token for hidden and refused, per-server rate limits. Load and
//! concurrency across users are in tests/hub_users.rs.

mod core_util;

use core_util::*;
use mcphub::users::new_key;
use serde_json::{json, Value};
use std::collections::BTreeSet;

struct Keys {
    alice: String,
    bob: String,
    carol: String,
    dave: String,
    erin: String,
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// `gh` (Authorization from `${user.GITHUB_TOKEN}`) and `plain` (no user
/// credential), both legacy; alice and bob with their own tokens, carol
/// with alice's token value, dave with only `plain` allowed, erin allowed
/// everything but without a token.
fn users_hub() -> (mcphub::hub::Hub, Traffic, Keys) {
    let keys = Keys { alice: new_key(), bob: new_key(), carol: new_key(), dave: new_key(), erin: new_key() };
    let user = |key: &str, token: Option<&str>| {
        let mut u = user_with_key(key);
        if let Some(t) = token {
            u["tokens"] = json!({"GITHUB_TOKEN": t});
        }
        u
    };
    let mut dave = user(&keys.dave, None);
    dave["servers"] = json!(["@open"]);
    let (h, traffic) = hub_with_servers(
        json!({
            "groups": {"open": ["plain"]},
            "users": {
                "alice": user(&keys.alice, Some("ghp_alice_secret_1")),
                "bob": user(&keys.bob, Some("ghp_bob_secret_2")),
                "carol": user(&keys.carol, Some("ghp_alice_secret_1")),
                "dave": dave,
                "erin": user(&keys.erin, None),
            },
        }),
        vec![
            ("gh", json!({"protocol": "legacy", "headers": {"Authorization": "Bearer ${user.GITHUB_TOKEN}"}}), sessions_per_credential("gh")),
            ("plain", json!({"protocol": "legacy"}), sessions_per_credential("plain")),
        ],
    );
    (h, traffic, keys)
}

/// A legacy server minting one session per `initialize` (`{name}-s{n}`),
/// whose `whoami` answers the Authorization header it got and the session.
fn sessions_per_credential(name: &str) -> Script {
    let name = name.to_string();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    std::sync::Arc::new(move |body: &Value, h: &[(String, String)]| {
        let header = |n: &str| h.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).map(|(_, v)| v.clone()).unwrap_or_else(|| "-".into());
        match body["method"].as_str().unwrap_or("") {
            "initialize" => {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                Reply::result(body, json!({"protocolVersion": "2025-11-25", "capabilities": {"tools": {}}})).session(&format!("{name}-s{n}"))
            }
            m if m.starts_with("notifications/") => Reply::status(202),
            "tools/list" => Reply::result(body, json!({"tools": [tool("whoami")]})),
            "tools/call" => {
                let text = format!("{} on {}", header("Authorization"), header("Mcp-Session-Id"));
                Reply::result(body, json!({"content": [{"type": "text", "text": text}]}))
            }
            _ => Reply::error(body, -32601, "Method not found"),
        }
    })
}

/// A legacy client of the user with `key`: its session id.
fn client(h: &mcphub::hub::Hub, key: &str) -> String {
    legacy_session_with(h, &[("Authorization", &bearer(key))])
}

fn request(h: &mcphub::hub::Hub, key: &str, sid: &str, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let auth = bearer(key);
    let mut hdrs = legacy_headers(sid);
    hdrs.push(("Authorization", &auth));
    let r = post(h, &body, &hdrs);
    assert_eq!(r.status, 200, "{method}: {}", r.text);
    r.json()
}

fn whoami(h: &mcphub::hub::Hub, key: &str, sid: &str, tool: &str) -> String {
    let m = request(h, key, sid, "tools/call", json!({"name": tool, "arguments": {}}));
    m.pointer("/result/content/0/text").and_then(Value::as_str).unwrap_or_else(|| panic!("{m}")).to_string()
}

fn tool_names(h: &mcphub::hub::Hub, key: &str, sid: &str) -> BTreeSet<String> {
    names(&request(h, key, sid, "tools/list", json!({})), "tools").into_iter().collect()
}

#[test]
fn each_user_reaches_a_server_with_their_own_token_on_their_own_session() {
    let (h, traffic, keys) = users_hub();
    let (alice, bob, carol) = (client(&h, &keys.alice), client(&h, &keys.bob), client(&h, &keys.carol));
    let a = whoami(&h, &keys.alice, &alice, "gh__whoami");
    let b = whoami(&h, &keys.bob, &bob, "gh__whoami");
    let c = whoami(&h, &keys.carol, &carol, "gh__whoami");
    assert_eq!(a, format!("Bearer ghp_alice_secret_1 on {}", a.rsplit(' ').next().unwrap()));
    assert!(b.starts_with("Bearer ghp_bob_secret_2 on gh-s"), "{b}");
    assert_eq!(a, c, "carol holds alice's token value: the same credential, the same session");
    assert_ne!(a.rsplit(' ').next(), b.rsplit(' ').next(), "different credentials, never the same session");
    assert_eq!(traffic.calls("gh", "initialize").len(), 2, "one upstream session per credential");
    // A server without user credentials: one shared session, no Authorization at all.
    let p: BTreeSet<String> = [(&keys.alice, &alice), (&keys.bob, &bob), (&keys.carol, &carol)]
        .iter()
        .map(|(k, s)| whoami(&h, k, s, "plain__whoami"))
        .collect();
    assert_eq!(p, BTreeSet::from(["- on plain-s1".to_string()]));
    // The hub key never reaches an upstream.
    for seen in traffic.all() {
        let text = format!("{:?} {}", seen.headers, seen.body);
        for key in [&keys.alice, &keys.bob, &keys.carol] {
            assert!(!text.contains(&key[7..]), "a hub key reached '{}': {text}", seen.server);
        }
    }
}

#[test]
fn servers_a_user_may_not_use_or_lacks_a_token_for_are_hidden_and_refused() {
    let (h, traffic, keys) = users_hub();
    let alice = client(&h, &keys.alice);
    let dave = client(&h, &keys.dave);
    assert_eq!(tool_names(&h, &keys.alice, &alice), BTreeSet::from(["gh__whoami".into(), "plain__whoami".into()]));
    // Names collide per view: without gh, plain's tool keeps its name.
    assert_eq!(tool_names(&h, &keys.dave, &dave), BTreeSet::from(["whoami".into()]));
    let refused = request(&h, &keys.dave, &dave, "tools/call", json!({"name": "gh__whoami", "arguments": {}}));
    assert_eq!(refused["error"]["code"], -32602, "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("Unknown tool"), "{refused}");
    let gh_calls = traffic.calls("gh", "tools/call").len();
    assert_eq!(gh_calls, 0, "dave's call never reached gh");

    // erin may use everything but has no GITHUB_TOKEN: gh is hidden from
    // her list, and its tool's name tells her which token to set.
    let erin = client(&h, &keys.erin);
    assert_eq!(tool_names(&h, &keys.erin, &erin), BTreeSet::from(["whoami".into()]));
    let missing = request(&h, &keys.erin, &erin, "tools/call", json!({"name": "gh__whoami", "arguments": {}}));
    let text = missing["error"]["message"].as_str().unwrap_or_default();
    assert!(text.contains("GITHUB_TOKEN") && text.contains("/api/me/tokens/GITHUB_TOKEN"), "{missing}");
    assert_eq!(missing["error"]["data"]["missingTokens"], json!(["GITHUB_TOKEN"]));
    assert_eq!(traffic.calls("gh", "tools/call").len(), 0, "erin's call never reached gh");
    assert_eq!(whoami(&h, &keys.erin, &erin, "whoami"), "- on plain-s1");
}

#[test]
fn a_server_limit_refuses_calls_to_that_server_only() {
    let (h, traffic) = hub_with_servers(
        json!({"toolNaming": "prefix", "rateLimits": {"perServer": {"perMinute": 1, "burst": 2}}}),
        vec![
            ("a", json!({}), modern_server("a", json!([tool("echo")]))),
            ("b", json!({"rateLimit": {"perMinute": 100, "burst": 100}}), modern_server("b", json!([tool("echo")]))),
        ],
    );
    let call = |tool: &str| modern(&h, "tools/call", json!({"name": tool, "arguments": {"text": "hi"}}));
    for n in 1..=2 {
        let r = call("a__echo");
        assert_eq!(r.status, 200, "a {n}: {}", r.text);
    }
    let refused = call("a__echo");
    assert_eq!(refused.status, 429, "{}", refused.text);
    let secs: u64 = refused.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&secs), "one per minute: {secs} s");
    assert_eq!(
        refused.json(),
        json!({"jsonrpc": "2.0", "id": "m1", "error": {"code": -32000, "message": "Rate limit exceeded",
            "data": {"retry_after_seconds": secs, "scope": "server", "server": "a"}}})
    );
    assert_eq!(traffic.calls("a", "tools/call").len(), 2, "the refused call never reached a");
    for n in 1..=5 {
        assert_eq!(call("b__echo").status, 200, "b {n} (its own rateLimit)");
    }
    assert_eq!(modern(&h, "tools/list", json!({})).status, 200, "lists are not calls to one server");
    assert_eq!(call("a__echo").status, 429);
    assert_eq!(metric(&h, "mcphub_rate_limited_total{scope=\"server\"}"), "mcphub_rate_limited_total{scope=\"server\"} 2");
}
