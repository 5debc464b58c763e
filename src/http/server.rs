//! Sockets and threads: reactor → bounded queue → workers, rejecter, pinger, stream threads.
//!
//! - **Reactor** (one thread, mio, edge-triggered): accepts, reads the heads
//!   and bodies of all connections without blocking and enforces the
//!   deadlines (head `head_timeout` → 408, body `body_timeout` → 408, idle
//!   keep-alive `idle_timeout` → silent close). Parse errors (400/413/431/505)
//!   are answered from here with one non-blocking write, then the connection
//!   is half-closed and drained for up to [`LINGER`] ("lingering close", so the
//!   client reads the error instead of a reset). Accept errors (EMFILE, …) are
//!   logged and accepting pauses [`ACCEPT_BACKOFF`]; the reactor never exits on
//!   them. It never makes a blocking write.
//! - **Workers** (`workers` threads) take complete requests from a bounded
//!   crossbeam queue (`queue`), run the handler under `catch_unwind` (panic →
//!   500), write the response (one non-blocking write; only what does not
//!   fit in the send buffer goes out by bounded blocking writes within
//!   `write_budget`, see `write_response`) and hand the connection
//!   back to the reactor over a channel for keep-alive, pipelined bytes
//!   included.
//! - **Connections** are non-blocking and registered with the poller from
//!   accept to close, also while a worker or stream thread holds them
//!   ("out"): nothing is deregistered or registered per request. An event
//!   for an out connection sets its "readable while out" flag; the worker
//!   giving it back wakes the reactor (`mio::Waker`) only when that flag is
//!   set, and otherwise the reactor takes it back at its next turn and waits
//!   for readiness (races: `Reactor::take_back`). Stream threads and the
//!   rejecter switch their connection to blocking and back.
//! - **Rejecter**: when the queue is full the connection goes here and gets
//!   `503` + `Retry-After` + a JSON-RPC error body, then is closed.
//! - **Stream threads** (at most `max_streams`, one per SSE response) and the
//!   **pinger**, see [`super::sse`].
//! - **Shutdown** ([`ServerHandle::shutdown`]) drains: the listener closes at
//!   once (new connects are refused), open-ended streams end with their
//!   terminal chunk, in-flight requests and call streams get `drain_timeout`,
//!   then what is left is cut (counted in [`Drained`]).
//! - **Liveness** ([`ServerHandle::probe`]): the reactor counts its loop
//!   turns and each worker publishes since when it is busy, so a service
//!   watchdog can tell a stuck reactor or a wedged pool from a busy one.

use super::parse::{Limits, Outcome, Parsed, RequestReader};
use super::sse::{SseSink, StreamShared};
use super::write::write_all_budget;
use super::{Body, Handler, Response, ServerConfig};
use crate::threads::Kind;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use mio::{Events, Interest, Poll, Token, Waker};
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a connection being closed after an error is drained before it is closed.
pub const LINGER: Duration = Duration::from_secs(2);
/// How long accepting pauses after an accept error (EMFILE, ENFILE, …).
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// While accepting keeps failing, at most one log line per this interval.
pub const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(10);
/// After the drain deadline, how long cut streams get to write their terminal
/// chunk and their threads to return before they are left detached.
pub const CUT_GRACE: Duration = Duration::from_millis(500);
/// Deadline scan period of the reactor.
const TICK: Duration = Duration::from_millis(25);

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);

