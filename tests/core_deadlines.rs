//! Layered deadlines (issue 6, docs/decisions.md D7), Request → Response
//! without a socket (issue 15 item 7): a scripted legacy server that takes
//! its time ([`Reply::after`], [`Cut::pause`]) and honours the call's
//! deadline as a socket read would. A call past the server's `timeoutMs` or
//! the hub's `timeouts.hubMs` is answered at its deadline with `-32001`
//! naming the layer, server and limit, as JSON or on the call's stream, and
//! the upstream hears `notifications/cancelled` under its own request id;
//! `resetTimeoutOnProgress` lets progress extend a call up to
//! `maxTotalTimeoutMs`. The same against the mock over loopback is in
//! tests/hub_deadlines.rs.

mod core_util;

use core_util::*;
use mcphub::hub::Hub;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A legacy server `slow`: every answer after `latency`; `sleep` answers
/// after `arguments.ms`; `progress` streams `arguments.steps` progress
/// notifications `arguments.ms` apart, then its result.
fn slow_server(latency: Duration) -> Script {
    let base = legacy_server("slow", json!([tool("sleep"), tool("progress")]));
    Arc::new(move |body: &Value, h: &[(String, String)]| {
        let args = &body["params"]["arguments"];
        let ms = Duration::from_millis(args["ms"].as_u64().unwrap_or(0));
        let reply = match (body["method"].as_str(), body["params"]["name"].as_str()) {
            (Some("tools/call"), Some("sleep")) => Reply::result(body, json!({"content": [{"type": "text", "text": "slept"}]})).after(ms),
            (Some("tools/call"), Some("progress")) => {
                let (steps, token, id) = (args["steps"].as_u64().unwrap_or(1), body["params"]["_meta"]["progressToken"].clone(), body["id"].clone());
                let mut n = 0;
                Reply::live(move |cut: &Cut| {
                    n += 1;
                    if n > steps + 1 {
                        return None;
                    }
                    if !cut.pause(ms) {
                        return None;
                    }
                    if n <= steps {
                        return Some(json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": token, "progress": n}}));
                    }
                    Some(json!({"jsonrpc": "2.0", "id": id, "result": {"content": [{"type": "text", "text": format!("slow: progress done, {steps} steps")}]}}))
                })
            }
            _ => base(body, h),
        };
        if latency.is_zero() || reply.delay.is_some() { reply } else { reply.after(latency) }
    })
}

/// A hub serving `slow` with these server keys and `hubMs`.
fn hub_for(server: Value, hub_ms: u64, latency: Duration) -> (Hub, Traffic) {
    hub_with_servers(json!({"timeouts": {"hubMs": hub_ms}}), vec![("slow", server, slow_server(latency))])
}

fn assert_timeout(msg: &Value, layer: &str, timeout_ms: u64) {
    assert_eq!(msg["error"]["code"], -32001, "{msg}");
    assert_eq!(msg["error"]["message"], "Request timed out");
    assert_eq!(msg["error"]["data"], json!({"layer": layer, "server": "slow", "timeoutMs": timeout_ms}), "{msg}");
    assert_eq!(msg["id"], 1);
}

/// Waits until the server was told its `n`-th call is cancelled, under that call's id.
fn wait_for_cancelled(traffic: &Traffic, n: usize) {
    wait_until(&format!("the upstream to get notifications/cancelled #{n}"), PATIENCE, || traffic.calls("slow", "notifications/cancelled").len() >= n);
    let told: Vec<Value> = traffic.calls("slow", "notifications/cancelled").iter().map(|s| s.body["params"]["requestId"].clone()).collect();
    let calls: Vec<Value> = traffic.calls("slow", "tools/call").iter().map(|s| s.body["id"].clone()).collect();
    assert!(told.iter().all(|id| calls.contains(id)), "each under the upstream's id of a call: {told:?} of {calls:?}");
}

fn call(h: &Hub, sid: &str, tool: &str, args: Value) -> Answer {
    legacy(h, sid, "tools/call", json!({"name": tool, "arguments": args, "_meta": {"progressToken": "p"}}))
}

#[test]
fn a_call_past_the_server_timeout_is_answered_32001_upstream_and_cancelled_upstream() {
    let (h, traffic) = hub_for(json!({"timeoutMs": 1000}), 8000, Duration::ZERO);
    let sid = legacy_session(&h);
    assert_eq!(legacy(&h, &sid, "tools/list", json!({})).status, 200);
    let t = Instant::now();
    let r = legacy(&h, &sid, "tools/call", json!({"name": "sleep", "arguments": {"ms": 7000}}));
    let elapsed = t.elapsed();
    assert_timeout(&r.json(), "upstream", 1000);
    // At the deadline, not after the sleep: under half the 7 s sleep.
    assert!(elapsed < Duration::from_millis(3500), "answered at once, not after the sleep: {elapsed:?}");
    assert!(elapsed >= Duration::from_millis(900), "not before the deadline: {elapsed:?}");
    wait_for_cancelled(&traffic, 1);
    assert_eq!(traffic.calls("slow", "tools/call").len(), 1, "a timed-out call is not sent again");
}

#[test]
fn a_hub_deadline_shorter_than_the_server_timeout_is_answered_with_layer_hub() {
    // 300 ms per upstream request: the cold catalog's probe, initialize and
    // tools/list spend the hub budget, so less than timeoutMs is left.
    let (h, traffic) = hub_for(json!({"timeoutMs": 2900}), 3000, Duration::from_millis(300));
    let sid = legacy_session(&h);
    let r = legacy(&h, &sid, "tools/call", json!({"name": "sleep", "arguments": {"ms": 6000}}));
    assert_timeout(&r.json(), "hub", 3000);
    wait_for_cancelled(&traffic, 1);
}

#[test]
fn a_streamed_call_past_its_deadline_gets_the_error_on_its_stream_and_upstream_is_told() {
    let (h, traffic) = hub_for(json!({"timeoutMs": 1000}), 8000, Duration::ZERO);
    let sid = legacy_session(&h);
    let r = call(&h, &sid, "progress", json!({"steps": 20, "ms": 200}));
    assert_eq!(r.header("content-type"), Some("text/event-stream"), "{:?}", r.headers);
    let events = r.events();
    let progress = events.iter().filter(|e| e["method"] == "notifications/progress").count();
    assert!((1..20).contains(&progress), "some progress before the cut: {progress}");
    assert_timeout(events.last().unwrap(), "upstream", 1000);
    wait_for_cancelled(&traffic, 1);
    // A client without SSE: the stream is read for it, the same answer as JSON.
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "progress", "arguments": {"steps": 20, "ms": 200}, "_meta": {"progressToken": "p"}}});
    let r = post(&h, &body.to_string(), &[("Accept", "application/json"), JSON, ("Mcp-Session-Id", sid.as_str()), ("MCP-Protocol-Version", "2025-06-18")]);
    assert_eq!((r.sse, r.header("content-type")), (false, Some("application/json")), "{:?}", r.headers);
    assert_timeout(&r.json(), "upstream", 1000);
    wait_for_cancelled(&traffic, 2);
}

