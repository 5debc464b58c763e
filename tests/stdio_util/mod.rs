//! Helpers of the stdio tests (issue 19): a hub serving `mcphub-mock
//! --stdio` as server `m` to users with their own `TOKEN`, and counts of the
//! mock processes one test started (tagged through their environment, so
//! tests running side by side in one binary do not count each other's).

#![allow(dead_code)]

use crate::hub_util::{hub, tool_text, Client, HubUnderTest};
use mcphub::users::{key_digest, new_key};
use serde_json::{json, Value};
use std::path::PathBuf;

/// The mock binary next to this test's own (cargo builds the workspace's
/// binaries before its tests).
pub fn mock_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target/<profile>");
    let bin = dir.join("mcphub-mock");
    assert!(bin.is_file(), "{} is missing: build the workspace first (cargo build --release --workspace)", bin.display());
    bin
}

/// A user with a fresh hub key and a `TOKEN`.
pub struct User {
    pub name: String,
    pub key: String,
    pub token: String,
}

pub fn user(name: &str, token: &str) -> User {
    User { name: name.into(), key: new_key(), token: token.into() }
}

/// A hub serving one stdio server `m` (the mock, `TOKEN=${user.TOKEN}`,
/// `STDIO_TEST=tag`) with `server` keys added, to `users`, with `extra`
/// top-level keys.
pub fn stdio_hub(tag: &str, users: &[User], server: Value, extra: Value) -> HubUnderTest {
    let mut m = json!({
        "command": mock_binary(),
        "args": ["--stdio", "--name", "m"],
        "env": {"TOKEN": "${user.TOKEN}", "STDIO_TEST": tag},
        "timeoutMs": 6000,
    });
    for (k, v) in server.as_object().expect("server keys") {
        m[k] = v.clone();
    }
    let users: serde_json::Map<String, Value> = users
        .iter()
        .map(|u| (u.name.clone(), json!({"keys": [format!("sha256:{}", key_digest(&u.key))], "tokens": {"TOKEN": u.token}})))
        .collect();
    let mut cfg = json!({"users": users, "timeouts": {"hubMs": 8000}, "mcpServers": {"m": m}});
    for (k, v) in extra.as_object().expect("extra keys") {
        cfg[k] = v.clone();
    }
    hub(&[], cfg)
}

pub fn call(c: &Client, tool: &str, args: Value) -> Result<String, String> {
    c.request("tools/call", json!({"name": tool, "arguments": args})).and_then(|m| tool_text(&m))
}

pub fn readyz(h: &HubUnderTest) -> Value {
    let r = crate::hub_util::send("GET", &h.url.replace("/mcp", "/readyz"), &[], "");
    serde_json::from_str(&r.text).expect("readyz JSON")
}

pub fn processes(h: &HubUnderTest) -> Value {
    readyz(h)["servers"]["m"]["processes"].clone()
}

pub fn count(h: &HubUnderTest, state: &str) -> u64 {
    processes(h)[state].as_u64().unwrap_or_else(|| panic!("processes.{state} in /readyz: {}", processes(h)))
}

/// This test process's `mcphub-mock` children started with `STDIO_TEST=tag`
/// (alive), and its `mcphub-mock` children that are zombies (any tag: a
/// zombie's environment cannot be read).
pub fn children(tag: &str) -> (usize, usize) {
    let marker = format!("STDIO_TEST={tag}");
    let me = std::process::id().to_string();
    let (mut alive, mut zombies) = (0, 0);
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // pid (comm) state ppid …
        let Some((comm_end, rest)) = stat.rfind(')').map(|i| (i, &stat[i + 2..])) else { continue };
        let comm = stat[..comm_end].split_once('(').map(|(_, c)| c).unwrap_or("");
        let mut fields = rest.split_whitespace();
        let (state, ppid) = (fields.next().unwrap_or(""), fields.next().unwrap_or(""));
        if ppid != me || !comm.starts_with("mcphub-mock") {
            continue;
        }
        if state == "Z" {
            zombies += 1;
        } else if std::fs::read(entry.path().join("environ")).is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == marker.as_bytes())) {
            alive += 1;
        }
    }
    (alive, zombies)
}

pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd").count()
}


/// `sleep` for `ms` on `c`'s session from another thread (its own
/// connection): the result, and when it came.
pub fn sleep_in_background(c: &Client, ms: u64) -> std::thread::JoinHandle<(Result<String, String>, std::time::Instant)> {
    let c = Client { agent: crate::hub_util::agent(), url: c.url.clone(), sid: c.sid.clone(), key: c.key.clone() };
    std::thread::spawn(move || (call(&c, "sleep", json!({"ms": ms})), std::time::Instant::now()))
}
