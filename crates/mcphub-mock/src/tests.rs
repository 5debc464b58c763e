//! Unit tests: requests built by hand, answered by `MockServer::handle`.

use super::*;
use mcphub::http::Body;

fn request(method: &str, target: &str, headers: &[(&str, &str)], body: &str) -> Request {
    Request {
        method: method.into(),
        target: target.into(),
        headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        body: body.as_bytes().to_vec(),
        peer: "127.0.0.1:1".parse().unwrap(),
    }
}

fn header<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
    r.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

fn json_of(r: &Response) -> Value {
    match &r.body {
        Body::Full(b) if b.is_empty() => Value::Null,
        Body::Full(b) => serde_json::from_slice(b).expect("JSON body"),
        Body::Sse(_) => panic!("SSE body"),
    }
}

fn mock(cfg: MockConfig) -> MockServer {
    MockServer::new(cfg)
}

fn dual() -> MockServer {
    mock(MockConfig::default())
}

/// POSTs a legacy message with an optional session.
fn legacy_post(m: &MockServer, sid: Option<&str>, body: Value) -> Response {
    let mut h = vec![("Content-Type", "application/json"), ("Accept", "application/json, text/event-stream")];
    if let Some(s) = sid {
        h.push(("Mcp-Session-Id", s));
    }
    m.handle(request("POST", "/mcp", &h, &body.to_string()))
}

fn initialize(m: &MockServer, version: &str) -> (Response, String) {
    let r = legacy_post(
        m,
        None,
        json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
            "protocolVersion": version, "capabilities": {}, "clientInfo": {"name":"t","version":"1"}}}),
    );
    let sid = header(&r, "Mcp-Session-Id").unwrap_or_default().to_string();
    (r, sid)
}

fn call(m: &MockServer, sid: &str, id: u64, tool: &str, args: Value) -> Response {
    legacy_post(m, Some(sid), json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":args}}))
}

fn tool_text(r: &Response) -> String {
    json_of(r)["result"]["content"][0]["text"].as_str().expect("text content").to_string()
}

/// A modern request with correct headers and `_meta`.
fn modern_request(method: &str, params: Value, version: &str) -> (Vec<(String, String)>, Value) {
    let mut params = if params.is_null() { json!({}) } else { params };
    let mut meta = params.get("_meta").cloned().unwrap_or_else(|| json!({}));
    meta[META_PROTOCOL_VERSION] = json!(version);
    meta["io.modelcontextprotocol/clientInfo"] = json!({"name": "t", "version": "1"});
    meta["io.modelcontextprotocol/clientCapabilities"] = json!({});
    params["_meta"] = meta;
    let mut h = vec![
        ("Content-Type".to_string(), "application/json".to_string()),
        ("MCP-Protocol-Version".to_string(), version.to_string()),
        ("Mcp-Method".to_string(), method.to_string()),
    ];
    if let Some(field) = mcphub::protocol::headers::name_field(method) {
        h.push(("Mcp-Name".into(), params[field].as_str().unwrap().to_string()));
    }
    (h, json!({"jsonrpc":"2.0","id":7,"method":method,"params":params}))
}

fn send(m: &MockServer, headers: &[(String, String)], body: &Value) -> Response {
    let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    m.handle(request("POST", "/mcp", &h, &body.to_string()))
}

fn modern_call(m: &MockServer, method: &str, params: Value) -> Response {
    let (h, b) = modern_request(method, params, "2026-07-28");
    send(m, &h, &b)
}

// ---- legacy ----

#[test]
fn legacy_handshake_mints_a_session_and_negotiates_the_version() {
    let m = dual();
    let (r, sid) = initialize(&m, "2025-06-18");
    assert_eq!(r.status, 200);
    assert!(sid.starts_with("sess-") && sid.len() == 5 + 32, "{sid}");
    assert!(sid[5..].chars().all(|c| c.is_ascii_hexdigit()));
    let v = json_of(&r);
    assert_eq!(v["id"], 1);
    assert_eq!(v["result"]["protocolVersion"], "2025-06-18");
    assert_eq!(v["result"]["serverInfo"]["name"], "mock");
    assert_eq!(v["result"]["capabilities"]["tools"]["listChanged"], true);
    assert_eq!(v["result"]["capabilities"]["resources"]["subscribe"], false);
    for cap in ["prompts", "completions", "logging"] {
        assert!(v["result"]["capabilities"][cap].is_object(), "{cap}");
    }
    // notifications/initialized → 202, empty
    let r = legacy_post(&m, Some(&sid), json!({"jsonrpc":"2.0","method":"notifications/initialized"}));
    assert_eq!(r.status, 202);
    assert_eq!(json_of(&r), Value::Null);
    // A client's JSON-RPC response → 202
    let r = legacy_post(&m, Some(&sid), json!({"jsonrpc":"2.0","id":"s1","result":{}}));
    assert_eq!(r.status, 202);
    // An unknown version gets the newest legacy one; two sessions differ.
    let (r2, sid2) = initialize(&m, "1999-01-01");
    assert_eq!(json_of(&r2)["result"]["protocolVersion"], "2025-11-25");
    assert_ne!(sid, sid2);
    let s = m.stats();
    assert_eq!(s["initialize"], 2);
    assert_eq!(s["sessions_created"], 2);
    assert_eq!(s["sessions_active"], 2);
}

#[test]
fn legacy_requests_need_a_known_session() {
    let m = dual();
    let r = legacy_post(&m, None, json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}));
    assert_eq!(r.status, 400);
    assert_eq!(json_of(&r)["error"]["code"], codes::SERVER_ERROR);
    let r = legacy_post(&m, Some("sess-nope"), json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}));
    assert_eq!(r.status, 404);
    assert_eq!(m.stats()["expired_404"], 1);
    // A legacy protocol-version header that is not a legacy version → 400.
    let (_, sid) = initialize(&m, "2025-11-25");
    let r = m.handle(request(
        "POST",
        "/mcp",
        &[("Mcp-Session-Id", &sid), ("MCP-Protocol-Version", "2024-01-01")],
        r#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#,
    ));
    assert_eq!(r.status, 400);
}

