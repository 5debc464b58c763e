//! 2026-07-28 `subscriptions/listen` through the hub, both sides: modern
//! clients' listen streams (acknowledgement first, subscription ids, opt-in
//! filters), the hub's own listen stream on modern upstreams (catalog
//! invalidation, resource subscriptions of either era), and cleanup when a
//! client goes away. Real sockets and in-process mocks. A legacy upstream's
//! GET stream feeding listen streams is a Request → Response test in
//! tests/core_listen.rs.

mod hub_util;

use hub_util::*;
use mcphub_mock::Era;
use serde_json::{json, Value};

const SUB_ID: &str = "io.modelcontextprotocol/subscriptionId";

/// A modern client's `subscriptions/listen` with request id `id`.
fn listen(url: &str, id: &str, notifications: Value) -> SseStream {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "subscriptions/listen", "params": {
        "notifications": notifications,
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"}, "io.modelcontextprotocol/clientCapabilities": {}},
    }})
    .to_string();
    SseStream::post(url, &[("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", "subscriptions/listen")], &body)
}

/// A listen stream whose acknowledgement was read and checked; returns the
/// stream and the accepted filter.
fn listen_acked(url: &str, id: &str, notifications: Value) -> (SseStream, Value) {
    let mut s = listen(url, id, notifications);
    assert_eq!(s.status, 200);
    let ack = s.next().expect("the acknowledgement").data;
    assert_eq!(ack["method"], "notifications/subscriptions/acknowledged", "the first message: {ack}");
    assert_eq!(ack["params"]["_meta"][SUB_ID], id, "{ack}");
    let accepted = ack["params"]["notifications"].clone();
    (s, accepted)
}

/// A legacy client's standalone GET stream.
fn get_stream(url: &str, sid: &str) -> SseStream {
    SseStream::get(url, &[("Mcp-Session-Id", sid)])
}


/// Starts a hub in front of `up` and waits until it listens on it.
fn hub_listening_on(up: &Mock) -> HubUnderTest {
    let h = hub(&[("m", &up.url)], json!({}));
    assert_eq!(modern(&h.url, "tools/list", json!({})).status, 200);
    wait_until("the hub opens its listen stream upstream", PATIENCE, || up.server.listen_streams() == 1);
    h
}

