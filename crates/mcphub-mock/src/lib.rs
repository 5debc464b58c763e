//! `mcphub-mock`: a mock upstream MCP server (Streamable HTTP) for tests,
//! demos and soak runs.
//!
//! [`MockServer`] is a pure [`Handler`]: [`MockServer::handle`] turns one
//! [`Request`] into one [`Response`], so every behaviour can be unit-tested
//! without sockets; the `mcphub-mock` binary only parses flags and hands the
//! server to [`mcphub::http::Server::bind`]. Its own crate in the workspace
//! (`crates/mcphub-mock`), built on the hub's library (`mcphub::http`,
//! `mcphub::protocol`, `mcphub::logging`) and used by the hub's tests as a
//! dev-dependency; the hub itself never links it.
//!
//! It speaks both MCP eras (docs/decisions.md D1), selected by [`Era`]:
//!
//! - **legacy** (2024-11-05 … 2025-11-25): `initialize` mints an
//!   `Mcp-Session-Id`; any other message without it → 400, with an unknown
//!   one → 404; `DELETE /mcp` ends a session.
//! - **modern** (2026-07-28): stateless; every request carries
//!   `_meta["io.modelcontextprotocol/protocolVersion"]` and the
//!   `MCP-Protocol-Version` / `Mcp-Method` / `Mcp-Name` headers, validated
//!   against the body (-32020 HeaderMismatch, -32022 unsupported version).
//! - **dual**: per request, by the hub's own rule
//!   ([`mcphub::protocol::era::classify`]): modern `_meta`, `server/discover`
//!   or a non-legacy `MCP-Protocol-Version` header select modern;
//!   `initialize` and everything else legacy.
//!
//! Conformance fixtures (off by default; [`MockServer::with_conformance_fixtures`]
//! or `MCPHUB_MOCK_FIXTURES=conformance` in the environment of
//! [`MockServer::new`]): the tools, prompts, resources and completions that
//! `@modelcontextprotocol/conformance` 0.1.16's server scenarios call by name,
//! `resources/subscribe`, server→client requests on a call's SSE stream with
//! the client's answer POSTed back (202) and routed to the waiting call by id,
//! and `test_reconnection`'s resumable stream (GET with `Last-Event-ID`).
//!
//! DNS-rebinding protection: a request from a loopback peer whose `Host` or
//! `Origin` names a non-loopback host is refused with 403.
//!
//! Reflect mode ([`MockConfig::reflect_credential`], see [`reflect`]): the
//! caller's credential reflected into lists, results and error texts, for
//! isolation tests (issue 14).
//!
//! stdio mode ([`stdio`], `mcphub-mock --stdio`): the legacy era over
//! stdin/stdout, one JSON-RPC message per line, plus stdio-only tools.
//!
//! Fault injection ([`MockConfig`]): session expiry every Nth session-bearing
//! request, a concurrency limit answered with 429, and added latency.
//! `GET /stats` reports counters (see [`MockServer::stats`]), `POST /stats/reset`
//! zeroes them.

#![forbid(unsafe_code)]

mod conformance;
mod listen;
mod methods;
mod modern;
mod reflect;
pub mod stdio;
mod stream;
mod tasks;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use mcphub::http::{Handler, Request, Response, SseEvent};

pub use conformance::{PROMPT_NAMES as CONFORMANCE_PROMPT_NAMES, TOOL_NAMES as CONFORMANCE_TOOL_NAMES};
pub use methods::{run_progress, TOOL_NAMES};
pub use reflect::{marker as reflect_marker, BAD as REFLECT_BAD, ERROR_TOOL as REFLECT_ERROR_TOOL, SSE_ERROR_TOOL as REFLECT_SSE_ERROR_TOOL};
pub use stream::LOG_LEVELS;
pub use tasks::{iso8601, TASK_TOOL_NAMES};

/// Environment variable read by [`MockServer::new`]: `conformance` turns the
/// conformance fixtures on.
pub const FIXTURES_ENV: &str = "MCPHUB_MOCK_FIXTURES";
/// `retry:` (ms) of `test_reconnection`'s priming event.
const RECONNECT_RETRY_MS: u64 = 500;
/// At most this many cut streams are kept for replay (oldest dropped first).
const MAX_REPLAY_STREAMS: usize = 256;

