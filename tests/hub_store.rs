//! Shared upstream sessions in the store (issue 4, docs/decisions.md D3), against a
//! real `redis-server` each test starts on a free port and stops, and
//! `mcphub-mock` (its `/stats` counts `initialize`).

mod hub_util;
mod redis_util;

use hub_util::{hub, mock_with, wait_until, Client, HubProcess, HubUnderTest, Mock, PATIENCE};
use mcphub_mock::{Era, MockConfig};
use redis_util::RedisServer;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ADMIN: &str = "admin-token-for-tests-0123456789";

fn legacy_mock(expire_every: u64) -> Mock {
    mock_with(MockConfig { era: Era::Legacy, name: "mock".into(), expire_sessions_every: expire_every, ..MockConfig::default() })
}

fn redis_hub(mock: &Mock, redis: &RedisServer) -> HubUnderTest {
    hub(&[("mock", &mock.url)], json!({"redis": {"url": redis.url()}, "adminToken": ADMIN, "workers": 16}))
}

fn initializes(mock: &Mock) -> u64 {
    mock.stats()["initialize"].as_u64().unwrap()
}

/// `n` anonymous clients calling `tool` together until `until` (≤ `max_calls_each`).
fn load(url: &str, n: usize, tool: &str, until: Instant, max_calls_each: usize) -> (Vec<String>, Vec<String>) {
    let clients: Vec<Client> = (0..n).map(|_| Client::connect(url)).collect();
    let (ok, failed) = hub_util::load_clients(clients, tool, until, max_calls_each);
    (ok.into_iter().map(|(_, t)| t).collect(), failed.into_iter().map(|(_, e)| e).collect())
}

fn key() -> &'static str {
    "mcp:upstream:session:mock:shared"
}

#[test]
fn seventy_clients_share_one_upstream_session_kept_in_redis() {
    let mut redis = RedisServer::start();
    let mock = legacy_mock(0);
    let h = redis_hub(&mock, &redis);
    let (ok, failed) = load(&h.url, 70, "get_session_id", Instant::now(), 1);
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(ok.len(), 70);
    let id = &ok[0];
    assert!(ok.iter().all(|s| s == id), "every client saw the same upstream session: {ok:?}");
    assert_eq!(initializes(&mock), 1, "one upstream initialize for 70 clients");
    assert_eq!(redis.cli(&["GET", key()]), *id, "redis-cli GET shows the bare session id");
    let ttl: i64 = redis.cli(&["TTL", key()]).parse().unwrap();
    assert!((3500..=3600).contains(&ttl), "TTL near 3600: {ttl}");
    // The hot path does not touch Redis: 70 more calls with Redis stopped still succeed.
    redis.stop();
    let (ok, failed) = load(&h.url, 10, "get_session_id", Instant::now(), 7);
    assert!(failed.is_empty(), "{failed:?}");
    assert!(ok.iter().all(|s| s == id));
}

