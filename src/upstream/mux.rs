//! One JSON-RPC connection carrying many calls at once, for transports that
//! are a single duplex pipe rather than one HTTP exchange per request (a
//! stdio process; issue 19). Each call's messages come back as an
//! [`EventStream`] over an in-memory reader ([`ChannelReader`]), so the
//! upstream reads them exactly as it reads a Streamable HTTP call's SSE
//! answer: notifications, server→client requests, then the response.
//!
//! Routing of what the server sends (MCP 2025-11-25 basic/transports, stdio:
//! every message on one stream, nothing ties it to a request but its content):
//! - a response → the call with its id (the id is the hub's, unique per server);
//! - `notifications/progress` → the call that sent its `progressToken`;
//! - a session-wide notification (`notifications/*/list_changed`,
//!   `notifications/resources/updated`) → the unsolicited stream
//!   ([`Mux::listen`]), which the upstream treats like a legacy GET stream;
//! - any other notification or server→client request → the one call in
//!   flight when there is exactly one (it can only belong to that call);
//!   else the unsolicited stream, where requests are refused as
//!   unattributable unless the session belongs to one client.

use super::transport::{Deadline, EventStream};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::Mutex;
use serde_json::Value;
use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest pause between two checks of a call's cancellation and deadline
/// while it waits for the server.
const TICK: Duration = Duration::from_millis(50);

/// Messages buffered for one call before the server's further messages for
/// it are dropped (a call's stream is read as fast as its client takes it).
/// The channels are unbounded and checked against this: a bounded one would
/// allocate all its slots for every call, most of which carry one message.
const CALL_BUFFER: usize = 1024;

/// Queues a message for a call or listener unless [`CALL_BUFFER`] are
/// waiting already; `false` when not queued.
fn offer(tx: &Sender<Chunk>, data: Vec<u8>) -> bool {
    tx.len() < CALL_BUFFER && tx.send(Chunk::Data(data)).is_ok()
}

/// One piece of a call's stream.
enum Chunk {
    /// Bytes of the SSE text (`data: <json>\n\n`).
    Data(Vec<u8>),
    /// The connection ended: the reader fails with this text.
    End(String),
}

struct Pending {
    tx: Sender<Chunk>,
    progress_token: Option<Value>,
}

#[derive(Default)]
struct State {
    pending: HashMap<String, Pending>,
    unsolicited: Option<Sender<Chunk>>,
    closed: Option<String>,
}

/// The calls in flight on one connection (see the module doc).
pub struct Mux {
    server: String,
    state: Mutex<State>,
}

fn id_key(id: &Value) -> String {
    id.to_string()
}

