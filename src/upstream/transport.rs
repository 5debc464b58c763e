//! Streamable HTTP POSTs to one server with ureq 3, JSON or SSE answers.

use super::UpstreamError;
use crate::config::ServerConfig;
use crate::protocol::{codes, jsonrpc, sse};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;
use std::time::{Duration, Instant};
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{Connector, NextTimeout, RustlsConnector};

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
    /// The upstream says the session is gone: 404, or 400 whose message names
    /// the session (docs/decisions.md D3: the request was not executed).
    pub fn is_session_expired(&self) -> bool {
        let text = self
            .message
            .as_ref()
            .and_then(|m| m.pointer("/error/message"))
            .and_then(Value::as_str)
            .unwrap_or(&self.excerpt)
            .to_ascii_lowercase();
        self.status == 404 || (self.status == 400 && text.contains("session"))
    }

    /// The JSON-RPC error code of the message, if it is an error.
    pub fn error_code(&self) -> Option<i64> {
        self.message.as_ref()?.pointer("/error/code")?.as_i64()
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

/// Resolves host names synchronously (getaddrinfo, bounded by the system
/// resolver's own timeouts) so that a per-request `timeout_global` costs no
/// thread: ureq's default resolver spawns one per lookup whenever a timeout
/// covers the resolve phase (docs/decisions.md D2a: 20k → 7.6k req/s).
/// IP-literal URLs are never looked up at all; answers are kept for
/// [`RESOLVE_TTL`] so a keep-alive request does not pay a lookup each time.
#[derive(Debug, Default)]
struct BlockingResolver {
    inner: DefaultResolver,
    cache: parking_lot::Mutex<Option<(String, Instant, ResolvedSocketAddrs)>>,
}

/// How long a resolved address list is reused.
pub const RESOLVE_TTL: Duration = Duration::from_secs(30);

impl Resolver for BlockingResolver {
    fn resolve(&self, uri: &ureq::http::Uri, config: &ureq::config::Config, timeout: NextTimeout) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let key = uri.authority().map(|a| a.as_str()).unwrap_or_default();
        if let Some((k, at, addrs)) = self.cache.lock().as_ref() {
            if k == key && at.elapsed() < RESOLVE_TTL {
                return Ok(addrs.clone());
            }
        }
        let untimed = NextTimeout { per_read: timeout.per_read, per_write: timeout.per_write, ..NextTimeout::default() };
        let addrs = self.inner.resolve(uri, config, untimed)?;
        *self.cache.lock() = Some((key.to_string(), Instant::now(), addrs.clone()));
        Ok(addrs)
    }
}

/// The HTTP side of an [`super::Upstream`].
pub struct Transport {
    agent: ureq::Agent,
    url: String,
    server: String,
    static_headers: Vec<(String, String)>,
    /// Seconds from sending a POST to its answer's head (or failure), for
    /// `/metrics` (`mcphub_upstream_request_duration_seconds{server}`).
    latency: prometheus::Histogram,
}

impl Transport {
    /// One agent per server: keep-alive pool of `pool_size`, TCP_NODELAY,
    /// connect timeout from the config, statuses as values (not errors), and
    /// a blocking resolver (see `BlockingResolver`) so every call can carry a
    /// total deadline without a resolver thread.
    pub fn new(config: &ServerConfig, pool_size: usize) -> Transport {
        let agent_config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .no_delay(true)
            .max_redirects(0)
            .timeout_connect(Some(config.connect_timeout))
            .max_idle_connections_per_host(pool_size.max(1))
            .max_idle_connections(pool_size.max(1) * 2)
            .input_buffer_size(32 * 1024)
            .output_buffer_size(32 * 1024)
            .user_agent(concat!("mcphub/", env!("CARGO_PKG_VERSION")))
            .build();
        // Plain TCP through the tracked connector (so a call can be cut from
        // another thread, see `cancel`), TLS on top for https.
        let connector = ().chain(super::cancel::TrackedTcpConnector).chain(RustlsConnector::default());
        let agent = ureq::Agent::with_parts(agent_config, connector, BlockingResolver::default());
        Transport {
            agent,
            url: config.url.clone(),
            server: config.name.clone(),
            static_headers: config.headers.clone(),
            latency: crate::metrics::upstream_latency_histogram(&config.name),
        }
    }

    /// Latency of this server's POSTs (to the answer's head), seconds.
    pub fn latency(&self) -> &prometheus::Histogram {
        &self.latency
    }

