//! Socket-free harness for the hub's protocol behaviour (issue 15 item 7):
//! a `Hub` built from a literal JSON config, answered through
//! `Handler::handle` with a constructed `Request` (the peer is a value, no
//! connection), SSE answers run in memory (`http::sse::collect`). No
//! server, no upstream process; `tests/core_*.rs` import it with
//! `mod core_util;`.
#![allow(dead_code)]

use mcphub::config::Config;
use mcphub::http::{Body, Handler, Request};
use mcphub::hub::Hub;
use serde_json::{json, Value};
use std::net::SocketAddr;

/// Events an SSE answer is read to (a stream the hub ends on its own stops earlier).
pub const MAX_EVENTS: usize = 1000;

/// The default client address of a request.
pub const PEER: &str = "127.0.0.1:40000";

pub const ACCEPT: (&str, &str) = ("Accept", "application/json, text/event-stream");
pub const JSON: (&str, &str) = ("Content-Type", "application/json");

/// A hub from `extra` top-level config keys over the defaults (no
/// `mcpServers`, a hub deadline of 8 s, a state directory of its own): the
/// memory session store unless `extra` names Redis.
pub fn hub(extra: Value) -> Hub {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let state = std::env::temp_dir().join(format!("mcphub-core-state-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let mut cfg = json!({"mcpServers": {}, "timeouts": {"hubMs": 8000}, "stateDir": state});
    if let (Some(o), Some(e)) = (cfg.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            o.insert(k.clone(), v.clone());
        }
    }
    let config = Config::parse(&cfg.to_string()).unwrap_or_else(|e| panic!("invalid test config {cfg}: {e}"));
    Hub::new(config).expect("memory session store")
}

/// A `users` config entry holding `key` (stored as its SHA-256).
pub fn user_with_key(key: &str) -> Value {
    json!({"keys": [format!("sha256:{}", mcphub::users::key_digest(key))]})
}

/// One answer of the hub, its SSE body already read.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The body text; for an SSE answer the stream's text (`http::sse::collect`).
    pub text: String,
    /// Whether the body was an event stream (`Body::Sse`).
    pub sse: bool,
}

impl Answer {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as JSON; for an SSE answer, the last event's data.
    pub fn json(&self) -> Value {
        if self.sse {
            return self.events().pop().unwrap_or(Value::Null);
        }
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    /// The JSON-RPC message text: the body, or the last SSE event's data.
    pub fn message_text(&self) -> String {
        if self.sse {
            return mcphub::protocol::sse::parse_all(&self.text).pop().map(|e| e.data).unwrap_or_default();
        }
        self.text.clone()
    }

    /// Every SSE event's data as JSON.
    pub fn events(&self) -> Vec<Value> {
        mcphub::protocol::sse::parse_all(&self.text)
            .into_iter()
            .map(|e| serde_json::from_str(&e.data).unwrap_or_else(|err| panic!("event data not JSON ({err}): {:?}", e.data)))
            .collect()
    }

    /// `error.code` of the JSON-RPC answer.
    pub fn code(&self) -> Option<i64> {
        self.json()["error"]["code"].as_i64()
    }

    /// `error.message` of the JSON-RPC answer (empty when none).
    pub fn message(&self) -> String {
        self.json()["error"]["message"].as_str().unwrap_or_default().to_string()
    }
}

/// Sends one request from `peer` to the hub and reads its answer.
pub fn request_from(hub: &Hub, peer: &str, method: &str, target: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let peer: SocketAddr = peer.parse().expect("a socket address");
    let req = Request {
        method: method.into(),
        target: target.into(),
        headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        body: body.as_bytes().to_vec(),
        peer,
    };
    let resp = hub.handle(req);
    let (text, sse) = match resp.body {
        Body::Full(bytes) => (String::from_utf8(bytes).expect("a UTF-8 body"), false),
        Body::Sse(producer) => (mcphub::http::sse::collect(producer, MAX_EVENTS), true),
    };
    Answer { status: resp.status, headers: resp.headers, text, sse }
}

/// Sends one request from [`PEER`].
pub fn request(hub: &Hub, method: &str, target: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    request_from(hub, PEER, method, target, headers, body)
}

/// `POST /mcp` with `body` and `headers`.
pub fn post(hub: &Hub, body: &str, headers: &[(&str, &str)]) -> Answer {
    request(hub, "POST", "/mcp", headers, body)
}

/// `GET path` with `headers`.
pub fn get(hub: &Hub, path: &str, headers: &[(&str, &str)]) -> Answer {
    request(hub, "GET", path, headers, "")
}

/// `DELETE /mcp` with `headers`.
pub fn delete(hub: &Hub, headers: &[(&str, &str)]) -> Answer {
    request(hub, "DELETE", "/mcp", headers, "")
}

/// A legacy `initialize` body at `version` with id 0.
pub fn initialize_body(version: &str) -> String {
    json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "core", "version": "1"}}})
    .to_string()
}

