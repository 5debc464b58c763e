//! `mcphub-load`: the concurrency test of the source notes (docs/decisions.md
//! D8: N concurrent clients in rounds, `round=R ok=X/N`, `agg_ok=A/B`).
//!
//! N clients, each its own MCP client on its own thread with its own ureq
//! agent (keep-alive), call one tool at the same moment (a barrier), wait
//! until all N answered (one *round*), and repeat for a number of rounds or
//! until a duration has passed. Eras:
//! - **legacy**: `initialize` (2025-11-25) → `Mcp-Session-Id` →
//!   `notifications/initialized` → `tools/call` with the session and
//!   `MCP-Protocol-Version` headers. A call answered 404 counts as
//!   `session_404` and the client initializes again at once (counted in
//!   [`Summary::recoveries`] as `session_404_reinit` when that worked) — what
//!   a real client does when a hub restarted and forgot its client sessions,
//!   or an upstream expired a session.
//! - **modern** (2026-07-28): no `initialize`; every call carries
//!   `params._meta` (protocol version, client info, client capabilities) and
//!   the `MCP-Protocol-Version` / `Mcp-Method` / `Mcp-Name` headers.
//!
//! A call that met `connect_refused` or `connection_reset` (the server is
//! down or restarting) counts that error, and the client pauses before its
//! next call: 100 ms, doubling while it repeats, at most 2 s (each pause is a
//! `backoff` in [`Summary::recoveries`]); any HTTP answer resets it. A 429
//! or 503 answer (`http_429` / `http_503`: a hub's open circuit, a full
//! queue, a rate limit) makes it wait its `Retry-After` (1 s when absent, at
//! most [`RETRY_AFTER_MAX`]) before the next call (`retry_after`). A
//! failure is never retried silently: every call is ok or one error.
//!
//! Answers may be JSON or SSE (the event whose JSON-RPC response has the
//! call's id). A call is *ok* when it got a JSON-RPC result without
//! `isError: true`; every other call counts one error of one kind
//! ([`ErrorKind`] names). Each failed call is also kept with the time it
//! was sent ([`Summary::failed_calls`]), so a test can tell which calls were
//! in flight when something was killed; `initialize` requests of a client
//! that already had a session are counted as
//! [`Summary::reinitializations`]. The pure parts (percentiles, SSE answers, the
//! outcome of a response, the summary) are unit-tested here; the socket
//! side by `crates/mcphub-tools/tests/load_cli.rs` against `mcphub_mock`.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender};
use indicatif::ProgressBar;
use serde_json::{json, Value};
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use mcphub::config::redact_url;
use mcphub::protocol::era::{Era, LATEST_LEGACY, MODERN_VERSION};
use mcphub::protocol::{headers, sse, META_CLIENT_CAPABILITIES, META_CLIENT_INFO, META_PROTOCOL_VERSION};

/// The legacy protocol version the clients ask for in `initialize`.
pub const LEGACY_PROTOCOL_VERSION: &str = LATEST_LEGACY;

/// The modern protocol version the clients send in `_meta` and headers.
pub const MODERN_PROTOCOL_VERSION: &str = MODERN_VERSION;

/// `clientInfo.name` of every client.
pub const CLIENT_NAME: &str = "mcphub-load";

/// Largest answer body (JSON, or one SSE stream) read per request: 32 MiB.
pub const MAX_ANSWER: u64 = 32 * 1024 * 1024;

/// How many times one session establishment retries when the server drops
/// the new session before `notifications/initialized` got through (404).
const ESTABLISH_ATTEMPTS: usize = 3;

/// First pause after `connect_refused` / `connection_reset`; doubles while
/// they repeat, up to [`BACKOFF_MAX`].
pub const BACKOFF_FIRST: Duration = Duration::from_millis(100);

/// Longest pause between calls of a client whose server is unreachable.
pub const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Longest `Retry-After` wait honoured after a 429 / 503.
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(5);

/// Error kinds (the keys of [`Summary::errors`]): `http_<status>` (a non-2xx
/// answer), `jsonrpc_<code>` (a JSON-RPC error), `tool_error` (`isError`),
/// `timeout` (the `--timeout-ms` budget of one request ran out),
/// `connect_refused` (nothing listens: the server is down or restarting),
/// `connection_reset` (the connection was reset or closed before the
/// answer), `transport` (any other I/O failure), `session_404` (legacy: the
/// session was gone), `bad_answer` (a 2xx answer without the call's
/// JSON-RPC response).
pub type ErrorKind = String;

/// What a client did to go on after a failure (the keys of
/// [`Summary::recoveries`]): `session_404_reinit` (a call answered 404, the
/// client initialized a new session), `backoff` (a pause before the next
/// call after `connect_refused` / `connection_reset`), `retry_after` (a
/// wait for the `Retry-After` of a 429 / 503).
pub const RECOVERY_KINDS: [&str; 3] = ["session_404_reinit", "backoff", "retry_after"];

/// At most this many failed calls are kept in [`Summary::failed_calls`]
/// (the counts in [`Summary::errors`] are complete).
pub const FAILED_CALLS_KEPT: usize = 100_000;

