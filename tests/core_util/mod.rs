//! Socket-free harness for the hub's protocol behaviour (issue 15 item 7):
//! a `Hub` built from a literal JSON config, answered through
//! `Handler::handle` with a constructed `Request` (the peer is a value, no
//! connection), SSE answers run in memory (`http::sse::collect`). No
//! server, no upstream process; `tests/core_*.rs` import it with
//! `mod core_util;`.
#![allow(dead_code)]

use mcphub::config::Config;
use mcphub::http::{Body, Handler, Request};
use mcphub::hub::Hub;
use mcphub::protocol::jsonrpc;
use mcphub::upstream::transport::{Answer as UpstreamAnswer, Deadline, EventStream, HttpReply, Transport};
use mcphub::upstream::UpstreamError;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

#[path = "../wait_util/mod.rs"]
mod wait_util;
#[allow(unused_imports)]
pub use wait_util::{wait_until, PATIENCE};

/// Events an SSE answer is read to (a stream the hub ends on its own stops earlier).
pub const MAX_EVENTS: usize = 1000;

/// The default client address of a request.
pub const PEER: &str = "127.0.0.1:40000";

pub const ACCEPT: (&str, &str) = ("Accept", "application/json, text/event-stream");
pub const JSON: (&str, &str) = ("Content-Type", "application/json");

/// A hub from `extra` top-level config keys over the defaults (no
/// `mcpServers`, a hub deadline of 8 s, a state directory of its own): the
/// memory session store unless `extra` names Redis.
pub fn hub(extra: Value) -> Hub {
    hub_from(extra, None)
}

/// [`hub`], its servers reached through `connector` when given.
fn hub_from(extra: Value, connector: Option<mcphub::upstream::Connector>) -> Hub {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let state = std::env::temp_dir().join(format!("mcphub-core-state-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let mut cfg = json!({"mcpServers": {}, "timeouts": {"hubMs": 8000}, "stateDir": state});
    if let (Some(o), Some(e)) = (cfg.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            o.insert(k.clone(), v.clone());
        }
    }
    let config = Config::parse(&cfg.to_string()).unwrap_or_else(|e| panic!("invalid test config {cfg}: {e}"));
    match connector {
        Some(c) => Hub::with_connector(config, c).expect("memory session store"),
        None => Hub::new(config).expect("memory session store"),
    }
}

/// A `users` config entry holding `key` (stored as its SHA-256).
pub fn user_with_key(key: &str) -> Value {
    json!({"keys": [format!("sha256:{}", mcphub::users::key_digest(key))]})
}

/// One answer of the hub, its SSE body already read.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The body text; for an SSE answer the stream's text (`http::sse::collect`).
    pub text: String,
    /// Whether the body was an event stream (`Body::Sse`).
    pub sse: bool,
}

