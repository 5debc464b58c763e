//! Modern hub-run tasks in the shared store (issue 6 "task state in the
//! store … so another instance can answer `tasks/get`").
//!
//! A 2026-07-28 client has no session, so any hub instance behind a load
//! balancer may be asked about its task; the task belongs to the user whose
//! hub key created it (issue 14 hole 3: the record names that user, and
//! every instance answers anyone else -32602 "Task not found", as for an
//! unknown id).
//! With Redis configured, the instance running a modern hub task
//! ([`super::heavy`]) mirrors it under `mcp:task:{taskId}` →
//! `{"task": DetailedTask, "user": name|null}` with the task's ttl (PX), written
//! when it is created, when it starts running and when it ends. Another
//! instance answers `tasks/get` from that record, `tasks/update` with the
//! empty ack, and `tasks/cancel` by marking the record cancelled (a Lua
//! compare-and-set: a task already ended stays as it is); the running
//! instance notices within [`WATCH_EVERY`] and cuts the upstream call, and a
//! later write of its own never overwrites a cancellation.
//!
//! Legacy (2025-11-25) hub tasks are mirrored the same way (issue 20): the
//! record adds `"session"` (the owning session's SHA-256 hex; the raw id is
//! its credential and never stored), `"server"` and, once ended,
//! `"outcome"`; another instance answers `tasks/get`, `tasks/cancel` and a
//! blocking `tasks/result` (polling the record every [`RESULT_POLL`] within
//! the request's deadline) to that session only. While a run is live its
//! instance keeps a heartbeat key `mcp:task:beat:{taskId}` ([`BEAT_TTL`],
//! refreshed every [`BEAT_EVERY`]); a record still `working` without one
//! reads as `failed` ([`ORPHANED`]) everywhere, so a task never claims to be
//! working after its instance died.
//!
//! Upstream-run tasks (`tasks.rs`'s table) are mirrored as entries
//! ([`Entry`]: `mcp:task:up:{hubId}` and `mcp:task:by:<sha256 of server,
//! upstream id>`, PX = the task's ttl), so `tasks/get|result|cancel|update`,
//! `tasks/list` and status routing find them on any instance.
//!
//! Redis down: the records are not written (debug log) and only the running
//! instance knows the task; the record of a task never outlives the task's
//! ttl.

use super::heavy::Runs;
use crate::hub::{Downstream, Hub};
use crate::http::Response;
use crate::hub::refusal::Refusal;
use crate::protocol::{jsonrpc, Era};
use crate::store::redis::RedisStore;
use serde_json::{json, Value};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Key prefix of a mirrored task: `mcp:task:{taskId}`.
pub const KEY_PREFIX: &str = "mcp:task:";
/// How often the running instance looks for cancellations made elsewhere.
pub const WATCH_EVERY: Duration = Duration::from_millis(500);
/// How often the running instance refreshes its live runs' heartbeat keys
/// (`mcp:task:beat:{taskId}`, one pipelined round trip for all of them).
pub const BEAT_EVERY: Duration = Duration::from_secs(2);
/// A heartbeat key's life: a run still `working` in its record whose
/// heartbeat is gone reads as `failed` ("the hub instance running it
/// stopped") on every instance, so a dead instance's task turns failed
/// within this bound (plus the reader's round trip).
pub const BEAT_TTL: Duration = Duration::from_secs(10);
/// Key prefix of a run's heartbeat.
pub const BEAT_PREFIX: &str = "mcp:task:beat:";
/// How often another instance's legacy `tasks/result` reads the record.
pub const RESULT_POLL: Duration = Duration::from_millis(250);
/// The statusMessage of a task whose instance stopped.
pub const ORPHANED: &str = "The hub instance running it stopped";

/// Writes the record unless the stored one is cancelled (ARGV[3] = "1":
/// this write is the cancellation itself), and the run's heartbeat key
/// (KEYS[2]): set for ARGV[5] ms while the run is live (ARGV[4] = "1"),
/// deleted once it ended. 1 written, 0 refused.
const PUT: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur and ARGV[3] ~= '1' then
  local ok, t = pcall(cjson.decode, cur)
  if ok and type(t) == 'table' and type(t.task) == 'table' and t.task.status == 'cancelled' then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if ARGV[4] == '1' then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[5])
else
  redis.call('DEL', KEYS[2])
