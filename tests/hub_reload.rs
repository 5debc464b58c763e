//! Config reload (`Hub::reload`, issue 7): servers added, removed, changed
//! and kept while clients are connected; list changes announced; a bad
//! configuration rejected. In-process hubs and mock upstreams on loopback;
//! the binary-level SIGHUP test waits for the service branch's signal
//! handling.

mod hub_util;
mod redis_util;

use hub_util::*;
use mcphub::config::Config;
use mcphub::hub::reload::{ReloadError, ReloadReport};
use mcphub_mock::Era;
use mcphub::users::{key_digest, new_key};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The config `hub_util::hub` would build for `servers` + `extra`, with the
/// running hub's state directory (so only what the test changes differs).
fn config_like(h: &HubUnderTest, servers: &[(&str, &str)], extra: Value) -> Config {
    let mut map = serde_json::Map::new();
    for (name, url) in servers {
        map.insert(name.to_string(), json!({"type": "streamable-http", "url": url, "connectTimeoutMs": 500, "timeoutMs": 5000}));
    }
    let mut cfg = json!({"mcpServers": map, "timeouts": {"hubMs": 8000}, "stateDir": h.hub.config().state_dir});
    if let (Some(o), Some(e)) = (cfg.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            o.insert(k.clone(), v.clone());
        }
    }
    Config::parse(&cfg.to_string()).expect("valid test config")
}

fn reload(h: &HubUnderTest, servers: &[(&str, &str)], extra: Value) -> ReloadReport {
    h.hub.reload(config_like(h, servers, extra)).expect("the reload is accepted")
}

fn prefix() -> Value {
    json!({"toolNaming": "prefix"})
}

fn tools(c: &Client) -> Vec<String> {
    let msg = c.request("tools/list", json!({})).expect("tools/list");
    let mut n = names(&msg, "tools");
    n.sort();
    n
}

fn call(c: &Client, tool: &str, arguments: Value) -> Value {
    c.request("tools/call", json!({"name": tool, "arguments": arguments})).expect("an answer")
}


fn served(h: &HubUnderTest) -> Vec<String> {
    h.hub.catalog().upstreams().iter().map(|u| u.name().to_string()).collect()
}

#[test]
fn an_added_server_is_listed_and_routed() {
    let (a, b) = (mock(Era::Legacy, "one"), mock(Era::Legacy, "two"));
    let h = hub(&[("a", &a.url)], prefix());
    let c = Client::connect(&h.url);
    assert!(tools(&c).iter().all(|t| t.starts_with("a__")), "{:?}", tools(&c));

    let report = reload(&h, &[("a", &a.url), ("b", &b.url)], prefix());
    assert_eq!(report.added, vec!["b"]);
    assert_eq!(report.kept, vec!["a"]);
    assert!(report.removed.is_empty() && report.changed.is_empty() && report.restart_needed.is_empty(), "{report:?}");
    assert_eq!(report.summary(), "+1 -0 ~0 =1 (added: b)");

    let listed = tools(&c);
    assert!(listed.contains(&"b__echo".to_string()) && listed.contains(&"a__echo".to_string()), "{listed:?}");
    assert_eq!(text_of(&call(&c, "b__echo", json!({"text": "hi"}))), "two: hi");
    assert_eq!(text_of(&call(&c, "a__echo", json!({"text": "hi"}))), "one: hi");
    assert_eq!(served(&h), vec!["a", "b"]);
}

