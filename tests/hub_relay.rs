//! Server→client requests of a legacy upstream, relayed to the client whose
//! call they belong to, while many clients share one upstream session. One
//! client's round, a client without the capability, an answer from another
//! session, ids kept as sent and requests on the standalone GET stream are
//! Request → Response tests in tests/core_relay.rs.

mod hub_util;

use hub_util::*;
use parking_lot::{Condvar, Mutex};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Answers the upstream has received, by its own request id.
#[derive(Default)]
struct Answers {
    map: Mutex<HashMap<String, Value>>,
    arrived: Condvar,
}

/// A legacy upstream with one tool, `ask`: each call sends its own
/// `sampling/createMessage` (id `up-N`) on the call's stream, waits (≤ 5 s)
/// for the answer POSTed back on the session, and ends with a result quoting
/// the sampled text.
fn sampling_upstream(answers: Arc<Answers>) -> FakeUpstream {
    let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    fake_upstream(move |body, out, _| {
        let msg: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let method = msg["method"].as_str().unwrap_or("");
        if method == "initialize" {
            assert!(msg["params"]["capabilities"]["sampling"].is_object(), "the hub declares sampling upstream: {msg}");
            let result = json!({"jsonrpc": "2.0", "id": msg["id"], "result": {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}}, "serverInfo": {"name": "ask", "version": "1"}}}).to_string();
            let _ = write!(out, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nMcp-Session-Id: shared-1\r\nContent-Length: {}\r\n\r\n{result}", result.len());
        } else if method.starts_with("notifications/") {
            let _ = out.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
        } else if method == "tools/list" {
            write_json(out, &json!({"jsonrpc": "2.0", "id": msg["id"], "result": {"tools": [{"name": "ask", "inputSchema": {"type": "object"}}]}}));
        } else if method == "tools/call" {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let up_id = format!("up-{n}");
            let ask = json!({"jsonrpc": "2.0", "id": up_id, "method": "sampling/createMessage", "params": {"messages": [], "maxTokens": 5}});
            let _ = write!(out, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\ndata: {ask}\n\n");
            let _ = out.flush();
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut map = answers.map.lock();
            while !map.contains_key(&up_id) && Instant::now() < deadline {
                answers.arrived.wait_for(&mut map, Duration::from_millis(100));
            }
            let text = match map.get(&up_id) {
                Some(a) if a.get("result").is_some() => format!("sampled: {}", a["result"]["content"]["text"].as_str().unwrap_or("?")),
                Some(a) => format!("refused: {}", a["error"]["code"]),
                None => "no answer".to_string(),
            };
            drop(map);
            let done = json!({"jsonrpc": "2.0", "id": msg["id"], "result": {"content": [{"type": "text", "text": text}]}});
            let _ = write!(out, "data: {done}\n\n");
            let _ = out.shutdown(std::net::Shutdown::Both);
        } else if msg.get("id").is_some() && (msg.get("result").is_some() || msg.get("error").is_some()) {
            // The hub forwarding a client's answer (or its own refusal).
            let key = msg["id"].as_str().unwrap_or("").to_string();
            answers.map.lock().insert(key, msg.clone());
            answers.arrived.notify_all();
            let _ = out.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
        } else {
            let _ = out.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        }
    })
}

fn session_with(url: &str, capabilities: Value) -> String {
    let body = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities": capabilities,"clientInfo":{"name":"t","version":"1"}}});
    let r = send("POST", url, &[ACCEPT, JSON], &body.to_string());
    r.header("mcp-session-id").expect("session").to_string()
}

/// Calls `ask` on `sid`, answers every sampling request on the stream with
/// `reply`, and returns (the request ids seen on the stream, the final result text).
fn call_and_answer(url: &str, sid: &str, reply: &str) -> (Vec<String>, String) {
    call_and_answer_with(url, sid, reply, |_| {})
}