pub use mcphub::protocol::{LEGACY_VERSIONS, META_PROTOCOL_VERSION, META_SERVER_INFO};
use mcphub::protocol::era::{classify, negotiate_legacy};

/// Modern (per-request metadata) protocol versions the mock accepts.
pub const MODERN_VERSIONS: [&str; 1] = [mcphub::protocol::MODERN_VERSION];

/// JSON-RPC / MCP error codes used by the mock: the protocol's own, plus two
/// conventions of the reference SDKs.
pub mod codes {
    pub use mcphub::protocol::codes::*;
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
    /// Reflect mode (issue 14 tests, see [`reflect`]): the name of the
    /// request header whose value is the caller's credential (e.g.
    /// `Authorization`); `None` = off.
    pub reflect_credential: Option<String>,
    /// Extra tools `tool-1` … `tool-N` listed after the mock's own tools
    /// (scale benchmarks: many tools per server); each takes `text` and
    /// answers like `echo`. `0` = none.
    pub extra_tools: usize,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            era: Era::Dual,
            name: "mock".into(),
            expire_sessions_every: 0,
            max_concurrency: None,
            latency: Duration::ZERO,
            reflect_credential: None,
            extra_tools: 0,
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
    /// The client's `capabilities` from `initialize`.
    capabilities: Value,
    /// The level last set by `logging/setLevel` (`None`: everything is sent).
    log_level: Option<String>,
    /// URIs subscribed to with `resources/subscribe`.
    subscriptions: HashSet<String>,
}