impl Answer {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as JSON; for an SSE answer, the last event's data.
    pub fn json(&self) -> Value {
        if self.sse {
            return self.events().pop().unwrap_or(Value::Null);
        }
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    /// The JSON-RPC message text: the body, or the last SSE event's data.
    pub fn message_text(&self) -> String {
        if self.sse {
            return mcphub::protocol::sse::parse_all(&self.text).pop().map(|e| e.data).unwrap_or_default();
        }
        self.text.clone()
    }

    /// Every SSE event's data as JSON.
    pub fn events(&self) -> Vec<Value> {
        mcphub::protocol::sse::parse_all(&self.text)
            .into_iter()
            .map(|e| serde_json::from_str(&e.data).unwrap_or_else(|err| panic!("event data not JSON ({err}): {:?}", e.data)))
            .collect()
    }

    /// `error.code` of the JSON-RPC answer.
    pub fn code(&self) -> Option<i64> {
        self.json()["error"]["code"].as_i64()
    }

    /// `error.message` of the JSON-RPC answer (empty when none).
    pub fn message(&self) -> String {
        self.json()["error"]["message"].as_str().unwrap_or_default().to_string()
    }
}

/// Sends one request from `peer` to the hub and reads its answer.
pub fn request_from(hub: &Hub, peer: &str, method: &str, target: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    exchange(hub, peer, method, target, headers, body, MAX_EVENTS)
}

/// `POST /mcp` from a client that reads `max_events` events of an SSE
/// answer (the priming event counts) and then disconnects.
pub fn post_leaving_after(hub: &Hub, body: &str, headers: &[(&str, &str)], max_events: usize) -> Answer {
    exchange(hub, PEER, "POST", "/mcp", headers, body, max_events)
}

fn build(peer: &str, method: &str, target: &str, headers: &[(&str, &str)], body: &str) -> Request {
    let peer: SocketAddr = peer.parse().expect("a socket address");
    Request {
        method: method.into(),
        target: target.into(),
        headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        body: body.as_bytes().to_vec(),
        peer,
    }
}

/// `POST /mcp` whose SSE answer is read while it is still open: the stream
/// runs on a scoped thread (`http::sse::collect_observed`) and `on_event`
/// runs on this one with each event's data as JSON as soon as the hub writes
/// it, so the client can act mid-stream (POST an answer to a relayed
/// request, cancel the call). Each event is awaited at most [`PATIENCE`].
/// A JSON answer is returned as is, `on_event` never running.
pub fn post_streaming(hub: &Hub, body: &str, headers: &[(&str, &str)], mut on_event: impl FnMut(&Value)) -> Answer {
    let resp = hub.handle(build(PEER, "POST", "/mcp", headers, body));
    let producer = match resp.body {
        Body::Full(bytes) => return Answer { status: resp.status, headers: resp.headers, text: String::from_utf8(bytes).expect("a UTF-8 body"), sse: false },
        Body::Sse(producer) => producer,
    };
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let text = std::thread::scope(|scope| {
        let stream = scope.spawn(move || mcphub::http::sse::collect_observed(producer, MAX_EVENTS, tx));
        loop {
            match rx.recv_timeout(PATIENCE) {
                Ok(wire) => {
                    for event in mcphub::protocol::sse::parse_all(&wire) {
                        if let Ok(v) = serde_json::from_str::<Value>(&event.data) {
                            on_event(&v);
                        }
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("no event and no end of the stream within {PATIENCE:?}"),
            }
        }
        stream.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
    });
    Answer { status: resp.status, headers: resp.headers, text, sse: true }
}

/// An open-ended SSE answer (a listen or GET stream) read event by event
/// while the test goes on: its producer runs on a thread of its own
/// (`http::sse::collect_observed`), events arrive through a channel.
/// Dropping it (or [`OpenStream::close`]) is the client leaving: the hub
/// finds out at its next write to the stream, as there is no pinger.
pub struct OpenStream {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The body of an answer that was not a stream.
    pub text: String,
    events: Option<std::sync::mpsc::Receiver<String>>,
    ready: std::collections::VecDeque<Value>,
}

impl OpenStream {
    /// The next event's data as JSON (events without JSON data, like the
    /// priming event, are skipped); fails after [`PATIENCE`] without one.
    pub fn next(&mut self) -> Value {
        self.next_within(PATIENCE).unwrap_or_else(|| panic!("no event within {PATIENCE:?}"))
    }

    /// The next event within `within`; `None` if none came or the stream ended.
    pub fn next_within(&mut self, within: Duration) -> Option<Value> {
        let end = std::time::Instant::now() + within;
        while self.ready.is_empty() {
            let rx = self.events.as_ref()?;
            let left = end.saturating_duration_since(std::time::Instant::now());
            let wire = rx.recv_timeout(left).ok()?;
            for e in mcphub::protocol::sse::parse_all(&wire) {
                if let Ok(v) = serde_json::from_str::<Value>(&e.data) {
                    self.ready.push_back(v);
                }
            }
        }
        self.ready.pop_front()
    }

    /// The client leaves.
    pub fn close(self) {}
}

/// Sends a request whose answer is an open-ended stream ([`OpenStream`]).
pub fn open_stream(hub: &Hub, method: &str, headers: &[(&str, &str)], body: &str) -> OpenStream {
    let resp = hub.handle(build(PEER, method, "/mcp", headers, body));
    let producer = match resp.body {
        Body::Full(bytes) => {
            let text = String::from_utf8(bytes).expect("a UTF-8 body");
            return OpenStream { status: resp.status, headers: resp.headers, text, events: None, ready: Default::default() };
        }
        Body::Sse(producer) => producer,
    };
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    // Detached: it ends when the hub ends the stream or finds the client gone.
    std::thread::spawn(move || mcphub::http::sse::collect_observed(producer, MAX_EVENTS, tx));
    OpenStream { status: resp.status, headers: resp.headers, text: String::new(), events: Some(rx), ready: Default::default() }
}

fn exchange(hub: &Hub, peer: &str, method: &str, target: &str, headers: &[(&str, &str)], body: &str, max_events: usize) -> Answer {
    let resp = hub.handle(build(peer, method, target, headers, body));
    let (text, sse) = match resp.body {
        Body::Full(bytes) => (String::from_utf8(bytes).expect("a UTF-8 body"), false),
        Body::Sse(producer) => (mcphub::http::sse::collect(producer, max_events), true),
    };
    Answer { status: resp.status, headers: resp.headers, text, sse }
}

/// Sends one request from [`PEER`].
pub fn request(hub: &Hub, method: &str, target: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    request_from(hub, PEER, method, target, headers, body)
}

/// `POST /mcp` with `body` and `headers`.
pub fn post(hub: &Hub, body: &str, headers: &[(&str, &str)]) -> Answer {
    request(hub, "POST", "/mcp", headers, body)
}

/// `GET path` with `headers`.
pub fn get(hub: &Hub, path: &str, headers: &[(&str, &str)]) -> Answer {
    request(hub, "GET", path, headers, "")
}

/// `DELETE /mcp` with `headers`.
pub fn delete(hub: &Hub, headers: &[(&str, &str)]) -> Answer {
    request(hub, "DELETE", "/mcp", headers, "")
}

/// A legacy `initialize` body at `version` with id 0.
pub fn initialize_body(version: &str) -> String {
    jsonrpc::request(&json!(0), "initialize", json!({"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "core", "version": "1"}}))
        .to_string()
}

/// A legacy client with `headers` added (a key): `initialize` at 2025-06-18
/// and `notifications/initialized`; the session id.
pub fn legacy_session_with(hub: &Hub, extra: &[(&str, &str)]) -> String {
    let mut h = vec![ACCEPT, JSON];
    h.extend_from_slice(extra);
    let r = post(hub, &initialize_body("2025-06-18"), &h);
    assert_eq!(r.status, 200, "{}", r.text);
    let sid = r.header("mcp-session-id").expect("the hub mints a session id").to_string();
    h.extend([("Mcp-Session-Id", sid.as_str()), ("MCP-Protocol-Version", "2025-06-18")]);
    let n = post(hub, r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#, &h);
    assert_eq!((n.status, n.text.as_str()), (202, ""));
    sid
}

/// A legacy client: `initialize` + `notifications/initialized`; the session id.
pub fn legacy_session(hub: &Hub) -> String {
    legacy_session_with(hub, &[])
}

/// The headers of a legacy request on session `sid`.
pub fn legacy_headers(sid: &str) -> Vec<(&str, &str)> {
    vec![ACCEPT, JSON, ("Mcp-Session-Id", sid), ("MCP-Protocol-Version", "2025-06-18")]
}

/// A legacy request (id 1) on a session.
pub fn legacy(hub: &Hub, sid: &str, method: &str, params: Value) -> Answer {
    let body = jsonrpc::request(&json!(1), method, params).to_string();
    post(hub, &body, &legacy_headers(sid))
}

/// The `_meta` of a 2026-07-28 request.
pub fn modern_meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "core", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}
    })
}

/// The body (id "m1", `_meta` added) and headers (`MCP-Protocol-Version`,
/// `Mcp-Method`, `Mcp-Name` where the method has one) of a 2026-07-28 request.
pub fn modern_request(method: &str, mut params: Value) -> (String, Vec<(String, String)>) {
    match params.get_mut("_meta").and_then(Value::as_object_mut) {
        Some(m) => m.extend(modern_meta().as_object().unwrap().clone()),
        None => params["_meta"] = modern_meta(),
    }
    let mut h: Vec<(String, String)> = [ACCEPT, JSON, ("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", method)]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Some(field) = mcphub::protocol::headers::name_field(method) {
        let name = params.get(field).and_then(Value::as_str).map(mcphub::protocol::headers::encode_value).unwrap_or_default();
        h.push(("Mcp-Name".into(), name));
    }
    let body = jsonrpc::request(&json!("m1"), method, params).to_string();
    (body, h)
}

/// A 2026-07-28 request with correct headers and `_meta`, plus `extra` headers.
pub fn modern_with(hub: &Hub, method: &str, params: Value, extra: &[(&str, &str)]) -> Answer {
    let (body, h) = modern_request(method, params);
    let mut all: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    all.extend_from_slice(extra);
    post(hub, &body, &all)
}

/// A 2026-07-28 request with correct headers and `_meta`.
pub fn modern(hub: &Hub, method: &str, params: Value) -> Answer {
    modern_with(hub, method, params, &[])
}

/// The line of `/metrics` starting with `start`.
pub fn metric(hub: &Hub, start: &str) -> String {
    let text = get(hub, "/metrics", &[]).text;
    text.lines().find(|l| l.starts_with(start)).unwrap_or_else(|| panic!("no {start} in {text}")).to_string()
}

// ---------------------------------------------------------------------------
// Scripted upstreams: a `Transport` answering from a closure with literal
// replies, given to the hub through `Hub::with_connector` (no socket, no
// upstream process).

/// What a scripted upstream answers one POST with.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// `Mcp-Session-Id` of the answer.
    pub session: Option<String>,
    /// `Retry-After` of the answer.
    pub retry_after: Option<String>,
    pub body: ReplyBody,
    /// How long the server takes to answer ([`Reply::after`]).
    pub delay: Option<Duration>,
}

/// The body of a [`Reply`].
#[derive(Debug, Clone)]
pub enum ReplyBody {
    /// One JSON-RPC message (`application/json`).
    Json(Value),
    /// An event stream of these messages, in order (`text/event-stream`).
    Events(Vec<Value>),
    /// A body that is not JSON-RPC.
    Text(String),
    /// No body (202, or an error status without one).
    Empty,
    /// No answer at all: the connection was refused (the request never left).
    Unreachable,
    /// An event stream written as it goes ([`Live`]).
    Live(Live),
}

/// The messages of an event stream produced one at a time while the hub
/// reads it: `next` runs when the hub wants the next event and may block
/// (bounded: wait with [`Cut::wait_for`]) until, say, the hub answered a
/// request sent earlier on the stream; `None` ends the stream. Once the hub
/// cuts the call (`CallHandle::cut`: the client cancelled or left) the next
/// read fails as on a shut-down socket, and a [`Cut::wait_for`] in progress
/// returns `None`. Dropping the stream (the hub closing the upstream
/// connection) is recorded in the traffic as `closed`.
#[derive(Clone)]
pub struct Live(Arc<Mutex<Option<LiveFn>>>);

type LiveFn = Box<dyn FnMut(&Cut) -> Option<Value> + Send>;

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Live(..)")
    }
}