end
return 1
";

/// Marks the record cancelled (ARGV[1]) unless the task has ended; returns
/// the record now stored, nil when there is none.
const CANCEL: &str = r"
local cur = redis.call('GET', KEYS[1])
if not cur then return false end
local ok, t = pcall(cjson.decode, cur)
if ok and type(t) == 'table' and type(t.task) == 'table' then
  local s = t.task.status
  if s == 'completed' or s == 'failed' or s == 'cancelled' then return cur end
end
redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL')
return ARGV[1]
";

fn script(which: &'static str) -> &'static redis::Script {
    static PUT_SCRIPT: OnceLock<redis::Script> = OnceLock::new();
    static CANCEL_SCRIPT: OnceLock<redis::Script> = OnceLock::new();
    let cell = if which == "put" { &PUT_SCRIPT } else { &CANCEL_SCRIPT };
    cell.get_or_init(|| redis::Script::new(if which == "put" { PUT } else { CANCEL }))
}

/// Whether `id` has the shape of a hub task id (`mcphub-t` + 32 hex), so a
/// client's string never becomes an arbitrary Redis key.
pub fn is_hub_task_id(id: &str) -> bool {
    id.len() == 40 && id.starts_with("mcphub-t") && id[8..].bytes().all(|b| b.is_ascii_hexdigit())
}

fn key(id: &str) -> String {
    format!("{KEY_PREFIX}{id}")
}

/// Key prefix of an upstream-run task's entry by hub id: `mcp:task:up:{hubId}`.
pub const ENTRY_PREFIX: &str = "mcp:task:up:";
/// Key prefix of the same entry by upstream task:
/// `mcp:task:by:<sha256 hex of server "\n" upstream id>`.
pub const BY_UPSTREAM_PREFIX: &str = "mcp:task:by:";

/// SHA-256 hex of a legacy client session id: how an owner's session is
/// recorded in Redis (never the raw id, which is the session's credential).
pub fn digest(session: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(session.as_bytes()))
}

fn by_upstream_key(server: &str, upstream_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(server.as_bytes());
    h.update(b"\n");
    h.update(upstream_id.as_bytes());
    format!("{BY_UPSTREAM_PREFIX}{}", hex::encode(h.finalize()))
}

/// An upstream-run task's entry as mirrored in Redis (`tasks.rs`'s table
/// row): JSON `{"hubId", "server", "upstreamId", "user": name|null,
/// "session": sha256 hex|null}`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// The hub task id.
    pub hub_id: String,
    /// The server running it.
    pub server: String,
    /// Its id there.
    pub upstream_id: String,
    /// The owning user (`None`: anonymous).
    pub user: Option<String>,
    /// The owning legacy session's [`digest`] (`None`: a modern client).
    pub session: Option<String>,
}

impl Entry {
    /// The entry of hub task `hub_id` (`upstream_id` on `server`) for `owner`.
    pub fn new(hub_id: &str, server: &str, upstream_id: &str, owner: &super::Owner) -> Entry {
        Entry {
            hub_id: hub_id.into(),
            server: server.into(),
            upstream_id: upstream_id.into(),
            user: owner.user.clone(),
            session: owner.session.as_deref().map(digest),
        }
    }

    /// Whether `owner` is this entry's owner (user equal, session digests equal).
    pub fn owned_by(&self, owner: &super::Owner) -> bool {
        self.user == owner.user && self.session == owner.session.as_deref().map(digest)
    }
}

/// Mirrors `e` under both its keys for `keep` (one pipelined round trip:
/// two `SET … PX`). A store error: debug log, the entry stays local.
pub fn put_entry(redis: &RedisStore, e: &Entry, keep: Duration) {
    let Ok(json) = serde_json::to_string(e) else { return };
    let px = keep.as_millis().max(1) as u64;
    let written = redis.run(|c| {
        redis::pipe()
            .cmd("SET").arg(format!("{ENTRY_PREFIX}{}", e.hub_id)).arg(&json).arg("PX").arg(px).ignore()
            .cmd("SET").arg(by_upstream_key(&e.server, &e.upstream_id)).arg(&json).arg("PX").arg(px).ignore()
            .query::<()>(c)
    });
    if let Err(err) = written {
        log::debug!("task {} not mirrored in the store: {err}", e.hub_id);
    }
}

