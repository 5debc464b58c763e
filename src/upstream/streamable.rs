//! The Streamable HTTP transport (2025-11-25 and 2026-07-28): POSTs to one
//! server with ureq 3, JSON or SSE answers, the legacy GET stream and DELETE.

use super::transport::{excerpt, io_error, Answer, Deadline, EventStream, HttpReply, Transport, LISTEN_READ_TIMEOUT, MAX_UPSTREAM_MESSAGE};
use super::UpstreamError;
use crate::config::ServerConfig;
use serde_json::Value;
use std::io::Read;
use std::time::{Duration, Instant};
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{Connector, NextTimeout, RustlsConnector};

/// Resolves host names synchronously (getaddrinfo, bounded by the system
/// resolver's own timeouts) so that a per-request `timeout_global` costs no
/// thread: ureq's default resolver spawns one per lookup whenever a timeout
/// covers the resolve phase (docs/decisions.md D2a: 20k → 7.6k req/s).
/// IP-literal URLs are never looked up at all; answers are kept for
/// [`RESOLVE_TTL`] so a keep-alive request does not pay a lookup each time.
#[derive(Debug, Default)]
pub(super) struct BlockingResolver {
    inner: DefaultResolver,
    cache: parking_lot::Mutex<Option<(String, Instant, ResolvedSocketAddrs)>>,
}

/// How long a resolved address list is reused.
pub const RESOLVE_TTL: Duration = Duration::from_secs(30);

impl Resolver for BlockingResolver {
    fn resolve(&self, uri: &ureq::http::Uri, config: &ureq::config::Config, timeout: NextTimeout) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let key = uri.authority().map(|a| a.as_str()).unwrap_or_default();
        if let Some((k, at, addrs)) = self.cache.lock().as_ref() {
            if k == key && at.elapsed() < RESOLVE_TTL {
                return Ok(addrs.clone());
            }
        }
        let untimed = NextTimeout { per_read: timeout.per_read, per_write: timeout.per_write, ..NextTimeout::default() };
        let addrs = self.inner.resolve(uri, config, untimed)?;
        *self.cache.lock() = Some((key.to_string(), Instant::now(), addrs.clone()));
        Ok(addrs)
    }
}

/// The Streamable HTTP client of one server (2025-11-25 and 2026-07-28
/// transports): ureq 3, one keep-alive pool, one total deadline per call.
pub struct HttpTransport {
    agent: ureq::Agent,
    url: String,
    server: String,
    static_headers: Vec<(String, String)>,
    /// Seconds from sending a POST to its answer's head (or failure), for
    /// `/metrics` (`mcphub_upstream_request_duration_seconds{server}`).
    latency: prometheus::Histogram,
}

/// The hub's HTTP client for one server: `idle` keep-alive connections
/// kept (0: none, every request on a new connection), TCP_NODELAY, the
/// server's connect timeout, statuses as values (not errors), no redirects,
/// and a blocking resolver (see `BlockingResolver`) so every call can carry
/// a total deadline without a resolver thread. Plain TCP goes through the
/// tracked connector (a call can be cut from another thread, see `cancel`),
/// TLS on top for https. Shared by the Streamable HTTP and HTTP+SSE transports.
pub(super) fn agent(config: &ServerConfig, idle: usize) -> ureq::Agent {
    let agent_config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .no_delay(true)
        .max_redirects(0)
        .timeout_connect(Some(config.connect_timeout))
        .max_idle_connections_per_host(idle)
        .max_idle_connections(idle * 2)
        .input_buffer_size(32 * 1024)
        .output_buffer_size(32 * 1024)
        .user_agent(concat!("mcphub/", env!("CARGO_PKG_VERSION")))
        .build();
    let connector = ().chain(super::cancel::TrackedTcpConnector).chain(RustlsConnector::default());
    ureq::Agent::with_parts(agent_config, connector, BlockingResolver::default())
}