/// The call a scripted answer belongs to: its cancellation handle and its
/// deadline, which the scripted server honours as a socket would.
pub struct Cut {
    handle: Option<Arc<mcphub::upstream::cancel::CallHandle>>,
    deadline: Deadline,
}

impl Cut {
    /// Whether the hub cut the call.
    pub fn is_cut(&self) -> bool {
        self.handle.as_ref().is_some_and(|h| h.is_cut())
    }

    /// Time left until the call's read deadline (moved by progress with
    /// `resetTimeoutOnProgress`, else the call's deadline).
    pub fn left(&self) -> Duration {
        match self.handle.as_ref().and_then(|h| h.read_deadline().get()) {
            Some(at) => at.saturating_duration_since(std::time::Instant::now()),
            None => self.deadline.remaining(),
        }
    }

    /// The server taking `d` to do its work: `true` once `d` passed, `false`
    /// as soon as the call is cut or its deadline passes (a socket read
    /// would fail then).
    pub fn pause(&self, d: Duration) -> bool {
        let end = std::time::Instant::now() + d;
        loop {
            let now = std::time::Instant::now();
            if now >= end {
                return true;
            }
            if self.is_cut() || self.left().is_zero() {
                return false;
            }
            std::thread::sleep((end - now).min(self.left()).min(Duration::from_millis(10)));
        }
    }

