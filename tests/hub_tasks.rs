//! Tasks through the hub (2025-11-25 tasks; SEP-2663 `io.modelcontextprotocol/tasks`):
//! hub task ids namespace colliding upstream ids, each legacy client sees
//! only its own tasks behind one shared upstream session, cancel and status
//! notifications reach the owner only, and the capability is advertised
//! only when an upstream has tasks. In-process mocks and hubs on loopback.
//! Status notifications on a result stream and the scripted-upstream cases
//! are Request → Response tests in tests/core_tasks.rs.

mod hub_util;

use hub_util::*;
use mcphub_mock::Era;
use serde_json::{json, Value};
use std::collections::HashSet;

const EXT: &str = "io.modelcontextprotocol/tasks";
const RELATED: &str = "io.modelcontextprotocol/related-task";

fn tasks_mock(era: Era, name: &str) -> Mock {
    let m = mock(era, name);
    m.server.enable_tasks();
    m
}

/// A task-augmented legacy `tools/call`; returns the task id the client got.
fn create(url: &str, sid: &str, tool: &str, ms: u64) -> String {
    let r = legacy(url, sid, "tools/call", json!({"name": tool, "arguments": {"ms": ms}, "task": {"ttl": 60000}})).json();
    r.pointer("/result/task/taskId").and_then(Value::as_str).unwrap_or_else(|| panic!("no CreateTaskResult: {r}")).to_string()
}

/// Every task id a legacy client gets from `tasks/list`, following the
/// hub's cursor; also how many calls that took.
fn list_all(url: &str, sid: &str) -> (Vec<String>, usize) {
    let (mut ids, mut cursor, mut calls) = (Vec::new(), Value::Null, 0);
    while calls < 50 {
        calls += 1;
        let params = if cursor.is_null() { json!({}) } else { json!({"cursor": cursor}) };
        let r = legacy(url, sid, "tasks/list", params).json();
        let page = r.pointer("/result/tasks").and_then(Value::as_array).unwrap_or_else(|| panic!("no tasks: {r}"));
        ids.extend(page.iter().map(|t| t["taskId"].as_str().unwrap().to_string()));
        cursor = r["result"].get("nextCursor").cloned().unwrap_or(Value::Null);
        if cursor.is_null() {
            return (ids, calls);
        }
    }
    panic!("tasks/list never ended");
}

/// A modern request declaring (or not) the tasks extension, with `Mcp-Name`
/// mirroring `name` / `taskId`.
fn modern_tasks(url: &str, method: &str, mut params: Value, extension: bool, name: Option<&str>) -> Reply {
    let caps = if extension { json!({"extensions": {EXT: {}}}) } else { json!({}) };
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": caps,
    });
    let body = json!({"jsonrpc": "2.0", "id": "m1", "method": method, "params": params}).to_string();
    let mut h = vec![ACCEPT, JSON, ("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", method)];
    if let Some(n) = name {
        h.push(("Mcp-Name", n));
    }
    send("POST", url, &h, &body)
}

#[test]
fn two_upstreams_with_colliding_task_ids_route_to_their_own_server() {
    let (a, b) = (tasks_mock(Era::Legacy, "a"), tasks_mock(Era::Legacy, "b"));
    let h = hub(&[("a", &a.url), ("b", &b.url)], json!({}));
    let sid = legacy_session(&h.url);
    let tools = legacy(&h.url, &sid, "tools/list", json!({})).json();
    let slow = tools["result"]["tools"].as_array().unwrap().iter().find(|t| t["name"] == "a__slow_task").cloned().expect("a__slow_task");
    assert_eq!(slow["execution"]["taskSupport"], "optional", "execution.taskSupport passes through");

    let ta = create(&h.url, &sid, "a__slow_task", 20);
    let tb = create(&h.url, &sid, "b__slow_task", 20);
    assert_ne!(ta, tb);
    assert!(ta.starts_with("mcphub-t") && tb.starts_with("mcphub-t"), "hub ids, not the upstreams' task-1: {ta} {tb}");
    for (id, server) in [(&ta, "a"), (&tb, "b")] {
        let r = legacy(&h.url, &sid, "tasks/result", json!({"taskId": id})).json();
        assert_eq!(text_of(&r), format!("{server}: task-1 worked 20 ms"), "routed to {server}");
        assert_eq!(r["result"]["_meta"][RELATED]["taskId"], *id, "related-task names the hub id");
        let got = legacy(&h.url, &sid, "tasks/get", json!({"taskId": id})).json();
        assert_eq!(got["result"]["taskId"], *id);
        assert_eq!(got["result"]["status"], "completed");
    }
    let unknown = legacy(&h.url, &sid, "tasks/get", json!({"taskId": "task-1"})).json();
    assert_eq!(unknown["error"]["code"], -32602, "an upstream id is not a hub id");
    let (listed, _) = list_all(&h.url, &sid);
    assert_eq!(listed.iter().collect::<HashSet<_>>(), [&ta, &tb].into_iter().collect::<HashSet<_>>());
}

