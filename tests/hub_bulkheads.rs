//! Per-server bulkheads, upstream back-pressure and the circuit breaker
//! (issue 6, docs/decisions.md D7; src/limits/bulkhead.rs, src/limits/breaker.rs).

mod hub_util;

use hub_util::{hub, load_clients, mock_with, wait_until, Client, PATIENCE};
use mcphub_mock::{Era, MockConfig};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn server(url: &str, extra: Value) -> Value {
    let mut s = json!({"type": "streamable-http", "url": url, "connectTimeoutMs": 500, "timeoutMs": 5000});
    for (k, v) in extra.as_object().unwrap() {
        s[k] = v.clone();
    }
    s
}

fn sleep_call(c: &Client, tool: &str, ms: u64) -> Result<Value, String> {
    c.request("tools/call", json!({"name": tool, "arguments": {"ms": ms}}))
}

fn readyz(hub_url: &str) -> Value {
    let r = hub_util::send("GET", &hub_url.replace("/mcp", "/readyz"), &[], "");
    r.json()
}

#[test]
fn max_concurrency_bounds_what_the_upstream_sees() {
    let m = mock_with(MockConfig { era: Era::Legacy, name: "slow".into(), ..MockConfig::default() });
    let h = hub(&[], json!({"mcpServers": {"slow": server(&m.url, json!({"maxConcurrency": 2}))}}));
    let clients: Vec<Client> = (0..6).map(|_| Client::connect(&h.url)).collect();
    m.server.reset_stats();
    let threads: Vec<_> = clients
        .into_iter()
        .map(|c| std::thread::spawn(move || (0..3).map(|_| sleep_call(&c, "sleep", 80)).filter(|r| r.is_err()).count()))
        .collect();
    let failed: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let s = m.stats();
    println!("18 calls, 6 clients, maxConcurrency 2: failed {failed}, mock max_calls_in_flight {}, sleeps {}", s["max_calls_in_flight"], s["tools"]["sleep"]);
    assert_eq!(failed, 0);
    assert_eq!(s["tools"]["sleep"], 18);
    assert!(s["max_calls_in_flight"].as_u64().unwrap() <= 2, "{s}");
    assert_eq!(readyz(&h.url)["servers"]["slow"]["bulkhead"]["in_flight"], 0, "every slot released");
}

#[test]
fn a_full_queue_answers_503_with_retry_after() {
    let m = mock_with(MockConfig { era: Era::Legacy, name: "slow".into(), ..MockConfig::default() });
    let h = hub(&[], json!({"mcpServers": {"slow": server(&m.url, json!({"maxConcurrency": 1, "maxQueue": 1}))}}));
    let busy: Vec<_> = (0..2)
        .map(|_| {
            let c = Client::connect(&h.url);
            std::thread::spawn(move || sleep_call(&c, "sleep", 1500))
        })
        .collect();
    let c = Client::connect(&h.url);
    wait_until("one call in flight and one queued", PATIENCE, || {
        let b = &readyz(&h.url)["servers"]["slow"]["bulkhead"];
        b["in_flight"] == 1 && b["queued"] == 1
    });
    let body = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "sleep", "arguments": {"ms": 1}}});
    let (status, _, text) = Client::post(&c.agent, &c.url, None, Some(&c.sid), &body).unwrap();
    println!("queue full: HTTP {status} {text}");
    assert_eq!(status, 503);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["id"], 9);
    assert_eq!(v["error"]["code"], -32000);
    assert_eq!(v["error"]["data"]["reason"], "queue_full");
    assert_eq!(v["error"]["data"]["server"], "slow");
    assert!(v["error"]["data"]["retry_after_seconds"].as_u64().unwrap() >= 1);
    assert!(v["error"]["message"].as_str().unwrap().contains("server 'slow' is overloaded"), "{v}");
    // The Retry-After header (the raw answer: Client::post hides headers).
    let raw = hub_util::send("POST", &c.url, &[hub_util::ACCEPT, hub_util::JSON, ("Mcp-Session-Id", &c.sid), ("MCP-Protocol-Version", "2025-11-25")], &body.to_string());
    assert_eq!(raw.status, 503, "{}", raw.text);
    let secs = raw.json()["error"]["data"]["retry_after_seconds"].to_string();
    assert_eq!(raw.header("Retry-After"), Some(secs.as_str()));
    for b in busy {
        b.join().unwrap().expect("the call in flight and the queued one both complete");
    }
}

fn p50(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn timed_calls(c: &Client, n: usize) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            c.call("b__get_session_id").expect("a call to b");
            t.elapsed()
        })
        .collect()
}

