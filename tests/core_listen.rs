//! 2026-07-28 `subscriptions/listen` through the hub, both sides, Request →
//! Response without a socket (issue 15 item 7): the hub's own listen stream
//! on a scripted modern upstream (a [`Live`] stream fed from a channel, its
//! filter asking for every list change and the URIs clients subscribed to),
//! modern clients' listen streams and legacy clients' GET streams read while
//! open ([`OpenStream`]): acknowledgement first, each stream only the kinds
//! it opted in to, tagged with the client's own subscription id, a list
//! change dropping the cached list, `notifications/resources/updated` only
//! for subscribers of either era; a legacy upstream's GET stream reaching
//! modern listen streams, listen URIs subscribed and unsubscribed upstream
//! once; bad listen requests. The same against the mock over loopback is in
//! tests/hub_listen.rs.

mod core_util;

use core_util::*;
use mcphub::hub::Hub;
use serde_json::{json, Value};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SUB_ID: &str = "io.modelcontextprotocol/subscriptionId";

/// A modern server with list changes and resources `res://a`, `res://b`;
/// each `subscriptions/listen` is a stream acknowledging the filter and then
/// writing whatever is sent on the returned channel (until cut, or 20 s).
fn listening_server(name: &str) -> (Script, Sender<Value>) {
    let (push, pushed) = channel::<Value>();
    let pushed: Arc<Mutex<Receiver<Value>>> = Arc::new(Mutex::new(pushed));
    let base = modern_server(name, json!([tool("t")]));
    let name = name.to_string();
    let script: Script = Arc::new(move |body: &Value, h: &[(String, String)]| match body["method"].as_str().unwrap_or("") {
        "server/discover" => Reply::result(body, json!({"supportedVersions": ["2026-07-28"], "resultType": "complete", "serverInfo": {"name": name, "version": "1"},
            "capabilities": {"tools": {"listChanged": true}, "prompts": {"listChanged": true}, "resources": {"subscribe": true, "listChanged": true}}})),
        "resources/list" => Reply::result(body, json!({"resultType": "complete", "resources": [{"uri": "res://a", "name": "a"}, {"uri": "res://b", "name": "b"}]})),
        "resources/templates/list" => Reply::result(body, json!({"resultType": "complete", "resourceTemplates": []})),
        "prompts/list" => Reply::result(body, json!({"resultType": "complete", "prompts": []})),
        "subscriptions/listen" => {
            let ack = json!({"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged", "params": {"notifications": body["params"]["notifications"], "_meta": {SUB_ID: body["id"]}}});
            let (pushed, sub) = (pushed.clone(), body["id"].clone());
            let mut acked = false;
            let end = std::time::Instant::now() + Duration::from_secs(20);
            Reply::live(move |cut: &Cut| {
                if !std::mem::replace(&mut acked, true) {
                    return Some(ack.clone());
                }
                let rx = pushed.lock().unwrap();
                while !cut.is_cut() && std::time::Instant::now() < end {
                    if let Ok(mut m) = rx.recv_timeout(Duration::from_millis(10)) {
                        m["params"]["_meta"][SUB_ID] = sub.clone();
                        return Some(m);
                    }
                }
                None
            })
        }
        _ => base(body, h),
    });
    (script, push)
}

fn change(kind: &str) -> Value {
    json!({"jsonrpc": "2.0", "method": format!("notifications/{kind}/list_changed"), "params": {}})
}

/// The filters of the hub's upstream listen requests, in order.
fn filters(traffic: &Traffic) -> Vec<Value> {
    traffic.calls("m", "subscriptions/listen").iter().map(|s| s.body["params"]["notifications"].clone()).collect()
}

/// A hub in front of the listening server `m`, its upstream listen stream open.
fn setup() -> (Hub, Traffic, Sender<Value>) {
    let (script, push) = listening_server("m");
    let (h, traffic) = hub_with_servers(json!({}), vec![("m", json!({}), script)]);
    assert_eq!(modern(&h, "tools/list", json!({})).status, 200);
    wait_until("the hub opens its listen stream upstream", PATIENCE, || !filters(&traffic).is_empty());
    (h, traffic, push)
}

