//! Tasks through the hub: 2025-11-25 tasks for legacy clients of legacy
//! upstreams, the 2026-07-28 extension `io.modelcontextprotocol/tasks`
//! (SEP-2663) for modern clients of modern upstreams.
//!
//! **Hub task ids.** Upstreams mint task ids that collide across servers
//! (`task-1` on two servers) and, behind one shared upstream session, are
//! visible to every client of that session. The hub never shows an upstream
//! id: a created task gets a hub id, `mcphub-t` + 128 random bits (hex), and
//! an entry `hub id → (server, upstream id, owner)` in [`Tasks`]. Random ids
//! with a table (rather than an encoding of server + upstream id) make the
//! id opaque and unguessable without a signing key, and the table is what
//! `tasks/list` and status notifications need anyway to find a task's owner.
//! The owner (issue 14, hole 3) is the user whose hub key created the task
//! (the anonymous identity when the request carried no key: with no users
//! configured, every client is that one user) and, for a legacy client, also
//! its session. Only the owner can get, wait for, cancel, update or list a
//! task, or hear its status notifications; anyone else gets -32602 "Task not
//! found", byte for byte the answer for an id that never existed, so a task
//! id proves nothing to another user. This holds for upstream-run and
//! hub-run ([`heavy`]) tasks of both eras, and for the modern hub-run tasks
//! mirrored in Redis ([`shared`]), which record the user. The table is in
//! memory; with the hub-run tasks it is bounded by `maxTasks` (default
//! [`DEFAULT_MAX_TASKS`]), [`MAX_TASKS_PER_SESSION`] per legacy session and
//! `maxTasksPerUser` per user, each checked before a task-creating call
//! leaves ([`Tasks::reserve`]); an entry lives for the task's `ttl` (`ttlMs`),
//! capped at [`MAX_TTL`], [`DEFAULT_TTL`] when unlimited, or until its
//! session is deleted.
//!
//! **Routing.** `tasks/get`, `tasks/result`, `tasks/cancel` (legacy) and
//! `tasks/get`, `tasks/update`, `tasks/cancel` (modern) go to the owning
//! upstream with its own id; ids in the answer (`taskId`, the
//! `io.modelcontextprotocol/related-task` `_meta`) are rewritten back.
//! `tasks/list` (legacy) walks the upstreams that list tasks, page by page,
//! keeping the caller's own tasks; its cursor is the hub's own (base64url of
//! `[server index, upstream cursor]`; a forged one can only move the walk, the
//! ownership filter still applies). `notifications/tasks/status` from an
//! upstream (its GET stream or a call's stream) go to the owning session only.
//!
//! **Eras.** Tasks are not translated across eras: the two wire forms differ
//! in more than names (`tasks/result` blocks in 2025-11-25, results are
//! inlined in `tasks/get` in SEP-2663, input requests travel differently).
//! A legacy client's `params.task` reaching a modern upstream, or a modern
//! client's extension reaching a legacy upstream, is not understood there,
//! so the call runs without a task where the tool allows it; a tool that
//! requires a task answers the upstream's error (`-32601` / `-32021`).
//! Capabilities follow: legacy clients see `tasks` when a legacy upstream
//! has them, modern clients the extension when a modern upstream has it.

pub mod heavy;
pub mod shared;

use super::methods;
use super::shape::{self, rewrite_ids, Rewrite};
use super::refusal::Refusal;
use super::{Downstream, Hub};
use crate::http::Response;
use crate::protocol::{jsonrpc, Era, ErrorObject};
use crate::upstream::{CallContext, Upstream};
use base64::Engine;
use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The extension identifier (SEP-2663).
pub const EXTENSION: &str = "io.modelcontextprotocol/tasks";
pub use super::shape::RELATED_TASK;
pub use crate::config::DEFAULT_MAX_TASKS;
/// Most tasks one legacy client session may hold (fixed; `data.limit`
/// `"maxTasksPerSession"` when reached), so one client cannot fill the
/// table for everyone.
pub const MAX_TASKS_PER_SESSION: usize = 1_000;
/// How long the hub keeps a task whose `ttl` is unlimited.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);
/// The longest the hub keeps any task.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// Upstream pages one `tasks/list` reads at most.
pub const LIST_PAGES: usize = 20;
/// A `tasks/list` page stops growing at this many tasks.
pub const LIST_TARGET: usize = 50;
/// A failed capability check is not repeated for this long.
const SUPPORT_RETRY: Duration = Duration::from_secs(5);

/// Who may use a task (issue 14, hole 3): the user whose hub key created it
/// (`None`: the anonymous identity) and, for a legacy client, the session
/// that created it (`None` for modern clients, which have no session).
/// Everything about a task compares the whole owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The hub user's name; `None` for anonymous requests.
    pub user: Option<String>,
    /// The legacy client session; `None` for a modern client.
    pub session: Option<String>,
}

impl Owner {
    /// The owner a downstream request speaks for.
    pub fn of(down: &Downstream) -> Owner {
        let session = match (&down.session, down.era) {
            (Some(s), Era::Legacy) => Some(s.id.clone()),
            _ => None,
        };
        Owner { user: down.user.as_ref().map(|u| u.name.clone()), session }
    }
}

