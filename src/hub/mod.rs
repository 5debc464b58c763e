//! The downstream MCP endpoint `/mcp` (dual era, docs/decisions.md D1) and the
//! operational endpoints (`/healthz`, `/readyz`, `/metrics`).
//!
//! Every `/mcp` request gets a request id (`X-Request-Id`, [`crate::trace`]),
//! echoed on the answer, and when answered one info log line
//! ([`crate::logging::REQUEST_TARGET`]) and its counts in [`crate::metrics`].
//!
//! This file is the HTTP edge: Origin check, body parsing, era selection,
//! header validation (modern) or session lookup (legacy), then hands the
//! request to [`methods`], which reads like one small function per MCP method.

pub mod admin;
pub mod auth;
pub mod oauth;
pub mod listen;
pub mod me;
pub mod methods;
pub mod mrtr;
pub mod refusal;
pub mod relay;
pub mod reload;
pub mod resume;
pub mod sessions;
pub mod shape;
pub mod tasks;
pub mod ui;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::http::{Body, Handler, Request, Response};
use crate::protocol::{self, era, headers, jsonrpc, Era, Incoming, MODERN_VERSION};
use crate::store::SessionStore;
use crate::upstream::Upstream;
use refusal::Refusal;
use serde_json::{json, Map, Value};
use sessions::{ClientSession, ClientSessions};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// The session header (2025-11-25 transports).
pub const SESSION_HEADER: &str = "Mcp-Session-Id";

/// The hub: catalog, upstreams and client sessions. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    /// The configuration served now; a reload swaps it ([`reload`]).
    config: parking_lot::RwLock<Arc<Config>>,
    /// Serializes reloads.
    reloading: parking_lot::Mutex<()>,
    store: Arc<dyn SessionStore>,
    users: parking_lot::RwLock<crate::users::Users>,
    catalog: Catalog,
    sessions: ClientSessions,
    pending: relay::PendingRequests,
    mrtr: mrtr::Mrtr,
    in_flight: relay::InFlight,
    subscriptions: relay::Subscriptions,
    streams: resume::Streams,
    listeners: relay::Listeners,
    listen_streams: listen::ListenStreams,
    tasks: tasks::Tasks,
    next_progress: AtomicU64,
    limits: parking_lot::RwLock<Arc<crate::limits::RateLimits>>,
    redis: Option<crate::store::redis::RedisStore>,
    metrics: crate::metrics::Metrics,
    /// Failed authentications by source (issue 14 hole 10).
    auth_failures: auth::Failures,
    /// The owner of the hub's background threads ([`crate::threads`]).
    threads: crate::threads::Threads,
    /// Makes each server's transport (at start and on reload).
    connector: crate::upstream::Connector,
    /// Each user's recent `/mcp` requests (issue 17), in Redis like the users.
    activity: crate::users::activity::Activity,
    /// The users' pages' state: browser sessions, their limits (issue 17).
    ui: ui::Ui,
    /// OAuth for MCP clients: clients, grants, tokens (issue 18).
    oauth: oauth::Oauth,
    /// The cluster bus (issue 20, docs/cluster.md §2); `None` without Redis.
    cluster: Option<crate::cluster::Cluster>,
    /// Deliveries to client streams coalesced across instances ([`relay::Coalesce`]).
    coalesce: relay::Coalesce,
}

/// One served server's state ([`Hub::server_statuses`]): `/readyz` and the admin pages.
#[derive(Debug, Clone)]
pub struct ServerStatus {
    /// The server's name.
    pub name: String,
    /// Era, health, last error (and its class), bulkhead and breaker.
    pub state: crate::upstream::ServerState,
    /// Legacy upstream sessions cached here.
    pub sessions: usize,
    /// The bulkhead's slots (`maxConcurrency`; `None`: unlimited).
    pub max_concurrency: Option<usize>,
    /// A stdio server's processes (issue 19); `None` for other transports.
    pub processes: Option<crate::metrics::ProcessCounts>,
}

/// Who sent one downstream request and how to answer them.
pub struct Downstream {
    /// The request's era.
    pub era: Era,
    /// The legacy session (legacy requests other than `initialize`).
    pub session: Option<Arc<ClientSession>>,
    /// The client's `clientInfo` (modern `_meta` or legacy `initialize`).
    pub client_info: Option<Value>,
    /// The client's capabilities (modern `_meta` or legacy `initialize`).
    pub capabilities: Option<Value>,
    /// Modern per-request log level (`io.modelcontextprotocol/logLevel`).
    pub log_level: Option<String>,
    /// Whether the client accepts `text/event-stream`.
    pub accepts_sse: bool,
    /// The hub deadline of this request.
    pub deadline: Instant,
    /// `Mcp-Param-*` and other headers, for validation (name, value).
    pub headers: Vec<(String, String)>,
    /// The user whose hub key the request carries (`None`: anonymous).
    pub user: Option<Arc<crate::users::User>>,
}

impl Downstream {
    /// A header of the downstream request (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The upstream call context of this request (no call handle yet).
    pub fn call_context(&self) -> crate::upstream::CallContext {
        crate::upstream::CallContext {
            user: self.user.clone(),
            client_info: self.client_info.clone(),
            client_capabilities: mrtr::upstream_capabilities(self),
            deadline: self.deadline,
            call: None,
            // A legacy client gets every log level until it sets one; a modern
            // server sends none without logLevel, so the hub asks for its level
            // (or all) and filters per client on the way back.
            log_level: match (&self.session, self.era) {
                (Some(s), Era::Legacy) => Some(s.log_level.lock().clone().unwrap_or_else(|| "debug".into())),
                _ => None,
            },
            client_session: self.session.as_ref().map(|s| s.id.clone()),
        }
    }
}

