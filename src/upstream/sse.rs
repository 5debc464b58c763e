//! The HTTP+SSE transport of MCP 2024-11-05 (basic/transports, "HTTP with
//! SSE"; issue 19): `"type": "sse"` servers.
//!
//! The client GETs the server's SSE URL and keeps the event stream open; the
//! first event is `endpoint`, whose data is the URI every client→server
//! message is then POSTed to (relative, resolved against the SSE URL); every
//! server→client message (responses included) arrives on the stream as an
//! `event: message`. Nothing but the JSON-RPC id ties a response to its
//! request.
//!
//! As for stdio ([`super::stdio`]), a connection *is* the session:
//! `initialize` without a session id opens a new stream and answers with a
//! session id this transport mints (`sse-<server>-<n>-<hex>`); the
//! upstream's session pool makes that one stream per (server, context key),
//! single-flight, and heals a session whose stream is gone (this transport
//! answers 404 for it) by opening a new one. Calls on one stream are
//! multiplexed by JSON-RPC id ([`super::mux`]).
//!
//! Rules:
//! - the endpoint must be on the SSE URL's origin (scheme, host, port): the
//!   hub POSTs the server's configured headers and the caller's credentials
//!   there, so a hostile or misconfigured server cannot point them elsewhere;
//! - the GET carries the server's configured headers and the caller's
//!   credential headers (everything the upstream passes except
//!   `Mcp-Session-Id` / `MCP-Protocol-Version`, which mean nothing here), and
//!   so does every POST;
//! - a POST answered 2xx is sent (its body is ignored: the answer comes on
//!   the stream); 404 (or 400 naming the session) means the server no longer
//!   knows the session: its calls in flight fail, the stream is cut, and the
//!   caller gets 404 (→ heal); 401/403 come back as such (→ `Rejected` for a
//!   server with per-user credentials); other statuses are errors;
//! - the end of the stream (or a read error) fails every call in flight at
//!   once, naming the server and why; the session is forgotten. The next
//!   `initialize` of the server waits a jittered exponential back-off
//!   ([`reconnect_wait`], seeds/004) when the previous stream failed
//!   recently, or fails with `Unavailable` when that wait passes its deadline;
//! - the stream has no read timeout (a 2024-11-05 server need not send
//!   keep-alives): the hub ends it by cutting its socket
//!   ([`super::cancel::CallHandle::cut`]) on `delete`, at shutdown, and when
//!   the server forgot the session.

use super::cancel::{self, CallHandle};
use super::mux::Mux;
use super::transport::{excerpt, Answer, Deadline, EventStream, HttpReply, StreamItem, Transport, ANSWER_BUDGET, MAX_UPSTREAM_MESSAGE};
use super::UpstreamError;
use crate::config::ServerConfig;
use crate::protocol::sse;
use parking_lot::Mutex;
use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Header fields of the hub's legacy session that an HTTP+SSE server does
/// not use (its session is the stream): never sent.
const SESSION_HEADERS: [&str; 2] = ["mcp-session-id", "mcp-protocol-version"];

/// Most bytes of a POST's answer read (then dropped: the answer comes on the stream).
const MAX_POST_ANSWER: u64 = 64 * 1024;

/// The header fields of `headers` sent to an HTTP+SSE server: all but the
/// session's own ([`SESSION_HEADERS`]).
pub fn passed(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers.iter().filter(|(k, _)| !SESSION_HEADERS.iter().any(|s| k.eq_ignore_ascii_case(s))).cloned().collect()
}

/// The endpoint an `endpoint` event's `data` names, resolved against the SSE
/// URL (WHATWG URL rules: `/message?sessionId=…`, `messages/?session_id=…`
/// and absolute URLs all work). Errors when it is not a URI reference, or
/// not on the SSE URL's origin (scheme, host, port: the hub sends the
/// server's credentials only there).
pub fn resolve_endpoint(sse_url: &url::Url, data: &str) -> Result<url::Url, String> {
    let endpoint = sse_url.join(data.trim()).map_err(|e| format!("its endpoint event is not a URI reference ({e})"))?;
    if !matches!(endpoint.scheme(), "http" | "https") || endpoint.origin() != sse_url.origin() {
        let named = match endpoint.origin() {
            o @ url::Origin::Tuple(..) => o.ascii_serialization(),
            url::Origin::Opaque(_) => format!("a {}: URI", endpoint.scheme()),
        };
        return Err(format!(
            "its endpoint event names {named}, not the SSE URL's origin {}; refused (the hub sends the server's headers and the caller's credentials to that origin only)",
            sse_url.origin().ascii_serialization()
        ));
    }
    Ok(endpoint)
}

