//! The `mcphub` binary itself: `check-config` and `serve` with env overrides.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mcphub");

fn write_config(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mcphub-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.json");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn check_config_prints_what_it_would_serve() {
    let path = write_config(
        "ok",
        r#"{"users": {"al": {"keys": ["sha256:0000000000000000000000000000000000000000000000000000000000000000"], "tokens": {"JIRA_TOKEN": "tokensekrit"}}},
            "mcpServers": {"gh": {"url": "https://example.invalid/mcp", "headers": {"Authorization": "Bearer sekrit"}},
                           "jira": {"url": "https://jira.invalid/mcp", "headers": {"Authorization": "Bearer ${user.JIRA_TOKEN}"}},
                           "fs": {"command": "npx"}}}"#,
    );
    let out = Command::new(BIN).args(["check-config", "--config"]).arg(&path).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("gh") && stdout.contains("https://example.invalid/mcp"), "{stdout}");
    assert!(stdout.contains("fs") && stdout.contains("not supported yet"), "{stdout}");
    assert!(!stdout.contains("sekrit"), "header values and tokens are never printed");
    assert!(stdout.contains("user tokens: JIRA_TOKEN") && stdout.contains("users: 1 in the config"), "{stdout}");
}

#[test]
fn check_config_names_the_bad_key_and_exits_non_zero() {
    let path = write_config("bad", r#"{"mcpServers": {"gh": {"type": "http", "url": "gopher://x"}}}"#);
    let out = Command::new(BIN).args(["check-config", "--config"]).arg(&path).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("mcpServers.gh.url"), "{stderr}");
    let missing = Command::new(BIN).args(["check-config", "--config", "/nonexistent/mcphub.json"]).output().unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/mcphub.json"));
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn serve_takes_its_config_and_port_from_the_environment_and_stops_on_sigterm() {
    let path = write_config("serve", r#"{"port": 1, "mcpServers": {}}"#);
    let port = free_port();
    let child = Command::new(BIN)
        .arg("serve")
        .env("MCPHUB_CONFIG", &path)
        .env("PORT", port.to_string())
        .env("DEBUG_MCPHUB", "true")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Killed(child);
    let stderr = child.0.stderr.take().unwrap();
    // Read the log on a thread so a hub that hangs silently fails the test
    // at the deadline instead of hanging it.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).expect("a 'listening on' line within 10 s");
        if line.contains("listening on") {
            assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
            break;
        }
    }
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");

    // SIGTERM drains and exits 0.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = child.0.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "the hub did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}
