//! Client input across the eras (2026-07-28 `basic/patterns/mrtr.mdx`):
//! a modern upstream's `InputRequiredResult` answered by a legacy client on
//! its call stream, and a legacy upstream's server→client requests answered
//! by a modern client's retry with `inputResponses` + `requestState`. The
//! single-client rounds against scripted upstreams (keys, tokens, forgeries,
//! parking, missing capabilities) are Request → Response tests in
//! tests/core_mrtr.rs; here the mock's fixtures and many clients at once.

mod hub_util;

use hub_util::*;
use mcphub::http::{Server, ServerConfig};
use mcphub_mock::{Era, MockConfig, MockServer};
use parking_lot::{Condvar, Mutex};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- clients

fn session_with(url: &str, capabilities: Value) -> String {
    let body = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities": capabilities,"clientInfo":{"name":"t","version":"1"}}});
    let r = send("POST", url, &[ACCEPT, JSON], &body.to_string());
    r.header("mcp-session-id").expect("session").to_string()
}

/// A legacy client's `tools/call` read event by event: each server→client
/// request on the stream is answered (POSTed) with `answer(request)`; returns
/// (the requests seen, the call's final message).
fn legacy_call(url: &str, sid: &str, tool: &str, args: Value, answer: impl Fn(&Value) -> Value) -> (Vec<Value>, Value) {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": tool, "arguments": args}}).to_string();
    let mut stream = SseStream::post(url, &[("Mcp-Session-Id", sid), ("MCP-Protocol-Version", "2025-11-25")], &body);
    if !stream.header("content-type").unwrap_or("").starts_with("text/event-stream") {
        let v: Value = serde_json::from_str(&stream.text()).unwrap();
        return (Vec::new(), v);
    }
    let mut seen = Vec::new();
    while let Some(event) = stream.next() {
        let m = event.data;
        if m.get("method").is_some() && m.get("id").is_some() {
            seen.push(m.clone());
            let reply = json!({"jsonrpc": "2.0", "id": m["id"], "result": answer(&m)});
            let r = send("POST", url, &[ACCEPT, JSON, ("Mcp-Session-Id", sid), ("MCP-Protocol-Version", "2025-11-25")], &reply.to_string());
            assert_eq!(r.status, 202);
        } else if m.get("id") == Some(&json!(7)) {
            return (seen, m);
        }
    }
    panic!("the stream ended without the call's response");
}

/// A modern (2026-07-28) `tools/call` with `capabilities` in `_meta` and
/// `extra` params (requestState, inputResponses, progress token).
fn modern_call(url: &str, id: &str, tool: &str, capabilities: Value, extra: Value) -> Reply {
    let mut params = json!({"name": tool, "arguments": {}, "_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": capabilities}});
    for (k, v) in extra.as_object().unwrap() {
        if k == "progressToken" {
            params["_meta"]["progressToken"] = v.clone();
        } else {
            params[k] = v.clone();
        }
    }
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params}).to_string();
    send("POST", url, &[ACCEPT, JSON, ("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", "tools/call"), ("Mcp-Name", tool)], &body)
}

fn sampled(text: &str) -> Value {
    json!({"role": "assistant", "content": {"type": "text", "text": text}, "model": "m"})
}

// ---------------------------------------------------------------- A: modern upstream, legacy client

fn conformance_mock() -> (Arc<MockServer>, mcphub::http::ServerHandle, String) {
    let server = Arc::new(MockServer::with_conformance_fixtures(MockConfig { era: Era::Modern, name: "conf".into(), ..MockConfig::default() }));
    let handle = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default(), server.clone()).expect("bind mock");
    let url = format!("http://{}/mcp", handle.local_addr());
    (server, handle, url)
}

#[test]
fn a_legacy_client_answers_a_modern_servers_sampling_request_on_its_call_stream() {
    let (_mock, mock_handle, mock_url) = conformance_mock();
    let h = hub(&[("conf", &mock_url)], json!({}));
    let sid = session_with(&h.url, json!({"sampling": {}}));
    let (seen, last) = legacy_call(&h.url, &sid, "test_sampling", json!({"prompt": "2+2?"}), |_| sampled("four"));
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["method"], "sampling/createMessage");
    assert!(seen[0]["id"].as_str().unwrap().starts_with("mcphub-i"), "a hub id: {}", seen[0]);
    assert_eq!(seen[0]["params"]["messages"][0]["content"]["text"], "2+2?");
    assert_eq!(text_of(&last), "LLM response: four");
    assert!(last["result"].get("resultType").is_none(), "a legacy result: {last}");
    assert_eq!(h.hub.mrtr().waiting_len(), 0);

    // Elicitation the same way.
    let sid = session_with(&h.url, json!({"elicitation": {}}));
    let (seen, last) =
        legacy_call(&h.url, &sid, "test_elicitation", json!({"message": "who?"}), |_| json!({"action": "accept", "content": {"username": "jane", "email": "j@x"}}));
    assert_eq!(seen[0]["method"], "elicitation/create");
    assert!(text_of(&last).contains("action=accept") && text_of(&last).contains("jane"), "{last}");
    drop(h);
    mock_handle.shutdown();
}

