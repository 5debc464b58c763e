//! Every refusal the hub makes to a `/mcp` client, in one place (issue 15
//! item 4): one [`Refusal`] variant per reason, and one mapping
//! ([`Refusal::shape`]) to its HTTP status, JSON-RPC error (code, message,
//! data) and extra headers (`Retry-After`, `WWW-Authenticate`). Where the
//! client's era matters the variant carries it. docs/errors.md lists the
//! table; the unit test below is its spec.
//!
//! Errors the hub only relays (an upstream's own JSON-RPC error) pass
//! through unchanged; their HTTP status is still chosen here
//! ([`relayed_status`]).

use super::auth::KeyRefusal;
use super::tasks::TaskLimit;
use crate::http::Response;
use crate::limits::{Limited, Scope};
use crate::protocol::{codes, era, Era, ErrorObject};
use crate::upstream::UpstreamError;
use serde_json::{json, Value};

/// The timeout code of the hub and its upstreams (`-32001` "Request timed out").
pub const TIMEOUT: i64 = -32001;

/// `Retry-After` seconds of [`Refusal::SessionsFull`].
pub const SESSIONS_FULL_RETRY_AFTER_SECS: u64 = 5;

/// A refusal of the hub to a client's request.
#[derive(Debug)]
pub enum Refusal {
    // ---- the /mcp edge (hub/mod.rs, hub/auth.rs) ----
    /// A body that is not one JSON-RPC message: the `-32700` / `-32600`
    /// error `protocol::jsonrpc::parse` gives. 400.
    Malformed(ErrorObject),
    /// An `Origin` header the hub does not allow. 403, the message without an id.
    ForbiddenOrigin,
    /// No, an unknown or a wrongly sent hub key (401 + `WWW-Authenticate`),
    /// or a user store that cannot be read (503 + `Retry-After`).
    Key(KeyRefusal),
    /// An OAuth access token without the scope the method needs (issue 18:
    /// `tools/call` needs `mcp`). 403 + `WWW-Authenticate: Bearer
    /// error="insufficient_scope", scope="mcp"` (RFC 6750 §3.1; MCP
    /// authorization "Scope Challenge Handling"); the `/mcp` edge adds
    /// `resource_metadata`.
    InsufficientScope,
    /// Too many failed authentications from the client's address. 429 + `Retry-After`.
    AuthThrottled {
        /// Until the address is admitted again.
        retry_after_secs: u64,
    },
    /// A rate limit (global, user or server). 429 + `Retry-After`.
    RateLimited(Limited),
    /// A legacy request (not `initialize`) without `Mcp-Session-Id`. 400.
    SessionIdMissing,
    /// A legacy `DELETE` without `Mcp-Session-Id`. 400.
    DeleteSessionIdMissing,
    /// An unknown, expired or another user's legacy session. 404.
    SessionNotFound,
    /// A legacy `DELETE` of an unknown, expired or another user's session. 404.
    DeleteSessionNotFound,
    /// A `Last-Event-ID` naming no stream of the session. 404.
    UnknownEventId,
    /// A protocol version the hub does not speak. 400, `-32022`.
    UnsupportedVersion {
        /// The version the request named.
        requested: String,
    },
    /// A 2026-07-28 request without its per-request `_meta` (SEP-2575). 400, `-32602`.
    MissingRequestMeta(String),
    /// 2026-07-28 headers that disagree with the body (`-32020`, built by
    /// `protocol::headers`). 400.
    HeaderMismatch(ErrorObject),

    // ---- methods (hub/methods.rs, hub/listen.rs) ----
    /// An unknown method, or one the client's era does not have: 404 for a
    /// modern client (2026-07-28 streamable-http), 200 for a legacy one.
    MethodNotFound {
        /// The method as sent.
        method: String,
        /// The client's era.
        era: Era,
    },
    /// Missing or wrong params (`-32602` with the message). 200.
    InvalidParams(String),
    /// A resource URI no server owns (2026-07-28, SEP-2164: `data.uri`). 200.
    UnknownResource {
        /// The URI as sent.
        uri: String,
    },
    /// `initialize` while the hub holds its maximum of client sessions. 503 + `Retry-After: 5`.
    SessionsFull(String),
    /// The answer to a call its client cancelled (it ignores it). 200.
    Cancelled,
    /// `subscriptions/listen` from a client that does not accept `text/event-stream`. 406.
    ListenNeedsEventStream,
    /// An upstream failure: 503 + `Retry-After` when overloaded or its
    /// circuit is open, 200 otherwise.
    Upstream(UpstreamError),