fn parse_entry(raw: Option<String>) -> Option<Entry> {
    let raw = raw?;
    let parsed = serde_json::from_str(&raw);
    parsed.map_err(|err| log::warn!("a task entry in the store is malformed ({err}); treated as unknown")).ok()
}

/// The mirrored entry of hub task `hub_id` (one `GET`); `None` for an id
/// that is not a hub task id, none, a malformed one, or Redis failing.
pub fn get_entry(redis: &RedisStore, hub_id: &str) -> Option<Entry> {
    if !is_hub_task_id(hub_id) {
        return None;
    }
    let raw: Option<String> = redis.run(|c| redis::cmd("GET").arg(format!("{ENTRY_PREFIX}{hub_id}")).query(c)).map_err(|e| log::debug!("task lookup: {e}")).ok()?;
    parse_entry(raw).filter(|e| e.hub_id == hub_id)
}

/// The mirrored entries of `server`'s upstream tasks `upstream_ids`, in
/// order (one `MGET`); all `None` when Redis fails.
pub fn get_entries_by_upstream(redis: &RedisStore, server: &str, upstream_ids: &[&str]) -> Vec<Option<Entry>> {
    if upstream_ids.is_empty() {
        return Vec::new();
    }
    let keys: Vec<String> = upstream_ids.iter().map(|u| by_upstream_key(server, u)).collect();
    let raws: Vec<Option<String>> = redis.run(|c| redis::cmd("MGET").arg(&keys).query(c)).unwrap_or_else(|e| {
        log::debug!("task lookup: {e}");
        vec![None; keys.len()]
    });
    raws.into_iter()
        .zip(upstream_ids)
        .map(|(raw, u)| parse_entry(raw).filter(|e| e.server == server && e.upstream_id == *u))
        .collect()
}

fn terminal(status: Option<&str>) -> bool {
    matches!(status, Some("completed" | "failed" | "cancelled"))
}

/// Writes task `id`'s record (`record`: `{"task": …, "user": …}` and, for a
/// legacy run, `"session"`, `"outcome"`; see `heavy::Mirror`) until
/// `expires`, with its heartbeat while `live`; one round trip (a script).
/// Returns `false` only when the stored record says the task was cancelled
/// (through another instance) and this write is no cancellation
/// (`cancelling`): the cancellation stands. A store error is logged
/// (debug) and counts as written.
pub fn put_record(redis: &RedisStore, id: &str, record: &Value, cancelling: bool, live: bool, expires: Instant) -> bool {
    let px = expires.saturating_duration_since(Instant::now()).as_millis().max(1) as u64;
    let written = redis.run(|c| {
        script("put")
            .key(key(id))
            .key(beat_key(id))
            .arg(record.to_string())
            .arg(px)
            .arg(if cancelling { "1" } else { "0" })
            .arg(if live { "1" } else { "0" })
            .arg(BEAT_TTL.as_millis() as u64)
            .invoke::<i64>(c)
    });
    match written {
        Ok(n) => n == 1,
        Err(e) => {
            log::debug!("hub task {id} not mirrored in the store: {e}");
            true
        }
    }
}

/// Key prefix of a legacy owner's index of hub-run tasks (sorted set: hub
/// task id, score = its expiry in unix ms): `mcp:task:owner:<sha256 hex of
/// [user, session digest]>`.
pub const OWNER_PREFIX: &str = "mcp:task:owner:";

fn owner_key(owner: &super::Owner) -> Option<String> {
    use sha2::{Digest, Sha256};
    let session = digest(owner.session.as_deref()?);
    Some(format!("{OWNER_PREFIX}{}", hex::encode(Sha256::digest(json!([owner.user, session]).to_string().as_bytes()))))
}

/// Adds legacy hub-run task `id` to its owner's index until `keep` from now
/// (one pipelined round trip: ZADD, trim of the expired, PEXPIRE), so
/// `tasks/list` on any instance finds it ([`legacy_tasks`]).
pub fn index_legacy(redis: &RedisStore, id: &str, owner: &super::Owner, keep: Duration) {
    let Some(k) = owner_key(owner) else { return };
    let now = crate::store::now_ms();
    let until = now + keep.as_millis() as u64;
    let written = redis.run(|c| {
        redis::pipe()
            .cmd("ZADD").arg(&k).arg(until).arg(id).ignore()
            .cmd("ZREMRANGEBYSCORE").arg(&k).arg("-inf").arg(now).ignore()
            .cmd("PEXPIRE").arg(&k).arg(super::MAX_TTL.as_millis() as u64).ignore()
            .query::<()>(c)
    });
    if let Err(e) = written {
        log::debug!("hub task {id} not indexed in the store: {e}");
    }
}

