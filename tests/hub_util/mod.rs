//! Shared harness for hub tests: in-process mock upstreams and hubs on real
//! loopback sockets (port 0), and a small JSON-RPC client over ureq.
#![allow(dead_code)]

use mcphub::config::Config;
use mcphub::http::{Server, ServerConfig, ServerHandle};
use mcphub::hub::Hub;
use mcphub_mock::{Era, MockConfig, MockServer};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

#[path = "../wait_util/mod.rs"]
mod wait_util;
pub use wait_util::{wait_until, PATIENCE};
#[path = "../http_util/mod.rs"]
pub mod http_util;
#[allow(unused_imports)] // each test file uses some
pub use http_util::{events_of, Event, SseStream, IO_TIMEOUT};

/// A running mock upstream; stopped on drop.
pub struct Mock {
    pub server: Arc<MockServer>,
    pub handle: ServerHandle,
    pub url: String,
}

impl Drop for Mock {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

impl Mock {
    pub fn stats(&self) -> Value {
        self.server.stats()
    }
}

pub fn mock(era: Era, name: &str) -> Mock {
    mock_with(MockConfig { era, name: name.into(), ..MockConfig::default() })
}

pub fn mock_with(cfg: MockConfig) -> Mock {
    let server = Arc::new(MockServer::new(cfg));
    let handle = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default(), server.clone()).expect("bind mock");
    let url = format!("http://{}/mcp", handle.local_addr());
    Mock { server, handle, url }
}

/// A running hub; stopped on drop.
pub struct HubUnderTest {
    pub hub: Hub,
    pub handle: ServerHandle,
    pub url: String,
}

impl Drop for HubUnderTest {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

/// Starts a hub whose `mcpServers` are `(name, url)` pairs plus `extra` top-level keys.
pub fn hub(servers: &[(&str, &str)], extra: Value) -> HubUnderTest {
    let mut map = serde_json::Map::new();
    for (name, url) in servers {
        map.insert(name.to_string(), json!({"type": "streamable-http", "url": url, "connectTimeoutMs": 500, "timeoutMs": 5000}));
    }
    // Each hub its own state directory (run-time users), never the working dir.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let state = std::env::temp_dir().join(format!("mcphub-test-state-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let mut cfg = json!({"mcpServers": map, "timeouts": {"hubMs": 8000}, "stateDir": state});
    if let (Some(o), Some(e)) = (cfg.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            o.insert(k.clone(), v.clone());
        }
    }
    let config = Config::parse(&cfg.to_string()).expect("valid test config");
    // The HTTP layer as `mcphub serve` sets it up (workers, queue, streams, limits).
    let http = config.http_server();
    let hub = Hub::new(config).expect("session store");
    let handle = Server::bind("127.0.0.1:0".parse().unwrap(), http, Arc::new(hub.clone())).expect("bind hub");
    let url = format!("http://{}/mcp", handle.local_addr());
    HubUnderTest { hub, handle, url }
}

/// One HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub text: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    /// The body as JSON; for an SSE body, the last event's data.
    pub fn json(&self) -> Value {
        if self.header("content-type").is_some_and(|c| c.starts_with("text/event-stream")) {
            let events = self.events();
            return events.last().cloned().unwrap_or(Value::Null);
        }
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }
    /// Every SSE event's data as JSON.
    pub fn events(&self) -> Vec<Value> {
        events_of(&self.text).into_iter().map(|e| e.data).collect()
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

pub fn send(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let agent = agent();
    let mut req = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(body.to_string()).unwrap();
    let mut resp = agent.run(req).expect("request reached the hub");
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    Reply { status, headers, text }
}

pub const ACCEPT: (&str, &str) = ("Accept", "application/json, text/event-stream");
pub const JSON: (&str, &str) = ("Content-Type", "application/json");

/// A legacy client: `initialize` + `notifications/initialized`; returns the session id.
pub fn legacy_session(url: &str) -> String {
    let r = send(
        "POST",
        url,
        &[ACCEPT, JSON],
        r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"test","version":"1"}}}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let sid = r.header("mcp-session-id").expect("the hub mints a session id").to_string();
    let n = send("POST", url, &[ACCEPT, JSON, ("Mcp-Session-Id", &sid), ("MCP-Protocol-Version", "2025-06-18")], r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
    assert_eq!(n.status, 202);
    sid
}

