//! The stdio transport (issue 19): a server that is a local program, one
//! process per (server, context key), each process one legacy MCP session
//! (MCP 2025-11-25 basic/transports, stdio: newline-delimited JSON-RPC on
//! stdin/stdout, logs on stderr).
//!
//! A process *is* the session: `initialize` without a session id starts a
//! new process and answers with a session id the transport mints
//! (`stdio-<server>-<n>`); the upstream's session pool makes that one
//! process per (server, context key), single-flight, and heals a session
//! whose process is gone (this transport answers 404 for it) by starting a
//! new one. Calls on one process are multiplexed by JSON-RPC id
//! ([`super::mux`]). Processes are bounded (`maxProcesses` per server and
//! the hub's global cap: the least recently used idle one is stopped, else
//! the call waits within its deadline, then 503), stopped when idle
//! (`idleTimeoutSecs`), pinged when silent (`pingIntervalSecs`; no answer →
//! killed), and a crash fails its calls in flight at once, the next start
//! of that context backing off exponentially. Design: docs/upstream.md.

pub mod process;

use super::mux::{First, Mux};
use super::transport::{Answer, Deadline, EventStream, HttpReply, ProcessCounts, StreamItem, Transport};
use super::UpstreamError;
use crate::config::{ServerConfig, StdioConfig};
use crossbeam_channel::{Sender, TrySendError};
use parking_lot::{Condvar, Mutex};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

/// Lines queued for a process's stdin before a write counts as blocked.
const STDIN_QUEUE: usize = 256;
/// How often the supervisor looks at the processes (exits, idleness, pings).
const TICK: Duration = Duration::from_millis(250);
/// Longest wait for a `ping` answer (shorter when `pingIntervalSecs` is).
const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// A process that lived at least this long before it ended resets its
/// context's crash back-off.
const STABLE_AFTER: Duration = Duration::from_secs(60);
/// Longest stdout line (one JSON-RPC message) read from a process.
const MAX_LINE: u64 = super::transport::MAX_UPSTREAM_MESSAGE;

/// The global cap on stdio processes of one hub (top-level `maxProcesses`),
/// shared by the transports its connector makes.
pub struct Budget {
    max: usize,
    used: Mutex<usize>,
    pools: Mutex<Vec<Weak<Pool>>>,
}

impl Budget {
    /// A cap of `max` processes across every stdio server.
    pub fn new(max: usize) -> Arc<Budget> {
        Arc::new(Budget { max: max.max(1), used: Mutex::new(0), pools: Mutex::new(Vec::new()) })
    }

    /// The cap.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Processes counted against the cap now.
    pub fn used(&self) -> usize {
        *self.used.lock()
    }

    fn try_take(&self) -> bool {
        let mut used = self.used.lock();
        if *used < self.max {
            *used += 1;
            true
        } else {
            false
        }
    }

    fn give_back(&self) {
        let mut used = self.used.lock();
        *used = used.saturating_sub(1);
    }

    /// Stops the least recently used idle process of every server; `false`
    /// when none is idle.
    fn evict_one(&self) -> bool {
        let pools: Vec<Arc<Pool>> = {
            let mut list = self.pools.lock();
            list.retain(|w| w.strong_count() > 0);
            list.iter().filter_map(Weak::upgrade).collect()
        };
        let oldest = pools.iter().filter_map(|p| p.lru_idle().map(|proc| (proc.last_used(), p.clone(), proc))).min_by_key(|(at, _, _)| *at);
        match oldest {
            Some((_, pool, proc)) => {
                pool.evict(&proc, "to make room (the hub's maxProcesses)");
                true // evicted, or a call took it: look again either way
            }
            None => false,
        }
    }
}

/// One running process and its session.
struct Proc {
    id: String,
    /// Digest of its context's `${user.X}` values (crash back-off is per context).
    context: String,
    pid: u32,
    child: process::Child,
    mux: Arc<Mux>,
    stdin: Sender<Vec<u8>>,
    started: Instant,
    ready: AtomicBool,
    /// Set when the hub stops it on purpose (eviction, delete, shutdown): not a crash.
    stopping: AtomicBool,
    last_used: Mutex<Instant>,
    last_heard: Mutex<Instant>,
    ping_sent: Mutex<Option<Instant>>,
}

impl Proc {
    fn last_used(&self) -> Instant {
        *self.last_used.lock()
    }

