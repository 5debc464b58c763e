//! The cluster bus (issue 20, docs/cluster.md §2): several hubs sharing one real
//! `redis-server` (its own free port, stopped by the test) hand each other
//! upstream notifications, client answers and MRTR retries. In-process hubs
//! on loopback sockets, `mcphub-mock` upstreams.
//!
//! Every test here uses a client session only on the hub that created it,
//! so none needs client sessions shared through Redis (docs/cluster.md §1).

mod hub_util;
#[path = "redis_util/mod.rs"]
mod redis_util;

use hub_util::*;
use mcphub_mock::{Era, MockConfig, MockServer};
use redis_util::RedisServer;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A hub in front of `servers` on the shared Redis.
fn clustered(redis: &RedisServer, servers: &[(&str, &str)]) -> HubUnderTest {
    let h = hub(servers, json!({"redis": {"url": redis.url()}}));
    wait_until("the hub's bus subscriber to subscribe", PATIENCE, || h.hub.cluster().is_some_and(|c| c.subscribed()));
    h
}

fn readyz(h: &HubUnderTest) -> Value {
    let url = h.url.replace("/mcp", "/readyz");
    let r = send("GET", &url, &[], "");
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
}

/// The ids of the peers `/readyz` lists.
fn peers(h: &HubUnderTest) -> Vec<String> {
    let mut p: Vec<String> =
        readyz(h)["cluster"]["peers"].as_array().cloned().unwrap_or_default().iter().filter_map(|p| p["instance"].as_str().map(str::to_string)).collect();
    p.sort();
    p
}

fn id_of_hub(h: &HubUnderTest) -> String {
    h.hub.cluster().expect("a clustered hub").id().to_string()
}

/// Received deliveries of `kind` on this hub (`/metrics` figures).
fn received(h: &HubUnderTest, kind: &str) -> u64 {
    let f = h.hub.cluster().unwrap().figures();
    f.received.iter().find(|(k, _)| *k == kind).map_or(0, |(_, n)| *n)
}

fn conformance_mock(era: Era, name: &str) -> Mock {
    let server = Arc::new(MockServer::with_conformance_fixtures(MockConfig { era, name: name.into(), ..MockConfig::default() }));
    let handle = mcphub::http::Server::bind("127.0.0.1:0".parse().unwrap(), mcphub::http::ServerConfig::default(), server.clone()).expect("bind mock");
    let url = format!("http://{}/mcp", handle.local_addr());
    Mock { server, handle, url }
}

/// Reads `stream` until `within` passes; the methods of the notifications seen.
fn notifications_within(stream: &mut SseStream, within: Duration) -> Vec<String> {
    let end = Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return seen;
        }
        if let Some(e) = stream.next_within(left) {
            seen.push(e.method().to_string());
        }
    }
}

fn session_with(url: &str, capabilities: Value) -> String {
    let body = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities": capabilities,"clientInfo":{"name":"t","version":"1"}}});
    let r = send("POST", url, &[ACCEPT, JSON], &body.to_string());
    assert_eq!(r.status, 200, "{}", r.text);
    r.header("mcp-session-id").expect("session").to_string()
}

fn sampled(text: &str) -> Value {
    json!({"role": "assistant", "content": {"type": "text", "text": text}, "model": "m"})
}

/// A modern `tools/call` of `tool` (accepting SSE) with `capabilities` and `extra` params.
fn modern_call(url: &str, tool: &str, capabilities: Value, extra: Value) -> Reply {
    let mut params = json!({"name": tool, "arguments": {"prompt": "2+2?"}, "_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": capabilities}});
    for (k, v) in extra.as_object().unwrap() {
        params[k] = v.clone();
    }
    let body = json!({"jsonrpc": "2.0", "id": "c1", "method": "tools/call", "params": params}).to_string();
    send("POST", url, &[ACCEPT, JSON, ("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", "tools/call"), ("Mcp-Name", tool)], &body)
}

// (a) ------------------------------------------------------------------

