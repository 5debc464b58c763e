//! Tasks belong to their user (issue 14, holes 3 and 5): with two users,
//! alice cannot get, wait for, cancel, update or list bob's task — upstream-run
//! or hub-run, legacy or modern client, on this instance or another one
//! sharing Redis — and every refusal is byte for byte the answer for an id
//! that never existed. Each user holds at most `maxTasksPerUser` tasks, and
//! the hub at most `maxTasks` in all; at a cap the call is refused before
//! anything reaches the upstream, other users keep creating tasks (under
//! their own cap), and a call that fails or creates no task gives its
//! reserved slot back. A malformed task record in Redis is an
//! unknown task, never a 500. Mocks and hubs in process on loopback; a
//! redis-server of the test's own.

mod hub_util;
mod redis_util;

use hub_util::{hub, mock_with, send, wait_until, HubUnderTest, Mock, Reply, ACCEPT, JSON};
use mcphub_mock::{Era, MockConfig};
use mcphub::users::{key_digest, new_key};
use redis_util::RedisServer;
use serde_json::{json, Value};
use std::time::Duration;

const EXT: &str = "io.modelcontextprotocol/tasks";
/// A well-formed hub task id that no hub ever minted.
const NEVER: &str = "mcphub-t00000000000000000000000000000000";

struct Keys {
    alice: String,
    bob: String,
}

struct Upstreams {
    /// Legacy upstream with tasks (`slow_task`).
    lm: Mock,
    /// Modern upstream with the tasks extension (`slow_task`, `ask_task`).
    mm: Mock,
    /// Legacy upstream without tasks whose `sleep` is a heavy tool (hub-run tasks).
    jobs: Mock,
}

fn upstreams() -> Upstreams {
    let tasks = |era, name: &str| {
        let m = mock_with(MockConfig { era, name: name.into(), ..MockConfig::default() });
        m.server.enable_tasks();
        m
    };
    let jobs = mock_with(MockConfig { era: Era::Legacy, name: "jobs".into(), ..MockConfig::default() });
    Upstreams { lm: tasks(Era::Legacy, "lm"), mm: tasks(Era::Modern, "mm"), jobs }
}

/// The hub config: users alice and bob, the three upstreams (every tool
/// named `server__tool`), `extra` top-level keys on top.
fn config(up: &Upstreams, keys: &Keys, extra: Value) -> Value {
    let user = |key: &str| json!({"keys": [format!("sha256:{}", key_digest(key))]});
    let mut cfg = json!({
        "workers": 16,
        "toolNaming": "prefix",
        "users": {"alice": user(&keys.alice), "bob": user(&keys.bob)},
        "mcpServers": {
            "lm": {"url": up.lm.url, "protocol": "legacy", "timeoutMs": 7000},
            "mm": {"url": up.mm.url, "protocol": "modern", "timeoutMs": 7000},
            "jobs": {"url": up.jobs.url, "protocol": "legacy", "timeoutMs": 7000,
                     "heavyTools": ["sleep"], "heavyConcurrency": 4, "heavyQueue": 8},
        },
    });
    for (k, v) in extra.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    cfg
}

fn keys() -> Keys {
    Keys { alice: new_key(), bob: new_key() }
}

/// A 2026-07-28 request with `key`, declaring the tasks extension; the whole answer.
fn modern(url: &str, key: &str, method: &str, params: Value) -> Reply {
    modern_as(url, Some(key), method, params)
}

/// [`modern`] with a hub key or none (anonymous).
fn modern_as(url: &str, key: Option<&str>, method: &str, mut params: Value) -> Reply {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {"extensions": {EXT: {}}},
    });
    let field = mcphub::protocol::headers::name_field(method);
    let name = field.and_then(|f| params.get(f)).and_then(Value::as_str).map(mcphub::protocol::headers::encode_value);
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}).to_string();
    let auth = key.map(|k| format!("Bearer {k}"));
    let mut h = vec![ACCEPT, JSON, ("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", method)];
    if let Some(a) = &auth {
        h.push(("Authorization", a.as_str()));
    }
    let name_owned;
    if let Some(n) = name {
        name_owned = n;
        h.push(("Mcp-Name", name_owned.as_str()));
    }
    send("POST", url, &h, &body)
}

/// A legacy client of the user with `key`: its session.
struct Legacy<'a> {
    url: &'a str,
    key: &'a str,
    sid: String,
    version: String,
}

