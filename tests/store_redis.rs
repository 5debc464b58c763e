//! The Redis session store against a real `redis-server` (issue 4):
//! the key format `redis-cli` sees, compare-and-delete, locks, listing, and
//! the circuit breaker across a stop and a restart.

mod redis_util;
mod wait_util;

use mcphub::config::RedisConfig;
use mcphub::store::redis::RedisStore;
use mcphub::store::{Health, LockToken, SessionMeta, SessionRecord, SessionStore, StoreError};
use redis_util::RedisServer;
use wait_util::wait_until;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn store(url: &str) -> RedisStore {
    RedisStore::new(&RedisConfig::new(url)).expect("a valid URL")
}

fn rec(id: &str) -> SessionRecord {
    SessionRecord {
        session_id: id.into(),
        meta: SessionMeta {
            protocol_version: "2025-06-18".into(),
            created_ms: 1_700_000_000_000,
            init_result: json!({"serverInfo": {"name": "srv", "version": "1"}, "capabilities": {"tools": {}}}),
        },
    }
}

const HOUR: Duration = Duration::from_secs(3600);

/// Waits (≤ 10 s) until `health()` is `Up`; fails naming `after`.
fn wait_up(s: &RedisStore, after: &str) {
    wait_until(&format!("the store's health to be Up {after}"), Duration::from_secs(10), || s.health() == Health::Up);
}

/// 8 threads × 50 get/touch pairs at once, all of which must succeed.
fn hammer(s: &RedisStore) {
    std::thread::scope(|scope| {
        for t in 0..8 {
            scope.spawn(move || {
                for i in 0..50 {
                    let ctx = format!("tok:{t}-{i}");
                    assert_eq!(s.get("load", &ctx).unwrap(), None);
                    assert!(!s.touch("load", &ctx, HOUR).unwrap());
                }
            });
        }
    });
}