#[test]
fn a_list_change_caused_through_one_hub_reaches_a_get_stream_on_another_exactly_once() {
    let redis = RedisServer::start();
    let up = conformance_mock(Era::Modern, "m");
    let (h1, h2) = (clustered(&redis, &[("m", &up.url)]), clustered(&redis, &[("m", &up.url)]));
    for h in [&h1, &h2] {
        assert_eq!(modern(&h.url, "tools/list", json!({})).status, 200);
    }
    // Both hubs hear the upstream themselves too: the notification arrives
    // on hub 1 twice (its own listen stream and the bus) and is sent once.
    wait_until("both hubs listen upstream", PATIENCE, || up.server.listen_streams() == 2);
    let sid = legacy_session(&h1.url);
    let mut get = SseStream::get(&h1.url, &[("Mcp-Session-Id", &sid)]);
    assert_eq!(get.status, 200);

    let r = modern(&h2.url, "tools/call", json!({"name": "test_trigger_tool_change", "arguments": {}}));
    assert_eq!(r.json()["result"]["resultType"], "complete", "{}", r.text);
    let first = get.next().expect("a notification on hub 1's GET stream").method().to_string();
    assert_eq!(first, "notifications/tools/list_changed");
    wait_until("hub 1 receives the notification over the bus", PATIENCE, || received(&h1, "upstream_notification") >= 1);
    let more = notifications_within(&mut get, Duration::from_millis(1000));
    assert!(more.is_empty(), "coalesced to one within the window; then also got {more:?}");
    get.close();
}

#[test]
fn a_list_change_only_another_hub_hears_reaches_this_hubs_get_stream() {
    let redis = RedisServer::start();
    // Hub 1 and hub 2 serve "m" from different mocks: hub 1 hears only the bus.
    let (up1, up2) = (conformance_mock(Era::Modern, "m"), conformance_mock(Era::Modern, "m"));
    let (h1, h2) = (clustered(&redis, &[("m", &up1.url)]), clustered(&redis, &[("m", &up2.url)]));
    assert_eq!(modern(&h2.url, "tools/list", json!({})).status, 200);
    wait_until("hub 2 listens upstream", PATIENCE, || up2.server.listen_streams() == 1);
    let sid = legacy_session(&h1.url);
    let mut get = SseStream::get(&h1.url, &[("Mcp-Session-Id", &sid)]);

    let r = modern(&h2.url, "tools/call", json!({"name": "test_trigger_tool_change", "arguments": {}}));
    assert_eq!(r.json()["result"]["resultType"], "complete", "{}", r.text);
    assert_eq!(get.next().expect("the change, over the bus").method(), "notifications/tools/list_changed");
    assert_eq!(received(&h1, "upstream_notification"), 1);
    let more = notifications_within(&mut get, Duration::from_millis(600));
    assert!(more.is_empty(), "exactly once: {more:?}");
    get.close();
}

// (b) ------------------------------------------------------------------

#[test]
fn a_sampling_request_relayed_on_hub_2_answered_through_hub_1_completes_the_call() {
    let redis = RedisServer::start();
    let up = conformance_mock(Era::Legacy, "legacy");
    let (h1, h2) = (clustered(&redis, &[("legacy", &up.url)]), clustered(&redis, &[("legacy", &up.url)]));
    let sid = session_with(&h2.url, json!({"sampling": {}}));
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "test_sampling", "arguments": {"prompt": "2+2?"}}}).to_string();
    let mut stream = SseStream::post(&h2.url, &[("Mcp-Session-Id", &sid), ("MCP-Protocol-Version", "2025-11-25")], &body);
    assert!(stream.header("content-type").unwrap_or("").starts_with("text/event-stream"), "a streamed answer");
    let mut asked = None;
    while let Some(e) = stream.next() {
        let m = e.data;
        if m["method"] == "sampling/createMessage" {
            asked = Some(m);
            break;
        }
    }
    let asked = asked.expect("the sampling request on hub 2's call stream");
    let hub_id = asked["id"].as_str().unwrap().to_string();
    assert!(hub_id.starts_with(&format!("mcphub-r{}.", id_of_hub(&h2))), "the hub id names hub 2: {hub_id}");
    // The answer goes to hub 1 (another instance), which does not know the session.
    let reply = json!({"jsonrpc": "2.0", "id": hub_id, "result": sampled("four")}).to_string();
    let r = send("POST", &h1.url, &[ACCEPT, JSON, ("Mcp-Session-Id", &sid), ("MCP-Protocol-Version", "2025-11-25")], &reply);
    assert_eq!(r.status, 202, "{}", r.text);
    let last = loop {
        let m = stream.next().expect("the call's response on hub 2").data;
        if m.get("id") == Some(&json!(7)) {
            break m;
        }
    };
    assert_eq!(text_of(&last), "LLM response: four", "{last}");
    assert_eq!(received(&h2, "client_answer"), 1);

    // Another session's answer is not taken (the owner checks the session).
    let other = session_with(&h1.url, json!({"sampling": {}}));
    let mut stream = SseStream::post(&h2.url, &[("Mcp-Session-Id", &sid), ("MCP-Protocol-Version", "2025-11-25")], &body);
    let asked = loop {
        let m = stream.next().expect("a second sampling request").data;
        if m["method"] == "sampling/createMessage" {
            break m;
        }
    };
    let forged = json!({"jsonrpc": "2.0", "id": asked["id"], "result": sampled("forged")}).to_string();
    assert_eq!(send("POST", &h1.url, &[ACCEPT, JSON, ("Mcp-Session-Id", &other), ("MCP-Protocol-Version", "2025-11-25")], &forged).status, 202);
    wait_until("hub 2 receives the forged answer", PATIENCE, || received(&h2, "client_answer") == 2);
    assert_eq!(h2.hub.pending().len(), 1, "still waiting for the right session's answer");
    let real = json!({"jsonrpc": "2.0", "id": asked["id"], "result": sampled("five")}).to_string();
    assert_eq!(send("POST", &h1.url, &[ACCEPT, JSON, ("Mcp-Session-Id", &sid), ("MCP-Protocol-Version", "2025-11-25")], &real).status, 202);
    let last = loop {
        let m = stream.next().expect("the second call's response").data;
        if m.get("id") == Some(&json!(7)) {
            break m;
        }
    };
    assert_eq!(text_of(&last), "LLM response: five", "{last}");
}

