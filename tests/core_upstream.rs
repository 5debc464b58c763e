//! The hub in front of scripted upstreams (a `Transport` answering literal
//! JSON, given through `Hub::with_connector`), Request → Response without a
//! socket (issue 15 item 7): era bridging both ways, merged lists and
//! names, upstream errors (HTTP 500, 429 + Retry-After held then retried,
//! an expired session healed), a streamed answer relayed with its
//! notification before the result. The same against real mock servers on
//! loopback is in tests/hub_endpoint.rs and tests/hub_retry.rs.

mod core_util;

use core_util::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn text_of(msg: &Value) -> String {
    msg.pointer("/result/content/0/text").and_then(Value::as_str).unwrap_or_else(|| panic!("no text content in {msg}")).to_string()
}

fn call(h: &mcphub::hub::Hub, sid: &str, tool: &str, text: &str) -> Answer {
    legacy(h, sid, "tools/call", json!({"name": tool, "arguments": {"text": text}}))
}

#[test]
fn a_legacy_client_calls_tools_of_a_legacy_and_a_modern_server_each_in_its_own_era() {
    let (h, traffic) = hub_with_servers(
        json!({}),
        vec![("old", json!({}), legacy_server("old", json!([tool("echo")]))), ("new", json!({}), modern_server("new", json!([tool("echo")])))],
    );
    let sid = legacy_session(&h);
    let list = legacy(&h, &sid, "tools/list", json!({})).json();
    // Both offer `echo`: the collision exposes both with their server prefix.
    assert_eq!(names(&list, "tools").into_iter().collect::<BTreeSet<_>>(), BTreeSet::from(["new__echo".into(), "old__echo".into()]));
    assert!(list["result"].get("ttlMs").is_none() && list["result"].get("resultType").is_none(), "a legacy result: {list}");

    let a = call(&h, &sid, "old__echo", "a");
    assert_eq!((a.status, a.sse), (200, false));
    let a = a.json();
    assert_eq!((text_of(&a), a["id"].clone()), ("old: a".to_string(), json!(1)));
    let b = call(&h, &sid, "new__echo", "b").json();
    assert_eq!((text_of(&b), b["id"].clone()), ("new: b".to_string(), json!(1)));
    assert!(b["result"].get("resultType").is_none(), "the modern server's resultType is not for a legacy client: {b}");

    // The legacy server: one session (initialize, initialized), the call on
    // it under its own name, no 2026-07-28 _meta.
    let old = traffic.posts("old");
    let methods: Vec<&str> = old.iter().map(Seen::method).collect();
    assert_eq!(methods, ["server/discover", "initialize", "notifications/initialized", "tools/list", "tools/call"]);
    let c = &traffic.calls("old", "tools/call")[0];
    assert_eq!(c.body["params"]["name"], "echo");
    assert_eq!(c.header("Mcp-Session-Id"), Some("old-s1"));
    assert!(c.body["params"].get("_meta").is_none_or(|m| m.get("io.modelcontextprotocol/protocolVersion").is_none()), "{}", c.body);
    // The modern server: no initialize, each request with its headers and _meta.
    assert!(traffic.calls("new", "initialize").is_empty());
    let c = &traffic.calls("new", "tools/call")[0];
    assert_eq!(c.body["params"]["name"], "echo");
    assert_eq!(c.body["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"], "2026-07-28");
    assert_eq!((c.header("MCP-Protocol-Version"), c.header("Mcp-Method"), c.header("Mcp-Name")), (Some("2026-07-28"), Some("tools/call"), Some("echo")));
    assert!(c.header("Mcp-Session-Id").is_none());
}