impl HttpTransport {
    /// One agent per server: keep-alive pool of `pool_size`, TCP_NODELAY,
    /// connect timeout from the config, statuses as values (not errors), and
    /// a blocking resolver (see `BlockingResolver`) so every call can carry a
    /// total deadline without a resolver thread.
    pub fn new(config: &ServerConfig, pool_size: usize) -> HttpTransport {
        HttpTransport {
            agent: agent(config, pool_size.max(1)),
            url: config.url.clone(),
            server: config.name.clone(),
            static_headers: config.headers.clone(),
            latency: crate::metrics::upstream_latency_histogram(&config.name),
        }
    }

    fn map_err(&self, e: ureq::Error, deadline: &Deadline) -> UpstreamError {
        match e {
            ureq::Error::Timeout(_) => deadline.error(&self.server),
            ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => UpstreamError::Transport {
                server: self.server.clone(),
                detail: e.to_string(),
                sent: false,
            },
            ureq::Error::Io(ref io) if io.kind() == std::io::ErrorKind::ConnectionRefused => UpstreamError::Transport {
                server: self.server.clone(),
                detail: "connection refused".into(),
                sent: false,
            },
            other => UpstreamError::Transport { server: self.server.clone(), detail: other.to_string(), sent: true },
        }
    }

    fn read_answer(&self, resp: ureq::http::Response<ureq::Body>, body: &Value, deadline: Deadline) -> Result<Answer, UpstreamError> {
        let status = resp.status().as_u16();
        let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let session_id = header("mcp-session-id");
        let content_type = header("content-type").unwrap_or_default().to_ascii_lowercase();
        let retry_after = header("retry-after");
        let mut reply = HttpReply { status, session_id, message: None, excerpt: String::new(), retry_after };
        if status == 202 {
            return Ok(Answer::Reply(reply));
        }
        let mut body_reader = resp.into_body().into_with_config().limit(MAX_UPSTREAM_MESSAGE).reader();
        if content_type.starts_with("text/event-stream") {
            let want_id = body.get("id").cloned();
            let stream = EventStream::new(body_reader, want_id, deadline, &self.server, status, reply.session_id);
            return Ok(Answer::Stream(stream));
        }
        let mut raw = Vec::new();
        body_reader.read_to_end(&mut raw).map_err(|e| io_error(&self.server, e, &deadline))?;
        match serde_json::from_slice::<Value>(&raw) {
            Ok(v) if v.get("result").is_some() || v.get("error").is_some() => reply.message = Some(v),
            _ => reply.excerpt = excerpt(&raw),
        }
        Ok(Answer::Reply(reply))
    }

    /// POSTs one JSON-RPC message with the server's configured headers plus
    /// `headers`, the whole exchange bounded by `budget` (`timeout_global`).
    fn send_post(
        &self,
        message: &Value,
        headers: &[(String, String)],
        budget: Duration,
    ) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
        let bytes = serde_json::to_vec(message).unwrap_or_default();
        let req = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream");
        crate::trace::note_server(&self.server);
        let started = Instant::now();
        let sent = self.headed(req, headers).config().timeout_global(Some(budget)).build().send(&bytes[..]);
        self.latency.observe(started.elapsed().as_secs_f64());
        sent
    }

    /// Adds the server's configured headers, then `headers` (the session's
    /// or the caller's), and for a call made for a downstream request its
    /// `X-Request-Id` and W3C trace context ([`crate::trace::upstream_headers`]).
    fn headed<B>(&self, mut req: ureq::RequestBuilder<B>, headers: &[(String, String)]) -> ureq::RequestBuilder<B> {
        for (k, v) in self.static_headers.iter().chain(headers) {
            req = req.header(k.as_str(), v.as_str());
        }
        for (k, v) in crate::trace::upstream_headers() {
            req = req.header(k, v);
        }
        req
    }

}

impl Transport for HttpTransport {
    fn server(&self) -> &str {
        &self.server
    }

