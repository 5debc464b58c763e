//! The hub's `/mcp` endpoint against real mock upstreams on loopback sockets.
//! What needs no upstream (openings, sessions, JSON-RPC errors, header
//! validation, Origin) is tested without a socket in tests/core_endpoint.rs.

mod hub_util;

use hub_util::*;
use mcphub_mock::{Era, MockConfig};
use serde_json::{json, Value};
use std::time::Duration;

#[test]
fn a_legacy_client_lists_and_calls_tools_of_a_legacy_and_a_modern_server() {
    let (legacy_up, modern_up) = (mock(Era::Legacy, "old"), mock(Era::Modern, "new"));
    let h = hub(&[("old", &legacy_up.url), ("new", &modern_up.url)], json!({}));
    let sid = legacy_session(&h.url);

    let list = legacy(&h.url, &sid, "tools/list", json!({})).json();
    let names = names(&list, "tools");
    // Both mocks offer `echo`: the collision exposes both with their server prefix.
    assert!(names.contains(&"old__echo".to_string()) && names.contains(&"new__echo".to_string()), "{names:?}");
    assert!(!names.contains(&"echo".to_string()));
    assert!(list["result"].get("ttlMs").is_none(), "legacy results carry no modern cache hints");

    let a = legacy(&h.url, &sid, "tools/call", json!({"name": "old__echo", "arguments": {"text": "a"}})).json();
    assert_eq!(text_of(&a), "old: a");
    let b = legacy(&h.url, &sid, "tools/call", json!({"name": "new__echo", "arguments": {"text": "b"}})).json();
    assert_eq!(text_of(&b), "new: b");
    assert_eq!(b["id"], 1);
    assert!(b["result"].get("resultType").is_none(), "a legacy client gets no resultType: {b}");
    assert_eq!(modern_up.stats()["tools"]["echo"], 1);
    assert_eq!(legacy_up.stats()["tools"]["echo"], 1);
}

#[test]
fn a_modern_client_reaches_a_legacy_only_server_and_gets_modern_results() {
    let up = mock(Era::Legacy, "old");
    let h = hub(&[("old", &up.url)], json!({}));
    let list = modern(&h.url, "tools/list", json!({})).json();
    assert_eq!(list["result"]["resultType"], "complete");
    assert_eq!(list["result"]["cacheScope"], "private");
    assert!(list["result"]["ttlMs"].as_u64().is_some_and(|t| t > 0), "{list}");
    assert!(names(&list, "tools").contains(&"echo".to_string()), "a single server keeps its names");

    let r = modern(&h.url, "tools/call", json!({"name": "echo", "arguments": {"text": "hi"}}));
    assert_eq!(r.status, 200, "{}", r.text);
    let m = r.json();
    assert_eq!(text_of(&m), "old: hi");
    assert_eq!(m["result"]["resultType"], "complete");
    assert_eq!(m["id"], "m1");
    // The legacy upstream was spoken to in its own era: one initialize, one session.
    assert_eq!(up.stats()["initialize"], 1);
}

#[test]
fn legacy_sessions_are_required_checked_and_deleted() {
    let up = mock(Era::Dual, "m");
    let h = hub(&[("m", &up.url)], json!({}));
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let none = send("POST", &h.url, &[ACCEPT, JSON], body);
    assert_eq!(none.status, 400);
    assert_eq!(none.json()["error"]["code"], -32600);
    let unknown = send("POST", &h.url, &[ACCEPT, JSON, ("Mcp-Session-Id", "nope")], body);
    assert_eq!(unknown.status, 404);

    let sid = legacy_session(&h.url);
    assert_eq!(legacy(&h.url, &sid, "ping", json!({})).json()["result"], json!({}));
    // An unknown version in the header is not a legacy one: the request is
    // read as modern and refused with -32022 naming the supported versions.
    let bad_version = send("POST", &h.url, &[ACCEPT, JSON, ("Mcp-Session-Id", &sid), ("MCP-Protocol-Version", "2024-01-01")], body);
    assert_eq!(bad_version.status, 400);
    assert_eq!(bad_version.json()["error"]["code"], -32022);
    // A missing MCP-Protocol-Version is accepted (assumed 2025-03-26).
    let no_version = send("POST", &h.url, &[ACCEPT, JSON, ("Mcp-Session-Id", &sid)], body);
    assert_eq!(no_version.status, 200);

    assert_eq!(send("DELETE", &h.url, &[("Mcp-Session-Id", &sid)], "").status, 200);
    assert_eq!(legacy(&h.url, &sid, "ping", json!({})).status, 404);
    assert_eq!(send("DELETE", &h.url, &[("Mcp-Session-Id", &sid)], "").status, 404);
}

