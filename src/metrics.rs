//! `GET /metrics`: the hub's figures in the Prometheus text format (0.0.4),
//! from one [`prometheus::Registry`] per hub (never the process-wide default,
//! so several hubs in one process keep their own counts).
//!
//! Families (all names `mcphub_*`; durations in seconds):
//! - `requests_total{method,outcome,era}` (counter): every request to `/mcp`.
//!   `method` is a known MCP method, `GET`/`DELETE` (streams, session ends),
//!   `response` (a client's answer) or `other`; `outcome` is `ok`,
//!   `http_<status>` for an HTTP error status (`http_other` beyond the known
//!   ones), else `rpc_<class>` for a JSON-RPC error (`parse_error`,
//!   `invalid_request`, `method_not_found`, `invalid_params`,
//!   `internal_error`, `server_error` for -32000..=-32099, `other`); `era` is
//!   `legacy`, `modern` or `none` (refused before the era was known).
//! - `request_duration_seconds{method}` (histogram): until the answer (an SSE
//!   answer: until its stream ends).
//! - `upstream_request_duration_seconds{server}` (histogram): each HTTP POST
//!   to an upstream, until its answer's head.
//! - `upstream_sessions_active{server}` (gauge, legacy sessions cached here),
//!   `upstream_sessions_created_total{server}`,
//!   `upstream_sessions_reestablished_total{server}` (counters, ♻️).
//! - `upstream_processes{server,state="running"|"starting"|"idle"}` (gauge,
//!   stdio servers), `upstream_process_restarts_total{server}`,
//!   `upstream_process_crashes_total{server}`, `upstream_process_evictions_total{server}` (issue 19).
//! - `http_queue_depth`, `http_queue_capacity` (gauges),
//!   `http_rejections_total{reason="queue_full"|"streams_full"}` (503s).
//! - `bulkhead_in_flight{server,queue}`, `bulkhead_queued{server,queue}`
//!   (gauges; `queue` = `calls` or `heavy`), `bulkhead_rejections_total{server,queue,reason="queue_full"|"circuit_open"}`,
//!   `circuit_open{server}` (gauge: 1 open or half-open, 0 closed).
//! - `rate_limited_total{scope="global"|"user"|"server"}`, `timeouts_total{layer="hub"|"upstream"}`.
//! - `auth_failures_total{kind="hub_key"|"admin"}` (issue 14 hole 10).
//! - `store_up{kind}` (gauge: 1 healthy, 0 degraded; `kind` = `memory` or `redis`),
//!   `client_sessions` (gauge: legacy client sessions),
//!   `client_session_sweep_seconds` (histogram): each sweep of the client
//!   sessions for idle ones (`hub::sessions`, under the sessions' lock);
//!   `client_sessions_loaded_total`, `client_sessions_written_total`,
//!   `client_session_write_failures_total`, `client_sessions_restored_total` (counters: their Redis records, docs/cluster.md §1).
//! - `oauth_tokens_issued_total{grant="authorization_code"|"refresh_token"}`,
//!   `oauth_errors_total{error}` (counters, issue 18; `error` is one of the
//!   fixed RFC error codes of `hub::oauth::ERRORS`).
//! - `activity_dropped_total` (counter): users' Activity entries not kept
//!   (the Redis writer's queue full, or Redis refusing a batch).
//! - `threads{kind}` (gauge): the hub's background threads running now, by
//!   `threads::Kind` (`http`, `stream`, `listen`, `poller`, `task`,
//!   `call`, `control`; every kind listed, zeros included).
//!
//! Label values never come from client input unbounded: methods from
//! [`METHODS`], servers from the configuration. Gauges are read at scrape
//! time from a [`Snapshot`] of the live structures that the hub builds
//! (`Hub::metrics_snapshot`), so this module knows neither the hub nor the
//! upstreams (docs/module-order.md); the request path pays one counter
//! increment (a pre-resolved child) and one histogram observation.