/// The legacy hub-run tasks of `owner` that any instance recorded, as
/// [`stored`] reads them (`(task id, Task)`); two round trips (the index,
/// then the records with their heartbeats); empty on a Redis error.
pub fn legacy_tasks(redis: &RedisStore, owner: &super::Owner) -> Vec<(String, Value)> {
    let Some(k) = owner_key(owner) else { return Vec::new() };
    let ids: Vec<String> = redis.run(|c| redis::cmd("ZRANGEBYSCORE").arg(&k).arg(crate::store::now_ms()).arg("+inf").query(c)).unwrap_or_default();
    let ids: Vec<String> = ids.into_iter().filter(|id| is_hub_task_id(id)).take(super::MAX_TASKS_PER_SESSION).collect();
    if ids.is_empty() {
        return Vec::new();
    }
    let read: Vec<(Option<String>, i64)> = redis
        .run(|c| {
            let mut p = redis::pipe();
            for id in &ids {
                p.cmd("GET").arg(key(id)).cmd("EXISTS").arg(beat_key(id));
            }
            p.query::<Vec<(Option<String>, i64)>>(c)
        })
        .unwrap_or_default();
    let session = owner.session.as_deref().map(digest);
    ids.into_iter()
        .zip(read)
        .filter_map(|(id, (raw, beat))| {
            let s = parse_stored(&raw?)?;
            let s = if terminal(s.status()) || beat == 1 { s } else { s.orphaned() };
            (s.user == owner.user && s.session == session).then_some((id, s.task))
        })
        .collect()
}

fn beat_key(id: &str) -> String {
    format!("{BEAT_PREFIX}{id}")
}

/// A stored hub-run task as every instance reads it ([`stored`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// The task (modern `DetailedTask`, legacy `Task`), with `failed` /
    /// [`ORPHANED`] when it was live and its heartbeat is gone.
    pub task: Value,
    /// The owning user.
    pub user: Option<String>,
    /// The owning legacy session's [`digest`] (`None`: a modern task).
    pub session: Option<String>,
    /// A legacy task's outcome once ended: `{"result": …}` or `{"error": …}`.
    pub outcome: Option<Value>,
    /// A legacy task's server (what a `tasks/result` timeout names).
    pub server: Option<String>,
}

impl Stored {
    fn status(&self) -> Option<&str> {
        self.task.get("status").and_then(Value::as_str)
    }

    /// Marks a live task whose instance stopped as failed (pure).
    fn orphaned(mut self) -> Stored {
        let error = json!({"code": crate::protocol::codes::INTERNAL_ERROR, "message": "the hub instance running the task stopped"});
        self.task["status"] = json!("failed");
        self.task["statusMessage"] = json!(ORPHANED);
        if self.session.is_some() {
            self.outcome = Some(json!({"error": error}));
        } else {
            self.task["error"] = error;
        }
        self
    }
}

/// Task `id`'s stored record as any instance reads it: one round trip
/// (GET of the record and EXISTS of its heartbeat, pipelined); a live task
/// without heartbeat reads as failed ([`BEAT_TTL`]). `None`: not a hub task
/// id, no record, Redis failing (debug log), a malformed record (warn log).
pub fn stored(redis: &RedisStore, id: &str) -> Option<Stored> {
    if !is_hub_task_id(id) {
        return None;
    }
    let read: Result<(Option<String>, i64), _> = redis.run(|c| redis::pipe().cmd("GET").arg(key(id)).cmd("EXISTS").arg(beat_key(id)).query(c));
    let (raw, beat) = read.map_err(|e| log::debug!("task lookup: {e}")).ok()?;
    let record = parse_stored(&raw?);
    if record.is_none() {
        log::warn!("hub task {id}: the store's record {KEY_PREFIX}{id} is malformed (not {{task: object, user: string|null}}); treated as unknown");
    }
    let record = record?;
    Some(if terminal(record.status()) || beat == 1 { record } else { record.orphaned() })
}

