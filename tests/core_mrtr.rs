//! Client input across the eras (2026-07-28 `basic/patterns/mrtr.mdx`),
//! Request → Response without a socket (issue 15 item 7): a modern
//! upstream's `InputRequiredResult` answered by a legacy client on its call
//! stream (the client reads the stream while it is open and POSTs its
//! answers, `post_streaming`), and a legacy upstream's server→client
//! requests (on a [`Live`] stream that waits for the hub's answers) answered
//! by a modern client's retry with `inputResponses` + `requestState`. The
//! same over loopback sockets is in tests/hub_mrtr.rs.

mod core_util;
mod shared_data;

use core_util::*;
use shared_data::input_of;
use mcphub::hub::Hub;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

fn sampled(text: &str) -> Value {
    json!({"role": "assistant", "content": {"type": "text", "text": text}, "model": "m"})
}

fn text_of(msg: &Value) -> String {
    msg.pointer("/result/content/0/text").and_then(Value::as_str).unwrap_or_else(|| panic!("no text content in {msg}")).to_string()
}

// ---------------------------------------------------------------- A: modern upstream, legacy client

/// A legacy (2025-11-25) client session declaring `capabilities`.
fn session_with(h: &Hub, capabilities: Value) -> String {
    let body = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": capabilities, "clientInfo": {"name": "t", "version": "1"}}});
    let r = post(h, &body.to_string(), &[ACCEPT, JSON]);
    assert_eq!(r.status, 200, "{}", r.text);
    r.header("mcp-session-id").expect("a session id").to_string()
}

fn headers(sid: &str) -> Vec<(&str, &str)> {
    vec![ACCEPT, JSON, ("Mcp-Session-Id", sid), ("MCP-Protocol-Version", "2025-11-25")]
}

/// A legacy client's `tools/call` (id 7) read while open: each
/// server→client request on the stream is answered (POSTed on the session,
/// 202) with `answer(request)`; (the requests seen, the call's last message).
fn legacy_call(h: &Hub, sid: &str, tool: &str, answer: impl Fn(&Value) -> Value) -> (Vec<Value>, Value) {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": tool, "arguments": {}}}).to_string();
    let mut seen = Vec::new();
    let r = post_streaming(h, &body, &headers(sid), |m| {
        if m.get("method").is_some() && m.get("id").is_some() {
            seen.push(m.clone());
            let reply = json!({"jsonrpc": "2.0", "id": m["id"], "result": answer(m)});
            let a = post(h, &reply.to_string(), &headers(sid));
            assert_eq!((a.status, a.text.as_str()), (202, ""), "the client's answer is accepted");
        }
    });
    let last = r.json();
    assert_eq!(last["id"], 7, "the call's own response ends the stream: {}", r.text);
    (seen, last)
}

