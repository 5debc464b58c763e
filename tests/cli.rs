//! The `mcphub` binary itself: `check-config` and `serve` with env overrides.

mod http_util;
mod wait_util;

use http_util::roundtrip;
use wait_util::wait_until;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
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
                           "fs": {"command": "sh", "env": {"FS_KEY": "envsekrit"}},
                           "ws": {"type": "websocket", "url": "ws://x.invalid/"}}}"#,
    );
    let out = Command::new(BIN).args(["check-config", "--config"]).arg(&path).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("gh") && stdout.contains("https://example.invalid/mcp"), "{stdout}");
    assert!(stdout.contains("fs") && stdout.contains("stdio: sh (env: FS_KEY; maxProcesses 16"), "{stdout}");
    assert!(stdout.contains("ws") && stdout.contains("not supported yet"), "{stdout}");
    assert!(!stdout.contains("sekrit"), "header values, env values and tokens are never printed");
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
    let resp = roundtrip(("127.0.0.1", port), b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("an answer");
    assert_eq!(resp.status, 200, "{}", resp.text());

    // SIGTERM drains and exits 0.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
    let status = wait_until("the hub to stop after SIGTERM", Duration::from_secs(10), || child.0.try_wait().unwrap());
    assert!(status.success(), "{status:?}");
}

