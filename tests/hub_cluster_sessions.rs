//! Client sessions shared by hub instances through one Redis (issue 20,
//! docs/cluster.md §1): two `Hub`s on a real `redis-server` this test starts on a
//! free port (and stops); the upstream is scripted (no socket).
//! A session minted by one instance is served by the other (same user check),
//! a DELETE on one ends it on the other within the re-validation bound, the
//! log level set on one is honoured on the other; with Redis down, sessions
//! are created and served from memory and written once Redis is back; a
//! record Redis lost (not a DELETE) is written again by the instance holding
//! the session, so the client carries on through any instance.

mod core_util;
mod redis_util;

use core_util::*;
use mcphub::hub::sessions::{record_key, ENDED, REVALIDATE};
use redis_util::RedisServer;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const ALICE: &str = "mcphub_alice_key_for_cluster_tests_0001";
const BOB: &str = "mcphub_bob_key_for_cluster_tests_00002";


/// A hub on `redis` with users alice and bob.
fn instance(redis: &RedisServer) -> Hub {
    let extra = json!({
        "redis": {"url": redis.url()},
        "users": {"alice": user_with_key(ALICE), "bob": user_with_key(BOB)},
    });
    hub_with_servers(extra, vec![("log", json!({"protocol": "legacy"}), logging_server())]).0
}

type Hub = mcphub::hub::Hub;

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// A legacy request on `sid` as the owner of `key`.
fn call_as(hub: &Hub, key: &str, sid: &str, method: &str, params: Value) -> Answer {
    let auth = bearer(key);
    let mut h = legacy_headers(sid);
    h.push(("Authorization", &auth));
    post(hub, &mcphub::protocol::jsonrpc::request(&json!(1), method, params).to_string(), &h)
}

/// The log lines a `say` call on `hub` relays to the session.
fn said(hub: &Hub, sid: &str, marker: &str) -> Vec<String> {
    let a = call_as(hub, ALICE, sid, "tools/call", json!({"name": "say", "arguments": {"marker": marker}}));
    assert_eq!(a.status, 200, "{}", a.text);
    let events = a.events();
    assert_eq!(events.last().unwrap()["result"]["content"][0]["text"], marker, "{}", a.text);
    events.iter().filter(|e| e["method"] == "notifications/message").map(|e| e["params"]["data"].as_str().unwrap().to_string()).collect()
}

