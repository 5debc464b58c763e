//! The upstream boundary: the [`Transport`] trait every way of reaching an
//! MCP server implements, and what crosses it — [`HttpReply`], [`Answer`],
//! the [`EventStream`] of a streamed answer, the call's [`Deadline`].

use super::UpstreamError;
use crate::protocol::{codes, jsonrpc, sse};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest JSON body or SSE event the hub accepts from an upstream.
pub const MAX_UPSTREAM_MESSAGE: u64 = 32 * 1024 * 1024;

/// What one POST came back with.
#[derive(Debug)]
pub struct HttpReply {
    /// HTTP status.
    pub status: u16,
    /// `Mcp-Session-Id` response header.
    pub session_id: Option<String>,
    /// The final JSON-RPC message (a response, or an error body of a 4xx/5xx);
    /// `None` for 202 or a body that is not JSON-RPC.
    pub message: Option<Value>,
    /// A short excerpt of a non-JSON-RPC body, for error messages.
    pub excerpt: String,
    /// `Retry-After` response header (seconds or an HTTP-date), as sent.
    pub retry_after: Option<String>,
}

impl HttpReply {
    /// A reply of `status` carrying `message`, nothing else (the shape a
    /// transport without HTTP gives its answers: stdio).
    pub fn new(status: u16, message: Option<Value>) -> HttpReply {
        HttpReply { status, session_id: None, message, excerpt: String::new(), retry_after: None }
    }

    /// The upstream says the session is gone: 404, or 400 whose message names
    /// the session (docs/decisions.md D3: the request was not executed).
    /// Asked of every legacy reply: only a 400 has its text looked at.
    pub fn is_session_expired(&self) -> bool {
        match self.status {
            404 => true,
            400 => self
                .message
                .as_ref()
                .and_then(|m| crate::protocol::jsonrpc::at(m, &["error", "message"]))
                .and_then(Value::as_str)
                .unwrap_or(&self.excerpt)
                .to_ascii_lowercase()
                .contains("session"),
            _ => false,
        }
    }

    /// The JSON-RPC error code of the message, if it is an error.
    pub fn error_code(&self) -> Option<i64> {
        crate::protocol::jsonrpc::at(self.message.as_ref()?, &["error", "code"])?.as_i64()
    }
}

/// Longest silence on a listening (GET) stream before the hub reconnects it.
pub const LISTEN_READ_TIMEOUT: Duration = Duration::from_secs(300);

/// Longest wait for the hub's answer to a server→client request to be taken.
pub const ANSWER_BUDGET: Duration = Duration::from_secs(5);

/// The deadlines of one upstream call (docs/decisions.md D7, issue 6), as offsets
/// from its start: the request's hub deadline (`timeouts.hubMs`), and the
/// call's own (`timeoutMs`), which a `notifications/progress` moves to now +
/// `timeoutMs` with `resetTimeoutOnProgress`, up to `maxTotalTimeoutMs` from
/// the start and never past the hub deadline. The earlier of the two ends the
/// call; [`Deadline::error`] names which (`-32001`, `data.layer`).
#[derive(Debug, Clone)]
pub struct Deadline {
    started: Instant,
    /// The call's own deadline, from `started`.
    upstream: Duration,
    /// `timeoutMs` (reported for the upstream layer; the step progress moves by).
    timeout: Duration,
    /// The hub deadline from `started`, and `timeouts.hubMs`.
    hub: Option<(Duration, Duration)>,
    /// With `resetTimeoutOnProgress`: `maxTotalTimeoutMs`, and the call's
    /// connection read deadline ([`super::cancel::ReadDeadline`]) kept at `upstream`.
    extend: Option<(Duration, Arc<super::cancel::ReadDeadline>)>,
}