use crate::http::ServerStats;
use prometheus::core::Collector;
use prometheus::proto::MetricFamily;
use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry};
use std::sync::{Arc, OnceLock};

/// The `method` label values besides `other` (known MCP methods of both eras,
/// the HTTP methods of `/mcp` streams and session ends, and client answers).
pub const METHODS: &[&str] = &[
    "initialize",
    "ping",
    "server/discover",
    "tools/list",
    "tools/call",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "subscriptions/listen",
    "completion/complete",
    "logging/setLevel",
    "offerings/list",
    "tasks/get",
    "tasks/result",
    "tasks/cancel",
    "tasks/list",
    "tasks/update",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
    "GET",
    "DELETE",
    "response",
    "other",
];

/// The eras of the `era` label.
pub const ERAS: [&str; 3] = ["legacy", "modern", "none"];

/// Histogram buckets of request durations, seconds (0.5 ms … 60 s).
pub const BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Histogram buckets of one client-session sweep, seconds (10 µs … 5 s).
pub const SWEEP_BUCKETS: &[f64] = &[0.00001, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];

/// A standalone histogram of the client-session sweeps, owned by the
/// sessions (`hub::sessions`) and gathered by [`Metrics::render`].
pub fn client_session_sweep_histogram() -> Histogram {
    let opts = HistogramOpts::new("mcphub_client_session_sweep_seconds", "Sweeps of the legacy client sessions for idle ones, seconds each")
        .buckets(SWEEP_BUCKETS.to_vec());
    Histogram::with_opts(opts).expect("static histogram options are valid")
}

/// The index of `method` in [`METHODS`] (`other` when unknown).
pub fn method_index(method: &str) -> usize {
    METHODS.iter().position(|m| *m == method).unwrap_or(METHODS.len() - 1)
}

fn era_index(era: &str) -> usize {
    ERAS.iter().position(|e| *e == era).unwrap_or(2)
}

/// The `outcome` label of an answer: HTTP status first (≥ 400), then the
/// JSON-RPC error code's class, else `ok`.
pub fn outcome(status: u16, rpc_code: Option<i64>) -> &'static str {
    if status >= 400 {
        return match status {
            400 => "http_400",
            401 => "http_401",
            403 => "http_403",
            404 => "http_404",
            405 => "http_405",
            406 => "http_406",
            408 => "http_408",
            413 => "http_413",
            415 => "http_415",
            429 => "http_429",
            431 => "http_431",
            500 => "http_500",
            502 => "http_502",
            503 => "http_503",
            504 => "http_504",
            _ => "http_other",
        };
    }
    match rpc_code {
        None => "ok",
        Some(-32700) => "rpc_parse_error",
        Some(-32600) => "rpc_invalid_request",
        Some(-32601) => "rpc_method_not_found",
        Some(-32602) => "rpc_invalid_params",
        Some(-32603) => "rpc_internal_error",
        Some(-32099..=-32000) => "rpc_server_error",
        Some(_) => "rpc_other",
    }
}

/// The JSON-RPC error of a response body, read without parsing the rest:
/// the top-level `error` member's `code` and, for a timeout (`-32001`), the
/// `data.layer` it names. `None` for a result, a non-object or anything odd.
#[derive(Debug, Clone, PartialEq)]
pub struct PeekedError {
    /// `error.code`.
    pub code: i64,
    /// `error.data.layer` when it is `hub` or `upstream`.
    pub layer: Option<&'static str>,
    /// `error.message`, at most [`PEEKED_MESSAGE_CHARS`] characters (not
    /// masked: callers that show it mask it).
    pub message: Option<String>,
}

/// Most characters of [`PeekedError::message`] (twice what the Activity page
/// shows, so hub keys crossing its cut are still masked whole).
pub const PEEKED_MESSAGE_CHARS: usize = 400;

