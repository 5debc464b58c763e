//! Cancellation: a legacy client's notifications/cancelled and a modern
//! client's closed stream both reach the upstream, and the hub stops waiting
//! at once even though the upstream (like the reference TypeScript server)
//! never answers a cancelled call.

mod hub_util;

use hub_util::*;
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the upstream saw.
#[derive(Default)]
struct Seen {
    log: Mutex<Vec<Value>>,
    call_ids: Mutex<Vec<Value>>,
    stream_closed: Mutex<bool>,
}

impl Seen {
    fn wait_for(&self, what: &str, cond: impl Fn(&Seen) -> bool) {
        wait_until(&format!("the upstream to see {what}"), PATIENCE, || cond(self));
    }
    fn note(&self, m: Value) {
        self.log.lock().push(m);
    }
}

/// An upstream whose `hang` tool never answers: with `sse`, it opens an event
/// stream, sends one log message and then holds it (noting when the hub
/// closes it); otherwise it holds the JSON answer. It holds for 10 s at most.
fn hanging_upstream(legacy: bool, sse: bool, seen: Arc<Seen>) -> FakeUpstream {
    fake_upstream(move |body, out, stop| {
        let msg: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let method = msg["method"].as_str().unwrap_or("").to_string();
        if method == "initialize" {
            let result = json!({"jsonrpc": "2.0", "id": msg["id"], "result": {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}}, "serverInfo": {"name": "hang", "version": "1"}}}).to_string();
            let _ = write!(out, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nMcp-Session-Id: s-hang\r\nContent-Length: {}\r\n\r\n{result}", result.len());
        } else if method.starts_with("notifications/") {
            seen.note(msg.clone());
            let _ = out.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
        } else if method == "tools/list" {
            let result = json!({"tools": [{"name": "hang", "inputSchema": {"type": "object"}}], "resultType": "complete", "ttlMs": 60000, "cacheScope": "public"});
            write_json(out, &json!({"jsonrpc": "2.0", "id": msg["id"], "result": result}));
        } else if method == "tools/call" {
            seen.call_ids.lock().push(msg["id"].clone());
            seen.note(msg.clone());
            if sse {
                let note = json!({"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "error", "data": "working"}});
                let _ = write!(out, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: {note}\n\n");
                let _ = out.flush();
            }
            let _ = out.set_read_timeout(Some(Duration::from_millis(50)));
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut buf = [0u8; 64];
            while Instant::now() < deadline && !stop.load(std::sync::atomic::Ordering::SeqCst) {
                match out.read(&mut buf) {
                    Ok(0) => {
                        *seen.stream_closed.lock() = true;
                        return;
                    }
                    Ok(_) => {}
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                    Err(_) => {
                        *seen.stream_closed.lock() = true;
                        return;
                    }
                }
            }
        }
        let _ = legacy;
    })
}

fn hub_for(up: &FakeUpstream, legacy: bool) -> HubUnderTest {
    let mut servers = serde_json::Map::new();
    let protocol = if legacy { "legacy" } else { "modern" };
    servers.insert("h".into(), json!({"url": up.url, "protocol": protocol, "timeoutMs": 15000}));
    hub(&[], json!({"mcpServers": servers, "timeouts": {"hubMs": 20000}, "workers": 2}))
}

fn cancelled_notes(seen: &Seen) -> Vec<Value> {
    seen.log.lock().iter().filter(|m| m["method"] == "notifications/cancelled").cloned().collect()
}

#[test]
fn a_legacy_clients_cancel_frees_the_worker_and_reaches_the_upstream_with_its_id() {
    let seen = Arc::new(Seen::default());
    let up = hanging_upstream(true, false, seen.clone());
    let h = hub_for(&up, true);
    let sid = legacy_session(&h.url);
    let (url, sid2) = (h.url.clone(), sid.clone());
    let call = std::thread::spawn(move || {
        // JSON only: the call waits on a request worker.
        let body = json!({"jsonrpc": "2.0", "id": 41, "method": "tools/call", "params": {"name": "hang", "arguments": {}}}).to_string();
        send("POST", &url, &[("Accept", "application/json"), JSON, ("Mcp-Session-Id", &sid2), ("MCP-Protocol-Version", "2025-06-18")], &body).json()
    });
    seen.wait_for("the call", |s| !s.call_ids.lock().is_empty());
    let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 41, "reason": "user"}});
    let r = send("POST", &h.url, &[ACCEPT, JSON, ("Mcp-Session-Id", &sid), ("MCP-Protocol-Version", "2025-06-18")], &cancel.to_string());
    assert_eq!(r.status, 202);
    // The call comes back now, not after the upstream's 10 s hold.
    let answer = call.join().unwrap();
    assert_eq!(answer["error"]["message"], "Request cancelled by the client", "{answer}");
    seen.wait_for("notifications/cancelled", |s| !cancelled_notes(s).is_empty());
    let upstream_id = seen.call_ids.lock()[0].clone();
    assert_eq!(cancelled_notes(&seen)[0]["params"]["requestId"], upstream_id, "the upstream's own request id");
    assert!(h.hub.in_flight().is_empty());
    // Both workers are free again.
    assert_eq!(legacy(&h.url, &sid, "ping", json!({})).status, 200);
}