impl Deadline {
    /// One budget, nothing else: ends after `budget`, reported as the
    /// upstream layer with `timeoutMs` = `budget` (hub-internal exchanges).
    pub fn fixed(budget: Duration) -> Deadline {
        Deadline { started: Instant::now(), upstream: budget, timeout: budget, hub: None, extend: None }
    }

    /// A call starting now under the hub deadline `hub_at` (`timeouts.hubMs`
    /// = `hub_ms`) with the server's `timeout`; `extend` = (`maxTotalTimeoutMs`,
    /// the call's read deadline) when progress may extend it.
    pub fn call(hub_at: Instant, hub_ms: Duration, timeout: Duration, extend: Option<(Duration, Arc<super::cancel::ReadDeadline>)>) -> Deadline {
        let started = Instant::now();
        let d = Deadline { started, upstream: timeout, timeout, hub: Some((hub_at.saturating_duration_since(started), hub_ms)), extend };
        d.publish();
        d
    }

    /// The latest the call may run at all: ureq's `timeout_global` (the
    /// earlier of the hub deadline and the extension cap, or the deadline
    /// itself when nothing can extend it).
    pub fn total(&self) -> Duration {
        let cap = self.extend.as_ref().map_or(self.upstream, |(max, _)| *max);
        self.hub.map_or(cap, |(h, _)| h.min(cap))
    }

    fn end(&self) -> Duration {
        self.hub.map_or(self.upstream, |(h, _)| h.min(self.upstream))
    }

    /// What remains until the earlier deadline.
    pub fn remaining(&self) -> Duration {
        self.end().saturating_sub(self.started.elapsed())
    }

    /// Whether the earlier deadline has passed.
    pub fn expired(&self) -> bool {
        self.remaining().is_zero()
    }

    /// A progress notification arrived: with `resetTimeoutOnProgress`, the
    /// call's deadline moves to now + `timeoutMs` (capped, see the type).
    pub fn on_progress(&mut self) {
        if let Some((max, _)) = &self.extend {
            self.upstream = (self.started.elapsed() + self.timeout).min(*max).max(self.upstream);
            self.publish();
        }
    }

    fn publish(&self) {
        if let Some((_, cell)) = &self.extend {
            cell.set(Some(self.started + self.end()));
        }
    }

    /// The timeout error for this deadline: `HubTimeout` (`timeouts.hubMs`)
    /// when the hub deadline came first, else `Timeout` with `timeoutMs`
    /// (`maxTotalTimeoutMs` once progress extended the call to its cap).
    pub fn error(&self, server: &str) -> UpstreamError {
        match self.hub {
            Some((h, hub_ms)) if h <= self.upstream => UpstreamError::HubTimeout { server: server.to_string(), timeout_ms: hub_ms.as_millis() as u64 },
            _ => {
                let capped = self.extend.as_ref().is_some_and(|(max, _)| self.upstream >= *max);
                let ms = if capped { self.upstream } else { self.timeout };
                UpstreamError::Timeout { server: server.to_string(), timeout_ms: ms.as_millis() as u64 }
            }
        }
    }
}

/// The wire to one upstream server: what the rest of [`super`] needs from a
/// transport, whatever carries the messages (Streamable HTTP today:
/// [`super::streamable::HttpTransport`]; stdio and the 2024-11-05 HTTP+SSE
/// transport plug in here, issue 19). Session sharing, era handling, the
/// bulkhead, the breaker and the retry decision ([`super::retry`]) sit above
/// it and stay the same for every transport.
///
/// Every method is bounded: by the [`Deadline`] or budget it is given, or,
/// for the long-lived streams ([`Transport::post_long`], [`Transport::listen`]),
/// by [`LISTEN_READ_TIMEOUT`] per read. None may panic on what a server sends.
/// `headers` are the session's or the caller's header fields (name, value)
/// sent besides the server's configured ones; a transport without headers
/// reads what it needs from them (the session id, the credentials).
pub trait Transport: Send + Sync {
    /// The server's name, for errors and log lines.
    fn server(&self) -> &str;

