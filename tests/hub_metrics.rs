//! `/metrics` (Prometheus text), `/readyz` fields, request ids and W3C trace
//! context reaching upstreams (issue 7). Hubs and mock upstreams on loopback.

mod hub_util;
mod redis_util;

use hub_util::*;
use mcphub_mock::{Era, MockConfig};
use serde_json::{json, Value};
use std::collections::BTreeMap;

const TP: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// One sample line: `name{labels} value`.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the text exposition; panics on any line that is neither a comment
/// (`# HELP`/`# TYPE`) nor `name{label="value",…} number`.
fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(c) = line.strip_prefix("# ") {
            assert!(c.starts_with("HELP ") || c.starts_with("TYPE "), "odd comment: {line}");
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("unclosed labels: {line}"));
                let mut labels = BTreeMap::new();
                let mut rest = body;
                while !rest.is_empty() {
                    let (k, after) = rest.split_once("=\"").unwrap_or_else(|| panic!("bad label in {line}"));
                    let end = after.find('"').unwrap_or_else(|| panic!("unterminated label in {line}"));
                    labels.insert(k.to_string(), after[..end].to_string());
                    rest = after[end + 1..].trim_start_matches(',');
                }
                (name, labels)
            }
        };
        assert!(
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':'),
            "bad metric name in {line}"
        );
        out.push(Sample { name: name.to_string(), labels, value });
    }
    out
}

/// The value of the sample `name` whose labels include `labels` (0 when absent).
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
        .map(|s| s.value)
        .sum()
}

fn scrape(h: &HubUnderTest) -> (String, Vec<Sample>) {
    let r = send("GET", &h.url.replace("/mcp", "/metrics"), &[], "");
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("text/plain; version=0.0.4")), "{:?}", r.headers);
    let samples = parse(&r.text);
    (r.text, samples)
}

fn call(url: &str, sid: &str, tool: &str, args: Value) -> Reply {
    legacy(url, sid, "tools/call", json!({"name": tool, "arguments": args}))
}

#[test]
fn metrics_count_calls_errors_limits_timeouts_and_heals() {
    // The mock forgets a session every 3 uses: the hub re-establishes it (♻️).
    let up = mock_with(MockConfig { era: Era::Legacy, name: "old".into(), expire_sessions_every: 3, ..MockConfig::default() });
    let h = hub(
        &[],
        json!({
            "toolNaming": "prefix",
            "mcpServers": {
                "m": {"url": up.url, "timeoutMs": 5000},
                "lim": {"url": up.url, "timeoutMs": 5000, "rateLimit": {"perMinute": 1, "burst": 1}},
                "slow": {"url": up.url, "timeoutMs": 300},
            }
        }),
    );
    let (_, before) = scrape(&h);
    assert_eq!(value(&before, "mcphub_requests_total", &[]), 0.0, "nothing counted before any request");
    assert_eq!(value(&before, "mcphub_store_up", &[("kind", "memory")]), 1.0);
    assert!(value(&before, "mcphub_http_queue_capacity", &[]) > 0.0, "the worker queue is reported");

    let sid = legacy_session(&h.url);
    let secret_arg = "argument-that-must-not-be-a-label";
    for i in 0..6 {
        let r = call(&h.url, &sid, "m__echo", json!({"text": secret_arg}));
        assert_eq!(r.status, 200, "call {i}: {}", r.text);
        assert!(r.json().get("result").is_some(), "call {i}: {}", r.text);
    }
    let unknown = legacy(&h.url, &sid, "no/such/method", json!({}));
    assert_eq!(unknown.json()["error"]["code"], -32601, "{}", unknown.text);
    assert_eq!(call(&h.url, &sid, "lim__echo", json!({"text": "a"})).status, 200);
    let limited = call(&h.url, &sid, "lim__echo", json!({"text": "b"}));
    assert_eq!(limited.status, 429, "{}", limited.text);
    let slow = call(&h.url, &sid, "slow__sleep", json!({"ms": 3000}));
    assert_eq!(slow.json()["error"]["code"], -32001, "{}", slow.text);
    assert_eq!(slow.json()["error"]["data"]["layer"], "upstream", "{}", slow.text);

    let (text, s) = scrape(&h);
    let ok = value(&s, "mcphub_requests_total", &[("method", "tools/call"), ("outcome", "ok"), ("era", "legacy")]);
    assert_eq!(ok, 7.0, "six echo calls and one under the limit:\n{text}");
    assert_eq!(value(&s, "mcphub_requests_total", &[("method", "other"), ("outcome", "rpc_method_not_found")]), 1.0, "{text}");
    assert_eq!(value(&s, "mcphub_requests_total", &[("method", "tools/call"), ("outcome", "http_429")]), 1.0, "{text}");
    assert_eq!(value(&s, "mcphub_requests_total", &[("method", "tools/call"), ("outcome", "rpc_server_error")]), 1.0, "the timeout: {text}");
    assert_eq!(value(&s, "mcphub_requests_total", &[("method", "initialize"), ("outcome", "ok")]), 1.0, "{text}");
    assert_eq!(value(&s, "mcphub_rate_limited_total", &[("scope", "server")]), 1.0, "{text}");
    assert_eq!(value(&s, "mcphub_rate_limited_total", &[("scope", "user")]), 0.0, "{text}");
    assert_eq!(value(&s, "mcphub_timeouts_total", &[("layer", "upstream")]), 1.0, "{text}");
    assert!(value(&s, "mcphub_upstream_sessions_reestablished_total", &[("server", "m")]) >= 1.0, "{text}");
    assert!(value(&s, "mcphub_upstream_sessions_created_total", &[("server", "m")]) >= 2.0, "{text}");
    assert_eq!(value(&s, "mcphub_upstream_sessions_active", &[("server", "m")]), 1.0, "{text}");
    assert!(value(&s, "mcphub_upstream_request_duration_seconds_count", &[("server", "m")]) >= 6.0, "{text}");
    assert_eq!(value(&s, "mcphub_request_duration_seconds_count", &[("method", "tools/call")]), 9.0, "{text}");
    assert_eq!(value(&s, "mcphub_bulkhead_queued", &[("server", "m"), ("queue", "calls")]), 0.0, "{text}");
    assert_eq!(value(&s, "mcphub_circuit_open", &[("server", "m")]), 0.0, "{text}");
    assert_eq!(value(&s, "mcphub_client_sessions", &[]), 1.0, "{text}");
    // Label values are bounded: no argument, session id or unknown method name.
    for bad in [secret_arg, sid.as_str(), "no/such/method"] {
        assert!(!text.contains(bad), "{bad} leaked into /metrics:\n{text}");
    }
    // Scrapes are not requests.
    let (_, again) = scrape(&h);
    assert_eq!(value(&again, "mcphub_requests_total", &[]), value(&s, "mcphub_requests_total", &[]));
}

