//! Heavy tools (issue 6): a server's `heavyTools` run through their own
//! queue with `heavyConcurrency` slots; other calls to the server do not
//! wait behind them; a full heavy queue answers 503 + Retry-After.

mod hub_util;

use hub_util::{hub, mock_with, wait_until, Client, HubUnderTest, PATIENCE};
use mcphub_mock::{Era, MockConfig};
use serde_json::json;
use std::time::Instant;

/// `/readyz` `servers.jobs.heavy`: the heavy queue's `in_flight` and `queued`.
fn heavy(h: &HubUnderTest) -> serde_json::Value {
    hub_util::send("GET", &h.url.replace("/mcp", "/readyz"), &[], "").json()["servers"]["jobs"]["heavy"].clone()
}

#[test]
fn heavy_tools_never_exceed_their_concurrency_and_do_not_block_other_calls() {
    let mock = mock_with(MockConfig { era: Era::Legacy, name: "jobs".into(), ..MockConfig::default() });
    let h = hub(
        &[],
        json!({"workers": 16, "mcpServers": {"jobs": {"url": mock.url, "protocol": "legacy", "timeoutMs": 7000,
            "heavyTools": ["sl*p"], "heavyConcurrency": 1, "heavyQueue": 8}}}),
    );
    let probe = Client::connect(&h.url);
    probe.call("echo").ok(); // warm: session and lists
    let sleepers: Vec<_> = (0..5)
        .map(|_| {
            let c = Client::connect(&h.url);
            std::thread::spawn(move || {
                let r = c.request("tools/call", json!({"name": "sleep", "arguments": {"ms": 1000}}));
                (r, Instant::now())
            })
        })
        .collect();
    wait_until("one heavy call running and four queued", PATIENCE, || {
        let q = heavy(&h);
        q["in_flight"] == 1 && q["queued"] == 4
    });
    // An ordinary call to the same server while four heavy calls queue: it
    // is answered while heavy calls still wait (the queue needs ~4 s more).
    let echo = probe.request("tools/call", json!({"name": "echo", "arguments": {"text": "hi"}})).unwrap();
    let echo_done = Instant::now();
    let behind_it = heavy(&h);
    assert!(hub_util::tool_text(&echo).is_ok(), "{echo}");
    assert!(behind_it["queued"].as_u64().unwrap() >= 1, "the echo waited for the heavy queue: {behind_it}");
    let ends: Vec<Instant> = sleepers
        .into_iter()
        .map(|t| {
            let (r, at) = t.join().unwrap();
            let msg = r.unwrap();
            assert!(hub_util::tool_text(&msg).is_ok(), "{msg}");
            at
        })
        .collect();
    let stats = mock.stats();
    // One heavy call at a time, plus possibly the echo beside it (five unqueued sleeps would show 5+).
    assert!(stats["max_calls_in_flight"].as_u64().unwrap() <= 2, "{stats}");
    assert_eq!(stats["tools"]["sleep"], 5);
    let last = ends.iter().max().unwrap();
    assert!(echo_done < *last, "the echo did not wait for the heavy queue to drain");
}

#[test]
fn a_full_heavy_queue_answers_503_with_retry_after() {
    let mock = mock_with(MockConfig { era: Era::Legacy, name: "jobs".into(), ..MockConfig::default() });
    let h = hub(
        &[],
        json!({"workers": 16, "mcpServers": {"jobs": {"url": mock.url, "protocol": "legacy", "timeoutMs": 7000,
            "heavyTools": ["sleep"], "heavyConcurrency": 1, "heavyQueue": 1}}}),
    );
    Client::connect(&h.url).call("echo").ok();
    let start = || {
        let c = Client::connect(&h.url);
        std::thread::spawn(move || c.request("tools/call", json!({"name": "sleep", "arguments": {"ms": 3000}})))
    };
    // The one slot, then the one queue place, taken in turn.
    let running = start();
    wait_until("the first heavy call in its slot", PATIENCE, || heavy(&h)["in_flight"] == 1);
    let queued = start();
    wait_until("the second heavy call queued", PATIENCE, || {
        let q = heavy(&h);
        q["in_flight"] == 1 && q["queued"] == 1
    });
    // Slot and queue full: the next two are refused at once.
    let refused: Vec<String> = [start(), start()]
        .into_iter()
        .map(|t| t.join().unwrap().expect_err("refused while the heavy queue is full"))
        .collect();
    for r in &refused {
        assert!(r.starts_with("HTTP 503") && r.contains("queue_full") && r.contains("retry_after_seconds"), "{r}");
    }
    for t in [running, queued] {
        let msg = t.join().unwrap().expect("the accepted heavy calls complete");
        assert!(hub_util::tool_text(&msg).is_ok(), "{msg}");
    }
}

#[test]
fn heavy_tools_are_listed_as_task_optional_for_2025_11_25_clients() {
    let mock = mock_with(MockConfig { era: Era::Legacy, name: "jobs".into(), ..MockConfig::default() });
    let h = hub(&[], json!({"mcpServers": {"jobs": {"url": mock.url, "protocol": "legacy", "timeoutMs": 7000, "heavyTools": ["sleep"]}}}));
    let c = Client::connect(&h.url);
    let listed = c.request("tools/list", json!({})).unwrap();
    let tools = listed["result"]["tools"].as_array().unwrap();
    let find = |n: &str| tools.iter().find(|t| t["name"] == n).cloned().unwrap();
    assert_eq!(find("sleep")["execution"]["taskSupport"], "optional", "{listed}");
    assert!(find("echo").pointer("/execution/taskSupport").is_none(), "{listed}");
}
