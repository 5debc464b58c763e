//! Heavy tools as hub-run tasks (issue 6 "Heavy jobs"; docs/decisions.md D7, the
//! async model accept → progress → completion; 2025-11-25 tasks and the
//! 2026-07-28 extension `io.modelcontextprotocol/tasks`, SEP-2663).
//!
//! A client that asks for a task when calling one of a server's
//! `heavyTools` — a legacy client's task-augmented `tools/call`
//! (`params.task`), or a modern client declaring the extension in its
//! request's client capabilities — gets a `CreateTaskResult` at once
//! (2025-11-25: `{task: {taskId: "mcphub-t…", status: "working", createdAt,
//! lastUpdatedAt, ttl, pollInterval}}`; SEP-2663: the same task flat, with
//! `resultType: "task"`, `ttlMs`, `pollIntervalMs`); the hub runs the call
//! itself, on a thread of its own, without a task upstream (whether or not
//! the upstream has tasks) and without client capabilities (nobody is there
//! to answer sampling or input requests). The run first waits its turn in
//! the hub's task queue of that server (`heavyConcurrency` running,
//! `heavyQueue` waiting; full → HTTP 503 + `Retry-After`, no task created),
//! then calls the upstream, whose own heavy slot
//! ([`crate::limits::bulkhead`]) still bounds every heavy call of the
//! server, tasks and plain calls together. The run's deadline is the task's
//! own, `min(ttl, 1 h)` ([`MAX_RUN`]), not the client's request: the client
//! may go away and the task goes on. Each upstream call is still bounded by
//! the server's `timeoutMs`.
//!
//! **Legacy clients.** The owning session (only it; any other gets -32602)
//! asks with `tasks/get` (the `Task`), `tasks/result` (blocks until the task
//! ends, within the request's deadline, then exactly what the call answered:
//! the `CallToolResult` with the related-task `_meta`, or its JSON-RPC
//! error; the deadline passing first → -32001 "Request timed out", layer
//! hub, and the client asks again), `tasks/cancel` (a waiting run leaves the
//! queue at once and never reaches the upstream; a running one has its
//! upstream connection cut and a legacy upstream gets
//! `notifications/cancelled`; a task already ended → -32602) and `tasks/list`
//! (its hub-run tasks head the first page). Status changes after creation
//! go to the session's GET stream as `notifications/tasks/status`.
//! Statuses: `working` → `completed` (a result), `failed` (a JSON-RPC error,
//! a result with `isError: true`, a timeout), `cancelled`.
//!
//! **Modern clients.** The task belongs to the user whose hub key created it
//! (another user's key, or none for a keyed task → -32602, as for an
//! unknown id; issue 14 hole 3): `tasks/get`
//! answers the `DetailedTask` (`result` inlined when `completed` — a tool
//! error completes with `isError`, SEP-2663 —, `error` when `failed`),
//! `tasks/update` the empty ack (a hub task never asks for input),
//! `tasks/cancel` the empty ack (also for an ended task). With Redis the
//! task is mirrored there ([`super::shared`]) so any instance answers.
//!
//! **Caps.** A run takes a task slot ([`super::Tasks::reserve`]: the user's
//! `maxTasksPerUser`, the legacy session's [`super::MAX_TASKS_PER_SESSION`],
//! the hub's `maxTasks`, counted with the upstream-run tasks) before it is
//! queued; at a cap the call is refused ([`super::TaskLimit`], -32000) and
//! nothing is queued or sent. A run holds its slot while it is kept (its
//! ttl), ended or not.
//!
//! With Redis, runs of both eras are mirrored there ([`super::shared`]):
//! another instance answers their `tasks/get`, `tasks/cancel` and (legacy)
//! `tasks/result` for the same owner (user, and the legacy session by its
//! digest), and a run whose instance stopped reads as `failed` within
//! [`super::shared::BEAT_TTL`]. Entries live for the task's `ttl` (capped at [`super::MAX_TTL`],
//! [`super::DEFAULT_TTL`] when the client gave none), and legacy ones go
//! with their session (DELETE cancels the run).