impl<'a> Legacy<'a> {
    fn open(url: &'a str, key: &'a str) -> Legacy<'a> {
        let auth = format!("Bearer {key}");
        let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"test","version":"1"}}}"#;
        let r = send("POST", url, &[ACCEPT, JSON, ("Authorization", &auth)], init);
        assert_eq!(r.status, 200, "{}", r.text);
        let sid = r.header("mcp-session-id").expect("a session id").to_string();
        let version = r.json()["result"]["protocolVersion"].as_str().expect("a negotiated version").to_string();
        let c = Legacy { url, key, sid, version };
        let n = c.post(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        assert_eq!(n.status, 202, "{}", n.text);
        c
    }

    fn post(&self, body: &str) -> Reply {
        let auth = format!("Bearer {}", self.key);
        let h = [ACCEPT, JSON, ("Mcp-Session-Id", self.sid.as_str()), ("MCP-Protocol-Version", self.version.as_str()), ("Authorization", auth.as_str())];
        send("POST", self.url, &h, body)
    }

    fn call(&self, method: &str, params: Value) -> Reply {
        self.post(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string())
    }

    /// A task-augmented `tools/call`; the whole answer.
    fn create(&self, tool: &str, ms: u64) -> Value {
        self.call("tools/call", json!({"name": tool, "arguments": {"ms": ms}, "task": {"ttl": 60000}})).json()
    }

    fn task_ids(&self) -> Vec<String> {
        let r = self.call("tasks/list", json!({})).json();
        let tasks = r.pointer("/result/tasks").and_then(Value::as_array).unwrap_or_else(|| panic!("no tasks: {r}"));
        tasks.iter().map(|t| t["taskId"].as_str().unwrap().to_string()).collect()
    }
}

fn task_id_of(created: &Value) -> String {
    let id = created.pointer("/result/task/taskId").or(created.pointer("/result/taskId"));
    id.and_then(Value::as_str).unwrap_or_else(|| panic!("no CreateTaskResult: {created}")).to_string()
}

/// Asserts that `theirs` (about bob's task) is byte for byte the answer
/// `never` (about an id that never existed): status and body.
fn same_as_unknown(what: &str, theirs: &Reply, never: &Reply) {
    assert_eq!(theirs.status, never.status, "{what}: {}", theirs.text);
    assert_eq!(theirs.text, never.text, "{what}: another user's task must look exactly like an unknown one");
    assert_eq!(theirs.json()["error"]["code"], -32602, "{what}: {}", theirs.text);
}

/// Polls modern `tasks/get` until the task's status is not `working` (fails after 30 s).
fn modern_wait_done(url: &str, key: &str, id: &str) -> Value {
    wait_until(&format!("task {id} to end"), Duration::from_secs(30), || {
        let r = modern(url, key, "tasks/get", json!({"taskId": id})).json();
        let task = r.get("result").cloned().unwrap_or_else(|| panic!("tasks/get failed: {r}"));
        (task["status"] != "working").then_some(task)
    })
}

#[test]
fn a_modern_users_tasks_are_unknown_to_another_user() {
    let (up, keys) = (upstreams(), keys());
    let h = hub(&[], config(&up, &keys, json!({})));
    // Upstream-run: ask_task parks in input_required until its owner answers.
    let asked = modern(&h.url, &keys.bob, "tools/call", json!({"name": "mm__ask_task", "arguments": {}})).json();
    let upstream_run = task_id_of(&asked);
    // Hub-run: a heavy sleep long enough to be working while alice tries.
    let heavy = modern(&h.url, &keys.bob, "tools/call", json!({"name": "jobs__sleep", "arguments": {"ms": 5000}})).json();
    let hub_run = task_id_of(&heavy);
    for id in [&upstream_run, &hub_run] {
        for (method, params) in [
            ("tasks/get", json!({"taskId": id})),
            ("tasks/update", json!({"taskId": id, "inputResponses": {"confirm": {"action": "accept", "content": {"confirm": true}}}})),
            ("tasks/cancel", json!({"taskId": id})),
        ] {
            let theirs = modern(&h.url, &keys.alice, method, params.clone());
            let mut unknown = params;
            unknown["taskId"] = json!(NEVER);
            let never = modern(&h.url, &keys.alice, method, unknown);
            same_as_unknown(&format!("{method} {id}"), &theirs, &never);
        }
    }
    // Bob's tasks are untouched: still where they were, then they complete.
    let running = modern(&h.url, &keys.bob, "tasks/get", json!({"taskId": hub_run})).json();
    assert_eq!(running["result"]["status"], "working", "alice's cancel did not reach it: {running}");
    let parked = modern(&h.url, &keys.bob, "tasks/get", json!({"taskId": upstream_run})).json();
    assert_eq!(parked["result"]["status"], "input_required", "alice's update/cancel did not reach it: {parked}");
    let key = parked["result"]["inputRequests"].as_object().and_then(|m| m.keys().next().cloned()).expect("an input request");
    let answer = json!({"taskId": upstream_run, "inputResponses": {key: {"action": "accept", "content": {"confirm": true}}}});
    assert!(modern(&h.url, &keys.bob, "tasks/update", answer).json()["result"].is_object());
    assert_eq!(modern_wait_done(&h.url, &keys.bob, &upstream_run)["status"], "completed");
    let done = modern_wait_done(&h.url, &keys.bob, &hub_run);
    assert_eq!(done["status"], "completed", "alice's cancel did not stop bob's hub-run task: {done}");
    assert_eq!(done.pointer("/result/content/0/text"), Some(&json!("jobs: slept 5000 ms")), "{done}");
}

