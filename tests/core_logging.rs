//! Log messages (`notifications/message`) relayed per client while many
//! clients share one upstream session, Request → Response without a socket
//! (issue 15 item 7): each client sees only its own call's messages,
//! filtered by its own level (legacy: `logging/setLevel` on its session;
//! modern: `io.modelcontextprotocol/logLevel` in `_meta`), and the shared
//! upstream session's level is never changed (docs/decisions.md D5).

mod core_util;

use core_util::*;
use serde_json::{json, Value};


/// The `data` of every log message among `events`.
fn log_lines(events: &[Value]) -> Vec<String> {
    events.iter().filter(|e| e["method"] == "notifications/message").map(|e| e["params"]["data"].as_str().unwrap_or("").to_string()).collect()
}

/// What a client at `threshold` must see of the call marked `marker`.
fn expected(marker: &str, threshold: &str) -> Vec<String> {
    let from = LEVELS.iter().position(|l| *l == threshold).unwrap();
    LEVELS[from..].iter().map(|l| format!("{marker}:{l}")).collect()
}

fn text_of(msg: &Value) -> &str {
    msg.pointer("/result/content/0/text").and_then(Value::as_str).unwrap_or_else(|| panic!("no text content in {msg}"))
}

#[test]
fn twenty_clients_on_one_upstream_session_each_get_only_their_own_log_messages_at_their_own_level() {
    let (h, traffic) = hub_with_servers(json!({}), vec![("log", json!({"protocol": "legacy"}), logging_server())]);
    let results: Vec<(Vec<String>, Vec<String>)> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..20)
            .map(|i| {
                let h = &h;
                scope.spawn(move || {
                    let marker = format!("client-{i}");
                    let threshold = LEVELS[i % LEVELS.len()];
                    let events = if i % 2 == 0 {
                        // Legacy: the level is set once on the client's own session.
                        let sid = legacy_session(h);
                        let set = legacy(h, &sid, "logging/setLevel", json!({"level": threshold}));
                        assert_eq!(set.json()["result"], json!({}), "{}", set.text);
                        legacy(h, &sid, "tools/call", json!({"name": "say", "arguments": {"marker": marker}})).events()
                    } else {
                        // Modern: the level travels in each request's _meta.
                        modern(h, "tools/call", json!({"name": "say", "arguments": {"marker": marker}, "_meta": {"io.modelcontextprotocol/logLevel": threshold}})).events()
                    };
                    let last = events.last().cloned().unwrap_or(Value::Null);
                    assert_eq!(text_of(&last), marker, "the call's own result: {last}");
                    (log_lines(&events), expected(&marker, threshold))
                })
            })
            .collect();
        clients.into_iter().map(|c| c.join().expect("a client")).collect()
    });
    for (got, want) in results {
        assert_eq!(got, want, "only this call's messages, at or above this client's level");
    }
    assert_eq!(traffic.calls("log", "initialize").len(), 1, "one shared upstream session");
    assert!(traffic.calls("log", "logging/setLevel").is_empty(), "a client's level never changes the shared upstream session");
    assert_eq!(traffic.calls("log", "tools/call").len(), 20);
}

#[test]
fn a_modern_client_without_a_log_level_gets_no_log_messages_and_a_legacy_one_gets_all() {
    let (h, _) = hub_with_servers(json!({}), vec![("log", json!({"protocol": "legacy"}), logging_server())]);
    let events = modern(&h, "tools/call", json!({"name": "say", "arguments": {"marker": "m"}})).events();
    assert_eq!(log_lines(&events), Vec::<String>::new(), "2026-07-28: no logLevel in _meta, no messages");
    assert_eq!(text_of(events.last().unwrap()), "m");
    let sid = legacy_session(&h);
    let events = legacy(&h, &sid, "tools/call", json!({"name": "say", "arguments": {"marker": "l"}})).events();
    assert_eq!(log_lines(&events), expected("l", "debug"), "legacy: no level set, everything");
}