#[test]
fn a_session_minted_by_one_instance_is_served_by_another_and_ends_on_both() {
    let redis = RedisServer::start();
    let (one, two) = (instance(&redis), instance(&redis));
    let auth = bearer(ALICE);
    let sid = legacy_session_with(&one, &[("Authorization", &auth)]);

    // The record: under the id's digest, never the id; the user; TTL = idle (3600 s).
    let key = record_key(&sid);
    let record: Value = serde_json::from_str(&redis.cli(&["GET", &key])).expect("a JSON record in Redis");
    assert_eq!((record["v"].clone(), record["user"].clone(), record["protocolVersion"].clone()), (json!(1), json!("alice"), json!("2025-06-18")));
    let ttl: i64 = redis.cli(&["PTTL", &key]).parse().unwrap();
    assert!((3_500_000..=3_600_000).contains(&ttl), "TTL near the idle timeout: {ttl}");
    let keys = redis.cli(&["KEYS", "*"]);
    assert!(!keys.contains(&sid), "no key holds the raw session id: {keys}");

    // tools/list and tools/call on the other instance, same session id.
    let list = call_as(&two, ALICE, &sid, "tools/list", json!({}));
    assert_eq!(list.status, 200, "{}", list.text);
    let names: Vec<Value> = list.json()["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].clone()).collect();
    assert!(names.contains(&json!("say")), "{}", list.text);
    assert_eq!(said(&two, &sid, "on-two").len(), 4, "every level relayed before any setLevel");
    assert!(metric(&two, "mcphub_client_sessions_loaded_total").ends_with(" 1"), "{}", metric(&two, "mcphub_client_sessions_loaded_total"));
    assert!(metric(&one, "mcphub_client_sessions_written_total").ends_with(" 1"));

    // Another user's key with that id: not found on either instance (never access).
    assert_eq!(call_as(&two, BOB, &sid, "tools/list", json!({})).status, 404);
    assert_eq!(call_as(&one, BOB, &sid, "tools/list", json!({})).status, 404);

    // logging/setLevel on two is honoured on one (which holds the session):
    // written through, re-read within the re-validation bound.
    let set = call_as(&two, ALICE, &sid, "logging/setLevel", json!({"level": "error"}));
    assert_eq!(set.json()["result"], json!({}), "{}", set.text);
    let record: Value = serde_json::from_str(&redis.cli(&["GET", &key])).unwrap();
    assert_eq!(record["logLevel"], "error");
    assert_eq!(said(&two, &sid, "two"), ["two:error"]);
    let started = Instant::now();
    wait_until("instance one to honour the level set on two", REVALIDATE + Duration::from_secs(5), || said(&one, &sid, "one") == ["one:error"]);
    assert!(started.elapsed() <= REVALIDATE + Duration::from_secs(2), "{:?}", started.elapsed());

    // DELETE on two: the record becomes a tombstone, one answers 404 within the bound.
    let mut h = legacy_headers(&sid);
    h.push(("Authorization", &auth));
    assert_eq!(delete(&two, &h).status, 200);
    assert_eq!(redis.cli(&["GET", &key]), ENDED, "a tombstone, not a record");
    let started = Instant::now();
    wait_until("instance one to refuse the deleted session", REVALIDATE + Duration::from_secs(5), || {
        call_as(&one, ALICE, &sid, "tools/list", json!({})).status == 404
    });
    assert!(started.elapsed() <= REVALIDATE + Duration::from_secs(2), "{:?}", started.elapsed());
    assert_eq!(call_as(&two, ALICE, &sid, "tools/list", json!({})).status, 404);
}

#[test]
fn with_redis_down_sessions_live_in_memory_and_are_written_when_it_is_back() {
    let mut redis = RedisServer::start();
    let one = instance(&redis);
    redis.stop();
    let auth = bearer(ALICE);
    let sid = legacy_session_with(&one, &[("Authorization", &auth)]);
    assert_eq!(call_as(&one, ALICE, &sid, "tools/list", json!({})).status, 200, "served from memory");
    assert_eq!(said(&one, &sid, "down").len(), 4);
    assert!(metric(&one, "mcphub_client_session_write_failures_total").ends_with(" 1"), "{}", metric(&one, "mcphub_client_session_write_failures_total"));

    redis.restart(); // empty
    let key = record_key(&sid);
    let raw = wait_until("the session's record to be written once Redis is back", Duration::from_secs(10), || {
        Some(redis.cli(&["GET", &key])).filter(|r| !r.is_empty())
    });
    let record: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(record["user"], "alice");
    // And another instance serves it now.
    let two = instance(&redis);
    assert_eq!(call_as(&two, ALICE, &sid, "tools/list", json!({})).status, 200);
    assert_eq!(call_as(&one, ALICE, &sid, "tools/list", json!({})).status, 200);
}

#[test]
fn a_record_redis_lost_is_written_again_by_the_instance_holding_the_session() {
    let redis = RedisServer::start();
    let (one, two) = (instance(&redis), instance(&redis));
    let auth = bearer(ALICE);
    let sid = legacy_session_with(&one, &[("Authorization", &auth)]);
    let key = record_key(&sid);
    // Redis loses everything (a failover that dropped the last writes, a restart without data).
    assert_eq!(redis.cli(&["FLUSHALL"]), "OK");
    // The holder notices at its next re-validation and writes its copy again.
    let started = Instant::now();
    let raw = wait_until("instance one to write the lost record again", REVALIDATE + Duration::from_secs(5), || {
        assert_eq!(call_as(&one, ALICE, &sid, "tools/list", json!({})).status, 200, "the holder keeps serving the session");
        Some(redis.cli(&["GET", &key])).filter(|r| !r.is_empty())
    });
    assert!(started.elapsed() <= REVALIDATE + Duration::from_secs(2), "{:?}", started.elapsed());
    let record: Value = serde_json::from_str(&raw).expect("a record, not a tombstone");
    assert_eq!(record["user"], "alice");
    assert!(metric(&one, "mcphub_client_sessions_restored_total").ends_with(" 1"), "{}", metric(&one, "mcphub_client_sessions_restored_total"));
    // So the other instance serves it: no 404, no re-initialization.
    assert_eq!(call_as(&two, ALICE, &sid, "tools/list", json!({})).status, 200);
}