#[test]
fn twenty_clients_sharing_one_upstream_session_each_see_only_their_own_tasks() {
    const CLIENTS: usize = 20;
    const EACH: usize = 6; // 120 tasks: 24 upstream pages, more than one hub page
    let up = tasks_mock(Era::Legacy, "m");
    // Anonymous clients are one user: 120 tasks need a cap above the default 100 (issue 14).
    let h = hub(&[("m", &up.url)], json!({"maxTasksPerUser": 200}));
    let url = h.url.clone();
    let clients: Vec<(String, Vec<String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let url = url.clone();
                scope.spawn(move || {
                    let sid = legacy_session(&url);
                    let ids: Vec<String> = (0..EACH).map(|i| create(&url, &sid, "slow_task", (i as u64) * 5)).collect();
                    (sid, ids)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("client thread")).collect()
    });
    assert_eq!(up.stats()["initialize"], 1, "one upstream session shared by every client");
    let results: Vec<(Vec<String>, usize)> = std::thread::scope(|scope| {
        let handles: Vec<_> = clients.iter().map(|(sid, _)| scope.spawn(|| list_all(&url, sid))).collect();
        handles.into_iter().map(|h| h.join().expect("list thread")).collect()
    });
    for ((sid, own), (listed, calls)) in clients.iter().zip(&results) {
        let own_set: HashSet<&String> = own.iter().collect();
        assert_eq!(listed.len(), EACH, "{sid} lists exactly its {EACH} tasks: {listed:?}");
        assert_eq!(listed.iter().collect::<HashSet<_>>(), own_set, "{sid} lists only its own tasks");
        assert!(*calls >= 2, "the hub's cursor was followed ({calls} calls)");
        let r = legacy(&url, sid, "tasks/result", json!({"taskId": own[1]})).json();
        assert_eq!(r["result"]["_meta"][RELATED]["taskId"], own[1]);
    }
    // Another client's task id is unknown to a client: get, result, cancel.
    let (sid0, _) = &clients[0];
    let foreign = &clients[1].1[0];
    for method in ["tasks/get", "tasks/result", "tasks/cancel"] {
        let r = legacy(&url, sid0, method, json!({"taskId": foreign})).json();
        assert_eq!(r["error"]["code"], -32602, "{method} of another client's task: {r}");
    }
    let bad = legacy(&url, sid0, "tasks/list", json!({"cursor": "not-a-hub-cursor"})).json();
    assert_eq!(bad["error"]["code"], -32602);
}

