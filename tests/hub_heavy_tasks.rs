//! Heavy tools as hub-run tasks (issue 6 "a task survives its client and
//! completes"): a legacy client's task-augmented `tools/call` of a heavy
//! tool gets a `CreateTaskResult` at once from the hub, which runs the call
//! in its heavy queue; the owning session polls, fetches the result, lists
//! and cancels; other sessions cannot see the task. The mock upstream has no
//! tasks of its own. In-process mock and hub on loopback.

mod hub_util;

use hub_util::{hub, mock_with, wait_until, Client, HubUnderTest, Mock, task_statuses_until, SseStream, PATIENCE};
use mcphub_mock::{Era, MockConfig};
use serde_json::{json, Value};

const RELATED: &str = "io.modelcontextprotocol/related-task";

fn setup() -> (Mock, HubUnderTest) {
    let mock = mock_with(MockConfig { era: Era::Legacy, name: "jobs".into(), ..MockConfig::default() });
    let h = hub(
        &[],
        json!({"workers": 16, "mcpServers": {"jobs": {"url": mock.url, "protocol": "legacy", "timeoutMs": 7000,
            "heavyTools": ["sleep"], "heavyConcurrency": 1, "heavyQueue": 8}}}),
    );
    (mock, h)
}

/// A task-augmented `sleep`; the `CreateTaskResult`'s task.
fn create(c: &Client, ms: u64) -> Value {
    let r = c.request("tools/call", json!({"name": "sleep", "arguments": {"ms": ms}, "task": {"ttl": 60000}})).unwrap();
    r.pointer("/result/task").cloned().unwrap_or_else(|| panic!("no CreateTaskResult: {r}"))
}

fn get(c: &Client, id: &str) -> Value {
    c.request("tasks/get", json!({"taskId": id})).unwrap()
}

/// Polls `tasks/get` until the task is no longer `working`; its last status.
fn wait_done(c: &Client, id: &str) -> String {
    wait_until(&format!("task {id} to end"), PATIENCE, || {
        let r = get(c, id);
        let status = r.pointer("/result/status").and_then(Value::as_str).unwrap_or_else(|| panic!("no status: {r}"));
        (status != "working").then(|| status.to_string())
    })
}

#[test]
fn a_heavy_task_is_accepted_at_once_and_completes_after_its_request_ended() {
    let (mock, h) = setup();
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let init = hub_util::send("POST", &h.url, &[hub_util::ACCEPT, hub_util::JSON], &init.to_string()).json();
    assert_eq!(init.pointer("/result/capabilities/tasks/requests/tools/call"), Some(&json!({})), "heavy tools make the hub offer tasks: {init}");
    let c = Client::connect(&h.url);

    // Without a task: today's behaviour, the result itself.
    let plain = c.request("tools/call", json!({"name": "sleep", "arguments": {"ms": 20}})).unwrap();
    assert!(hub_util::tool_text(&plain).is_ok(), "{plain}");

    let task = create(&c, 1500);
    let id = task["taskId"].as_str().unwrap().to_string();
    assert!(id.starts_with("mcphub-t"), "{task}");
    assert_eq!(task["status"], "working");
    assert!(task["createdAt"].as_str().is_some_and(|s| s.ends_with('Z')) && task["ttl"] == 60000 && task["pollInterval"].is_u64(), "{task}");
    // The creating request is over; the session goes on over a new connection.
    let sid = c.sid.clone();
    drop(c);
    let again = Client { agent: hub_util::agent(), url: h.url.clone(), sid, key: None };
    let listed = again.request("tasks/list", json!({})).unwrap();
    assert!(listed["result"]["tasks"].as_array().unwrap().iter().any(|t| t["taskId"] == id.as_str()), "{listed}");

    // Another session sees nothing of it.
    let other = Client::connect(&h.url);
    for method in ["tasks/get", "tasks/result", "tasks/cancel"] {
        let r = other.request(method, json!({"taskId": id})).unwrap();
        assert_eq!(r["error"]["code"], -32602, "{method}: {r}");
    }
    let theirs = other.request("tasks/list", json!({})).unwrap();
    assert!(!theirs["result"]["tasks"].as_array().unwrap().iter().any(|t| t["taskId"] == id.as_str()), "{theirs}");

    assert_eq!(wait_done(&again, &id), "completed");
    let result = again.request("tasks/result", json!({"taskId": id})).unwrap();
    assert_eq!(hub_util::tool_text(&result), Ok("slept 1500 ms".to_string()), "{result}");
    assert_eq!(result["result"]["_meta"][RELATED]["taskId"], id.as_str());
    let r = again.request("tasks/cancel", json!({"taskId": id})).unwrap();
    assert_eq!(r["error"]["code"], -32602, "a finished task cannot be cancelled: {r}");
    assert_eq!(mock.stats()["tools"]["sleep"], 2);
}