/// The wait before opening a server's next stream after `failures` failed
/// streams (or failed opens) in a row: [`super::retry::reconnect_backoff`]
/// (500 ms after one failure, doubling, at most 30 s) ±20 % jitter
/// (seeds/004: jittered exponential back-off); zero without failures.
pub fn reconnect_wait(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    crate::random::jittered(super::retry::reconnect_backoff(failures))
}

/// One open event stream: one session.
struct Session {
    id: String,
    mux: Arc<Mux>,
    /// Where messages are POSTed (set once the `endpoint` event came).
    endpoint: OnceLock<url::Url>,
    /// The GET's connection: cutting it ends the stream.
    stream: Arc<CallHandle>,
    /// The headers it was opened with (for the POSTs the reader sends itself).
    headers: Vec<(String, String)>,
    /// Initialized: its end counts as a failure of the server.
    ready: AtomicBool,
    /// The hub ends it on purpose (delete, shutdown, forgotten, failed open).
    stopping: AtomicBool,
}

impl Session {
    fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.stream.cut();
    }
}

#[derive(Default)]
struct State {
    sessions: HashMap<String, Arc<Session>>,
    /// Streams (or opens) of this server that failed in a row, and when the last did.
    failures: u32,
    failed_at: Option<Instant>,
}

struct Inner {
    server: String,
    /// The SSE URL (an error text when the configured URL does not parse).
    url: Result<url::Url, String>,
    /// POSTs: one keep-alive pool.
    posts: ureq::Agent,
    /// GETs: never pooled (a stream's socket is cut to end it; it must not
    /// come back as another request's connection).
    streams: ureq::Agent,
    static_headers: Vec<(String, String)>,
    state: Mutex<State>,
    next: AtomicU64,
    threads: OnceLock<crate::threads::Threads>,
    latency: prometheus::Histogram,
}

/// The HTTP+SSE client of one server (see the module doc).
pub struct SseTransport {
    inner: Arc<Inner>,
}

impl SseTransport {
    /// The transport of `config` (its `transport` is `Sse`, its `url` the
    /// SSE URL). Opens nothing: a stream opens on the first `initialize`.
    pub fn new(config: &ServerConfig, pool_size: usize) -> SseTransport {
        let url = url::Url::parse(&config.url).map_err(|e| format!("its URL does not parse ({e})"));
        SseTransport {
            inner: Arc::new(Inner {
                server: config.name.clone(),
                url,
                posts: super::streamable::agent(config, pool_size.max(1)),
                streams: super::streamable::agent(config, 0),
                static_headers: config.headers.clone(),
                state: Mutex::new(State::default()),
                next: AtomicU64::new(1),
                threads: OnceLock::new(),
                latency: crate::metrics::upstream_latency_histogram(&config.name),
            }),
        }
    }

}

fn reply(status: u16, session_id: Option<String>, message: Option<Value>, excerpt: String) -> HttpReply {
    HttpReply { status, session_id, message, excerpt, retry_after: None }
}

fn gone() -> HttpReply {
    reply(404, None, None, "the event stream of this session has ended".into())
}

impl Inner {
    fn threads(&self) -> &crate::threads::Threads {
        self.threads.get_or_init(crate::threads::Threads::new)
    }

    fn session_of(&self, headers: &[(String, String)]) -> Option<Arc<Session>> {
        self.state.lock().sessions.get(super::transport::session_id(headers)?).cloned()
    }

    fn forget(&self, session: &Session) {
        self.state.lock().sessions.remove(&session.id);
    }

    /// A stream of this server failed (or could not open): the next open backs off.
    fn failed(&self) {
        let mut st = self.state.lock();
        st.failures = st.failures.saturating_add(1);
        st.failed_at = Some(Instant::now());
    }

    fn succeeded(&self) {
        let mut st = self.state.lock();
        st.failures = 0;
        st.failed_at = None;
    }

