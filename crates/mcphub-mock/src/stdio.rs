//! `mcphub-mock --stdio`: the mock's legacy era over the MCP stdio transport
//! (2025-11-25 spec, basic/transports, "stdio"): JSON-RPC messages read from
//! stdin and written to stdout, one per line (newline-delimited JSON, no
//! embedded newlines); nothing but MCP messages goes to stdout (logs go to
//! stderr); stdin EOF ends the server (exit 0 at once).
//!
//! An adapter over [`MockServer::handle`]: each incoming message becomes a
//! `POST /mcp` [`Request`] (JSON body, `Accept: application/json,
//! text/event-stream`, the `Mcp-Session-Id` the mock minted in its last
//! `initialize` answer and, after it, `MCP-Protocol-Version` = the negotiated
//! version), and the answer is written back: a JSON body as one line, an SSE
//! body (progress, logging, sampling/elicitation requests of a call) as one
//! line per event's data, as the events come.
//!
//! - `initialize`, notifications and the client's responses (to a
//!   server→client request: routed to the waiting call like a POSTed answer)
//!   are handled in order on the reading thread; every other request runs on
//!   its own thread, so a long call blocks neither others nor the answers
//!   it waits for. Writes go through one lock, one whole line at a time,
//!   flushed after each.
//! - `notifications/cancelled` (`params.requestId`): that call's remaining
//!   messages, its response included, are not written (its stream's producer
//!   sees the client gone at its next event).
//! - Extra tools, stdio mode only ([`STDIO_TOOL_NAMES`], appended to
//!   `tools/list`, answered by the adapter): `env` {name} → the variable's
//!   value or `(unset)`; `pid` → the process id; `exit` {code} → exits at
//!   once with that code (default 0), no answer; `stop_reading` → answers
//!   `ok`, then never reads stdin again (the process stays alive: a hung
//!   server); `crash_after_ms` {ms} → no answer, exits with code 70 after
//!   `ms`; `announce` {method?, params?, ms?} → answers `ok`, then after `ms`
//!   (default 0) writes the notification `method` (default
//!   `notifications/tools/list_changed`) as an unsolicited message; `stats`
//!   → the mock's counters as JSON text (`MockServer::stats`).
//!
//! Not available: the legacy standalone GET stream (the mock has none for
//! list changes; `announce` stands in), modern (2026-07-28) messages (stdio
//! is legacy-only here), reflect mode (no headers on stdio).

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{json, Value};

use super::{codes, rpc_error, MockServer};
use mcphub::http::{Body, Request};

/// The tools only the stdio mode offers, in `tools/list` order (after the mock's own).
pub const STDIO_TOOL_NAMES: [&str; 7] = ["env", "pid", "exit", "stop_reading", "crash_after_ms", "announce", "stats"];

/// Exit code of `crash_after_ms`.
pub const CRASH_EXIT_CODE: i32 = 70;

/// Where lines go: one writer, one whole line at a time.
type Out = Arc<Mutex<Box<dyn Write + Send>>>;

/// Writes `line` plus `\n` and flushes; a failed write (the client closed
/// our stdout) is logged.
fn write_line(out: &Out, line: &str) {
    let mut w = out.lock();
    let r = w.write_all(line.as_bytes()).and_then(|()| w.write_all(b"\n")).and_then(|()| w.flush());
    if let Err(e) = r {
        log::warn!("mock stdio: cannot write to stdout: {e}");
    }
}

struct Adapter {
    server: MockServer,
    out: Out,
    /// (session id, negotiated protocol version) from the last `initialize`.
    session: Mutex<Option<(String, String)>>,
    /// Calls in flight by their id's JSON text → cancelled flag.
    calls: Mutex<HashMap<String, Arc<AtomicBool>>>,
}

