//! stdio servers (issue 19) through a real hub on a real socket, the server
//! being `mcphub-mock --stdio` (the mock's legacy era over stdin/stdout, plus
//! the tools `env`, `pid`, `exit`, `stop_reading`): one process per
//! credential set, shared by equal ones; a process killed during a call; a
//! process that stops reading; the LRU and idle evictions; the cap with every
//! process busy. The leak test has its own binary (hub_stdio_leaks.rs): it
//! counts this process's file descriptors.

#[path = "hub_util/mod.rs"]
mod hub_util;
#[path = "stdio_util/mod.rs"]
mod stdio_util;

use hub_util::{wait_until, Client, PATIENCE};
use serde_json::json;
use std::time::{Duration, Instant};
use stdio_util::{call, children, count, processes, sleep_in_background, stdio_hub, user};

#[test]
fn each_credential_set_gets_its_own_process_and_equal_ones_share_it() {
    let users = [user("alice", "token-of-alice"), user("bob", "token-of-bob"), user("carol", "token-of-alice")];
    let h = stdio_hub("share", &users, json!({}), json!({}));
    let clients: Vec<Client> = users.iter().map(|u| Client::connect_as(&h.url, Some(&u.key))).collect();
    for (c, u) in clients.iter().zip(&users) {
        assert_eq!(call(c, "env", json!({"name": "TOKEN"})).unwrap(), u.token, "{} sees only their own value", u.name);
        // The hub's own environment is not passed on (only the allow-list).
        assert_eq!(call(c, "env", json!({"name": "CARGO_MANIFEST_DIR"})).unwrap(), "(unset)");
        assert!(call(c, "env", json!({"name": "PATH"})).unwrap() != "(unset)", "PATH is on the allow-list");
    }
    let pids: Vec<String> = clients.iter().map(|c| call(c, "pid", json!({})).unwrap()).collect();
    assert_eq!(pids[0], pids[2], "alice and carol have the same token: one process");
    assert_ne!(pids[0], pids[1], "bob's token is another: another process");
    assert_eq!((count(&h, "idle"), count(&h, "running")), (2, 0), "{}", processes(&h));
    // A second client session of alice's shares her process too.
    let again = Client::connect_as(&h.url, Some(&users[0].key));
    assert_eq!(call(&again, "pid", json!({})).unwrap(), pids[0]);
    let metrics = hub_util::send("GET", &h.url.replace("/mcp", "/metrics"), &[], "").text;
    assert!(metrics.contains("mcphub_upstream_processes{server=\"m\",state=\"idle\"} 2"), "{metrics}");
    drop(clients);
    h.hub.close_upstream_sessions();
    wait_until("every mock process stopped and reaped", PATIENCE, || children("share") == (0, 0));
}

#[test]
fn a_process_killed_during_a_call_fails_that_call_at_once_and_the_next_call_gets_a_new_one() {
    let users = [user("alice", "token-of-alice")];
    let h = stdio_hub("crash", &users, json!({}), json!({}));
    let c = Client::connect_as(&h.url, Some(&users[0].key));
    let pid: i32 = call(&c, "pid", json!({})).unwrap().parse().unwrap();
    let slow = sleep_in_background(&c, 6000);
    wait_until("the sleep call in flight", PATIENCE, || count(&h, "running") == 1);
    let killed = Instant::now();
    assert_eq!(kill(pid, 9), 0, "kill -9 {pid}");
    let (r, at) = slow.join().unwrap();
    let err = r.expect_err("the call on the killed process fails");
    assert!(err.contains("exited") && err.contains("SIGKILL") && err.contains("'m'"), "a clear error naming the server and the exit: {err}");
    let took = at.saturating_duration_since(killed);
    assert!(took < Duration::from_secs(1), "failed within a second of the kill: {took:?}");
    let next: i32 = call(&c, "pid", json!({})).unwrap().parse().unwrap();
    assert_ne!(next, pid, "the next call runs on a new process");
    let p = processes(&h);
    assert_eq!((p["crashes"].as_u64(), p["restarts"].as_u64()), (Some(1), Some(1)), "{p}");
    eprintln!("kill -9 → call failed after {} ms; next call on process {next}", took.as_millis());
    h.hub.close_upstream_sessions();
    wait_until("every mock process stopped and reaped", PATIENCE, || children("crash") == (0, 0));
}