/// Decrements the open-connection count when the connection is dropped.
struct ConnGuard(Arc<AtomicUsize>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One client connection, moved between the reactor, workers and stream threads.
struct Conn {
    sock: TcpStream,
    reader: RequestReader,
    /// Its poller token: the socket is registered once, at accept, and stays
    /// registered (edge-triggered, readable) while a worker or stream thread
    /// holds it. Tokens are never reused.
    token: usize,
    /// "Readable while out": set by the reactor when a readiness event for
    /// `token` comes while the connection is out (the reactor keeps only a
    /// `Weak` of it then); see [`Reactor::take_back`].
    readable: Arc<AtomicBool>,
    /// Whether the socket is in blocking mode now. It is non-blocking for
    /// its whole life except while a stream thread or the rejecter holds it,
    /// and during a worker's fallback write ([`write_response`]).
    blocking: bool,
    _guard: ConnGuard,
}

impl Conn {
    /// Switches the socket to blocking or non-blocking mode (one `ioctl`, only when it changes).
    fn set_blocking(&mut self, blocking: bool) -> std::io::Result<()> {
        if self.blocking != blocking {
            self.sock.set_nonblocking(!blocking)?;
            self.blocking = blocking;
        }
        Ok(())
    }
}

/// A connection coming back to the reactor.
enum Back {
    /// Response written; read the next request (leftover bytes first).
    KeepAlive(Conn),
    /// Write side already shut down; drain and close.
    Linger(Conn),
}

struct Job {
    conn: Conn,
    parsed: Box<Parsed>,
}

/// Live figures of one server for `/metrics`, handed to the handler at
/// bind ([`Handler::attach`]): the worker queue's depth and capacity, and the
/// connections answered 503 because the queue or the stream threads were full.
pub struct ServerStats {
    queue: Receiver<Job>,
    capacity: usize,
    rejected_queue: std::sync::atomic::AtomicU64,
    rejected_streams: std::sync::atomic::AtomicU64,
}

impl ServerStats {
    /// Complete requests waiting for a worker now.
    pub fn queue_depth(&self) -> usize {
        self.queue.len()
    }

    /// The worker queue's capacity (`ServerConfig::queue`).
    pub fn queue_capacity(&self) -> usize {
        self.capacity
    }

    /// Requests answered 503 since the start: `(worker queue full, max_streams reached)`.
    pub fn rejected(&self) -> (u64, u64) {
        (self.rejected_queue.load(Ordering::Relaxed), self.rejected_streams.load(Ordering::Relaxed))
    }
}

struct Shared {
    stats: Arc<ServerStats>,
    cfg: ServerConfig,
    handler: Arc<dyn Handler>,
    /// Set when a shutdown begins; shared with the streams (see `SseSink::open_ended`).
    stopping: Arc<AtomicBool>,
    active_streams: AtomicUsize,
    /// Turns of the reactor loop (liveness).
    reactor_turns: AtomicU64,
    /// Per worker: ms since `epoch` + 1 at which its current request started; 0 = idle.
    busy_since: Vec<AtomicU64>,
    epoch: Instant,
    streams: Mutex<Vec<Weak<StreamShared>>>,
    stream_threads: Mutex<Vec<JoinHandle<()>>>,
    /// Starts, names and counts the server's threads ([`Handler::threads`]);
    /// the server joins them itself in [`ServerHandle::shutdown`].
    owner: crate::threads::Threads,
    back_tx: Sender<Back>,
    waker: Waker,
}

impl Shared {
    /// Returns a connection to the reactor (non-blocking again, still
    /// registered); closes it if the reactor is gone. Wakes the reactor only
    /// when the connection became readable while it was out.
    fn give_back(&self, mut conn: Conn, keep_alive: bool) {
        if let Err(e) = conn.set_blocking(false) {
            log::debug!("http: set_nonblocking: {e}");
            return;
        }
        let back = if keep_alive && !self.stopping.load(Ordering::Acquire) {
            Back::KeepAlive(conn)
        } else {
            let _ = conn.sock.shutdown(Shutdown::Write);
            Back::Linger(conn)
        };
        let readable = match &back {
            Back::KeepAlive(c) | Back::Linger(c) => c.readable.clone(),
        };
        // No wake-up unless data came while the connection was out: the
        // reactor takes it back at its next turn (an event or its TICK) and
        // then waits for readiness. See `Reactor::take_back` for the races.
        if self.back_tx.send(back).is_ok() {
            fence(Ordering::SeqCst);
            if readable.load(Ordering::Relaxed) {
                let _ = self.waker.wake();
            }
        }
    }
}

/// The server entry point.
pub struct Server;

struct Threads {
    reactor: JoinHandle<()>,
    workers: Vec<JoinHandle<()>>,
    rejecter: JoinHandle<()>,
    pinger: JoinHandle<()>,
    pinger_stop: Sender<()>,
    /// A receiver of the request queue, kept only to count what is still queued.
    queue: Receiver<Job>,
}

/// What a [`ServerHandle::shutdown`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drained {
    /// Requests still queued or in a handler at the drain deadline (their
    /// clients get no answer; the connection closes when the process exits).
    pub cut_requests: usize,
    /// Call streams still running at the drain deadline, ended with their
    /// terminal chunk before their answer.
    pub cut_streams: usize,
    /// Open-ended streams (standalone GET streams, listen streams) ended
    /// politely when the drain began.
    pub ended_streams: usize,
    /// From the start of the shutdown to its end.
    pub took: Duration,
}

/// Why [`ServerHandle::probe`] found the server not making progress.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Stalled {
    /// The reactor did not turn once since the previous probe, though it was woken.
    #[error("the HTTP reactor made no progress since the previous check")]
    Reactor,
    /// Every worker has been busy with one request for longer than the limit.
    #[error("all {workers} HTTP workers are busy with one request each for over {limit_ms} ms")]
    Pool {
        /// Number of workers.
        workers: usize,
        /// The stall limit, ms.
        limit_ms: u128,
    },
}

/// State a watchdog keeps between two [`ServerHandle::probe`] calls.
#[derive(Debug, Clone)]
pub struct Probe {
    last_turns: Option<u64>,
    /// A pool whose every worker has held its request this long is stalled.
    pub stall_limit: Duration,
}

impl Probe {
    /// A probe with this worker stall limit (pick it above the longest a
    /// handler may legitimately run: the hub deadline plus the write budget).
    pub fn new(stall_limit: Duration) -> Probe {
        Probe { last_turns: None, stall_limit }
    }
}

/// A running server. `Send + Sync`: `shutdown` may be called from any thread
/// while another one `wait`s.
pub struct ServerHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    threads: Mutex<Option<Threads>>,
    done: Mutex<Option<Drained>>,
    done_cv: Condvar,
}