fn sse(message: &Value) -> Vec<u8> {
    let mut out = b"data: ".to_vec();
    out.extend_from_slice(message.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
    out
}

/// Whether `method` concerns the whole session rather than one call.
fn session_wide(method: &str) -> bool {
    method.ends_with("/list_changed") || method == "notifications/resources/updated"
}

impl Mux {
    /// An open connection of `server`, no call in flight.
    pub fn new(server: &str) -> Arc<Mux> {
        Arc::new(Mux { server: server.to_string(), state: Mutex::new(State::default()) })
    }

    /// Registers the call `request` (which has an id) before it is written,
    /// and returns the stream its messages will arrive on, read within
    /// `deadline` (and stopped when the call bound to this thread is cut:
    /// [`super::cancel::current`]). Errors with the close reason when the
    /// connection has already ended.
    pub fn open_call(self: &Arc<Self>, request: &Value, deadline: Deadline) -> Result<Box<EventStream>, String> {
        self.register(request, deadline).map(Opened::stream)
    }

    /// Registers the call `request` (see [`Mux::open_call`]) and returns it
    /// unopened: the caller writes the request, then waits for what comes
    /// first ([`Opened::first`]).
    pub fn register(self: &Arc<Self>, request: &Value, deadline: Deadline) -> Result<Opened, String> {
        let id = request.get("id").cloned().unwrap_or(Value::Null);
        let progress_token = crate::protocol::jsonrpc::at(request, &["params", "_meta", "progressToken"]).cloned();
        let (tx, rx) = crossbeam_channel::unbounded();
        {
            let mut st = self.state.lock();
            if let Some(why) = &st.closed {
                return Err(why.clone());
            }
            st.pending.insert(id_key(&id), Pending { tx, progress_token });
        }
        let reader = ChannelReader::new(rx, Some((self.clone(), id_key(&id))), &deadline);
        Ok(Opened { reader, id, deadline, server: self.server.clone() })
    }

    /// Forgets a call (its stream was dropped, or its request could not be written).
    pub fn forget(&self, id: &Value) {
        self.state.lock().pending.remove(&id_key(id));
    }

    /// Calls in flight.
    pub fn in_flight(&self) -> usize {
        self.state.lock().pending.len()
    }

    /// The stream of what the server sends outside any call (see the module
    /// doc); a second listener replaces the first. No deadline.
    pub fn listen(&self) -> Box<EventStream> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut st = self.state.lock();
        if let Some(why) = &st.closed {
            let _ = tx.send(Chunk::End(why.clone()));
        } else {
            st.unsolicited = Some(tx);
        }
        drop(st);
        let reader = ChannelReader::new(rx, None, &Deadline::fixed(Duration::MAX));
        EventStream::new(reader, None, Deadline::fixed(Duration::MAX), &self.server, 200, None)
    }

    /// Routes one message the server sent. Returns the message back when it
    /// is a server→client request nobody can take (no call to attribute it
    /// to, no listener): the caller answers it with a refusal.
    pub fn deliver(&self, message: Value) -> Option<Value> {
        // Serialized before the lock: the reader's only work while holding it is routing.
        let data = sse(&message);
        let method = message.get("method").and_then(Value::as_str);
        let is_request = method.is_some() && message.get("id").is_some();
        let mut st = self.state.lock();
        let target: Option<Sender<Chunk>> = match method {
            None => {
                // A response: its call, which is then done.
                let id = message.get("id")?;
                match st.pending.remove(&id_key(id)) {
                    Some(p) => {
                        offer(&p.tx, data);
                    }
                    None => log::debug!("upstream '{}' answered id {id}, which no call is waiting for; dropped", self.server),
                }
                return None;
            }
            Some("notifications/progress") => {
                let token = crate::protocol::jsonrpc::at(&message, &["params", "progressToken"]);
                st.pending.values().find(|p| p.progress_token.is_some() && p.progress_token.as_ref() == token).map(|p| p.tx.clone())
            }
            Some(m) if session_wide(m) => None,
            Some(_) if st.pending.len() == 1 => st.pending.values().next().map(|p| p.tx.clone()),
            Some(_) => None,
        };
        let sent = match (target, &st.unsolicited) {
            (Some(tx), _) => offer(&tx, data),
            (None, Some(tx)) => {
                let ok = offer(tx, data);
                if !ok {
                    st.unsolicited = None;
                }
                ok
            }
            (None, None) => false,
        };
        drop(st);
        match (sent, is_request) {
            (true, _) => None,
            (false, true) => Some(message),
            (false, false) => {
                log::debug!("upstream '{}' sent {} with nobody to take it; dropped", self.server, method.unwrap_or_default());
                None
            }
        }
    }

    /// The connection ended (`why`, e.g. "server process exited (exit
    /// status 1)"): every call in flight and the unsolicited stream fail with
    /// it at once; later calls are refused with it.
    pub fn close(&self, why: &str) {
        let mut st = self.state.lock();
        if st.closed.is_none() {
            st.closed = Some(why.to_string());
        }
        for (_, p) in st.pending.drain() {
            let _ = p.tx.send(Chunk::End(why.to_string()));
        }
        if let Some(tx) = st.unsolicited.take() {
            let _ = tx.send(Chunk::End(why.to_string()));
        }
    }

    /// Why the connection ended, if it has.
    pub fn closed(&self) -> Option<String> {
        self.state.lock().closed.clone()
    }
}

/// A registered call whose first message has not been looked at.
pub struct Opened {
    reader: ChannelReader,
    id: Value,
    deadline: Deadline,
    server: String,
}

/// What a call's first message was.
pub enum First {
    /// Its response: the call is done (answered like a JSON reply).
    Response(Value),
    /// A notification or a server→client request: the call's stream, that
    /// message first (answered like an SSE reply).
    Stream(Box<EventStream>),
}