// (c), (d) --------------------------------------------------------------

#[test]
fn an_mrtr_retry_on_hub_1_of_a_call_parked_on_hub_2_completes() {
    let redis = RedisServer::start();
    let up = conformance_mock(Era::Legacy, "legacy");
    let (h1, h2) = (clustered(&redis, &[("legacy", &up.url)]), clustered(&redis, &[("legacy", &up.url)]));
    let caps = json!({"sampling": {}});
    let first = modern_call(&h2.url, "test_sampling", caps.clone(), json!({})).json();
    let result = &first["result"];
    assert_eq!(result["resultType"], "input_required", "{first}");
    let state = result["requestState"].as_str().unwrap().to_string();
    assert!(state.starts_with(&format!("mcphub-state-{}.", id_of_hub(&h2))), "the token names hub 2: {state}");
    let key = result["inputRequests"].as_object().unwrap().keys().next().unwrap().clone();
    assert_eq!(h2.hub.mrtr().parked_len(), 1);

    let retry = json!({"requestState": state, "inputResponses": {key: sampled("four")}});
    let done = modern_call(&h1.url, "test_sampling", caps, retry);
    assert_eq!(done.status, 200, "{}", done.text);
    let d = done.json();
    assert_eq!(d["id"], "c1", "{d}");
    assert_eq!(text_of(&d), "LLM response: four", "{d}");
    assert_eq!(h2.hub.mrtr().parked_len(), 0, "resumed on hub 2");
    assert_eq!(received(&h2, "forward"), 1);
}

#[test]
fn an_mrtr_retry_naming_a_dead_instance_is_refused_promptly() {
    let redis = RedisServer::start();
    let up = conformance_mock(Era::Legacy, "legacy");
    let h1 = clustered(&redis, &[("legacy", &up.url)]);
    let state = "mcphub-state-deadbeef0000.0123456789abcdef0123456789abcdef";
    let started = Instant::now();
    let r = modern_call(&h1.url, "test_sampling", json!({"sampling": {}}), json!({"requestState": state, "inputResponses": {"input-1": sampled("x")}}));
    let took = started.elapsed();
    assert_eq!(r.json()["error"]["code"], -32602, "{}", r.text);
    assert!(took < Duration::from_secs(3), "refused at once, not at the deadline: {took:?}");
    let f = h1.hub.cluster().unwrap().figures();
    assert_eq!(f.forward_failures.iter().find(|(c, _)| *c == "no_receiver").map(|(_, n)| *n), Some(1), "{f:?}");
}

// (e) ------------------------------------------------------------------

