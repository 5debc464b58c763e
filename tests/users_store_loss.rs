//! The Redis user store, unreachable or lost (issue 14 holes 7 and 8), with
//! a real `redis-server` and the real binary:
//! - unreachable at start: a key this instance cannot check is 503 +
//!   `Retry-After` (not 401 "unknown or revoked"); config keys still work;
//!   once Redis answers, the run-time user's key works again;
//! - back empty: one ERROR line and `/readyz` `store.usersLost`; the users
//!   this instance knew are served from memory, nothing is written back, a
//!   revoked key or a deleted user never returns.

mod hub_util;
mod redis_util;

use hub_util::{send, wait_until, HubProcess, Reply, JSON};
use mcphub::users::{key_digest, new_key};
use redis_util::RedisServer;
use serde_json::{json, Value};
use std::time::Duration;

fn config(redis: &RedisServer, root: &str) -> Value {
    json!({"redis": {"url": redis.url()}, "users": {"root": {"keys": [key_digest(root)], "admin": true}}, "mcpServers": {}})
}

fn call(hub: &HubProcess, key: &str, method: &str, path: &str, body: Option<Value>) -> Reply {
    let url = format!("http://127.0.0.1:{}{path}", hub.port);
    let auth = format!("Bearer {key}");
    send(method, &url, &[JSON, ("Authorization", &auth)], &body.map(|b| b.to_string()).unwrap_or_default())
}

fn me(hub: &HubProcess, key: &str) -> u16 {
    call(hub, key, "GET", "/api/me", None).status
}

fn create_with_key(hub: &HubProcess, root: &str, name: &str) -> (String, String) {
    let r = call(hub, root, "POST", "/api/admin/users", Some(json!({"name": name})));
    assert_eq!(r.status, 201, "{}", r.text);
    let r = call(hub, root, "POST", &format!("/api/admin/users/{name}/keys"), None);
    assert_eq!(r.status, 201, "{}", r.text);
    let d = &r.json()["data"];
    (d["key"].as_str().unwrap().to_string(), d["id"].as_str().unwrap().to_string())
}

/// How long the hub may take to see Redis again.
const REDIS_BACK: Duration = Duration::from_secs(15);

fn initialize(hub: &HubProcess, key: &str) -> Reply {
    let body = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let auth = format!("Bearer {key}");
    send("POST", &hub.url(), &[JSON, hub_util::ACCEPT, ("Authorization", &auth)], &body.to_string())
}

#[test]
fn while_redis_is_unreachable_at_start_a_runtime_key_gets_503_not_401() {
    let mut redis = RedisServer::start();
    let root = new_key();
    let mut first = HubProcess::start("store-down-1", &config(&redis, &root));
    let (bob, _) = create_with_key(&first, &root, "bob");
    assert_eq!(me(&first, &bob), 200);
    first.terminate();
    let digest = key_digest(&bob);
    let saved = [
        ("mcp:user:bob".to_string(), redis.cli(&["GET", "mcp:user:bob"])),
        (format!("mcp:user-key:{digest}"), redis.cli(&["GET", &format!("mcp:user-key:{digest}")])),
        ("mcp:users:version".to_string(), redis.cli(&["GET", "mcp:users:version"])),
    ];
    assert!(saved[0].1.contains("\"bob\""), "bob's record: {saved:?}");
    redis.stop();

    let second = HubProcess::start("store-down-2", &config(&redis, &root));
    for (what, key) in [("bob's run-time key", bob.as_str()), ("a key nobody has", &new_key())] {
        let r = call(&second, key, "GET", "/api/me", None);
        assert_eq!(r.status, 503, "{what}: {}", r.text);
        assert!(r.header("retry-after").is_some(), "{what}: Retry-After");
        assert!(r.text.contains("user store"), "{what}: {}", r.text);
        let r = initialize(&second, key);
        assert_eq!(r.status, 503, "{what} on /mcp: {}", r.text);
        assert_eq!(r.header("retry-after"), Some("2"));
        assert!(r.text.contains("user store") && !r.text.contains(key), "{}", r.text);
    }
    assert_eq!(me(&second, &root), 200, "a key from the config file needs no Redis");
    assert_eq!(initialize(&second, &root).status, 200);

    // Redis back (with bob's records): the same key works, without a restart.
    redis.restart();
    for (k, v) in &saved {
        redis.cli(&["SET", k, v]);
    }
    redis.cli(&["SADD", "mcp:users", "bob"]);
    wait_until("bob's key to work once Redis answers", REDIS_BACK, || (me(&second, &bob) == 200).then_some(()));
    assert_eq!(me(&second, &new_key()), 401, "with Redis back, an unknown key is unknown");
    assert!(!second.log_text().contains(&bob), "the key never reaches the log");
}