#[test]
fn a_saturated_server_does_not_slow_another() {
    let a = mock_with(MockConfig { era: Era::Legacy, name: "a".into(), ..MockConfig::default() });
    let b = mock_with(MockConfig { era: Era::Legacy, name: "b".into(), ..MockConfig::default() });
    // 8 workers: without a bulkhead, A's slow calls would take all of them.
    let h = hub(
        &[],
        json!({"workers": 8, "toolNaming": "prefix", "timeouts": {"hubMs": 25000}, "mcpServers": {
            "a": server(&a.url, json!({"maxConcurrency": 2, "maxQueue": 2, "timeoutMs": 20000})),
            "b": server(&b.url, json!({}))}}),
    );
    let probe = Client::connect(&h.url);
    timed_calls(&probe, 5); // warm up: sessions, catalog
    let before = p50(timed_calls(&probe, 40));
    let stop = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // A's calls outlast everything B does below; any A call that completes
    // is counted, so "B was served while A stayed saturated" is observable.
    let a_done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let saturating: Vec<_> = (0..10)
        .map(|_| {
            let c = Client::connect(&h.url);
            let (stop, refused, a_done) = (stop.clone(), refused.clone(), a_done.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match sleep_call(&c, "a__sleep", A_CALL_MS) {
                        Ok(m) if m.get("result").is_some() => {
                            a_done.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            refused.fetch_add(1, Ordering::Relaxed);
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                }
            })
        })
        .collect();
    let saturated = || {
        let b = readyz(&h.url)["servers"]["a"]["bulkhead"].clone();
        b["queued"] == 2 && b["in_flight"] == 2
    };
    wait_until("A saturated (2 in flight, queue of 2 full)", PATIENCE, saturated);
    wait_until("a call to A refused (its queue is full)", PATIENCE, || refused.load(Ordering::Relaxed) > 0);
    // 40 calls to B while A holds its 2 slots and queue: each is served by a
    // free hub worker. Were B stuck behind A (no bulkhead), B's calls would
    // wait for A's A_CALL_MS calls to end, and `a_done` would have moved.
    let during = p50(timed_calls(&probe, 40));
    let a_state = readyz(&h.url)["servers"]["a"]["bulkhead"].clone();
    let a_finished = a_done.load(Ordering::Relaxed);
    let still_saturated = saturated();
    stop.store(true, Ordering::Relaxed);
    println!(
        "isolation: p50 of B before {:.2} ms, during A's saturation {:.2} ms (A: {a_state}, refused while saturated: {})",
        before.as_secs_f64() * 1e3,
        during.as_secs_f64() * 1e3,
        refused.load(Ordering::Relaxed)
    );
    assert_eq!(a_finished, 0, "B's 40 calls were answered only after one of A's {A_CALL_MS} ms calls ended");
    assert!(still_saturated, "A stayed saturated while B was served: {a_state}");
    assert!(a.stats()["max_calls_in_flight"].as_u64().unwrap() <= 2);
    // Each thread leaves after its current call (in flight or queued) ends.
    for t in saturating {
        t.join().unwrap();
    }
}

/// How long each saturating call to A sleeps: far longer than B's 40 calls
/// take on a loaded machine (A's `timeoutMs` is above it).
const A_CALL_MS: u64 = 5_000;

#[test]
fn the_hub_shapes_traffic_to_a_server_that_limits_concurrency() {
    let m = mock_with(MockConfig {
        era: Era::Legacy,
        name: "jira".into(),
        max_concurrency: Some(2),
        latency: Duration::from_millis(30),
        ..MockConfig::default()
    });
    // Directly: 8 clients at a server that takes 2 at once.
    let direct: Vec<Client> = (0..8).map(|_| Client::connect(&m.url)).collect();
    let until = Instant::now() + Duration::from_millis(600);
    let (direct_ok, direct_failed) = load_clients(direct, "get_session_id", until, 5);
    // Through the hub with maxConcurrency 2.
    let h = hub(&[], json!({"mcpServers": {"jira": server(&m.url, json!({"maxConcurrency": 2}))}}));
    let clients: Vec<Client> = (0..8).map(|_| Client::connect(&h.url)).collect();
    clients[0].call("get_session_id").expect("warm up");
    m.server.reset_stats();
    let until = Instant::now() + Duration::from_millis(600);
    let (ok, failed) = load_clients(clients, "get_session_id", until, 5);
    let s = m.stats();
    println!(
        "8 clients, upstream limit 2: direct {} ok / {} failed; through the hub {} ok / {} failed (upstream 429s seen by the hub: {})",
        direct_ok.len(),
        direct_failed.len(),
        ok.len(),
        failed.len(),
        s["rejected_429"]
    );
    assert!(!direct_failed.is_empty(), "the server refuses beyond 2 in flight");
    assert!(failed.is_empty(), "{:?}", &failed[..failed.len().min(3)]);
    // The hub never sent more than 2 at once, so the server refused nothing.
    assert!(s["max_calls_in_flight"].as_u64().unwrap() <= 2, "{s}");
    assert_eq!(s["rejected_429"], 0, "{s}");
}

