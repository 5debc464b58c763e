//! Rate limits at three levels (issue 6, docs/decisions.md D7):
//! global, per user, per server, each answered 429 + `Retry-After` + the
//! note's JSON-RPC error; two hub instances on one Redis share one limit;
//! with Redis stopped the limits still hold, per instance. The global and
//! per-user limits of one instance are also tested without a socket in
//! tests/core_ratelimit.rs.
//!
//! Requests are 2026-07-28 (stateless: one request is one POST, nothing
//! else counts). Limits are per minute where a request reaches an upstream
//! (so a slow first call cannot let a token refill and the counts are exact);
//! the per-second global limit is driven by `server/discover`, which the hub
//! answers itself.

mod hub_util;
mod redis_util;

use hub_util::{hub, mock, send, HubUnderTest, Mock, Reply, ACCEPT, JSON};
use mcphub_mock::Era;
use mcphub::users::{key_digest, new_key};
use redis_util::RedisServer;
use serde_json::{json, Value};

/// A 2026-07-28 request (`id` "m1"), with `key` as Bearer when given.
fn request(url: &str, key: Option<&str>, method: &str, mut params: Value) -> Reply {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "ratelimit-test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}
    });
    let body = json!({"jsonrpc": "2.0", "id": "m1", "method": method, "params": params}).to_string();
    let mut h = vec![ACCEPT, JSON, ("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", method)];
    let name = params.get("name").and_then(Value::as_str).map(mcphub::protocol::headers::encode_value).unwrap_or_default();
    if mcphub::protocol::headers::name_field(method).is_some() {
        h.push(("Mcp-Name", &name));
    }
    let bearer = key.map(|k| format!("Bearer {k}"));
    if let Some(b) = &bearer {
        h.push(("Authorization", b));
    }
    send("POST", url, &h, &body)
}

fn discover(url: &str) -> Reply {
    request(url, None, "server/discover", json!({}))
}

fn call(url: &str, key: Option<&str>, tool: &str) -> Reply {
    request(url, key, "tools/call", json!({"name": tool, "arguments": {"text": "hi"}}))
}

/// Asserts `r` is the documented 429 of `scope` (and `server`); returns
/// `retry_after_seconds`, which equals the `Retry-After` header.
fn assert_limited(r: &Reply, scope: &str, server: Option<&str>) -> u64 {
    assert_eq!(r.status, 429, "{}", r.text);
    let header: u64 = r.header("retry-after").expect("Retry-After").parse().expect("whole seconds");
    assert!(header >= 1, "Retry-After {header}");
    let mut data = json!({"retry_after_seconds": header, "scope": scope});
    if let Some(s) = server {
        data["server"] = json!(s);
    }
    assert_eq!(
        r.json(),
        json!({"jsonrpc": "2.0", "id": "m1", "error": {"code": -32000, "message": "Rate limit exceeded", "data": data}})
    );
    header
}

fn assert_ok(r: &Reply, what: &str) {
    assert_eq!(r.status, 200, "{what}: {}", r.text);
    assert!(r.json().get("result").is_some(), "{what}: {}", r.text);
}

#[test]
fn user_limit_applies_to_that_user_only() {
    let m = mock(Era::Dual, "a");
    let (alice, bob) = (new_key(), new_key());
    let user = |k: &str| json!({"keys": [format!("sha256:{}", key_digest(k))]});
    let h = hub(
        &[("a", &m.url)],
        json!({"users": {"alice": user(&alice), "bob": user(&bob)}, "rateLimits": {"perUser": {"perMinute": 2, "burst": 2}}}),
    );
    assert_ok(&call(&h.url, Some(&alice), "echo"), "alice 1");
    assert_ok(&call(&h.url, Some(&alice), "echo"), "alice 2");
    let secs = assert_limited(&call(&h.url, Some(&alice), "echo"), "user", None);
    assert!((1..=60).contains(&secs), "two per minute: {secs} s");
    assert_ok(&call(&h.url, Some(&bob), "echo"), "bob 1");
    assert_ok(&call(&h.url, Some(&bob), "echo"), "bob 2 (alice's limit is hers)");
    assert_limited(&request(&h.url, Some(&alice), "tools/list", json!({})), "user", None);
}

#[test]
fn server_limit_refuses_calls_to_that_server_only() {
    let (a, b) = (mock(Era::Dual, "a"), mock(Era::Dual, "b"));
    let h = hub(
        &[],
        json!({
            "toolNaming": "prefix",
            "rateLimits": {"perServer": {"perMinute": 1, "burst": 2}},
            "mcpServers": {
                "a": {"url": a.url, "timeoutMs": 5000},
                "b": {"url": b.url, "timeoutMs": 5000, "rateLimit": {"perSecond": 100, "burst": 100}},
            },
        }),
    );
    assert_ok(&call(&h.url, None, "a__echo"), "a 1");
    assert_ok(&call(&h.url, None, "a__echo"), "a 2");
    let secs = assert_limited(&call(&h.url, None, "a__echo"), "server", Some("a"));
    assert!((1..=60).contains(&secs), "one per minute: {secs} s");
    for n in 1..=5 {
        assert_ok(&call(&h.url, None, "b__echo"), &format!("b {n} (its own rateLimit)"));
    }
    assert_ok(&request(&h.url, None, "tools/list", json!({})), "lists are not calls to one server");
    assert_limited(&call(&h.url, None, "a__echo"), "server", Some("a"));
}

fn redis_hub(m: &Mock, redis: &RedisServer, limits: Value) -> HubUnderTest {
    hub(&[("a", &m.url)], json!({"redis": {"url": redis.url()}, "rateLimits": limits}))
}

#[test]
fn two_instances_on_one_redis_share_one_limit() {
    let redis = RedisServer::start();
    let m = mock(Era::Dual, "a");
    let limits = json!({"global": {"perMinute": 1, "burst": 4}});
    let (h1, h2) = (redis_hub(&m, &redis, limits.clone()), redis_hub(&m, &redis, limits));
    for (n, h) in [&h1, &h2, &h1, &h2].into_iter().enumerate() {
        assert_ok(&discover(&h.url), &format!("request {} of the shared burst of 4", n + 1));
    }
    assert_limited(&discover(&h1.url), "global", None);
    assert_limited(&discover(&h2.url), "global", None);
    assert_eq!(redis.cli(&["EXISTS", "mcp:ratelimit:global:all"]), "1");
    let pttl: i64 = redis.cli(&["PTTL", "mcp:ratelimit:global:all"]).parse().unwrap();
    assert!(pttl > 0, "the TAT key expires (PTTL {pttl})");
}

#[test]
fn with_redis_stopped_limits_hold_per_instance() {
    let mut redis = RedisServer::start();
    let m = mock(Era::Dual, "a");
    let h = redis_hub(&m, &redis, json!({"global": {"perMinute": 1, "burst": 3}}));
    assert_ok(&discover(&h.url), "a request counted in Redis");
    redis.stop();
    for n in 1..=3 {
        assert_ok(&discover(&h.url), &format!("request {n} with Redis down (local burst of 3)"));
    }
    assert_limited(&discover(&h.url), "global", None);
    assert_limited(&discover(&h.url), "global", None);
}
