//! The hub's client side: one [`Upstream`] per configured MCP server.
//!
//! - One ureq agent per server, keep-alive pool sized to the workers; every
//!   call has one total deadline, not one per phase (`timeout_global` =
//!   `min(hub deadline, server timeoutMs)`; docs/decisions.md D2), made
//!   thread-free by [`transport`]'s blocking resolver (ureq's default one
//!   spawns a thread per lookup under a global timeout: docs/decisions.md D2a).
//! - Era detection once per server ([`era`]): a modern `server/discover` probe
//!   first; a 4xx without a recognised modern error means legacy → `initialize`.
//!   Cached; pinned by `"protocol"` in the server config.
//! - Legacy sessions ([`session`]): created once per (server, context key),
//!   single-flight, reused by every client; 404 (or 400 naming the session) →
//!   re-initialize and send again, up to [`MAX_HEALS`] times (sessions the
//!   server never answered on) or [`MAX_EXPIRIES`] times (sessions it
//!   answered on and forgot) within the deadline (docs/decisions.md D3).
//! - Responses may be JSON or SSE ([`transport`]); notifications that arrive
//!   before the final response are handed to the caller.

pub mod cancel;
pub mod era;
pub mod listen;
pub mod mux;
pub mod scrub;
pub mod retry;
pub mod session;
pub mod sse;
pub mod stdio;
pub mod streamable;
pub mod transport;

use crate::config::{ProtocolPin, ServerConfig};
use crate::protocol::{self, headers, jsonrpc, Era, MODERN_VERSION};
use parking_lot::RwLock;
use serde_json::{json, Map, Value};
use crate::config::SessionSharing;
use crate::store::SessionStore;
use session::{LegacySession, Scope, SessionPool};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use transport::{Answer, EventStream, HttpReply, Transport};

pub use retry::{MAX_EXPIRIES, MAX_HEALS, MAX_REFUSALS};

/// Makes the [`Transport`] of one server from its configuration and the
/// keep-alive pool size (the hub's worker count): [`product_connector`] in the
/// product; a test gives the hub its own (`Hub::with_connector`).
pub type Connector = Arc<dyn Fn(&ServerConfig, usize) -> Box<dyn Transport> + Send + Sync>;

/// The product's connector: Streamable HTTP ([`streamable::HttpTransport`])
/// for URL servers, [`sse::SseTransport`] for `"type": "sse"` ones (the
/// 2024-11-05 HTTP+SSE transport), [`stdio::StdioTransport`] for stdio servers, all of them
/// under one cap of `global_max_processes` stdio processes (top-level
/// `maxProcesses`, issue 19).
pub fn product_connector(global_max_processes: usize) -> Connector {
    let budget = stdio::Budget::new(global_max_processes);
    Arc::new(move |config: &ServerConfig, pool_size: usize| match &config.transport {
        crate::config::TransportKind::Stdio(stdio) => Box::new(stdio::StdioTransport::new(config, stdio.clone(), budget.clone())) as Box<dyn Transport>,
        crate::config::TransportKind::Sse => Box::new(sse::SseTransport::new(config, pool_size)) as Box<dyn Transport>,
        _ => Box::new(streamable::HttpTransport::new(config, pool_size)) as Box<dyn Transport>,
    })
}

/// Why an upstream call failed. Messages name the server, never a credential.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Connecting or talking to the server failed.
    #[error("upstream '{server}' unreachable: {detail}")]
    Transport {
        /// Server name.
        server: String,
        /// What failed (no secrets).
        detail: String,
        /// Whether the request may have reached the server.
        sent: bool,
    },
    /// The call ran past its own deadline (the server's `timeoutMs`, or
    /// `maxTotalTimeoutMs` once progress extended it).
    #[error("upstream '{server}' timed out after {timeout_ms} ms")]
    Timeout {
        /// Server name.
        server: String,
        /// The budget that ran out.
        timeout_ms: u64,
    },
    /// The request's hub deadline (`timeouts.hubMs`) ran out first, before or
    /// during the call to this server.
    #[error("the hub deadline ({timeout_ms} ms) ran out waiting for upstream '{server}'")]
    HubTimeout {
        /// Server name.
        server: String,
        /// `timeouts.hubMs`.
        timeout_ms: u64,
    },
    /// The server answered with an HTTP status and no JSON-RPC message.
    #[error("upstream '{server}' answered HTTP {status}: {detail}")]
    Status {
        /// Server name.
        server: String,
        /// HTTP status.
        status: u16,
        /// A short excerpt of the body.
        detail: String,
    },
    /// The server needs service tokens the caller has not set (docs/decisions.md D6).
    #[error("server '{server}' needs your {}: set it with PUT /api/me/tokens/{} (your hub key as Bearer)", tokens.join(", "), tokens.first().map(String::as_str).unwrap_or("NAME"))]
    MissingToken {
        /// Server name.
        server: String,
        /// The token names the caller lacks.
        tokens: Vec<String>,
    },
    /// A server with per-user credentials answered HTTP 401 or 403 to a
    /// request carrying the caller's tokens (issue 14): the caller's token is
    /// wrong or expired. Names the server and the token names of its header
    /// templates, never a value, nor the upstream's text.
    #[error("server '{server}' rejected your {} (HTTP {status}): update it with PUT /api/me/tokens/{}", tokens.join(", "), tokens.first().map(String::as_str).unwrap_or("NAME"))]
    Rejected {
        /// Server name.
        server: String,
        /// 401 or 403.
        status: u16,
        /// The token names the server's headers template (`${user.NAME}`).
        tokens: Vec<String>,
    },
    /// The server's answer was not a valid JSON-RPC response.
    #[error("upstream '{server}' sent an invalid response: {detail}")]
    Protocol {
        /// Server name.
        server: String,
        /// What was wrong.
        detail: String,
    },
    /// The server's bulkhead refused the call, or the server itself did
    /// (HTTP 429/503) and the hub could not retry it within the deadline
    /// ([`crate::limits::bulkhead`]). The client gets HTTP 503 + `Retry-After`.
    #[error("server '{server}' is overloaded: {cause}; retry after {retry_after_secs} s")]
    Overloaded {
        /// Server name.
        server: String,
        /// When to try again, whole seconds ≥ 1 (`data.retry_after_seconds`).
        retry_after_secs: u64,
        /// `"queue_full"` or `"upstream_busy"` (`data.reason`).
        reason: &'static str,
        /// What is full or busy, for the message.
        cause: String,
    },
    /// The server's circuit breaker is open after consecutive connect
    /// failures ([`crate::limits::breaker`]). The client gets HTTP 503 + `Retry-After`.
    #[error("server '{server}' is unavailable (circuit open after {failures} connect failures); retrying in {retry_after_secs} s")]
    Unavailable {
        /// Server name.
        server: String,
        /// The consecutive connect failures that opened the circuit.
        failures: u32,
        /// Until the next probe, whole seconds ≥ 1 (`data.retry_after_seconds`).
        retry_after_secs: u64,
    },
}

impl From<crate::limits::bulkhead::Refused> for UpstreamError {
    /// The bulkhead's refusal as the upstream error of the same name and fields.
    fn from(r: crate::limits::bulkhead::Refused) -> UpstreamError {
        use crate::limits::bulkhead::Refused;
        match r {
            Refused::Overloaded { server, retry_after_secs, reason, cause } => UpstreamError::Overloaded { server, retry_after_secs, reason, cause },
            Refused::Unavailable { server, failures, retry_after_secs } => UpstreamError::Unavailable { server, failures, retry_after_secs },
            Refused::Timeout { server, timeout_ms } => UpstreamError::Timeout { server, timeout_ms },
        }
    }
}

