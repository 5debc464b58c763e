//! The list methods' answers byte for byte (issue 16): the items are written
//! once per merged view and caller view and copied into each answer's
//! envelope, which must be exactly what `serde_json::to_vec` gives for the
//! result built as a `Value` (the way the hub answered before): for tools,
//! prompts, resources and resource templates, legacy and 2026-07-28 clients,
//! callers with servers hidden from them (allow-list, missing token), heavy
//! tools marked, ids echoed as sent. Socket-free (tests/core_util).

mod core_util;

use core_util::*;
use mcphub::protocol::jsonrpc;
use mcphub::users::new_key;
use serde_json::{json, Value};

/// A legacy server listing `lists` (`{"tools": [...], "prompts": [...], ...}`);
/// a kind it lacks answers -32601 (an empty list for the hub).
fn lists_server(name: &str, lists: Value) -> Script {
    let name = name.to_string();
    std::sync::Arc::new(move |body: &Value, _h: &[(String, String)]| {
        let method = body["method"].as_str().unwrap_or("");
        let field = match method {
            "tools/list" => "tools",
            "prompts/list" => "prompts",
            "resources/list" => "resources",
            "resources/templates/list" => "resourceTemplates",
            "initialize" => {
                let caps = json!({"tools": {"listChanged": true}, "prompts": {}, "resources": {}});
                return Reply::result(body, json!({"protocolVersion": "2025-11-25", "capabilities": caps, "serverInfo": {"name": name, "version": "1"}}))
                    .session(&format!("{name}-s1"));
            }
            m if m.starts_with("notifications/") => return Reply::status(202),
            _ => return Reply::error(body, -32601, "Method not found"),
        };
        match lists.get(field) {
            Some(items) => Reply::result(body, json!({field: items})),
            None => Reply::error(body, -32601, "Method not found"),
        }
    })
}

/// Items with what serde_json must keep as it is: numbers as written
/// (`arbitrary_precision`), escapes, non-ASCII text, unknown fields, order.
fn a_lists() -> Value {
    serde_json::from_str(
        r#"{
        "tools": [
            {"name": "echo", "description": "Echo \u00abtext» \"quoted\" \\ back\n\u0001", "inputSchema": {"type": "object", "properties": {"text": {"type": "string", "maxLength": 1E3}}}},
            {"name": "slow", "inputSchema": {"type": "object"}, "annotations": {"x-ratio": 0.1000000000000000055511151231257827}},
            {"name": "slow_required", "execution": {"taskSupport": "required"}, "inputSchema": {"type": "object"}},
            {"name": "slow_odd", "execution": "not an object", "inputSchema": {"type": "object"}, "zeta": 1, "alpha": [1.50, -0, 12345678901234567890123, 2e-7]}
        ],
        "prompts": [{"name": "greet", "arguments": [{"name": "who", "required": true}]}, {"name": "shared"}],
        "resources": [{"uri": "a://doc/1", "name": "Doc 1", "mimeType": "text/plain"}, {"uri": "a://doc/\u00fc", "name": "Ü"}],
        "resourceTemplates": [{"uriTemplate": "a://doc/{id}", "name": "Doc"}]
        }"#,
    )
    .unwrap()
}

fn b_lists() -> Value {
    json!({
        "tools": [{"name": "echo", "inputSchema": {"type": "object"}, "_meta": {"b": true}}, {"name": "count", "inputSchema": {"type": "object"}}],
        "prompts": [{"name": "shared", "description": "b's"}],
        "resources": [{"uri": "b://x", "name": "X", "size": 1024}],
    })
}

fn gh_lists() -> Value {
    json!({
        "tools": [{"name": "get_issue", "inputSchema": {"type": "object", "properties": {"n": {"type": "integer"}}}}],
        "resourceTemplates": [{"uriTemplate": "gh://{owner}/{repo}", "name": "Repo"}],
    })
}

/// The items each caller should see, by the rules of the hub's lists:
/// server order (a, b, gh), names two servers share prefixed with the
/// server, servers hidden from the caller left out, `heavyTools` of `a`
/// (`slow*`) marked `execution.taskSupport: "optional"` unless the server
/// says "required" (a non-object `execution` replaced).
fn expected(field: &str, hidden: &[&str]) -> Value {
    let mut a = a_lists();
    let mut b = b_lists();
    if field == "tools" {
        a["tools"][0]["name"] = json!("a__echo");
        a["tools"][1]["execution"] = json!({"taskSupport": "optional"});
        a["tools"][3]["execution"] = json!({"taskSupport": "optional"});
        b["tools"][0]["name"] = json!("b__echo");
    }
    if field == "prompts" {
        a["prompts"][1]["name"] = json!("a__shared");
        b["prompts"][0]["name"] = json!("b__shared");
    }
    let mut items = Vec::new();
    for (server, lists) in [("a", a), ("b", b), ("gh", gh_lists())] {
        if !hidden.contains(&server) {
            items.extend(lists.get(field).and_then(Value::as_array).cloned().unwrap_or_default());
        }
    }
    Value::Array(items)
}

