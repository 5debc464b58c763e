//! The hub's own HTTP/1.1 server: acceptor → bounded queue → worker pool,
//! plus stream threads for Server-Sent Events.
//!
//! Why the hub owns this layer (tiny_http, oxhttp and astra were measured and
//! rejected) is in docs/decisions.md D2a; the shape is docs/decisions.md D2.
//!
//! - [`parse`] is sans-IO: it turns bytes into a [`Request`] or a limit error
//!   (head deadline → 408, head > limit → 431, body > limit → 413, HTTP/2 → 505)
//!   and is what the fuzz target drives.
//! - [`server`] owns sockets and threads: a reactor (mio) reads heads and
//!   bodies of all connections, so idle keep-alive connections never pin a
//!   worker; complete requests go through a bounded crossbeam queue to a fixed
//!   worker pool; a full queue is answered 503 by a rejecter thread.
//! - A handler that answers with [`Body::Sse`] has its producer run on a
//!   stream thread (bounded count), never on a request worker.

use std::net::SocketAddr;
use std::time::Duration;

pub mod parse;
pub mod server;
pub mod sse;
pub mod write;

pub use server::{Drained, Probe, Server, ServerHandle, ServerStats, Stalled};
pub use sse::{ClientGone, SseEvent, SseSink};

/// One complete HTTP/1.1 request, body already read (de-chunked).
#[derive(Debug, Clone)]
pub struct Request {
    /// Method as sent, e.g. `POST`.
    pub method: String,
    /// Raw request-target, path plus query, e.g. `/mcp?key=abc`.
    pub target: String,
    /// Header fields in arrival order; names as sent (compare case-insensitively).
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked; empty when none was sent.
    pub body: Vec<u8>,
    /// The peer address of the connection.
    pub peer: SocketAddr,
}

impl Request {
    /// First header with this name (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The path part of the target, without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The first query parameter with this name, percent-decoded (`+` → space).
    pub fn query(&self, key: &str) -> Option<String> {
        let query = self.target.split_once('?')?.1;
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k) == key).then(|| percent_decode(v))
        })
    }
}

/// `s` with `+` as a space and `%XX` escapes decoded (form decoding of a
/// query part or path segment, WHATWG URL `application/x-www-form-urlencoded`).
/// A `%` not followed by two hex digits is kept as it is (`"%zz%4"` stays);
/// bytes that are not UTF-8 after decoding become U+FFFD.
pub fn percent_decode(s: &str) -> String {
    // `+` first: `%2B` still decodes to a literal `+`, and `+` is not a hex
    // digit, so no escape changes validity.
    let spaced: std::borrow::Cow<str> = if s.contains('+') { s.replace('+', " ").into() } else { s.into() };
    percent_encoding::percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

/// What a handler answers.
pub struct Response {
    /// Status code, e.g. 200.
    pub status: u16,
    /// Extra header fields. The server adds `Content-Length` or
    /// `Transfer-Encoding: chunked`, `Date` is not sent, `Connection` is managed.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Body,
}

/// A response body: complete bytes, or an SSE stream produced on a stream thread.
pub enum Body {
    /// Sent with `Content-Length`.
    Full(Vec<u8>),
    /// `text/event-stream`, chunked. The closure runs on a stream thread with a
    /// sink to the client; when it returns the stream ends (terminal chunk) and
    /// the connection goes back to keep-alive.
    Sse(Box<dyn FnOnce(&mut SseSink) + Send + 'static>),
}

impl Response {
    /// An empty-bodied response with this status.
    pub fn empty(status: u16) -> Response {
        Response { status, headers: Vec::new(), body: Body::Full(Vec::new()) }
    }

    /// A JSON response (`Content-Type: application/json`).
    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        Response::json_bytes(status, serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec()))
    }

    /// A JSON response whose body is already written (`body`: one JSON value).
    pub fn json_bytes(status: u16, body: Vec<u8>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: Body::Full(body),
        }
    }

    /// A plain-text response.
    pub fn text(status: u16, text: &str) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
            body: Body::Full(text.as_bytes().to_vec()),
        }
    }

    /// An SSE response (`Content-Type: text/event-stream`, `Cache-Control: no-cache`).
    pub fn sse(producer: impl FnOnce(&mut SseSink) + Send + 'static) -> Response {
        Response {
            status: 200,
            headers: vec![
                ("Content-Type".into(), "text/event-stream".into()),
                ("Cache-Control".into(), "no-cache".into()),
            ],
            body: Body::Sse(Box::new(producer)),
        }
    }

    /// Adds a header field.
    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