    fn touch(&self) {
        *self.last_used.lock() = Instant::now();
    }

    fn idle(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && self.mux.in_flight() == 0
    }

    /// Queues one line for its stdin, waiting at most `budget` for room.
    fn write(&self, message: &Value, budget: Duration) -> Result<(), WriteError> {
        let mut line = serde_json::to_vec(message).unwrap_or_default();
        line.push(b'\n');
        match self.stdin.send_timeout(line, budget) {
            Ok(()) => Ok(()),
            Err(crossbeam_channel::SendTimeoutError::Timeout(_)) => Err(WriteError::Full),
            Err(crossbeam_channel::SendTimeoutError::Disconnected(_)) => Err(WriteError::Closed),
        }
    }
}

/// Why a line could not be queued for a process's stdin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum WriteError {
    /// Its stdin stayed full for the whole budget.
    #[error("it stopped reading its input")]
    Full,
    /// Its stdin writer is gone (the process ended).
    #[error("its input is closed")]
    Closed,
}

#[derive(Default)]
struct State {
    procs: HashMap<String, Arc<Proc>>,
    /// Starts under way (counted against `maxProcesses`).
    starting: usize,
    /// Per context: consecutive crashes and when the last one was.
    crashes: HashMap<String, (u32, Instant)>,
}

/// The processes of one server.
struct Pool {
    server: String,
    config: Arc<StdioConfig>,
    budget: Arc<Budget>,
    state: Mutex<State>,
    freed: Condvar,
    next: AtomicU64,
    restarts: AtomicU64,
    crashes: AtomicU64,
    evictions: AtomicU64,
    threads: OnceLock<crate::threads::Threads>,
    supervised: AtomicBool,
    /// Values to mask in stderr lines: the static env values.
    masked: Vec<String>,
}

/// The processes of one stdio server (see the module doc).
pub struct StdioTransport {
    server: String,
    /// Names of the env entries filled per caller (`${user.X}`): they arrive
    /// as header pairs named by the variable.
    user_env: Vec<String>,
    pool: Arc<Pool>,
    latency: prometheus::Histogram,
}

impl StdioTransport {
    /// The transport of `server` (its `transport` is `Stdio(config)`), under
    /// the hub's global `budget`. Starts nothing: processes start on first use.
    pub fn new(server: &ServerConfig, config: Arc<StdioConfig>, budget: Arc<Budget>) -> StdioTransport {
        let masked = config.env.iter().map(|(_, v)| v.clone()).filter(|v| v.len() >= super::scrub::MIN_LEN).collect();
        let pool = Arc::new(Pool {
            server: server.name.clone(),
            config,
            budget: budget.clone(),
            state: Mutex::new(State::default()),
            freed: Condvar::new(),
            next: AtomicU64::new(1),
            restarts: AtomicU64::new(0),
            crashes: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            threads: OnceLock::new(),
            supervised: AtomicBool::new(false),
            masked,
        });
        budget.pools.lock().push(Arc::downgrade(&pool));
        StdioTransport {
            server: server.name.clone(),
            user_env: server.user_headers.iter().map(|(name, _)| name.clone()).collect(),
            pool,
            latency: crate::metrics::upstream_latency_histogram(&server.name),
        }
    }

    fn session_of(&self, headers: &[(String, String)]) -> Option<Arc<Proc>> {
        self.pool.state.lock().procs.get(super::transport::session_id(headers)?).cloned()
    }

    /// The caller's `${user.X}` env values, from the header pairs named by the variables.
    fn user_env(&self, headers: &[(String, String)]) -> Vec<(String, String)> {
        self.user_env.iter().filter_map(|name| headers.iter().find(|(k, _)| k == name).map(|(k, v)| (k.clone(), v.clone()))).collect()
    }

    fn gone(&self) -> HttpReply {
        HttpReply { excerpt: "the stdio server process of this session has ended".into(), ..HttpReply::new(404, None) }
    }
}

fn context_digest(env: &[(String, String)]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for (k, v) in env {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..8])
}

/// The back-off before the next start of a context after `crashes`
/// consecutive crashes: 250 ms · 2^(crashes−1), at most 30 s ([`super::retry::reconnect_backoff`]),
/// ±20 % jitter (seeds/004: jittered exponential back-off).
pub fn restart_backoff(crashes: u32) -> Duration {
    if crashes == 0 {
        return Duration::ZERO;
    }
    crate::random::jittered(super::retry::reconnect_backoff(crashes - 1))
}