struct Setup {
    hub: mcphub::hub::Hub,
    /// Sees everything.
    all: String,
    /// May not use `b` (allow-list).
    no_b: String,
    /// Lacks `gh`'s token.
    no_token: String,
}

fn setup() -> Setup {
    let (all, no_b, no_token) = (new_key(), new_key(), new_key());
    let user = |key: &str, token: bool, servers: Option<Value>| {
        let mut u = user_with_key(key);
        if token {
            u["tokens"] = json!({"GITHUB_TOKEN": "ghp_1"});
        }
        if let Some(s) = servers {
            u["servers"] = s;
        }
        u
    };
    let users = json!({"users": {
        "all": user(&all, true, None),
        "no_b": user(&no_b, true, Some(json!(["a", "gh"]))),
        "no_token": user(&no_token, false, None),
    }});
    let (hub, _traffic) = hub_with_servers(
        users,
        vec![
            ("a", json!({"protocol": "legacy", "heavyTools": ["slow*"]}), lists_server("a", a_lists())),
            ("b", json!({"protocol": "legacy"}), lists_server("b", b_lists())),
            ("gh", json!({"protocol": "legacy", "headers": {"Authorization": "Bearer ${user.GITHUB_TOKEN}"}}), lists_server("gh", gh_lists())),
        ],
    );
    Setup { hub, all, no_b, no_token }
}

/// What `serde_json::to_vec` gives for the answer built as a `Value`: the
/// result `{field: items}` (+ the modern cache hints, `ttlMs` as answered),
/// shaped for the era, in the JSON-RPC envelope.
fn value_bytes(id: &Value, modern_ttl: Option<&Value>, field: &str, items: Value) -> Vec<u8> {
    let mut result = serde_json::Map::new();
    result.insert(field.into(), items);
    let era = match modern_ttl {
        Some(ttl) => {
            result.insert("ttlMs".into(), ttl.clone());
            result.insert("cacheScope".into(), json!("private"));
            mcphub::protocol::Era::Modern
        }
        None => mcphub::protocol::Era::Legacy,
    };
    serde_json::to_vec(&jsonrpc::result_response(id, mcphub::hub::shape::result(era, Value::Object(result)))).unwrap()
}

const KINDS: [(&str, &str); 4] =
    [("tools/list", "tools"), ("prompts/list", "prompts"), ("resources/list", "resources"), ("resources/templates/list", "resourceTemplates")];