/// A task cap reached (issue 14, hole 5): the task-creating request is
/// refused before anything reaches the upstream or the heavy queue. The caps,
/// checked in this order: the user's `maxTasksPerUser`, the legacy session's
/// [`MAX_TASKS_PER_SESSION`], the hub's `maxTasks`.
///
/// Answered as JSON-RPC `-32000` (the implementation-defined server-error
/// range the hub uses for its limits, like "Rate limit exceeded"), not
/// `-32603` (that says the hub is broken, and nothing the client does helps)
/// nor `-32602` (the request is valid and succeeds once tasks end or
/// expire); `data`: `{"limit": "maxTasksPerUser" | "maxTasksPerSession" |
/// "maxTasks", "max": N, "reason": "task_limit"}`. HTTP 200: tasks are kept
/// for their ttl, so no `Retry-After` would be honest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Task limit reached: {who} already {have} {max} tasks ({limit}); tasks are kept until their ttl ends, so cancel some, let them expire, or ask for shorter ttls")]
pub struct TaskLimit {
    who: String,
    have: &'static str,
    /// Which cap: `maxTasksPerUser`, `maxTasksPerSession` or `maxTasks`.
    pub limit: &'static str,
    /// The cap's value.
    pub max: usize,
}

impl TaskLimit {
    fn user(user: Option<&str>, max: usize) -> TaskLimit {
        let limit = "maxTasksPerUser";
        match user {
            Some(u) => TaskLimit { who: format!("user '{u}'"), have: "holds", limit, max },
            None => TaskLimit { who: "anonymous clients (one identity)".into(), have: "hold", limit, max },
        }
    }

    fn session(max: usize) -> TaskLimit {
        TaskLimit { who: "this session".into(), have: "holds", limit: "maxTasksPerSession", max }
    }

    pub(super) fn hub(max: usize) -> TaskLimit {
        TaskLimit { who: "MCPHub (all users together)".into(), have: "holds", limit: "maxTasks", max }
    }

}

/// Task slots reserved and not yet entered ([`Slot`]): in all, by user, by
/// legacy session.
#[derive(Default)]
struct Reserved {
    total: usize,
    by_user: HashMap<Option<String>, usize>,
    by_session: HashMap<String, usize>,
}

type Pending = Arc<Mutex<Reserved>>;

/// Tasks an owner's admission is checked against: in all, the user's, the
/// legacy session's.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Held {
    pub(crate) total: usize,
    pub(crate) user: usize,
    pub(crate) session: usize,
}

impl Held {
    /// Adds one task of `of` as seen by `owner`.
    pub(crate) fn count(&mut self, owner: &Owner, of: &Owner) {
        self.total += 1;
        if of.user == owner.user {
            self.user += 1;
        }
        if owner.session.is_some() && of.session == owner.session {
            self.session += 1;
        }
    }
}

/// One task slot reserved by [`Tasks::reserve`]; given back when dropped (by
/// then the task is entered, or none was created: a refused, failed or
/// task-less call). Never dropped under the hub-run tasks' lock.
pub struct Slot {
    pending: Pending,
    owner: Owner,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut p = self.pending.lock();
        p.total = p.total.saturating_sub(1);
        if let Some(n) = p.by_user.get_mut(&self.owner.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                p.by_user.remove(&self.owner.user);
            }
        }
        if let Some(s) = &self.owner.session {
            if let Some(n) = p.by_session.get_mut(s) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    p.by_session.remove(s);
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    server: String,
    upstream_id: String,
    owner: Owner,
    expires: Instant,
}

/// What an upstream offers for tasks.
#[derive(Debug, Clone, PartialEq)]
pub enum Support {
    /// A legacy server's `capabilities.tasks`.
    Legacy(Value),
    /// A modern server advertising the extension.
    Modern,
    /// Nothing.
    None,
}

#[derive(Default)]
struct Table {
    by_hub: HashMap<String, Entry>,
    by_upstream: HashMap<(String, String), String>,
}

impl Table {
    fn remove(&mut self, hub_id: &str) {
        if let Some(e) = self.by_hub.remove(hub_id) {
            self.by_upstream.remove(&(e.server, e.upstream_id));
        }
    }

    fn prune(&mut self, now: Instant) {
        let expired: Vec<String> = self.by_hub.iter().filter(|(_, e)| e.expires <= now).map(|(k, _)| k.clone()).collect();
        for k in expired {
            self.remove(&k);
        }
    }
}

/// The hub's task table and the upstreams' task support.
#[derive(Default)]
pub struct Tasks {
    table: Mutex<Table>,
    /// The shared store: every entry is mirrored there ([`shared`]), so any
    /// instance finds a task created through another one.
    redis: Option<crate::store::redis::RedisStore>,
    support: Mutex<HashMap<String, (Support, Option<Instant>)>>,
    runs: heavy::Runs,
    /// Slots reserved and not yet entered ([`Slot`]); the lock every
    /// admission takes first.
    pending: Pending,
}

/// A fresh hub task id: `mcphub-t` + 32 hex digits (128 random bits).
fn new_hub_id() -> String {
    format!("mcphub-t{}", crate::random::hex::<16>())
}

impl Tasks {
    /// The tasks of a hub; with `redis` every entry is mirrored there
    /// ([`shared::put_entry`]) and an id unknown here is looked up there.
    pub fn new(redis: Option<crate::store::redis::RedisStore>) -> Tasks {
        Tasks { redis, ..Tasks::default() }
    }

