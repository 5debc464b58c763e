//! Streamed tool calls: an SSE response on which the tool sends
//! notifications (`notifications/progress`, `notifications/message`) and,
//! for legacy sessions, server→client requests (`sampling/createMessage`,
//! `elicitation/create`) before its result.
//!
//! A server→client request goes out on the call's stream with a mock-minted
//! id (`mock-req-N`) and is entered in the server's pending table; the
//! client's JSON-RPC response arrives as a separate POST (answered 202), and
//! [`MockServer::deliver_answer`] hands it to the waiting call by id.
//! 2026-07-28 requests have no such back channel: the fixtures use MRTR
//! there (see [`super::conformance`]), and [`Outbound::request`] on a modern
//! stream fails at once (an `isError` result, never a hang).

use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::MockServer;
use mcphub::http::{SseEvent, SseSink};

/// A streamed tool: sends through the [`Outbound`], returns the tool result
/// (`Err(text)` becomes an `isError` result).
pub(crate) type StreamFn = Box<dyn FnOnce(&mut Outbound<'_>) -> Result<Value, String> + Send>;

/// Log levels, least severe first (RFC 5424 names, as in the MCP logging spec).
pub const LOG_LEVELS: [&str; 8] = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"];

/// `_meta` key of a 2026-07-28 request's log level.
const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
/// `_meta` key of a 2026-07-28 request's client capabilities.
const META_CLIENT_CAPS: &str = "io.modelcontextprotocol/clientCapabilities";

/// The severity rank of a level name (`None` if unknown).
pub fn level_rank(level: &str) -> Option<usize> {
    LOG_LEVELS.iter().position(|l| *l == level)
}

/// What a streamed tool may send, and to whom.
pub(crate) struct Outbound<'a> {
    pub(crate) sink: &'a mut SseSink,
    pub(crate) server: &'a MockServer,
    /// The legacy session of the call (`None` for modern requests).
    pub(crate) session: Option<String>,
    /// A modern request's `params._meta` (`None` for legacy).
    pub(crate) modern_meta: Option<Value>,
}

impl Outbound<'_> {
    fn send(&mut self, msg: &Value) -> Result<(), String> {
        let data = msg.to_string();
        self.sink.send(&SseEvent { data: &data, ..Default::default() }).map_err(|_| "the client is gone".to_string())
    }

    /// Sends a notification on the stream.
    pub(crate) fn notify(&mut self, method: &str, params: Value) -> Result<(), String> {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}))
    }

    /// Sends `notifications/message` unless the client's level filters it
    /// out: legacy, the session's `logging/setLevel` (everything before one);
    /// modern, `_meta["io.modelcontextprotocol/logLevel"]` (nothing without it).
    pub(crate) fn log(&mut self, level: &str, data: Value) -> Result<(), String> {
        let threshold = match &self.modern_meta {
            Some(meta) => match meta.get(META_LOG_LEVEL).and_then(Value::as_str).and_then(level_rank) {
                Some(r) => r,
                None => return Ok(()),
            },
            None => self.session.as_deref().and_then(|s| self.server.session_log_level(s)).and_then(|l| level_rank(&l)).unwrap_or(0),
        };
        if level_rank(level).unwrap_or(0) < threshold {
            return Ok(());
        }
        let name = self.server.config().name.clone();
        self.notify("notifications/message", json!({"level": level, "logger": name, "data": data}))
    }

    /// Sleeps `d`, failing early once the client is gone.
    pub(crate) fn pause(&mut self, d: Duration) -> Result<(), String> {
        let end = Instant::now() + d;
        loop {
            if self.sink.is_gone() {
                return Err("the client is gone".into());
            }
            let now = Instant::now();
            if now >= end {
                return Ok(());
            }
            std::thread::sleep((end - now).min(Duration::from_millis(20)));
        }
    }

    /// Whether the client declared capability `name` (see [`declares`]):
    /// a legacy session's `initialize` capabilities, a modern request's `_meta`.
    pub(crate) fn client_can(&self, name: &str) -> bool {
        let caps = match &self.modern_meta {
            Some(meta) => meta.get(META_CLIENT_CAPS).cloned(),
            None => self.session.as_deref().and_then(|s| self.server.session_capabilities(s)),
        };
        caps.is_some_and(|c| declares(&c, name))
    }

    /// Sends a server→client request on the stream and waits (up to
    /// `timeout`, or until the client is gone) for the client's answer:
    /// `Ok(result)` or `Err(reason)`.
    pub(crate) fn request(&mut self, method: &str, params: Value, timeout: Duration) -> Result<Value, String> {
        if self.modern_meta.is_some() {
            return Err(format!(
                "{method} as a server→client request on the stream is legacy-only (2026-07-28 uses InputRequiredResult)"
            ));
        }
        let (id, rx) = self.server.register_pending();
        let sent = self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        let answer = sent.and_then(|()| {
            let deadline = Instant::now() + timeout;
            loop {
                match rx.recv_timeout(Duration::from_millis(50)) {
                    Ok(msg) => return Ok(msg),
                    Err(mpsc::RecvTimeoutError::Disconnected) => return Err("answer channel closed".to_string()),
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        if self.sink.is_gone() {
                            return Err("the client is gone".into());
                        }
                        if Instant::now() >= deadline {
                            return Err(format!("no answer to {method} within {} s", timeout.as_secs()));
                        }
                    }
                }
            }
        });
        self.server.forget_pending(&id);
        let msg = answer?;
        if let Some(result) = msg.get("result") {
            return Ok(result.clone());
        }
        let err = msg.get("error").cloned().unwrap_or(Value::Null);
        Err(format!("the client answered {method} with an error: {err}"))
    }
}