impl UpstreamError {
    /// For a timeout, the layer whose deadline ran out: `"upstream"` or `"hub"`.
    pub fn timeout_layer(&self) -> Option<&'static str> {
        match self {
            UpstreamError::Timeout { .. } => Some("upstream"),
            UpstreamError::HubTimeout { .. } => Some("hub"),
            _ => None,
        }
    }

    /// `Retry-After` seconds for the errors answered with HTTP 503
    /// (`Overloaded`, `Unavailable`); `None` for the others.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            UpstreamError::Overloaded { retry_after_secs, .. } | UpstreamError::Unavailable { retry_after_secs, .. } => Some(*retry_after_secs),
            _ => None,
        }
    }

    /// The error with every value in `injected` removed from its upstream
    /// text (a `Status` body excerpt, a `Transport` or `Protocol` detail):
    /// issue 14 hole 4, [`scrub`].
    pub fn scrubbed(self, injected: &scrub::Injected) -> UpstreamError {
        if injected.is_empty() {
            return self;
        }
        match self {
            UpstreamError::Transport { server, detail, sent } => UpstreamError::Transport { server, detail: injected.scrub(&detail), sent },
            UpstreamError::Status { server, status, detail } => UpstreamError::Status { server, status, detail: injected.scrub(&detail) },
            UpstreamError::Protocol { server, detail } => UpstreamError::Protocol { server, detail: injected.scrub(&detail) },
            other => other,
        }
    }

    /// The error's class without any upstream text, for `/readyz` of a
    /// server with per-user credentials (issue 14 hole 4): `HTTP 401`,
    /// `transport error (not sent)` / `transport error (after sending)`,
    /// `timeout`, `hub timeout`, `invalid response`, `missing token`,
    /// `overloaded`, `circuit open`.
    pub fn class(&self) -> String {
        match self {
            UpstreamError::Status { status, .. } => format!("HTTP {status}"),
            UpstreamError::Transport { sent: false, .. } => "transport error (not sent)".into(),
            UpstreamError::Transport { sent: true, .. } => "transport error (after sending)".into(),
            UpstreamError::Timeout { .. } => "timeout".into(),
            UpstreamError::HubTimeout { .. } => "hub timeout".into(),
            UpstreamError::Protocol { .. } => "invalid response".into(),
            UpstreamError::MissingToken { .. } => "missing token".into(),
            UpstreamError::Rejected { status, .. } => format!("HTTP {status} (credential rejected)"),
            UpstreamError::Overloaded { .. } => "overloaded".into(),
            UpstreamError::Unavailable { .. } => "circuit open".into(),
        }
    }

    /// The server the error is about.
    pub fn server(&self) -> &str {
        match self {
            UpstreamError::Transport { server, .. }
            | UpstreamError::Timeout { server, .. }
            | UpstreamError::HubTimeout { server, .. }
            | UpstreamError::Status { server, .. }
            | UpstreamError::MissingToken { server, .. }
            | UpstreamError::Rejected { server, .. }
            | UpstreamError::Protocol { server, .. }
            | UpstreamError::Overloaded { server, .. }
            | UpstreamError::Unavailable { server, .. } => server,
        }
    }
}

/// Who is calling, for session selection and modern `_meta`.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// The calling user (hub key), whose service tokens fill this server's
    /// `${user.NAME}` header templates; `None`: anonymous or the hub itself.
    pub user: Option<Arc<crate::users::User>>,
    /// The downstream client's `Implementation`, forwarded in modern `_meta`.
    pub client_info: Option<Value>,
    /// The downstream client's capabilities, forwarded in modern `_meta`.
    pub client_capabilities: Option<Value>,
    /// When the whole request must be answered (the hub deadline).
    pub deadline: Instant,
    /// The downstream call's handle, when it can be cancelled.
    pub call: Option<Arc<cancel::CallHandle>>,
    /// The log level to ask a 2026-07-28 server for on a legacy client's
    /// behalf (`io.modelcontextprotocol/logLevel`); a modern client's own
    /// `_meta` already carries its level.
    pub log_level: Option<String>,
    /// The downstream legacy client session, for servers with
    /// `sessionSharing: "client"` (one upstream session per client session).
    pub client_session: Option<String>,
}

impl CallContext {
    /// A context for hub-internal calls (list fetches) on the shared session.
    pub fn shared(deadline: Instant) -> CallContext {
        CallContext {
            user: None,
            client_info: None,
            client_capabilities: None,
            deadline,
            call: None,
            log_level: None,
            client_session: None,
        }
    }
}

/// A caller's credential headers for one server and their context key.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// Header name → value (values print as `***`).
    pub headers: Vec<(String, crate::users::Secret)>,
    /// `shared` or `tok:…` (docs/decisions.md D3).
    pub context_key: String,
}

impl Credentials {
    /// The headers as plain pairs, for the transport.
    pub fn plain(&self) -> Vec<(String, String)> {
        self.headers.iter().map(|(k, v)| (k.clone(), v.expose().to_string())).collect()
    }
}

/// What a call came back with.
pub enum Outcome {
    /// The final response message (its id is the hub's upstream id).
    Done(Value),
    /// An SSE answer still being read.
    Streaming(CallStream),
}

/// A legacy call's context key, credentials and request body, fixed for all
/// its attempts ([`Upstream::request_open`]).
struct LegacyCall {
    key: String,
    scope: Scope,
    creds: Credentials,
    body: Value,
}

/// The legacy session one attempt went out on, and its headers.
struct SentOn {
    session: Arc<LegacySession>,
    headers: Vec<(String, String)>,
}

/// An upstream call whose answer is an open event stream.
pub struct CallStream {
    /// The stream; read with [`EventStream::next_item`].
    pub events: Box<EventStream>,
    /// Headers naming the upstream session, to answer server→client requests on.
    pub session_headers: Vec<(String, String)>,
    /// Whether the server's era allows answering server→client requests
    /// (legacy: yes; 2026-07-28: no, it uses input_required results instead).
    pub answerable: bool,
    /// The call's bulkhead slot and, for a heavy call, its `heavyTools` slot,
    /// released when the stream is dropped (read to its end, timed out, or
    /// cut by the client's cancellation).
    pub permit: Option<Box<(crate::limits::bulkhead::Permit, Option<Box<crate::limits::bulkhead::Permit>>)>>,
}

/// Last observed state of a server, for `/readyz`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServerState {
    /// The era detected or pinned, if known.
    pub era: Option<Era>,
    /// Whether the last call reached the server.
    pub ok: bool,
    /// The last error, if the last call failed.
    pub last_error: Option<String>,
    /// Its class ([`UpstreamError::class`]: no upstream text), for the admin pages.
    pub last_error_class: Option<String>,
    /// Slots in use, queue, circuit state and hold ([`crate::limits::bulkhead`]).
    pub bulkhead: crate::limits::bulkhead::Snapshot,
    /// The heavy tools' own queue (`heavyTools`), when the server has some.
    pub heavy: Option<crate::limits::bulkhead::Snapshot>,
    /// When a call last reached the server (Unix time, ms), if ever.
    pub last_success_ms: Option<u64>,
}

/// One upstream MCP server.
pub struct Upstream {
    /// The server's configuration.
    pub config: ServerConfig,
    transport: Box<dyn Transport>,
    era: RwLock<Option<Era>>,
    /// Held while probing, so concurrent first calls send one probe.
    probe: parking_lot::Mutex<()>,
    sessions: SessionPool,
    next_id: AtomicU64,
    state: RwLock<ServerState>,
    /// This upstream, for the listener threads it starts.
    me: std::sync::Weak<Upstream>,
    /// Where notifications from a listening (GET) stream go: (server, message).
    on_notification: std::sync::OnceLock<NotificationSink>,
    /// The owner of this upstream's threads (the hub's; [`Upstream::attach_threads`]).
    threads: std::sync::OnceLock<crate::threads::Threads>,
    /// Where server→client requests on the GET stream of a
    /// `sessionSharing: "client"` session go (issue 21).
    on_request: std::sync::OnceLock<RequestSink>,
    /// The `subscriptions/listen` stream of a modern server ([`listen`]).
    listen_watch: listen::Watch,
    /// A modern server's `server/discover` capabilities, once seen.
    discovered: RwLock<Option<Value>>,
    /// `maxConcurrency` / `maxQueue`, back-pressure and the circuit breaker.
    bulkhead: Arc<crate::limits::bulkhead::Bulkhead>,
    /// Tools annotated `readOnlyHint` or `idempotentHint` (from the last
    /// `tools/list`): a call to one may be re-sent after a transport error.
    retry_safe_tools: RwLock<std::collections::HashSet<String>>,
    /// The heavy tools' own queue (`heavyTools`; `None` when there are none).
    heavy: Option<Arc<crate::limits::bulkhead::Bulkhead>>,
    /// When a call last reached the server (Unix ms; 0: never), for `/readyz`.
    last_ok_ms: AtomicU64,
    /// A config reload stopped serving this upstream ([`Upstream::retire`]).
    retired: std::sync::atomic::AtomicBool,
}

