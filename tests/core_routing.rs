//! Prompts, resources, templates and completions merged and routed to the
//! right scripted upstream (a legacy and a modern one), Request → Response
//! without a socket (issue 15 item 7); against real mocks:
//! tests/hub_endpoint.rs.

mod core_util;

use core_util::*;
use serde_json::{json, Value};
use std::sync::Arc;

/// `base` (a legacy or modern server) plus a prompt `greeting`, the resource
/// `mock://{name}/1`, the template `mock://{name}/{id}`, and completions;
/// every answer names the server.
fn catalog_server(name: &str, base: Script) -> Script {
    let name = name.to_string();
    Arc::new(move |body: &Value, h: &[(String, String)]| {
        let p = &body["params"];
        let result = match body["method"].as_str().unwrap_or("") {
            "prompts/list" => json!({"prompts": [{"name": "greeting", "arguments": [{"name": "name"}]}]}),
            "prompts/get" => json!({"messages": [{"role": "user", "content": {"type": "text", "text": format!("{name} greets {}", p["arguments"]["name"].as_str().unwrap_or("?"))}}]}),
            "resources/list" => json!({"resources": [{"uri": format!("mock://{name}/1"), "name": "one"}]}),
            "resources/templates/list" => json!({"resourceTemplates": [{"uriTemplate": format!("mock://{name}/{{id}}"), "name": "item"}]}),
            "resources/read" => json!({"contents": [{"uri": p["uri"], "text": format!("{name} read {}", p["uri"].as_str().unwrap_or(""))}]}),
            "completion/complete" => json!({"completion": {"values": [format!("{name}:{}", p["ref"]["name"].as_str().unwrap_or("?"))]}}),
            _ => return base(body, h),
        };
        Reply::result(body, result)
    })
}

#[test]
fn prompts_resources_templates_and_completions_are_merged_and_routed() {
    let (h, traffic) = hub_with_servers(
        json!({}),
        vec![
            ("a", json!({}), catalog_server("a", legacy_server("a", json!([])))),
            ("b", json!({}), catalog_server("b", modern_server("b", json!([])))),
        ],
    );
    let sid = legacy_session(&h);
    let prompts = legacy(&h, &sid, "prompts/list", json!({})).json();
    let mut got = names(&prompts, "prompts");
    got.sort();
    assert_eq!(got, ["a__greeting", "b__greeting"]);
    let g = legacy(&h, &sid, "prompts/get", json!({"name": "b__greeting", "arguments": {"name": "Ada"}})).json();
    assert_eq!(g["result"]["messages"][0]["content"]["text"], "b greets Ada", "{g}");
    assert_eq!(traffic.calls("b", "prompts/get")[0].body["params"]["name"], "greeting", "sent under the server's own name");
    assert!(traffic.calls("a", "prompts/get").is_empty());

    let res = legacy(&h, &sid, "resources/list", json!({})).json();
    let mut uris: Vec<&str> = res["result"]["resources"].as_array().unwrap().iter().filter_map(|r| r["uri"].as_str()).collect();
    uris.sort();
    assert_eq!(uris, ["mock://a/1", "mock://b/1"], "URIs are not renamed");
    let templates = legacy(&h, &sid, "resources/templates/list", json!({})).json();
    assert_eq!(templates["result"]["resourceTemplates"].as_array().unwrap().len(), 2, "{templates}");
    for (uri, server) in [("mock://b/1", "b"), ("mock://a/1", "a"), ("mock://a/42", "a")] {
        let read = legacy(&h, &sid, "resources/read", json!({"uri": uri})).json();
        assert_eq!(read["result"]["contents"][0]["text"], format!("{server} read {uri}"), "{read}");
    }
    let unknown = legacy(&h, &sid, "resources/read", json!({"uri": "mock://nowhere/1"})).json();
    assert_eq!(
        unknown["error"],
        json!({"code": -32602, "message": "Unknown resource: mock://nowhere/1", "data": {"uri": "mock://nowhere/1"}}),
        "{unknown}"
    );
    let no_uri = legacy(&h, &sid, "resources/read", json!({})).json();
    assert_eq!(no_uri["error"]["message"], "resources/read needs params.uri");

    let c = legacy(&h, &sid, "completion/complete", json!({"ref": {"type": "ref/prompt", "name": "a__greeting"}, "argument": {"name": "name", "value": "al"}})).json();
    assert_eq!(c["result"]["completion"]["values"], json!(["a:greeting"]), "{c}");
    assert_eq!(traffic.calls("a", "completion/complete").len(), 1);
    let bad = legacy(&h, &sid, "completion/complete", json!({"ref": {"type": "ref/nothing"}})).json();
    assert_eq!(bad["error"], json!({"code": -32602, "message": "params.ref must be a ref/prompt or ref/resource"}));
    let unknown = legacy(&h, &sid, "completion/complete", json!({"ref": {"type": "ref/prompt", "name": "nope"}, "argument": {"name": "x", "value": ""}})).json();
    assert_eq!(unknown["error"], json!({"code": -32602, "message": "Unknown completion reference"}));

    // offerings/list: every kind at once, the same names as the lists.
    let o = legacy(&h, &sid, "offerings/list", json!({})).json();
    assert_eq!(o["result"]["prompts"].as_array().unwrap().len(), 2);
    assert_eq!(o["result"]["resources"].as_array().unwrap().len(), 2);
    assert_eq!(o["result"]["tools"], json!([]));

    // A modern client reads through the legacy server with a modern result.
    let r = modern(&h, "resources/read", json!({"uri": "mock://a/1"}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["result"]["resultType"], "complete");
    assert_eq!(r.json()["result"]["contents"][0]["text"], "a read mock://a/1");
}