    /// Waits out the back-off after failed streams, within `until`.
    fn back_off(&self, until: Instant) -> Result<(), UpstreamError> {
        let (failures, at) = {
            let st = self.state.lock();
            match st.failed_at {
                Some(at) if st.failures > 0 => (st.failures, at),
                _ => return Ok(()),
            }
        };
        let ready = at + reconnect_wait(failures);
        let now = Instant::now();
        if ready <= now {
            return Ok(());
        }
        if ready > until {
            return Err(UpstreamError::Unavailable {
                server: self.server.clone(),
                failures,
                retry_after_secs: crate::limits::bulkhead::whole_secs(ready - now),
            });
        }
        log::debug!("sse server '{}': waiting {} ms before opening a new event stream ({failures} failed)", self.server, (ready - now).as_millis());
        std::thread::sleep(ready - now);
        Ok(())
    }

    /// The server no longer has `session` (it said so, or it is ended on
    /// purpose): forgotten, its calls fail with `why`, its stream is cut.
    fn lose(&self, session: &Session, why: &str) {
        session.stopping.store(true, Ordering::SeqCst);
        self.forget(session);
        session.mux.close(why);
        session.stream.cut();
    }

    /// POSTs `message` to `endpoint` with the server's configured headers,
    /// `headers` and the call's trace headers, the whole exchange within
    /// `budget`; the status and an excerpt of the (otherwise ignored) body.
    fn post(&self, endpoint: &url::Url, message: &Value, headers: &[(String, String)], budget: Duration) -> Result<(u16, String), ureq::Error> {
        let bytes = serde_json::to_vec(message).unwrap_or_default();
        let mut req = self.posts.post(endpoint.as_str()).header("Content-Type", "application/json");
        for (k, v) in self.static_headers.iter().chain(headers) {
            req = req.header(k.as_str(), v.as_str());
        }
        for (k, v) in crate::trace::upstream_headers() {
            req = req.header(k, v);
        }
        crate::trace::note_server(&self.server);
        let started = Instant::now();
        let sent = req.config().timeout_global(Some(budget.max(Duration::from_millis(1)))).build().send(&bytes[..]);
        self.latency.observe(started.elapsed().as_secs_f64());
        let resp = sent?;
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        let _ = resp.into_body().into_with_config().limit(MAX_POST_ANSWER).reader().read_to_end(&mut body);
        Ok((status, excerpt(&body)))
    }

    fn post_error(&self, e: ureq::Error, deadline: &Deadline) -> UpstreamError {
        match e {
            ureq::Error::Timeout(_) => deadline.error(&self.server),
            ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => {
                UpstreamError::Transport { server: self.server.clone(), detail: e.to_string(), sent: false }
            }
            ureq::Error::Io(ref io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                UpstreamError::Transport { server: self.server.clone(), detail: "connection refused".into(), sent: false }
            }
            other => UpstreamError::Transport { server: self.server.clone(), detail: other.to_string(), sent: true },
        }
    }

    /// What a POST's status means: `Ok(None)` accepted; `Ok(Some(reply))` a
    /// reply for the caller (404: the session is gone and has been dropped;
    /// 401/403); `Err` another error status.
    fn posted(&self, session: &Session, status: u16, text: String) -> Result<Option<HttpReply>, UpstreamError> {
        match status {
            200..=299 => Ok(None),
            404 => {
                self.lose(session, "the server no longer knows the session");
                Ok(Some(gone()))
            }
            400 if text.to_ascii_lowercase().contains("session") => {
                self.lose(session, "the server no longer knows the session");
                Ok(Some(gone()))
            }
            401 | 403 => Ok(Some(reply(status, None, None, text))),
            _ => Err(UpstreamError::Status { server: self.server.clone(), status, detail: text }),
        }
    }