#[test]
fn two_hubs_in_one_process_count_apart() {
    let up = mock(Era::Dual, "a");
    let (h1, h2) = (hub(&[("a", &up.url)], json!({})), hub(&[("a", &up.url)], json!({})));
    let sid = legacy_session(&h1.url);
    assert_eq!(call(&h1.url, &sid, "echo", json!({"text": "x"})).status, 200);
    let (_, s1) = scrape(&h1);
    let (_, s2) = scrape(&h2);
    assert_eq!(value(&s1, "mcphub_requests_total", &[("method", "tools/call")]), 1.0);
    assert_eq!(value(&s2, "mcphub_requests_total", &[]), 0.0, "the second hub saw nothing");
}

#[test]
fn readyz_reports_config_store_and_upstream_state() {
    let up = mock(Era::Legacy, "a");
    let h = hub(&[("a", &up.url), ("dead", "http://127.0.0.1:9/mcp")], json!({"toolNaming": "prefix"}));
    let sid = legacy_session(&h.url);
    assert_eq!(call(&h.url, &sid, "a__echo", json!({"text": "x"})).status, 200);
    let r = send("GET", &h.url.replace("/mcp", "/readyz"), &[], "");
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["status"], "ready");
    assert_eq!(v["config"]["loaded"], true);
    assert_eq!(v["config"]["servers"], 2);
    assert_eq!(v["store"]["kind"], "memory");
    assert_eq!(v["store"]["reachable"], true);
    let a = &v["servers"]["a"];
    assert_eq!((a["era"].as_str(), a["ok"].as_bool(), a["breaker"].as_str()), (Some("legacy"), Some(true), Some("closed")), "{v}");
    assert!(a["lastSuccess"].as_str().is_some_and(|t| t.ends_with('Z') && t.contains('T')), "{v}");
    assert!(a["sessions"].is_number() && a["bulkhead"]["in_flight"].is_number() && a.get("lastError").is_some(), "existing fields stay: {v}");
    let dead = &v["servers"]["dead"];
    assert_eq!(dead["ok"], false, "{v}");
    assert!(dead["lastError"].is_string(), "{v}");
    assert_eq!(dead["lastSuccess"], Value::Null, "{v}");
}

