//! Socket-level tests of `mcphub-mock`: the mock behind the hub's own HTTP
//! server, spoken to over plain TCP (and the binary's CLI).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcphub::http::{Server, ServerConfig, ServerHandle};
use mcphub_mock::{MockConfig, MockServer};
use serde_json::{json, Value};

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("JSON body ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(pos) = raw.windows(2).position(|w| w == b"\r\n") else { return out };
        let size_line = std::str::from_utf8(&raw[..pos]).unwrap();
        let size = usize::from_str_radix(size_line.split(';').next().unwrap().trim(), 16).unwrap();
        raw = &raw[pos + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

/// One request on its own connection (`Connection: close`).
fn http(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_string(), v.trim().to_string())))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("Transfer-Encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Resp { status, headers, body }
}

fn post(addr: SocketAddr, headers: &[(&str, &str)], body: &Value) -> Resp {
    let mut h = vec![("Content-Type", "application/json"), ("Accept", "application/json, text/event-stream")];
    h.extend_from_slice(headers);
    http(addr, "POST", "/mcp", &h, &body.to_string())
}

/// Starts a mock on a free port; `None` while `Server::bind` is not built yet.
fn start(cfg: MockConfig) -> Option<(ServerHandle, SocketAddr)> {
    let server_cfg = ServerConfig { workers: 16, ..ServerConfig::default() };
    match Server::bind("127.0.0.1:0".parse().unwrap(), server_cfg, Arc::new(MockServer::new(cfg))) {
        Ok(h) => {
            let addr = h.local_addr();
            Some((h, addr))
        }
        Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {
            eprintln!("skipped: {e}");
            None
        }
        Err(e) => panic!("bind: {e}"),
    }
}

fn initialize(addr: SocketAddr) -> String {
    let r = post(
        addr,
        &[],
        &json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
            "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.header("Mcp-Session-Id").expect("session header").to_string()
}

#[test]
fn legacy_session_lifecycle_over_http() {
    let Some((h, addr)) = start(MockConfig::default()) else { return };
    let sid = initialize(addr);
    let r = post(addr, &[("Mcp-Session-Id", &sid)], &json!({"jsonrpc":"2.0","method":"notifications/initialized"}));
    assert_eq!(r.status, 202);
    let r = post(
        addr,
        &[("Mcp-Session-Id", &sid), ("MCP-Protocol-Version", "2025-11-25")],
        &json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"over tcp"}}}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["result"]["content"][0]["text"], "mock: over tcp");
    assert_eq!(post(addr, &[], &json!({"jsonrpc":"2.0","id":3,"method":"ping"})).status, 400);
    assert_eq!(http(addr, "GET", "/mcp", &[("Accept", "text/event-stream")], "").status, 405);
    assert_eq!(http(addr, "DELETE", "/mcp", &[("Mcp-Session-Id", &sid)], "").status, 200);
    assert_eq!(post(addr, &[("Mcp-Session-Id", &sid)], &json!({"jsonrpc":"2.0","id":4,"method":"ping"})).status, 404);
    let stats = http(addr, "GET", "/stats", &[], "").json();
    assert_eq!(stats["initialize"], 1);
    assert_eq!(stats["sessions_active"], 0);
    assert_eq!(stats["expired_404"], 1);
    assert_eq!(stats["tools"]["echo"], 1);
    h.shutdown();
}

#[test]
fn modern_mismatch_and_discover_over_http() {
    let Some((h, addr)) = start(MockConfig::default()) else { return };
    let meta = json!({"io.modelcontextprotocol/protocolVersion":"2026-07-28",
                      "io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"},
                      "io.modelcontextprotocol/clientCapabilities":{}});
    let body = json!({"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta": meta}});
    let r = post(addr, &[("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", "server/discover")], &body);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["result"]["supportedVersions"][0], "2026-07-28");
    let body = json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"},"_meta": meta}});
    let r = post(
        addr,
        &[("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", "tools/call"), ("Mcp-Name", "whoami")],
        &body,
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], -32020);
    h.shutdown();
}

#[test]
fn progress_streams_sse_events_then_the_result() {
    let Some((h, addr)) = start(MockConfig::default()) else { return };
    let sid = initialize(addr);
    let r = post(
        addr,
        &[("Mcp-Session-Id", &sid)],
        &json!({"jsonrpc":"2.0","id":9,"method":"tools/call","params":{
            "name":"progress","arguments":{"steps":3,"ms":10},"_meta":{"progressToken":"p1"}}}),
    );
    assert_eq!(r.status, 200);
    assert!(r.header("Content-Type").unwrap().starts_with("text/event-stream"));
    let events: Vec<Value> = r
        .text()
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| serde_json::from_str(d.trim()).unwrap())
        .collect();
    assert_eq!(events.len(), 4, "{}", r.text());
    for (i, e) in events[..3].iter().enumerate() {
        assert_eq!(e["params"], json!({"progressToken":"p1","progress":i + 1,"total":3}));
    }
    assert_eq!(events[3]["id"], 9);
    assert_eq!(events[3]["result"]["content"][0]["text"], "mock: progress done, 3 steps");
    h.shutdown();
}