    fn map_err(&self, e: ureq::Error, deadline: &Deadline) -> UpstreamError {
        match e {
            ureq::Error::Timeout(_) => deadline.error(&self.server),
            ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => UpstreamError::Transport {
                server: self.server.clone(),
                detail: e.to_string(),
                sent: false,
            },
            ureq::Error::Io(ref io) if io.kind() == std::io::ErrorKind::ConnectionRefused => UpstreamError::Transport {
                server: self.server.clone(),
                detail: "connection refused".into(),
                sent: false,
            },
            other => UpstreamError::Transport { server: self.server.clone(), detail: other.to_string(), sent: true },
        }
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
    pub fn post(
        &self,
        body: &Value,
        headers: &[(String, String)],
        budget: Duration,
        on_message: &mut dyn FnMut(&Value),
    ) -> Result<HttpReply, UpstreamError> {
        match self.post_open(body, headers, budget)? {
            Answer::Reply(reply) => Ok(reply),
            Answer::Stream(stream) => self.drain(stream, headers, on_message),
        }
    }

    /// POSTs one JSON-RPC message and returns as soon as the answer's head is
    /// in: a complete [`HttpReply`] for JSON bodies, 202 and errors, or the
    /// open [`EventStream`] of an SSE answer for the caller to read (possibly
    /// on another thread), within the same budget.
    pub fn post_open(&self, body: &Value, headers: &[(String, String)], budget: Duration) -> Result<Answer, UpstreamError> {
        self.post_call(body, headers, Deadline::fixed(budget))
    }

    /// [`Transport::post_open`] for a client's call: bounded by `deadline`
    /// (ureq's `timeout_global` = [`Deadline::total`], reads also by the
    /// call's movable read deadline), timeouts naming the layer that ran out.
    pub fn post_call(&self, body: &Value, headers: &[(String, String)], deadline: Deadline) -> Result<Answer, UpstreamError> {
        let resp = self.send_post(body, headers, deadline.total()).map_err(|e| self.map_err(e, &deadline))?;
        self.read_answer(resp, body, deadline)
    }

    /// POSTs a long-lived request (2026-07-28 `subscriptions/listen`): the
    /// answer's head must come within 10 s; an SSE answer then has no total
    /// deadline, only [`LISTEN_READ_TIMEOUT`] per read (the server's keep-alive
    /// comments reset it), after which the caller reconnects.
    pub fn post_long(&self, body: &Value, headers: &[(String, String)]) -> Result<Answer, UpstreamError> {
        let head = Duration::from_secs(10);
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        let req = self.agent.post(&self.url).header("Content-Type", "application/json").header("Accept", "application/json, text/event-stream");
        let resp = self
            .headed(req, headers)
            .config()
            .timeout_recv_response(Some(head))
            .timeout_per_read(Some(LISTEN_READ_TIMEOUT))
            .build()
            .send(&bytes[..])
            .map_err(|e| self.map_err(e, &Deadline::fixed(head)))?;
        self.read_answer(resp, body, Deadline::fixed(Duration::MAX))
    }

    fn read_answer(&self, resp: ureq::http::Response<ureq::Body>, body: &Value, deadline: Deadline) -> Result<Answer, UpstreamError> {
        let status = resp.status().as_u16();
        let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let session_id = header("mcp-session-id");
        let content_type = header("content-type").unwrap_or_default().to_ascii_lowercase();
        let retry_after = header("retry-after");
        let mut reply = HttpReply { status, session_id, message: None, excerpt: String::new(), retry_after };
        if status == 202 {
            return Ok(Answer::Reply(reply));
        }
        let mut body_reader = resp.into_body().into_with_config().limit(MAX_UPSTREAM_MESSAGE).reader();
        if content_type.starts_with("text/event-stream") {
            let want_id = body.get("id").cloned();
            let stream = EventStream::open(body_reader, want_id, deadline, &self.server, status, reply.session_id);
            return Ok(Answer::Stream(stream));
        }
        let mut raw = Vec::new();
        body_reader.read_to_end(&mut raw).map_err(|e| io_error(&self.server, e, &deadline))?;
        match serde_json::from_slice::<Value>(&raw) {
            Ok(v) if v.get("result").is_some() || v.get("error").is_some() => reply.message = Some(v),
            _ => reply.excerpt = excerpt(&raw),
        }
        Ok(Answer::Reply(reply))
    }

    /// Reads an event stream to its final response: notifications go to
    /// `on_message`, server→client requests are refused ([`Refusal::Client`])
    /// on the session `headers` name.
    pub fn drain(
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
    pub fn refuse(&self, request: &Value, headers: &[(String, String)], budget: Duration, why: Refusal<'_>) {
        let method = request.get("method").and_then(Value::as_str).unwrap_or("?");
        let answer = why.error(&self.server, method);
        match why {
            Refusal::Client(_) => log::info!("upstream '{}' sent '{method}'; answered: {}", self.server, answer.message),
            Refusal::Unattributable(_) | Refusal::Hub(_) => {
                log::warn!("upstream '{}' sent '{method}'; answered: {}", self.server, answer.message)
            }
        }
        let Some(id) = request.get("id") else { return };
        self.answer(&answer.to_response(Some(id)), headers, budget.min(ANSWER_BUDGET));
    }

    /// POSTs one JSON-RPC message with the server's configured headers plus
    /// `headers`, the whole exchange bounded by `budget` (`timeout_global`).
    fn send_post(
        &self,
        message: &Value,
        headers: &[(String, String)],
        budget: Duration,
    ) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
        let bytes = serde_json::to_vec(message).unwrap_or_default();
        let req = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream");
        crate::trace::note_server(&self.server);
        let started = Instant::now();
        let sent = self.headed(req, headers).config().timeout_global(Some(budget)).build().send(&bytes[..]);
        self.latency.observe(started.elapsed().as_secs_f64());
        sent
    }

    /// POSTs the hub's answer to a server→client request and discards
    /// whatever comes back (read up to 64 KiB, never parsed): an answer can
    /// never start another exchange, however the server replies.
    pub fn answer(&self, message: &Value, headers: &[(String, String)], budget: Duration) {
        if budget.is_zero() {
            return;
        }
        match self.send_post(message, headers, budget) {
            Ok(resp) => {
                let _ = resp.into_body().into_with_config().limit(64 * 1024).read_to_vec();
            }
            Err(e) => log::debug!("answer to a server→client request on '{}' failed: {e}", self.server),
        }
    }

    /// Opens the legacy standalone server→client stream (`GET`, 2025-11-25
    /// transports) on the session `headers` name. `Ok(None)` when the server
    /// offers none (405, or any answer that is not an event stream). The
    /// stream has no total deadline (it is long-lived); each read waits at
    /// most [`LISTEN_READ_TIMEOUT`], after which the caller reconnects.
    pub fn listen(&self, headers: &[(String, String)]) -> Result<Option<Box<EventStream>>, UpstreamError> {
        let req = self.headed(self.agent.get(&self.url).header("Accept", "text/event-stream"), headers);
        let connect = Duration::from_secs(10);
        let resp = req
            .config()
            .timeout_recv_response(Some(connect))
            .timeout_per_read(Some(LISTEN_READ_TIMEOUT))
            .build()
            .call()
            .map_err(|e| self.map_err(e, &Deadline::fixed(connect)))?;
        let status = resp.status().as_u16();
        let is_stream = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.to_ascii_lowercase().starts_with("text/event-stream"));
        if status != 200 || !is_stream {
            return Ok(None);
        }
        let reader = resp.into_body().into_with_config().limit(u64::MAX).reader();
        Ok(Some(EventStream::open(reader, None, Deadline::fixed(Duration::MAX), &self.server, status, None)))
    }