#[test]
fn a_modern_client_reaches_a_legacy_server_and_gets_modern_results() {
    let (h, traffic) = hub_with_servers(json!({}), vec![("old", json!({}), legacy_server("old", json!([tool("echo")])))]);
    let list = modern(&h, "tools/list", json!({})).json();
    assert_eq!(names(&list, "tools"), ["echo"], "a single server keeps its names");
    assert_eq!((list["result"]["resultType"].as_str(), list["result"]["cacheScope"].as_str()), (Some("complete"), Some("private")));
    assert!(list["result"]["ttlMs"].as_u64().is_some_and(|t| t > 0), "{list}");
    for text in ["hi", "again"] {
        let r = modern(&h, "tools/call", json!({"name": "echo", "arguments": {"text": text}}));
        assert_eq!(r.status, 200, "{}", r.text);
        let m = r.json();
        assert_eq!((text_of(&m), m["id"].clone(), m["result"]["resultType"].clone()), (format!("old: {text}"), json!("m1"), json!("complete")));
    }
    // Spoken to in its own era: one initialize, one session for both calls.
    assert_eq!(traffic.calls("old", "initialize").len(), 1);
    assert!(traffic.calls("old", "tools/call").iter().all(|c| c.header("Mcp-Session-Id") == Some("old-s1")));
}

#[test]
fn lists_merge_across_servers_and_name_only_collisions_unless_prefix_is_asked() {
    let servers = || {
        vec![
            ("a", json!({}), legacy_server("a", json!([tool("echo"), tool("only_a")]))),
            ("b", json!({}), modern_server("b", json!([tool("echo"), tool("only_b")]))),
        ]
    };
    let (h, traffic) = hub_with_servers(json!({}), servers());
    let sid = legacy_session(&h);
    let list = legacy(&h, &sid, "tools/list", json!({})).json();
    let got: BTreeSet<String> = names(&list, "tools").into_iter().collect();
    assert_eq!(got, ["a__echo", "b__echo", "only_a", "only_b"].iter().map(|s| s.to_string()).collect());
    let only_b = list["result"]["tools"].as_array().unwrap().iter().find(|t| t["name"] == "only_b").unwrap().clone();
    assert_eq!(only_b["description"], "the only_b tool", "items pass through unchanged but for the name");
    // Each name routes to its server under the server's own name.
    assert_eq!(text_of(&call(&h, &sid, "only_b", "x").json()), "b: x");
    assert_eq!(text_of(&call(&h, &sid, "a__echo", "y").json()), "a: y");
    assert_eq!(traffic.calls("b", "tools/call")[0].body["params"]["name"], "only_b");
    assert_eq!(traffic.calls("a", "tools/call")[0].body["params"]["name"], "echo");

    let (h, _) = hub_with_servers(json!({"toolNaming": "prefix"}), servers());
    let got: BTreeSet<String> = names(&modern(&h, "tools/list", json!({})).json(), "tools").into_iter().collect();
    assert_eq!(got, ["a__echo", "a__only_a", "b__echo", "b__only_b"].iter().map(|s| s.to_string()).collect());
}

#[test]
fn one_failing_server_is_left_out_of_a_list() {
    let broken: Script = Arc::new(|body: &Value, _h: &[(String, String)]| match body["method"].as_str().unwrap_or("") {
        "server/discover" => Reply::error(body, -32601, "Method not found"),
        _ => Reply::text(500, "boom"),
    });
    let (h, _) = hub_with_servers(json!({}), vec![("ok", json!({}), modern_server("ok", json!([tool("echo")]))), ("down", json!({}), broken)]);
    let list = modern(&h, "tools/list", json!({}));
    assert_eq!(list.status, 200, "{}", list.text);
    assert_eq!(names(&list.json(), "tools"), ["echo"]);
    let ready = get(&h, "/readyz", &[]).json();
    assert_eq!(ready["servers"]["ok"]["ok"], true, "{ready}");
    assert_eq!(ready["servers"]["down"]["ok"], false, "{ready}");
}