/// One failed call, for placing failures in time (`scripts/cluster-test.sh`
/// asks whether each was in flight when an instance was killed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedCall {
    /// Wall-clock time the call's request was sent, Unix milliseconds.
    pub sent_unix_ms: u64,
    /// Send to failure, milliseconds.
    pub latency_ms: u64,
    /// Its [`ErrorKind`].
    pub kind: ErrorKind,
}

/// One load scenario (one URL).
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The MCP endpoint, e.g. `http://127.0.0.1:3000/mcp`.
    pub url: String,
    /// Sent as `Authorization: Bearer <key>` on every request; never printed.
    pub key: Option<String>,
    /// N: clients, each on its own thread (≥ 1).
    pub concurrency: usize,
    /// The tool every client calls.
    pub tool: String,
    /// The tool's `arguments` (a JSON object).
    pub arguments: Value,
    /// Rounds start until this much time has passed since the first one.
    pub duration: Option<Duration>,
    /// At most this many rounds (≥ 1). With neither limit: one round.
    pub rounds: Option<u64>,
    /// How the clients speak MCP.
    pub era: Era,
    /// Budget of each HTTP request, answer body included.
    pub timeout: Duration,
}

/// Why a run could not take place.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A setting is out of range (the message names the option).
    #[error("{0}")]
    BadArgument(String),
    /// Legacy: not one of the N clients could initialize a session.
    #[error("no client could initialize a session with {url} ({reasons})")]
    NoSession {
        /// The endpoint, redacted.
        url: String,
        /// `kind=count` of the initialization errors.
        reasons: String,
    },
    /// The OS refused a client thread.
    #[error("cannot start client thread: {0}")]
    Spawn(io::Error),
}

impl LoadConfig {
    /// Checks ranges: concurrency ≥ 1, rounds ≥ 1, timeout > 0, arguments an
    /// object, an `http://`/`https://` URL, a non-empty tool name.
    pub fn validate(&self) -> Result<(), LoadError> {
        let bad = |m: &str| Err(LoadError::BadArgument(m.to_string()));
        if self.concurrency == 0 {
            return bad("--concurrency must be at least 1");
        }
        if self.rounds == Some(0) {
            return bad("--rounds must be at least 1");
        }
        if self.timeout.is_zero() {
            return bad("--timeout-ms must be at least 1");
        }
        if !self.arguments.is_object() {
            return bad("--args must be a JSON object");
        }
        if self.tool.is_empty() {
            return bad("--tool must not be empty");
        }
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(LoadError::BadArgument(format!("--url must be an http:// or https:// URL, not {}", redact_url(&self.url))));
        }
        Ok(())
    }
}

/// The result of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The endpoint, redacted ([`redact_url`]).
    pub url: String,
    /// The clients' era.
    pub era: Era,
    /// N.
    pub concurrency: usize,
    /// Rounds run.
    pub rounds: u64,
    /// Legacy: clients that had a session before the first round (modern: N).
    pub initialized: usize,
    /// Calls that got a result without `isError`.
    pub ok: u64,
    /// Calls made (`rounds × N`).
    pub total: u64,
    /// Latency of every call (ok or not), in µs, sorted ascending.
    pub latencies_us: Vec<u32>,
    /// Wall-clock time from the first round's start to the last round's end.
    pub elapsed: Duration,
    /// Failed calls by [`ErrorKind`].
    pub errors: BTreeMap<ErrorKind, u64>,
    /// What the clients did to go on, by kind ([`RECOVERY_KINDS`]); these
    /// are not calls (the failed call is in [`Summary::errors`]).
    pub recoveries: BTreeMap<String, u64>,
    /// Legacy: `initialize` requests sent by clients that already had a
    /// session once (a new session for the same client, whatever the
    /// reason: a 404, or a failed earlier attempt); 0 for modern clients.
    pub reinitializations: u64,
    /// The first [`FAILED_CALLS_KEPT`] failed calls, in the order their
    /// rounds ended.
    pub failed_calls: Vec<FailedCall>,
}