fn watched(up: &Mock) -> Vec<String> {
    let f = up.server.last_listen_filter().unwrap_or(Value::Null);
    f["resourceSubscriptions"].as_array().map(|a| a.iter().filter_map(|u| u.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

#[test]
fn a_modern_upstreams_list_change_reaches_listen_and_get_streams_and_drops_the_cached_list() {
    let up = mock(Era::Modern, "m");
    let h = hub_listening_on(&up);
    let filter = up.server.last_listen_filter().unwrap();
    assert_eq!(filter["toolsListChanged"], true, "the hub asks for every list change: {filter}");
    assert_eq!(filter["promptsListChanged"], true);

    let (mut tools_only, accepted) = listen_acked(&h.url, "L1", json!({"toolsListChanged": true}));
    assert_eq!(accepted, json!({"toolsListChanged": true}));
    let (mut prompts_only, _) = listen_acked(&h.url, "L2", json!({"promptsListChanged": true}));
    let sid = legacy_session(&h.url);
    let mut get = get_stream(&h.url, &sid);
    assert_eq!(get.status, 200);

    // The tool list is cached: asking again does not reach the upstream.
    let before = up.stats()["requests"].as_u64().unwrap();
    modern(&h.url, "tools/list", json!({}));
    assert_eq!(up.stats()["requests"].as_u64().unwrap(), before, "served from the cache");

    // tools, prompts, tools: each stream sees exactly the kinds it opted in to, in order.
    up.server.announce_list_changed("tools");
    up.server.announce_list_changed("prompts");
    up.server.announce_list_changed("tools");
    let change = tools_only.next().unwrap().data;
    assert_eq!(change["method"], "notifications/tools/list_changed");
    assert_eq!(change["params"]["_meta"][SUB_ID], "L1", "tagged with the client's own subscription: {change}");
    assert_eq!(tools_only.next().expect("an event within 10 s").method(), "notifications/tools/list_changed", "the prompts change is not for L1");
    let change = prompts_only.next().unwrap().data;
    assert_eq!(change["method"], "notifications/prompts/list_changed", "{change}");
    assert_eq!(change["params"]["_meta"][SUB_ID], "L2");
    let legacy_seen: Vec<Value> = (0..3).map(|_| get.next().expect("a notification on the GET stream").data).collect();
    let methods: Vec<&str> = legacy_seen.iter().map(|m| m["method"].as_str().unwrap_or_default()).collect();
    assert_eq!(methods, ["notifications/tools/list_changed", "notifications/prompts/list_changed", "notifications/tools/list_changed"]);
    assert!(legacy_seen.iter().all(|m| m.get("params").is_none()), "no modern _meta for a legacy client: {legacy_seen:?}");

    // The change dropped the cached tool list: the next tools/list goes upstream.
    modern(&h.url, "tools/list", json!({}));
    assert!(up.stats()["requests"].as_u64().unwrap() > before, "tools/list refetched after list_changed");
    for s in [tools_only, prompts_only, get] {
        s.close();
    }
}

#[test]
fn resources_updated_reaches_only_the_clients_of_either_era_subscribed_to_that_uri() {
    let up = mock(Era::Modern, "m");
    let h = hub_listening_on(&up);
    // A (modern) watches mock://info; B (modern) only tool changes; C (legacy)
    // subscribes to mock://info; D (legacy) does not.
    let (mut a, accepted) = listen_acked(&h.url, "A", json!({"resourceSubscriptions": ["mock://info", "nobody://owns-this"]}));
    assert_eq!(accepted, json!({"resourceSubscriptions": ["mock://info"]}), "only URIs a server owns are accepted");
    let (mut b, _) = listen_acked(&h.url, "B", json!({"toolsListChanged": true, "resourceSubscriptions": []}));
    let (c_sid, d_sid) = (legacy_session(&h.url), legacy_session(&h.url));
    assert_eq!(legacy(&h.url, &c_sid, "resources/subscribe", json!({"uri": "mock://info"})).json()["result"], json!({}));
    let (mut c, mut d) = (get_stream(&h.url, &c_sid), get_stream(&h.url, &d_sid));
    // The hub's own listen stream upstream now asks for that URI (once).
    wait_until("the upstream filter names mock://info", PATIENCE, || watched(&up) == ["mock://info"] && up.server.listen_streams() == 1);

    up.server.announce_resource_updated("mock://info");
    up.server.announce_list_changed("tools"); // a sentinel every stream but A sees
    let got = a.next().unwrap().data;
    assert_eq!(got["method"], "notifications/resources/updated", "{got}");
    assert_eq!(got["params"]["uri"], "mock://info");
    assert_eq!(got["params"]["_meta"][SUB_ID], "A", "the client's subscription id, not the hub's upstream one: {got}");
    assert_eq!(b.next().expect("an event within 10 s").method(), "notifications/tools/list_changed", "B did not subscribe to mock://info");
    let got = c.next().unwrap().data;
    assert_eq!(got["method"], "notifications/resources/updated");
    assert_eq!(got["params"], json!({"uri": "mock://info"}), "no modern _meta for a legacy client");
    assert_eq!(c.next().expect("an event within 10 s").method(), "notifications/tools/list_changed");
    assert_eq!(d.next().expect("an event within 10 s").method(), "notifications/tools/list_changed", "D did not subscribe");

    // The legacy client unsubscribes; A still watches, so the upstream filter stays.
    legacy(&h.url, &c_sid, "resources/unsubscribe", json!({"uri": "mock://info"}));
    assert_eq!(watched(&up), ["mock://info"]);
    for s in [a, b, c, d] {
        s.close();
    }
    // A was the last: the hub reopens its upstream stream without the URI.
    wait_until("the upstream filter drops mock://info", PATIENCE, || watched(&up).is_empty() && up.server.listen_streams() == 1);
    wait_until("every listen stream is gone", PATIENCE, || h.hub.listen_streams().is_empty());
}

#[test]
fn a_closed_listen_stream_frees_its_registration_and_the_last_subscriber_unsubscribes_upstream() {
    let up = mock(Era::Modern, "m");
    let h = hub_listening_on(&up);
    let (a, _) = listen_acked(&h.url, "A", json!({"resourceSubscriptions": ["mock://item/7"]}));
    let (b, _) = listen_acked(&h.url, "B", json!({"resourceSubscriptions": ["mock://item/7"]}));
    assert_eq!(h.hub.listen_streams().len(), 2);
    wait_until("the upstream filter names the templated URI", PATIENCE, || watched(&up) == ["mock://item/7"]);
    a.close();
    wait_until("A's registration is dropped", PATIENCE, || h.hub.listen_streams().len() == 1);
    assert_eq!(watched(&up), ["mock://item/7"], "B still watches it");
    b.close();
    wait_until("B's registration is dropped", PATIENCE, || h.hub.listen_streams().is_empty());
    wait_until("the upstream filter is empty again", PATIENCE, || watched(&up).is_empty() && up.server.listen_streams() == 1);
    // The stream threads are free again: a new listen is served at once.
    let (again, _) = listen_acked(&h.url, "C", json!({"toolsListChanged": true}));
    again.close();
}

#[test]
fn bad_listen_requests_get_clear_errors() {
    let up = mock(Era::Modern, "m");
    let h = hub(&[("m", &up.url)], json!({}));
    let bad = modern(&h.url, "subscriptions/listen", json!({"notifications": {"toolsListChanged": "yes"}})).json();
    assert_eq!(bad["error"]["code"], -32602, "{bad}");
    assert!(bad["error"]["message"].as_str().unwrap().contains("toolsListChanged"), "{bad}");
    let missing = modern(&h.url, "subscriptions/listen", json!({})).json();
    assert_eq!(missing["error"]["code"], -32602, "{missing}");
    // Legacy clients have no subscriptions/listen (2025-11-25: GET stream + resources/subscribe).
    let sid = legacy_session(&h.url);
    assert_eq!(legacy(&h.url, &sid, "subscriptions/listen", json!({"notifications": {}})).json()["error"]["code"], -32601);
    assert!(h.hub.listen_streams().is_empty(), "refused requests register nothing");
}

#[test]
fn the_mock_acknowledges_and_tags_its_own_listen_stream() {
    let up = mock(Era::Modern, "m");
    let (mut s, accepted) = listen_acked(&up.url, "X", json!({"promptsListChanged": true}));
    assert_eq!(accepted, json!({"promptsListChanged": true}));
    assert_eq!(up.stats()["requests"], 0, "a listen stream is not counted as a request");
    let r = modern(&up.url, "tools/call", json!({"name": "test_trigger_tool_change", "arguments": {}}));
    assert_eq!(r.json()["result"]["resultType"], "complete");
    modern(&up.url, "tools/call", json!({"name": "test_trigger_prompt_change", "arguments": {}}));
    let got = s.next().unwrap().data;
    assert_eq!(got["method"], "notifications/prompts/list_changed", "the tool change was not asked for: {got}");
    assert_eq!(got["params"]["_meta"][SUB_ID], "X");
    s.close();
    wait_until("the mock drops the closed stream", PATIENCE, || up.server.listen_streams() == 0);
}