impl Hub {
    /// Builds the hub from a validated configuration, with the session
    /// store it names (Redis, else in memory).
    ///
    /// Errors: a Redis URL the client cannot use.
    pub fn new(config: Config) -> Result<Hub, crate::store::StoreError> {
        let connector = crate::upstream::product_connector(config.max_processes);
        Hub::with_connector(config, connector)
    }

    /// [`Hub::new`] reaching its servers through `connector`'s transports
    /// (the seam at the upstream boundary: [`crate::upstream::transport::Transport`]);
    /// the product uses [`crate::upstream::product_connector`], a test a
    /// transport that answers in memory. Reloads build new servers with it too.
    ///
    /// Errors: a Redis URL the client cannot use.
    pub fn with_connector(config: Config, connector: crate::upstream::Connector) -> Result<Hub, crate::store::StoreError> {
        let threads = crate::threads::Threads::new();
        let redis = crate::store::open_redis(&config, &threads)?;
        Ok(Hub::build(config, redis, threads, connector))
    }

    /// Builds the hub on one Redis connection (or none): sessions, users and
    /// rate limits share its pool and breaker. The connection's probe thread
    /// stays with the owner it was opened with.
    pub fn with_redis(config: Config, redis: Option<crate::store::redis::RedisStore>) -> Hub {
        let connector = crate::upstream::product_connector(config.max_processes);
        Hub::build(config, redis, crate::threads::Threads::new(), connector)
    }

    fn build(
        config: Config,
        redis: Option<crate::store::redis::RedisStore>,
        threads: crate::threads::Threads,
        connector: crate::upstream::Connector,
    ) -> Hub {
        let store = crate::store::sessions(redis.as_ref());
        let upstreams: Vec<Arc<Upstream>> =
            config.servers.iter().map(|s| reload::new_upstream(s, &config, &store, &threads, &connector)).collect();
        let catalog = Catalog::new(upstreams, config.tool_naming, config.list_cache_ttl, config.list_timeout, config.list_cache_contexts);
        let sessions = ClientSessions::with_redis(config.client_session_idle, config.max_client_sessions, redis.clone());
        let limits = crate::limits::RateLimits::new(&config.rate_limits, redis.clone());
        let cluster = redis.as_ref().map(|r| crate::cluster::Cluster::start(r.clone(), None, &threads));
        let instance = cluster.as_ref().map(|c| c.id().to_string());
        let streams = resume::Streams::new(redis.clone().zip(config.redis.clone()));
        let task_table = tasks::Tasks::new(redis.clone());
        let activity = match &redis {
            Some(r) => crate::users::activity::Activity::redis(r.clone(), &threads),
            None => crate::users::activity::Activity::memory(),
        };
        let hub = Hub {
            inner: Arc::new(Inner {
                users: parking_lot::RwLock::new(crate::users::Users::open(&config, redis.clone(), &threads)),
                ui: ui::Ui::new(redis.clone()),
                oauth: oauth::Oauth::new(redis.clone(), &config.auth.oauth, &threads),
                redis,
                config: parking_lot::RwLock::new(Arc::new(config)),
                reloading: parking_lot::Mutex::new(()),
                store: store.clone(),
                catalog,
                sessions,
                pending: relay::PendingRequests::for_instance(instance.as_deref()),
                mrtr: mrtr::Mrtr::for_instance(instance.as_deref()),
                in_flight: relay::InFlight::default(),
                subscriptions: relay::Subscriptions::default(),
                streams,
                listeners: relay::Listeners::default(),
                listen_streams: listen::ListenStreams::default(),
                tasks: task_table,
                next_progress: AtomicU64::new(1),
                limits: parking_lot::RwLock::new(Arc::new(limits)),
                metrics: crate::metrics::Metrics::new(),
                auth_failures: auth::Failures::default(),
                threads,
                connector,
                activity,
                coalesce: relay::Coalesce::new(cluster.is_some()),
                cluster,
            }),
        };
        if let Some(c) = hub.cluster() {
            let weak = Arc::downgrade(&hub.inner);
            c.set_handler(Arc::new(move |from: &str, d: crate::cluster::Delivery| {
                if let Some(inner) = weak.upgrade() {
                    relay::delivered(&Hub { inner }, from, d);
                }
            }));
        }
        // Notifications upstreams send outside calls (their GET streams).
        for u in hub.catalog().upstreams() {
            reload::wire_notifications(&hub, &u);
        }
        // A client session's end ends its `sessionSharing: "client"` upstream
        // sessions (DELETE upstream, off the request path).
        let weak = Arc::downgrade(&hub.inner);
        hub.sessions().set_on_end(Box::new(move |ids: &[String]| {
            let Some(inner) = weak.upgrade() else { return };
            if !inner.config.read().servers.iter().any(|s| s.session_sharing == crate::config::SessionSharing::Client) {
                return;
            }
            let (hub, ids) = (Hub { inner }, ids.to_vec());
            // Short-lived (one DELETE per upstream): counted, detached.
            let threads = hub.threads().clone();
            let _ = threads.spawn("end-client-sessions", crate::threads::Kind::Call, move || {
                for u in hub.catalog().upstreams() {
                    for id in &ids {
                        u.end_client_session(id);
                    }
                }
            });
        }));
        // A store that was unreachable and is back gets this process's sessions again
        // (upstream sessions, and client sessions whose write failed: docs/cluster.md §1).
        let weak = Arc::downgrade(&hub.inner);
        store.on_recovered(Box::new(move || {
            if let Some(inner) = weak.upgrade() {
                let written: usize = inner.catalog.upstreams().iter().map(|u| u.write_sessions_through()).sum();
                let clients = inner.sessions.write_through();
                log::info!("session store back: {written} upstream sessions and {clients} client sessions written through");
            }
        }));
        hub
    }