#[test]
fn a_legacy_client_without_the_capability_or_without_sse_gets_a_clear_answer() {
    let (_mock, mock_handle, mock_url) = conformance_mock();
    let h = hub(&[("conf", &mock_url)], json!({}));
    // No sampling declared: the hub does not declare it upstream either, so
    // the server falls back (here: a tool error naming it), no request is sent.
    let sid = session_with(&h.url, json!({}));
    let (seen, last) = legacy_call(&h.url, &sid, "test_sampling", json!({"prompt": "x"}), |_| sampled("never"));
    assert!(seen.is_empty());
    assert!(text_of(&last).contains("did not declare the sampling capability"), "{last}");
    // Declared, but the request does not accept SSE: the capability is not
    // declared upstream (no way to ask this request's client).
    let sid = session_with(&h.url, json!({"sampling": {}}));
    let body = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "test_sampling", "arguments": {"prompt": "x"}}});
    let r = send("POST", &h.url, &[("Accept", "application/json"), JSON, ("Mcp-Session-Id", &sid), ("MCP-Protocol-Version", "2025-11-25")], &body.to_string());
    assert!(text_of(&r.json()).contains("did not declare the sampling capability"), "{}", r.text);
    drop(h);
    mock_handle.shutdown();
}

/// What a scripted modern upstream saw: each tools/call's params.
#[derive(Default)]
struct Seen {
    calls: Mutex<Vec<Value>>,
}

/// A 2026-07-28 upstream with one tool, `quiz`, that needs two input rounds:
/// a sampling request (JSON answer), then an elicitation and a roots request
/// together (SSE answer, after a progress notification), then completes with
/// what it was given. Its `requestState` carries the first answer.
fn quiz_upstream(seen: Arc<Seen>) -> FakeUpstream {
    fake_upstream(move |body, out, _| {
        let msg: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let id = msg["id"].clone();
        let p = &msg["params"];
        match msg["method"].as_str().unwrap_or("") {
            "server/discover" => write_json(out, &json!({"jsonrpc": "2.0", "id": id, "result": {"resultType": "complete", "supportedVersions": ["2026-07-28"], "capabilities": {"tools": {}}, "serverInfo": {"name": "quiz", "version": "1"}}})),
            "tools/list" => write_json(out, &json!({"jsonrpc": "2.0", "id": id, "result": {"resultType": "complete", "tools": [{"name": "quiz", "inputSchema": {"type": "object"}}]}})),
            "tools/call" => {
                seen.calls.lock().push(p.clone());
                let state = p["requestState"].as_str().unwrap_or("");
                if state.is_empty() {
                    let r = json!({"resultType": "input_required", "requestState": "round-1",
                        "inputRequests": {"q1": {"method": "sampling/createMessage", "params": {"messages": [{"role": "user", "content": {"type": "text", "text": "name a colour"}}], "maxTokens": 5}}}});
                    write_json(out, &json!({"jsonrpc": "2.0", "id": id, "result": r}));
                } else if state == "round-1" {
                    let colour = p.pointer("/inputResponses/q1/content/text").and_then(Value::as_str).unwrap_or("?");
                    let r = json!({"resultType": "input_required", "requestState": format!("round-2:{colour}"),
                        "inputRequests": {"who": {"method": "elicitation/create", "params": {"mode": "form", "message": "name?", "requestedSchema": {"type": "object"}}},
                                          "where": {"method": "roots/list"}}});
                    let token = p.pointer("/_meta/progressToken").cloned().unwrap_or(Value::Null);
                    let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": token, "progress": 1}});
                    let done = json!({"jsonrpc": "2.0", "id": id, "result": r});
                    let _ = write!(out, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\ndata: {progress}\n\ndata: {done}\n\n");
                    let _ = out.shutdown(std::net::Shutdown::Both);
                } else if let Some(colour) = state.strip_prefix("round-2:") {
                    let who = p.pointer("/inputResponses/who/content/name").and_then(Value::as_str).unwrap_or("?");
                    let roots = p.pointer("/inputResponses/where/roots/0/uri").and_then(Value::as_str).unwrap_or("?");
                    let text = format!("{colour}/{who}/{roots}");
                    write_json(out, &json!({"jsonrpc": "2.0", "id": id, "result": {"resultType": "complete", "content": [{"type": "text", "text": text}]}}));
                } else {
                    write_json(out, &json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32602, "message": "bad requestState"}}));
                }
            }
            _ => {
                let _ = out.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
            }
        }
    })
}

