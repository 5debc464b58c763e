//! Heavy tools as hub-run tasks for 2026-07-28 clients (issue 6 "Heavy jobs":
//! the `io.modelcontextprotocol/tasks` extension, SEP-2663), and their state
//! in Redis so another hub instance answers `tasks/get` and `tasks/cancel`.
//! A modern client declaring the extension gets a flat `CreateTaskResult` at
//! once; `tasks/get` inlines the result; only the creating user's key may use
//! the id. Mocks and hubs in process on loopback; a redis-server of the test's own.

mod hub_util;
mod redis_util;

use hub_util::{hub, mock_with, send, wait_until, HubUnderTest, Mock, ACCEPT, JSON, PATIENCE};
use mcphub_mock::{Era, MockConfig};
use mcphub::users::{key_digest, new_key};
use redis_util::RedisServer;
use serde_json::{json, Value};
use std::time::Duration;

const EXT: &str = "io.modelcontextprotocol/tasks";

struct Keys {
    alice: String,
    bob: String,
}

fn config(mock: &Mock, keys: &Keys, redis: Option<&RedisServer>) -> Value {
    let user = |key: &str| json!({"keys": [format!("sha256:{}", key_digest(key))]});
    let mut cfg = json!({
        "workers": 16,
        "users": {"alice": user(&keys.alice), "bob": user(&keys.bob)},
        "mcpServers": {"jobs": {"url": mock.url, "protocol": "legacy", "timeoutMs": 7000,
            "heavyTools": ["sleep"], "heavyConcurrency": 1, "heavyQueue": 8}},
    });
    if let Some(r) = redis {
        cfg["redis"] = json!({"url": r.url()});
    }
    cfg
}

fn setup(redis: Option<&RedisServer>) -> (Mock, Keys, HubUnderTest) {
    let mock = mock_with(MockConfig { era: Era::Legacy, name: "jobs".into(), ..MockConfig::default() });
    let keys = Keys { alice: new_key(), bob: new_key() };
    let h = hub(&[], config(&mock, &keys, redis));
    (mock, keys, h)
}

/// A 2026-07-28 request with `key`, declaring the tasks extension when `tasks`.
fn modern(url: &str, key: &str, method: &str, mut params: Value, tasks: bool) -> (u16, Value) {
    let caps = if tasks { json!({"extensions": {EXT: {}}}) } else { json!({}) };
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": caps,
    });
    let field = mcphub::protocol::headers::name_field(method);
    let name = field.and_then(|f| params.get(f)).and_then(Value::as_str).map(mcphub::protocol::headers::encode_value);
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}).to_string();
    let auth = format!("Bearer {key}");
    let mut h = vec![ACCEPT, JSON, ("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", method), ("Authorization", auth.as_str())];
    let name_owned;
    if let Some(n) = name {
        name_owned = n;
        h.push(("Mcp-Name", name_owned.as_str()));
    }
    let r = send("POST", url, &h, &body);
    (r.status, r.json())
}

/// A heavy `sleep` of `ms` as a task; the flat `CreateTaskResult`.
fn create(url: &str, key: &str, ms: u64) -> Value {
    let (status, r) = modern(url, key, "tools/call", json!({"name": "sleep", "arguments": {"ms": ms}}), true);
    assert_eq!(status, 200, "{r}");
    r.get("result").cloned().unwrap_or_else(|| panic!("no CreateTaskResult: {r}"))
}

fn get(url: &str, key: &str, id: &str) -> Value {
    modern(url, key, "tasks/get", json!({"taskId": id}), true).1
}

/// Polls `tasks/get` until the task is no longer `working`; the last `DetailedTask`.
fn wait_done(url: &str, key: &str, id: &str) -> Value {
    let mut task = Value::Null;
    wait_until(&format!("task {id} to end"), PATIENCE, || {
        let r = get(url, key, id);
        task = r.get("result").cloned().unwrap_or_else(|| panic!("tasks/get failed: {r}"));
        task["status"] != "working"
    });
    task
}

/// Waits until the mock has started `n` `sleep` calls.
fn wait_sleeps(mock: &Mock, n: u64) {
    wait_until(&format!("the upstream to start sleep call {n}"), PATIENCE, || mock.stats()["tools"]["sleep"] == n);
}

/// Waits until the mock heard `notifications/cancelled`.
fn wait_upstream_cancelled(mock: &Mock) {
    wait_until("the upstream to hear of the cancellation", PATIENCE, || mock.stats()["cancelled"].as_u64() >= Some(1));
}