#[test]
fn delete_ends_a_session_and_get_is_405() {
    let m = dual();
    let (_, sid) = initialize(&m, "2025-11-25");
    let r = m.handle(request("DELETE", "/mcp", &[("Mcp-Session-Id", &sid)], ""));
    assert_eq!(r.status, 200);
    assert!(!m.has_session(&sid));
    assert_eq!(m.stats()["sessions_active"], 0);
    let r = call(&m, &sid, 2, "echo", json!({"text":"x"}));
    assert_eq!(r.status, 404);
    assert_eq!(m.handle(request("DELETE", "/mcp", &[], "")).status, 400);
    assert_eq!(m.handle(request("GET", "/mcp", &[("Accept", "text/event-stream")], "")).status, 405);
    // Modern-only: DELETE → 405 too.
    let m = mock(MockConfig { era: Era::Modern, ..MockConfig::default() });
    assert_eq!(m.handle(request("DELETE", "/mcp", &[("Mcp-Session-Id", "sess-x")], "")).status, 405);
}

#[test]
fn every_nth_session_request_expires_its_session() {
    let m = mock(MockConfig { expire_sessions_every: 3, ..MockConfig::default() });
    let (_, sid) = initialize(&m, "2025-11-25");
    assert_eq!(call(&m, &sid, 1, "echo", json!({"text":"a"})).status, 200);
    assert_eq!(call(&m, &sid, 2, "echo", json!({"text":"b"})).status, 200);
    let r = call(&m, &sid, 3, "echo", json!({"text":"c"}));
    assert_eq!(r.status, 404);
    assert_eq!(json_of(&r)["error"]["code"], codes::SESSION_NOT_FOUND);
    assert!(!m.has_session(&sid));
    // Re-establish: the cadence continues (4, 5 pass; 6 expires).
    let (_, sid2) = initialize(&m, "2025-11-25");
    assert_eq!(call(&m, &sid2, 4, "echo", json!({"text":"d"})).status, 200);
    assert_eq!(call(&m, &sid2, 5, "echo", json!({"text":"e"})).status, 200);
    assert_eq!(call(&m, &sid2, 6, "echo", json!({"text":"f"})).status, 404);
    let s = m.stats();
    assert_eq!(s["expired_404"], 2);
    assert_eq!(s["tools"]["echo"], 4);
    assert_eq!(s["sessions_active"], 0);
}

#[test]
fn tools_answer_with_text_content() {
    let m = mock(MockConfig { name: "up1".into(), ..MockConfig::default() });
    let (_, sid) = initialize(&m, "2025-11-25");
    let r = legacy_post(&m, Some(&sid), json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}));
    let tools = json_of(&r)["result"]["tools"].as_array().unwrap().clone();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, TOOL_NAMES);
    assert!(tools.iter().all(|t| t["inputSchema"]["type"] == "object"));
    assert!(json_of(&r)["result"].get("ttlMs").is_none(), "legacy results stay plain");

    let r = call(&m, &sid, 2, "echo", json!({"text":"hi there"}));
    assert_eq!(tool_text(&r), "up1: hi there");
    assert_eq!(json_of(&r)["result"]["isError"], false);
    assert_eq!(tool_text(&call(&m, &sid, 3, "get_session_id", json!({}))), format!("up1: {sid}"));
    assert_eq!(tool_text(&call(&m, &sid, 4, "sleep", json!({"ms": 5}))), "up1: slept 5 ms");
    assert_eq!(tool_text(&call(&m, &sid, 5, "whoami", json!({}))), "up1: anonymous");
    let r = m.handle(request(
        "POST",
        "/mcp",
        &[("Mcp-Session-Id", &sid), ("Authorization", "Bearer abc")],
        &json!({"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"whoami"}}).to_string(),
    ));
    let sha = hex::encode(Sha256::digest(b"Bearer abc"));
    assert_eq!(tool_text(&r), format!("up1: {}", &sha[..12]));
    assert_eq!(m.stats()["last_authorization_sha"], sha);
    // counter: per session
    assert_eq!(tool_text(&call(&m, &sid, 7, "counter", json!({}))), "up1: 1");
    assert_eq!(tool_text(&call(&m, &sid, 8, "counter", json!({}))), "up1: 2");
    let (_, other) = initialize(&m, "2025-11-25");
    assert_eq!(tool_text(&call(&m, &other, 9, "counter", json!({}))), "up1: 1");
    // progress without a token: plain JSON
    let r = call(&m, &sid, 10, "progress", json!({"steps": 2, "ms": 1}));
    assert_eq!(tool_text(&r), "up1: progress done, 2 steps");
    // bad tool arguments → isError; unknown tool → -32602
    let r = call(&m, &sid, 11, "echo", json!({"text": 5}));
    assert_eq!(json_of(&r)["result"]["isError"], true);
    let r = call(&m, &sid, 12, "nope", json!({}));
    assert_eq!(json_of(&r)["error"]["code"], codes::INVALID_PARAMS);
    let s = m.stats();
    assert_eq!(s["tools"]["echo"], 2);
    assert_eq!(s["tools"]["whoami"], 2);
    assert_eq!(s["tools"]["counter"], 3);
    assert_eq!(s["tools"]["progress"], 1);
}

#[test]
fn extra_tools_are_listed_after_the_own_tools_and_answer_like_echo() {
    let m = mock(MockConfig { name: "big".into(), extra_tools: 50, ..MockConfig::default() });
    let (_, sid) = initialize(&m, "2025-11-25");
    let r = legacy_post(&m, Some(&sid), json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}));
    let tools = json_of(&r)["result"]["tools"].as_array().unwrap().clone();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), TOOL_NAMES.len() + 50);
    assert_eq!(names[..TOOL_NAMES.len()], TOOL_NAMES, "the mock's own tools stay first");
    let extra: Vec<String> = (1..=50).map(|i| format!("tool-{i}")).collect();
    assert_eq!(names[TOOL_NAMES.len()..], extra);
    assert!(tools.iter().all(|t| t["inputSchema"]["type"] == "object"));

    assert_eq!(tool_text(&call(&m, &sid, 2, "tool-50", json!({"text":"hi"}))), "big: hi");
    assert_eq!(tool_text(&call(&m, &sid, 3, "tool-1", json!({"text":"one"}))), "big: one");
    assert_eq!(tool_text(&call(&m, &sid, 4, "echo", json!({"text":"own"}))), "big: own");
    let r = call(&m, &sid, 5, "tool-7", json!({}));
    assert_eq!(json_of(&r)["result"]["isError"], true, "missing `text` is a tool error");
    for (id, name) in [(6, "tool-51"), (7, "tool-0"), (8, "tool-01"), (9, "tool-")] {
        let r = call(&m, &sid, id, name, json!({"text":"x"}));
        assert_eq!(json_of(&r)["error"]["code"], codes::INVALID_PARAMS, "{name} is unknown");
    }
    assert_eq!(m.stats()["tools"]["tool-50"], 1);

    // Off by default: no tool-N listed or answered.
    let plain = dual();
    let (_, sid) = initialize(&plain, "2025-11-25");
    let r = legacy_post(&plain, Some(&sid), json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}));
    assert_eq!(json_of(&r)["result"]["tools"].as_array().unwrap().len(), TOOL_NAMES.len());
    let r = call(&plain, &sid, 2, "tool-1", json!({"text":"x"}));
    assert_eq!(json_of(&r)["error"]["code"], codes::INVALID_PARAMS);
}