/// The counters behind `/stats`.
#[derive(Debug, Default)]
struct Counters {
    initialize: u64,
    requests: u64,
    sessions_created: u64,
    expired_404: u64,
    rejected_429: u64,
    cancelled: u64,
    tools: BTreeMap<String, u64>,
    last_authorization_sha: Option<String>,
    /// Trace headers of the last POST to `/mcp` (`X-Request-Id`, `traceparent`,
    /// `tracestate`) and the `params._meta.traceparent` of its body.
    last_request_id: Option<String>,
    last_traceparent: Option<String>,
    last_tracestate: Option<String>,
    last_meta_traceparent: Option<String>,
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

/// A cut stream kept for replay: its session and the events not yet delivered.
struct Replay {
    session: String,
    /// `(event id, data)` in order.
    events: Vec<(String, String)>,
}

struct Inner {
    cfg: MockConfig,
    state: Mutex<State>,
    in_flight: AtomicUsize,
    /// The most `/mcp` requests in flight at once since start or the last reset.
    max_in_flight: AtomicUsize,
    /// `tools/call` requests being answered now, and the most at once.
    calls_in_flight: AtomicUsize,
    max_calls_in_flight: AtomicUsize,
    /// Conformance fixtures on.
    fixtures: bool,
    /// Server→client requests awaiting the client's answer, by JSON id text.
    pending: Mutex<HashMap<String, mpsc::Sender<Value>>>,
    /// Mints server→client request ids and stream ids.
    next_id: AtomicU64,
    /// Cut streams by stream id, oldest first in `replay_order`.
    replay: Mutex<(HashMap<String, Replay>, VecDeque<String>)>,
    /// Open `subscriptions/listen` streams ([`listen`]).
    listen: listen::Streams,
    /// Tasks (see [`tasks`]).
    tasks: tasks::TaskStore,
    /// Reflect mode's state (see [`reflect`]).
    reflect: reflect::State,
}

/// The mock MCP server. Cheap to clone (shared state); implements [`Handler`].
#[derive(Clone)]
pub struct MockServer {
    inner: Arc<Inner>,
}

/// Decrements the in-flight count (and, for a `tools/call`, the calls in
/// flight) when dropped (moved into SSE producers so a stream counts until
/// it ends).
struct InFlight {
    inner: Arc<Inner>,
    call: bool,
}

impl InFlight {
    /// Counts this request as a `tools/call` too, until it is dropped.
    fn as_call(&mut self) {
        if !self.call {
            self.call = true;
            let now = self.inner.calls_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.inner.max_calls_in_flight.fetch_max(now, Ordering::SeqCst);
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.inner.in_flight.fetch_sub(1, Ordering::SeqCst);
        if self.call {
            self.inner.calls_in_flight.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// What a method produced, before it becomes an HTTP response.
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
    /// A tool that streams notifications / server→client requests before its result.
    Stream(stream::StreamFn),
    /// `test_reconnection`: a priming event, the stream cut, and this result
    /// replayed on GET with `Last-Event-ID` (legacy sessions only).
    Reconnect(Value),
    /// A JSON-RPC error (code, message) sent as the only event of an SSE
    /// stream (reflect mode's [`reflect::SSE_ERROR_TOOL`]).
    SseError(i64, String),
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reply::Result(v) => f.debug_tuple("Result").field(v).finish(),
            Reply::Error(c, m, d) => f.debug_tuple("Error").field(c).field(m).field(d).finish(),
            Reply::Progress { token, steps, ms, result } => f
                .debug_struct("Progress")
                .field("token", token)
                .field("steps", steps)
                .field("ms", ms)
                .field("result", result)
                .finish(),
            Reply::Stream(_) => f.write_str("Stream(..)"),
            Reply::Reconnect(v) => f.debug_tuple("Reconnect").field(v).finish(),
            Reply::SseError(c, m) => f.debug_tuple("SseError").field(c).field(m).finish(),
        }
    }
}

/// What a method needs to know about the request it answers.
pub(crate) struct Ctx<'a> {
    /// The request is served under modern (2026-07-28) rules.
    pub modern: bool,
    /// The legacy session id, if any.
    pub session: Option<&'a str>,
    /// The `Authorization` header value.
    pub authorization: Option<&'a str>,
    /// Reflect mode: the caller's credential (the configured header's value).
    pub credential: Option<&'a str>,
}

/// Whether `host` (a `Host` header value or URL authority, port optional)
/// names the loopback interface.
fn is_loopback_host(host: &str) -> bool {
    let host = host.trim().to_ascii_lowercase();
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default().to_string()
    } else {
        host.rsplit_once(':').map_or(host.as_str(), |(h, port)| if port.chars().all(|c| c.is_ascii_digit()) { h } else { host.as_str() }).to_string()
    };
    name == "localhost" || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// DNS-rebinding check: a loopback peer naming a non-loopback `Host` /
/// `Origin` is refused (the mock is meant to be bound to loopback; a remote
/// peer means it was bound elsewhere on purpose, and any name is accepted).
fn rebinding_refusal(req: &Request) -> Option<String> {
    if !req.peer.ip().is_loopback() {
        return None;
    }
    if let Some(host) = req.header("Host").filter(|h| !is_loopback_host(h)) {
        return Some(format!("Forbidden: Host {host} is not a loopback name"));
    }
    let origin = req.header("Origin")?;
    let authority = origin.split_once("://").map_or(origin, |(_, a)| a).split('/').next().unwrap_or_default();
    if origin != "null" && !is_loopback_host(authority) {
        return Some(format!("Forbidden: Origin {origin} is not a loopback origin"));
    }
    None
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
    format!("sess-{}", mcphub::random::hex::<16>())
}

impl MockServer {
    /// A mock with this configuration and no sessions; conformance fixtures
    /// on iff `MCPHUB_MOCK_FIXTURES=conformance`.
    pub fn new(cfg: MockConfig) -> MockServer {
        let fixtures = std::env::var(FIXTURES_ENV).is_ok_and(|v| v.trim() == "conformance");
        MockServer::build(cfg, fixtures)
    }

    /// A mock with the conformance fixtures on.
    pub fn with_conformance_fixtures(cfg: MockConfig) -> MockServer {
        MockServer::build(cfg, true)
    }

    /// Whether the conformance fixtures are on.
    pub fn has_conformance_fixtures(&self) -> bool {
        self.inner.fixtures
    }