#[test]
fn a_modern_client_with_the_extension_gets_a_hub_task_and_its_result_inlined() {
    let (mock, keys, h) = setup(None);
    let (_, discover) = modern(&h.url, &keys.alice, "server/discover", json!({}), true);
    assert!(discover.pointer(&format!("/result/capabilities/extensions/{}", EXT.replace('/', "~1"))).is_some(), "heavy tools make the hub offer the extension: {discover}");
    let (_, list) = modern(&h.url, &keys.alice, "tools/list", json!({}), true);
    let sleep = list["result"]["tools"].as_array().unwrap().iter().find(|t| t["name"] == "sleep").cloned().unwrap();
    assert_eq!(sleep.pointer("/execution/taskSupport"), Some(&json!("optional")), "{sleep}");

    // Without the extension: the call waits in the heavy queue and answers the result.
    let (_, plain) = modern(&h.url, &keys.alice, "tools/call", json!({"name": "sleep", "arguments": {"ms": 20}}), false);
    assert_eq!(plain.pointer("/result/content/0/text"), Some(&json!("jobs: slept 20 ms")), "{plain}");

    let created = create(&h.url, &keys.alice, 3000);
    assert_eq!(created["resultType"], "task", "{created}");
    let id = created["taskId"].as_str().unwrap().to_string();
    // Answered at once: the upstream call (3 s) is still running.
    assert_eq!(get(&h.url, &keys.alice, &id)["result"]["status"], "working", "the task was not answered at once");
    assert!(id.starts_with("mcphub-t") && created["status"] == "working", "{created}");
    assert!(created["ttlMs"].is_u64() && created["pollIntervalMs"].is_u64() && created.get("ttl").is_none(), "SEP-2663 field names: {created}");

    // Bob's key does not open Alice's task.
    for method in ["tasks/get", "tasks/cancel", "tasks/update"] {
        let (_, r) = modern(&h.url, &keys.bob, method, json!({"taskId": id}), true);
        assert_eq!(r["error"]["code"], -32602, "{method}: {r}");
    }
    // tasks/update on a hub task: the empty ack (it never asks for input).
    let (_, upd) = modern(&h.url, &keys.alice, "tasks/update", json!({"taskId": id, "inputResponses": {}}), true);
    assert!(upd["result"].is_object() && upd.get("error").is_none(), "{upd}");

    let done = wait_done(&h.url, &keys.alice, &id);
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done.pointer("/result/content/0/text"), Some(&json!("jobs: slept 3000 ms")), "result inlined: {done}");
    assert_eq!(mock.stats()["tools"]["sleep"], 2);
    // Cancelling an ended task: the same empty ack (SEP-2663), status unchanged.
    let (_, ack) = modern(&h.url, &keys.alice, "tasks/cancel", json!({"taskId": id}), true);
    assert!(ack["result"].is_object() && ack.get("error").is_none(), "{ack}");
    assert_eq!(get(&h.url, &keys.alice, &id)["result"]["status"], "completed");
}

#[test]
fn a_modern_task_cancelled_while_it_runs_has_its_upstream_call_cut() {
    let (mock, keys, h) = setup(None);
    let id = create(&h.url, &keys.alice, 6000)["taskId"].as_str().unwrap().to_string();
    wait_sleeps(&mock, 1);
    let cancelled_at = std::time::Instant::now();
    let (_, ack) = modern(&h.url, &keys.alice, "tasks/cancel", json!({"taskId": id}), true);
    assert!(ack["result"].is_object(), "{ack}");
    assert_eq!(get(&h.url, &keys.alice, &id)["result"]["status"], "cancelled");
    wait_upstream_cancelled(&mock);
    // The heavy slot is free at once: the next task runs now, not when the
    // cancelled 6 s run would have ended (half of it is a generous bound).
    let next = create(&h.url, &keys.alice, 10)["taskId"].as_str().unwrap().to_string();
    assert_eq!(wait_done(&h.url, &keys.alice, &next)["status"], "completed");
    let took = cancelled_at.elapsed();
    assert!(took < Duration::from_secs(3), "the cancelled run still held the heavy slot: next task done {took:?} after the cancel");
}

#[test]
fn another_instance_answers_tasks_get_and_cancel_from_redis() {
    let redis = RedisServer::start();
    let mock = mock_with(MockConfig { era: Era::Legacy, name: "jobs".into(), ..MockConfig::default() });
    let keys = Keys { alice: new_key(), bob: new_key() };
    let a = hub(&[], config(&mock, &keys, Some(&redis)));
    let b = hub(&[], config(&mock, &keys, Some(&redis)));

    // Created on A, followed on B to its result.
    let id = create(&a.url, &keys.alice, 600)["taskId"].as_str().unwrap().to_string();
    let key = format!("mcp:task:{id}");
    assert_eq!(redis.cli(&["EXISTS", &key]), "1", "the task is mirrored in Redis");
    let pttl: i64 = redis.cli(&["PTTL", &key]).parse().unwrap();
    assert!(pttl > 0 && pttl <= 3_600_000, "the record lives for the task's ttl: {pttl}");
    let on_b = get(&b.url, &keys.alice, &id);
    assert_eq!(on_b.pointer("/result/taskId"), Some(&json!(id)), "{on_b}");
    assert_eq!(get(&b.url, &keys.bob, &id)["error"]["code"], -32602, "another user's key is refused on B too");
    let done = wait_done(&b.url, &keys.alice, &id);
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done.pointer("/result/content/0/text"), Some(&json!("jobs: slept 600 ms")), "{done}");
    assert!(redis.cli(&["GET", &key]).contains("slept 600 ms"));

    // Cancelled through B while A runs it: A cuts its upstream call, and its
    // own later write does not undo the cancellation.
    let long = create(&a.url, &keys.alice, 5000)["taskId"].as_str().unwrap().to_string();
    wait_sleeps(&mock, 2);
    let (_, ack) = modern(&b.url, &keys.alice, "tasks/cancel", json!({"taskId": long}), true);
    assert!(ack["result"].is_object() && ack.get("error").is_none(), "{ack}");
    wait_until("A to learn of B's cancellation", PATIENCE, || get(&a.url, &keys.alice, &long)["result"]["status"] == "cancelled");
    wait_upstream_cancelled(&mock);
    assert_eq!(get(&b.url, &keys.alice, &long)["result"]["status"], "cancelled");

    // An id that is not a hub task id never becomes a Redis lookup, and unknown ids are -32602.
    for bogus in ["*", "mcphub-t00000000000000000000000000000000"] {
        assert_eq!(get(&b.url, &keys.alice, bogus)["error"]["code"], -32602, "{bogus}");
    }
}