impl Summary {
    /// Latency percentile `p` (0–100, nearest rank) in ms; 0 with no calls.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        us_to_ms(percentile_us(&self.latencies_us, p))
    }

    /// Slowest call in ms.
    pub fn max_ms(&self) -> f64 {
        us_to_ms(self.latencies_us.last().copied().unwrap_or(0))
    }

    /// Calls per second over [`Summary::elapsed`]; 0 when nothing ran.
    pub fn rps(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.total as f64 / s
        } else {
            0.0
        }
    }

    /// The `--json` object: `{url, era, concurrency, rounds, ok, total,
    /// p50_ms, p90_ms, p99_ms, max_ms, rps, errors: {kind: n}, recoveries:
    /// {kind: n}, reinitializations, failed_calls: [[sent_unix_ms,
    /// latency_ms, kind], …]}` (ms and rps rounded to 0.001 and 0.1).
    pub fn to_json(&self) -> Value {
        let failed: Vec<Value> = self.failed_calls.iter().map(|f| json!([f.sent_unix_ms, f.latency_ms, f.kind])).collect();
        json!({
            "url": self.url,
            "era": self.era.as_str(),
            "concurrency": self.concurrency,
            "rounds": self.rounds,
            "ok": self.ok,
            "total": self.total,
            "p50_ms": round3(self.percentile_ms(50.0)),
            "p90_ms": round3(self.percentile_ms(90.0)),
            "p99_ms": round3(self.percentile_ms(99.0)),
            "max_ms": round3(self.max_ms()),
            "rps": (self.rps() * 10.0).round() / 10.0,
            "errors": self.errors,
            "recoveries": self.recoveries,
            "reinitializations": self.reinitializations,
            "failed_calls": failed,
        })
    }

    /// The text summary: `agg_ok=A/B …`, latencies, requests/s, errors.
    pub fn report(&self) -> String {
        let mut s = format!(
            "agg_ok={}/{} url={} era={} concurrency={} rounds={}\n",
            self.ok,
            self.total,
            self.url,
            self.era.as_str(),
            self.concurrency,
            self.rounds
        );
        if self.era == Era::Legacy && self.initialized < self.concurrency {
            s.push_str(&format!("initialized={}/{} before round 1\n", self.initialized, self.concurrency));
        }
        s.push_str(&format!(
            "latency_ms p50={:.3} p90={:.3} p99={:.3} max={:.3}\n",
            self.percentile_ms(50.0),
            self.percentile_ms(90.0),
            self.percentile_ms(99.0),
            self.max_ms()
        ));
        s.push_str(&format!("rps={:.1} ({} calls in {:.3} s)\n", self.rps(), self.total, self.elapsed.as_secs_f64()));
        s.push_str(&format!("errors: {}\n", if self.errors.is_empty() { "none".to_string() } else { kinds(&self.errors) }));
        if !self.recoveries.is_empty() {
            s.push_str(&format!("recoveries: {}\n", kinds(&self.recoveries)));
        }
        if self.reinitializations > 0 {
            s.push_str(&format!("reinitializations: {}\n", self.reinitializations));
        }
        s
    }
}

/// Side-by-side table of several runs: url, era, ok, p50, p99, rps.
pub fn compare_table(runs: &[Summary]) -> String {
    let width = runs.iter().map(|r| r.url.len()).max().unwrap_or(3).max(3);
    let mut s = format!("{:<width$}  {:<6}  {:>13}  {:>9}  {:>9}  {:>9}\n", "url", "era", "ok", "p50_ms", "p99_ms", "rps");
    for r in runs {
        s.push_str(&format!(
            "{:<width$}  {:<6}  {:>13}  {:>9.3}  {:>9.3}  {:>9.1}\n",
            r.url,
            r.era.as_str(),
            format!("{}/{}", r.ok, r.total),
            r.percentile_ms(50.0),
            r.percentile_ms(99.0),
            r.rps()
        ));
    }
    s
}

/// Nearest-rank percentile of an ascending slice: the value at rank
/// ⌈p/100 · n⌉ (1-based, clamped to 1..=n); 0 for an empty slice.
pub fn percentile_us(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

/// The JSON-RPC response with `id` in an SSE answer, read event by event
/// (stops at that event; notifications, server→client requests and other
/// ids are skipped). `Ok(None)` when the stream ends without it.
///
/// Errors: the reader's (a broken or timed-out read).
pub fn response_in_sse<R: BufRead>(mut reader: R, id: &Value) -> io::Result<Option<Value>> {
    let mut parser = sse::Parser::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut reader).take(MAX_ANSWER).read_until(b'\n', &mut line)?;
        let text = String::from_utf8_lossy(&line);
        let event = if n == 0 { parser.line("") } else { parser.line(text.trim_end_matches('\n')) };
        if let Some(ev) = event {
            if let Ok(msg) = serde_json::from_str::<Value>(&ev.data) {
                if is_response_to(&msg, id) {
                    return Ok(Some(msg));
                }
            }
        }
        if n == 0 {
            return Ok(None);
        }
    }
}

fn is_response_to(msg: &Value, id: &Value) -> bool {
    msg.get("id") == Some(id) && msg.get("method").is_none() && (msg.get("result").is_some() || msg.get("error").is_some())
}

/// The outcome of a call's JSON-RPC response: ok for a result without
/// `isError: true`; else `jsonrpc_<code>`, `tool_error` or `bad_answer`.
pub fn outcome(response: &Value) -> Result<(), ErrorKind> {
    if let Some(err) = response.get("error") {
        return match err.get("code").and_then(Value::as_i64) {
            Some(code) => Err(format!("jsonrpc_{code}")),
            None => Err("bad_answer".into()),
        };
    }
    match response.get("result") {
        Some(r) if r.get("isError").and_then(Value::as_bool) == Some(true) => Err("tool_error".into()),
        Some(_) => Ok(()),
        None => Err("bad_answer".into()),
    }
}

