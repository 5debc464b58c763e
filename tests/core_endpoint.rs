//! The hub's `/mcp` protocol behaviour that needs no upstream, Request →
//! Response without a socket (issue 15 item 7): both eras' openings,
//! sessions, JSON-RPC errors, modern header validation, Origin, the
//! operational endpoints. The same behaviours through real sockets and mock
//! upstreams are in tests/hub_endpoint.rs.

mod core_util;

use core_util::*;
use serde_json::{json, Value};

#[test]
fn initialize_echoes_a_supported_version_and_otherwise_offers_the_newest() {
    let h = hub(json!({}));
    for (asked, answered) in [
        ("2025-11-25", "2025-11-25"),
        ("2025-06-18", "2025-06-18"),
        ("2025-03-26", "2025-03-26"),
        ("2024-11-05", "2024-11-05"),
        ("2030-01-01", "2025-11-25"),
        ("2026-07-28", "2025-11-25"),
    ] {
        let r = post(&h, &initialize_body(asked), &[ACCEPT, JSON]);
        assert_eq!(r.status, 200, "{asked}: {}", r.text);
        let m = r.json();
        assert_eq!(m["id"], 0);
        assert_eq!(m["result"]["protocolVersion"], answered, "{asked}");
        assert_eq!(m["result"]["serverInfo"]["name"], "mcphub");
        assert_eq!(m["result"]["capabilities"]["tools"], json!({"listChanged": true}));
        assert_eq!(m["result"]["capabilities"]["resources"], json!({"listChanged": true, "subscribe": true}));
        assert!(m["result"].get("resultType").is_none(), "a legacy result: {m}");
        let sid = r.header("mcp-session-id").expect("a session id");
        assert!(sid.len() == 32 && sid.bytes().all(|b| b.is_ascii_hexdigit()), "{sid}");
        assert!(r.header("x-request-id").is_some_and(|v| !v.is_empty()), "{:?}", r.headers);
    }
    assert_eq!(h.sessions().len(), 6);
    // Without params.protocolVersion: -32602, and no session.
    let r = post(&h, r#"{"jsonrpc":"2.0","id":5,"method":"initialize","params":{}}"#, &[ACCEPT, JSON]);
    assert_eq!((r.status, r.code()), (200, Some(-32602)));
    assert_eq!(r.message(), "initialize needs params.protocolVersion");
    assert!(r.header("mcp-session-id").is_none());
    assert_eq!(h.sessions().len(), 6);
}

#[test]
fn modern_clients_discover_statelessly_and_get_405_for_get_and_delete() {
    let h = hub(json!({}));
    let r = modern(&h, "server/discover", json!({}));
    assert_eq!(r.status, 200, "{}", r.text);
    let d = r.json();
    assert_eq!(d["id"], "m1");
    assert_eq!(d["result"]["supportedVersions"], json!(["2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"]));
    assert_eq!(d["result"]["resultType"], "complete");
    assert_eq!(d["result"]["cacheScope"], "public");
    assert_eq!(d["result"]["ttlMs"], 60_000);
    assert_eq!(d["result"]["capabilities"]["tools"]["listChanged"], true);
    assert_eq!(d["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]["name"], "mcphub");
    assert!(r.header("mcp-session-id").is_none(), "stateless: no session");
    assert_eq!(h.sessions().len(), 0);
    // A session header on a modern request is ignored.
    let r = modern_with(&h, "server/discover", json!({}), &[("Mcp-Session-Id", "whatever")]);
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.header("mcp-session-id").is_none());
    let modern_version = [("MCP-Protocol-Version", "2026-07-28")];
    let del = delete(&h, &modern_version);
    assert_eq!((del.status, del.header("allow")), (405, Some("POST")));
    assert_eq!(del.text, "2026-07-28 has no sessions to delete");
    let g = get(&h, "/mcp", &[ACCEPT, ("MCP-Protocol-Version", "2026-07-28")]);
    assert_eq!((g.status, g.header("allow")), (405, Some("POST")));
    assert_eq!(g.text, "2026-07-28 has no GET stream; use subscriptions/listen");
    // server/discover is modern even without _meta or headers, and then needs them.
    let bare = post(&h, r#"{"jsonrpc":"2.0","id":2,"method":"server/discover"}"#, &[ACCEPT, JSON]);
    assert_eq!((bare.status, bare.code()), (400, Some(-32020)), "{}", bare.text);
    assert_eq!(bare.message(), "Header mismatch: MCP-Protocol-Version header is missing");
}

#[test]
fn a_modern_version_in_meta_without_headers_is_a_header_mismatch() {
    let h = hub(json!({}));
    let body = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {"_meta": modern_meta()}}).to_string();
    let r = post(&h, &body, &[ACCEPT, JSON]);
    assert_eq!((r.status, r.code()), (400, Some(-32020)), "{}", r.text);
    assert_eq!(r.json()["id"], 3);
    let r = post(&h, &body, &[ACCEPT, JSON, ("MCP-Protocol-Version", "2026-07-28")]);
    assert_eq!((r.status, r.code()), (400, Some(-32020)));
    assert_eq!(r.message(), "Header mismatch: Mcp-Method header is missing");
    let r = post(&h, &body, &[ACCEPT, JSON, ("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", "tools/list")]);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["result"]["tools"], json!([]));
}