#[test]
fn a_removed_server_vanishes_and_its_tools_are_unknown() {
    let (a, b) = (mock(Era::Legacy, "one"), mock(Era::Legacy, "two"));
    let h = hub(&[("a", &a.url), ("b", &b.url)], prefix());
    let c = Client::connect(&h.url);
    assert_eq!(text_of(&call(&c, "b__echo", json!({"text": "x"}))), "two: x");

    let report = reload(&h, &[("a", &a.url)], prefix());
    assert_eq!((report.removed.clone(), report.kept.clone()), (vec!["b".to_string()], vec!["a".to_string()]));

    let listed = tools(&c);
    assert!(!listed.is_empty() && listed.iter().all(|t| t.starts_with("a__")), "{listed:?}");
    let gone = call(&c, "b__echo", json!({"text": "x"}));
    assert_eq!(gone["error"]["code"], -32602, "{gone}");
    assert!(gone["error"]["message"].as_str().unwrap().contains("Unknown tool"), "{gone}");
    assert_eq!(text_of(&call(&c, "a__echo", json!({"text": "y"}))), "one: y");
    // With the memory store the removed server's session is ended (DELETE).
    wait_until("the removed server's upstream session is deleted", PATIENCE, || b.stats()["sessions_active"] == 0);
    assert_eq!(a.stats()["sessions_active"], 1, "the kept server's session stays");
}

#[test]
fn an_unchanged_server_keeps_its_upstream_and_session() {
    let (a, b) = (mock(Era::Legacy, "one"), mock(Era::Legacy, "two"));
    let h = hub(&[("a", &a.url)], prefix());
    let c = Client::connect(&h.url);
    assert_eq!(text_of(&call(&c, "a__counter", json!({}))), "one: 1");
    assert_eq!(a.stats()["initialize"], 1);
    let before = h.hub.catalog().upstream("a").unwrap();

    reload(&h, &[("a", &a.url), ("b", &b.url)], json!({"toolNaming": "prefix", "rateLimits": {"global": {"perSecond": 1000}}}));
    reload(&h, &[("a", &a.url)], prefix());

    assert!(Arc::ptr_eq(&before, &h.hub.catalog().upstream("a").unwrap()), "the same upstream serves 'a'");
    // The same upstream session: its counter goes on, no new initialize.
    assert_eq!(text_of(&call(&c, "a__counter", json!({}))), "one: 2");
    let stats = a.stats();
    assert_eq!((stats["initialize"].clone(), stats["sessions_created"].clone()), (json!(1), json!(1)), "{stats}");
}

#[test]
fn a_changed_server_is_routed_to_its_new_url() {
    let (old, new) = (mock(Era::Legacy, "old"), mock(Era::Legacy, "new"));
    let h = hub(&[("a", &old.url)], json!({}));
    let c = Client::connect(&h.url);
    assert_eq!(text_of(&call(&c, "echo", json!({"text": "x"}))), "old: x");
    let before = h.hub.catalog().upstream("a").unwrap();

    let report = reload(&h, &[("a", &new.url)], json!({}));
    assert_eq!(report.changed, vec!["a"]);
    assert_eq!(report.summary(), "+0 -0 ~1 =0 (changed: a)");
    assert!(!Arc::ptr_eq(&before, &h.hub.catalog().upstream("a").unwrap()));
    assert!(before.is_retired());

    assert_eq!(text_of(&call(&c, "echo", json!({"text": "y"}))), "new: y");
    assert_eq!(new.stats()["initialize"], 1, "the new server got its own session");
    wait_until("the old server's upstream session is deleted", PATIENCE, || old.stats()["sessions_active"] == 0);
}

/// The method of the next event; None when the stream ends or stays silent for 10 s.
fn next_method(s: &mut SseStream) -> Option<String> {
    s.next().map(|e| e.method().to_string())
}

