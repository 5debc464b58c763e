//! Tasks through the hub, Request → Response without a socket (issue 15
//! item 7): scripted 2025-11-25 upstreams with tasks (`task-1`, `task-2`, …
//! per server, so two servers collide), the hub's own task ids, routing of
//! `tasks/get`, `tasks/result`, `tasks/list`, `tasks/cancel` to the owning
//! server under its own id, ownership per user (another user's task is
//! byte for byte an unknown one), the per-user cap checked before anything
//! leaves, and status notifications on a result stream reaching only their
//! owner; and the 2026-07-28 extension on scripted modern upstreams (a task
//! only when the client declares it, results inlined in `tasks/get`,
//! `-32021` without it, `Mcp-Name` checked, no `tasks/list`, another user's
//! task unknown); hub-run tasks of a heavy tool on a server without tasks
//! (accepted at once, completing after the request ended, a queued task
//! cancelled never reaching the server). The same against the mock's real
//! task engine on loopback is in tests/hub_tasks.rs, tests/hub_task_owners.rs
//! and tests/hub_heavy_tasks*.rs.

mod core_util;

use core_util::*;
use mcphub::hub::Hub;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

const RELATED: &str = "io.modelcontextprotocol/related-task";
/// A well-formed hub task id that no hub ever minted.
const NEVER: &str = "mcphub-t00000000000000000000000000000000";

fn task(id: &str, status: &str) -> Value {
    json!({"taskId": id, "status": status, "createdAt": "2025-11-25T10:30:00Z", "lastUpdatedAt": "2025-11-25T10:30:00Z", "ttl": 60000})
}

/// A legacy (2025-11-25) server with tasks: `job` (taskSupport optional);
/// a task-augmented call creates `task-N` (working); `tasks/result`
/// completes it and answers `"{name}: {id} done"`; `tasks/cancel` cancels a
/// working task (a terminal one: -32602); `tasks/list` lists every task of
/// the server (one shared upstream session: every client's).
fn tasks_server(name: &str) -> Script {
    let name = name.to_string();
    let tasks: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    Arc::new(move |body: &Value, _h: &[(String, String)]| {
        let mut tasks = tasks.lock().unwrap();
        let id = body["params"]["taskId"].as_str().unwrap_or("").to_string();
        let unknown = |body: &Value| Reply::error(body, -32602, "Failed to retrieve task: Task not found");
        match body["method"].as_str().unwrap_or("") {
            "server/discover" => Reply::error(body, -32601, "Method not found"),
            "initialize" => {
                let caps = json!({"tools": {}, "tasks": {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}});
                Reply::result(body, json!({"protocolVersion": "2025-11-25", "capabilities": caps, "serverInfo": {"name": name, "version": "1"}})).session(&format!("{name}-s1"))
            }
            m if m.starts_with("notifications/") => Reply::status(202),
            "tools/list" => Reply::result(body, json!({"tools": [{"name": "job", "inputSchema": {"type": "object"}, "execution": {"taskSupport": "optional"}}]})),
            "tools/call" if body["params"]["task"].is_object() => {
                let id = format!("task-{}", tasks.len() + 1);
                tasks.push((id.clone(), "working".into()));
                Reply::result(body, json!({"task": task(&id, "working")}))
            }
            "tools/call" => Reply::result(body, json!({"content": [{"type": "text", "text": format!("{name}: no task")}]})),
            "tasks/get" => match tasks.iter().find(|(t, _)| *t == id) {
                Some((t, s)) => Reply::result(body, task(t, s)),
                None => unknown(body),
            },
            "tasks/result" => match tasks.iter_mut().find(|(t, _)| *t == id) {
                Some((t, s)) => {
                    *s = "completed".into();
                    Reply::result(body, json!({"content": [{"type": "text", "text": format!("{name}: {t} done")}], "_meta": {RELATED: {"taskId": t}}}))
                }
                None => unknown(body),
            },
            "tasks/cancel" => match tasks.iter_mut().find(|(t, _)| *t == id) {
                Some((t, s)) if s == "working" => {
                    *s = "cancelled".into();
                    Reply::result(body, task(t, "cancelled"))
                }
                Some((_, s)) => Reply::error(body, -32602, &format!("Cannot cancel task: already {s}")),
                None => unknown(body),
            },
            "tasks/list" => Reply::result(body, json!({"tasks": tasks.iter().map(|(t, s)| task(t, s)).collect::<Vec<_>>()})),
            _ => Reply::error(body, -32601, "Method not found"),
        }
    })
}

