//! The Redis store through Redis Sentinel (issue 20, docs/cluster.md §3), against
//! real processes this test starts on free loopback ports and stops: a
//! primary, a replica (`--replicaof`) and one sentinel (`redis-server <conf>
//! --sentinel`, quorum 1, down after 1 s). The store writes; the primary is
//! killed (-9); once the sentinel has promoted the replica, the store's
//! writes succeed again, through the new primary.

mod redis_util;

use mcphub::config::{RedisConfig, SentinelConfig};
use mcphub::store::redis::RedisStore;
use mcphub::store::{Health, SessionStore};
use redis_util::RedisServer;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "wait_util/mod.rs"]
mod wait_util;
use wait_util::wait_until;

const MASTER: &str = "mymaster";

/// A process this test started; killed and reaped on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A directory removed on drop (after the processes using it: declared first).
struct RemoveDir(std::path::PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind a loopback port").local_addr().unwrap().port()
}

fn spawn(args: &[&str]) -> Proc {
    Proc(
        Command::new("redis-server")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("redis-server not found ({e}): install Debian's redis-server; tests need a real Redis")),
    )
}

/// A connection to `127.0.0.1:port` (short timeouts), if it answers.
fn conn(port: u16) -> Option<redis::Connection> {
    let c = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
    let conn = c.get_connection_with_timeout(Duration::from_millis(300)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    Some(conn)
}

/// `cmd args…` on `127.0.0.1:port`, as `T`, if it answers.
fn ask<T: redis::FromRedisValue>(port: u16, args: &[&str]) -> Option<T> {
    let mut c = conn(port)?;
    redis::cmd(args[0]).arg(&args[1..]).query(&mut c).ok()
}

/// The port the sentinel names as the primary of [`MASTER`].
fn primary_port(sentinel: u16) -> Option<u16> {
    ask::<Option<(String, u16)>>(sentinel, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER]).flatten().map(|(_, p)| p)
}

/// The first field of `ROLE` on `port`.
fn role(port: u16) -> Option<String> {
    let role: Vec<redis::Value> = ask(port, &["ROLE"])?;
    redis::from_redis_value(role.first()?.clone()).ok()
}

#[test]
fn writes_go_to_the_new_primary_after_a_failover() {
    let mut primary = RedisServer::start();
    let p = primary.port();
    let r = free_port();
    let s = free_port();
    // The replica writes the RDB of its full sync to its `dir`: a directory of the test's own.
    let dir = std::env::temp_dir().join(format!("mcphub-sentinel-{}-{s}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let _cleanup = RemoveDir(dir.clone());
    let _replica = spawn(&[
        "--port", &r.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--dir", dir.to_str().unwrap(), "--replicaof", "127.0.0.1", &p.to_string(),
    ]);
    wait_until("the replica to sync with the primary", Duration::from_secs(15), || {
        ask::<String>(r, &["INFO", "replication"]).is_some_and(|i| i.contains("master_link_status:up"))
    });

    let conf = dir.join("sentinel.conf"); // the sentinel rewrites it: a file of its own
    std::fs::write(
        &conf,
        format!(
            "port {s}\nbind 127.0.0.1\nprotected-mode no\ndir {}\nsentinel monitor {MASTER} 127.0.0.1 {p} 1\n\
             sentinel down-after-milliseconds {MASTER} 1000\nsentinel failover-timeout {MASTER} 3000\n",
            dir.display()
        ),
    )
    .unwrap();
    let _sentinel = spawn(&[conf.to_str().unwrap(), "--sentinel"]);
    wait_until("the sentinel to know the replica", Duration::from_secs(20), || {
        ask::<Vec<redis::Value>>(s, &["SENTINEL", "REPLICAS", MASTER]).is_some_and(|v| !v.is_empty())
    });

    let cfg = RedisConfig {
        url: String::new(),
        sentinel: Some(SentinelConfig { master_name: MASTER.into(), nodes: vec![format!("redis://127.0.0.1:{s}")], password: None, db: 0 }),
        ..RedisConfig::new("")
    };
    let store = RedisStore::new(&cfg).expect("a valid sentinel config");
    let set = |v: &str| store.run(|c| redis::cmd("SET").arg("mcp:test:k").arg(v).query::<()>(c));
    set("before").expect("a write through the sentinel's primary");
    assert_eq!(ask::<String>(p, &["GET", "mcp:test:k"]).as_deref(), Some("before"), "written on the primary");
    let mut dedicated = store.open_dedicated().expect("a dedicated connection");
    let port: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("port").query(&mut dedicated).unwrap();
    assert_eq!(port[1], p.to_string(), "the dedicated connection is to the primary");

    primary.stop(); // kill -9
    let started = Instant::now();
    wait_until("the sentinel to promote the replica (kill -9 of the primary, down after 1 s)", Duration::from_secs(30), || {
        primary_port(s) == Some(r) && role(r).as_deref() == Some("master")
    });
    eprintln!("failover seen after {:?}", started.elapsed());
    // The old pooled connections fail (breaker opens); the probe reconnects through the sentinel.
    wait_until("the store's writes to succeed again", Duration::from_secs(15), || set("after").is_ok());
    assert_eq!(store.health(), Health::Up);
    assert_eq!(ask::<String>(r, &["GET", "mcp:test:k"]).as_deref(), Some("after"), "written on the new primary");
    let mut dedicated = store.open_dedicated().expect("a dedicated connection after the failover");
    let port: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("port").query(&mut dedicated).unwrap();
    assert_eq!(port[1], r.to_string(), "the dedicated connection follows the sentinel");
}

#[test]
fn no_sentinel_answering_is_unavailable_without_secrets_in_the_message() {
    let dead = free_port();
    let cfg = RedisConfig {
        url: String::new(),
        sentinel: Some(SentinelConfig {
            master_name: MASTER.into(),
            nodes: vec![format!("redis://:sentinelPW@127.0.0.1:{dead}")],
            password: Some("primaryPW".into()),
            db: 0,
        }),
        ..RedisConfig::new("")
    };
    let store = RedisStore::new(&cfg).expect("a valid sentinel config");
    let err = store.run(|c| redis::cmd("PING").query::<String>(c)).expect_err("nobody answers");
    let msg = err.to_string();
    assert!(!msg.contains("sentinelPW") && !msg.contains("primaryPW"), "{msg}");
    match store.open_dedicated() {
        Err(mcphub::store::StoreError::Unavailable(m)) => assert!(!m.contains("sentinelPW"), "{m}"),
        Err(e) => panic!("not Unavailable: {e}"),
        Ok(_) => panic!("a connection with no sentinel answering"),
    }
    assert!(matches!(store.health(), Health::Degraded { .. }));
}