#[test]
fn clients_streams_hear_list_changed_when_the_set_changes() {
    let (a, b) = (mock(Era::Legacy, "one"), mock(Era::Legacy, "two"));
    let h = hub(&[("a", &a.url)], prefix());
    let c = Client::connect(&h.url);
    let mut get = SseStream::get(&h.url, &[("Mcp-Session-Id", &c.sid)]);
    assert_eq!(get.status, 200);
    let body = json!({"jsonrpc": "2.0", "id": "L", "method": "subscriptions/listen", "params": {
        "notifications": {"toolsListChanged": true},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"}, "io.modelcontextprotocol/clientCapabilities": {}},
    }});
    let mut listen = SseStream::post(&h.url, &[("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", "subscriptions/listen")], &body.to_string());
    assert_eq!(listen.status, 200);
    assert_eq!(next_method(&mut listen).as_deref(), Some("notifications/subscriptions/acknowledged"));

    // A reload that changes nothing announces nothing; one that adds a server does.
    assert!(!reload(&h, &[("a", &a.url)], prefix()).servers_changed());
    reload(&h, &[("a", &a.url), ("b", &b.url)], prefix());
    let heard: Vec<String> = (0..3).filter_map(|_| next_method(&mut get)).collect();
    assert_eq!(
        heard,
        vec!["notifications/tools/list_changed", "notifications/prompts/list_changed", "notifications/resources/list_changed"],
        "the legacy GET stream"
    );
    assert_eq!(next_method(&mut listen).as_deref(), Some("notifications/tools/list_changed"), "the modern listen stream (tools only, as asked)");
    assert!(tools(&c).contains(&"b__echo".to_string()));
}

#[test]
fn an_invalid_config_is_rejected_and_the_old_one_keeps_serving() {
    let (a, b) = (mock(Era::Legacy, "one"), mock(Era::Legacy, "two"));
    let h = hub(&[("a", &a.url)], prefix());
    let c = Client::connect(&h.url);
    let before = tools(&c);

    // Two entries with one name (only a hand-built Config can have them).
    let mut twice = config_like(&h, &[("a", &a.url), ("b", &b.url)], prefix());
    twice.servers[1].name = "a".into();
    let err = h.hub.reload(twice).expect_err("duplicate names are rejected");
    assert!(matches!(err, ReloadError::DuplicateServer(ref n) if n == "a"), "{err}");
    assert!(err.to_string().contains("mcpServers.a"), "{err}");
    // An unservable URL, next to a valid new server: nothing of it applies.
    let mut bad_url = config_like(&h, &[("a", &a.url), ("b", &b.url)], json!({}));
    bad_url.servers[1].url = "gopher://127.0.0.1/".into();
    let err = h.hub.reload(bad_url).expect_err("a bad URL is rejected").to_string();
    assert!(err.contains("mcpServers.b") && err.contains("http"), "{err}");
    // A file that does not validate never becomes a Config (what reload_config logs).
    let bad_file = r#"{"mcpServers": {"a": {"url": "http://127.0.0.1:1/mcp", "timeoutMs": 0}}}"#;
    let err = ReloadError::from(Config::parse(bad_file).expect_err("timeoutMs 0 is invalid")).to_string();
    assert!(err.contains("mcpServers.a.timeoutMs"), "{err}");

    assert_eq!(served(&h), vec!["a"]);
    assert_eq!(h.hub.config().tool_naming, mcphub::config::ToolNaming::Prefix);
    assert_eq!(tools(&c), before);
    assert_eq!(text_of(&call(&c, "a__echo", json!({"text": "z"}))), "one: z");
}