#[test]
fn an_upstream_http_500_is_a_32000_naming_the_server_and_its_json_rpc_errors_pass_through() {
    let script: Script = Arc::new(|body: &Value, _h: &[(String, String)]| match body["method"].as_str().unwrap_or("") {
        "server/discover" => Reply::result(body, json!({"supportedVersions": ["2026-07-28"], "capabilities": {"tools": {}}})),
        "subscriptions/listen" => Reply::status(405),
        "tools/list" => Reply::result(body, json!({"tools": [tool("boom"), tool("refuse")]})),
        "tools/call" if body["params"]["name"] == "boom" => Reply::text(500, "internal failure"),
        "tools/call" => Reply::error(body, -32602, "refuse: bad arguments").with_status(200),
        _ => Reply::status(404),
    });
    let (h, traffic) = hub_with_servers(json!({}), vec![("m", json!({}), script)]);
    let r = modern(&h, "tools/call", json!({"name": "boom", "arguments": {}}));
    let m = r.json();
    assert_eq!(m["id"], "m1");
    assert_eq!(m["error"]["code"], -32000, "{m}");
    assert_eq!(m["error"]["message"], "upstream 'm' answered HTTP 500: internal failure");
    assert_eq!(m["error"]["data"], json!({"server": "m"}));
    assert_eq!(traffic.calls("m", "tools/call").len(), 1, "a tool call is never repeated after a 500");
    let r = modern(&h, "tools/call", json!({"name": "refuse", "arguments": {}}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json(), json!({"jsonrpc": "2.0", "id": "m1", "error": {"code": -32602, "message": "refuse: bad arguments"}}));
}

#[test]
fn a_429_with_retry_after_holds_the_server_then_the_call_is_sent_again() {
    let calls = Arc::new(AtomicUsize::new(0));
    let n = calls.clone();
    let script: Script = Arc::new(move |body: &Value, h: &[(String, String)]| match body["method"].as_str().unwrap_or("") {
        "tools/call" if n.fetch_add(1, Ordering::SeqCst) == 0 => {
            Reply::json(json!({"jsonrpc": "2.0", "id": body["id"], "error": {"code": -32000, "message": "slow down"}})).with_status(429).retry_after("1")
        }
        _ => (legacy_server("old", json!([tool("echo")])))(body, h),
    });
    let (h, traffic) = hub_with_servers(json!({}), vec![("old", json!({}), script)]);
    let sid = legacy_session(&h);
    let r = call(&h, &sid, "echo", "patient");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(text_of(&r.json()), "old: patient");
    let sent = traffic.calls("old", "tools/call");
    assert_eq!(sent.len(), 2, "refused once, then sent again");
    let held = sent[1].at.duration_since(sent[0].at);
    assert!(held.as_millis() >= 900, "the hold the server asked for (1 s) was waited out: {held:?}");
    assert_eq!(sent[0].body["params"], sent[1].body["params"]);
}

#[test]
fn an_expired_legacy_session_is_healed_once_and_the_call_sent_again() {
    let inits = Arc::new(AtomicUsize::new(0));
    let expired = Arc::new(AtomicUsize::new(0));
    let (i, e) = (inits.clone(), expired.clone());
    let script: Script = Arc::new(move |body: &Value, h: &[(String, String)]| {
        let session = h.iter().find(|(k, _)| k.eq_ignore_ascii_case("Mcp-Session-Id")).map(|(_, v)| v.clone());
        match body["method"].as_str().unwrap_or("") {
            "server/discover" => Reply::error(body, -32601, "Method not found"),
            "initialize" => {
                let n = i.fetch_add(1, Ordering::SeqCst) + 1;
                Reply::result(body, json!({"protocolVersion": "2025-11-25", "capabilities": {"tools": {}}})).session(&format!("s{n}"))
            }
            m if m.starts_with("notifications/") => Reply::status(202),
            "tools/list" => Reply::result(body, json!({"tools": [tool("echo")]})),
            // The first session expires at the first call.
            "tools/call" if session.as_deref() == Some("s1") => {
                e.fetch_add(1, Ordering::SeqCst);
                Reply::json(json!({"jsonrpc": "2.0", "id": body["id"], "error": {"code": -32001, "message": "Session not found"}})).with_status(404)
            }
            "tools/call" => tool_text(body, &format!("old@{}", session.unwrap_or_default())),
            _ => Reply::error(body, -32601, "Method not found"),
        }
    });
    let (h, traffic) = hub_with_servers(json!({}), vec![("old", json!({}), script)]);
    let sid = legacy_session(&h);
    let r = call(&h, &sid, "echo", "one");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(text_of(&r.json()), "old@s2: one", "sent again on the new session");
    assert_eq!((inits.load(Ordering::SeqCst), expired.load(Ordering::SeqCst)), (2, 1), "one re-initialize for one expiry");
    let sessions: Vec<String> = traffic.calls("old", "tools/call").iter().map(|c| c.header("Mcp-Session-Id").unwrap_or("-").to_string()).collect();
    assert_eq!(sessions, ["s1", "s2"]);
    // The next call goes straight to the new session.
    assert_eq!(text_of(&call(&h, &sid, "echo", "two").json()), "old@s2: two");
    assert_eq!(inits.load(Ordering::SeqCst), 2);
}

#[test]
fn a_streamed_answer_is_relayed_with_its_notification_before_the_result() {
    let script: Script = Arc::new(|body: &Value, h: &[(String, String)]| match body["method"].as_str().unwrap_or("") {
        "tools/call" => {
            // The token the hub put in place of the client's, echoed back.
            let token = body["params"]["_meta"]["progressToken"].clone();
            let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": token, "progress": 1, "total": 2}});
            let log = json!({"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "working"}});
            let result = json!({"jsonrpc": "2.0", "id": body["id"], "result": {"content": [{"type": "text", "text": "done"}]}});
            Reply::events(vec![progress, log, result])
        }
        _ => (legacy_server("old", json!([tool("slow")])))(body, h),
    });
    let (h, traffic) = hub_with_servers(json!({}), vec![("old", json!({}), script)]);
    let sid = legacy_session(&h);
    let r = legacy(&h, &sid, "tools/call", json!({"name": "slow", "arguments": {}, "_meta": {"progressToken": "tok-A"}}));
    assert_eq!(r.status, 200);
    assert!(r.sse, "a streamed answer for a client that accepts text/event-stream: {:?}", r.headers);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let events = r.events();
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(events[0], json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": "tok-A", "progress": 1, "total": 2}}));
    assert_eq!(events[1]["method"], "notifications/message");
    assert_eq!(events[2], json!({"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": "done"}]}}));
    let sent = &traffic.calls("old", "tools/call")[0];
    let hub_token = sent.body["params"]["_meta"]["progressToken"].as_str().unwrap();
    assert!(hub_token.starts_with("mcphub-"), "the client's token is not sent upstream: {hub_token}");

    // A client that does not accept an event stream gets the result alone, as JSON.
    let body = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "slow", "arguments": {}}}).to_string();
    let r = post(&h, &body, &[("Accept", "application/json"), JSON, ("Mcp-Session-Id", &sid), ("MCP-Protocol-Version", "2025-06-18")]);
    assert_eq!((r.status, r.sse), (200, false));
    assert_eq!(r.json(), json!({"jsonrpc": "2.0", "id": 2, "result": {"content": [{"type": "text", "text": "done"}]}}));
}