/// A modern client's `subscriptions/listen` (id `id`), its acknowledgement
/// read and checked; the stream and the accepted filter.
fn listen(h: &Hub, id: &str, notifications: Value) -> (OpenStream, Value) {
    let (body, hdrs) = modern_request("subscriptions/listen", json!({"notifications": notifications}));
    let body = body.replacen(r#""id":"m1""#, &format!(r#""id":"{id}""#), 1);
    let hdrs: Vec<(&str, &str)> = hdrs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut s = open_stream(h, "POST", &hdrs, &body);
    assert_eq!(s.status, 200, "{}", s.text);
    let ack = s.next();
    assert_eq!(ack["method"], "notifications/subscriptions/acknowledged", "the first message: {ack}");
    assert_eq!(ack["params"]["_meta"][SUB_ID], id, "{ack}");
    let accepted = ack["params"]["notifications"].clone();
    (s, accepted)
}

/// A legacy client's standalone GET stream.
fn get_stream(h: &Hub, sid: &str) -> OpenStream {
    let s = open_stream(h, "GET", &[("Accept", "text/event-stream"), ("Mcp-Session-Id", sid), ("MCP-Protocol-Version", "2025-06-18")], "");
    assert_eq!(s.status, 200, "{}", s.text);
    s
}

#[test]
fn a_modern_upstreams_list_change_reaches_listen_and_get_streams_and_drops_the_cached_list() {
    let (h, traffic, push) = setup();
    let filter = &filters(&traffic)[0];
    assert_eq!((filter["toolsListChanged"].as_bool(), filter["promptsListChanged"].as_bool()), (Some(true), Some(true)), "the hub asks for every list change: {filter}");

    let (mut tools_only, accepted) = listen(&h, "L1", json!({"toolsListChanged": true}));
    assert_eq!(accepted, json!({"toolsListChanged": true}));
    let (mut prompts_only, _) = listen(&h, "L2", json!({"promptsListChanged": true}));
    let sid = legacy_session(&h);
    let mut get = get_stream(&h, &sid);
    assert_eq!(h.listen_streams().len(), 2);

    // The tool list is cached: asking again does not reach the upstream.
    let listed = traffic.calls("m", "tools/list").len();
    assert_eq!(modern(&h, "tools/list", json!({})).status, 200);
    assert_eq!(traffic.calls("m", "tools/list").len(), listed, "served from the cache");

    // tools, prompts, tools: each stream sees exactly the kinds it opted in to, in order.
    for kind in ["tools", "prompts", "tools"] {
        push.send(change(kind)).unwrap();
    }
    let got = tools_only.next();
    assert_eq!(got["method"], "notifications/tools/list_changed");
    assert_eq!(got["params"]["_meta"][SUB_ID], "L1", "tagged with the client's own subscription, not the hub's upstream one: {got}");
    assert_eq!(tools_only.next()["method"], "notifications/tools/list_changed", "the prompts change is not for L1");
    let got = prompts_only.next();
    assert_eq!(got["method"], "notifications/prompts/list_changed", "{got}");
    assert_eq!(got["params"]["_meta"][SUB_ID], "L2");
    let legacy_seen: Vec<Value> = (0..3).map(|_| get.next()).collect();
    let methods: Vec<&str> = legacy_seen.iter().map(|m| m["method"].as_str().unwrap_or_default()).collect();
    assert_eq!(methods, ["notifications/tools/list_changed", "notifications/prompts/list_changed", "notifications/tools/list_changed"]);
    assert!(legacy_seen.iter().all(|m| m.get("params").is_none_or(|p| p.get("_meta").is_none())), "no modern _meta for a legacy client: {legacy_seen:?}");
    assert_eq!(prompts_only.next_within(Duration::from_millis(100)), None, "L2 got nothing else");

    // The change dropped the cached tool list: the next tools/list goes upstream.
    assert_eq!(modern(&h, "tools/list", json!({})).status, 200);
    assert!(traffic.calls("m", "tools/list").len() > listed, "tools/list refetched after list_changed");
    tools_only.close();
    prompts_only.close();
    get.close();
    // The clients are gone; the hub finds out at its next write.
    push.send(change("tools")).unwrap();
    push.send(change("prompts")).unwrap();
    wait_until("both listen registrations dropped", PATIENCE, || h.listen_streams().is_empty());
}

#[test]
fn resources_updated_reaches_only_the_clients_of_either_era_subscribed_to_that_uri() {
    let (h, traffic, push) = setup();
    // A (modern) watches res://a; B (modern) only tool changes; C (legacy)
    // subscribes to res://a; D (legacy) does not.
    let (mut a, accepted) = listen(&h, "A", json!({"resourceSubscriptions": ["res://a", "nobody://owns-this"]}));
    assert_eq!(accepted, json!({"resourceSubscriptions": ["res://a"]}), "only URIs a server owns are accepted");
    let (mut b, _) = listen(&h, "B", json!({"toolsListChanged": true, "resourceSubscriptions": []}));
    let (c_sid, d_sid) = (legacy_session(&h), legacy_session(&h));
    assert_eq!(legacy(&h, &c_sid, "resources/subscribe", json!({"uri": "res://a"})).json()["result"], json!({}));
    let (mut c, mut d) = (get_stream(&h, &c_sid), get_stream(&h, &d_sid));
    // The hub reopened its upstream stream asking for that URI.
    wait_until("the upstream filter names res://a", PATIENCE, || filters(&traffic).last().is_some_and(|f| f["resourceSubscriptions"] == json!(["res://a"])));
    wait_until("the old upstream stream is closed", PATIENCE, || traffic.all().iter().filter(|s| s.kind == "closed").count() == filters(&traffic).len() - 1);

    push.send(json!({"jsonrpc": "2.0", "method": "notifications/resources/updated", "params": {"uri": "res://a"}})).unwrap();
    push.send(change("tools")).unwrap(); // a sentinel every stream but A sees
    let got = a.next();
    assert_eq!(got["method"], "notifications/resources/updated", "{got}");
    assert_eq!(got["params"]["uri"], "res://a");
    assert_eq!(got["params"]["_meta"][SUB_ID], "A", "the client's subscription id, not the hub's upstream one: {got}");
    assert_eq!(b.next()["method"], "notifications/tools/list_changed", "B did not subscribe to res://a");
    let got = c.next();
    assert_eq!(got["method"], "notifications/resources/updated");
    assert_eq!(got["params"], json!({"uri": "res://a"}), "no modern _meta for a legacy client");
    assert_eq!(c.next()["method"], "notifications/tools/list_changed");
    assert_eq!(d.next()["method"], "notifications/tools/list_changed", "D did not subscribe");
    assert_eq!(a.next_within(Duration::from_millis(100)), None, "A asked for no tool changes");
}

#[test]
fn bad_listen_requests_get_clear_errors() {
    let (h, _) = hub_with_servers(json!({}), vec![("m", json!({}), modern_server("m", json!([tool("t")])))]);
    let bad = modern(&h, "subscriptions/listen", json!({"notifications": {"toolsListChanged": "yes"}}));
    assert_eq!(bad.code(), Some(-32602), "{}", bad.text);
    assert!(bad.message().contains("toolsListChanged"), "{}", bad.text);
    let missing = modern(&h, "subscriptions/listen", json!({}));
    assert_eq!(missing.code(), Some(-32602), "{}", missing.text);
    // Legacy clients have no subscriptions/listen (2025-11-25: GET stream + resources/subscribe).
    let sid = legacy_session(&h);
    assert_eq!(legacy(&h, &sid, "subscriptions/listen", json!({"notifications": {}})).code(), Some(-32601));
    assert!(h.listen_streams().is_empty(), "refused requests register nothing");
}

/// A legacy server `l` with resources `res://a`, `res://b` (subscribable)
/// whose standalone GET stream writes whatever is sent on the returned
/// channel; each GET stream lasts 2 s (then the hub opens the next one).
fn legacy_listening_server() -> (Script, Sender<Value>) {
    let (push, pushed) = channel::<Value>();
    let pushed: Arc<Mutex<Receiver<Value>>> = Arc::new(Mutex::new(pushed));
    let script: Script = Arc::new(move |body: &Value, _h: &[(String, String)]| {
        let ok = |result: Value| Reply::result(body, result);
        match body["method"].as_str() {
            None => {
                let (pushed, end) = (pushed.clone(), std::time::Instant::now() + Duration::from_secs(2));
                Reply::live(move |cut: &Cut| {
                    let rx = pushed.lock().unwrap();
                    while !cut.is_cut() && std::time::Instant::now() < end {
                        if let Ok(m) = rx.recv_timeout(Duration::from_millis(10)) {
                            return Some(m);
                        }
                    }
                    None
                })
            }
            Some("server/discover") => Reply::error(body, -32601, "Method not found"),
            Some("initialize") => ok(json!({"protocolVersion": "2025-06-18", "capabilities": {"tools": {"listChanged": true}, "resources": {"subscribe": true, "listChanged": true}}, "serverInfo": {"name": "l", "version": "1"}})).session("s-l"),
            Some(m) if m.starts_with("notifications/") => Reply::status(202),
            Some("tools/list") => ok(json!({"tools": [tool("t")]})),
            Some("resources/list") => ok(json!({"resources": [{"uri": "res://a", "name": "a"}, {"uri": "res://b", "name": "b"}]})),
            Some("resources/subscribe" | "resources/unsubscribe") => ok(json!({})),
            Some("prompts/list") => ok(json!({"prompts": []})),
            Some("resources/templates/list") => ok(json!({"resourceTemplates": []})),
            _ => Reply::error(body, -32601, "Method not found"),
        }
    });
    (script, push)
}

/// What `l` was asked to (un)subscribe, in order: "resources/subscribe res://a".
fn subscriptions(traffic: &Traffic) -> Vec<String> {
    let calls = traffic.posts("l").into_iter().filter(|s| s.method().starts_with("resources/") && s.method().ends_with("subscribe"));
    calls.map(|s| format!("{} {}", s.method(), s.body["params"]["uri"].as_str().unwrap_or("?"))).collect()
}

#[test]
fn a_legacy_upstreams_changes_reach_modern_listen_streams_and_listen_uris_subscribe_upstream() {
    let (script, push) = legacy_listening_server();
    let (h, traffic) = hub_with_servers(json!({}), vec![("l", json!({"protocol": "legacy"}), script)]);
    assert_eq!(modern(&h, "tools/list", json!({})).status, 200);
    wait_until("the hub opens the upstream GET stream", PATIENCE, || traffic.all().iter().any(|s| s.kind == "get"));
    assert_eq!(traffic.all().iter().find(|s| s.kind == "get").unwrap().header("Mcp-Session-Id"), Some("s-l"), "on the shared session");

    // A modern client's listen URIs become a resources/subscribe on the shared session.
    let (mut a, accepted) = listen(&h, "A", json!({"toolsListChanged": true, "resourceSubscriptions": ["res://a"]}));
    assert_eq!(accepted, json!({"toolsListChanged": true, "resourceSubscriptions": ["res://a"]}));
    let (mut b, _) = listen(&h, "B", json!({"resourcesListChanged": true, "resourceSubscriptions": ["res://b"]}));
    assert_eq!(subscriptions(&traffic), ["resources/subscribe res://a", "resources/subscribe res://b"]);

    push.send(json!({"jsonrpc": "2.0", "method": "notifications/resources/updated", "params": {"uri": "res://a"}})).unwrap();
    push.send(json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})).unwrap();
    push.send(json!({"jsonrpc": "2.0", "method": "notifications/resources/list_changed"})).unwrap();
    let got = a.next();
    assert_eq!((got["method"].as_str(), got["params"]["uri"].as_str()), (Some("notifications/resources/updated"), Some("res://a")), "{got}");
    assert_eq!(got["params"]["_meta"][SUB_ID], "A");
    let got = a.next();
    assert_eq!(got["method"], "notifications/tools/list_changed", "{got}");
    assert_eq!(got["params"]["_meta"][SUB_ID], "A");
    let got = b.next();
    assert_eq!(got["method"], "notifications/resources/list_changed", "B wanted neither res://a nor tool changes: {got}");
    assert_eq!(got["params"]["_meta"][SUB_ID], "B");

    // The last subscriber leaving sends the unsubscribe, once per URI (the
    // hub finds each client gone at its next write to it).
    a.close();
    b.close();
    push.send(json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})).unwrap();
    push.send(json!({"jsonrpc": "2.0", "method": "notifications/resources/list_changed"})).unwrap();
    wait_until("both unsubscribed upstream", PATIENCE, || subscriptions(&traffic).len() == 4);
    let mut calls = subscriptions(&traffic);
    calls.sort();
    assert_eq!(calls, ["resources/subscribe res://a", "resources/subscribe res://b", "resources/unsubscribe res://a", "resources/unsubscribe res://b"]);
    assert!(h.listen_streams().is_empty());
}
