//! Client input across the eras (2026-07-28 `basic/patterns/mrtr.mdx`):
//! a modern upstream's `InputRequiredResult` answered by a legacy client on
//! its call stream, and a legacy upstream's server→client requests answered
//! by a modern client's retry with `inputResponses` + `requestState`. Here
//! against the mock's conformance fixtures over loopback; the rounds against
//! scripted upstreams (keys, tokens, forgeries, parking, missing
//! capabilities, many clients at once) are Request → Response tests in
//! tests/core_mrtr.rs.

mod hub_util;
mod shared_data;

use hub_util::*;
use shared_data::input_of;
use mcphub::http::{Server, ServerConfig};
use mcphub_mock::{Era, MockConfig, MockServer};
use serde_json::{json, Value};
use std::sync::Arc;

// ---------------------------------------------------------------- clients

fn session_with(url: &str, capabilities: Value) -> String {
    let body = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities": capabilities,"clientInfo":{"name":"t","version":"1"}}});
    let r = send("POST", url, &[ACCEPT, JSON], &body.to_string());
    r.header("mcp-session-id").expect("session").to_string()
}

/// A legacy client's `tools/call` read event by event: each server→client
/// request on the stream is answered (POSTed) with `answer(request)`; returns
/// (the requests seen, the call's final message).
fn legacy_call(url: &str, sid: &str, tool: &str, args: Value, answer: impl Fn(&Value) -> Value) -> (Vec<Value>, Value) {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": tool, "arguments": args}}).to_string();
    let mut stream = SseStream::post(url, &[("Mcp-Session-Id", sid), ("MCP-Protocol-Version", "2025-11-25")], &body);
    if !stream.header("content-type").unwrap_or("").starts_with("text/event-stream") {
        let v: Value = serde_json::from_str(&stream.text()).unwrap();
        return (Vec::new(), v);
    }
    let mut seen = Vec::new();
    while let Some(event) = stream.next() {
        let m = event.data;
        if m.get("method").is_some() && m.get("id").is_some() {
            seen.push(m.clone());
            let reply = json!({"jsonrpc": "2.0", "id": m["id"], "result": answer(&m)});
            let r = send("POST", url, &[ACCEPT, JSON, ("Mcp-Session-Id", sid), ("MCP-Protocol-Version", "2025-11-25")], &reply.to_string());
            assert_eq!(r.status, 202);
        } else if m.get("id") == Some(&json!(7)) {
            return (seen, m);
        }
    }
    panic!("the stream ended without the call's response");
}

/// A modern (2026-07-28) `tools/call` with `capabilities` in `_meta` and
/// `extra` params (requestState, inputResponses, progress token).
fn modern_call(url: &str, id: &str, tool: &str, capabilities: Value, extra: Value) -> Reply {
    let mut params = json!({"name": tool, "arguments": {}, "_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": capabilities}});
    for (k, v) in extra.as_object().unwrap() {
        if k == "progressToken" {
            params["_meta"]["progressToken"] = v.clone();
        } else {
            params[k] = v.clone();
        }
    }
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params}).to_string();
    send("POST", url, &[ACCEPT, JSON, ("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", "tools/call"), ("Mcp-Name", tool)], &body)
}

fn sampled(text: &str) -> Value {
    json!({"role": "assistant", "content": {"type": "text", "text": text}, "model": "m"})
}

// ---------------------------------------------------------------- A: modern upstream, legacy client

fn conformance_mock() -> (Arc<MockServer>, mcphub::http::ServerHandle, String) {
    let server = Arc::new(MockServer::with_conformance_fixtures(MockConfig { era: Era::Modern, name: "conf".into(), ..MockConfig::default() }));
    let handle = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default(), server.clone()).expect("bind mock");
    let url = format!("http://{}/mcp", handle.local_addr());
    (server, handle, url)
}