    /// Enters an upstream task for `owner` under the `slot` reserved for it
    /// ([`Tasks::reserve`], which checked the caps; the entry counts instead
    /// once the slot is dropped here); returns its hub id. `ttl_ms`: the
    /// task's ttl (None = unlimited).
    pub fn register(&self, server: &str, upstream_id: &str, owner: Owner, ttl_ms: Option<u64>, slot: Slot) -> String {
        let keep = ttl_ms.map_or(DEFAULT_TTL, Duration::from_millis).min(MAX_TTL);
        let now = Instant::now();
        let hub_id = new_hub_id();
        let mut t = self.table.lock();
        let key = (server.to_string(), upstream_id.to_string());
        if let Some(old) = t.by_upstream.get(&key).cloned() {
            t.remove(&old); // the upstream reused an id: the old task is gone there
        }
        t.by_upstream.insert(key, hub_id.clone());
        let record = self.redis.as_ref().map(|_| shared::Entry::new(&hub_id, server, upstream_id, &owner));
        t.by_hub.insert(hub_id.clone(), Entry { server: server.into(), upstream_id: upstream_id.into(), owner, expires: now + keep });
        drop(t);
        drop(slot);
        if let (Some(redis), Some(record)) = (&self.redis, record) {
            shared::put_entry(redis, &record, keep);
        }
        hub_id
    }

    /// `(server, upstream id)` of hub task `hub_id` if `owner` may use it:
    /// this instance's table, else (Redis) the entry another instance
    /// mirrored (one round trip, only for an id unknown here).
    pub fn find(&self, hub_id: &str, owner: &Owner) -> Option<(String, String)> {
        if let Some(found) = self.find_local(hub_id, owner) {
            return found;
        }
        let e = shared::get_entry(self.redis.as_ref()?, hub_id)?;
        e.owned_by(owner).then_some((e.server, e.upstream_id))
    }

    /// Hub task `hub_id` in this instance's table: `Some(None)` when it is
    /// there and not `owner`'s; `None` when it is not there.
    pub fn find_local(&self, hub_id: &str, owner: &Owner) -> Option<Option<(String, String)>> {
        let t = self.table.lock();
        let e = t.by_hub.get(hub_id).filter(|e| e.expires > Instant::now())?;
        Some((e.owner == *owner).then(|| (e.server.clone(), e.upstream_id.clone())))
    }

    /// The hub id and owner of upstream task `upstream_id` on `server`
    /// (this instance's table only).
    pub fn hub_id(&self, server: &str, upstream_id: &str) -> Option<(String, Owner)> {
        let t = self.table.lock();
        let hub_id = t.by_upstream.get(&(server.to_string(), upstream_id.to_string()))?;
        let e = t.by_hub.get(hub_id).filter(|e| e.expires > Instant::now())?;
        Some((hub_id.clone(), e.owner.clone()))
    }

    /// The hub ids of `server`'s upstream tasks `upstream_ids` that `owner`
    /// may see (`None` for the others): this instance's table, then (Redis)
    /// one `MGET` of the entries other instances mirrored for the rest.
    pub fn hub_ids_for(&self, server: &str, upstream_ids: &[String], owner: &Owner) -> Vec<Option<String>> {
        let mut found: Vec<Option<Option<String>>> = upstream_ids
            .iter()
            .map(|u| self.hub_id(server, u).map(|(h, o)| (o == *owner).then_some(h)))
            .collect();
        if let Some(redis) = &self.redis {
            let missing: Vec<usize> = (0..found.len()).filter(|&i| found[i].is_none()).collect();
            if !missing.is_empty() {
                let ids: Vec<&str> = missing.iter().map(|&i| upstream_ids[i].as_str()).collect();
                for (i, e) in missing.into_iter().zip(shared::get_entries_by_upstream(redis, server, &ids)) {
                    found[i] = Some(e.filter(|e| e.owned_by(owner)).map(|e| e.hub_id));
                }
            }
        }
        found.into_iter().map(Option::flatten).collect()
    }

    /// The hub id of `server`'s upstream task `upstream_id` when it belongs
    /// to legacy client session `session`: this instance's table, else (Redis)
    /// the mirrored entry (its session digest compared).
    pub fn hub_id_of_session(&self, server: &str, upstream_id: &str, session: &str) -> Option<String> {
        if let Some((hub_id, o)) = self.hub_id(server, upstream_id) {
            return (o.session.as_deref() == Some(session)).then_some(hub_id);
        }
        let e = shared::get_entries_by_upstream(self.redis.as_ref()?, server, &[upstream_id]).pop().flatten()?;
        (e.session.as_deref() == Some(shared::digest(session).as_str())).then_some(e.hub_id)
    }

    /// The mirrored entry of `server`'s upstream task `upstream_id` (another
    /// instance's; `None` without Redis): its hub id and the owning legacy
    /// session's digest.
    pub fn remote_session_of(&self, server: &str, upstream_id: &str) -> Option<(String, String)> {
        let e = shared::get_entries_by_upstream(self.redis.as_ref()?, server, &[upstream_id]).pop().flatten()?;
        Some((e.hub_id, e.session?))
    }

