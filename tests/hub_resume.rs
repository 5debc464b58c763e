//! Resumable call streams for legacy clients (2025-11-25 transports,
//! Resumability and Redelivery): priming event, event ids, GET with
//! Last-Event-ID replaying what followed, only for the owning session.

mod hub_util;

use hub_util::*;
use mcphub_mock::Era;
use serde_json::{json, Value};
use std::io::Write;
use std::time::Duration;

/// The next event as (id, data as sent), the priming event (empty data) included.
fn next_event(r: &mut SseStream) -> Option<(Option<String>, String)> {
    r.next_raw_within(IO_TIMEOUT).map(|e| (e.id, e.data))
}

#[test]
fn a_cut_stream_is_resumed_with_last_event_id_and_loses_nothing() {
    let up = mock(Era::Legacy, "m");
    let h = hub(&[("m", &up.url)], json!({}));
    let sid = legacy_session(&h.url);
    let call = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "progress", "arguments": {"steps": 6, "ms": 60}, "_meta": {"progressToken": "p"}}}).to_string();
    let mut r = SseStream::post(&h.url, &[("Mcp-Session-Id", &sid), ("MCP-Protocol-Version", "2025-11-25")], &call);

    // Priming event: an id and empty data (and a retry: line before it).
    let (priming_id, data) = next_event(&mut r).expect("priming event");
    assert!(priming_id.as_deref().is_some_and(|i| i.ends_with(":0")), "{priming_id:?}");
    assert_eq!(data, "");
    let (first_id, first) = next_event(&mut r).expect("first progress");
    assert!(first.contains("notifications/progress"), "{first}");
    drop(r); // the connection breaks; the call goes on

    let mut r = SseStream::get(&h.url, &[("Mcp-Session-Id", &sid), ("Last-Event-ID", &first_id.clone().unwrap())]);
    let mut rest = Vec::new();
    while let Some((_, data)) = next_event(&mut r) {
        let m: Value = serde_json::from_str(&data).unwrap();
        let done = m.get("id") == Some(&json!(5));
        rest.push(m);
        if done {
            break;
        }
    }
    let progress: Vec<i64> = rest.iter().filter_map(|m| m.pointer("/params/progress").and_then(Value::as_i64)).collect();
    assert_eq!(progress, vec![2, 3, 4, 5, 6], "every later progress event, once, in order");
    assert!(text_of(rest.last().unwrap()).contains("6 steps"));
}

#[test]
fn another_session_cannot_resume_a_stream() {
    let up = mock(Era::Legacy, "m");
    let h = hub(&[("m", &up.url)], json!({}));
    let (a, b) = (legacy_session(&h.url), legacy_session(&h.url));
    let r = legacy(&h.url, &a, "tools/call", json!({"name": "progress", "arguments": {"steps": 2, "ms": 1}, "_meta": {"progressToken": 1}}));
    let first_id = r.text.lines().find_map(|l| l.strip_prefix("id: ")).expect("event ids").to_string();
    let other = send("GET", &h.url, &[("Accept", "text/event-stream"), ("Mcp-Session-Id", &b), ("Last-Event-ID", &first_id)], "");
    assert_eq!(other.status, 404);
    let owner = send("GET", &h.url, &[("Accept", "text/event-stream"), ("Mcp-Session-Id", &a), ("Last-Event-ID", &first_id)], "");
    assert_eq!(owner.status, 200);
    assert_eq!(send("GET", &h.url, &[("Accept", "text/event-stream")], "").status, 400, "no session");
    assert_eq!(send("GET", &h.url, &[("Accept", "text/event-stream"), ("MCP-Protocol-Version", "2026-07-28")], "").status, 405);
}

