//! The configuration of upstreams that are not plain Streamable HTTP URLs:
//! stdio servers (`command`, `args`, `env`, `cwd`, process limits and pool
//! bounds) and the 2024-11-05 HTTP+SSE transport (`"type": "sse"`). Issue 19;
//! the shapes are those Claude Desktop and Cursor write.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How the hub reaches one server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TransportKind {
    /// Streamable HTTP (2025-11-25, 2026-07-28) at `url`.
    #[default]
    StreamableHttp,
    /// A local process spoken to over stdin/stdout, one per (server, context key).
    Stdio(Arc<StdioConfig>),
    /// The 2024-11-05 HTTP+SSE transport: GET `url` for the event stream,
    /// POST to the endpoint its `endpoint` event names.
    Sse,
}

/// Default of `maxProcesses` per stdio server.
pub const DEFAULT_MAX_PROCESSES: usize = 16;
/// Default of the top-level `maxProcesses` (all stdio servers together).
pub const DEFAULT_GLOBAL_MAX_PROCESSES: usize = 64;
/// Default of `idleTimeoutSecs`.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Default of `pingIntervalSecs`.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(30);
/// Default of `startTimeoutMs` (never longer than `timeouts.hubMs`).
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(30);

/// One stdio server (`"command"` present, or `"type": "stdio"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StdioConfig {
    /// The program, as written (a bare name is looked up in `PATH`).
    pub command: String,
    /// Its arguments (`${env.X}` filled at load).
    pub args: Vec<String>,
    /// Environment entries with no `${user.X}` (`${env.X}` filled at load);
    /// the entries naming user tokens are the server's `user_headers`.
    pub env: Vec<(String, String)>,
    /// Working directory (must exist at load).
    pub cwd: Option<PathBuf>,
    /// Resource limits applied before exec.
    pub limits: ProcessLimits,
    /// `maxProcesses`: processes of this server at once (1..=1024, default 16).
    pub max_processes: usize,
    /// `idleTimeoutSecs`: a process with no call for this long is stopped (default 600 s).
    pub idle_timeout: Duration,
    /// `startTimeoutMs`: start + `initialize` answered within this (default 30 s, at most `timeouts.hubMs`).
    pub start_timeout: Duration,
    /// `pingIntervalSecs`: a silent process is pinged this often; no answer
    /// within min(5 s, interval) → killed and replaced (default 30 s).
    pub ping_interval: Duration,
}

/// `limits` of a stdio server: `setrlimit` before exec; `None` = inherited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessLimits {
    /// `memoryMb`: address space (RLIMIT_AS), MiB.
    pub memory_mb: Option<u64>,
    /// `cpuSecs`: CPU time (RLIMIT_CPU), seconds.
    pub cpu_secs: Option<u64>,
    /// `openFiles`: open file descriptors (RLIMIT_NOFILE).
    pub open_files: Option<u64>,
}
