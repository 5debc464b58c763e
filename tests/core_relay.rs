//! Server→client requests of a legacy upstream relayed on the call's stream
//! to the client whose call they belong to, and the client's answer POSTed
//! back upstream, Request → Response without a socket (issue 15 item 7):
//! the upstream's stream is a [`Live`] one that waits for the hub's answer,
//! the client reads its call stream while it is open (`post_streaming`) and
//! POSTs the answer through `Hub::handle`. The same over loopback sockets is
//! in tests/hub_relay.rs.

mod core_util;

use core_util::*;
use mcphub::hub::Hub;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A legacy server with one tool, `ask`: each call sends its own
/// `sampling/createMessage` (id `up-N`) on the call's stream, waits (≤ 10 s)
/// for the hub's answer, and ends with a result quoting it: `sampled: X`,
/// `refused: CODE`, or `no answer`.
fn sampling_server(traffic: Traffic) -> Script {
    let counter = Arc::new(AtomicUsize::new(0));
    Arc::new(move |body: &Value, h: &[(String, String)]| {
        if body["method"] != "tools/call" {
            return (legacy_server("ask", json!([tool("ask")])))(body, h);
        }
        let up_id = format!("up-{}", counter.fetch_add(1, Ordering::SeqCst));
        let (call_id, traffic) = (body["id"].clone(), traffic.clone());
        let mut step = 0;
        Reply::live(move |cut: &Cut| {
            step += 1;
            match step {
                1 => Some(json!({"jsonrpc": "2.0", "id": up_id, "method": "sampling/createMessage", "params": {"messages": [], "maxTokens": 5}})),
                2 => {
                    let a = cut.wait_for(&traffic, Duration::from_secs(10), |s| s.kind == "answer" && s.body["id"] == up_id.as_str()).map(|s| s.body);
                    let text = match a {
                        Some(a) if a.get("result").is_some() => format!("sampled: {}", a["result"]["content"]["text"].as_str().unwrap_or("?")),
                        Some(a) => format!("refused: {}", a["error"]["code"]),
                        None => "no answer".to_string(),
                    };
                    Some(json!({"jsonrpc": "2.0", "id": call_id, "result": {"content": [{"type": "text", "text": text}]}}))
                }
                _ => None,
            }
        })
    })
}

fn setup() -> (Hub, Traffic) {
    let traffic = Traffic::default();
    let h = hub_with_traffic(json!({}), vec![("ask", json!({}), sampling_server(traffic.clone()))], traffic.clone());
    (h, traffic)
}

/// A legacy (2025-06-18) client session declaring `capabilities`.
fn session_with(h: &Hub, capabilities: Value) -> String {
    let body = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": capabilities, "clientInfo": {"name": "t", "version": "1"}}});
    let r = post(h, &body.to_string(), &[ACCEPT, JSON]);
    assert_eq!(r.status, 200, "{}", r.text);
    r.header("mcp-session-id").expect("a session id").to_string()
}

fn sampled(id: &Value, text: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "result": {"role": "assistant", "content": {"type": "text", "text": text}, "model": "m"}}).to_string()
}

/// Calls `ask` (raw id `call_id`) on `sid`; `on_request` runs with each
/// sampling request seen on the stream (and POSTs what it likes); returns
/// (the hub ids seen, the whole answer).
fn call_with(h: &Hub, sid: &str, call_id: &str, mut on_request: impl FnMut(&Value)) -> (Vec<String>, Answer) {
    let body = format!(r#"{{"jsonrpc":"2.0","id":{call_id},"method":"tools/call","params":{{"name":"ask","arguments":{{}}}}}}"#);
    let mut seen = Vec::new();
    let r = post_streaming(h, &body, &legacy_headers(sid), |m| {
        if m["method"] == "sampling/createMessage" {
            seen.push(m["id"].as_str().expect("a string id").to_string());
            on_request(m);
        }
    });
    assert!(r.sse, "a streamed answer: {}", r.text);
    (seen, r)
}

/// Calls `ask` on `sid` and answers its sampling request with `reply`.
fn call_and_answer(h: &Hub, sid: &str, reply: &str) -> (Vec<String>, String) {
    let (seen, r) = call_with(h, sid, "1", |m| {
        let a = post(h, &sampled(&m["id"], reply), &legacy_headers(sid));
        assert_eq!((a.status, a.text.as_str()), (202, ""));
    });
    let last = r.json();
    assert_eq!(last["id"], 1, "{}", r.text);
    (seen, last["result"]["content"][0]["text"].as_str().unwrap_or_else(|| panic!("no text: {last}")).to_string())
}

#[test]
fn a_client_answers_its_own_sampling_request_and_the_answer_reaches_the_upstream_under_its_id() {
    let (h, traffic) = setup();
    let sid = session_with(&h, json!({"sampling": {}}));
    let (seen, text) = call_and_answer(&h, &sid, "hello");
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].starts_with("mcphub-r"), "the upstream id is replaced: {seen:?}");
    assert_eq!(text, "sampled: hello");
    let answers = traffic.answers("ask");
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].body["id"], "up-0", "under the upstream's own id");
    assert_eq!(answers[0].body["result"]["content"]["text"], "hello");
    assert_eq!(answers[0].header("Mcp-Session-Id"), Some("ask-s1"), "on the upstream session of the call");
    assert!(h.pending().is_empty(), "nothing left waiting");
}