/// Runs one scenario: starts N client threads, initializes them (legacy),
/// runs the rounds, prints `round=R ok=X/N` per round to `out` (around the
/// progress bar `bar`, whose position counts the round's answers), joins
/// the threads.
///
/// Errors: [`LoadError::BadArgument`] from [`LoadConfig::validate`],
/// [`LoadError::NoSession`] when no client initialized, [`LoadError::Spawn`].
pub fn run(cfg: &LoadConfig, bar: &ProgressBar, out: &mut dyn Write) -> Result<Summary, LoadError> {
    cfg.validate()?;
    let n = cfg.concurrency;
    let shared = Arc::new(cfg.clone());
    let start = Arc::new(Barrier::new(n));
    let (init_tx, init_rx) = crossbeam_channel::unbounded::<Result<(), ErrorKind>>();
    let (result_tx, result_rx) = crossbeam_channel::unbounded::<Call>();
    let mut go = Vec::with_capacity(n);
    let mut threads = Vec::with_capacity(n);
    for i in 0..n {
        let (go_tx, go_rx) = crossbeam_channel::bounded::<()>(1);
        let (cfg, start, init_tx, result_tx, bar) = (shared.clone(), start.clone(), init_tx.clone(), result_tx.clone(), bar.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("load-{i}"))
            .spawn(move || client_thread(cfg, start, go_rx, init_tx, result_tx, bar));
        match spawned {
            Ok(t) => {
                go.push(go_tx);
                threads.push(t);
            }
            Err(e) => {
                // Dropping the senders ends the started threads (their `go` closes).
                drop(go);
                join(threads);
                return Err(LoadError::Spawn(e));
            }
        }
    }
    drop((init_tx, result_tx));

    let mut initialized = 0;
    let mut init_errors = BTreeMap::new();
    for r in init_rx.iter().take(n) {
        match r {
            Ok(()) => initialized += 1,
            Err(kind) => *init_errors.entry(kind).or_insert(0u64) += 1,
        }
    }
    if initialized == 0 {
        drop(go);
        join(threads);
        return Err(LoadError::NoSession { url: redact_url(&cfg.url), reasons: kinds(&init_errors) });
    }

    let mut summary = Summary {
        url: redact_url(&cfg.url),
        era: cfg.era,
        concurrency: n,
        rounds: 0,
        initialized,
        ok: 0,
        total: 0,
        latencies_us: Vec::new(),
        elapsed: Duration::ZERO,
        errors: BTreeMap::new(),
        recoveries: BTreeMap::new(),
        reinitializations: 0,
        failed_calls: Vec::new(),
    };
    let t0 = Instant::now();
    loop {
        let more = match (cfg.rounds, cfg.duration) {
            (Some(max), Some(d)) => summary.rounds < max && (summary.rounds == 0 || t0.elapsed() < d),
            (Some(max), None) => summary.rounds < max,
            (None, Some(d)) => summary.rounds == 0 || t0.elapsed() < d,
            (None, None) => summary.rounds == 0,
        };
        if !more {
            break;
        }
        summary.rounds += 1;
        bar.set_position(0);
        bar.set_message(format!("round {}", summary.rounds));
        let sent = go.iter().filter(|tx| tx.send(()).is_ok()).count();
        let mut round_ok = 0;
        for call in result_rx.iter().take(sent) {
            summary.total += 1;
            summary.latencies_us.push(call.latency_us);
            summary.reinitializations += call.reinitializations;
            match call.outcome {
                Ok(()) => round_ok += 1,
                Err(kind) => {
                    if summary.failed_calls.len() < FAILED_CALLS_KEPT {
                        let latency_ms = u64::from(call.latency_us) / 1000;
                        summary.failed_calls.push(FailedCall { sent_unix_ms: call.sent_unix_ms, latency_ms, kind: kind.clone() });
                    }
                    *summary.errors.entry(kind).or_insert(0) += 1;
                }
            }
            for r in call.recoveries {
                *summary.recoveries.entry(r.to_string()).or_insert(0) += 1;
            }
        }
        summary.ok += round_ok;
        let line = format!("round={} ok={}/{}", summary.rounds, round_ok, n);
        bar.suspend(|| {
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        });
        if sent < n {
            break; // a client thread is gone; nothing sensible to add
        }
    }
    summary.elapsed = t0.elapsed();
    drop(go);
    join(threads);
    summary.latencies_us.sort_unstable();
    Ok(summary)
}

/// `kind=count` pairs, space-separated, in key order.
fn kinds(map: &BTreeMap<ErrorKind, u64>) -> String {
    map.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
}