#[test]
fn progress_extends_a_call_with_reset_timeout_on_progress_up_to_max_total() {
    let run = |h: &Hub, steps: u64, ms: u64| {
        let sid = legacy_session(h);
        call(h, &sid, "progress", json!({"steps": steps, "ms": ms})).events()
    };
    // 10 progress events 300 ms apart: 3 s in all, past timeoutMs, under the cap.
    let (h, _) = hub_for(json!({"timeoutMs": 1000, "resetTimeoutOnProgress": true, "maxTotalTimeoutMs": 7000}), 8000, Duration::ZERO);
    let events = run(&h, 10, 300);
    assert_eq!(events.last().unwrap()["result"]["content"][0]["text"], "slow: progress done, 10 steps", "{events:?}");
    assert_eq!(events.iter().filter(|e| e["method"] == "notifications/progress").count(), 10);
    // Silence longer than timeoutMs still ends the call at timeoutMs, not
    // when the next event comes (7 s later; half of it is the bound).
    let t = Instant::now();
    let events = run(&h, 2, 7000);
    let elapsed = t.elapsed();
    assert_timeout(events.last().unwrap(), "upstream", 1000);
    assert!(elapsed < Duration::from_millis(3500), "cut at its deadline, not at the next event: {elapsed:?}");
    // Progress cannot carry it past maxTotalTimeoutMs.
    let (capped, traffic) = hub_for(json!({"timeoutMs": 1000, "resetTimeoutOnProgress": true, "maxTotalTimeoutMs": 1500}), 8000, Duration::ZERO);
    assert_timeout(run(&capped, 10, 300).last().unwrap(), "upstream", 1500);
    wait_for_cancelled(&traffic, 1);
    // Without it, the same 3 s call times out.
    let (fixed, _) = hub_for(json!({"timeoutMs": 1000}), 8000, Duration::ZERO);
    assert_timeout(run(&fixed, 10, 300).last().unwrap(), "upstream", 1000);
}
