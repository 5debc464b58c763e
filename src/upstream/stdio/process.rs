//! One stdio server process: started with a cleared environment (an
//! allow-list of the hub's own variables plus the server's configured
//! `env`), in its own process group, with resource limits set before exec;
//! stopped with SIGTERM to the group, SIGKILL after a grace period, and
//! always reaped. Its stderr lines go to the hub log (rate-limited, injected
//! values masked). Issue 19; design: docs/upstream.md.

use crate::config::ProcessLimits;
use std::io;
use std::path::Path;
use std::process::{ChildStderr, ChildStdin, ChildStdout, ExitStatus};
use std::time::Duration;

/// Variables of the hub's own environment a server process inherits (when
/// set); everything else is cleared. The configured `env` comes on top.
pub const ALLOWED_ENV: &[&str] = &[
    "PATH", "HOME", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER", "LOGNAME", "SHELL", "TERM",
    "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "NPM_CONFIG_CACHE", "npm_config_cache", "UV_CACHE_DIR",
    "UV_TOOL_DIR", "PIP_CACHE_DIR", "NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE",
];

/// Grace between SIGTERM and SIGKILL when a process is stopped.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// What to start.
#[derive(Debug, Clone)]
pub struct Spawn<'a> {
    /// The server's name (log lines).
    pub server: &'a str,
    /// The program (a bare name is looked up in the child's `PATH`).
    pub command: &'a str,
    /// Its arguments.
    pub args: &'a [String],
    /// The configured environment (static and the caller's `${user.X}`
    /// values), set on top of [`ALLOWED_ENV`].
    pub env: &'a [(String, String)],
    /// Working directory.
    pub cwd: Option<&'a Path>,
    /// Limits set before exec.
    pub limits: ProcessLimits,
}

/// The pipes of a started process, for the transport's reader and writer.
pub struct Pipes {
    /// Its stdin (the hub writes one JSON-RPC message per line).
    pub stdin: ChildStdin,
    /// Its stdout (one JSON-RPC message per line).
    pub stdout: ChildStdout,
    /// Its stderr (log lines; see [`log_stderr`]).
    pub stderr: ChildStderr,
}

/// A started process (the leader of its own process group).
pub struct Child {
    _todo: (),
}

/// Starts `spec` (see the module doc). Errors: the spawn's io error (no
/// such program, not executable, bad `cwd`).
pub fn spawn(spec: &Spawn) -> io::Result<(Child, Pipes)> {
    let _ = spec;
    todo!("H1")
}

impl Child {
    /// Its process id (also its process group id).
    pub fn pid(&self) -> u32 {
        todo!("H1")
    }

    /// Its exit status if it has exited (and is now reaped), else `None`.
    pub fn try_exit(&self) -> Option<ExitStatus> {
        todo!("H1")
    }

    /// Stops it: SIGTERM to its group, up to `grace` for it to exit, then
    /// SIGKILL to the group; reaps it and returns its exit status (at once
    /// if it had already exited). Safe to call more than once.
    pub fn stop(&self, grace: Duration) -> ExitStatus {
        let _ = grace;
        todo!("H1")
    }
}

/// How an exit reads in an error or a log line: "exit status 3", "killed by
/// signal 9 (SIGKILL)".
pub fn describe_exit(status: ExitStatus) -> String {
    let _ = status;
    todo!("H1")
}

/// Reads `stderr` line by line until it closes and logs each line as
/// `[server#pid] line` at INFO: at most 4 KiB of a line, rate-limited (20
/// lines/s, bursts of 50, then one line counting what was dropped), every
/// value of `masked` replaced by `***`. Runs on the caller's thread.
pub fn log_stderr(server: &str, pid: u32, stderr: ChildStderr, masked: &[String]) {
    let _ = (server, pid, stderr, masked);
    todo!("H1")
}
