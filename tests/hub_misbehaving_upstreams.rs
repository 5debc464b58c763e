//! Upstreams that misbehave on purpose: the hub must answer, stay up, and
//! never let one of them hold a worker past the call's budget.

mod hub_util;

use hub_util::*;
use mcphub_mock::Era;
use serde_json::json;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn list_with(tool: &str) -> serde_json::Value {
    json!({"tools": [{"name": tool, "inputSchema": {"type": "object"}}], "resultType": "complete", "ttlMs": 60000, "cacheScope": "public"})
}

#[test]
fn an_upstream_dripping_its_body_is_cut_at_the_call_budget_and_the_hub_stays_up() {
    let up = fake_upstream(|body, out, stop| {
        if body.contains("\"tools/list\"") {
            return write_json(out, &json!({"jsonrpc": "2.0", "id": id_of(body), "result": list_with("drip")}));
        }
        // Head at once, then one byte every 100 ms of a body that never completes.
        let _ = out.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{");
        for _ in 0..300 {
            if stop.load(Ordering::SeqCst) || out.write_all(b" ").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let mut servers = serde_json::Map::new();
    servers.insert("d".into(), json!({"url": up.url, "protocol": "modern", "timeoutMs": 1500}));
    let h = hub(&[], json!({"mcpServers": servers, "timeouts": {"hubMs": 3000}, "workers": 2}));
    // Both workers get a dripping call; each must come back with the upstream timeout.
    let url = h.url.clone();
    let calls: Vec<_> = (0..2)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || modern(&url, "tools/call", json!({"name": "drip", "arguments": {}})).json())
        })
        .collect();
    for c in calls {
        let m = c.join().unwrap();
        assert_eq!(m["error"]["code"], -32001, "{m}");
        assert_eq!(m["error"]["data"]["layer"], "upstream", "{m}");
        assert_eq!(m["error"]["data"]["server"], "d", "{m}");
    }
    assert_eq!(modern(&h.url, "server/discover", json!({})).status, 200, "the workers are free again");
}

#[test]
fn an_upstream_answering_with_server_requests_forever_cannot_crash_the_hub() {
    let answers = Arc::new(AtomicUsize::new(0));
    let seen = answers.clone();
    let up = fake_upstream(move |body, out, _| {
        // A legacy server: a session from initialize, 202 for notifications.
        if body.contains("\"initialize\"") {
            let result = json!({"jsonrpc": "2.0", "id": id_of(body), "result": {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}}, "serverInfo": {"name": "loop", "version": "1"}}}).to_string();
            let _ = write!(out, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nMcp-Session-Id: s1\r\nContent-Length: {}\r\n\r\n{result}", result.len());
            return;
        }
        if body.is_empty() {
            // No standalone GET stream: this test is about the call's stream.
            let _ = out.write_all(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n");
            return;
        }
        if body.contains("notifications/initialized") {
            let _ = out.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
            return;
        }
        if body.contains("\"tools/list\"") {
            return write_json(out, &json!({"jsonrpc": "2.0", "id": id_of(body), "result": list_with("loop")}));
        }
        if body.contains("\"error\"") {
            seen.fetch_add(1, Ordering::SeqCst); // the hub's -32601 answer
        }
        // Every POST — the call and each of the hub's answers — gets an SSE
        // stream holding another server→client request, then the stream ends.
        let req = json!({"jsonrpc": "2.0", "id": format!("s{}", seen.load(Ordering::SeqCst)), "method": "sampling/createMessage", "params": {}});
        let _ = write!(out, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\ndata: {req}\n\n");
        let _ = out.shutdown(std::net::Shutdown::Both);
    });
    let mut servers = serde_json::Map::new();
    servers.insert("l".into(), json!({"url": up.url, "protocol": "legacy", "timeoutMs": 3000}));
    let h = hub(&[], json!({"mcpServers": servers, "timeouts": {"hubMs": 5000}}));
    let m = modern(&h.url, "tools/call", json!({"name": "loop", "arguments": {}})).json();
    assert_eq!(m["error"]["code"], -32000, "the stream ended without a response: {m}");
    assert_eq!(answers.load(Ordering::SeqCst), 1, "exactly one answer POST, no chain of them");
    assert_eq!(modern(&h.url, "server/discover", json!({})).status, 200);
}

#[test]
fn unknown_tool_names_do_not_refetch_every_list_each_time() {
    let up = mock(Era::Dual, "m");
    let h = hub(&[("m", &up.url)], json!({}));
    modern(&h.url, "tools/list", json!({}));
    let before = up.stats()["requests"].as_u64().unwrap();
    for _ in 0..20 {
        let r = modern(&h.url, "tools/call", json!({"name": "nope", "arguments": {}})).json();
        assert_eq!(r["error"]["code"], -32602);
    }
    let refetches = up.stats()["requests"].as_u64().unwrap() - before;
    assert!(refetches <= 2, "20 unknown names caused {refetches} upstream requests");
}
