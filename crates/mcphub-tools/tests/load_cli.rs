//! `mcphub-load` end to end: the real binary against real `mcphub_mock`
//! servers on loopback, served in this process by the hub's HTTP layer as the
//! `mcphub-mock` binary serves them (legacy, modern, compared, expiring
//! sessions, a slow server, a server restarted under load), and its argument
//! errors.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use mcphub::http::{Server, ServerConfig, ServerHandle};
use mcphub_mock::{Era, MockConfig, MockServer};
use serde_json::Value;

const LOAD: &str = env!("CARGO_BIN_EXE_mcphub-load");

/// A running mock upstream: `mcphub_mock`'s server on the hub's HTTP layer,
/// in this process (what the `mcphub-mock` binary runs), stopped on drop.
struct Mock {
    handle: ServerHandle,
    port: u16,
}

impl Drop for Mock {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

impl Mock {
    /// A mock of `era` on a free loopback port, tuned by `tune`.
    fn start(era: Era, tune: impl FnOnce(&mut MockConfig)) -> Mock {
        let mut cfg = MockConfig { era, ..MockConfig::default() };
        tune(&mut cfg);
        Mock::start_on(0, MockServer::new(cfg))
    }

    /// `server` on `port` (0: any free port). The drain time is zero, so a
    /// dropped mock cuts its calls in flight like a killed process.
    fn start_on(port: u16, server: MockServer) -> Mock {
        let server_cfg = ServerConfig { workers: 64, drain_timeout: Duration::ZERO, ..ServerConfig::default() };
        let handle = Server::bind(SocketAddr::from(([127, 0, 0, 1], port)), server_cfg, Arc::new(server))
            .unwrap_or_else(|e| panic!("the mock cannot listen on port {port}: {e}"));
        let port = handle.local_addr().port();
        Mock { handle, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    /// GET /stats as JSON.
    fn stats(&self) -> Value {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP answer");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        serde_json::from_str(body).unwrap_or_else(|e| panic!("stats JSON ({e}): {body}"))
    }
}

fn tmp_json(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("mcphub-load-test-{}-{name}.json", std::process::id()))
}

fn load(args: &[&str]) -> (Output, String) {
    let out = Command::new(LOAD).args(args).output().expect("mcphub-load runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    (out, stdout)
}

fn read_json(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).expect("the --json file");
    let _ = std::fs::remove_file(path);
    serde_json::from_str(&text).unwrap()
}

fn errors_sum(summary: &Value) -> u64 {
    summary["errors"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum()
}

const SCENARIO: [&str; 8] = ["--concurrency", "20", "--tool", "echo", "--args", r#"{"text":"hi"}"#, "--rounds", "3"];

#[test]
fn twenty_legacy_clients_share_nothing_but_the_server_and_all_succeed() {
    let mock = Mock::start(Era::Legacy, |_| ());
    let json = tmp_json("legacy");
    let url = mock.url();
    let mut args = vec!["--url", url.as_str(), "--json", json.to_str().unwrap(), "--timeout-ms", "10000"];
    args.extend(SCENARIO);
    let (out, stdout) = load(&args);
    assert_eq!(out.status.code(), Some(0));
    for r in 1..=3 {
        assert!(stdout.contains(&format!("round={r} ok=20/20\n")), "{stdout}");
    }
    assert!(stdout.contains("agg_ok=60/60"), "{stdout}");
    assert!(stdout.contains("latency_ms p50=") && stdout.contains("errors: none"), "{stdout}");
    let j = read_json(&json);
    assert_eq!((j["ok"].as_u64(), j["total"].as_u64(), j["rounds"].as_u64()), (Some(60), Some(60), Some(3)));
    assert_eq!((j["era"].as_str(), j["concurrency"].as_u64(), &j["errors"]), (Some("legacy"), Some(20), &serde_json::json!({})));
    assert!(j["p50_ms"].as_f64().unwrap() <= j["p99_ms"].as_f64().unwrap());
    let stats = mock.stats();
    assert_eq!(stats["initialize"], 20, "one session per client: {stats}");
    assert_eq!(stats["tools"]["echo"], 60, "{stats}");
}

#[test]
fn modern_clients_call_without_initialize_and_send_the_key() {
    let mock = Mock::start(Era::Modern, |_| ());
    let json = tmp_json("modern");
    let url = mock.url();
    let mut args = vec!["--url", url.as_str(), "--era", "modern", "--key", "s3cret-key", "--json", json.to_str().unwrap()];
    args.extend(SCENARIO);
    let (out, stdout) = load(&args);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout.contains("round=1 ok=20/20") && stdout.contains("agg_ok=60/60"), "{stdout}");
    assert!(!stdout.contains("s3cret") && !String::from_utf8_lossy(&out.stderr).contains("s3cret"));
    let j = read_json(&json);
    assert_eq!((j["ok"].as_u64(), j["total"].as_u64(), j["era"].as_str()), (Some(60), Some(60), Some("modern")));
    let stats = mock.stats();
    assert_eq!(stats["initialize"], 0, "{stats}");
    assert_eq!(stats["tools"]["echo"], 60, "{stats}");
    use sha2::Digest;
    let want = hex::encode(sha2::Sha256::digest(b"Bearer s3cret-key"));
    assert_eq!(stats["last_authorization_sha"], want.as_str(), "{stats}");
}

#[test]
fn compare_url_runs_the_same_scenario_twice_and_prints_both() {
    let a = Mock::start(Era::Legacy, |_| ());
    let b = Mock::start(Era::Legacy, |_| ());
    let json = tmp_json("compare");
    let (ua, ub) = (a.url(), b.url());
    let mut args = vec!["--url", ua.as_str(), "--compare-url", ub.as_str(), "--json", json.to_str().unwrap()];
    args.extend(SCENARIO);
    let (out, stdout) = load(&args);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout.matches("agg_ok=60/60").count(), 2, "{stdout}");
    // Each URL: its summary line and its table row.
    assert!(stdout.matches(&ua).count() >= 2 && stdout.matches(&ub).count() >= 2, "{stdout}");
    let table = stdout.lines().skip_while(|l| !l.starts_with("url ")).collect::<Vec<_>>();
    assert_eq!(table.len(), 3, "{stdout}");
    assert!(table[1].starts_with(&ua) && table[2].starts_with(&ub), "{stdout}");
    let j = read_json(&json);
    let runs = j.as_array().expect("an array of two runs");
    assert_eq!(runs.len(), 2);
    assert_eq!((runs[0]["url"].as_str(), runs[1]["url"].as_str()), (Some(ua.as_str()), Some(ub.as_str())));
    assert!(runs.iter().all(|r| r["ok"] == 60 && r["total"] == 60), "{j}");
    assert_eq!((a.stats()["tools"]["echo"].as_u64(), b.stats()["tools"]["echo"].as_u64()), (Some(60), Some(60)));
}

#[test]
fn expired_sessions_count_as_session_404_and_the_clients_initialize_again() {
    let mock = Mock::start(Era::Legacy, |c| c.expire_sessions_every = 7);
    let json = tmp_json("expire");
    let url = mock.url();
    let mut args = vec!["--url", url.as_str(), "--json", json.to_str().unwrap()];
    args.extend(SCENARIO);
    let (out, stdout) = load(&args);
    assert_eq!(out.status.code(), Some(0));
    for r in 1..=3 {
        assert!(stdout.contains(&format!("round={r} ok=")), "{stdout}");
    }
    let j = read_json(&json);
    let (ok, total) = (j["ok"].as_u64().unwrap(), j["total"].as_u64().unwrap());
    let session_404 = j["errors"]["session_404"].as_u64().unwrap_or(0);
    assert_eq!(total, 60, "{j}");
    assert_eq!(ok + errors_sum(&j), total, "every call is ok or one error: {j}");
    // The first 7 session uses of round 1 are calls, so at least one call meets an expiry.
    assert!(session_404 >= 1, "{j}");
    assert_eq!(errors_sum(&j), session_404, "the mock fails calls only by expiring sessions: {j}");
    assert!(stdout.contains(&format!("agg_ok={ok}/60")) && stdout.contains("session_404="), "{stdout}");
    let stats = mock.stats();
    // Each expired call's client initialized again (and a few initialized
    // notifications met an expiry too, which also re-initializes).
    assert!(stats["initialize"].as_u64().unwrap() >= 20 + session_404, "{stats} {j}");
    assert!(stats["expired_404"].as_u64().unwrap() >= session_404, "{stats} {j}");
    // Re-initialized clients went on calling: every ok call ran on the mock.
    assert_eq!(stats["tools"]["echo"].as_u64().unwrap(), ok, "{stats} {j}");
}

#[test]
fn sse_answers_are_read_to_the_response_with_the_call_id() {
    // test_tool_with_logging answers on an SSE stream: log notifications, then the result.
    let mock = Mock::start_on(0, MockServer::with_conformance_fixtures(MockConfig { era: Era::Legacy, ..MockConfig::default() }));
    let json = tmp_json("sse");
    let url = mock.url();
    let args = ["--url", url.as_str(), "--concurrency", "5", "--tool", "test_tool_with_logging", "--rounds", "2", "--json", json.to_str().unwrap()];
    let (out, stdout) = load(&args);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout.contains("round=2 ok=5/5") && stdout.contains("agg_ok=10/10"), "{stdout}");
    let j = read_json(&json);
    assert_eq!((j["ok"].as_u64(), j["total"].as_u64()), (Some(10), Some(10)), "{j}");
}

#[test]
fn a_server_slower_than_the_budget_counts_timeouts_and_still_exits_zero() {
    let mock = Mock::start(Era::Modern, |c| c.latency = Duration::from_millis(1500));
    let json = tmp_json("timeout");
    let url = mock.url();
    let args = ["--url", url.as_str(), "--era", "modern", "--concurrency", "3", "--tool", "echo", "--timeout-ms", "200", "--json", json.to_str().unwrap()];
    let (out, stdout) = load(&args);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout.contains("round=1 ok=0/3") && stdout.contains("agg_ok=0/3") && stdout.contains("timeout=3"), "{stdout}");
    let j = read_json(&json);
    assert_eq!(j["errors"], serde_json::json!({"timeout": 3}), "{j}");
}