/// Serves the mock over `input` / `output` until `input` ends (EOF or a read
/// error), then returns (the binary exits 0). Never returns after
/// `stop_reading`; `exit` / `crash_after_ms` end the process.
pub fn serve(server: MockServer, input: impl BufRead, output: Box<dyn Write + Send>) {
    let adapter = Arc::new(Adapter {
        server,
        out: Arc::new(Mutex::new(output)),
        session: Mutex::new(None),
        calls: Mutex::new(HashMap::new()),
    });
    for line in input.lines() {
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                log::warn!("mock stdio: cannot read stdin: {e}");
                return;
            }
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let msg: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                write_line(&adapter.out, &rpc_error(&Value::Null, codes::PARSE_ERROR, &format!("Parse error: {e}"), None).to_string());
                continue;
            }
        };
        let method = msg.get("method").and_then(Value::as_str).map(str::to_string);
        let id = msg.get("id").cloned();
        match (method.as_deref(), id) {
            (Some("initialize"), Some(_)) => adapter.initialize(&msg),
            (Some("tools/call"), Some(id)) if adapter.local_tool(&msg, &id) => {}
            (Some(_), Some(id)) => {
                let flag = Arc::new(AtomicBool::new(false));
                adapter.calls.lock().insert(id.to_string(), flag.clone());
                let a = adapter.clone();
                std::thread::spawn(move || a.request(msg, &id, &flag));
            }
            (m, _) => {
                if m == Some("notifications/cancelled") {
                    if let Some(rid) = msg.pointer("/params/requestId") {
                        if let Some(flag) = adapter.calls.lock().get(&rid.to_string()) {
                            flag.store(true, Ordering::SeqCst);
                        }
                    }
                }
                // A notification or a response to a server→client request.
                let r = adapter.server.handle(adapter.http_request(&msg));
                if r.status >= 300 {
                    log::warn!("mock stdio: {} answered {}", m.unwrap_or("a response"), r.status);
                }
            }
        }
        if adapter.stopped_reading() {
            log::info!("mock stdio: stop_reading: stdin is no longer read");
            loop {
                std::thread::park();
            }
        }
    }
}

impl Adapter {
    fn stopped_reading(&self) -> bool {
        self.calls.lock().contains_key(STOP_KEY)
    }

    /// The `POST /mcp` a Streamable HTTP client would send for `msg`.
    fn http_request(&self, msg: &Value) -> Request {
        let mut headers = vec![
            ("Content-Type".to_string(), "application/json".to_string()),
            ("Accept".to_string(), "application/json, text/event-stream".to_string()),
        ];
        if let Some((sid, version)) = self.session.lock().clone() {
            headers.push(("Mcp-Session-Id".into(), sid));
            headers.push(("MCP-Protocol-Version".into(), version));
        }
        Request {
            method: "POST".into(),
            target: "/mcp".into(),
            headers,
            body: msg.to_string().into_bytes(),
            peer: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }

    fn initialize(&self, msg: &Value) {
        let mut req = self.http_request(msg);
        req.headers.retain(|(k, _)| !k.eq_ignore_ascii_case("Mcp-Session-Id") && !k.eq_ignore_ascii_case("MCP-Protocol-Version"));
        let r = self.server.handle(req);
        let Body::Full(bytes) = r.body else {
            log::warn!("mock stdio: initialize answered with a stream");
            return;
        };
        let sid = r.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("Mcp-Session-Id")).map(|(_, v)| v.clone());
        let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if let (Some(sid), Some(version)) = (sid, answer.pointer("/result/protocolVersion").and_then(Value::as_str)) {
            *self.session.lock() = Some((sid, version.to_string()));
        }
        write_line(&self.out, &String::from_utf8_lossy(&bytes));
    }