/// A stored record (pure); `None` unless [`parse_record`] takes it and
/// `session`, `server` are strings or absent.
fn parse_stored(raw: &str) -> Option<Stored> {
    let (task, user) = parse_record(raw)?;
    let Ok(Value::Object(mut rest)) = serde_json::from_str::<Value>(raw) else { return None };
    let text = |v: Option<Value>| match v {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(s)) => Some(Some(s)),
        Some(_) => None,
    };
    let session = text(rest.remove("session"))?;
    let server = text(rest.remove("server"))?;
    let outcome = rest.remove("outcome").filter(Value::is_object);
    Some(Stored { task, user, session, outcome, server })
}

/// A stored record's `(DetailedTask, user)` (pure); `None` unless it is
/// `{"task": {…}, "user": "name"|null}` (`user` absent counts as null).
fn parse_record(raw: &str) -> Option<(Value, Option<String>)> {
    let Ok(Value::Object(mut record)) = serde_json::from_str::<Value>(raw) else { return None };
    let user = match record.remove("user") {
        None | Some(Value::Null) => None,
        Some(Value::String(u)) => Some(u),
        Some(_) => return None,
    };
    match record.remove("task") {
        Some(task @ Value::Object(_)) => Some((task, user)),
        _ => None,
    }
}

/// The record `stored` marked cancelled at `now` (no `result` nor
/// `error`; a legacy one with the cancellation as its outcome, as the
/// running instance records it). A task that is not a JSON object (never
/// one `parse_record` passes on) is a clean refusal, never a panic.
fn cancelled_record(stored: &Stored, now: &str) -> Result<String, Refusal> {
    let Value::Object(mut cancelled) = stored.task.clone() else {
        return Err(Refusal::TaskCancelFailed("the stored task record is malformed".into()));
    };
    cancelled.insert("status".into(), json!("cancelled"));
    cancelled.insert("statusMessage".into(), json!("The task was cancelled by request."));
    cancelled.insert("lastUpdatedAt".into(), json!(now));
    cancelled.remove("result");
    cancelled.remove("error");
    let mut record = json!({"task": cancelled, "user": stored.user});
    if stored.session.is_some() {
        record["session"] = json!(stored.session);
        record["server"] = json!(stored.server);
        record["outcome"] = json!({"error": {"code": crate::protocol::codes::SERVER_ERROR, "message": "Task cancelled"}});
    }
    Ok(record.to_string())
}

fn reply(era: Era, id: &Value, result: Value) -> Response {
    let result = if era == Era::Modern { crate::hub::shape::result(Era::Modern, result) } else { result };
    Response::json(200, &jsonrpc::result_response(id, result))
}

/// Answers `tasks/get|update|cancel` (modern) or `tasks/get|result|cancel`
/// (legacy) for a hub-run task another instance runs (or ran), from its
/// record; `None` when there is no such record (no Redis, not a hub task
/// id, unknown, expired). Anyone but the owner (the user, and for a legacy
/// task the session, compared by digest) gets -32602 like an unknown id.
/// A legacy `tasks/result` reads the record every [`RESULT_POLL`] until the
/// task ended or the request's deadline (then -32001, as on the running
/// instance).
pub fn handle(hub: &Hub, down: &Downstream, id: &Value, method: &str, task_id: &str) -> Option<Response> {
    let redis = hub.redis()?;
    let stored = stored(redis, task_id)?;
    let session = match (down.era, &down.session) {
        (Era::Legacy, Some(s)) => Some(digest(&s.id)),
        _ => None,
    };
    if stored.user.as_deref() != down.user.as_ref().map(|u| u.name.as_str()) || stored.session != session {
        return Some(Refusal::TaskNotFound.response(Some(id)));
    }
    let era = down.era;
    match method {
        "tasks/get" => Some(reply(era, id, stored.task)),
        "tasks/update" if era == Era::Modern => Some(reply(era, id, json!({}))),
        "tasks/cancel" => {
            if terminal(stored.status()) {
                return Some(match era {
                    Era::Modern => reply(era, id, json!({})),
                    Era::Legacy => Refusal::TaskTerminal { status: stored.status().unwrap_or("").to_string() }.response(Some(id)),
                });
            }
            let record = match cancelled_record(&stored, &super::heavy::now_iso()) {
                Ok(record) => record,
                Err(refusal) => return Some(refusal.response(Some(id))),
            };
            let done: Result<Option<String>, _> = redis.run(|c| script("cancel").key(key(task_id)).arg(&record).invoke(c));
            let now = match done {
                Ok(now) => now,
                Err(e) => return Some(Refusal::TaskCancelFailed(e.to_string()).response(Some(id))),
            };
            log::info!("hub task {task_id} cancelled by its client (through this instance; its instance stops it)");
            Some(match era {
                Era::Modern => reply(era, id, json!({})),
                Era::Legacy => {
                    let task = now.as_deref().and_then(parse_record).map_or(Value::Null, |(t, _)| t);
                    reply(era, id, task)
                }
            })
        }
        "tasks/result" if era == Era::Legacy => Some(result(redis, hub, down, id, task_id, stored)),
        _ => None,
    }
}

