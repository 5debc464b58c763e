//! A real `redis-server` for tests: its own loopback port, no persistence,
//! stopped on drop. Tests need Debian's `redis-server` (and `redis-cli`);
//! without them they fail with a message that says so, never skip.
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Longest wait for a started server to answer PING.
const READY_WITHIN: Duration = Duration::from_secs(5);

/// A running `redis-server --port P --bind 127.0.0.1 --save '' --appendonly no`.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free loopback port and waits (≤ 5 s) until it
    /// answers PING. Panics if `redis-server` cannot be run or never answers.
    pub fn start() -> RedisServer {
        // A port picked free can be taken by someone else before the server
        // binds it; then the server exits and another port is tried.
        let mut last = String::new();
        for _ in 0..3 {
            let mut server = RedisServer { port: free_port(), child: None };
            match server.spawn() {
                Ok(()) => return server,
                Err(e) => last = e,
            }
        }
        panic!("redis-server did not start: {last}");
    }

    /// `redis://127.0.0.1:P`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server and waits for it to exit (nothing is saved). Calling
    /// it again does nothing.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server and starts a new, empty one on the same port; waits
    /// (≤ 5 s) until it answers PING.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(e) = self.spawn() {
            panic!("redis-server did not restart on port {}: {e}", self.port);
        }
    }

    /// Runs `redis-cli -p P args…`; its stdout, trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .arg("-p")
            .arg(self.port.to_string())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| {
                panic!("redis-cli not found ({e}): install Debian's redis-server (redis-tools); tests need a real Redis")
            });
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn spawn(&mut self) -> Result<(), String> {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("redis-server not found ({e}): install Debian's redis-server; tests need a real Redis")
            });
        self.child = Some(child);
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                return Err(format!("it exited with {status} (port {} taken?)", self.port));
            }
            if self.pings() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.stop();
                return Err(format!("no PONG on port {} within {READY_WITHIN:?}", self.port));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether our child (not another server that holds the port) answers.
    fn pings(&self) -> bool {
        let Some(pid) = self.child.as_ref().map(Child::id) else { return false };
        let Ok(client) = redis::Client::open(self.url()) else { return false };
        let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_millis(200)) else { return false };
        let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
        if !redis::cmd("PING").query::<String>(&mut conn).is_ok_and(|p| p == "PONG") {
            return false;
        }
        let info: String = redis::cmd("INFO").arg("server").query(&mut conn).unwrap_or_default();
        info.lines().any(|l| l.trim() == format!("process_id:{pid}"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}