/// Receives notifications an upstream sends outside any call: (server name, message).
pub type NotificationSink = Arc<dyn Fn(&str, &Value) + Send + Sync>;

/// Receives a server→client request sent on the standalone GET stream of a
/// `sessionSharing: "client"` upstream session: (upstream, the downstream
/// client session it belongs to, the upstream session's headers, request).
/// `Ok` once it is on its way to the client (the client's answer goes back
/// on those headers); `Err(why)` to have the hub refuse it
/// ([`transport::Refusal::Client`]).
pub type RequestSink = Arc<dyn Fn(&Arc<Upstream>, &str, &[(String, String)], Value) -> Result<(), &'static str> + Send + Sync>;

/// The hub's own `Implementation` as a client of upstream servers.
pub fn hub_client_info() -> Value {
    json!({"name": "mcphub", "version": env!("CARGO_PKG_VERSION")})
}

/// A client's capabilities minus those that need the client to answer input
/// requests (`sampling`, `elicitation`, `roots`), for a client the hub cannot
/// ask (see `hub::mrtr::upstream_capabilities`), so a modern server falls
/// back instead of asking for input nobody will give.
pub fn relayable_capabilities(client: Option<&Value>) -> Value {
    let mut caps = client.cloned().filter(Value::is_object).unwrap_or_else(|| json!({}));
    if let Some(map) = caps.as_object_mut() {
        for unrelayed in ["sampling", "elicitation", "roots"] {
            map.remove(unrelayed);
        }
    }
    caps
}

impl Upstream {
    /// Creates the client for one server; `pool_size` keep-alive connections;
    /// shared legacy sessions kept in `store` for `session_ttl`.
    /// Build it with `Arc::new_cyclic(|me| Upstream::new(config, pool, store, ttl, me.clone()))`
    /// so it can start listener threads.
    pub fn new(
        config: ServerConfig,
        pool_size: usize,
        store: Arc<dyn SessionStore>,
        session_ttl: Duration,
        me: std::sync::Weak<Upstream>,
    ) -> Upstream {
        let transport = Box::new(streamable::HttpTransport::new(&config, pool_size));
        Upstream::with_transport(config, transport, store, session_ttl, me)
    }

    /// [`Upstream::new`] over a given [`Transport`] (any transport; see [`Connector`]).
    pub fn with_transport(
        config: ServerConfig,
        transport: Box<dyn Transport>,
        store: Arc<dyn SessionStore>,
        session_ttl: Duration,
        me: std::sync::Weak<Upstream>,
    ) -> Upstream {
        let pinned = match config.protocol {
            ProtocolPin::Auto => None,
            ProtocolPin::Legacy => Some(Era::Legacy),
            ProtocolPin::Modern => Some(Era::Modern),
        };
        Upstream {
            transport,
            era: RwLock::new(pinned),
            probe: parking_lot::Mutex::new(()),
            sessions: SessionPool::new(&config.name, store, session_ttl),
            next_id: AtomicU64::new(1),
            state: RwLock::new(ServerState { era: pinned, ok: true, last_error: None, last_error_class: None, bulkhead: Default::default(), heavy: None, last_success_ms: None }),
            bulkhead: crate::limits::bulkhead::Bulkhead::new(&config.name, config.max_concurrency, config.max_queue),
            retry_safe_tools: RwLock::new(Default::default()),
            heavy: (!config.heavy_tools.0.is_empty())
                .then(|| crate::limits::bulkhead::Bulkhead::new(&config.name, Some(config.heavy_concurrency), config.heavy_queue)),
            me,
            on_notification: std::sync::OnceLock::new(),
            threads: std::sync::OnceLock::new(),
            on_request: std::sync::OnceLock::new(),
            listen_watch: listen::Watch::default(),
            discovered: RwLock::new(None),
            last_ok_ms: AtomicU64::new(0),
            retired: std::sync::atomic::AtomicBool::new(false),
            config,
        }
    }

    /// The server's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Last observed state.
    pub fn state(&self) -> ServerState {
        let mut s = self.state.read().clone();
        s.bulkhead = self.bulkhead.snapshot();
        s.heavy = self.heavy.as_ref().map(|h| h.snapshot());
        s.last_success_ms = Some(self.last_ok_ms.load(Ordering::Relaxed)).filter(|ms| *ms > 0);
        s
    }

    /// Legacy sessions this server's pool initialized, and those found dead
    /// and re-established, since the start: `(created, re-established)`.
    pub fn session_counts(&self) -> (u64, u64) {
        self.sessions.counts()
    }

    /// A stdio server's processes (issue 19), for `/readyz` and `/metrics`;
    /// `None` for other transports.
    pub fn processes(&self) -> Option<transport::ProcessCounts> {
        self.transport.processes()
    }

    /// Latency of the HTTP calls to this server (to the answer's head), for `/metrics`.
    pub fn latency(&self) -> &prometheus::Histogram {
        self.transport.latency()
    }

    /// The era detected or pinned, if known (no probe, no copy of the state).
    pub fn known_era(&self) -> Option<Era> {
        self.state.read().era
    }

    /// Locally cached legacy sessions: `(context key, session id, kept in the store)`.
    pub fn sessions(&self) -> Vec<(String, Option<String>, bool)> {
        self.sessions.list()
    }

    /// Records which of the server's tools may be re-sent after a transport
    /// error: those annotated `readOnlyHint` or `idempotentHint` (docs/decisions.md D3).
    pub fn note_tools(&self, tools: &[Value]) {
        let hinted = |t: &Value, hint: &str| crate::protocol::jsonrpc::at(t, &["annotations", hint]) == Some(&Value::Bool(true));
        let safe = tools
            .iter()
            .filter(|t| hinted(t, "readOnlyHint") || hinted(t, "idempotentHint"))
            .filter_map(|t| t.get("name").and_then(Value::as_str).map(str::to_string))
            .collect();
        *self.retry_safe_tools.write() = safe;
    }

    /// Whether a request may be sent again after a transport error that may
    /// have reached the server: reads (lists, `resources/read`,
    /// `prompts/get`, `completion/complete`, `server/discover`) and calls of
    /// tools annotated `readOnlyHint`/`idempotentHint` (docs/decisions.md D3).
    fn retry_safe(&self, method: &str, params: &Map<String, Value>) -> bool {
        match method {
            "tools/list" | "prompts/list" | "resources/list" | "resources/templates/list" | "resources/read" | "prompts/get"
            | "completion/complete" | "server/discover" => true,
            "tools/call" => params.get("name").and_then(Value::as_str).is_some_and(|n| self.retry_safe_tools.read().contains(n)),
            _ => false,
        }
    }

    /// Whether this server's headers name user tokens (`${user.NAME}`).
    pub fn needs_user_tokens(&self) -> bool {
        !self.config.user_tokens.is_empty()
    }

    /// The tokens of this server's templates that `user` lacks (all of them
    /// for no user); empty when the user can be served.
    pub fn missing_tokens(&self, user: Option<&crate::users::User>) -> Vec<String> {
        self.config.user_tokens.iter().filter(|t| user.and_then(|u| u.token(t)).is_none()).cloned().collect()
    }

    /// The error for an HTTP `status` (401/403) this server answered to a
    /// request with the caller's tokens: `Rejected`, naming its token names.
    pub fn rejected(&self, status: u16) -> UpstreamError {
        UpstreamError::Rejected { server: self.config.name.clone(), status, tokens: self.config.user_tokens.clone() }
    }

    /// `error` as the caller should see it: an HTTP 401/403 from a server
    /// with per-user credentials (the request carried the caller's tokens)
    /// becomes `Rejected`; other errors are unchanged.
    fn classify(&self, error: UpstreamError) -> UpstreamError {
        match error {
            UpstreamError::Status { status: status @ (401 | 403), .. } if self.needs_user_tokens() => self.rejected(status),
            other => other,
        }
    }