#[test]
fn an_upstream_429_holds_the_server_and_the_call_is_retried() {
    // One slot at the mock, none at the hub: the hub's own concurrency draws
    // 429s, each holds the server (Retry-After, default 1 s) and is retried.
    let m = mock_with(MockConfig { era: Era::Legacy, name: "jira".into(), max_concurrency: Some(1), ..MockConfig::default() });
    let h = hub(&[], json!({"mcpServers": {"jira": server(&m.url, json!({}))}}));
    let clients: Vec<Client> = (0..4).map(|_| Client::connect(&h.url)).collect();
    clients[0].call("get_session_id").expect("warm up");
    m.server.reset_stats();
    let threads: Vec<_> = clients.into_iter().map(|c| std::thread::spawn(move || sleep_call(&c, "sleep", 100))).collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let s = m.stats();
    println!("4 concurrent calls, upstream limit 1, no hub limit: 429s {}, results ok {}", s["rejected_429"], results.iter().filter(|r| r.is_ok()).count());
    assert!(s["rejected_429"].as_u64().unwrap() >= 1, "the hub met the limit");
    for r in results {
        let msg = r.expect("every call completes");
        assert!(msg.get("result").is_some(), "{msg}");
    }
}

#[test]
fn the_circuit_opens_after_connect_failures() {
    let m = mock_with(MockConfig { era: Era::Legacy, name: "gone".into(), ..MockConfig::default() });
    let h = hub(&[], json!({"mcpServers": {"gone": server(&m.url, json!({}))}}));
    let c = Client::connect(&h.url);
    c.call("get_session_id").expect("the server works at first");
    drop(m); // its port now refuses connections
    let mut messages = Vec::new();
    for _ in 0..15 {
        let text = match c.request("tools/call", json!({"name": "get_session_id", "arguments": {}})) {
            Ok(msg) => msg.to_string(),
            Err(e) => e,
        };
        messages.push(text.clone());
        if text.contains("circuit open") {
            break;
        }
    }
    println!("{}", messages.join("\n"));
    let last = messages.last().unwrap();
    assert!(
        last.contains("server 'gone' is unavailable (circuit open after 5 connect failures); retrying in"),
        "{last}"
    );
    assert!(last.contains("\"retry_after_seconds\":") && last.contains("circuit_open"), "{last}");
    let r = readyz(&h.url);
    assert_eq!(r["servers"]["gone"]["bulkhead"]["circuit"], "open", "{r}");
}

#[test]
fn a_clients_cancel_releases_its_slot_at_once() {
    let m = mock_with(MockConfig { era: Era::Legacy, name: "slow".into(), ..MockConfig::default() });
    let h = hub(&[], json!({"mcpServers": {"slow": server(&m.url, json!({"maxConcurrency": 1, "maxQueue": 0}))}}));
    let c = Client::connect(&h.url);
    let (agent, url, sid) = (c.agent.clone(), c.url.clone(), c.sid.clone());
    let call = std::thread::spawn(move || {
        let body = json!({"jsonrpc": "2.0", "id": 41, "method": "tools/call", "params": {"name": "sleep", "arguments": {"ms": 4000}}});
        Client::post(&agent, &url, None, Some(&sid), &body)
    });
    wait_until("the call holding the slot", PATIENCE, || readyz(&h.url)["servers"]["slow"]["bulkhead"]["in_flight"] == 1);
    let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 41, "reason": "user"}});
    let (status, _, _) = Client::post(&c.agent, &c.url, None, Some(&c.sid), &cancel).unwrap();
    assert_eq!(status, 202);
    // Released now, not when the 4 s sleep ends (half of it is a generous bound).
    wait_until("the slot released", Duration::from_millis(2000), || readyz(&h.url)["servers"]["slow"]["bulkhead"]["in_flight"] == 0);
    let other = Client::connect(&h.url);
    let msg = sleep_call(&other, "sleep", 1).expect("the freed slot serves the next call (maxQueue 0)");
    assert!(msg.get("result").is_some(), "{msg}");
    let (_, _, text) = call.join().unwrap().unwrap();
    assert!(text.contains("cancelled"), "{text}");
}

#[test]
fn max_concurrency_and_max_queue_are_checked_when_the_config_loads() {
    let cfg = |extra: Value| {
        let mut s = json!({"url": "http://127.0.0.1:9/mcp"});
        for (k, v) in extra.as_object().unwrap() {
            s[k] = v.clone();
        }
        mcphub::config::Config::parse(&json!({"mcpServers": {"x": s}}).to_string())
    };
    let c = cfg(json!({})).unwrap();
    assert_eq!((c.servers[0].max_concurrency, c.servers[0].max_queue), (None, 64), "unlimited, queue 64");
    let c = cfg(json!({"maxConcurrency": 8, "maxQueue": 0})).unwrap();
    assert_eq!((c.servers[0].max_concurrency, c.servers[0].max_queue), (Some(8), 0));
    assert!(cfg(json!({"maxConcurrency": 0})).unwrap_err().to_string().contains("mcpServers.x.maxConcurrency"));
    assert!(cfg(json!({"maxQueue": -1})).is_err());
}