/// Answers the quiz's requests as client `who`.
fn quiz_answer(who: &str) -> impl Fn(&Value) -> Value + '_ {
    move |req: &Value| match req["method"].as_str().unwrap() {
        "sampling/createMessage" => sampled(&format!("red-{who}")),
        "elicitation/create" => json!({"action": "accept", "content": {"name": who}}),
        _ => json!({"roots": [{"uri": format!("file:///{who}"), "name": "r"}]}),
    }
}

#[test]
fn ten_legacy_clients_in_input_rounds_at_once_each_get_only_their_own_answers() {
    let up = quiz_upstream(Arc::new(Seen::default()));
    let h = hub(&[("quiz", &up.url)], json!({"workers": 8}));
    let url = h.url.clone();
    let clients: Vec<_> = (0..10)
        .map(|i| {
            let url = url.clone();
            std::thread::spawn(move || {
                let who = format!("c{i}");
                let sid = session_with(&url, json!({"sampling": {}, "elicitation": {}, "roots": {}}));
                let (asked, last) = legacy_call(&url, &sid, "quiz", json!({}), quiz_answer(&who));
                (who, asked.len(), text_of(&last))
            })
        })
        .collect();
    for c in clients {
        let (who, asked, text) = c.join().unwrap();
        assert_eq!(asked, 3);
        assert_eq!(text, format!("red-{who}/{who}/file:///{who}"), "answers crossed");
    }
    assert_eq!(h.hub.mrtr().waiting_len(), 0);
}

// ---------------------------------------------------------------- B: legacy upstream, modern client

/// What a scripted legacy upstream received: answers by its request id, and
/// the ids of cancelled calls.
#[derive(Default)]
struct Upstream {
    answers: Mutex<HashMap<String, Value>>,
    cancelled: Mutex<Vec<Value>>,
    arrived: Condvar,
}

impl Upstream {
    /// Waits (≤ 10 s) for the answer to `id`, or for the call `call_id` to be cancelled.
    fn wait(&self, id: &str, call_id: &Value) -> Option<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut map = self.answers.lock();
        while Instant::now() < deadline {
            if let Some(a) = map.get(id) {
                return Some(a.clone());
            }
            if self.cancelled.lock().contains(call_id) {
                return None;
            }
            self.arrived.wait_for(&mut map, Duration::from_millis(50));
        }
        None
    }
}