    fn build(cfg: MockConfig, fixtures: bool) -> MockServer {
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
                max_in_flight: AtomicUsize::new(0),
                calls_in_flight: AtomicUsize::new(0),
                max_calls_in_flight: AtomicUsize::new(0),
                fixtures,
                pending: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
                replay: Mutex::new((HashMap::new(), VecDeque::new())),
                listen: listen::Streams::default(),
                tasks: tasks::TaskStore::from_env(),
                reflect: reflect::State::default(),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &MockConfig {
        &self.inner.cfg
    }

    /// The `/stats` document:
    /// `{"initialize","requests","sessions_active","sessions_created",
    /// "expired_404","rejected_429","cancelled","max_in_flight","max_calls_in_flight","tools":{"echo":n,…},"last_authorization_sha"}`.
    /// `cancelled` counts legacy `notifications/cancelled` received on a session;
    /// `max_in_flight` is the most `/mcp` requests (any method, GET streams
    /// included) in flight at once; `max_calls_in_flight` the most
    /// `tools/call` requests being answered at once (from the parsed message
    /// to the end of its answer, a streamed one until its stream ends).
    /// `requests` counts every POST to `/mcp` — the JSON-RPC messages sent,
    /// including rejected ones (GET streams, `subscriptions/listen` streams and DELETE are not counted); `initialize` counts answered legacy `initialize` requests;
    /// `expired_404` counts 404s for unknown or expired sessions;
    /// `last_authorization_sha` is the full hex SHA-256 of the last
    /// `Authorization` header seen on `/mcp` (`null` if none yet);
    /// `last_request_id`, `last_traceparent`, `last_tracestate` are those
    /// headers of the last POST to `/mcp` (a `subscriptions/listen` stream,
    /// opened by the hub in the background, is not one) and
    /// `last_meta_traceparent` its `params._meta.traceparent` (each `null`
    /// when that POST had none).
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
            "cancelled": c.cancelled,
            "max_in_flight": self.inner.max_in_flight.load(Ordering::SeqCst),
            "max_calls_in_flight": self.inner.max_calls_in_flight.load(Ordering::SeqCst),
            "tools": c.tools,
            "last_authorization_sha": c.last_authorization_sha,
            "last_request_id": c.last_request_id,
            "last_traceparent": c.last_traceparent,
            "last_tracestate": c.last_tracestate,
            "last_meta_traceparent": c.last_meta_traceparent,
        })
    }

    /// Zeroes the counters (and the expiry cadence); live sessions stay.
    pub fn reset_stats(&self) {
        let mut st = self.inner.state.lock();
        st.counters = Counters::new();
        st.session_uses = 0;
        self.inner.max_in_flight.store(self.inner.in_flight.load(Ordering::SeqCst), Ordering::SeqCst);
        self.inner.max_calls_in_flight.store(self.inner.calls_in_flight.load(Ordering::SeqCst), Ordering::SeqCst);
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
            // JSON-RPC traffic only: a client's GET stream (opened whenever it
            // likes, e.g. the hub's listener) is not a request it made.
            if req.method == "POST" && !listen::is_listen(&req) {
                st.counters.requests += 1;
            }
            if let Some(auth) = req.header("Authorization") {
                st.counters.last_authorization_sha = Some(full_sha(auth));
            }
            if req.method == "POST" && !listen::is_listen(&req) {
                let c = &mut st.counters;
                let header = |n: &str| req.header(n).map(str::to_string);
                c.last_request_id = header("X-Request-Id");
                c.last_traceparent = header("traceparent");
                c.last_tracestate = header("tracestate");
                // Parsed only when the body mentions it (the mock serves benchmarks too).
                c.last_meta_traceparent = if req.body.windows(11).any(|w| w == b"traceparent") {
                    serde_json::from_slice::<Value>(&req.body)
                        .ok()
                        .and_then(|v| v.pointer("/params/_meta/traceparent").and_then(Value::as_str).map(str::to_string))
                } else {
                    None
                };
            }
        }
        if let Some(why) = rebinding_refusal(&req) {
            return Response::json(403, &rpc_error(&Value::Null, codes::SERVER_ERROR, &why, None));
        }
        if let Some(refused) = self.reflect_refusal(&req) {
            return refused;
        }
        let now = self.inner.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.inner.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let guard = InFlight { inner: self.inner.clone(), call: false };
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
            "GET" if !modern_only && req.header("Last-Event-ID").is_some() => self.resume(&req),
            "GET" if !modern_only && self.tasks_enabled() => self.task_stream(&req),
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

    fn post(&self, req: &Request, mut guard: InFlight) -> Response {
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
            return self.after_session_check(
                req,
                &msg,
                |_| {
                    self.deliver_answer(&msg);
                    Response::empty(202)
                },
                self.is_modern(req, &msg),
            );
        }
        let Some(method) = method else {
            let id = id.unwrap_or(Value::Null);
            return Response::json(400, &rpc_error(&id, codes::INVALID_REQUEST, "Invalid Request: no method", None));
        };
        if method == "tools/call" && id.is_some() {
            guard.as_call();
        }
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
                    if method == "notifications/cancelled" {
                        self.inner.state.lock().counters.cancelled += 1;
                    }
                    return Response::empty(202); // notification
                };
                let ctx = Ctx { modern: false, session: Some(sid), authorization: req.header("Authorization"), credential: self.reflected(req) };
                let reply = self.dispatch(&ctx, method, obj.get("params"));
                self.respond(id, reply, guard, Some(sid.to_string()), None)
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
                classify(method, params, header) == mcphub::protocol::Era::Modern
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
            if n > 0 && st.session_uses.is_multiple_of(n) {
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
        let capabilities = msg.pointer("/params/capabilities").cloned().unwrap_or_else(|| json!({}));
        {
            let mut st = self.inner.state.lock();
            let session = Session {
                version: version.to_string(),
                counter: 0,
                capabilities,
                log_level: None,
                subscriptions: HashSet::new(),
            };
            st.sessions.insert(sid.clone(), session);
            st.counters.sessions_created += 1;
            st.counters.initialize += 1;
        }
        log::debug!("mock: initialize {requested} → {version}, session {sid}");
        let mut result = json!({
            "protocolVersion": version,
            "capabilities": {
                "tools": {"listChanged": true},
                "prompts": {},
                "resources": {"subscribe": self.inner.fixtures},
                "completions": {},
                "logging": {},
            },
            "serverInfo": {"name": self.inner.cfg.name, "version": env!("CARGO_PKG_VERSION")},
            "instructions": format!("{} is a mock MCP server for tests.", self.inner.cfg.name),
        });
        self.add_task_capability(&mut result, false);
        Response::json(200, &json!({"jsonrpc": "2.0", "id": id, "result": result})).with_header("Mcp-Session-Id", &sid)
    }

    fn modern(&self, req: &Request, msg: &Value, method: &str, guard: InFlight) -> Response {
        let Some(id) = msg.get("id").cloned() else {
            // Notifications: the revision defines none over HTTP; accept.
            return Response::empty(202);
        };
        let supported: Vec<&str> = self.supported_versions();
        // A request whose header claims a modern version must carry valid
        // `_meta` (-32602); one without such a header (a legacy client) is
        // told about the header first (-32020, naming the versions).
        let claims_modern = req.header("MCP-Protocol-Version").is_some_and(|v| !LEGACY_VERSIONS.contains(&v.trim()));
        if claims_modern && method != "initialize" {
            let empty = serde_json::Map::new();
            if let Err(why) = mcphub::protocol::era::check_request_meta(msg.get("params").and_then(Value::as_object).unwrap_or(&empty)) {
                return Response::json(400, &rpc_error(&id, codes::INVALID_PARAMS, &why, None));
            }
        }
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
        if method == "subscriptions/listen" {
            return listen::open(self, id, msg.get("params"));
        }
        if let Some(answer) = listen::trigger(self, &id, method, msg.get("params")) {
            return answer;
        }
        let ctx = Ctx { modern: true, session: None, authorization: req.header("Authorization"), credential: self.reflected(req) };
        let reply = if modern::REMOVED_METHODS.contains(&method) {
            Reply::Error(codes::METHOD_NOT_FOUND, format!("Method not found: {method} (removed in 2026-07-28)"), None)
        } else if method == "initialize" {
            Reply::Error(
                codes::METHOD_NOT_FOUND,
                format!("Method not found: initialize (this server speaks {} without initialize)", supported.join(", ")),
                Some(json!({"supported": supported})),
            )
        } else {
            self.dispatch(&ctx, method, msg.get("params"))
        };
        let meta = msg.pointer("/params/_meta").cloned().unwrap_or_else(|| json!({}));
        self.respond(id, reply, guard, None, Some(meta))
    }

    /// Versions named in `data.supported`: modern first, then legacy newest first.
    fn supported_versions(&self) -> Vec<&'static str> {
        let mut v: Vec<&str> = MODERN_VERSIONS.to_vec();
        if self.inner.cfg.era != Era::Modern {
            v.extend(LEGACY_VERSIONS.iter().rev());
        }
        v
    }

    /// Turns a [`Reply`] into the HTTP response. `session`: the legacy
    /// session; `modern_meta`: a modern request's `params._meta` (its
    /// presence means modern rules).
    fn respond(&self, id: Value, reply: Reply, guard: InFlight, session: Option<String>, modern_meta: Option<Value>) -> Response {
        let modern = modern_meta.is_some();
        match reply {
            Reply::Result(result) => {
                let result = if modern { modern::complete(result) } else { result };
                Response::json(200, &json!({"jsonrpc": "2.0", "id": id, "result": result}))
            }
            Reply::Error(code, message, data) => {
                // Modern: an unimplemented method is 404 + -32601 (streamable-http.mdx).
                // and a missing client capability is 400 + -32021 (SEP-2575).
                let status = match code {
                    codes::METHOD_NOT_FOUND if modern => 404,
                    codes::MISSING_CLIENT_CAPABILITY if modern => 400,
                    _ => 200,
                };
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
            Reply::Stream(f) => {
                let server = self.clone();
                Response::sse(move |sink| {
                    let _guard = guard;
                    let mut out = stream::Outbound { sink, server: &server, session, modern_meta };
                    stream::run(f, &mut out, &id, |r| if modern { modern::complete(r) } else { r });
                })
                .with_header("X-Accel-Buffering", "no")
            }
            Reply::SseError(code, message) => {
                let msg = rpc_error(&id, code, &message, None).to_string();
                Response::sse(move |sink| {
                    let _guard = guard;
                    let _ = sink.send(&SseEvent { data: &msg, ..Default::default() });
                })
                .with_header("X-Accel-Buffering", "no")
            }
            Reply::Reconnect(result) => {
                let Some(session) = session.filter(|_| !modern) else {
                    let r = json!({"content": [{"type": "text", "text": "test_reconnection needs a legacy session (its stream is resumed by GET with Last-Event-ID)"}], "isError": true});
                    return Response::json(200, &json!({"jsonrpc": "2.0", "id": id, "result": modern::complete(r)}));
                };
                let stream_id = format!("s{}", self.inner.next_id.fetch_add(1, Ordering::SeqCst));
                let final_msg = json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string();
                self.keep_for_replay(&stream_id, session, vec![(format!("{stream_id}-1"), final_msg)]);
                Response::sse(move |sink| {
                    let _guard = guard;
                    let prime = format!("{stream_id}-0");
                    let _ = sink.send(&SseEvent { id: Some(&prime), retry_ms: Some(RECONNECT_RETRY_MS), data: "", ..Default::default() });
                    // Cut the stream before the result: the client resumes with GET + Last-Event-ID.
                })
                .with_header("X-Accel-Buffering", "no")
            }
        }
    }

    /// Keeps `events` of cut stream `stream_id` for replay to `session`.
    fn keep_for_replay(&self, stream_id: &str, session: String, events: Vec<(String, String)>) {
        let mut guard = self.inner.replay.lock();
        let (map, order) = &mut *guard;
        while order.len() >= MAX_REPLAY_STREAMS {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
        map.insert(stream_id.to_string(), Replay { session, events });
        order.push_back(stream_id.to_string());
    }

    /// Legacy GET with `Last-Event-ID` (`{stream}-{n}`): replays the events of
    /// that cut stream after `n`, then ends. Needs the stream's own session.
    fn resume(&self, req: &Request) -> Response {
        let Some(sid) = req.header("Mcp-Session-Id") else {
            let body = rpc_error(&Value::Null, codes::SERVER_ERROR, "Bad Request: Mcp-Session-Id header is required", None);
            return Response::json(400, &body);
        };
        if !self.has_session(sid) {
            self.inner.state.lock().counters.expired_404 += 1;
            return Response::json(404, &rpc_error(&Value::Null, codes::SESSION_NOT_FOUND, "Session not found", None));
        }
        let last = req.header("Last-Event-ID").unwrap_or_default().trim().to_string();
        let parsed = last.rsplit_once('-').and_then(|(s, n)| Some((s.to_string(), n.parse::<u64>().ok()?)));
        let events = parsed.and_then(|(stream_id, n)| {
            let mut guard = self.inner.replay.lock();
            let (map, order) = &mut *guard;
            if map.get(&stream_id)?.session != sid {
                return None;
            }
            let replay = map.remove(&stream_id)?;
            order.retain(|s| *s != stream_id);
            let after = |eid: &str| eid.rsplit_once('-').and_then(|(_, k)| k.parse::<u64>().ok()).is_some_and(|k| k > n);
            Some(replay.events.into_iter().filter(|(eid, _)| after(eid)).collect::<Vec<_>>())
        });
        let Some(events) = events else {
            let body = rpc_error(&Value::Null, codes::INVALID_REQUEST, &format!("No stream to resume for Last-Event-ID {last}"), None);
            return Response::json(404, &body);
        };
        Response::sse(move |sink| {
            for (eid, data) in &events {
                if sink.send(&SseEvent { id: Some(eid), data, ..Default::default() }).is_err() {
                    return;
                }
            }
        })
        .with_header("X-Accel-Buffering", "no")
    }

    /// Mints a server→client request id and enters it in the pending table.
    fn register_pending(&self) -> (Value, mpsc::Receiver<Value>) {
        let id = Value::from(format!("mock-req-{}", self.inner.next_id.fetch_add(1, Ordering::SeqCst)));
        let (tx, rx) = mpsc::channel();
        self.inner.pending.lock().insert(id.to_string(), tx);
        (id, rx)
    }

    fn forget_pending(&self, id: &Value) {
        self.inner.pending.lock().remove(&id.to_string());
    }

    /// Hands a client's JSON-RPC response to the call waiting for it (by
    /// id); `false` if no call is waiting (unknown id, or already answered).
    pub(crate) fn deliver_answer(&self, msg: &Value) -> bool {
        let Some(id) = msg.get("id") else { return false };
        match self.inner.pending.lock().remove(&id.to_string()) {
            Some(tx) => tx.send(msg.clone()).is_ok(),
            None => false,
        }
    }

    /// The level set by `logging/setLevel` in this session.
    pub(crate) fn session_log_level(&self, sid: &str) -> Option<String> {
        self.inner.state.lock().sessions.get(sid).and_then(|s| s.log_level.clone())
    }

    /// The client capabilities this session's `initialize` declared.
    pub(crate) fn session_capabilities(&self, sid: &str) -> Option<Value> {
        self.inner.state.lock().sessions.get(sid).map(|s| s.capabilities.clone())
    }

    /// Records `logging/setLevel` for a legacy session (modern: no state).
    pub(crate) fn set_log_level(&self, session: Option<&str>, level: &str) {
        let mut st = self.inner.state.lock();
        if let Some(s) = session.and_then(|sid| st.sessions.get_mut(sid)) {
            s.log_level = Some(level.to_string());
        }
    }

    /// Adds (`on`) or removes a resource subscription of a legacy session.
    pub(crate) fn subscribe(&self, session: Option<&str>, uri: &str, on: bool) {
        let mut st = self.inner.state.lock();
        if let Some(s) = session.and_then(|sid| st.sessions.get_mut(sid)) {
            if on {
                s.subscriptions.insert(uri.to_string());
            } else {
                s.subscriptions.remove(uri);
            }
        }
    }

    /// The URIs a legacy session subscribed to, sorted.
    pub fn subscriptions(&self, sid: &str) -> Vec<String> {
        let st = self.inner.state.lock();
        let mut v: Vec<String> = st.sessions.get(sid).map(|s| s.subscriptions.iter().cloned().collect()).unwrap_or_default();
        v.sort();
        v
    }

    pub(crate) fn count_tool(&self, name: &str) {
        let mut st = self.inner.state.lock();
        if let Some(n) = st.counters.tools.get_mut(name) {
            *n += 1;
        } else if (self.inner.fixtures && CONFORMANCE_TOOL_NAMES.contains(&name)) || self.is_extra_tool(name) {
            st.counters.tools.insert(name.to_string(), 1);
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
