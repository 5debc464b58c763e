//! Request ids are echoed byte for byte (issue 14, hole 9): ids beyond
//! u64/i64, exponents in any spelling, `1.50`, `-0`, and strings with escapes
//! they did not need (`"\u0041"`, `"a\/b"`, surrogate pairs) come back in the
//! text they were sent as, on JSON and SSE answers, for results relayed from
//! an upstream (whose ids the hub rewrites) and for the hub's own errors
//! (-32601, -32602, -32600), in both eras; see `protocol::jsonrpc::IdText`.

mod hub_util;
mod shared_data;

use hub_util::*;
use shared_data::{with_id, IDS};
use mcphub_mock::Era;
use serde_json::{json, Value};

/// The answer's JSON-RPC message text: the body, or the last SSE event's data.
fn answer_text(r: &Reply) -> String {
    if r.header("content-type").is_some_and(|c| c.starts_with("text/event-stream")) {
        return events_of(&r.text).pop().map(|e| e.text).unwrap_or_default();
    }
    r.text.clone()
}

/// The answer carries the id as sent: the raw bytes of its (last) message,
/// and the message's id is the same value as the id sent.
fn assert_echoed(r: &Reply, id_text: &str, what: &str) {
    let text = answer_text(r);
    assert!(text.contains(&format!(r#""id":{id_text},"#)), "{what}: id {id_text} not echoed as sent: {text}");
    let sent: Value = serde_json::from_str(id_text).unwrap();
    let got: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"));
    assert_eq!(got["id"], sent, "{what}: {text}");
}

/// The answer is the error `code` for the id as sent.
fn assert_error(r: &Reply, id_text: &str, code: i64, what: &str) {
    assert_echoed(r, id_text, what);
    let got: Value = serde_json::from_str(&answer_text(r)).unwrap();
    assert_eq!(got["error"]["code"], code, "{what}: {got}");
}

#[test]
fn a_legacy_client_gets_every_id_back_as_sent() {
    let up = mock(Era::Legacy, "up");
    let h = hub(&[("up", &up.url)], json!({}));
    let sid = legacy_session(&h.url);
    let headers = [ACCEPT, JSON, ("Mcp-Session-Id", sid.as_str()), ("MCP-Protocol-Version", "2025-06-18")];
    for id in IDS {
        // A call relayed to the upstream (JSON answer), one streamed with
        // progress (SSE answer), and the hub's own error.
        let call = json!({"jsonrpc": "2.0", "id": "__ID__", "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "hi"}}});
        let r = send("POST", &h.url, &headers, &with_id(call, id));
        assert_eq!(r.status, 200, "{}", r.text);
        assert_echoed(&r, id, "relayed tools/call");
        let progress = json!({"jsonrpc": "2.0", "id": "__ID__", "method": "tools/call",
            "params": {"name": "progress", "arguments": {"steps": 2, "ms": 1}, "_meta": {"progressToken": "p"}}});
        let r = send("POST", &h.url, &headers, &with_id(progress, id));
        assert!(r.header("content-type").is_some_and(|c| c.starts_with("text/event-stream")), "{:?}", r.headers);
        assert_echoed(&r, id, "streamed tools/call");
        let unknown = json!({"jsonrpc": "2.0", "id": "__ID__", "method": "no/such/method", "params": {}});
        assert_error(&send("POST", &h.url, &headers, &with_id(unknown, id)), id, -32601, "-32601 from the hub");
        let no_tool = json!({"jsonrpc": "2.0", "id": "__ID__", "method": "tools/call", "params": {"name": "no_such_tool", "arguments": {}}});
        assert_error(&send("POST", &h.url, &headers, &with_id(no_tool, id)), id, -32602, "-32602 from the hub");
        let bad_params = json!({"jsonrpc": "2.0", "id": "__ID__", "method": "tools/call", "params": 7});
        assert_error(&send("POST", &h.url, &headers, &with_id(bad_params, id)), id, -32600, "-32600 (params not an object)");
        let bad_version = json!({"jsonrpc": "1.0", "id": "__ID__", "method": "ping"});
        assert_error(&send("POST", &h.url, &headers, &with_id(bad_version, id)), id, -32600, "-32600 (jsonrpc 1.0)");
        // Task answers from the hub's own task table.
        let task = json!({"jsonrpc": "2.0", "id": "__ID__", "method": "tasks/get", "params": {"taskId": "mcphub-tnope"}});
        assert_error(&send("POST", &h.url, &headers, &with_id(task, id)), id, -32602, "tasks/get of an unknown task");
        let tasks = json!({"jsonrpc": "2.0", "id": "__ID__", "method": "tasks/list", "params": {}});
        assert_echoed(&send("POST", &h.url, &headers, &with_id(tasks, id)), id, "tasks/list");
        // Spacing around the id is not part of it.
        let spaced = format!(r#"{{"jsonrpc": "2.0", "id" :  {id} , "method": "ping"}}"#);
        assert_echoed(&send("POST", &h.url, &headers, &spaced), id, "ping with spacing");
    }
    // initialize itself.
    let init = json!({"jsonrpc": "2.0", "id": "__ID__", "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    assert_echoed(&send("POST", &h.url, &[ACCEPT, JSON], &with_id(init, IDS[0])), IDS[0], "initialize");
}

#[test]
fn a_modern_client_gets_every_id_back_as_sent() {
    let up = mock(Era::Modern, "up");
    let h = hub(&[("up", &up.url)], json!({}));
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}
    });
    let headers = |method: &'static str, name: Option<&'static str>| {
        let mut h = vec![ACCEPT, JSON, ("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", method)];
        if let Some(n) = name {
            h.push(("Mcp-Name", n));
        }
        h
    };
    for id in IDS {
        let call = json!({"jsonrpc": "2.0", "id": "__ID__", "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "hi"}, "_meta": meta}});
        let r = send("POST", &h.url, &headers("tools/call", Some("echo")), &with_id(call, id));
        assert_eq!(r.status, 200, "{}", r.text);
        assert_echoed(&r, id, "relayed tools/call");
        let list = json!({"jsonrpc": "2.0", "id": "__ID__", "method": "tools/list", "params": {"_meta": meta}});
        assert_echoed(&send("POST", &h.url, &headers("tools/list", None), &with_id(list, id)), id, "tools/list");
        let unknown = json!({"jsonrpc": "2.0", "id": "__ID__", "method": "no/such/method", "params": {"_meta": meta}});
        assert_error(&send("POST", &h.url, &headers("no/such/method", None), &with_id(unknown, id)), id, -32601, "-32601 from the hub");
        let no_tool = json!({"jsonrpc": "2.0", "id": "__ID__", "method": "tools/call",
            "params": {"name": "no_such_tool", "arguments": {}, "_meta": meta}});
        assert_error(&send("POST", &h.url, &headers("tools/call", Some("no_such_tool")), &with_id(no_tool, id)), id, -32602, "-32602 from the hub");
        // An SSE answer: a call streamed with progress.
        let progress = json!({"jsonrpc": "2.0", "id": "__ID__", "method": "tools/call",
            "params": {"name": "progress", "arguments": {"steps": 2, "ms": 1}, "_meta": {"progressToken": "p"}}});
        let progress = with_id(progress, id).replacen(r#""_meta":{"progressToken":"p"}"#, &format!(r#""_meta":{}"#, {
            let mut m = meta.clone();
            m["progressToken"] = json!("p");
            m
        }), 1);
        let r = send("POST", &h.url, &headers("tools/call", Some("progress")), &progress);
        assert!(r.header("content-type").is_some_and(|c| c.starts_with("text/event-stream")), "{:?}", r.headers);
        assert_echoed(&r, id, "streamed tools/call");
    }
}