impl Opened {
    /// The call's messages as a stream, none read yet.
    pub fn stream(self) -> Box<EventStream> {
        EventStream::new(self.reader, Some(self.id), self.deadline, &self.server, 200, None)
    }

    /// Waits (within the call's deadline, stopped by its cancellation) for
    /// the first message: a response alone comes back as a value, so the
    /// hub can answer it as it answers a JSON reply (no event stream to the
    /// client); anything else opens the stream. Errors as the stream's reads
    /// fail: the deadline (`TimedOut`), a cut call, the connection's end.
    pub fn first(mut self) -> io::Result<First> {
        self.reader.fill()?;
        let pending = &self.reader.buf[self.reader.at..];
        let data = pending.strip_prefix(b"data: ").map(|d| d.trim_ascii_end());
        if let Some(Ok(message)) = data.map(serde_json::from_slice::<Value>) {
            let is_response = message.get("method").is_none() && (message.get("result").is_some() || message.get("error").is_some());
            if is_response && message.get("id") == Some(&self.id) {
                return Ok(First::Response(message));
            }
        }
        Ok(First::Stream(self.stream()))
    }
}

/// The bytes of one call's stream (SSE text), read from a channel: bounded by
/// the call's deadline — its total ([`Deadline::total`]) and, when progress
/// can move it, the call's read deadline — and failing at once when the
/// call bound to the creating thread is cut. Dropping it forgets the call.
pub struct ChannelReader {
    rx: Receiver<Chunk>,
    buf: Vec<u8>,
    at: usize,
    owner: Option<(Arc<Mux>, String)>,
    until: Option<Instant>,
    call: Option<Arc<super::cancel::CallHandle>>,
}

impl ChannelReader {
    fn new(rx: Receiver<Chunk>, owner: Option<(Arc<Mux>, String)>, deadline: &Deadline) -> ChannelReader {
        ChannelReader {
            rx,
            buf: Vec::new(),
            at: 0,
            owner,
            until: Instant::now().checked_add(deadline.total()),
            call: super::cancel::current(),
        }
    }

    fn timed_out(&self, now: Instant) -> bool {
        let moved = self.call.as_ref().and_then(|c| c.read_deadline().get());
        self.until.is_some_and(|u| now >= u) || moved.is_some_and(|m| now >= m)
    }
}