impl Pool {
    fn threads(&self) -> &crate::threads::Threads {
        self.threads.get_or_init(crate::threads::Threads::new)
    }

    fn lru_idle(&self) -> Option<Arc<Proc>> {
        self.state.lock().procs.values().filter(|p| p.idle()).min_by_key(|p| p.last_used()).cloned()
    }

    /// Stops `proc` on purpose (idle, room) if it is still idle: forgotten
    /// at once (its session answers 404 from now on), stopped and reaped on a
    /// thread of its own. Decided under the pool's lock, where a call also
    /// registers itself ([`StdioTransport::post_call`]): a call either sees
    /// the process stopping (and heals onto a new one) or keeps it from
    /// being evicted. `false` when a call came first.
    fn evict(self: &Arc<Self>, proc: &Arc<Proc>, why: &str) -> bool {
        {
            let mut st = self.state.lock();
            if proc.mux.in_flight() > 0 || proc.stopping.swap(true, Ordering::SeqCst) || st.procs.remove(&proc.id).is_none() {
                return false;
            }
        }
        self.budget.give_back();
        self.freed.notify_all();
        self.evictions.fetch_add(1, Ordering::Relaxed);
        log::info!("stdio server '{}': stopping process {} {why}", self.server, proc.pid);
        self.stop_in_background(proc);
        true
    }

    fn stop_in_background(&self, proc: &Arc<Proc>) {
        proc.stopping.store(true, Ordering::SeqCst);
        let p = proc.clone();
        let spawned = self.threads().spawn(&format!("stop-{}", self.server), crate::threads::Kind::Call, move || {
            p.child.stop(process::STOP_GRACE);
        });
        if spawned.is_err() {
            proc.child.stop(process::STOP_GRACE);
        }
    }

    /// Removes `proc` from the pool and gives its slots back; `false` when
    /// it was already gone.
    fn forget(&self, proc: &Arc<Proc>) -> bool {
        let removed = self.state.lock().procs.remove(&proc.id).is_some();
        if removed {
            self.budget.give_back();
            self.freed.notify_all();
        }
        removed
    }