#[test]
fn modern_headers_are_validated_against_the_body() {
    let h = hub(json!({}));
    let body = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{},"_meta": modern_meta()}}).to_string();
    let v = ("MCP-Protocol-Version", "2026-07-28");
    let cases: [(&[(&str, &str)], &str); 5] = [
        (&[v, ("Mcp-Method", "tools/call")], "Header mismatch: Mcp-Name header is missing"),
        (&[v, ("Mcp-Method", "tools/list"), ("Mcp-Name", "echo")], "Header mismatch: Mcp-Method header value 'tools/list' does not match body value 'tools/call'"),
        (&[v, ("Mcp-Method", "tools/call"), ("Mcp-Name", "other")], "Mcp-Name"),
        (&[v, ("Mcp-Method", "tools/call"), ("Mcp-Name", "=?base64?ZWNobzI=?=")], "Mcp-Name"),
        (&[("Mcp-Method", "tools/call"), ("Mcp-Name", "echo")], "Header mismatch: MCP-Protocol-Version header is missing"),
    ];
    for (headers, says) in cases {
        let mut all = vec![ACCEPT, JSON];
        all.extend_from_slice(headers);
        let r = post(&h, &body, &all);
        assert_eq!((r.status, r.code()), (400, Some(-32020)), "{headers:?}: {}", r.text);
        assert!(r.message().contains(says), "{headers:?}: {}", r.message());
        assert_eq!(r.json()["id"], 1);
    }
    // Encoded the way the spec says, the name matches: past the headers, an unknown tool (-32602).
    let (body, hdrs) = modern_request("tools/call", json!({"name": "ünïcode tool", "arguments": {}}));
    assert!(hdrs.iter().any(|(k, v)| k == "Mcp-Name" && v.starts_with("=?base64?")), "{hdrs:?}");
    let all: Vec<(&str, &str)> = hdrs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = post(&h, &body, &all);
    assert_eq!((r.status, r.code()), (200, Some(-32602)), "{}", r.text);
    // A body version the header contradicts is a mismatch first (-32020), even an unknown one.
    let contradicted = json!({"jsonrpc":"2.0","id":3,"method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"v999.0.0","io.modelcontextprotocol/clientCapabilities":{}}}});
    let r = post(&h, &contradicted.to_string(), &[ACCEPT, JSON, v, ("Mcp-Method", "server/discover")]);
    assert_eq!((r.status, r.code()), (400, Some(-32020)));
    assert_eq!(r.message(), "Header mismatch: MCP-Protocol-Version header value '2026-07-28' does not match body value 'v999.0.0'");
    // Header and body agree on a version the hub does not speak: -32022 naming the supported ones.
    let unsupported = json!({"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2099-01-01"}}});
    let r = post(&h, &unsupported.to_string(), &[ACCEPT, JSON, ("MCP-Protocol-Version", "2099-01-01"), ("Mcp-Method", "tools/list")]);
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!({"jsonrpc": "2.0", "id": 2, "error": {"code": -32022, "message": "Unsupported protocol version",
            "data": {"supported": ["2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"], "requested": "2099-01-01"}}})
    );
}