    // ---- tasks (hub/tasks.rs, hub/tasks/) ----
    /// A modern `tasks/*` request without the tasks extension in its capabilities. 400, `-32021`.
    TasksExtensionMissing,
    /// An unknown task id, or another owner's task. 200, `-32602`.
    TaskNotFound,
    /// A task cap (`maxTasksPerUser`, `maxTasksPerSession`, `maxTasks`). 200, `-32000`.
    TaskLimit(TaskLimit),
    /// A hub-run task whose thread could not be started. 200, `-32603`.
    TaskNotStarted,
    /// A legacy `tasks/cancel` of a task that has ended. 200, `-32602`.
    TaskTerminal {
        /// Its status: completed, failed or cancelled.
        status: String,
    },
    /// A cancellation the store could not record. 200, `-32603`.
    TaskCancelFailed(String),

    // ---- client input across the eras (hub/mrtr.rs) ----
    /// An upstream's `InputRequiredResult` a legacy client cannot be asked
    /// about (no event stream on this request). `-32600`.
    InputNeedsEventStream {
        /// The methods the upstream asked for.
        methods: Vec<String>,
    },
    /// An upstream that asked for input more than the hub's round limit. `-32603`.
    InputRoundsExceeded {
        /// The limit.
        max: usize,
    },
    /// An upstream's `inputRequests` that is not a map of requests. `-32603`.
    InputRequestsMalformed,
    /// An upstream that asked for a kind of input MCP does not have. `-32603`.
    InputUnknown {
        /// The method it asked for.
        method: String,
    },
    /// An upstream that needs a capability the legacy client did not declare. `-32021`.
    InputCapabilityMissing {
        /// `sampling`, `elicitation` or `roots`.
        capability: String,
        /// The method it asked for.
        method: String,
    },
    /// Too many client answers awaited hub-wide. `-32000`.
    InputAwaitedFull,
    /// The hub deadline ran out waiting for the client's input. `-32001`.
    InputTimeout,
    /// The client answered an input request with an error (its code passed on).
    InputRefused {
        /// The client's error code.
        code: i64,
        /// The method it was asked.
        method: String,
        /// The client's message.
        message: String,
    },
    /// A client answer with neither result nor error. `-32600`.
    InputAnswerEmpty,
    /// A modern retry whose `requestState` names no parked call of its own. `-32602`.
    RequestStateInvalid,
    /// Too many calls parked for client input hub-wide. `-32000`.
    ParkedFull,
}

/// What a [`Refusal`] is on the wire: the HTTP status of its answer, its
/// JSON-RPC error and the extra headers.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    /// The HTTP status (200 when the error travels in a normal answer).
    pub status: u16,
    /// The JSON-RPC error.
    pub error: ErrorObject,
    /// Extra headers (name, value).
    pub headers: Vec<(&'static str, String)>,
}

fn shape(status: u16, error: ErrorObject) -> Shape {
    Shape { status, error, headers: Vec::new() }
}

fn retry_after(mut s: Shape, secs: u64) -> Shape {
    s.headers.push(("Retry-After", secs.to_string()));
    s
}