fn us_to_ms(us: u32) -> f64 {
    f64::from(us) / 1000.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn join(threads: Vec<std::thread::JoinHandle<()>>) {
    for t in threads {
        let _ = t.join();
    }
}

/// One call's record.
struct Call {
    /// When its request (or, legacy, the initialize before it) was sent, Unix ms.
    sent_unix_ms: u64,
    /// `initialize` requests this call sent for a client that had had a session.
    reinitializations: u64,
    latency_us: u32,
    outcome: Result<(), ErrorKind>,
    /// [`RECOVERY_KINDS`] the client went through around this call.
    recoveries: Vec<&'static str>,
}

/// A client's life: initialize (legacy), report it, then one call per `go`
/// (all clients released together by `start`) until `go` closes.
fn client_thread(
    cfg: Arc<LoadConfig>,
    start: Arc<Barrier>,
    go: Receiver<()>,
    init_tx: Sender<Result<(), ErrorKind>>,
    result_tx: Sender<Call>,
    bar: ProgressBar,
) {
    let mut client = Client::new(cfg);
    let init = if client.cfg.era == Era::Legacy { client.establish() } else { Ok(()) };
    let _ = init_tx.send(init);
    drop(init_tx);
    while go.recv().is_ok() {
        start.wait();
        let call = client.call();
        bar.inc(1);
        if result_tx.send(call).is_err() {
            return;
        }
    }
}

/// Resolves without ureq's resolver thread: ureq spawns one per lookup
/// whenever a timeout covers the resolve phase (docs/decisions.md D2a);
/// loopback IP literals never reach DNS anyway. (Also `mcphub-forward`'s.)
#[derive(Debug, Default)]
pub struct UntimedResolver(DefaultResolver);

impl Resolver for UntimedResolver {
    fn resolve(&self, uri: &ureq::http::Uri, config: &ureq::config::Config, timeout: NextTimeout) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let untimed = NextTimeout { per_read: timeout.per_read, per_write: timeout.per_write, ..NextTimeout::default() };
        self.0.resolve(uri, config, untimed)
    }
}

/// What one POST came back with.
struct Answer {
    status: u16,
    /// `Retry-After` in seconds (the delta-seconds form only).
    retry_after: Option<u64>,
    session_id: Option<String>,
    /// The JSON-RPC response with the request's id, when there was one.
    response: Option<Value>,
}

/// One MCP client: its agent, its session (legacy), its request ids.
struct Client {
    cfg: Arc<LoadConfig>,
    agent: ureq::Agent,
    /// Legacy: an `initialize` went through (the server may mint no session id).
    initialized: bool,
    session: Option<String>,
    next_id: u64,
    /// The `tools/call` params (modern: with `_meta`).
    params: Value,
    /// Pause before the next call (after `connect_refused`/`connection_reset`).
    backoff: Option<Duration>,
    /// A one-time wait before the next call (a 429 / 503's `Retry-After`).
    retry_after: Option<Duration>,
    /// Legacy: an `initialize` has succeeded once (later ones are re-initializations).
    had_session: bool,
    /// `initialize` requests sent while `had_session` (see [`Summary::reinitializations`]).
    reinits: u64,
}

impl Client {
    fn new(cfg: Arc<LoadConfig>) -> Client {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .no_delay(true)
            .max_redirects(0)
            .timeout_global(Some(cfg.timeout))
            .max_idle_connections_per_host(1)
            .user_agent(concat!("mcphub-load/", env!("CARGO_PKG_VERSION")))
            .build();
        let agent = ureq::Agent::with_parts(config, DefaultConnector::new(), UntimedResolver::default());
        let mut params = json!({"name": cfg.tool, "arguments": cfg.arguments});
        if cfg.era == Era::Modern {
            params["_meta"] = json!({
                META_PROTOCOL_VERSION: MODERN_PROTOCOL_VERSION,
                META_CLIENT_INFO: {"name": CLIENT_NAME, "version": env!("CARGO_PKG_VERSION")},
                META_CLIENT_CAPABILITIES: {},
            });
        }
        Client { cfg, agent, initialized: false, session: None, next_id: 1, params, backoff: None, retry_after: None, had_session: false, reinits: 0 }
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id - 1
    }

    /// Legacy: `initialize` then `notifications/initialized`; a 404 on the
    /// notification (the server dropped the new session) starts over, at
    /// most [`ESTABLISH_ATTEMPTS`] times.
    fn establish(&mut self) -> Result<(), ErrorKind> {
        self.initialized = false;
        for _ in 0..ESTABLISH_ATTEMPTS {
            self.session = None;
            if self.had_session {
                self.reinits += 1;
            }
            let init = json!({"jsonrpc": "2.0", "id": self.id(), "method": "initialize", "params": {
                "protocolVersion": LEGACY_PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": CLIENT_NAME, "version": env!("CARGO_PKG_VERSION")},
            }});
            let a = self.post(&init, &[])?;
            if !(200..300).contains(&a.status) {
                return Err(format!("http_{}", a.status));
            }
            outcome(a.response.as_ref().ok_or_else(|| "bad_answer".to_string())?)?;
            self.session = a.session_id;
            let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
            let n = self.post(&note, &self.legacy_headers())?;
            if n.status == 404 {
                continue;
            }
            if !(200..300).contains(&n.status) {
                return Err(format!("http_{}", n.status));
            }
            self.initialized = true;
            self.had_session = true;
            return Ok(());
        }
        Err("session_404".into())
    }

