//! Server→client requests of a legacy upstream relayed on the call's stream
//! to the client whose call they belong to, and the client's answer POSTed
//! back upstream, Request → Response without a socket (issue 15 item 7):
//! the upstream's stream is a [`Live`] one that waits for the hub's answer,
//! the client reads its call stream while it is open (`post_streaming`) and
//! POSTs the answer through `Hub::handle`. Requests on a legacy server's
//! standalone GET stream: refused as unattributable on a shared session,
//! relayed to the client's GET stream with `sessionSharing: client`. The
//! many-clients and progress cases over loopback sockets are in
//! tests/hub_relay.rs.

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
fn twenty_clients_on_one_upstream_session_each_answer_only_their_own_sampling_request() {
    let (h, traffic) = setup();
    let sessions: Vec<String> = (0..20).map(|_| session_with(&h, json!({"sampling": {}}))).collect();
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
    assert_eq!(ids.len(), 20, "hub ids never collide");
    assert_eq!(traffic.answers("ask").len(), 20);
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

// ---------------------------------------------------------------- requests on the standalone stream

/// A legacy server like an SDK server whose tool asks the client without
/// relating the request to its call: each session (`sess-N`) has a GET
/// stream; a `tools/call` sends one `sampling/createMessage` (id `get-N`)
/// on every open GET stream, waits (≤ 10 s) for each answer, and returns
/// them in id order as its text: `sampled: X` or `refused: CODE REASON`.
fn standalone_server(traffic: Traffic) -> Script {
    type Streams = Arc<std::sync::Mutex<Vec<std::sync::mpsc::Sender<Value>>>>;
    let streams: Streams = Arc::default();
    let (sessions, sent) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    Arc::new(move |body: &Value, _h: &[(String, String)]| {
        if body.is_null() {
            let (tx, rx) = std::sync::mpsc::channel::<Value>();
            streams.lock().unwrap().push(tx);
            let end = std::time::Instant::now() + Duration::from_secs(10);
            return Reply::live(move |cut: &Cut| {
                while !cut.is_cut() && std::time::Instant::now() < end {
                    if let Ok(m) = rx.recv_timeout(Duration::from_millis(10)) {
                        return Some(m);
                    }
                }
                None
            });
        }
        match body["method"].as_str().unwrap_or("") {
            "server/discover" => Reply::error(body, -32601, "Method not found"),
            "initialize" => {
                let n = sessions.fetch_add(1, Ordering::SeqCst);
                Reply::result(body, json!({"protocolVersion": "2025-11-25", "capabilities": {"tools": {}}, "serverInfo": {"name": "standalone", "version": "1"}})).session(&format!("sess-{n}"))
            }
            m if m.starts_with("notifications/") => Reply::status(202),
            "tools/list" => Reply::result(body, json!({"tools": [tool("ask")]})),
            "tools/call" => {
                let mut ids = Vec::new();
                for stream in streams.lock().unwrap().iter() {
                    let id = format!("get-{}", sent.fetch_add(1, Ordering::SeqCst));
                    if stream.send(json!({"jsonrpc": "2.0", "id": id, "method": "sampling/createMessage", "params": {"messages": [], "maxTokens": 5}})).is_ok() {
                        ids.push(id);
                    }
                }
                let (call_id, traffic) = (body["id"].clone(), traffic.clone());
                let mut done = false;
                Reply::live(move |cut: &Cut| {
                    if std::mem::replace(&mut done, true) {
                        return None;
                    }
                    let outcomes: Vec<String> = ids.iter().map(|id| match cut.wait_for(&traffic, Duration::from_secs(10), |s| s.kind == "answer" && s.body["id"] == id.as_str()).map(|s| s.body) {
                        Some(a) if a.get("result").is_some() => format!("sampled: {}", a["result"]["content"]["text"].as_str().unwrap_or("?")),
                        Some(a) => format!("refused: {} {}", a["error"]["code"], a["error"]["data"]["reason"].as_str().unwrap_or("-")),
                        None => "no answer".to_string(),
                    }).collect();
                    Some(json!({"jsonrpc": "2.0", "id": call_id, "result": {"content": [{"type": "text", "text": outcomes.join(" | ")}]}}))
                })
            }
            _ => Reply::error(body, -32601, "Method not found"),
        }
    })
}

fn standalone_hub(server: Value) -> (Hub, Traffic) {
    let traffic = Traffic::default();
    let h = hub_with_traffic(json!({}), vec![("ask", server, standalone_server(traffic.clone()))], traffic.clone());
    (h, traffic)
}

/// A legacy client's GET stream on the hub.
fn get_stream(h: &Hub, sid: &str) -> OpenStream {
    let s = open_stream(h, "GET", &[("Accept", "text/event-stream"), ("Mcp-Session-Id", sid), ("MCP-Protocol-Version", "2025-06-18")], "");
    assert_eq!(s.status, 200, "{}", s.text);
    s
}

fn upstream_gets(traffic: &Traffic) -> usize {
    traffic.all().iter().filter(|s| s.kind == "get").count()
}

#[test]
fn a_request_on_a_shared_sessions_standalone_stream_is_refused_as_unattributable_not_method_not_found() {
    let (h, traffic) = standalone_hub(json!({}));
    let sid = session_with(&h, json!({"sampling": {}}));
    let mut listening = get_stream(&h, &sid);
    assert_eq!(legacy(&h, &sid, "tools/list", json!({})).status, 200);
    wait_until("the hub opens the shared session's GET stream", PATIENCE, || upstream_gets(&traffic) == 1);
    let r = legacy(&h, &sid, "tools/call", json!({"name": "ask", "arguments": {}}));
    assert_eq!(r.json()["result"]["content"][0]["text"], "refused: -32000 unattributable", "{}", r.text);
    let answer = &traffic.answers("ask")[0];
    assert_eq!((answer.body["id"].as_str(), answer.header("Mcp-Session-Id")), (Some("get-0"), Some("sess-0")), "answered on the shared session");
    assert!(h.pending().is_empty(), "nothing waits for an answer");
    assert_eq!(listening.next_within(Duration::from_millis(100)), None, "the client never saw the request");
}

#[test]
fn with_session_sharing_client_a_request_on_the_standalone_stream_reaches_that_client() {
    // The hub's own list fetches use the shared session, the client's call its own:
    // two upstream sessions, each with a GET stream the server sends on.
    let (h, traffic) = standalone_hub(json!({"sessionSharing": "client"}));
    let mine = session_with(&h, json!({"sampling": {}}));
    let other = session_with(&h, json!({"sampling": {}}));
    let (mut mine_stream, mut bystander) = (get_stream(&h, &mine), get_stream(&h, &other));
    assert_eq!(legacy(&h, &mine, "tools/list", json!({})).status, 200);
    wait_until("both upstream GET streams are open", PATIENCE, || upstream_gets(&traffic) == 2);
    let (text, answered) = std::thread::scope(|scope| {
        let client = scope.spawn(|| {
            let m = mine_stream.next();
            assert_eq!(m["method"], "sampling/createMessage", "{m}");
            let a = post(&h, &sampled(&m["id"], "mine"), &legacy_headers(&mine));
            assert_eq!(a.status, 202);
            m["id"].as_str().unwrap().to_string()
        });
        let r = legacy(&h, &mine, "tools/call", json!({"name": "ask", "arguments": {}}));
        (r.json()["result"]["content"][0]["text"].as_str().unwrap_or_else(|| panic!("no tool text: {}", r.text)).to_string(), client.join().expect("the client"))
    });
    let mut outcomes: Vec<&str> = text.split(" | ").collect();
    outcomes.sort();
    assert_eq!(outcomes, ["refused: -32000 unattributable", "sampled: mine"], "the client's own session relays, the shared one refuses");
    assert!(answered.starts_with("mcphub-r"), "the client answered under a hub id: {answered}");
    assert!(h.pending().is_empty(), "nothing left waiting");
    assert_eq!(bystander.next_within(Duration::from_millis(100)), None, "another client never saw the request");
}