/// Like [`call_and_answer`]; `before_answer` runs with each hub id first.
fn call_and_answer_with(url: &str, sid: &str, reply: &str, before_answer: impl Fn(&str)) -> (Vec<String>, String) {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "ask", "arguments": {}}}).to_string();
    let mut stream = SseStream::post(url, &[("Mcp-Session-Id", sid), ("MCP-Protocol-Version", "2025-06-18")], &body);
    assert!(stream.header("content-type").unwrap_or("").starts_with("text/event-stream"));
    let mut seen = Vec::new();
    while let Some(event) = stream.next() {
        let m = event.data;
        if m["method"] == "sampling/createMessage" {
            let hub_id = m["id"].as_str().expect("a string id").to_string();
            seen.push(hub_id.clone());
            before_answer(&hub_id);
            let answer = json!({"jsonrpc": "2.0", "id": hub_id, "result": {"role": "assistant", "content": {"type": "text", "text": reply}, "model": "m"}});
            let r = send("POST", url, &[ACCEPT, JSON, ("Mcp-Session-Id", sid), ("MCP-Protocol-Version", "2025-06-18")], &answer.to_string());
            assert_eq!(r.status, 202);
        } else if m.get("id") == Some(&json!(1)) {
            return (seen, text_of(&m));
        }
    }
    panic!("the stream ended without the call's response");
}

#[test]
fn twenty_clients_on_one_upstream_session_each_answer_only_their_own_sampling_request() {
    let answers = Arc::new(Answers::default());
    let up = sampling_upstream(answers.clone());
    let h = hub(&[("ask", &up.url)], json!({"workers": 8}));
    let url = h.url.clone();
    let clients: Vec<_> = (0..20)
        .map(|i| {
            let url = url.clone();
            std::thread::spawn(move || {
                let sid = session_with(&url, json!({"sampling": {}}));
                let (seen, text) = call_and_answer(&url, &sid, &format!("client-{i}"));
                (i, seen, text)
            })
        })
        .collect();
    let mut all_ids = Vec::new();
    for c in clients {
        let (i, seen, text) = c.join().unwrap();
        assert_eq!(seen.len(), 1, "client {i} saw {seen:?}");
        assert!(seen[0].starts_with("mcphub-r"), "the upstream id is replaced: {seen:?}");
        assert_eq!(text, format!("sampled: client-{i}"), "client {i} got another client's answer");
        all_ids.extend(seen);
    }
    all_ids.sort();
    all_ids.dedup();
    assert_eq!(all_ids.len(), 20, "hub ids never collide");
    // The upstream got each answer under its own id, on one shared session.
    assert_eq!(answers.map.lock().len(), 20);
    assert!(h.hub.pending().is_empty(), "nothing left waiting");
}

#[test]
fn twenty_clients_with_the_same_progress_token_each_get_only_their_own_progress() {
    let up = mock(mcphub_mock::Era::Legacy, "m");
    let h = hub(&[("m", &up.url)], json!({"workers": 8}));
    let url = h.url.clone();
    let clients: Vec<_> = (0..20)
        .map(|i| {
            let url = url.clone();
            std::thread::spawn(move || {
                let sid = legacy_session(&url);
                let steps = 3 + (i % 4);
                let r = legacy(&url, &sid, "tools/call", json!({"name": "progress", "arguments": {"steps": steps, "ms": 5}, "_meta": {"progressToken": "same"}}));
                let events = r.events();
                let progress: Vec<i64> = events
                    .iter()
                    .filter(|e| e["method"] == "notifications/progress")
                    .map(|e| {
                        assert_eq!(e["params"]["progressToken"], "same");
                        e["params"]["progress"].as_i64().unwrap()
                    })
                    .collect();
                (steps, progress, text_of(events.last().unwrap()))
            })
        })
        .collect();
    for c in clients {
        let (steps, progress, text) = c.join().unwrap();
        assert_eq!(progress, (1..=steps).collect::<Vec<i64>>(), "only this call's progress, in order");
        assert!(text.contains(&format!("{steps} steps")), "{text}");
    }
    assert_eq!(up.stats()["initialize"], 1, "one shared upstream session");
}