    /// The users (hub keys, service tokens, allowed servers); a reload that
    /// changes `users`, `groups` or `allowAnonymous` reconfigures it in place.
    pub fn users(&self) -> crate::users::Users {
        self.inner.users.read().clone()
    }

    /// Each user's recent `/mcp` requests and requests per day (the Activity
    /// page), recorded when a request with a user is answered.
    pub fn activity(&self) -> &crate::users::activity::Activity {
        &self.inner.activity
    }

    /// The upstream session store.
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.inner.store
    }

    /// The rate limits (global, per user, per server; `crate::limits`);
    /// rebuilt by a reload that changes them.
    pub fn limits(&self) -> Arc<crate::limits::RateLimits> {
        self.inner.limits.read().clone()
    }

    /// The owner of the hub's background threads: names, counts
    /// (`mcphub_threads{kind}`), and the join at shutdown
    /// ([`crate::threads::Threads::shutdown_join`], after the HTTP drain).
    pub fn threads(&self) -> &crate::threads::Threads {
        &self.inner.threads
    }

    /// The hub's Prometheus metrics (`/metrics`).
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.inner.metrics
    }

    /// The live figures `GET /metrics` renders ([`crate::metrics::Snapshot`]),
    /// read now from the catalog's upstreams, the rate limits, the
    /// authentication counters, the store and the client sessions.
    pub fn metrics_snapshot(&self) -> crate::metrics::Snapshot {
        use crate::metrics::{QueueFigures, Snapshot, UpstreamFigures};
        let upstreams = self.catalog().upstreams();
        let queue = |queue, b: &crate::limits::bulkhead::Snapshot| QueueFigures {
            queue,
            in_flight: b.in_flight,
            queued: b.queued,
            refused_queue_full: b.refused_queue_full,
            refused_circuit_open: b.refused_circuit_open,
        };
        let figures = upstreams
            .iter()
            .map(|u| {
                let state = u.state();
                let (created, reestablished) = u.session_counts();
                let mut queues = vec![queue("calls", &state.bulkhead)];
                queues.extend(state.heavy.as_ref().map(|h| queue("heavy", h)));
                UpstreamFigures {
                    name: u.name().to_string(),
                    sessions_active: u.sessions().len(),
                    sessions_created: created,
                    sessions_reestablished: reestablished,
                    processes: u.processes(),
                    queues,
                    circuit_open: state.bulkhead.circuit != "closed",
                }
            })
            .collect();
        let store = self.store();
        Snapshot {
            latencies: upstreams.iter().map(|u| u.latency().clone()).collect(),
            upstreams: figures,
            rate_limited: self.limits().refused().iter().map(|(scope, n)| (scope.as_str(), *n)).collect(),
            auth_failures: self.auth_failures().counts().to_vec(),
            store_kind: store.kind(),
            store_up: !matches!(store.health(), crate::store::Health::Degraded { .. }),
            client_sessions: self.sessions().len(),
            client_session_sweeps: Some(self.sessions().sweeps().clone()),
            client_session_store: {
                let c = self.sessions().store_counts();
                let n = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
                crate::metrics::ClientSessionStore { loaded: n(&c.loaded), written: n(&c.written), write_failures: n(&c.write_failures), restored: n(&c.restored) }
            },
            threads: self.threads().live().into_iter().map(|(kind, n)| (kind.as_str(), n)).collect(),
            activity_dropped: self.activity().dropped(),
            oauth_tokens_issued: self.oauth().issued_counts(),
            oauth_errors: self.oauth().error_counts(),
            cluster: self.cluster().map(|c| c.figures()),
        }
    }

    /// Failed authentications by source address: counts, log lines, throttle ([`auth::Failures`]).
    pub fn auth_failures(&self) -> &auth::Failures {
        &self.inner.auth_failures
    }

    /// The configuration served now (a reload swaps it; see [`reload`]).
    pub fn config(&self) -> Arc<Config> {
        self.inner.config.read().clone()
    }

    /// The catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }

    /// The client sessions.
    pub fn sessions(&self) -> &ClientSessions {
        &self.inner.sessions
    }

    /// Server→client requests waiting for client answers.
    pub fn pending(&self) -> &relay::PendingRequests {
        &self.inner.pending
    }

    /// Input rounds translated between the eras (answers awaited, parked calls).
    pub fn mrtr(&self) -> &mrtr::Mrtr {
        &self.inner.mrtr
    }

    /// Standalone GET streams of legacy clients.
    pub fn listeners(&self) -> &relay::Listeners {
        &self.inner.listeners
    }

    /// `subscriptions/listen` streams of modern clients.
    pub fn listen_streams(&self) -> &listen::ListenStreams {
        &self.inner.listen_streams
    }

    /// Resumable call streams of legacy clients.
    pub fn streams(&self) -> &resume::Streams {
        &self.inner.streams
    }

    /// Resource subscriptions of legacy clients.
    pub fn subscriptions(&self) -> &relay::Subscriptions {
        &self.inner.subscriptions
    }

    /// The users' pages' state ([`ui::Ui`]).
    pub fn ui(&self) -> &ui::Ui {
        &self.inner.ui
    }

    /// OAuth for MCP clients ([`oauth::Oauth`]).
    pub fn oauth(&self) -> &oauth::Oauth {
        &self.inner.oauth
    }

    /// The hub's one Redis connection, when configured (shared by sessions,
    /// users, rate limits and modern task records).
    pub fn redis(&self) -> Option<&crate::store::redis::RedisStore> {
        self.inner.redis.as_ref()
    }

    /// The cluster bus (issue 20): `None` without Redis (one instance).
    pub fn cluster(&self) -> Option<&crate::cluster::Cluster> {
        self.inner.cluster.as_ref()
    }

    /// Drops legacy client session `id`, its GET stream and its tasks here
    /// after it ended on another instance (`SessionEnded`, docs/cluster.md §2),
    /// without ending its upstream sessions again (the instance where it
    /// ended does). To become `ClientSessions::forget_local` (docs/cluster.md §1).
    pub fn forget_session_local(&self, id: &str) {
        self.sessions().forget_local(id);
        self.listeners().remove(id);
        self.tasks().forget_session(id);
    }

    /// Cross-instance coalescing of client-stream deliveries.
    pub fn coalesce(&self) -> &relay::Coalesce {
        &self.inner.coalesce
    }

    /// Queues `message` for legacy client session `session`'s standalone GET
    /// stream: here when it is open here, else (with the cluster bus) on the
    /// instance holding it (`stream_holder`, one Redis GET, then one
    /// PUBLISH). False when no stream took it.
    pub fn send_to_session(&self, session: &str, message: &serde_json::Value) -> bool {
        if self.listeners().send_one(session, message) {
            return true;
        }
        let Some(c) = self.cluster() else { return false };
        match c.stream_holder(session) {
            Some(holder) if holder != c.id() => {
                c.send(&holder, &crate::cluster::Delivery::ToSession { session: session.to_string(), message: message.clone() })
            }
            _ => false,
        }
    }

    /// Tasks created through the hub (hub task id → owning upstream and client).
    pub fn tasks(&self) -> &tasks::Tasks {
        &self.inner.tasks
    }

    /// Calls a legacy client may cancel.
    pub fn in_flight(&self) -> &relay::InFlight {
        &self.inner.in_flight
    }

    /// A progress token unique in this hub process (docs/decisions.md D5).
    pub fn next_progress_token(&self) -> String {
        format!("mcphub-{}", self.inner.next_progress.fetch_add(1, Ordering::Relaxed))
    }

    /// At shutdown: ends the hub's upstream sessions (DELETE), except those a
    /// shared store (Redis) keeps for the next start or other instances.
    pub fn close_upstream_sessions(&self) {
        let keep = self.store().kind() != "memory";
        for u in self.catalog().upstreams() {
            u.close_sessions(keep);
        }
    }

    /// Whether `Origin` is acceptable: absent, a localhost origin (any scheme
    /// and port), or listed in `allowedOrigins` (2026-07-28 streamable-http,
    /// Security: invalid Origin → 403).
    pub fn origin_allowed(&self, origin: Option<&str>) -> bool {
        let Some(origin) = origin else { return true };
        if self.config().allowed_origins.iter().any(|o| o == origin) {
            return true;
        }
        let Some(rest) = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) else {
            return false;
        };
        let host = if let Some(v6) = rest.strip_prefix('[') {
            v6.split(']').next().unwrap_or("")
        } else {
            rest.split(':').next().unwrap_or("")
        };
        matches!(host, "localhost" | "127.0.0.1" | "::1")
    }

    /// Each served server's state as `/readyz` and the admin pages show it,
    /// in the catalog's order.
    pub fn server_statuses(&self) -> Vec<ServerStatus> {
        self.catalog()
            .upstreams()
            .iter()
            .map(|u| ServerStatus {
                name: u.name().to_string(),
                state: u.state(),
                sessions: u.sessions().len(),
                max_concurrency: u.config.max_concurrency,
                processes: u.processes(),
            })
            .collect()
    }

    fn readyz(&self) -> Response {
        let servers: Map<String, Value> = self
            .server_statuses()
            .into_iter()
            .map(|ServerStatus { name, state: s, sessions, processes, .. }| {
                let mut status = json!({
                        "era": s.era,
                        "ok": s.ok,
                        "lastError": s.last_error.as_deref().map(crate::users::mask_keys),
                        "lastSuccess": s.last_success_ms.map(crate::logging::rfc3339),
                        "breaker": s.bulkhead.circuit,
                        "sessions": sessions,
                        "bulkhead": s.bulkhead,
                        "heavy": s.heavy,
                    });
                if let Some(p) = processes {
                    status["processes"] = json!(p);
                }
                (name, status)
            })
            .collect();
        let health = self.store().health();
        let status = if matches!(health, crate::store::Health::Degraded { .. }) { "degraded" } else { "ready" };
        let reachable = !matches!(health, crate::store::Health::Degraded { .. });
        let mut store = json!({"kind": self.store().kind(), "health": health, "reachable": reachable});
        // Users Redis lost while this instance ran (issue 14 hole 7).
        if let Some(lost) = self.users().lost() {
            store["usersLost"] = json!(lost);
        }
        let skipped: Vec<Value> = self.config().skipped.iter().map(|s| json!({"name": s.name, "reason": s.reason})).collect();
        let config = json!({"loaded": true, "servers": self.config().servers.len(), "skipped": skipped});
        let mut body = json!({"status": status, "config": config, "store": store, "clientSessions": self.sessions().len(), "servers": servers});
        if let Some(c) = self.cluster() {
            let f = c.figures();
            let peers: Vec<Value> = c.peers().into_iter().map(|(id, age)| json!({"instance": id, "ageMs": age})).collect();
            let total = |v: &[(&str, u64)]| v.iter().map(|(_, n)| n).sum::<u64>();
            body["cluster"] = json!({
                "instance": f.instance,
                "peers": peers,
                "deliveries": {"sent": total(&f.sent), "received": total(&f.received)},
                "subscribed": f.subscribed,
            });
        }
        Response::json(200, &body)
    }

    /// `/mcp` with its request id, log line and metrics: the request's
    /// context ([`crate::trace`]) is set on this worker (and again on the
    /// stream thread of an SSE answer) while it is served; the answer carries
    /// `X-Request-Id`. An SSE answer is logged and counted when its stream ends.
    fn observed(&self, req: Request) -> Response {
        let started = Instant::now();
        let mut info = crate::trace::from_headers(|n| req.header(n));
        info.method = crate::trace::sanitize(&req.method, 16); // until the JSON-RPC method is known
        let id = info.id.clone();
        let guard = crate::trace::enter(info);
        let mut resp = self.handle_mcp(req);
        let info = guard.finish().unwrap_or_default();
        resp.headers.push((crate::trace::REQUEST_ID_HEADER.into(), id));
        match resp.body {
            Body::Full(ref bytes) => {
                let error = if bytes.is_empty() { None } else { crate::metrics::peek_error(bytes) };
                self.answered(info, resp.status, error, started);
                resp
            }
            Body::Sse(producer) => {
                let (hub, status) = (self.clone(), resp.status);
                resp.body = Body::Sse(Box::new(move |sink: &mut crate::http::SseSink| {
                    let guard = crate::trace::enter(info);
                    producer(sink);
                    let info = guard.finish().unwrap_or_default();
                    hub.answered(info, status, None, started);
                }));
                resp
            }
        }
    }

    /// Counts an answered `/mcp` request, writes its info line and, when it
    /// has a user, records it in their activity ([`Hub::activity`]).
    fn answered(&self, info: crate::trace::RequestInfo, status: u16, error: Option<crate::metrics::PeekedError>, started: Instant) {
        let elapsed = started.elapsed();
        self.metrics().observe(&info.method, info.era, status, error.as_ref(), elapsed.as_secs_f64());
        let ms = elapsed.as_millis() as u64;
        let rpc_code = error.as_ref().map(|e| e.code);
        if log::log_enabled!(target: crate::logging::REQUEST_TARGET, log::Level::Info) {
            log_request(&info, status, rpc_code, ms);
        }
        if let Some(user) = &info.user {
            let entry = crate::users::activity::Entry {
                at_ms: crate::store::now_ms(),
                method: info.method,
                // A hub key pasted into a URI or name never reaches the page.
                name: info.name.map(|n| if n.contains("mcphub_") { crate::logging::mask_keys(&n) } else { n }),
                server: info.server,
                status,
                rpc_code,
                duration_ms: ms,
                error: error.and_then(|e| e.message).map(|m| crate::users::activity::error_text(&m)),
            };
            self.activity().record(user, entry);
        }
    }
    fn handle_mcp(&self, req: Request) -> Response {
        if !self.origin_allowed(req.header("Origin")) {
            return Refusal::ForbiddenOrigin.response(None);
        }
        if req.method != "POST" {
            // GET streams and DELETEs: the era their MCP-Protocol-Version names.
            let era = stream_era(&req);
            crate::trace::note(|i| i.era = era.as_str());
        }
        if let Some(wait) = self.auth_failures().throttled(req.peer.ip()) {
            return auth::throttled_response(wait);
        }
        let caller = match auth::authenticate(self, &req) {
            Ok(c) => c,
            Err(refusal) => {
                if matches!(refusal, auth::KeyRefusal::Unknown | auth::KeyRefusal::WrongScheme | auth::KeyRefusal::InvalidToken) {
                    self.auth_failures().record(req.peer.ip(), auth::FailureKind::HubKey);
                }
                return self.oauth_challenge(&req, refusal.response());
            }
        };
        if caller.limited() && req.method == "POST" && !request_methods(&req.body).iter().all(|m| caller.may_send(m)) {
            return self.oauth_challenge(&req, Refusal::InsufficientScope.response(None));
        }
        let user = caller.user;
        if let Some(u) = &user {
            crate::trace::note(|i| i.user = Some(u.name.clone()));
        }
        match req.method.as_str() {
            "POST" => self.post(req, user),
            "GET" => self.get(&req, user.as_deref()),
            "DELETE" => self.delete(&req, user.as_deref()),
            _ => Response::text(405, "use POST").with_header("Allow", "POST, GET, DELETE"),
        }
    }

    /// A 401/403 of `/mcp` with the OAuth challenge when OAuth is on: its
    /// `WWW-Authenticate` gains `resource_metadata` and `scope` (RFC 9728
    /// §5.1; MCP authorization "Protected Resource Metadata Discovery").
    fn oauth_challenge(&self, req: &Request, mut r: Response) -> Response {
        if !self.config().auth.oauth.enabled {
            return r;
        }
        for (k, v) in r.headers.iter_mut() {
            if k.eq_ignore_ascii_case("WWW-Authenticate") {
                let error = v.split("error=\"").nth(1).and_then(|e| e.split('"').next()).map(str::to_string);
                *v = oauth::www_authenticate(&ui::base_url(self, req), error.as_deref(), oauth::SCOPE_MCP);
            }
        }
        r
    }

    /// `GET /mcp` (legacy session): with `Last-Event-ID`, resumes one of the
    /// session's call streams (replays what followed that event, then
    /// continues live until the call's end); without it, the standalone
    /// server→client stream of notifications unrelated to any call.
    fn get(&self, req: &Request, user: Option<&crate::users::User>) -> Response {
        if stream_era(req) == Era::Modern {
            return Response::text(405, "2026-07-28 has no GET stream; use subscriptions/listen").with_header("Allow", "POST");
        }
        let session = match self.legacy_session(req.header(SESSION_HEADER), None, user) {
            Ok(s) => s,
            Err(rejection) => return rejection,
        };
        let Some(last) = req.header("Last-Event-ID") else {
            return self.standalone_stream(&session.id);
        };
        let Some((stream, mut seq)) = resume::parse_event_id(last) else {
            return Refusal::UnknownEventId.response(None);
        };
        let Some(log) = self.streams().find(&session.id, stream) else {
            // Not in this instance's memory: another instance's stream, from
            // Redis when configured (docs/cluster.md §4).
            return match self.streams().remote(&session.id, stream, seq) {
                Some(remote) => remote_resume(remote),
                None => Refusal::UnknownEventId.response(None),
            };
        };
        Response::sse(move |sink: &mut crate::http::SseSink| loop {
            let (events, ended) = log.after(seq, std::time::Duration::from_secs(1));
            for (event_seq, data) in &events {
                let id = log.event_id(*event_seq);
                if sink.send(&crate::http::SseEvent { id: Some(&id), data, ..Default::default() }).is_err() {
                    return;
                }
                seq = *event_seq;
            }
            if (ended && events.is_empty()) || sink.is_gone() {
                return;
            }
        })
    }

    /// The session's standalone stream: `list_changed` of any upstream and
    /// `resources/updated` of the URIs it subscribed to, until it leaves.
    fn standalone_stream(&self, session: &str) -> Response {
        let (token, rx) = self.listeners().open(session);
        // Other instances find this stream through its holder record (docs/cluster.md §2).
        if let Some(c) = self.cluster() {
            c.hold_stream(session);
        }
        let hub = self.clone();
        let session = session.to_string();
        Response::sse(move |sink: &mut crate::http::SseSink| {
            loop {
                match rx.recv_timeout(std::time::Duration::from_secs(1)) {
                    Ok(m) => {
                        if sink.send(&crate::http::SseEvent { data: &m.to_string(), ..Default::default() }).is_err() {
                            break;
                        }
                    }
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) if !sink.is_gone() => {}
                    Err(_) => break,
                }
            }
            if hub.listeners().close(&session, token) {
                if let Some(c) = hub.cluster() {
                    c.release_stream(&session);
                }
            }
        })
    }

    fn delete(&self, req: &Request, user: Option<&crate::users::User>) -> Response {
        if stream_era(req) == Era::Modern {
            return Response::text(405, "2026-07-28 has no sessions to delete").with_header("Allow", "POST");
        }
        match req.header(SESSION_HEADER) {
            None => Refusal::DeleteSessionIdMissing.response(None),
            Some(id) if self.sessions().get(id).is_some_and(|s| s.user.as_deref() == user.map(|u| u.name.as_str())) && self.sessions().remove(id) => {
                self.listeners().remove(id);
                self.tasks().forget_session(id);
                // Other instances drop their copy, its GET stream and tasks (docs/cluster.md §2).
                if let Some(c) = self.cluster() {
                    c.broadcast(&crate::cluster::Delivery::SessionEnded { session: id.to_string() });
                }
                Response::empty(200)
            }
            Some(_) => Refusal::DeleteSessionNotFound.response(None),
        }
    }

    /// A POST: one JSON-RPC message. Every answer to a request carries its id
    /// as the client sent it ([`shape::echo_id`]).
    fn post(&self, req: Request, user: Option<Arc<crate::users::User>>) -> Response {
        let started = Instant::now();
        match jsonrpc::parse(&req.body) {
            Ok(Incoming::Request { id, sent_as, method, params }) => {
                shape::echo_id(self.post_message(req, user, started, Some(id), method, params), sent_as)
            }
            Ok(Incoming::Notification { method, params }) => self.post_message(req, user, started, None, method, params),
            Ok(Incoming::Response { message, .. }) => self.client_answer(&req, &message, user.as_deref()),
            Err(r) => shape::echo_id(Refusal::Malformed(r.error).response(r.id.as_ref()), r.sent_as),
        }
    }

    /// A client's answer to a server→client request relayed on one of its
    /// calls' streams: back to that upstream session (202).
    ///
    /// With the cluster bus, an answer no local table claims whose id names
    /// another instance (`mcphub-r<instance>.<n>`, `mcphub-i<instance>.<n>`)
    /// goes to that instance ([`crate::cluster::Delivery::ClientAnswer`]),
    /// which claims it with the same session and user check
    /// ([`relay::claim_remote`]); so does one whose session this instance
    /// does not know (the owner, where the call runs, knows it).
    fn client_answer(&self, req: &Request, message: &Value, user: Option<&crate::users::User>) -> Response {
        crate::trace::note(|i| i.method = "response".into());
        let user_name = user.map(|u| u.name.clone());
        match self.legacy_session(req.header(SESSION_HEADER), None, user) {
            Ok(session) => {
                if !self.pending().answer(&session.id, message)
                    && !self.mrtr().answer(&session.id, message)
                    && !relay::answer_elsewhere(self, &session.id, user_name, message)
                {
                    log::debug!("a client answered a request the hub is not waiting for; ignored");
                }
                Response::empty(202)
            }
            Err(rejection) => match req.header(SESSION_HEADER) {
                Some(sid) if relay::answer_elsewhere(self, sid, user_name, message) => Response::empty(202),
                _ => rejection,
            },
        }
    }

    /// A request (`id` set) or a notification.
    fn post_message(
        &self,
        mut req: Request,
        user: Option<Arc<crate::users::User>>,
        started: Instant,
        id: Option<Value>,
        method: String,
        params: Map<String, Value>,
    ) -> Response {
        note_request(&method, &params);
        // Rate limits of the edge (user, then global): every request and
        // notification, never a client's answer (above).
        if let Err(limited) = self.limits().check_request(user.as_deref().map(|u| u.name.as_str())) {
            return methods::rate_limited(&limited, id.as_ref());
        }
        let era = era::classify(&method, &params, req.header(headers::PROTOCOL_VERSION));
        crate::trace::note(|i| i.era = era.as_str());
        let accepts_sse = req.header("Accept").is_some_and(|a| a.contains("text/event-stream"));
        let mut down = Downstream {
            era,
            session: None,
            client_info: None,
            capabilities: None,
            log_level: None,
            accepts_sse,
            deadline: started + self.config().hub_timeout,
            headers: std::mem::take(&mut req.headers),
            user,
        };
        match era {
            Era::Modern => {
                if let Err(resp) = self.admit_modern(id.as_ref(), &method, &params, &mut down) {
                    return resp;
                }
            }
            Era::Legacy if method != "initialize" => {
                if let Some(resp) = self.admit_legacy(id.as_ref(), &mut down) {
                    return resp;
                }
            }
            Era::Legacy => {}
        }
        let Some(id) = id else {
            if method == "notifications/cancelled" {
                if let (Some(session), Some(request_id)) = (&down.session, params.get("requestId")) {
                    let found = self.in_flight().cancel(&session.id, request_id);
                    log::debug!("notifications/cancelled for {request_id}: {}", if found { "cut" } else { "not in flight" });
                }
            }
            return Response::empty(202);
        };
        log::debug!("NEW REQUEST STARTED method={method} era={}", era.as_str());
        let resp = methods::dispatch(self, &down, id, &method, params);
        log::debug!("REQUEST COMPLETED method={method} in {} ms", started.elapsed().as_millis());
        resp
    }

    /// The live legacy session named by the `Mcp-Session-Id` value, or the
    /// rejection: 400 when absent, 404 when unknown or expired (2025-11-25
    /// transports, Session Management). An unsupported `MCP-Protocol-Version`
    /// never gets here: `era::classify` makes such a request modern (→ -32022).
    /// The legacy client session `sid`, if it exists and belongs to `user`
    /// (another user's session id is "not found": 404, never access).
    fn legacy_session(&self, sid: Option<&str>, id: Option<&Value>, user: Option<&crate::users::User>) -> Result<Arc<ClientSession>, Response> {
        let Some(sid) = sid else {
            return Err(Refusal::SessionIdMissing.response(id));
        };
        let session = self.sessions().get(sid).filter(|s| s.user.as_deref() == user.map(|u| u.name.as_str()));
        session.ok_or_else(|| Refusal::SessionNotFound.response(id))
    }

    fn admit_legacy(&self, id: Option<&Value>, down: &mut Downstream) -> Option<Response> {
        let session = match self.legacy_session(down.header(SESSION_HEADER), id, down.user.as_deref()) {
            Ok(s) => s,
            Err(rejection) => return Some(rejection),
        };
        down.client_info = Some(session.client_info.clone());
        down.capabilities = Some(session.capabilities.clone());
        down.session = Some(session);
        None
    }

    fn admit_modern(
        &self,
        id: Option<&Value>,
        method: &str,
        params: &Map<String, Value>,
        down: &mut Downstream,
    ) -> Result<(), Response> {
        let meta = params.get("_meta");
        let unsupported = |v: &str| Err(Refusal::UnsupportedVersion { requested: v.to_string() }.response(id));
        // Only a header naming an unknown version: nothing to compare, -32022.
        if era::meta_version(params).is_none() {
            if let Some(v) = down.header(headers::PROTOCOL_VERSION).filter(|v| *v != MODERN_VERSION) {
                return unsupported(v);
            }
        }
        // A request whose header names 2026-07-28 must carry its per-request
        // _meta (400 + -32602, SEP-2575) before headers and body are compared.
        if down.header(headers::PROTOCOL_VERSION) == Some(MODERN_VERSION) {
            if let Err(why) = era::check_request_meta(params) {
                return Err(Refusal::MissingRequestMeta(why).response(id));
            }
        }
        // Headers must agree with the body first (-32020), then the version
        // must be one the hub speaks (-32022); server/discover included.
        if let Err(err) = headers::validate_standard(|n| down.header(n), method, params) {
            return Err(Refusal::HeaderMismatch(err).response(id));
        }
        if let Some(v) = era::meta_version(params).filter(|v| *v != MODERN_VERSION) {
            return unsupported(v);
        }
        down.client_info = meta.and_then(|m| m.get(protocol::META_CLIENT_INFO)).cloned();
        down.capabilities = meta.and_then(|m| m.get(protocol::META_CLIENT_CAPABILITIES)).cloned();
        down.log_level = meta.and_then(|m| m.get(protocol::META_LOG_LEVEL)).and_then(Value::as_str).map(str::to_string);
        Ok(())
    }
}