/// A legacy request on a session.
pub fn legacy(url: &str, sid: &str, method: &str, params: Value) -> Reply {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    send("POST", url, &[ACCEPT, JSON, ("Mcp-Session-Id", sid), ("MCP-Protocol-Version", "2025-06-18")], &body)
}

/// A modern (2026-07-28) request with correct headers and `_meta`.
pub fn modern(url: &str, method: &str, mut params: Value) -> Reply {
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}
    });
    match params.get_mut("_meta").and_then(Value::as_object_mut) {
        Some(m) => m.extend(meta.as_object().unwrap().clone()),
        None => params["_meta"] = meta,
    }
    let name = params.get("name").or(params.get("uri")).and_then(Value::as_str).map(mcphub::protocol::headers::encode_value);
    let body = json!({"jsonrpc": "2.0", "id": "m1", "method": method, "params": params}).to_string();
    let mut h = vec![ACCEPT, JSON, ("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", method)];
    let name_owned;
    if mcphub::protocol::headers::name_field(method).is_some() {
        name_owned = name.unwrap_or_default();
        h.push(("Mcp-Name", &name_owned));
    }
    send("POST", url, &h, &body)
}

/// The text of the first content item of a tool result.
pub fn text_of(result_message: &Value) -> String {
    result_message
        .pointer("/result/content/0/text")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no text content in {result_message}"))
        .to_string()
}

/// Names in a list result.
pub fn names(msg: &Value, field: &str) -> Vec<String> {
    msg["result"][field]
        .as_array()
        .unwrap_or_else(|| panic!("no {field} in {msg}"))
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_string))
        .collect()
}

/// Reads a session's stream until a `notifications/tasks/status` says task
/// `id` is `status`; every `(taskId, status)` seen meanwhile, in order.
/// Fails when the stream ends or stays silent for 10 s first, or after 1000
/// events.
pub fn task_statuses_until(stream: &mut SseStream, id: &str, status: &str) -> Vec<(String, String)> {
    let mut seen = Vec::new();
    for _ in 0..1000 {
        let n = stream.next().unwrap_or_else(|| panic!("the stream ended before {id} was {status}")).data;
        if n["method"] == "notifications/tasks/status" {
            let (tid, st) = (n["params"]["taskId"].as_str().unwrap().to_string(), n["params"]["status"].as_str().unwrap().to_string());
            let done = tid == id && st == status;
            seen.push((tid, st));
            if done {
                return seen;
            }
        }
    }
    panic!("no {status} notification for {id}");
}