#[test]
fn prompts_resources_completion_logging_and_errors() {
    let m = dual();
    let (_, sid) = initialize(&m, "2025-11-25");
    let rpc = |id: u64, method: &str, params: Value| {
        json_of(&legacy_post(&m, Some(&sid), json!({"jsonrpc":"2.0","id":id,"method":method,"params":params})))
    };
    assert_eq!(rpc(1, "ping", json!({}))["result"], json!({}));
    assert_eq!(rpc(2, "prompts/list", json!({}))["result"]["prompts"][0]["name"], "greeting");
    let v = rpc(3, "prompts/get", json!({"name":"greeting","arguments":{"name":"Ann"}}));
    assert_eq!(v["result"]["messages"][0]["content"]["text"], "Hello, Ann!");
    assert_eq!(rpc(4, "prompts/get", json!({"name":"greeting"}))["error"]["code"], codes::INVALID_PARAMS);
    assert_eq!(rpc(5, "resources/list", json!({}))["result"]["resources"][0]["uri"], "mock://info");
    assert_eq!(rpc(6, "resources/templates/list", json!({}))["result"]["resourceTemplates"][0]["uriTemplate"], "mock://item/{id}");
    assert_eq!(rpc(7, "resources/read", json!({"uri":"mock://item/42"}))["result"]["contents"][0]["text"], "item 42");
    assert!(rpc(8, "resources/read", json!({"uri":"mock://info"}))["result"]["contents"][0]["text"].is_string());
    assert_eq!(rpc(9, "resources/read", json!({"uri":"mock://zzz"}))["error"]["code"], codes::RESOURCE_NOT_FOUND);
    let v = rpc(10, "completion/complete", json!({"ref":{"type":"ref/prompt","name":"greeting"},"argument":{"name":"name","value":"al"}}));
    assert_eq!(v["result"]["completion"]["values"], json!(["alice", "albert"]));
    assert_eq!(rpc(11, "logging/setLevel", json!({"level":"debug"}))["result"], json!({}));
    assert_eq!(rpc(12, "logging/setLevel", json!({}))["error"]["code"], codes::INVALID_PARAMS);
    assert_eq!(rpc(13, "nope/nope", json!({}))["error"]["code"], codes::METHOD_NOT_FOUND);
    // A dual server treats server/discover as modern: without _meta → -32020.
    assert_eq!(rpc(14, "server/discover", json!({}))["error"]["code"], codes::HEADER_MISMATCH);
    // malformed JSON → 400 -32700; a batch → 400 -32600
    let r = m.handle(request("POST", "/mcp", &[("Mcp-Session-Id", &sid)], "{nope"));
    assert_eq!(r.status, 400);
    assert_eq!(json_of(&r)["error"]["code"], codes::PARSE_ERROR);
    let r = m.handle(request("POST", "/mcp", &[("Mcp-Session-Id", &sid)], "[]"));
    assert_eq!(json_of(&r)["error"]["code"], codes::INVALID_REQUEST);
}

// ---- modern ----

#[test]
fn modern_discover_and_results() {
    let m = dual();
    let r = modern_call(&m, "server/discover", Value::Null);
    assert_eq!(r.status, 200);
    assert!(header(&r, "Mcp-Session-Id").is_none());
    let v = json_of(&r)["result"].clone();
    assert_eq!(v["resultType"], "complete");
    assert_eq!(v["supportedVersions"][0], "2026-07-28");
    assert!(v["supportedVersions"].as_array().unwrap().contains(&json!("2025-11-25")));
    assert!(v["capabilities"]["tools"].is_object());
    assert_eq!(v["_meta"][META_SERVER_INFO]["name"], "mock");
    assert_eq!(v["cacheScope"], "public");
    assert!(v["ttlMs"].as_u64().unwrap() > 0);

    let v = json_of(&modern_call(&m, "tools/list", Value::Null))["result"].clone();
    assert_eq!(v["resultType"], "complete");
    assert_eq!(v["tools"].as_array().unwrap().len(), TOOL_NAMES.len());
    assert!(v["ttlMs"].is_u64() && v["cacheScope"] == "public");
    for list in ["prompts/list", "resources/list", "resources/templates/list"] {
        let v = json_of(&modern_call(&m, list, Value::Null))["result"].clone();
        assert!(v["ttlMs"].is_u64() && v["cacheScope"] == "public", "{list}");
    }
    let r = modern_call(&m, "tools/call", json!({"name":"echo","arguments":{"text":"yo"}}));
    let v = json_of(&r);
    assert_eq!(v["result"]["content"][0]["text"], "mock: yo");
    assert_eq!(v["result"]["resultType"], "complete");
    assert!(v["result"].get("ttlMs").is_none());
    let v = json_of(&modern_call(&m, "resources/read", json!({"uri":"mock://info"})));
    assert_eq!(v["result"]["resultType"], "complete");
    // The session id header is ignored; counter uses the single "none" bucket.
    let (mut h, b) = modern_request("tools/call", json!({"name":"get_session_id"}), "2026-07-28");
    h.push(("Mcp-Session-Id".into(), "sess-whatever".into()));
    assert_eq!(json_of(&send(&m, &h, &b))["result"]["content"][0]["text"], "mock: none");
    let counter = |m: &MockServer| json_of(&modern_call(m, "tools/call", json!({"name":"counter"})))["result"]["content"][0]["text"].clone();
    assert_eq!(counter(&m), "mock: 1");
    assert_eq!(counter(&m), "mock: 2");
    // Unknown method → HTTP 404 + -32601.
    let r = modern_call(&m, "nope/nope", Value::Null);
    assert_eq!(r.status, 404);
    assert_eq!(json_of(&r)["error"]["code"], codes::METHOD_NOT_FOUND);
    assert_eq!(m.stats()["sessions_created"], 0);
}

