//! Issue 14 hole 4, without a socket (issue 15 item 7): a value the hub
//! injected into an upstream request (a user's token, an `${env.*}` header
//! value) that a scripted upstream repeats in an error — an HTTP 401 body, a
//! JSON-RPC error, an SSE error event, a tool error — never reaches the
//! client's answer, `/readyz` or `/metrics`. The log lines are checked on
//! the real binary in tests/hub_scrub.rs.

mod core_util;
mod shared_data;

use core_util::*;
use shared_data::SCRUB_MASKS;
use mcphub::users::new_key;
use serde_json::{json, Value};
use std::sync::Arc;

const USER_TOKEN: &str = "ghp_aliceCoreScrubToken01";
const ENV_NAME: &str = "MCPHUB_CORE_SCRUB_TEST_KEY";
const ENV_VALUE: &str = "sk_static_core_scrub_value_7";

/// A modern server repeating the `Authorization` and `X-Api-Key` it
/// received in every kind of error: tools `echo401`, `echorpc`, `echosse`,
/// `echotool`.
fn echoing_server() -> Script {
    Arc::new(|body: &Value, h: &[(String, String)]| {
        let heard = h
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("authorization") || k.eq_ignore_ascii_case("x-api-key"))
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let id = body["id"].clone();
        match (body["method"].as_str().unwrap_or(""), body.pointer("/params/name").and_then(Value::as_str)) {
            ("tools/list", _) => {
                let tools: Vec<Value> = ["echo401", "echorpc", "echosse", "echotool"].into_iter().map(tool).collect();
                Reply::result(body, json!({"tools": tools}))
            }
            ("tools/call", Some("echo401")) => Reply::text(401, &format!("invalid credentials: {heard}")),
            ("tools/call", Some("echorpc")) => {
                Reply::json(json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32000, "message": format!("rejected {heard}"), "data": {"got": heard}}}))
            }
            ("tools/call", Some("echosse")) => {
                Reply::events(vec![json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32000, "message": format!("stream rejected {heard}")}})])
            }
            ("tools/call", Some("echotool")) => {
                Reply::result(body, json!({"isError": true, "content": [{"type": "text", "text": format!("the API refused {heard}")}]}))
            }
            ("subscriptions/listen", _) => Reply::status(405),
            _ => Reply::error(body, -32601, "Method not found"),
        }
    })
}

#[test]
fn values_the_upstream_repeats_in_errors_reach_no_client_readyz_or_metrics() {
    // Set once, before the hub reads its config; no other test reads it.
    std::env::set_var(ENV_NAME, ENV_VALUE);
    let key = new_key();
    let mut alice = user_with_key(&key);
    alice["tokens"] = json!({"GH_TOKEN": USER_TOKEN});
    let (h, traffic) = hub_with_servers(
        json!({"users": {"alice": alice}}),
        vec![
            ("gh", json!({"protocol": "modern", "headers": {"Authorization": "Bearer ${user.GH_TOKEN}"}}), echoing_server()),
            ("st", json!({"protocol": "modern", "headers": {"X-Api-Key": format!("${{env.{ENV_NAME}}}")}}), echoing_server()),
        ],
    );
    let leaks = |text: &str| text.contains(USER_TOKEN) || text.contains(ENV_VALUE);
    let auth = format!("Bearer {key}");
    for (tool, masked) in SCRUB_MASKS {
        let r = modern_with(&h, "tools/call", json!({"name": tool, "arguments": {}}), &[("Authorization", &auth)]);
        let answer = r.message_text();
        assert!(!leaks(&answer), "{tool}: the client's answer carries an injected value: {answer}");
        assert!(answer.to_ascii_lowercase().contains(masked), "{tool}: the upstream's echo arrives masked: {answer}");
        if tool.ends_with("echo401") {
            let ready = get(&h, "/readyz", &[]).json();
            let server = &tool[..2];
            let last = ready["servers"][server]["lastError"].as_str().map(str::to_string);
            if server == "gh" {
                // A rejected user credential is not the server's failure:
                // nothing recorded, or only an error class (no upstream text).
                assert!(last.as_deref().is_none_or(|l| !l.contains(':') && !leaks(l)), "{ready}");
            } else {
                let last = last.unwrap_or_else(|| panic!("{ready}"));
                assert!(!leaks(&last), "{last}");
                assert!(last.contains("HTTP 401") && last.to_ascii_lowercase().contains(masked), "{ready}");
            }
        }
    }
    // The values did reach the upstream (what the hub must scrub).
    let calls = traffic.calls("gh", "tools/call");
    assert_eq!(calls[0].header("Authorization"), Some(format!("Bearer {USER_TOKEN}").as_str()));
    assert_eq!(traffic.calls("st", "tools/call")[0].header("X-Api-Key"), Some(ENV_VALUE));
    let metrics = get(&h, "/metrics", &[]).text;
    assert!(metrics.contains("mcphub_requests_total"), "{metrics}");
    assert!(!leaks(&metrics), "{metrics}");
}