#[test]
fn heavy_tasks_run_one_at_a_time_and_tasks_result_waits_for_the_outcome() {
    let (mock, h) = setup();
    let c = Client::connect(&h.url);
    let ids: Vec<String> = (0..3).map(|_| create(&c, 300)["taskId"].as_str().unwrap().to_string()).collect();
    // tasks/result blocks until each has ended (all within the hub deadline of 8 s).
    for id in &ids {
        let r = c.request("tasks/result", json!({"taskId": id})).unwrap();
        assert_eq!(hub_util::tool_text(&r), Ok("slept 300 ms".to_string()), "{r}");
        assert_eq!(get(&c, id)["result"]["status"], "completed");
    }
    // Tool calls only: `max_in_flight` also counts the GET stream the hub
    // opens on a new upstream session from a thread of its own, which can
    // reach the mock while the first task's call runs (a loaded machine).
    let stats = mock.stats();
    println!("mock stats: {stats}");
    assert_eq!(stats["max_calls_in_flight"], 1, "two heavy tasks ran at once: {stats}");
    assert_eq!(stats["tools"]["sleep"], 3);
}

#[test]
fn a_task_cancelled_while_it_waits_never_reaches_the_upstream() {
    let (mock, h) = setup();
    let c = Client::connect(&h.url);
    let first = create(&c, 1500)["taskId"].as_str().unwrap().to_string();
    let queued = create(&c, 10)["taskId"].as_str().unwrap().to_string();
    let r = c.request("tasks/cancel", json!({"taskId": queued})).unwrap();
    assert_eq!(r["result"]["status"], "cancelled", "{r}");
    assert_eq!(r["result"]["taskId"], queued.as_str());
    assert_eq!(get(&c, &queued)["result"]["status"], "cancelled");
    let again = c.request("tasks/cancel", json!({"taskId": queued})).unwrap();
    assert_eq!(again["error"]["code"], -32602, "{again}");
    assert!(c.request("tasks/result", json!({"taskId": queued})).unwrap().get("error").is_some());

    assert_eq!(wait_done(&c, &first), "completed");
    // The queue moved on: a later task runs (and the cancelled one did not).
    let later = create(&c, 10)["taskId"].as_str().unwrap().to_string();
    assert_eq!(wait_done(&c, &later), "completed");
    let stats = mock.stats();
    assert_eq!(stats["tools"]["sleep"], 2, "the cancelled task never ran: {stats}");
}

#[test]
fn status_changes_reach_the_owning_session_stream_only() {
    let (_mock, h) = setup();
    let (a, b) = (Client::connect(&h.url), Client::connect(&h.url));
    let stream = |sid: &str| SseStream::get(&h.url, &[("Mcp-Session-Id", sid), ("MCP-Protocol-Version", "2025-11-25")]);
    let (mut sa, mut sb) = (stream(&a.sid), stream(&b.sid));
    assert_eq!((sa.status, sb.status), (200, 200));
    let ta = create(&a, 1000)["taskId"].as_str().unwrap().to_string();
    let tb = create(&b, 100)["taskId"].as_str().unwrap().to_string();
    let cancelled = create(&a, 100)["taskId"].as_str().unwrap().to_string();
    a.request("tasks/cancel", json!({"taskId": cancelled})).unwrap();
    let seen_a = task_statuses_until(&mut sa, &ta, "completed");
    let seen_b = task_statuses_until(&mut sb, &tb, "completed");
    assert!(seen_a.iter().all(|(t, _)| *t != tb) && seen_b.iter().all(|(t, _)| *t == tb), "{seen_a:?} {seen_b:?}");
    // The cancel was answered before the first task ended: its notification came first.
    assert!(seen_a.contains(&(cancelled.clone(), "cancelled".into())), "{seen_a:?}");
}