/// A legacy client with `headers` added (a key): `initialize` at 2025-06-18
/// and `notifications/initialized`; the session id.
pub fn legacy_session_with(hub: &Hub, extra: &[(&str, &str)]) -> String {
    let mut h = vec![ACCEPT, JSON];
    h.extend_from_slice(extra);
    let r = post(hub, &initialize_body("2025-06-18"), &h);
    assert_eq!(r.status, 200, "{}", r.text);
    let sid = r.header("mcp-session-id").expect("the hub mints a session id").to_string();
    h.extend([("Mcp-Session-Id", sid.as_str()), ("MCP-Protocol-Version", "2025-06-18")]);
    let n = post(hub, r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#, &h);
    assert_eq!((n.status, n.text.as_str()), (202, ""));
    sid
}

/// A legacy client: `initialize` + `notifications/initialized`; the session id.
pub fn legacy_session(hub: &Hub) -> String {
    legacy_session_with(hub, &[])
}

/// The headers of a legacy request on session `sid`.
pub fn legacy_headers(sid: &str) -> Vec<(&str, &str)> {
    vec![ACCEPT, JSON, ("Mcp-Session-Id", sid), ("MCP-Protocol-Version", "2025-06-18")]
}

/// A legacy request (id 1) on a session.
pub fn legacy(hub: &Hub, sid: &str, method: &str, params: Value) -> Answer {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    post(hub, &body, &legacy_headers(sid))
}

/// The `_meta` of a 2026-07-28 request.
pub fn modern_meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "core", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}
    })
}

/// The body (id "m1", `_meta` added) and headers (`MCP-Protocol-Version`,
/// `Mcp-Method`, `Mcp-Name` where the method has one) of a 2026-07-28 request.
pub fn modern_request(method: &str, mut params: Value) -> (String, Vec<(String, String)>) {
    match params.get_mut("_meta").and_then(Value::as_object_mut) {
        Some(m) => m.extend(modern_meta().as_object().unwrap().clone()),
        None => params["_meta"] = modern_meta(),
    }
    let mut h: Vec<(String, String)> = [ACCEPT, JSON, ("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", method)]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Some(field) = mcphub::protocol::headers::name_field(method) {
        let name = params.get(field).and_then(Value::as_str).map(mcphub::protocol::headers::encode_value).unwrap_or_default();
        h.push(("Mcp-Name".into(), name));
    }
    let body = json!({"jsonrpc": "2.0", "id": "m1", "method": method, "params": params}).to_string();
    (body, h)
}

/// A 2026-07-28 request with correct headers and `_meta`, plus `extra` headers.
pub fn modern_with(hub: &Hub, method: &str, params: Value, extra: &[(&str, &str)]) -> Answer {
    let (body, h) = modern_request(method, params);
    let mut all: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    all.extend_from_slice(extra);
    post(hub, &body, &all)
}

/// A 2026-07-28 request with correct headers and `_meta`.
pub fn modern(hub: &Hub, method: &str, params: Value) -> Answer {
    modern_with(hub, method, params, &[])
}

/// The line of `/metrics` starting with `start`.
pub fn metric(hub: &Hub, start: &str) -> String {
    let text = get(hub, "/metrics", &[]).text;
    text.lines().find(|l| l.starts_with(start)).unwrap_or_else(|| panic!("no {start} in {text}")).to_string()
}