    /// Takes a per-server and a global slot for a new process, stopping
    /// least recently used idle processes to make room, waiting until
    /// `deadline` otherwise.
    fn reserve(self: &Arc<Self>, deadline: Instant) -> Result<(), UpstreamError> {
        loop {
            {
                let mut st = self.state.lock();
                if st.procs.len() + st.starting < self.config.max_processes {
                    if self.budget.try_take() {
                        st.starting += 1;
                        return Ok(());
                    }
                    drop(st);
                    if self.budget.evict_one() {
                        continue;
                    }
                } else {
                    drop(st);
                    if let Some(lru) = self.lru_idle() {
                        self.evict(&lru, "to make room (maxProcesses)");
                        continue; // evicted, or a call took it: look again
                    }
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(UpstreamError::Overloaded {
                    server: self.server.clone(),
                    retry_after_secs: 1,
                    reason: "processes",
                    cause: format!("all {} of its processes (or the hub's {}) are busy", self.config.max_processes, self.budget.max()),
                });
            }
            let mut st = self.state.lock();
            self.freed.wait_for(&mut st, (deadline - now).min(TICK));
        }
    }

    fn unreserve(&self) {
        let mut st = self.state.lock();
        st.starting = st.starting.saturating_sub(1);
    }

    /// Waits out the crash back-off of `context` within `deadline`.
    fn back_off(&self, context: &str, deadline: Instant) -> Result<(), UpstreamError> {
        let Some((crashes, at)) = self.state.lock().crashes.get(context).copied() else { return Ok(()) };
        let until = at + restart_backoff(crashes);
        let now = Instant::now();
        if until <= now {
            return Ok(());
        }
        if until > deadline {
            return Err(UpstreamError::Unavailable {
                server: self.server.clone(),
                failures: crashes,
                retry_after_secs: crate::limits::bulkhead::whole_secs(until - now),
            });
        }
        std::thread::sleep(until - now);
        Ok(())
    }

    /// Starts a process for the caller's `user_env` and initializes it with
    /// `initialize` (the hub's request), within `deadline`.
    fn start(self: &Arc<Self>, initialize: &Value, user_env: Vec<(String, String)>, deadline: Deadline) -> Result<Answer, UpstreamError> {
        let context = context_digest(&user_env);
        let start_deadline = Instant::now() + deadline.remaining().min(self.config.start_timeout);
        if self.state.lock().crashes.contains_key(&context) {
            self.restarts.fetch_add(1, Ordering::Relaxed);
        }
        self.back_off(&context, start_deadline)?;
        self.reserve(start_deadline)?;
        let started = self.spawn(&context, user_env);
        let proc = match started {
            Ok(p) => p,
            Err(e) => {
                self.unreserve();
                self.budget.give_back();
                self.freed.notify_all();
                self.crashed(&context, Duration::ZERO);
                return Err(e);
            }
        };
        {
            let mut st = self.state.lock();
            st.starting = st.starting.saturating_sub(1);
            st.procs.insert(proc.id.clone(), proc.clone());
        }
        let budget = start_deadline.saturating_duration_since(Instant::now());
        let answer = proc
            .mux
            .open_call(initialize, Deadline::fixed(budget))
            .map_err(|why| UpstreamError::Transport { server: self.server.clone(), detail: why, sent: false })
            .and_then(|mut stream| {
                proc.write(initialize, budget).map_err(|why| UpstreamError::Transport {
                    server: self.server.clone(),
                    detail: format!("the server process {why}"),
                    sent: false,
                })?;
                loop {
                    match stream.next_item() {
                        Ok(Some(StreamItem::Final(m))) => return Ok(m),
                        Ok(Some(_)) => continue,
                        Ok(None) => {
                            return Err(UpstreamError::Transport { server: self.server.clone(), detail: "the server process ended its output".into(), sent: true })
                        }
                        Err(UpstreamError::Timeout { .. } | UpstreamError::HubTimeout { .. }) => {
                            return Err(UpstreamError::Timeout { server: self.server.clone(), timeout_ms: self.config.start_timeout.as_millis() as u64 })
                        }
                        Err(e) => return Err(e),
                    }
                }
            });
        match answer {
            Ok(message) => {
                proc.ready.store(true, Ordering::Relaxed);
                proc.touch();
                log::info!("stdio server '{}': process {} started in {} ms", self.server, proc.pid, proc.started.elapsed().as_millis());
                Ok(Answer::Reply(HttpReply { session_id: Some(proc.id.clone()), ..HttpReply::new(200, Some(message)) }))
            }
            Err(e) => {
                log::warn!("stdio server '{}': process {} did not initialize: {e}", self.server, proc.pid);
                self.forget(&proc);
                self.crashed(&context, proc.started.elapsed());
                self.stop_in_background(&proc);
                Err(e)
            }
        }
    }

    fn crashed(&self, context: &str, lived: Duration) {
        self.crashes.fetch_add(1, Ordering::Relaxed);
        let mut st = self.state.lock();
        if lived >= STABLE_AFTER {
            st.crashes.remove(context);
        }
        let entry = st.crashes.entry(context.to_string()).or_insert((0, Instant::now()));
        *entry = (entry.0.saturating_add(1), Instant::now());
    }

    fn spawn(self: &Arc<Self>, context: &str, user_env: Vec<(String, String)>) -> Result<Arc<Proc>, UpstreamError> {
        let mut env = self.config.env.clone();
        env.extend(user_env.iter().cloned());
        let spec = process::Spawn {
            server: &self.server,
            command: &self.config.command,
            args: &self.config.args,
            env: &env,
            cwd: self.config.cwd.as_deref(),
            limits: self.config.limits,
        };
        let (child, pipes) = process::spawn(&spec).map_err(|e| UpstreamError::Transport {
            server: self.server.clone(),
            detail: format!("cannot start '{}': {e}", self.config.command),
            sent: false,
        })?;
        let pid = child.pid();
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = crossbeam_channel::bounded::<Vec<u8>>(STDIN_QUEUE);
        let proc = Arc::new(Proc {
            id: format!("stdio-{}-{n}-{}", self.server, crate::random::hex::<4>()),
            context: context.to_string(),
            pid,
            child,
            mux: Mux::new(&self.server),
            stdin: tx,
            started: Instant::now(),
            ready: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            last_used: Mutex::new(Instant::now()),
            last_heard: Mutex::new(Instant::now()),
            ping_sent: Mutex::new(None),
        });
        let threads = self.threads();
        let kind = crate::threads::Kind::Process;
        let mut stdin = pipes.stdin;
        let writer = threads.spawn(&format!("stdin-{}", self.server), kind, move || {
            for line in rx.iter() {
                if stdin.write_all(&line).and_then(|_| stdin.flush()).is_err() {
                    return;
                }
            }
        });
        let mut masked: Vec<String> = self.masked.clone();
        masked.extend(user_env.into_iter().map(|(_, v)| v).filter(|v| v.len() >= super::scrub::MIN_LEN));
        let (server, stderr) = (self.server.clone(), pipes.stderr);
        let logger = threads.spawn(&format!("stderr-{}", self.server), kind, move || process::log_stderr(&server, pid, stderr, &masked));
        let (me, p, stdout) = (self.clone(), proc.clone(), pipes.stdout);
        let reader = threads.spawn(&format!("stdout-{}", self.server), kind, move || me.read_stdout(&p, stdout));
        if let Some(e) = [writer.err(), logger.err(), reader.err()].into_iter().flatten().next() {
            proc.mux.close("the hub could not start the process's threads");
            proc.child.stop(Duration::ZERO);
            return Err(UpstreamError::Transport { server: self.server.clone(), detail: format!("cannot start threads: {e}"), sent: false });
        }
        self.supervise();
        Ok(proc)
    }

    /// The stdout reader of `proc`: every line one message, routed by its
    /// mux; at the end of the output the process is stopped, reaped, and
    /// its calls in flight fail naming its exit.
    fn read_stdout(self: &Arc<Self>, proc: &Arc<Proc>, stdout: std::process::ChildStdout) {
        let mut lines = BufReader::new(stdout);
        let mut line = Vec::new();
        loop {
            line.clear();
            match (&mut lines).take(MAX_LINE).read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            *proc.last_heard.lock() = Instant::now();
            let text = String::from_utf8_lossy(&line);
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(m)) => {
                    if let Some(request) = proc.mux.deliver(Value::Object(m)) {
                        self.refuse(proc, &request);
                    }
                }
                _ => log::warn!("stdio server '{}' (process {}) wrote a line that is not a JSON-RPC message; ignored", self.server, proc.pid),
            }
        }
        self.ended(proc);
    }

    /// Answers a server→client request nobody can take.
    fn refuse(&self, proc: &Proc, request: &Value) {
        if let Some(answer) = super::transport::refusal(&self.server, request, super::transport::UNROUTED) {
            let _ = proc.write(&answer, super::transport::ANSWER_BUDGET);
        }
    }

    /// `proc`'s output ended: stop and reap it, fail its calls, count it.
    fn ended(self: &Arc<Self>, proc: &Arc<Proc>) {
        let status = proc.child.stop(process::STOP_GRACE);
        let on_purpose = proc.stopping.load(Ordering::SeqCst);
        let why = if on_purpose {
            format!("the server process was stopped ({})", process::describe_exit(status))
        } else {
            format!("the server process exited ({})", process::describe_exit(status))
        };
        let in_flight = proc.mux.in_flight();
        proc.mux.close(&why);
        let was_listed = self.forget(proc);
        if !on_purpose {
            self.crashed(&proc.context, proc.started.elapsed());
            log::warn!("stdio server '{}': process {} ended: {why}; {in_flight} call(s) in flight failed", self.server, proc.pid);
        } else if was_listed {
            log::debug!("stdio server '{}': process {} ended: {why}", self.server, proc.pid);
        }
    }

    /// Starts the supervisor loop once (idle eviction, pings, exits).
    fn supervise(self: &Arc<Self>) {
        if self.supervised.swap(true, Ordering::SeqCst) {
            return;
        }
        let me = Arc::downgrade(self);
        let spawned = self.threads().spawn_owned(&format!("stdio-{}", self.server), crate::threads::Kind::Poller, move |stop| loop {
            if stop.sleep(TICK) {
                return;
            }
            let Some(pool) = me.upgrade() else { return };
            pool.tick();
        });
        if let Err(e) = spawned {
            self.supervised.store(false, Ordering::SeqCst);
            log::warn!("cannot start the supervisor of stdio server '{}': {e}", self.server);
        }
    }

    fn tick(self: &Arc<Self>) {
        let procs: Vec<Arc<Proc>> = self.state.lock().procs.values().cloned().collect();
        let now = Instant::now();
        let ping_timeout = PING_TIMEOUT.min(self.config.ping_interval);
        for p in procs {
            if p.child.try_exit().is_some() {
                // The leader exited while its output is held open (a grandchild):
                // stopping the group ends the output and the reader's clean-up.
                p.child.stop(Duration::ZERO);
                continue;
            }
            if !p.ready.load(Ordering::Relaxed) {
                continue;
            }
            if p.idle() && now.saturating_duration_since(p.last_used()) >= self.config.idle_timeout {
                self.evict(&p, &format!("after {} s idle", self.config.idle_timeout.as_secs()));
                continue;
            }
            let heard = *p.last_heard.lock();
            let mut ping = p.ping_sent.lock();
            match *ping {
                Some(sent) if heard >= sent => *ping = None,
                Some(sent) if now.saturating_duration_since(sent) >= ping_timeout => {
                    drop(ping);
                    log::warn!(
                        "stdio server '{}': process {} did not answer ping within {} ms; killing it",
                        self.server,
                        p.pid,
                        ping_timeout.as_millis()
                    );
                    p.mux.close(&format!("the server process stopped answering (no answer to ping within {} ms)", ping_timeout.as_millis()));
                    p.child.stop(Duration::ZERO);
                    continue;
                }
                Some(_) => {}
                None if now.saturating_duration_since(heard) >= self.config.ping_interval => {
                    *ping = Some(now);
                    let id = format!("mcphub-ping-{}", self.next.fetch_add(1, Ordering::Relaxed));
                    let line = {
                        let mut l = serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": id, "method": "ping"})).unwrap_or_default();
                        l.push(b'\n');
                        l
                    };
                    if let Err(TrySendError::Disconnected(_)) = p.stdin.try_send(line) {
                        log::debug!("stdio server '{}': process {} input closed", self.server, p.pid);
                    }
                }
                None => {}
            }
        }
    }

    fn counts(&self) -> ProcessCounts {
        let st = self.state.lock();
        let mut c = ProcessCounts {
            starting: st.starting,
            restarts: self.restarts.load(Ordering::Relaxed),
            crashes: self.crashes.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            ..ProcessCounts::default()
        };
        for p in st.procs.values() {
            if !p.ready.load(Ordering::Relaxed) {
                c.starting += 1;
            } else if p.mux.in_flight() == 0 {
                c.idle += 1;
            } else {
                c.running += 1;
            }
        }
        c
    }

    /// Stops every process (SIGTERM to each group at once, SIGKILL after the
    /// grace), waiting for all of them.
    fn shutdown(&self) {
        let procs: Vec<Arc<Proc>> = self.state.lock().procs.drain().map(|(_, p)| p).collect();
        let mut handles = Vec::new();
        for p in procs {
            self.budget.give_back();
            p.stopping.store(true, Ordering::SeqCst);
            let q = p.clone();
            match self.threads().spawn(&format!("stop-{}", self.server), crate::threads::Kind::Call, move || {
                q.child.stop(process::STOP_GRACE);
            }) {
                Ok(h) => handles.push(h),
                Err(_) => {
                    p.child.stop(process::STOP_GRACE);
                }
            }
        }
        for h in handles {
            let _ = h.join();
        }
        self.freed.notify_all();
    }
}