    /// Reserves one task slot for `owner` before a task-creating request
    /// goes anywhere (issue 14, hole 5). Counted: live upstream-run tasks,
    /// hub-run tasks (kept for their ttl, ended or not) and reserved slots.
    /// Refused ([`TaskLimit`]) when the user's reach `max_per_user`
    /// (`maxTasksPerUser`), a legacy session's [`MAX_TASKS_PER_SESSION`], or
    /// all of them `max_tasks` (`maxTasks`). Admissions are serialised on one
    /// lock, so concurrent requests never pass a cap together; the slot
    /// counts until it is dropped.
    pub fn reserve(&self, owner: &Owner, max_per_user: usize, max_tasks: usize) -> Result<Slot, TaskLimit> {
        let mut pending = self.pending.lock();
        let mut held = Held {
            total: pending.total,
            user: pending.by_user.get(&owner.user).copied().unwrap_or(0),
            session: owner.session.as_ref().and_then(|s| pending.by_session.get(s)).copied().unwrap_or(0),
        };
        {
            let mut t = self.table.lock();
            t.prune(Instant::now());
            for e in t.by_hub.values() {
                held.count(owner, &e.owner);
            }
        }
        self.runs.count(owner, &mut held);
        if held.user >= max_per_user {
            return Err(TaskLimit::user(owner.user.as_deref(), max_per_user));
        }
        if owner.session.is_some() && held.session >= MAX_TASKS_PER_SESSION {
            return Err(TaskLimit::session(MAX_TASKS_PER_SESSION));
        }
        if held.total >= max_tasks {
            return Err(TaskLimit::hub(max_tasks));
        }
        pending.total += 1;
        *pending.by_user.entry(owner.user.clone()).or_insert(0) += 1;
        if let Some(s) = &owner.session {
            *pending.by_session.entry(s.clone()).or_insert(0) += 1;
        }
        Ok(Slot { pending: self.pending.clone(), owner: owner.clone() })
    }

    /// Forgets the tasks of a legacy client session that ended (DELETE).
    pub fn forget_session(&self, session: &str) {
        let mut t = self.table.lock();
        let owned: Vec<String> =
            t.by_hub.iter().filter(|(_, e)| e.owner.session.as_deref() == Some(session)).map(|(k, _)| k.clone()).collect();
        for k in owned {
            t.remove(&k);
        }
        drop(t);
        self.runs.forget_session(session);
    }

    /// The hub-run tasks of heavy tools ([`heavy`]).
    pub fn runs(&self) -> &heavy::Runs {
        &self.runs
    }

    /// Number of tracked tasks.
    pub fn len(&self) -> usize {
        self.table.lock().by_hub.len()
    }

    /// Whether no task is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What `upstream` offers for tasks: checked once (its `initialize` or
    /// `server/discover` result), a failed check again after 5 s.
    pub fn support(&self, upstream: &Upstream, budget: Duration) -> Support {
        if let Some(s) = self.known_support(upstream.name()) {
            return s;
        }
        let ctx = CallContext::shared(Instant::now() + budget);
        let found = upstream.era(&ctx).and_then(|era| Ok((era, upstream.server_capabilities(&ctx)?)));
        let (support, retry) = match found {
            Ok((era, caps)) => (support_of(era, &caps), None),
            Err(e) => {
                log::debug!("task support of '{}' unknown for now: {e}", upstream.name());
                (Support::None, Some(Instant::now() + SUPPORT_RETRY))
            }
        };
        self.support.lock().insert(upstream.name().to_string(), (support.clone(), retry));
        support
    }
}

impl Tasks {
    /// Forgets what `server` offers (a config reload removed or replaced it).
    pub fn forget_support(&self, server: &str) {
        self.support.lock().remove(server);
    }

    /// What `server` offers, when checked and not due for a retry.
    fn known_support(&self, server: &str) -> Option<Support> {
        let support = self.support.lock();
        let (s, retry) = support.get(server)?;
        retry.is_none_or(|at| Instant::now() < at).then(|| s.clone())
    }
}

/// What a server's capabilities say about tasks, for its era (pure).
pub fn support_of(era: Era, caps: &Value) -> Support {
    match era {
        Era::Legacy => caps.get("tasks").filter(|t| t.is_object()).map_or(Support::None, |t| Support::Legacy(t.clone())),
        Era::Modern if crate::protocol::jsonrpc::at(caps, &["extensions"]).and_then(|e| e.get(EXTENSION)).is_some() => Support::Modern,
        Era::Modern => Support::None,
    }
}

/// The tasks capability to advertise to a client of `era` given what the
/// upstreams offer (pure): legacy, the union of the legacy upstreams'
/// `tasks.list`, `tasks.cancel`, `tasks.requests.tools.call` (2025-11-25
/// Capabilities); modern, `extensions["io.modelcontextprotocol/tasks"]`. None
/// when no upstream of that era has tasks.
pub fn advertised(era: Era, supports: &[Support]) -> Option<Value> {
    match era {
        Era::Modern => supports.contains(&Support::Modern).then(|| json!({EXTENSION: {}})),
        Era::Legacy => {
            let legacy: Vec<&Value> = supports.iter().filter_map(|s| if let Support::Legacy(t) = s { Some(t) } else { None }).collect();
            if legacy.is_empty() {
                return None;
            }
            let mut tasks = json!({});
            if legacy.iter().any(|t| t.get("list").is_some()) {
                tasks["list"] = json!({});
            }
            if legacy.iter().any(|t| t.get("cancel").is_some()) {
                tasks["cancel"] = json!({});
            }
            if legacy.iter().any(|t| crate::protocol::jsonrpc::at(t, &["requests", "tools", "call"]).is_some()) {
                tasks["requests"] = json!({"tools": {"call": {}}});
            }
            Some(tasks)
        }
    }
}

