//! Log messages (`notifications/message`) relayed per client while many
//! clients share one upstream session: each client sees only its own call's
//! messages, filtered by its own level (legacy: `logging/setLevel` on its
//! session; modern: `io.modelcontextprotocol/logLevel` in `_meta`), and the
//! shared upstream session's level is never changed (docs/decisions.md D5).

mod hub_util;

use hub_util::*;
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::io::Write;
use std::sync::Arc;

const LEVELS: [&str; 4] = ["debug", "info", "warning", "error"];

/// A legacy upstream (one session, `shared-log`) with one tool, `say`: each
/// call answers on an event stream with one `notifications/message` per level
/// in [`LEVELS`], each carrying `{marker}:{level}` (the marker is the call's
/// argument), then the result. Every method it is sent is recorded.
fn logging_upstream(methods: Arc<Mutex<Vec<String>>>) -> FakeUpstream {
    fake_upstream(move |body, out, _| {
        let msg: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let method = msg["method"].as_str().unwrap_or("").to_string();
        methods.lock().push(method.clone());
        if method == "initialize" {
            let result = json!({"jsonrpc": "2.0", "id": msg["id"], "result": {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}, "logging": {}}, "serverInfo": {"name": "log", "version": "1"}}}).to_string();
            let _ = write!(out, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nMcp-Session-Id: shared-log\r\nContent-Length: {}\r\n\r\n{result}", result.len());
        } else if method.starts_with("notifications/") || method == "logging/setLevel" {
            let _ = out.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
        } else if method == "tools/list" {
            write_json(out, &json!({"jsonrpc": "2.0", "id": msg["id"], "result": {"tools": [{"name": "say", "inputSchema": {"type": "object"}}]}}));
        } else if method == "tools/call" {
            let marker = msg["params"]["arguments"]["marker"].as_str().unwrap_or("?").to_string();
            let mut events = String::new();
            for level in LEVELS {
                let note = json!({"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": level, "logger": "say", "data": format!("{marker}:{level}")}});
                events.push_str(&format!("data: {note}\n\n"));
            }
            let done = json!({"jsonrpc": "2.0", "id": msg["id"], "result": {"content": [{"type": "text", "text": marker}]}});
            events.push_str(&format!("data: {done}\n\n"));
            let _ = write!(out, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n{events}");
            let _ = out.shutdown(std::net::Shutdown::Both);
        } else {
            let _ = out.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        }
    })
}

/// The `data` of every log message among `events`.
fn log_lines(events: &[Value]) -> Vec<String> {
    events.iter().filter(|e| e["method"] == "notifications/message").map(|e| e["params"]["data"].as_str().unwrap_or("").to_string()).collect()
}

/// What a client at `threshold` must see of the call marked `marker`.
fn expected(marker: &str, threshold: &str) -> Vec<String> {
    let from = LEVELS.iter().position(|l| *l == threshold).unwrap();
    LEVELS[from..].iter().map(|l| format!("{marker}:{l}")).collect()
}

#[test]
fn twenty_clients_on_one_upstream_session_each_get_only_their_own_log_messages_at_their_own_level() {
    let methods = Arc::new(Mutex::new(Vec::new()));
    let up = logging_upstream(methods.clone());
    let h = hub(&[], json!({"mcpServers": {"log": {"url": up.url, "protocol": "legacy"}}, "workers": 8}));
    let url = h.url.clone();
    let clients: Vec<_> = (0..20)
        .map(|i| {
            let url = url.clone();
            std::thread::spawn(move || {
                let marker = format!("client-{i}");
                let threshold = LEVELS[i % LEVELS.len()];
                let events = if i % 2 == 0 {
                    // Legacy: the level is set once on the client's own session.
                    let sid = legacy_session(&url);
                    let set = legacy(&url, &sid, "logging/setLevel", json!({"level": threshold}));
                    assert_eq!(set.json()["result"], json!({}), "{}", set.text);
                    legacy(&url, &sid, "tools/call", json!({"name": "say", "arguments": {"marker": marker}})).events()
                } else {
                    // Modern: the level travels in each request's _meta.
                    let params = json!({"name": "say", "arguments": {"marker": marker}, "_meta": {"io.modelcontextprotocol/logLevel": threshold}});
                    modern(&url, "tools/call", params).events()
                };
                let last = events.last().cloned().unwrap_or(Value::Null);
                assert_eq!(text_of(&last), marker, "the call's own result: {last}");
                (log_lines(&events), expected(&marker, threshold))
            })
        })
        .collect();
    for c in clients {
        let (got, want) = c.join().unwrap();
        assert_eq!(got, want, "only this call's messages, at or above this client's level");
    }
    let seen = methods.lock().clone();
    assert_eq!(seen.iter().filter(|m| *m == "initialize").count(), 1, "one shared upstream session: {seen:?}");
    assert!(!seen.iter().any(|m| m == "logging/setLevel"), "a client's level never changes the shared upstream session: {seen:?}");
    assert_eq!(seen.iter().filter(|m| *m == "tools/call").count(), 20);
}

#[test]
fn a_modern_client_without_a_log_level_gets_no_log_messages_and_a_legacy_one_gets_all() {
    let methods = Arc::new(Mutex::new(Vec::new()));
    let up = logging_upstream(methods);
    let h = hub(&[], json!({"mcpServers": {"log": {"url": up.url, "protocol": "legacy"}}}));
    let events = modern(&h.url, "tools/call", json!({"name": "say", "arguments": {"marker": "m"}})).events();
    assert_eq!(log_lines(&events), Vec::<String>::new(), "2026-07-28: no logLevel in _meta, no messages");
    assert_eq!(text_of(events.last().unwrap()), "m");
    let sid = legacy_session(&h.url);
    let events = legacy(&h.url, &sid, "tools/call", json!({"name": "say", "arguments": {"marker": "l"}})).events();
    assert_eq!(log_lines(&events), expected("l", "debug"), "legacy: no level set, everything");
}
