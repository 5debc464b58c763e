//! A modern client's multi round-trip request (2026-07-28 `basic/patterns/mrtr.mdx`)
//! through the hub to a modern upstream: the client's sampling/elicitation/roots
//! capabilities reach the upstream, its `InputRequiredResult` reaches the client
//! unchanged, and the retry's `inputResponses` / `requestState` reach the upstream.
//! The upstream is the mock with its conformance fixtures, on a real loopback socket.

mod hub_util;

use hub_util::*;
use mcphub::http::{Server, ServerConfig};
use mcphub_mock::{Era, MockConfig, MockServer};
use serde_json::{json, Value};
use std::sync::Arc;

/// POSTs a modern `tools/call` of `tool` with these client capabilities and extra params.
fn call(url: &str, tool: &str, caps: Value, extra: Value) -> Reply {
    let mut params = json!({"name": tool, "arguments": {}, "_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "mrtr-test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": caps}});
    if let (Some(p), Some(e)) = (params.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    let body = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": params}).to_string();
    let headers = [("Accept", "application/json"), ("Content-Type", "application/json"),
                   ("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", "tools/call"), ("Mcp-Name", tool)];
    send("POST", url, &headers, &body)
}

#[test]
fn input_required_and_its_retry_pass_through_the_hub_to_a_modern_upstream() {
    let server = Arc::new(MockServer::with_conformance_fixtures(MockConfig { era: Era::Modern, ..MockConfig::default() }));
    let upstream = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default(), server.clone()).expect("bind mock");
    let h = hub(&[("up", &format!("http://{}/mcp", upstream.local_addr()))], json!({}));
    let caps = json!({"elicitation": {}, "sampling": {}, "roots": {}});

    let first = call(&h.url, "test_input_required_result_request_state", caps.clone(), json!({}));
    assert_eq!(first.status, 200, "{}", first.text);
    let r = first.json()["result"].clone();
    assert_eq!(r["resultType"], "input_required", "{r}");
    assert_eq!(r["inputRequests"]["confirm"]["method"], "elicitation/create");
    let state = r["requestState"].as_str().expect("requestState passes through").to_string();

    let retry = json!({"requestState": state, "inputResponses": {"confirm": {"action": "accept", "content": {"ok": true}}}});
    let done = call(&h.url, "test_input_required_result_request_state", caps.clone(), retry);
    let d = done.json();
    assert_eq!(d["id"], 5);
    assert_eq!(d["result"]["resultType"], "complete", "{d}");
    assert!(d["result"]["content"][0]["text"].as_str().unwrap_or_default().contains("state-ok"), "{d}");

    // An altered state is the upstream's -32602, relayed.
    let forged = json!({"requestState": format!("{state}-TAMPERED"), "inputResponses": {"confirm": {"action": "accept", "content": {"ok": true}}}});
    assert_eq!(call(&h.url, "test_input_required_result_request_state", caps, forged).json()["error"]["code"], -32602);

    // The client's own capabilities decide: without sampling, the upstream's -32021 comes back as HTTP 400.
    let refused = call(&h.url, "test_missing_capability", json!({}), json!({}));
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert_eq!(refused.json()["error"]["code"], -32021);
    assert_eq!(refused.json()["error"]["data"]["requiredCapabilities"], json!({"sampling": {}}));
    let sampled = call(&h.url, "test_input_required_result_capabilities", json!({"sampling": {}}), json!({}));
    let asks = sampled.json()["result"]["inputRequests"].as_object().cloned().unwrap_or_default();
    assert_eq!(asks.keys().collect::<Vec<_>>(), ["greeting"], "{}", sampled.text);
    drop(h);
    upstream.shutdown();
}