/// Reads the top-level members of a JSON-RPC response body in order and
/// stops at `result` (→ `None`) or `error` (→ its code and layer); other
/// members (`jsonrpc`, `id`) are skipped. Costs O(size of what precedes
/// `result`/`error`), never a parse of a large result.
pub fn peek_error(body: &[u8]) -> Option<PeekedError> {
    #[derive(serde::Deserialize)]
    struct Error {
        code: i64,
        #[serde(default)]
        message: Option<String>,
        #[serde(default)]
        data: Option<serde_json::Value>,
    }
    let ws = |mut i: usize| {
        while body.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
            i += 1;
        }
        i
    };
    let mut pos = ws(0);
    if body.get(pos) != Some(&b'{') {
        return None;
    }
    pos += 1;
    for _ in 0..8 {
        pos = ws(pos);
        if body.get(pos) != Some(&b'"') {
            return None;
        }
        let len = body[pos + 1..].iter().position(|b| *b == b'"' || *b == b'\\')?;
        if body[pos + 1 + len] != b'"' {
            return None; // an escaped key: not one of ours
        }
        let key = &body[pos + 1..pos + 1 + len];
        pos = ws(pos + len + 2);
        if body.get(pos) != Some(&b':') {
            return None;
        }
        pos = ws(pos + 1);
        let rest = body.get(pos..)?;
        match key {
            b"result" => return None,
            b"error" => {
                let e: Error = serde_json::Deserializer::from_slice(rest).into_iter::<Error>().next()?.ok()?;
                let layer = e.data.as_ref().and_then(|d| d.get("layer")).and_then(|l| l.as_str()).and_then(|l| match l {
                    "hub" => Some("hub"),
                    "upstream" => Some("upstream"),
                    _ => None,
                });
                let message = e.message.map(|mut m| {
                    if let Some((cut, _)) = m.char_indices().nth(PEEKED_MESSAGE_CHARS) {
                        m.truncate(cut);
                    }
                    m
                });
                return Some(PeekedError { code: e.code, layer: layer.filter(|_| e.code == -32001), message });
            }
            _ => {
                let mut values = serde_json::Deserializer::from_slice(rest).into_iter::<serde::de::IgnoredAny>();
                values.next()?.ok()?;
                pos = ws(pos + values.byte_offset());
                if body.get(pos) != Some(&b',') {
                    return None;
                }
                pos += 1;
            }
        }
    }
    None
}

/// A standalone histogram of one upstream's POST latency (const label
/// `server`), owned by its transport and gathered by [`Metrics::render`].
pub fn upstream_latency_histogram(server: &str) -> Histogram {
    let opts = HistogramOpts::new("mcphub_upstream_request_duration_seconds", "Upstream HTTP POSTs until the answer's head, per server (seconds)")
        .const_label("server", server)
        .buckets(BUCKETS.to_vec());
    Histogram::with_opts(opts).unwrap_or_else(|_| {
        // A server name Prometheus refuses as a label value cannot happen (any UTF-8 is valid); keep a label-less one.
        Histogram::with_opts(HistogramOpts::new("mcphub_upstream_request_duration_seconds", "Upstream HTTP POSTs (seconds)"))
            .expect("static histogram options are valid")
    })
}