/// A legacy upstream with a GET stream: pushes whatever `push` receives.
fn notifying_upstream(
    push: crossbeam_channel::Receiver<Value>,
    get_open: std::sync::Arc<std::sync::atomic::AtomicBool>,
    lists: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> FakeUpstream {
    fake_upstream(move |body, out, stop| {
        let msg: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let method = msg["method"].as_str().unwrap_or("");
        match method {
            "initialize" => {
                let result = json!({"jsonrpc": "2.0", "id": msg["id"], "result": {"protocolVersion": "2025-06-18", "capabilities": {"tools": {"listChanged": true}, "resources": {"subscribe": true}}, "serverInfo": {"name": "n", "version": "1"}}}).to_string();
                let _ = write!(out, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nMcp-Session-Id: s-n\r\nContent-Length: {}\r\n\r\n{result}", result.len());
            }
            m if m.starts_with("notifications/") => {
                let _ = out.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
            }
            "tools/list" => {
                lists.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                write_json(out, &json!({"jsonrpc": "2.0", "id": msg["id"], "result": {"tools": [{"name": "t", "inputSchema": {"type": "object"}}]}}));
            }
            "resources/list" => write_json(out, &json!({"jsonrpc": "2.0", "id": msg["id"], "result": {"resources": [{"uri": "res://a", "name": "a"}, {"uri": "res://b", "name": "b"}]}})),
            "resources/subscribe" | "prompts/list" | "resources/templates/list" => {
                write_json(out, &json!({"jsonrpc": "2.0", "id": msg["id"], "result": {}}))
            }
            "" => {
                // GET: the standalone stream.
                let _ = out.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n");
                let _ = out.flush();
                get_open.store(true, std::sync::atomic::Ordering::SeqCst);
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                while std::time::Instant::now() < deadline && !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    if let Ok(m) = push.recv_timeout(Duration::from_millis(50)) {
                        if write!(out, "data: {m}\n\n").is_err() {
                            return;
                        }
                        let _ = out.flush();
                    }
                }
                let _ = out.shutdown(std::net::Shutdown::Both);
            }
            _ => {
                let _ = out.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
            }
        }
    })
}

#[test]
fn upstream_change_notifications_reach_the_right_clients_standalone_streams() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    let (push, pushed) = crossbeam_channel::unbounded();
    let get_open = Arc::new(AtomicBool::new(false));
    let lists = Arc::new(AtomicUsize::new(0));
    let up = notifying_upstream(pushed, get_open.clone(), lists.clone());
    let mut servers = serde_json::Map::new();
    servers.insert("n".into(), json!({"url": up.url, "protocol": "legacy"}));
    let h = hub(&[], json!({"mcpServers": servers}));
    let (a, b) = (legacy_session(&h.url), legacy_session(&h.url));
    assert_eq!(legacy(&h.url, &a, "resources/subscribe", json!({"uri": "res://a"})).json()["result"], json!({}));
    let get = |sid: &str| SseStream::get(&h.url, &[("Mcp-Session-Id", sid)]);
    let (mut ra, mut rb) = (get(&a), get(&b));
    // The hub listens on the upstream session's GET stream once that session exists.
    wait_until("the hub to open the upstream GET stream", PATIENCE, || get_open.load(Ordering::SeqCst));
    let lists_before = lists.load(Ordering::SeqCst);
    push.send(json!({"jsonrpc": "2.0", "method": "notifications/resources/updated", "params": {"uri": "res://a"}})).unwrap();
    push.send(json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})).unwrap();
    let (_, first_a) = next_event(&mut ra).expect("A's first notification");
    assert!(first_a.contains("resources/updated") && first_a.contains("res://a"), "{first_a}");
    let (_, second_a) = next_event(&mut ra).expect("A's second notification");
    assert!(second_a.contains("tools/list_changed"), "{second_a}");
    let (_, first_b) = next_event(&mut rb).expect("B's notification");
    assert!(first_b.contains("tools/list_changed"), "B did not subscribe to res://a: {first_b}");
    // list_changed dropped the cached tool list: the next tools/list refetches.
    legacy(&h.url, &a, "tools/list", json!({}));
    assert!(lists.load(Ordering::SeqCst) > lists_before, "the cached list was dropped");
}

/// A resumed stream replays the call's answer with its id as the client sent
/// it (`1E3`, which serde_json writes `1e+3`; issue 14, hole 9).
#[test]
fn a_resumed_stream_replays_the_answer_with_its_id_as_sent() {
    let up = mock(Era::Legacy, "m");
    let h = hub(&[("m", &up.url)], json!({}));
    let sid = legacy_session(&h.url);
    let call = r#"{"jsonrpc":"2.0","id":1E3,"method":"tools/call","params":{"name":"progress","arguments":{"steps":3,"ms":60},"_meta":{"progressToken":"p"}}}"#;
    let mut r = SseStream::post(&h.url, &[("Mcp-Session-Id", &sid), ("MCP-Protocol-Version", "2025-11-25")], call);
    let (priming_id, _) = next_event(&mut r).expect("priming event");
    drop(r); // the connection breaks before any message; the call goes on

    let mut r = SseStream::get(&h.url, &[("Mcp-Session-Id", &sid), ("Last-Event-ID", &priming_id.expect("an event id"))]);
    let last = loop {
        let (_, data) = next_event(&mut r).expect("the stream ended without the call's response");
        let m: Value = serde_json::from_str(&data).unwrap();
        if m.get("result").is_some() || m.get("error").is_some() {
            break data;
        }
    };
    assert!(last.contains(r#""id":1E3,"#), "replayed with the id as sent: {last}");
    assert!(last.contains("3 steps"), "{last}");
}