fn unavailable<T: std::fmt::Debug>(r: Result<T, StoreError>) -> String {
    match r {
        Err(StoreError::Unavailable(e)) => e,
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[test]
fn a_put_record_reads_back_and_redis_cli_sees_the_bare_id_with_its_ttl() {
    let r = RedisServer::start();
    let s = store(&r.url());
    assert_eq!(s.kind(), "redis");
    assert_eq!(s.get("srv", "shared").unwrap(), None);
    s.put("srv", "shared", &rec("sess-1"), HOUR).unwrap();
    assert_eq!(s.get("srv", "shared").unwrap(), Some(rec("sess-1")));
    assert_eq!(r.cli(&["GET", "mcp:upstream:session:srv:shared"]), "sess-1");
    let ttl: i64 = r.cli(&["TTL", "mcp:upstream:session:srv:shared"]).parse().unwrap();
    assert!((3590..=3600).contains(&ttl), "{ttl}");
    let meta_ttl: i64 = r.cli(&["TTL", "mcp:upstream:session-meta:srv:shared"]).parse().unwrap();
    assert!((3590..=3600).contains(&meta_ttl), "{meta_ttl}");
    let meta: serde_json::Value = serde_json::from_str(&r.cli(&["GET", "mcp:upstream:session-meta:srv:shared"])).unwrap();
    assert_eq!(meta["protocolVersion"], "2025-06-18");
    assert_eq!(meta["initResult"]["serverInfo"]["name"], "srv");
    // A second put replaces the record.
    s.put("srv", "shared", &rec("sess-2"), HOUR).unwrap();
    assert_eq!(r.cli(&["GET", "mcp:upstream:session:srv:shared"]), "sess-2");
    assert_eq!(s.health(), Health::Up);
}

#[test]
fn a_missing_or_broken_meta_key_gives_defaults() {
    let r = RedisServer::start();
    let s = store(&r.url());
    assert_eq!(r.cli(&["SET", "mcp:upstream:session:srv:shared", "bare-id"]), "OK");
    let got = s.get("srv", "shared").unwrap().expect("the record");
    assert_eq!(got.session_id, "bare-id");
    assert_eq!(got.meta.protocol_version, mcphub::protocol::LATEST_LEGACY);
    assert_eq!((got.meta.created_ms, got.meta.init_result), (0, json!({})));
    r.cli(&["SET", "mcp:upstream:session-meta:srv:shared", "{not json"]);
    let got = s.get("srv", "shared").unwrap().expect("the record");
    assert_eq!(got.meta.protocol_version, mcphub::protocol::LATEST_LEGACY);
}

#[test]
fn touch_extends_both_keys_and_reports_a_missing_record() {
    let r = RedisServer::start();
    let s = store(&r.url());
    assert!(!s.touch("srv", "shared", HOUR).unwrap(), "nothing to touch");
    s.put("srv", "shared", &rec("sess-1"), Duration::from_secs(30)).unwrap();
    assert!(s.touch("srv", "shared", HOUR).unwrap());
    for key in ["mcp:upstream:session:srv:shared", "mcp:upstream:session-meta:srv:shared"] {
        let ttl: i64 = r.cli(&["TTL", key]).parse().unwrap();
        assert!(ttl > 30, "{key}: {ttl}");
    }
    r.cli(&["FLUSHALL"]);
    assert!(!s.touch("srv", "shared", HOUR).unwrap(), "the store was emptied");
}

#[test]
fn delete_if_deletes_only_the_session_it_names() {
    let r = RedisServer::start();
    let s = store(&r.url());
    s.put("srv", "shared", &rec("new"), HOUR).unwrap();
    assert!(!s.delete_if("srv", "shared", "old").unwrap(), "a stale id does not delete the new session");
    assert_eq!(r.cli(&["GET", "mcp:upstream:session:srv:shared"]), "new");
    assert!(s.delete_if("srv", "shared", "new").unwrap());
    assert_eq!(r.cli(&["EXISTS", "mcp:upstream:session:srv:shared", "mcp:upstream:session-meta:srv:shared"]), "0");
    assert!(!s.delete_if("srv", "shared", "new").unwrap(), "already gone");
}

#[test]
fn delete_returns_what_was_there_and_removes_both_keys() {
    let r = RedisServer::start();
    let s = store(&r.url());
    assert_eq!(s.delete("srv", "shared").unwrap(), None);
    s.put("srv", "shared", &rec("sess-1"), HOUR).unwrap();
    assert_eq!(s.delete("srv", "shared").unwrap(), Some(rec("sess-1")));
    assert_eq!(r.cli(&["EXISTS", "mcp:upstream:session:srv:shared", "mcp:upstream:session-meta:srv:shared"]), "0");
}

#[test]
fn a_lock_excludes_others_and_only_its_token_releases_it() {
    let r = RedisServer::start();
    let s = store(&r.url());
    let other = store(&r.url()); // a second hub instance
    let t = s.try_lock("srv", "shared", Duration::from_secs(5)).unwrap().expect("free");
    assert_eq!(r.cli(&["GET", "mcp:upstream:lock:srv:shared"]), t.0);
    let pttl: i64 = r.cli(&["PTTL", "mcp:upstream:lock:srv:shared"]).parse().unwrap();
    assert!((1..=5000).contains(&pttl), "{pttl}");
    assert_eq!(other.try_lock("srv", "shared", Duration::from_secs(5)).unwrap(), None);
    other.unlock("srv", "shared", &LockToken("someone-else".into())).unwrap();
    assert_eq!(other.try_lock("srv", "shared", Duration::from_secs(5)).unwrap(), None, "a wrong token releases nothing");
    s.unlock("srv", "shared", &t).unwrap();
    let t2 = other.try_lock("srv", "shared", Duration::from_secs(5)).unwrap().expect("released");
    assert_ne!(t, t2);
    // Locks are per (server, context).
    assert!(s.try_lock("srv", "tok:abc", Duration::from_secs(5)).unwrap().is_some());
}

#[test]
fn list_returns_sessions_with_ttls_and_skips_other_keys() {
    let r = RedisServer::start();
    let s = store(&r.url());
    assert_eq!(s.list().unwrap(), vec![]);
    s.put("srv", "tok:abc", &rec("s-tok"), HOUR).unwrap();
    s.put("srv", "shared", &rec("s-shared"), HOUR).unwrap();
    s.put("alpha", "shared", &rec("s-alpha"), Duration::from_secs(100)).unwrap();
    s.try_lock("srv", "shared", Duration::from_secs(30)).unwrap().expect("free");
    r.cli(&["SET", "mcp:upstream:session:beta:shared", "no-expiry"]);
    r.cli(&["SET", "mcp:upstream:session:nocontext", "x"]); // not a session key
    r.cli(&["HSET", "mcp:upstream:session:gamma:shared", "f", "v"]); // wrong type: skipped
    r.cli(&["SET", "unrelated", "x"]);
    let listed = s.list().unwrap();
    let got: Vec<(&str, &str, &str)> =
        listed.iter().map(|l| (l.server_name.as_str(), l.context_key.as_str(), l.session_id.as_str())).collect();
    assert_eq!(
        got,
        vec![
            ("alpha", "shared", "s-alpha"),
            ("beta", "shared", "no-expiry"),
            ("srv", "shared", "s-shared"),
            ("srv", "tok:abc", "s-tok"),
        ]
    );
    assert!(listed[0].ttl.is_some_and(|t| (90..=100).contains(&t)), "{:?}", listed[0].ttl);
    assert_eq!(listed[1].ttl, None, "no expiry");
    assert!(listed[3].ttl.is_some_and(|t| t > 3500), "{:?}", listed[3].ttl);
    assert_eq!(s.health(), Health::Up);
}

#[test]
fn list_iterates_scan_to_the_end() {
    let r = RedisServer::start();
    let s = store(&r.url());
    for i in 0..250 {
        s.put("srv", &format!("tok:{i:04}"), &rec(&format!("id-{i}")), HOUR).unwrap();
    }
    let listed = s.list().unwrap();
    assert_eq!(listed.len(), 250);
    assert_eq!(listed[0].context_key, "tok:0000");
    assert_eq!(listed[249].session_id, "id-249");
}

#[test]
fn a_wrong_type_is_an_error_that_leaves_the_breaker_closed() {
    let r = RedisServer::start();
    let s = store(&r.url());
    r.cli(&["HSET", "mcp:upstream:session:srv:shared", "f", "v"]);
    assert!(matches!(s.get("srv", "shared"), Err(StoreError::Other(_))), "{:?}", s.get("srv", "shared"));
    assert_eq!(s.health(), Health::Up);
    // The connection is still usable afterwards.
    s.put("srv", "other", &rec("ok"), HOUR).unwrap();
    assert_eq!(s.get("srv", "other").unwrap(), Some(rec("ok")));
}

#[test]
fn the_breaker_opens_when_redis_stops_and_closes_when_it_is_back() {
    let mut r = RedisServer::start();
    let s = store(&r.url());
    let recovered = Arc::new(AtomicUsize::new(0));
    let counter = recovered.clone();
    s.on_recovered(Box::new(move || {
        counter.fetch_add(1, Ordering::SeqCst);
    }));
    s.put("srv", "shared", &rec("before"), HOUR).unwrap();
    hammer(&s); // several pooled connections, idle when Redis goes away
    assert_eq!(s.health(), Health::Up);

    r.stop();
    let first = unavailable(s.get("srv", "shared"));
    let Health::Degraded { since_ms, error } = s.health() else { panic!("{:?}", s.health()) };
    assert!(since_ms > 0);
    assert_eq!(error, first, "the health names the error that opened the breaker");
    // While open every operation answers Unavailable (at once, from the breaker).
    unavailable(s.get("srv", "shared"));
    unavailable(s.put("srv", "shared", &rec("during"), HOUR));
    unavailable(s.touch("srv", "shared", HOUR));
    unavailable(s.delete_if("srv", "shared", "before"));
    unavailable(s.delete("srv", "shared"));
    unavailable(s.list());
    unavailable(s.try_lock("srv", "shared", Duration::from_secs(5)));
    unavailable(s.unlock("srv", "shared", &LockToken("t".into())));
    assert_eq!(recovered.load(Ordering::SeqCst), 0);

    r.restart();
    wait_up(&s, "after the restart");
    assert!(recovered.load(Ordering::SeqCst) >= 1, "the on_recovered hook ran");
    // The restarted Redis is empty; pooled connections from before are not
    // reused (one would fail and reopen the breaker).
    assert_eq!(s.get("srv", "shared").unwrap(), None);
    hammer(&s);
    assert_eq!(s.health(), Health::Up);
    s.put("srv", "shared", &rec("after"), HOUR).unwrap();
    assert_eq!(s.get("srv", "shared").unwrap(), Some(rec("after")));
    assert_eq!(s.health(), Health::Up);
}

#[test]
fn a_store_created_while_redis_is_down_answers_unavailable_then_recovers() {
    let mut r = RedisServer::start();
    r.stop();
    let s = store(&r.url());
    assert_eq!(s.health(), Health::Up, "nothing tried yet");
    unavailable(s.put("srv", "shared", &rec("x"), HOUR));
    assert!(matches!(s.health(), Health::Degraded { .. }));
    unavailable(s.get("srv", "shared"));
    r.restart();
    wait_up(&s, "again");
    s.put("srv", "shared", &rec("x"), HOUR).unwrap();
    assert_eq!(r.cli(&["GET", "mcp:upstream:session:srv:shared"]), "x");
}

#[test]
fn a_hung_redis_times_out_instead_of_blocking() {
    let r = RedisServer::start();
    let s = store(&r.url());
    s.put("srv", "shared", &rec("x"), HOUR).unwrap();
    // Redis accepts connections but answers no command for 3 s.
    assert_eq!(r.cli(&["CLIENT", "PAUSE", "3000", "ALL"]), "OK");
    unavailable(s.get("srv", "shared"));
    assert!(matches!(s.health(), Health::Degraded { .. }));
    wait_up(&s, "after the pause");
    assert_eq!(s.get("srv", "shared").unwrap(), Some(rec("x")));
}

#[test]
fn the_password_of_the_url_never_appears_in_errors_or_health() {
    let mut r = RedisServer::start();
    r.stop();
    let url = format!("redis://hubuser:s3cretPW@127.0.0.1:{}/0", r.port());
    let s = store(&url);
    let err = unavailable(s.get("srv", "shared"));
    let Health::Degraded { error, .. } = s.health() else { panic!("{:?}", s.health()) };
    for text in [&err, &error, &format!("{:?}", s.health())] {
        assert!(!text.contains("s3cretPW"), "{text}");
    }
    // An unparseable URL is refused without its password.
    let bad = RedisStore::new(&RedisConfig::new("redis://hubuser:s3cretPW@[::1")).err().expect("refused");
    assert!(!bad.to_string().contains("s3cretPW"), "{bad}");
}

#[test]
fn a_password_protected_redis_is_used_with_the_url_password() {
    let r = RedisServer::start();
    assert_eq!(r.cli(&["CONFIG", "SET", "requirepass", "s3cretPW"]), "OK");
    let s = store(&format!("redis://:s3cretPW@127.0.0.1:{}", r.port()));
    s.put("srv", "shared", &rec("x"), HOUR).unwrap();
    assert_eq!(s.get("srv", "shared").unwrap(), Some(rec("x")));
    // A wrong password is unavailable (the pool cannot connect), and says nothing of it.
    let wrong = store(&format!("redis://:wrongPW@127.0.0.1:{}", r.port()));
    let err = unavailable(wrong.get("srv", "shared"));
    assert!(!err.contains("wrongPW"), "{err}");
}