/// Answers requests. Runs on request workers; must not block for long on
/// anything but upstream I/O with its own timeouts.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request.
    fn handle(&self, req: Request) -> Response;

    /// Called once by [`Server::bind`] before any request: the server's live
    /// figures (queue depth, rejections), for a handler that reports them.
    fn attach(&self, _stats: std::sync::Arc<ServerStats>) {}

    /// The owner [`Server::bind`] starts its threads with (reactor, workers,
    /// rejecter, pinger, stream threads; [`crate::threads`]); `None`: one of
    /// the server's own.
    fn threads(&self) -> Option<crate::threads::Threads> {
        None
    }
}

impl<F> Handler for F
where
    F: Fn(Request) -> Response + Send + Sync + 'static,
{
    fn handle(&self, req: Request) -> Response {
        self(req)
    }
}

/// Limits and pool sizes of the server. Defaults follow the issue: head ≤ 16 KiB,
/// body ≤ 4 MiB, `: ping` after 15 s of silence on a stream.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Request workers (threads running [`Handler::handle`]).
    pub workers: usize,
    /// Capacity of the bounded queue in front of the workers; beyond it → 503.
    pub queue: usize,
    /// Maximum concurrent SSE streams (stream threads); beyond it → 503.
    pub max_streams: usize,
    /// Maximum open connections; beyond it new connections are closed at once.
    pub max_connections: usize,
    /// The whole request head must arrive within this (408).
    pub head_timeout: Duration,
    /// The whole body must arrive within this after the head (408).
    pub body_timeout: Duration,
    /// Keep-alive connections idle longer than this are closed.
    pub idle_timeout: Duration,
    /// Maximum request head size in bytes (431).
    pub max_head_bytes: usize,
    /// Maximum request body size in bytes (413, decided from `Content-Length` before reading).
    pub max_body_bytes: usize,
    /// Wall-clock budget for writing one response or one SSE event.
    pub write_budget: Duration,
    /// A `: ping` comment is written after this much silence on a stream.
    pub ping_interval: Duration,
    /// `Retry-After` seconds sent with 503 when the queue is full.
    pub retry_after_secs: u32,
    /// At shutdown, how long in-flight requests and call streams get to
    /// finish before they are cut (config `drainTimeoutMs`, default 10 s).
    pub drain_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            workers: 32,
            queue: 256,
            max_streams: 256,
            max_connections: 10_000,
            head_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            max_head_bytes: 16 * 1024,
            max_body_bytes: 4 * 1024 * 1024,
            write_budget: Duration::from_secs(10),
            ping_interval: Duration::from_secs(15),
            retry_after_secs: 1,
            drain_timeout: Duration::from_secs(10),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(target: &str) -> Request {
        Request {
            method: "GET".into(),
            target: target.into(),
            headers: vec![("X-Thing".into(), "v".into())],
            body: vec![],
            peer: "127.0.0.1:1".parse().unwrap(),
        }
    }

    #[test]
    fn query_parameters_are_percent_decoded() {
        let r = req("/mcp?a=1&key=mcphub_%41b+c&z");
        assert_eq!(r.path(), "/mcp");
        assert_eq!(r.query("key").as_deref(), Some("mcphub_Ab c"));
        assert_eq!(r.query("z").as_deref(), Some(""));
        assert_eq!(r.query("missing"), None);
        assert_eq!(r.header("x-thing"), Some("v"));
    }

    #[test]
    fn bad_escapes_are_kept() {
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%4%41"), "%4A", "a bad escape consumes only its `%`");
        assert_eq!(percent_decode("%+1"), "% 1");
        assert_eq!(percent_decode("a%2Bb+c%2fd%C3%A9"), "a+b c/d\u{e9}");
        assert_eq!(percent_decode("x%ffy"), "x\u{fffd}y", "not UTF-8: replacement character");
    }
}