#[test]
fn a_legacy_users_tasks_are_unknown_to_another_users_session() {
    let (up, keys) = (upstreams(), keys());
    let h = hub(&[], config(&up, &keys, json!({})));
    let (alice, bob) = (Legacy::open(&h.url, &keys.alice), Legacy::open(&h.url, &keys.bob));
    let upstream_run = task_id_of(&bob.create("lm__slow_task", 5000));
    let hub_run = task_id_of(&bob.create("jobs__sleep", 5000));
    for id in [&upstream_run, &hub_run] {
        for method in ["tasks/get", "tasks/result", "tasks/cancel"] {
            let theirs = alice.call(method, json!({"taskId": id}));
            let never = alice.call(method, json!({"taskId": NEVER}));
            same_as_unknown(&format!("{method} {id}"), &theirs, &never);
        }
    }
    assert!(alice.task_ids().is_empty(), "alice lists none of bob's tasks");
    let mut bobs = bob.task_ids();
    bobs.sort();
    let mut expected = vec![upstream_run.clone(), hub_run.clone()];
    expected.sort();
    assert_eq!(bobs, expected, "bob lists his own");
    // Both still run after alice's cancel attempts, and complete.
    for id in [&upstream_run, &hub_run] {
        let got = bob.call("tasks/get", json!({"taskId": id})).json();
        assert_eq!(got["result"]["status"], "working", "{got}");
    }
    let r = bob.call("tasks/result", json!({"taskId": upstream_run})).json();
    assert_eq!(r.pointer("/result/content/0/text"), Some(&json!("lm: task-1 worked 5000 ms")), "{r}");
    let r = bob.call("tasks/result", json!({"taskId": hub_run})).json();
    assert_eq!(r.pointer("/result/content/0/text"), Some(&json!("jobs: slept 5000 ms")), "{r}");
}

/// The mock's count of JSON-RPC POSTs it received.
fn requests(m: &Mock) -> u64 {
    m.stats()["requests"].as_u64().expect("requests counter")
}