    /// [`Traffic::wait_for`] that gives up (`None`) once the call is cut or
    /// its deadline passed, as a blocked socket read would fail.
    pub fn wait_for(&self, traffic: &Traffic, within: Duration, pred: impl Fn(&Seen) -> bool) -> Option<Seen> {
        let end = std::time::Instant::now() + within;
        while !self.is_cut() && !self.left().is_zero() {
            let left = end.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            if let Some(s) = traffic.wait_for(left.min(self.left()).min(Duration::from_millis(10)), &pred) {
                return Some(s);
            }
        }
        None
    }

    /// The read error of a cut call or one past its deadline, if so.
    fn read_error(&self) -> Option<std::io::Error> {
        if self.is_cut() {
            return Some(std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "the call was cut"));
        }
        self.left().is_zero().then(|| std::io::Error::new(std::io::ErrorKind::TimedOut, "read timed out"))
    }
}

/// The `Read` side of a [`Live`] stream, given to `EventStream::new`.
struct LiveReader {
    next: LiveFn,
    cut: Cut,
    buf: Vec<u8>,
    at: usize,
    /// Recorded as `closed` on drop.
    server: String,
    id: Value,
    traffic: Traffic,
}

impl std::io::Read for LiveReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if let Some(e) = self.cut.read_error() {
            return Err(e);
        }
        if self.at == self.buf.len() {
            let next = (self.next)(&self.cut);
            if let Some(e) = self.cut.read_error() {
                return Err(e);
            }
            match next {
                Some(m) => {
                    self.buf = format!("data: {m}\n\n").into_bytes();
                    self.at = 0;
                }
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl Drop for LiveReader {
    fn drop(&mut self) {
        let seen = Seen { server: self.server.clone(), kind: "closed", body: json!({"id": self.id}), headers: Vec::new(), at: std::time::Instant::now() };
        self.traffic.push(seen);
    }
}

impl Reply {
    /// 200 with this JSON-RPC message.
    pub fn json(message: Value) -> Reply {
        Reply { status: 200, session: None, retry_after: None, body: ReplyBody::Json(message), delay: None }
    }
    /// 200 with the result of the request `body` (its id echoed).
    pub fn result(body: &Value, result: Value) -> Reply {
        Reply::json(jsonrpc::result_response(&body["id"], result))
    }
    /// 200 with a JSON-RPC error answering the request `body`.
    pub fn error(body: &Value, code: i64, message: &str) -> Reply {
        Reply::json(jsonrpc::ErrorObject::new(code, message).to_response(Some(&body["id"])))
    }
    /// 200 with an event stream of `messages`.
    pub fn events(messages: Vec<Value>) -> Reply {
        Reply { status: 200, session: None, retry_after: None, body: ReplyBody::Events(messages), delay: None }
    }
    /// `status` with no body (202 for a notification).
    pub fn status(status: u16) -> Reply {
        Reply { status, session: None, retry_after: None, body: ReplyBody::Empty, delay: None }
    }
    /// `status` with a body that is not JSON-RPC.
    pub fn text(status: u16, text: &str) -> Reply {
        Reply { status, session: None, retry_after: None, body: ReplyBody::Text(text.into()), delay: None }
    }
    /// 200 with an event stream whose messages `next` produces as the hub reads ([`Live`]).
    pub fn live(next: impl FnMut(&Cut) -> Option<Value> + Send + 'static) -> Reply {
        let live = Live(Arc::new(Mutex::new(Some(Box::new(next)))));
        Reply { status: 200, session: None, retry_after: None, body: ReplyBody::Live(live), delay: None }
    }
    /// A server that cannot be reached (connection refused, nothing sent).
    pub fn unreachable() -> Reply {
        Reply { status: 0, session: None, retry_after: None, body: ReplyBody::Unreachable, delay: None }
    }
    /// With this HTTP status.
    pub fn with_status(mut self, status: u16) -> Reply {
        self.status = status;
        self
    }
    /// With `Mcp-Session-Id: id`.
    pub fn session(mut self, id: &str) -> Reply {
        self.session = Some(id.into());
        self
    }
    /// Answered after `delay` (the server's latency): a call whose deadline
    /// ends first fails as a timed-out read would, at its deadline.
    pub fn after(mut self, delay: Duration) -> Reply {
        self.delay = Some(delay);
        self
    }
    /// With `Retry-After: value`.
    pub fn retry_after(mut self, value: &str) -> Reply {
        self.retry_after = Some(value.into());
        self
    }
}

/// How a scripted upstream answers: `(request body, headers) → reply`.
pub type Script = Arc<dyn Fn(&Value, &[(String, String)]) -> Reply + Send + Sync>;

/// One message a scripted upstream received (with the server's configured
/// headers first, as the HTTP transport sends them).
#[derive(Debug, Clone)]
pub struct Seen {
    pub server: String,
    /// `post` (a request or notification, however the hub sent it), `get`
    /// (the legacy standalone stream opened),
    /// `answer` (the hub's answer to a server→client request), `delete`, `closed` (the hub dropped a
    /// [`Live`] stream; `body.id` is the id of the request it answered).
    pub kind: &'static str,
    pub body: Value,
    pub headers: Vec<(String, String)>,
    /// When it arrived.
    pub at: std::time::Instant,
}

impl Seen {
    pub fn method(&self) -> &str {
        self.body["method"].as_str().unwrap_or("")
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Everything the scripted upstreams of one hub received, in order.
#[derive(Clone, Default)]
pub struct Traffic(Arc<(Mutex<Vec<Seen>>, Condvar)>);

impl Traffic {
    fn push(&self, seen: Seen) {
        self.0 .0.lock().unwrap().push(seen);
        self.0 .1.notify_all();
    }
    /// Blocks until something received matches `pred` (the first such), at
    /// most `within`; `None` if nothing did. For scripts that wait for the
    /// hub (an answer, a cancellation) before they go on.
    pub fn wait_for(&self, within: Duration, pred: impl Fn(&Seen) -> bool) -> Option<Seen> {
        let end = std::time::Instant::now() + within;
        let mut seen = self.0 .0.lock().unwrap();
        loop {
            if let Some(s) = seen.iter().find(|s| pred(s)) {
                return Some(s.clone());
            }
            let left = end.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            seen = self.0 .1.wait_timeout(seen, left).unwrap().0;
        }
    }
    /// The hub's answers to `server`'s requests (`answer`), in order.
    pub fn answers(&self, server: &str) -> Vec<Seen> {
        self.all().into_iter().filter(|s| s.server == server && s.kind == "answer").collect()
    }
    /// What `server` received (POSTs), in order.
    pub fn posts(&self, server: &str) -> Vec<Seen> {
        self.0 .0.lock().unwrap().iter().filter(|s| s.server == server && s.kind == "post").cloned().collect()
    }
    /// The `method` requests `server` received.
    pub fn calls(&self, server: &str, method: &str) -> Vec<Seen> {
        self.posts(server).into_iter().filter(|s| s.method() == method).collect()
    }
    /// Everything received, in order.
    pub fn all(&self) -> Vec<Seen> {
        self.0 .0.lock().unwrap().clone()
    }
}

struct Scripted {
    server: String,
    /// The server's configured headers, sent first as the HTTP transport does.
    static_headers: Vec<(String, String)>,
    script: Script,
    traffic: Traffic,
    latency: prometheus::Histogram,
}

impl Scripted {
    fn record(&self, kind: &'static str, body: &Value, headers: &[(String, String)]) {
        let seen = Seen { server: self.server.clone(), kind, body: body.clone(), headers: headers.to_vec(), at: std::time::Instant::now() };
        self.traffic.push(seen);
    }

    fn reply(&self, body: &Value, headers: &[(String, String)], deadline: Deadline) -> Result<UpstreamAnswer, UpstreamError> {
        let headers: Vec<(String, String)> = self.static_headers.iter().chain(headers).cloned().collect();
        self.record("post", body, &headers);
        let reply = (self.script)(body, &headers);
        if let Some(delay) = reply.delay {
            let cut = Cut { handle: mcphub::upstream::cancel::current(), deadline: deadline.clone() };
            if !cut.pause(delay) {
                return Err(match cut.read_error() {
                    Some(e) if e.kind() == std::io::ErrorKind::TimedOut => deadline.error(&self.server),
                    _ => UpstreamError::Transport { server: self.server.clone(), detail: "the call was cut".into(), sent: true },
                });
            }
        }
        Ok(match reply.body {
            ReplyBody::Unreachable => {
                return Err(UpstreamError::Transport { server: self.server.clone(), detail: "connection refused".into(), sent: false })
            }
            ReplyBody::Live(Live(next)) => {
                let next = next.lock().unwrap().take().expect("a live stream is read once");
                let reader = LiveReader { next, cut: Cut { handle: mcphub::upstream::cancel::current(), deadline: deadline.clone() }, buf: Vec::new(), at: 0, server: self.server.clone(), id: body.get("id").cloned().unwrap_or(Value::Null), traffic: self.traffic.clone() };
                UpstreamAnswer::Stream(EventStream::new(reader, body.get("id").cloned(), deadline, &self.server, reply.status, reply.session))
            }
            ReplyBody::Events(messages) => {
                let text: String = messages.iter().map(|m| format!("data: {m}\n\n")).collect();
                let reader = std::io::Cursor::new(text.into_bytes());
                UpstreamAnswer::Stream(EventStream::new(reader, body.get("id").cloned(), deadline, &self.server, reply.status, reply.session))
            }
            other => {
                let (message, excerpt) = match other {
                    ReplyBody::Json(m) => (Some(m), String::new()),
                    ReplyBody::Text(t) => (None, t),
                    _ => (None, String::new()),
                };
                UpstreamAnswer::Reply(HttpReply { status: reply.status, session_id: reply.session, message, excerpt, retry_after: reply.retry_after })
            }
        })
    }
}

impl Transport for Scripted {
    fn server(&self) -> &str {
        &self.server
    }
    fn latency(&self) -> &prometheus::Histogram {
        &self.latency
    }
    fn post_call(&self, body: &Value, headers: &[(String, String)], deadline: Deadline) -> Result<UpstreamAnswer, UpstreamError> {
        self.reply(body, headers, deadline)
    }
    fn post_long(&self, body: &Value, headers: &[(String, String)]) -> Result<UpstreamAnswer, UpstreamError> {
        self.reply(body, headers, Deadline::fixed(std::time::Duration::from_secs(10)))
    }
    fn answer(&self, message: &Value, headers: &[(String, String)], _budget: std::time::Duration) {
        // A notification sent this way (`notifications/cancelled`) is a POST like any other.
        let kind = if message.get("method").is_some() { "post" } else { "answer" };
        self.record(kind, message, headers);
    }
    /// The legacy standalone GET stream: the script is asked with a `null`
    /// body (recorded as `get`); a [`Reply::live`] answer is the stream,
    /// anything else is a server without one.
    fn listen(&self, headers: &[(String, String)]) -> Result<Option<Box<EventStream>>, UpstreamError> {
        let headers: Vec<(String, String)> = self.static_headers.iter().chain(headers).cloned().collect();
        // Recorded once the script has taken the GET (a script registers its
        // stream there), so a test waiting on the record finds it registered.
        let reply = (self.script)(&Value::Null, &headers);
        self.record("get", &Value::Null, &headers);
        let ReplyBody::Live(Live(next)) = reply.body else { return Ok(None) };
        let next = next.lock().unwrap().take().expect("a live stream is read once");
        let deadline = Deadline::fixed(mcphub::upstream::transport::LISTEN_READ_TIMEOUT);
        let cut = Cut { handle: mcphub::upstream::cancel::current(), deadline: deadline.clone() };
        let reader = LiveReader { next, cut, buf: Vec::new(), at: 0, server: self.server.clone(), id: Value::Null, traffic: self.traffic.clone() };
        Ok(Some(EventStream::new(reader, None, deadline, &self.server, reply.status, None)))
    }
    fn delete(&self, headers: &[(String, String)]) {
        self.record("delete", &Value::Null, headers);
    }
}

/// A hub whose `mcpServers` are the scripted `servers` (name, extra server
/// config keys, script), plus `extra` top-level config keys; the traffic
/// they received.
pub fn hub_with_servers(extra: Value, servers: Vec<(&str, Value, Script)>) -> (Hub, Traffic) {
    let traffic = Traffic::default();
    (hub_with_traffic(extra, servers, traffic.clone()), traffic)
}

/// [`hub_with_servers`] recording into `traffic`, made beforehand so that
/// scripts can wait on it ([`Traffic::wait_for`]).
pub fn hub_with_traffic(extra: Value, servers: Vec<(&str, Value, Script)>, traffic: Traffic) -> Hub {
    let mut map = serde_json::Map::new();
    let mut scripts = std::collections::HashMap::new();
    for (name, keys, script) in servers {
        let mut s = json!({"url": format!("http://{name}.scripted.invalid/mcp"), "timeoutMs": 5000});
        if let (Some(o), Some(k)) = (s.as_object_mut(), keys.as_object()) {
            o.extend(k.clone());
        }
        map.insert(name.to_string(), s);
        scripts.insert(name.to_string(), script);
    }
    let mut cfg = extra;
    cfg["mcpServers"] = Value::Object(map);
    let t = traffic.clone();
    let connector: mcphub::upstream::Connector = Arc::new(move |config: &mcphub::config::ServerConfig, _pool: usize| {
        let script = scripts.get(&config.name).cloned().unwrap_or_else(|| panic!("no script for server '{}'", config.name));
        let opts = prometheus::HistogramOpts::new("scripted_upstream_seconds", "scripted upstream latency");
        Box::new(Scripted { server: config.name.clone(), static_headers: config.headers.clone(), script, traffic: t.clone(), latency: prometheus::Histogram::with_opts(opts).unwrap() }) as Box<dyn Transport>
    });
    hub_from(cfg, Some(connector))
}

/// A legacy (2025-11-25) server: refuses `server/discover` like an SDK
/// server (-32601), `initialize` → session `{name}-s1`, notifications 202,
/// `tools/list` → `tools`, `tools/call` → text `"{name}: {arguments.text}"`.
pub fn legacy_server(name: &str, tools: Value) -> Script {
    let name = name.to_string();
    Arc::new(move |body: &Value, _headers: &[(String, String)]| match body["method"].as_str().unwrap_or("") {
        "server/discover" => Reply::error(body, -32601, "Method not found"),
        "initialize" => Reply::result(
            body,
            json!({"protocolVersion": "2025-11-25", "capabilities": {"tools": {}}, "serverInfo": {"name": name, "version": "1"}}),
        )
        .session(&format!("{name}-s1")),
        m if m.starts_with("notifications/") => Reply::status(202),
        "tools/list" => Reply::result(body, json!({"tools": tools})),
        "tools/call" => tool_text(body, &name),
        _ => Reply::error(body, -32601, "Method not found"),
    })
}

/// A 2026-07-28 server: `server/discover` names 2026-07-28, no
/// `subscriptions/listen` (405), `tools/list` → `tools`, `tools/call` →
/// text `"{name}: {arguments.text}"` with `resultType`.
pub fn modern_server(name: &str, tools: Value) -> Script {
    let name = name.to_string();
    Arc::new(move |body: &Value, _headers: &[(String, String)]| match body["method"].as_str().unwrap_or("") {
        "server/discover" => Reply::result(
            body,
            json!({"supportedVersions": ["2026-07-28"], "capabilities": {"tools": {}}, "serverInfo": {"name": name, "version": "1"}, "resultType": "complete"}),
        ),
        "subscriptions/listen" => Reply::status(405),
        "tools/list" => Reply::result(body, json!({"tools": tools, "resultType": "complete"})),
        "tools/call" => {
            let mut r = tool_text(body, &name);
            if let ReplyBody::Json(m) = &mut r.body {
                m["result"]["resultType"] = json!("complete");
            }
            r
        }
        _ => Reply::error(body, -32601, "Method not found").with_status(404),
    })
}

/// The answer of a `tools/call`: text `"{server}: {arguments.text}"`.
pub fn tool_text(body: &Value, server: &str) -> Reply {
    let text = format!("{server}: {}", body["params"]["arguments"]["text"].as_str().unwrap_or(""));
    Reply::result(body, json!({"content": [{"type": "text", "text": text}], "isError": false}))
}

/// A tool list entry named `name`.
pub fn tool(name: &str) -> Value {
    json!({"name": name, "description": format!("the {name} tool"), "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}})
}

/// Names in a list result.
pub fn names(msg: &Value, field: &str) -> Vec<String> {
    msg["result"][field].as_array().unwrap_or_else(|| panic!("no {field} in {msg}")).iter().filter_map(|t| t["name"].as_str().map(str::to_string)).collect()
}

/// The `Location` of an answer (empty when none).
pub fn location(a: &Answer) -> String {
    a.header("Location").unwrap_or_default().to_string()
}

/// The value of query parameter `name` in `url` (form-decoded: `+` is a space).
pub fn param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k == name).then(|| percent_encoding::percent_decode_str(&v.replace('+', " ")).decode_utf8_lossy().to_string())
    })
}

/// Every `Set-Cookie` of an answer.
pub fn set_cookies(a: &Answer) -> Vec<&str> {
    a.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie")).map(|(_, v)| v.as_str()).collect()
}

/// The `Set-Cookie` whose cookie is `name` (whole header value).
pub fn set_cookie<'a>(a: &'a Answer, name: &str) -> &'a str {
    let prefix = format!("{name}=");
    set_cookies(a).into_iter().find(|c| c.starts_with(&prefix)).unwrap_or_else(|| panic!("no {name} cookie in {:?}", a.headers))
}