/// The live figures of one scrape, read by the hub from its structures
/// (`Hub::metrics_snapshot`) and rendered by [`Metrics::render`].
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Each upstream's latency histogram ([`upstream_latency_histogram`]),
    /// merged into one family.
    pub latencies: Vec<Histogram>,
    /// Each upstream server, in the catalog's order.
    pub upstreams: Vec<UpstreamFigures>,
    /// Requests refused by a rate limit, by scope (`global`, `user`, `server`).
    pub rate_limited: Vec<(&'static str, u64)>,
    /// Failed authentications, by kind (`hub_key`, `admin`).
    pub auth_failures: Vec<(&'static str, u64)>,
    /// The session store's kind (`memory` or `redis`).
    pub store_kind: &'static str,
    /// Whether the session store is healthy (not degraded).
    pub store_up: bool,
    /// Legacy client sessions of this hub.
    pub client_sessions: usize,
    /// Their sweeps for idle ones ([`client_session_sweep_histogram`]).
    pub client_session_sweeps: Option<Histogram>,
    /// Client session records in Redis (docs/cluster.md §1): loaded (another
    /// instance's session, or one dropped here), written, failed writes.
    pub client_session_store: ClientSessionStore,
    /// Background threads running now, by kind (`crate::threads::Kind`
    /// names, every kind listed).
    pub threads: Vec<(&'static str, usize)>,
    /// Activity entries dropped so far: the Redis writer's queue was full or
    /// Redis refused them (`crate::users::activity::Activity::dropped`).
    pub activity_dropped: u64,
    /// OAuth token pairs issued, by grant (`authorization_code`, `refresh_token`).
    pub oauth_tokens_issued: Vec<(&'static str, u64)>,
    /// OAuth error answers, by RFC `error` code (a fixed set).
    pub oauth_errors: Vec<(&'static str, u64)>,
    /// The cluster bus (issue 20, docs/cluster.md §2); `None` without Redis.
    pub cluster: Option<ClusterFigures>,
}

/// The cluster bus's figures (`crate::cluster::Cluster::figures`), for
/// `/metrics` and `/readyz`.
#[derive(Debug, Clone, Default)]
pub struct ClusterFigures {
    /// This instance's id (`mcphub_instance_info{instance}`).
    pub instance: String,
    /// Live peers at the last heartbeat (`mcphub_cluster_peers`).
    pub peers: usize,
    /// Deliveries published, by kind (`direction="sent"`).
    pub sent: Vec<(&'static str, u64)>,
    /// Deliveries received from other instances, by kind (`direction="received"`).
    pub received: Vec<(&'static str, u64)>,
    /// Publishes that failed (Redis unavailable or erring).
    pub publish_failures: u64,
    /// Forwards that got no answer, by cause (`no_receiver`, `timeout`, `unavailable`).
    pub forward_failures: Vec<(&'static str, u64)>,
    /// Times the subscriber connected again.
    pub subscriber_reconnects: u64,
    /// Whether the subscriber is subscribed now.
    pub subscribed: bool,
}

/// Counts of the client session records in Redis (`mcphub_client_sessions_loaded_total`,
/// `mcphub_client_sessions_written_total`, `mcphub_client_session_write_failures_total`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientSessionStore {
    /// Sessions loaded from their record.
    pub loaded: u64,
    /// Records written.
    pub written: u64,
    /// Writes (or deletes) that failed.
    pub write_failures: u64,
    /// Records Redis had lost, written again from this instance's copy.
    pub restored: u64,
}

/// The processes of one stdio server (issue 19), for `/readyz` and
/// `/metrics` (`mcphub_upstream_processes{server,state}` and the counters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProcessCounts {
    /// Started and answering, with calls in flight.
    pub running: usize,
    /// Started, `initialize` not answered yet.
    pub starting: usize,
    /// Started, no call in flight.
    pub idle: usize,
    /// Processes started again after one of the same context ended badly.
    pub restarts: u64,
    /// Processes that exited on their own or were killed for not answering.
    pub crashes: u64,
    /// Processes stopped for idleness or to make room (LRU).
    pub evictions: u64,
}

/// One upstream server's figures in a [`Snapshot`].
#[derive(Debug, Clone, Default)]
pub struct UpstreamFigures {
    /// Server name (the `server` label).
    pub name: String,
    /// Legacy upstream sessions cached.
    pub sessions_active: usize,
    /// Legacy upstream sessions initialized so far.
    pub sessions_created: u64,
    /// Legacy upstream sessions found dead and re-established so far.
    pub sessions_reestablished: u64,
    /// Its bulkhead queues: `calls`, and `heavy` when it has heavy tools.
    pub queues: Vec<QueueFigures>,
    /// Whether the circuit breaker refuses calls (open or half-open).
    pub circuit_open: bool,
    /// A stdio server's processes (issue 19); `None` for other transports.
    pub processes: Option<ProcessCounts>,
}

/// One bulkhead queue's figures (`crate::limits::bulkhead::Snapshot`).
#[derive(Debug, Clone, Default)]
pub struct QueueFigures {
    /// `"calls"` or `"heavy"` (the `queue` label).
    pub queue: &'static str,
    /// Calls holding a slot.
    pub in_flight: usize,
    /// Calls waiting for one.
    pub queued: usize,
    /// Calls refused so far because the queue was full.
    pub refused_queue_full: u64,
    /// Calls refused so far because the circuit was open.
    pub refused_circuit_open: u64,
}

/// One hub's metrics: request counters and histograms (hot path), and the
/// sources read at scrape time.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    durations: HistogramVec,
    timeouts: IntCounterVec,
    /// `requests_total{method, "ok", era}`, resolved on first use.
    ok: Vec<[OnceLock<IntCounter>; 3]>,
    /// `request_duration_seconds{method}`, resolved on first use.
    duration: Vec<OnceLock<Histogram>>,
    http: OnceLock<Arc<ServerStats>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Fresh metrics in a registry of their own.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(Opts::new("mcphub_requests_total", "Requests to /mcp by method, outcome and era"), &["method", "outcome", "era"])
            .expect("valid metric");
        let durations = HistogramVec::new(
            HistogramOpts::new("mcphub_request_duration_seconds", "Requests to /mcp until answered (SSE: until the stream ends), seconds")
                .buckets(BUCKETS.to_vec()),
            &["method"],
        )
        .expect("valid metric");
        let timeouts =
            IntCounterVec::new(Opts::new("mcphub_timeouts_total", "Requests answered -32001 (timeout), by the layer whose deadline ran out"), &["layer"])
                .expect("valid metric");
        for c in [Box::new(requests.clone()) as Box<dyn Collector>, Box::new(durations.clone()), Box::new(timeouts.clone())] {
            let _ = registry.register(c);
        }
        Metrics {
            registry,
            requests,
            durations,
            timeouts,
            ok: METHODS.iter().map(|_| Default::default()).collect(),
            duration: METHODS.iter().map(|_| OnceLock::new()).collect(),
            http: OnceLock::new(),
        }
    }

    /// The HTTP server's live figures (queue depth, 503s); the first wins.
    pub fn attach_http(&self, stats: Arc<ServerStats>) {
        let _ = self.http.set(stats);
    }

    /// Counts one answered request: `method` (any string; unknown → `other`),
    /// `era` (`legacy`/`modern`/`none`), its HTTP status and JSON-RPC error,
    /// and how long it took.
    pub fn observe(&self, method: &str, era: &str, status: u16, error: Option<&PeekedError>, seconds: f64) {
        let m = method_index(method);
        let outcome = outcome(status, error.map(|e| e.code));
        if outcome == "ok" {
            let e = era_index(era);
            self.ok[m][e].get_or_init(|| self.requests.with_label_values(&[METHODS[m], "ok", ERAS[e]])).inc();
        } else {
            self.requests.with_label_values(&[METHODS[m], outcome, ERAS[era_index(era)]]).inc();
        }
        self.duration[m].get_or_init(|| self.durations.with_label_values(&[METHODS[m]])).observe(seconds);
        if let Some(layer) = error.and_then(|e| e.layer) {
            self.timeouts.with_label_values(&[layer]).inc();
        }
    }

    /// The text exposition of every family, gauges from `live` (read now).
    pub fn render(&self, live: &Snapshot) -> String {
        let mut families = self.registry.gather();
        families.extend(live_families(live, self.http.get().map(Arc::as_ref)));
        families.retain(|f| !f.get_metric().is_empty());
        families.sort_by(|a, b| a.name().cmp(b.name()));
        let mut out = String::new();
        if let Err(e) = prometheus::TextEncoder::new().encode_utf8(&families, &mut out) {
            log::warn!("metrics: encoding failed: {e}");
        }
        out
    }
}

/// A family built from rows of (label values, value).
fn gauges(name: &str, help: &str, labels: &[&str], rows: Vec<(Vec<&str>, f64)>) -> Vec<MetricFamily> {
    let Ok(v) = prometheus::GaugeVec::new(Opts::new(name, help), labels) else { return Vec::new() };
    for (values, x) in rows {
        v.with_label_values(&values).set(x);
    }
    v.collect()
}

fn counters(name: &str, help: &str, labels: &[&str], rows: Vec<(Vec<&str>, u64)>) -> Vec<MetricFamily> {
    let Ok(v) = IntCounterVec::new(Opts::new(name, help), labels) else { return Vec::new() };
    for (values, x) in rows {
        v.with_label_values(&values).inc_by(x);
    }
    v.collect()
}

/// Families of one name from several standalone metrics, merged into one.
fn merged(parts: impl Iterator<Item = MetricFamily>) -> Option<MetricFamily> {
    let mut first: Option<MetricFamily> = None;
    for mut f in parts {
        match first.as_mut() {
            None => first = Some(f),
            Some(acc) => acc.mut_metric().extend(f.take_metric()),
        }
    }
    first
}

fn live_families(live: &Snapshot, http: Option<&ServerStats>) -> Vec<MetricFamily> {
    let mut out = Vec::new();
    if let Some(f) = merged(live.latencies.iter().flat_map(|h| h.collect())) {
        out.push(f);
    }
    out.extend(live.client_session_sweeps.iter().flat_map(|h| h.collect()));
    let states = &live.upstreams;
    out.extend(gauges(
        "mcphub_upstream_sessions_active",
        "Legacy upstream sessions cached by this hub, per server",
        &["server"],
        states.iter().map(|u| (vec![u.name.as_str()], u.sessions_active as f64)).collect(),
    ));
    out.extend(counters(
        "mcphub_upstream_sessions_created_total",
        "Legacy upstream sessions initialized by this hub, per server",
        &["server"],
        states.iter().map(|u| (vec![u.name.as_str()], u.sessions_created)).collect(),
    ));
    out.extend(counters(
        "mcphub_upstream_sessions_reestablished_total",
        "Legacy upstream sessions found dead (404/expired) and re-established, per server",
        &["server"],
        states.iter().map(|u| (vec![u.name.as_str()], u.sessions_reestablished)).collect(),
    ));
    let stdio: Vec<(&str, &ProcessCounts)> = states.iter().filter_map(|u| u.processes.as_ref().map(|p| (u.name.as_str(), p))).collect();
    out.extend(gauges(
        "mcphub_upstream_processes",
        "stdio server processes of this hub, per server and state (running, starting, idle)",
        &["server", "state"],
        stdio
            .iter()
            .flat_map(|(name, p)| {
                [("running", p.running), ("starting", p.starting), ("idle", p.idle)].map(|(state, n)| (vec![*name, state], n as f64))
            })
            .collect(),
    ));
    for (metric, help, pick) in [
        ("mcphub_upstream_process_restarts_total", "stdio server processes started again after one of the same context ended badly", (|p: &ProcessCounts| p.restarts) as fn(&ProcessCounts) -> u64),
        ("mcphub_upstream_process_crashes_total", "stdio server processes that exited on their own or were killed for not answering", |p| p.crashes),
        ("mcphub_upstream_process_evictions_total", "stdio server processes stopped when idle or to make room", |p| p.evictions),
    ] {
        out.extend(counters(metric, help, &["server"], stdio.iter().map(|(name, p)| (vec![*name], pick(p))).collect()));
    }
    let mut in_flight = Vec::new();
    let mut queued = Vec::new();
    let mut refused = Vec::new();
    for u in states {
        let name = u.name.as_str();
        for q in &u.queues {
            in_flight.push((vec![name, q.queue], q.in_flight as f64));
            queued.push((vec![name, q.queue], q.queued as f64));
            refused.push((vec![name, q.queue, "queue_full"], q.refused_queue_full));
            refused.push((vec![name, q.queue, "circuit_open"], q.refused_circuit_open));
        }
    }
    out.extend(gauges("mcphub_bulkhead_in_flight", "Upstream calls holding a bulkhead slot", &["server", "queue"], in_flight));
    out.extend(gauges("mcphub_bulkhead_queued", "Upstream calls waiting for a bulkhead slot", &["server", "queue"], queued));
    out.extend(counters("mcphub_bulkhead_rejections_total", "Upstream calls refused by the bulkhead (503)", &["server", "queue", "reason"], refused));
    out.extend(gauges(
        "mcphub_circuit_open",
        "Whether the server's circuit breaker refuses calls (1: open or half-open)",
        &["server"],
        states.iter().map(|u| (vec![u.name.as_str()], if u.circuit_open { 1.0 } else { 0.0 })).collect(),
    ));
    if let Some(http) = http {
        out.extend(gauges("mcphub_http_queue_depth", "Complete requests waiting for an HTTP worker", &[], vec![(vec![], http.queue_depth() as f64)]));
        out.extend(gauges("mcphub_http_queue_capacity", "Capacity of the HTTP worker queue", &[], vec![(vec![], http.queue_capacity() as f64)]));
        let (queue_full, streams_full) = http.rejected();
        out.extend(counters(
            "mcphub_http_rejections_total",
            "Requests answered 503 by the HTTP layer (worker queue full, stream threads exhausted)",
            &["reason"],
            vec![(vec!["queue_full"], queue_full), (vec!["streams_full"], streams_full)],
        ));
    }
    out.extend(counters(
        "mcphub_rate_limited_total",
        "Requests refused by a rate limit (429), by scope",
        &["scope"],
        live.rate_limited.iter().map(|(scope, n)| (vec![*scope], *n)).collect(),
    ));
    out.extend(counters(
        "mcphub_auth_failures_total",
        "Failed authentications (unknown hub key, wrong admin credential), by kind",
        &["kind"],
        live.auth_failures.iter().map(|(kind, n)| (vec![*kind], *n)).collect(),
    ));
    let up = if live.store_up { 1.0 } else { 0.0 };
    out.extend(gauges("mcphub_store_up", "Session store health (1 healthy, 0 degraded)", &["kind"], vec![(vec![live.store_kind], up)]));
    out.extend(gauges("mcphub_client_sessions", "Legacy client sessions of this hub", &[], vec![(vec![], live.client_sessions as f64)]));
    let cs = live.client_session_store;
    out.extend(counters("mcphub_client_sessions_loaded_total", "Client sessions loaded from their Redis record (minted by another instance or dropped here)", &[], vec![(vec![], cs.loaded)]));
    out.extend(counters("mcphub_client_sessions_written_total", "Client session records written to Redis", &[], vec![(vec![], cs.written)]));
    out.extend(counters("mcphub_client_session_write_failures_total", "Client session record writes or deletes that failed (the session stays in memory)", &[], vec![(vec![], cs.write_failures)]));
    out.extend(counters("mcphub_client_sessions_restored_total", "Client session records Redis had lost (a failover, a restart without data), written again from this instance's copy", &[], vec![(vec![], cs.restored)]));
    out.extend(gauges(
        "mcphub_threads",
        "Background threads of this hub running now, by kind",
        &["kind"],
        live.threads.iter().map(|(kind, n)| (vec![*kind], *n as f64)).collect(),
    ));
    out.extend(counters(
        "mcphub_activity_dropped_total",
        "Users' activity entries not kept (the Redis writer's queue was full, or Redis refused them)",
        &[],
        vec![(vec![], live.activity_dropped)],
    ));
    out.extend(counters(
        "mcphub_oauth_tokens_issued_total",
        "OAuth token pairs issued at /oauth/token, by grant type",
        &["grant"],
        live.oauth_tokens_issued.iter().map(|(grant, n)| (vec![*grant], *n)).collect(),
    ));
    out.extend(counters(
        "mcphub_oauth_errors_total",
        "OAuth error answers of the token, revocation and registration endpoints, by RFC error code",
        &["error"],
        live.oauth_errors.iter().map(|(error, n)| (vec![*error], *n)).collect(),
    ));
    if let Some(c) = &live.cluster {
        out.extend(gauges("mcphub_instance_info", "This hub instance's id (cluster bus, issue 20)", &["instance"], vec![(vec![c.instance.as_str()], 1.0)]));
        out.extend(gauges("mcphub_cluster_peers", "Other live hub instances at the last heartbeat", &[], vec![(vec![], c.peers as f64)]));
        let rows = c.sent.iter().map(|(k, n)| (vec!["sent", *k], *n)).chain(c.received.iter().map(|(k, n)| (vec!["received", *k], *n))).collect();
        out.extend(counters("mcphub_cluster_deliveries_total", "Cluster bus deliveries, by direction and kind", &["direction", "kind"], rows));
        out.extend(counters(
            "mcphub_cluster_forward_failures_total",
            "Forwards to another instance that got no answer, by cause",
            &["cause"],
            c.forward_failures.iter().map(|(k, n)| (vec![*k], *n)).collect(),
        ));
        out.extend(counters("mcphub_cluster_publish_failures_total", "Cluster bus publishes that failed (dropped)", &[], vec![(vec![], c.publish_failures)]));
        out.extend(counters(
            "mcphub_cluster_subscriber_reconnects_total",
            "Times the cluster bus subscriber connected again",
            &[],
            vec![(vec![], c.subscriber_reconnects)],
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_peeked_without_reading_results() {
        assert_eq!(peek_error(br#"{"jsonrpc":"2.0","id":1,"result":{"error":{"code":1}}}"#), None);
        assert_eq!(peek_error(br#"{"jsonrpc":"2.0","id":"x","error":{"code":-32601,"message":"no"}}"#), Some(PeekedError { code: -32601, layer: None, message: Some("no".into()) }));
        let t = br#" { "id" : [1,{"a":"}"}], "jsonrpc":"2.0", "error":{"code":-32001,"message":"t","data":{"layer":"hub"}}}"#;
        assert_eq!(peek_error(t), Some(PeekedError { code: -32001, layer: Some("hub"), message: Some("t".into()) }));
        assert_eq!(peek_error(b"not json"), None);
        let long = format!(r#"{{"jsonrpc":"2.0","id":1,"error":{{"code":-32603,"message":"{}"}}}}"#, "é".repeat(1000));
        let m = peek_error(long.as_bytes()).and_then(|e| e.message).unwrap();
        assert_eq!(m.chars().count(), PEEKED_MESSAGE_CHARS, "the message is bounded");
        assert_eq!(peek_error(br#"{"id":1,"error":{"code":5}}"#).unwrap().message, None);
        assert_eq!(peek_error(b""), None);
        assert_eq!(peek_error(br#"{"error":{"code":"x"}}"#), None);
    }

    #[test]
    fn outcomes_are_bounded() {
        assert_eq!(outcome(200, None), "ok");
        assert_eq!(outcome(429, Some(-32000)), "http_429");
        assert_eq!(outcome(200, Some(-32601)), "rpc_method_not_found");
        assert_eq!(outcome(200, Some(-32001)), "rpc_server_error");
        assert_eq!(outcome(200, Some(7)), "rpc_other");
        assert_eq!(outcome(418, None), "http_other");
        assert_eq!(METHODS[method_index("x/unknown")], "other");
    }

    #[test]
    fn two_hubs_keep_their_own_counts() {
        let (a, b) = (Metrics::new(), Metrics::new());
        a.observe("tools/call", "legacy", 200, None, 0.001);
        let count = |m: &Metrics| m.requests.with_label_values(&["tools/call", "ok", "legacy"]).get();
        assert_eq!((count(&a), count(&b)), (1, 0));
    }
}