/// A legacy `tasks/result` answered from the record (see [`handle`]).
fn result(redis: &RedisStore, hub: &Hub, down: &Downstream, id: &Value, task_id: &str, mut stored: Stored) -> Response {
    loop {
        if terminal(stored.status()) {
            return match stored.outcome.as_ref().and_then(|o| o.get("result").cloned().map(Ok).or_else(|| o.get("error").cloned().map(Err))) {
                Some(Ok(mut r)) => {
                    if let Some(o) = r.as_object_mut() {
                        let meta = o.entry("_meta").or_insert_with(|| json!({}));
                        if let Some(m) = meta.as_object_mut() {
                            m.insert(super::RELATED_TASK.into(), json!({"taskId": task_id}));
                        }
                    }
                    Response::json(200, &jsonrpc::result_response(id, r))
                }
                Some(Err(e)) => Response::json(200, &json!({"jsonrpc": "2.0", "id": id, "error": e})),
                None => Refusal::TaskCancelFailed("the stored task record has no outcome".into()).response(Some(id)),
            };
        }
        let now = Instant::now();
        if now >= down.deadline {
            let ms = hub.config().hub_timeout.as_millis() as u64;
            let err = crate::upstream::UpstreamError::HubTimeout { server: stored.server.clone().unwrap_or_default(), timeout_ms: ms };
            return Response::json(200, &crate::hub::refusal::upstream_error(&err).to_response(Some(id)));
        }
        std::thread::sleep(RESULT_POLL.min(down.deadline - now));
        match self::stored(redis, task_id) {
            Some(s) => stored = s,
            None => return Refusal::TaskNotFound.response(Some(id)),
        }
    }
}