    /// Seconds from sending a request to its answer's head (or failure), for
    /// `/metrics` (`mcphub_upstream_request_duration_seconds{server}`).
    fn latency(&self) -> &prometheus::Histogram;

    /// Sends one JSON-RPC request and returns as soon as the answer's head
    /// is in: a complete [`HttpReply`] (a JSON body, 202, an error status) or
    /// the open [`EventStream`] of a streamed answer for the caller to read,
    /// possibly on another thread, all within `deadline`.
    ///
    /// Errors: `Transport { sent }` (whether the request may have reached the
    /// server), `Timeout`/`HubTimeout` naming the deadline that ran out.
    fn post_call(&self, body: &Value, headers: &[(String, String)], deadline: Deadline) -> Result<Answer, UpstreamError>;

    /// Sends a long-lived request (2026-07-28 `subscriptions/listen`): the
    /// answer's head within 10 s, then no total deadline, only
    /// [`LISTEN_READ_TIMEOUT`] per read, after which the caller reconnects.
    fn post_long(&self, body: &Value, headers: &[(String, String)]) -> Result<Answer, UpstreamError>;

    /// Sends the hub's answer to a server→client request (or a notification)
    /// within `budget` and discards whatever comes back: an answer never
    /// starts another exchange. Failures are logged, not returned.
    fn answer(&self, message: &Value, headers: &[(String, String)], budget: Duration);

    /// Opens the legacy standalone server→client stream on the session
    /// `headers` name: `Ok(None)` when the server offers none. No total
    /// deadline; each read waits at most [`LISTEN_READ_TIMEOUT`].
    fn listen(&self, headers: &[(String, String)]) -> Result<Option<Box<EventStream>>, UpstreamError>;

    /// Ends a legacy session (HTTP `DELETE`); failures are logged, not returned.
    fn delete(&self, headers: &[(String, String)]);

    /// Whether this transport's legacy sessions may be kept in the shared
    /// store for other hub instances and the next start (Streamable HTTP:
    /// yes; a stdio process or an HTTP+SSE stream lives in this process only).
    fn shares_sessions(&self) -> bool {
        true
    }

    /// Whether a repeatable request (docs/decisions.md D3) may be sent again
    /// after a failure once it was sent. Streamable HTTP: yes (a dropped
    /// connection); a stdio process or an HTTP+SSE stream that ended during
    /// the call: no — its calls fail at once and the next call starts a new
    /// session (issue 19), so a request that made the server crash is not
    /// sent to the next one.
    fn resends_after_failure(&self) -> bool {
        true
    }

    /// Stops what the transport keeps running (stdio processes): at hub
    /// shutdown and when a reload drops or replaces the server.
    fn shutdown(&self) {}

    /// Sets the owner of the transport's own threads (the hub's,
    /// [`crate::threads`]); called once, before the first call.
    fn attach_threads(&self, _threads: crate::threads::Threads) {}

    /// The transport's processes, for `/readyz` and `/metrics` (stdio
    /// servers only).
    fn processes(&self) -> Option<ProcessCounts> {
        None
    }

    /// POSTs one JSON-RPC message and reads the answer within `budget`: the
    /// whole exchange — connect, send, response head, every byte of the body
    /// or event stream — ends by then (`timeout_global`), so a server that
    /// drips bytes or stops reading cannot hold a worker longer.
    ///
    /// SSE answers are read event by event ([`Transport::drain`]): the
    /// response whose id equals the request's id ends the read; other messages
    /// go to `on_message`, except server→client requests, which are refused
    /// ([`Refusal::Client`]) so the upstream does not wait for an answer nobody will give.
    fn post(
        &self,
        body: &Value,
        headers: &[(String, String)],
        budget: Duration,
        on_message: &mut dyn FnMut(&Value),
    ) -> Result<HttpReply, UpstreamError> {
        match self.post_call(body, headers, Deadline::fixed(budget))? {
            Answer::Reply(reply) => Ok(reply),
            Answer::Stream(stream) => self.drain(stream, headers, on_message),
        }
    }