/// A 2026-07-28 server with one tool, `quiz`, needing two input rounds: a
/// sampling request, then an elicitation and a roots request together (on
/// an event stream after a progress notification), then a result quoting
/// the answers. Its `requestState` carries the first answer.
fn quiz_server() -> Script {
    Arc::new(|body: &Value, _h: &[(String, String)]| {
        let p = &body["params"];
        match body["method"].as_str().unwrap_or("") {
            "server/discover" => Reply::result(body, json!({"resultType": "complete", "supportedVersions": ["2026-07-28"], "capabilities": {"tools": {}}, "serverInfo": {"name": "quiz", "version": "1"}})),
            "subscriptions/listen" => Reply::status(405),
            "tools/list" => Reply::result(body, json!({"resultType": "complete", "tools": [{"name": "quiz", "inputSchema": {"type": "object"}}]})),
            "tools/call" => match p["requestState"].as_str().unwrap_or("") {
                "" => Reply::result(body, json!({"resultType": "input_required", "requestState": "round-1",
                    "inputRequests": {"q1": {"method": "sampling/createMessage", "params": {"messages": [{"role": "user", "content": {"type": "text", "text": "name a colour"}}], "maxTokens": 5}}}})),
                "round-1" => {
                    let colour = p.pointer("/inputResponses/q1/content/text").and_then(Value::as_str).unwrap_or("?");
                    let r = json!({"resultType": "input_required", "requestState": format!("round-2:{colour}"),
                        "inputRequests": {"who": {"method": "elicitation/create", "params": {"mode": "form", "message": "name?", "requestedSchema": {"type": "object"}}},
                                          "where": {"method": "roots/list"}}});
                    let token = p.pointer("/_meta/progressToken").cloned().unwrap_or(Value::Null);
                    let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": token, "progress": 1}});
                    Reply::events(vec![progress, json!({"jsonrpc": "2.0", "id": body["id"], "result": r})])
                }
                state => match state.strip_prefix("round-2:") {
                    Some(colour) => {
                        let who = p.pointer("/inputResponses/who/content/name").and_then(Value::as_str).unwrap_or("?");
                        let roots = p.pointer("/inputResponses/where/roots/0/uri").and_then(Value::as_str).unwrap_or("?");
                        Reply::result(body, json!({"resultType": "complete", "content": [{"type": "text", "text": format!("{colour}/{who}/{roots}")}]}))
                    }
                    None => Reply::error(body, -32602, "bad requestState"),
                },
            },
            _ => Reply::status(202),
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
fn two_input_rounds_reach_a_modern_upstream_keyed_as_it_asked_with_its_request_state() {
    let (h, traffic) = hub_with_servers(json!({}), vec![("quiz", json!({}), quiz_server())]);
    let sid = session_with(&h, json!({"sampling": {}, "elicitation": {}, "roots": {}}));
    let (asked, last) = legacy_call(&h, &sid, "quiz", quiz_answer("ann"));
    let methods: Vec<&str> = asked.iter().map(|r| r["method"].as_str().unwrap()).collect();
    assert_eq!(methods, ["sampling/createMessage", "elicitation/create", "roots/list"]);
    assert!(asked.iter().all(|r| r["id"].as_str().is_some_and(|id| id.starts_with("mcphub-i"))), "hub ids: {asked:?}");
    assert_eq!(asked[0]["params"]["messages"][0]["content"]["text"], "name a colour", "the server's request as it asked");
    assert_eq!(text_of(&last), "red-ann/ann/file:///ann");
    assert!(last["result"].get("resultType").is_none(), "a legacy result: {last}");
    let calls: Vec<Value> = traffic.calls("quiz", "tools/call").into_iter().map(|s| s.body["params"].clone()).collect();
    assert_eq!(calls.len(), 3, "one call and two retries");
    let caps = &calls[0]["_meta"]["io.modelcontextprotocol/clientCapabilities"];
    assert!(caps["sampling"].is_object() && caps["roots"].is_object(), "the legacy client's capabilities go upstream: {caps}");
    assert!(calls[0].get("requestState").is_none() && calls[0].get("inputResponses").is_none());
    assert_eq!(calls[1]["requestState"], "round-1");
    assert_eq!(calls[1]["inputResponses"], json!({"q1": sampled("red-ann")}));
    assert_eq!(calls[2]["requestState"], "round-2:red-ann");
    let keys: Vec<&String> = calls[2]["inputResponses"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["who", "where"], "only the last round's answers, keyed as asked");
    assert_eq!(h.mrtr().waiting_len(), 0);
}

#[test]
fn a_capability_missing_in_a_later_round_or_a_client_without_sse_is_a_clear_error() {
    let (h, traffic) = hub_with_servers(json!({}), vec![("quiz", json!({}), quiz_server())]);
    let sid = session_with(&h, json!({"sampling": {}}));
    let (asked, last) = legacy_call(&h, &sid, "quiz", quiz_answer("bob"));
    assert_eq!(asked.len(), 1, "the sampling round ran: {asked:?}");
    assert_eq!(last["error"]["code"], -32021, "{last}");
    assert!(last["error"]["message"].as_str().unwrap().contains("elicitation"), "{last}");
    assert_eq!(traffic.calls("quiz", "tools/call").len(), 2, "the second round was not answered upstream");
    // Without SSE the first round cannot be asked at all.
    let body = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "quiz", "arguments": {}}});
    let r = post(&h, &body.to_string(), &[("Accept", "application/json"), JSON, ("Mcp-Session-Id", &sid), ("MCP-Protocol-Version", "2025-11-25")]);
    let m = r.json();
    assert_eq!(m["error"]["code"], -32600, "{m}");
    assert!(m["error"]["message"].as_str().unwrap().contains("text/event-stream"), "{m}");
    assert_eq!(h.mrtr().waiting_len(), 0);
}

// ---------------------------------------------------------------- B: legacy upstream, modern client

/// A 2025-11-25 server with one tool, `ask`: on the call's stream (a
/// [`Live`] one) a progress notification for the call's token, a
/// `sampling/createMessage` (id `s-N`), then — once the hub answered it —
/// a `roots/list` (id `r-N`), then a result quoting both answers. A call
/// cancelled meanwhile (or unanswered for 10 s) just ends.
fn asking_server(traffic: Traffic) -> Script {
    let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    Arc::new(move |body: &Value, h: &[(String, String)]| {
        if body["method"] != "tools/call" {
            return (legacy_server("ask", json!([tool("ask")])))(body, h);
        }
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let call_id = body["id"].clone();
        let token = body.pointer("/params/_meta/progressToken").cloned();
        let traffic = traffic.clone();
        let mut step = 0;
        let mut sampled_text = String::new();
        Reply::live(move |cut: &Cut| {
            step += 1;
            if step == 1 && token.is_none() {
                step = 2; // no token, no progress
            }
            // The hub's answer to `id`, unless the call is cancelled first.
            let answer = |id: &str| {
                let seen = cut.wait_for(&traffic, Duration::from_secs(10), |s| {
                    (s.kind == "answer" && s.body["id"] == id) || (s.method() == "notifications/cancelled" && s.body["params"]["requestId"] == call_id)
                })?;
                (seen.kind == "answer").then_some(seen.body)
            };
            match step {
                1 => Some(json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": token, "progress": 1}})),
                2 => Some(json!({"jsonrpc": "2.0", "id": format!("s-{n}"), "method": "sampling/createMessage", "params": {"messages": [], "maxTokens": 5}})),
                3 => {
                    let a = answer(&format!("s-{n}"))?;
                    sampled_text = a.pointer("/result/content/text").and_then(Value::as_str).unwrap_or("?").to_string();
                    Some(json!({"jsonrpc": "2.0", "id": format!("r-{n}"), "method": "roots/list"}))
                }
                4 => {
                    let a = answer(&format!("r-{n}"))?;
                    let roots = a.pointer("/result/roots").and_then(Value::as_array).map_or(0, Vec::len);
                    Some(json!({"jsonrpc": "2.0", "id": call_id, "result": {"content": [{"type": "text", "text": format!("sampled {sampled_text}; {roots} roots")}]}}))
                }
                _ => None,
            }
        })
    })
}

fn caps() -> Value {
    json!({"sampling": {}, "roots": {}})
}

/// A modern `tools/call` (id `id`) of `ask` with `capabilities` and `extra`
/// params (`requestState`, `inputResponses`; `progressToken` goes in `_meta`).
fn modern_call(h: &Hub, id: &str, capabilities: Value, extra: Value) -> Answer {
    let (body, hdrs) = modern_request("tools/call", json!({"name": "ask", "arguments": {}}));
    let mut body: Value = serde_json::from_str(&body).unwrap();
    body["id"] = json!(id);
    body["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"] = capabilities;
    for (k, v) in extra.as_object().unwrap() {
        if k == "progressToken" {
            body["params"]["_meta"]["progressToken"] = v.clone();
        } else {
            body["params"][k] = v.clone();
        }
    }
    let body = body.to_string();
    let hdrs: Vec<(&str, &str)> = hdrs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    post(h, &body, &hdrs)
}

fn asking_hub(servers: Value) -> (Hub, Traffic) {
    let traffic = Traffic::default();
    let h = hub_with_traffic(json!({}), vec![("ask", servers, asking_server(traffic.clone()))], traffic.clone());
    (h, traffic)
}

#[test]
fn a_modern_client_answers_a_legacy_servers_requests_by_retrying_with_input_responses() {
    let (h, traffic) = asking_hub(json!({}));
    // Round 1: the sampling request, after the call's progress (with the client's token).
    let r = modern_call(&h, "c1", caps(), json!({"progressToken": "p1"}));
    let events = r.events();
    assert!(events.iter().any(|e| e["method"] == "notifications/progress" && e["params"]["progressToken"] == "p1"), "{}", r.text);
    let last = r.json();
    assert_eq!(last["id"], "c1");
    let (key1, req1, state1) = input_of(&last);
    assert_eq!(req1["method"], "sampling/createMessage");
    assert_eq!(req1["params"]["maxTokens"], 5);
    assert!(req1.get("id").is_none(), "no upstream id reaches the client: {req1}");
    assert!(state1.starts_with("mcphub-state-") && state1.len() >= 40, "an unguessable hub token: {state1}");
    assert_eq!(h.mrtr().parked_len(), 1);

    // A retry that answers nothing is asked again, under a new token.
    let r = modern_call(&h, "c2", caps(), json!({"requestState": state1}));
    let (key1b, req1b, state1b) = input_of(&r.json());
    assert_eq!((key1b.as_str(), &req1b), (key1.as_str(), &req1));
    assert_ne!(state1b, state1);
    // The used token is gone.
    let r = modern_call(&h, "c3", caps(), json!({"requestState": state1, "inputResponses": {key1.clone(): sampled("x")}}));
    assert_eq!(r.json()["error"]["code"], -32602, "{}", r.text);
    assert!(traffic.answers("ask").is_empty(), "nothing answered upstream yet");

    // Round 2: the answer goes upstream; the same call goes on and asks for roots.
    let r = modern_call(&h, "c4", caps(), json!({"requestState": state1b, "inputResponses": {key1.clone(): sampled("hello")}}));
    let last = r.json();
    assert_eq!(last["id"], "c4");
    let (key2, req2, state2) = input_of(&last);
    assert_eq!(req2["method"], "roots/list");
    assert_ne!(key2, key1);
    let answers = traffic.answers("ask");
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].body, json!({"jsonrpc": "2.0", "id": "s-0", "result": sampled("hello")}), "the upstream got the answer under its own id");
    assert_eq!(answers[0].header("Mcp-Session-Id"), Some("ask-s1"), "on the call's upstream session");

    // The final result.
    let r = modern_call(&h, "c5", caps(), json!({"requestState": state2, "inputResponses": {key2: {"roots": [{"uri": "file:///a"}, {"uri": "file:///b"}]}}}));
    let last = r.json();
    assert_eq!(last["id"], "c5");
    assert_eq!(last["result"]["resultType"], "complete");
    assert_eq!(text_of(&last), "sampled hello; 2 roots");
    assert_eq!(h.mrtr().parked_len(), 0);
    assert_eq!(traffic.answers("ask").len(), 2);
    assert_eq!(traffic.calls("ask", "tools/call").len(), 1, "one upstream call for all five client requests");
}

