//! `mcphub-mock`: a mock upstream MCP server (Streamable HTTP) for tests,
//! demos and soak runs.
//!
//! [`MockServer`] is a pure [`Handler`]: [`MockServer::handle`] turns one
//! [`Request`] into one [`Response`], so every behaviour can be unit-tested
//! without sockets; the `mcphub-mock` binary only parses flags and hands the
//! server to [`crate::http::Server::bind`].
//!
//! It speaks both MCP eras (DESIGN.md §1), selected by [`Era`]:
//!
//! - **legacy** (2024-11-05 … 2025-11-25): `initialize` mints an
//!   `Mcp-Session-Id`; any other message without it → 400, with an unknown
//!   one → 404; `DELETE /mcp` ends a session.
//! - **modern** (2026-07-28): stateless; every request carries
//!   `_meta["io.modelcontextprotocol/protocolVersion"]` and the
//!   `MCP-Protocol-Version` / `Mcp-Method` / `Mcp-Name` headers, validated
//!   against the body (-32020 HeaderMismatch, -32022 unsupported version).
//! - **dual**: per request, by the hub's own rule
//!   ([`crate::protocol::era::classify`]): modern `_meta`, `server/discover`
//!   or a non-legacy `MCP-Protocol-Version` header select modern;
//!   `initialize` and everything else legacy.
//!
//! Fault injection ([`MockConfig`]): session expiry every Nth session-bearing
//! request, a concurrency limit answered with 429, and added latency.
//! `GET /stats` reports counters (see [`MockServer::stats`]), `POST /stats/reset`
//! zeroes them.

mod methods;
mod modern;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::http::{Handler, Request, Response, SseEvent};

pub use methods::{run_progress, TOOL_NAMES};

pub use crate::protocol::{LEGACY_VERSIONS, META_PROTOCOL_VERSION, META_SERVER_INFO};
use crate::protocol::era::{classify, negotiate_legacy};

/// Modern (per-request metadata) protocol versions the mock accepts.
pub const MODERN_VERSIONS: [&str; 1] = [crate::protocol::MODERN_VERSION];

/// JSON-RPC / MCP error codes used by the mock: the protocol's own, plus two
/// conventions of the reference SDKs.
pub mod codes {
    pub use crate::protocol::codes::*;
    /// Unknown or expired session (reference SDK convention).
    pub const SESSION_NOT_FOUND: i64 = -32001;
    /// Unknown resource URI (2025-11-25 resources spec).
    pub const RESOURCE_NOT_FOUND: i64 = -32002;
}

/// Which MCP era(s) the mock serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Era {
    /// Only initialize-based versions (an "old" server).
    Legacy,
    /// Only 2026-07-28 (a "modern-only" server).
    Modern,
    /// Both, chosen per request.
    #[default]
    Dual,
}

impl Era {
    /// `legacy`, `modern` or `dual`.
    pub fn as_str(self) -> &'static str {
        match self {
            Era::Legacy => "legacy",
            Era::Modern => "modern",
            Era::Dual => "dual",
        }
    }
}

/// Behaviour and fault injection of a [`MockServer`].
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Era(s) served.
    pub era: Era,
    /// `serverInfo.name` and the prefix of every tool's text (`"{name}: …"`).
    pub name: String,
    /// Every Nth request that carries a live legacy session drops that
    /// session and answers 404. `0` disables it.
    pub expire_sessions_every: u64,
    /// More than this many `/mcp` requests in flight → 429 with
    /// `Retry-After: 1`. `None` = unlimited. A progress stream counts as in
    /// flight until its last event is written.
    pub max_concurrency: Option<usize>,
    /// Added to every `/mcp` request before it is answered.
    pub latency: Duration,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            era: Era::Dual,
            name: "mock".into(),
            expire_sessions_every: 0,
            max_concurrency: None,
            latency: Duration::ZERO,
        }
    }
}

/// One legacy session.
#[derive(Debug)]
struct Session {
    /// The negotiated protocol version.
    #[allow(dead_code)]
    version: String,
    /// The `counter` tool's value.
    counter: u64,
}