#[test]
fn readyz_lists_the_other_instances_and_counts_deliveries() {
    let redis = RedisServer::start();
    let up = mock(Era::Modern, "m");
    let hubs: Vec<HubUnderTest> = (0..3).map(|_| clustered(&redis, &[("m", &up.url)])).collect();
    let ids: Vec<String> = hubs.iter().map(id_of_hub).collect();
    for (i, h) in hubs.iter().enumerate() {
        let mut others: Vec<String> = ids.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, id)| id.clone()).collect();
        others.sort();
        wait_until(&format!("hub {i}'s /readyz to list the other two"), PATIENCE, || peers(h) == others);
        let r = readyz(h);
        assert_eq!(r["cluster"]["instance"], ids[i].as_str(), "{r}");
        assert_eq!(r["cluster"]["subscribed"], true, "{r}");
    }
    // A DELETE on hub 0 is broadcast: hubs 1 and 2 receive it.
    let sid = legacy_session(&hubs[0].url);
    let del = send("DELETE", &hubs[0].url, &[("Mcp-Session-Id", &sid)], "");
    assert_eq!(del.status, 200, "{}", del.text);
    for h in &hubs[1..] {
        wait_until("the session end to be received", PATIENCE, || readyz(h)["cluster"]["deliveries"]["received"].as_u64() >= Some(1));
    }
    assert!(readyz(&hubs[0])["cluster"]["deliveries"]["sent"].as_u64() >= Some(1));
    let metrics = send("GET", &hubs[0].url.replace("/mcp", "/metrics"), &[], "").text;
    assert!(metrics.contains(&format!("mcphub_instance_info{{instance=\"{}\"}} 1", ids[0])), "{metrics}");
    assert!(metrics.contains("mcphub_cluster_deliveries_total{direction=\"sent\",kind=\"session_ended\"} 1"), "{metrics}");
    assert!(metrics.contains("mcphub_cluster_peers 2"), "{metrics}");
}

// Stream holders and the subscriber's reconnect ------------------------------

#[test]
fn a_get_stream_holds_its_record_while_open_and_releases_it_at_close() {
    let redis = RedisServer::start();
    let up = mock(Era::Legacy, "a");
    let h1 = clustered(&redis, &[("a", &up.url)]);
    let sid = legacy_session(&h1.url);
    let key = mcphub::cluster::stream_key(&sid);
    assert!(!key.contains(&sid), "the key carries the session id hashed: {key}");
    let get = SseStream::get(&h1.url, &[("Mcp-Session-Id", &sid)]);
    assert_eq!(get.status, 200);
    wait_until("the holder record names hub 1", PATIENCE, || redis.cli(&["GET", &key]) == id_of_hub(&h1));
    let ttl: i64 = redis.cli(&["PTTL", &key]).parse().unwrap();
    assert!(ttl > 0 && ttl <= 15_000, "a TTL of at most 15 s: {ttl}");
    assert_eq!(h1.hub.cluster().unwrap().stream_holder(&sid).as_deref(), Some(id_of_hub(&h1).as_str()));
    get.close();
    wait_until("the record is released when the stream closes", PATIENCE, || redis.cli(&["EXISTS", &key]) == "0");
}

#[test]
fn the_subscriber_reconnects_after_redis_restarts_and_deliveries_flow_again() {
    let mut redis = RedisServer::start();
    let up = mock(Era::Legacy, "a");
    let (h1, h2) = (clustered(&redis, &[("a", &up.url)]), clustered(&redis, &[("a", &up.url)]));
    redis.restart();
    wait_until("both subscribers reconnect", PATIENCE, || {
        [&h1, &h2].iter().all(|h| {
            let f = h.hub.cluster().unwrap().figures();
            f.subscribed && f.subscriber_reconnects >= 1
        })
    });
    // A DELETE on hub 1 reaches hub 2 again (the pool's breaker may need a
    // probe first: retried until one is received).
    wait_until("a session end from hub 1 to be received on hub 2", PATIENCE, || {
        let sid = legacy_session(&h1.url);
        assert_eq!(send("DELETE", &h1.url, &[("Mcp-Session-Id", &sid)], "").status, 200);
        received(&h2, "session_ended") >= 1
    });
    let metrics = send("GET", &h1.url.replace("/mcp", "/metrics"), &[], "").text;
    assert!(metrics.contains("mcphub_cluster_subscriber_reconnects_total"), "{metrics}");
}