/// Adds the tasks capability to the hub's own capabilities for a client of
/// `era` (legacy `capabilities.tasks`, modern `capabilities.extensions`),
/// checking the upstreams in parallel (each within `listTimeoutMs`).
pub fn advertise(config: &crate::config::Config, catalog: &crate::catalog::Catalog, tasks: &Tasks, era: Era, caps: &mut Value) {
    let budget = config.list_timeout;
    let upstreams = catalog.upstreams();
    // Known answers at once; the others asked in parallel (first clients only).
    let mut supports: Vec<Option<Support>> = upstreams.iter().map(|u| tasks.known_support(u.name())).collect();
    if supports.iter().any(Option::is_none) {
        std::thread::scope(|scope| {
            let handles: Vec<_> = upstreams
                .iter()
                .zip(&supports)
                .filter(|(_, s)| s.is_none())
                .map(|(u, _)| scope.spawn(move || tasks.support(u, budget)))
                .collect();
            let mut found = handles.into_iter().map(|h| h.join().unwrap_or(Support::None));
            for s in supports.iter_mut().filter(|s| s.is_none()) {
                *s = found.next();
            }
        });
    }
    let mut supports: Vec<Support> = supports.into_iter().map(|s| s.unwrap_or(Support::None)).collect();
    // Heavy tools run as hub tasks for clients of either era (tasks::heavy).
    if let Some(own) = heavy::capability(config) {
        supports.push(Support::Legacy(own));
        supports.push(Support::Modern);
    }
    match (era, advertised(era, &supports)) {
        (Era::Legacy, Some(t)) => caps["tasks"] = t,
        (Era::Modern, Some(ext)) => caps["extensions"] = ext,
        _ => {}
    }
}

/// The upstream task id and ttl (ms) a `CreateTaskResult` carries (pure):
/// 2025-11-25 `{task: {taskId, ttl}}`, SEP-2663 `{resultType: "task", taskId, ttlMs}`.
pub fn created_task(result: &Value) -> Option<(String, Option<u64>)> {
    if result.get("resultType").and_then(Value::as_str) == Some("task") {
        let id = result.get("taskId")?.as_str()?;
        return Some((id.to_string(), result.get("ttlMs").and_then(Value::as_u64)));
    }
    let task = result.get("task")?;
    let id = task.get("taskId")?.as_str()?;
    Some((id.to_string(), task.get("ttl").and_then(Value::as_u64)))
}

/// The rewrite of a routed `tools/call`'s messages, decided before the call
/// leaves. A call that may create an upstream task — a legacy client's
/// `params.task` (an object), or a modern client declaring the extension,
/// to a server with tasks of that era (or whose support is not known yet) —
/// first reserves a task slot ([`Tasks::reserve`]); at `maxTasksPerUser`,
/// the session's [`MAX_TASKS_PER_SESSION`] or `maxTasks` it is refused here
/// (`Err`, the [`TaskLimit`] error, -32000) and nothing reaches the upstream
/// (issue 14, hole 5). A `CreateTaskResult` then gets its task entered for
/// the caller ([`Owner::of`]) and its id replaced by the hub id. A call
/// answering an error or a result without a task gives the slot back as
/// that answer passes the rewrite (before the client reads it), and one
/// that ends with no answer at all when the rewrite is dropped. A task the upstream created
/// unasked (its support unknown or changed) is checked when it arrives; at
/// a cap then, the client gets the [`TaskLimit`] error.
pub fn on_tools_call(hub: &Hub, down: &Downstream, upstream: &Upstream, params: &Map<String, Value>) -> Result<Rewrite, ErrorObject> {
    let owner = Owner::of(down);
    let asks = match down.era {
        Era::Legacy => params.get("task").is_some_and(Value::is_object),
        Era::Modern => heavy::declares_extension(down),
    };
    let may_create = asks
        && hub.tasks().known_support(upstream.name()).is_none_or(|s| match s {
            Support::Legacy(_) => down.era == Era::Legacy,
            Support::Modern => down.era == Era::Modern,
            Support::None => false,
        });
    let config = hub.config();
    let slot = match may_create {
        true => Some(hub.tasks().reserve(&owner, config.max_tasks_per_user, config.max_tasks).map_err(|e| Refusal::TaskLimit(e).error())?),
        false => None,
    };
    let slot = Mutex::new(slot);
    let (hub, server) = (hub.clone(), upstream.name().to_string());
    Ok(Arc::new(move |msg: &mut Value| {
        let Some((upstream_id, ttl)) = msg.get("result").and_then(created_task) else {
            // The call's answer without a task (an error, a plain result):
            // the slot is given back before the client reads it. Not for a
            // request for input: the call goes on.
            let answer = msg.get("method").is_none() && (msg.get("error").is_some() || msg.get("result").is_some());
            if answer && !super::mrtr::is_input_required(msg) {
                drop(slot.lock().take());
            }
            return;
        };
        // A task nobody reserved for (support unknown or changed): checked now.
        let taken = slot.lock().take();
        let slot = match taken {
            Some(s) => s,
            None => match hub.tasks().reserve(&owner, hub.config().max_tasks_per_user, hub.config().max_tasks) {
                Ok(s) => s,
                Err(limit) => {
                    log::warn!("task {upstream_id} of '{server}' not tracked: {limit}");
                    *msg = Refusal::TaskLimit(limit).message(msg.get("id"));
                    return;
                }
            },
        };
        let hub_id = hub.tasks().register(&server, &upstream_id, owner.clone(), ttl, slot);
        rewrite_ids(msg, &upstream_id, &hub_id);
    }))
}

fn reply(down: &Downstream, id: &Value, outcome: Result<Value, ErrorObject>) -> Response {
    match outcome {
        Ok(result) => Response::json(200, &jsonrpc::result_response(id, shape::result(down.era, result))),
        Err(e) => Response::json(200, &e.to_response(Some(id))),
    }
}

fn not_found() -> ErrorObject {
    Refusal::TaskNotFound.error()
}