#[test]
fn a_legacy_client_that_left_a_call_stream_resumes_it_with_last_event_id() {
    let script: Script = Arc::new(|body: &Value, h: &[(String, String)]| match body["method"].as_str().unwrap_or("") {
        "tools/call" => {
            let token = body["params"]["_meta"]["progressToken"].clone();
            let step = |n: u64| json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": token, "progress": n}});
            let result = json!({"jsonrpc": "2.0", "id": body["id"], "result": {"content": [{"type": "text", "text": "done"}]}});
            Reply::events(vec![step(1), step(2), result])
        }
        _ => (legacy_server("old", json!([tool("slow")])))(body, h),
    });
    let (h, _) = hub_with_servers(json!({}), vec![("old", json!({}), script)]);
    let sid = legacy_session(&h);
    let body = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "slow", "arguments": {}, "_meta": {"progressToken": "t"}}}).to_string();
    // The client reads the priming event and the first progress, then its connection breaks.
    let first = post_leaving_after(&h, &body, &legacy_headers(&sid), 2);
    assert!(first.sse);
    let read = mcphub::protocol::sse::parse_all(&first.text);
    assert_eq!(read.len(), 1, "the priming event has no data: {:?}", first.text);
    assert!(first.text.starts_with("id: ") && first.text.contains("\nretry: 1000\n"), "a priming event opens the stream: {:?}", first.text);
    let last_id = read[0].id.clone().expect("events carry ids");
    assert_eq!(serde_json::from_str::<Value>(&read[0].data).unwrap()["params"]["progress"], 1);
    // The rest, written while it was away, comes back on GET with Last-Event-ID.
    let mut hdrs = legacy_headers(&sid);
    hdrs.push(("Last-Event-ID", &last_id));
    let resumed = get(&h, "/mcp", &hdrs);
    assert_eq!((resumed.status, resumed.sse), (200, true), "{}", resumed.text);
    let events = resumed.events();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["params"], json!({"progressToken": "t", "progress": 2}));
    assert_eq!(events[1], json!({"jsonrpc": "2.0", "id": 5, "result": {"content": [{"type": "text", "text": "done"}]}}));
    // Another session cannot resume it.
    let other = legacy_session(&h);
    let mut hdrs = legacy_headers(&other);
    hdrs.push(("Last-Event-ID", &last_id));
    assert_eq!(get(&h, "/mcp", &hdrs).status, 404);
}