#[test]
fn a_modern_request_without_its_meta_is_400_invalid_params() {
    let h = hub(json!({}));
    let headers = [ACCEPT, JSON, ("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", "server/discover")];
    let version = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28"});
    let caps = json!({"io.modelcontextprotocol/clientCapabilities": {}});
    for (what, params, says) in [
        ("no _meta", json!({}), "Invalid params: params._meta is required (2026-07-28 per-request metadata)"),
        ("no version", json!({"_meta": caps}), "Invalid params: params._meta[\"io.modelcontextprotocol/protocolVersion\"] must be a string"),
        ("no capabilities", json!({"_meta": version}), "Invalid params: params._meta[\"io.modelcontextprotocol/clientCapabilities\"] must be an object"),
    ] {
        let body = json!({"jsonrpc":"2.0","id":7,"method":"server/discover","params":params}).to_string();
        let r = post(&h, &body, &headers);
        assert_eq!(r.status, 400, "{what}: {}", r.text);
        assert_eq!(r.json(), json!({"jsonrpc": "2.0", "id": 7, "error": {"code": -32602, "message": says}}), "{what}");
    }
}

#[test]
fn legacy_sessions_are_required_checked_and_deleted() {
    let h = hub(json!({}));
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let none = post(&h, body, &[ACCEPT, JSON]);
    assert_eq!((none.status, none.code()), (400, Some(-32600)));
    assert_eq!(none.message(), "Bad Request: Mcp-Session-Id header is required (send initialize first)");
    assert_eq!(none.json()["id"], 1);
    let unknown = post(&h, body, &[ACCEPT, JSON, ("Mcp-Session-Id", "nope")]);
    assert_eq!((unknown.status, unknown.code()), (404, Some(-32600)));
    assert_eq!(unknown.message(), "Session not found or expired; initialize again");

    let sid = legacy_session(&h);
    let ping = legacy(&h, &sid, "ping", json!({}));
    assert_eq!((ping.status, ping.json()), (200, json!({"jsonrpc": "2.0", "id": 1, "result": {}})));
    // An unknown version in the header is not a legacy one: the request is
    // read as modern and refused with -32022 naming the supported versions.
    let bad_version = post(&h, body, &[ACCEPT, JSON, ("Mcp-Session-Id", &sid), ("MCP-Protocol-Version", "2024-01-01")]);
    assert_eq!((bad_version.status, bad_version.code()), (400, Some(-32022)));
    assert_eq!(bad_version.json()["error"]["data"]["requested"], "2024-01-01");
    // A missing MCP-Protocol-Version is accepted (assumed 2025-03-26).
    let no_version = post(&h, body, &[ACCEPT, JSON, ("Mcp-Session-Id", &sid)]);
    assert_eq!(no_version.status, 200, "{}", no_version.text);
    assert_eq!(no_version.json()["result"]["tools"], json!([]));

    // DELETE: no header 400, the session 200 (then gone: 404 for requests and a second DELETE).
    let missing = delete(&h, &[]);
    assert_eq!((missing.status, missing.code()), (400, Some(-32600)));
    assert_eq!(missing.message(), "Bad Request: Mcp-Session-Id header is required");
    let d = delete(&h, &[("Mcp-Session-Id", &sid)]);
    assert_eq!((d.status, d.text.as_str()), (200, ""));
    assert_eq!(h.sessions().len(), 0);
    let after = legacy(&h, &sid, "ping", json!({}));
    assert_eq!((after.status, after.code()), (404, Some(-32600)));
    let again = delete(&h, &[("Mcp-Session-Id", &sid)]);
    assert_eq!((again.status, again.message()), (404, "Session not found".to_string()));
    // A GET on an unknown session is refused the same way.
    let g = get(&h, "/mcp", &[ACCEPT, ("Mcp-Session-Id", &sid)]);
    assert_eq!((g.status, g.code()), (404, Some(-32600)));
    let g = get(&h, "/mcp", &[ACCEPT]);
    assert_eq!((g.status, g.code()), (400, Some(-32600)));
}

#[test]
fn a_legacy_get_with_an_unknown_last_event_id_is_404() {
    let h = hub(json!({}));
    let sid = legacy_session(&h);
    for last in ["garbage", "s1-5", ""] {
        let r = get(&h, "/mcp", &[ACCEPT, ("Mcp-Session-Id", &sid), ("Last-Event-ID", last)]);
        assert_eq!((r.status, r.code()), (404, Some(-32600)), "{last:?}: {}", r.text);
        assert_eq!(r.message(), "Unknown or expired Last-Event-ID for this session");
        assert_eq!(r.json()["id"], Value::Null);
    }
}

