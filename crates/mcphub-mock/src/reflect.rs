//! Reflect mode (issue 14, "Tests"): an upstream that repeats the caller's
//! credential everywhere a careless real server might, so a test can prove
//! that nothing of one user reaches another, a log line or `/readyz`.
//!
//! On when [`MockConfig::reflect_credential`](super::MockConfig) names a
//! request header (`mcphub-mock --reflect-credential Authorization`). For a
//! request carrying that header with value `V`:
//!
//! - `V` containing [`BAD`] → HTTP 401 on every `/mcp` request, the body
//!   `401 invalid credentials: V` (text/plain) — the raw value echoed, as a
//!   bad real server does.
//! - the per-user marker [`marker`]`(V)` (`who-` + 12 hex of SHA-256 of `V`)
//!   goes into every list: appended to each tool's description, plus a
//!   tool and a prompt `private-{marker}`, a resource
//!   `mock://private/{marker}` and a template `mock://private/{marker}/{id}`; a modern list result says
//!   `cacheScope: "private"` and `ttlMs` [`LIST_TTL_MS`] (per-user data, and
//!   short-lived so a test sees a cache expire);
//! - every tool result gets one more text item `for {marker}`; a task's
//!   result (legacy `tasks/result`, modern `tasks/get` inlined) carries the
//!   marker of the credential that CREATED the task, whoever asks;
//! - errors repeat the raw `V`: tool [`ERROR_TOOL`] answers a JSON-RPC error
//!   (-32603), [`SSE_ERROR_TOOL`] the same as the only event of an SSE
//!   stream, and calling / reading / getting another marker's private tool /
//!   resource / prompt is -32602 naming `V`; the caller's own private tool
//!   answers `private to {marker}`.
//!
//! Requests without the header are answered as without the mode.

use std::collections::{BTreeMap, HashMap};

use parking_lot::Mutex;
use serde_json::{json, Value};

use super::{codes, short_sha, Ctx, MockServer, Reply};
use mcphub::http::{Request, Response};

/// A credential value containing this is refused with 401.
pub const BAD: &str = "bad";
/// Tool answering a JSON-RPC error that names the raw credential.
pub const ERROR_TOOL: &str = "reflect_error";
/// Tool answering an SSE stream whose one event is that JSON-RPC error.
pub const SSE_ERROR_TOOL: &str = "reflect_sse_error";
/// `ttlMs` of a modern list result in reflect mode.
pub const LIST_TTL_MS: u64 = 1000;
/// Prefix of the private prompt name and resource URI.
const PRIVATE_URI: &str = "mock://private/";

/// The per-user marker the mode reflects for credential value `value`:
/// `who-` + the first 12 hex digits of SHA-256 of the whole header value.
pub fn marker(value: &str) -> String {
    format!("who-{}", short_sha(value))
}

/// Reflect-mode state: who created which task, and a list counter.
#[derive(Default)]
pub(crate) struct State {
    /// Mock task id → marker of the credential that created it.
    creators: Mutex<HashMap<String, String>>,
    /// `tools/list` requests answered, by the caller's marker.
    tool_lists: Mutex<BTreeMap<String, u64>>,
}

fn add_text(result: &mut Value, text: String) {
    if let Some(content) = result.get_mut("content").and_then(Value::as_array_mut) {
        content.push(json!({"type": "text", "text": text}));
    }
}

fn push(result: &mut Value, field: &str, item: Value) {
    if let Some(a) = result.get_mut(field).and_then(Value::as_array_mut) {
        a.push(item);
    }
}