/// Starts the watcher of this instance's live hub-run tasks (both eras)
/// unless it runs: every [`WATCH_EVERY`] it reads their records (one `MGET`)
/// and cancels those cancelled elsewhere, and every [`BEAT_EVERY`] it
/// refreshes their heartbeats (one pipeline); it ends when no run is live.
pub fn watch(hub: &Hub) {
    if hub.redis().is_none() || !hub.tasks().runs().start_watching() {
        return;
    }
    let watcher = hub.clone();
    let mut last_beat = Instant::now();
    let spawned = hub.threads().spawn_owned("hub-task-watch", crate::threads::Kind::Poller, move |stop| loop {
        let hub = &watcher;
        let stopped = stop.sleep(WATCH_EVERY);
        let runs: &Runs = hub.tasks().runs();
        if stopped {
            return;
        }
        let live = runs.live();
        if live.is_empty() && runs.stop_watching() {
            return;
        }
        let Some(redis) = hub.redis() else { return };
        if live.is_empty() {
            continue;
        }
        if last_beat.elapsed() >= BEAT_EVERY {
            last_beat = Instant::now();
            let beat = redis.run(|c| {
                let mut p = redis::pipe();
                for id in &live {
                    p.cmd("SET").arg(beat_key(id)).arg("1").arg("PX").arg(BEAT_TTL.as_millis() as u64).ignore();
                }
                p.query::<()>(c)
            });
            if let Err(e) = beat {
                log::debug!("hub task heartbeats not written: {e}");
            }
        }
        let keys: Vec<String> = live.iter().map(|id| key(id)).collect();
        let records: Vec<Option<String>> = redis.run(|c| redis::cmd("MGET").arg(&keys).query(c)).unwrap_or_default();
        for (id, record) in live.iter().zip(records) {
            // Quietly: a malformed record is no cancellation, and the run's
            // own next write replaces it (no warn line every WATCH_EVERY).
            let record = record.and_then(|r| parse_record(&r));
            let cancelled = record.is_some_and(|(t, _)| t.get("status").and_then(Value::as_str) == Some("cancelled"));
            if cancelled && runs.cancel_local(id) {
                log::info!("hub task {id} cancelled through another instance: its upstream call is cut");
            }
        }
    });
    if let Err(e) = spawned {
        log::warn!("cannot watch hub tasks for cancellations from other instances: {e}");
        hub.tasks().runs().stop_watching();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hub_task_ids_become_keys() {
        assert!(is_hub_task_id("mcphub-t0123456789abcdef0123456789abcdef"));
        for bad in ["mcphub-t0123", "task-1", "mcphub-t0123456789abcdef0123456789abcdeg", "mcphub-t0123456789abcdef0123456789abcdef0", "*"] {
            assert!(!is_hub_task_id(bad), "{bad}");
        }
        assert_eq!(key("mcphub-tab"), "mcp:task:mcphub-tab");
    }

    #[test]
    fn only_well_formed_records_are_read() {
        let (task, user) = parse_record(r#"{"task": {"taskId": "x", "status": "working"}, "user": "alice"}"#).unwrap();
        assert_eq!((task["status"].as_str(), user.as_deref()), (Some("working"), Some("alice")));
        assert_eq!(parse_record(r#"{"task": {"status": "working"}, "user": null}"#).map(|r| r.1), Some(None));
        for bad in ["7", "\"x\"", "[1]", "null", "not json", r#"{"task": 5, "user": null}"#, r#"{"task": [], "user": "a"}"#, r#"{"user": "a"}"#, r#"{"task": {}, "user": 5}"#] {
            assert_eq!(parse_record(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_cancelled_record_replaces_status_and_outcome_and_a_non_object_task_is_a_clean_error() {
        let task = json!({"taskId": "t", "status": "working", "statusMessage": "Running", "result": {"x": 1}, "error": {"code": 1}});
        let stored = |task: Value, session: Option<&str>| Stored { task, user: Some("alice".into()), session: session.map(str::to_string), outcome: None, server: Some("jobs".into()) };
        let record = cancelled_record(&stored(task.clone(), None), "2026-01-01T00:00:00Z").unwrap();
        assert_eq!(
            record,
            r#"{"task":{"taskId":"t","status":"cancelled","statusMessage":"The task was cancelled by request.","lastUpdatedAt":"2026-01-01T00:00:00Z"},"user":"alice"}"#
        );
        let legacy = parse_stored(&cancelled_record(&stored(task, Some("d1")), "now").unwrap()).unwrap();
        assert_eq!((legacy.session.as_deref(), legacy.server.as_deref()), (Some("d1"), Some("jobs")), "a legacy record keeps its owner");
        assert_eq!(legacy.outcome, Some(json!({"error": {"code": -32000, "message": "Task cancelled"}})));
        for bad in [json!(5), json!("x"), json!([1]), Value::Null] {
            let e = cancelled_record(&stored(bad.clone(), None), "now").unwrap_err().error();
            assert_eq!((e.code, e.message.as_str()), (-32603, "the task could not be cancelled: the stored task record is malformed"), "{bad}");
        }
    }

    #[test]
    fn a_live_task_without_heartbeat_reads_failed() {
        let raw = r#"{"task": {"taskId": "t", "status": "working"}, "user": null, "session": "d", "server": "jobs"}"#;
        let s = parse_stored(raw).unwrap().orphaned();
        assert_eq!((s.task["status"].as_str(), s.task["statusMessage"].as_str()), (Some("failed"), Some(ORPHANED)));
        assert!(s.outcome.unwrap()["error"]["message"].as_str().unwrap().contains("stopped"));
        let modern = parse_stored(r#"{"task": {"status": "working"}, "user": "a"}"#).unwrap().orphaned();
        assert_eq!(modern.task["error"]["code"], -32603, "a modern DetailedTask inlines its error");
        assert!(parse_stored(r#"{"task": {}, "user": null, "session": 5}"#).is_none());
    }

    #[test]
    fn terminal_statuses() {
        assert!(terminal(Some("completed")) && terminal(Some("failed")) && terminal(Some("cancelled")));
        assert!(!terminal(Some("working")) && !terminal(Some("input_required")) && !terminal(None));
    }
}