impl ChannelReader {
    /// Blocks until some bytes are buffered; `Ok` without any at the end of
    /// the channel.
    fn fill(&mut self) -> io::Result<()> {
        while self.at >= self.buf.len() {
            if self.call.as_ref().is_some_and(|c| c.is_cut()) {
                return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "the call was cancelled"));
            }
            if self.timed_out(Instant::now()) {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "the call's deadline passed"));
            }
            match self.rx.recv_timeout(TICK) {
                Ok(Chunk::Data(d)) => {
                    self.buf = d;
                    self.at = 0;
                }
                Ok(Chunk::End(why)) => return Err(io::Error::other(why)),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
        }
        Ok(())
    }
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.fill()?;
        if self.at >= self.buf.len() {
            return Ok(0);
        }
        let n = out.len().min(self.buf.len() - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl Drop for ChannelReader {
    fn drop(&mut self) {
        if let Some((mux, key)) = &self.owner {
            mux.state.lock().pending.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::transport::StreamItem;
    use serde_json::json;

    fn call(mux: &Arc<Mux>, id: u64, token: Option<&str>) -> Box<EventStream> {
        let mut req = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": "t"}});
        if let Some(t) = token {
            req["params"]["_meta"] = json!({"progressToken": t});
        }
        mux.open_call(&req, Deadline::fixed(Duration::from_secs(5))).unwrap()
    }

    #[test]
    fn responses_progress_and_lone_call_messages_reach_their_call() {
        let mux = Mux::new("s");
        let mut a = call(&mux, 1, Some("pa"));
        let mut b = call(&mux, 2, Some("pb"));
        let mut unsolicited = mux.listen();
        assert!(mux.deliver(json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": "pb", "progress": 1}})).is_none());
        assert!(mux.deliver(json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})).is_none());
        // Two calls in flight: a log message belongs to neither.
        assert!(mux.deliver(json!({"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "x"}})).is_none());
        assert!(mux.deliver(json!({"jsonrpc": "2.0", "id": 2, "result": {"b": true}})).is_none());
        assert!(matches!(b.next_item().unwrap(), Some(StreamItem::Notification(n)) if n["params"]["progressToken"] == "pb"));
        assert!(matches!(b.next_item().unwrap(), Some(StreamItem::Final(m)) if m["result"]["b"] == true));
        assert!(matches!(unsolicited.next_item().unwrap(), Some(StreamItem::Notification(n)) if n["method"] == "notifications/tools/list_changed"));
        assert!(matches!(unsolicited.next_item().unwrap(), Some(StreamItem::Notification(n)) if n["method"] == "notifications/message"));
        // Now `a` is alone: a sampling request is its.
        assert!(mux.deliver(json!({"jsonrpc": "2.0", "id": "s1", "method": "sampling/createMessage", "params": {}})).is_none());
        assert!(matches!(a.next_item().unwrap(), Some(StreamItem::Request(r)) if r["id"] == "s1"));
        drop(b);
        assert_eq!(mux.in_flight(), 1);
    }

    #[test]
    fn a_closed_connection_fails_every_call_at_once_and_refuses_new_ones() {
        let mux = Mux::new("s");
        let mut a = call(&mux, 1, None);
        let started = Instant::now();
        mux.close("server process exited (exit status 9)");
        let err = a.next_item().unwrap_err().to_string();
        assert!(err.contains("exit status 9"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(1));
        let req = json!({"jsonrpc": "2.0", "id": 2, "method": "ping"});
        assert_eq!(mux.open_call(&req, Deadline::fixed(Duration::from_secs(1))).err().as_deref(), Some("server process exited (exit status 9)"));
    }

    #[test]
    fn a_request_nobody_can_take_comes_back_and_a_dropped_stream_forgets_its_call() {
        let mux = Mux::new("s");
        let a = call(&mux, 1, None);
        let _b = call(&mux, 2, None);
        let req = json!({"jsonrpc": "2.0", "id": 7, "method": "elicitation/create", "params": {}});
        assert_eq!(mux.deliver(req.clone()), Some(req));
        drop(a);
        assert_eq!(mux.in_flight(), 1);
    }

    #[test]
    fn a_lone_response_comes_first_as_a_value_and_anything_else_opens_the_stream() {
        let mux = Mux::new("s");
        let req = |id: u64| json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"_meta": {"progressToken": format!("p{id}")}}});
        let one = mux.register(&req(1), Deadline::fixed(Duration::from_secs(5))).unwrap();
        mux.deliver(json!({"jsonrpc": "2.0", "id": 1, "result": {"ok": 1}}));
        assert!(matches!(one.first().unwrap(), First::Response(m) if m["result"]["ok"] == 1));
        let two = mux.register(&req(2), Deadline::fixed(Duration::from_secs(5))).unwrap();
        mux.deliver(json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": "p2", "progress": 1}}));
        mux.deliver(json!({"jsonrpc": "2.0", "id": 2, "result": {"ok": 2}}));
        let First::Stream(mut s) = two.first().unwrap() else { panic!("a progress notification first opens the stream") };
        assert!(matches!(s.next_item().unwrap(), Some(StreamItem::Notification(n)) if n["params"]["progress"] == 1));
        assert!(matches!(s.next_item().unwrap(), Some(StreamItem::Final(m)) if m["result"]["ok"] == 2));
        assert_eq!(mux.in_flight(), 0);
        let three = mux.register(&req(3), Deadline::fixed(Duration::from_secs(5))).unwrap();
        mux.close("gone");
        assert_eq!(three.first().err().map(|e| e.to_string()).as_deref(), Some("gone"));
    }

    #[test]
    fn a_silent_server_ends_the_read_at_the_deadline() {
        let mux = Mux::new("s");
        let req = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
        let mut s = mux.open_call(&req, Deadline::fixed(Duration::from_millis(120))).unwrap();
        let started = Instant::now();
        assert!(s.next_item().is_err());
        assert!(started.elapsed() >= Duration::from_millis(100), "{:?}", started.elapsed());
    }
}