impl Server {
    /// Binds `addr` (with `SO_REUSEADDR`; port 0 picks a free port) and starts
    /// the reactor, `cfg.workers` workers, the rejecter and the pinger.
    ///
    /// Errors: binding/listening fails, or a thread or the poller cannot be created.
    pub fn bind(
        addr: SocketAddr,
        cfg: ServerConfig,
        handler: Arc<dyn Handler>,
    ) -> std::io::Result<ServerHandle> {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            None,
        )?;
        socket.set_reuse_address(true)?;
        socket.bind(&addr.into())?;
        socket.listen(1024)?;
        socket.set_nonblocking(true)?;
        let std_listener: std::net::TcpListener = socket.into();
        let local = std_listener.local_addr()?;
        let listener = mio::net::TcpListener::from_std(std_listener);

        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let (back_tx, back_rx) = crossbeam_channel::unbounded();
        let (job_tx, job_rx) = crossbeam_channel::bounded::<Job>(cfg.queue);
        let (reject_tx, reject_rx) = crossbeam_channel::bounded::<Job>(1024);
        let (pinger_stop, pinger_rx) = crossbeam_channel::bounded::<()>(0);
        let stats = Arc::new(ServerStats {
            queue: job_rx.clone(),
            capacity: cfg.queue,
            rejected_queue: Default::default(),
            rejected_streams: Default::default(),
        });
        handler.attach(stats.clone());
        let owner = handler.threads().unwrap_or_default();
        let shared = Arc::new(Shared {
            owner: owner.clone(),
            stats,
            cfg: cfg.clone(),
            handler,
            stopping: Arc::new(AtomicBool::new(false)),
            active_streams: AtomicUsize::new(0),
            reactor_turns: AtomicU64::new(0),
            busy_since: (0..cfg.workers.max(1)).map(|_| AtomicU64::new(0)).collect(),
            epoch: Instant::now(),
            streams: Mutex::new(Vec::new()),
            stream_threads: Mutex::new(Vec::new()),
            back_tx,
            waker,
        });

        let mut reactor = Reactor {
            poll,
            listener: Some(listener),
            conns: HashMap::new(),
            out: HashMap::new(),
            next_token: 2,
            job_tx,
            reject_tx,
            back_rx,
            open: Arc::new(AtomicUsize::new(0)),
            accept_paused_until: None,
            accept_log: None,
            shared: shared.clone(),
            limits: Limits {
                max_head_bytes: cfg.max_head_bytes,
                max_body_bytes: cfg.max_body_bytes,
            },
            buf: vec![0u8; 16 * 1024].into_boxed_slice(),
        };
        reactor.poll.registry().register(
            reactor
                .listener
                .as_mut()
                .ok_or_else(|| std::io::Error::other("no listener"))?,
            LISTENER,
            Interest::READABLE,
        )?;
        let mut workers = Vec::with_capacity(cfg.workers);
        for i in 0..cfg.workers.max(1) {
            let (shared, rx) = (shared.clone(), job_rx.clone());
            workers.push(owner.spawn(&format!("http-worker-{i}"), Kind::Http, move || {
                worker_loop(&shared, &rx, i)
            })?);
        }
        let s = shared.clone();
        let rejecter = owner.spawn("http-rejecter", Kind::Http, move || {
            rejecter_loop(&s, &reject_rx)
        })?;
        let s = shared.clone();
        let pinger = owner.spawn("http-pinger", Kind::Http, move || {
            pinger_loop(&s, &pinger_rx)
        })?;
        let reactor = owner.spawn("http-reactor", Kind::Http, move || reactor.run())?;
        Ok(ServerHandle {
            addr: local,
            shared,
            threads: Mutex::new(Some(Threads {
                reactor,
                workers,
                rejecter,
                pinger,
                pinger_stop,
                queue: job_rx,
            })),
            done: Mutex::new(None),
            done_cv: Condvar::new(),
        })
    }
}

