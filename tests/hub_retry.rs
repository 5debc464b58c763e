//! Transport errors are retried only where safe (docs/decisions.md D3, issue 6): a
//! call that may have reached the server is sent again only for tools
//! annotated `readOnlyHint`/`idempotentHint` (and for reads); others get
//! the error, and the server saw the request once.

mod hub_util;

use hub_util::{fake_upstream, hub, id_of, write_json, Client};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[test]
fn a_call_cut_in_transit_is_resent_only_for_read_only_or_idempotent_tools() {
    let calls: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let seen = calls.clone();
    // A 2026-07-28 server whose first answer to each tool call is a dropped connection.
    let fake = fake_upstream(move |body, out, _| {
        let msg: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let id = id_of(body);
        match msg["method"].as_str().unwrap_or("") {
            "tools/list" => write_json(out, &json!({"jsonrpc": "2.0", "id": id, "result": {"tools": [
                {"name": "lookup", "inputSchema": {"type": "object"}, "annotations": {"readOnlyHint": true}},
                {"name": "put", "inputSchema": {"type": "object"}, "annotations": {"idempotentHint": true}},
                {"name": "charge", "inputSchema": {"type": "object"}}
            ]}})),
            "tools/call" => {
                let name = msg["params"]["name"].as_str().unwrap_or("").to_string();
                let n = {
                    let mut c = seen.lock().unwrap();
                    let n = c.entry(name.clone()).or_insert(0);
                    *n += 1;
                    *n
                };
                if n == 1 {
                    let _ = out.shutdown(std::net::Shutdown::Both); // read, then gone
                } else {
                    write_json(out, &json!({"jsonrpc": "2.0", "id": id, "result": {"content": [{"type": "text", "text": format!("did {name}")}]}}));
                }
            }
            _ => write_json(out, &json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "Method not found"}})),
        }
    });
    let h = hub(&[], json!({"mcpServers": {"f": {"url": fake.url, "protocol": "modern", "timeoutMs": 5000}}}));
    let c = Client::connect(&h.url);
    c.request("tools/list", json!({})).unwrap();
    assert_eq!(c.call("lookup").unwrap(), "did lookup");
    assert_eq!(c.call("put").unwrap(), "did put");
    let charge = c.call("charge").unwrap_err();
    assert!(charge.contains("-32000") || charge.contains("unreachable"), "{charge}");
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.get("lookup"), Some(&2), "read-only: sent again");
    assert_eq!(calls.get("put"), Some(&2), "idempotent: sent again");
    assert_eq!(calls.get("charge"), Some(&1), "not annotated: never sent twice");
}
