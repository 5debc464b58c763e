//! SSE writing: one write per event, chunked framing, a wall-clock write budget.
//!
//! A stream's socket is shared (`Arc<Mutex>`) between the producer's
//! [`SseSink`] and the server's pinger thread. The pinger writes `: ping`
//! after `ping_interval` of silence (it only `try_lock`s, so it never waits
//! behind a busy producer) and watches for the client closing its side; when
//! either shows the client gone it marks the stream gone and shuts the socket
//! down, so a producer blocked elsewhere learns it at its next call.
//!
//! A sink can also keep its stream in memory ([`collect`]): a handler's SSE
//! answer run on the calling thread, without a server (tests, tools).
//!
//! Framing: HTTP/1.1 clients get each event as one chunk
//! (`{len:x}\r\n{event}\r\n`) written by one `write` loop within the write
//! budget; HTTP/1.0 clients get the raw event bytes and the connection closes
//! at the end of the stream.
//!
//! Shutdown: a stream is ended politely (terminal chunk `0\r\n\r\n`, then
//! FIN; HTTP/1.0: FIN) rather than reset. Open-ended streams (GET streams,
//! and those whose producer called [`SseSink::open_ended`]) end when the drain
//! begins; call streams are waited for up to the drain timeout, then ended.

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::{Duration, Instant};

/// The client of a stream is gone (write failed, budget exceeded, or ping failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the client of this event stream is gone")]
pub struct ClientGone;

/// One Server-Sent Event. `data` may contain newlines (split into `data:` lines).
#[derive(Debug, Clone, Default)]
pub struct SseEvent<'a> {
    /// `id:` field, for resumability.
    pub id: Option<&'a str>,
    /// `event:` field; `None` means the default `message`.
    pub event: Option<&'a str>,
    /// `retry:` field in ms.
    pub retry_ms: Option<u64>,
    /// The data.
    pub data: &'a str,
}

/// State of one stream, shared by its sink, the pinger and shutdown.
pub(crate) struct StreamShared {
    /// The socket; `None` once the stream has ended and the connection was taken back.
    pub(crate) sock: Mutex<Option<TcpStream>>,
    /// A `dup` of the socket for `shutdown`/peek without taking the lock.
    ctl: TcpStream,
    gone: AtomicBool,
    /// Run once when the client is found gone (see [`SseSink::on_gone`]).
    on_gone: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    /// Time of the last successful write, ms since `epoch`.
    last_write_ms: AtomicU64,
    /// When pings started to find the send buffer full, ms since `epoch` + 1 (0 = not blocked).
    blocked_since_ms: AtomicU64,
    epoch: Instant,
    write_budget: Duration,
    chunked: bool,
    /// Waits for notifications only: ended at once at shutdown.
    open_ended: AtomicBool,
    /// Being ended by the server (no more events are written).
    ending: AtomicBool,
    /// The server's shutdown flag.
    server_stopping: Arc<AtomicBool>,
}

impl StreamShared {
    /// Wraps a blocking socket whose response head was already written.
    pub(crate) fn new(
        sock: TcpStream,
        write_budget: Duration,
        chunked: bool,
        server_stopping: Arc<AtomicBool>,
    ) -> std::io::Result<Arc<StreamShared>> {
        let ctl = sock.try_clone()?;
        let epoch = Instant::now();
        Ok(Arc::new(StreamShared {
            sock: Mutex::new(Some(sock)),
            ctl,
            gone: AtomicBool::new(false),
            on_gone: Mutex::new(None),
            last_write_ms: AtomicU64::new(0),
            blocked_since_ms: AtomicU64::new(0),
            epoch,
            write_budget,
            chunked,
            open_ended: AtomicBool::new(false),
            ending: AtomicBool::new(false),
            server_stopping,
        }))
    }

    /// Whether this stream only waits for notifications (see [`SseSink::open_ended`]).
    pub(crate) fn is_open_ended(&self) -> bool {
        self.open_ended.load(Ordering::SeqCst)
    }

    /// Marks the stream open-ended; ends it at once when a shutdown already began.
    pub(crate) fn set_open_ended(&self) {
        self.open_ended.store(true, Ordering::SeqCst);
        if self.server_stopping.load(Ordering::SeqCst) {
            self.end_politely(Instant::now() + Duration::from_secs(1));
        }
    }