    /// The headers this server gets for the caller: its `${user.NAME}`
    /// templates filled with the user's tokens, and `X-MCPHub-User` with
    /// `forwardUser`; and the context key of those credentials
    /// (docs/decisions.md D3: `shared`, or `tok:` + digest of the `NAME=value` pairs injected).
    /// The hub key is never among them.
    ///
    /// Errors: `MissingToken` naming the tokens the caller has not set.
    pub fn credentials(&self, ctx: &CallContext) -> Result<Credentials, UpstreamError> {
        let mut headers = Vec::new();
        let mut context_key = None;
        if self.needs_user_tokens() {
            let missing = self.missing_tokens(ctx.user.as_deref());
            let user = match (missing.is_empty(), ctx.user.as_deref()) {
                (true, Some(u)) => u,
                _ => return Err(UpstreamError::MissingToken { server: self.config.name.clone(), tokens: missing }),
            };
            let token = |n: &str| user.token(n).map(|t| t.expose()).unwrap_or_default();
            headers.extend(self.user_headers(user));
            let injected: Vec<(&str, &str)> = self.config.user_tokens.iter().map(|t| (t.as_str(), token(t))).collect();
            context_key = Some(crate::store::context_key(&injected));
        }
        if let (true, Some(u)) = (self.config.forward_user, ctx.user.as_deref()) {
            headers.push(("X-MCPHub-User".to_string(), crate::users::Secret::new(u.name.clone())));
        }
        Ok(Credentials { headers, context_key: context_key.unwrap_or_else(|| "shared".to_string()) })
    }

    /// This server's `${user.NAME}` header templates filled with `user`'s
    /// tokens (a token not set fills in as empty).
    fn user_headers(&self, user: &crate::users::User) -> Vec<(String, crate::users::Secret)> {
        let token = |n: &str| user.token(n).map(|t| t.expose()).unwrap_or_default();
        let fill = |template: &String| {
            let mut value = template.clone();
            for t in &self.config.user_tokens {
                value = value.replace(&format!("${{user.{t}}}"), token(t));
            }
            value
        };
        self.config.user_headers.iter().map(|(h, template)| (h.clone(), crate::users::Secret::new(fill(template)))).collect()
    }

    /// Every value a request of `ctx` to this server carries that the hub
    /// put there (issue 14 hole 4): the configured header values (literal or
    /// `${env.*}`) and the credential part after their scheme word
    /// (`Bearer …`), the caller's tokens this server's templates name, and
    /// the header values filled with them. To remove from upstream text.
    fn injected(&self, ctx: &CallContext) -> scrub::Injected {
        let mut values: Vec<&str> = Vec::new();
        if let crate::config::TransportKind::Stdio(stdio) = &self.config.transport {
            values.extend(stdio.env.iter().map(|(_, v)| v.as_str()));
        }
        for (_, v) in &self.config.headers {
            values.push(v);
            if let Some((_, credential)) = v.split_once(' ') {
                values.push(credential.trim());
            }
        }
        let filled = match ctx.user.as_deref() {
            Some(user) if self.needs_user_tokens() => {
                values.extend(self.config.user_tokens.iter().filter_map(|t| user.token(t)).map(|t| t.expose()));
                self.user_headers(user)
            }
            _ => Vec::new(),
        };
        values.extend(filled.iter().map(|(_, v)| v.expose()));
        if let (true, Some(u)) = (self.config.forward_user, ctx.user.as_deref()) {
            values.push(&u.name);
        }
        scrub::Injected::new(values)
    }

    /// A call's result with its upstream text scrubbed ([`Upstream::injected`]):
    /// an error's detail, a final message's error strings; an event stream
    /// scrubs its own final message and read errors.
    fn scrub_outcome(&self, result: Result<Outcome, UpstreamError>, ctx: &CallContext) -> Result<Outcome, UpstreamError> {
        match result {
            Err(e) => Err(e.scrubbed(&self.injected(ctx))),
            Ok(Outcome::Done(mut m)) => {
                let erring = m.get("error").is_some() || crate::protocol::jsonrpc::at(&m, &["result", "isError"]) == Some(&Value::Bool(true));
                if erring {
                    self.injected(ctx).scrub_message(&mut m);
                }
                Ok(Outcome::Done(m))
            }
            Ok(Outcome::Streaming(mut call)) => {
                call.events.scrub_with(self.injected(ctx));
                Ok(Outcome::Streaming(call))
            }
        }
    }

    /// The upstream session key of a call, whether it is shared through the
    /// store, and the credential headers: the context key, or for
    /// `sessionSharing: "client"` and a legacy client session, `client:` +
    /// 16 hex of SHA-256 of the client's session id (local only: the client
    /// session lives in this process). A client without a session
    /// (2026-07-28) shares the context's session.
    fn session_key(&self, ctx: &CallContext) -> Result<(String, Scope, Credentials), UpstreamError> {
        let creds = self.credentials(ctx)?;
        // A session of a transport that lives in this process only (a stdio
        // process, issue 19) is never put in the shared store.
        let shared = if self.transport.shares_sessions() { Scope::Stored } else { Scope::Local };
        Ok(match (&self.config.session_sharing, &ctx.client_session) {
            (SessionSharing::Client, Some(id)) => (client_session_key(id), Scope::Local, creds),
            _ => (creds.context_key.clone(), shared, creds),
        })
    }

    /// A downstream client session ended: ends its `sessionSharing: "client"`
    /// upstream session here (HTTP DELETE). No-op for other servers.
    pub fn end_client_session(&self, client_session: &str) {
        if self.config.session_sharing != SessionSharing::Client {
            return;
        }
        if let Some(s) = self.sessions.take_local(&client_session_key(client_session)) {
            self.transport.delete(&s.headers());
        }
    }

    /// Ends the session of `context_key` (admin delete): dropped from the
    /// cache and the store, and DELETEd upstream so other instances still
    /// holding it heal on their next call. Returns its id, if there was one.
    pub fn drop_session(&self, context_key: &str) -> Option<String> {
        let s = self.sessions.remove(context_key)?;
        if s.id.is_some() {
            self.transport.delete(&s.headers());
        }
        s.id.clone().or_else(|| Some("none".into()))
    }

    /// Writes the locally cached shared sessions to the store again (after
    /// the store came back); returns how many were written.
    pub fn write_sessions_through(&self) -> usize {
        self.sessions.write_through()
    }