/// The value of a `Set-Cookie` header.
pub fn cookie_value(set_cookie: &str) -> String {
    set_cookie.split(';').next().and_then(|c| c.split_once('=')).map(|(_, v)| v.to_string()).unwrap_or_default()
}

/// A loopback `Host` (a secure context: cookies get the `__Host-` prefix).
pub const HOST: (&str, &str) = ("Host", "127.0.0.1:3000");
/// A form body's `Content-Type`.
pub const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

/// `application/x-www-form-urlencoded` (also a query) of `pairs`.
pub fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The first `name="csrf" value="…"` of a page.
pub fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").unwrap_or_else(|| panic!("no csrf field in {page}")) + "name=\"csrf\" value=\"".len();
    page[at..].split('"').next().unwrap().to_string()
}

/// A signed-in browser of the pages: its session cookie (`name=value`) and CSRF token.
pub struct Browser {
    pub cookie: String,
    pub csrf: String,
}

impl Browser {
    pub fn get(&self, h: &Hub, path: &str) -> Answer {
        get(h, path, &[HOST, ("Cookie", &self.cookie)])
    }

    /// A form POST with this session's CSRF token first.
    pub fn post(&self, h: &Hub, path: &str, pairs: &[(&str, &str)]) -> Answer {
        let mut all = vec![("csrf", self.csrf.as_str())];
        all.extend_from_slice(pairs);
        request(h, "POST", path, &[HOST, FORM, ("Cookie", &self.cookie)], &form(&all))
    }
}