/// Whether client capabilities `caps` allow the form-mode request behind
/// `capability`, as the SDK servers decide (issue 21): present for
/// `sampling`/`roots`; for `elicitation`, form mode, which an empty
/// `elicitation: {}` means (2025-11-25 schema; the TypeScript SDK reads `{}`
/// as `{form: {}}` and refuses form elicitation to a client that declared
/// only `{url: {}}`).
pub(crate) fn declares(caps: &Value, capability: &str) -> bool {
    match (capability, caps.get(capability)) {
        (_, None) => false,
        ("elicitation", Some(Value::Object(e))) => e.is_empty() || e.contains_key("form"),
        ("elicitation", Some(_)) => false,
        (_, Some(_)) => true,
    }
}

/// Runs a streamed tool on `sink` and writes its final JSON-RPC response
/// (`id`, result decorated by `finish`).
pub(crate) fn run(
    f: StreamFn,
    out: &mut Outbound<'_>,
    id: &Value,
    finish: impl FnOnce(Value) -> Value,
) {
    let result = match f(out) {
        Ok(r) => r,
        Err(why) => json!({"content": [{"type": "text", "text": why}], "isError": true}),
    };
    let msg = json!({"jsonrpc": "2.0", "id": id, "result": finish(result)});
    let _ = out.send(&msg);
}

#[cfg(test)]
mod tests {
    use super::declares;
    use serde_json::json;

    #[test]
    fn form_elicitation_needs_an_empty_or_form_elicitation_capability_like_the_sdks() {
        assert!(declares(&json!({"elicitation": {}}), "elicitation"), "{{}} means form (2025-11-25)");
        assert!(declares(&json!({"elicitation": {"form": {}, "url": {}}}), "elicitation"));
        assert!(!declares(&json!({"elicitation": {"url": {}}}), "elicitation"), "url-only clients get no form request");
        assert!(!declares(&json!({"sampling": {}}), "elicitation"));
        assert!(declares(&json!({"sampling": {}}), "sampling"));
        assert!(!declares(&json!({}), "sampling"));
        assert!(declares(&json!({"roots": {"listChanged": true}}), "roots"));
    }
}