#[test]
fn a_legacy_clients_cancel_ends_its_streamed_call_without_a_response() {
    let seen = Arc::new(Seen::default());
    let up = hanging_upstream(true, true, seen.clone());
    let h = hub_for(&up, true);
    let sid = legacy_session(&h.url);
    let body = json!({"jsonrpc": "2.0", "id": "c-7", "method": "tools/call", "params": {"name": "hang", "arguments": {}}}).to_string();
    let mut stream = SseStream::post(&h.url, &[("Mcp-Session-Id", &sid), ("MCP-Protocol-Version", "2025-06-18")], &body);
    // After the priming event (empty data), the log message arrives first.
    let first = stream.next().expect("an event").text;
    assert!(first.contains("notifications/message"), "{first}");
    let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "c-7"}});
    let r = send("POST", &h.url, &[ACCEPT, JSON, ("Mcp-Session-Id", &sid), ("MCP-Protocol-Version", "2025-06-18")], &cancel.to_string());
    assert_eq!(r.status, 202);
    // The stream ends with no response to the cancelled request.
    let rest: Vec<String> = std::iter::from_fn(|| stream.next()).map(|e| e.text).collect();
    assert!(rest.iter().all(|l| !l.contains("\"c-7\"")), "{rest:?}");
    seen.wait_for("notifications/cancelled", |s| !cancelled_notes(s).is_empty());
    assert!(h.hub.in_flight().is_empty());
}

#[test]
fn a_modern_client_closing_its_stream_closes_the_upstream_stream() {
    let seen = Arc::new(Seen::default());
    let up = hanging_upstream(false, true, seen.clone());
    let h = hub_for(&up, false);
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}, "io.modelcontextprotocol/logLevel": "debug"});
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "hang", "arguments": {}, "_meta": meta}}).to_string();
    let mut s = SseStream::post(&h.url, &[("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", "tools/call"), ("Mcp-Name", "hang")], &body);
    let first = std::iter::from_fn(|| s.next()).find(|e| e.text.contains("notifications/message"));
    assert!(first.is_some(), "the log message reached the client");
    s.close(); // the client goes away: 2026-07-28 cancellation
    seen.wait_for("its stream closed", |s| *s.stream_closed.lock());
    assert!(cancelled_notes(&seen).is_empty(), "a modern server gets no notifications/cancelled");
}

/// Twenty legacy clients share the upstream session, each with one call the
/// upstream never answers; each cancels its own. Every call comes back at
/// once, every worker is free again, and the upstream is told about each call
/// with its own request id, once.
#[test]
fn twenty_clients_cancel_their_own_calls_on_one_upstream_session() {
    let seen = Arc::new(Seen::default());
    let up = hanging_upstream(true, false, seen.clone());
    let mut servers = serde_json::Map::new();
    servers.insert("h".into(), json!({"url": up.url, "protocol": "legacy", "timeoutMs": 15000}));
    // One worker per call plus one: every call waits on a worker (JSON only).
    let h = hub(&[], json!({"mcpServers": servers, "timeouts": {"hubMs": 20000}, "workers": 21}));
    let sessions: Vec<String> = (0..20).map(|_| legacy_session(&h.url)).collect();
    let calls: Vec<_> = sessions
        .iter()
        .enumerate()
        .map(|(i, sid)| {
            let (url, sid) = (h.url.clone(), sid.clone());
            std::thread::spawn(move || {
                let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "hang", "arguments": {"client": i}}}).to_string();
                send("POST", &url, &[("Accept", "application/json"), JSON, ("Mcp-Session-Id", &sid), ("MCP-Protocol-Version", "2025-06-18")], &body).json()
            })
        })
        .collect();
    seen.wait_for("twenty calls", |s| s.call_ids.lock().len() == 20);
    assert_eq!(h.hub.in_flight().len(), 20);
    // Every client used the same request id (7): only its own session's call is cancelled.
    for (i, sid) in sessions.iter().enumerate() {
        let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 7}});
        let r = send("POST", &h.url, &[ACCEPT, JSON, ("Mcp-Session-Id", sid), ("MCP-Protocol-Version", "2025-06-18")], &cancel.to_string());
        assert_eq!(r.status, 202);
        seen.wait_for("one more notifications/cancelled", |s| cancelled_notes(s).len() == i + 1);
    }
    for call in calls {
        let answer = call.join().unwrap();
        assert_eq!(answer["error"]["message"], "Request cancelled by the client", "{answer}");
        assert_eq!(answer["id"], 7);
    }
    assert!(h.hub.in_flight().is_empty());
    let mut told: Vec<String> = cancelled_notes(&seen).iter().map(|n| n["params"]["requestId"].to_string()).collect();
    let mut made: Vec<String> = seen.call_ids.lock().iter().map(Value::to_string).collect();
    told.sort();
    made.sort();
    assert_eq!(told, made, "each upstream request id cancelled exactly once");
    // The workers are free: twenty more requests are answered.
    for sid in &sessions {
        assert_eq!(legacy(&h.url, sid, "ping", json!({})).status, 200);
    }
}
