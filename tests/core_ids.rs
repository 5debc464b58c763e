//! Request ids are echoed byte for byte (issue 14, hole 9) on the answers
//! the hub gives itself, in both eras, Request → Response without a socket
//! (issue 15 item 7). Ids relayed to and from upstreams, and SSE answers,
//! are in tests/hub_ids.rs.

mod core_util;
mod shared_data;

use core_util::*;
use shared_data::{with_id, IDS};
use serde_json::{json, Value};

/// The shared ids, and `1E3` (an exponent in capitals without a sign).
fn ids() -> Vec<&'static str> {
    std::iter::once("1E3").chain(IDS).collect()
}

/// The answer carries the id as sent: the raw bytes of its message, and the
/// message's id is the same value as the id sent.
fn assert_echoed(r: &Answer, id_text: &str, what: &str) {
    let text = r.message_text();
    assert!(text.contains(&format!(r#""id":{id_text},"#)), "{what}: id {id_text} not echoed as sent: {text}");
    let sent: Value = serde_json::from_str(id_text).unwrap();
    let got: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"));
    assert_eq!(got["id"], sent, "{what}: {text}");
}

/// The answer is the error `code` for the id as sent, with HTTP `status`.
fn assert_error(r: &Answer, status: u16, id_text: &str, code: i64, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.text);
    assert_echoed(r, id_text, what);
    assert_eq!(r.code(), Some(code), "{what}: {}", r.text);
}

#[test]
fn a_legacy_client_gets_every_id_back_as_sent_from_the_hubs_own_answers() {
    let h = hub(json!({}));
    let sid = legacy_session(&h);
    let headers = legacy_headers(&sid);
    for id in ids() {
        let ping = json!({"jsonrpc": "2.0", "id": "__ID__", "method": "ping"});
        let r = post(&h, &with_id(ping, id), &headers);
        assert_eq!(r.status, 200);
        assert_echoed(&r, id, "ping");
        assert_eq!(r.json()["result"], json!({}));
        let list = json!({"jsonrpc": "2.0", "id": "__ID__", "method": "tools/list", "params": {}});
        assert_echoed(&post(&h, &with_id(list, id), &headers), id, "tools/list");
        let unknown = json!({"jsonrpc": "2.0", "id": "__ID__", "method": "no/such/method", "params": {}});
        assert_error(&post(&h, &with_id(unknown, id), &headers), 200, id, -32601, "-32601 from the hub");
        let no_tool = json!({"jsonrpc": "2.0", "id": "__ID__", "method": "tools/call", "params": {"name": "no_such_tool", "arguments": {}}});
        assert_error(&post(&h, &with_id(no_tool, id), &headers), 200, id, -32602, "-32602 from the hub");
        let bad_params = json!({"jsonrpc": "2.0", "id": "__ID__", "method": "tools/call", "params": 7});
        assert_error(&post(&h, &with_id(bad_params, id), &headers), 400, id, -32600, "-32600 (params not an object)");
        let bad_version = json!({"jsonrpc": "1.0", "id": "__ID__", "method": "ping"});
        assert_error(&post(&h, &with_id(bad_version, id), &headers), 400, id, -32600, "-32600 (jsonrpc 1.0)");
        let no_method = json!({"jsonrpc": "2.0", "id": "__ID__"});
        assert_error(&post(&h, &with_id(no_method, id), &headers), 400, id, -32600, "-32600 (no method)");
        // Task answers from the hub's own task table.
        let task = json!({"jsonrpc": "2.0", "id": "__ID__", "method": "tasks/get", "params": {"taskId": "mcphub-tnope"}});
        assert_error(&post(&h, &with_id(task, id), &headers), 200, id, -32602, "tasks/get of an unknown task");
        let tasks = json!({"jsonrpc": "2.0", "id": "__ID__", "method": "tasks/list", "params": {}});
        assert_echoed(&post(&h, &with_id(tasks, id), &headers), id, "tasks/list");
        // An unknown session answers with the id too.
        let on_unknown = json!({"jsonrpc": "2.0", "id": "__ID__", "method": "ping"});
        assert_error(&post(&h, &with_id(on_unknown, id), &legacy_headers("nope")), 404, id, -32600, "unknown session");
        // Spacing around the id is not part of it.
        let spaced = format!(r#"{{"jsonrpc": "2.0", "id" :  {id} , "method": "ping"}}"#);
        assert_echoed(&post(&h, &spaced, &headers), id, "ping with spacing");
    }
    for id in ids() {
        let init = json!({"jsonrpc": "2.0", "id": "__ID__", "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
        assert_echoed(&post(&h, &with_id(init, id), &[ACCEPT, JSON]), id, "initialize");
    }
}

#[test]
fn a_modern_client_gets_every_id_back_as_sent_from_the_hubs_own_answers() {
    let h = hub(json!({}));
    let meta = modern_meta();
    let headers = |method: &'static str, name: Option<&'static str>| {
        let mut h = vec![ACCEPT, JSON, ("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", method)];
        if let Some(n) = name {
            h.push(("Mcp-Name", n));
        }
        h
    };
    for id in ids() {
        let discover = json!({"jsonrpc": "2.0", "id": "__ID__", "method": "server/discover", "params": {"_meta": meta}});
        assert_echoed(&post(&h, &with_id(discover, id), &headers("server/discover", None)), id, "server/discover");
        let list = json!({"jsonrpc": "2.0", "id": "__ID__", "method": "tools/list", "params": {"_meta": meta}});
        assert_echoed(&post(&h, &with_id(list, id), &headers("tools/list", None)), id, "tools/list");
        let unknown = json!({"jsonrpc": "2.0", "id": "__ID__", "method": "no/such/method", "params": {"_meta": meta}});
        assert_error(&post(&h, &with_id(unknown, id), &headers("no/such/method", None)), 404, id, -32601, "-32601 from the hub");
        let no_tool = json!({"jsonrpc": "2.0", "id": "__ID__", "method": "tools/call",
            "params": {"name": "no_such_tool", "arguments": {}, "_meta": meta}});
        assert_error(&post(&h, &with_id(no_tool, id), &headers("tools/call", Some("no_such_tool"))), 200, id, -32602, "-32602 from the hub");
        // The edge's own refusals: a header mismatch, a missing _meta.
        let mismatch = json!({"jsonrpc": "2.0", "id": "__ID__", "method": "tools/list", "params": {"_meta": meta}});
        assert_error(&post(&h, &with_id(mismatch, id), &headers("prompts/list", None)), 400, id, -32020, "-32020 header mismatch");
        let no_meta = json!({"jsonrpc": "2.0", "id": "__ID__", "method": "tools/list", "params": {}});
        assert_error(&post(&h, &with_id(no_meta, id), &headers("tools/list", None)), 400, id, -32602, "-32602 missing _meta");
    }
}

/// A server of `era` whose `echo` answers JSON, and whose `progress` answers
/// an event stream: a progress notification, then the result.
fn relaying_server(era: &str) -> Script {
    let base = if era == "legacy" { legacy_server("up", json!([tool("echo"), tool("progress")])) } else { modern_server("up", json!([tool("echo"), tool("progress")])) };
    std::sync::Arc::new(move |body: &Value, h: &[(String, String)]| {
        if body["method"] == "tools/call" && body["params"]["name"] == "progress" {
            let token = body["params"]["_meta"]["progressToken"].clone();
            let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": token, "progress": 1}});
            let result = json!({"jsonrpc": "2.0", "id": body["id"], "result": {"content": [{"type": "text", "text": "2 steps"}]}});
            return Reply::events(vec![progress, result]);
        }
        base(body, h)
    })
}

#[test]
fn ids_are_echoed_as_sent_on_relayed_json_and_sse_answers_in_both_eras() {
    for era in ["legacy", "modern"] {
        let (h, traffic) = hub_with_servers(json!({}), vec![("up", json!({}), relaying_server(era))]);
        let sid = legacy_session(&h);
        let meta = modern_meta();
        for id in ids() {
            let call = json!({"jsonrpc": "2.0", "id": "__ID__", "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "hi"}}});
            let r = post(&h, &with_id(call, id), &legacy_headers(&sid));
            assert_eq!((r.status, r.sse), (200, false), "{era}: {}", r.text);
            assert_echoed(&r, id, "a legacy client's relayed tools/call");
            let progress = json!({"jsonrpc": "2.0", "id": "__ID__", "method": "tools/call",
                "params": {"name": "progress", "arguments": {}, "_meta": {"progressToken": "p"}}});
            let r = post(&h, &with_id(progress, id), &legacy_headers(&sid));
            assert!(r.sse, "{era}: {:?}", r.headers);
            assert_echoed(&r, id, "a legacy client's streamed tools/call");
            assert_eq!(r.events()[0]["params"]["progressToken"], "p");

            let modern_headers = |name: &'static str| vec![ACCEPT, JSON, ("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", "tools/call"), ("Mcp-Name", name)];
            let call = json!({"jsonrpc": "2.0", "id": "__ID__", "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "hi"}, "_meta": meta}});
            let r = post(&h, &with_id(call, id), &modern_headers("echo"));
            assert_eq!((r.status, r.sse), (200, false), "{era}: {}", r.text);
            assert_echoed(&r, id, "a modern client's relayed tools/call");
            let mut m = meta.clone();
            m["progressToken"] = json!("p");
            let progress = json!({"jsonrpc": "2.0", "id": "__ID__", "method": "tools/call", "params": {"name": "progress", "arguments": {}, "_meta": m}});
            let r = post(&h, &with_id(progress, id), &modern_headers("progress"));
            assert!(r.sse, "{era}: {:?}", r.headers);
            assert_echoed(&r, id, "a modern client's streamed tools/call");
        }
        // Upstream ids are the hub's own, never the client's text.
        let calls = traffic.calls("up", "tools/call");
        assert_eq!(calls.len(), ids().len() * 4);
        assert!(calls.iter().all(|c| !ids().contains(&c.body["id"].to_string().as_str())), "{era}");
    }
}