#[test]
fn a_cancelled_task_is_cancelled_only_by_its_owner() {
    let up = tasks_mock(Era::Legacy, "m");
    let h = hub(&[("m", &up.url)], json!({}));
    let (owner, other) = (legacy_session(&h.url), legacy_session(&h.url));
    let id = create(&h.url, &owner, "slow_task", 60_000);
    assert_eq!(legacy(&h.url, &other, "tasks/cancel", json!({"taskId": id})).json()["error"]["code"], -32602);
    assert_eq!(legacy(&h.url, &owner, "tasks/get", json!({"taskId": id})).json()["result"]["status"], "working");
    let cancelled = legacy(&h.url, &owner, "tasks/cancel", json!({"taskId": id})).json();
    assert_eq!(cancelled["result"]["status"], "cancelled", "{cancelled}");
    assert_eq!(cancelled["result"]["taskId"], id);
    assert_eq!(legacy(&h.url, &owner, "tasks/get", json!({"taskId": id})).json()["result"]["status"], "cancelled");
    let again = legacy(&h.url, &owner, "tasks/cancel", json!({"taskId": id})).json();
    assert_eq!(again["error"]["code"], -32602, "a terminal task cannot be cancelled (2025-11-25)");
}

/// The task ids of [`task_statuses_until`].
fn until_status(r: &mut SseStream, id: &str, status: &str) -> Vec<String> {
    task_statuses_until(r, id, status).into_iter().map(|(t, _)| t).collect()
}

#[test]
fn status_notifications_reach_the_owning_client_only() {
    let up = tasks_mock(Era::Legacy, "m");
    let h = hub(&[("m", &up.url)], json!({}));
    let (a, b) = (legacy_session(&h.url), legacy_session(&h.url));
    let stream = |sid: &str| SseStream::get(&h.url, &[("Mcp-Session-Id", sid), ("MCP-Protocol-Version", "2025-06-18")]);
    let (mut sa, mut sb) = (stream(&a), stream(&b));
    assert_eq!((sa.status, sb.status), (200, 200));
    let ta = create(&h.url, &a, "slow_task", 100);
    let tb = create(&h.url, &b, "slow_task", 300);
    let tc = create(&h.url, &a, "slow_task", 60_000);
    assert_eq!(legacy(&h.url, &a, "tasks/cancel", json!({"taskId": tc})).json()["result"]["status"], "cancelled");
    let seen_a = until_status(&mut sa, &ta, "completed");
    let seen_b = until_status(&mut sb, &tb, "completed");
    assert!(seen_a.iter().all(|id| *id == ta || *id == tc), "a saw only its tasks: {seen_a:?}");
    assert_eq!(seen_b, vec![tb.clone()], "b saw only its task");
    let more_a = if seen_a.contains(&tc) { seen_a } else { until_status(&mut sa, &tc, "cancelled") };
    assert!(more_a.iter().all(|id| *id == ta || *id == tc), "a saw only its tasks: {more_a:?}");
}