/// A scripted upstream on a raw socket, for behaviour no well-behaved server
/// shows (dripping bodies, request loops). Each connection is served on its
/// own thread: the request is read (head + Content-Length body) and `respond`
/// writes whatever it likes. Stopped on drop; connection threads end when
/// `respond` returns or its writes fail, or the connection closes (a
/// responder that answers `Connection: close` shuts `out` down).
pub struct FakeUpstream {
    pub url: String,
    pub stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// [`fake_upstream_with_headers`] for a responder that needs only the body.
pub fn fake_upstream<F>(respond: F) -> FakeUpstream
where
    F: Fn(&str, &mut std::net::TcpStream, &std::sync::atomic::AtomicBool) + Send + Sync + 'static,
{
    fake_upstream_with_headers(move |_, body, out, stop| respond(body, out, stop))
}

/// A scripted upstream (see [`FakeUpstream`]) whose `respond` also sees the
/// request's header fields: `(name as sent, value trimmed)`, in order.
pub fn fake_upstream_with_headers<F>(respond: F) -> FakeUpstream
where
    F: Fn(&[(String, String)], &str, &mut std::net::TcpStream, &std::sync::atomic::AtomicBool) + Send + Sync + 'static,
{
    use std::io::{BufRead, BufReader, Read};
    use std::sync::atomic::{AtomicBool, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let respond = std::sync::Arc::new(respond);
    let stop2 = stop.clone();
    let accept = std::thread::spawn(move || {
        while !stop2.load(Ordering::SeqCst) {
            let Ok((stream, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            let (respond, stop) = (respond.clone(), stop2.clone());
            std::thread::spawn(move || {
                stream.set_nonblocking(false).ok();
                stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let (mut len, mut headers) = (0usize, Vec::new());
                    let mut line = String::new();
                    for n in 0.. {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                        // The first line is the request line.
                        if let Some((name, value)) = line.split_once(':').filter(|_| n > 0) {
                            headers.push((name.to_string(), value.trim().to_string()));
                        }
                    }
                    let mut body = vec![0; len];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let mut out = stream.try_clone().unwrap();
                    respond(&headers, &String::from_utf8_lossy(&body), &mut out, &stop);
                }
            });
        }
    });
    FakeUpstream { url, stop, accept: Some(accept) }
}

/// Writes a complete JSON response (keep-alive).
pub fn write_json(out: &mut std::net::TcpStream, body: &serde_json::Value) {
    use std::io::Write;
    let b = body.to_string();
    let _ = write!(out, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}", b.len());
}

/// The JSON-RPC id of a request body.
pub fn id_of(body: &str) -> serde_json::Value {
    serde_json::from_str::<serde_json::Value>(body).ok().and_then(|v| v.get("id").cloned()).unwrap_or(serde_json::Value::Null)
}

/// One legacy MCP client with its own keep-alive connection.
pub struct Client {
    pub agent: ureq::Agent,
    pub url: String,
    pub sid: String,
    /// The hub key sent as `Authorization: Bearer` (None: anonymous).
    pub key: Option<String>,
}

impl Client {
    pub fn post(
        agent: &ureq::Agent,
        url: &str,
        key: Option<&str>,
        sid: Option<&str>,
        body: &Value,
    ) -> Result<(u16, Option<String>, String), String> {
        let mut req = agent.post(url).header(ACCEPT.0, ACCEPT.1).header(JSON.0, JSON.1).header("MCP-Protocol-Version", "2025-11-25");
        if let Some(s) = sid {
            req = req.header("Mcp-Session-Id", s);
        }
        let bearer;
        if let Some(k) = key {
            bearer = format!("Bearer {k}");
            req = req.header("Authorization", &bearer);
        }
        let mut resp = req.send(body.to_string()).map_err(|e| format!("transport: {e}"))?;
        let sid = resp.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_string);
        let text = resp.body_mut().read_to_string().map_err(|e| format!("body: {e}"))?;
        Ok((resp.status().as_u16(), sid, text))
    }

    /// An anonymous client session.
    pub fn connect(url: &str) -> Client {
        Client::connect_as(url, None)
    }

    /// A client session of the user owning `key`.
    pub fn connect_as(url: &str, key: Option<&str>) -> Client {
        let agent: ureq::Agent =
            ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(20))).build().into();
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "store-test", "version": "1"}}});
        let (status, sid, text) = Client::post(&agent, url, key, None, &init).expect("initialize reached the hub");
        assert_eq!(status, 200, "{text}");
        let sid = sid.expect("a client session id");
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let (status, _, _) = Client::post(&agent, url, key, Some(&sid), &note).unwrap();
        assert_eq!(status, 202);
        Client { agent, url: url.to_string(), sid, key: key.map(str::to_string) }
    }

    /// Calls a tool; `Ok(text)` of a successful result, else why not.
    pub fn call(&self, tool: &str) -> Result<String, String> {
        self.request("tools/call", json!({"name": tool, "arguments": {}})).and_then(|msg| tool_text(&msg))
    }

    /// Any request on the session; the final JSON-RPC message (JSON or SSE answer).
    pub fn request(&self, method: &str, params: Value) -> Result<Value, String> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let (status, _, text) = Client::post(&self.agent, &self.url, self.key.as_deref(), Some(&self.sid), &body)?;
        let msg: Value = if text.starts_with('{') {
            serde_json::from_str(&text).map_err(|e| format!("HTTP {status}: {e}: {text}"))?
        } else {
            events_of(&text).pop().ok_or_else(|| format!("HTTP {status}: empty stream"))?.data
        };
        if status >= 400 {
            return Err(format!("HTTP {status}: {msg}"));
        }
        Ok(msg)
    }
}

/// The text of a successful tool result without the mock's `"<name>: "`
/// prefix, else the message as an error.
pub fn tool_text(msg: &Value) -> Result<String, String> {
    match msg.pointer("/result/content/0/text").and_then(Value::as_str) {
        Some(t) if msg["result"]["isError"] != json!(true) => Ok(t.split_once(": ").map(|(_, rest)| rest).unwrap_or(t).to_string()),
        _ => Err(msg.to_string()),
    }
}


/// Every client (connected already) calls `tool` at once (a barrier), then
/// again until `until` (at most `max_calls_each` calls each, at least one).
/// Returns `(client index, text)` of each success and `(client index, why)`
/// of each failure.
/// `(client index, text or why)` of each call.
pub type Outcomes = Vec<(usize, String)>;