/// A legacy `tools/call` with extra headers.
fn legacy_with(url: &str, sid: &str, tool: &str, extra: &[(&str, &str)]) -> Reply {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": tool, "arguments": {"text": "t"}}}).to_string();
    let mut h = vec![ACCEPT, JSON, ("Mcp-Session-Id", sid), ("MCP-Protocol-Version", "2025-06-18")];
    h.extend_from_slice(extra);
    send("POST", url, &h, &body)
}

#[test]
fn request_ids_are_echoed_and_reach_legacy_upstreams_with_trace_headers() {
    let up = mock(Era::Legacy, "old");
    let h = hub(&[("old", &up.url)], json!({}));
    let sid = legacy_session(&h.url);

    let r = legacy_with(&h.url, &sid, "echo", &[("X-Request-Id", "client-req.1:a_b-c"), ("traceparent", TP), ("tracestate", "vendor=1")]);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-request-id"), Some("client-req.1:a_b-c"));
    let st = up.stats();
    assert_eq!(st["last_request_id"], "client-req.1:a_b-c", "{st}");
    assert_eq!(st["last_traceparent"], TP, "{st}");
    assert_eq!(st["last_tracestate"], "vendor=1", "{st}");
    assert_eq!(st["last_meta_traceparent"], Value::Null, "a legacy upstream gets headers only: {st}");

    // Invalid ids and trace contexts are replaced / dropped.
    let long = "a".repeat(129);
    for bad in ["has space", "semi;colon", long.as_str()] {
        let r = legacy_with(&h.url, &sid, "echo", &[("X-Request-Id", bad), ("traceparent", "00-zz-bad-01"), ("tracestate", "x=1")]);
        let minted = r.header("x-request-id").expect("an id is always echoed").to_string();
        assert!(minted.len() == 16 && minted.bytes().all(|b| b.is_ascii_hexdigit()), "{bad:?} → {minted}");
        let st = up.stats();
        assert_eq!(st["last_request_id"], minted.as_str(), "the upstream sees the minted id: {st}");
        assert_eq!((&st["last_traceparent"], &st["last_tracestate"]), (&Value::Null, &Value::Null), "{st}");
    }
    // No id: one is minted, different each time.
    let a = legacy_with(&h.url, &sid, "echo", &[]).header("x-request-id").map(str::to_string);
    let b = legacy_with(&h.url, &sid, "echo", &[]).header("x-request-id").map(str::to_string);
    assert!(a.is_some() && b.is_some() && a != b, "{a:?} {b:?}");
    // Every /mcp answer carries it, errors included.
    let err = send("POST", &h.url, &[ACCEPT, JSON, ("X-Request-Id", "e1")], "{not json");
    assert_eq!((err.status, err.header("x-request-id")), (400, Some("e1")));
}

#[test]
fn traceparent_reaches_a_modern_upstream_in_meta_too() {
    let up = mock(Era::Modern, "new");
    let h = hub(&[("new", &up.url)], json!({}));
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}
    });
    let body = json!({"jsonrpc": "2.0", "id": "m1", "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "x"}, "_meta": meta}});
    let hdrs = [
        ACCEPT,
        JSON,
        ("MCP-Protocol-Version", "2026-07-28"),
        ("Mcp-Method", "tools/call"),
        ("Mcp-Name", "echo"),
        ("X-Request-Id", "modern-1"),
        ("traceparent", TP),
        ("tracestate", "v=2"),
    ];
    let r = send("POST", &h.url, &hdrs, &body.to_string());
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-request-id"), Some("modern-1"));
    let st = up.stats();
    assert_eq!(st["last_request_id"], "modern-1", "{st}");
    assert_eq!(st["last_traceparent"], TP, "{st}");
    assert_eq!(st["last_meta_traceparent"], TP, "SEP-414 key in _meta: {st}");

    // A modern client's own _meta trace context is kept, and sent as headers too.
    let other = "00-11111111111111111111111111111111-2222222222222222-00";
    let mut params = body["params"].clone();
    params["_meta"]["traceparent"] = json!(other);
    let body = json!({"jsonrpc": "2.0", "id": "m2", "method": "tools/call", "params": params});
    let r = send("POST", &h.url, &hdrs[..5], &body.to_string());
    assert_eq!(r.status, 200, "{}", r.text);
    let st = up.stats();
    assert_eq!((st["last_traceparent"].as_str(), st["last_meta_traceparent"].as_str()), (Some(other), Some(other)), "{st}");
}

#[test]
fn a_streamed_answer_is_counted_when_its_stream_ends_and_keeps_its_id() {
    let up = mock(Era::Legacy, "old");
    let h = hub(&[("old", &up.url)], json!({}));
    let sid = legacy_session(&h.url);
    let body = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "progress", "arguments": {"steps": 3, "ms": 20}, "_meta": {"progressToken": "p1"}}});
    let hdrs = [ACCEPT, JSON, ("Mcp-Session-Id", sid.as_str()), ("MCP-Protocol-Version", "2025-06-18"), ("X-Request-Id", "sse-1"), ("traceparent", TP)];
    let r = send("POST", &h.url, &hdrs, &body.to_string());
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("text/event-stream")), "a streamed answer: {:?}", r.headers);
    assert_eq!(r.header("x-request-id"), Some("sse-1"));
    assert!(r.events().iter().any(|e| e["method"] == "notifications/progress"), "{}", r.text);
    let st = up.stats();
    assert_eq!((st["last_request_id"].as_str(), st["last_traceparent"].as_str()), (Some("sse-1"), Some(TP)), "{st}");
    // The stream thread counts it once it ended (the client has read it all by now).
    let (text, s) = scrape(&h);
    assert_eq!(value(&s, "mcphub_requests_total", &[("method", "tools/call"), ("outcome", "ok")]), 1.0, "{text}");
    assert_eq!(value(&s, "mcphub_request_duration_seconds_count", &[("method", "tools/call")]), 1.0, "{text}");
}