/// Answers a `tasks/*` request. Legacy clients: `tasks/get`, `tasks/result`,
/// `tasks/cancel`, `tasks/list`; modern clients (with the extension in their
/// request capabilities, else -32021): `tasks/get`, `tasks/update`,
/// `tasks/cancel`. Anything else is -32601. An unknown id, or another
/// session's task, is -32602.
pub fn handle(hub: &Hub, down: &Downstream, id: Value, method: &str, mut params: Map<String, Value>) -> Response {
    let known = match down.era {
        Era::Legacy => matches!(method, "tasks/get" | "tasks/result" | "tasks/cancel" | "tasks/list"),
        Era::Modern => matches!(method, "tasks/get" | "tasks/update" | "tasks/cancel"),
    };
    if !known {
        return Refusal::MethodNotFound { method: method.to_string(), era: down.era }.response(Some(&id));
    }
    if down.era == Era::Modern && down.capabilities.as_ref().and_then(|c| crate::protocol::jsonrpc::at(c, &["extensions"])).and_then(|e| e.get(EXTENSION)).is_none() {
        return Refusal::TasksExtensionMissing.response(Some(&id));
    }
    if method == "tasks/list" {
        let first_page = params.get("cursor").is_none_or(Value::is_null);
        let mut outcome = list(&hub.config(), hub.catalog(), hub.tasks(), down, &params);
        if let (true, Ok(page)) = (first_page && down.era == Era::Legacy, &mut outcome) {
            // The hub-run tasks head the first page: this instance's, then
            // (Redis) those other instances run or ran for the same owner.
            let owner = Owner::of(down);
            let mut all = hub.tasks().runs().list(&owner);
            if let Some(redis) = hub.redis() {
                let here: std::collections::HashSet<String> = all.iter().filter_map(|t| t["taskId"].as_str().map(str::to_string)).collect();
                let mut elsewhere: Vec<Value> = shared::legacy_tasks(redis, &owner).into_iter().filter(|(id, _)| !here.contains(id)).map(|(_, t)| t).collect();
                all.append(&mut elsewhere);
                all.sort_by(|a, b| a["createdAt"].as_str().cmp(&b["createdAt"].as_str()));
            }
            if let Some(Value::Array(theirs)) = page.get_mut("tasks") {
                all.append(theirs);
                *theirs = all;
            }
        }
        return reply(down, &id, outcome);
    }
    let Some(hub_id) = params.get("taskId").and_then(Value::as_str).map(str::to_string) else {
        return reply(down, &id, Err(Refusal::InvalidParams(format!("{method} needs params.taskId")).error()));
    };
    if let Some(answer) = heavy::handle(hub, down, &id, method, &hub_id) {
        return answer;
    }
    // This instance's table first (memory); then Redis: a hub-run task of
    // another instance (its record), an upstream-run one (its entry).
    let owner = Owner::of(down);
    let found = match hub.tasks().find_local(&hub_id, &owner) {
        Some(found) => found,
        None => {
            if let Some(answer) = shared::handle(hub, down, &id, method, &hub_id) {
                return answer;
            }
            hub.tasks().find(&hub_id, &owner)
        }
    };
    let Some((server, upstream_id)) = found else { return reply(down, &id, Err(not_found())) };
    let Some(upstream) = hub.catalog().upstream(&server) else { return reply(down, &id, Err(not_found())) };
    params.insert("taskId".into(), json!(upstream_id));
    let rewrite: Rewrite = Arc::new(move |m: &mut Value| rewrite_ids(m, &upstream_id, &hub_id));
    methods::forward_with(hub, down, id, method, params, upstream, Vec::new(), Some(rewrite))
}

/// Encodes a hub `tasks/list` cursor: base64url of `[server index, upstream cursor]`.
pub fn encode_cursor(server: usize, upstream: Option<&Value>) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json!([server, upstream]).to_string())
}

/// Decodes a hub cursor (pure); `None` when it is not one.
pub fn decode_cursor(cursor: &str) -> Option<(usize, Option<Value>)> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    let index = usize::try_from(v.get(0)?.as_u64()?).ok()?;
    let upstream = v.get(1).filter(|c| !c.is_null()).cloned();
    if upstream.as_ref().is_some_and(|c| !c.is_string()) {
        return None;
    }
    Some((index, upstream))
}

/// Legacy `tasks/list`: the caller's own tasks across the upstreams that
/// list tasks, in server order, at most [`LIST_PAGES`] upstream pages per
/// call; `nextCursor` when the walk stopped before the end.
fn list(
    config: &crate::config::Config,
    catalog: &crate::catalog::Catalog,
    registry: &Tasks,
    down: &Downstream,
    params: &Map<String, Value>,
) -> Result<Value, ErrorObject> {
    let (mut index, mut cursor) = match params.get("cursor") {
        None | Some(Value::Null) => (0, None),
        Some(c) => c.as_str().and_then(decode_cursor).ok_or_else(|| Refusal::InvalidParams("Invalid cursor".into()).error())?,
    };
    let owner = Owner::of(down);
    let upstreams = catalog.upstreams();
    let budget = config.list_timeout;
    let ctx = down.call_context();
    let mut tasks = Vec::new();
    let mut pages = 0;
    while index < upstreams.len() {
        if pages == LIST_PAGES || tasks.len() >= LIST_TARGET {
            return Ok(json!({"tasks": tasks, "nextCursor": encode_cursor(index, cursor.as_ref())}));
        }
        let upstream = &upstreams[index];
        let lists = matches!(registry.support(upstream, budget), Support::Legacy(t) if t.get("list").is_some());
        if !lists {
            (index, cursor) = (index + 1, None);
            continue;
        }
        pages += 1;
        let mut p = Map::new();
        if let Some(c) = &cursor {
            p.insert("cursor".into(), c.clone());
        }
        let page = upstream.request("tasks/list", p, &ctx, &[], &mut |_| {});
        let result = match page {
            Ok(m) if m.get("result").is_some() => m["result"].clone(),
            Ok(m) => {
                log::warn!("tasks/list of '{}' failed: {}", upstream.name(), m.get("error").unwrap_or(&Value::Null));
                (index, cursor) = (index + 1, None);
                continue;
            }
            Err(e) => {
                log::warn!("tasks/list of '{}' failed: {e}", upstream.name());
                (index, cursor) = (index + 1, None);
                continue;
            }
        };
        let page: Vec<Value> = result.get("tasks").and_then(Value::as_array).cloned().unwrap_or_default();
        let ids: Vec<String> = page.iter().map(|t| t.get("taskId").and_then(Value::as_str).unwrap_or("").to_string()).collect();
        for (mut task, hub_id) in page.into_iter().zip(registry.hub_ids_for(upstream.name(), &ids, &owner)) {
            if let Some(hub_id) = hub_id {
                task["taskId"] = json!(hub_id);
                tasks.push(task);
            }
        }
        match result.get("nextCursor").filter(|c| c.is_string()) {
            Some(next) => cursor = Some(next.clone()),
            None => (index, cursor) = (index + 1, None),
        }
    }
    Ok(json!({"tasks": tasks}))
}