#[test]
fn notifications_and_client_answers_are_accepted_with_202_and_no_body() {
    let h = hub(json!({}));
    let sid = legacy_session(&h);
    let hdrs = legacy_headers(&sid);
    for body in [
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":42}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}"#,
        r#"{"jsonrpc":"2.0","method":"no/such/notification"}"#,
        // An answer to a server→client request nobody waits for: accepted, ignored.
        r#"{"jsonrpc":"2.0","id":"s-1","result":{}}"#,
        r#"{"jsonrpc":"2.0","id":"s-2","error":{"code":-1,"message":"no"}}"#,
    ] {
        let r = post(&h, body, &hdrs);
        assert_eq!((r.status, r.text.as_str()), (202, ""), "{body}");
    }
    // A modern notification needs no session.
    let (body, hdrs) = modern_request("notifications/cancelled", json!({"requestId": "m0"}));
    let body = body.replacen(r#""id":"m1","#, "", 1);
    let all: Vec<(&str, &str)> = hdrs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = post(&h, &body, &all);
    assert_eq!((r.status, r.text.as_str()), (202, ""), "{body}");
    // A legacy notification on an unknown session: 404.
    let r = post(&h, r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#, &legacy_headers("nope"));
    assert_eq!((r.status, r.code()), (404, Some(-32600)));
    let r = post(&h, r#"{"jsonrpc":"2.0","id":"s-3","result":{}}"#, &legacy_headers("nope"));
    assert_eq!((r.status, r.code()), (404, Some(-32600)));
}

#[test]
fn unknown_methods_answer_32601_at_once() {
    let h = hub(json!({}));
    let m = modern(&h, "no/such", json!({}));
    assert_eq!(m.status, 404, "modern: 404 + -32601 (2026-07-28 streamable-http)");
    assert_eq!(m.json(), json!({"jsonrpc": "2.0", "id": "m1", "error": {"code": -32601, "message": "Method not found: no/such"}}));
    let sid = legacy_session(&h);
    let l = legacy(&h, &sid, "no/such", json!({}));
    assert_eq!(l.status, 200);
    assert_eq!(l.json(), json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32601, "message": "Method not found: no/such"}}));
    // Methods 2026-07-28 removed are unknown to modern clients, kept for legacy ones;
    // and modern-only ones are unknown to legacy clients.
    for method in ["ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe"] {
        let m = modern(&h, method, json!({"level": "info", "uri": "x://y"}));
        assert_eq!((m.status, m.code()), (404, Some(-32601)), "{method}");
    }
    for method in ["ping", "logging/setLevel"] {
        assert_eq!(legacy(&h, &sid, method, json!({"level": "info"})).json()["result"], json!({}), "{method}");
    }
    let l = legacy(&h, &sid, "subscriptions/listen", json!({}));
    assert_eq!((l.status, l.code()), (200, Some(-32601)));
}

