//! One stdio server process: started with a cleared environment (an
//! allow-list of the hub's own variables plus the server's configured
//! `env`), in its own process group, with resource limits set before exec;
//! stopped with SIGTERM to the group, SIGKILL after a grace period, and
//! always reaped. Its stderr lines go to the hub log (rate-limited, injected
//! values masked). Issue 19; design: docs/upstream.md.
//!
//! Invariant: a signal goes to the process group only while its leader is
//! not reaped (a zombie still holds its pid, so the group id cannot name
//! someone else's group); once the leader has exited, the group gets one
//! SIGKILL before the leader is reaped, so its descendants (npx → node)
//! never outlive it.
// The one module of the hub with `unsafe` (see src/lib.rs): libc calls for
// setrlimit (between fork and exec), kill and waitid; each block says why it
// is sound.
#![allow(unsafe_code)]

use crate::config::ProcessLimits;
use parking_lot::Mutex;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Variables of the hub's own environment a server process inherits (when
/// set); everything else is cleared. The configured `env` comes on top.
pub const ALLOWED_ENV: &[&str] = &[
    "PATH", "HOME", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER", "LOGNAME", "SHELL", "TERM",
    "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "NPM_CONFIG_CACHE", "npm_config_cache", "UV_CACHE_DIR",
    "UV_TOOL_DIR", "PIP_CACHE_DIR", "NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE",
];

/// Grace between SIGTERM and SIGKILL when a process is stopped.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// Grace between SIGTERM and SIGKILL when a [`Child`] still running is
/// dropped (short: a drop should not hold its thread for long).
pub const DROP_GRACE: Duration = Duration::from_millis(100);

/// How often [`Child::stop`] looks whether the process has exited.
const STOP_POLL: Duration = Duration::from_millis(10);

/// At most this much of a stderr line is logged (bytes); the rest of a
/// longer line is skipped.
pub const STDERR_LINE_MAX: usize = 4096;

/// stderr lines logged per second per process, sustained (token bucket).
const STDERR_LINES_PER_SEC: f64 = 20.0;

/// stderr lines logged in a burst per process (the bucket's size).
const STDERR_BURST: f64 = 50.0;

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

/// A started process (the leader of its own process group). Shared by
/// threads (`&self` methods); dropping it while the process runs stops it
/// with [`DROP_GRACE`] and reaps it.
pub struct Child {
    pid: u32,
    state: Mutex<State>,
}

/// The std handle and, once reaped, the exit status (the pid may then name
/// another process: no signal is sent any more).
struct State {
    child: std::process::Child,
    status: Option<ExitStatus>,
}