/// A `notifications/tasks/status` for the legacy client session `session`
/// (the only clients status notifications go to): its task id replaced by
/// the hub id, when the task is that session's; `None` otherwise (another
/// session's or user's task, an unknown one).
pub fn status_for(tasks: &Tasks, server: &str, mut n: Value, session: &str) -> Option<Value> {
    let upstream_id = crate::protocol::jsonrpc::at(&n, &["params", "taskId"])?.as_str()?.to_string();
    let hub_id = tasks.hub_id_of_session(server, &upstream_id, session)?;
    rewrite_ids(&mut n, &upstream_id, &hub_id);
    Some(n)
}

/// A `notifications/tasks/status` an upstream sent outside any call (its GET
/// stream): to the owning legacy session's GET stream only.
/// With the cluster bus, a GET stream open on another instance gets it there
/// ([`super::Hub::send_to_session`]).
pub fn route_status(hub: &super::Hub, server: &str, n: &Value) {
    let tasks = hub.tasks();
    let Some(upstream_id) = crate::protocol::jsonrpc::at(n, &["params", "taskId"]).and_then(Value::as_str) else { return };
    let session = match tasks.hub_id(server, upstream_id) {
        Some((_, Owner { session: Some(session), .. })) => session,
        Some(_) => return,
        // Another instance's task (Redis): the owning session if its GET
        // stream is open here (found by digest; the entry holds no raw id).
        None => {
            let Some((_, digest)) = tasks.remote_session_of(server, upstream_id) else { return };
            let Some(session) = hub.listeners().sessions().into_iter().find(|s| shared::digest(s) == digest) else { return };
            session
        }
    };
    if let Some(m) = status_for(tasks, server, n.clone(), &session) {
        hub.send_to_session(&session, &m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::codes;

    fn legacy(user: Option<&str>, session: &str) -> Owner {
        Owner { user: user.map(str::to_string), session: Some(session.into()) }
    }

    fn modern(user: Option<&str>) -> Owner {
        Owner { user: user.map(str::to_string), session: None }
    }

    /// Enters a task for `owner` under a slot (caps of 100 per user, 10,000 in all).
    fn enter(t: &Tasks, server: &str, upstream_id: &str, owner: Owner, ttl_ms: Option<u64>) -> Option<String> {
        let slot = t.reserve(&owner, 10_000, 10_000).ok()?;
        Some(t.register(server, upstream_id, owner, ttl_ms, slot))
    }

    #[test]
    fn colliding_upstream_ids_get_distinct_owned_hub_ids() {
        let t = Tasks::default();
        let a = enter(&t, "a", "task-1", legacy(None, "s1"), Some(60_000)).unwrap();
        let b = enter(&t, "b", "task-1", legacy(None, "s2"), None).unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("mcphub-t") && a.len() == "mcphub-t".len() + 32);
        assert_eq!(t.find(&a, &legacy(None, "s1")), Some(("a".into(), "task-1".into())));
        assert_eq!(t.find(&b, &legacy(None, "s2")), Some(("b".into(), "task-1".into())));
        assert_eq!(t.find(&a, &legacy(None, "s2")), None, "another session's task is unknown to it");
        assert_eq!(t.find(&a, &modern(None)), None);
        assert_eq!(t.hub_id("b", "task-1"), Some((b, legacy(None, "s2"))));
        assert_eq!(t.hub_id("c", "task-1"), None);
    }

    #[test]
    fn a_modern_task_is_bound_to_its_user_not_to_whoever_holds_the_id() {
        let t = Tasks::default();
        let bobs = enter(&t, "m", "task-1", modern(Some("bob")), None).unwrap();
        assert_eq!(t.find(&bobs, &modern(Some("bob"))), Some(("m".into(), "task-1".into())));
        assert_eq!(t.find(&bobs, &modern(Some("alice"))), None, "another user's task is unknown to her");
        assert_eq!(t.find(&bobs, &modern(None)), None, "and to anonymous clients");
        assert_eq!(t.find(&bobs, &legacy(Some("bob"), "s1")), None, "a legacy session of bob's is not the modern owner");
    }

    #[test]
    fn one_session_cannot_fill_the_table_and_its_tasks_go_with_it() {
        let t = Tasks::default();
        for i in 0..MAX_TASKS_PER_SESSION {
            assert!(enter(&t, "a", &format!("task-{i}"), legacy(None, "greedy"), None).is_some());
        }
        let refused = t.reserve(&legacy(None, "greedy"), 10_000, 10_000).err().expect("the session holds its share");
        assert_eq!((refused.limit, refused.max), ("maxTasksPerSession", MAX_TASKS_PER_SESSION));
        assert!(refused.to_string().contains("this session"), "{refused}");
        let other = enter(&t, "a", "theirs", legacy(None, "other"), None).expect("another session still gets tasks");
        t.forget_session("greedy");
        assert_eq!(t.len(), 1);
        assert!(t.find(&other, &legacy(None, "other")).is_some());
        assert!(enter(&t, "a", "again", legacy(None, "greedy"), None).is_some());
        assert_eq!(t.pending.lock().total, 0, "every slot given back");
    }

    #[test]
    fn a_user_at_the_cap_is_refused_a_slot_and_others_are_not() {
        let t = Tasks::default();
        let alice = modern(Some("alice"));
        let first = t.reserve(&alice, 3, 100).expect("a slot");
        t.register("a", "task-1", alice.clone(), None, first);
        let held = [t.reserve(&alice, 3, 100).unwrap(), t.reserve(&alice, 3, 100).unwrap()];
        let refused = t.reserve(&alice, 3, 100).err().expect("1 entered + 2 reserved = the cap");
        assert_eq!((refused.limit, refused.max), ("maxTasksPerUser", 3));
        let e = Refusal::TaskLimit(refused).error();
        assert_eq!(e.code, codes::SERVER_ERROR);
        assert!(e.message.contains("user 'alice'") && e.message.contains("maxTasksPerUser"), "{}", e.message);
        assert!(t.reserve(&modern(Some("bob")), 3, 100).is_ok() && t.reserve(&modern(None), 3, 100).is_ok(), "other users keep creating tasks");
        drop(held);
        assert!(t.reserve(&alice, 3, 100).is_ok(), "a dropped slot is given back");
        let p = t.pending.lock();
        assert!(p.total == 0 && p.by_user.is_empty() && p.by_session.is_empty(), "every slot given back");
    }

    #[test]
    fn the_hub_wide_cap_counts_entries_and_reservations_of_everyone() {
        let t = Tasks::default();
        let slot = t.reserve(&legacy(Some("a"), "s1"), 100, 3).unwrap();
        t.register("x", "task-1", legacy(Some("a"), "s1"), None, slot);
        let held = t.reserve(&modern(Some("b")), 100, 3).unwrap();
        let _also = t.reserve(&modern(None), 100, 3).unwrap();
        let refused = t.reserve(&legacy(Some("c"), "s3"), 100, 3).err().expect("1 entered + 2 reserved = maxTasks");
        assert_eq!((refused.limit, refused.max), ("maxTasks", 3));
        let e = Refusal::TaskLimit(refused).error();
        assert_eq!(e.code, codes::SERVER_ERROR);
        assert_eq!(e.data, Some(json!({"limit": "maxTasks", "max": 3, "reason": "task_limit"})));
        assert!(e.message.contains("maxTasks"), "{}", e.message);
        drop(held);
        assert!(t.reserve(&legacy(Some("c"), "s3"), 100, 3).is_ok(), "a dropped slot is given back");
    }

    #[test]
    fn an_expired_task_is_forgotten() {
        let t = Tasks::default();
        let a = enter(&t, "a", "task-1", modern(None), Some(0)).unwrap();
        assert_eq!(t.find(&a, &modern(None)), None);
        assert_eq!(t.hub_id("a", "task-1"), None);
    }

    #[test]
    fn create_results_of_both_eras_are_recognised() {
        let legacy = json!({"task": {"taskId": "task-3", "status": "working", "ttl": 60000}});
        assert_eq!(created_task(&legacy), Some(("task-3".into(), Some(60000))));
        let modern = json!({"resultType": "task", "taskId": "task-4", "status": "working", "ttlMs": null});
        assert_eq!(created_task(&modern), Some(("task-4".into(), None)));
        assert_eq!(created_task(&json!({"content": [], "resultType": "complete"})), None);
    }

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        assert_eq!(decode_cursor(&encode_cursor(0, None)), Some((0, None)));
        assert_eq!(decode_cursor(&encode_cursor(2, Some(&json!("o5")))), Some((2, Some(json!("o5")))));
        assert_eq!(decode_cursor("junk!"), None);
        assert_eq!(decode_cursor(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("[1, {}]")), None);
    }

    #[test]
    fn capabilities_are_advertised_per_era_only_when_an_upstream_has_them() {
        let legacy = support_of(Era::Legacy, &json!({"tasks": {"list": {}, "requests": {"tools": {"call": {}}}}}));
        let modern = support_of(Era::Modern, &json!({"extensions": {EXTENSION: {}}}));
        assert_eq!(support_of(Era::Legacy, &json!({"tools": {}})), Support::None);
        assert_eq!(modern, Support::Modern);
        assert_eq!(advertised(Era::Legacy, &[Support::None, legacy.clone()]), Some(json!({"list": {}, "requests": {"tools": {"call": {}}}})));
        assert_eq!(advertised(Era::Legacy, &[Support::None, modern.clone()]), None);
        assert_eq!(advertised(Era::Modern, &[legacy, modern]), Some(json!({EXTENSION: {}})));
        assert_eq!(advertised(Era::Modern, &[Support::None]), None);
    }
}