    fn legacy_headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![(headers::PROTOCOL_VERSION, LEGACY_PROTOCOL_VERSION.to_string())];
        if let Some(s) = &self.session {
            h.push(("Mcp-Session-Id", s.clone()));
        }
        h
    }

    /// One `tools/call`, timed from send to the whole answer. First the
    /// back-off pause, if one is due. Legacy: a client without a session
    /// initializes first (a failure is this call's error); a 404 counts
    /// `session_404` and initializes again at once.
    fn call(&mut self) -> Call {
        let mut recoveries = Vec::new();
        if let Some(wait) = self.retry_after.take() {
            std::thread::sleep(wait);
            recoveries.push("retry_after");
        } else if let Some(pause) = self.backoff {
            std::thread::sleep(pause);
            recoveries.push("backoff");
        }
        let t = Instant::now();
        let mut sent_unix_ms = unix_ms();
        let reinits_before = self.reinits;
        if self.cfg.era == Era::Legacy && !self.initialized {
            if let Err(kind) = self.establish() {
                self.note_failure(&kind);
                let reinitializations = self.reinits - reinits_before;
                return Call { sent_unix_ms, reinitializations, latency_us: micros(t.elapsed()), outcome: Err(kind), recoveries };
            }
        }
        let id = self.id();
        let mut msg = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call"});
        msg["params"] = self.params.clone();
        let h = match self.cfg.era {
            Era::Legacy => self.legacy_headers(),
            Era::Modern => vec![
                (headers::PROTOCOL_VERSION, MODERN_PROTOCOL_VERSION.to_string()),
                (headers::METHOD, "tools/call".to_string()),
                (headers::NAME, headers::encode_value(&self.cfg.tool)),
            ],
        };
        let t = Instant::now();
        sent_unix_ms = unix_ms();
        let answer = self.post(&msg, &h);
        let latency_us = micros(t.elapsed());
        let outcome = match answer {
            Err(kind) => Err(kind),
            Ok(a) if a.status == 404 && self.cfg.era == Era::Legacy => {
                // The error is this call's; the new session is for the next
                // one (a failed establish leaves the client uninitialized, so
                // the next call tries again and counts what it meets).
                match self.establish() {
                    Ok(()) => {
                        recoveries.push("session_404_reinit");
                        self.backoff = None;
                    }
                    Err(kind) => self.note_failure(&kind),
                }
                Err("session_404".into())
            }
            Ok(a) if !(200..300).contains(&a.status) => {
                if matches!(a.status, 429 | 503) {
                    self.retry_after = Some(Duration::from_secs(a.retry_after.unwrap_or(1)).min(RETRY_AFTER_MAX));
                }
                Err(format!("http_{}", a.status))
            }
            Ok(a) => a.response.as_ref().map_or_else(|| Err("bad_answer".into()), outcome),
        };
        match &outcome {
            Err(kind) if kind != "session_404" => self.note_failure(kind),
            Err(_) => {}
            Ok(()) => self.backoff = None,
        }
        let reinitializations = self.reinits - reinits_before;
        Call { sent_unix_ms, reinitializations, latency_us, outcome, recoveries }
    }

    /// Sets the pause before the next call: after `connect_refused` or
    /// `connection_reset` [`BACKOFF_FIRST`], doubled while they repeat, at
    /// most [`BACKOFF_MAX`]; none after anything else (the server answered).
    fn note_failure(&mut self, kind: &str) {
        self.backoff = if is_unreachable(kind) {
            Some(self.backoff.map_or(BACKOFF_FIRST, |d| (d * 2).min(BACKOFF_MAX)))
        } else {
            None
        };
    }

    /// POSTs `msg` with `extra` headers (plus Content-Type, Accept and the
    /// key); reads a JSON or SSE answer within the agent's timeout.
    fn post(&self, msg: &Value, extra: &[(&str, String)]) -> Result<Answer, ErrorKind> {
        let body = serde_json::to_vec(msg).unwrap_or_default();
        let mut req = self
            .agent
            .post(&self.cfg.url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream");
        if let Some(key) = &self.cfg.key {
            req = req.header("Authorization", format!("Bearer {key}"));
        }
        for (k, v) in extra {
            req = req.header(*k, v);
        }
        let resp = req.send(&body[..]).map_err(|e| ureq_kind(&e))?;
        let status = resp.status().as_u16();
        let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let session_id = header("mcp-session-id");
        let retry_after = header("retry-after").and_then(|v| v.trim().parse::<u64>().ok());
        let content_type = header("content-type").unwrap_or_default().to_ascii_lowercase();
        let mut reader = resp.into_body().into_with_config().limit(MAX_ANSWER).reader();
        let id = msg.get("id").cloned();
        let response = match id {
            Some(id) if content_type.starts_with("text/event-stream") => {
                response_in_sse(BufReader::new(reader), &id).map_err(io_kind)?
            }
            id => {
                let mut raw = Vec::new();
                reader.read_to_end(&mut raw).map_err(io_kind)?;
                let v = serde_json::from_slice::<Value>(&raw).ok();
                v.filter(|v| id.as_ref().is_some_and(|id| is_response_to(v, id)))
            }
        };
        Ok(Answer { status, retry_after, session_id, response })
    }
}