impl MockServer {
    /// The reflected header's value on `req` (`None`: mode off or no header).
    pub(crate) fn reflected<'a>(&self, req: &'a Request) -> Option<&'a str> {
        req.header(self.config().reflect_credential.as_deref()?)
    }

    /// The 401 answer for a credential containing [`BAD`].
    pub(crate) fn reflect_refusal(&self, req: &Request) -> Option<Response> {
        let value = self.reflected(req).filter(|v| v.contains(BAD))?;
        Some(Response::text(401, &format!("401 invalid credentials: {value}")).with_header("WWW-Authenticate", "Bearer error=\"invalid_token\""))
    }

    /// How many `tools/list` requests were answered since start, by the
    /// caller's marker (a test sees a list cache expire when one grows past 1).
    pub fn reflected_tool_lists(&self) -> BTreeMap<String, u64> {
        self.inner.reflect.tool_lists.lock().clone()
    }

    /// [`MockServer::dispatch`] for a request carrying credential `cred`.
    pub(crate) fn reflect_dispatch(&self, ctx: &Ctx<'_>, cred: &str, method: &str, params: Option<&Value>) -> Reply {
        let me = marker(cred);
        let arg = |k: &str| params.and_then(|p| p.get(k)).and_then(Value::as_str);
        match (method, arg("name"), arg("uri")) {
            ("tools/call", Some(ERROR_TOOL), _) => {
                return Reply::Error(codes::INTERNAL_ERROR, format!("backend error: the request with credential {cred} failed"), None)
            }
            ("tools/call", Some(SSE_ERROR_TOOL), _) => {
                return Reply::SseError(codes::INTERNAL_ERROR, format!("stream failed: credential {cred} has no access"))
            }
            ("tools/call", Some(name), _) if name.starts_with("private-") => {
                return if name == format!("private-{me}") {
                    let text = format!("{}: private to {me}", self.config().name);
                    Reply::Result(json!({"content": [{"type": "text", "text": text}], "isError": false}))
                } else {
                    Reply::Error(codes::INVALID_PARAMS, format!("tool {name} is not callable with credential {cred}"), None)
                };
            }
            ("prompts/get", Some(name), _) if name.starts_with("private-") => {
                return if name == format!("private-{me}") {
                    let text = format!("the private prompt of {me}");
                    Reply::Result(json!({"messages": [{"role": "user", "content": {"type": "text", "text": text}}]}))
                } else {
                    Reply::Error(codes::INVALID_PARAMS, format!("prompt {name} is not visible with credential {cred}"), None)
                };
            }
            ("resources/read", _, Some(uri)) if uri.starts_with(PRIVATE_URI) => {
                let owner = uri[PRIVATE_URI.len()..].split('/').next().unwrap_or_default();
                return if owner == me {
                    Reply::Result(json!({"contents": [{"uri": uri, "mimeType": "text/plain", "text": format!("private to {me}")}]}))
                } else {
                    Reply::Error(codes::INVALID_PARAMS, format!("{uri} is not readable with credential {cred}"), None)
                };
            }
            _ => {}
        }
        let plain = Ctx { credential: None, ..*ctx };
        let mut r = match self.dispatch(&plain, method, params) {
            Reply::Result(r) => r,
            other => return other,
        };
        let state = &self.inner.reflect;
        if method.ends_with("/list") && r.get("ttlMs").is_some() {
            r["ttlMs"] = json!(LIST_TTL_MS);
            r["cacheScope"] = json!("private");
        }
        match method {
            "tools/list" => {
                *state.tool_lists.lock().entry(me.clone()).or_default() += 1;
                if let Some(tools) = r.get_mut("tools").and_then(Value::as_array_mut) {
                    for t in tools.iter_mut() {
                        let d = t["description"].as_str().unwrap_or_default().to_string();
                        t["description"] = json!(format!("{d} (for {me})"));
                    }
                    let schema = json!({"type": "object", "properties": {}});
                    tools.push(json!({"name": ERROR_TOOL, "description": format!("Fails with a JSON-RPC error. (for {me})"), "inputSchema": schema}));
                    tools.push(json!({"name": SSE_ERROR_TOOL, "description": format!("Fails on an SSE stream. (for {me})"), "inputSchema": schema}));
                    tools.push(json!({"name": format!("private-{me}"), "description": format!("Answers its owner only. (for {me})"), "inputSchema": schema}));
                }
            }
            "prompts/list" => push(&mut r, "prompts", json!({"name": format!("private-{me}"), "description": format!("Private to {me}.")})),
            "resources/list" => {
                push(&mut r, "resources", json!({"uri": format!("{PRIVATE_URI}{me}"), "name": format!("private-{me}"), "mimeType": "text/plain"}))
            }
            "resources/templates/list" => push(
                &mut r,
                "resourceTemplates",
                json!({"uriTemplate": format!("{PRIVATE_URI}{me}/{{id}}"), "name": format!("private-{me}"), "mimeType": "text/plain"}),
            ),
            "tools/call" => {
                // A CreateTaskResult (legacy `task`, modern flat): remember the creator.
                let task = r.pointer("/task/taskId").or_else(|| r.get("taskId")).and_then(Value::as_str).map(str::to_string);
                match task {
                    Some(id) => {
                        state.creators.lock().insert(id, me);
                    }
                    None => add_text(&mut r, format!("for {me}")),
                }
            }
            "tasks/get" | "tasks/result" => {
                let creator = arg("taskId").and_then(|id| state.creators.lock().get(id).cloned());
                if let Some(creator) = creator {
                    match r.get_mut("result") {
                        Some(inlined) if method == "tasks/get" => add_text(inlined, format!("for {creator}")),
                        _ if method == "tasks/result" => add_text(&mut r, format!("for {creator}")),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        Reply::Result(r)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};

    use super::super::{Era, MockConfig};
    use super::*;
    use mcphub::http::Body;

    const ALICE: &str = "Bearer ghp_alice_1";
    const BOB: &str = "Bearer ghp_bob_2";

    fn server(era: Era) -> MockServer {
        let m = MockServer::new(MockConfig { era, name: "gh".into(), reflect_credential: Some("Authorization".into()), ..MockConfig::default() });
        m.enable_tasks();
        m
    }

    fn request(headers: &[(&str, &str)], body: &Value) -> Request {
        let mut h: Vec<(String, String)> = vec![("Content-Type".into(), "application/json".into())];
        h.extend(headers.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Request { method: "POST".into(), target: "/mcp".into(), headers: h, body: body.to_string().into_bytes(), peer: "127.0.0.1:1".parse().unwrap() }
    }

    fn json_body(r: Response) -> (u16, Value) {
        match r.body {
            Body::Full(b) => (r.status, serde_json::from_slice(&b).expect("JSON")),
            Body::Sse(_) => panic!("SSE"),
        }
    }

    /// A legacy session opened with credential `cred`.
    fn session(m: &MockServer, cred: &str) -> String {
        let body = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}});
        let r = m.handle(request(&[("Authorization", cred)], &body));
        assert_eq!(r.status, 200);
        r.headers.iter().find(|(k, _)| k == "Mcp-Session-Id").map(|(_, v)| v.clone()).expect("session")
    }

    fn legacy(m: &MockServer, cred: &str, sid: &str, method: &str, params: Value) -> Response {
        m.handle(request(&[("Authorization", cred), ("Mcp-Session-Id", sid)], &json!({"jsonrpc":"2.0","id":2,"method":method,"params":params})))
    }

    fn modern(m: &MockServer, cred: &str, method: &str, mut params: Value) -> Value {
        let caps = json!({"extensions": {super::super::tasks::EXTENSION: {}}});
        params["_meta"] = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": caps});
        let name = mcphub::protocol::headers::name_field(method).and_then(|f| params[f].as_str()).unwrap_or("").to_string();
        let mut h = vec![("Authorization", cred), ("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", method)];
        if !name.is_empty() {
            h.push(("Mcp-Name", &name));
        }
        json_body(m.handle(request(&h, &json!({"jsonrpc":"2.0","id":3,"method":method,"params":params})))).1
    }

    #[test]
    fn every_list_carries_the_callers_marker_and_no_one_elses() {
        let m = server(Era::Legacy);
        let (a, b) = (session(&m, ALICE), session(&m, BOB));
        let (ma, mb) = (marker(ALICE), marker(BOB));
        assert_eq!(ma, format!("who-{}", short_sha(ALICE)));
        assert_ne!(ma, mb);
        for (cred, sid, mine, other) in [(ALICE, &a, &ma, &mb), (BOB, &b, &mb, &ma)] {
            let (_, tools) = json_body(legacy(&m, cred, sid, "tools/list", json!({})));
            let tools = tools["result"]["tools"].as_array().unwrap().clone();
            assert!(tools.iter().all(|t| t["description"].as_str().unwrap().ends_with(&format!("(for {mine})"))), "{tools:?}");
            let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
            assert!(names.contains(&ERROR_TOOL) && names.contains(&SSE_ERROR_TOOL) && names.contains(&"slow_task"), "{names:?}");
            assert!(names.contains(&format!("private-{mine}").as_str()), "{names:?}");
            let (_, prompts) = json_body(legacy(&m, cred, sid, "prompts/list", json!({})));
            assert_eq!(prompts["result"]["prompts"][1]["name"], format!("private-{mine}"));
            let (_, res) = json_body(legacy(&m, cred, sid, "resources/list", json!({})));
            assert_eq!(res["result"]["resources"][1]["uri"], format!("mock://private/{mine}"));
            let (_, tpl) = json_body(legacy(&m, cred, sid, "resources/templates/list", json!({})));
            assert_eq!(tpl["result"]["resourceTemplates"][1]["uriTemplate"], format!("mock://private/{mine}/{{id}}"));
            let (_, call) = json_body(legacy(&m, cred, sid, "tools/call", json!({"name": "whoami", "arguments": {}})));
            assert_eq!(call["result"]["content"][1]["text"], format!("for {mine}"), "{call}");
            let all = format!("{tools:?}{prompts}{res}{tpl}{call}");
            assert!(!all.contains(other.as_str()) && !all.contains("ghp_"), "{all}");
            // Reading the other's private resource / prompt: -32602 naming the raw credential.
            let (_, read) = json_body(legacy(&m, cred, sid, "resources/read", json!({"uri": format!("mock://private/{other}")})));
            assert_eq!(read["error"]["code"], -32602);
            assert!(read["error"]["message"].as_str().unwrap().contains(cred), "{read}");
            let (_, foreign) = json_body(legacy(&m, cred, sid, "tools/call", json!({"name": format!("private-{other}"), "arguments": {}})));
            assert_eq!(foreign["error"]["code"], -32602);
            assert!(foreign["error"]["message"].as_str().unwrap().contains(cred), "{foreign}");
            let (_, own) = json_body(legacy(&m, cred, sid, "tools/call", json!({"name": format!("private-{mine}"), "arguments": {}})));
            assert_eq!(own["result"]["content"][0]["text"], format!("gh: private to {mine}"), "{own}");
            let (_, own) = json_body(legacy(&m, cred, sid, "prompts/get", json!({"name": format!("private-{mine}")})));
            assert!(own["result"]["messages"][0]["content"]["text"].as_str().unwrap().contains(mine.as_str()), "{own}");
        }
        assert_eq!(m.reflected_tool_lists(), BTreeMap::from([(ma, 1), (mb, 1)]));
    }

    #[test]
    fn a_bad_credential_is_answered_401_with_the_value_echoed() {
        let m = server(Era::Dual);
        let bad = "Bearer ghp_bad_token_9";
        let body = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}});
        let r = m.handle(request(&[("Authorization", bad)], &body));
        assert_eq!(r.status, 401);
        let Body::Full(text) = r.body else { panic!("SSE") };
        assert_eq!(String::from_utf8(text).unwrap(), format!("401 invalid credentials: {bad}"));
        // Modern requests too; a good credential, and none, are served.
        let meta = json!({"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}});
        let list = json!({"jsonrpc":"2.0","id":3,"method":"tools/list","params":meta});
        let r = m.handle(request(&[("Authorization", bad), ("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", "tools/list")], &list));
        assert_eq!(r.status, 401, "modern requests too");
        let listed = modern(&m, ALICE, "tools/list", json!({}));
        assert_eq!(listed["result"]["tools"][0]["description"].as_str().map(|d| d.contains(&marker(ALICE))), Some(true));
        assert_eq!((listed["result"]["ttlMs"].clone(), listed["result"]["cacheScope"].clone()), (json!(LIST_TTL_MS), json!("private")), "{listed}");
        let plain = m.handle(request(&[], &body));
        assert_eq!(plain.status, 200);
    }

    #[test]
    fn errors_repeat_the_raw_credential_as_json_rpc_and_as_an_sse_event() {
        let m = server(Era::Legacy);
        let sid = session(&m, ALICE);
        let (status, err) = json_body(legacy(&m, ALICE, &sid, "tools/call", json!({"name": ERROR_TOOL, "arguments": {}})));
        assert_eq!((status, err["error"]["code"].clone()), (200, json!(-32603)));
        assert_eq!(err["error"]["message"], format!("backend error: the request with credential {ALICE} failed"));
        let sse = legacy(&m, ALICE, &sid, "tools/call", json!({"name": SSE_ERROR_TOOL, "arguments": {}}));
        assert!(matches!(sse.body, Body::Sse(_)));
        // The event itself, over a real socket.
        let handle = mcphub::http::Server::bind("127.0.0.1:0".parse().unwrap(), Default::default(), std::sync::Arc::new(m.clone())).unwrap();
        let mut tcp = std::net::TcpStream::connect(handle.local_addr()).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let body = json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name": SSE_ERROR_TOOL, "arguments": {}}}).to_string();
        write!(
            tcp,
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {ALICE}\r\nMcp-Session-Id: {sid}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut text = String::new();
        let _ = tcp.read_to_string(&mut text);
        handle.shutdown();
        assert!(text.contains("text/event-stream"), "{text}");
        let event = text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap_or_else(|| panic!("no event: {text}"));
        let event: Value = serde_json::from_str(event).unwrap();
        assert_eq!(event["id"], 7);
        assert_eq!(event["error"]["message"], format!("stream failed: credential {ALICE} has no access"));
    }

    #[test]
    fn a_task_result_carries_its_creators_marker_whoever_asks() {
        let m = server(Era::Modern);
        let created = modern(&m, ALICE, "tools/call", json!({"name": "slow_task", "arguments": {"ms": 0}}));
        let id = created["result"]["taskId"].as_str().unwrap_or_else(|| panic!("{created}")).to_string();
        let deadline = Instant::now() + Duration::from_secs(10);
        let done = loop {
            let got = modern(&m, BOB, "tasks/get", json!({"taskId": id}));
            if got["result"]["status"] == "completed" {
                break got;
            }
            assert!(Instant::now() < deadline, "the task never completed: {got}");
            std::thread::sleep(Duration::from_millis(10));
        };
        // The modern mock serves any modern caller's task (the hub must not):
        // bob sees alice's marker, so a test through the hub can tell.
        let texts = done["result"]["result"]["content"].to_string();
        assert!(texts.contains(&format!("for {}", marker(ALICE))) && !texts.contains(&marker(BOB)), "{done}");

        let legacy_mock = server(Era::Legacy);
        let sid = session(&legacy_mock, BOB);
        let (_, created) = json_body(legacy(&legacy_mock, BOB, &sid, "tools/call", json!({"name": "slow_task", "arguments": {"ms": 0}, "task": {}})));
        let id = created["result"]["task"]["taskId"].as_str().unwrap_or_else(|| panic!("{created}")).to_string();
        let (_, result) = json_body(legacy(&legacy_mock, BOB, &sid, "tasks/result", json!({"taskId": id})));
        assert_eq!(result["result"]["content"][1]["text"], format!("for {}", marker(BOB)), "{result}");
    }

    #[test]
    fn without_the_mode_or_the_header_nothing_is_reflected() {
        let off = MockServer::new(MockConfig { era: Era::Modern, ..MockConfig::default() });
        let on = server(Era::Modern);
        for (m, cred) in [(&off, Some(ALICE)), (&on, None)] {
            let h: Vec<(&str, &str)> = cred.map(|c| ("Authorization", c)).into_iter().collect();
            let mut params = json!({});
            params["_meta"] = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28"});
            let mut hh = h.clone();
            hh.extend([("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", "tools/list")]);
            let (_, r) = json_body(m.handle(request(&hh, &json!({"jsonrpc":"2.0","id":1,"method":"tools/list","params":params}))));
            let text = r.to_string();
            assert!(!text.contains("who-") && !text.contains(ERROR_TOOL), "{text}");
        }
        assert!(on.reflected_tool_lists().is_empty());
    }
}