fn kill(pid: i32, signal: i32) -> i32 {
    std::process::Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status().map_or(-1, |s| s.code().unwrap_or(-1))
}

#[test]
fn a_process_that_stops_reading_is_killed_and_replaced() {
    let users = [user("alice", "token-of-alice")];
    let h = stdio_hub("hang", &users, json!({"pingIntervalSecs": 1}), json!({}));
    let c = Client::connect_as(&h.url, Some(&users[0].key));
    let pid = call(&c, "pid", json!({})).unwrap();
    assert_eq!(call(&c, "stop_reading", json!({})).unwrap(), "ok");
    let err = call(&c, "echo", json!({"text": "anyone?"})).expect_err("a process that reads nothing answers nothing");
    assert!(err.contains("stopped answering") && err.contains("ping"), "{err}");
    let next = call(&c, "pid", json!({})).unwrap();
    assert_ne!(next, pid, "replaced by a new process");
    assert_eq!(call(&c, "echo", json!({"text": "back"})).unwrap(), "back");
    h.hub.close_upstream_sessions();
    wait_until("every mock process stopped and reaped", PATIENCE, || children("hang") == (0, 0));
}

#[test]
fn the_least_recently_used_idle_process_makes_room_and_idle_ones_are_stopped() {
    let users = [user("u1", "token-1"), user("u2", "token-2"), user("u3", "token-3")];
    let h = stdio_hub("lru", &users, json!({"maxProcesses": 2, "idleTimeoutSecs": 2}), json!({}));
    let c: Vec<Client> = users.iter().map(|u| Client::connect_as(&h.url, Some(&u.key))).collect();
    let p1 = call(&c[0], "pid", json!({})).unwrap();
    call(&c[1], "pid", json!({})).unwrap();
    call(&c[2], "pid", json!({})).unwrap();
    let p = processes(&h);
    assert_eq!((p["idle"].as_u64(), p["evictions"].as_u64()), (Some(2), Some(1)), "u1's process (least recently used) made room: {p}");
    // u1 again: a new process, making room in turn.
    assert_ne!(call(&c[0], "pid", json!({})).unwrap(), p1);
    wait_until("idle processes stopped after idleTimeoutSecs", PATIENCE, || count(&h, "idle") == 0);
    assert!(count(&h, "evictions") >= 4, "{}", processes(&h));
    assert_eq!(count(&h, "crashes"), 0, "an eviction is not a crash: {}", processes(&h));
    wait_until("every mock process stopped and reaped", PATIENCE, || children("lru") == (0, 0));
}

#[test]
fn with_every_process_busy_a_call_waits_its_start_timeout_then_gets_503_and_retry_after() {
    let users = [user("u1", "token-1"), user("u2", "token-2")];
    let h = stdio_hub("busy", &users, json!({"maxProcesses": 1, "startTimeoutMs": 500}), json!({}));
    let busy = Client::connect_as(&h.url, Some(&users[0].key));
    let other = Client::connect_as(&h.url, Some(&users[1].key));
    // Both users' tool lists known (each start makes room for the other's).
    call(&busy, "pid", json!({})).unwrap();
    call(&other, "pid", json!({})).unwrap();
    let slow = sleep_in_background(&busy, 3000);
    wait_until("u1's call in flight", PATIENCE, || count(&h, "running") == 1);
    let body = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "pid", "arguments": {}}});
    let r = hub_util::send(
        "POST",
        &h.url,
        &[
            ("Authorization", &format!("Bearer {}", users[1].key)),
            ("Mcp-Session-Id", &other.sid),
            ("MCP-Protocol-Version", "2025-11-25"),
            hub_util::ACCEPT,
            hub_util::JSON,
        ],
        &body.to_string(),
    );
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(r.header("retry-after").is_some(), "Retry-After on the 503");
    assert!(r.text.contains("processes"), "{}", r.text);
    slow.join().unwrap().0.expect("u1's call finishes");
    // u1 idle now: u2's call takes its place.
    call(&other, "pid", json!({})).unwrap();
    h.hub.close_upstream_sessions();
    wait_until("every mock process stopped and reaped", PATIENCE, || children("busy") == (0, 0));
}