#[test]
fn ten_clients_on_one_upstream_session_each_answer_only_their_own_request() {
    let (h, traffic) = setup();
    let sessions: Vec<String> = (0..10).map(|_| session_with(&h, json!({"sampling": {}}))).collect();
    let results: Vec<(Vec<String>, String)> = std::thread::scope(|scope| {
        let calls: Vec<_> = sessions.iter().enumerate().map(|(i, sid)| {
            let h = &h;
            scope.spawn(move || call_and_answer(h, sid, &format!("client-{i}")))
        }).collect();
        calls.into_iter().map(|c| c.join().expect("a client")).collect()
    });
    let mut ids: Vec<String> = Vec::new();
    for (i, (seen, text)) in results.into_iter().enumerate() {
        assert_eq!(seen.len(), 1, "client {i}: {seen:?}");
        assert_eq!(text, format!("sampled: client-{i}"), "client {i} got another client's answer");
        ids.extend(seen);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 10, "hub ids never collide");
    assert_eq!(traffic.answers("ask").len(), 10);
    assert_eq!(traffic.calls("ask", "initialize").len(), 1, "one shared upstream session");
    assert!(h.pending().is_empty());
}

#[test]
fn a_client_without_the_capability_never_sees_the_request_and_the_upstream_is_told() {
    let (h, traffic) = setup();
    let sid = session_with(&h, json!({}));
    let (seen, text) = call_and_answer(&h, &sid, "unused");
    assert!(seen.is_empty(), "{seen:?}");
    assert_eq!(text, "refused: -32601");
    assert_eq!(traffic.answers("ask")[0].body["error"]["code"], -32601);
}

#[test]
fn an_answer_from_another_session_is_not_routed() {
    let (h, traffic) = setup();
    let owner = session_with(&h, json!({"sampling": {}}));
    let intruder = session_with(&h, json!({"sampling": {}}));
    // The intruder answers first, with the very id the owner just received.
    let (seen, r) = call_with(&h, &owner, "1", |m| {
        let fake = post(&h, &sampled(&m["id"], "intruder"), &legacy_headers(&intruder));
        assert_eq!(fake.status, 202, "accepted, but not routed");
        assert!(traffic.answers("ask").is_empty(), "the intruder's answer went nowhere");
        let a = post(&h, &sampled(&m["id"], "owner"), &legacy_headers(&owner));
        assert_eq!(a.status, 202);
    });
    assert_eq!(seen.len(), 1);
    assert_eq!(r.json()["result"]["content"][0]["text"], "sampled: owner");
    assert_eq!(traffic.answers("ask").len(), 1);
}

#[test]
fn a_call_keeps_its_id_as_sent_through_a_sampling_round_answered_with_an_escaped_hub_id() {
    let (h, _) = setup();
    let sid = session_with(&h, json!({"sampling": {}}));
    for (i, call_id) in ["1E3", r#""\u0041\/b""#].into_iter().enumerate() {
        let (seen, r) = call_with(&h, &sid, call_id, |m| {
            let escaped: String = m["id"].as_str().unwrap().chars().map(|c| format!("\\u{:04x}", c as u32)).collect();
            let answer = format!(r#"{{"jsonrpc":"2.0","id":"{escaped}","result":{{"role":"assistant","content":{{"type":"text","text":"r{i}"}},"model":"m"}}}}"#);
            let a = post(&h, &answer, &legacy_headers(&sid));
            assert_eq!(a.status, 202, "{}", a.text);
        });
        assert_eq!(seen.len(), 1, "one sampling request");
        let last = r.message_text();
        assert!(last.contains(&format!(r#""id":{call_id}"#)), "id {call_id} not echoed as sent: {last}");
        assert_eq!(r.json()["result"]["content"][0]["text"], format!("sampled: r{i}"), "the escaped answer was routed");
    }
    assert!(h.pending().is_empty(), "nothing left waiting");
}