/// Key sign-in through `GET /ui/login` + `POST /ui/login/key` with `host`
/// (cookie names with `prefix`: `__Host-` on a secure hub, `` otherwise),
/// `extra_cookie` (`name=value`) sent along with the form; the POST's
/// answer (a 303) and the browser, whose CSRF token is read from `/ui/connect`.
pub fn key_sign_in(h: &Hub, key: &str, host: (&str, &str), prefix: &str, extra_cookie: Option<&str>) -> (Answer, Browser) {
    let login = get(h, "/ui/login", &[host]);
    assert_eq!(login.status, 200, "{}", login.text);
    let pre = cookie_value(set_cookie(&login, &format!("{prefix}mcphub_csrf")));
    assert_eq!(csrf_of(&login.text), pre, "the form carries the double-submit token");
    let mut cookie = format!("{prefix}mcphub_csrf={pre}");
    if let Some(c) = extra_cookie {
        cookie.push_str("; ");
        cookie.push_str(c);
    }
    let r = request(h, "POST", "/ui/login/key", &[host, FORM, ("Cookie", &cookie)], &form(&[("csrf", &pre), ("key", key)]));
    assert_eq!(r.status, 303, "{}", r.text);
    let session = format!("{prefix}mcphub_session={}", cookie_value(set_cookie(&r, &format!("{prefix}mcphub_session"))));
    let page = get(h, "/ui/connect", &[host, ("Cookie", &session)]);
    assert_eq!(page.status, 200, "{}", page.text);
    let csrf = csrf_of(&page.text);
    (r, Browser { cookie: session, csrf })
}

