//! The per-request info line of `mcphub serve`, in text and JSON
//! (`--log-format json` / `MCPHUB_LOG_FORMAT`), with the real binary: one
//! line per `/mcp` request with its fields, request ids on the request's
//! debug lines, scrapes not logged, and a hub key never written (issue 7).

mod hub_util;

use hub_util::*;
use mcphub_mock::Era;
use mcphub::users::{key_digest, new_key};
use serde_json::{json, Value};

struct Setup {
    _up: Mock,
    hub: HubProcess,
    key: String,
}

fn start(name: &str, env: &[(&str, &str)]) -> Setup {
    let up = mock(Era::Legacy, "m");
    let key = new_key();
    let config = json!({
        "mcpServers": {"m": {"type": "streamable-http", "url": up.url, "timeoutMs": 5000}},
        "users": {"alice": {"keys": [format!("sha256:{}", key_digest(&key))]}},
    });
    let hub = HubProcess::start_env(name, &config, env);
    Setup { _up: up, hub, key }
}

/// Runs the same traffic against a hub: initialize, two echo calls (ids
/// `rid-call-1`, `rid-call-2`), a call naming an unknown tool whose name is
/// the hub key itself, and scrapes of /healthz, /readyz and /metrics.
/// Returns the number of `/mcp` requests made.
fn traffic(s: &Setup) -> usize {
    let url = s.hub.url();
    let auth = format!("Bearer {}", s.key);
    let base = [ACCEPT, JSON, ("Authorization", auth.as_str())];
    let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let mut h = base.to_vec();
    h.push(("X-Request-Id", "rid-init"));
    let r = send("POST", &url, &h, init);
    assert_eq!(r.status, 200, "{}", r.text);
    let sid = r.header("mcp-session-id").unwrap().to_string();
    let mut on_session = base.to_vec();
    on_session.extend([("Mcp-Session-Id", sid.as_str()), ("MCP-Protocol-Version", "2025-06-18")]);
    let body = |tool: &str| json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": {"text": "hi"}}}).to_string();
    for id in ["rid-call-1", "rid-call-2"] {
        let mut h = on_session.clone();
        h.push(("X-Request-Id", id));
        let r = send("POST", &url, &h, &body("echo"));
        assert_eq!((r.status, r.header("x-request-id")), (200, Some(id)), "{}", r.text);
    }
    let mut h = on_session.clone();
    h.push(("X-Request-Id", "rid-keyname"));
    let r = send("POST", &url, &h, &body(&s.key));
    assert!(r.json().get("error").is_some(), "{}", r.text);
    let root = url.trim_end_matches("/mcp").to_string();
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(send("GET", &format!("{root}{path}"), &[], "").status, 200);
    }
    4
}

#[test]
fn text_lines_one_per_request_with_fields_and_ids() {
    let mut s = start("reqlog-text", &[]);
    let n = traffic(&s);
    s.hub.terminate();
    let log = s.hub.log_text();
    assert!(!log.contains(&s.key), "the hub key was written:\n{log}");
    let request_lines: Vec<&str> = log.lines().filter(|l| l.contains("[INFO] request ")).collect();
    assert_eq!(request_lines.len(), n, "one info line per /mcp request, none for scrapes:\n{log}");
    for id in ["rid-init", "rid-call-1", "rid-call-2", "rid-keyname"] {
        let mine: Vec<&&str> = request_lines.iter().filter(|l| l.contains(&format!("request {id} "))).collect();
        assert_eq!(mine.len(), 1, "{id}:\n{log}");
    }
    let call = request_lines.iter().find(|l| l.contains("request rid-call-1 ")).unwrap();
    for field in ["tools/call", "tool=echo", "server=m", "user=alice", "status=200", "era=legacy", "ms "] {
        assert!(call.contains(field), "{field} missing in {call}");
    }
    let unknown = request_lines.iter().find(|l| l.contains("request rid-keyname ")).unwrap();
    assert!(unknown.contains("tool=mcphub_***") && unknown.contains(" rpc="), "{unknown}");
    // The hub's debug lines for a request carry its id (DEBUG_MCPHUB=true).
    assert!(
        log.lines().any(|l| l.contains("[DEBUG]") && l.contains("NEW REQUEST STARTED") && l.contains("[req rid-call-2]")),
        "debug lines carry the request id:\n{log}"
    );
}

#[test]
fn json_lines_parse_with_the_request_fields() {
    let mut s = start("reqlog-json", &[("MCPHUB_LOG_FORMAT", "json")]);
    let n = traffic(&s);
    s.hub.terminate();
    let log = s.hub.log_text();
    assert!(!log.contains(&s.key), "the hub key was written:\n{log}");
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    for l in &lines {
        assert!(l["ts"].as_str().is_some_and(|t| t.ends_with('Z')) && l["level"].is_string() && l["msg"].is_string(), "{l}");
    }
    let requests: Vec<&Value> = lines.iter().filter(|l| l["level"] == "info" && l.get("duration_ms").is_some()).collect();
    assert_eq!(requests.len(), n, "one request line per /mcp request:\n{log}");
    let call = requests.iter().find(|l| l["request_id"] == "rid-call-1").unwrap_or_else(|| panic!("{log}"));
    assert_eq!(call["method"], "tools/call", "{call}");
    assert_eq!(call["tool"], "echo", "{call}");
    assert_eq!(call["server"], "m", "{call}");
    assert_eq!(call["user"], "alice", "{call}");
    assert_eq!(call["status"], 200, "{call}");
    assert_eq!(call["rpc_code"], Value::Null, "{call}");
    assert_eq!(call["era"], "legacy", "{call}");
    assert!(call["duration_ms"].is_u64(), "{call}");
    let unknown = requests.iter().find(|l| l["request_id"] == "rid-keyname").unwrap();
    assert_eq!(unknown["tool"], "mcphub_***", "{unknown}");
    assert!(unknown["rpc_code"].is_i64(), "{unknown}");
    assert!(
        lines.iter().any(|l| l["level"] == "debug" && l["request_id"] == "rid-call-2"),
        "debug lines of a request carry request_id:\n{log}"
    );
}