/// A 2025-11-25 upstream with one tool, `ask`: on the call's stream it sends
/// a progress notification (for the call's token), a `sampling/createMessage`
/// (id `s-N`), waits for its answer, then a `roots/list` (id `r-N`), waits,
/// and ends with a result quoting both; a call cancelled meanwhile just ends.
fn asking_upstream(state: Arc<Upstream>) -> FakeUpstream {
    let counter = Arc::new(AtomicUsize::new(0));
    fake_upstream(move |body, out, _| {
        let msg: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let method = msg["method"].as_str().unwrap_or("");
        if method == "server/discover" {
            let _ = out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        } else if method == "initialize" {
            let result = json!({"jsonrpc": "2.0", "id": msg["id"], "result": {"protocolVersion": "2025-11-25", "capabilities": {"tools": {}}, "serverInfo": {"name": "ask", "version": "1"}}}).to_string();
            let _ = write!(out, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nMcp-Session-Id: s-1\r\nContent-Length: {}\r\n\r\n{result}", result.len());
        } else if method == "notifications/cancelled" {
            state.cancelled.lock().push(msg["params"]["requestId"].clone());
            state.arrived.notify_all();
            let _ = out.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
        } else if method.starts_with("notifications/") {
            let _ = out.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
        } else if method == "tools/list" {
            write_json(out, &json!({"jsonrpc": "2.0", "id": msg["id"], "result": {"tools": [{"name": "ask", "inputSchema": {"type": "object"}}]}}));
        } else if method == "tools/call" {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let call_id = msg["id"].clone();
            let token = msg.pointer("/params/_meta/progressToken").cloned();
            let _ = write!(out, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n");
            if let Some(t) = token {
                let _ = write!(out, "data: {}\n\n", json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": t, "progress": 1}}));
            }
            let (s_id, r_id) = (format!("s-{n}"), format!("r-{n}"));
            let ask = json!({"jsonrpc": "2.0", "id": s_id, "method": "sampling/createMessage", "params": {"messages": [], "maxTokens": 5}});
            let _ = write!(out, "data: {ask}\n\n");
            let _ = out.flush();
            let text = match state.wait(&s_id, &call_id) {
                Some(a) => a.pointer("/result/content/text").and_then(Value::as_str).unwrap_or("?").to_string(),
                None => return,
            };
            let roots = json!({"jsonrpc": "2.0", "id": r_id, "method": "roots/list"});
            if write!(out, "data: {roots}\n\n").is_err() {
                return;
            }
            let _ = out.flush();
            let Some(r) = state.wait(&r_id, &call_id) else { return };
            let n_roots = r.pointer("/result/roots").and_then(Value::as_array).map(|a| a.len()).unwrap_or(0);
            let done = json!({"jsonrpc": "2.0", "id": call_id, "result": {"content": [{"type": "text", "text": format!("sampled {text}; {n_roots} roots")}]}});
            let _ = write!(out, "data: {done}\n\n");
            let _ = out.shutdown(std::net::Shutdown::Both);
        } else if msg.get("id").is_some() && (msg.get("result").is_some() || msg.get("error").is_some()) {
            let key = msg["id"].as_str().unwrap_or("").to_string();
            state.answers.lock().insert(key, msg.clone());
            state.arrived.notify_all();
            let _ = out.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
        } else {
            let _ = out.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        }
    })
}

const ASKING_CAPS: &str = r#"{"sampling": {}, "roots": {}}"#;

fn caps() -> Value {
    serde_json::from_str(ASKING_CAPS).unwrap()
}

/// The one input request of an InputRequiredResult: (key, request, requestState).
fn input_of(m: &Value) -> (String, Value, String) {
    let r = &m["result"];
    assert_eq!(r["resultType"], "input_required", "{m}");
    let map = r["inputRequests"].as_object().expect("inputRequests");
    assert_eq!(map.len(), 1, "{m}");
    let (k, v) = map.iter().next().unwrap();
    (k.clone(), v.clone(), r["requestState"].as_str().expect("requestState").to_string())
}

#[test]
fn eight_modern_clients_parked_at_once_each_resume_only_their_own_call() {
    let state = Arc::new(Upstream::default());
    let up = asking_upstream(state.clone());
    let h = hub(&[("ask", &up.url)], json!({"workers": 8}));
    let url = h.url.clone();
    let clients: Vec<_> = (0..8)
        .map(|i| {
            let url = url.clone();
            std::thread::spawn(move || {
                let (k1, _, s1) = input_of(&modern_call(&url, "a", "ask", caps(), json!({})).json());
                let said = format!("client-{i}");
                let (k2, _, s2) = input_of(&modern_call(&url, "b", "ask", caps(), json!({"requestState": s1, "inputResponses": {k1: sampled(&said)}})).json());
                let roots: Vec<Value> = (0..i).map(|n| json!({"uri": format!("file:///{n}")})).collect();
                let last = modern_call(&url, "c", "ask", caps(), json!({"requestState": s2, "inputResponses": {k2: {"roots": roots}}})).json();
                (i, text_of(&last))
            })
        })
        .collect();
    for c in clients {
        let (i, text) = c.join().unwrap();
        assert_eq!(text, format!("sampled client-{i}; {i} roots"), "answers crossed");
    }
    assert_eq!(h.hub.mrtr().parked_len(), 0);
    assert_eq!(state.answers.lock().len(), 16);
}

#[test]
fn a_modern_servers_input_required_passes_through_to_a_modern_client_with_its_own_state() {
    let (_mock, mock_handle, mock_url) = conformance_mock();
    let h = hub(&[("conf", &mock_url)], json!({}));
    let args = json!({"prompt": "2+2?"});
    let mut first = modern_call(&h.url, "m1", "test_sampling", json!({"sampling": {}}), json!({"arguments": args})).json();
    let (key, req, state) = input_of(&first);
    assert_eq!((key.as_str(), req["method"].as_str()), ("sampling", Some("sampling/createMessage")), "the server's own keys: {first}");
    assert!(state.starts_with("mcphub-mock:"), "the server's own requestState, not a hub token: {state}");
    first = modern_call(&h.url, "m2", "test_sampling", json!({"sampling": {}}), json!({"arguments": args, "requestState": state, "inputResponses": {key: sampled("four")}})).json();
    assert_eq!(first["result"]["resultType"], "complete", "{first}");
    assert_eq!(text_of(&first), "LLM response: four");
    assert_eq!(h.hub.mrtr().parked_len(), 0);
    drop(h);
    mock_handle.shutdown();
}