use crate::hub::shape;
use super::{Held, Owner, DEFAULT_TTL, MAX_TTL, RELATED_TASK};
use crate::hub::refusal::{self, Refusal};
use crate::hub::{Downstream, Hub};
use crate::http::Response;
use crate::protocol::{codes, jsonrpc, Era, ErrorObject};
use crate::upstream::cancel::CallHandle;
use crate::upstream::{Upstream, UpstreamError};
use parking_lot::{Condvar, Mutex};
use serde_json::{json, Map, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// The longest a hub-run task may take, queue wait included.
pub const MAX_RUN: Duration = Duration::from_secs(3600);
/// The `pollInterval` (ms) suggested to clients.
pub const POLL_INTERVAL_MS: u64 = 500;

struct Run {
    owner: Owner,
    /// The era of the client that created it: the wire form of its task.
    era: Era,
    server: String,
    created_at: String,
    updated_at: String,
    ttl_ms: u64,
    expires: Instant,
    status: &'static str,
    message: Option<String>,
    /// The final answer: a result object, or a JSON-RPC error object.
    outcome: Option<Result<Value, Value>>,
    handle: Arc<CallHandle>,
}

impl Run {
    fn terminal(&self) -> bool {
        matches!(self.status, "completed" | "failed" | "cancelled")
    }

    /// The `Task` object of the creator's era: 2025-11-25 (`ttl`,
    /// `pollInterval`) or SEP-2663 (`ttlMs`, `pollIntervalMs`).
    fn task(&self, id: &str) -> Value {
        let mut t = json!({"taskId": id, "status": self.status, "createdAt": self.created_at, "lastUpdatedAt": self.updated_at});
        let (ttl, poll) = if self.era == Era::Modern { ("ttlMs", "pollIntervalMs") } else { ("ttl", "pollInterval") };
        t[ttl] = json!(self.ttl_ms);
        t[poll] = json!(POLL_INTERVAL_MS);
        if let Some(m) = &self.message {
            t["statusMessage"] = json!(m);
        }
        t
    }

    /// The SEP-2663 `DetailedTask` (`tasks/get` of a modern client): the
    /// task with its `result` (completed) or JSON-RPC `error` (failed,
    /// cancelled) inlined.
    fn detailed(&self, id: &str) -> Value {
        let mut t = self.task(id);
        match &self.outcome {
            Some(Ok(r)) => t["result"] = r.clone(),
            Some(Err(e)) if self.status == "failed" => t["error"] = e.clone(),
            _ => {}
        }
        t
    }

    /// Whether a downstream request may use this task: its owner's (the
    /// creating user, and for a legacy task the creating session).
    fn usable_by(&self, down: &Downstream) -> bool {
        self.owner == Owner::of(down)
    }
}

#[derive(Default)]
struct Gate {
    running: usize,
    queue: VecDeque<String>,
}

#[derive(Default)]
struct State {
    runs: HashMap<String, Run>,
    gates: HashMap<String, Gate>,
}

impl State {
    fn prune(&mut self, now: Instant) {
        self.runs.retain(|_, r| r.expires > now || !r.terminal());
    }
}

/// The hub-run tasks and each server's task queue.
#[derive(Default)]
pub struct Runs {
    state: Mutex<State>,
    changed: Condvar,
    /// Whether [`super::shared::watch`]'s thread runs.
    watching: AtomicBool,
}

/// RFC 3339 UTC timestamp (`2025-11-25T10:30:00Z`, whole seconds) of now.
pub(super) fn now_iso() -> String {
    crate::logging::rfc3339_seconds(SystemTime::now())
}

/// Whether this `tools/call` becomes a hub-run task (pure over its inputs):
/// `original` is one of the server's `heavyTools` and the client asked for a
/// task — a legacy client with a session sent `params.task` (an object,
/// 2025-11-25 Task-augmented requests), or a modern client declared the
/// extension in its request's client capabilities (SEP-2663: the server
/// decides whether a call of a task-capable tool becomes a task).
pub fn wanted(config: &crate::config::Config, down: &Downstream, server: &str, original: &str, params: &Map<String, Value>) -> bool {
    let asked = match down.era {
        Era::Legacy => down.session.is_some() && params.get("task").is_some_and(Value::is_object),
        Era::Modern => declares_extension(down),
    };
    asked && config.servers.iter().any(|s| s.name == server && s.heavy_tools.matches(original))
}

/// Whether a modern client's request capabilities carry the tasks extension.
pub fn declares_extension(down: &Downstream) -> bool {
    down.capabilities.as_ref().and_then(|c| crate::protocol::jsonrpc::at(c, &["extensions"])).and_then(|e| e.get(super::EXTENSION)).is_some()
}

/// The tasks capability entries the hub-run tasks add for legacy clients:
/// `list`, `cancel`, `requests.tools.call`, when a server has `heavyTools`
/// (modern clients are offered the extension then).
pub fn capability(config: &crate::config::Config) -> Option<Value> {
    config
        .servers
        .iter()
        .any(|s| !s.heavy_tools.0.is_empty())
        .then(|| json!({"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}))
}

fn status_note(id: &str, run: &Run) -> Value {
    jsonrpc::notification("notifications/tasks/status", run.task(id))
}

fn notify(listeners: &crate::hub::relay::Listeners, id: &str, run: &Run) {
    if let Some(s) = &run.owner.session {
        listeners.send_to(std::slice::from_ref(s), &status_note(id, run));
    }
}

/// Starts a hub-run task for a task-augmented heavy `tools/call` (see the
/// module doc); `params` carry the server's own tool name. Answers the
/// `CreateTaskResult`, or: a rate limit (429), the user at
/// `maxTasksPerUser`, the session at its share or the hub at `maxTasks`
/// ([`super::TaskLimit`], -32000), the server's task queue full (503 +
/// `Retry-After`).
pub fn start(
    hub: &Hub,
    down: &Downstream,
    id: Value,
    upstream: Arc<Upstream>,
    mut params: Map<String, Value>,
    extra_headers: Vec<(String, String)>,
) -> Response {
    if let Err(limited) = hub.limits().check_server(upstream.name()) {
        return crate::hub::refusal::Refusal::RateLimited(limited).response(Some(&id));
    }
    let server = upstream.name().to_string();
    let config = hub.config();
    let Some(cfg) = config.servers.iter().find(|s| s.name == server) else {
        return Refusal::InvalidParams("Unknown server".into()).response(Some(&id));
    };
    let (concurrency, queue_len) = (cfg.heavy_concurrency.max(1), cfg.heavy_queue);
    let requested = params.remove("task").and_then(|t| t.get("ttl").and_then(Value::as_u64));
    let ttl = requested.map_or(DEFAULT_TTL, Duration::from_millis).min(MAX_TTL);
    if let Some(Value::Object(meta)) = params.get_mut("_meta") {
        meta.remove("progressToken"); // nobody listens to the run's progress
    }
    let owner = Owner::of(down);
    // The slot first, before the run is queued (issue 14, hole 5); held
    // until the run is entered below, which then counts instead.
    let slot = match hub.tasks().reserve(&owner, config.max_tasks_per_user, config.max_tasks) {
        Ok(slot) => slot,
        Err(limit) => return Refusal::TaskLimit(limit).response(Some(&id)),
    };
    let now = Instant::now();
    let stamp = now_iso();
    let handle = Arc::new(CallHandle::default());
    let run = Run {
        owner: owner.clone(),
        era: down.era,
        server: server.clone(),
        created_at: stamp.clone(),
        updated_at: stamp,
        ttl_ms: ttl.as_millis() as u64,
        expires: now + ttl,
        status: "working",
        message: Some("Waiting for a heavy-job slot".into()),
        outcome: None,
        handle: handle.clone(),
    };
    let hub_id = super::new_hub_id();
    let created = match hub.tasks().runs().enqueue(&hub_id, run, queue_len, now) {
        Ok(created) => created,
        Err(err) => {
            log::warn!("{err}");
            return Refusal::Upstream(err).response(Some(&id));
        }
    };
    drop(slot);
    let (created, mirror) = created;
    if let Some(m) = mirror {
        m.publish(hub.redis()); // before the run starts: nothing can have cancelled it elsewhere
    }
    if let (Era::Legacy, Some(redis)) = (down.era, hub.redis()) {
        super::shared::index_legacy(redis, &hub_id, &owner, ttl);
    }
    let mut ctx = down.call_context();
    ctx.deadline = now + ttl.min(MAX_RUN);
    ctx.call = Some(handle);
    // Nobody is there to answer the upstream's questions (sampling,
    // elicitation, input requests), and the run is no task upstream.
    ctx.client_capabilities = None;
    let era = down.era;
    let (h, tid) = (hub.clone(), hub_id.clone());
    // One run, bounded by its deadline (ttl, at most MAX_RUN): counted, detached.
    let spawned = hub.threads().spawn("hub-task", crate::threads::Kind::Task, move || run_task(&h, &tid, &upstream, params, &ctx, &extra_headers, concurrency));
    if let Err(e) = spawned {
        hub.tasks().runs().withdraw(&hub_id, &server);
        log::warn!("hub task for '{server}' not started: {e}");
        return Refusal::TaskNotStarted.response(Some(&id));
    }
    log::info!("hub task {hub_id} created for a heavy tool of '{server}' ({} client)", era.as_str());
    super::shared::watch(hub);
    let result = match era {
        Era::Legacy => json!({"task": created}),
        Era::Modern => {
            let mut flat = created; // SEP-2663 CreateTaskResult: the task, flat
            flat["resultType"] = json!("task");
            flat
        }
    };
    Response::json(200, &jsonrpc::result_response(&id, result))
}

/// A run's state to mirror in the shared store (Redis), so another
/// instance can answer `tasks/get`, `tasks/cancel` and (legacy)
/// `tasks/result` ([`super::shared`]); taken under the runs' lock, written
/// after it is released (a slow Redis never holds every task request).
/// Record: `{"task": …, "user": name|null}` — modern: the `DetailedTask`;
/// legacy: the 2025-11-25 `Task`, plus `"session"` (the owning session's
/// SHA-256 hex, never the raw id) and `"outcome"` (`{"result": …}` or
/// `{"error": …}`) once it ended.
pub(super) struct Mirror {
    id: String,
    record: Value,
    cancelling: bool,
    live: bool,
    expires: Instant,
}

impl Mirror {
    fn of(id: &str, run: &Run) -> Option<Mirror> {
        let record = match run.era {
            Era::Modern => json!({"task": run.detailed(id), "user": run.owner.user}),
            Era::Legacy => {
                let mut r = json!({"task": run.task(id), "user": run.owner.user, "session": run.owner.session.as_deref().map(super::shared::digest), "server": run.server});
                match &run.outcome {
                    Some(Ok(result)) => r["outcome"] = json!({"result": result}),
                    Some(Err(error)) => r["outcome"] = json!({"error": error}),
                    None => {}
                }
                r
            }
        };
        Some(Mirror { id: id.to_string(), record, cancelling: run.status == "cancelled", live: !run.terminal(), expires: run.expires })
    }

    /// Writes it (without Redis: nothing to do); `false` when the stored
    /// record says another instance cancelled the task meanwhile.
    fn publish(&self, redis: Option<&crate::store::redis::RedisStore>) -> bool {
        redis.is_none_or(|redis| super::shared::put_record(redis, &self.id, &self.record, self.cancelling, self.live, self.expires))
    }
}

/// Ends task `id` with `outcome` (unless cancelled meanwhile) and tells its owner.
fn settle(hub: &Hub, id: &str, status: &'static str, message: Option<String>, outcome: Result<Value, Value>) {
    let runs = hub.tasks().runs();
    let mirror = runs.settle(id, status, message, outcome, |run| notify(hub.listeners(), id, run));
    if mirror.is_some_and(|m| !m.publish(hub.redis())) {
        runs.cancelled_elsewhere(id, None); // cancelled through another instance meanwhile: that stands
    }
}

/// Marks a run cancelled and cuts its upstream call.
fn mark_cancelled(run: &mut Run) {
    run.status = "cancelled";
    run.message = Some("The task was cancelled by request.".into());
    run.updated_at = now_iso();
    run.outcome = Some(Err(json!({"code": codes::SERVER_ERROR, "message": "Task cancelled"})));
    run.handle.cut();
}

fn run_task(
    hub: &Hub,
    id: &str,
    upstream: &Upstream,
    params: Map<String, Value>,
    ctx: &crate::upstream::CallContext,
    extra_headers: &[(String, String)],
    concurrency: usize,
) {
    let runs = hub.tasks().runs();
    let era = runs.era_of(id);
    let server = upstream.name().to_string();
    // Wait for a turn in the server's task queue (first come, first served).
    let running = match runs.wait_turn(id, &server, concurrency, ctx.deadline) {
        Turn::Gone => return, // cancelled (or its session ended) while waiting
        Turn::TimedOut => {
            let err = UpstreamError::HubTimeout { server: server.clone(), timeout_ms: MAX_RUN.as_millis() as u64 };
            let obj = refusal::upstream_error(&err).to_response(None).get("error").cloned().unwrap_or(Value::Null);
            return settle(hub, id, "failed", Some("Timed out waiting for a heavy-job slot".into()), Err(obj));
        }
        Turn::Running(mirror) => mirror,
    };
    if running.is_some_and(|m| !m.publish(hub.redis())) {
        // Cancelled through another instance before it ran: give the slot back.
        runs.cancelled_elsewhere(id, Some(&server));
        return;
    }
    let reply = upstream.request("tools/call", params, ctx, extra_headers, &mut |_| {});
    runs.release(&server);
    let handle = ctx.call.clone();
    if let Some(h) = &handle {
        h.finish();
        if h.is_cut() {
            upstream.notify_cancelled(h, "cancelled");
            return; // the task is cancelled already
        }
    }
    if let Err(e) = &reply {
        upstream.timed_out(handle.as_ref(), e);
    }
    let msg = crate::hub::relay::finish(Era::Legacy, &Value::Null, reply);
    match (msg.get("result"), msg.get("error")) {
        (Some(r), _) => {
            // 2025-11-25: a tool error fails the task; SEP-2663: it completes
            // with `isError` (`failed` is for JSON-RPC errors).
            let failed = era == Era::Legacy && r.get("isError").and_then(Value::as_bool) == Some(true);
            let (status, note) = if failed { ("failed", "The tool reported an error") } else { ("completed", "Completed") };
            settle(hub, id, status, Some(note.into()), Ok(r.clone()));
        }
        (None, Some(e)) => settle(hub, id, "failed", Some("The call failed".into()), Err(e.clone())),
        (None, None) => {
            let obj = json!({"code": codes::INTERNAL_ERROR, "message": "the upstream answered neither a result nor an error"});
            settle(hub, id, "failed", Some("The call failed".into()), Err(obj));
        }
    }
}

fn reply(id: &Value, outcome: Result<Value, ErrorObject>) -> Response {
    match outcome {
        Ok(result) => Response::json(200, &jsonrpc::result_response(id, result)),
        Err(e) => Response::json(200, &e.to_response(Some(id))),
    }
}

/// Answers `tasks/get|result|cancel` (legacy) or `tasks/get|update|cancel`
/// (modern) for a hub-run task; `None` when `task_id` is not one (it may be
/// an upstream's task, or another instance's: see [`super::shared`]). A
/// task the caller may not use is -32602 like an unknown one.
pub fn handle(hub: &Hub, down: &Downstream, id: &Value, method: &str, task_id: &str) -> Option<Response> {
    let hub_timeout = || hub.config().hub_timeout;
    match hub.tasks().runs().answer(down, id, method, task_id, hub.listeners(), hub_timeout) {
        Answer::NotHere => None,
        Answer::Cancelled(response, mirror) => {
            if let Some(m) = mirror {
                m.publish(hub.redis()); // a cancellation is always written
            }
            log::info!("hub task {task_id} cancelled by its client");
            Some(response)
        }
        Answer::Done(response) => response,
    }
}

/// What [`Runs::answer`] made of a task request.
enum Answer {
    /// No hub-run task `task_id` here (it may be an upstream's, or another instance's).
    NotHere,
    /// Cancelled now: the answer, and the state to mirror (modern runs).
    Cancelled(Response, Option<Mirror>),
    /// The answer (`None`: a method a hub-run task does not answer).
    Done(Option<Response>),
}

/// How a run's wait for its turn in its server's task queue ended ([`Runs::wait_turn`]).
enum Turn {
    /// Cancelled, or its session ended, while it waited: nothing to run.
    Gone,
    /// The deadline passed in the queue (out of the queue now).
    TimedOut,
    /// It holds one of the server's heavy slots now (its state to mirror, modern runs).
    Running(Option<Mirror>),
}

impl Runs {
    /// Answers task request `method` for hub-run task `task_id` here (see
    /// [`handle`]): the owner is told of a cancellation on `listeners`;
    /// `hub_timeout` is what a `tasks/result` that timed out names.
    fn answer(
        &self,
        down: &Downstream,
        id: &Value,
        method: &str,
        task_id: &str,
        listeners: &crate::hub::relay::Listeners,
        hub_timeout: impl Fn() -> Duration,
    ) -> Answer {
        let runs = self;
        let mut st = runs.state.lock();
        let now = Instant::now();
        let Some(run) = st.runs.get_mut(task_id).filter(|r| r.expires > now || !r.terminal()) else {
            return Answer::NotHere;
        };
        if !run.usable_by(down) {
            return Answer::Done(Some(reply(id, Err(super::not_found()))));
        }
        Answer::Done(match (method, down.era) {
            ("tasks/get", Era::Legacy) => Some(reply(id, Ok(run.task(task_id)))),
            ("tasks/get", Era::Modern) => Some(reply(id, Ok(shape::result(Era::Modern, run.detailed(task_id))))),
            // SEP-2663 Task Update Requests: answers to keys not outstanding are
            // ignored; a hub-run task never asks for input.
            ("tasks/update", Era::Modern) => Some(reply(id, Ok(shape::result(Era::Modern, json!({}))))),
            ("tasks/cancel", era) => {
                if run.terminal() {
                    // 2025-11-25: -32602 for a terminal task; SEP-2663: the same empty ack.
                    if era == Era::Modern {
                        return Answer::Done(Some(reply(id, Ok(shape::result(Era::Modern, json!({}))))));
                    }
                    return Answer::Done(Some(reply(id, Err(Refusal::TaskTerminal { status: run.status.to_string() }.error()))));
                }
                mark_cancelled(run);
                notify(listeners, task_id, run);
                let task = run.task(task_id);
                let mirror = Mirror::of(task_id, run);
                runs.changed.notify_all();
                drop(st);
                let response = reply(id, Ok(if era == Era::Modern { shape::result(Era::Modern, json!({})) } else { task }));
                return Answer::Cancelled(response, mirror);
            }
            ("tasks/result", Era::Legacy) => loop {
                let Some(run) = st.runs.get(task_id) else { return Answer::Done(Some(reply(id, Err(super::not_found())))) };
                if let Some(outcome) = &run.outcome {
                    let msg = match outcome {
                        Ok(r) => {
                            let mut r = r.clone();
                            if let Some(o) = r.as_object_mut() {
                                let meta = o.entry("_meta").or_insert_with(|| json!({}));
                                if let Some(m) = meta.as_object_mut() {
                                    m.insert(RELATED_TASK.into(), json!({"taskId": task_id}));
                                }
                            }
                            jsonrpc::result_response(id, r)
                        }
                        Err(e) => json!({"jsonrpc": "2.0", "id": id, "error": e}),
                    };
                    return Answer::Done(Some(Response::json(200, &msg)));
                }
                if Instant::now() >= down.deadline {
                    let ms = hub_timeout().as_millis() as u64;
                    let err = UpstreamError::HubTimeout { server: run.server.clone(), timeout_ms: ms };
                    return Answer::Done(Some(reply(id, Err(refusal::upstream_error(&err)))));
                }
                runs.changed.wait_until(&mut st, down.deadline);
            },
            _ => None,
        })
    }

    /// The caller's legacy hub-run tasks (`Task` objects), oldest first.
    pub fn list(&self, owner: &Owner) -> Vec<Value> {
        let st = self.state.lock();
        let now = Instant::now();
        let mut mine: Vec<(&String, &Run)> =
            st.runs.iter().filter(|(_, r)| r.era == Era::Legacy && r.owner == *owner && (r.expires > now || !r.terminal())).collect();
        mine.sort_by(|a, b| a.1.created_at.cmp(&b.1.created_at).then(a.0.cmp(b.0)));
        mine.into_iter().map(|(id, r)| r.task(id)).collect()
    }

    /// Enters run `id` at the back of its server's task queue (expired runs
    /// pruned first, as of `now`): its `Task` and the state to mirror; the
    /// queue at `queue_len`: the overload error, nothing entered.
    fn enqueue(&self, id: &str, run: Run, queue_len: usize, now: Instant) -> Result<(Value, Option<Mirror>), UpstreamError> {
        let mut st = self.state.lock();
        st.prune(now);
        let gate = st.gates.entry(run.server.clone()).or_default();
        if gate.queue.len() >= queue_len {
            let cause = format!("{} heavy tasks running and its task queue of {queue_len} is full", gate.running);
            return Err(UpstreamError::Overloaded { server: run.server.clone(), retry_after_secs: 1, reason: "queue_full", cause });
        }
        gate.queue.push_back(id.to_string());
        let task = run.task(id);
        let mirror = Mirror::of(id, &run);
        st.runs.insert(id.to_string(), run);
        Ok((task, mirror))
    }

    /// Takes run `id` (never started) back out of the runs and `server`'s queue.
    fn withdraw(&self, id: &str, server: &str) {
        let mut st = self.state.lock();
        st.runs.remove(id);
        if let Some(g) = st.gates.get_mut(server) {
            g.queue.retain(|t| t != id);
        }
        self.changed.notify_all();
    }

    /// The era of run `id`'s creator (legacy when it is gone).
    fn era_of(&self, id: &str) -> Era {
        self.state.lock().runs.get(id).map_or(Era::Legacy, |r| r.era)
    }

    /// Waits until run `id` is first in `server`'s queue with fewer than
    /// `concurrency` running, then takes a slot (message "Running"); or until
    /// it is gone or `deadline` passes (out of the queue then).
    fn wait_turn(&self, id: &str, server: &str, concurrency: usize, deadline: Instant) -> Turn {
        let mut st = self.state.lock();
        loop {
            let now = Instant::now();
            let live = st.runs.get(id).is_some_and(|r| !r.terminal());
            let gate = st.gates.entry(server.to_string()).or_default();
            if !live {
                gate.queue.retain(|t| t != id);
                self.changed.notify_all();
                return Turn::Gone;
            }
            if gate.queue.front().map(String::as_str) == Some(id) && gate.running < concurrency {
                gate.queue.pop_front();
                gate.running += 1;
                self.changed.notify_all();
                let mut running = None;
                if let Some(run) = st.runs.get_mut(id) {
                    run.message = Some("Running".into());
                    run.updated_at = now_iso();
                    running = Mirror::of(id, run);
                }
                return Turn::Running(running);
            }
            if now >= deadline {
                gate.queue.retain(|t| t != id);
                self.changed.notify_all();
                return Turn::TimedOut;
            }
            self.changed.wait_until(&mut st, deadline);
        }
    }

    /// Gives one of `server`'s heavy slots back.
    fn release(&self, server: &str) {
        let mut st = self.state.lock();
        if let Some(g) = st.gates.get_mut(server) {
            g.running = g.running.saturating_sub(1);
        }
        self.changed.notify_all();
    }

    /// Ends run `id` with `outcome` unless it has ended (then `None`), calls
    /// `notify` with it under the lock, and returns its state to mirror.
    fn settle(&self, id: &str, status: &'static str, message: Option<String>, outcome: Result<Value, Value>, notify: impl FnOnce(&Run)) -> Option<Mirror> {
        let mut st = self.state.lock();
        let run = st.runs.get_mut(id).filter(|r| !r.terminal())?;
        run.status = status;
        run.message = message;
        run.outcome = Some(outcome);
        run.updated_at = now_iso();
        notify(run);
        self.changed.notify_all();
        Mirror::of(id, run)
    }

    /// Marks run `id` cancelled (another instance cancelled it: that stands,
    /// whatever it had reached here), giving `server`'s slot back when it held one.
    fn cancelled_elsewhere(&self, id: &str, held_slot_of: Option<&str>) {
        let mut st = self.state.lock();
        let found = st.runs.get_mut(id).map(mark_cancelled).is_some();
        if let Some(g) = held_slot_of.and_then(|s| st.gates.get_mut(s)) {
            g.running = g.running.saturating_sub(1);
        }
        if found || held_slot_of.is_some() {
            self.changed.notify_all();
        }
    }

    /// A legacy session ended (DELETE): its runs are cut and forgotten.
    pub fn forget_session(&self, session: &str) {
        let mut st = self.state.lock();
        st.runs.retain(|_, r| {
            let theirs = r.owner.session.as_deref() == Some(session);
            if theirs {
                r.handle.cut();
            }
            !theirs
        });
        self.changed.notify_all();
    }

    /// Adds the runs kept (ended or not, until their ttl) to what `owner`'s
    /// admission is checked against ([`super::Tasks::reserve`]).
    pub(super) fn count(&self, owner: &Owner, held: &mut Held) {
        let mut st = self.state.lock();
        st.prune(Instant::now());
        for r in st.runs.values() {
            held.count(owner, &r.owner);
        }
    }

    /// Ids of the live (not ended) runs, both eras.
    pub(super) fn live(&self) -> Vec<String> {
        let st = self.state.lock();
        st.runs.iter().filter(|(_, r)| !r.terminal()).map(|(id, _)| id.clone()).collect()
    }

    /// Cancels run `id` here (its upstream call cut, waiters woken); `false`
    /// when it has ended already.
    pub(super) fn cancel_local(&self, id: &str) -> bool {
        let mut st = self.state.lock();
        let Some(run) = st.runs.get_mut(id).filter(|r| !r.terminal()) else { return false };
        mark_cancelled(run);
        self.changed.notify_all();
        true
    }

    /// Claims the watcher role; `false` when a watcher runs already.
    pub(super) fn start_watching(&self) -> bool {
        self.watching.compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst).is_ok()
    }

    /// Gives the watcher role up unless a run is live (checked under
    /// the lock `start` inserts under, so no new run goes unwatched).
    pub(super) fn stop_watching(&self) -> bool {
        let st = self.state.lock();
        if st.runs.values().any(|r| !r.terminal()) {
            return false;
        }
        self.watching.store(false, Ordering::SeqCst);
        true
    }

    /// Hub-run tasks tracked (live or kept for their ttl).
    pub fn len(&self) -> usize {
        self.state.lock().runs.len()
    }

    /// Whether no hub-run task is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc_and_tasks_carry_the_spec_fields() {
        let t = now_iso();
        assert_eq!(t.len(), "2025-11-25T10:30:00Z".len(), "{t}");
        assert!(t.ends_with('Z') && &t[4..5] == "-" && &t[10..11] == "T", "{t}");
        let run = Run {
            owner: Owner { user: None, session: Some("s".into()) },
            era: Era::Legacy,
            server: "jobs".into(),
            created_at: t.clone(),
            updated_at: t,
            ttl_ms: 60_000,
            expires: Instant::now() + Duration::from_secs(60),
            status: "working",
            message: None,
            outcome: None,
            handle: Arc::new(CallHandle::default()),
        };
        let task = run.task("mcphub-tx");
        for key in ["taskId", "status", "createdAt", "lastUpdatedAt", "ttl", "pollInterval"] {
            assert!(task.get(key).is_some(), "{key} missing: {task}");
        }
        assert!(!run.terminal() && task.get("statusMessage").is_none());
    }
}