#[test]
fn a_forged_or_mismatched_request_state_is_invalid_params() {
    let (h, traffic) = asking_hub(json!({}));
    let (key, _, token) = input_of(&modern_call(&h, "c1", caps(), json!({})).json());
    for forged in [json!("mcphub-state-00000000000000000000000000000000"), json!("anything"), json!(42), json!(format!("{token}x"))] {
        let m = modern_call(&h, "f", caps(), json!({"requestState": forged, "inputResponses": {key.clone(): sampled("x")}})).json();
        assert_eq!(m["error"]["code"], -32602, "{forged}: {m}");
        assert!(m["error"]["message"].as_str().unwrap().contains("requestState"), "{m}");
    }
    assert_eq!(h.mrtr().parked_len(), 1, "forgeries leave the real call parked");
    assert!(traffic.answers("ask").is_empty(), "nothing forged reached the upstream");
}

#[test]
fn a_parked_call_never_retried_is_released_and_the_upstream_call_cancelled() {
    // The upstream budget (timeoutMs 2000) bounds how long a call stays parked.
    let (h, traffic) = asking_hub(json!({"timeoutMs": 2000}));
    let (key, _, token) = input_of(&modern_call(&h, "c1", caps(), json!({})).json());
    assert_eq!(h.mrtr().parked_len(), 1);
    let call_id = traffic.calls("ask", "tools/call")[0].body["id"].clone();
    wait_until("the parked call to be released and the upstream call cancelled", Duration::from_secs(15), || {
        h.mrtr().parked_len() == 0 && !traffic.calls("ask", "notifications/cancelled").is_empty()
    });
    let cancelled = traffic.calls("ask", "notifications/cancelled");
    assert_eq!(cancelled.len(), 1, "the upstream was told the call ended");
    assert_eq!(cancelled[0].body["params"]["requestId"], call_id, "under the upstream call's id");
    wait_until("the upstream stream to be closed", PATIENCE, || traffic.all().iter().any(|s| s.kind == "closed" && s.body["id"] == call_id));
    let r = modern_call(&h, "late", caps(), json!({"requestState": token, "inputResponses": {key: sampled("late")}}));
    assert_eq!(r.json()["error"]["code"], -32602, "an expired token is unknown: {}", r.text);
    assert!(traffic.answers("ask").is_empty());
}