/// Now, in Unix milliseconds (0 before 1970).
fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// Whether an error kind means the server could not be reached at all
/// (`connect_refused`, `connection_reset`): the client backs off.
pub fn is_unreachable(kind: &str) -> bool {
    matches!(kind, "connect_refused" | "connection_reset")
}

/// The [`ErrorKind`] of an I/O error: `timeout`, `connect_refused`,
/// `connection_reset` (reset, aborted, broken pipe, or closed by the peer
/// before the answer ended) or `transport`.
pub fn io_error_kind(kind: io::ErrorKind) -> ErrorKind {
    use io::ErrorKind as K;
    match kind {
        K::TimedOut | K::WouldBlock => "timeout",
        K::ConnectionRefused => "connect_refused",
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => "connection_reset",
        _ => "transport",
    }
    .into()
}

/// The [`ErrorKind`] of a failed request.
fn ureq_kind(e: &ureq::Error) -> ErrorKind {
    match e {
        ureq::Error::Timeout(_) => "timeout".into(),
        ureq::Error::Io(io) => io_error_kind(io.kind()),
        _ => "transport".into(),
    }
}

/// The [`ErrorKind`] of a failed body read (ureq wraps its own errors, a
/// timeout among them, in `io::Error`).
fn io_kind(e: io::Error) -> ErrorKind {
    ureq_kind(&ureq::Error::from(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<u32> = (1..=10).collect();
        assert_eq!(percentile_us(&v, 50.0), 5);
        assert_eq!(percentile_us(&v, 90.0), 9);
        assert_eq!(percentile_us(&v, 99.0), 10);
        assert_eq!(percentile_us(&v, 100.0), 10);
        assert_eq!(percentile_us(&v, 0.0), 1);
        let hundred: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile_us(&hundred, 50.0), 50);
        assert_eq!(percentile_us(&hundred, 99.0), 99);
        assert_eq!(percentile_us(&hundred, 99.5), 100);
        assert_eq!(percentile_us(&[7], 50.0), 7);
        assert_eq!(percentile_us(&[7], 99.0), 7);
        assert_eq!(percentile_us(&[], 50.0), 0);
    }

    #[test]
    fn the_sse_answer_is_the_event_with_the_request_id() {
        let body = "id: s1-0\ndata:\n\n\
                    : ping\n\n\
                    event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progress\":1}}\n\n\
                    data: {\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"sampling/createMessage\",\"params\":{}}\n\n\
                    data: {\"jsonrpc\":\"2.0\",\"id\":6,\"result\":{\"other\":true}}\n\n\
                    data: not json\n\n\
                    data: {\"jsonrpc\":\"2.0\",\"id\":9,\r\ndata: \"result\":{\"content\":[]}}\r\n\r\n\
                    data: {\"jsonrpc\":\"2.0\",\"id\":9,\"result\":{\"late\":true}}\n\n";
        let got = response_in_sse(body.as_bytes(), &json!(9)).unwrap().unwrap();
        assert_eq!(got, json!({"jsonrpc": "2.0", "id": 9, "result": {"content": []}}));
        // A string id is not the number id.
        assert_eq!(response_in_sse(body.as_bytes(), &json!("9")).unwrap(), None);
    }

    #[test]
    fn an_sse_answer_ending_without_a_blank_line_still_counts_and_a_missing_one_is_none() {
        let tail = "data: {\"jsonrpc\":\"2.0\",\"id\":\"a\",\"error\":{\"code\":-32603,\"message\":\"x\"}}";
        assert_eq!(response_in_sse(tail.as_bytes(), &json!("a")).unwrap().unwrap()["error"]["code"], -32603);
        assert_eq!(response_in_sse(": ping\n\n".as_bytes(), &json!(1)).unwrap(), None);
        assert_eq!(response_in_sse("".as_bytes(), &json!(1)).unwrap(), None);
    }

    #[test]
    fn outcomes_of_responses() {
        assert_eq!(outcome(&json!({"id": 1, "result": {"content": []}})), Ok(()));
        assert_eq!(outcome(&json!({"id": 1, "result": {"content": [], "isError": false}})), Ok(()));
        assert_eq!(outcome(&json!({"id": 1, "result": {"isError": true}})), Err("tool_error".into()));
        assert_eq!(outcome(&json!({"id": 1, "error": {"code": -32602, "message": "m"}})), Err("jsonrpc_-32602".into()));
        assert_eq!(outcome(&json!({"id": 1, "error": "weird"})), Err("bad_answer".into()));
        assert_eq!(outcome(&json!({"id": 1})), Err("bad_answer".into()));
    }

    fn summary(latencies_us: Vec<u32>, errors: &[(&str, u64)]) -> Summary {
        let total = latencies_us.len() as u64;
        let failed: u64 = errors.iter().map(|(_, n)| n).sum();
        Summary {
            url: "http://127.0.0.1:1/mcp".into(),
            era: Era::Legacy,
            concurrency: 2,
            rounds: total / 2,
            initialized: 2,
            ok: total - failed,
            total,
            latencies_us,
            elapsed: Duration::from_millis(500),
            errors: errors.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
            recoveries: BTreeMap::new(),
            reinitializations: 0,
            failed_calls: Vec::new(),
        }
    }

    #[test]
    fn the_summary_json_has_the_documented_shape() {
        let mut s = summary(vec![1000, 2000, 3000, 4000], &[("session_404", 1)]);
        s.recoveries.insert("session_404_reinit".into(), 1);
        s.reinitializations = 1;
        s.failed_calls.push(FailedCall { sent_unix_ms: 1_700_000_000_123, latency_ms: 4, kind: "session_404".into() });
        assert_eq!(
            s.to_json(),
            json!({"url": "http://127.0.0.1:1/mcp", "era": "legacy", "concurrency": 2, "rounds": 2,
                   "ok": 3, "total": 4, "p50_ms": 2.0, "p90_ms": 4.0, "p99_ms": 4.0, "max_ms": 4.0,
                   "rps": 8.0, "errors": {"session_404": 1}, "recoveries": {"session_404_reinit": 1},
                   "reinitializations": 1, "failed_calls": [[1_700_000_000_123u64, 4, "session_404"]]})
        );
        let text = s.report();
        assert!(text.starts_with("agg_ok=3/4 url=http://127.0.0.1:1/mcp era=legacy"), "{text}");
        assert!(text.contains("latency_ms p50=2.000 p90=4.000 p99=4.000 max=4.000"), "{text}");
        assert!(text.contains("errors: session_404=1\nrecoveries: session_404_reinit=1\nreinitializations: 1\n"), "{text}");
        let empty = summary(vec![], &[]);
        assert_eq!(empty.to_json()["p99_ms"], 0.0);
        assert_eq!(empty.to_json()["recoveries"], json!({}));
        assert_eq!(empty.to_json()["failed_calls"], json!([]));
        assert!(empty.report().contains("errors: none") && !empty.report().contains("recoveries"));
    }

    #[test]
    fn io_errors_are_named_by_cause_and_only_unreachable_ones_back_off() {
        use io::ErrorKind as K;
        assert_eq!(io_error_kind(K::ConnectionRefused), "connect_refused");
        for k in [K::ConnectionReset, K::ConnectionAborted, K::BrokenPipe, K::UnexpectedEof] {
            assert_eq!(io_error_kind(k), "connection_reset", "{k:?}");
        }
        assert_eq!(io_error_kind(K::TimedOut), "timeout");
        assert_eq!(io_error_kind(K::PermissionDenied), "transport");
        assert!(is_unreachable("connect_refused") && is_unreachable("connection_reset"));
        for k in ["timeout", "transport", "session_404", "http_503", "jsonrpc_-32603"] {
            assert!(!is_unreachable(k), "{k}");
        }
    }

    /// One client against a closed port, 1 s per call.
    fn one_client() -> LoadConfig {
        LoadConfig {
            url: "http://127.0.0.1:1/mcp".into(),
            key: None,
            concurrency: 1,
            tool: "echo".into(),
            arguments: json!({}),
            duration: None,
            rounds: None,
            era: Era::Legacy,
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn the_backoff_doubles_while_the_server_is_unreachable_and_resets_on_an_answer() {
        let cfg = one_client();
        let mut c = Client::new(Arc::new(cfg));
        let mut seen = Vec::new();
        for _ in 0..7 {
            c.note_failure("connect_refused");
            seen.push(c.backoff.unwrap().as_millis());
        }
        assert_eq!(seen, [100, 200, 400, 800, 1600, 2000, 2000]);
        c.note_failure("http_502");
        assert_eq!(c.backoff, None);
        c.note_failure("connection_reset");
        assert_eq!(c.backoff, Some(BACKOFF_FIRST));
    }

    #[test]
    fn the_compare_table_has_one_row_per_run() {
        let mut b = summary(vec![10, 20], &[]);
        b.url = "http://127.0.0.1:2/mcp".into();
        let t = compare_table(&[summary(vec![1000, 2000], &[("timeout", 1)]), b]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[0].starts_with("url") && lines[0].contains("p99_ms"), "{t}");
        assert!(lines[1].contains("http://127.0.0.1:1/mcp") && lines[1].contains("1/2"), "{t}");
        assert!(lines[2].contains("http://127.0.0.1:2/mcp") && lines[2].contains("2/2"), "{t}");
    }

    #[test]
    fn bad_settings_name_the_option() {
        let good = one_client();
        assert!(good.validate().is_ok());
        let msg = |c: LoadConfig| c.validate().unwrap_err().to_string();
        assert!(msg(LoadConfig { concurrency: 0, ..good.clone() }).contains("--concurrency"));
        assert!(msg(LoadConfig { arguments: json!([1]), ..good.clone() }).contains("--args"));
        assert!(msg(LoadConfig { rounds: Some(0), ..good.clone() }).contains("--rounds"));
        let m = msg(LoadConfig { url: "ftp://u:pw@h/x".into(), ..good.clone() });
        assert!(m.contains("--url") && !m.contains("pw"), "{m}");
    }
}