#[test]
fn bad_arguments_and_an_unreachable_server_exit_2_with_a_message() {
    let cases: [(&[&str], &str); 4] = [
        (&["--url", "http://127.0.0.1:9/mcp", "--tool", "echo", "--concurrency", "0"], "--concurrency"),
        (&["--url", "http://127.0.0.1:9/mcp", "--tool", "echo", "--args", "{not json"], "--args"),
        (&["--url", "http://127.0.0.1:9/mcp", "--tool", "echo", "--args", "[1]"], "--args"),
        (&["--url", "http://127.0.0.1:9/mcp", "--tool", "echo", "--era", "future"], "--era"),
    ];
    for (args, needle) in cases {
        let (out, _) = load(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    // Nothing listens there (a port taken then freed): no client initializes.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/mcp");
    let (out, _) = load(&["--url", &url, "--tool", "echo", "--concurrency", "2", "--key", "s3cret-key"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no client could initialize") && stderr.contains("connect_refused=2"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");
}

/// A background `mcphub-load`, killed on drop if it is still running.
struct Load(Option<Child>);

impl Drop for Load {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn a_restarted_server_costs_counted_failures_then_the_clients_back_off_reinitialize_and_go_on() {
    let first = Mock::start(Era::Legacy, |_| ());
    let port = first.port;
    let json = tmp_json("restart");
    let url = first.url();
    let child = Command::new(LOAD)
        .args(["--url", url.as_str(), "--concurrency", "5", "--tool", "echo", "--args", r#"{"text":"hi"}"#, "--duration", "6"])
        .args(["--timeout-ms", "5000"])
        .args(["--json", json.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mcphub-load starts");
    let mut load = Load(Some(child));
    // Wait (bounded) until the clients are calling, then stop the server (calls in flight cut).
    let mut calls = 0;
    for _ in 0..200 {
        calls = first.stats()["tools"]["echo"].as_u64().unwrap_or(0);
        if calls >= 20 {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(calls >= 20, "the clients never got going: {calls} calls");
    drop(first);
    std::thread::sleep(Duration::from_millis(700));
    // The same port again: a new server that knows none of the old sessions.
    let second = Mock::start_on(port, MockServer::new(MockConfig { era: Era::Legacy, ..MockConfig::default() }));
    let out = load.0.take().unwrap().wait_with_output().expect("mcphub-load ends");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let j = read_json(&json);
    let (ok, total) = (j["ok"].as_u64().unwrap(), j["total"].as_u64().unwrap());
    assert_eq!(ok + errors_sum(&j), total, "every call is ok or one error: {j}");
    let kinds: Vec<&String> = j["errors"].as_object().unwrap().keys().collect();
    assert!(kinds.iter().all(|k| ["connect_refused", "connection_reset", "session_404"].contains(&k.as_str())), "{j}");
    // While it was down: refused (or cut) calls, each followed by a pause.
    let unreachable = j["errors"]["connect_refused"].as_u64().unwrap_or(0) + j["errors"]["connection_reset"].as_u64().unwrap_or(0);
    assert!(unreachable >= 1, "{j}");
    assert!(j["recoveries"]["backoff"].as_u64().unwrap_or(0) >= 1, "{j}");
    // Back up: each client's old session is unknown → 404, a new session, calls go on.
    let session_404 = j["errors"]["session_404"].as_u64().unwrap_or(0);
    assert!(session_404 >= 1, "{j}");
    assert_eq!(j["recoveries"]["session_404_reinit"].as_u64(), Some(session_404), "{j}");
    let stats = second.stats();
    assert_eq!(stats["initialize"].as_u64(), Some(session_404), "one new session per 404: {stats} {j}");
    // Every initialize sent to the new server came from a client that had a session: all re-initializations.
    assert_eq!(j["reinitializations"].as_u64(), Some(session_404), "{j}");
    // Each failed call is listed with when it was sent, within the run.
    let failed = j["failed_calls"].as_array().unwrap();
    assert_eq!(failed.len() as u64, errors_sum(&j), "{j}");
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    assert!(failed.iter().all(|f| f[0].as_u64().is_some_and(|t| t <= now_ms && t + 60_000 > now_ms) && f[2].is_string()), "{j}");
    assert!(stats["tools"]["echo"].as_u64().unwrap() >= 1, "the clients went on calling: {stats}");
    assert!(stdout.contains("recoveries: ") && stdout.contains("session_404_reinit="), "{stdout}");
}

#[test]
fn a_429_counts_its_status_and_the_client_waits_its_retry_after_before_the_next_call() {
    // One call at a time, each 300 ms: of 4 simultaneous calls, the mock refuses 3 with 429 + Retry-After: 1.
    let mock = Mock::start(Era::Modern, |c| {
        c.max_concurrency = Some(1);
        c.latency = Duration::from_millis(300);
    });
    let json = tmp_json("retry-after");
    let url = mock.url();
    let args = ["--url", url.as_str(), "--era", "modern", "--concurrency", "4", "--tool", "echo", "--args", r#"{"text":"hi"}"#, "--rounds", "2"];
    let args = [&args[..], &["--json", json.to_str().unwrap()]].concat();
    let (out, stdout) = load(&args);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let j = read_json(&json);
    let refused = j["errors"]["http_429"].as_u64().unwrap_or(0);
    assert!(refused >= 1, "{j}");
    assert_eq!(j["ok"].as_u64().unwrap() + refused, 8, "only 429s fail: {j}");
    // Each refused call of round 1 made its client wait before its round-2 call.
    assert!(j["recoveries"]["retry_after"].as_u64().unwrap_or(0) >= 1, "{j}");
    assert_eq!(mock.stats()["rejected_429"].as_u64(), Some(refused), "{j}");
}