/// The levels of `notifications/message`, lowest first, that [`logging_server`] sends.
pub const LEVELS: [&str; 4] = ["debug", "info", "warning", "error"];

/// A legacy server (one session) with logging and one tool, `say`: each call
/// answers on an event stream with one `notifications/message` per level in
/// [`LEVELS`], each carrying `{marker}:{level}` (the call's argument), then
/// the result.
pub fn logging_server() -> Script {
    let base = legacy_server("log", json!([tool("say")]));
    Arc::new(move |body: &Value, h: &[(String, String)]| match body["method"].as_str().unwrap_or("") {
        "initialize" => Reply::result(body, json!({"protocolVersion": "2025-06-18", "capabilities": {"tools": {}, "logging": {}}, "serverInfo": {"name": "log", "version": "1"}})).session("shared-log"),
        "logging/setLevel" => Reply::status(202),
        "tools/call" => {
            let marker = body["params"]["arguments"]["marker"].as_str().unwrap_or("?").to_string();
            let mut events: Vec<Value> = LEVELS
                .iter()
                .map(|level| json!({"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": level, "logger": "say", "data": format!("{marker}:{level}")}}))
                .collect();
            events.push(json!({"jsonrpc": "2.0", "id": body["id"], "result": {"content": [{"type": "text", "text": marker}]}}));
            Reply::events(events)
        }
        _ => base(body, h),
    })
}