#[test]
fn a_modern_client_without_the_capability_keeps_the_upstream_refusal() {
    let (h, traffic) = asking_hub(json!({}));
    let m = modern_call(&h, "c1", json!({"elicitation": {}}), json!({})).json();
    assert_eq!(m["result"]["resultType"], "complete", "{m}");
    assert_eq!(text_of(&m), "sampled ?; 0 roots");
    let answers = traffic.answers("ask");
    let refused: Vec<(Value, Value)> = answers.iter().map(|a| (a.body["id"].clone(), a.body["error"]["code"].clone())).collect();
    assert_eq!(refused, [(json!("s-0"), json!(-32601)), (json!("r-0"), json!(-32601))], "sampling and roots refused upstream");
    assert_eq!(h.mrtr().parked_len(), 0);
}

#[test]
fn ten_legacy_clients_in_input_rounds_at_once_each_get_only_their_own_answers() {
    let (h, _) = hub_with_servers(json!({}), vec![("quiz", json!({}), quiz_server())]);
    let results: Vec<(String, usize, String)> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..10)
            .map(|i| {
                let h = &h;
                scope.spawn(move || {
                    let who = format!("c{i}");
                    let sid = session_with(h, json!({"sampling": {}, "elicitation": {}, "roots": {}}));
                    let (asked, last) = legacy_call(h, &sid, "quiz", quiz_answer(&who));
                    (who, asked.len(), text_of(&last))
                })
            })
            .collect();
        clients.into_iter().map(|c| c.join().expect("a client")).collect()
    });
    for (who, asked, text) in results {
        assert_eq!(asked, 3);
        assert_eq!(text, format!("red-{who}/{who}/file:///{who}"), "answers crossed");
    }
    assert_eq!(h.mrtr().waiting_len(), 0);
}

#[test]
fn eight_modern_clients_parked_at_once_each_resume_only_their_own_call() {
    let (h, traffic) = asking_hub(json!({}));
    let results: Vec<(usize, String)> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..8)
            .map(|i| {
                let h = &h;
                scope.spawn(move || {
                    let (k1, _, s1) = input_of(&modern_call(h, "a", caps(), json!({})).json());
                    let said = format!("client-{i}");
                    let (k2, _, s2) = input_of(&modern_call(h, "b", caps(), json!({"requestState": s1, "inputResponses": {k1: sampled(&said)}})).json());
                    let roots: Vec<Value> = (0..i).map(|n| json!({"uri": format!("file:///{n}")})).collect();
                    let last = modern_call(h, "c", caps(), json!({"requestState": s2, "inputResponses": {k2: {"roots": roots}}})).json();
                    (i, text_of(&last))
                })
            })
            .collect();
        clients.into_iter().map(|c| c.join().expect("a client")).collect()
    });
    for (i, text) in results {
        assert_eq!(text, format!("sampled client-{i}; {i} roots"), "answers crossed");
    }
    assert_eq!(h.mrtr().parked_len(), 0);
    assert_eq!(traffic.answers("ask").len(), 16);
}