/// Starts `spec` (see the module doc). Errors: the spawn's io error (no
/// such program, not executable, bad `cwd`; a limit above the hub's own
/// hard limit fails with EPERM from `setrlimit`).
pub fn spawn(spec: &Spawn) -> io::Result<(Child, Pipes)> {
    let mut command = Command::new(spec.command);
    command.args(spec.args).env_clear();
    for name in ALLOWED_ENV {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    command.envs(spec.env.iter().map(|(name, value)| (name, value)));
    if let Some(cwd) = spec.cwd {
        command.current_dir(cwd);
    }
    command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    // Computed here: nothing between fork and exec may allocate.
    let limits = rlimits(spec.limits);
    // SAFETY: the closure runs in the forked child before exec; it only
    // calls `setrlimit` (async-signal-safe) on values computed before the
    // fork, and builds its error from errno without allocating.
    unsafe {
        command.pre_exec(move || {
            for (resource, value) in limits.iter().flatten() {
                let limit = libc::rlimit { rlim_cur: *value, rlim_max: *value };
                if libc::setrlimit(*resource, &limit) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut child = command.spawn()?;
    let (Some(stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        // Unreachable with Stdio::piped(); never leave the process behind.
        let _ = child.kill();
        let _ = child.wait();
        return Err(io::Error::other("a pipe of the started process is missing"));
    };
    let pid = child.id();
    Ok((Child { pid, state: Mutex::new(State { child, status: None }) }, Pipes { stdin, stdout, stderr }))
}

/// The type of `setrlimit`'s resource argument (differs between libcs).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
type Resource = libc::c_int;

/// `limits` as `setrlimit` calls (soft = hard = the value); memory in bytes.
fn rlimits(limits: ProcessLimits) -> [Option<(Resource, libc::rlim_t)>; 3] {
    let value = |v: u64| libc::rlim_t::try_from(v).unwrap_or(libc::RLIM_INFINITY);
    [
        limits.memory_mb.map(|mb| (libc::RLIMIT_AS, value(mb.saturating_mul(1024 * 1024)))),
        limits.cpu_secs.map(|secs| (libc::RLIMIT_CPU, value(secs))),
        limits.open_files.map(|n| (libc::RLIMIT_NOFILE, value(n))),
    ]
}

impl Child {
    /// Its process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Its exit status if it has exited (and is now reaped, its group
    /// SIGKILLed first), else `None`.
    pub fn try_exit(&self) -> Option<ExitStatus> {
        let mut state = self.state.lock();
        self.try_reap(&mut state)
    }

    /// Stops it: SIGTERM to its group, up to `grace` for it to exit, then
    /// SIGKILL to the group; reaps it and returns its exit status (at once
    /// if it had already exited). Safe to call more than once, from several
    /// threads. Blocks for at most `grace` plus the time SIGKILL takes.
    pub fn stop(&self, grace: Duration) -> ExitStatus {
        {
            let mut state = self.state.lock();
            if let Some(status) = self.try_reap(&mut state) {
                return status;
            }
            self.signal_group(&state, libc::SIGTERM);
        }
        let end = Instant::now() + grace;
        loop {
            if let Some(status) = self.try_exit() {
                return status;
            }
            let now = Instant::now();
            if now >= end {
                break;
            }
            std::thread::sleep(STOP_POLL.min(end - now));
        }
        self.kill_now()
    }

    /// SIGKILL to its group at once, then reaps it; returns its exit status
    /// (at once if it had already been reaped).
    pub fn kill_now(&self) -> ExitStatus {
        let mut state = self.state.lock();
        if let Some(status) = state.status {
            return status;
        }
        self.reap(&mut state)
    }

    /// The cached status, or: if the leader has exited, SIGKILL to the
    /// group and reap it.
    fn try_reap(&self, state: &mut State) -> Option<ExitStatus> {
        if state.status.is_some() {
            return state.status;
        }
        match self.exited() {
            Ok(true) => Some(self.reap(state)),
            Ok(false) => None,
            Err(e) => {
                // Not expected (we are its parent and only we reap it); fall
                // back on std's check, which reaps without the group kill.
                log::debug!("waitid({}) failed: {e}", self.pid);
                let status = state.child.try_wait().ok().flatten();
                state.status = status;
                status
            }
        }
    }

    /// SIGKILL to the group (the leader is not reaped yet), then waits for
    /// the leader and caches its status.
    fn reap(&self, state: &mut State) -> ExitStatus {
        self.signal_group(state, libc::SIGKILL);
        let status = state.child.wait().unwrap_or_else(|e| {
            // Only if someone else reaped it (SIGCHLD ignored): nothing left
            // to wait for; report it as killed.
            log::warn!("could not reap process {}: {e}", self.pid);
            ExitStatus::from_raw(libc::SIGKILL)
        });
        state.status = Some(status);
        status
    }

    /// Has the leader exited? Looks without reaping it (`WNOWAIT`), so that
    /// its pid still names its group for the SIGKILL of [`Child::reap`].
    fn exited(&self) -> io::Result<bool> {
        let pid = libc::id_t::from(self.pid);
        // SAFETY: siginfo_t is plain data, valid zeroed; waitid writes into
        // it only and does not keep the pointer.
        unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            if libc::waitid(libc::P_PID, pid, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT) != 0 {
                return Err(io::Error::last_os_error());
            }
            // With WNOHANG and no exited child, si_pid stays 0.
            Ok(info.si_pid() != 0)
        }
    }

    /// `signal` to the process group. Only while the leader is not reaped
    /// (the caller holds the state lock and `status` is `None`). A group
    /// already gone (ESRCH) is fine.
    fn signal_group(&self, state: &State, signal: libc::c_int) {
        debug_assert!(state.status.is_none(), "no signal after the leader is reaped");
        let Ok(pgid) = libc::pid_t::try_from(self.pid) else { return };
        // SAFETY: kill has no memory effects; `-pgid` names the group this
        // child leads (process_group(0)), and the leader is not reaped, so
        // the id cannot have been reused.
        if unsafe { libc::kill(-pgid, signal) } != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ESRCH) {
                log::warn!("kill(-{pgid}, {}) failed: {e}", signal_name(signal).unwrap_or("?"));
            }
        }
    }
}

impl Drop for Child {
    /// A process still running is stopped ([`DROP_GRACE`]) and reaped: no
    /// process nor zombie outlives its handle.
    fn drop(&mut self) {
        if self.state.get_mut().status.is_none() {
            self.stop(DROP_GRACE);
        }
    }
}

/// How an exit reads in an error or a log line: "exit status 3", "killed by
/// signal 9 (SIGKILL)"; a signal without a common name is only its number.
pub fn describe_exit(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit status {code}");
    }
    match status.signal() {
        Some(signal) => match signal_name(signal) {
            Some(name) => format!("killed by signal {signal} ({name})"),
            None => format!("killed by signal {signal}"),
        },
        None => status.to_string(),
    }
}

/// The name of a common signal.
fn signal_name(signal: libc::c_int) -> Option<&'static str> {
    Some(match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGABRT => "SIGABRT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        _ => return None,
    })
}