#[test]
fn a_body_beyond_the_configured_limit_is_413_before_the_hub_sees_it() {
    // The JSON-RPC errors of bad input are in tests/core_endpoint.rs (no socket).
    let h = hub(&[], json!({}));
    let big = "x".repeat(5 * 1024 * 1024);
    assert_eq!(send("POST", &h.url, &[ACCEPT, JSON], &big).status, 413);
}

#[test]
fn clients_share_one_upstream_session() {
    let up = mock(Era::Legacy, "old");
    let h = hub(&[("old", &up.url)], json!({}));
    let seen: Vec<String> = (0..3)
        .map(|_| {
            let sid = legacy_session(&h.url);
            text_of(&legacy(&h.url, &sid, "tools/call", json!({"name": "get_session_id", "arguments": {}})).json())
        })
        .collect();
    assert!(seen[0].starts_with("old: sess-"), "{seen:?}");
    assert!(seen.iter().all(|s| s == &seen[0]), "{seen:?}");
    assert_eq!(up.stats()["initialize"], 1);
}

#[test]
fn concurrent_first_calls_make_one_upstream_initialize() {
    let up = mock_with(MockConfig { era: Era::Legacy, name: "old".into(), latency: Duration::from_millis(50), ..MockConfig::default() });
    let h = hub(&[("old", &up.url)], json!({}));
    let url = h.url.clone();
    let threads: Vec<_> = (0..12)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let r = modern(&url, "tools/call", json!({"name": "counter", "arguments": {}}));
                r.json()
            })
        })
        .collect();
    for t in threads {
        let m = t.join().unwrap();
        assert!(m.get("result").is_some(), "{m}");
    }
    assert_eq!(up.stats()["initialize"], 1);
}

#[test]
fn an_expired_upstream_session_is_reestablished_and_the_call_retried() {
    let up = mock_with(MockConfig { era: Era::Legacy, name: "old".into(), expire_sessions_every: 3, ..MockConfig::default() });
    let h = hub(&[("old", &up.url)], json!({}));
    let sid = legacy_session(&h.url);
    for i in 0..10 {
        let m = legacy(&h.url, &sid, "tools/call", json!({"name": "echo", "arguments": {"text": format!("n{i}")}})).json();
        assert_eq!(text_of(&m), format!("old: n{i}"), "call {i}: {m}");
    }
    let stats = up.stats();
    assert!(stats["expired_404"].as_u64().unwrap() >= 2, "{stats}");
    assert_eq!(stats["initialize"].as_u64(), Some(stats["expired_404"].as_u64().unwrap() + 1), "one re-initialize per expiry: {stats}");
}

#[test]
fn a_dead_server_is_left_out_of_lists_and_shown_down_in_readyz() {
    let up = mock(Era::Dual, "live");
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/mcp", dead.local_addr().unwrap());
    drop(dead);
    let h = hub(&[("live", &up.url), ("dead", &dead_url)], json!({}));
    let list = modern(&h.url, "tools/list", json!({})).json();
    assert!(names(&list, "tools").contains(&"echo".to_string()), "{list}");
    let ready = send("GET", &h.url.replace("/mcp", "/readyz"), &[], "").json();
    assert_eq!(ready["servers"]["dead"]["ok"], false, "{ready}");
    assert_eq!(ready["servers"]["live"]["ok"], true, "{ready}");
}

#[test]
fn progress_comes_back_on_the_calls_stream_with_the_clients_token() {
    let up = mock(Era::Legacy, "old");
    let h = hub(&[("old", &up.url)], json!({}));
    let sid = legacy_session(&h.url);
    let r = legacy(&h.url, &sid, "tools/call", json!({"name": "progress", "arguments": {"steps": 3, "ms": 10}, "_meta": {"progressToken": "tok-A"}}));
    assert!(r.header("content-type").unwrap().starts_with("text/event-stream"));
    let events = r.events();
    let progress: Vec<&Value> = events.iter().filter(|e| e["method"] == "notifications/progress").collect();
    assert_eq!(progress.len(), 3, "{events:?}");
    assert!(progress.iter().all(|p| p["params"]["progressToken"] == "tok-A"), "{progress:?}");
    assert_eq!(events.last().unwrap()["id"], 1);
    assert!(text_of(events.last().unwrap()).contains("3 steps"));
}