#[test]
fn more_than_k_in_flight_get_429() {
    let Some((h, addr)) = start(MockConfig { max_concurrency: Some(2), ..MockConfig::default() }) else { return };
    let meta = json!({"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}});
    let body = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sleep","arguments":{"ms":400},"_meta":meta}});
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let body = body.clone();
            std::thread::spawn(move || {
                let r = post(
                    addr,
                    &[("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", "tools/call"), ("Mcp-Name", "sleep")],
                    &body,
                );
                (r.status, r.header("Retry-After").map(str::to_string))
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    let rejected: Vec<_> = results.iter().filter(|(s, _)| *s == 429).collect();
    assert!((1..=2).contains(&ok), "{results:?}");
    assert_eq!(ok + rejected.len(), 6, "{results:?}");
    assert!(rejected.iter().all(|(_, ra)| ra.as_deref() == Some("1")));
    let stats = http(addr, "GET", "/stats", &[], "").json();
    assert_eq!(stats["rejected_429"], rejected.len());
    h.shutdown();
}

#[test]
fn binary_serves_on_the_printed_port() {
    // Only meaningful once Server::bind exists.
    if start(MockConfig::default()).map(|(h, _)| h.shutdown()).is_none() {
        return;
    }
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mcphub-mock"))
        .args(["--port", "0", "--era", "legacy", "--name", "up7", "--latency-ms", "1"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr: SocketAddr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    let deadline = Instant::now() + Duration::from_secs(5);
    let sid = loop {
        if TcpStream::connect(addr).is_ok() || Instant::now() > deadline {
            break initialize(addr);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let r = post(
        addr,
        &[("Mcp-Session-Id", &sid)],
        &json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}),
    );
    assert_eq!(r.json()["result"]["content"][0]["text"], "up7: hi");
    // A legacy-only server answers a modern probe with a non-modern 400.
    let probe = json!({"jsonrpc":"2.0","id":3,"method":"server/discover",
                       "params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}});
    let r = post(addr, &[("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", "server/discover")], &probe);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], -32000);
    let _ = child.kill();
    let _ = child.wait();
}

// ---------------------------------------------------------------------------------------------
// Conformance fixtures (MockServer::with_conformance_fixtures)
// ---------------------------------------------------------------------------------------------

fn start_fixtures() -> Option<(ServerHandle, SocketAddr)> {
    let server = MockServer::with_conformance_fixtures(MockConfig { era: mcphub_mock::Era::Legacy, ..MockConfig::default() });
    let server_cfg = ServerConfig { workers: 16, ..ServerConfig::default() };
    match Server::bind("127.0.0.1:0".parse().unwrap(), server_cfg, Arc::new(server)) {
        Ok(h) => {
            let addr = h.local_addr();
            Some((h, addr))
        }
        Err(e) if e.kind() == std::io::ErrorKind::Unsupported => None,
        Err(e) => panic!("bind: {e}"),
    }
}

fn initialize_with(addr: SocketAddr, capabilities: Value) -> String {
    let r = post(
        addr,
        &[],
        &json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
            "protocolVersion":"2025-11-25","capabilities":capabilities,"clientInfo":{"name":"t","version":"1"}}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.header("Mcp-Session-Id").expect("session header").to_string()
}

/// The JSON `data:` payloads of an SSE body.
fn sse_data(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_json::from_str(d.trim()).unwrap_or_else(|e| panic!("{e}: {d}")))
        .collect()
}

/// Opens a POST whose SSE answer is read line by line.
fn open_stream(addr: SocketAddr, sid: &str, body: &Value) -> BufReader<TcpStream> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let body = body.to_string();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nMcp-Session-Id: {sid}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    BufReader::new(s)
}

/// The next JSON-RPC message on a stream opened by [`open_stream`] (`None` at its end).
fn next_message(r: &mut BufReader<TcpStream>) -> Option<Value> {
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if let Some(d) = line.trim_end().strip_prefix("data:") {
            if !d.trim().is_empty() {
                return Some(serde_json::from_str(d.trim()).unwrap());
            }
        }
    }
}

#[test]
fn sampling_request_goes_out_on_the_call_stream_and_the_answer_is_routed_back() {
    let Some((h, addr)) = start_fixtures() else { return };
    let sid = initialize_with(addr, json!({"sampling": {}, "elicitation": {}}));
    let call = json!({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"test_sampling","arguments":{"prompt":"2+2?"}}});
    let mut stream = open_stream(addr, &sid, &call);
    let req = next_message(&mut stream).expect("a server→client request");
    assert_eq!(req["method"], "sampling/createMessage", "{req}");
    assert_eq!(req["params"]["messages"][0]["content"]["text"], "2+2?");
    assert_eq!(req["params"]["maxTokens"], 100);
    let answer = json!({"jsonrpc":"2.0","id":req["id"],"result":{"role":"assistant","content":{"type":"text","text":"four"},"model":"m"}});
    let r = post(addr, &[("Mcp-Session-Id", &sid)], &answer);
    assert_eq!(r.status, 202, "{}", r.text());
    let done = next_message(&mut stream).expect("the result");
    assert_eq!(done["id"], 5);
    assert_eq!(done["result"]["content"][0]["text"], "LLM response: four", "{done}");
    // A second answer to the same id (or an unknown one) is still 202 and changes nothing.
    assert_eq!(post(addr, &[("Mcp-Session-Id", &sid)], &answer).status, 202);
    h.shutdown();
}

#[test]
fn elicitation_without_the_capability_is_a_tool_error_not_a_hang() {
    let Some((h, addr)) = start_fixtures() else { return };
    let sid = initialize_with(addr, json!({}));
    let call = json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"test_elicitation","arguments":{"message":"hi"}}});
    let r = post(addr, &[("Mcp-Session-Id", &sid)], &call);
    let msgs = sse_data(&r.text());
    assert_eq!(msgs.len(), 1, "{}", r.text());
    assert_eq!(msgs[0]["result"]["isError"], true, "{}", r.text());
    h.shutdown();
}