/// Reads `stderr` line by line until it closes and logs each line as
/// `[server#pid] line` at INFO: at most 4 KiB of a line ([`STDERR_LINE_MAX`]),
/// rate-limited (20 lines/s, bursts of 50, then one line counting what was
/// dropped), every value of `masked` replaced by `***`, control characters
/// (terminal escapes) removed. Runs on the caller's thread.
pub fn log_stderr(server: &str, pid: u32, stderr: ChildStderr, masked: &[String]) {
    log_lines(server, pid, stderr, masked, Instant::now);
}

/// [`log_stderr`] over any reader, with the clock injected.
fn log_lines(server: &str, pid: u32, reader: impl Read, masked: &[String], now: impl Fn() -> Instant) {
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    let mut limit = RateLimit::new(now());
    loop {
        match next_line(&mut reader, &mut line, STDERR_LINE_MAX) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                log::debug!("[{server}#{pid}] stderr: {e}");
                break;
            }
        }
        let Some(dropped) = limit.allow(now()) else { continue };
        if dropped > 0 {
            log_dropped(server, dropped);
        }
        log::info!("[{server}#{pid}] {}", clean_line(&line, masked));
    }
    let dropped = limit.finish();
    if dropped > 0 {
        log_dropped(server, dropped);
    }
}

fn log_dropped(server: &str, dropped: u64) {
    log::warn!("… {dropped} stderr lines of '{server}' dropped (rate limit)");
}

/// Reads the next line of `reader` into `line` (cleared first; with its
/// `\n`): at most `max` bytes of it, the rest of a longer line read and
/// skipped. `false` at the end of input with nothing read.
fn next_line(reader: &mut impl BufRead, line: &mut Vec<u8>, max: usize) -> io::Result<bool> {
    line.clear();
    let mut read_any = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(read_any);
        }
        read_any = true;
        let (used, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        let room = max.saturating_sub(line.len());
        line.extend_from_slice(&available[..used.min(room)]);
        reader.consume(used);
        if done {
            return Ok(true);
        }
    }
}