#[test]
fn the_tasks_capability_is_advertised_only_when_an_upstream_of_the_era_has_it() {
    let plain = mock(Era::Legacy, "plain");
    let h = hub(&[("plain", &plain.url)], json!({}));
    let init = send("POST", &h.url, &[ACCEPT, JSON], r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#).json();
    assert!(init["result"]["capabilities"].get("tasks").is_none(), "{init}");
    let legacy_up = tasks_mock(Era::Legacy, "lt");
    let h2 = hub(&[("plain", &plain.url), ("lt", &legacy_up.url)], json!({}));
    let init = send("POST", &h2.url, &[ACCEPT, JSON], r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#).json();
    assert_eq!(init["result"]["capabilities"]["tasks"], json!({"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}));
    let discover = modern(&h2.url, "server/discover", json!({})).json();
    assert!(discover["result"]["capabilities"].get("extensions").is_none(), "no modern upstream has tasks: {discover}");
    let modern_up = tasks_mock(Era::Modern, "mt");
    let h3 = hub(&[("mt", &modern_up.url)], json!({}));
    let discover = modern(&h3.url, "server/discover", json!({})).json();
    assert_eq!(discover["result"]["capabilities"]["extensions"][EXT], json!({}));
}

#[test]
fn a_modern_client_runs_extension_tasks_on_a_modern_upstream() {
    let (a, b) = (tasks_mock(Era::Modern, "a"), tasks_mock(Era::Modern, "b"));
    let h = hub(&[("a", &a.url), ("b", &b.url)], json!({}));
    let call = |tool: &str, ext: bool| modern_tasks(&h.url, "tools/call", json!({"name": tool, "arguments": {"ms": 20}}), ext, Some(tool));
    let sync = call("a__slow_task", false).json();
    assert_eq!(sync["result"]["resultType"], "complete", "no extension, no task: {sync}");
    assert_eq!(call("a__required_task", false).json()["error"]["code"], -32021);
    let (ca, cb) = (call("a__slow_task", true).json(), call("b__slow_task", true).json());
    assert_eq!(ca["result"]["resultType"], "task", "{ca}");
    let (ta, tb) = (ca["result"]["taskId"].as_str().unwrap().to_string(), cb["result"]["taskId"].as_str().unwrap().to_string());
    assert!(ta.starts_with("mcphub-t") && ta != tb);
    for (id, server) in [(&ta, "a"), (&tb, "b")] {
        let mut done = Value::Null;
        wait_until(&format!("task {id} to complete"), PATIENCE, || {
            done = modern_tasks(&h.url, "tasks/get", json!({"taskId": id}), true, Some(id)).json();
            done["result"]["status"] == "completed"
        });
        assert_eq!(done["result"]["taskId"], *id);
        assert_eq!(done["result"]["result"]["content"][0]["text"], format!("{server}: task-1 worked 20 ms"), "{done}");
    }
    let no_ext = modern_tasks(&h.url, "tasks/get", json!({"taskId": ta}), false, Some(&ta)).json();
    assert_eq!(no_ext["error"]["code"], -32021);
    let mismatch = modern_tasks(&h.url, "tasks/get", json!({"taskId": ta}), true, Some("other"));
    assert_eq!((mismatch.status, mismatch.json()["error"]["code"].clone()), (400, json!(-32020)));
    let removed = modern_tasks(&h.url, "tasks/list", json!({}), true, None);
    assert_eq!((removed.status, removed.json()["error"]["code"].clone()), (404, json!(-32601)));
    assert_eq!(modern_tasks(&h.url, "tasks/get", json!({"taskId": "task-1"}), true, Some("task-1")).json()["error"]["code"], -32602);
    // input_required → tasks/update → completed, through the hub.
    let ask = modern_tasks(&h.url, "tools/call", json!({"name": "a__ask_task", "arguments": {}}), true, Some("a__ask_task")).json();
    let id = ask["result"]["taskId"].as_str().unwrap().to_string();
    let parked = modern_tasks(&h.url, "tasks/get", json!({"taskId": id}), true, Some(&id)).json();
    assert_eq!(parked["result"]["status"], "input_required");
    let key = parked["result"]["inputRequests"].as_object().unwrap().keys().next().unwrap().clone();
    let update = json!({"taskId": id, "inputResponses": {key: {"action": "accept", "content": {"confirm": true}}}});
    assert_eq!(modern_tasks(&h.url, "tasks/update", update, true, Some(&id)).json()["result"], json!({"resultType": "complete"}));
    assert_eq!(modern_tasks(&h.url, "tasks/get", json!({"taskId": id}), true, Some(&id)).json()["result"]["status"], "completed");
    let cancel = modern_tasks(&h.url, "tasks/cancel", json!({"taskId": id}), true, Some(&id)).json();
    assert_eq!(cancel["result"], json!({"resultType": "complete"}), "idempotent ack");
}

#[test]
fn across_eras_a_task_request_runs_without_a_task() {
    let up = tasks_mock(Era::Modern, "m");
    let h = hub(&[("m", &up.url)], json!({}));
    let sid = legacy_session(&h.url);
    let r = legacy(&h.url, &sid, "tools/call", json!({"name": "slow_task", "arguments": {"ms": 0}, "task": {}})).json();
    assert_eq!(text_of(&r), "m: worked 0 ms", "the modern upstream ignored the legacy task param: {r}");
    let required = legacy(&h.url, &sid, "tools/call", json!({"name": "required_task", "arguments": {}, "task": {}})).json();
    assert_eq!(required["error"]["code"], -32021, "{required}");
}