/// The SSE answer of a resume read from Redis ([`resume::Remote`]): the
/// events after the client's last one, then each new one, until the call's
/// end entry, the client leaving (checked at least every second) or the
/// stream's key expiring.
fn remote_resume(mut remote: resume::Remote) -> Response {
    Response::sse(move |sink: &mut crate::http::SseSink| loop {
        let read = remote.read();
        for (seq, data) in &read.events {
            let id = remote.event_id(*seq);
            if sink.send(&crate::http::SseEvent { id: Some(&id), data, ..Default::default() }).is_err() {
                return;
            }
        }
        if read.ended || read.gone || sink.is_gone() {
            return;
        }
    })
}

/// Writes the info line of an answered `/mcp` request
/// ([`crate::logging::REQUEST_TARGET`]).
fn log_request(info: &crate::trace::RequestInfo, status: u16, rpc_code: Option<i64>, ms: u64) {
    let name_key = match info.method.as_str() {
        "prompts/get" => "prompt",
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => "uri",
        _ => "tool",
    };
    let (tool, prompt, uri) = match name_key {
        "prompt" => (None, info.name.as_deref(), None),
        "uri" => (None, None, info.name.as_deref()),
        _ => (info.name.as_deref(), None, None),
    };
    // One buffer for the whole line (this runs once per request).
    use std::fmt::Write as _;
    let mut text = String::with_capacity(160);
    let _ = write!(text, "request {} {}", info.id, crate::trace::field(&info.method));
    if let Some(n) = &info.name {
        let _ = write!(text, " {name_key}={}", crate::trace::field(n));
    }
    let _ = write!(
        text,
        " server={} user={} status={status}",
        info.server.as_deref().unwrap_or("-"),
        info.user.as_deref().unwrap_or("-")
    );
    if let Some(c) = rpc_code {
        let _ = write!(text, " rpc={c}");
    }
    let _ = write!(text, " {ms}ms era={}", info.era);
    log::info!(
        target: crate::logging::REQUEST_TARGET,
        request_id = info.id.as_str(),
        method = info.method.as_str(),
        tool = tool,
        prompt = prompt,
        uri = uri,
        server = info.server.as_deref(),
        user = info.user.as_deref(),
        status = status,
        rpc_code = rpc_code,
        duration_ms = ms,
        era = info.era;
        "{text}"
    );
}