impl Transport for StdioTransport {
    fn server(&self) -> &str {
        &self.server
    }

    fn latency(&self) -> &prometheus::Histogram {
        &self.latency
    }

    /// `initialize` without a session: a new process. Otherwise the
    /// session's process: a request's messages as an event stream, a
    /// notification written (202); an ended session → 404.
    fn post_call(&self, body: &Value, headers: &[(String, String)], deadline: Deadline) -> Result<Answer, UpstreamError> {
        let started = Instant::now();
        let method = body.get("method").and_then(Value::as_str);
        if method == Some("initialize") && super::transport::session_id(headers).is_none() {
            let answer = self.pool.start(body, self.user_env(headers), deadline);
            self.latency.observe(started.elapsed().as_secs_f64());
            return answer;
        }
        if body.get("id").is_none() || method.is_none() {
            // A notification (or a response): written, nothing comes back.
            let Some(proc) = self.session_of(headers) else { return Ok(Answer::Reply(self.gone())) };
            proc.touch();
            return match proc.write(body, deadline.remaining()) {
                Ok(()) => Ok(Answer::Reply(HttpReply::new(202, None))),
                Err(why) => Err(UpstreamError::Transport { server: self.server.clone(), detail: format!("the server process {why}"), sent: false }),
            };
        }
        let remaining = deadline.remaining();
        // Found and registered under one hold of the pool's lock, against a
        // concurrent eviction (see `Pool::evict`).
        let opened = {
            let st = self.pool.state.lock();
            super::transport::session_id(headers)
                .and_then(|id| st.procs.get(id))
                .filter(|p| !p.stopping.load(Ordering::SeqCst))
                .and_then(|p| Some((p.clone(), p.mux.register(body, deadline.clone()).ok()?)))
        };
        // Dropping `call` on a failure below forgets it.
        let Some((proc, call)) = opened else { return Ok(Answer::Reply(self.gone())) };
        proc.touch();
        if let Err(why) = proc.write(body, remaining) {
            if why == WriteError::Full {
                log::warn!("stdio server '{}': process {} {why}; killing it", self.server, proc.pid);
                proc.mux.close(&format!("the server process {why}"));
                proc.child.stop(Duration::ZERO);
            }
            return Err(UpstreamError::Transport { server: self.server.clone(), detail: format!("the server process {why}"), sent: false });
        }
        // A lone response is answered like a JSON reply; anything first opens the stream.
        let first = call.first().map_err(|e| super::transport::io_error(&self.server, e, &deadline));
        self.latency.observe(started.elapsed().as_secs_f64());
        Ok(match first? {
            First::Response(message) => Answer::Reply(HttpReply::new(200, Some(message))),
            First::Stream(stream) => Answer::Stream(stream),
        })
    }