/// A raw stderr line as logged: lossy UTF-8, the trailing `\r\n` trimmed,
/// every non-empty value of `masked` replaced by `***` (longest first, in one
/// pass: a replacement is never matched again), control characters other
/// than tab removed.
fn clean_line(raw: &[u8], masked: &[String]) -> String {
    let text = String::from_utf8_lossy(raw);
    let text = text.trim_end_matches(['\r', '\n']);
    let mut masks: Vec<&str> = masked.iter().map(String::as_str).filter(|m| !m.is_empty()).collect();
    masks.sort_by_key(|m| std::cmp::Reverse(m.len()));
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if let Some(mask) = masks.iter().find(|m| rest.starts_with(**m)) {
            out.push_str("***");
            rest = &rest[mask.len()..];
            continue;
        }
        if !c.is_control() || c == '\t' {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// A token bucket of stderr lines ([`STDERR_LINES_PER_SEC`], bursts of
/// [`STDERR_BURST`]) that counts the lines it refuses; the clock is passed in.
struct RateLimit {
    tokens: f64,
    last: Instant,
    dropped: u64,
}

impl RateLimit {
    /// A full bucket at `now`.
    fn new(now: Instant) -> RateLimit {
        RateLimit { tokens: STDERR_BURST, last: now, dropped: 0 }
    }

    /// May a line arriving at `now` be logged? `None`: no (counted as
    /// dropped). `Some(n)`: yes, after reporting the `n` lines dropped since
    /// the last one logged (0: nothing to report).
    fn allow(&mut self, now: Instant) -> Option<u64> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * STDERR_LINES_PER_SEC).min(STDERR_BURST);
        if self.tokens < 1.0 {
            self.dropped += 1;
            return None;
        }
        self.tokens -= 1.0;
        Some(std::mem::take(&mut self.dropped))
    }

    /// The lines dropped and not yet reported (at the end of input).
    fn finish(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use std::sync::mpsc;

    const WAIT: Duration = Duration::from_secs(10);

    fn sh(script: &str) -> Vec<String> {
        vec!["-c".to_string(), script.to_string()]
    }

    fn start(args: &[String], env: &[(String, String)], limits: ProcessLimits) -> (Child, Pipes) {
        let spec = Spawn { server: "t", command: "/bin/sh", args, env, cwd: None, limits };
        spawn(&spec).expect("spawn /bin/sh")
    }

    /// Runs `read` on a thread; its result within [`WAIT`] or a panic naming `what`.
    fn within<T: Send + 'static>(what: &str, read: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(read());
        });
        rx.recv_timeout(WAIT).unwrap_or_else(|_| panic!("{what}: nothing within {WAIT:?}"))
    }

    fn read_to_end(stdout: ChildStdout) -> String {
        within("stdout to EOF", move || {
            let mut out = String::new();
            BufReader::new(stdout).read_to_string(&mut out).expect("read stdout");
            out
        })
    }

    fn first_line(stdout: ChildStdout) -> (String, BufReader<ChildStdout>) {
        within("a line on stdout", move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            reader.read_line(&mut line).expect("read stdout");
            (line.trim_end().to_string(), reader)
        })
    }

    fn wait_exit(child: &Child) -> ExitStatus {
        let end = Instant::now() + WAIT;
        loop {
            if let Some(status) = child.try_exit() {
                return status;
            }
            assert!(Instant::now() < end, "process {} did not exit within {WAIT:?}", child.pid());
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Gone, or a zombie (reparented to a PID 1 that may not reap).
    fn is_gone(pid: u32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        }
    }

    fn wait_gone(pid: u32) {
        let end = Instant::now() + WAIT;
        while !is_gone(pid) {
            assert!(Instant::now() < end, "process {pid} still alive after {WAIT:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn the_environment_is_the_allow_list_plus_the_configured_env() {
        // cargo sets CARGO_* for the test process (not in ALLOWED_ENV); run
        // outside cargo, the check that every variable is allowed still holds.
        let env = vec![("FOO".to_string(), "bar".to_string()), ("PATH".to_string(), "/bin:/usr/bin".to_string())];
        let (child, pipes) = start(&sh("env"), &env, ProcessLimits::default());
        let out = read_to_end(pipes.stdout);
        let vars: Vec<&str> = out.lines().collect();
        assert!(vars.contains(&"FOO=bar"), "{vars:?}");
        assert!(vars.contains(&"PATH=/bin:/usr/bin"), "the configured env wins: {vars:?}");
        assert!(!vars.iter().any(|v| v.starts_with("CARGO_")), "{vars:?}");
        let allowed = |v: &&str| {
            let name = v.split_once('=').map_or(*v, |(name, _)| name);
            ALLOWED_ENV.contains(&name) || name == "FOO" || name == "PWD" // PWD: set by sh
        };
        assert!(vars.iter().all(allowed), "{vars:?}");
        assert_eq!(describe_exit(wait_exit(&child)), "exit status 0");
    }

    #[test]
    fn an_inherited_path_is_kept() {
        let (child, pipes) = start(&sh("echo \"$PATH\""), &[], ProcessLimits::default());
        let out = read_to_end(pipes.stdout);
        assert_eq!(out.trim_end(), std::env::var("PATH").expect("PATH"));
        wait_exit(&child);
    }

    #[test]
    fn stop_ends_the_whole_process_group_and_reaps_the_leader() {
        let (child, pipes) = start(&sh("sleep 1000 & echo $!; wait"), &[], ProcessLimits::default());
        let (line, _stdout) = first_line(pipes.stdout);
        let grandchild: u32 = line.parse().unwrap_or_else(|_| panic!("a pid, not {line:?}"));
        assert!(!is_gone(grandchild), "sleep runs");
        let status = child.stop(Duration::from_millis(200));
        assert!(status.signal().is_some(), "{}", describe_exit(status));
        assert_eq!(child.try_exit(), Some(status), "cached");
        assert_eq!(child.stop(Duration::ZERO), status, "a second stop returns the same");
        assert!(!Path::new(&format!("/proc/{}", child.pid())).exists(), "the leader is reaped");
        wait_gone(grandchild);
    }

    #[test]
    fn a_leader_that_exits_on_its_own_takes_its_group_with_it() {
        let (child, pipes) = start(&sh("sleep 1000 & echo $!"), &[], ProcessLimits::default());
        let (line, _stdout) = first_line(pipes.stdout);
        let grandchild: u32 = line.parse().unwrap_or_else(|_| panic!("a pid, not {line:?}"));
        assert_eq!(describe_exit(wait_exit(&child)), "exit status 0");
        wait_gone(grandchild);
    }

    #[test]
    fn sigterm_ignored_means_sigkill_after_the_grace() {
        let script = "trap '' TERM; echo ready; while :; do sleep 1; done";
        let (child, pipes) = start(&sh(script), &[], ProcessLimits::default());
        let (line, _stdout) = first_line(pipes.stdout);
        assert_eq!(line, "ready");
        let started = Instant::now();
        let status = child.stop(Duration::from_millis(300));
        let took = started.elapsed();
        assert_eq!(describe_exit(status), "killed by signal 9 (SIGKILL)");
        assert!(took >= Duration::from_millis(300), "took {took:?}");
        assert!(took < WAIT, "took {took:?}");
    }

    #[test]
    fn a_stopped_process_that_honours_sigterm_is_described_so() {
        let (child, pipes) = start(&sh("echo ready; exec sleep 1000"), &[], ProcessLimits::default());
        let (line, _stdout) = first_line(pipes.stdout);
        assert_eq!(line, "ready");
        assert_eq!(describe_exit(child.stop(WAIT)), "killed by signal 15 (SIGTERM)");
    }

    #[test]
    fn an_exit_code_is_described() {
        let (child, _pipes) = start(&sh("exit 3"), &[], ProcessLimits::default());
        let status = wait_exit(&child);
        assert_eq!(describe_exit(status), "exit status 3");
        assert_eq!(describe_exit(child.stop(STOP_GRACE)), "exit status 3", "stop after exit: the cached status");
    }

    #[test]
    fn describe_exit_names_common_signals_only() {
        assert_eq!(describe_exit(ExitStatus::from_raw(libc::SIGSEGV)), "killed by signal 11 (SIGSEGV)");
        assert_eq!(describe_exit(ExitStatus::from_raw(libc::SIGUSR1)), format!("killed by signal {}", libc::SIGUSR1));
        assert_eq!(describe_exit(ExitStatus::from_raw(1 << 8)), "exit status 1");
    }

    #[test]
    fn limits_are_set_before_exec() {
        let limits = ProcessLimits { memory_mb: Some(1024), cpu_secs: Some(7), open_files: Some(16) };
        let (child, pipes) = start(&sh("ulimit -n; ulimit -t; ulimit -v"), &[], limits);
        let out = read_to_end(pipes.stdout);
        assert_eq!(out.lines().collect::<Vec<_>>(), ["16", "7", "1048576"], "ulimit -v is in KiB");
        assert_eq!(describe_exit(wait_exit(&child)), "exit status 0");
    }

    #[test]
    fn a_missing_program_or_cwd_is_a_spawn_error() {
        for command in ["/nonexistent/mcp-server", "no-such-mcp-server-anywhere"] {
            let spec = Spawn { server: "t", command, args: &[], env: &[], cwd: None, limits: ProcessLimits::default() };
            let err = spawn(&spec).err().unwrap_or_else(|| panic!("{command} started"));
            assert_eq!(err.kind(), io::ErrorKind::NotFound, "{command}: {err}");
        }
        let args = sh("true");
        let cwd = Path::new("/nonexistent/dir");
        let spec =
            Spawn { server: "t", command: "/bin/sh", args: &args, env: &[], cwd: Some(cwd), limits: ProcessLimits::default() };
        assert!(spawn(&spec).is_err(), "a missing cwd");
    }

    #[test]
    fn a_dropped_child_is_stopped_and_reaped() {
        let (child, pipes) = start(&sh("echo ready; exec sleep 1000"), &[], ProcessLimits::default());
        let (line, _stdout) = first_line(pipes.stdout);
        assert_eq!(line, "ready");
        let pid = child.pid();
        drop(child);
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "reaped on drop");
    }

    #[test]
    fn stderr_lines_are_logged_to_the_end() {
        // Through the real reader: every line read, EOF ends it.
        let (child, pipes) = start(&sh("echo one >&2; echo two >&2"), &[], ProcessLimits::default());
        let pid = child.pid();
        let stderr = pipes.stderr;
        within("stderr to EOF", move || log_stderr("t", pid, stderr, &["one".to_string()]));
        wait_exit(&child);
    }

    #[test]
    fn clean_line_masks_longest_first_and_strips_controls() {
        let masked = vec!["abc".to_string(), String::new(), "abcdef".to_string(), "*".to_string()];
        assert_eq!(clean_line(b"token=abcdef; short=abc\r\n", &masked), "token=***; short=***");
        assert_eq!(clean_line(b"\x1b[31mred\x1b[0m\tok\x07\n", &[]), "[31mred[0m\tok");
        assert_eq!(clean_line(b"bad \xff utf8", &[]), "bad \u{fffd} utf8");
        assert_eq!(clean_line("c1 \u{9b}x".as_bytes(), &[]), "c1 x");
        assert_eq!(clean_line(b"", &masked), "");
    }

    #[test]
    fn next_line_cuts_long_lines_and_skips_their_rest() {
        let mut input = vec![b'a'; 10];
        input.extend_from_slice(b"\nnext\r\nlast");
        let mut reader = BufReader::with_capacity(3, Cursor::new(input));
        let mut line = Vec::new();
        assert!(next_line(&mut reader, &mut line, 4).expect("read"));
        assert_eq!(line, b"aaaa");
        assert!(next_line(&mut reader, &mut line, 4).expect("read"));
        assert_eq!(line, b"next");
        assert!(next_line(&mut reader, &mut line, 100).expect("read"));
        assert_eq!(line, b"last");
        assert!(!next_line(&mut reader, &mut line, 100).expect("read"));
        assert!(line.is_empty());
    }

    #[test]
    fn rate_limit_allows_a_burst_then_twenty_a_second_and_reports_drops_once() {
        let t0 = Instant::now();
        let mut limit = RateLimit::new(t0);
        for i in 0..50 {
            assert_eq!(limit.allow(t0), Some(0), "line {i} of the burst");
        }
        assert_eq!(limit.allow(t0), None);
        assert_eq!(limit.allow(t0), None);
        assert_eq!(limit.allow(t0 + Duration::from_millis(40)), None, "0.8 of a token");
        let t1 = t0 + Duration::from_millis(100); // 2 tokens
        assert_eq!(limit.allow(t1), Some(3), "the three dropped lines, reported once");
        assert_eq!(limit.allow(t1), Some(0));
        assert_eq!(limit.allow(t1), None);
        assert_eq!(limit.finish(), 1);
        assert_eq!(limit.finish(), 0);
        let later = t1 + Duration::from_secs(3600);
        for _ in 0..50 {
            assert_eq!(limit.allow(later), Some(0), "the bucket holds at most the burst");
        }
        assert_eq!(limit.allow(later), None);
        assert_eq!(limit.allow(t0), None, "a clock going back adds nothing");
    }

    #[test]
    fn log_lines_drops_over_the_rate_and_reads_to_the_end() {
        let input: String = (0..200).map(|i| format!("line {i}\n")).collect();
        let t0 = Instant::now();
        // Every line at the same instant: 50 logged, 150 dropped, all read.
        let mut reader = Cursor::new(input.into_bytes());
        log_lines("t", 1, &mut reader, &[], || t0);
        assert_eq!(reader.position() as usize, reader.get_ref().len());
    }
}