pub fn load_clients(clients: Vec<Client>, tool: &str, until: std::time::Instant, max_calls_each: usize) -> (Outcomes, Outcomes) {
    use std::sync::{Barrier, Mutex};
    let barrier = Arc::new(Barrier::new(clients.len()));
    let ok = Arc::new(Mutex::new(Vec::new()));
    let failed = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let (barrier, ok, failed, tool) = (barrier.clone(), ok.clone(), failed.clone(), tool.to_string());
            std::thread::spawn(move || {
                barrier.wait();
                for n in 0..max_calls_each {
                    if n > 0 && std::time::Instant::now() >= until {
                        break;
                    }
                    match c.call(&tool) {
                        Ok(t) => ok.lock().unwrap().push((i, t)),
                        Err(e) => failed.lock().unwrap().push((i, e)),
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let ok = std::mem::take(&mut *ok.lock().unwrap());
    let failed = std::mem::take(&mut *failed.lock().unwrap());
    (ok, failed)
}

/// `mcphub serve` as a child process, stderr in a file; killed on drop.
pub struct HubProcess {
    pub child: std::process::Child,
    pub port: u16,
    pub log: std::path::PathBuf,
}

impl HubProcess {
    pub fn start(name: &str, config: &Value) -> HubProcess {
        HubProcess::start_env(name, config, &[])
    }

    /// [`HubProcess::start`] with extra environment variables (e.g. `MCPHUB_LOG_FORMAT`).
    pub fn start_env(name: &str, config: &Value, env: &[(&str, &str)]) -> HubProcess {
        let dir = std::env::temp_dir().join(format!("mcphub-store-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cfg, log) = (dir.join("config.json"), dir.join("hub.log"));
        std::fs::write(&cfg, config.to_string()).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_mcphub"))
            .args(["serve", "--config"])
            .arg(&cfg)
            .env("PORT", port.to_string())
            .env("DEBUG_MCPHUB", "true")
            .env("MCPHUB_STATE_DIR", dir.join("state"))
            .env_remove("REDIS_URL")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start mcphub");
        let mut p = HubProcess { child, port, log };
        wait_until("mcphub to listen", PATIENCE, || {
            let exited = p.child.try_wait().ok().flatten();
            assert!(exited.is_none(), "mcphub exited ({exited:?}) before listening: {}", p.log_text());
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        p
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    pub fn log_text(&self) -> String {
        let mut s = String::new();
        let _ = std::fs::File::open(&self.log).and_then(|mut f| std::io::Read::read_to_string(&mut f, &mut s));
        s
    }

    /// SIGTERM and wait (≤ 15 s) for a clean exit.
    pub fn terminate(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let st = wait_until("mcphub to stop after SIGTERM", Duration::from_secs(15), || self.child.try_wait().unwrap());
        assert!(st.success(), "{st:?}: {}", self.log_text());
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        self.kill();
    }
}


/// The HTTP settings of a restartable mock: a 200 ms drain, so a restart
/// does not wait out a stream the hub holds open (`subscriptions/listen`).
fn restartable_http() -> ServerConfig {
    ServerConfig { drain_timeout: Duration::from_millis(200), ..ServerConfig::default() }
}

/// A mock that [`Mock::restart`] can stop and start again on its port.
pub fn mock_restartable(cfg: MockConfig) -> Mock {
    let server = Arc::new(MockServer::new(cfg));
    let handle = Server::bind("127.0.0.1:0".parse().unwrap(), restartable_http(), server.clone()).expect("bind mock");
    let url = format!("http://{}/mcp", handle.local_addr());
    Mock { server, handle, url }
}

impl Mock {
    /// An upstream restart: stops the HTTP server (connections cut after the
    /// drain) and starts a fresh `MockServer` with the same config — no
    /// sessions, no tasks; tasks on if they were — on the same port.
    pub fn restart(&mut self) {
        let addr = self.handle.local_addr();
        self.handle.shutdown();
        let server = Arc::new(MockServer::new(self.server.config().clone()));
        if self.server.tasks_enabled() {
            server.enable_tasks();
        }
        let handle = wait_until(&format!("the mock to listen on {addr} again"), Duration::from_secs(10), || {
            Server::bind(addr, restartable_http(), server.clone()).inspect_err(|e| eprintln!("mock restart: {addr} not free yet ({e})")).ok()
        });
        self.server = server;
        self.handle = handle;
    }
}
