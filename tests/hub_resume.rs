//! Resumable call streams for legacy clients (2025-11-25 transports,
//! Resumability and Redelivery): priming event, event ids, GET with
//! Last-Event-ID replaying what followed, only for the owning session.

mod hub_util;

use hub_util::*;
use mcphub::mock::Era;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Raw-socket request; returns the reader positioned after the head.
fn open(addr: &str, head: &str, body: &str) -> BufReader<TcpStream> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "{head}Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" {
            return r;
        }
    }
}

/// The next SSE event (id, data) from a chunked stream, skipping framing lines.
fn next_event(r: &mut BufReader<TcpStream>) -> Option<(Option<String>, String)> {
    let (mut id, mut data, mut line) = (None, None::<String>, String::new());
    loop {
        line.clear();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let l = line.trim_end();
        if let Some(v) = l.strip_prefix("id: ") {
            id = Some(v.to_string());
        } else if let Some(v) = l.strip_prefix("data:") {
            data = Some(v.trim_start().to_string());
        } else if l.is_empty() && data.is_some() {
            return Some((id, data.unwrap_or_default()));
        }
    }
}

#[test]
fn a_cut_stream_is_resumed_with_last_event_id_and_loses_nothing() {
    let up = mock(Era::Legacy, "m");
    let h = hub(&[("m", &up.url)], json!({}));
    let sid = legacy_session(&h.url);
    let addr = h.url.trim_start_matches("http://").trim_end_matches("/mcp").to_string();
    let call = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "progress", "arguments": {"steps": 6, "ms": 60}, "_meta": {"progressToken": "p"}}}).to_string();
    let head = format!("POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMcp-Session-Id: {sid}\r\nMCP-Protocol-Version: 2025-11-25\r\n");
    let mut r = open(&addr, &head, &call);

    // Priming event: an id and empty data (and a retry: line before it).
    let (priming_id, data) = next_event(&mut r).expect("priming event");
    assert!(priming_id.as_deref().is_some_and(|i| i.ends_with(":0")), "{priming_id:?}");
    assert_eq!(data, "");
    let (first_id, first) = next_event(&mut r).expect("first progress");
    assert!(first.contains("notifications/progress"), "{first}");
    drop(r); // the connection breaks; the call goes on

    let get = format!("GET /mcp HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nMcp-Session-Id: {sid}\r\nLast-Event-ID: {}\r\n", first_id.clone().unwrap());
    let mut r = open(&addr, &get, "");
    let mut rest = Vec::new();
    while let Some((_, data)) = next_event(&mut r) {
        let m: Value = serde_json::from_str(&data).unwrap();
        let done = m.get("id") == Some(&json!(5));
        rest.push(m);
        if done {
            break;
        }
    }
    let progress: Vec<i64> = rest.iter().filter_map(|m| m.pointer("/params/progress").and_then(Value::as_i64)).collect();
    assert_eq!(progress, vec![2, 3, 4, 5, 6], "every later progress event, once, in order");
    assert!(text_of(rest.last().unwrap()).contains("6 steps"));
}

#[test]
fn another_session_cannot_resume_a_stream_and_plain_get_is_405() {
    let up = mock(Era::Legacy, "m");
    let h = hub(&[("m", &up.url)], json!({}));
    let (a, b) = (legacy_session(&h.url), legacy_session(&h.url));
    let r = legacy(&h.url, &a, "tools/call", json!({"name": "progress", "arguments": {"steps": 2, "ms": 1}, "_meta": {"progressToken": 1}}));
    let first_id = r.text.lines().find_map(|l| l.strip_prefix("id: ")).expect("event ids").to_string();
    let other = send("GET", &h.url, &[("Accept", "text/event-stream"), ("Mcp-Session-Id", &b), ("Last-Event-ID", &first_id)], "");
    assert_eq!(other.status, 404);
    let owner = send("GET", &h.url, &[("Accept", "text/event-stream"), ("Mcp-Session-Id", &a), ("Last-Event-ID", &first_id)], "");
    assert_eq!(owner.status, 200);
    assert_eq!(send("GET", &h.url, &[("Accept", "text/event-stream"), ("Mcp-Session-Id", &a)], "").status, 405);
}
