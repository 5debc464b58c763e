//! Cancellation, Request → Response without a socket (issue 15 item 7): a
//! legacy client's `notifications/cancelled` ends its streamed call without
//! a response and reaches the upstream under the upstream's own request id,
//! once per call even when every client used the same id; a modern client
//! leaving its stream closes the upstream stream (the 2026-07-28 signal)
//! and sends no `notifications/cancelled`. The upstream is a [`Live`]
//! stream that, like the reference TypeScript server, never answers a
//! cancelled call. The same over loopback sockets (plus the JSON-only call
//! freeing its worker, which needs a socket to cut) is in tests/hub_cancel.rs.

mod core_util;

use core_util::*;
use mcphub::hub::Hub;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// A server whose `hang` tool answers with an event stream: `logs` log
/// messages, then nothing until the hub cancels the call (or 10 s pass),
/// and then the stream ends without a response.
fn hanging_server(name: &str, modern: bool, logs: usize, traffic: Traffic) -> Script {
    let base = if modern { modern_server(name, json!([tool("hang")])) } else { legacy_server(name, json!([tool("hang")])) };
    Arc::new(move |body: &Value, h: &[(String, String)]| {
        if body["method"] != "tools/call" {
            return base(body, h);
        }
        let (call_id, traffic) = (body["id"].clone(), traffic.clone());
        let mut sent = 0;
        Reply::live(move |cut: &Cut| {
            sent += 1;
            if sent <= logs {
                return Some(json!({"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "error", "data": format!("working {sent}")}}));
            }
            cut.wait_for(&traffic, Duration::from_secs(10), |s| s.method() == "notifications/cancelled" && s.body["params"]["requestId"] == call_id);
            None
        })
    })
}

fn setup(modern: bool, logs: usize) -> (Hub, Traffic) {
    let traffic = Traffic::default();
    let protocol = if modern { "modern" } else { "legacy" };
    let servers = vec![("h", json!({"protocol": protocol, "timeoutMs": 15000}), hanging_server("h", modern, logs, traffic.clone()))];
    let h = hub_with_traffic(json!({"timeouts": {"hubMs": 20000}}), servers, traffic.clone());
    (h, traffic)
}

fn cancel(h: &Hub, sid: &str, id: Value) {
    let body = json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": id, "reason": "user"}}).to_string();
    let r = post(h, &body, &legacy_headers(sid));
    assert_eq!((r.status, r.text.as_str()), (202, ""));
}

/// A legacy streamed call of `hang` (id `id`) cancelled by its client after
/// the first log message; the whole answer.
fn call_and_cancel(h: &Hub, sid: &str, id: Value) -> Answer {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": "hang", "arguments": {}}}).to_string();
    let mut cancelled = false;
    post_streaming(h, &body, &legacy_headers(sid), |m| {
        if m["method"] == "notifications/message" && !cancelled {
            cancelled = true;
            cancel(h, sid, id.clone());
        }
    })
}

#[test]
fn a_legacy_clients_cancel_ends_its_streamed_call_without_a_response_and_reaches_the_upstream_with_its_id() {
    let (h, traffic) = setup(false, 1);
    let sid = legacy_session(&h);
    let started = std::time::Instant::now();
    let r = call_and_cancel(&h, &sid, json!("c-7"));
    // The call comes back at the cancel, not after the upstream's 10 s hold.
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(r.sse);
    let events = r.events();
    assert_eq!(events.len(), 1, "the log message, then the stream ends with no response: {events:?}");
    assert_eq!(events[0]["params"]["data"], "working 1");
    assert!(!r.text.contains("\"c-7\""), "{}", r.text);
    let upstream_id = traffic.calls("h", "tools/call")[0].body["id"].clone();
    let told = traffic.calls("h", "notifications/cancelled");
    assert_eq!(told.len(), 1, "told once");
    assert_eq!(told[0].body["params"]["requestId"], upstream_id, "the upstream's own request id, not the client's");
    assert_eq!(told[0].header("Mcp-Session-Id"), Some("h-s1"), "on the call's upstream session");
    assert!(h.in_flight().is_empty());
    // The session goes on.
    assert_eq!(legacy(&h, &sid, "ping", json!({})).json()["result"], json!({}));
}

#[test]
fn ten_clients_with_the_same_request_id_each_cancel_only_their_own_call() {
    let (h, traffic) = setup(false, 1);
    let sessions: Vec<String> = (0..10).map(|_| legacy_session(&h)).collect();
    let answers: Vec<Answer> = std::thread::scope(|scope| {
        let calls: Vec<_> = sessions.iter().map(|sid| {
            let h = &h;
            scope.spawn(move || call_and_cancel(h, sid, json!(7)))
        }).collect();
        calls.into_iter().map(|c| c.join().expect("a client")).collect()
    });
    for a in &answers {
        assert_eq!(a.events().len(), 1, "no response after the cancel: {}", a.text);
    }
    let mut made: Vec<String> = traffic.calls("h", "tools/call").iter().map(|c| c.body["id"].to_string()).collect();
    let mut told: Vec<String> = traffic.calls("h", "notifications/cancelled").iter().map(|c| c.body["params"]["requestId"].to_string()).collect();
    made.sort();
    told.sort();
    assert_eq!(made.len(), 10);
    assert_eq!(told, made, "each upstream request id cancelled exactly once");
    assert!(h.in_flight().is_empty());
}

#[test]
fn a_cancel_for_an_unknown_request_reaches_no_upstream() {
    let (h, traffic) = setup(false, 1);
    let sid = legacy_session(&h);
    cancel(&h, &sid, json!(99));
    assert!(traffic.calls("h", "notifications/cancelled").is_empty(), "{:?}", traffic.all());
}

#[test]
fn a_modern_client_leaving_its_stream_closes_the_upstream_stream() {
    // Two log messages: the client reads the first and leaves, the hub finds
    // it gone writing the second.
    let (h, traffic) = setup(true, 2);
    let (body, hdrs) = modern_request("tools/call", json!({"name": "hang", "arguments": {}, "_meta": {"io.modelcontextprotocol/logLevel": "debug"}}));
    let hdrs: Vec<(&str, &str)> = hdrs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = post_leaving_after(&h, &body, &hdrs, 1);
    assert!(r.sse, "{}", r.text);
    let events = r.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["params"]["data"], "working 1", "the log message reached the client");
    let call_id = traffic.calls("h", "tools/call")[0].body["id"].clone();
    wait_until("the upstream stream to be closed", PATIENCE, || traffic.all().iter().any(|s| s.kind == "closed" && s.body["id"] == call_id));
    assert!(traffic.calls("h", "notifications/cancelled").is_empty(), "a modern server gets no notifications/cancelled");
    assert!(h.in_flight().is_empty());
}