#[test]
fn bulkhead_depths_are_read_at_scrape_time_and_refusals_counted() {
    let up = mock(Era::Legacy, "slow");
    let h = hub(&[], json!({"mcpServers": {"slow": {"url": up.url, "timeoutMs": 5000, "maxConcurrency": 1, "maxQueue": 1}}}));
    let busy: Vec<_> = (0..2)
        .map(|_| {
            let url = h.url.clone();
            let sid = legacy_session(&url);
            std::thread::spawn(move || call(&url, &sid, "sleep", json!({"ms": 1500})).status)
        })
        .collect();
    wait_until("one call in flight and one queued in /metrics", PATIENCE, || {
        let (_, s) = scrape(&h);
        let depth = |name: &str| value(&s, name, &[("server", "slow"), ("queue", "calls")]);
        depth("mcphub_bulkhead_in_flight") == 1.0 && depth("mcphub_bulkhead_queued") == 1.0
    });
    let sid = legacy_session(&h.url);
    let refused = call(&h.url, &sid, "sleep", json!({"ms": 1}));
    assert_eq!(refused.status, 503, "{}", refused.text);
    for t in busy {
        assert_eq!(t.join().unwrap(), 200);
    }
    let (text, s) = scrape(&h);
    let rejections = |reason: &str| value(&s, "mcphub_bulkhead_rejections_total", &[("server", "slow"), ("queue", "calls"), ("reason", reason)]);
    assert_eq!((rejections("queue_full"), rejections("circuit_open")), (1.0, 0.0), "{text}");
    assert_eq!(value(&s, "mcphub_requests_total", &[("method", "tools/call"), ("outcome", "http_503")]), 1.0, "{text}");
    assert_eq!(value(&s, "mcphub_bulkhead_in_flight", &[("server", "slow")]), 0.0, "{text}");
}

#[test]
fn a_hub_deadline_counts_as_a_hub_timeout() {
    // 300 ms per upstream request: the cold catalog (probe, initialize,
    // tools/list) spends the hub budget, so less than timeoutMs is left.
    let up = mock_with(MockConfig { era: Era::Legacy, name: "s".into(), latency: std::time::Duration::from_millis(300), ..MockConfig::default() });
    let h = hub(&[], json!({"timeouts": {"hubMs": 2000}, "mcpServers": {"s": {"url": up.url, "timeoutMs": 1900}}}));
    let sid = legacy_session(&h.url);
    let r = call(&h.url, &sid, "sleep", json!({"ms": 4000}));
    assert_eq!((r.json()["error"]["code"].as_i64(), r.json()["error"]["data"]["layer"].as_str()), (Some(-32001), Some("hub")), "{}", r.text);
    let (text, s) = scrape(&h);
    assert_eq!((value(&s, "mcphub_timeouts_total", &[("layer", "hub")]), value(&s, "mcphub_timeouts_total", &[("layer", "upstream")])), (1.0, 0.0), "{text}");
}