    /// Reads an event stream to its final response: notifications go to
    /// `on_message`, server→client requests are refused ([`Refusal::Client`])
    /// on the session `headers` name.
    fn drain(
        &self,
        mut stream: Box<EventStream>,
        headers: &[(String, String)],
        on_message: &mut dyn FnMut(&Value),
    ) -> Result<HttpReply, UpstreamError> {
        let mut reply =
            HttpReply { status: stream.status, session_id: stream.session_id.take(), message: None, excerpt: String::new(), retry_after: None };
        loop {
            match stream.next_item()? {
                Some(StreamItem::Final(m)) => {
                    reply.message = Some(m);
                    return Ok(reply);
                }
                Some(StreamItem::Notification(n)) => on_message(&n),
                Some(StreamItem::Request(r)) => {
                    self.refuse(&r, headers, stream.remaining(), Refusal::Client("the client's request did not accept text/event-stream"))
                }
                None => {
                    reply.excerpt = "the event stream ended without a response".into();
                    return Ok(reply);
                }
            }
        }
    }

    /// Answers a server→client request the hub does not relay, naming why
    /// (issue 21: never a bare "Method not found"), on the session `headers`
    /// name (never waiting more than [`ANSWER_BUDGET`]), and logs it: the
    /// upstream otherwise only shows its users "MCP error …".
    fn refuse(&self, request: &Value, headers: &[(String, String)], budget: Duration, why: Refusal<'_>) {
        if let Some(answer) = refusal(self.server(), request, why) {
            self.answer(&answer, headers, budget.min(ANSWER_BUDGET));
        }
    }

}

pub use crate::metrics::ProcessCounts;

/// The answer to a server→client `request` of `server` the hub does not
/// relay ([`Transport::refuse`]), logged (INFO for a client-side refusal,
/// WARN otherwise); `None` for a request without an id (nothing to answer).
/// For transports whose readers answer by themselves (stdio, HTTP+SSE).
pub fn refusal(server: &str, request: &Value, why: Refusal<'_>) -> Option<Value> {
    let method = request.get("method").and_then(Value::as_str).unwrap_or("?");
    let answer = why.error(server, method);
    match why {
        Refusal::Client(_) => log::info!("upstream '{server}' sent '{method}'; answered: {}", answer.message),
        Refusal::Unattributable(_) | Refusal::Hub(_) => log::warn!("upstream '{server}' sent '{method}'; answered: {}", answer.message),
    }
    Some(answer.to_response(Some(request.get("id")?)))
}

/// Why a stdio or HTTP+SSE reader refuses a request its mux could not
/// route ([`super::mux::Mux::deliver`]).
pub const UNROUTED: Refusal<'static> = Refusal::Unattributable("it came while several calls were in flight, or outside any call");

/// The `Mcp-Session-Id` among a session's `headers` (as the upstream passes
/// them to a transport), any case.
pub fn session_id(headers: &[(String, String)]) -> Option<&str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("mcp-session-id")).map(|(_, v)| v.as_str())
}

/// An io error while reading an upstream body as an [`UpstreamError`]. ureq
/// reports its own deadlines as an io::Error wrapping `ureq::Error::Timeout`;
/// any failure once the deadline has passed counts as the timeout.
pub(super) fn io_error(server: &str, e: std::io::Error, deadline: &Deadline) -> UpstreamError {
    let ureq_timeout = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<ureq::Error>())
        .is_some_and(|u| matches!(u, ureq::Error::Timeout(_)));
    if ureq_timeout || deadline.expired() || matches!(e.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock) {
        deadline.error(server)
    } else {
        UpstreamError::Transport { server: server.to_string(), detail: e.to_string(), sent: true }
    }
}

