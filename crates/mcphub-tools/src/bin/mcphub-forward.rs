//! `mcphub-forward`: a bare HTTP forwarder on the hub's own HTTP layer — the
//! floor any gateway pays, measured by `make bench` beside the hub.
//!
//! ```text
//! mcphub-forward --upstream URL [--port 0] [--bind 127.0.0.1] [--workers 32] [--timeout-ms 30000]
//! ```
//!
//! `POST /mcp` is sent to the one upstream URL with the request body and the
//! headers an MCP exchange needs (`Content-Type`, `Accept`, `Authorization`,
//! `Mcp-Session-Id`, `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`); the
//! answer's status, body and `Content-Type` / `Mcp-Session-Id` /
//! `Retry-After` / `WWW-Authenticate` come back. No MCP logic at all: no
//! parsing, no sessions, no catalog. An SSE answer is read to its end and
//! returned whole (buffered, at most 32 MiB).
//!
//! Same machinery as the hub's upstream side (`src/upstream/transport.rs`):
//! the `mcphub::http` server (reactor + `--workers` workers), one ureq agent
//! over the hub's TCP transport (`mcphub::upstream::cancel::TrackedTcp`)
//! with a keep-alive pool sized to the workers, `TCP_NODELAY`, statuses as
//! values, one total deadline per exchange (`--timeout-ms`) and a resolver
//! that costs no thread per request.
//!
//! Errors: another path → 404; another method → 405; the upstream
//! unreachable, timed out or its answer unreadable → 502 with a JSON-RPC
//! error (`-32000`, id null) naming the cause (never a header value).
//! Exit status: 1 when the port cannot be bound, 2 on bad arguments.

#![forbid(unsafe_code)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use mcphub::http::{Body, Handler, Request, Response, Server, ServerConfig};
use serde_json::json;
use mcphub_tools::load::UntimedResolver;
use ureq::unversioned::transport::{Connector, RustlsConnector};

/// Request headers passed upstream (compared case-insensitively).
const REQUEST_HEADERS: [&str; 7] =
    ["Content-Type", "Accept", "Authorization", "Mcp-Session-Id", "MCP-Protocol-Version", "Mcp-Method", "Mcp-Name"];

/// Answer headers passed back downstream.
const ANSWER_HEADERS: [&str; 4] = ["Content-Type", "Mcp-Session-Id", "Retry-After", "WWW-Authenticate"];

/// Largest upstream answer body read: 32 MiB.
const MAX_ANSWER: u64 = 32 * 1024 * 1024;

/// A bare HTTP forwarder for one MCP endpoint (the `make bench` baseline).
#[derive(Debug, Parser)]
#[command(name = "mcphub-forward", version, about)]
struct Args {
    /// The upstream MCP endpoint, e.g. http://127.0.0.1:9001/mcp.
    #[arg(long)]
    upstream: String,
    /// TCP port to listen on (0 = any free port; the bound address is printed).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Request worker threads (also the upstream keep-alive pool size).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=4096))]
    workers: u64,
    /// Budget of one upstream exchange in milliseconds, answer body included.
    #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..))]
    timeout_ms: u64,
}

struct Forward {
    agent: ureq::Agent,
    upstream: String,
    timeout: Duration,
}

impl Forward {
    fn new(upstream: String, pool: usize, timeout: Duration) -> Forward {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .no_delay(true)
            .max_redirects(0)
            .timeout_global(Some(timeout))
            .max_idle_connections_per_host(pool.max(1))
            .max_idle_connections(pool.max(1) * 2)
            .input_buffer_size(32 * 1024)
            .output_buffer_size(32 * 1024)
            .user_agent(concat!("mcphub-forward/", env!("CARGO_PKG_VERSION")))
            .build();
        // The hub's own TCP transport (`mcphub::upstream::cancel::TrackedTcp`: one send per
        // request, socket timeouts set only when they change), so the floor is the hub's client.
        let connector = ().chain(mcphub::upstream::cancel::TrackedTcpConnector).chain(RustlsConnector::default());
        let agent = ureq::Agent::with_parts(config, connector, UntimedResolver::default());
        Forward { agent, upstream, timeout }
    }

    fn forward(&self, req: &Request) -> Result<Response, String> {
        let mut up = self.agent.post(&self.upstream);
        for name in REQUEST_HEADERS {
            if let Some(v) = req.header(name) {
                up = up.header(name, v);
            }
        }
        let resp = up.send(&req.body[..]).map_err(|e| cause(&e))?;
        let status = resp.status().as_u16();
        let headers: Vec<(String, String)> = ANSWER_HEADERS
            .iter()
            .filter_map(|name| resp.headers().get(*name).and_then(|v| v.to_str().ok()).map(|v| (name.to_string(), v.to_string())))
            .collect();
        let body = resp.into_body().into_with_config().limit(MAX_ANSWER).read_to_vec().map_err(|e| cause(&e))?;
        Ok(Response { status, headers, body: Body::Full(body) })
    }
}

/// The cause of a failed exchange, without any URL or header value.
fn cause(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(_) => "upstream timed out".into(),
        ureq::Error::ConnectionFailed => "upstream connection failed".into(),
        ureq::Error::HostNotFound => "upstream host not found".into(),
        ureq::Error::BodyExceedsLimit(_) => "upstream answer too large".into(),
        ureq::Error::Io(io) => format!("upstream I/O error ({:?})", io.kind()),
        _ => "upstream exchange failed".into(),
    }
}

