//! `mcphub serve` as a systemd service would run it (issue 7), with the real
//! binary: sd_notify messages on a real unix datagram socket (READY=1 once
//! /healthz answers, WATCHDOG=1 repeatedly, RELOADING=1/READY=1 on SIGHUP,
//! STOPPING=1 on SIGTERM), and the graceful drain: an in-flight call
//! completes, new connects are refused, an open GET stream ends with its
//! terminal chunk, exit status 0; a call outliving `drainTimeoutMs` is cut
//! and the process still exits 0 soon after.

mod hub_util;

use hub_util::{http_util, wait_until, PATIENCE};
use mcphub_mock::Era;
use serde_json::{json, Value};
use std::io::{BufReader, Read};
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("mcphub-svc-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The real `mcphub serve`; killed on drop if still running (also on panic).
struct Hub {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Hub {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Hub {
    fn start(dir: &Path, config: &Path, env: &[(&str, String)]) -> Hub {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = dir.join("hub.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcphub"));
        cmd.args(["serve", "--config"])
            .arg(config)
            .env("PORT", port.to_string())
            .env("MCPHUB_STATE_DIR", dir.join("state"))
            .env_remove("REDIS_URL")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Hub { child: cmd.spawn().expect("start mcphub"), port, log }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0, "kill");
    }

    fn wait_listening(&self) {
        wait_until("mcphub to listen", PATIENCE, || TcpStream::connect(("127.0.0.1", self.port)).is_ok());
    }

    /// Waits (≤ `within`) for the exit; returns the status and how long it took.
    fn wait_exit(&mut self, within: Duration) -> (ExitStatus, Duration) {
        let t0 = Instant::now();
        let st = wait_until(&format!("mcphub to exit (log: {})", self.log.display()), within, || self.child.try_wait().expect("try_wait"));
        (st, t0.elapsed())
    }

    fn healthz(&self) -> u16 {
        hub_util::send("GET", &format!("http://127.0.0.1:{}/healthz", self.port), &[], "").status
    }
}

/// A bound notify socket (what systemd's $NOTIFY_SOCKET is).
struct NotifySocket {
    sock: UnixDatagram,
    path: PathBuf,
}

impl NotifySocket {
    fn bind(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).expect("bind notify socket");
        sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        NotifySocket { sock, path }
    }

    /// Receives datagrams until one contains `line` (as a whole line) or
    /// `within` passes; returns every datagram seen, the match last.
    fn until(&self, line: &str, within: Duration) -> Vec<String> {
        let mut seen = Vec::new();
        let t0 = Instant::now();
        let mut buf = [0u8; 4096];
        while t0.elapsed() < within {
            if let Ok(n) = self.sock.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                let hit = msg.lines().any(|l| l == line);
                seen.push(msg);
                if hit {
                    return seen;
                }
            }
        }
        panic!("no {line:?} within {within:?}; got {seen:?}");
    }
}