/// A legacy client of the user holding `key` (none: anonymous).
struct Client<'a> {
    hub: &'a Hub,
    sid: String,
    auth: Option<String>,
}

impl<'a> Client<'a> {
    fn open(hub: &'a Hub, key: Option<&str>) -> Client<'a> {
        let auth = key.map(|k| format!("Bearer {k}"));
        let extra: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        let sid = legacy_session_with(hub, &extra);
        Client { hub, sid, auth }
    }

    fn call(&self, method: &str, params: Value) -> Answer {
        let mut h = legacy_headers(&self.sid);
        if let Some(a) = &self.auth {
            h.push(("Authorization", a.as_str()));
        }
        post(self.hub, &json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string(), &h)
    }

    /// A task-augmented call of `tool`: the hub's task id.
    fn create(&self, tool: &str) -> String {
        let r = self.call("tools/call", json!({"name": tool, "arguments": {}, "task": {"ttl": 60000}})).json();
        r.pointer("/result/task/taskId").and_then(Value::as_str).unwrap_or_else(|| panic!("no CreateTaskResult: {r}")).to_string()
    }

    /// Every task id `tasks/list` gives, following the hub's cursor.
    fn list(&self) -> Vec<String> {
        let (mut ids, mut cursor) = (Vec::new(), Value::Null);
        for _ in 0..20 {
            let params = if cursor.is_null() { json!({}) } else { json!({"cursor": cursor}) };
            let r = self.call("tasks/list", params).json();
            let page = r.pointer("/result/tasks").and_then(Value::as_array).unwrap_or_else(|| panic!("no tasks: {r}"));
            ids.extend(page.iter().map(|t| t["taskId"].as_str().unwrap().to_string()));
            cursor = r["result"].get("nextCursor").cloned().unwrap_or(Value::Null);
            if cursor.is_null() {
                return ids;
            }
        }
        panic!("tasks/list never ended");
    }
}

fn text_of(msg: &Value) -> String {
    msg.pointer("/result/content/0/text").and_then(Value::as_str).unwrap_or_else(|| panic!("no text content in {msg}")).to_string()
}

fn unknown_task(r: &Answer, what: &str) {
    assert_eq!(r.status, 200, "{what}: {}", r.text);
    assert_eq!(r.json(), json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32602, "message": "Failed to retrieve task: Task not found"}}), "{what}");
}