impl ServerHandle {
    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Graceful stop, in this order:
    /// 1. the reactor closes the listener (new connects are refused) and the
    ///    idle and half-read connections;
    /// 2. open-ended streams (GET streams, and streams whose producer called
    ///    [`SseSink::open_ended`](super::SseSink::open_ended)) are ended
    ///    politely: terminal chunk (`0\r\n\r\n`), then FIN;
    /// 3. queued and in-flight requests and call streams get until
    ///    `drain_timeout` (config `drainTimeoutMs`) to finish; their answers
    ///    carry `Connection: close`;
    /// 4. what is still running then is cut: streams get their terminal
    ///    chunk (within [`CUT_GRACE`]), handlers are left detached (they end
    ///    with the process) and are counted in [`Drained::cut_requests`].
    ///
    /// Callable from any thread, more than once; later calls wait for the
    /// first to complete and return its report.
    pub fn shutdown(&self) -> Drained {
        let threads = self
            .threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some(t) = threads else {
            return self.wait();
        };
        let started = Instant::now();
        let drain_deadline = started + self.shared.cfg.drain_timeout;
        self.shared.stopping.store(true, Ordering::SeqCst);
        let _ = self.shared.waker.wake();
        // The reactor notices within one poll: it never blocks on anything else.
        join_until(vec![t.reactor], started + Duration::from_secs(1));
        let ended_streams = end_streams(&self.shared, true, drain_deadline);
        let all_idle = |s: &Shared| {
            t.workers.iter().all(|h| h.is_finished())
                && t.rejecter.is_finished()
                && s.active_streams.load(Ordering::Acquire) == 0
        };
        while !all_idle(&self.shared) && Instant::now() < drain_deadline {
            // Streams that started during the drain and are open-ended end at
            // once (run_stream checks `stopping`); call streams are waited for.
            std::thread::sleep(Duration::from_millis(5));
        }
        let cut_requests = t.queue.len()
            + self
                .shared
                .busy_since
                .iter()
                .filter(|b| b.load(Ordering::Acquire) != 0)
                .count();
        let cut_grace = Instant::now() + CUT_GRACE;
        let cut_streams = end_streams(&self.shared, false, cut_grace);
        drop(t.queue);
        join_until(t.workers, Instant::now());
        join_until(vec![t.rejecter], Instant::now());
        drop(t.pinger_stop);
        join_until(vec![t.pinger], cut_grace);
        let streams = std::mem::take(
            &mut *self
                .shared
                .stream_threads
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        join_until(streams, cut_grace);
        let report = Drained {
            cut_requests,
            cut_streams,
            ended_streams,
            took: started.elapsed(),
        };
        *self.done.lock().unwrap_or_else(|e| e.into_inner()) = Some(report);
        self.done_cv.notify_all();
        report
    }

    /// Blocks until [`shutdown`](Self::shutdown) (from another thread) has
    /// completed; returns its report.
    pub fn wait(&self) -> Drained {
        let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(report) = *done {
                return report;
            }
            done = self.done_cv.wait(done).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The configured drain timeout (`drainTimeoutMs`).
    pub fn drain_timeout(&self) -> Duration {
        self.shared.cfg.drain_timeout
    }

    /// Whether a shutdown has begun.
    pub fn is_stopping(&self) -> bool {
        self.shared.stopping.load(Ordering::Acquire)
    }

    /// Requests a handler is working on right now.
    pub fn in_flight(&self) -> usize {
        self.shared
            .busy_since
            .iter()
            .filter(|b| b.load(Ordering::Acquire) != 0)
            .count()
    }

    /// SSE streams open right now (call streams and open-ended ones).
    pub fn open_streams(&self) -> usize {
        self.shared.active_streams.load(Ordering::Acquire)
    }

    /// One liveness check for a service watchdog (call it every few
    /// seconds; each call wakes the reactor so the next one can see it turn):
    /// `Err(Stalled::Reactor)` when the reactor loop did not turn since the
    /// previous call, `Err(Stalled::Pool)` when every worker has been busy
    /// with one request for longer than `probe.stall_limit`. A stopping
    /// server is reported healthy (its reactor has exited on purpose; the
    /// drain is bounded by `drain_timeout`). Costs a few atomic loads.
    pub fn probe(&self, probe: &mut Probe) -> Result<(), Stalled> {
        if self.is_stopping() {
            return Ok(());
        }
        let turns = self.shared.reactor_turns.load(Ordering::Acquire);
        let last = probe.last_turns.replace(turns);
        let _ = self.shared.waker.wake();
        if last == Some(turns) {
            return Err(Stalled::Reactor);
        }
        let now = self.shared.epoch.elapsed().as_millis() as u64 + 1;
        let limit = probe.stall_limit.as_millis() as u64;
        let stalled = self.shared.busy_since.iter().all(|b| {
            let since = b.load(Ordering::Acquire);
            since != 0 && now.saturating_sub(since) > limit
        });
        if stalled {
            return Err(Stalled::Pool {
                workers: self.shared.busy_since.len(),
                limit_ms: probe.stall_limit.as_millis(),
            });
        }
        Ok(())
    }
}

/// Joins the threads that finish before `deadline`; the others are left detached.
fn join_until(handles: Vec<JoinHandle<()>>, deadline: Instant) {
    let mut detached = 0;
    for h in handles {
        while !h.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        if h.is_finished() {
            let _ = h.join();
        } else {
            detached += 1;
        }
    }
    if detached > 0 {
        log::debug!("http: {detached} thread(s) still busy at shutdown; detached");
    }
}

/// Ends the registered streams politely (terminal chunk, then FIN): only the
/// open-ended ones when `open_ended_only`, else all that are still running.
/// Returns how many were ended.
fn end_streams(shared: &Shared, open_ended_only: bool, deadline: Instant) -> usize {
    let list: Vec<Arc<StreamShared>> = {
        let mut list = shared.streams.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|w| w.strong_count() > 0);
        list.iter().filter_map(Weak::upgrade).collect()
    };
    list.iter()
        .filter(|s| !s.is_gone() && (!open_ended_only || s.is_open_ended()))
        .filter(|s| s.end_politely(deadline))
        .count()
}

/// Reason phrase for the status codes the hub uses.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// How the body of a response is delimited.
enum Framing {
    Length(usize),
    Chunked,
    /// HTTP/1.0 stream: delimited by closing the connection.
    Close,
    /// 1xx/204/304: no body and no length.
    NoBody,
}

fn response_head(
    status: u16,
    headers: &[(String, String)],
    framing: Framing,
    keep_alive: bool,
    minor: u8,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let _ = write!(out, "HTTP/1.1 {} {}\r\n", status, reason(status));
    for (name, value) in headers {
        let managed = ["content-length", "transfer-encoding", "connection"]
            .iter()
            .any(|m| name.eq_ignore_ascii_case(m));
        let unsafe_bytes = |s: &str| s.bytes().any(|b| b == b'\r' || b == b'\n');
        if managed || name.is_empty() || unsafe_bytes(name) || unsafe_bytes(value) {
            continue;
        }
        let _ = write!(out, "{name}: {value}\r\n");
    }
    match framing {
        Framing::Length(n) => {
            let _ = write!(out, "Content-Length: {n}\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        Framing::Close | Framing::NoBody => {}
    }
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if minor == 0 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// A complete error response with a small JSON body and `Connection: close`.
pub(crate) fn error_response(status: u16) -> Vec<u8> {
    let body = format!(
        "{{\"error\":{{\"status\":{},\"message\":\"{}\"}}}}",
        status,
        reason(status)
    );
    let mut out = response_head(
        status,
        &[("Content-Type".into(), "application/json".into())],
        Framing::Length(body.len()),
        false,
        1,
    );
    out.extend_from_slice(body.as_bytes());
    out
}

/// The 503 answered when the queue (or the stream limit) is full.
fn busy_response(retry_after_secs: u32) -> Vec<u8> {
    let body = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{{\"code\":-32000,\"message\":\"Server busy, retry later\",\"data\":{{\"retry_after_seconds\":{retry_after_secs}}}}}}}"
    );
    let mut out = response_head(
        503,
        &[
            ("Content-Type".into(), "application/json".into()),
            ("Retry-After".into(), retry_after_secs.to_string()),
        ],
        Framing::Length(body.len()),
        false,
        1,
    );
    out.extend_from_slice(body.as_bytes());
    out
}

// ---------------------------------------------------------------- reactor

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Idle,
    Head,
    Body,
    Linger,
}

/// A connection while the reactor owns it (registered with the poller).
struct RConn {
    sock: mio::net::TcpStream,
    reader: RequestReader,
    guard: ConnGuard,
    readable: Arc<AtomicBool>,
    phase: Phase,
    deadline: Instant,
}

struct Reactor {
    poll: Poll,
    listener: Option<mio::net::TcpListener>,
    conns: HashMap<usize, RConn>,
    /// Connections out with a worker, the rejecter or a stream thread (or
    /// given back and still in `back_rx`): token → their "readable while
    /// out" flag. A dead `Weak` is a connection closed while out (closing
    /// drops it from the epoll set); purged on its events and in `expire`.
    out: HashMap<usize, Weak<AtomicBool>>,
    next_token: usize,
    job_tx: Sender<Job>,
    reject_tx: Sender<Job>,
    back_rx: Receiver<Back>,
    open: Arc<AtomicUsize>,
    accept_paused_until: Option<Instant>,
    /// When the last accept-failure line was logged, and failures since.
    accept_log: Option<(Instant, u64)>,
    shared: Arc<Shared>,
    limits: Limits,
    /// The one read buffer of `drive` (16 KiB), kept: zeroing a fresh one per
    /// readiness event was a quarter of the instructions of a warm list (issue 16).
    buf: Box<[u8]>,
}

impl Reactor {
    fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let mut last_scan = Instant::now();
        while !self.shared.stopping.load(Ordering::Acquire) {
            self.shared.reactor_turns.fetch_add(1, Ordering::AcqRel);
            // Out connections too: once back, their idle deadlines must run.
            let timeout = if !self.conns.is_empty() || !self.out.is_empty() {
                Some(TICK)
            } else {
                self.accept_paused_until
                    .map(|t| t.saturating_duration_since(Instant::now()))
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != ErrorKind::Interrupted {
                    log::error!("http: poll failed: {e}");
                    std::thread::sleep(ACCEPT_BACKOFF);
                }
                continue;
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => {
                        if self.accept_paused_until.is_none() {
                            self.accept_all();
                        }
                    }
                    WAKER => {}
                    Token(t) if self.conns.contains_key(&t) => self.drive(t),
                    Token(t) => self.readable_while_out(t),
                }
            }
            while let Ok(back) = self.back_rx.try_recv() {
                self.take_back(back);
            }
            let now = Instant::now();
            if self.accept_paused_until.is_some_and(|t| now >= t) {
                self.accept_paused_until = None;
                self.accept_all();
            }
            if now.duration_since(last_scan) >= TICK {
                last_scan = now;
                self.expire(now);
            }
        }
        // Stopping: no more accepts; idle and half-read connections are closed.
        // Queued jobs still reach the workers (the channel drains before it disconnects).
        self.listener = None;
        self.conns.clear();
    }

    fn accept_all(&mut self) {
        loop {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            match listener.accept() {
                Ok((mut sock, peer)) => {
                    if self.open.load(Ordering::Acquire) >= self.shared.cfg.max_connections {
                        log::debug!("http: max_connections reached, closing {peer}");
                        continue;
                    }
                    if let Err(e) = sock.set_nodelay(true) {
                        log::debug!("http: TCP_NODELAY on {peer}: {e}");
                    }
                    // Non-blocking (mio accepts so) for the connection's whole life.
                    let token = self.next_token;
                    self.next_token += 1;
                    if let Err(e) = self.poll.registry().register(&mut sock, Token(token), Interest::READABLE) {
                        log::warn!("http: register failed: {e}");
                        continue;
                    }
                    self.open.fetch_add(1, Ordering::AcqRel);
                    self.conns.insert(
                        token,
                        RConn {
                            sock,
                            reader: RequestReader::new(self.limits, peer),
                            guard: ConnGuard(self.open.clone()),
                            readable: Arc::new(AtomicBool::new(false)),
                            phase: Phase::Head,
                            deadline: Instant::now() + self.shared.cfg.head_timeout,
                        },
                    );
                    self.drive(token);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::Interrupted | ErrorKind::ConnectionAborted
                    ) => {}
                Err(e) => {
                    // One line per ACCEPT_LOG_EVERY while the condition lasts
                    // (EMFILE can persist; a line per back-off floods the log).
                    let now = Instant::now();
                    if self.accept_log.is_none_or(|(at, _)| now.duration_since(at) >= ACCEPT_LOG_EVERY) {
                        let suppressed = self.accept_log.map_or(0, |(_, n)| n);
                        log::warn!(
                            "http: accept failed: {e}; pausing accepts for {ACCEPT_BACKOFF:?} ({suppressed} similar failures since the last line)"
                        );
                        self.accept_log = Some((now, 0));
                    } else if let Some((_, n)) = self.accept_log.as_mut() {
                        *n += 1;
                    }
                    self.accept_paused_until = Some(now + ACCEPT_BACKOFF);
                    return;
                }
            }
        }
    }

    /// Closes a connection the reactor holds. No deregistration: closing
    /// the last fd of a socket drops it from the epoll set.
    fn close(&mut self, token: usize) {
        self.conns.remove(&token);
    }

    /// Takes a connection out of the reactor for a worker; it stays
    /// registered with the poller under its token.
    fn take_out(&mut self, token: usize) -> Option<Conn> {
        let rc = self.conns.remove(&token)?;
        self.out.insert(token, Arc::downgrade(&rc.readable));
        Some(Conn {
            sock: TcpStream::from(rc.sock),
            reader: rc.reader,
            token,
            readable: rc.readable,
            blocking: false,
            _guard: rc.guard,
        })
    }

    /// A readiness event for a connection that is out: noted in its flag
    /// for `take_back` (or purged if the connection was closed meanwhile).
    fn readable_while_out(&mut self, token: usize) {
        match self.out.get(&token).map(Weak::upgrade) {
            Some(Some(flag)) => {
                flag.store(true, Ordering::Relaxed);
                // Pairs with the fence in `Shared::give_back`: either the
                // worker sees the flag and wakes us, or our `back_rx` drain
                // later in this turn sees its `Back`.
                fence(Ordering::SeqCst);
            }
            Some(None) => {
                self.out.remove(&token);
            }
            None => {} // closed by the reactor; a dup (a stream's) kept it in the set
        }
    }

    /// A connection given back by a worker, the rejecter or a stream thread.
    /// It is still registered (edge-triggered) under its token, so it is
    /// only read now when something may already be waiting: its flag is set
    /// (data or FIN came while it was out), the reader holds pipelined bytes
    /// (no new event will come for those), or it lingers (read to EOF).
    /// Otherwise the next readiness event drives it.
    ///
    /// Races (worker W: `send(Back)`, SeqCst fence, load flag → wake if set;
    /// reactor R: event for an out token → store flag, SeqCst fence; later
    /// in the same turn drain `back_rx`, here `swap(false)` the flag):
    /// - event handled before W's load: W sees the flag and wakes R; R
    ///   finds the `Back` (this turn or the next) with the flag set: drive.
    /// - event handled after W's load (W saw no flag, no wake): R is awake
    ///   handling that event, and the fences order W's send before R's
    ///   drain later in the same turn, so this `take_back` sees the flag.
    /// - event handled in the same turn as the `Back`: events come first in
    ///   a turn, so the flag is set before this runs.
    /// - data arriving after this `take_back`: an ordinary event on a token
    ///   in `conns`: drive.
    /// - data arrived while out but its event is not yet handled: it is
    ///   still pending in epoll and comes at the next poll, now for a token
    ///   in `conns`: drive.
    ///
    /// No request waits for the TICK. What may: taking back a connection
    /// with nothing to read (its idle deadline starts up to one TICK late)
    /// and a `Linger` give-back whose client stays silent (its close waits
    /// for the client's FIN, or up to one TICK for the next turn).
    fn take_back(&mut self, back: Back) {
        let (conn, phase, deadline) = match back {
            Back::KeepAlive(conn) => (
                conn,
                Phase::Idle,
                Instant::now() + self.shared.cfg.idle_timeout,
            ),
            Back::Linger(conn) => (conn, Phase::Linger, Instant::now() + LINGER),
        };
        let Conn {
            sock,
            reader,
            token,
            readable,
            blocking: _,
            _guard: guard,
        } = conn;
        self.out.remove(&token);
        let read_now =
            readable.swap(false, Ordering::Relaxed) || reader.buffered() > 0 || phase == Phase::Linger;
        // Still registered under `token` (see `Conn::token`): wrapping it
        // again is no syscall.
        let sock = mio::net::TcpStream::from_std(sock);
        self.conns.insert(
            token,
            RConn {
                sock,
                reader,
                guard,
                readable,
                phase,
                deadline,
            },
        );
        if read_now {
            self.drive(token);
        }
    }

    /// Error answer from the reactor: one non-blocking write, half-close, linger.
    fn fail(&mut self, token: usize, status: u16) {
        let Some(rc) = self.conns.get_mut(&token) else {
            return;
        };
        let _ = rc.sock.write(&error_response(status));
        let _ = rc.sock.shutdown(Shutdown::Write);
        rc.phase = Phase::Linger;
        rc.deadline = Instant::now() + LINGER;
    }

    /// Reads and parses what the connection has, until it would block.
    fn drive(&mut self, token: usize) {
        loop {
            let Some(rc) = self.conns.get_mut(&token) else {
                return;
            };
            if rc.phase == Phase::Linger {
                match rc.sock.read(&mut self.buf) {
                    Ok(0) => {
                        self.close(token);
                        return;
                    }
                    Ok(_) => continue,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => {
                        self.close(token);
                        return;
                    }
                }
            }
            match rc.reader.advance() {
                Outcome::NeedMore => {
                    let phase = match rc.reader.progress() {
                        super::parse::Progress::Idle => Phase::Idle,
                        super::parse::Progress::Head => Phase::Head,
                        super::parse::Progress::Body => Phase::Body,
                    };
                    if phase > rc.phase {
                        rc.phase = phase;
                        let cfg = &self.shared.cfg;
                        rc.deadline = Instant::now()
                            + if phase == Phase::Body {
                                cfg.body_timeout
                            } else {
                                cfg.head_timeout
                            };
                    }
                    match rc.sock.read(&mut self.buf) {
                        Ok(0) => {
                            self.close(token);
                            return;
                        }
                        Ok(n) => rc.reader.feed(&self.buf[..n]),
                        Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(_) => {
                            self.close(token);
                            return;
                        }
                    }
                }
                Outcome::Continue100 => {
                    const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
                    if !matches!(rc.sock.write(CONTINUE), Ok(n) if n == CONTINUE.len()) {
                        self.close(token);
                        return;
                    }
                }
                Outcome::Error(status) => {
                    log::debug!("http: {} from {:?}", status, rc.sock.peer_addr().ok());
                    self.fail(token, status);
                }
                Outcome::Complete(parsed) => {
                    let Some(conn) = self.take_out(token) else {
                        return;
                    };
                    self.dispatch(Job { conn, parsed });
                    return;
                }
            }
        }
    }

    fn dispatch(&mut self, job: Job) {
        match self.job_tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(job)) => {
                self.shared.stats.rejected_queue.fetch_add(1, Ordering::Relaxed);
                if self.reject_tx.try_send(job).is_err() {
                    log::warn!("http: queue and rejecter both full; connection dropped");
                }
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    fn expire(&mut self, now: Instant) {
        self.out.retain(|_, flag| flag.strong_count() > 0);
        let expired: Vec<(usize, Phase)> = self
            .conns
            .iter()
            .filter(|(_, rc)| rc.deadline <= now)
            .map(|(t, rc)| (*t, rc.phase))
            .collect();
        for (token, phase) in expired {
            match phase {
                Phase::Idle | Phase::Linger => {
                    self.close(token);
                }
                Phase::Head | Phase::Body => {
                    self.fail(token, 408);
                    self.drive(token);
                }
            }
        }
    }
}

// ---------------------------------------------------------------- workers

fn worker_loop(shared: &Arc<Shared>, rx: &Receiver<Job>, index: usize) {
    while let Ok(job) = rx.recv() {
        let busy = &shared.busy_since[index];
        busy.store(shared.epoch.elapsed().as_millis() as u64 + 1, Ordering::Release);
        serve(shared, job);
        busy.store(0, Ordering::Release);
    }
}

fn serve(shared: &Arc<Shared>, job: Job) {
    let Job { mut conn, parsed } = job;
    let Parsed {
        request,
        keep_alive,
        minor_version,
        head_only,
        ..
    } = *parsed;
    // A GET stream (legacy standalone or resumed stream) has no answer to
    // wait for: at shutdown it is ended at once.
    let open_ended = request.method.eq_ignore_ascii_case("GET");
    let handler = shared.handler.clone();
    let response = match catch_unwind(AssertUnwindSafe(move || handler.handle(request))) {
        Ok(r) => r,
        Err(_) => {
            log::error!("http: handler panicked; answered 500");
            Response::json(
                500,
                &serde_json::json!({"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"Internal error"}}),
            )
        }
    };
    // Read after the handler: a shutdown that began meanwhile closes the connection.
    let keep_alive = keep_alive && !shared.stopping.load(Ordering::Acquire);
    let Response {
        status,
        headers,
        body,
    } = response;
    let budget = shared.cfg.write_budget;
    match body {
        Body::Full(bytes) => {
            let no_body = status < 200 || status == 204 || status == 304;
            let framing = if no_body {
                Framing::NoBody
            } else {
                Framing::Length(bytes.len())
            };
            let mut out = response_head(status, &headers, framing, keep_alive, minor_version);
            if !head_only && !no_body {
                out.extend_from_slice(&bytes);
            }
            match write_response(&mut conn, &out, budget) {
                Ok(()) => shared.give_back(conn, keep_alive),
                Err(e) => log::debug!("http: response write failed: {e}"),
            }
        }
        // A stream thread writes with blocking writes within the write
        // budget; `give_back` makes the socket non-blocking again.
        Body::Sse(_) if conn.set_blocking(true).is_err() => {}
        Body::Sse(producer) => start_stream(
            shared,
            conn,
            StreamStart {
                status,
                headers,
                producer,
                keep_alive,
                minor: minor_version,
                head_only,
                open_ended,
            },
        ),
    }
}

/// Writes a whole response on a non-blocking socket: one `write`, which on
/// keep-alive loopback and LAN answers nearly always takes it all; only when
/// it does not (send buffer full: a large answer or a slow reader) the rest
/// goes out by the bounded blocking path ([`write_all_budget`], within
/// `budget`), and the socket is made non-blocking again.
fn write_response(conn: &mut Conn, out: &[u8], budget: Duration) -> std::io::Result<()> {
    let sent = match conn.sock.write(out) {
        Ok(n) => n,
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => 0,
        Err(e) => return Err(e),
    };
    if sent == out.len() {
        return Ok(());
    }
    conn.set_blocking(true)?;
    write_all_budget(&mut conn.sock, &out[sent..], budget)?;
    conn.set_blocking(false)
}

/// What a worker hands to a stream thread.
struct StreamStart {
    status: u16,
    headers: Vec<(String, String)>,
    producer: Box<dyn FnOnce(&mut SseSink) + Send + 'static>,
    keep_alive: bool,
    minor: u8,
    head_only: bool,
    /// Ended at once at shutdown instead of drained.
    open_ended: bool,
}

fn start_stream(shared: &Arc<Shared>, mut conn: Conn, start: StreamStart) {
    let budget = shared.cfg.write_budget;
    let n = shared.active_streams.fetch_add(1, Ordering::AcqRel);
    // During a drain a call stream may still start (its request was in
    // flight); an open-ended one is ended right after its head.
    if n >= shared.cfg.max_streams {
        shared.active_streams.fetch_sub(1, Ordering::AcqRel);
        shared.stats.rejected_streams.fetch_add(1, Ordering::Relaxed);
        log::warn!(
            "http: max_streams ({}) reached; answered 503",
            shared.cfg.max_streams
        );
        if write_all_budget(
            &mut conn.sock,
            &busy_response(shared.cfg.retry_after_secs),
            budget,
        )
        .is_ok()
        {
            shared.give_back(conn, false);
        }
        return;
    }
    let chunked = start.minor >= 1;
    let keep_alive = start.keep_alive && chunked;
    let head = response_head(
        start.status,
        &start.headers,
        if chunked {
            Framing::Chunked
        } else {
            Framing::Close
        },
        keep_alive,
        start.minor,
    );
    let me = shared.clone();
    let (producer, head_only, open_ended) = (start.producer, start.head_only, start.open_ended);
    let spawned = shared.owner.spawn("http-sse", Kind::Stream, move || {
        run_stream(
            &me,
            conn,
            head,
            producer,
            StreamMode {
                keep_alive,
                chunked,
                head_only,
                open_ended,
                budget,
            },
        );
        me.active_streams.fetch_sub(1, Ordering::AcqRel);
    });
    match spawned {
        Ok(h) => shared
            .stream_threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(h),
        Err(e) => {
            shared.active_streams.fetch_sub(1, Ordering::AcqRel);
            log::error!("http: cannot spawn stream thread: {e}");
        }
    }
}

struct StreamMode {
    keep_alive: bool,
    chunked: bool,
    head_only: bool,
    open_ended: bool,
    budget: Duration,
}

fn run_stream(
    shared: &Shared,
    mut conn: Conn,
    head: Vec<u8>,
    producer: Box<dyn FnOnce(&mut SseSink) + Send + 'static>,
    mode: StreamMode,
) {
    if write_all_budget(&mut conn.sock, &head, mode.budget).is_err() {
        return;
    }
    if mode.head_only {
        shared.give_back(conn, mode.keep_alive);
        return;
    }
    let Conn {
        sock,
        reader,
        token,
        readable,
        blocking,
        _guard,
    } = conn;
    let stream = match StreamShared::new(sock, mode.budget, mode.chunked, shared.stopping.clone()) {
        Ok(s) => s,
        Err(e) => {
            log::warn!("http: stream setup failed: {e}");
            return;
        }
    };
    {
        let mut list = shared.streams.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|w| w.strong_count() > 0);
        list.push(Arc::downgrade(&stream));
    }
    if mode.open_ended {
        // Ended at once if a shutdown already began.
        stream.set_open_ended();
    }
    let mut sink = SseSink::new(stream.clone());
    if catch_unwind(AssertUnwindSafe(move || producer(&mut sink))).is_err() {
        log::error!("http: SSE producer panicked; stream cut");
        stream.mark_gone();
    }
    if let Some(sock) = stream.finish() {
        shared.give_back(
            Conn {
                sock,
                reader,
                token,
                readable,
                blocking,
                _guard,
            },
            mode.keep_alive,
        );
    }
}

// ---------------------------------------------------------------- rejecter, pinger

fn rejecter_loop(shared: &Shared, rx: &Receiver<Job>) {
    let budget = shared.cfg.write_budget.min(Duration::from_millis(500));
    let response = busy_response(shared.cfg.retry_after_secs);
    while let Ok(Job { mut conn, .. }) = rx.recv() {
        if conn.set_blocking(true).is_err() {
            continue;
        }
        if write_all_budget(&mut conn.sock, &response, budget).is_ok() {
            shared.give_back(conn, false);
        }
    }
}

fn pinger_loop(shared: &Shared, stop: &Receiver<()>) {
    let interval = shared.cfg.ping_interval;
    let tick = (interval / 4).clamp(Duration::from_millis(5), Duration::from_millis(250));
    loop {
        match stop.recv_timeout(tick) {
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        let live: Vec<Arc<StreamShared>> = {
            let mut list = shared.streams.lock().unwrap_or_else(|e| e.into_inner());
            list.retain(|w| w.strong_count() > 0);
            list.iter().filter_map(Weak::upgrade).collect()
        };
        for s in live {
            s.ping_tick(interval);
        }
        let mut threads = shared
            .stream_threads
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let (done, running): (Vec<_>, Vec<_>) = std::mem::take(&mut *threads)
            .into_iter()
            .partition(|h| h.is_finished());
        *threads = running;
        drop(threads);
        for h in done {
            let _ = h.join();
        }
    }
}
