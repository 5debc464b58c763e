//! Layered deadlines (issue 6, docs/decisions.md D7): a call past the server's
//! `timeoutMs` or the hub's `timeouts.hubMs` is answered at once with
//! `-32001` naming the layer, server and limit, on a JSON answer or on the
//! call's event stream, and the upstream hears `notifications/cancelled`;
//! `resetTimeoutOnProgress` lets progress extend a call up to
//! `maxTotalTimeoutMs`. Nesting errors of the config are unit tests in
//! `src/config.rs`.

mod hub_util;

use hub_util::*;
use mcphub_mock::{Era, MockConfig};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A legacy-only mock (it gets `notifications/cancelled`) with `latency`.
fn legacy_mock(latency_ms: u64) -> Mock {
    mock_with(MockConfig { era: Era::Legacy, name: "slow".into(), latency: Duration::from_millis(latency_ms), ..MockConfig::default() })
}

/// A hub serving `mock` as `slow` with these server keys and `hubMs`.
fn hub_for(mock: &Mock, server: Value, hub_ms: u64) -> HubUnderTest {
    let mut entry = json!({"type": "http", "url": mock.url, "connectTimeoutMs": 500});
    entry.as_object_mut().unwrap().extend(server.as_object().unwrap().clone());
    hub(&[], json!({"mcpServers": {"slow": entry}, "timeouts": {"hubMs": hub_ms}}))
}

/// Waits until the mock has received `n` `notifications/cancelled`.
fn wait_for_cancelled(mock: &Mock, n: u64) {
    wait_until(&format!("the upstream to get notifications/cancelled #{n}"), PATIENCE, || {
        mock.stats()["cancelled"].as_u64().unwrap_or(0) >= n
    });
}

fn assert_timeout(msg: &Value, layer: &str, timeout_ms: u64) {
    assert_eq!(msg["error"]["code"], -32001, "{msg}");
    assert_eq!(msg["error"]["message"], "Request timed out");
    assert_eq!(msg["error"]["data"], json!({"layer": layer, "server": "slow", "timeoutMs": timeout_ms}), "{msg}");
    assert_eq!(msg["id"], 1);
}

#[test]
fn a_call_past_the_server_timeout_is_answered_32001_upstream_and_cancelled_upstream() {
    let m = legacy_mock(0);
    let h = hub_for(&m, json!({"timeoutMs": 1000}), 8000);
    let sid = legacy_session(&h.url);
    assert_eq!(legacy(&h.url, &sid, "tools/list", json!({})).status, 200);
    let t = Instant::now();
    let r = legacy(&h.url, &sid, "tools/call", json!({"name": "sleep", "arguments": {"ms": 7000}}));
    let elapsed = t.elapsed();
    println!("sleep 7000 ms with timeoutMs 1000 answered after {elapsed:?}");
    assert_timeout(&r.json(), "upstream", 1000);
    // At the deadline, not after the sleep: under half the 7 s sleep.
    assert!(elapsed < Duration::from_millis(3500), "answered at once, not after the sleep: {elapsed:?}");
    wait_for_cancelled(&m, 1);
}

#[test]
fn a_hub_deadline_shorter_than_the_server_timeout_is_answered_with_layer_hub() {
    // 300 ms per upstream request: the cold catalog's probe, initialize and
    // tools/list spend the hub budget, so less than timeoutMs is left.
    let m = legacy_mock(300);
    let h = hub_for(&m, json!({"timeoutMs": 2900}), 3000);
    let sid = legacy_session(&h.url);
    let t = Instant::now();
    let r = legacy(&h.url, &sid, "tools/call", json!({"name": "sleep", "arguments": {"ms": 6000}}));
    println!("sleep 6000 ms under hubMs 3000 answered after {:?}", t.elapsed());
    assert_timeout(&r.json(), "hub", 3000);
    wait_for_cancelled(&m, 1);
}

#[test]
fn a_streamed_call_past_its_deadline_gets_the_error_on_its_stream_and_upstream_is_told() {
    let m = legacy_mock(0);
    let h = hub_for(&m, json!({"timeoutMs": 1000}), 8000);
    let sid = legacy_session(&h.url);
    let t = Instant::now();
    let r = legacy(&h.url, &sid, "tools/call", json!({"name": "progress", "arguments": {"steps": 20, "ms": 200}, "_meta": {"progressToken": "p"}}));
    println!("a 4 s progress stream with timeoutMs 1000 ended after {:?}", t.elapsed());
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("text/event-stream")), "{:?}", r.headers);
    let events = r.events();
    let progress = events.iter().filter(|e| e["method"] == "notifications/progress").count();
    assert!((1..20).contains(&progress), "some progress before the cut: {progress}");
    assert_timeout(events.last().unwrap(), "upstream", 1000);
    wait_for_cancelled(&m, 1);
    // A client without SSE: the stream is read on the worker, same answer as JSON.
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "progress", "arguments": {"steps": 20, "ms": 200}, "_meta": {"progressToken": "p"}}});
    let headers = [("Accept", "application/json"), JSON, ("Mcp-Session-Id", sid.as_str()), ("MCP-Protocol-Version", "2025-06-18")];
    let r = send("POST", &h.url, &headers, &body.to_string());
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("application/json")), "{:?}", r.headers);
    assert_timeout(&r.json(), "upstream", 1000);
    wait_for_cancelled(&m, 2);
}

#[test]
fn progress_extends_a_call_with_reset_timeout_on_progress_up_to_max_total() {
    let m = legacy_mock(0);
    let call = |h: &HubUnderTest, steps: u64, ms: u64| {
        let sid = legacy_session(&h.url);
        let args = json!({"name": "progress", "arguments": {"steps": steps, "ms": ms}, "_meta": {"progressToken": 7}});
        legacy(&h.url, &sid, "tools/call", args).events()
    };
    // 10 progress events 300 ms apart: 3 s in all, past timeoutMs, under the cap.
    let h = hub_for(&m, json!({"timeoutMs": 1000, "resetTimeoutOnProgress": true, "maxTotalTimeoutMs": 7000}), 8000);
    let events = call(&h, 10, 300);
    let last = events.last().unwrap();
    assert_eq!(text_of(last), "slow: progress done, 10 steps", "{last}");
    // Silence longer than timeoutMs still ends the call at timeoutMs, not
    // when the next event comes (7 s later; half of it is the bound).
    let t = Instant::now();
    let events = call(&h, 2, 7000);
    let elapsed = t.elapsed();
    println!("7 s of silence with timeoutMs 1000 (resetTimeoutOnProgress) ended after {elapsed:?}");
    assert_timeout(events.last().unwrap(), "upstream", 1000);
    assert!(elapsed < Duration::from_millis(3500), "cut at its deadline, not at the next event: {elapsed:?}");
    // Progress cannot carry it past maxTotalTimeoutMs.
    let capped = hub_for(&m, json!({"timeoutMs": 1000, "resetTimeoutOnProgress": true, "maxTotalTimeoutMs": 1500}), 8000);
    let events = call(&capped, 10, 300);
    assert_timeout(events.last().unwrap(), "upstream", 1500);
    wait_for_cancelled(&m, 2);
    // Without it, the same 3 s call times out.
    let fixed = hub_for(&m, json!({"timeoutMs": 1000}), 8000);
    assert_timeout(call(&fixed, 10, 300).last().unwrap(), "upstream", 1000);
}