    /// Opens a new stream with the caller's `headers`, waits for its
    /// endpoint, and initializes the session with `initialize`, all within `deadline`.
    fn open(self: &Arc<Self>, initialize: &Value, headers: &[(String, String)], deadline: Deadline) -> Result<Answer, UpstreamError> {
        let url = self.url.clone().map_err(|detail| UpstreamError::Protocol { server: self.server.clone(), detail })?;
        self.back_off(Instant::now() + deadline.remaining())?;
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let session = Arc::new(Session {
            id: format!("sse-{}-{n}-{}", self.server, crate::random::hex::<4>()),
            mux: Mux::new(&self.server),
            endpoint: OnceLock::new(),
            stream: Arc::new(CallHandle::default()),
            headers: passed(headers),
            ready: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
        });
        let (tx, rx) = crossbeam_channel::bounded(1);
        let (me, s, head) = (self.clone(), session.clone(), deadline.remaining());
        let spawned = self.threads().spawn(&format!("sse-{}", self.server), crate::threads::Kind::Listen, move || me.read_stream(&s, &url, head, tx));
        if let Err(e) = spawned {
            return Err(UpstreamError::Transport { server: self.server.clone(), detail: format!("cannot start the event stream's reader: {e}"), sent: false });
        }
        let opened = rx.recv_timeout(deadline.remaining()).unwrap_or_else(|_| Err(deadline.error(&self.server)));
        if let Err(e) = opened {
            session.stop();
            return match e {
                UpstreamError::Status { status: status @ (401 | 403), detail, .. } => Ok(Answer::Reply(reply(status, None, None, detail))),
                e => {
                    self.failed();
                    log::warn!("sse server '{}': no event stream: {e}", self.server);
                    Err(e)
                }
            };
        }
        self.state.lock().sessions.insert(session.id.clone(), session.clone());
        match self.initialize(&session, initialize, deadline) {
            Ok(Ok(message)) if message.get("result").is_some() => {
                session.ready.store(true, Ordering::SeqCst);
                self.succeeded();
                log::info!("sse server '{}': event stream open, session {}", self.server, session.id);
                Ok(Answer::Reply(reply(200, Some(session.id.clone()), Some(message), String::new())))
            }
            Ok(Ok(message)) => {
                // An error answer: nothing to keep open.
                self.lose(&session, "initialize failed");
                Ok(Answer::Reply(reply(200, None, Some(message), String::new())))
            }
            Ok(Err(status_reply)) => {
                self.lose(&session, "initialize was refused");
                Ok(Answer::Reply(status_reply))
            }
            Err(e) => {
                self.failed();
                self.lose(&session, &format!("initialize failed: {e}"));
                Err(e)
            }
        }
    }

    /// POSTs `initialize` on the new `session` and reads its answer from the
    /// stream: the response, or the reply of a refused POST.
    fn initialize(self: &Arc<Self>, session: &Arc<Session>, initialize: &Value, deadline: Deadline) -> Result<Result<Value, HttpReply>, UpstreamError> {
        let endpoint = session.endpoint.get().cloned().ok_or_else(|| UpstreamError::Protocol { server: self.server.clone(), detail: "no endpoint".into() })?;
        let mut stream = session.mux.open_call(initialize, deadline.clone()).map_err(|detail| UpstreamError::Transport { server: self.server.clone(), detail, sent: false })?;
        let (status, text) = self.post(&endpoint, initialize, &session.headers, deadline.remaining()).map_err(|e| self.post_error(e, &deadline))?;
        if let Some(r) = self.posted(session, status, text)? {
            return Ok(Err(r));
        }
        loop {
            match stream.next_item()? {
                Some(StreamItem::Final(m)) => return Ok(Ok(m)),
                Some(StreamItem::Request(r)) => self.refuse(session, &r),
                Some(StreamItem::Notification(_)) => {}
                None => return Err(UpstreamError::Transport { server: self.server.clone(), detail: "the event stream ended before initialize was answered".into(), sent: true }),
            }
        }
    }

    /// The GET of `session` (on its own thread): opens the stream at `url`
    /// (answer head within `head`), reports the endpoint (or why not) on
    /// `opened`, then delivers every message to the session's mux until the
    /// stream ends.
    fn read_stream(self: &Arc<Self>, session: &Arc<Session>, url: &url::Url, head: Duration, opened: crossbeam_channel::Sender<Result<(), UpstreamError>>) {
        let why = match self.get(session, url, head) {
            Ok(body) => self.read_events(session, url, body, opened),
            Err(e) => {
                let why = e.to_string();
                let _ = opened.send(Err(e));
                why
            }
        };
        self.ended(session, &why);
    }