fn write_config(dir: &Path, config: &Value) -> PathBuf {
    let path = dir.join("config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    path
}

#[test]
fn ready_watchdog_reload_and_stopping_reach_the_notify_socket() {
    let dir = TempDir::new("notify");
    let config = write_config(&dir.0, &json!({"mcpServers": {}}));
    let notify = NotifySocket::bind(&dir.0);
    let mut hub = Hub::start(
        &dir.0,
        &config,
        &[("NOTIFY_SOCKET", notify.path.display().to_string()), ("WATCHDOG_USEC", "300000".into())],
    );
    let ready = notify.until("READY=1", PATIENCE);
    // READY=1 means served: /healthz answers at once, no retry.
    assert_eq!(hub.healthz(), 200);
    let ready_msg = ready.last().unwrap();
    assert!(ready_msg.lines().any(|l| l.starts_with("STATUS=serving 0 MCP servers on http://127.0.0.1:")), "{ready_msg:?}");

    // WATCHDOG_USEC=300000: a ping every 150 ms while healthy.
    let mut pings = 0;
    for _ in 0..3 {
        notify.until("WATCHDOG=1", PATIENCE);
        pings += 1;
    }
    assert_eq!(pings, 3);

    // SIGHUP reloads (RELOADING=1 … READY=1) and never stops the service.
    hub.signal(libc::SIGHUP);
    let reload = notify.until("RELOADING=1", PATIENCE);
    assert!(reload.last().unwrap().lines().any(|l| l.starts_with("MONOTONIC_USEC=")), "{reload:?}");
    notify.until("READY=1", PATIENCE);
    assert_eq!(hub.healthz(), 200);
    assert!(hub.log_text().contains("config reloaded: +0 -0 ~0 =0"), "{}", hub.log_text());

    // A config that does not load is rejected; the running one keeps serving.
    std::fs::write(&config, r#"{"mcpServers": {"bad name!": {"url": "ftp://x"}}}"#).unwrap();
    hub.signal(libc::SIGHUP);
    notify.until("READY=1", PATIENCE);
    assert!(hub.log_text().contains("config reload rejected"), "{}", hub.log_text());
    assert_eq!(hub.healthz(), 200);
    assert!(hub.child.try_wait().unwrap().is_none(), "SIGHUP stopped the hub");

    hub.signal(libc::SIGTERM);
    notify.until("STOPPING=1", PATIENCE);
    let (status, took) = hub.wait_exit(Duration::from_secs(10));
    eprintln!("idle hub stopped {took:?} after STOPPING=1");
    assert!(status.success(), "{status:?}: {}", hub.log_text());
    // The watchdog, signal, shutdown and log-flush threads stopped and were
    // joined (issue 15 item 6; the log flusher since issue 16).
    let log = hub.log_text();
    assert!(log.contains("background threads joined: 4 (0 left running)"), "{log}");
}

/// Opens the legacy standalone GET stream of `sid` and reads its head.
fn open_get_stream(port: u16, sid: &str) -> BufReader<TcpStream> {
    let headers = [("Accept", "text/event-stream"), ("Mcp-Session-Id", sid), ("MCP-Protocol-Version", "2025-06-18")];
    let mut r = http_util::send_raw(("127.0.0.1", port), http_util::request("GET", "/mcp", &headers, "").as_bytes());
    let head = http_util::read_response(&mut r, true).expect("stream head");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("transfer-encoding"), Some("chunked"));
    r
}

#[test]
fn sigterm_drains_in_flight_calls_refuses_new_connects_and_ends_streams_politely() {
    let mock = hub_util::mock(Era::Legacy, "slow");
    let dir = TempDir::new("drain");
    let config = write_config(
        &dir.0,
        &json!({"drainTimeoutMs": 15000, "mcpServers": {"slow": {"type": "streamable-http", "url": mock.url}}}),
    );
    let mut hub = Hub::start(&dir.0, &config, &[]);
    hub.wait_listening();
    let url = hub.url();
    let sid = hub_util::legacy_session(&url);
    let mut stream = open_get_stream(hub.port, &sid);

    let call = {
        let (url, sid) = (url.clone(), sid.clone());
        std::thread::spawn(move || hub_util::legacy(&url, &sid, "tools/call", json!({"name": "sleep", "arguments": {"ms": 4000}})))
    };
    // The call is in flight at the hub once the mock has counted it (4 s
    // of sleep leave time to signal; the 15 s drain, time to finish it).
    wait_until("the call to reach the upstream", PATIENCE, || mock.stats()["tools"]["sleep"].as_u64() == Some(1));
    hub.signal(libc::SIGTERM);
    let signalled = Instant::now();
    assert!(!call.is_finished(), "the call ended before SIGTERM: the test would prove nothing");

    // New connections are refused once the drain began.
    wait_until("new connections to be refused after SIGTERM", PATIENCE, || {
        TcpStream::connect_timeout(&format!("127.0.0.1:{}", hub.port).parse().unwrap(), Duration::from_millis(200))
            .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
    });

    // The GET stream ends with the terminal chunk, then a clean FIN.
    let mut chunks = 0;
    while http_util::read_chunk(&mut stream).expect("chunked stream, not a reset").is_some() {
        chunks += 1;
        assert!(chunks < 100, "the stream did not end");
    }
    let mut rest = Vec::new();
    assert_eq!(stream.read_to_end(&mut rest).expect("clean close"), 0);

    // The in-flight call completes with its result.
    let reply = call.join().expect("call thread");
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(hub_util::text_of(&reply.json()), "slow: slept 4000 ms");

    let (status, _) = hub.wait_exit(PATIENCE);
    eprintln!("drained and exited {:?} after SIGTERM", signalled.elapsed());
    assert!(status.success(), "{status:?}: {}", hub.log_text());
    let log = hub.log_text();
    assert!(log.contains("SIGTERM received"), "{log}");
    assert!(!log.contains("call streams cut"), "nothing should be cut: {log}");
    assert!(log.contains("(0 left running)"), "every owned thread stopped and was joined: {log}");
}

#[test]
fn a_call_outliving_the_drain_timeout_is_cut_and_the_hub_still_exits_0() {
    let mock = hub_util::mock(Era::Legacy, "slow");
    let dir = TempDir::new("cut");
    let drain = Duration::from_millis(500);
    let config = write_config(
        &dir.0,
        &json!({"drainTimeoutMs": drain.as_millis() as u64, "mcpServers": {"slow": {"type": "streamable-http", "url": mock.url}}}),
    );
    let mut hub = Hub::start(&dir.0, &config, &[]);
    hub.wait_listening();
    let url = hub.url();
    let sid = hub_util::legacy_session(&url);
    // Plain JSON (no SSE): the call holds a request worker.
    let call = std::thread::spawn(move || {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "sleep", "arguments": {"ms": 10000}}}).to_string();
        let agent = hub_util::agent();
        agent
            .post(&url)
            .header("Accept", "application/json")
            .header("Content-Type", "application/json")
            .header("Mcp-Session-Id", &sid)
            .header("MCP-Protocol-Version", "2025-06-18")
            .send(&body)
            .map(|mut r| r.body_mut().read_to_string().unwrap_or_default())
    });
    wait_until("the call to reach the upstream", PATIENCE, || mock.stats()["tools"]["sleep"].as_u64() == Some(1));
    hub.signal(libc::SIGTERM);
    let (status, took) = hub.wait_exit(PATIENCE);
    eprintln!("drainTimeoutMs {} ms: exited {took:?} after SIGTERM", drain.as_millis());
    assert!(status.success(), "{status:?}: {}", hub.log_text());
    assert!(took >= drain, "exited before the drain timeout: {took:?}");
    // Cut, not waited for: under half the call's 10 s sleep (drain + ~1 s expected).
    assert!(took < Duration::from_secs(5), "exit took {took:?} (drain {drain:?} + ~1 s expected)");
    let log = hub.log_text();
    assert!(log.contains("1 requests and 0 call streams cut"), "{log}");
    // The cut call's client sees the connection end, not an answer.
    let outcome = call.join().expect("call thread");
    assert!(outcome.as_ref().map_or(true, |text| !text.contains("slept")), "{outcome:?}");
}

