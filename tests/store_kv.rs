//! `store::kv::Kv` against a real `redis-server` (issue 18): each operation,
//! the key names and types `redis-cli` sees, and expiry (awaited by polling).

mod redis_util;
mod wait_util;

use mcphub::config::RedisConfig;
use mcphub::store::kv::{Kv, KvError};
use mcphub::store::redis::RedisStore;
use redis_util::RedisServer;
use std::time::Duration;
use wait_util::wait_until;

const MIN: Duration = Duration::from_secs(60);

fn kv(server: &RedisServer) -> Kv {
    Kv::new(Some(RedisStore::new(&RedisConfig::new(server.url())).expect("a valid URL")))
}

#[test]
fn strings_sets_hashes_and_bounded_lists_in_redis() {
    let server = RedisServer::start();
    let kv = kv(&server);
    assert_eq!(kv.kind(), "redis");
    // Strings.
    kv.set("t:s", "v1", MIN).unwrap();
    assert_eq!(server.cli(&["GET", "t:s"]), "v1");
    let ttl: u64 = server.cli(&["PTTL", "t:s"]).parse().unwrap();
    assert!((1..=60_000).contains(&ttl), "{ttl}");
    assert_eq!(kv.get("t:s").unwrap().as_deref(), Some("v1"));
    assert!(!kv.set_nx("t:s", "v2", MIN).unwrap());
    assert!(kv.set_nx("t:n", "v2", MIN).unwrap());
    assert_eq!(kv.take("t:s").unwrap().as_deref(), Some("v1"));
    assert_eq!(kv.take("t:s").unwrap(), None);
    kv.del(&["t:n".to_string(), "t:none".to_string()]).unwrap();
    kv.del(&[]).unwrap();
    assert_eq!(kv.get("t:n").unwrap(), None);
    // Sets: SADD + PEXPIRE together.
    kv.set_add("t:set", "a", MIN).unwrap();
    kv.set_add("t:set", "b", MIN).unwrap();
    assert_eq!(server.cli(&["TYPE", "t:set"]), "set");
    assert!(server.cli(&["PTTL", "t:set"]).parse::<i64>().unwrap() > 0);
    let mut m = kv.set_members("t:set").unwrap();
    m.sort();
    assert_eq!(m, ["a", "b"]);
    kv.set_remove("t:set", "a").unwrap();
    assert_eq!(kv.set_members("t:set").unwrap(), ["b"]);
    assert!(kv.set_members("t:none").unwrap().is_empty());
    // Hashes: HSET + PEXPIRE together.
    kv.hash_set("t:h", "f", "1", MIN).unwrap();
    kv.hash_set("t:h", "g", "2", MIN).unwrap();
    assert_eq!(server.cli(&["TYPE", "t:h"]), "hash");
    assert!(server.cli(&["PTTL", "t:h"]).parse::<i64>().unwrap() > 0);
    assert_eq!(kv.hash_get("t:h", "f").unwrap().as_deref(), Some("1"));
    let mut all = kv.hash_all("t:h").unwrap();
    all.sort();
    assert_eq!(all, [("f".to_string(), "1".to_string()), ("g".to_string(), "2".to_string())]);
    kv.hash_del("t:h", "f").unwrap();
    assert_eq!(kv.hash_get("t:h", "f").unwrap(), None);
    assert!(kv.hash_all("t:none").unwrap().is_empty());
    // A bounded list: a sorted set scored by expiry.
    let now = mcphub::store::now_ms();
    assert!(kv.bounded_add("t:l", "a", now + 60_000, 2).unwrap());
    assert!(kv.bounded_add("t:l", "b", now + 60_000, 2).unwrap());
    assert!(!kv.bounded_add("t:l", "c", now + 60_000, 2).unwrap(), "full");
    assert!(kv.bounded_add("t:l", "a", now + 120_000, 2).unwrap(), "a member in is updated");
    assert_eq!(server.cli(&["ZSCORE", "t:l", "a"]), (now + 120_000).to_string());
    kv.bounded_remove("t:l", "b").unwrap();
    assert!(kv.bounded_add("t:l", "c", now + 300, 2).unwrap());
    assert!(!kv.bounded_add("t:l", "d", now + 60_000, 2).unwrap());
    wait_until("c's expiry to free a place", Duration::from_secs(10), || kv.bounded_add("t:l", "d", now + 60_000, 2).unwrap());
    assert_eq!(server.cli(&["ZCARD", "t:l"]), "2");
}

#[test]
fn entries_expire_in_redis() {
    let server = RedisServer::start();
    let kv = kv(&server);
    let short = Duration::from_millis(200);
    kv.set("e:s", "v", short).unwrap();
    kv.set_add("e:set", "m", short).unwrap();
    kv.hash_set("e:h", "f", "v", short).unwrap();
    wait_until("the entries to expire", Duration::from_secs(10), || {
        kv.get("e:s").unwrap().is_none() && kv.set_members("e:set").unwrap().is_empty() && kv.hash_get("e:h", "f").unwrap().is_none()
    });
    assert!(kv.set_nx("e:s", "again", MIN).unwrap());
}

#[test]
fn a_stopped_redis_is_unavailable() {
    let mut server = RedisServer::start();
    let kv = kv(&server);
    kv.set("u:s", "secret-value-42", MIN).unwrap();
    server.stop();
    match kv.get("u:s") {
        Err(KvError::Unavailable(e)) => assert!(!e.contains("secret-value-42"), "{e}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}