/// The era of a GET (stream) or DELETE on `/mcp`: modern when its
/// `MCP-Protocol-Version` names a version that is not a legacy one, legacy
/// otherwise (no header included).
fn stream_era(req: &Request) -> Era {
    match req.header(headers::PROTOCOL_VERSION) {
        Some(v) if !era::is_legacy_version(v) => Era::Modern,
        _ => Era::Legacy,
    }
}

/// Records the JSON-RPC method, the name it acts on (tool, prompt or
/// resource URI, sanitized for a log line) and a trace context carried in
/// `_meta` (SEP-414 keys; the headers win) in the request's context.
fn note_request(method: &str, params: &Map<String, Value>) {
    let name = match method {
        "tools/call" | "prompts/get" => params.get("name"),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => params.get("uri"),
        _ => None,
    };
    let meta = params.get("_meta").and_then(Value::as_object);
    let meta_str = |k: &str| meta.and_then(|m| m.get(k)).and_then(Value::as_str);
    crate::trace::note(|i| {
        i.method = crate::trace::sanitize(method, 64);
        // A URI's query and fragment may carry credentials: never logged.
        let name = name.and_then(Value::as_str).map(|n| if n.contains("://") { n.split(['?', '#']).next().unwrap_or(n) } else { n });
        i.name = name.map(|n| crate::trace::sanitize(n, 128));
        if i.traceparent.is_none() {
            if let Some(tp) = meta_str(crate::trace::META_TRACEPARENT).filter(|v| crate::trace::valid_traceparent(v)) {
                i.traceparent = Some(tp.to_string());
                i.tracestate = meta_str(crate::trace::META_TRACESTATE).filter(|v| crate::trace::valid_tracestate(v)).map(str::to_string);
            }
        }
    });
}