    fn post_long(&self, _body: &Value, _headers: &[(String, String)]) -> Result<Answer, UpstreamError> {
        Err(UpstreamError::Protocol { server: self.server.clone(), detail: "stdio servers have no long-lived requests".into() })
    }

    /// Writes the hub's answer (or notification, e.g. `notifications/cancelled`)
    /// on the session's process, waiting at most `budget` for room.
    fn answer(&self, message: &Value, headers: &[(String, String)], budget: Duration) {
        match self.session_of(headers) {
            Some(proc) => {
                if let Err(why) = proc.write(message, budget) {
                    log::debug!("answer to stdio server '{}' not written: the process {why}", self.server);
                }
            }
            None => log::debug!("answer to stdio server '{}' dropped: its process has ended", self.server),
        }
    }

    /// What the session's process sends outside any call; `None` once it has ended.
    fn listen(&self, headers: &[(String, String)]) -> Result<Option<Box<EventStream>>, UpstreamError> {
        Ok(self.session_of(headers).map(|p| p.mux.listen()))
    }

    /// Stops the session's process (SIGTERM, SIGKILL after 5 s), in the background.
    fn delete(&self, headers: &[(String, String)]) {
        if let Some(proc) = self.session_of(headers) {
            self.pool.forget(&proc);
            self.pool.stop_in_background(&proc);
        }
    }