    /// Adds the server's configured headers, then `headers` (the session's).
    /// The server's configured headers, `headers`, and for a call made for a
    /// downstream request its `X-Request-Id` and W3C trace context
    /// ([`crate::trace::upstream_headers`]).
    fn headed<B>(&self, mut req: ureq::RequestBuilder<B>, headers: &[(String, String)]) -> ureq::RequestBuilder<B> {
        for (k, v) in self.static_headers.iter().chain(headers) {
            req = req.header(k.as_str(), v.as_str());
        }
        for (k, v) in crate::trace::upstream_headers() {
            req = req.header(k, v);
        }
        req
    }

    /// Sends `DELETE` to end a legacy session; errors are logged, not returned.
    pub fn delete(&self, headers: &[(String, String)]) {
        let req = self.headed(self.agent.delete(&self.url), headers);
        if let Err(e) = req.config().timeout_global(Some(Duration::from_secs(2))).build().call() {
            log::debug!("DELETE of an upstream session on '{}' failed: {}", self.server, e);
        }
    }
}

/// An io error while reading an upstream body as an [`UpstreamError`]. ureq
/// reports its own deadlines as an io::Error wrapping `ureq::Error::Timeout`;
/// any failure once the deadline has passed counts as the timeout.
fn io_error(server: &str, e: std::io::Error, deadline: &Deadline) -> UpstreamError {
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
    lines: BufReader<ureq::BodyReader<'static>>,
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
    /// A stream over an SSE body; `want_id` is the id of the response that
    /// ends it (None: any response), read within `deadline`.
    fn open(
        reader: ureq::BodyReader<'static>,
        want_id: Option<Value>,
        deadline: Deadline,
        server: &str,
        status: u16,
        session_id: Option<String>,
    ) -> Box<EventStream> {
        Box::new(EventStream {
            lines: BufReader::new(reader),
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