impl Handler for Hub {
    fn attach(&self, stats: Arc<crate::http::ServerStats>) {
        self.metrics().attach_http(stats);
    }

    fn threads(&self) -> Option<crate::threads::Threads> {
        Some(self.inner.threads.clone())
    }

    fn handle(&self, req: Request) -> Response {
        match (req.method.as_str(), req.path()) {
            (_, "/mcp") | (_, "/mcp/") => self.observed(req),
            ("GET", "/healthz") => Response::json(200, &json!({"status": "ok"})),
            ("GET", "/readyz") => self.readyz(),
            ("GET", "/metrics") => {
                let mut r = Response::text(200, &self.metrics().render(&self.metrics_snapshot()));
                r.headers = vec![("Content-Type".into(), "text/plain; version=0.0.4; charset=utf-8".into())];
                r
            }
            (_, p) if p.starts_with(admin::PREFIX) => admin::handle(self, &req),
            (_, p) if p == me::PATH || p.starts_with(me::PREFIX) => me::handle(self, &req),
            (_, p) if p == ui::PREFIX || p.starts_with("/ui/") || p == ui::consent::PATH => ui::handle(self, &req),
            (_, p) if oauth::owns(p) => oauth::handle(self, &req),
            ("GET", "/") => Response::text(200, "MCPHub: the MCP endpoint is /mcp; your pages are at /ui/\n"),
            _ => Response::text(404, "not found; the MCP endpoint is /mcp\n"),
        }
    }
}