    /// Runs one request through the mock and writes its answer.
    fn request(&self, msg: Value, id: &Value, cancelled: &Arc<AtomicBool>) {
        let is_list = msg.get("method").and_then(Value::as_str) == Some("tools/list");
        let r = self.server.handle(self.http_request(&msg));
        match r.body {
            Body::Full(bytes) => {
                let line = if bytes.is_empty() {
                    let why = format!("the mock answered HTTP {} with no body", r.status);
                    rpc_error(id, codes::INTERNAL_ERROR, &why, None).to_string()
                } else if is_list {
                    let mut v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                    if let Some(tools) = v.pointer_mut("/result/tools").and_then(Value::as_array_mut) {
                        tools.extend(stdio_tools());
                    }
                    v.to_string()
                } else {
                    String::from_utf8_lossy(&bytes).into_owned()
                };
                if !cancelled.load(Ordering::SeqCst) {
                    write_line(&self.out, &line);
                }
            }
            Body::Sse(producer) => {
                let (tx, rx) = mpsc::channel::<String>();
                let out = self.out.clone();
                let flag = cancelled.clone();
                let forward = std::thread::spawn(move || loop {
                    match rx.recv_timeout(Duration::from_millis(20)) {
                        Ok(wire) => {
                            if flag.load(Ordering::SeqCst) {
                                return; // drops rx: the producer sees the client gone
                            }
                            for ev in mcphub::protocol::sse::parse_all(&wire) {
                                if ev.data.trim().is_empty() {
                                    continue;
                                }
                                let data = match serde_json::from_str::<Value>(&ev.data) {
                                    Ok(v) => v.to_string(),
                                    Err(_) => ev.data.replace('\n', " "),
                                };
                                write_line(&out, &data);
                            }
                        }
                        Err(mpsc::RecvTimeoutError::Timeout) if flag.load(Ordering::SeqCst) => return,
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                });
                mcphub::http::sse::collect_observed(producer, usize::MAX, tx);
                let _ = forward.join();
            }
        }
        self.calls.lock().remove(&id.to_string());
    }

    /// Answers a `tools/call` of a stdio-only tool; `false` if `msg` calls
    /// another tool.
    fn local_tool(&self, msg: &Value, id: &Value) -> bool {
        let Some(name) = msg.pointer("/params/name").and_then(Value::as_str) else { return false };
        if !STDIO_TOOL_NAMES.contains(&name) {
            return false;
        }
        let args = msg.pointer("/params/arguments").cloned().unwrap_or_else(|| json!({}));
        let text = |t: String| json!({"jsonrpc": "2.0", "id": id, "result": {"content": [{"type": "text", "text": t}], "isError": false}}).to_string();
        match name {
            "env" => {
                let value = args.get("name").and_then(Value::as_str).and_then(|n| std::env::var(n).ok());
                write_line(&self.out, &text(value.unwrap_or_else(|| "(unset)".into())));
            }
            "pid" => write_line(&self.out, &text(std::process::id().to_string())),
            "stats" => write_line(&self.out, &text(self.server.stats().to_string())),
            "exit" => {
                let code = args.get("code").and_then(Value::as_i64).unwrap_or(0);
                log::info!("mock stdio: exit {code} (tool)");
                std::process::exit(i32::try_from(code).unwrap_or(1));
            }
            "stop_reading" => {
                write_line(&self.out, &text("ok".into()));
                self.calls.lock().insert(STOP_KEY.into(), Arc::new(AtomicBool::new(true)));
            }
            "crash_after_ms" => {
                let ms = args.get("ms").and_then(Value::as_u64).unwrap_or(0);
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(ms));
                    log::info!("mock stdio: crash_after_ms: exit {CRASH_EXIT_CODE}");
                    std::process::exit(CRASH_EXIT_CODE);
                });
            }
            "announce" => {
                let method = args.get("method").and_then(Value::as_str).unwrap_or("notifications/tools/list_changed").to_string();
                let params = args.get("params").cloned().unwrap_or_else(|| json!({}));
                let ms = args.get("ms").and_then(Value::as_u64).unwrap_or(0);
                write_line(&self.out, &text("ok".into()));
                let out = self.out.clone();
                std::thread::spawn(move || {
                    if ms > 0 {
                        std::thread::sleep(Duration::from_millis(ms));
                    }
                    write_line(&out, &json!({"jsonrpc": "2.0", "method": method, "params": params}).to_string());
                });
            }
            _ => return false,
        }
        true
    }
}

/// Marker entry in `calls`: `stop_reading` was called.
const STOP_KEY: &str = "\u{0}stop_reading";

/// The `tools/list` entries of [`STDIO_TOOL_NAMES`].
fn stdio_tools() -> Vec<Value> {
    let obj = |props: Value, required: &[&str]| json!({"type": "object", "properties": props, "required": required});
    vec![
        json!({"name": "env", "description": "The value of environment variable `name`, or \"(unset)\".",
               "inputSchema": obj(json!({"name": {"type": "string"}}), &["name"])}),
        json!({"name": "pid", "description": "This process's id.", "inputSchema": obj(json!({}), &[])}),
        json!({"name": "stats", "description": "The mock's counters (JSON text), e.g. `cancelled`.", "inputSchema": obj(json!({}), &[])}),
        json!({"name": "exit", "description": "Exits the process at once with `code` (default 0), without answering.",
               "inputSchema": obj(json!({"code": {"type": "integer"}}), &[])}),
        json!({"name": "stop_reading", "description": "Answers \"ok\", then never reads stdin again (the process stays alive).",
               "inputSchema": obj(json!({}), &[])}),
        json!({"name": "crash_after_ms", "description": "Never answers; exits with code 70 after `ms` milliseconds.",
               "inputSchema": obj(json!({"ms": {"type": "integer", "minimum": 0}}), &["ms"])}),
        json!({"name": "announce", "description": "Answers \"ok\", then after `ms` (default 0) sends notification `method` (default notifications/tools/list_changed) with `params`.",
               "inputSchema": obj(json!({"method": {"type": "string"}, "params": {"type": "object"}, "ms": {"type": "integer", "minimum": 0}}), &[])}),
    ]
}