impl Handler for Forward {
    fn handle(&self, req: Request) -> Response {
        if req.path() != "/mcp" {
            return Response::text(404, "not found: mcphub-forward serves POST /mcp\n");
        }
        if req.method != "POST" {
            return Response::text(405, "mcphub-forward forwards POST only\n").with_header("Allow", "POST");
        }
        self.forward(&req).unwrap_or_else(|why| {
            log::debug!("forward failed: {why} (budget {} ms)", self.timeout.as_millis());
            Response::json(502, &json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32000, "message": why}}))
        })
    }
}

fn main() {
    let args = Args::parse();
    let _ = simplelog::SimpleLogger::init(log::LevelFilter::Info, simplelog::Config::default());
    if !(args.upstream.starts_with("http://") || args.upstream.starts_with("https://")) {
        eprintln!("mcphub-forward: --upstream must be an http:// or https:// URL");
        std::process::exit(2);
    }
    let workers = usize::try_from(args.workers).unwrap_or(32);
    let forward = Forward::new(args.upstream, workers, Duration::from_millis(args.timeout_ms));
    let server_cfg = ServerConfig { workers, ..ServerConfig::default() };
    let addr = SocketAddr::new(args.bind, args.port);
    match Server::bind(addr, server_cfg, Arc::new(forward)) {
        Ok(handle) => {
            // One machine-readable line so scripts can pick up the port when --port 0.
            println!("mcphub-forward listening on http://{}/mcp", handle.local_addr());
            handle.wait();
        }
        Err(e) => {
            eprintln!("mcphub-forward: cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcphub::http::ServerHandle;
    use mcphub_mock::{MockConfig, MockServer};
    use std::io::{Read, Write};
    use std::net::TcpStream;

    fn serve(handler: Arc<dyn Handler>) -> ServerHandle {
        let cfg = ServerConfig { workers: 2, ..ServerConfig::default() };
        Server::bind("127.0.0.1:0".parse().unwrap(), cfg, handler).expect("binds")
    }

    /// One request on a fresh connection (`Connection: close`): (head, body).
    fn exchange(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (String, String) {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(body);
        s.write_all(req.as_bytes()).unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP answer");
        (head.to_string(), body.to_string())
    }

    fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
        head.lines().filter_map(|l| l.split_once(':')).find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim())
    }

    const JSON: (&str, &str) = ("Content-Type", "application/json");
    const ACCEPT: (&str, &str) = ("Accept", "application/json, text/event-stream");

    #[test]
    fn a_legacy_exchange_passes_through_with_its_session_header_both_ways() {
        let mock = serve(Arc::new(MockServer::new(MockConfig::default())));
        let upstream = format!("http://{}/mcp", mock.local_addr());
        let fwd = serve(Arc::new(Forward::new(upstream, 2, Duration::from_secs(5))));
        let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
        let (head, body) = exchange(fwd.local_addr(), "POST", "/mcp", &[JSON, ACCEPT], init);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let sid = header(&head, "Mcp-Session-Id").expect("the mock's session id comes back").to_string();
        assert!(body.contains(r#""serverInfo""#), "{body}");
        let call = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get_session_id","arguments":{}}}"#;
        let session = [JSON, ACCEPT, ("Mcp-Session-Id", sid.as_str()), ("MCP-Protocol-Version", "2025-06-18")];
        let (head, body) = exchange(fwd.local_addr(), "POST", "/mcp", &session, call);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(body.contains(&sid), "the session header reached the mock: {body}");
        // An unknown session is the mock's 404, passed on as it is.
        let unknown = [JSON, ACCEPT, ("Mcp-Session-Id", "sess-nope"), ("MCP-Protocol-Version", "2025-06-18")];
        let (head, _) = exchange(fwd.local_addr(), "POST", "/mcp", &unknown, call);
        assert!(head.starts_with("HTTP/1.1 404"), "{head}");
        fwd.shutdown();
        mock.shutdown();
    }

    #[test]
    fn other_paths_and_methods_are_refused_and_a_dead_upstream_is_a_502_json_rpc_error() {
        // A port taken then freed: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let fwd = serve(Arc::new(Forward::new(format!("http://127.0.0.1:{port}/mcp"), 2, Duration::from_secs(5))));
        let (head, _) = exchange(fwd.local_addr(), "GET", "/mcp", &[], "");
        assert!(head.starts_with("HTTP/1.1 405") && header(&head, "Allow") == Some("POST"), "{head}");
        let (head, _) = exchange(fwd.local_addr(), "POST", "/other", &[JSON], "{}");
        assert!(head.starts_with("HTTP/1.1 404"), "{head}");
        let (head, body) = exchange(fwd.local_addr(), "POST", "/mcp", &[JSON, ("Authorization", "Bearer s3cret")], "{}");
        assert!(head.starts_with("HTTP/1.1 502"), "{head}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!((v["error"]["code"].as_i64(), v["id"].is_null()), (Some(-32000), true), "{body}");
        assert!(v["error"]["message"].as_str().unwrap().contains("ConnectionRefused"), "{body}");
        assert!(!body.contains("s3cret") && !body.contains(&port.to_string()), "{body}");
        fwd.shutdown();
    }
}
