//! `mcphub-mock`: a mock upstream MCP server (Streamable HTTP) for tests,
//! demos and soak runs. See [`mcphub_mock`].
//!
//! ```text
//! mcphub-mock --port 9001 [--bind 127.0.0.1] [--era legacy|modern|dual]
//!             [--name mock] [--expire-sessions-every N] [--max-concurrency K]
//!             [--latency-ms X] [--workers W] [--reflect-credential HEADER]
//!             [--extra-tools N]
//! mcphub-mock --stdio [--name mock] [--expire-sessions-every N]
//!             [--max-concurrency K] [--latency-ms X] [--extra-tools N]
//! ```
//!
//! `--stdio`: MCP stdio transport (legacy era only, `--era`/`--bind`/
//! `--workers`/`--port` unused): see [`mcphub_mock::stdio`]; logs go to stderr.

#![forbid(unsafe_code)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use mcphub::http::{Server, ServerConfig};
use mcphub_mock::{Era, MockConfig, MockServer};

/// A mock upstream MCP server (Streamable HTTP): POST/DELETE /mcp, GET /stats, POST /stats/reset.
#[derive(Debug, Parser)]
#[command(name = "mcphub-mock", version, about)]
struct Args {
    /// TCP port to listen on (0 = any free port; the bound address is printed).
    /// Required unless --stdio.
    #[arg(long, required_unless_present = "stdio")]
    port: Option<u16>,
    /// Serve the MCP stdio transport (legacy era) on stdin/stdout instead of HTTP:
    /// one JSON-RPC message per line; stdin EOF → exit 0.
    #[arg(long)]
    stdio: bool,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// MCP era(s) served.
    #[arg(long, value_enum, default_value_t = Era::Dual)]
    era: Era,
    /// serverInfo name and tool text prefix.
    #[arg(long, default_value = "mock")]
    name: String,
    /// Every Nth request carrying a live session drops that session and answers 404 (0 = never).
    #[arg(long, default_value_t = 0)]
    expire_sessions_every: u64,
    /// More than K /mcp requests in flight → 429 with Retry-After: 1.
    #[arg(long)]
    max_concurrency: Option<usize>,
    /// Latency added to every /mcp request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Reflect mode (isolation tests, issue 14): this request header's value is
    /// the caller's credential, reflected into lists, results and error texts;
    /// a value containing "bad" is answered 401 with the value echoed.
    #[arg(long, value_name = "HEADER")]
    reflect_credential: Option<String>,
    /// Also list tools `tool-1` … `tool-N` (each takes `text` and answers like
    /// `echo`), after the mock's own tools: many tools per server, for scale
    /// benchmarks.
    #[arg(long, default_value_t = 0)]
    extra_tools: usize,
    /// Request worker threads of the HTTP server.
    #[arg(long, default_value_t = 64)]
    workers: usize,
}

fn main() {
    let args = Args::parse();
    let level = if std::env::var("DEBUG_MCPHUB").is_ok_and(|v| v == "true") {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Info
    };
    if args.stdio {
        // stdout carries MCP messages only (stdio transport rule): logs go to stderr.
        let _ = simplelog::WriteLogger::init(level, simplelog::Config::default(), std::io::stderr());
    } else {
        let _ = simplelog::SimpleLogger::init(level, simplelog::Config::default());
    }
    let cfg = MockConfig {
        era: if args.stdio { Era::Legacy } else { args.era },
        name: args.name,
        expire_sessions_every: args.expire_sessions_every,
        max_concurrency: args.max_concurrency,
        latency: Duration::from_millis(args.latency_ms),
        reflect_credential: if args.stdio { None } else { args.reflect_credential },
        extra_tools: args.extra_tools,
    };
    let era = cfg.era;
    let mock = MockServer::new(cfg);
    if args.stdio {
        mcphub_mock::stdio::serve(mock, std::io::stdin().lock(), Box::new(std::io::stdout()));
        // stdin ended: exit at once, calls still in flight or not (stdio shutdown rule).
        std::process::exit(0);
    }
    let server_cfg = ServerConfig { workers: args.workers.max(1), ..ServerConfig::default() };
    let addr = SocketAddr::new(args.bind, args.port.unwrap_or_default());
    match Server::bind(addr, server_cfg, Arc::new(mock)) {
        Ok(handle) => {
            // One machine-readable line so scripts can pick up the port when --port 0.
            println!("mcphub-mock listening on http://{}/mcp (era {})", handle.local_addr(), era.as_str());
            handle.wait();
        }
        Err(e) => {
            eprintln!("mcphub-mock: cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    }
}
