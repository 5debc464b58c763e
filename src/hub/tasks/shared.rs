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
//! Legacy (2025-11-25) hub tasks are not mirrored: their owner is a client
//! session, which lives in one instance. Redis down: the records are not
//! written (debug log) and only the running instance knows the task; the
//! record of a task never outlives the task's ttl.

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

/// Writes the record unless the stored one is cancelled (ARGV[3] = "1":
/// this write is the cancellation itself). 1 written, 0 refused.
const PUT: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur and ARGV[3] ~= '1' then
  local ok, t = pcall(cjson.decode, cur)
  if ok and type(t) == 'table' and type(t.task) == 'table' and t.task.status == 'cancelled' then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
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

fn terminal(status: Option<&str>) -> bool {
    matches!(status, Some("completed" | "failed" | "cancelled"))
}

/// Writes task `id`'s record (`task`: the `DetailedTask`) until `expires`.
/// Returns `false` only when the stored record says the task was cancelled
/// (through another instance) and `task` does not: the cancellation stands.
/// A store error is logged (debug) and counts as written.
pub fn put(redis: &RedisStore, id: &str, task: &Value, user: Option<&str>, expires: Instant) -> bool {
    let px = expires.saturating_duration_since(Instant::now()).as_millis().max(1) as u64;
    let record = json!({"task": task, "user": user}).to_string();
    let cancelling = if task.get("status").and_then(Value::as_str) == Some("cancelled") { "1" } else { "0" };
    let written = redis.run(|c| script("put").key(key(id)).arg(record).arg(px).arg(cancelling).invoke::<i64>(c));
    match written {
        Ok(n) => n == 1,
        Err(e) => {
            log::debug!("hub task {id} not mirrored in the store: {e}");
            true
        }
    }
}

/// The stored record of task `id`: `(DetailedTask, user)`; `None` when
/// there is none or Redis fails (debug log), or the record is malformed
/// (warn log): only `{"task": {…}, "user": "name"|null}` is a record, so
/// nothing Redis holds can panic a request.
fn get(redis: &RedisStore, id: &str) -> Option<(Value, Option<String>)> {
    let parsed = parse_record(&raw(redis, id)?);
    if parsed.is_none() {
        log::warn!("hub task {id}: the store's record {KEY_PREFIX}{id} is malformed (not {{task: object, user: string|null}}); treated as unknown");
    }
    parsed
}

/// The stored record of task `id` as text; `None` when there is none or
/// Redis fails (debug log).
fn raw(redis: &RedisStore, id: &str) -> Option<String> {
    redis.run(|c| redis::cmd("GET").arg(key(id)).query(c)).map_err(|e| log::debug!("task lookup: {e}")).ok()?
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

/// The record marking `task` cancelled at `now` (no `result` nor `error`),
/// for `user`. A task that is not a JSON object (never one `parse_record`
/// passes on) is a clean refusal, never a panic on indexing it.
fn cancelled_record(task: Value, user: Option<&str>, now: &str) -> Result<String, Refusal> {
    let Value::Object(mut cancelled) = task else {
        return Err(Refusal::TaskCancelFailed("the stored task record is malformed".into()));
    };
    cancelled.insert("status".into(), json!("cancelled"));
    cancelled.insert("statusMessage".into(), json!("The task was cancelled by request."));
    cancelled.insert("lastUpdatedAt".into(), json!(now));
    cancelled.remove("result");
    cancelled.remove("error");
    Ok(json!({"task": cancelled, "user": user}).to_string())
}

fn reply(id: &Value, result: Value) -> Response {
    Response::json(200, &jsonrpc::result_response(id, crate::hub::methods::shape_result(Era::Modern, result)))
}

/// Answers a modern `tasks/get|update|cancel` for a hub task another
/// instance runs (or ran); `None` when there is no such record (no Redis,
/// not a hub task id, unknown, expired). Another user's task is -32602 like
/// an unknown one.
pub fn handle(hub: &Hub, down: &Downstream, id: &Value, method: &str, task_id: &str) -> Option<Response> {
    let redis = hub.redis()?;
    if !is_hub_task_id(task_id) {
        return None;
    }
    let (task, user) = get(redis, task_id)?;
    if user.as_deref() != down.user.as_ref().map(|u| u.name.as_str()) {
        return Some(Refusal::TaskNotFound.response(Some(id)));
    }
    match method {
        "tasks/get" => Some(reply(id, task)),
        "tasks/update" => Some(reply(id, json!({}))),
        "tasks/cancel" => {
            if !terminal(task.get("status").and_then(Value::as_str)) {
                let record = match cancelled_record(task, user.as_deref(), &super::heavy::now_iso()) {
                    Ok(record) => record,
                    Err(refusal) => return Some(refusal.response(Some(id))),
                };
                let done: Result<Option<String>, _> = redis.run(|c| script("cancel").key(key(task_id)).arg(record).invoke(c));
                if let Err(e) = done {
                    return Some(Refusal::TaskCancelFailed(e.to_string()).response(Some(id)));
                }
                log::info!("hub task {task_id} cancelled by its client (through this instance; its instance stops it)");
            }
            Some(reply(id, json!({})))
        }
        _ => None,
    }
}

/// Starts the watcher of this instance's running modern tasks unless it
/// runs: every [`WATCH_EVERY`] it reads their records and cancels those
/// cancelled elsewhere; it ends when no modern run is live.
pub fn watch(hub: &Hub) {
    if hub.redis().is_none() || !hub.tasks().runs().start_watching() {
        return;
    }
    let watcher = hub.clone();
    let spawned = hub.threads().spawn_owned("hub-task-watch", crate::threads::Kind::Poller, move |stop| loop {
        let hub = &watcher;
        let stopped = stop.sleep(WATCH_EVERY);
        let runs: &Runs = hub.tasks().runs();
        if stopped {
            return;
        }
        let live = runs.live_modern();
        if live.is_empty() && runs.stop_watching() {
            return;
        }
        let Some(redis) = hub.redis() else { return };
        for id in live {
            // Quietly: a malformed record is no cancellation, and the run's
            // own next write replaces it (no warn line every WATCH_EVERY).
            let record = raw(redis, &id).and_then(|r| parse_record(&r));
            let cancelled = record.is_some_and(|(t, _)| t.get("status").and_then(Value::as_str) == Some("cancelled"));
            if cancelled && runs.cancel_local(&id) {
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
        let record = cancelled_record(task, Some("alice"), "2026-01-01T00:00:00Z").unwrap();
        assert_eq!(
            record,
            r#"{"task":{"taskId":"t","status":"cancelled","statusMessage":"The task was cancelled by request.","lastUpdatedAt":"2026-01-01T00:00:00Z"},"user":"alice"}"#
        );
        for bad in [json!(5), json!("x"), json!([1]), Value::Null] {
            let e = cancelled_record(bad.clone(), None, "now").unwrap_err().error();
            assert_eq!((e.code, e.message.as_str()), (-32603, "the task could not be cancelled: the stored task record is malformed"), "{bad}");
        }
    }

    #[test]
    fn terminal_statuses() {
        assert!(terminal(Some("completed")) && terminal(Some("failed")) && terminal(Some("cancelled")));
        assert!(!terminal(Some("working")) && !terminal(Some("input_required")) && !terminal(None));
    }
}