    /// Sends the GET with the stream's connection recorded in the session
    /// (to cut it later); the body of a 200 `text/event-stream` answer.
    fn get(&self, session: &Session, url: &url::Url, head: Duration) -> Result<ureq::Body, UpstreamError> {
        let mut req = self.streams.get(url.as_str()).header("Accept", "text/event-stream").header("Cache-Control", "no-cache");
        for (k, v) in self.static_headers.iter().chain(&session.headers) {
            req = req.header(k.as_str(), v.as_str());
        }
        let sent = {
            // Bound only for the GET itself: the refusals this thread POSTs
            // later must not replace the stream's socket in the handle.
            let _bound = cancel::bind(&session.stream);
            req.config().timeout_recv_response(Some(head.max(Duration::from_millis(1)))).build().call()
        };
        let resp = sent.map_err(|e| self.post_error(e, &Deadline::fixed(head)))?;
        let status = resp.status().as_u16();
        let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase();
        if status != 200 {
            let mut body = Vec::new();
            let _ = resp.into_body().into_with_config().limit(MAX_POST_ANSWER).reader().read_to_end(&mut body);
            return Err(UpstreamError::Status { server: self.server.clone(), status, detail: excerpt(&body) });
        }
        if !content_type.starts_with("text/event-stream") {
            return Err(UpstreamError::Protocol {
                server: self.server.clone(),
                detail: format!("its SSE URL answered {}, not an event stream", if content_type.is_empty() { "without a Content-Type" } else { &content_type }),
            });
        }
        Ok(resp.into_body())
    }

    /// Reads the stream's events: the first `endpoint` is resolved, checked
    /// and reported on `opened`; `message` events go to the mux. Returns why
    /// the stream ended.
    fn read_events(self: &Arc<Self>, session: &Arc<Session>, url: &url::Url, body: ureq::Body, opened: crossbeam_channel::Sender<Result<(), UpstreamError>>) -> String {
        let mut opened = Some(opened);
        let mut lines = BufReader::new(body.into_with_config().limit(u64::MAX).reader());
        let mut parser = sse::Parser::new();
        let mut line = Vec::new();
        let why = loop {
            line.clear();
            match (&mut lines).take(MAX_UPSTREAM_MESSAGE).read_until(b'\n', &mut line) {
                Ok(0) => break "the server closed it".to_string(),
                Err(e) => break e.to_string(),
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&line);
            let Some(event) = parser.line(text.trim_end_matches('\n')) else { continue };
            match event.event.as_str() {
                "endpoint" => match opened.take() {
                    Some(tx) => match resolve_endpoint(url, &event.data) {
                        Ok(endpoint) => {
                            let _ = session.endpoint.set(endpoint);
                            let _ = tx.send(Ok(()));
                        }
                        Err(detail) => {
                            log::warn!("sse server '{}': {detail}", self.server);
                            let _ = tx.send(Err(UpstreamError::Protocol { server: self.server.clone(), detail: detail.clone() }));
                            break detail;
                        }
                    },
                    None => log::debug!("sse server '{}' sent a second endpoint event; ignored", self.server),
                },
                "" | "message" if opened.is_some() => {
                    log::warn!("sse server '{}' sent a message before its endpoint event; ignored", self.server);
                }
                "" | "message" => match serde_json::from_str::<Value>(&event.data) {
                    Ok(message @ Value::Object(_)) => {
                        if let Some(request) = session.mux.deliver(message) {
                            self.refuse(session, &request);
                        }
                    }
                    _ => log::warn!("sse server '{}' sent a message that is not a JSON-RPC object; ignored", self.server),
                },
                other => log::debug!("sse server '{}' sent an event of type '{other}'; ignored", self.server),
            }
        };
        if let Some(tx) = opened {
            let _ = tx.send(Err(UpstreamError::Transport {
                server: self.server.clone(),
                detail: format!("its event stream ended before its endpoint event ({why})"),
                sent: false,
            }));
        }
        why
    }

    /// The stream of `session` ended (`detail`): forgotten, its calls in
    /// flight fail at once, and unless the hub ended it, the next open backs off.
    fn ended(&self, session: &Session, detail: &str) {
        session.stream.finish();
        let on_purpose = session.stopping.load(Ordering::SeqCst);
        let why = if on_purpose { "the hub closed the server's event stream".to_string() } else { format!("the server's event stream ended: {detail}") };
        if !on_purpose && session.ready.load(Ordering::SeqCst) {
            self.failed();
            log::warn!("sse server '{}': {why}; {} call(s) in flight failed", self.server, session.mux.in_flight());
        }
        self.forget(session);
        session.mux.close(&why);
    }

