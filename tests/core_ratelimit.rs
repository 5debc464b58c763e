//! Rate limits of the edge, global and per user (issue 6, docs/decisions.md
//! D7), with the in-memory GCRA: 429 + `Retry-After` + the note's JSON-RPC
//! error, Request → Response without a socket (issue 15 item 7). Limits per
//! minute (so no token refills while a test runs: the counts are exact).
//! Per-server limits, and limits shared through Redis, are in
//! tests/hub_ratelimit.rs.

mod core_util;

use core_util::*;
use mcphub::users::new_key;
use serde_json::{json, Value};

/// Asserts `r` is the documented 429 of `scope` for the request id `id`;
/// returns `retry_after_seconds`, which equals the `Retry-After` header.
fn assert_limited(r: &Answer, scope: &str, id: Value) -> u64 {
    assert_eq!(r.status, 429, "{}", r.text);
    let header: u64 = r.header("retry-after").expect("Retry-After").parse().expect("whole seconds");
    assert_eq!(
        r.json(),
        json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32000, "message": "Rate limit exceeded",
            "data": {"retry_after_seconds": header, "scope": scope}}})
    );
    header
}

fn assert_ok(r: &Answer, what: &str) {
    assert_eq!(r.status, 200, "{what}: {}", r.text);
    assert!(r.json().get("result").is_some(), "{what}: {}", r.text);
}

#[test]
fn global_limit_refuses_the_request_after_the_burst() {
    let h = hub(json!({"rateLimits": {"global": {"perMinute": 1, "burst": 3}}}));
    for n in 1..=3 {
        assert_ok(&modern(&h, "server/discover", json!({})), &format!("request {n} of a burst of 3"));
    }
    let secs = assert_limited(&modern(&h, "server/discover", json!({})), "global", json!("m1"));
    assert!((1..=60).contains(&secs), "one per minute: {secs} s");
    // Every request and notification counts, of either era, and initialize too.
    let init = post(&h, &initialize_body("2025-06-18"), &[ACCEPT, JSON]);
    assert_limited(&init, "global", json!(0));
    assert!(init.header("mcp-session-id").is_none());
    let note = post(&h, r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#, &[ACCEPT, JSON]);
    assert_limited(&note, "global", Value::Null);
    // Ids are echoed as sent on the refusal too.
    let r = post(&h, r#"{"jsonrpc":"2.0","id":1E3,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}"#, &[ACCEPT, JSON]);
    assert_eq!(r.status, 429);
    assert!(r.text.contains(r#""id":1E3,"#), "{}", r.text);
    // What was refused is not counted as done, and the refusals are in /metrics.
    assert_eq!(h.sessions().len(), 0);
    assert_eq!(metric(&h, "mcphub_rate_limited_total{scope=\"global\"}"), "mcphub_rate_limited_total{scope=\"global\"} 4");
    // Operational endpoints are not limited.
    assert_eq!(get(&h, "/healthz", &[]).status, 200);
    assert_eq!(get(&h, "/readyz", &[]).status, 200);
}

#[test]
fn a_per_second_limit_says_to_retry_within_a_second() {
    let h = hub(json!({"rateLimits": {"global": {"perSecond": 1, "burst": 2}}}));
    assert_ok(&modern(&h, "server/discover", json!({})), "1 of 2");
    assert_ok(&modern(&h, "server/discover", json!({})), "2 of 2");
    assert_eq!(assert_limited(&modern(&h, "server/discover", json!({})), "global", json!("m1")), 1);
}

#[test]
fn user_limit_applies_to_that_user_only() {
    let (alice, bob) = (new_key(), new_key());
    let h = hub(json!({
        "users": {"alice": user_with_key(&alice), "bob": user_with_key(&bob)},
        "rateLimits": {"perUser": {"perMinute": 2, "burst": 2}},
    }));
    let (a, b) = (format!("Bearer {alice}"), format!("Bearer {bob}"));
    let (as_alice, as_bob) = ([("Authorization", a.as_str())], [("Authorization", b.as_str())]);
    assert_ok(&modern_with(&h, "tools/list", json!({}), &as_alice), "alice 1");
    assert_ok(&modern_with(&h, "server/discover", json!({}), &as_alice), "alice 2");
    let secs = assert_limited(&modern_with(&h, "tools/list", json!({}), &as_alice), "user", json!("m1"));
    assert!((1..=60).contains(&secs), "two per minute: {secs} s");
    assert_ok(&modern_with(&h, "tools/list", json!({}), &as_bob), "bob 1");
    assert_ok(&modern_with(&h, "tools/list", json!({}), &as_bob), "bob 2 (alice's limit is hers)");
    assert_limited(&modern_with(&h, "prompts/list", json!({}), &as_bob), "user", json!("m1"));
    assert_limited(&modern_with(&h, "server/discover", json!({}), &as_alice), "user", json!("m1"));
    // A refused key is refused before any limit is spent (401, not 429).
    let unknown = format!("Bearer {}", new_key());
    assert_eq!(modern_with(&h, "tools/list", json!({}), &[("Authorization", unknown.as_str())]).status, 401);
    assert_eq!(metric(&h, "mcphub_rate_limited_total{scope=\"user\"}"), "mcphub_rate_limited_total{scope=\"user\"} 3");
}
