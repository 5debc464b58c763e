//! The stdio transport (issue 19): a server that is a local program, one
//! process per (server, context key), each process one legacy MCP session.
//! Design: docs/upstream.md ("stdio servers").

pub mod process;

use super::transport::{Answer, Deadline, EventStream, ProcessCounts, Transport};
use super::UpstreamError;
use crate::config::{ServerConfig, StdioConfig};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// The global cap on stdio processes of one hub (top-level `maxProcesses`),
/// shared by the transports its connector makes.
pub struct Budget {
    max: usize,
}

impl Budget {
    /// A cap of `max` processes across every stdio server.
    pub fn new(max: usize) -> Arc<Budget> {
        Arc::new(Budget { max })
    }

    /// The cap.
    pub fn max(&self) -> usize {
        self.max
    }
}

/// The processes of one stdio server (see the module doc).
pub struct StdioTransport {
    server: String,
    config: Arc<StdioConfig>,
    budget: Arc<Budget>,
    latency: prometheus::Histogram,
}

impl StdioTransport {
    /// The transport of `server` (its `transport` is `Stdio(config)`), under
    /// the hub's global `budget`. Starts nothing: processes start on first use.
    pub fn new(server: &ServerConfig, config: Arc<StdioConfig>, budget: Arc<Budget>) -> StdioTransport {
        StdioTransport { server: server.name.clone(), config, budget, latency: crate::metrics::upstream_latency_histogram(&server.name) }
    }
}

impl Transport for StdioTransport {
    fn server(&self) -> &str {
        &self.server
    }

    fn latency(&self) -> &prometheus::Histogram {
        &self.latency
    }

    fn post_call(&self, body: &Value, headers: &[(String, String)], deadline: Deadline) -> Result<Answer, UpstreamError> {
        let _ = (body, headers, deadline, &self.config, &self.budget);
        todo!("stdio post_call")
    }

    fn post_long(&self, _body: &Value, _headers: &[(String, String)]) -> Result<Answer, UpstreamError> {
        Err(UpstreamError::Protocol { server: self.server.clone(), detail: "stdio servers have no long-lived requests".into() })
    }

    fn answer(&self, message: &Value, headers: &[(String, String)], budget: Duration) {
        let _ = (message, headers, budget);
        todo!("stdio answer")
    }

    fn listen(&self, headers: &[(String, String)]) -> Result<Option<Box<EventStream>>, UpstreamError> {
        let _ = headers;
        todo!("stdio listen")
    }

    fn delete(&self, headers: &[(String, String)]) {
        let _ = headers;
        todo!("stdio delete")
    }

    fn shares_sessions(&self) -> bool {
        false
    }

    fn processes(&self) -> Option<ProcessCounts> {
        Some(ProcessCounts::default())
    }
}