#[test]
fn a_listen_stream_is_ended_at_once_not_waited_for_the_whole_drain() {
    let mock = hub_util::mock(Era::Modern, "m");
    let dir = TempDir::new("listen");
    // A long drain: the hub must not spend it waiting for an open-ended stream.
    let config = write_config(&dir.0, &json!({"drainTimeoutMs": 20000, "mcpServers": {"m": {"type": "streamable-http", "url": mock.url}}}));
    let mut hub = Hub::start(&dir.0, &config, &[]);
    hub.wait_listening();
    let body = json!({"jsonrpc": "2.0", "id": "L1", "method": "subscriptions/listen", "params": {
        "notifications": {"toolsListChanged": true},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"}, "io.modelcontextprotocol/clientCapabilities": {}},
    }})
    .to_string();
    let headers = [
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
        ("MCP-Protocol-Version", "2026-07-28"),
        ("Mcp-Method", "subscriptions/listen"),
    ];
    let mut stream = http_util::send_raw(("127.0.0.1", hub.port), http_util::request("POST", "/mcp", &headers, &body).as_bytes());
    let head = http_util::read_response(&mut stream, true).expect("listen head");
    assert_eq!(head.status, 200);
    let ack = http_util::read_chunk(&mut stream).expect("ack chunk").expect("not terminal");
    assert!(String::from_utf8_lossy(&ack).contains("notifications/subscriptions/acknowledged"), "{}", String::from_utf8_lossy(&ack));

    hub.signal(libc::SIGTERM);
    let mut chunks = 0;
    while http_util::read_chunk(&mut stream).expect("chunked stream, not a reset").is_some() {
        chunks += 1;
        assert!(chunks < 100, "the stream did not end");
    }
    let (status, took) = hub.wait_exit(Duration::from_secs(10));
    eprintln!("listen stream ended; hub exited {took:?} after the terminal chunk (drainTimeoutMs 20000)");
    assert!(status.success(), "{status:?}: {}", hub.log_text());
    assert!(hub.log_text().contains("1 open-ended streams ended"), "{}", hub.log_text());
}