#[test]
fn a_new_hub_on_the_same_redis_reuses_the_session_and_two_hubs_share_one() {
    let redis = RedisServer::start();
    let mock = legacy_mock(0);
    let first = redis_hub(&mock, &redis);
    let (ok, _) = load(&first.url, 5, "get_session_id", Instant::now(), 1);
    let id = ok[0].clone();
    drop(first); // a restart: nothing of the first hub's memory survives
    let second = redis_hub(&mock, &redis);
    let (ok, failed) = load(&second.url, 5, "get_session_id", Instant::now(), 1);
    assert!(failed.is_empty(), "{failed:?}");
    assert!(ok.iter().all(|s| *s == id), "the restarted hub reused {id}: {ok:?}");
    assert_eq!(initializes(&mock), 1, "zero new initialize after the restart");

    // Two instances started together on a fresh server create one session.
    let other_mock = legacy_mock(0);
    let a = redis_hub(&other_mock, &redis);
    let b = redis_hub(&other_mock, &redis);
    let (urls, results) = ([a.url.clone(), b.url.clone()], Arc::new(Mutex::new(Vec::new())));
    let threads: Vec<_> = urls
        .into_iter()
        .map(|u| {
            let results = results.clone();
            std::thread::spawn(move || results.lock().unwrap().push(load(&u, 35, "get_session_id", Instant::now(), 1)))
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    let results = results.lock().unwrap();
    let all: Vec<&String> = results.iter().flat_map(|(ok, _)| ok.iter()).collect();
    assert_eq!(all.len(), 70, "{:?}", results.iter().map(|r| &r.1).collect::<Vec<_>>());
    assert!(all.iter().all(|s| *s == all[0]), "both hubs use one upstream session");
    assert_eq!(initializes(&other_mock), 1);
}

#[test]
fn redis_stopped_mid_load_costs_no_call_and_sessions_are_written_again() {
    let mut redis = RedisServer::start();
    // Sessions expire now and then, so some heal while Redis is down.
    let mock = legacy_mock(150);
    let h = redis_hub(&mock, &redis);
    let status = |url: &str| hub_util::send("GET", &url.replace("/mcp", "/readyz"), &[], "").json();
    assert_eq!(status(&h.url)["store"]["health"]["state"], "up");
    // 70 clients call until told to stop; each phase below waits on what it
    // needs to have happened (calls made, readyz state, sessions healed).
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let failed = Arc::new(Mutex::new(Vec::<String>::new()));
    let loaders: Vec<_> = (0..70)
        .map(|_| {
            let c = Client::connect(&h.url);
            let (stop, calls, failed) = (stop.clone(), calls.clone(), failed.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Err(e) = c.call("get_session_id") {
                        failed.lock().unwrap().push(e);
                    }
                    calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
        })
        .collect();
    let made = || calls.load(std::sync::atomic::Ordering::Relaxed);
    let expired = || mock.stats()["expired_404"].as_u64().unwrap();
    wait_until("200 calls before Redis stops", PATIENCE, || made() >= 200);
    redis.stop();
    // The breaker opens on the first failed store call; readyz says so.
    wait_until("readyz to show the store degraded while Redis is down", PATIENCE, || {
        status(&h.url)["store"]["health"]["state"] == "degraded"
    });
    // Some sessions expire and heal while Redis is down.
    let (calls_at_stop, expired_at_stop) = (made(), expired());
    wait_until("an upstream session to expire (and heal) and 300 calls while Redis is down", PATIENCE, || {
        expired() > expired_at_stop && made() >= calls_at_stop + 300
    });
    redis.restart();
    let calls_at_restart = made();
    wait_until("200 calls after Redis restarted", PATIENCE, || made() >= calls_at_restart + 200);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    loaders.into_iter().for_each(|t| t.join().unwrap());
    let failed = failed.lock().unwrap();
    assert!(failed.is_empty(), "{} of {} calls failed: {:?}", failed.len(), made(), &failed[..failed.len().min(3)]);
    // The session in use is written through to the restarted (empty) Redis.
    let current = Client::connect(&h.url).call("get_session_id").unwrap();
    let mut stored = String::new();
    wait_until("the hub to write its session to Redis again", PATIENCE, || {
        stored = redis.cli(&["GET", key()]);
        stored == current
    });
    assert_eq!(stored, current, "the hub wrote its session to Redis again");
    assert_eq!(status(&h.url)["store"]["health"]["state"], "up");
}

#[test]
fn the_admin_api_lists_and_deletes_upstream_sessions_behind_its_token() {
    let redis = RedisServer::start();
    let mock = legacy_mock(0);
    let h = redis_hub(&mock, &redis);
    let c = Client::connect(&h.url);
    let id = c.call("get_session_id").unwrap();
    let api = h.url.replace("/mcp", "/api/admin/upstream-sessions");
    for headers in [vec![], vec![("x-auth-token", "wrong-token-0123456789")], vec![("Authorization", "Basic eA==")]] {
        let r = hub_util::send("GET", &api, &headers, "");
        assert_eq!(r.status, 401, "{headers:?}: {}", r.text);
        assert_eq!(r.header("www-authenticate").map(|v| v.starts_with("Bearer")), Some(true));
        assert_eq!(r.json()["success"], false);
    }
    let listed = hub_util::send("GET", &api, &[("x-auth-token", ADMIN)], "").json();
    assert_eq!(listed["success"], true);
    let data = listed["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{listed}");
    assert_eq!((data[0]["serverName"].as_str(), data[0]["contextKey"].as_str()), (Some("mock"), Some("shared")));
    assert_eq!(data[0]["sessionId"], json!(id));
    assert!(data[0]["ttl"].as_i64().unwrap() > 3500);
    let bearer = format!("Bearer {ADMIN}");
    let del = hub_util::send("DELETE", &format!("{api}/mock/shared"), &[("Authorization", &bearer)], "");
    assert_eq!(del.status, 200, "{}", del.text);
    assert_eq!(del.json()["data"]["sessionId"], json!(id));
    assert_eq!(redis.cli(&["EXISTS", key()]), "0");
    assert_eq!(mock.stats()["sessions_active"], 0, "the session was ended upstream too");
    let again = hub_util::send("DELETE", &format!("{api}/mock/shared"), &[("Authorization", &bearer)], "");
    assert_eq!(again.status, 404);
    assert_eq!(hub_util::send("DELETE", &format!("{api}/nope/shared"), &[("x-auth-token", ADMIN)], "").status, 404);
    // The next request re-establishes.
    let new_id = c.call("get_session_id").unwrap();
    assert_ne!(new_id, id);
    assert_eq!(initializes(&mock), 2);
    assert_eq!(redis.cli(&["GET", key()]), new_id);
}

#[test]
fn session_sharing_client_gives_each_client_session_its_own_upstream_session() {
    let mock = legacy_mock(0);
    let h = hub(&[], json!({"mcpServers": {"mock": {"url": mock.url, "sessionSharing": "client", "timeoutMs": 5000}}, "adminToken": ADMIN}));
    let (a, b) = (Client::connect(&h.url), Client::connect(&h.url));
    let (a1, a2, b1) = (a.call("get_session_id").unwrap(), a.call("get_session_id").unwrap(), b.call("get_session_id").unwrap());
    assert_eq!(a1, a2, "one client keeps its upstream session");
    assert_ne!(a1, b1, "two clients never share one");
    let listed = hub_util::send("GET", &h.url.replace("/mcp", "/api/admin/upstream-sessions"), &[("x-auth-token", ADMIN)], "").json();
    // One per client session (the hub's own list fetches use the shared one).
    let keys: Vec<&str> = listed["data"].as_array().unwrap().iter().filter_map(|d| d["contextKey"].as_str()).collect();
    assert_eq!(keys.iter().filter(|k| k.starts_with("client:")).count(), 2, "{listed}");
    assert!(keys.iter().all(|k| k.starts_with("client:") || *k == "shared"), "{listed}");
    assert!(!listed.to_string().contains(&a.sid), "client session ids are not shown");
    // Ending a client session ends its upstream session.
    let before = mock.stats()["sessions_active"].as_u64().unwrap();
    let r = hub_util::send("DELETE", &a.url, &[("Mcp-Session-Id", &a.sid), ("MCP-Protocol-Version", "2025-11-25")], "");
    assert_eq!(r.status, 200);
    wait_until("the upstream session of the ended client to be DELETEd", PATIENCE, || {
        mock.stats()["sessions_active"].as_u64().unwrap() < before
    });
    assert_eq!(mock.stats()["sessions_active"].as_u64().unwrap(), before - 1, "only the ended client's upstream session was DELETEd");
    assert_eq!(b.call("get_session_id").unwrap(), b1, "the other client's session is untouched");
}

// ---- the real binary: log markers, restart, shutdown ----

fn process_config(mock: &Mock, redis: Option<&RedisServer>) -> Value {
    let mut c = json!({"mcpServers": {"mock": {"url": mock.url, "protocol": "legacy", "timeoutMs": 5000}}, "timeouts": {"hubMs": 8000}});
    if let Some(r) = redis {
        c["redis"] = json!({"url": r.url()});
    }
    c
}

#[test]
fn the_restarted_binary_makes_no_new_initialize_and_logs_the_notes_markers() {
    let redis = RedisServer::start();
    let mock = legacy_mock(0);
    let mut first = HubProcess::start("restart-1", &process_config(&mock, Some(&redis)));
    let id = Client::connect(&first.url()).call("get_session_id").unwrap();
    let log = first.log_text();
    for marker in [
        "NEW REQUEST STARTED".to_string(),
        "REQUEST COMPLETED".to_string(),
        format!("🪪 서버 세션 확인(mock): {id}"),
        format!("💾 업스트림 세션 저장 (mock/shared): {id}"),
        format!("📨 업스트림 요청에 세션 적용(mock): {id}"),
    ] {
        assert!(log.contains(&marker), "hub log lacks {marker:?}:\n{log}");
    }
    // Graceful stop keeps the session (Redis has it); a kill -9 too.
    first.terminate();
    assert_eq!(mock.stats()["sessions_active"], 1, "a hub with Redis does not DELETE its sessions at shutdown");
    let mut second = HubProcess::start("restart-2", &process_config(&mock, Some(&redis)));
    assert_eq!(Client::connect(&second.url()).call("get_session_id").unwrap(), id);
    second.kill();
    let third = HubProcess::start("restart-3", &process_config(&mock, Some(&redis)));
    let (ok, failed) = load(&third.url(), 10, "get_session_id", Instant::now(), 1);
    assert!(failed.is_empty() && ok.iter().all(|s| *s == id), "{ok:?} {failed:?}");
    assert_eq!(initializes(&mock), 1, "restarts made zero new initialize calls");
    assert!(!third.log_text().contains("🪪"), "the third hub initialized nothing");
}

#[test]
fn expiring_sessions_heal_under_seventy_clients_without_a_client_visible_error() {
    let redis = RedisServer::start();
    let mock = legacy_mock(50);
    let hub = HubProcess::start("expire", &process_config(&mock, Some(&redis)));
    let (ok, failed) = load(&hub.url(), 70, "get_session_id", Instant::now() + Duration::from_secs(20), 1_000_000);
    assert!(failed.is_empty(), "{} of {} calls failed: {:?}", failed.len(), ok.len() + failed.len(), &failed[..failed.len().min(3)]);
    let stats = mock.stats();
    let (inits, expired) = (stats["initialize"].as_u64().unwrap(), stats["expired_404"].as_u64().unwrap());
    assert!(expired > 0 && inits > 1, "sessions expired and were re-established: {stats}");
    let log = hub.log_text();
    let heals = log.lines().filter(|l| l.contains("♻️ 세션 무효화 (mock/shared)")).count();
    assert!(heals > 0, "♻️ logged");
    eprintln!("{} calls ok, {expired} upstream 404s, {inits} initializes, {heals} ♻️ lines", ok.len());
}

#[test]
fn a_memory_only_hub_deletes_its_upstream_sessions_at_shutdown() {
    let mock = legacy_mock(0);
    let mut hub = HubProcess::start("memory", &process_config(&mock, None));
    Client::connect(&hub.url()).call("get_session_id").unwrap();
    assert_eq!(mock.stats()["sessions_active"], 1);
    hub.terminate();
    assert_eq!(mock.stats()["sessions_active"], 0, "the session was DELETEd upstream");
}