#[test]
fn modern_header_mismatch_is_32020() {
    let m = dual();
    let cases: Vec<(&str, Option<&str>)> = vec![
        ("Mcp-Method", Some("tools/list")),       // wrong method
        ("Mcp-Method", None),                     // missing
        ("Mcp-Name", Some("whoami")),             // wrong name
        ("Mcp-Name", None),                       // missing
        ("MCP-Protocol-Version", Some("2025-11-25")), // differs from _meta
        ("MCP-Protocol-Version", None),           // missing
    ];
    for (name, value) in cases {
        let (mut h, b) = modern_request("tools/call", json!({"name":"echo","arguments":{"text":"x"}}), "2026-07-28");
        h.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        if let Some(v) = value {
            h.push((name.into(), v.into()));
        }
        let r = send(&m, &h, &b);
        assert_eq!(r.status, 400, "{name}={value:?}");
        assert_eq!(json_of(&r)["error"]["code"], codes::HEADER_MISMATCH, "{name}={value:?}");
        assert_eq!(json_of(&r)["id"], 7);
    }
    // x-mcp-header: the region tool needs Mcp-Param-Region = arguments.region.
    let (mut h, b) = modern_request("tools/call", json!({"name":"region","arguments":{"region":"eu-west1"}}), "2026-07-28");
    let r = send(&m, &h, &b);
    assert_eq!(r.status, 400);
    assert_eq!(json_of(&r)["error"]["code"], codes::HEADER_MISMATCH);
    h.push(("Mcp-Param-Region".into(), "us-east1".into()));
    assert_eq!(send(&m, &h, &b).status, 400);
    h.pop();
    h.push(("mcp-param-region".into(), "eu-west1".into()));
    let r = send(&m, &h, &b);
    assert_eq!(r.status, 200);
    assert_eq!(json_of(&r)["result"]["content"][0]["text"], "mock: region eu-west1");
    // Base64-encoded Mcp-Name matches after decoding.
    let (mut h, b) = modern_request("resources/read", json!({"uri":"mock://item/ü"}), "2026-07-28");
    h.retain(|(k, _)| k != "Mcp-Name");
    h.push(("Mcp-Name".into(), mcphub::protocol::headers::encode_value("mock://item/ü")));
    assert_eq!(send(&m, &h, &b).status, 200);
    assert_eq!(m.stats()["tools"]["echo"], 0, "rejected calls never ran");
}

#[test]
fn modern_unsupported_version_is_32022_with_supported_list() {
    let m = dual();
    let (h, b) = modern_request("tools/list", Value::Null, "1900-01-01");
    let r = send(&m, &h, &b);
    assert_eq!(r.status, 400);
    let e = json_of(&r)["error"].clone();
    assert_eq!(e["code"], codes::UNSUPPORTED_PROTOCOL_VERSION);
    assert_eq!(e["data"]["requested"], "1900-01-01");
    assert_eq!(e["data"]["supported"][0], "2026-07-28");
    // Modern-only servers list only modern versions.
    let m = mock(MockConfig { era: Era::Modern, ..MockConfig::default() });
    let r = send(&m, &h, &b);
    assert_eq!(json_of(&r)["error"]["data"]["supported"], json!(["2026-07-28"]));
}

// ---- cross-era probes ----

#[test]
fn legacy_only_server_answers_a_modern_probe_like_an_old_server() {
    let m = mock(MockConfig { era: Era::Legacy, ..MockConfig::default() });
    let r = modern_call(&m, "server/discover", Value::Null);
    assert_eq!(r.status, 400);
    let code = json_of(&r)["error"]["code"].as_i64().unwrap();
    assert!(!mcphub::protocol::codes::is_recognised_modern(code), "{code}");
    // A legacy-era mock ignores modern _meta and still serves initialize;
    // inside a session server/discover is just an unknown method.
    let (r, sid) = initialize(&m, "2025-11-25");
    assert_eq!(r.status, 200);
    assert!(!sid.is_empty());
    let r = legacy_post(&m, Some(&sid), json!({"jsonrpc":"2.0","id":2,"method":"server/discover","params":{}}));
    assert_eq!(r.status, 200);
    assert_eq!(json_of(&r)["error"]["code"], codes::METHOD_NOT_FOUND);
}

#[test]
fn modern_only_server_rejects_legacy_initialize_naming_its_versions() {
    let m = mock(MockConfig { era: Era::Modern, ..MockConfig::default() });
    let (r, sid) = initialize(&m, "2025-11-25");
    assert_eq!(r.status, 400);
    assert!(sid.is_empty(), "no session minted");
    let e = json_of(&r)["error"].clone();
    assert_eq!(e["code"], codes::HEADER_MISMATCH);
    assert!(e["message"].as_str().unwrap().contains("2026-07-28"));
    assert_eq!(e["data"]["supported"], json!(["2026-07-28"]));
    // A legacy follow-up (no _meta, no headers) is rejected the same way.
    let r = legacy_post(&m, Some("sess-x"), json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}));
    assert_eq!(r.status, 400);
    assert_eq!(json_of(&r)["error"]["code"], codes::HEADER_MISMATCH);
    assert_eq!(m.stats()["initialize"], 0);
}

#[test]
fn dual_server_picks_the_era_per_request() {
    let m = dual();
    let (r, sid) = initialize(&m, "2025-11-25");
    assert_eq!(r.status, 200);
    assert_eq!(tool_text(&call(&m, &sid, 2, "get_session_id", json!({}))), format!("mock: {sid}"));
    let v = json_of(&modern_call(&m, "tools/call", json!({"name":"get_session_id"})));
    assert_eq!(v["result"]["content"][0]["text"], "mock: none");
    // A modern-looking header without _meta is treated as modern: 400 + -32602
    // for the missing per-request _meta (SEP-2575), not 400 "no session".
    let r = m.handle(request(
        "POST",
        "/mcp",
        &[("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", "tools/list")],
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#,
    ));
    assert_eq!(r.status, 400);
    assert_eq!(json_of(&r)["error"]["code"], codes::INVALID_PARAMS);
}

// ---- progress, limits, stats ----