impl Refusal {
    /// The refusal's HTTP status, JSON-RPC error and extra headers: the table
    /// of docs/errors.md.
    pub fn shape(&self) -> Shape {
        use Refusal::*;
        let invalid_request = |status, msg: &str| shape(status, ErrorObject::new(codes::INVALID_REQUEST, msg));
        match self {
            Malformed(e) => shape(400, e.clone()),
            ForbiddenOrigin => invalid_request(403, "Forbidden: Origin not allowed"),
            Key(KeyRefusal::StoreUnavailable) => {
                let secs = super::auth::STORE_RETRY_AFTER_SECS;
                let data = json!({"httpStatus": 503, "retry_after_seconds": secs, "reason": "user_store_unavailable"});
                retry_after(shape(503, ErrorObject::with_data(codes::SERVER_ERROR, KeyRefusal::StoreUnavailable.message(), data)), secs)
            }
            Key(k) => {
                let mut s = shape(401, ErrorObject::with_data(codes::SERVER_ERROR, k.message(), json!({"httpStatus": 401})));
                let challenge = if *k == KeyRefusal::InvalidToken { "Bearer realm=\"mcphub\", error=\"invalid_token\"" } else { "Bearer realm=\"mcphub\"" };
                s.headers.push(("WWW-Authenticate", challenge.into()));
                s
            }
            InsufficientScope => {
                let msg = "Forbidden: this OAuth access token lacks the 'mcp' scope that tools/call needs; authorize again with scope 'mcp'";
                let mut s = shape(403, ErrorObject::with_data(codes::SERVER_ERROR, msg, json!({"httpStatus": 403, "requiredScope": "mcp"})));
                s.headers.push(("WWW-Authenticate", "Bearer realm=\"mcphub\", error=\"insufficient_scope\", scope=\"mcp\"".into()));
                s
            }
            AuthThrottled { retry_after_secs: secs } => {
                let msg = format!("Too many failed authentications from this address: retry after {secs} s (check the MCPHub key you send)");
                let data = json!({"httpStatus": 429, "retry_after_seconds": secs, "reason": "auth_failures"});
                retry_after(shape(429, ErrorObject::with_data(codes::SERVER_ERROR, msg, data)), *secs)
            }
            RateLimited(l) => {
                let mut data = json!({"retry_after_seconds": l.retry_after_secs(), "scope": l.scope.as_str()});
                if let (Scope::Server, Some(s)) = (l.scope, &l.server) {
                    data["server"] = json!(s);
                }
                retry_after(shape(429, ErrorObject::with_data(codes::SERVER_ERROR, "Rate limit exceeded", data)), l.retry_after_secs())
            }
            SessionIdMissing => invalid_request(400, "Bad Request: Mcp-Session-Id header is required (send initialize first)"),
            DeleteSessionIdMissing => invalid_request(400, "Bad Request: Mcp-Session-Id header is required"),
            SessionNotFound => invalid_request(404, "Session not found or expired; initialize again"),
            DeleteSessionNotFound => invalid_request(404, "Session not found"),
            UnknownEventId => invalid_request(404, "Unknown or expired Last-Event-ID for this session"),
            UnsupportedVersion { requested } => {
                let data = json!({"supported": era::supported_versions(), "requested": requested});
                shape(400, ErrorObject::with_data(codes::UNSUPPORTED_PROTOCOL_VERSION, "Unsupported protocol version", data))
            }
            MissingRequestMeta(why) => shape(400, ErrorObject::new(codes::INVALID_PARAMS, why.clone())),
            HeaderMismatch(e) => shape(400, e.clone()),
            MethodNotFound { method, era } => {
                let status = if *era == Era::Modern { 404 } else { 200 };
                shape(status, ErrorObject::new(codes::METHOD_NOT_FOUND, format!("Method not found: {method}")))
            }
            InvalidParams(msg) => shape(200, ErrorObject::new(codes::INVALID_PARAMS, msg.clone())),
            UnknownResource { uri } => shape(200, ErrorObject::with_data(codes::INVALID_PARAMS, format!("Unknown resource: {uri}"), json!({"uri": uri}))),
            SessionsFull(msg) => {
                let secs = SESSIONS_FULL_RETRY_AFTER_SECS;
                retry_after(shape(503, ErrorObject::with_data(codes::SERVER_ERROR, msg.clone(), json!({"retry_after_seconds": secs}))), secs)
            }
            Cancelled => shape(200, ErrorObject::new(codes::SERVER_ERROR, "Request cancelled by the client")),
            ListenNeedsEventStream => invalid_request(406, "subscriptions/listen answers with an event stream: accept text/event-stream"),
            Upstream(e) => {
                let error = upstream_error(e);
                match e.retry_after_secs() {
                    Some(secs) => retry_after(shape(503, error), secs),
                    None => shape(200, error),
                }
            }
            TasksExtensionMissing => {
                let data = json!({"requiredCapabilities": {"extensions": {super::tasks::EXTENSION: {}}}});
                shape(400, ErrorObject::with_data(codes::MISSING_CLIENT_CAPABILITY, "Missing required client capability", data))
            }
            TaskNotFound => shape(200, ErrorObject::new(codes::INVALID_PARAMS, "Failed to retrieve task: Task not found")),
            TaskLimit(l) => {
                let data = json!({"limit": l.limit, "max": l.max, "reason": "task_limit"});
                shape(200, ErrorObject::with_data(codes::SERVER_ERROR, l.to_string(), data))
            }
            TaskNotStarted => shape(200, ErrorObject::new(codes::INTERNAL_ERROR, "could not start the task")),
            TaskTerminal { status } => {
                shape(200, ErrorObject::new(codes::INVALID_PARAMS, format!("Cannot cancel task: already in terminal status '{status}'")))
            }
            TaskCancelFailed(why) => shape(200, ErrorObject::new(codes::INTERNAL_ERROR, format!("the task could not be cancelled: {why}"))),
            InputNeedsEventStream { methods } => {
                let msg = format!(
                    "The upstream server needs client input ({}); MCPHub relays it to legacy clients only on an event stream: send Accept: application/json, text/event-stream",
                    methods.join(", ")
                );
                shape(200, ErrorObject::with_data(codes::INVALID_REQUEST, msg, json!({"inputRequests": methods})))
            }
            InputRoundsExceeded { max } => shape(
                200,
                ErrorObject::new(codes::INTERNAL_ERROR, format!("The upstream server asked for client input more than {max} times; MCPHub stopped")),
            ),
            InputRequestsMalformed => shape(200, ErrorObject::new(codes::INTERNAL_ERROR, "The upstream server sent a malformed inputRequests map")),
            InputUnknown { method } => {
                shape(200, ErrorObject::new(codes::INTERNAL_ERROR, format!("The upstream server asked for unknown client input '{method}'")))
            }
            InputCapabilityMissing { capability, method } => shape(
                200,
                ErrorObject::with_data(
                    codes::MISSING_CLIENT_CAPABILITY,
                    format!("The upstream server needs the client's {capability} capability ({method}), which this client did not declare at initialize"),
                    json!({"requiredCapabilities": {capability: {}}}),
                ),
            ),
            InputAwaitedFull => shape(200, ErrorObject::new(codes::SERVER_ERROR, "Too many client answers are awaited; retry later")),
            InputTimeout => shape(200, ErrorObject::with_data(TIMEOUT, "Request timed out waiting for the client's input", json!({"layer": "hub"}))),
            InputRefused { code, method, message } => shape(200, ErrorObject::new(*code, format!("The client refused {method}: {message}"))),
            InputAnswerEmpty => invalid_request(200, "The client's answer had neither result nor error"),
            RequestStateInvalid => shape(
                200,
                ErrorObject::new(
                    codes::INVALID_PARAMS,
                    "Invalid params: requestState is unknown, expired, already used, or was issued for another request",
                ),
            ),
            ParkedFull => shape(200, ErrorObject::new(codes::SERVER_ERROR, "Too many calls wait for client input; retry later")),
        }
    }