#[test]
fn a_legacy_client_answers_a_modern_servers_sampling_request_on_its_call_stream() {
    let (_mock, mock_handle, mock_url) = conformance_mock();
    let h = hub(&[("conf", &mock_url)], json!({}));
    let sid = session_with(&h.url, json!({"sampling": {}}));
    let (seen, last) = legacy_call(&h.url, &sid, "test_sampling", json!({"prompt": "2+2?"}), |_| sampled("four"));
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["method"], "sampling/createMessage");
    assert!(seen[0]["id"].as_str().unwrap().starts_with("mcphub-i"), "a hub id: {}", seen[0]);
    assert_eq!(seen[0]["params"]["messages"][0]["content"]["text"], "2+2?");
    assert_eq!(text_of(&last), "LLM response: four");
    assert!(last["result"].get("resultType").is_none(), "a legacy result: {last}");
    assert_eq!(h.hub.mrtr().waiting_len(), 0);

    // Elicitation the same way.
    let sid = session_with(&h.url, json!({"elicitation": {}}));
    let (seen, last) =
        legacy_call(&h.url, &sid, "test_elicitation", json!({"message": "who?"}), |_| json!({"action": "accept", "content": {"username": "jane", "email": "j@x"}}));
    assert_eq!(seen[0]["method"], "elicitation/create");
    assert!(text_of(&last).contains("action=accept") && text_of(&last).contains("jane"), "{last}");
    drop(h);
    mock_handle.shutdown();
}

#[test]
fn a_legacy_client_without_the_capability_or_without_sse_gets_a_clear_answer() {
    let (_mock, mock_handle, mock_url) = conformance_mock();
    let h = hub(&[("conf", &mock_url)], json!({}));
    // No sampling declared: the hub does not declare it upstream either, so
    // the server falls back (here: a tool error naming it), no request is sent.
    let sid = session_with(&h.url, json!({}));
    let (seen, last) = legacy_call(&h.url, &sid, "test_sampling", json!({"prompt": "x"}), |_| sampled("never"));
    assert!(seen.is_empty());
    assert!(text_of(&last).contains("did not declare the sampling capability"), "{last}");
    // Declared, but the request does not accept SSE: the capability is not
    // declared upstream (no way to ask this request's client).
    let sid = session_with(&h.url, json!({"sampling": {}}));
    let body = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "test_sampling", "arguments": {"prompt": "x"}}});
    let r = send("POST", &h.url, &[("Accept", "application/json"), JSON, ("Mcp-Session-Id", &sid), ("MCP-Protocol-Version", "2025-11-25")], &body.to_string());
    assert!(text_of(&r.json()).contains("did not declare the sampling capability"), "{}", r.text);
    drop(h);
    mock_handle.shutdown();
}

// ---------------------------------------------------------------- modern upstream, modern client

#[test]
fn a_modern_servers_input_required_passes_through_to_a_modern_client_with_its_own_state() {
    let (_mock, mock_handle, mock_url) = conformance_mock();
    let h = hub(&[("conf", &mock_url)], json!({}));
    let args = json!({"prompt": "2+2?"});
    let mut first = modern_call(&h.url, "m1", "test_sampling", json!({"sampling": {}}), json!({"arguments": args})).json();
    let (key, req, state) = input_of(&first);
    assert_eq!((key.as_str(), req["method"].as_str()), ("sampling", Some("sampling/createMessage")), "the server's own keys: {first}");
    assert!(state.starts_with("mcphub-mock:"), "the server's own requestState, not a hub token: {state}");
    first = modern_call(&h.url, "m2", "test_sampling", json!({"sampling": {}}), json!({"arguments": args, "requestState": state, "inputResponses": {key: sampled("four")}})).json();
    assert_eq!(first["result"]["resultType"], "complete", "{first}");
    assert_eq!(text_of(&first), "LLM response: four");
    assert_eq!(h.hub.mrtr().parked_len(), 0);
    drop(h);
    mock_handle.shutdown();
}
