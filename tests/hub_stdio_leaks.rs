//! 1,000 start/evict cycles of a stdio server across 50 contexts (issue 19):
//! the mock processes, zombies and this process's (the hub's) open file
//! descriptors come back to their baseline. Its own binary: nothing else
//! opens descriptors meanwhile.

#[path = "hub_util/mod.rs"]
mod hub_util;
#[path = "stdio_util/mod.rs"]
mod stdio_util;

use hub_util::{wait_until, Client, PATIENCE};
use serde_json::json;
use std::time::Instant;
use stdio_util::{call, children, open_fds, processes, stdio_hub, user, User};

#[test]
fn a_thousand_start_and_evict_cycles_across_fifty_contexts_leak_nothing() {
    let users: Vec<User> = (0..50).map(|i| user(&format!("u{i}"), &format!("token-{i:04}"))).collect();
    let h = stdio_hub("leak", &users, json!({"maxProcesses": 1}), json!({}));
    let clients: Vec<Client> = users.iter().map(|u| Client::connect_as(&h.url, Some(&u.key))).collect();
    // One round first: every connection open, one process running.
    for c in &clients {
        call(c, "pid", json!({})).unwrap();
    }
    wait_until("one process left after the first round", PATIENCE, || children("leak") == (1, 0));
    // Three pipe threads per live process (stdin writer, stdout reader, stderr logger).
    wait_until("one process's three pipe threads", PATIENCE, || process_threads(&h) == 3.0);
    let (base_children, base_fds, base_threads) = (children("leak"), open_fds(), process_threads(&h));
    let started = Instant::now();
    for round in 1..20 {
        for (i, c) in clients.iter().enumerate() {
            call(c, "pid", json!({})).unwrap_or_else(|e| panic!("round {round}, user {i}: {e}"));
        }
    }
    let took = started.elapsed();
    wait_until("back to one process and no zombie", PATIENCE, || children("leak") == base_children);
    wait_until("the hub's file descriptors back to their baseline", PATIENCE, || open_fds() <= base_fds);
    wait_until("the process threads back to their baseline", PATIENCE, || process_threads(&h) == base_threads);
    let p = processes(&h);
    assert!(p["evictions"].as_u64().unwrap() >= 999, "{p}");
    eprintln!(
        "1000 start/evict cycles over 50 contexts in {:.1} s: mock processes {} → {} (zombies {} → {}), hub fds {base_fds} → {}, process threads {base_threads} → {}, evictions {}",
        took.as_secs_f64() + 0.0,
        base_children.0,
        children("leak").0,
        base_children.1,
        children("leak").1,
        open_fds(),
        process_threads(&h),
        p["evictions"]
    );
    h.hub.close_upstream_sessions();
    wait_until("every mock process stopped and reaped", PATIENCE, || children("leak") == (0, 0));
}

/// `mcphub_threads{kind="process"}` from the hub's `/metrics`.
fn process_threads(h: &hub_util::HubUnderTest) -> f64 {
    let text = hub_util::send("GET", &h.url.replace("/mcp", "/metrics"), &[], "").text;
    text.lines()
        .find_map(|l| l.strip_prefix("mcphub_threads{kind=\"process\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no mcphub_threads{{kind=\"process\"}} in /metrics:\n{text}"))
}