/// Why the hub answers a server→client request itself instead of relaying it
/// (issue 21), and the error the upstream gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal<'a> {
    /// The client the request belongs to cannot take it (it did not declare
    /// the capability, or its request did not accept an event stream):
    /// `-32601`, as that client would answer a method it does not support.
    Client(&'a str),
    /// The hub cannot tell which of the clients sharing the upstream session
    /// the request is for (sent on the session's standalone GET stream,
    /// unrelated to any call): `-32000`, `data.reason` = `"unattributable"`.
    Unattributable(&'a str),
    /// The hub cannot take it now (too many requests wait for answers):
    /// `-32000`, `data.reason` = `"hub"`.
    Hub(&'a str),
}

impl Refusal<'_> {
    /// The JSON-RPC error answering `method` from `server`.
    pub fn error(&self, server: &str, method: &str) -> jsonrpc::ErrorObject {
        match self {
            Refusal::Client(why) => jsonrpc::ErrorObject::new(codes::METHOD_NOT_FOUND, format!("MCPHub cannot relay '{method}': {why}")),
            Refusal::Unattributable(why) => jsonrpc::ErrorObject::with_data(
                codes::SERVER_ERROR,
                format!(
                    "MCPHub cannot attribute '{method}' to one client: {why}. Send it related to the client's request \
                     (on that request's stream), or set sessionSharing: \"client\" for server '{server}'"
                ),
                serde_json::json!({"reason": "unattributable", "server": server, "method": method}),
            ),
            Refusal::Hub(why) => jsonrpc::ErrorObject::with_data(
                codes::SERVER_ERROR,
                format!("MCPHub cannot relay '{method}' now: {why}"),
                serde_json::json!({"reason": "hub", "server": server, "method": method}),
            ),
        }
    }
}

/// What a POST came back with.
pub enum Answer {
    /// A complete reply: JSON, 202, or an error status.
    Reply(HttpReply),
    /// An SSE answer whose final response is still to be read.
    Stream(Box<EventStream>),
}

/// One message read from an upstream event stream.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamItem {
    /// A notification (progress, log message, list_changed, …).
    Notification(Value),
    /// A server→client request (a method and an id): sampling, elicitation, roots.
    Request(Value),
    /// The response to the hub's request; the stream is done.
    Final(Value),
}

/// An upstream SSE answer still being read, within the budget of the call
/// that opened it. It can move to another thread (a stream thread); dropping
/// it closes the upstream connection (the 2026-07-28 cancellation signal).
pub struct EventStream {
    lines: BufReader<Box<dyn Read + Send>>,
    parser: sse::Parser,
    want_id: Option<Value>,
    deadline: Deadline,
    server: String,
    status: u16,
    session_id: Option<String>,
    line: Vec<u8>,
    /// Values the request carried, removed from the final message's error
    /// text and from read errors (issue 14 hole 4).
    injected: super::scrub::Injected,
}

impl EventStream {
    /// A stream over the bytes of an SSE body (`text/event-stream`, read
    /// line by line, at most [`MAX_UPSTREAM_MESSAGE`] per line); `want_id` is
    /// the id of the response that ends it (None: any response), read within
    /// `deadline`; `status` and `session_id` are those of the answer's head.
    pub fn new(
        reader: impl Read + Send + 'static,
        want_id: Option<Value>,
        deadline: Deadline,
        server: &str,
        status: u16,
        session_id: Option<String>,
    ) -> Box<EventStream> {
        Box::new(EventStream {
            lines: BufReader::new(Box::new(reader) as Box<dyn Read + Send>),
            parser: sse::Parser::new(),
            want_id,
            deadline,
            server: server.to_string(),
            status,
            session_id,
            line: Vec::new(),
            injected: Default::default(),
        })
    }

    /// What remains of the call's budget.
    pub fn remaining(&self) -> Duration {
        self.deadline.remaining()
    }