/// Ids as a client may write them: `sent` is the text, `value` what it reads as.
const IDS: [(&str, &str); 4] = [("7", "7"), (r#""req-1""#, r#""req-1""#), ("1E3", "1E3"), (r#""\u0041""#, r#""A""#)];

/// The body of a request with the id written as `id_text`.
fn body_with_id(id_text: &str, method: &str, params: Value) -> String {
    let body = jsonrpc::request(&json!("ID"), method, params).to_string();
    body.replacen(r#""id":"ID""#, &format!(r#""id":{id_text}"#), 1)
}

/// The expected answer bytes with the id written as the client wrote it.
fn echoed(expected: Vec<u8>, id_value: &Value, id_text: &str) -> String {
    let text = String::from_utf8(expected).unwrap();
    text.replacen(&format!(r#""id":{}"#, id_value), &format!(r#""id":{id_text}"#), 1)
}

#[test]
fn legacy_lists_are_the_bytes_of_the_value_answer() {
    let s = setup();
    for (key, hidden) in [(&s.all, vec![]), (&s.no_b, vec!["b"]), (&s.no_token, vec!["gh"])] {
        let auth = format!("Bearer {key}");
        let sid = legacy_session_with(&s.hub, &[("Authorization", &auth)]);
        let mut headers = legacy_headers(&sid);
        headers.push(("Authorization", &auth));
        for round in 0..2 {
            // the second round is answered from the written items
            for (method, field) in KINDS {
                for (id_text, _) in IDS {
                    let body = body_with_id(id_text, method, json!({}));
                    let r = post(&s.hub, &body, &headers);
                    assert_eq!((r.status, r.sse, r.header("content-type")), (200, false, Some("application/json")), "{body}");
                    let id: Value = serde_json::from_str(id_text).unwrap();
                    let want = echoed(value_bytes(&id, None, field, expected(field, &hidden)), &id, id_text);
                    assert_eq!(r.text, want, "round {round}, {method}, hidden {hidden:?}, id {id_text}");
                }
            }
        }
    }
}

#[test]
fn modern_lists_are_the_bytes_of_the_value_answer() {
    let s = setup();
    for (key, hidden) in [(&s.no_b, vec!["b"]), (&s.all, vec![]), (&s.no_token, vec!["gh"])] {
        let auth = format!("Bearer {key}");
        for round in 0..2 {
            for (method, field) in KINDS {
                for (id_text, _) in IDS {
                    let (body, h) = modern_request(method, json!({"cursor": "ignored"}));
                    let body = body.replacen(r#""id":"m1""#, &format!(r#""id":{id_text}"#), 1);
                    let mut headers: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    headers.push(("Authorization", &auth));
                    let r = post(&s.hub, &body, &headers);
                    assert_eq!((r.status, r.sse, r.header("content-type")), (200, false, Some("application/json")), "{body}");
                    let answer = r.json();
                    let ttl = &answer["result"]["ttlMs"];
                    assert!(ttl.as_u64().is_some_and(|t| t > 0), "{}", r.text);
                    let id: Value = serde_json::from_str(id_text).unwrap();
                    let want = echoed(value_bytes(&id, Some(ttl), field, expected(field, &hidden)), &id, id_text);
                    assert_eq!(r.text, want, "round {round}, {method}, hidden {hidden:?}, id {id_text}");
                }
            }
        }
    }
}

#[test]
fn a_list_changed_replaces_the_written_items() {
    let (hub, _traffic) = hub_with_servers(json!({}), vec![("a", json!({"protocol": "legacy"}), changing_server())]);
    let sid = legacy_session(&hub);
    let names = |hub: &mcphub::hub::Hub| -> Vec<String> {
        let r = legacy(hub, &sid, "tools/list", json!({}));
        r.json()["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(names(&hub), vec!["v1"]);
    assert_eq!(names(&hub), vec!["v1"], "cached");
    // what the hub does when the server sends notifications/tools/list_changed
    hub.catalog().on_notification("a", "notifications/tools/list_changed");
    assert_eq!(names(&hub), vec!["v2"]);
    assert_eq!(names(&hub), vec!["v2"]);
}

/// A legacy server whose n-th `tools/list` lists one tool, `v{n}`.
fn changing_server() -> Script {
    let n = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    std::sync::Arc::new(move |body: &Value, _h: &[(String, String)]| match body["method"].as_str().unwrap_or("") {
        "initialize" => Reply::result(body, json!({"protocolVersion": "2025-11-25", "capabilities": {"tools": {"listChanged": true}}})).session("a-s1"),
        m if m.starts_with("notifications/") => Reply::status(202),
        "tools/list" => {
            let v = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            Reply::result(body, json!({"tools": [{"name": format!("v{v}"), "inputSchema": {"type": "object"}}]}))
        }
        _ => Reply::error(body, -32601, "Method not found"),
    })
}

/// A legacy server whose n-th `tools/list` lists one tool, `v{n}`, cached for
/// `ttl_ms` (`ttlMs` of its result).
fn changing_server_with_ttl(ttl_ms: u64) -> Script {
    let n = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    std::sync::Arc::new(move |body: &Value, _h: &[(String, String)]| match body["method"].as_str().unwrap_or("") {
        "initialize" => Reply::result(body, json!({"protocolVersion": "2025-11-25", "capabilities": {"tools": {}}})).session("a-s1"),
        m if m.starts_with("notifications/") => Reply::status(202),
        "tools/list" => {
            let v = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            Reply::result(body, json!({"tools": [{"name": format!("v{v}"), "inputSchema": {"type": "object"}}], "ttlMs": ttl_ms}))
        }
        _ => Reply::error(body, -32601, "Method not found"),
    })
}

fn tool_names(hub: &mcphub::hub::Hub, sid: &str) -> Vec<String> {
    let r = legacy(hub, sid, "tools/list", json!({}));
    r.json()["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect()
}

#[test]
fn a_list_past_its_ttl_is_fetched_and_written_again() {
    let (hub, traffic) = hub_with_servers(json!({}), vec![("a", json!({"protocol": "legacy"}), changing_server_with_ttl(1))]);
    let sid = legacy_session(&hub);
    assert_eq!(tool_names(&hub, &sid), vec!["v1"]);
    // 1 ms later the list is stale: the next answer comes from a new fetch
    wait_until("a list fetched again", PATIENCE, || tool_names(&hub, &sid) != vec!["v1"]);
    assert!(traffic.calls("a", "tools/list").len() >= 2);
}

#[test]
fn a_reload_replaces_the_written_items() {
    let (hub, _traffic) = hub_with_servers(json!({}), vec![("a", json!({"protocol": "legacy"}), changing_server_with_ttl(3_600_000))]);
    let sid = legacy_session(&hub);
    assert_eq!(tool_names(&hub, &sid), vec!["v1"]);
    assert_eq!(tool_names(&hub, &sid), vec!["v1"], "cached");
    // the server kept (same entry), the naming changed: the same list, named anew
    let mut config = (*hub.config()).clone();
    config.tool_naming = mcphub::config::ToolNaming::Prefix;
    hub.reload(config).expect("a valid reload");
    assert_eq!(tool_names(&hub, &sid), vec!["a__v1"]);
    // the server's entry changed (heavyTools): a new upstream, its list fetched and marked
    let mut config = (*hub.config()).clone();
    config.servers[0].heavy_tools.0 = vec!["v*".into()];
    hub.reload(config).expect("a valid reload");
    let r = legacy(&hub, &sid, "tools/list", json!({}));
    assert_eq!(r.json()["result"]["tools"], json!([{"name": "a__v2", "inputSchema": {"type": "object"}, "execution": {"taskSupport": "optional"}}]));
}