#[test]
fn a_cancelled_call_reaches_the_process_as_notifications_cancelled() {
    let users = [user("alice", "token-of-alice")];
    let h = stdio_hub("cancel", &users, json!({}), json!({}));
    let c = Client::connect_as(&h.url, Some(&users[0].key));
    let stats = |c: &Client| -> serde_json::Value { serde_json::from_str(&call(c, "stats", json!({})).unwrap()).unwrap() };
    assert_eq!(stats(&c)["cancelled"], 0);
    let slow = sleep_in_background(&c, 5000);
    wait_until("the sleep call in flight", PATIENCE, || count(&h, "running") == 1);
    let note = json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1, "reason": "user"}});
    let (status, _, _) = Client::post(&c.agent, &c.url, c.key.as_deref(), Some(&c.sid), &note).unwrap();
    assert_eq!(status, 202);
    wait_until("the process saw notifications/cancelled", PATIENCE, || stats(&c)["cancelled"] == 1);
    let _ = slow.join().unwrap();
    h.hub.close_upstream_sessions();
    wait_until("every mock process stopped and reaped", PATIENCE, || children("cancel") == (0, 0));
}

#[test]
fn a_reload_that_drops_or_changes_the_server_stops_its_processes() {
    let users = [user("alice", "token-of-alice")];
    let h = stdio_hub("reload", &users, json!({}), json!({}));
    let c = Client::connect_as(&h.url, Some(&users[0].key));
    let before = call(&c, "pid", json!({})).unwrap();
    assert_eq!(children("reload").0, 1);
    // A changed entry (another idle timeout): a new upstream, the old process stopped.
    let mut changed = (*h.hub.config()).clone();
    if let mcphub::config::TransportKind::Stdio(s) = &changed.servers[0].transport {
        let mut s = (**s).clone();
        s.idle_timeout = std::time::Duration::from_secs(120);
        changed.servers[0].transport = mcphub::config::TransportKind::Stdio(std::sync::Arc::new(s));
    }
    h.hub.reload(changed).expect("reload");
    wait_until("the old process stopped after the reload", PATIENCE, || children("reload") == (0, 0));
    assert_ne!(call(&Client::connect_as(&h.url, Some(&users[0].key)), "pid", json!({})).unwrap(), before, "a new process");
    // The entry removed: its process stopped.
    let mut dropped = (*h.hub.config()).clone();
    dropped.servers.clear();
    h.hub.reload(dropped).expect("reload");
    wait_until("the process stopped once its server left the config", PATIENCE, || children("reload") == (0, 0));
}

#[test]
fn a_server_request_goes_to_the_lone_call_in_flight_and_is_refused_as_unattributable_among_several() {
    let users = [user("alice", "token-of-alice")];
    let env = json!({"env": {"TOKEN": "${user.TOKEN}", "STDIO_TEST": "attribution", "MCPHUB_MOCK_FIXTURES": "conformance"}});
    let h = stdio_hub("attribution", &users, env, json!({}));
    let c = Client::connect_as(&h.url, Some(&users[0].key));
    // Alone: the sampling request is this call's, and this client declared no
    // sampling capability, so the hub answers it for the client (-32601).
    let alone = call(&c, "test_sampling", json!({"prompt": "hi"})).expect_err("the client cannot sample");
    assert!(alone.contains("cannot relay 'sampling/createMessage'"), "routed to the lone call's client: {alone}");
    // With another call in flight on the same process, no one call can be named.
    let slow = sleep_in_background(&c, 3000);
    wait_until("the sleep call in flight", PATIENCE, || count(&h, "running") == 1);
    let among = call(&c, "test_sampling", json!({"prompt": "hi"})).expect_err("unattributable");
    assert!(among.contains("cannot attribute 'sampling/createMessage'"), "refused as unattributable: {among}");
    slow.join().unwrap().0.expect("the sleep call is unaffected");
    h.hub.close_upstream_sessions();
    wait_until("every mock process stopped and reaped", PATIENCE, || children("attribution") == (0, 0));
}