#[test]
fn an_unreachable_server_opens_its_circuit_and_calls_then_fail_fast_with_503() {
    let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let d = down.clone();
    let script: Script = Arc::new(move |body: &Value, h: &[(String, String)]| {
        if d.load(Ordering::SeqCst) {
            return Reply::unreachable();
        }
        (modern_server("m", json!([tool("echo")])))(body, h)
    });
    let (h, traffic) = hub_with_servers(json!({}), vec![("m", json!({"protocol": "modern"}), script)]);
    assert_eq!(text_of(&modern(&h, "tools/call", json!({"name": "echo", "arguments": {"text": "up"}})).json()), "m: up");
    down.store(true, Ordering::SeqCst);
    // Connect failures: -32000 naming the server, until the breaker opens.
    let mut failed = 0;
    let refused = loop {
        let r = modern(&h, "tools/call", json!({"name": "echo", "arguments": {"text": "x"}}));
        if r.status == 503 {
            break r;
        }
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["error"]["code"], -32000, "{}", r.text);
        assert_eq!(r.json()["error"]["message"], "upstream 'm' unreachable: connection refused");
        failed += 1;
        assert!(failed < mcphub::limits::breaker::FAILURES_TO_OPEN as usize + 1, "the circuit never opened");
    };
    // Each failed call was tried twice (a request that never left is sent
    // again once); the fifth connect failure opened the circuit, so the
    // third call's second attempt was refused.
    let sent = traffic.calls("m", "tools/call").len();
    assert_eq!((failed, sent), (2, 1 + mcphub::limits::breaker::FAILURES_TO_OPEN as usize));
    assert_eq!(refused.header("retry-after"), Some("1"), "the first cool-down");
    let e = refused.json();
    assert_eq!(e["id"], "m1");
    assert_eq!(e["error"]["code"], -32000);
    assert_eq!(e["error"]["data"], json!({"server": "m", "retry_after_seconds": 1, "reason": "circuit_open"}));
    // While open, a call fails at once without reaching the server.
    assert_eq!(modern(&h, "tools/call", json!({"name": "echo", "arguments": {"text": "y"}})).status, 503);
    assert_eq!(traffic.calls("m", "tools/call").len(), sent);
    let ready = get(&h, "/readyz", &[]).json();
    assert_eq!(ready["servers"]["m"]["breaker"], "open", "{ready}");
    assert_eq!(metric(&h, "mcphub_circuit_open{server=\"m\"}"), "mcphub_circuit_open{server=\"m\"} 1");
}