/// The counters behind `/stats`.
#[derive(Debug, Default)]
struct Counters {
    initialize: u64,
    requests: u64,
    sessions_created: u64,
    expired_404: u64,
    rejected_429: u64,
    tools: BTreeMap<String, u64>,
    last_authorization_sha: Option<String>,
}

impl Counters {
    fn new() -> Counters {
        let mut c = Counters::default();
        for t in TOOL_NAMES {
            c.tools.insert(t.to_string(), 0);
        }
        c
    }
}

#[derive(Debug)]
struct State {
    sessions: HashMap<String, Session>,
    counters: Counters,
    /// Requests that carried a live session since start or the last reset
    /// (drives `expire_sessions_every`).
    session_uses: u64,
    /// The modern era's single `counter` bucket ("none").
    modern_counter: u64,
}

struct Inner {
    cfg: MockConfig,
    state: Mutex<State>,
    in_flight: AtomicUsize,
}

/// The mock MCP server. Cheap to clone (shared state); implements [`Handler`].
#[derive(Clone)]
pub struct MockServer {
    inner: Arc<Inner>,
}

/// Decrements the in-flight count when dropped (moved into SSE producers so
/// a stream counts until it ends).
struct InFlight {
    inner: Arc<Inner>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.inner.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What a method produced, before it becomes an HTTP response.
#[derive(Debug)]
pub(crate) enum Reply {
    /// A JSON-RPC result.
    Result(Value),
    /// A JSON-RPC error: code, message, optional data.
    Error(i64, String, Option<Value>),
    /// The `progress` tool with a progress token: stream notifications, then the result.
    Progress {
        /// The client's progress token.
        token: Value,
        /// Number of notifications.
        steps: u64,
        /// Pause before each notification.
        ms: u64,
        /// The final tool result.
        result: Value,
    },
}

/// What a method needs to know about the request it answers.
pub(crate) struct Ctx<'a> {
    /// The request is served under modern (2026-07-28) rules.
    pub modern: bool,
    /// The legacy session id, if any.
    pub session: Option<&'a str>,
    /// The `Authorization` header value.
    pub authorization: Option<&'a str>,
}

fn rpc_error(id: &Value, code: i64, message: &str, data: Option<Value>) -> Value {
    let mut error = json!({"code": code, "message": message});
    if let Some(d) = data {
        error["data"] = d;
    }
    json!({"jsonrpc": "2.0", "id": id, "error": error})
}

/// The first 12 hex digits of SHA-256 of `value`.
pub fn short_sha(value: &str) -> String {
    full_sha(value)[..12].to_string()
}