    /// Ends the stream from the server side: no further event is written, the
    /// terminal chunk goes out (after a write in progress, waiting for it at
    /// most until `deadline`), the write side is shut (FIN), and the stream
    /// is marked gone so its producer stops (its `on_gone` hook runs).
    /// Returns false when it was already gone or being ended.
    pub(crate) fn end_politely(&self, deadline: Instant) -> bool {
        if self.is_gone() || self.ending.swap(true, Ordering::SeqCst) {
            return false;
        }
        let sock = loop {
            match self.sock.try_lock() {
                Ok(mut g) => break g.take(),
                Err(TryLockError::Poisoned(e)) => break e.into_inner().take(),
                Err(TryLockError::WouldBlock) => {
                    if Instant::now() >= deadline {
                        break None;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        };
        if let Some(mut sock) = sock {
            if self.chunked && !self.is_gone() {
                // Past the deadline a stuck client gets one short try (10 ms):
                // streams are ended one after another, and hundreds of
                // clients that stopped reading must not add up to a stop
                // slower than the service manager's TimeoutStopSec.
                let budget = deadline
                    .saturating_duration_since(Instant::now())
                    .clamp(Duration::from_millis(10), self.write_budget.max(Duration::from_millis(10)));
                if let Err(e) = super::write::write_all_budget(&mut sock, b"0\r\n\r\n", budget) {
                    log::debug!("sse: terminal chunk at shutdown: {e}");
                }
            }
            let _ = sock.shutdown(Shutdown::Write);
        }
        self.mark_gone();
        true
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Whether the client was found gone.
    pub(crate) fn is_gone(&self) -> bool {
        self.gone.load(Ordering::Acquire)
    }

    /// Marks the client gone and shuts the socket down, which fails any write
    /// blocked on it at once.
    pub(crate) fn mark_gone(&self) {
        if !self.gone.swap(true, Ordering::AcqRel) {
            let _ = self.ctl.shutdown(Shutdown::Both);
            let hook = self.on_gone.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(hook) = hook {
                hook();
            }
        }
    }

    /// Writes `payload` as one chunk (or raw for HTTP/1.0) within the write budget.
    fn write_event(&self, payload: &[u8]) -> Result<(), ClientGone> {
        if self.is_gone() {
            return Err(ClientGone);
        }
        let framed = self.frame(payload);
        let mut guard = self.sock.lock().unwrap_or_else(|e| e.into_inner());
        let Some(sock) = guard.as_mut() else {
            return Err(ClientGone);
        };
        if self.is_gone() || self.ending.load(Ordering::SeqCst) {
            return Err(ClientGone);
        }
        match super::write::write_all_budget(sock, &framed, self.write_budget) {
            Ok(()) => {
                self.last_write_ms.store(self.now_ms(), Ordering::Release);
                self.blocked_since_ms.store(0, Ordering::Release);
                Ok(())
            }
            Err(e) => {
                log::debug!("sse: client gone on write: {e}");
                drop(guard);
                self.mark_gone();
                Err(ClientGone)
            }
        }
    }

    fn frame(&self, payload: &[u8]) -> Vec<u8> {
        if !self.chunked {
            return payload.to_vec();
        }
        let mut out = Vec::with_capacity(payload.len() + 16);
        let _ = write!(out, "{:x}\r\n", payload.len());
        out.extend_from_slice(payload);
        out.extend_from_slice(b"\r\n");
        out
    }

    /// One pinger visit: detect a closed client, write `: ping` after
    /// `interval` of silence. Never blocks on a busy stream.
    pub(crate) fn ping_tick(&self, interval: Duration) {
        if self.is_gone() {
            return;
        }
        // The client closed its side (FIN) or reset: gone.
        let mut byte = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        let peeked = socket2::SockRef::from(&self.ctl)
            .recv_with_flags(&mut byte, libc::MSG_PEEK | libc::MSG_DONTWAIT);
        match peeked {
            Ok(0) => {
                self.mark_gone();
                return;
            }
            Ok(_) => {}
            Err(e)
                if e.kind() != std::io::ErrorKind::WouldBlock
                    && e.kind() != std::io::ErrorKind::Interrupted =>
            {
                self.mark_gone();
                return;
            }
            Err(_) => {}
        }
        let now = self.now_ms();
        let last = self.last_write_ms.load(Ordering::Acquire);
        if now.saturating_sub(last) < interval.as_millis() as u64 {
            return;
        }
        let Ok(mut guard) = self.sock.try_lock() else {
            return; // the producer is writing: not silent
        };
        let Some(sock) = guard.as_mut() else {
            return;
        };
        let framed = self.frame(b": ping\n\n");
        let sent = socket2::SockRef::from(&*sock)
            .send_with_flags(&framed, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL);
        let n = match sent {
            Ok(n) => n,
            Err(err) => {
                if err.kind() == std::io::ErrorKind::WouldBlock {
                    // The client is not reading. Give it one write budget.
                    let since = self.blocked_since_ms.load(Ordering::Acquire);
                    if since == 0 {
                        self.blocked_since_ms.store(now + 1, Ordering::Release);
                    } else if now + 1 - since > self.write_budget.as_millis() as u64 {
                        drop(guard);
                        self.mark_gone();
                    }
                } else if err.kind() != std::io::ErrorKind::Interrupted {
                    drop(guard);
                    self.mark_gone();
                }
                return;
            }
        };
        let rest_ok = n >= framed.len()
            || super::write::write_all_budget(sock, &framed[n..], self.write_budget).is_ok();
        if rest_ok {
            self.last_write_ms.store(self.now_ms(), Ordering::Release);
            self.blocked_since_ms.store(0, Ordering::Release);
        } else {
            drop(guard);
            self.mark_gone();
        }
    }

    /// Ends the stream: writes the terminal chunk if the client is still
    /// there and gives the socket back (`None` if gone or the write failed).
    pub(crate) fn finish(&self) -> Option<TcpStream> {
        let mut guard = self.sock.lock().unwrap_or_else(|e| e.into_inner());
        let mut sock = guard.take()?;
        if self.is_gone() {
            return None;
        }
        if self.chunked {
            super::write::write_all_budget(&mut sock, b"0\r\n\r\n", self.write_budget).ok()?;
        }
        Some(sock)
    }
}

/// Writes events to one client. Shared with the pinger, which writes `: ping`
/// after `ping_interval` of silence so a gone client is noticed while the
/// producer is blocked elsewhere.
pub struct SseSink {
    target: Target,
    /// Applied to each event's data before it is written (see [`SseSink::map_data`]).
    map: Option<DataMap>,
}

/// Where a sink's events go: a client's socket, or memory ([`collect`]).
enum Target {
    Stream(Arc<StreamShared>),
    Memory(Memory),
}

/// The in-memory end of a stream: the event text a client would read (SSE
/// framing, no HTTP chunking), and a client that leaves after `max_events`
/// events.
struct Memory {
    text: Vec<u8>,
    events: usize,
    max_events: usize,
    gone: bool,
    on_gone: Option<Box<dyn FnOnce() + Send>>,
    /// Gets each event's wire text as it is written ([`collect_observed`]).
    observer: Option<std::sync::mpsc::Sender<String>>,
}

impl Memory {
    /// Appends one event (or comment); the client leaves at the event after
    /// its `max_events`-th.
    fn write(&mut self, bytes: &[u8], is_event: bool) -> Result<(), ClientGone> {
        if self.gone {
            return Err(ClientGone);
        }
        let left = is_event
            && (self.events >= self.max_events || self.observer.as_ref().is_some_and(|o| o.send(String::from_utf8_lossy(bytes).into_owned()).is_err()));
        if left {
            self.gone = true;
            if let Some(hook) = self.on_gone.take() {
                hook();
            }
            return Err(ClientGone);
        }
        self.events += usize::from(is_event);
        self.text.extend_from_slice(bytes);
        Ok(())
    }
}

/// Runs an SSE producer (the closure of a [`super::Body::Sse`] answer) to
/// its end on the calling thread with a sink that keeps the stream in memory
/// instead of writing it to a socket, and returns the text a client would
/// have read: each event in its wire form (`id:`/`event:`/`data:` lines and
/// the blank line; comments as `: …` lines), without HTTP chunk framing.
/// Read it with [`crate::protocol::sse::parse_all`].
///
/// The client reads at most `max_events` events: the producer's next
/// [`SseSink::send`] fails with [`ClientGone`] and its [`SseSink::on_gone`]
/// hook runs, as when a real client disconnects. An open-ended producer (one
/// waiting for notifications) therefore returns only once it tried to send
/// more than `max_events` events or stops on its own; there is no pinger and
/// no write budget. For in-process use of a handler without a server (tests
/// of a [`super::Handler`] that answer `Request` → `Response`, tools).
pub fn collect(producer: impl FnOnce(&mut SseSink), max_events: usize) -> String {
    collect_with(producer, max_events, None)
}

/// [`collect`], also sending each event's wire text to `observer` as it is
/// written, so that a client on another thread can act on an event while the
/// stream is still open (answer a server→client request, cancel the call).
/// The channel disconnects when the producer is done; a dropped receiver is
/// a client that left: the next event is not written and the producer's
/// [`SseSink::send`] fails as for a disconnected client (an event-writing
/// producer finds out at its next event, there is no pinger).
pub fn collect_observed(producer: impl FnOnce(&mut SseSink), max_events: usize, observer: std::sync::mpsc::Sender<String>) -> String {
    collect_with(producer, max_events, Some(observer))
}

fn collect_with(producer: impl FnOnce(&mut SseSink), max_events: usize, observer: Option<std::sync::mpsc::Sender<String>>) -> String {
    let memory = Memory { text: Vec::new(), events: 0, max_events, gone: false, on_gone: None, observer };
    let mut sink = SseSink { target: Target::Memory(memory), map: None };
    producer(&mut sink);
    match sink.target {
        Target::Memory(m) => String::from_utf8_lossy(&m.text).into_owned(),
        Target::Stream(_) => unreachable!("a memory sink stays one"),
    }
}

/// A rewrite of an event's data: the new data, or `None` to keep it.
type DataMap = Box<dyn Fn(&str) -> Option<String> + Send>;

impl SseSink {
    pub(crate) fn new(shared: Arc<StreamShared>) -> SseSink {
        SseSink { target: Target::Stream(shared), map: None }
    }

    /// Writes one event's (or comment's) wire bytes to the target.
    fn write(&mut self, bytes: &[u8], is_event: bool) -> Result<(), ClientGone> {
        match &mut self.target {
            Target::Stream(shared) => shared.write_event(bytes),
            Target::Memory(m) => m.write(bytes, is_event),
        }
    }

    /// Writes one event in a single chunk (one write loop, flushed, within the
    /// server's `write_budget`); `Err(ClientGone)` once the client is gone, and
    /// every later call fails at once. `id`/`event` have CR/LF replaced by
    /// spaces; `data` goes through [`SseSink::map_data`]'s rewrite, if any.
    pub fn send(&mut self, event: &SseEvent<'_>) -> Result<(), ClientGone> {
        match self.map.as_ref().and_then(|map| map(event.data)) {
            Some(data) => self.write(&format_event(&SseEvent { data: &data, ..event.clone() }), true),
            None => self.write(&format_event(event), true),
        }
    }

    /// [`SseSink::send`] for an event whose data already went through
    /// [`SseSink::mapped`] (a producer that logs what the client gets): the
    /// rewrite is not applied a second time.
    pub(crate) fn send_premapped(&mut self, event: &SseEvent<'_>) -> Result<(), ClientGone> {
        self.write(&format_event(event), true)
    }

    /// Sets a rewrite of every event's data before it is written: `map`
    /// returns the new data, or `None` to write it unchanged (a producer may
    /// apply it first through [`SseSink::mapped`], e.g. to log what the
    /// client gets, and then write with `send_premapped`). The hub uses
    /// it to write a request's id as the client sent it
    /// (`protocol::jsonrpc::IdText`).
    pub fn map_data(&mut self, map: impl Fn(&str) -> Option<String> + Send + 'static) {
        self.map = Some(Box::new(map));
    }

    /// `data` as [`SseSink::send`] would write it (after the
    /// [`SseSink::map_data`] rewrite, if any).
    pub fn mapped(&self, data: String) -> String {
        self.map.as_ref().and_then(|map| map(&data)).unwrap_or(data)
    }

    /// Writes a comment line (`: text`; each line of `text` becomes a comment line).
    pub fn comment(&mut self, text: &str) -> Result<(), ClientGone> {
        let mut out = String::with_capacity(text.len() + 4);
        for line in split_lines(text) {
            out.push_str(": ");
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
        self.write(out.as_bytes(), false)
    }

    /// Whether a previous write (or the pinger) found the client gone, or the
    /// server ended the stream (shutdown).
    pub fn is_gone(&self) -> bool {
        match &self.target {
            Target::Stream(shared) => shared.is_gone(),
            Target::Memory(m) => m.gone,
        }
    }

    /// Declares this stream open-ended: it waits for notifications and has no
    /// answer to finish (a legacy standalone GET stream, a 2026-07-28
    /// `subscriptions/listen` stream). At shutdown such a stream is ended at
    /// once with its terminal chunk instead of being waited for within the
    /// drain timeout (`drainTimeoutMs`); if a shutdown already began, it ends
    /// now. Streams answering a GET are open-ended without this call.
    pub fn open_ended(&mut self) {
        if let Target::Stream(shared) = &self.target {
            shared.set_open_ended();
        }
    }

    /// Runs `hook` once when the client is found gone (at once if it already
    /// is), on whichever thread finds it: the pinger, a failed write, or
    /// shutdown. It must not block (cut a socket, set a flag), since the
    /// pinger serves every stream.
    pub fn on_gone(&mut self, hook: impl FnOnce() + Send + 'static) {
        let shared = match &mut self.target {
            Target::Stream(shared) => shared,
            Target::Memory(m) if m.gone => return hook(),
            Target::Memory(m) => {
                m.on_gone = Some(Box::new(hook));
                return;
            }
        };
        *shared.on_gone.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(hook));
        if shared.is_gone() {
            let hook = shared.on_gone.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(hook) = hook {
                hook();
            }
        }
    }
}

/// Splits on `\r\n`, `\n` or `\r` (the SSE line terminators); an empty text is one empty line.
fn split_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let s = rest?;
        match s.find(['\r', '\n']) {
            Some(i) => {
                let skip = if s[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&s[i + skip..]);
                Some(&s[..i])
            }
            None => {
                rest = None;
                Some(s)
            }
        }
    })
}

fn single_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

/// The wire form of one event, ending in the blank line.
pub(crate) fn format_event(ev: &SseEvent<'_>) -> Vec<u8> {
    let mut out = String::with_capacity(ev.data.len() + 32);
    if let Some(id) = ev.id {
        out.push_str("id: ");
        out.push_str(&single_line(id));
        out.push('\n');
    }
    if let Some(name) = ev.event {
        out.push_str("event: ");
        out.push_str(&single_line(name));
        out.push('\n');
    }
    if let Some(ms) = ev.retry_ms {
        out.push_str(&format!("retry: {ms}\n"));
    }
    for line in split_lines(ev.data) {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_format() {
        let ev = SseEvent {
            id: Some("7"),
            event: Some("message"),
            retry_ms: Some(500),
            data: "a\nb\r\nc",
        };
        assert_eq!(
            String::from_utf8(format_event(&ev)).expect("utf8"),
            "id: 7\nevent: message\nretry: 500\ndata: a\ndata: b\ndata: c\n\n"
        );
        let ev = SseEvent {
            data: "",
            ..Default::default()
        };
        assert_eq!(format_event(&ev), b"data: \n\n");
        let ev = SseEvent {
            id: Some("x\ny"),
            data: "{}",
            ..Default::default()
        };
        assert_eq!(format_event(&ev), b"id: x y\ndata: {}\n\n");
    }

    #[test]
    fn collect_keeps_the_stream_in_memory_and_the_client_leaves_after_max_events() {
        let gone = Arc::new(AtomicBool::new(false));
        let seen_gone = gone.clone();
        let text = collect(
            move |sink: &mut SseSink| {
                sink.map_data(|d| d.contains("two").then(|| d.replace("two", "2")));
                sink.on_gone(move || seen_gone.store(true, Ordering::SeqCst));
                sink.open_ended(); // no server: nothing to end at shutdown
                assert_eq!(sink.send(&SseEvent { id: Some("1"), data: "one", ..Default::default() }), Ok(()));
                assert_eq!(sink.comment("note"), Ok(()), "a comment is not an event");
                assert_eq!(sink.send(&SseEvent { event: Some("e"), data: "two\nlines", ..Default::default() }), Ok(()));
                assert!(!sink.is_gone());
                assert_eq!(sink.send(&SseEvent { data: "three", ..Default::default() }), Err(ClientGone), "the third of 2 events");
                assert!(sink.is_gone());
                assert_eq!(sink.comment("late"), Err(ClientGone));
            },
            2,
        );
        assert_eq!(text, "id: 1\ndata: one\n\n: note\n\nevent: e\ndata: 2\ndata: lines\n\n");
        assert!(gone.load(Ordering::SeqCst), "the on_gone hook ran when the client left");
        let events = crate::protocol::sse::parse_all(&text);
        assert_eq!(events.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(), ["one", "2\nlines"]);
        // A hook set after the client left runs at once.
        let late = Arc::new(AtomicBool::new(false));
        let l = late.clone();
        let text = collect(
            move |sink: &mut SseSink| {
                assert_eq!(sink.send(&SseEvent { data: "x", ..Default::default() }), Err(ClientGone));
                sink.on_gone(move || l.store(true, Ordering::SeqCst));
            },
            0,
        );
        assert_eq!(text, "");
        assert!(late.load(Ordering::SeqCst));
    }
}