#[test]
fn store_up_follows_redis() {
    let mut redis = redis_util::RedisServer::start();
    let up = mock(Era::Legacy, "a");
    // A rate limit kept in Redis: every request asks Redis, so an outage shows at once.
    let h = hub(&[("a", &up.url)], json!({"redis": {"url": redis.url()}, "rateLimits": {"global": {"perSecond": 1000}}}));
    let sid = legacy_session(&h.url);
    assert_eq!(call(&h.url, &sid, "echo", json!({"text": "x"})).status, 200);
    let (text, s) = scrape(&h);
    assert_eq!(value(&s, "mcphub_store_up", &[("kind", "redis")]), 1.0, "{text}");
    assert!(!text.contains(&redis.url()), "no Redis URL in /metrics");
    redis.stop();
    wait_until("mcphub_store_up 0 after Redis stopped", PATIENCE, || {
        let _ = call(&h.url, &sid, "echo", json!({"text": "y"}));
        let (_, s) = scrape(&h);
        value(&s, "mcphub_store_up", &[("kind", "redis")]) == 0.0
    });
}

/// The names of this process's threads as the kernel shows them (`comm`:
/// at most 15 bytes, so `mcphub-http-reactor` reads `mcphub-http-rea`).
fn thread_names() -> Vec<String> {
    let tasks = std::fs::read_dir("/proc/self/task").expect("Linux /proc");
    tasks.filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok()).map(|c| c.trim_end().to_string()).collect()
}

#[test]
fn threads_are_counted_by_kind_named_and_joined_at_shutdown() {
    let up = mock(Era::Legacy, "a");
    let h = hub(&[("a", &up.url)], json!({"workers": 3}));
    let sid = legacy_session(&h.url);
    assert_eq!(call(&h.url, &sid, "echo", json!({"text": "x"})).status, 200);
    let (text, s) = scrape(&h);
    for kind in ["http", "stream", "listen", "poller", "task", "call", "control", "process"] {
        assert!(s.iter().any(|x| x.name == "mcphub_threads" && x.labels.get("kind").map(String::as_str) == Some(kind)), "no {kind} row:\n{text}");
    }
    assert_eq!(value(&s, "mcphub_threads", &[("kind", "http")]), 6.0, "3 workers, reactor, rejecter, pinger:\n{text}");
    assert_eq!(value(&s, "mcphub_threads", &[("kind", "task")]), 0.0, "{text}");
    let names = thread_names();
    for name in ["mcphub-http-rea", "mcphub-http-rej", "mcphub-http-pin", "mcphub-http-wor"] {
        assert!(names.iter().any(|n| n == name), "no thread {name} in {names:?}");
    }

    // The server joins its threads in its drain; the hub's owner joins the rest.
    h.handle.shutdown();
    let after = parse(&h.hub.metrics().render(&h.hub.metrics_snapshot()));
    assert_eq!(value(&after, "mcphub_threads", &[("kind", "http")]), 0.0, "the drain joined the HTTP threads");
    let joined = h.hub.threads().shutdown_join(std::time::Instant::now() + std::time::Duration::from_secs(5));
    assert!(joined.blocked.is_empty(), "threads ignored the stop: {:?}", joined.blocked);
    assert!(h.hub.threads().stop_signal().is_stopped());
}

#[test]
fn with_redis_the_probe_users_poll_and_activity_writer_are_owned_pollers_that_stop_at_shutdown() {
    let redis = redis_util::RedisServer::start();
    let up = mock(Era::Legacy, "a");
    let h = hub(&[("a", &up.url)], json!({"redis": {"url": redis.url()}}));
    let sid = legacy_session(&h.url);
    assert_eq!(call(&h.url, &sid, "echo", json!({"text": "x"})).status, 200);
    let (text, s) = scrape(&h);
    assert_eq!(value(&s, "mcphub_threads", &[("kind", "poller")]), 4.0, "Redis probe, users reload, activity writer, cluster heartbeat:\n{text}");
    assert_eq!(value(&s, "mcphub_threads", &[("kind", "listen")]), 1.0, "the cluster bus subscriber (issue 20):\n{text}");
    h.handle.shutdown();
    let started = std::time::Instant::now();
    let joined = h.hub.threads().shutdown_join(started + std::time::Duration::from_secs(5));
    assert!(joined.blocked.is_empty(), "threads ignored the stop: {:?}", joined.blocked);
    for name in ["mcphub-redis-probe", "mcphub-users-reload", "mcphub-activity-writer", "mcphub-cluster-heartbeat", "mcphub-cluster-sub"] {
        assert!(joined.joined.iter().any(|n| n == name), "{name} not joined: {joined:?}");
    }
    // They sleep 0.1–1 s between rounds and the stop wakes them (the unit
    // tests of `Stop::sleep` check that; no wall-clock bound here, which a
    // loaded machine can miss).
    println!("pollers joined {:?} after the stop", started.elapsed());
    let after = parse(&h.hub.metrics().render(&h.hub.metrics_snapshot()));
    assert_eq!(value(&after, "mcphub_threads", &[("kind", "poller")]), 0.0);
}