#[test]
fn progress_with_a_token_streams_sse() {
    let m = dual();
    let (_, sid) = initialize(&m, "2025-11-25");
    let r = legacy_post(
        &m,
        Some(&sid),
        json!({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{
            "name":"progress","arguments":{"steps":3,"ms":1},"_meta":{"progressToken":"tok-1"}}}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(header(&r, "Content-Type"), Some("text/event-stream"));
    assert!(matches!(r.body, Body::Sse(_)));
    // The producer itself, driven with a collecting emitter.
    let mut events = Vec::new();
    let final_msg = json!({"jsonrpc":"2.0","id":5,"result":{"content":[]}});
    run_progress(&json!("tok-1"), 3, 1, &final_msg, &mut |d| {
        events.push(serde_json::from_str::<Value>(d).unwrap());
        Ok(())
    });
    assert_eq!(events.len(), 4);
    for (i, e) in events[..3].iter().enumerate() {
        assert_eq!(e["method"], "notifications/progress");
        assert_eq!(e["params"], json!({"progressToken":"tok-1","progress":i + 1,"total":3}));
    }
    assert_eq!(events[3], final_msg);
    // A gone client stops the stream at once.
    let mut n = 0;
    run_progress(&json!(1), 5, 0, &final_msg, &mut |_| {
        n += 1;
        Err(mcphub::http::ClientGone)
    });
    assert_eq!(n, 1);
    // Modern too.
    let r = modern_call(&m, "tools/call", json!({"name":"progress","arguments":{"steps":1,"ms":0},"_meta":{"progressToken":9}}));
    assert!(matches!(r.body, Body::Sse(_)));
}

#[test]
fn requests_beyond_max_concurrency_get_429() {
    let m = mock(MockConfig { max_concurrency: Some(1), ..MockConfig::default() });
    // Simulate one request in flight (the SSE producer holds its slot until it runs).
    let busy = modern_call(&m, "tools/call", json!({"name":"progress","arguments":{"steps":1,"ms":0},"_meta":{"progressToken":1}}));
    assert!(matches!(busy.body, Body::Sse(_)));
    let r = modern_call(&m, "tools/list", Value::Null);
    assert_eq!(r.status, 429);
    assert_eq!(header(&r, "Retry-After"), Some("1"));
    assert_eq!(m.stats()["rejected_429"], 1);
    drop(busy); // stream dropped → slot released
    assert_eq!(modern_call(&m, "tools/list", Value::Null).status, 200);
}

#[test]
fn latency_is_added() {
    let m = mock(MockConfig { latency: Duration::from_millis(30), ..MockConfig::default() });
    let t = std::time::Instant::now();
    modern_call(&m, "tools/list", Value::Null);
    assert!(t.elapsed() >= Duration::from_millis(30));
}

#[test]
fn stats_shape_and_reset() {
    let m = dual();
    let (_, sid) = initialize(&m, "2025-11-25");
    call(&m, &sid, 2, "echo", json!({"text":"a"}));
    let r = m.handle(request("GET", "/stats", &[], ""));
    assert_eq!(r.status, 200);
    let s = json_of(&r);
    let keys: Vec<&str> = s.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["initialize", "requests", "sessions_active", "sessions_created", "expired_404", "rejected_429", "cancelled", "max_in_flight", "max_calls_in_flight", "tools", "last_authorization_sha", "last_request_id", "last_traceparent", "last_tracestate", "last_meta_traceparent"]
    );
    assert_eq!(s["requests"], 2);
    assert_eq!(s["tools"]["echo"], 1);
    assert_eq!(s["tools"]["sleep"], 0);
    assert_eq!(s["last_authorization_sha"], Value::Null);
    assert_eq!(s["cancelled"], 0);
    legacy_post(&m, Some(&sid), json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":2}}));
    assert_eq!(m.stats()["cancelled"], 1);
    let r = m.handle(request("POST", "/stats/reset", &[], ""));
    assert_eq!(r.status, 200);
    let s = m.stats();
    assert_eq!(s["requests"], 0);
    assert_eq!(s["tools"]["echo"], 0);
    assert_eq!(s["sessions_active"], 1, "sessions survive a reset");
    assert_eq!(m.handle(request("GET", "/nope", &[], "")).status, 404);
}

// ---------------------------------------------------------------------------------------------
// Conformance fixtures
// ---------------------------------------------------------------------------------------------

fn rpc(m: &MockServer, sid: &str, method: &str, params: Value) -> Value {
    json_of(&legacy_post(m, Some(sid), json!({"jsonrpc":"2.0","id":9,"method":method,"params":params})))
}

fn list_names(v: &Value, kind: &str, field: &str) -> Vec<String> {
    v["result"][kind].as_array().unwrap().iter().map(|t| t[field].as_str().unwrap().to_string()).collect()
}

#[test]
fn conformance_fixtures_are_off_by_default() {
    let m = dual();
    assert!(!m.has_conformance_fixtures() || std::env::var(FIXTURES_ENV).is_ok());
    if m.has_conformance_fixtures() {
        return; // the environment turned them on
    }
    let (_, sid) = initialize(&m, "2025-11-25");
    assert_eq!(list_names(&rpc(&m, &sid, "tools/list", json!({})), "tools", "name"), TOOL_NAMES);
    assert_eq!(list_names(&rpc(&m, &sid, "prompts/list", json!({})), "prompts", "name"), ["greeting"]);
    assert_eq!(list_names(&rpc(&m, &sid, "resources/list", json!({})), "resources", "uri"), ["mock://info"]);
    assert_eq!(rpc(&m, &sid, "resources/subscribe", json!({"uri": "test://watched-resource"}))["error"]["code"], -32601);
    assert_eq!(json_of(&call(&m, &sid, 2, "test_simple_text", json!({})))["error"]["code"], -32602);
}

#[test]
fn conformance_fixtures_list_and_answer() {
    let m = MockServer::with_conformance_fixtures(MockConfig::default());
    let (r, sid) = initialize(&m, "2025-11-25");
    assert_eq!(json_of(&r)["result"]["capabilities"]["resources"]["subscribe"], true);
    let tools = rpc(&m, &sid, "tools/list", json!({}));
    let names = list_names(&tools, "tools", "name");
    assert_eq!(&names[..TOOL_NAMES.len()], TOOL_NAMES, "the base tools first, unchanged");
    assert_eq!(&names[TOOL_NAMES.len()..], CONFORMANCE_TOOL_NAMES);
    for t in tools["result"]["tools"].as_array().unwrap() {
        assert!(t["description"].is_string() && t["inputSchema"].is_object(), "{t}");
    }
    let schema = &tools["result"]["tools"].as_array().unwrap().iter().find(|t| t["name"] == "json_schema_2020_12_tool").unwrap()["inputSchema"];
    assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert!(schema["$defs"]["address"].is_object() && schema["additionalProperties"] == false);

    assert_eq!(tool_text(&call(&m, &sid, 2, "test_simple_text", json!({}))), "This is a simple text response for testing.");
    let v = json_of(&call(&m, &sid, 3, "test_audio_content", json!({})));
    assert_eq!(v["result"]["content"][0]["mimeType"], "audio/wav");
    let v = json_of(&call(&m, &sid, 4, "test_multiple_content_types", json!({})));
    let types: Vec<&str> = v["result"]["content"].as_array().unwrap().iter().map(|c| c["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["text", "image", "resource"]);
    let v = json_of(&call(&m, &sid, 5, "test_error_handling", json!({})));
    assert_eq!(v["result"]["isError"], true);
    assert_eq!(m.stats()["tools"]["test_error_handling"], 1);

    let prompts = rpc(&m, &sid, "prompts/list", json!({}));
    assert_eq!(&list_names(&prompts, "prompts", "name")[1..], CONFORMANCE_PROMPT_NAMES);
    let got = rpc(&m, &sid, "prompts/get", json!({"name": "test_prompt_with_arguments", "arguments": {"arg1": "A1", "arg2": "B2"}}));
    assert_eq!(got["result"]["messages"][0]["content"]["text"], "Prompt with arguments: arg1='A1', arg2='B2'");
    assert_eq!(rpc(&m, &sid, "prompts/get", json!({"name": "test_prompt_with_arguments", "arguments": {"arg1": "x"}}))["error"]["code"], -32602);
    let got = rpc(&m, &sid, "prompts/get", json!({"name": "test_prompt_with_embedded_resource", "arguments": {"resourceUri": "test://x"}}));
    assert_eq!(got["result"]["messages"][0]["content"]["resource"]["uri"], "test://x");
    assert_eq!(rpc(&m, &sid, "prompts/get", json!({"name": "greeting", "arguments": {"name": "Ada"}}))["result"]["messages"][0]["content"]["text"], "Hello, Ada!");

    let read = rpc(&m, &sid, "resources/read", json!({"uri": "test://template/123/data"}));
    let body: Value = serde_json::from_str(read["result"]["contents"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(body, json!({"id": "123", "templateTest": true, "data": "Data for ID: 123"}));
    assert!(rpc(&m, &sid, "resources/read", json!({"uri": "test://static-binary"}))["result"]["contents"][0]["blob"].is_string());
    assert_eq!(rpc(&m, &sid, "resources/read", json!({"uri": "test://nope"}))["error"]["code"], -32002);
    let templates = rpc(&m, &sid, "resources/templates/list", json!({}));
    assert_eq!(list_names(&templates, "resourceTemplates", "uriTemplate"), ["mock://item/{id}", "test://template/{id}/data"]);

    let c = rpc(&m, &sid, "completion/complete", json!({"ref": {"type": "ref/prompt", "name": "test_prompt_with_arguments"}, "argument": {"name": "arg1", "value": "par"}}));
    assert_eq!(c["result"]["completion"]["values"], json!(["paris", "park", "party"]));

    assert_eq!(rpc(&m, &sid, "resources/subscribe", json!({"uri": "test://watched-resource"}))["result"], json!({}));
    assert_eq!(m.subscriptions(&sid), ["test://watched-resource"]);
    assert_eq!(rpc(&m, &sid, "resources/unsubscribe", json!({"uri": "test://watched-resource"}))["result"], json!({}));
    assert!(m.subscriptions(&sid).is_empty());
}

#[test]
fn conformance_sampling_and_elicitation_use_mrtr_for_modern_requests() {
    let m = MockServer::with_conformance_fixtures(MockConfig::default());
    let call = |params: Value, caps: Value| {
        let (h, mut b) = modern_request("tools/call", params, "2026-07-28");
        b["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"] = caps;
        json_of(&send(&m, &h, &b))
    };
    let ask = json!({"name": "test_sampling", "arguments": {"prompt": "2+2?"}});
    let first = call(ask.clone(), json!({"sampling": {}}));
    let r = &first["result"];
    assert_eq!(r["resultType"], "input_required", "{first}");
    assert_eq!(r["inputRequests"]["sampling"]["method"], "sampling/createMessage");
    assert_eq!(r["inputRequests"]["sampling"]["params"]["messages"][0]["content"]["text"], "2+2?");
    let state = r["requestState"].clone();
    let mut retry = ask.clone();
    retry["requestState"] = state.clone();
    retry["inputResponses"] = json!({"sampling": {"role": "assistant", "content": {"type": "text", "text": "four"}, "model": "m"}});
    let done = call(retry.clone(), json!({"sampling": {}}));
    assert_eq!(done["result"]["resultType"], "complete", "{done}");
    assert_eq!(done["result"]["content"][0]["text"], "LLM response: four");
    retry["requestState"] = json!("forged");
    assert_eq!(call(retry, json!({"sampling": {}}))["error"]["code"], -32602);
    // Without the capability: a tool error, no input request.
    let no_cap = call(ask, json!({}));
    assert_eq!(no_cap["result"]["isError"], true, "{no_cap}");

    let e = call(json!({"name": "test_elicitation_sep1034_defaults", "arguments": {}}), json!({"elicitation": {}}));
    let req = &e["result"]["inputRequests"]["elicitation"];
    assert_eq!(req["method"], "elicitation/create", "{e}");
    assert_eq!(req["params"]["requestedSchema"]["properties"]["score"]["default"], 95.5);
    let retry = json!({"name": "test_elicitation_sep1034_defaults", "arguments": {}, "requestState": e["result"]["requestState"],
                       "inputResponses": {"elicitation": {"action": "accept", "content": {"name": "Jane"}}}});
    let done = call(retry, json!({"elicitation": {}}));
    assert_eq!(done["result"]["content"][0]["text"], "Elicitation completed: action=accept, content={\"name\":\"Jane\"}", "{done}");
}

// ---- 2026-07-28 fixtures of conformance 0.2.0-alpha.12 ----

/// A modern `method` call on a fixtures mock with these client capabilities.
fn modern_with(m: &MockServer, method: &str, params: Value, caps: Value) -> Response {
    let (h, mut b) = modern_request(method, params, "2026-07-28");
    b["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"] = caps;
    send(m, &h, &b)
}

fn all_caps() -> Value {
    json!({"sampling": {}, "elicitation": {}, "roots": {"listChanged": true}})
}

fn accept(content: Value) -> Value {
    json!({"action": "accept", "content": content})
}

#[test]
fn mrtr_fixtures_ask_then_complete_on_the_retry() {
    let m = MockServer::with_conformance_fixtures(MockConfig::default());
    let tool = |params: Value| json_of(&modern_with(&m, "tools/call", params, all_caps()));

    let first = tool(json!({"name": "test_input_required_result_elicitation", "arguments": {}}));
    assert_eq!(first["result"]["resultType"], "input_required", "{first}");
    assert_eq!(first["result"]["inputRequests"]["user_name"]["method"], "elicitation/create");
    let done = tool(json!({"name": "test_input_required_result_elicitation", "arguments": {},
                           "inputResponses": {"user_name": accept(json!({"name": "Alice"})), "unknown_extra_key": accept(json!({}))}}));
    assert_eq!((done["result"]["resultType"].clone(), done["result"]["content"][0]["text"].clone()), (json!("complete"), json!("Hello, Alice!")));
    // A response under the wrong key: asked again, not an error.
    let again = tool(json!({"name": "test_input_required_result_elicitation", "arguments": {}, "inputResponses": {"wrong_key": accept(json!({}))}}));
    assert_eq!(again["result"]["resultType"], "input_required", "{again}");
    // inputResponses that are not an object of objects: -32602.
    for bad in [json!({"user_name": 12345}), Value::Null, json!([1])] {
        let e = tool(json!({"name": "test_input_required_result_elicitation", "arguments": {}, "inputResponses": bad}));
        assert_eq!(e["error"]["code"], codes::INVALID_PARAMS, "{bad}: {e}");
    }

    let s = tool(json!({"name": "test_input_required_result_sampling", "arguments": {}}));
    assert_eq!(s["result"]["inputRequests"]["capital_question"]["method"], "sampling/createMessage");
    let s = tool(json!({"name": "test_input_required_result_sampling", "arguments": {}, "inputResponses": {"capital_question":
        {"role": "assistant", "content": {"type": "text", "text": "Paris"}, "model": "m", "stopReason": "endTurn"}}}));
    assert_eq!(s["result"]["content"][0]["text"], "LLM response: Paris");

    let r = tool(json!({"name": "test_input_required_result_list_roots", "arguments": {}}));
    assert_eq!(r["result"]["inputRequests"]["client_roots"], json!({"method": "roots/list", "params": {}}));
    let r = tool(json!({"name": "test_input_required_result_list_roots", "arguments": {},
                        "inputResponses": {"client_roots": {"roots": [{"uri": "file:///test/root", "name": "Test Root"}]}}}));
    assert_eq!(r["result"]["content"][0]["text"], "roots: file:///test/root");

    let multi = tool(json!({"name": "test_input_required_result_multiple_inputs", "arguments": {}}));
    let methods: Vec<&str> = multi["result"]["inputRequests"].as_object().unwrap().values().map(|r| r["method"].as_str().unwrap()).collect();
    assert_eq!(methods.len(), 3);
    for want in ["elicitation/create", "sampling/createMessage", "roots/list"] {
        assert!(methods.contains(&want), "{methods:?}");
    }
    let all = json!({"user_name": accept(json!({"name": "Bo"})), "greeting": {"role": "assistant", "content": {"type": "text", "text": "hi"}},
                     "client_roots": {"roots": []}});
    let done = tool(json!({"name": "test_input_required_result_multiple_inputs", "arguments": {}, "inputResponses": all,
                           "requestState": multi["result"]["requestState"]}));
    assert_eq!(done["result"]["content"][0]["text"], "name: Bo; greeting: hi; roots: (none)", "{done}");
}

#[test]
fn mrtr_request_state_is_signed_round_tripped_and_checked() {
    let m = MockServer::with_conformance_fixtures(MockConfig::default());
    let tool = |params: Value| json_of(&modern_with(&m, "tools/call", params, all_caps()));
    let name = "test_input_required_result_request_state";
    let first = tool(json!({"name": name, "arguments": {}}));
    let state = first["result"]["requestState"].as_str().expect("requestState").to_string();
    let ok = json!({"confirm": accept(json!({"ok": true}))});
    let done = tool(json!({"name": name, "arguments": {}, "inputResponses": ok, "requestState": state}));
    assert!(done["result"]["content"][0]["text"].as_str().unwrap().contains("state-ok"), "{done}");
    // Without the state the answer is asked for again; an altered one is refused.
    assert_eq!(tool(json!({"name": name, "arguments": {}, "inputResponses": ok}))["result"]["resultType"], "input_required");
    let tampered = tool(json!({"name": "test_input_required_result_tampered_state", "arguments": {}}));
    let forged = format!("{}-TAMPERED", tampered["result"]["requestState"].as_str().unwrap());
    let e = tool(json!({"name": "test_input_required_result_tampered_state", "arguments": {}, "inputResponses": ok, "requestState": forged}));
    assert_eq!(e["error"]["code"], codes::INVALID_PARAMS, "{e}");
    // A state issued for one tool is not accepted by another.
    let e = tool(json!({"name": "test_input_required_result_tampered_state", "arguments": {}, "inputResponses": ok, "requestState": state}));
    assert_eq!(e["error"]["code"], codes::INVALID_PARAMS, "{e}");
    assert_eq!(conformance::verify_state(&conformance::sign_state(&json!({"a": 1}))), Some(json!({"a": 1})));
    assert_eq!(conformance::verify_state("6e6f.0000"), None);

    // Two rounds, each with a new state; the name from round 1 survives in the state.
    let mr = "test_input_required_result_multi_round";
    let r1 = tool(json!({"name": mr, "arguments": {}}));
    let s1 = r1["result"]["requestState"].clone();
    let r2 = tool(json!({"name": mr, "arguments": {}, "requestState": s1, "inputResponses": {"user_name": accept(json!({"name": "Alice"}))}}));
    assert_eq!(r2["result"]["resultType"], "input_required", "{r2}");
    assert_ne!(r2["result"]["requestState"], s1);
    let key = r2["result"]["inputRequests"].as_object().unwrap().keys().next().unwrap().clone();
    let r3 = tool(json!({"name": mr, "arguments": {}, "requestState": r2["result"]["requestState"],
                         "inputResponses": {key: accept(json!({"color": "blue"}))}}));
    assert_eq!(r3["result"]["content"][0]["text"], "Alice likes blue", "{r3}");
}

#[test]
fn mrtr_fixtures_respect_the_declared_client_capabilities() {
    let m = MockServer::with_conformance_fixtures(MockConfig::default());
    let caps_tool = json!({"name": "test_input_required_result_capabilities", "arguments": {}});
    let only_sampling = json_of(&modern_with(&m, "tools/call", caps_tool.clone(), json!({"sampling": {}})));
    let asks = only_sampling["result"]["inputRequests"].as_object().expect("inputRequests").clone();
    assert_eq!(asks.keys().collect::<Vec<_>>(), ["greeting"], "{only_sampling}");
    let both = json_of(&modern_with(&m, "tools/call", caps_tool, all_caps()));
    assert_eq!(both["result"]["inputRequests"].as_object().unwrap().len(), 2);

    // A tool that needs a capability the client did not declare: 400 + -32021 naming it.
    let r = modern_with(&m, "tools/call", json!({"name": "test_missing_capability", "arguments": {}}), json!({}));
    assert_eq!(r.status, 400);
    let e = json_of(&r)["error"].clone();
    assert_eq!(e["code"], codes::MISSING_CLIENT_CAPABILITY);
    assert_eq!(e["data"]["requiredCapabilities"], json!({"sampling": {}}));
    let r = modern_with(&m, "tools/call", json!({"name": "test_missing_capability", "arguments": {}}), json!({"sampling": {}}));
    assert_eq!((r.status, json_of(&r)["result"]["resultType"].clone()), (200, json!("complete")));
    let r = modern_with(&m, "tools/call", json!({"name": "test_input_required_result_elicitation", "arguments": {}}), json!({"sampling": {}}));
    assert_eq!((r.status, json_of(&r)["error"]["data"]["requiredCapabilities"].clone()), (400, json!({"elicitation": {}})));
    // test_streaming_elicitation asks with an InputRequiredResult in a plain JSON answer.
    let r = modern_with(&m, "tools/call", json!({"name": "test_streaming_elicitation", "arguments": {}}), json!({"elicitation": {}}));
    assert_eq!(json_of(&r)["result"]["inputRequests"]["confirm"]["method"], "elicitation/create");
}

#[test]
fn mrtr_prompt_and_modern_only_fixtures_for_legacy_clients() {
    let m = MockServer::with_conformance_fixtures(MockConfig::default());
    let get = |params: Value| json_of(&modern_with(&m, "prompts/get", params, all_caps()));
    let first = get(json!({"name": "test_input_required_result_prompt"}));
    assert_eq!(first["result"]["resultType"], "input_required", "{first}");
    let key = first["result"]["inputRequests"].as_object().unwrap().keys().next().unwrap().clone();
    let done = get(json!({"name": "test_input_required_result_prompt", "inputResponses": {key: accept(json!({"context": "test context"}))}}));
    assert_eq!(done["result"]["resultType"], "complete");
    assert_eq!(done["result"]["messages"][0]["content"]["text"], "Answer with this context: test context");
    // Lists never answer input_required.
    for method in ["tools/list", "prompts/list"] {
        assert_eq!(json_of(&modern_with(&m, method, json!({}), all_caps()))["result"]["resultType"], "complete", "{method}");
    }
    // Legacy sessions get a tool error / invalid params instead of an InputRequiredResult.
    let (_, sid) = initialize(&m, "2025-11-25");
    let v = json_of(&call(&m, &sid, 2, "test_input_required_result_elicitation", json!({})));
    assert_eq!(v["result"]["isError"], true, "{v}");
    let v = json_of(&legacy_post(&m, Some(&sid), json!({"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{"name":"test_input_required_result_prompt"}})));
    assert_eq!(v["error"]["code"], codes::INVALID_PARAMS);
}

#[test]
fn stateless_rules_of_2026_07_28() {
    let m = MockServer::with_conformance_fixtures(MockConfig::default());
    // Missing or incomplete _meta under a 2026-07-28 header: 400 + -32602, before header checks.
    let headers = [("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", "server/discover")];
    let version = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28"});
    for params in [json!({}), json!({"_meta": version}), json!({"_meta": {"io.modelcontextprotocol/clientCapabilities": {}}})] {
        let body = json!({"jsonrpc":"2.0","id":104,"method":"server/discover","params":params}).to_string();
        let r = m.handle(request("POST", "/mcp", &headers, &body));
        assert_eq!(r.status, 400, "{params}");
        assert_eq!((json_of(&r)["error"]["code"].clone(), json_of(&r)["id"].clone()), (json!(codes::INVALID_PARAMS), json!(104)), "{params}");
    }
    // Methods 2026-07-28 removed: 404 + -32601.
    for method in ["ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe"] {
        let r = modern_call(&m, method, json!({"level": "info", "uri": "test://static-text"}));
        assert_eq!((r.status, json_of(&r)["error"]["code"].clone()), (404, json!(codes::METHOD_NOT_FOUND)), "{method}");
    }
    // resources/read is cacheable; an unknown resource is -32602 (SEP-2164).
    let v = json_of(&modern_call(&m, "resources/read", json!({"uri": "test://static-text"})));
    assert!(v["result"]["ttlMs"].as_u64().is_some() && v["result"]["cacheScope"] == "public", "{v}");
    assert_eq!(json_of(&modern_call(&m, "resources/read", json!({"uri": "test://nope"})))["error"]["code"], codes::INVALID_PARAMS);
    // The JSON Schema 2020-12 fixture keeps composition, conditional and anchor keywords.
    let tools = json_of(&modern_call(&m, "tools/list", json!({})));
    let t = tools["result"]["tools"].as_array().unwrap().iter().find(|t| t["name"] == "json_schema_2020_12_tool").unwrap().clone();
    let s = &t["inputSchema"];
    assert!(s["allOf"][0]["anyOf"].is_array() && s["if"].is_object() && s["then"].is_object() && s["else"].is_object(), "{s}");
    assert_eq!(s["$defs"]["address"]["$anchor"], "addressDef");
}