    /// The JSON-RPC error alone (for an answer built elsewhere: a method's
    /// `Err`, an event on a stream).
    pub fn error(&self) -> ErrorObject {
        self.shape().error
    }

    /// The JSON-RPC error message answering request `id` (null when `None`;
    /// [`Refusal::ForbiddenOrigin`] has no `id` member: the body was not read).
    pub fn message(&self, id: Option<&Value>) -> Value {
        self.message_of(&self.error(), id)
    }

    /// [`Refusal::message`] of `error`, this refusal's error already built.
    fn message_of(&self, error: &ErrorObject, id: Option<&Value>) -> Value {
        if matches!(self, Refusal::ForbiddenOrigin) {
            return json!({"jsonrpc": "2.0", "error": {"code": error.code, "message": error.message}});
        }
        error.to_response(id)
    }

    /// The HTTP answer: [`Refusal::message`] as JSON with the status and headers of [`Refusal::shape`].
    pub fn response(&self, id: Option<&Value>) -> Response {
        let Shape { status, error, headers } = self.shape();
        let mut resp = Response::json(status, &self.message_of(&error, id));
        for (name, value) in headers {
            resp = resp.with_header(name, &value);
        }
        resp
    }
}

/// The JSON-RPC error a client gets for an upstream failure: `-32001`
/// "Request timed out" with `data: {layer: "hub" | "upstream", server,
/// timeoutMs}` for a timeout; else `-32000` with the error's text and data
/// naming the server (plus the missing or rejected token names, or
/// `retry_after_seconds` and `reason` for an overloaded or open-circuit server).
pub fn upstream_error(e: &UpstreamError) -> ErrorObject {
    match e {
        UpstreamError::Timeout { server, timeout_ms } | UpstreamError::HubTimeout { server, timeout_ms } => {
            let data = json!({"layer": e.timeout_layer().unwrap_or("upstream"), "server": server, "timeoutMs": timeout_ms});
            ErrorObject::with_data(TIMEOUT, "Request timed out", data)
        }
        UpstreamError::MissingToken { server, tokens } => {
            ErrorObject::with_data(codes::SERVER_ERROR, e.to_string(), json!({"server": server, "missingTokens": tokens}))
        }
        UpstreamError::Rejected { server, status, tokens } => {
            ErrorObject::with_data(codes::SERVER_ERROR, e.to_string(), json!({"server": server, "status": status, "rejectedTokens": tokens}))
        }
        UpstreamError::Overloaded { server, retry_after_secs, reason, .. } => ErrorObject::with_data(
            codes::SERVER_ERROR,
            e.to_string(),
            json!({"server": server, "retry_after_seconds": retry_after_secs, "reason": reason}),
        ),
        UpstreamError::Unavailable { server, retry_after_secs, .. } => ErrorObject::with_data(
            codes::SERVER_ERROR,
            e.to_string(),
            json!({"server": server, "retry_after_seconds": retry_after_secs, "reason": "circuit_open"}),
        ),
        other => ErrorObject::with_data(codes::SERVER_ERROR, other.to_string(), json!({"server": other.server()})),
    }
}