#[test]
fn x_mcp_header_params_are_checked_for_modern_clients_and_sent_to_the_server() {
    let region = json!({"name": "region", "inputSchema": {"type": "object", "properties": {"zone": {"type": "string", "x-mcp-header": "Region"}}}});
    let (h, traffic) = hub_with_servers(json!({}), vec![("m", json!({}), modern_server("m", json!([region])))]);
    let call = |zone: &str, header: Option<&str>| {
        let extra: Vec<(&str, &str)> = header.map(|v| ("Mcp-Param-Region", v)).into_iter().collect();
        modern_with(&h, "tools/call", json!({"name": "region", "arguments": {"zone": zone}}), &extra)
    };
    let missing = call("us-west1", None);
    assert_eq!((missing.status, missing.code()), (400, Some(-32020)), "{}", missing.text);
    assert_eq!(missing.message(), "Header mismatch: Mcp-Param-Region header is missing");
    let wrong = call("us-west1", Some("eu-west1"));
    assert_eq!((wrong.status, wrong.code()), (400, Some(-32020)));
    assert_eq!(wrong.message(), "Header mismatch: Mcp-Param-Region header value 'eu-west1' does not match body value 'us-west1'");
    assert!(traffic.calls("m", "tools/call").is_empty(), "refused calls never reach the server");
    let ok = call("us-west1", Some("us-west1"));
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(traffic.calls("m", "tools/call")[0].header("Mcp-Param-Region"), Some("us-west1"));
    // A legacy client sends no such header; the hub adds it for the modern server.
    let sid = legacy_session(&h);
    let r = legacy(&h, &sid, "tools/call", json!({"name": "region", "arguments": {"zone": "asia-east1"}}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json().get("result").is_some(), "{}", r.text);
    assert_eq!(traffic.calls("m", "tools/call")[1].header("Mcp-Param-Region"), Some("asia-east1"));
}

#[test]
fn log_messages_of_a_call_reach_a_client_at_its_level_only() {
    let script: Script = Arc::new(|body: &Value, h: &[(String, String)]| match body["method"].as_str().unwrap_or("") {
        "tools/call" => {
            let log = |level: &str| json!({"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": level, "data": level}});
            let result = json!({"jsonrpc": "2.0", "id": body["id"], "result": {"content": [{"type": "text", "text": "done"}]}});
            Reply::events(vec![log("debug"), log("info"), log("error"), result])
        }
        _ => (legacy_server("old", json!([tool("noisy")])))(body, h),
    });
    let (h, _) = hub_with_servers(json!({}), vec![("old", json!({}), script)]);
    let levels = |a: &Answer| -> Vec<String> {
        a.events().iter().filter(|e| e["method"] == "notifications/message").map(|e| e["params"]["level"].as_str().unwrap().to_string()).collect()
    };
    // A legacy client gets every level until it sets one.
    let sid = legacy_session(&h);
    let all = legacy(&h, &sid, "tools/call", json!({"name": "noisy", "arguments": {}}));
    assert_eq!(levels(&all), ["debug", "info", "error"]);
    assert_eq!(legacy(&h, &sid, "logging/setLevel", json!({"level": "warning"})).json()["result"], json!({}));
    let some = legacy(&h, &sid, "tools/call", json!({"name": "noisy", "arguments": {}}));
    assert_eq!(levels(&some), ["error"]);
    assert_eq!(some.json()["result"]["content"][0]["text"], "done");
    // Another client's level is its own.
    let other = legacy_session(&h);
    assert_eq!(levels(&legacy(&h, &other, "tools/call", json!({"name": "noisy", "arguments": {}}))).len(), 3);
    // A modern client gets none without a logLevel, and those at or above the one it names.
    let none = modern(&h, "tools/call", json!({"name": "noisy", "arguments": {}}));
    assert!(none.sse, "the upstream's stream is relayed: {:?}", none.headers);
    assert!(levels(&none).is_empty(), "{}", none.text);
    assert_eq!(none.json()["result"]["content"][0]["text"], "done");
    let info = modern(&h, "tools/call", json!({"name": "noisy", "arguments": {}, "_meta": {"io.modelcontextprotocol/logLevel": "info"}}));
    assert_eq!(levels(&info), ["info", "error"]);
}