/// Issue 19: a stdio entry whose command or cwd cannot work stops
/// `check-config` with the key and the path.
#[test]
fn check_config_names_a_stdio_command_or_cwd_that_cannot_work() {
    let plain = write_config("stdio-plain", "{}");
    for (name, entry, expected) in [
        ("stdio-missing", r#"{"command": "/nope/x"}"#.to_string(), "mcphub: mcpServers.fs.command: '/nope/x' does not exist".to_string()),
        (
            "stdio-not-executable",
            format!(r#"{{"command": "{}"}}"#, plain.display()),
            format!("mcphub: mcpServers.fs.command: '{}' is not executable", plain.display()),
        ),
        (
            "stdio-cwd",
            r#"{"command": "sh", "cwd": "/nope/dir"}"#.to_string(),
            "mcphub: mcpServers.fs.cwd: '/nope/dir' does not exist".to_string(),
        ),
    ] {
        let (ok, stdout, stderr) = check_config(&write_config(name, &format!(r#"{{"mcpServers": {{"fs": {entry}}}}}"#)), &[]);
        assert!(!ok, "{name}: {stdout}");
        assert_eq!(stderr.trim_end(), expected, "{name}");
    }
}

fn check_config(path: &std::path::Path, env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(BIN).args(["check-config", "--config"]).arg(path).envs(env.iter().copied()).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Issue 14, hole 6: the typos that used to pass with "config OK" now stop
/// `check-config` with the key path and the nearest known key.
#[test]
fn check_config_refuses_typos_and_duplicate_keys_naming_the_key() {
    let digest = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    for (name, text, expected) in [
        (
            "header",
            r#"{"mcpServers": {"gh": {"url": "https://x.invalid/mcp", "header": {"Authorization": "Bearer ${user.GITHUB_TOKEN}"}}}}"#.to_string(),
            r#"mcphub: mcpServers.gh.header: unknown key — did you mean "headers"?"#.to_string(),
        ),
        (
            "timeout-case",
            r#"{"mcpServers": {"docs": {"url": "https://x.invalid/mcp", "timeoutMS": 20000}}}"#.to_string(),
            r#"mcphub: mcpServers.docs.timeoutMS: unknown key — did you mean "timeoutMs"?"#.to_string(),
        ),
        (
            "timeout-type",
            r#"{"mcpServers": {"docs": {"url": "https://x.invalid/mcp", "timeoutMs": "20000"}}}"#.to_string(),
            r#"mcphub: mcpServers.docs.timeoutMs: expected an integer, got the string "20000""#.to_string(),
        ),
        (
            "dup-digest",
            format!(r#"{{"users": {{"alice": {{"keys": ["{digest}"]}}, "bob": {{"keys": ["{digest}"]}}}}}}"#),
            "mcphub: users.bob.keys: the key sha256:11111111… is listed under both users 'alice' and 'bob': a key belongs to one user".to_string(),
        ),
    ] {
        let (ok, stdout, stderr) = check_config(&write_config(name, &text), &[]);
        assert!(!ok, "{name}: {stdout}");
        assert_eq!(stderr.trim_end(), expected, "{name}");
        assert!(!stdout.contains("config OK"), "{name}: {stdout}");
    }
}

/// Keys of other MCP clients, an unused token and a `${user.X}` no config
/// user has are warnings: printed, exit 0.
#[test]
fn check_config_prints_warnings_and_exits_zero() {
    let path = write_config(
        "warnings",
        r#"{"users": {"al": {"tokens": {"GITHUB_TOKN": "t0k"}}},
            "mcpServers": {"gh": {"url": "https://x.invalid/mcp", "autoApprove": [], "headers": {"Authorization": "Bearer ${user.GITHUB_TOKEN}"}}}}"#,
    );
    let (ok, stdout, stderr) = check_config(&path, &[]);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.ends_with("config OK (3 warnings)\n"), "{stdout}");
    let warnings: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        warnings,
        [
            "mcphub: warning: mcpServers.gh.autoApprove: ignored — a key other MCP clients write, not used by the hub",
            r#"mcphub: warning: users.al.tokens.GITHUB_TOKN: no server uses this token (no ${user.GITHUB_TOKN} in any mcpServers headers) — did you mean "GITHUB_TOKEN"?"#,
            "mcphub: warning: mcpServers.gh.headers.Authorization: no config user has token GITHUB_TOKEN (${user.GITHUB_TOKEN}); users without it do not see 'gh' until they set it (PUT /api/me/tokens/GITHUB_TOKEN)",
        ]
    );
    assert!(!stderr.contains("t0k") && !stdout.contains("t0k"), "token values are never printed");
}

#[test]
fn serve_help_names_users_the_admin_token_and_the_secret_key_variables() {
    let out = Command::new(BIN).args(["serve", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in ["Users and keys", "\"users\"", "adminToken", "MCPHUB_SECRET_KEY_FILE", "MCPHUB_SECRET_KEY ", "mcphub keygen --user", "/api/me/tokens/"] {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
}

/// `mcphub keygen --user NAME` prints a whole config snippet — the user with
/// the key's digest and a token, a server whose header names the token as
/// `${user.GITHUB_TOKEN}` — that `check-config` accepts without warnings
/// once the token's environment variable is set.
#[test]
fn keygen_prints_a_snippet_with_tokens_and_a_user_header_that_check_config_accepts() {
    let out = Command::new(BIN).args(["keygen", "--user", "alice"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    let key = lines[0].strip_prefix("key: ").unwrap();
    assert!(mcphub::users::looks_like_key(key), "{stdout}");
    assert!(lines[2].contains("ALICE_GITHUB_TOKEN") && lines[2].contains("PUT /api/me/tokens/GITHUB_TOKEN"), "{stdout}");
    let snippet: serde_json::Value = serde_json::from_str(&lines[3..].join("\n")).unwrap();
    let alice = &snippet["users"]["alice"];
    assert_eq!(alice["keys"], serde_json::json!([format!("sha256:{}", mcphub::users::key_digest(key))]));
    assert_eq!(alice["tokens"], serde_json::json!({"GITHUB_TOKEN": "${env.ALICE_GITHUB_TOKEN}"}));
    assert_eq!(alice.get("admin"), None, "not an admin without --admin");
    let server = snippet["mcpServers"].as_object().unwrap().values().next().unwrap();
    assert!(server["headers"]["Authorization"].as_str().unwrap().contains("${user.GITHUB_TOKEN}"), "{snippet}");

    let path = write_config("keygen", &snippet.to_string());
    let (ok, stdout, stderr) = check_config(&path, &[("ALICE_GITHUB_TOKEN", "ghp_from_env_123")]);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.ends_with("config OK\n") && stderr.is_empty(), "{stdout}{stderr}");
    assert!(stdout.contains("user tokens: GITHUB_TOKEN") && !stdout.contains("ghp_from_env_123"), "{stdout}");
    // Without the variable, the check says which one to set.
    let (ok, _, stderr) = check_config(&path, &[]);
    assert!(!ok && stderr.contains("users.alice.tokens.GITHUB_TOKEN: environment variable ALICE_GITHUB_TOKEN is not set"), "{stderr}");
}