    /// Answers a server→client request nobody can take (see stdio's), from
    /// a short thread of its own so the stream's other messages are not held
    /// up by the POST (inline when no thread can be had).
    fn refuse(self: &Arc<Self>, session: &Arc<Session>, request: &Value) {
        let Some(message) = super::transport::refusal(&self.server, request, super::transport::UNROUTED) else { return };
        let Some(endpoint) = session.endpoint.get().cloned() else { return };
        let (me, s, at, m) = (self.clone(), session.clone(), endpoint.clone(), message.clone());
        let spawned = self.threads().spawn(&format!("sse-refuse-{}", self.server), crate::threads::Kind::Call, move || me.post_refusal(&s, &at, &m));
        if spawned.is_err() {
            self.post_refusal(session, &endpoint, &message);
        }
    }

    fn post_refusal(&self, session: &Session, endpoint: &url::Url, message: &Value) {
        if let Err(e) = self.post(endpoint, message, &session.headers, ANSWER_BUDGET) {
            log::debug!("refusal to sse server '{}' not sent: {e}", self.server);
        }
    }

    fn shutdown(&self) {
        let sessions: Vec<Arc<Session>> = self.state.lock().sessions.drain().map(|(_, s)| s).collect();
        for s in sessions {
            s.stop();
            s.mux.close("the hub closed the server's event stream");
        }
    }
}

impl Transport for SseTransport {
    fn server(&self) -> &str {
        &self.inner.server
    }

    /// Latency of this server's POSTs (to their answer's head), seconds.
    fn latency(&self) -> &prometheus::Histogram {
        &self.inner.latency
    }

    /// `initialize` without a session: a new stream. Otherwise the session's
    /// stream: a request POSTed, its messages as an event stream; a
    /// notification POSTed (202); an ended session → 404.
    fn post_call(&self, body: &Value, headers: &[(String, String)], deadline: Deadline) -> Result<Answer, UpstreamError> {
        let method = body.get("method").and_then(Value::as_str);
        if method == Some("initialize") && super::transport::session_id(headers).is_none() {
            return self.inner.open(body, headers, deadline);
        }
        let Some(session) = self.inner.session_of(headers) else { return Ok(Answer::Reply(gone())) };
        let Some(endpoint) = session.endpoint.get() else { return Ok(Answer::Reply(gone())) };
        let pass = passed(headers);
        if body.get("id").is_none() || method.is_none() {
            // A notification (or a response): POSTed, nothing comes back.
            let (status, text) = self.inner.post(endpoint, body, &pass, deadline.remaining()).map_err(|e| self.inner.post_error(e, &deadline))?;
            return Ok(Answer::Reply(self.inner.posted(&session, status, text)?.unwrap_or_else(|| reply(202, None, None, String::new()))));
        }
        let budget = deadline.remaining();
        let Ok(call) = session.mux.register(body, deadline.clone()) else { return Ok(Answer::Reply(gone())) };
        // On any failure below, dropping `call` forgets it.
        let (status, text) = self.inner.post(endpoint, body, &pass, budget).map_err(|e| self.inner.post_error(e, &deadline))?;
        if let Some(r) = self.inner.posted(&session, status, text)? {
            return Ok(Answer::Reply(r));
        }
        // A lone response is answered like a JSON reply; anything first opens the stream.
        Ok(match call.first().map_err(|e| super::transport::io_error(&self.inner.server, e, &deadline))? {
            super::mux::First::Response(message) => Answer::Reply(reply(200, None, Some(message), String::new())),
            super::mux::First::Stream(stream) => Answer::Stream(stream),
        })
    }

    fn post_long(&self, _body: &Value, _headers: &[(String, String)]) -> Result<Answer, UpstreamError> {
        Err(UpstreamError::Protocol { server: self.inner.server.clone(), detail: "HTTP+SSE servers have no long-lived requests".into() })
    }

    /// POSTs the hub's answer to a server→client request (or a notification,
    /// e.g. `notifications/cancelled`) on the session's endpoint within `budget`.
    fn answer(&self, message: &Value, headers: &[(String, String)], budget: Duration) {
        let Some(session) = self.inner.session_of(headers) else {
            log::debug!("answer to sse server '{}' dropped: its event stream has ended", self.inner.server);
            return;
        };
        let Some(endpoint) = session.endpoint.get() else { return };
        match self.inner.post(endpoint, message, &passed(headers), budget) {
            Ok((status, text)) => {
                if let Err(e) = self.inner.posted(&session, status, text) {
                    log::debug!("answer to sse server '{}' refused: {e}", self.inner.server);
                }
            }
            Err(e) => log::debug!("answer to sse server '{}' not sent: {e}", self.inner.server),
        }
    }