fn full_sha(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// A fresh legacy session id: `sess-` + 32 random hex digits.
pub fn new_session_id() -> String {
    let mut buf = [0u8; 16];
    if getrandom::fill(&mut buf).is_err() {
        // Practically unreachable; still unique enough for a mock.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        buf.copy_from_slice(&nanos.to_le_bytes());
    }
    format!("sess-{}", hex::encode(buf))
}

impl MockServer {
    /// A mock with this configuration and no sessions.
    pub fn new(cfg: MockConfig) -> MockServer {
        MockServer {
            inner: Arc::new(Inner {
                cfg,
                state: Mutex::new(State {
                    sessions: HashMap::new(),
                    counters: Counters::new(),
                    session_uses: 0,
                    modern_counter: 0,
                }),
                in_flight: AtomicUsize::new(0),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &MockConfig {
        &self.inner.cfg
    }

    /// The `/stats` document:
    /// `{"initialize","requests","sessions_active","sessions_created",
    /// "expired_404","rejected_429","tools":{"echo":n,…},"last_authorization_sha"}`.
    /// `requests` counts every HTTP request to `/mcp` (including rejected
    /// ones); `initialize` counts answered legacy `initialize` requests;
    /// `expired_404` counts 404s for unknown or expired sessions;
    /// `last_authorization_sha` is the full hex SHA-256 of the last
    /// `Authorization` header seen on `/mcp` (`null` if none yet).
    pub fn stats(&self) -> Value {
        let st = self.inner.state.lock();
        let c = &st.counters;
        json!({
            "initialize": c.initialize,
            "requests": c.requests,
            "sessions_active": st.sessions.len(),
            "sessions_created": c.sessions_created,
            "expired_404": c.expired_404,
            "rejected_429": c.rejected_429,
            "tools": c.tools,
            "last_authorization_sha": c.last_authorization_sha,
        })
    }

    /// Zeroes the counters (and the expiry cadence); live sessions stay.
    pub fn reset_stats(&self) {
        let mut st = self.inner.state.lock();
        st.counters = Counters::new();
        st.session_uses = 0;
    }

    /// Whether a legacy session with this id is live.
    pub fn has_session(&self, id: &str) -> bool {
        self.inner.state.lock().sessions.contains_key(id)
    }

    /// Answers one HTTP request (routing: `/mcp`, `/stats`, `/stats/reset`).
    pub fn handle(&self, req: Request) -> Response {
        match (req.method.as_str(), req.path()) {
            ("GET", "/stats") => Response::json(200, &self.stats()),
            ("POST", "/stats/reset") => {
                self.reset_stats();
                Response::json(200, &self.stats())
            }
            (_, "/stats") | (_, "/stats/reset") => Response::empty(405),
            (_, "/mcp") => self.handle_mcp(req),
            _ => Response::text(404, "not found"),
        }
    }

    fn handle_mcp(&self, req: Request) -> Response {
        {
            let mut st = self.inner.state.lock();
            st.counters.requests += 1;
            if let Some(auth) = req.header("Authorization") {
                st.counters.last_authorization_sha = Some(full_sha(auth));
            }
        }
        let now = self.inner.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        let guard = InFlight { inner: self.inner.clone() };
        if let Some(k) = self.inner.cfg.max_concurrency {
            if now > k {
                self.inner.state.lock().counters.rejected_429 += 1;
                drop(guard);
                let body = rpc_error(&Value::Null, codes::SERVER_ERROR, "Too many requests", None);
                return Response::json(429, &body).with_header("Retry-After", "1");
            }
        }
        if !self.inner.cfg.latency.is_zero() {
            std::thread::sleep(self.inner.cfg.latency);
        }
        let modern_only = self.inner.cfg.era == Era::Modern;
        match req.method.as_str() {
            "POST" => self.post(&req, guard),
            "DELETE" if !modern_only => self.delete(&req),
            _ => {
                let allow = if modern_only { "POST" } else { "POST, DELETE" };
                Response::empty(405).with_header("Allow", allow)
            }
        }
    }

    fn delete(&self, req: &Request) -> Response {
        let Some(sid) = req.header("Mcp-Session-Id") else {
            let body = rpc_error(&Value::Null, codes::SERVER_ERROR, "Bad Request: Mcp-Session-Id header is required", None);
            return Response::json(400, &body);
        };
        let mut st = self.inner.state.lock();
        if st.sessions.remove(sid).is_some() {
            log::debug!("mock: session {sid} deleted");
            Response::empty(200)
        } else {
            st.counters.expired_404 += 1;
            Response::json(404, &rpc_error(&Value::Null, codes::SESSION_NOT_FOUND, "Session not found", None))
        }
    }

    fn post(&self, req: &Request, guard: InFlight) -> Response {
        let msg: Value = match serde_json::from_slice(&req.body) {
            Ok(v) => v,
            Err(e) => {
                let body = rpc_error(&Value::Null, codes::PARSE_ERROR, &format!("Parse error: {e}"), None);
                return Response::json(400, &body);
            }
        };
        let Some(obj) = msg.as_object() else {
            let m = if msg.is_array() { "Invalid Request: batches are not supported" } else { "Invalid Request" };
            return Response::json(400, &rpc_error(&Value::Null, codes::INVALID_REQUEST, m, None));
        };
        let id = obj.get("id").cloned();
        let method = obj.get("method").and_then(Value::as_str);
        if method.is_none() && id.is_some() && (obj.contains_key("result") || obj.contains_key("error")) {
            // A client's JSON-RPC response (to a server→client request).
            return self.after_session_check(req, &msg, |_| Response::empty(202), self.is_modern(req, &msg));
        }
        let Some(method) = method else {
            let id = id.unwrap_or(Value::Null);
            return Response::json(400, &rpc_error(&id, codes::INVALID_REQUEST, "Invalid Request: no method", None));
        };
        let modern = self.is_modern(req, &msg);
        if modern {
            return self.modern(req, &msg, method, guard);
        }
        if method == "initialize" && id.is_some() {
            return self.initialize(&msg);
        }
        self.after_session_check(
            req,
            &msg,
            |sid| {
                let Some(id) = id else {
                    return Response::empty(202); // notification
                };
                let ctx = Ctx { modern: false, session: Some(sid), authorization: req.header("Authorization") };
                let reply = self.dispatch(&ctx, method, obj.get("params"));
                self.respond(id, reply, false, guard)
            },
            false,
        )
    }

    /// Whether this message is served under modern rules.
    fn is_modern(&self, req: &Request, msg: &Value) -> bool {
        match self.inner.cfg.era {
            Era::Legacy => false,
            Era::Modern => true,
            Era::Dual => {
                // The hub's own rule (protocol::era::classify); a client's
                // JSON-RPC response (no method) goes by its headers alone.
                let empty = serde_json::Map::new();
                let params = msg.get("params").and_then(Value::as_object).unwrap_or(&empty);
                let method = msg.get("method").and_then(Value::as_str).unwrap_or_default();
                let header = req.header("MCP-Protocol-Version").map(str::trim);
                classify(method, params, header) == crate::protocol::Era::Modern
            }
        }
    }

    /// Legacy: requires a live `Mcp-Session-Id` (400 / 404), applies the
    /// expiry cadence, checks `MCP-Protocol-Version`, then runs `f`.
    /// Modern messages skip all of it.
    fn after_session_check(&self, req: &Request, msg: &Value, f: impl FnOnce(&str) -> Response, modern: bool) -> Response {
        if modern {
            return f("none");
        }
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        let Some(sid) = req.header("Mcp-Session-Id") else {
            let body = rpc_error(&id, codes::SERVER_ERROR, "Bad Request: Mcp-Session-Id header is required", None);
            return Response::json(400, &body);
        };
        {
            let mut st = self.inner.state.lock();
            if !st.sessions.contains_key(sid) {
                st.counters.expired_404 += 1;
                return Response::json(404, &rpc_error(&id, codes::SESSION_NOT_FOUND, "Session not found", None));
            }
            st.session_uses += 1;
            let n = self.inner.cfg.expire_sessions_every;
            if n > 0 && st.session_uses % n == 0 {
                st.sessions.remove(sid);
                st.counters.expired_404 += 1;
                log::debug!("mock: session {sid} expired (every {n})");
                return Response::json(404, &rpc_error(&id, codes::SESSION_NOT_FOUND, "Session not found (expired)", None));
            }
        }
        if let Some(v) = req.header("MCP-Protocol-Version") {
            if !LEGACY_VERSIONS.contains(&v.trim()) {
                let body = rpc_error(&id, codes::SERVER_ERROR, &format!("Bad Request: Unsupported protocol version: {v}"), None);
                return Response::json(400, &body);
            }
        }
        f(sid)
    }

    fn initialize(&self, msg: &Value) -> Response {
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        let Some(requested) = msg.pointer("/params/protocolVersion").and_then(Value::as_str) else {
            let body = rpc_error(&id, codes::INVALID_PARAMS, "Invalid params: protocolVersion is required", None);
            return Response::json(200, &body);
        };
        let version = negotiate_legacy(Some(requested));
        let sid = new_session_id();
        {
            let mut st = self.inner.state.lock();
            st.sessions.insert(sid.clone(), Session { version: version.to_string(), counter: 0 });
            st.counters.sessions_created += 1;
            st.counters.initialize += 1;
        }
        log::debug!("mock: initialize {requested} → {version}, session {sid}");
        let result = json!({
            "protocolVersion": version,
            "capabilities": {
                "tools": {"listChanged": true},
                "prompts": {},
                "resources": {"subscribe": false},
                "completions": {},
                "logging": {},
            },
            "serverInfo": {"name": self.inner.cfg.name, "version": env!("CARGO_PKG_VERSION")},
            "instructions": format!("{} is a mock MCP server for tests.", self.inner.cfg.name),
        });
        Response::json(200, &json!({"jsonrpc": "2.0", "id": id, "result": result})).with_header("Mcp-Session-Id", &sid)
    }

    fn modern(&self, req: &Request, msg: &Value, method: &str, guard: InFlight) -> Response {
        let Some(id) = msg.get("id").cloned() else {
            // Notifications: the revision defines none over HTTP; accept.
            return Response::empty(202);
        };
        let supported: Vec<&str> = self.supported_versions();
        if let Err(why) = modern::validate_headers(req, msg) {
            let mut message = why;
            let mut data = None;
            if method == "initialize" {
                message.push_str(&format!(
                    "; this server speaks only the per-request protocol versions {} (no initialize)",
                    supported.join(", ")
                ));
                data = Some(json!({"supported": supported}));
            }
            return Response::json(400, &rpc_error(&id, codes::HEADER_MISMATCH, &message, data));
        }
        let requested = msg
            .pointer("/params/_meta")
            .and_then(|m| m.get(META_PROTOCOL_VERSION))
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !MODERN_VERSIONS.contains(&requested) {
            let data = json!({"supported": supported, "requested": requested});
            return Response::json(400, &rpc_error(&id, codes::UNSUPPORTED_PROTOCOL_VERSION, "Unsupported protocol version", Some(data)));
        }
        let ctx = Ctx { modern: true, session: None, authorization: req.header("Authorization") };
        let reply = if method == "initialize" {
            Reply::Error(
                codes::METHOD_NOT_FOUND,
                format!("Method not found: initialize (this server speaks {} without initialize)", supported.join(", ")),
                Some(json!({"supported": supported})),
            )
        } else {
            self.dispatch(&ctx, method, msg.get("params"))
        };
        self.respond(id, reply, true, guard)
    }

    /// Versions named in `data.supported`: modern first, then legacy newest first.
    fn supported_versions(&self) -> Vec<&'static str> {
        let mut v: Vec<&str> = MODERN_VERSIONS.to_vec();
        if self.inner.cfg.era != Era::Modern {
            v.extend(LEGACY_VERSIONS.iter().rev());
        }
        v
    }

    /// Turns a [`Reply`] into the HTTP response.
    fn respond(&self, id: Value, reply: Reply, modern: bool, guard: InFlight) -> Response {
        match reply {
            Reply::Result(result) => {
                let result = if modern { modern::complete(result) } else { result };
                Response::json(200, &json!({"jsonrpc": "2.0", "id": id, "result": result}))
            }
            Reply::Error(code, message, data) => {
                // Modern: an unimplemented method is 404 + -32601 (streamable-http.mdx).
                let status = if modern && code == codes::METHOD_NOT_FOUND { 404 } else { 200 };
                Response::json(status, &rpc_error(&id, code, &message, data))
            }
            Reply::Progress { token, steps, ms, result } => {
                let result = if modern { modern::complete(result) } else { result };
                let final_msg = json!({"jsonrpc": "2.0", "id": id, "result": result});
                Response::sse(move |sink| {
                    let _guard = guard; // in flight until the stream ends
                    run_progress(&token, steps, ms, &final_msg, &mut |data| {
                        sink.send(&SseEvent { data, ..Default::default() })
                    });
                })
                .with_header("X-Accel-Buffering", "no")
            }
        }
    }

    pub(crate) fn count_tool(&self, name: &str) {
        if let Some(n) = self.inner.state.lock().counters.tools.get_mut(name) {
            *n += 1;
        }
    }

    /// Increments the `counter` bucket of this session (modern: "none").
    pub(crate) fn bump_counter(&self, session: Option<&str>) -> u64 {
        let mut st = self.inner.state.lock();
        match session {
            Some(sid) => match st.sessions.get_mut(sid) {
                Some(s) => {
                    s.counter += 1;
                    s.counter
                }
                None => 0,
            },
            None => {
                st.modern_counter += 1;
                st.modern_counter
            }
        }
    }
}

impl Handler for MockServer {
    fn handle(&self, req: Request) -> Response {
        MockServer::handle(self, req)
    }
}