fn assert_task_limit(r: &Reply, what: &str) {
    let v = r.json();
    assert_eq!(v["error"]["code"], -32000, "{what}: {v}");
    assert_eq!(v["error"]["data"]["limit"], "maxTasksPerUser", "{what}: {v}");
    assert_eq!(v["error"]["data"]["max"], 3, "{what}: {v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("user 'alice'") && msg.contains("maxTasksPerUser"), "{what}: {msg}");
}

#[test]
fn a_user_at_max_tasks_per_user_is_refused_before_the_upstream_and_others_still_create() {
    let (up, keys) = (upstreams(), keys());
    let h = hub(&[], config(&up, &keys, json!({"maxTasksPerUser": 3})));
    let alice = Legacy::open(&h.url, &keys.alice);
    // Three tasks of every kind: upstream-run legacy, upstream-run modern, hub-run.
    task_id_of(&alice.create("lm__slow_task", 60_000));
    task_id_of(&modern(&h.url, &keys.alice, "tools/call", json!({"name": "mm__slow_task", "arguments": {"ms": 60_000}})).json());
    task_id_of(&alice.create("jobs__sleep", 6000));
    // The hub-run task reaches its upstream on its own thread: wait for it.
    wait_until("the heavy task to reach its upstream", Duration::from_secs(30), || up.jobs.stats()["tools"]["sleep"] == 1);

    // At the cap: every task-creating call is refused, and nothing reaches an upstream.
    let before = (requests(&up.lm), requests(&up.mm), requests(&up.jobs));
    let legacy_refused = alice.call("tools/call", json!({"name": "lm__slow_task", "arguments": {"ms": 10}, "task": {"ttl": 60000}}));
    assert_task_limit(&legacy_refused, "legacy upstream-run");
    let modern_refused = modern(&h.url, &keys.alice, "tools/call", json!({"name": "mm__slow_task", "arguments": {"ms": 10}}));
    assert_task_limit(&modern_refused, "modern upstream-run");
    let heavy_refused = alice.call("tools/call", json!({"name": "jobs__sleep", "arguments": {"ms": 10}, "task": {"ttl": 60000}}));
    assert_task_limit(&heavy_refused, "legacy hub-run");
    let heavy_modern_refused = modern(&h.url, &keys.alice, "tools/call", json!({"name": "jobs__sleep", "arguments": {"ms": 10}}));
    assert_task_limit(&heavy_modern_refused, "modern hub-run");
    assert_eq!((requests(&up.lm), requests(&up.mm), requests(&up.jobs)), before, "no refused call reached an upstream");
    assert_eq!(h.hub.tasks().len() + h.hub.tasks().runs().len(), 3, "alice holds exactly her 3 tasks");
    // A call that cannot create a task is not a task: it still runs.
    let plain = alice.call("tools/call", json!({"name": "lm__slow_task", "arguments": {"ms": 0}})).json();
    assert_eq!(plain.pointer("/result/content/0/text"), Some(&json!("lm: worked 0 ms")), "{plain}");

    // Bob is not affected: a task of every kind.
    let bob = Legacy::open(&h.url, &keys.bob);
    task_id_of(&bob.create("lm__slow_task", 10));
    task_id_of(&modern(&h.url, &keys.bob, "tools/call", json!({"name": "mm__slow_task", "arguments": {"ms": 10}})).json());
    let bobs_heavy = task_id_of(&bob.create("jobs__sleep", 10));
    let r = bob.call("tasks/result", json!({"taskId": bobs_heavy})).json();
    assert_eq!(r.pointer("/result/content/0/text"), Some(&json!("jobs: slept 10 ms")), "{r}");
}

fn assert_hub_full(r: &Reply, what: &str) {
    let v = r.json();
    assert_eq!(r.status, 200, "{what}: {v}");
    assert_eq!(v["error"]["code"], -32000, "{what}: {v}");
    assert_eq!(v["error"]["data"], json!({"limit": "maxTasks", "max": 3, "reason": "task_limit"}), "{what}: {v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("maxTasks") && msg.contains("all users"), "{what}: {msg}");
}

#[test]
fn at_max_tasks_nothing_reaches_an_upstream_and_calls_that_create_no_task_give_their_slot_back() {
    let (up, keys) = (upstreams(), keys());
    let mut cfg = config(&up, &keys, json!({"maxTasks": 3}));
    // The same upstreams under a 300 ms timeout: calls that fail.
    cfg["mcpServers"]["lmq"] = json!({"url": up.lm.url, "protocol": "legacy", "timeoutMs": 300});
    cfg["mcpServers"]["mmq"] = json!({"url": up.mm.url, "protocol": "modern", "timeoutMs": 300});
    let h = hub(&[], cfg);
    let alice = Legacy::open(&h.url, &keys.alice);

    // Calls that ask for a task and take a slot, then fail (a timeout) or
    // answer without a task: 4 of them, more than the cap, so one slot kept
    // by any of them would refuse the third task below.
    let failed = alice.call("tools/call", json!({"name": "lmq__sleep", "arguments": {"ms": 2000}, "task": {"ttl": 60000}})).json();
    assert_eq!(failed["error"]["code"], -32001, "legacy, timed out: {failed}");
    let failed = modern(&h.url, &keys.alice, "tools/call", json!({"name": "mmq__sleep", "arguments": {"ms": 2000}})).json();
    assert_eq!(failed["error"]["code"], -32001, "modern, timed out: {failed}");
    let plain = alice.call("tools/call", json!({"name": "lm__echo", "arguments": {"text": "a"}, "task": {"ttl": 60000}})).json();
    assert_eq!(plain.pointer("/result/content/0/text"), Some(&json!("lm: a")), "legacy, no task: {plain}");
    let plain = modern(&h.url, &keys.alice, "tools/call", json!({"name": "mm__echo", "arguments": {"text": "b"}})).json();
    assert_eq!(plain.pointer("/result/content/0/text"), Some(&json!("mm: b")), "modern, no task: {plain}");
    assert_eq!(h.hub.tasks().len() + h.hub.tasks().runs().len(), 0, "no task was created");

    // The hub fills up: upstream-run legacy and modern, hub-run.
    task_id_of(&alice.create("lm__slow_task", 60_000));
    task_id_of(&modern(&h.url, &keys.alice, "tools/call", json!({"name": "mm__slow_task", "arguments": {"ms": 60_000}})).json());
    task_id_of(&alice.create("jobs__sleep", 6000));
    wait_until("the heavy task to reach its upstream", Duration::from_secs(30), || up.jobs.stats()["tools"]["sleep"] == 1);

    // At maxTasks: another user (far below maxTasksPerUser) is refused every
    // kind of task, and nothing reaches an upstream.
    let bob = Legacy::open(&h.url, &keys.bob);
    let before = (requests(&up.lm), requests(&up.mm), requests(&up.jobs));
    assert_hub_full(&bob.call("tools/call", json!({"name": "lm__slow_task", "arguments": {"ms": 10}, "task": {"ttl": 60000}})), "legacy upstream-run");
    assert_hub_full(&modern(&h.url, &keys.bob, "tools/call", json!({"name": "mm__slow_task", "arguments": {"ms": 10}})), "modern upstream-run");
    assert_hub_full(&bob.call("tools/call", json!({"name": "jobs__sleep", "arguments": {"ms": 10}, "task": {"ttl": 60000}})), "legacy hub-run");
    assert_hub_full(&modern(&h.url, &keys.bob, "tools/call", json!({"name": "jobs__sleep", "arguments": {"ms": 10}})), "modern hub-run");
    assert_eq!((requests(&up.lm), requests(&up.mm), requests(&up.jobs)), before, "no refused call reached an upstream");
    assert_eq!(h.hub.tasks().len() + h.hub.tasks().runs().len(), 3);
    let plain = bob.call("tools/call", json!({"name": "lm__slow_task", "arguments": {"ms": 0}})).json();
    assert_eq!(plain.pointer("/result/content/0/text"), Some(&json!("lm: worked 0 ms")), "a call without a task still runs: {plain}");

    // Alice's legacy session ends: its two tasks go, two slots are free.
    let auth = format!("Bearer {}", keys.alice);
    let gone = send("DELETE", &h.url, &[("Mcp-Session-Id", alice.sid.as_str()), ("MCP-Protocol-Version", alice.version.as_str()), ("Authorization", &auth)], "");
    assert_eq!(gone.status, 200, "{}", gone.text);
    task_id_of(&bob.create("lm__slow_task", 60_000));
    task_id_of(&modern(&h.url, &keys.bob, "tools/call", json!({"name": "mm__slow_task", "arguments": {"ms": 60_000}})).json());
    assert_hub_full(&bob.call("tools/call", json!({"name": "lm__slow_task", "arguments": {"ms": 10}, "task": {"ttl": 60000}})), "full again");
}

#[test]
fn a_legacy_session_at_its_share_is_refused_before_the_upstream_and_another_session_is_not() {
    let (up, keys) = (upstreams(), keys());
    let h = hub(&[], config(&up, &keys, json!({"maxTasksPerUser": 10000})));
    let alice = Legacy::open(&h.url, &keys.alice);
    for i in 0..1000 {
        let created = alice.call("tools/call", json!({"name": "lm__slow_task", "arguments": {"ms": 0}, "task": {"ttl": 60000}})).json();
        assert!(created.pointer("/result/task/taskId").is_some(), "task {i}: {created}");
    }
    let before = (requests(&up.lm), requests(&up.jobs));
    for (tool, what) in [("lm__slow_task", "upstream-run"), ("jobs__sleep", "hub-run")] {
        let r = alice.call("tools/call", json!({"name": tool, "arguments": {"ms": 0}, "task": {"ttl": 60000}}));
        let v = r.json();
        assert_eq!(v["error"]["code"], -32000, "{what}: {v}");
        assert_eq!(v["error"]["data"], json!({"limit": "maxTasksPerSession", "max": 1000, "reason": "task_limit"}), "{what}: {v}");
    }
    assert_eq!((requests(&up.lm), requests(&up.jobs)), before, "no refused call reached an upstream");
    let other = Legacy::open(&h.url, &keys.alice);
    task_id_of(&other.create("lm__slow_task", 0));
}

#[test]
fn an_expired_task_gives_its_slot_back() {
    let (up, keys) = (upstreams(), keys());
    let h = hub(&[], config(&up, &keys, json!({"maxTasksPerUser": 1})));
    let alice = Legacy::open(&h.url, &keys.alice);
    // A hub-run task with a 300 ms ttl: once it ended and the ttl passed, the slot is free.
    let short = alice.call("tools/call", json!({"name": "jobs__sleep", "arguments": {"ms": 0}, "task": {"ttl": 300}})).json();
    let id = task_id_of(&short);
    let r = alice.call("tasks/result", json!({"taskId": id})).json();
    assert_eq!(r.pointer("/result/content/0/text"), Some(&json!("jobs: slept 0 ms")), "{r}");
    let created = wait_until("the expired task to give its slot back", Duration::from_secs(30), || {
        let again = alice.call("tools/call", json!({"name": "jobs__sleep", "arguments": {"ms": 0}, "task": {"ttl": 300}})).json();
        if again.get("result").is_none() {
            assert_eq!(again["error"]["data"]["limit"], "maxTasksPerUser", "{again}");
        }
        again.get("result").is_some().then_some(again)
    });
    assert!(task_id_of(&created) != id);
}

#[test]
fn another_instance_on_the_same_redis_refuses_alice_bobs_task() {
    let redis = RedisServer::start();
    let (up, keys) = (upstreams(), keys());
    let shared = json!({"redis": {"url": redis.url()}});
    let a: HubUnderTest = hub(&[], config(&up, &keys, shared.clone()));
    let b: HubUnderTest = hub(&[], config(&up, &keys, shared));
    let created = modern(&a.url, &keys.bob, "tools/call", json!({"name": "jobs__sleep", "arguments": {"ms": 5000}})).json();
    let id = task_id_of(&created);
    let record = redis.cli(&["GET", &format!("mcp:task:{id}")]);
    assert!(record.contains("\"user\":\"bob\""), "the record names its user: {record}");
    // B answers bob from the record, and alice exactly as for an unknown id.
    assert_eq!(modern(&b.url, &keys.bob, "tasks/get", json!({"taskId": id})).json()["result"]["taskId"], json!(id));
    for method in ["tasks/get", "tasks/update", "tasks/cancel"] {
        let theirs = modern(&b.url, &keys.alice, method, json!({"taskId": id}));
        let never = modern(&b.url, &keys.alice, method, json!({"taskId": NEVER}));
        same_as_unknown(&format!("{method} on B"), &theirs, &never);
    }
    let record = redis.cli(&["GET", &format!("mcp:task:{id}")]);
    assert!(!record.contains("cancelled"), "alice's cancel through B left the record alone: {record}");
    let running = modern(&b.url, &keys.bob, "tasks/get", json!({"taskId": id})).json();
    assert_eq!(running["result"]["status"], "working", "{running}");
    let done = modern_wait_done(&b.url, &keys.bob, &id);
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done.pointer("/result/content/0/text"), Some(&json!("jobs: slept 5000 ms")), "{done}");
}

#[test]
fn a_malformed_task_record_in_redis_is_an_unknown_task_not_a_500() {
    let redis = RedisServer::start();
    let (up, keys) = (upstreams(), keys());
    // Anonymous access on, so a record with `"user": null` matches the caller.
    let h = hub(&[], config(&up, &keys, json!({"redis": {"url": redis.url()}, "allowAnonymous": true})));
    let anonymous = |method: &str, id: &str| modern_as(&h.url, None, method, json!({"taskId": id}));
    let records = ["7", "\"text\"", "[1,2]", "{\"task\":5,\"user\":null}", "{\"task\":\"x\"}", "{\"task\":{},\"user\":[1]}", "not json"];
    for (i, record) in records.iter().enumerate() {
        let id = format!("mcphub-t{:032x}", i + 1);
        redis.cli(&["SET", &format!("mcp:task:{id}"), record]);
        for method in ["tasks/get", "tasks/update", "tasks/cancel"] {
            let answer = anonymous(method, &id);
            let never = anonymous(method, NEVER);
            assert_eq!(answer.status, 200, "{method} on {record}: {}", answer.text);
            assert_eq!(answer.text, never.text, "{method} on {record}: a malformed record is an unknown task");
        }
    }
    // The hub still serves tasks afterwards.
    let created = modern(&h.url, &keys.alice, "tools/call", json!({"name": "jobs__sleep", "arguments": {"ms": 10}})).json();
    let id = task_id_of(&created);
    assert_eq!(modern_wait_done(&h.url, &keys.alice, &id)["status"], "completed");
}