    /// What the session's stream carries outside any call; `None` once it has ended.
    fn listen(&self, headers: &[(String, String)]) -> Result<Option<Box<EventStream>>, UpstreamError> {
        Ok(self.inner.session_of(headers).map(|s| s.mux.listen()))
    }

    /// Ends the session: its stream's connection is cut (the 2024-11-05
    /// transport has no other way to end a session).
    fn delete(&self, headers: &[(String, String)]) {
        if let Some(session) = self.inner.session_of(headers) {
            self.inner.lose(&session, "the hub closed the server's event stream");
        }
    }

    fn shares_sessions(&self) -> bool {
        false
    }

    fn resends_after_failure(&self) -> bool {
        false
    }

    /// Cuts every stream.
    fn shutdown(&self) {
        self.inner.shutdown();
    }

    fn attach_threads(&self, threads: crate::threads::Threads) {
        let _ = self.inner.threads.set(threads);
    }
}

impl Drop for SseTransport {
    fn drop(&mut self) {
        self.inner.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> url::Url {
        url::Url::parse(s).unwrap()
    }

    #[test]
    fn an_endpoint_resolves_against_the_sse_url_and_must_stay_on_its_origin() {
        let base = url("http://127.0.0.1:9000/sse");
        let ok = |data: &str| resolve_endpoint(&base, data).unwrap().to_string();
        assert_eq!(ok("/message?sessionId=abc"), "http://127.0.0.1:9000/message?sessionId=abc");
        assert_eq!(ok("/messages/?session_id=0f1e"), "http://127.0.0.1:9000/messages/?session_id=0f1e");
        assert_eq!(ok("messages?x=1\n"), "http://127.0.0.1:9000/messages?x=1");
        assert_eq!(ok("http://127.0.0.1:9000/m?s=1"), "http://127.0.0.1:9000/m?s=1");
        let https = url("https://mcp.example.com/v1/sse");
        assert_eq!(resolve_endpoint(&https, "https://mcp.example.com:443/v1/messages").unwrap().as_str(), "https://mcp.example.com/v1/messages");
        for bad in ["http://127.0.0.1:9001/message", "http://localhost:9000/message", "https://127.0.0.1:9000/message", "//evil.example/m", "javascript:alert(1)"] {
            let e = resolve_endpoint(&base, bad).unwrap_err();
            assert!(e.contains("not the SSE URL's origin http://127.0.0.1:9000"), "{bad}: {e}");
        }
        assert!(resolve_endpoint(&base, "http://[::1").is_err());
    }

    #[test]
    fn session_headers_are_not_passed_to_the_server() {
        let h = vec![
            ("Mcp-Session-Id".to_string(), "sse-x-1".to_string()),
            ("MCP-Protocol-Version".to_string(), "2025-11-25".to_string()),
            ("Authorization".to_string(), "Bearer t".to_string()),
            ("X-MCPHub-User".to_string(), "ann".to_string()),
        ];
        assert_eq!(passed(&h), h[2..].to_vec());
    }

    #[test]
    fn the_reconnect_wait_doubles_with_jitter() {
        assert_eq!(reconnect_wait(0), Duration::ZERO);
        for (failures, base_ms) in [(1u32, 500u64), (2, 1000), (3, 2000), (20, 30_000)] {
            for _ in 0..20 {
                let w = reconnect_wait(failures).as_millis() as u64;
                assert!(w >= base_ms * 8 / 10 && w <= base_ms * 12 / 10, "{failures}: {w} ms");
            }
        }
    }

    #[test]
    fn an_open_after_recent_failures_waits_or_is_unavailable_past_its_deadline() {
        let config = crate::config::Config::parse(r#"{"mcpServers": {"old": {"type": "sse", "url": "http://127.0.0.1:9/sse"}}}"#).unwrap();
        let t = SseTransport::new(&config.servers[0], 1);
        assert!(t.inner.back_off(Instant::now()).is_ok());
        for _ in 0..4 {
            t.inner.failed();
        }
        // 4 failures: 4 s ± 20 %.
        match t.inner.back_off(Instant::now() + Duration::from_millis(100)) {
            Err(UpstreamError::Unavailable { server, failures: 4, retry_after_secs }) => assert!((server.as_str(), (4..=5).contains(&retry_after_secs)) == ("old", true), "{retry_after_secs}"),
            other => panic!("{other:?}"),
        }
        t.inner.succeeded();
        assert!(t.inner.back_off(Instant::now()).is_ok());
    }
}