#[test]
fn bad_input_gets_the_json_rpc_error_it_deserves() {
    let h = hub(json!({}));
    let parse = post(&h, "{not json", &[ACCEPT, JSON]);
    assert_eq!((parse.status, parse.code()), (400, Some(-32700)));
    assert!(parse.message().starts_with("Parse error: "), "{}", parse.message());
    assert_eq!(parse.json()["id"], Value::Null);
    let empty = post(&h, "", &[ACCEPT, JSON]);
    assert_eq!((empty.status, empty.code()), (400, Some(-32700)));
    // Batches were removed in 2025-06-18: -32600, not processed.
    let batch = post(&h, r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#, &[ACCEPT, JSON]);
    assert_eq!((batch.status, batch.code()), (400, Some(-32600)));
    assert_eq!(batch.message(), "Invalid request: JSON-RPC batches are not supported (removed in MCP 2025-06-18)");
    for (body, says, id) in [
        (r#"{"jsonrpc":"2.0","id":9}"#, "Invalid request: missing \"method\"", json!(9)),
        (r#"7"#, "Invalid request: expected a JSON object", Value::Null),
        (r#"{"jsonrpc":"1.0","id":4,"method":"ping"}"#, "Invalid request: \"jsonrpc\" must be \"2.0\"", json!(4)),
        (r#"{"id":5,"method":"ping"}"#, "Invalid request: \"jsonrpc\" must be \"2.0\"", json!(5)),
        (r#"{"jsonrpc":"2.0","id":[1],"method":"ping"}"#, "Invalid request: \"id\" must be a string or a number", Value::Null),
        (r#"{"jsonrpc":"2.0","id":6,"method":3}"#, "Invalid request: \"method\" must be a string", json!(6)),
        (r#"{"jsonrpc":"2.0","id":8,"method":"ping","params":[1]}"#, "Invalid request: \"params\" must be an object", json!(8)),
    ] {
        let r = post(&h, body, &[ACCEPT, JSON]);
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert_eq!(r.json(), json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32600, "message": says}}), "{body}");
    }
    let sid = legacy_session(&h);
    let bad_params = legacy(&h, &sid, "tools/call", json!({"arguments": {}}));
    assert_eq!((bad_params.code(), bad_params.message()), (Some(-32602), "tools/call needs params.name".to_string()));
    let unknown_tool = legacy(&h, &sid, "tools/call", json!({"name": "nope"}));
    assert_eq!(unknown_tool.code(), Some(-32602));
    assert!(unknown_tool.message().contains("Unknown tool"), "{}", unknown_tool.message());
    let no_prompt = legacy(&h, &sid, "prompts/get", json!({"name": "nope"}));
    assert_eq!(no_prompt.code(), Some(-32602));
    let bad_level = legacy(&h, &sid, "logging/setLevel", json!({"level": "loud"}));
    assert_eq!(bad_level.code(), Some(-32602));
    assert_eq!(bad_level.message(), "params.level must be one of debug, info, notice, warning, error, critical, alert, emergency");
    let set = legacy(&h, &sid, "logging/setLevel", json!({"level": "warning"}));
    assert_eq!((set.status, set.json()["result"].clone()), (200, json!({})));
    let session = h.sessions().get(&sid).expect("the session");
    assert_eq!(session.log_level.lock().as_deref(), Some("warning"), "recorded for this client");
}

#[test]
fn lists_of_an_empty_catalog_are_empty_and_shaped_for_the_era() {
    let h = hub(json!({}));
    let sid = legacy_session(&h);
    for (method, field) in [
        ("tools/list", "tools"),
        ("prompts/list", "prompts"),
        ("resources/list", "resources"),
        ("resources/templates/list", "resourceTemplates"),
    ] {
        let l = legacy(&h, &sid, method, json!({}));
        assert_eq!((l.status, l.json()), (200, json!({"jsonrpc": "2.0", "id": 1, "result": {field: []}})), "{method}");
        let m = modern(&h, method, json!({})).json();
        assert_eq!(m["result"][field], json!([]), "{method}: {m}");
        assert_eq!(m["result"]["resultType"], "complete", "{method}");
        assert_eq!(m["result"]["cacheScope"], "private", "{method}");
        assert!(m["result"]["ttlMs"].is_u64(), "{method}: {m}");
    }
    let o = legacy(&h, &sid, "offerings/list", json!({})).json();
    assert_eq!(o["result"], json!({"tools": [], "prompts": [], "resources": []}));
    let tasks = legacy(&h, &sid, "tasks/list", json!({})).json();
    assert_eq!(tasks["result"]["tasks"], json!([]), "{tasks}");
    let t = legacy(&h, &sid, "tasks/get", json!({"taskId": "mcphub-tnope"}));
    assert_eq!(t.code(), Some(-32602), "{}", t.text);
}

#[test]
fn foreign_origins_are_refused_and_localhost_ones_accepted() {
    let h = hub(json!({"allowedOrigins": ["https://ide.example.com"]}));
    let body = initialize_body("2025-06-18");
    for origin in ["https://evil.example", "null", "http://localhost.evil.example", "file://localhost"] {
        let r = post(&h, &body, &[ACCEPT, JSON, ("Origin", origin)]);
        assert_eq!(r.status, 403, "{origin}");
        assert_eq!(r.json(), json!({"jsonrpc": "2.0", "error": {"code": -32600, "message": "Forbidden: Origin not allowed"}}));
        assert!(r.header("mcp-session-id").is_none());
    }
    assert_eq!(h.sessions().len(), 0, "a refused initialize makes no session");
    for origin in ["http://localhost:6274", "https://127.0.0.1", "http://[::1]:80", "https://ide.example.com"] {
        assert_eq!(post(&h, &body, &[ACCEPT, JSON, ("Origin", origin)]).status, 200, "{origin}");
    }
    // GET and DELETE are refused the same way, and the admin and /api/me endpoints.
    assert_eq!(get(&h, "/mcp", &[("Origin", "https://evil.example")]).status, 403);
    assert_eq!(delete(&h, &[("Origin", "https://evil.example"), ("Mcp-Session-Id", "x")]).status, 403);
    for path in ["/api/me", "/api/admin/users"] {
        let r = get(&h, path, &[("Origin", "https://evil.example")]);
        assert_eq!((r.status, r.json()), (403, json!({"success": false, "error": "Forbidden: Origin not allowed"})), "{path}");
    }
}

#[test]
fn other_http_methods_and_paths() {
    let h = hub(json!({}));
    let r = request(&h, "PUT", "/mcp", &[], "{}");
    assert_eq!((r.status, r.header("allow"), r.text.as_str()), (405, Some("POST, GET, DELETE"), "use POST"));
    let r = get(&h, "/", &[]);
    assert_eq!((r.status, r.text.as_str()), (200, "MCPHub: the MCP endpoint is /mcp; your pages are at /ui/\n"));
    let r = get(&h, "/nope", &[]);
    assert_eq!((r.status, r.text.as_str()), (404, "not found; the MCP endpoint is /mcp\n"));
    // `/mcp/` and a query are the endpoint too.
    let r = post_to(&h, "/mcp/?x=1", &initialize_body("2025-11-25"));
    assert_eq!(r.status, 200, "{}", r.text);
}

fn post_to(h: &mcphub::hub::Hub, target: &str, body: &str) -> Answer {
    request(h, "POST", target, &[ACCEPT, JSON], body)
}

#[test]
fn healthz_readyz_and_metrics_answer_without_an_upstream() {
    let h = hub(json!({}));
    let r = get(&h, "/healthz", &[]);
    assert_eq!((r.status, r.json()), (200, json!({"status": "ok"})));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let sid = legacy_session(&h);
    let ready = get(&h, "/readyz", &[]);
    assert_eq!(ready.status, 200);
    let ready = ready.json();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["store"]["kind"], "memory");
    assert_eq!(ready["store"]["reachable"], true);
    assert_eq!(ready["config"], json!({"loaded": true, "servers": 0, "skipped": []}));
    assert_eq!(ready["clientSessions"], 1);
    assert_eq!(ready["servers"], json!({}));

    legacy(&h, &sid, "ping", json!({}));
    legacy(&h, &sid, "no/such", json!({}));
    modern(&h, "server/discover", json!({}));
    let m = get(&h, "/metrics", &[]);
    assert_eq!((m.status, m.header("content-type")), (200, Some("text/plain; version=0.0.4; charset=utf-8")));
    let lines: Vec<&str> = m.text.lines().collect();
    for want in [
        "mcphub_requests_total{era=\"legacy\",method=\"initialize\",outcome=\"ok\"} 1",
        "mcphub_requests_total{era=\"legacy\",method=\"ping\",outcome=\"ok\"} 1",
        "mcphub_requests_total{era=\"legacy\",method=\"other\",outcome=\"rpc_method_not_found\"} 1",
        "mcphub_requests_total{era=\"modern\",method=\"server/discover\",outcome=\"ok\"} 1",
        "mcphub_client_sessions 1",
        "mcphub_store_up{kind=\"memory\"} 1",
    ] {
        assert!(lines.contains(&want), "no {want:?} in\n{}", m.text);
    }
    assert!(m.text.contains("# TYPE mcphub_request_duration_seconds histogram"), "{}", m.text);
}

#[test]
fn initialize_beyond_max_client_sessions_is_503_with_retry_after() {
    let h = hub(json!({"maxClientSessions": 2}));
    legacy_session(&h);
    legacy_session(&h);
    let body = initialize_body("2025-06-18").replacen(r#""id":0"#, r#""id":7"#, 1);
    let r = post(&h, &body, &[ACCEPT, JSON]);
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.header("retry-after"), Some("5"));
    assert_eq!(r.code(), Some(-32000));
    assert_eq!(r.json()["id"], 7);
    assert_eq!(r.json()["error"]["data"], json!({"retry_after_seconds": 5}));
    assert!(r.header("mcp-session-id").is_none());
    assert_eq!(h.sessions().len(), 2);
}