    /// Removes `injected` from this stream's final error message and read
    /// errors ([`super::scrub`]).
    pub fn scrub_with(&mut self, injected: super::scrub::Injected) {
        self.injected = injected;
    }

    /// The server this stream comes from.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The next message; `Ok(None)` when the stream ended without the final
    /// response. Events that are not JSON are skipped with a warning.
    ///
    /// A `notifications/progress` extends the call's deadline when the
    /// server has `resetTimeoutOnProgress` ([`Deadline::on_progress`]).
    ///
    /// Errors: `Timeout`/`HubTimeout` once the deadline is spent (the
    /// connection is cut then: a read past it fails), `Transport` on a broken read.
    pub fn next_item(&mut self) -> Result<Option<StreamItem>, UpstreamError> {
        match self.read_item() {
            Ok(Some(StreamItem::Final(mut m))) => {
                self.injected.scrub_message(&mut m);
                Ok(Some(StreamItem::Final(m)))
            }
            Err(e) => Err(e.scrubbed(&self.injected)),
            other => other,
        }
    }

    fn read_item(&mut self) -> Result<Option<StreamItem>, UpstreamError> {
        loop {
            if self.deadline.expired() {
                return Err(self.deadline.error(&self.server));
            }
            self.line.clear();
            let n = (&mut self.lines)
                .take(MAX_UPSTREAM_MESSAGE)
                .read_until(b'\n', &mut self.line)
                .map_err(|e| io_error(&self.server, e, &self.deadline))?;
            let text = String::from_utf8_lossy(&self.line);
            let event = if n == 0 { self.parser.line("") } else { self.parser.line(text.trim_end_matches('\n')) };
            if let Some(ev) = event {
                let Ok(msg) = serde_json::from_str::<Value>(&ev.data) else {
                    log::warn!("upstream '{}' sent an SSE event that is not JSON; ignored", self.server);
                    continue;
                };
                let item = self.classify(msg);
                if matches!(&item, StreamItem::Notification(n) if n.get("method").and_then(Value::as_str) == Some("notifications/progress")) {
                    self.deadline.on_progress();
                }
                return Ok(Some(item));
            }
            if n == 0 {
                return Ok(None);
            }
        }
    }

    fn classify(&self, msg: Value) -> StreamItem {
        let has_method = msg.get("method").is_some();
        let is_response = !has_method && (msg.get("result").is_some() || msg.get("error").is_some());
        if is_response && (self.want_id.is_none() || msg.get("id") == self.want_id.as_ref()) {
            StreamItem::Final(msg)
        } else if has_method && msg.get("id").is_some() {
            StreamItem::Request(msg)
        } else {
            StreamItem::Notification(msg)
        }
    }
}

/// The first 200 bytes of a body as text, for error messages.
pub fn excerpt(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(&raw[..raw.len().min(200)]).into_owned();
    text.replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_why_and_only_a_client_side_one_is_method_not_found() {
        let e = Refusal::Client("the client did not declare that capability").error("s", "sampling/createMessage");
        assert_eq!((e.code, e.message.as_str()), (-32601, "MCPHub cannot relay 'sampling/createMessage': the client did not declare that capability"));
        let e = Refusal::Unattributable("sent on the standalone stream").error("s", "elicitation/create");
        assert_eq!(e.code, -32000);
        assert!(e.message.contains("cannot attribute 'elicitation/create'") && e.message.contains("sessionSharing: \"client\" for server 's'"), "{}", e.message);
        assert_eq!(e.data, Some(serde_json::json!({"reason": "unattributable", "server": "s", "method": "elicitation/create"})));
        let e = Refusal::Hub("too many server→client requests are waiting").error("s", "roots/list");
        assert_eq!((e.code, e.data.as_ref().and_then(|d| d.get("reason")).cloned()), (-32000, Some(serde_json::json!("hub"))));
    }
}