/// The `method` of each JSON-RPC request in a POST body (one message or
/// a batch); empty when the body is not JSON (the parse refuses it later).
fn request_methods(body: &[u8]) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Message {
        method: Option<String>,
    }
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Body {
        One(Message),
        Batch(Vec<Message>),
    }
    match serde_json::from_slice::<Body>(body) {
        Ok(Body::One(m)) => m.method.into_iter().collect(),
        Ok(Body::Batch(ms)) => ms.into_iter().filter_map(|m| m.method).collect(),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_methods_of_a_body_are_read_from_one_message_or_a_batch() {
        assert_eq!(request_methods(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#), ["tools/call"]);
        assert_eq!(request_methods(br#"[{"method":"ping"},{"result":{}},{"method":"tools/call"}]"#), ["ping", "tools/call"]);
        assert!(request_methods(b"{not json").is_empty());
    }

    fn get(version: Option<&str>) -> Request {
        Request {
            method: "GET".into(),
            target: "/mcp".into(),
            headers: version.map(|v| ("mcp-protocol-version".to_string(), v.to_string())).into_iter().collect(),
            body: Vec::new(),
            peer: "127.0.0.1:1".parse().unwrap(),
        }
    }

    #[test]
    fn a_stream_or_delete_is_modern_only_when_its_version_header_names_a_modern_version() {
        assert_eq!(stream_era(&get(None)), Era::Legacy);
        assert_eq!(stream_era(&get(Some("2025-11-25"))), Era::Legacy);
        assert_eq!(stream_era(&get(Some("2025-06-18"))), Era::Legacy);
        assert_eq!(stream_era(&get(Some(MODERN_VERSION))), Era::Modern);
        assert_eq!(stream_era(&get(Some("2099-01-01"))), Era::Modern, "an unknown version is not a legacy one");
    }
}