/// The HTTP answer from the worker to a client of `era` for a call's
/// message `msg` (a result, or an error relayed from the upstream or made by
/// the hub): 503 + `Retry-After` when the call failed with a `retry_after`
/// ([`Refusal::Upstream`] of an overloaded or open-circuit server), else
/// with [`relayed_status`].
pub fn relayed(era: Era, msg: &Value, retry_after: Option<u64>) -> Response {
    match retry_after {
        Some(secs) => Response::json(503, msg).with_header("Retry-After", &secs.to_string()),
        None => Response::json(relayed_status(era, msg), msg),
    }
}

/// The HTTP status of a call's answer message `msg` (a result, or an error
/// relayed from the upstream or made by the hub) answered from the worker to
/// a client of `era`: 400 for a modern client's `-32021`
/// MissingRequiredClientCapability (2026-07-28 streamable-http, SEP-2575),
/// 200 otherwise. (An upstream failure with `Retry-After` is 503: [`Refusal::Upstream`].)
pub fn relayed_status(era: Era, msg: &Value) -> u16 {
    let code = crate::protocol::jsonrpc::at(msg, &["error", "code"]).and_then(Value::as_i64);
    if era == Era::Modern && code == Some(codes::MISSING_CLIENT_CAPABILITY) {
        400
    } else {
        200
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// One row of the table: the refusal, then what it is on the wire.
    struct Row {
        refusal: Refusal,
        status: u16,
        code: i64,
        message: &'static str,
        data: Option<Value>,
        headers: &'static [(&'static str, &'static str)],
    }

    fn row(refusal: Refusal, status: u16, code: i64, message: &'static str, data: Option<Value>, headers: &'static [(&'static str, &'static str)]) -> Row {
        Row { refusal, status, code, message, data, headers }
    }

    /// A key refusal: 401, `-32000`, `data.httpStatus` and `WWW-Authenticate`.
    fn unauthorized(key: KeyRefusal, message: &'static str) -> Row {
        row(Refusal::Key(key), 401, -32000, message, Some(json!({"httpStatus": 401})), &[("WWW-Authenticate", "Bearer realm=\"mcphub\"")])
    }

    fn table() -> Vec<Row> {
        use Refusal::*;
        let overloaded = UpstreamError::Overloaded { server: "jira".into(), retry_after_secs: 3, reason: "queue_full", cause: "4 calls in flight".into() };
        vec![
            row(Malformed(ErrorObject::new(-32700, "Parse error: EOF")), 400, -32700, "Parse error: EOF", None, &[]),
            row(ForbiddenOrigin, 403, -32600, "Forbidden: Origin not allowed", None, &[]),
            unauthorized(KeyRefusal::Missing, "Unauthorized: an MCPHub key is required. Send it as 'Authorization: Bearer mcphub_…' or add '?key=mcphub_…' to the /mcp URL (Cursor: \"url\": \"http://HOST:3000/mcp?key=mcphub_…\"). Your MCPHub admin issues keys (mcphub keygen, or POST /api/admin/users/NAME/keys)."),
            unauthorized(KeyRefusal::Unknown, "Unauthorized: this MCPHub key is unknown or revoked. Check the key was copied whole (mcphub_ followed by 64 hex characters, no quotes or spaces) or ask your MCPHub admin for a new one."),
            row(
                Key(KeyRefusal::InvalidToken),
                401,
                -32000,
                "Unauthorized: this OAuth access token is invalid, expired or revoked. Refresh it, or sign in again (your MCP client does this when it supports OAuth).",
                Some(json!({"httpStatus": 401})),
                &[("WWW-Authenticate", "Bearer realm=\"mcphub\", error=\"invalid_token\"")],
            ),
            row(
                InsufficientScope,
                403,
                -32000,
                "Forbidden: this OAuth access token lacks the 'mcp' scope that tools/call needs; authorize again with scope 'mcp'",
                Some(json!({"httpStatus": 403, "requiredScope": "mcp"})),
                &[("WWW-Authenticate", "Bearer realm=\"mcphub\", error=\"insufficient_scope\", scope=\"mcp\"")],
            ),
            unauthorized(KeyRefusal::WrongScheme, "Unauthorized: send the MCPHub key as 'Authorization: Bearer mcphub_…' (other schemes are not accepted) or as '?key=mcphub_…' on the URL."),
            row(
                Key(KeyRefusal::StoreUnavailable),
                503,
                -32000,
                "Service unavailable: the MCPHub user store (Redis) cannot be read, so MCPHub cannot check keys (or whether one is needed) now. Retry shortly; if it lasts, ask your MCPHub admin to check Redis.",
                Some(json!({"httpStatus": 503, "retry_after_seconds": 2, "reason": "user_store_unavailable"})),
                &[("Retry-After", "2")],
            ),
            row(
                AuthThrottled { retry_after_secs: 42 },
                429,
                -32000,
                "Too many failed authentications from this address: retry after 42 s (check the MCPHub key you send)",
                Some(json!({"httpStatus": 429, "retry_after_seconds": 42, "reason": "auth_failures"})),
                &[("Retry-After", "42")],
            ),
            row(
                RateLimited(Limited { scope: Scope::Server, server: Some("jira".into()), retry_after: Duration::from_millis(1200) }),
                429,
                -32000,
                "Rate limit exceeded",
                Some(json!({"retry_after_seconds": 2, "scope": "server", "server": "jira"})),
                &[("Retry-After", "2")],
            ),
            row(
                RateLimited(Limited { scope: Scope::Global, server: None, retry_after: Duration::ZERO }),
                429,
                -32000,
                "Rate limit exceeded",
                Some(json!({"retry_after_seconds": 1, "scope": "global"})),
                &[("Retry-After", "1")],
            ),
            row(SessionIdMissing, 400, -32600, "Bad Request: Mcp-Session-Id header is required (send initialize first)", None, &[]),
            row(DeleteSessionIdMissing, 400, -32600, "Bad Request: Mcp-Session-Id header is required", None, &[]),
            row(SessionNotFound, 404, -32600, "Session not found or expired; initialize again", None, &[]),
            row(DeleteSessionNotFound, 404, -32600, "Session not found", None, &[]),
            row(UnknownEventId, 404, -32600, "Unknown or expired Last-Event-ID for this session", None, &[]),
            row(
                UnsupportedVersion { requested: "2099-01-01".into() },
                400,
                -32022,
                "Unsupported protocol version",
                Some(json!({"supported": ["2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"], "requested": "2099-01-01"})),
                &[],
            ),
            row(MissingRequestMeta("params._meta is required".into()), 400, -32602, "params._meta is required", None, &[]),
            row(HeaderMismatch(ErrorObject::new(-32020, "Header mismatch: Mcp-Method")), 400, -32020, "Header mismatch: Mcp-Method", None, &[]),
            row(MethodNotFound { method: "ping".into(), era: Era::Modern }, 404, -32601, "Method not found: ping", None, &[]),
            row(MethodNotFound { method: "x/y".into(), era: Era::Legacy }, 200, -32601, "Method not found: x/y", None, &[]),
            row(InvalidParams("tools/call needs params.name".into()), 200, -32602, "tools/call needs params.name", None, &[]),
            row(UnknownResource { uri: "file:///a".into() }, 200, -32602, "Unknown resource: file:///a", Some(json!({"uri": "file:///a"})), &[]),
            row(SessionsFull("too many sessions".into()), 503, -32000, "too many sessions", Some(json!({"retry_after_seconds": 5})), &[("Retry-After", "5")]),
            row(Cancelled, 200, -32000, "Request cancelled by the client", None, &[]),
            row(ListenNeedsEventStream, 406, -32600, "subscriptions/listen answers with an event stream: accept text/event-stream", None, &[]),
            row(
                Upstream(overloaded),
                503,
                -32000,
                "server 'jira' is overloaded: 4 calls in flight; retry after 3 s",
                Some(json!({"server": "jira", "retry_after_seconds": 3, "reason": "queue_full"})),
                &[("Retry-After", "3")],
            ),
            row(
                Upstream(UpstreamError::Unavailable { server: "jira".into(), failures: 5, retry_after_secs: 7 }),
                503,
                -32000,
                "server 'jira' is unavailable (circuit open after 5 connect failures); retrying in 7 s",
                Some(json!({"server": "jira", "retry_after_seconds": 7, "reason": "circuit_open"})),
                &[("Retry-After", "7")],
            ),
            row(
                Upstream(UpstreamError::Timeout { server: "jira".into(), timeout_ms: 20000 }),
                200,
                -32001,
                "Request timed out",
                Some(json!({"layer": "upstream", "server": "jira", "timeoutMs": 20000})),
                &[],
            ),
            row(
                Upstream(UpstreamError::HubTimeout { server: "jira".into(), timeout_ms: 25000 }),
                200,
                -32001,
                "Request timed out",
                Some(json!({"layer": "hub", "server": "jira", "timeoutMs": 25000})),
                &[],
            ),
            row(
                Upstream(UpstreamError::MissingToken { server: "gh".into(), tokens: vec!["GITHUB_TOKEN".into()] }),
                200,
                -32000,
                "server 'gh' needs your GITHUB_TOKEN: set it with PUT /api/me/tokens/GITHUB_TOKEN (your hub key as Bearer)",
                Some(json!({"server": "gh", "missingTokens": ["GITHUB_TOKEN"]})),
                &[],
            ),
            row(
                Upstream(UpstreamError::Rejected { server: "gh".into(), status: 401, tokens: vec!["GITHUB_TOKEN".into()] }),
                200,
                -32000,
                "server 'gh' rejected your GITHUB_TOKEN (HTTP 401): update it with PUT /api/me/tokens/GITHUB_TOKEN",
                Some(json!({"server": "gh", "status": 401, "rejectedTokens": ["GITHUB_TOKEN"]})),
                &[],
            ),
            row(
                Upstream(UpstreamError::Transport { server: "jira".into(), detail: "connection refused".into(), sent: false }),
                200,
                -32000,
                "upstream 'jira' unreachable: connection refused",
                Some(json!({"server": "jira"})),
                &[],
            ),
            row(
                Upstream(UpstreamError::Status { server: "jira".into(), status: 502, detail: "bad gateway".into() }),
                200,
                -32000,
                "upstream 'jira' answered HTTP 502: bad gateway",
                Some(json!({"server": "jira"})),
                &[],
            ),
            row(
                Upstream(UpstreamError::Protocol { server: "jira".into(), detail: "no id".into() }),
                200,
                -32000,
                "upstream 'jira' sent an invalid response: no id",
                Some(json!({"server": "jira"})),
                &[],
            ),
            row(
                TasksExtensionMissing,
                400,
                -32021,
                "Missing required client capability",
                Some(json!({"requiredCapabilities": {"extensions": {"io.modelcontextprotocol/tasks": {}}}})),
                &[],
            ),
            row(TaskNotFound, 200, -32602, "Failed to retrieve task: Task not found", None, &[]),
            row(
                TaskLimit(super::TaskLimit::hub(3)),
                200,
                -32000,
                "Task limit reached: MCPHub (all users together) already holds 3 tasks (maxTasks); tasks are kept until their ttl ends, so cancel some, let them expire, or ask for shorter ttls",
                Some(json!({"limit": "maxTasks", "max": 3, "reason": "task_limit"})),
                &[],
            ),
            row(TaskNotStarted, 200, -32603, "could not start the task", None, &[]),
            row(TaskTerminal { status: "completed".into() }, 200, -32602, "Cannot cancel task: already in terminal status 'completed'", None, &[]),
            row(TaskCancelFailed("redis down".into()), 200, -32603, "the task could not be cancelled: redis down", None, &[]),
            row(
                InputNeedsEventStream { methods: vec!["sampling/createMessage".into(), "roots/list".into()] },
                200,
                -32600,
                "The upstream server needs client input (sampling/createMessage, roots/list); MCPHub relays it to legacy clients only on an event stream: send Accept: application/json, text/event-stream",
                Some(json!({"inputRequests": ["sampling/createMessage", "roots/list"]})),
                &[],
            ),
            row(InputRoundsExceeded { max: 8 }, 200, -32603, "The upstream server asked for client input more than 8 times; MCPHub stopped", None, &[]),
            row(InputRequestsMalformed, 200, -32603, "The upstream server sent a malformed inputRequests map", None, &[]),
            row(InputUnknown { method: "x/y".into() }, 200, -32603, "The upstream server asked for unknown client input 'x/y'", None, &[]),
            row(
                InputCapabilityMissing { capability: "sampling".into(), method: "sampling/createMessage".into() },
                200,
                -32021,
                "The upstream server needs the client's sampling capability (sampling/createMessage), which this client did not declare at initialize",
                Some(json!({"requiredCapabilities": {"sampling": {}}})),
                &[],
            ),
            row(InputAwaitedFull, 200, -32000, "Too many client answers are awaited; retry later", None, &[]),
            row(InputTimeout, 200, -32001, "Request timed out waiting for the client's input", Some(json!({"layer": "hub"})), &[]),
            row(
                InputRefused { code: -1, method: "elicitation/create".into(), message: "User rejected".into() },
                200,
                -1,
                "The client refused elicitation/create: User rejected",
                None,
                &[],
            ),
            row(InputAnswerEmpty, 200, -32600, "The client's answer had neither result nor error", None, &[]),
            row(
                RequestStateInvalid,
                200,
                -32602,
                "Invalid params: requestState is unknown, expired, already used, or was issued for another request",
                None,
                &[],
            ),
            row(ParkedFull, 200, -32000, "Too many calls wait for client input; retry later", None, &[]),
        ]
    }

    #[test]
    fn every_refusal_has_its_status_code_message_data_and_headers() {
        for r in table() {
            let s = r.refusal.shape();
            let name = format!("{:?}", r.refusal);
            assert_eq!(s.status, r.status, "status of {name}");
            assert_eq!(s.error.code, r.code, "code of {name}");
            assert_eq!(s.error.message, r.message, "message of {name}");
            assert_eq!(s.error.data, r.data, "data of {name}");
            let headers: Vec<(&str, &str)> = s.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            assert_eq!(headers, r.headers, "headers of {name}");
        }
    }

    fn body(r: &Response) -> String {
        match &r.body {
            crate::http::Body::Full(b) => String::from_utf8(b.to_vec()).unwrap(),
            crate::http::Body::Sse(_) => panic!("a full body"),
        }
    }

    #[test]
    fn answers_carry_the_id_and_the_shape_byte_for_byte() {
        let r = Refusal::SessionNotFound.response(Some(&json!(7)));
        assert_eq!(r.status, 404);
        assert_eq!(body(&r), r#"{"jsonrpc":"2.0","id":7,"error":{"code":-32600,"message":"Session not found or expired; initialize again"}}"#);
        // The Origin refusal is answered before the body is read: no id member at all.
        let r = Refusal::ForbiddenOrigin.response(Some(&json!(7)));
        assert_eq!(r.status, 403);
        assert_eq!(body(&r), r#"{"jsonrpc":"2.0","error":{"code":-32600,"message":"Forbidden: Origin not allowed"}}"#);
        let r = Refusal::AuthThrottled { retry_after_secs: 9 }.response(None);
        assert_eq!((r.status, body(&r).starts_with(r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"#)), (429, true));
        assert!(r.headers.iter().any(|(k, v)| k == "Retry-After" && v == "9"), "{:?}", r.headers);
        let r = Refusal::UnknownResource { uri: "x:/a".into() }.response(Some(&json!("r")));
        assert_eq!(body(&r), r#"{"jsonrpc":"2.0","id":"r","error":{"code":-32602,"message":"Unknown resource: x:/a","data":{"uri":"x:/a"}}}"#);
    }

    #[test]
    fn a_modern_clients_missing_capability_is_http_400_and_nothing_else_is() {
        let err = |code: i64| json!({"jsonrpc": "2.0", "id": 1, "error": {"code": code, "message": "m"}});
        assert_eq!(relayed_status(Era::Modern, &err(-32021)), 400);
        assert_eq!(relayed_status(Era::Legacy, &err(-32021)), 200);
        assert_eq!(relayed_status(Era::Modern, &err(-32602)), 200);
        assert_eq!(relayed_status(Era::Modern, &json!({"jsonrpc": "2.0", "id": 1, "result": {}})), 200);
    }
}
