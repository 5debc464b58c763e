//! Heavy tools (issue 6): a server's `heavyTools` run through their own
//! queue with `heavyConcurrency` slots; other calls to the server do not
//! wait behind them; a full heavy queue answers 503 + Retry-After.

mod hub_util;

use hub_util::{hub, mock_with, Client};
use mcphub::mock::{Era, MockConfig};
use serde_json::json;
use std::time::Instant;

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
                let r = c.request("tools/call", json!({"name": "sleep", "arguments": {"ms": 300}}));
                (r, Instant::now())
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(150));
    // An ordinary call to the same server while four heavy calls queue.
    let echo = probe.request("tools/call", json!({"name": "echo", "arguments": {"text": "hi"}})).unwrap();
    let echo_done = Instant::now();
    assert!(hub_util::tool_text(&echo).is_ok(), "{echo}");
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
    assert!(stats["max_in_flight"].as_u64().unwrap() <= 2, "{stats}");
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
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let c = Client::connect(&h.url);
            std::thread::spawn(move || c.request("tools/call", json!({"name": "sleep", "arguments": {"ms": 500}})))
        })
        .collect();
    let results: Vec<Result<serde_json::Value, String>> = calls.into_iter().map(|t| t.join().unwrap()).collect();
    let ok = results.iter().filter(|r| r.as_ref().is_ok_and(|m| hub_util::tool_text(m).is_ok())).count();
    let refused: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(ok >= 2 && !refused.is_empty(), "ok {ok}, refused {refused:?}");
    for r in &refused {
        assert!(r.starts_with("HTTP 503") && r.contains("queue_full") && r.contains("retry_after_seconds"), "{r}");
    }
    assert_eq!(ok + refused.len(), 4);
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