    /// Latency of this server's POSTs (to the answer's head), seconds.
    fn latency(&self) -> &prometheus::Histogram {
        &self.latency
    }

    /// A client's call: bounded by `deadline`
    /// (ureq's `timeout_global` = [`Deadline::total`], reads also by the
    /// call's movable read deadline), timeouts naming the layer that ran out.
    fn post_call(&self, body: &Value, headers: &[(String, String)], deadline: Deadline) -> Result<Answer, UpstreamError> {
        let resp = self.send_post(body, headers, deadline.total()).map_err(|e| self.map_err(e, &deadline))?;
        self.read_answer(resp, body, deadline)
    }

    /// POSTs a long-lived request (2026-07-28 `subscriptions/listen`): the
    /// answer's head must come within 10 s; an SSE answer then has no total
    /// deadline, only [`LISTEN_READ_TIMEOUT`] per read (the server's keep-alive
    /// comments reset it), after which the caller reconnects.
    fn post_long(&self, body: &Value, headers: &[(String, String)]) -> Result<Answer, UpstreamError> {
        let head = Duration::from_secs(10);
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        let req = self.agent.post(&self.url).header("Content-Type", "application/json").header("Accept", "application/json, text/event-stream");
        let resp = self
            .headed(req, headers)
            .config()
            .timeout_recv_response(Some(head))
            .timeout_per_read(Some(LISTEN_READ_TIMEOUT))
            .build()
            .send(&bytes[..])
            .map_err(|e| self.map_err(e, &Deadline::fixed(head)))?;
        self.read_answer(resp, body, Deadline::fixed(Duration::MAX))
    }


    /// POSTs the hub's answer to a server→client request and discards
    /// whatever comes back (read up to 64 KiB, never parsed): an answer can
    /// never start another exchange, however the server replies.
    fn answer(&self, message: &Value, headers: &[(String, String)], budget: Duration) {
        if budget.is_zero() {
            return;
        }
        match self.send_post(message, headers, budget) {
            Ok(resp) => {
                let _ = resp.into_body().into_with_config().limit(64 * 1024).read_to_vec();
            }
            Err(e) => log::debug!("answer to a server→client request on '{}' failed: {e}", self.server),
        }
    }

    /// Opens the legacy standalone server→client stream (`GET`, 2025-11-25
    /// transports) on the session `headers` name. `Ok(None)` when the server
    /// offers none (405, or any answer that is not an event stream). The
    /// stream has no total deadline (it is long-lived); each read waits at
    /// most [`LISTEN_READ_TIMEOUT`], after which the caller reconnects.
    fn listen(&self, headers: &[(String, String)]) -> Result<Option<Box<EventStream>>, UpstreamError> {
        let req = self.headed(self.agent.get(&self.url).header("Accept", "text/event-stream"), headers);
        let connect = Duration::from_secs(10);
        let resp = req
            .config()
            .timeout_recv_response(Some(connect))
            .timeout_per_read(Some(LISTEN_READ_TIMEOUT))
            .build()
            .call()
            .map_err(|e| self.map_err(e, &Deadline::fixed(connect)))?;
        let status = resp.status().as_u16();
        let is_stream = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.to_ascii_lowercase().starts_with("text/event-stream"));
        if status != 200 || !is_stream {
            return Ok(None);
        }
        let reader = resp.into_body().into_with_config().limit(u64::MAX).reader();
        Ok(Some(EventStream::new(reader, None, Deadline::fixed(Duration::MAX), &self.server, status, None)))
    }

    /// Sends `DELETE` to end a legacy session; errors are logged, not returned.
    fn delete(&self, headers: &[(String, String)]) {
        let req = self.headed(self.agent.delete(&self.url), headers);
        if let Err(e) = req.config().timeout_global(Some(Duration::from_secs(2))).build().call() {
            log::debug!("DELETE of an upstream session on '{}' failed: {}", self.server, e);
        }
    }
}