#[test]
fn a_redis_back_empty_is_an_error_with_the_counts_and_resurrects_nothing() {
    let mut redis = RedisServer::start();
    let root = new_key();
    let hub = HubProcess::start("store-lost", &config(&redis, &root));
    let (bob1, _) = create_with_key(&hub, &root, "bob");
    let r = call(&hub, &root, "POST", "/api/admin/users/bob/keys", None);
    assert_eq!(r.status, 201, "{}", r.text);
    let (bob2, bob2_id) = (r.json()["data"]["key"].as_str().unwrap().to_string(), r.json()["data"]["id"].as_str().unwrap().to_string());
    assert_eq!(call(&hub, &root, "DELETE", &format!("/api/admin/users/bob/keys/{bob2_id}"), None).status, 200);
    let (dave, _) = create_with_key(&hub, &root, "dave");
    assert_eq!(call(&hub, &root, "DELETE", "/api/admin/users/dave", None).status, 200);
    assert_eq!((me(&hub, &bob1), me(&hub, &bob2), me(&hub, &dave)), (200, 401, 401));

    redis.restart(); // no persistence: it comes back empty
    let ready_url = format!("http://127.0.0.1:{}/readyz", hub.port);
    let lost = wait_until("/readyz store.usersLost", REDIS_BACK, || {
        let v: Value = serde_json::from_str(&send("GET", &ready_url, &[], "").text).ok()?;
        v["store"].get("usersLost").cloned()
    });
    assert_eq!((lost["users"].as_u64(), lost["keys"].as_u64(), lost["servedFromMemory"].as_u64()), (Some(1), Some(1), Some(1)), "{lost}");
    let log = hub.log_text();
    let line = log.lines().find(|l| l.contains("came back empty")).unwrap_or_else(|| panic!("no loss line: {log}"));
    assert!(line.contains("ERROR") && line.contains("1 users with 1 keys"), "{line}");

    // Served from memory; nothing revoked or deleted comes back; nothing written back.
    assert_eq!((me(&hub, &bob1), me(&hub, &bob2), me(&hub, &dave)), (200, 401, 401));
    assert_eq!(redis.cli(&["EXISTS", "mcp:user:bob"]), "0");
    assert_eq!(redis.cli(&["EXISTS", &format!("mcp:user-key:{}", key_digest(&bob2))]), "0");
    let r = call(&hub, &root, "POST", "/api/admin/users/bob/keys", None);
    assert_eq!(r.status, 409, "a lost user is read-only: {}", r.text);
    assert!(r.text.contains("lost from Redis"), "{}", r.text);

    // Creating bob again supersedes the memory copy: his old key ends.
    let r = call(&hub, &root, "POST", "/api/admin/users", Some(json!({"name": "bob"})));
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(me(&hub, &bob1), 401, "the lost copy's key ends once bob is stored again");
    let v: Value = serde_json::from_str(&send("GET", &ready_url, &[], "").text).unwrap();
    assert_eq!(v["store"]["usersLost"]["servedFromMemory"], 0, "{v}");
    assert_eq!(v["store"]["usersLost"]["users"], 1, "the count of what was lost stays: {v}");
}

#[test]
fn without_config_users_a_keyless_request_is_503_until_the_store_is_read_then_a_runtime_user_requires_a_key() {
    let mut redis = RedisServer::start();
    let admin_token = new_key();
    let config = json!({"redis": {"url": redis.url()}, "adminToken": admin_token, "mcpServers": {}});
    let mut first = HubProcess::start("keyless-1", &config);
    let r = call(&first, &admin_token, "POST", "/api/admin/users", Some(json!({"name": "bob"})));
    assert_eq!(r.status, 201, "{}", r.text);
    first.terminate();
    let saved: Vec<(String, String)> =
        ["mcp:user:bob", "mcp:users:version"].iter().map(|k| (k.to_string(), redis.cli(&["GET", k]))).collect();
    assert!(saved[0].1.contains("\"bob\""), "bob's record: {saved:?}");
    redis.stop();

    // Redis down at start, no users in the file: bob may exist, so no key is not "anonymous".
    let second = HubProcess::start("keyless-2", &config);
    let keyless = || send("POST", &second.url(), &[JSON, hub_util::ACCEPT], &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}).to_string());
    let r = keyless();
    assert_eq!(r.status, 503, "no key while run-time users cannot be read: {}", r.text);
    assert_eq!(r.header("retry-after"), Some("2"));
    assert!(r.text.contains("user store") && r.text.contains("whether one is needed"), "{}", r.text);

    // Redis back with bob: a key is required (401), not 200 anonymous.
    redis.restart();
    for (k, v) in &saved {
        redis.cli(&["SET", k, v]);
    }
    redis.cli(&["SADD", "mcp:users", "bob"]);
    let r = wait_until("the key-less request to be decided once Redis answers", REDIS_BACK, || Some(keyless()).filter(|r| r.status != 503));
    assert_eq!(r.status, 401, "bob exists: a key is required: {}", r.text);
    assert!(r.text.contains("an MCPHub key is required"), "{}", r.text);
}

#[test]
fn without_any_users_a_keyless_request_is_served_once_the_empty_store_is_read() {
    let redis = RedisServer::start();
    let hub = HubProcess::start("keyless-empty", &json!({"redis": {"url": redis.url()}, "mcpServers": {}}));
    let body = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let r = wait_until("the empty store to be read", REDIS_BACK, || Some(send("POST", &hub.url(), &[JSON, hub_util::ACCEPT], &body.to_string())).filter(|r| r.status != 503));
    assert_eq!(r.status, 200, "no users anywhere: served without a key: {}", r.text);
}