#[test]
fn logging_notifications_follow_the_session_level() {
    let Some((h, addr)) = start_fixtures() else { return };
    let sid = initialize_with(addr, json!({}));
    let call = json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"test_tool_with_logging","arguments":{}}});
    let logs = |r: &Resp| sse_data(&r.text()).into_iter().filter(|m| m["method"] == "notifications/message").count();
    assert_eq!(logs(&post(addr, &[("Mcp-Session-Id", &sid)], &call)), 3, "no level set: everything");
    let set = |level: &str| post(addr, &[("Mcp-Session-Id", &sid)], &json!({"jsonrpc":"2.0","id":4,"method":"logging/setLevel","params":{"level":level}}));
    assert_eq!(set("error").json()["result"], json!({}));
    assert_eq!(logs(&post(addr, &[("Mcp-Session-Id", &sid)], &call)), 0, "info is below error");
    set("debug");
    let r = post(addr, &[("Mcp-Session-Id", &sid)], &call);
    let msgs = sse_data(&r.text());
    assert_eq!(msgs.iter().filter(|m| m["method"] == "notifications/message").count(), 3, "{}", r.text());
    assert_eq!(msgs[0]["params"]["level"], "info");
    assert_eq!(msgs.last().unwrap()["id"], 3);
    assert_eq!(set("loud").json()["error"]["code"], -32602);
    h.shutdown();
}

#[test]
fn test_reconnection_cuts_the_stream_and_replays_the_result_on_get() {
    let Some((h, addr)) = start_fixtures() else { return };
    let sid = initialize_with(addr, json!({}));
    let other = initialize_with(addr, json!({}));
    let call = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"test_reconnection","arguments":{}}});
    let r = post(addr, &[("Mcp-Session-Id", &sid)], &call);
    let text = r.text();
    let event_id = text.lines().find_map(|l| l.strip_prefix("id:")).expect("an event id").trim().to_string();
    assert!(text.contains("retry: 500") || text.contains("retry:500"), "{text}");
    assert!(sse_data(&text).is_empty(), "no result before the cut: {text}");
    let get = |s: &str, last: &str| {
        http(addr, "GET", "/mcp", &[("Accept", "text/event-stream"), ("Mcp-Session-Id", s), ("Last-Event-ID", last)], "")
    };
    assert_eq!(get(&other, &event_id).status, 404, "another session cannot resume it");
    let r = get(&sid, &event_id);
    assert_eq!(r.status, 200);
    let msgs = sse_data(&r.text());
    assert_eq!(msgs.len(), 1, "{}", r.text());
    assert_eq!(msgs[0]["id"], 1);
    assert_eq!(msgs[0]["result"]["content"][0]["text"], "Reconnection test completed successfully");
    assert_eq!(get(&sid, &event_id).status, 404, "replayed once");
    assert_eq!(http(addr, "GET", "/mcp", &[("Accept", "text/event-stream"), ("Mcp-Session-Id", &sid)], "").status, 405);
    h.shutdown();
}

#[test]
fn non_loopback_host_or_origin_is_refused() {
    let Some((h, addr)) = start(MockConfig::default()) else { return };
    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}});
    let send = |extra: &[(&str, &str)]| {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let body = init.to_string();
        let mut head = format!("POST /mcp HTTP/1.1\r\nConnection: close\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\n", body.len());
        for (k, v) in extra {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body.as_bytes()).unwrap();
        let mut raw = String::new();
        let _ = s.read_to_string(&mut raw);
        raw.split(' ').nth(1).unwrap_or_default().to_string()
    };
    let port = addr.port().to_string();
    assert_eq!(send(&[("Host", "evil.example.com")]), "403");
    assert_eq!(send(&[("Host", &format!("localhost:{port}")), ("Origin", "http://evil.example.com")]), "403");
    assert_eq!(send(&[("Host", &format!("localhost:{port}")), ("Origin", &format!("http://localhost:{port}"))]), "200");
    assert_eq!(send(&[("Host", &format!("127.0.0.1:{port}"))]), "200");
    assert_eq!(send(&[("Host", &format!("[::1]:{port}"))]), "200");
    h.shutdown();
}