    fn next_id(&self) -> Value {
        json!(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// The remaining budget for one call: `min(hub deadline, server timeout)`.
    ///
    /// Errors: `HubTimeout` when the hub deadline has already passed.
    fn budget(&self, ctx: &CallContext) -> Result<Duration, UpstreamError> {
        let remaining = ctx.deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(UpstreamError::HubTimeout { server: self.config.name.clone(), timeout_ms: self.config.hub_timeout.as_millis() as u64 });
        }
        Ok(remaining.min(self.config.timeout))
    }

    /// The deadlines of a client's call starting now ([`transport::Deadline`]):
    /// the hub deadline, `timeoutMs`, and with `resetTimeoutOnProgress` (for
    /// a call with a handle, whose connection reads it) the extension up to
    /// `maxTotalTimeoutMs`.
    fn call_deadline(&self, ctx: &CallContext) -> Result<transport::Deadline, UpstreamError> {
        self.budget(ctx)?;
        let extend = ctx.call.as_ref().map(|h| h.read_deadline().clone());
        if let Some(cell) = &extend {
            cell.set(None); // a call of this handle before may have left one
        }
        let extend = extend.filter(|_| self.config.reset_timeout_on_progress).map(|cell| (self.config.max_total_timeout, cell));
        Ok(transport::Deadline::call(ctx.deadline, self.config.hub_timeout, self.config.timeout, extend))
    }

    /// The server's era: pinned, cached, or probed now (modern first; one
    /// probe at a time per server, the others wait for its result).
    ///
    /// Errors: the probe's transport error, or `Status` when the reply decides
    /// nothing (5xx, 429, 401/403, a non-MCP body); nothing is cached then.
    pub fn era(&self, ctx: &CallContext) -> Result<Era, UpstreamError> {
        if let Some(e) = *self.era.read() {
            return Ok(e);
        }
        let _probing = self.probe.lock();
        if let Some(e) = *self.era.read() {
            return Ok(e);
        }
        let budget = self.budget(ctx)?;
        let mut probe = era::probe_request(self.next_id(), ctx);
        if let Ok(c) = self.credentials(ctx) {
            probe.headers.extend(c.plain());
        }
        let mut probe_reply = None;
        let outcome = self.transport.post(&probe.body, &probe.headers, budget, &mut |_| {}).and_then(|r| {
            let era = era::classify_probe(&r).ok_or_else(|| UpstreamError::Status {
                server: self.config.name.clone(),
                status: r.status,
                detail: format!("the era probe (server/discover) was answered without an MCP answer: {}", r.excerpt),
            });
            probe_reply = r.message;
            era
        });
        let detected = match outcome.map_err(|e| self.classify(e)) {
            Ok(era) => era,
            // The caller's credential, not the server's health (issue 14).
            Err(e @ UpstreamError::Rejected { .. }) => return Err(e),
            Err(e) => {
                let e = e.scrubbed(&self.injected(ctx));
                self.record(Err(&e));
                return Err(e);
            }
        };
        if let Some(caps) = outcome_capabilities(&probe_reply) {
            *self.discovered.write() = Some(caps);
        }
        log::info!("upstream '{}' speaks the {} era", self.config.name, detected.as_str());
        *self.era.write() = Some(detected);
        self.state.write().era = Some(detected);
        self.start_modern_listener();
        Ok(detected)
    }

    /// The server's capabilities: a legacy session's `initialize` result
    /// (creating the session if needed), or a modern server's
    /// `server/discover` result (the probe's, else asked now and kept).
    pub fn server_capabilities(&self, ctx: &CallContext) -> Result<Value, UpstreamError> {
        match self.era(ctx)? {
            Era::Legacy => Ok(self.legacy_session(ctx)?.init_result.get("capabilities").cloned().unwrap_or_else(|| json!({}))),
            Era::Modern => {
                if let Some(c) = self.discovered.read().clone() {
                    return Ok(c);
                }
                let reply = self.request("server/discover", Map::new(), ctx, &[], &mut |_| {})?;
                let caps = outcome_capabilities(&Some(reply)).unwrap_or_else(|| json!({}));
                *self.discovered.write() = Some(caps.clone());
                Ok(caps)
            }
        }
    }

    fn record(&self, outcome: Result<(), &UpstreamError>) {
        if outcome.is_ok() {
            self.last_ok_ms.store(crate::store::now_ms(), Ordering::Relaxed);
        }
        if outcome.is_ok() && self.state.read().ok {
            return; // the common case takes no write lock
        }
        let mut s = self.state.write();
        match outcome {
            Ok(()) => {
                s.ok = true;
                s.last_error = None;
                s.last_error_class = None;
            }
            Err(e) => {
                s.ok = false;
                // Per-user credentials: the class only, never upstream text
                // (one user's failure must say nothing of their token; issue 14 hole 4).
                let class = e.class();
                s.last_error = Some(if self.needs_user_tokens() { class.clone() } else { e.to_string() });
                s.last_error_class = Some(class);
            }
        }
    }

    /// Sends one JSON-RPC request and returns the upstream's final response
    /// message (with `result` or `error`; its `id` is the hub's upstream id and
    /// should be replaced by the caller). `params` are sent as given apart from
    /// era adaptation: modern upstreams get `_meta` protocol version, client
    /// info and capabilities and the standard headers; legacy upstreams get
    /// the `io.modelcontextprotocol/*` keys removed from `_meta` and the session.
    ///
    /// `on_message` receives the notifications that arrive on an SSE answer
    /// before the final message; server→client requests there are refused
    /// (`-32601`). To relay them instead, use [`Upstream::request_open`].
    pub fn request(
        &self,
        method: &str,
        params: Map<String, Value>,
        ctx: &CallContext,
        extra_headers: &[(String, String)],
        on_message: &mut dyn FnMut(&Value),
    ) -> Result<Value, UpstreamError> {
        match self.request_open(method, params, ctx, extra_headers)? {
            Outcome::Done(message) => Ok(message),
            Outcome::Streaming(call) => self.finish_stream(call, on_message),
        }
    }

    /// Like [`Upstream::request`], but returns as soon as the answer's head is
    /// in: the final message of a JSON answer, or the open stream of an SSE
    /// answer for the caller to read (on a stream thread) and relay.
    ///
    /// One bulkhead slot for the whole call ([`crate::limits::bulkhead`]); a
    /// heavy tool first waits for one of its own slots (`heavyTools`: heavy
    /// jobs queue among themselves, never in front of other calls). Each
    /// attempt's outcome goes through [`retry::next`]: heal the legacy
    /// session and send again, hold the server (429/503) and send again
    /// once the hold ends, send again after a transport failure, or answer.
    pub fn request_open(
        &self,
        method: &str,
        params: Map<String, Value>,
        ctx: &CallContext,
        extra_headers: &[(String, String)],
    ) -> Result<Outcome, UpstreamError> {
        let heavy_permit = match (&self.heavy, method, params.get("name").and_then(Value::as_str)) {
            (Some(h), "tools/call", Some(tool)) if self.config.heavy_tools.matches(tool) => Some(Box::new(h.acquire(ctx.deadline)?)),
            _ => None,
        };
        let mut tally = retry::Tally::default();
        let mut permit = None;
        let mut legacy: Option<LegacyCall> = None;
        loop {
            if permit.is_none() {
                permit = Some(self.bulkhead.acquire(ctx.deadline)?);
            }
            let attempt = match self.era(ctx) {
                Ok(Era::Modern) => self.send_modern(method, params.clone(), ctx, extra_headers).map(|a| (a, None)),
                Ok(Era::Legacy) => self.send_legacy(method, &params, ctx, &mut legacy).map(|(a, s)| (a, Some(s))),
                Err(e) => Err(e),
            }
            .map_err(|e| self.classify(e));
            let seen = match &attempt {
                Ok((Answer::Reply(reply), session)) => {
                    retry::seen(reply, session.as_ref().map(|s| s.session.has_answered()), std::time::SystemTime::now())
                }
                Ok((Answer::Stream(_), _)) => retry::Seen::Answer,
                Err(UpstreamError::Transport { sent, .. }) => retry::Seen::TransportFailed { sent: *sent },
                Err(_) => retry::Seen::Failed,
            };
            // Not executed (429/503): the server's new calls wait too
            // (docs/decisions.md D7), and this attempt's error is `Overloaded`.
            let busy = match (seen, &attempt) {
                (retry::Seen::Busy { wait }, Ok((Answer::Reply(reply), _))) => {
                    self.bulkhead.hold(wait);
                    log::info!("upstream '{}' answered HTTP {}: holding its calls for {} ms", self.config.name, reply.status, wait.as_millis());
                    Some(UpstreamError::Overloaded {
                        server: self.config.name.clone(),
                        retry_after_secs: crate::limits::bulkhead::whole_secs(wait),
                        reason: "upstream_busy",
                        cause: format!("it answered HTTP {}", reply.status),
                    })
                }
                _ => None,
            };
            let call = retry::Call {
                left: ctx.deadline.saturating_duration_since(Instant::now()),
                cut: ctx.call.as_ref().is_some_and(|h| h.is_cut()),
                repeatable: matches!(seen, retry::Seen::TransportFailed { sent: true })
                    && self.transport.resends_after_failure()
                    && self.retry_safe(method, &params),
            };
            let next = retry::next(seen, &call, &tally);
            if let (retry::Seen::Answer, Ok((_, Some(sent)))) = (seen, &attempt) {
                sent.session.mark_answered();
            }
            let result = match (busy, attempt) {
                (Some(e), _) | (None, Err(e)) => Err(e),
                (None, Ok((Answer::Reply(reply), Some(sent)))) if next == retry::Next::Heal => {
                    if let Some(l) = &legacy {
                        self.sessions.invalidate(&l.key, &sent.session, &format!("HTTP {}", reply.status));
                    }
                    match seen {
                        retry::Seen::SessionExpired { answered: true } => tally.expiries += 1,
                        _ => tally.heals += 1,
                    }
                    continue; // the same slot: the request was not executed
                }
                (None, Ok((answer, session))) => {
                    if let retry::Seen::SessionExpired { .. } = seen {
                        log::warn!(
                            "upstream '{}' kept answering with unknown sessions ({} re-established in one request, {} of them after it had answered on them)",
                            self.config.name,
                            tally.heals + tally.expiries,
                            tally.expiries
                        );
                    }
                    let (headers, answerable) = session.map_or((Vec::new(), false), |s| (s.headers, true));
                    self.outcome(answer, headers, answerable).map_err(|e| self.classify(e))
                }
            };
            let result = self.scrub_outcome(result, ctx);
            let mut slot = permit.take().expect("acquired above");
            slot.record(match &result {
                Ok(_)
                | Err(
                    UpstreamError::Status { .. } | UpstreamError::Protocol { .. } | UpstreamError::Overloaded { .. } | UpstreamError::Rejected { .. },
                ) => Some(true),
                Err(UpstreamError::Transport { sent: false, .. }) => Some(false),
                Err(_) => None,
            });
            match next {
                retry::Next::Resend => {
                    tally.resends += 1;
                    log::debug!("{method} to '{}' failed in transit; sending it again", self.config.name);
                    continue;
                }
                retry::Next::Hold(_) => {
                    tally.holds += 1;
                    continue; // the next acquire waits out the hold
                }
                _ => {}
            }
            // A rejected credential is one caller's, not the server's health:
            // the server answered (issue 14: it affects no one else).
            self.record(match &result {
                Err(UpstreamError::Rejected { .. }) => Ok(()),
                other => other.as_ref().map(|_| ()),
            });
            return result.map(|outcome| match outcome {
                Outcome::Streaming(mut call) => {
                    call.permit = Some(Box::new((slot, heavy_permit)));
                    Outcome::Streaming(call)
                }
                done => done,
            });
        }
    }

    /// Reads a call's stream to its final message; notifications go to
    /// `on_message`, server→client requests are refused.
    pub fn finish_stream(&self, call: CallStream, on_message: &mut dyn FnMut(&Value)) -> Result<Value, UpstreamError> {
        let reply = self.transport.drain(call.events, &call.session_headers, on_message)?;
        self.final_message(reply)
    }

    /// Answers a server→client request of a call's stream with the client's
    /// (id-restored) response, on that call's session.
    pub fn answer(&self, session_headers: &[(String, String)], response: &Value, budget: Duration) {
        self.transport.answer(response, session_headers, budget.min(transport::ANSWER_BUDGET));
    }

    /// Tells the server a call was cancelled, after its connection was cut:
    /// legacy servers get `notifications/cancelled` with the upstream request
    /// id on the session (2025-11-25 cancellation); for a 2026-07-28 server the
    /// closed stream already said it.
    pub fn notify_cancelled(&self, handle: &cancel::CallHandle, reason: &str) {
        let Some(call) = handle.upstream_call().filter(|c| c.legacy) else { return };
        let note = jsonrpc::notification("notifications/cancelled", json!({"requestId": call.id, "reason": reason}));
        self.transport.answer(&note, &call.session_headers, transport::ANSWER_BUDGET);
    }

    /// A client's call ran out of time (`error` is `Timeout` or `HubTimeout`):
    /// logs the cause (one info line: server, method, layer, ms) and cancels
    /// upstream: the connection is already closed (ureq drops it on a
    /// timeout; the 2026-07-28 signal); a legacy server also gets
    /// `notifications/cancelled`, sent from a short-lived thread (at most
    /// [`MAX_CANCEL_NOTES`] at once, else inline) so the client's answer does
    /// not wait for it.
    pub fn timed_out(&self, handle: Option<&Arc<cancel::CallHandle>>, error: &UpstreamError) {
        let Some(layer) = error.timeout_layer() else { return };
        let call = handle.and_then(|h| h.upstream_call());
        let method = call.as_ref().map_or("?", |c| c.method.as_str());
        let ms = match error {
            UpstreamError::Timeout { timeout_ms, .. } | UpstreamError::HubTimeout { timeout_ms, .. } => *timeout_ms,
            _ => 0,
        };
        log::info!("request timed out: server '{}', method {method}, layer {layer}, {ms} ms", self.config.name);
        let Some(handle) = handle.filter(|_| call.is_some_and(|c| c.legacy)).cloned() else { return };
        static IN_FLIGHT: AtomicU64 = AtomicU64::new(0);
        let room = IN_FLIGHT.fetch_add(1, Ordering::SeqCst) < MAX_CANCEL_NOTES;
        let Some(me) = self.me.upgrade().filter(|_| room) else {
            IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
            return self.notify_cancelled(&handle, "timed out");
        };
        // One POST within its answer budget: counted, detached.
        let spawned = self.threads().spawn("cancel-note", crate::threads::Kind::Call, move || {
            me.notify_cancelled(&handle, "timed out");
            IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
        });
        if spawned.is_err() {
            IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Refuses a server→client request naming `why`
    /// ([`transport::Refusal`]), if the server's era allows answering at all (legacy).
    pub fn refuse(&self, call: &CallStream, request: &Value, why: transport::Refusal<'_>) {
        if call.answerable {
            self.transport.refuse(request, &call.session_headers, call.events.remaining(), why);
        }
    }

    fn outcome(&self, answer: Answer, session_headers: Vec<(String, String)>, answerable: bool) -> Result<Outcome, UpstreamError> {
        match answer {
            Answer::Reply(reply) => self.final_message(reply).map(Outcome::Done),
            Answer::Stream(events) => Ok(Outcome::Streaming(CallStream { events, session_headers, answerable, permit: None })),
        }
    }

    /// One attempt of a call to a 2026-07-28 server: `_meta` and the standard
    /// headers added, sent within the call's deadline. A modern stream is not
    /// answerable (2026-07-28 clients never POST responses).
    fn send_modern(
        &self,
        method: &str,
        mut params: Map<String, Value>,
        ctx: &CallContext,
        extra_headers: &[(String, String)],
    ) -> Result<Answer, UpstreamError> {
        let meta = params.entry("_meta").or_insert_with(|| json!({}));
        if !meta.is_object() {
            *meta = json!({});
        }
        if let Some(m) = meta.as_object_mut() {
            m.insert(protocol::META_PROTOCOL_VERSION.into(), json!(MODERN_VERSION));
            m.insert(protocol::META_CLIENT_INFO.into(), ctx.client_info.clone().unwrap_or_else(hub_client_info));
            // The hub decides what is relayed (hub::Downstream::call_context); never a non-object.
            let caps = ctx.client_capabilities.clone().filter(Value::is_object).unwrap_or_else(|| json!({}));
            m.insert(protocol::META_CLIENT_CAPABILITIES.into(), caps);
            if let Some(level) = &ctx.log_level {
                m.entry(protocol::META_LOG_LEVEL).or_insert_with(|| json!(level));
            }
            // The downstream request's W3C trace context (crate::trace, SEP-414 keys);
            // a client's own `_meta` values are kept.
            crate::trace::with(|t| {
                if let Some(tp) = t.and_then(|t| t.traceparent.as_ref()) {
                    if !m.contains_key(crate::trace::META_TRACEPARENT) {
                        m.insert(crate::trace::META_TRACEPARENT.into(), json!(tp));
                        if let Some(ts) = t.and_then(|t| t.tracestate.as_ref()) {
                            m.insert(crate::trace::META_TRACESTATE.into(), json!(ts));
                        }
                    }
                }
            });
        }
        let creds = self.credentials(ctx)?;
        let mut hdrs = headers::standard(MODERN_VERSION, method, &params);
        hdrs.extend(extra_headers.iter().cloned());
        hdrs.extend(creds.plain());
        let upstream_id = self.next_id();
        if let Some(h) = &ctx.call {
            h.record_call(cancel::UpstreamCall { id: upstream_id.clone(), session_headers: Vec::new(), legacy: false, method: method.into() });
        }
        let body = jsonrpc::request(&upstream_id, method, Value::Object(params));
        let _bound = ctx.call.as_ref().map(cancel::bind);
        self.transport.post_call(&body, &hdrs, self.call_deadline(ctx)?)
    }

    /// One attempt of a call to a legacy server, on the session of the
    /// caller's context (created or adopted once, single-flight); `legacy`
    /// keeps the context key and the body across the call's attempts (a heal
    /// changes only the session and the id).
    fn send_legacy(
        &self,
        method: &str,
        params: &Map<String, Value>,
        ctx: &CallContext,
        legacy: &mut Option<LegacyCall>,
    ) -> Result<(Answer, SentOn), UpstreamError> {
        let l = match legacy {
            Some(l) => l,
            None => {
                let mut params = params.clone();
                strip_modern_meta(&mut params);
                let (key, scope, creds) = self.session_key(ctx)?;
                legacy.insert(LegacyCall { key, scope, creds, body: jsonrpc::request(&Value::Null, method, Value::Object(params)) })
            }
        };
        let session = self.legacy_session_at(&l.key, l.scope, &l.creds, ctx)?;
        self.sessions.applied(&session);
        let upstream_id = self.next_id();
        let headers = self.for_caller(session.headers(), ctx);
        if let Some(h) = &ctx.call {
            h.record_call(cancel::UpstreamCall { id: upstream_id.clone(), session_headers: headers.clone(), legacy: true, method: method.into() });
        }
        l.body["id"] = upstream_id;
        let answer = {
            let _bound = ctx.call.as_ref().map(cancel::bind);
            self.transport.post_call(&l.body, &headers, self.call_deadline(ctx)?)?
        };
        Ok((answer, SentOn { session, headers }))
    }

    /// A legacy session's headers for one call: the session's (its context's
    /// credentials), with `X-MCPHub-User` naming this call's user when
    /// `forwardUser` is on. A session shared by a context is created by one
    /// of its users and keeps that user's headers; without this, the other
    /// users' calls would carry the creator's name.
    fn for_caller(&self, mut headers: Vec<(String, String)>, ctx: &CallContext) -> Vec<(String, String)> {
        if !self.config.forward_user {
            return headers;
        }
        headers.retain(|(k, _)| !k.eq_ignore_ascii_case("X-MCPHub-User"));
        if let Some(u) = ctx.user.as_deref() {
            headers.push(("X-MCPHub-User".to_string(), u.name.clone()));
        }
        headers
    }

    /// The legacy session for this call's context, created once (single-flight).
    fn legacy_session(&self, ctx: &CallContext) -> Result<Arc<LegacySession>, UpstreamError> {
        let (key, scope, creds) = self.session_key(ctx)?;
        self.legacy_session_at(&key, scope, &creds, ctx).map_err(|e| e.scrubbed(&self.injected(ctx)))
    }

    fn legacy_session_at(&self, key: &str, scope: Scope, creds: &Credentials, ctx: &CallContext) -> Result<Arc<LegacySession>, UpstreamError> {
        let mut fresh = false;
        let session = self.sessions.get_or_create(key, scope, ctx.deadline, &creds.headers, || {
            fresh = true;
            let budget = self.budget(ctx)?;
            session::initialize(self.transport.as_ref(), &self.config.name, key, &creds.headers, self.next_id(), budget)
        })?;
        if fresh {
            // Created or adopted from the store by this call: listen on it.
            // A `client:` session belongs to one downstream client session.
            // Its owner's first call waits (briefly) for the GET stream: an
            // SDK server drops what it sends on a standalone stream nobody has open.
            let owner = ctx.client_session.clone().filter(|_| key.starts_with("client:"));
            let waits = owner.is_some();
            if let (Some(ready), true) = (self.listen(&session, owner), waits) {
                let _ = ready.recv_timeout(LISTEN_READY_WAIT.min(ctx.deadline.saturating_duration_since(Instant::now())));
            }
        }
        Ok(session)
    }

    /// Sets the owner this upstream starts its threads with (once; the
    /// hub's, [`crate::threads`]): GET and `subscriptions/listen` streams
    /// (owned, joined at shutdown) and cancel notes (counted, detached).
    /// Without one, the upstream has an owner of its own.
    pub fn attach_threads(&self, threads: crate::threads::Threads) {
        self.transport.attach_threads(threads.clone());
        let _ = self.threads.set(threads);
    }

    fn threads(&self) -> &crate::threads::Threads {
        self.threads.get_or_init(crate::threads::Threads::new)
    }

    /// Sets where notifications from listening streams go (once). A server
    /// pinned modern starts its `subscriptions/listen` stream now, a probed
    /// one as soon as its era is known ([`listen`]).
    pub fn set_notification_sink(&self, sink: NotificationSink) {
        let _ = self.on_notification.set(sink);
        self.start_modern_listener();
    }

    /// Sets where server→client requests on a `sessionSharing: "client"`
    /// session's GET stream go (once); without it they are refused.
    pub fn set_request_sink(&self, sink: RequestSink) {
        let _ = self.on_request.set(sink);
    }

    /// Listens on a new legacy session's standalone GET stream for
    /// notifications sent outside any call (`list_changed`,
    /// `resources/updated`), on a thread of its own: reconnects after a
    /// break (backing off by [`retry::reconnect_backoff`], like the modern
    /// listener, without giving up), stops when the server
    /// offers no GET stream (405) or the session is replaced.
    ///
    /// Server→client requests there are related to no call (an SDK sends a
    /// request there when the tool did not relate it to its request: the
    /// TypeScript SDK's `server.createMessage()` without `relatedRequestId`,
    /// the Python SDK's `session.create_message()` without
    /// `related_request_id`). On a session that belongs to one client
    /// (`owner`, `sessionSharing: "client"`) they go to that client
    /// ([`RequestSink`]); on a shared session the hub cannot tell whose they
    /// are and refuses them ([`transport::Refusal::Unattributable`], issue 21).
    ///
    /// Returns a receiver that gets `()` once the first GET has been
    /// answered (stream open, or refused); `None` when nothing listens.
    fn listen(&self, session: &Arc<LegacySession>, owner: Option<String>) -> Option<std::sync::mpsc::Receiver<()>> {
        let (Some(me), Some(sink)) = (self.me.upgrade(), self.on_notification.get().cloned()) else { return None };
        let on_request = self.on_request.get().cloned();
        let (ready_tx, ready) = std::sync::mpsc::sync_channel(1);
        let alive = Arc::downgrade(session);
        let headers = session.headers();
        let name = format!("listen-{}", self.config.name);
        let spawned = self.threads().spawn_owned(&name, crate::threads::Kind::Listen, move |stop| {
            let mut failures = 0u32;
            while alive.upgrade().is_some() && !stop.is_stopped() {
                let opened = me.transport.listen(&headers);
                let _ = ready_tx.try_send(());
                match opened {
                    Ok(None) => {
                        log::debug!("upstream '{}' offers no GET stream; list changes arrive by TTL", me.name());
                        return;
                    }
                    Ok(Some(mut stream)) => {
                        failures = 0;
                        while let Ok(Some(item)) = stream.next_item() {
                            match item {
                                transport::StreamItem::Notification(n) => sink(me.name(), &n),
                                transport::StreamItem::Request(r) => me.standalone_request(r, owner.as_deref(), on_request.as_ref(), &headers),
                                transport::StreamItem::Final(_) => {}
                            }
                            if alive.upgrade().is_none() || stop.is_stopped() {
                                return;
                            }
                        }
                        failures += 1;
                    }
                    Err(e) => {
                        log::debug!("GET stream of '{}' failed: {e}", me.name());
                        failures += 1;
                    }
                }
                if stop.sleep(retry::reconnect_backoff(failures)) {
                    return;
                }
            }
        });
        if let Err(e) = spawned {
            log::warn!("cannot start the GET listener of '{}': {e}", self.config.name);
            return None;
        }
        Some(ready)
    }

    /// A server→client request from a legacy session's GET stream (see
    /// [`Upstream::listen`]): to the session's owner through `sink`, else refused.
    fn standalone_request(self: &Arc<Self>, request: Value, owner: Option<&str>, sink: Option<&RequestSink>, headers: &[(String, String)]) {
        use transport::Refusal;
        let why = match (owner, sink) {
            (Some(client), Some(sink)) => match sink(self, client, headers, request.clone()) {
                Ok(()) => return,
                Err(why) => Refusal::Client(why),
            },
            (Some(_), None) => Refusal::Hub("no relay for requests on the standalone stream"),
            (None, _) => Refusal::Unattributable(
                "it came on the upstream session's standalone (GET) stream, related to no request, and that session is shared by all of the hub's clients",
            ),
        };
        self.transport.refuse(&request, headers, transport::ANSWER_BUDGET, why);
    }

    fn final_message(&self, reply: HttpReply) -> Result<Value, UpstreamError> {
        // Even with a JSON-RPC body: the status says the caller's credential
        // was refused, and the upstream's text may repeat it.
        if matches!(reply.status, 401 | 403) && self.needs_user_tokens() {
            return Err(self.rejected(reply.status));
        }
        match reply.message {
            Some(m) => Ok(m),
            None => Err(UpstreamError::Status {
                server: self.config.name.clone(),
                status: reply.status,
                detail: reply.excerpt,
            }),
        }
    }

    /// A config reload stopped serving this upstream (its entry was removed,
    /// or changed and a new upstream replaces it): its `subscriptions/listen`
    /// stream is cut, [`Upstream::is_retired`] turns true (the hub drops what
    /// it still hears from it), and unless `keep_stored` its sessions leave
    /// the store so a replacement under the same name creates its own rather
    /// than adopting them (as after a restart with the memory store). Calls
    /// in flight go on; [`Upstream::close_sessions`] ends the sessions once
    /// they are done ([`Upstream::calls_in_flight`]).
    pub fn retire(&self, keep_stored: bool) {
        self.retired.store(true, Ordering::Relaxed);
        self.listen_watch.stop();
        if !keep_stored {
            let forgotten = self.sessions.forget_stored();
            log::debug!("'{}' retired: {forgotten} upstream sessions left the store", self.config.name);
        }
    }

    /// Whether a config reload retired this upstream ([`Upstream::retire`]).
    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Relaxed)
    }

    /// Calls holding or waiting for a slot of this server's bulkheads (every
    /// upstream call takes one before it is sent; a streamed answer holds it
    /// until the stream is dropped).
    pub fn calls_in_flight(&self) -> usize {
        let count = |b: &crate::limits::bulkhead::Bulkhead| {
            let s = b.snapshot();
            s.in_flight + s.queued
        };
        count(&self.bulkhead) + self.heavy.as_deref().map_or(0, count)
    }

    /// At shutdown: ends this process's legacy sessions on the server (HTTP
    /// DELETE), except, when `keep_stored`, the ones kept in a shared store
    /// (the next start or another instance reuses them); and stops its
    /// `subscriptions/listen` stream (cut, not reopened).
    pub fn close_sessions(&self, keep_stored: bool) {
        self.listen_watch.stop();
        if !self.transport.shares_sessions() {
            // Its sessions are its processes: stopped together, waited for.
            drop(self.sessions.drain());
            self.transport.shutdown();
            return;
        }
        for session in self.sessions.drain() {
            if session.id.is_some() && !(keep_stored && session.stored) {
                self.transport.delete(&session.headers());
            }
        }
    }
}

/// Most `notifications/cancelled` for timed-out calls sent at once from
/// their own threads ([`Upstream::timed_out`]); beyond, they are sent inline.
pub const MAX_CANCEL_NOTES: u64 = 32;

/// Longest wait of a `sessionSharing: "client"` session's first call for the
/// session's GET stream to open (see [`Upstream::listen`]).
pub const LISTEN_READY_WAIT: Duration = Duration::from_secs(2);

/// The key of a `sessionSharing: "client"` session: `client:` + 16 hex of
/// SHA-256 of the downstream session id (the id itself is a bearer secret).
pub fn client_session_key(client_session: &str) -> String {
    use sha2::{Digest, Sha256};
    format!("client:{}", &hex::encode(Sha256::digest(client_session.as_bytes()))[..16])
}

/// `result.capabilities` of a `server/discover` answer.
fn outcome_capabilities(message: &Option<Value>) -> Option<Value> {
    crate::protocol::jsonrpc::at(message.as_ref()?, &["result", "capabilities"]).cloned()
}

/// Removes the 2026-07-28 `_meta` keys a legacy server does not know
/// (`io.modelcontextprotocol/*`); drops `_meta` when nothing else is left.
pub fn strip_modern_meta(params: &mut Map<String, Value>) {
    if let Some(Value::Object(meta)) = params.get_mut("_meta") {
        meta.retain(|k, _| !k.starts_with("io.modelcontextprotocol/"));
        if meta.is_empty() {
            params.remove("_meta");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modern_meta_keys_are_stripped_for_legacy_servers() {
        let mut p = json!({"name": "x", "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "progressToken": 3}})
            .as_object()
            .cloned()
            .unwrap();
        strip_modern_meta(&mut p);
        assert_eq!(Value::Object(p.clone()), json!({"name": "x", "_meta": {"progressToken": 3}}));
        let mut q = json!({"_meta": {"io.modelcontextprotocol/clientInfo": {}}}).as_object().cloned().unwrap();
        strip_modern_meta(&mut q);
        assert!(q.is_empty());
    }

    #[test]
    fn capabilities_needing_a_relay_are_not_declared_upstream() {
        let client = json!({"sampling": {}, "elicitation": {"form": {}}, "roots": {"listChanged": true}, "experimental": {"x": 1}});
        assert_eq!(relayable_capabilities(Some(&client)), json!({"experimental": {"x": 1}}));
        assert_eq!(relayable_capabilities(None), json!({}));
        assert_eq!(relayable_capabilities(Some(&json!("junk"))), json!({}));
    }

    fn upstream(headers: Value) -> Arc<Upstream> {
        let text = json!({"mcpServers": {"gh": {"url": "http://127.0.0.1:9/mcp", "protocol": "modern", "headers": headers}}});
        let cfg = crate::config::Config::parse(&text.to_string()).unwrap();
        let store: Arc<dyn SessionStore> = Arc::new(crate::store::memory::MemoryStore::new());
        Arc::new_cyclic(|me| Upstream::new(cfg.servers[0].clone(), 1, store, Duration::from_secs(60), me.clone()))
    }

    #[test]
    fn a_401_or_403_under_user_tokens_names_the_server_and_token_never_the_upstream_text() {
        let per_user = upstream(json!({"Authorization": "Bearer ${user.GITHUB_TOKEN}"}));
        let shared = upstream(json!({"Authorization": "Bearer static"}));
        let body = json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32000, "message": "401 invalid credentials: Bearer ghp_secret"}});
        let reply = |status| HttpReply { status, session_id: None, message: Some(body.clone()), excerpt: String::new(), retry_after: None };
        let e = per_user.final_message(reply(401)).unwrap_err();
        assert_eq!(e.to_string(), "server 'gh' rejected your GITHUB_TOKEN (HTTP 401): update it with PUT /api/me/tokens/GITHUB_TOKEN");
        let obj = crate::hub::refusal::upstream_error(&e);
        assert_eq!(obj.data.unwrap(), json!({"server": "gh", "status": 401, "rejectedTokens": ["GITHUB_TOKEN"]}));
        assert!(!obj.message.contains("ghp_secret"));
        // an era probe's or initialize's bare 403 too
        let status = UpstreamError::Status { server: "gh".into(), status: 403, detail: "forbidden".into() };
        assert!(matches!(per_user.classify(status), UpstreamError::Rejected { status: 403, .. }));
        // a server without per-user credentials: its answer passes as before
        assert_eq!(shared.final_message(reply(401)).unwrap(), body);
        let status = UpstreamError::Status { server: "gh".into(), status: 401, detail: String::new() };
        assert!(matches!(shared.classify(status), UpstreamError::Status { status: 401, .. }));
    }
}