    fn shares_sessions(&self) -> bool {
        false
    }

    fn resends_after_failure(&self) -> bool {
        false
    }

    fn shutdown(&self) {
        self.pool.shutdown();
    }

    fn attach_threads(&self, threads: crate::threads::Threads) {
        let _ = self.pool.threads.set(threads);
    }

    fn processes(&self) -> Option<ProcessCounts> {
        Some(self.pool.counts())
    }
}

impl Drop for StdioTransport {
    fn drop(&mut self) {
        self.pool.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_restart_backoff_doubles_from_a_quarter_second_to_thirty_seconds_with_jitter() {
        assert_eq!(restart_backoff(0), Duration::ZERO);
        for (crashes, base_ms) in [(1u32, 250u64), (2, 500), (3, 1000), (8, 30_000), (40, 30_000)] {
            for _ in 0..20 {
                let b = restart_backoff(crashes).as_millis() as u64;
                assert!(b >= base_ms * 8 / 10 && b <= base_ms * 12 / 10, "{crashes} crashes: {b} ms (base {base_ms})");
            }
        }
    }

    #[test]
    fn the_context_digest_tells_credential_sets_apart() {
        let a = context_digest(&[("TOKEN".into(), "a".into())]);
        assert_eq!(a, context_digest(&[("TOKEN".into(), "a".into())]));
        assert_ne!(a, context_digest(&[("TOKEN".into(), "b".into())]));
        assert_ne!(context_digest(&[("A".into(), "bc".into())]), context_digest(&[("Ab".into(), "c".into())]));
    }
}