#[test]
fn prompts_resources_templates_and_completions_are_routed() {
    let (a, b) = (mock(Era::Legacy, "a"), mock(Era::Modern, "b"));
    let h = hub(&[("a", &a.url), ("b", &b.url)], json!({"toolNaming": "prefix"}));
    let sid = legacy_session(&h.url);
    let prompts = legacy(&h.url, &sid, "prompts/list", json!({})).json();
    assert_eq!(names(&prompts, "prompts"), vec!["a__greeting", "b__greeting"]);
    let (a0, b0) = (a.stats()["requests"].as_u64().unwrap(), b.stats()["requests"].as_u64().unwrap());
    let got = legacy(&h.url, &sid, "prompts/get", json!({"name": "b__greeting", "arguments": {"name": "Ada"}})).json();
    assert!(got["result"]["messages"].to_string().contains("Ada"), "{got}");
    assert_eq!(b.stats()["requests"].as_u64().unwrap(), b0 + 1, "b__greeting went to b");
    assert_eq!(a.stats()["requests"].as_u64().unwrap(), a0, "and not to a");

    let res = legacy(&h.url, &sid, "resources/list", json!({})).json();
    assert_eq!(res["result"]["resources"].as_array().unwrap().len(), 1, "the same URI twice is listed once: {res}");
    let read = legacy(&h.url, &sid, "resources/read", json!({"uri": "mock://item/42"})).json();
    assert!(read["result"]["contents"].to_string().contains("42"), "{read}");
    let templates = legacy(&h.url, &sid, "resources/templates/list", json!({})).json();
    assert_eq!(templates["result"]["resourceTemplates"][0]["uriTemplate"], "mock://item/{id}", "{templates}");

    let a1 = a.stats()["requests"].as_u64().unwrap();
    let c = legacy(&h.url, &sid, "completion/complete", json!({"ref": {"type": "ref/prompt", "name": "a__greeting"}, "argument": {"name": "name", "value": "al"}})).json();
    assert_eq!(c["result"]["completion"]["values"], json!(["alice", "albert"]), "{c}");
    assert_eq!(a.stats()["requests"].as_u64().unwrap(), a1 + 1, "the prompt ref went to a");

    let offerings = legacy(&h.url, &sid, "offerings/list", json!({})).json();
    assert_eq!(offerings["result"]["tools"].as_array().unwrap().len(), names(&legacy(&h.url, &sid, "tools/list", json!({})).json(), "tools").len());
    assert!(offerings["result"]["prompts"].is_array() && offerings["result"]["resources"].is_array());
}

#[test]
fn x_mcp_header_params_are_checked_for_modern_clients_and_sent_to_modern_servers() {
    let up = mock(Era::Modern, "b");
    let h = hub(&[("b", &up.url)], json!({}));
    let list = modern(&h.url, "tools/list", json!({})).json();
    let region = list["result"]["tools"].as_array().unwrap().iter().find(|t| t["name"] == "region").cloned();
    let Some(region) = region else { panic!("the mock offers a `region` tool with x-mcp-header: {list}") };
    let prop = region["inputSchema"]["properties"].as_object().unwrap().iter().find(|(_, p)| p.get("x-mcp-header").is_some());
    let (arg, p) = prop.expect("a property with x-mcp-header");
    let header = format!("Mcp-Param-{}", p["x-mcp-header"].as_str().unwrap());

    // Without the mirrored header a modern client is refused by the hub (-32020).
    let missing = modern(&h.url, "tools/call", json!({"name": "region", "arguments": {arg: "us-west1"}}));
    assert_eq!(missing.status, 400, "{}", missing.text);
    assert_eq!(missing.json()["error"]["code"], -32020);

    // A legacy client sends no such header; the hub adds it for the modern server.
    let sid = legacy_session(&h.url);
    let ok = legacy(&h.url, &sid, "tools/call", json!({"name": "region", "arguments": {arg: "us-west1"}})).json();
    assert!(ok.get("result").is_some(), "{ok} — header sent: {header}");
}

#[test]
fn a_slow_server_is_left_out_of_lists_after_the_list_budget() {
    let fast = mock(Era::Dual, "fast");
    let slow = mock_with(MockConfig { era: Era::Dual, name: "slow".into(), latency: Duration::from_millis(1500), ..MockConfig::default() });
    let h = hub(&[("fast", &fast.url), ("slow", &slow.url)], json!({"listTimeoutMs": 300}));
    let list = modern(&h.url, "prompts/list", json!({})).json();
    // Both mocks offer `greeting`: had the slow one answered, both would be prefixed.
    assert_eq!(names(&list, "prompts"), vec!["greeting"], "only the fast server's prompt: {list}");
}

