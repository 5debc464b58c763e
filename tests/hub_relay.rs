//! Server→client requests of a legacy upstream, relayed to the client whose
//! call they belong to, while many clients share one upstream session:
//! here progress against the mock over loopback. Sampling requests relayed
//! and answered (many clients, no capability, another session's answer, ids
//! kept as sent, the standalone GET stream) are Request → Response tests in
//! tests/core_relay.rs.

mod hub_util;

use hub_util::*;
use serde_json::json;

#[test]
fn twenty_clients_with_the_same_progress_token_each_get_only_their_own_progress() {
    let up = mock(mcphub_mock::Era::Legacy, "m");
    let h = hub(&[("m", &up.url)], json!({"workers": 8}));
    let url = h.url.clone();
    let clients: Vec<_> = (0..20)
        .map(|i| {
            let url = url.clone();
            std::thread::spawn(move || {
                let sid = legacy_session(&url);
                let steps = 3 + (i % 4);
                let r = legacy(&url, &sid, "tools/call", json!({"name": "progress", "arguments": {"steps": steps, "ms": 5}, "_meta": {"progressToken": "same"}}));
                let events = r.events();
                let progress: Vec<i64> = events
                    .iter()
                    .filter(|e| e["method"] == "notifications/progress")
                    .map(|e| {
                        assert_eq!(e["params"]["progressToken"], "same");
                        e["params"]["progress"].as_i64().unwrap()
                    })
                    .collect();
                (steps, progress, text_of(events.last().unwrap()))
            })
        })
        .collect();
    for c in clients {
        let (steps, progress, text) = c.join().unwrap();
        assert_eq!(progress, (1..=steps).collect::<Vec<i64>>(), "only this call's progress, in order");
        assert!(text.contains(&format!("{steps} steps")), "{text}");
    }
    assert_eq!(up.stats()["initialize"], 1, "one shared upstream session");
}