#[test]
fn tasks_of_two_servers_with_colliding_ids_get_hub_ids_and_route_to_their_own_server() {
    let (h, traffic) = hub_with_servers(json!({}), vec![("a", json!({}), tasks_server("a")), ("b", json!({}), tasks_server("b"))]);
    let init = post(&h, &initialize_body("2025-11-25"), &[ACCEPT, JSON]).json();
    assert_eq!(init["result"]["capabilities"]["tasks"], json!({"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}), "{init}");
    let c = Client::open(&h, None);
    let tools = c.call("tools/list", json!({})).json();
    let job = tools["result"]["tools"].as_array().unwrap().iter().find(|t| t["name"] == "a__job").cloned().expect("a__job");
    assert_eq!(job["execution"]["taskSupport"], "optional", "execution.taskSupport passes through");

    let (ta, tb) = (c.create("a__job"), c.create("b__job"));
    assert_ne!(ta, tb);
    for id in [&ta, &tb] {
        assert!(id.starts_with("mcphub-t") && id.len() == NEVER.len(), "a hub id, not the upstream's task-1: {id}");
    }
    for (id, server) in [(&ta, "a"), (&tb, "b")] {
        let got = c.call("tasks/get", json!({"taskId": id})).json();
        assert_eq!((got["result"]["taskId"].as_str(), got["result"]["status"].as_str()), (Some(id.as_str()), Some("working")), "{got}");
        let r = c.call("tasks/result", json!({"taskId": id})).json();
        assert_eq!(text_of(&r), format!("{server}: task-1 done"), "routed to {server}");
        assert_eq!(r["result"]["_meta"][RELATED]["taskId"], *id, "related-task names the hub id");
        assert_eq!(c.call("tasks/get", json!({"taskId": id})).json()["result"]["status"], "completed");
        // Each server was asked under its own id.
        let asked: Vec<Value> = traffic.posts(server).iter().filter(|s| s.method().starts_with("tasks/")).map(|s| s.body["params"]["taskId"].clone()).collect();
        assert_eq!(asked, vec![json!("task-1"); 3], "{server}");
    }
    assert!(!c.call("tasks/get", json!({"taskId": ta})).text.contains("task-1"), "no upstream id reaches the client");
    unknown_task(&c.call("tasks/get", json!({"taskId": "task-1"})), "an upstream id is not a hub id");
    unknown_task(&c.call("tasks/get", json!({"taskId": NEVER})), "an id never minted");
    assert_eq!(c.list().into_iter().collect::<BTreeSet<_>>(), BTreeSet::from([ta, tb]));
    let bad = c.call("tasks/list", json!({"cursor": "not-a-hub-cursor"})).json();
    assert_eq!(bad["error"]["code"], -32602, "{bad}");
}

#[test]
fn another_users_task_is_exactly_an_unknown_one_and_stays_untouched() {
    let users = json!({"users": {"alice": user_with_key("alice-key"), "bob": user_with_key("bob-key")}});
    let (h, traffic) = hub_with_servers(users, vec![("m", json!({}), tasks_server("m"))]);
    let (alice, bob) = (Client::open(&h, Some("alice-key")), Client::open(&h, Some("bob-key")));
    let id = bob.create("job");
    let upstream_before = traffic.posts("m").len();
    for method in ["tasks/get", "tasks/result", "tasks/cancel"] {
        let theirs = alice.call(method, json!({"taskId": id}));
        let never = alice.call(method, json!({"taskId": NEVER}));
        assert_eq!((theirs.status, &theirs.text), (never.status, &never.text), "{method}: bob's task looks exactly like an unknown one");
        unknown_task(&theirs, method);
    }
    assert_eq!(traffic.posts("m").len(), upstream_before, "none of alice's requests reached the upstream");
    // One upstream session lists every task; the hub shows each user its own.
    assert!(alice.list().is_empty(), "alice lists none of bob's tasks");
    assert_eq!(bob.list(), vec![id.clone()]);
    // Another session of the same user is another owner for a legacy task.
    let bob2 = Client::open(&h, Some("bob-key"));
    unknown_task(&bob2.call("tasks/get", json!({"taskId": id})), "bob's other session");
    let got = bob.call("tasks/get", json!({"taskId": id})).json();
    assert_eq!(got["result"]["status"], "working", "alice's cancel did not reach it: {got}");
    assert_eq!(text_of(&bob.call("tasks/result", json!({"taskId": id})).json()), "m: task-1 done");
}

#[test]
fn a_task_is_cancelled_by_its_owner_once() {
    let (h, traffic) = hub_with_servers(json!({}), vec![("m", json!({}), tasks_server("m"))]);
    let (owner, other) = (Client::open(&h, None), Client::open(&h, None));
    let id = owner.create("job");
    unknown_task(&other.call("tasks/cancel", json!({"taskId": id})), "another session's cancel");
    assert!(traffic.calls("m", "tasks/cancel").is_empty(), "refused before the upstream");
    let cancelled = owner.call("tasks/cancel", json!({"taskId": id})).json();
    assert_eq!((cancelled["result"]["taskId"].as_str(), cancelled["result"]["status"].as_str()), (Some(id.as_str()), Some("cancelled")), "{cancelled}");
    assert_eq!(traffic.calls("m", "tasks/cancel")[0].body["params"]["taskId"], "task-1", "sent under the upstream's id");
    assert_eq!(owner.call("tasks/get", json!({"taskId": id})).json()["result"]["status"], "cancelled");
    let again = owner.call("tasks/cancel", json!({"taskId": id})).json();
    assert_eq!(again["error"]["code"], -32602, "a terminal task cannot be cancelled (2025-11-25): {again}");
}

#[test]
fn a_user_at_max_tasks_per_user_is_refused_before_the_upstream_and_others_still_create() {
    let cfg = json!({"maxTasksPerUser": 2, "users": {"alice": user_with_key("alice-key"), "bob": user_with_key("bob-key")}});
    let (h, traffic) = hub_with_servers(cfg, vec![("m", json!({}), tasks_server("m"))]);
    let alice = Client::open(&h, Some("alice-key"));
    alice.create("job");
    alice.create("job");
    let sent = traffic.calls("m", "tools/call").len();
    let refused = alice.call("tools/call", json!({"name": "job", "arguments": {}, "task": {"ttl": 60000}})).json();
    assert_eq!(refused["error"]["code"], -32000, "{refused}");
    assert_eq!((refused["error"]["data"]["limit"].as_str(), refused["error"]["data"]["max"].as_u64()), (Some("maxTasksPerUser"), Some(2)), "{refused}");
    let msg = refused["error"]["message"].as_str().unwrap();
    assert!(msg.contains("user 'alice'") && msg.contains("maxTasksPerUser"), "{msg}");
    // Another session of alice's is alice too.
    let again = Client::open(&h, Some("alice-key")).call("tools/call", json!({"name": "job", "arguments": {}, "task": {}})).json();
    assert_eq!(again["error"]["data"]["limit"], "maxTasksPerUser", "{again}");
    assert_eq!(traffic.calls("m", "tools/call").len(), sent, "no refused call reached the upstream");
    assert_eq!(h.tasks().len(), 2);
    // A call without a task is not a task: it runs.
    assert_eq!(text_of(&alice.call("tools/call", json!({"name": "job", "arguments": {}})).json()), "m: no task");
    let bob = Client::open(&h, Some("bob-key"));
    let id = bob.create("job");
    assert_eq!(bob.list(), [id]);
}

#[test]
fn status_notifications_on_a_result_stream_reach_only_their_owner() {
    // An upstream whose `tasks/result` stream carries the status of every
    // task it knows (both clients' — one upstream session) before the result.
    let inner = tasks_server("chatty");
    let script: Script = Arc::new(move |body: &Value, h: &[(String, String)]| match body["method"].as_str().unwrap_or("") {
        "tasks/result" => {
            let id = body["params"]["taskId"].as_str().unwrap_or("");
            let mut events: Vec<Value> = ["task-1", "task-2"].iter().map(|t| json!({"jsonrpc": "2.0", "method": "notifications/tasks/status", "params": task(t, "completed")})).collect();
            events.push(json!({"jsonrpc": "2.0", "id": body["id"], "result": {"content": [{"type": "text", "text": format!("{id} done")}], "_meta": {RELATED: {"taskId": id}}}}));
            Reply::events(events)
        }
        _ => inner(body, h),
    });
    let (h, _) = hub_with_servers(json!({}), vec![("chatty", json!({}), script)]);
    let (a, b) = (Client::open(&h, None), Client::open(&h, None));
    let (ta, tb) = (a.create("job"), b.create("job"));
    let r = a.call("tasks/result", json!({"taskId": ta}));
    assert!(r.sse, "{:?}", r.headers);
    let events = r.events();
    let statuses: Vec<&Value> = events.iter().filter(|e| e["method"] == "notifications/tasks/status").collect();
    assert_eq!(statuses.len(), 1, "only a's own status: {events:?}");
    assert_eq!(statuses[0]["params"]["taskId"], ta.as_str());
    assert_eq!(statuses[0]["params"]["status"], "completed");
    let last = r.json();
    assert_eq!(text_of(&last), "task-1 done");
    assert_eq!(last["result"]["_meta"][RELATED]["taskId"], ta.as_str());
    assert!(!r.text.contains(&tb) && !r.text.contains("\"task-2\""), "nothing of b's task on a's stream: {}", r.text);
}

// ---------------------------------------------------------------- 2026-07-28 tasks extension

const EXT: &str = "io.modelcontextprotocol/tasks";

/// A 2026-07-28 server with the tasks extension: `job` (taskSupport
/// optional) and `need` (required). A call declaring the extension creates
/// `task-N` (working); `tasks/get` answers it completed with its result
/// inlined (`"{name}: {id} done"`); `tasks/cancel` an empty ack; without the
/// extension `need` and `tasks/*` are -32021.
fn modern_tasks_server(name: &str) -> Script {
    let name = name.to_string();
    let count = Arc::new(Mutex::new(0));
    Arc::new(move |body: &Value, _h: &[(String, String)]| {
        let p = &body["params"];
        let ext = p["_meta"]["io.modelcontextprotocol/clientCapabilities"]["extensions"].get(EXT).is_some();
        let required = |body: &Value| Reply::json(json!({"jsonrpc": "2.0", "id": body["id"], "error": {"code": -32021, "message": "Missing required client capability", "data": {"requiredCapabilities": {"extensions": {EXT: {}}}}}})).with_status(400);
        let modern_task = |id: &str, status: &str| json!({"taskId": id, "status": status, "createdAt": "2026-07-28T10:30:00Z", "lastUpdatedAt": "2026-07-28T10:30:00Z", "ttlMs": 60000, "pollIntervalMs": 100});
        match body["method"].as_str().unwrap_or("") {
            "server/discover" => Reply::result(body, json!({"supportedVersions": ["2026-07-28"], "resultType": "complete", "serverInfo": {"name": name, "version": "1"}, "capabilities": {"tools": {}, "extensions": {EXT: {}}}})),
            "subscriptions/listen" => Reply::status(405),
            "tools/list" => Reply::result(body, json!({"resultType": "complete", "tools": [
                {"name": "job", "inputSchema": {"type": "object"}, "execution": {"taskSupport": "optional"}},
                {"name": "need", "inputSchema": {"type": "object"}, "execution": {"taskSupport": "required"}}]})),
            "tools/call" if ext => {
                let mut n = count.lock().unwrap();
                *n += 1;
                let mut r = modern_task(&format!("task-{n}"), "working");
                r["resultType"] = json!("task");
                Reply::result(body, r)
            }
            "tools/call" if p["name"] == "need" => required(body),
            "tools/call" => Reply::result(body, json!({"resultType": "complete", "content": [{"type": "text", "text": format!("{name}: no task")}]})),
            m if m.starts_with("tasks/") && !ext => required(body),
            "tasks/get" => {
                let id = p["taskId"].as_str().unwrap_or("");
                let mut r = modern_task(id, "completed");
                r["result"] = json!({"content": [{"type": "text", "text": format!("{name}: {id} done")}]});
                r["resultType"] = json!("complete");
                Reply::result(body, r)
            }
            "tasks/cancel" | "tasks/update" => Reply::result(body, json!({"resultType": "complete"})),
            _ => Reply::error(body, -32601, "Method not found").with_status(404),
        }
    })
}

/// A 2026-07-28 request of the user holding `key`, declaring the tasks
/// extension or not; `Mcp-Name` as given (`None`: what the params name).
fn modern_as(h: &Hub, key: &str, method: &str, params: Value, extension: bool, name: Option<&str>) -> Answer {
    let (body, mut hdrs) = modern_request(method, params);
    let mut body: Value = serde_json::from_str(&body).unwrap();
    body["id"] = json!(7);
    if extension {
        body["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"] = json!({"extensions": {EXT: {}}});
    }
    if let Some(n) = name {
        hdrs.retain(|(k, _)| k != "Mcp-Name");
        hdrs.push(("Mcp-Name".into(), n.into()));
    }
    hdrs.push(("Authorization".into(), format!("Bearer {key}")));
    let hdrs: Vec<(&str, &str)> = hdrs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    post(h, &body.to_string(), &hdrs)
}

#[test]
fn a_modern_client_runs_extension_tasks_on_modern_upstreams_and_another_users_are_unknown() {
    let users = json!({"users": {"alice": user_with_key("alice-key"), "bob": user_with_key("bob-key")}});
    let (h, traffic) = hub_with_servers(users, vec![("a", json!({}), modern_tasks_server("a")), ("b", json!({}), modern_tasks_server("b"))]);
    let discover = modern_as(&h, "bob-key", "server/discover", json!({}), true, None).json();
    assert_eq!(discover["result"]["capabilities"]["extensions"][EXT], json!({}), "{discover}");
    let call = |tool: &str, ext: bool| modern_as(&h, "bob-key", "tools/call", json!({"name": tool, "arguments": {}}), ext, None);
    let sync = call("a__job", false).json();
    assert_eq!((sync["result"]["resultType"].as_str(), text_of(&sync).as_str()), (Some("complete"), "a: no task"), "no extension, no task: {sync}");
    let refused = call("a__need", false);
    assert_eq!((refused.status, refused.code()), (400, Some(-32021)), "{}", refused.text);
    assert_eq!(h.tasks().len(), 0, "calls that created no task hold no slot");

    let (ca, cb) = (call("a__job", true).json(), call("b__job", true).json());
    assert_eq!(ca["result"]["resultType"], "task", "{ca}");
    let (ta, tb) = (ca["result"]["taskId"].as_str().unwrap().to_string(), cb["result"]["taskId"].as_str().unwrap().to_string());
    assert!(ta.starts_with("mcphub-t") && tb.starts_with("mcphub-t") && ta != tb, "hub ids for both upstreams' task-1: {ta} {tb}");
    for (id, server) in [(&ta, "a"), (&tb, "b")] {
        let done = modern_as(&h, "bob-key", "tasks/get", json!({"taskId": id}), true, None).json();
        assert_eq!((done["result"]["taskId"].as_str(), done["result"]["status"].as_str()), (Some(id.as_str()), Some("completed")), "{done}");
        assert_eq!(done["result"]["result"]["content"][0]["text"], format!("{server}: task-1 done"), "routed to {server}: {done}");
        let asked = traffic.calls(server, "tasks/get");
        assert_eq!(asked.last().unwrap().body["params"]["taskId"], "task-1", "under the upstream's id");
        assert_eq!(asked.last().unwrap().header("Mcp-Name"), Some("task-1"), "Mcp-Name mirrors the upstream id");
    }
    let no_ext = modern_as(&h, "bob-key", "tasks/get", json!({"taskId": ta}), false, None);
    assert_eq!(no_ext.code(), Some(-32021), "{}", no_ext.text);
    let mismatch = modern_as(&h, "bob-key", "tasks/get", json!({"taskId": ta}), true, Some("other"));
    assert_eq!((mismatch.status, mismatch.code()), (400, Some(-32020)), "{}", mismatch.text);
    let removed = modern_as(&h, "bob-key", "tasks/list", json!({}), true, None);
    assert_eq!((removed.status, removed.code()), (404, Some(-32601)), "{}", removed.text);
    assert_eq!(modern_as(&h, "bob-key", "tasks/get", json!({"taskId": "task-1"}), true, None).code(), Some(-32602), "an upstream id is not a hub id");

    // Alice gets bob's task exactly as one that never existed, and nothing reaches an upstream.
    let before = traffic.all().len();
    for (method, params) in [
        ("tasks/get", json!({"taskId": ta})),
        ("tasks/update", json!({"taskId": ta, "inputResponses": {"confirm": {"action": "accept", "content": {"confirm": true}}}})),
        ("tasks/cancel", json!({"taskId": ta})),
    ] {
        let theirs = modern_as(&h, "alice-key", method, params.clone(), true, None);
        let mut unknown = params;
        unknown["taskId"] = json!(NEVER);
        let never = modern_as(&h, "alice-key", method, unknown, true, None);
        assert_eq!((theirs.status, &theirs.text), (never.status, &never.text), "{method}: bob's task looks exactly like an unknown one");
        assert_eq!(theirs.code(), Some(-32602), "{method}: {}", theirs.text);
    }
    assert_eq!(traffic.all().len(), before, "none of alice's requests reached an upstream");
    let cancel = modern_as(&h, "bob-key", "tasks/cancel", json!({"taskId": ta}), true, None).json();
    assert_eq!(cancel["result"], json!({"resultType": "complete"}), "{cancel}");
    assert_eq!(traffic.calls("a", "tasks/cancel")[0].body["params"]["taskId"], "task-1");
}

#[test]
fn at_max_tasks_nothing_reaches_the_upstream_until_a_session_ends() {
    let cfg = json!({"maxTasks": 2, "users": {"alice": user_with_key("alice-key"), "bob": user_with_key("bob-key")}});
    let (h, traffic) = hub_with_servers(cfg, vec![("m", json!({}), tasks_server("m"))]);
    let (alice, bob) = (Client::open(&h, Some("alice-key")), Client::open(&h, Some("bob-key")));
    alice.create("job");
    alice.create("job");
    let sent = traffic.calls("m", "tools/call").len();
    let full = bob.call("tools/call", json!({"name": "job", "arguments": {}, "task": {"ttl": 60000}}));
    assert_eq!(full.status, 200);
    let v = full.json();
    assert_eq!(v["error"]["code"], -32000, "{v}");
    assert_eq!(v["error"]["data"], json!({"limit": "maxTasks", "max": 2, "reason": "task_limit"}), "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("maxTasks") && msg.contains("all users"), "{msg}");
    assert_eq!(traffic.calls("m", "tools/call").len(), sent, "the refused call never reached the upstream");
    assert_eq!(text_of(&bob.call("tools/call", json!({"name": "job", "arguments": {}})).json()), "m: no task", "a call without a task still runs");
    // Alice's session ends: its tasks go, and bob creates one.
    let mut hdrs = legacy_headers(&alice.sid);
    hdrs.push(("Authorization", "Bearer alice-key"));
    assert_eq!(delete(&h, &hdrs).status, 200);
    assert_eq!(h.tasks().len(), 0);
    let id = bob.create("job");
    assert_eq!(bob.list(), vec![id]);
}

#[test]
fn status_notifications_on_the_upstream_get_stream_reach_only_the_owning_session() {
    let (push, pushed) = std::sync::mpsc::channel::<Value>();
    let pushed = Arc::new(Mutex::new(pushed));
    let inner = tasks_server("m");
    let script: Script = Arc::new(move |body: &Value, h: &[(String, String)]| {
        if !body.is_null() {
            return inner(body, h);
        }
        // The shared session's GET stream: whatever the test pushes, for 2 s.
        let (pushed, end) = (pushed.clone(), std::time::Instant::now() + std::time::Duration::from_secs(2));
        Reply::live(move |cut: &Cut| {
            let rx = pushed.lock().unwrap();
            while !cut.is_cut() && std::time::Instant::now() < end {
                if let Ok(m) = rx.recv_timeout(std::time::Duration::from_millis(10)) {
                    return Some(m);
                }
            }
            None
        })
    });
    let (h, traffic) = hub_with_servers(json!({}), vec![("m", json!({}), script)]);
    let (a, b) = (Client::open(&h, None), Client::open(&h, None));
    let (ta, tb) = (a.create("job"), b.create("job"));
    wait_until("the hub opens the upstream GET stream", PATIENCE, || traffic.all().iter().any(|s| s.kind == "get"));
    let stream = |sid: &str| {
        let s = open_stream(&h, "GET", &[("Accept", "text/event-stream"), ("Mcp-Session-Id", sid), ("MCP-Protocol-Version", "2025-06-18")], "");
        assert_eq!(s.status, 200, "{}", s.text);
        s
    };
    let (mut sa, mut sb) = (stream(&a.sid), stream(&b.sid));
    for (upstream_id, status) in [("task-1", "completed"), ("task-2", "cancelled")] {
        push.send(json!({"jsonrpc": "2.0", "method": "notifications/tasks/status", "params": task(upstream_id, status)})).unwrap();
    }
    let got = sa.next();
    assert_eq!((got["method"].as_str(), got["params"]["taskId"].as_str(), got["params"]["status"].as_str()), (Some("notifications/tasks/status"), Some(ta.as_str()), Some("completed")), "a's own task under its hub id: {got}");
    let got = sb.next();
    assert_eq!((got["params"]["taskId"].as_str(), got["params"]["status"].as_str()), (Some(tb.as_str()), Some("cancelled")), "b's own task: {got}");
    assert_eq!(sa.next_within(std::time::Duration::from_millis(100)), None, "nothing of b's task on a's stream");
    assert_eq!(sb.next_within(std::time::Duration::from_millis(100)), None, "nothing of a's task on b's stream");
}

// ---------------------------------------------------------------- hub-run (heavy) tasks

/// A legacy server without tasks whose heavy tool `sleep` answers
/// `"slept {arguments.n}"` only once the test sends on the returned channel
/// (one send per call; at most 10 s).
fn gated_server() -> (Script, std::sync::mpsc::Sender<()>) {
    let (release, gate) = std::sync::mpsc::channel::<()>();
    let gate = Arc::new(Mutex::new(gate));
    let base = legacy_server("jobs", json!([tool("sleep")]));
    let script: Script = Arc::new(move |body: &Value, h: &[(String, String)]| match body["method"].as_str() {
        Some("tools/call") => {
            let _ = gate.lock().unwrap().recv_timeout(std::time::Duration::from_secs(10));
            Reply::result(body, json!({"content": [{"type": "text", "text": format!("slept {}", body["params"]["arguments"]["n"])}]}))
        }
        _ => base(body, h),
    });
    (script, release)
}

fn heavy_hub() -> (Hub, Traffic, std::sync::mpsc::Sender<()>) {
    let (script, release) = gated_server();
    let server = json!({"protocol": "legacy", "timeoutMs": 7000, "heavyTools": ["sleep"], "heavyConcurrency": 1, "heavyQueue": 8});
    let (h, traffic) = hub_with_servers(json!({}), vec![("jobs", server, script)]);
    (h, traffic, release)
}

/// A task-augmented `sleep` marked `n`: the `CreateTaskResult`'s task.
fn create_heavy(c: &Client, n: u64) -> Value {
    let r = c.call("tools/call", json!({"name": "sleep", "arguments": {"n": n}, "task": {"ttl": 60000}})).json();
    r.pointer("/result/task").cloned().unwrap_or_else(|| panic!("no CreateTaskResult: {r}"))
}

fn status(c: &Client, id: &str) -> String {
    let r = c.call("tasks/get", json!({"taskId": id})).json();
    r.pointer("/result/status").and_then(Value::as_str).unwrap_or_else(|| panic!("no status: {r}")).to_string()
}

/// The markers of the `sleep` calls the server received.
fn slept(traffic: &Traffic) -> Vec<u64> {
    traffic.calls("jobs", "tools/call").iter().map(|s| s.body["params"]["arguments"]["n"].as_u64().unwrap()).collect()
}

#[test]
fn a_heavy_task_is_accepted_at_once_and_completes_after_its_request_ended() {
    let (h, traffic, release) = heavy_hub();
    let init = post(&h, &initialize_body("2025-11-25"), &[ACCEPT, JSON]).json();
    assert_eq!(init.pointer("/result/capabilities/tasks/requests/tools/call"), Some(&json!({})), "heavy tools make the hub offer tasks: {init}");
    let c = Client::open(&h, None);
    let task = create_heavy(&c, 1);
    let id = task["taskId"].as_str().unwrap().to_string();
    assert!(id.starts_with("mcphub-t"), "{task}");
    assert_eq!(task["status"], "working");
    assert!(task["createdAt"].as_str().is_some_and(|s| s.ends_with('Z')) && task["ttl"] == 60000 && task["pollInterval"].is_u64(), "{task}");
    // The creating request is over while the upstream call still waits.
    wait_until("the heavy call to reach the server", PATIENCE, || slept(&traffic) == [1]);
    assert_eq!(status(&c, &id), "working");
    assert_eq!(c.list(), vec![id.clone()]);
    // Another session sees nothing of it.
    let other = Client::open(&h, None);
    for method in ["tasks/get", "tasks/result", "tasks/cancel"] {
        unknown_task(&other.call(method, json!({"taskId": id})), method);
    }
    assert!(other.list().is_empty());

    release.send(()).unwrap();
    wait_until("the task to complete", PATIENCE, || status(&c, &id) == "completed");
    let result = c.call("tasks/result", json!({"taskId": id})).json();
    assert_eq!(text_of(&result), "slept 1", "{result}");
    assert_eq!(result["result"]["_meta"][RELATED]["taskId"], id.as_str());
    let r = c.call("tasks/cancel", json!({"taskId": id})).json();
    assert_eq!(r["error"]["code"], -32602, "a finished task cannot be cancelled: {r}");
    assert_eq!(slept(&traffic), [1], "the call reached the server once");
}

#[test]
fn a_heavy_task_cancelled_while_it_waits_never_reaches_the_upstream() {
    let (h, traffic, release) = heavy_hub();
    let c = Client::open(&h, None);
    let first = create_heavy(&c, 1)["taskId"].as_str().unwrap().to_string();
    wait_until("the first call to hold the only heavy slot", PATIENCE, || slept(&traffic) == [1]);
    let queued = create_heavy(&c, 2)["taskId"].as_str().unwrap().to_string();
    let r = c.call("tasks/cancel", json!({"taskId": queued})).json();
    assert_eq!((r["result"]["status"].as_str(), r["result"]["taskId"].as_str()), (Some("cancelled"), Some(queued.as_str())), "{r}");
    assert_eq!(status(&c, &queued), "cancelled");
    assert_eq!(c.call("tasks/cancel", json!({"taskId": queued})).json()["error"]["code"], -32602);
    assert!(c.call("tasks/result", json!({"taskId": queued})).json().get("error").is_some());

    release.send(()).unwrap();
    wait_until("the first task to complete", PATIENCE, || status(&c, &first) == "completed");
    // The queue moved on: a later task runs, the cancelled one never did.
    let later = create_heavy(&c, 3)["taskId"].as_str().unwrap().to_string();
    release.send(()).unwrap();
    wait_until("the later task to complete", PATIENCE, || status(&c, &later) == "completed");
    assert_eq!(slept(&traffic), [1, 3], "the cancelled task never reached the server");
}