#[test]
fn a_call_in_flight_on_a_removed_server_completes() {
    let (a, b) = (mock(Era::Legacy, "one"), mock(Era::Legacy, "two"));
    let h = hub(&[("a", &a.url), ("b", &b.url)], prefix());
    let c = Arc::new(Client::connect(&h.url));
    assert_eq!(text_of(&call(&c, "b__echo", json!({"text": "warm"}))), "two: warm");
    let upstream_b = h.hub.catalog().upstream("b").unwrap();

    let slow = {
        let c = c.clone();
        std::thread::spawn(move || call(&c, "b__sleep", json!({"ms": 3000})))
    };
    wait_until("the call reaches 'b'", PATIENCE, || upstream_b.calls_in_flight() == 1);
    let report = reload(&h, &[("a", &a.url)], prefix());
    assert_eq!(report.removed, vec!["b"]);
    // For as long as the call runs (3 s; the retiring thread looks every
    // 50 ms), its session stays: a watcher samples both counters until the
    // call is done and records any moment the session was gone under it.
    let closed_under_the_call = {
        let (upstream_b, b_server) = (upstream_b.clone(), b.server.clone());
        std::thread::spawn(move || {
            let mut samples = 0;
            loop {
                let in_flight = upstream_b.calls_in_flight();
                let sessions = b_server.stats()["sessions_active"].clone();
                if in_flight == 0 {
                    return (samples, None);
                }
                samples += 1;
                if sessions != 1 {
                    return (samples, Some(sessions));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    // Gone for new calls at once...
    let refused = call(&c, "b__echo", json!({"text": "late"}));
    assert_eq!(refused["error"]["code"], -32602, "{refused}");
    // ...while the call in flight finishes on its session, which is closed after it.
    let answer = slow.join().expect("the caller thread");
    assert!(answer.get("result").is_some() && answer["result"]["isError"] != json!(true), "{answer}");
    let (samples, closed) = closed_under_the_call.join().expect("the watcher");
    assert_eq!(closed, None, "the session of a call in flight was closed ({samples} samples)");
    assert!(samples > 1, "the watcher saw the call in flight after the reload");
    assert_eq!(b.stats()["initialize"], 1, "no new session for the call in flight");
    wait_until("the removed server's session is deleted after its last call", PATIENCE, || b.stats()["sessions_active"] == 0);
    assert_eq!(upstream_b.calls_in_flight(), 0);
}

#[test]
fn other_keys_apply_or_wait_for_a_restart() {
    let a = mock(Era::Legacy, "one");
    let h = hub(&[("a", &a.url)], json!({}));
    let c = Client::connect(&h.url);
    assert_eq!(tools(&c).iter().filter(|t| *t == "echo").count(), 1);
    let (port, workers) = (h.hub.config().port, h.hub.config().workers);

    let report = reload(&h, &[("a", &a.url)], json!({"port": port + 1, "workers": workers + 3, "toolNaming": "prefix", "rateLimits": {"global": {"perMinute": 1}}}));
    assert_eq!(report.restart_needed, vec!["port", "workers"]);
    assert_eq!(report.applied, vec!["toolNaming", "rateLimits"]);
    assert_eq!(report.kept, vec!["a"], "a new naming keeps the upstream");
    let config = h.hub.config();
    assert_eq!((config.port, config.workers), (port, workers), "restart-only keys keep their running value");

    // The naming applies to the next list; the new global limit (1 a minute) to the next request.
    let listed = c.request("tools/list", json!({})).expect("the first request of the minute");
    assert!(names(&listed, "tools").contains(&"a__echo".to_string()), "{listed}");
    let limited = c.request("tools/list", json!({})).expect_err("the second is over the limit");
    assert!(limited.starts_with("HTTP 429"), "{limited}");
}

const INITIALIZE: &str =
    r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

#[test]
fn users_and_groups_apply_at_once() {
    let (a, b) = (mock(Era::Legacy, "one"), mock(Era::Legacy, "two"));
    let servers = [("a", a.url.as_str()), ("b", b.url.as_str())];
    let (alice_key, bob_key) = (new_key(), new_key());
    let user = |key: &str| json!({"keys": [format!("sha256:{}", key_digest(key))], "servers": ["@team"]});
    let users = |team: Value, with_bob: bool| {
        let mut u = json!({"alice": user(&alice_key)});
        if with_bob {
            u["bob"] = user(&bob_key);
        }
        json!({"toolNaming": "prefix", "groups": {"team": team}, "users": u})
    };
    let h = hub(&servers, users(json!(["a"]), false));
    let alice = Client::connect_as(&h.url, Some(&alice_key));
    assert!(tools(&alice).iter().all(|t| t.starts_with("a__")), "{:?}", tools(&alice));
    let status_of = |key: &str| send("POST", &h.url, &[ACCEPT, JSON, ("Authorization", &format!("Bearer {key}"))], INITIALIZE).status;
    assert_eq!(status_of(&bob_key), 401);

    let report = reload(&h, &servers, users(json!(["a", "b"]), true));
    assert_eq!(report.applied, vec!["users"]);
    assert_eq!(report.kept, vec!["a", "b"]);
    // Alice's session goes on with her new servers; bob's key is known.
    assert!(tools(&alice).contains(&"b__echo".to_string()), "{:?}", tools(&alice));
    assert_eq!(text_of(&call(&alice, "b__echo", json!({"text": "x"}))), "two: x");
    assert_eq!(status_of(&bob_key), 200);

    reload(&h, &servers, users(json!(["a", "b"]), false));
    assert_eq!(status_of(&bob_key), 401, "a user removed from the file is gone");
    assert_eq!(status_of(&alice_key), 200);
}

#[test]
fn run_time_users_and_their_store_survive_a_users_reload() {
    let a = mock(Era::Legacy, "one");
    let servers = [("a", a.url.as_str())];
    let (alice_key, bob_key) = (new_key(), new_key());
    let user = |key: &str| json!({"keys": [format!("sha256:{}", key_digest(key))]});
    let h = hub(&servers, json!({"users": {"alice": user(&alice_key)}}));
    // A run-time user (users.json in the hub's state directory) made before the reload…
    let users_before = h.hub.users();
    users_before.create("carol", false, None).expect("run-time user");
    let (carol_key, _) = users_before.issue_key("carol", None).expect("key");

    let report = reload(&h, &servers, json!({"users": {"alice": user(&alice_key), "bob": user(&bob_key)}}));
    assert_eq!(report.applied, vec!["users"]);
    // … and one made after it through a handle taken before it: both kept,
    // in memory and in the one store (the registry was reconfigured in place).
    users_before.create("dave", false, None).expect("run-time user after the reload");
    let users = h.hub.users();
    for name in ["alice", "bob", "carol", "dave"] {
        assert!(users.get(name).is_some(), "{name} after the reload");
    }
    assert!(users.authenticate(&carol_key).is_some(), "carol's key still opens the hub");
    assert!(users.authenticate(&bob_key).is_some(), "bob from the reloaded file");
    users.reload().expect("the state file reads back");
    for name in ["carol", "dave"] {
        assert!(users.get(name).is_some(), "{name} is in the state file");
    }
}

#[test]
fn with_redis_a_removed_servers_session_stays_for_its_return() {
    let redis = redis_util::RedisServer::start();
    let (a, b) = (mock(Era::Legacy, "one"), mock(Era::Legacy, "two"));
    let extra = json!({"toolNaming": "prefix", "redis": {"url": redis.url()}});
    let h = hub(&[("a", &a.url), ("b", &b.url)], extra.clone());
    let c = Client::connect(&h.url);
    assert_eq!(text_of(&call(&c, "b__counter", json!({}))), "two: 1");
    let stored = || redis.cli(&["KEYS", "mcp:upstream:session:b:*"]);
    assert!(!stored().is_empty(), "the session is in Redis");
    let upstream_b = h.hub.catalog().upstream("b").unwrap();

    reload(&h, &[("a", &a.url)], extra.clone());
    wait_until("the retired upstream lets its sessions go", PATIENCE, || upstream_b.sessions().is_empty());
    // Like at shutdown with Redis: no DELETE, the record stays.
    assert_eq!(b.stats()["sessions_active"], 1);
    assert!(!stored().is_empty(), "the record stays in Redis");

    // Back in the file: the new upstream adopts it, as after a restart.
    assert_eq!(reload(&h, &[("a", &a.url), ("b", &b.url)], extra).added, vec!["b"]);
    assert_eq!(text_of(&call(&c, "b__counter", json!({}))), "two: 2");
    assert_eq!(b.stats()["initialize"], 1);
}

#[test]
fn calls_to_a_kept_server_never_fail_while_others_come_and_go() {
    let (a, b, c) = (mock(Era::Legacy, "one"), mock(Era::Legacy, "two"), mock(Era::Legacy, "three"));
    let h = hub(&[("a", &a.url)], prefix());
    let clients: Vec<Client> = (0..8).map(|_| Client::connect(&h.url)).collect();
    let until = Instant::now() + Duration::from_secs(2);
    let load = std::thread::spawn(move || load_clients(clients, "a__get_session_id", until, 10_000));
    let mut reloads = 0;
    while Instant::now() < until && reloads < 200 {
        let servers: &[(&str, &str)] = match reloads % 3 {
            0 => &[("a", &a.url), ("b", &b.url)],
            1 => &[("a", &a.url), ("b", &c.url)],
            _ => &[("a", &a.url)],
        };
        reload(&h, servers, prefix());
        reloads += 1;
        std::thread::sleep(Duration::from_millis(10));
    }
    let (ok, failed) = load.join().expect("the load threads");
    eprintln!("{} calls, {} failed, during {reloads} reloads", ok.len() + failed.len(), failed.len());
    assert!(reloads >= 10, "{reloads} reloads");
    assert!(failed.is_empty(), "{} of {} calls failed during {reloads} reloads: {:?}", failed.len(), ok.len() + failed.len(), &failed[..failed.len().min(3)]);
    assert!(ok.len() >= 8, "{} calls", ok.len());
    // One shared upstream session served them all.
    let ids: std::collections::BTreeSet<&str> = ok.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(a.stats()["initialize"], 1);
}

/// `mcphub serve`, its config file rewritten, `SIGHUP`: the new server's
/// tools appear and the removed one's vanish; a bad file is rejected with
/// one log line and the served set stays.
#[test]
fn sighup_reloads_servers() {
    let (a, b, c) = (mock(Era::Legacy, "one"), mock(Era::Legacy, "two"), mock(Era::Legacy, "three"));
    let servers = |list: &[(&str, &str)]| {
        let map: serde_json::Map<String, Value> = list.iter().map(|(n, u)| (n.to_string(), json!({"url": u, "timeoutMs": 5000}))).collect();
        json!({"mcpServers": map, "toolNaming": "prefix", "timeouts": {"hubMs": 8000}})
    };
    let name = "reload-sighup";
    let mut hub = HubProcess::start(name, &servers(&[("a", &a.url), ("b", &b.url)]));
    // HubProcess::start writes the config here.
    let path = std::env::temp_dir().join(format!("mcphub-store-{}-{name}", std::process::id())).join("config.json");
    assert!(path.exists(), "{}", path.display());
    let client = Client::connect(&hub.url());
    let listed = || tools(&client);
    assert!(listed().contains(&"b__echo".to_string()));

    let sighup = |hub: &HubProcess| assert_eq!(unsafe { libc::kill(hub.child.id() as i32, libc::SIGHUP) }, 0);
    std::fs::write(&path, servers(&[("a", &a.url), ("c", &c.url)]).to_string()).unwrap();
    sighup(&hub);
    wait_until("the new server's tools are listed", PATIENCE, || listed().contains(&"c__echo".to_string()));
    let now = listed();
    assert!(!now.iter().any(|t| t.starts_with("b__")), "{now:?}");
    assert_eq!(text_of(&call(&client, "c__echo", json!({"text": "hi"}))), "three: hi");
    assert!(hub.log_text().contains("config reloaded: +1 -1 ~0 =1"), "{}", hub.log_text());

    std::fs::write(&path, r#"{"mcpServers": {"a": {"url": "not a url"}}}"#).unwrap();
    sighup(&hub);
    wait_until("the bad file is rejected", PATIENCE, || hub.log_text().contains("config reload rejected"));
    let line = hub.log_text().lines().find(|l| l.contains("config reload rejected")).unwrap().to_string();
    assert!(line.contains("mcpServers.a.url") && line.contains("the old configuration keeps serving"), "{line}");
    assert_eq!(listed(), now, "the old configuration keeps serving");
    assert_eq!(text_of(&call(&client, "c__echo", json!({"text": "still"}))), "three: still");
    hub.terminate();
}
