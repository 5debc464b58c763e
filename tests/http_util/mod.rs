//! Raw HTTP/1.1 for tests (issue 15 item 7: each helper once): a server
//! with a test handler, the one raw request writer and response reader over
//! a `TcpStream`, the one SSE stream reader, and /proc counters. The hub
//! tests reach these through `hub_util`.
#![allow(dead_code)]

use mcphub::http::{Handler, Request, Response, Server, ServerConfig, ServerHandle, ServerStats};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// How long one blocking read or write on a test connection may take.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A parsed response as the client saw it.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Routes: `/` → "ok"; `/echo` → the body; `/slow?ms=N` → sleeps N ms;
/// `/panic` → panics; anything else → 404.
pub fn test_handler(req: Request) -> Response {
    match req.path() {
        "/" => Response::text(200, "ok"),
        "/echo" => Response {
            status: 200,
            headers: vec![],
            body: mcphub::http::Body::Full(req.body.clone()),
        },
        "/slow" => {
            let ms: u64 = req.query("ms").and_then(|v| v.parse().ok()).unwrap_or(500);
            std::thread::sleep(Duration::from_millis(ms));
            Response::text(200, "slow")
        }
        "/panic" => panic!("test handler panic (expected)"),
        _ => Response::text(404, "nope"),
    }
}

pub fn start(cfg: ServerConfig) -> ServerHandle {
    start_with(cfg, test_handler)
}

pub fn start_with(
    cfg: ServerConfig,
    h: impl Fn(Request) -> Response + Send + Sync + 'static,
) -> ServerHandle {
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    Server::bind(addr, cfg, Arc::new(h)).expect("bind")
}

/// Like [`start_with`], and hands back the server's live [`ServerStats`]
/// (worker queue depth, 503 counts), so a test can wait for a request to be
/// queued instead of sleeping.
pub fn start_observed(
    cfg: ServerConfig,
    h: impl Fn(Request) -> Response + Send + Sync + 'static,
) -> (ServerHandle, Arc<ServerStats>) {
    struct Observed<F> {
        handle: F,
        stats: Arc<OnceLock<Arc<ServerStats>>>,
    }
    impl<F: Fn(Request) -> Response + Send + Sync + 'static> Handler for Observed<F> {
        fn handle(&self, req: Request) -> Response {
            (self.handle)(req)
        }
        fn attach(&self, stats: Arc<ServerStats>) {
            let _ = self.stats.set(stats);
        }
    }
    let stats = Arc::new(OnceLock::new());
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let srv = Server::bind(addr, cfg, Arc::new(Observed { handle: h, stats: stats.clone() })).expect("bind");
    let stats = stats.get().cloned().expect("Server::bind attaches the stats");
    (srv, stats)
}

/// A connection to `addr` (`SocketAddr` or `"host:port"`) with
/// [`IO_TIMEOUT`] on reads and writes.
pub fn connect(addr: impl ToSocketAddrs) -> TcpStream {
    try_connect(addr).expect("connect")
}

fn try_connect(addr: impl ToSocketAddrs) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(s)
}

/// `"host:port"` of an `http://host:port/path` URL.
pub fn addr_of(url: &str) -> &str {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    rest.split('/').next().unwrap_or(rest)
}

/// The bytes of one request: `method path`, the `headers`, `Host` (unless
/// given) and `Content-Length` (for a body or a method other than GET/HEAD),
/// then `body`.
pub fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> String {
    let mut raw = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        raw.push_str("Host: t\r\n");
    }
    for (k, v) in headers {
        raw.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || !matches!(method, "GET" | "HEAD") {
        raw.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    raw.push_str("\r\n");
    raw.push_str(body);
    raw
}

/// Writes `raw` on a new connection (see [`connect`]) and returns the reader
/// for what comes back.
pub fn send_raw(addr: impl ToSocketAddrs, raw: &[u8]) -> BufReader<TcpStream> {
    let mut s = connect(addr);
    s.write_all(raw).expect("write the request");
    BufReader::new(s)
}

/// Reads one response (handles Content-Length, chunked, close-delimited; HEAD → no body).
pub fn read_response<R: BufRead>(r: &mut R, head_only: bool) -> std::io::Result<Resp> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let mut resp = Resp {
        status,
        headers,
        body: Vec::new(),
    };
    if head_only || status == 100 || status == 204 || status == 304 {
        return Ok(resp);
    }
    if let Some(n) = resp.header("content-length") {
        let n: usize = n.parse().map_err(std::io::Error::other)?;
        resp.body.resize(n, 0);
        r.read_exact(&mut resp.body)?;
    } else if resp
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let size = read_chunk(r)?;
            match size {
                None => break,
                Some(c) => resp.body.extend_from_slice(&c),
            }
        }
    } else {
        r.read_to_end(&mut resp.body)?;
    }
    Ok(resp)
}

/// Reads one chunk; `None` for the terminal chunk (trailers consumed).
pub fn read_chunk<R: BufRead>(r: &mut R) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
        .map_err(|e| std::io::Error::other(format!("bad chunk line {line:?}: {e}")))?;
    if size == 0 {
        let mut t = String::new();
        loop {
            t.clear();
            r.read_line(&mut t)?;
            if t.trim_end().is_empty() {
                return Ok(None);
            }
        }
    }
    let mut data = vec![0; size + 2];
    r.read_exact(&mut data)?;
    data.truncate(size);
    Ok(Some(data))
}

/// Sends raw bytes on a new connection and reads one response: the one raw
/// HTTP exchange. A refused connect is an error too, not a panic.
pub fn roundtrip(addr: impl ToSocketAddrs, raw: &[u8]) -> std::io::Result<Resp> {
    let mut s = try_connect(addr)?;
    s.write_all(raw)?;
    read_response(&mut BufReader::new(s), false)
}

pub fn get(addr: SocketAddr, path: &str) -> std::io::Result<Resp> {
    roundtrip(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// One server-sent event as a client sees it.
#[derive(Debug, Clone)]
pub struct Event {
    /// `id:` when present.
    pub id: Option<String>,
    /// `event:` (empty means `message`).
    pub event: String,
    /// The `data:` lines joined by `\n`, as sent.
    pub text: String,
    /// `text` as JSON; panics where it is not (hubs and upstreams send
    /// JSON-RPC messages only).
    pub data: Value,
}

impl Event {
    fn of(e: mcphub::protocol::sse::Event) -> Event {
        let data = serde_json::from_str(&e.data).unwrap_or_else(|err| panic!("event data is not JSON ({err}): {:?}", e.data));
        Event { id: e.id, event: e.event, text: e.data, data }
    }

    /// `data.method` (empty for a response).
    pub fn method(&self) -> &str {
        self.data["method"].as_str().unwrap_or_default()
    }
}

/// Every event of a complete `text/event-stream` body (events with empty
/// data, like the 2025-11-25 priming event, are not events).
pub fn events_of(body: &str) -> Vec<Event> {
    mcphub::protocol::sse::parse_all(body).into_iter().map(Event::of).collect()
}

/// An open response read event by event on a raw socket, with a deadline
/// per event: the one SSE reader of the tests. Undoes chunked framing;
/// events with empty data (the priming event) are skipped, except by
/// [`SseStream::next_raw_within`].
pub struct SseStream {
    /// The response's status code.
    pub status: u16,
    /// The response's header fields, in order.
    pub headers: Vec<(String, String)>,
    sock: TcpStream,
    /// Bytes read and not yet unframed.
    raw: Vec<u8>,
    /// Body bytes not yet parsed into lines.
    body: Vec<u8>,
    chunked: bool,
    /// Bytes of the current chunk still to come (`None`: a size line next).
    chunk_left: Option<usize>,
    ended: bool,
    parser: mcphub::protocol::sse::Parser,
    /// The `id:` of the event being read.
    last_id: Option<String>,
}

impl SseStream {
    /// Sends `raw` (a whole request, see [`request`]) on a new connection and
    /// reads the response head.
    pub fn open(addr: impl ToSocketAddrs, raw: &str) -> SseStream {
        let mut reader = send_raw(addr, raw.as_bytes());
        let head = read_response(&mut reader, true).expect("a response head");
        let chunked = head.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        let raw = reader.buffer().to_vec();
        let mut stream = SseStream {
            status: head.status,
            headers: head.headers,
            sock: reader.into_inner(),
            raw,
            body: Vec::new(),
            chunked,
            chunk_left: None,
            ended: false,
            parser: Default::default(),
            last_id: None,
        };
        // What came with the head.
        stream.unframe();
        stream
    }

    /// `GET` of `url` with `headers` (`Host` from the URL and `Accept:
    /// text/event-stream` added).
    pub fn get(url: &str, headers: &[(&str, &str)]) -> SseStream {
        let mut h = vec![("Host", addr_of(url)), ("Accept", "text/event-stream")];
        h.extend_from_slice(headers);
        SseStream::open(addr_of(url), &request("GET", url_path(url), &h, ""))
    }

    /// `POST` of `body` to `url` with `headers` (`Host` from the URL,
    /// `Content-Type: application/json` and `Accept: application/json,
    /// text/event-stream` added).
    pub fn post(url: &str, headers: &[(&str, &str)], body: &str) -> SseStream {
        let mut h = vec![("Host", addr_of(url)), ("Content-Type", "application/json"), ("Accept", "application/json, text/event-stream")];
        h.extend_from_slice(headers);
        SseStream::open(addr_of(url), &request("POST", url_path(url), &h, body))
    }

    /// A header field of the response.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The next event within [`IO_TIMEOUT`] (see [`SseStream::next_within`]).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Event> {
        self.next_within(IO_TIMEOUT)
    }

    /// The next event with data; `None` when the stream ends or nothing
    /// comes within `within`.
    pub fn next_within(&mut self, within: Duration) -> Option<Event> {
        let end = Instant::now() + within;
        loop {
            let e = self.next_raw_within(end.saturating_duration_since(Instant::now()))?;
            if !e.data.is_empty() {
                return Some(Event::of(e));
            }
        }
    }

    /// The next event as parsed, empty data included (the priming event:
    /// an `id:` and an empty `data:`); `None` as for [`SseStream::next_within`].
    pub fn next_raw_within(&mut self, within: Duration) -> Option<mcphub::protocol::sse::Event> {
        let end = Instant::now() + within;
        loop {
            while let Some(n) = self.body.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.body.drain(..=n).collect();
                if let Some(e) = self.line(String::from_utf8_lossy(&line[..n]).trim_end_matches('\r')) {
                    return Some(e);
                }
            }
            if self.ended || !self.fill(end) {
                return None;
            }
        }
    }

    /// The rest of the body as text, for an answer that is not an event
    /// stream: up to its `Content-Length`, terminal chunk or close, read
    /// within [`IO_TIMEOUT`].
    pub fn text(mut self) -> String {
        let len: Option<usize> = self.header("content-length").and_then(|v| v.parse().ok());
        let end = Instant::now() + IO_TIMEOUT;
        while !self.ended && len.is_none_or(|n| self.body.len() < n) && self.fill(end) {}
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Reads what has come (waiting until `end` at most) and unframes it;
    /// false when nothing came in time.
    fn fill(&mut self, end: Instant) -> bool {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        self.sock.set_read_timeout(Some(left)).expect("read timeout");
        let mut buf = [0u8; 8192];
        match self.sock.read(&mut buf) {
            Ok(0) => self.ended = true,
            Ok(n) => {
                self.raw.extend_from_slice(&buf[..n]);
                self.unframe();
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => return false,
            Err(_) => self.ended = true,
        }
        true
    }

    /// Closes the connection (the client goes away).
    pub fn close(self) {
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
    }

    /// Feeds one line to the crate's SSE parser; an event at a blank line,
    /// and an event with an `id:` but empty data (which the parser does not
    /// dispatch) as one with empty data.
    fn line(&mut self, line: &str) -> Option<mcphub::protocol::sse::Event> {
        if let Some(id) = line.strip_prefix("id:") {
            self.last_id = Some(id.strip_prefix(' ').unwrap_or(id).to_string());
        }
        let event = self.parser.line(line);
        if !line.is_empty() {
            return event;
        }
        let id = self.last_id.take();
        event.or_else(|| id.map(|id| mcphub::protocol::sse::Event { id: Some(id), ..Default::default() }))
    }

    /// Moves what was read into `body`, undoing chunked framing.
    fn unframe(&mut self) {
        if !self.chunked {
            self.body.append(&mut self.raw);
            return;
        }
        loop {
            match self.chunk_left {
                None => {
                    let Some(n) = self.raw.windows(2).position(|w| w == b"\r\n") else { return };
                    let line: Vec<u8> = self.raw.drain(..n + 2).collect();
                    let size = String::from_utf8_lossy(&line[..n]);
                    let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
                        .unwrap_or_else(|e| panic!("bad chunk size line {size:?}: {e}"));
                    if size == 0 {
                        self.ended = true;
                        return;
                    }
                    self.chunk_left = Some(size);
                }
                Some(left) => {
                    let take = left.min(self.raw.len());
                    self.body.extend(self.raw.drain(..take));
                    if take < left || self.raw.len() < 2 {
                        self.chunk_left = Some(left - take);
                        return;
                    }
                    self.raw.drain(..2);
                    self.chunk_left = None;
                }
            }
        }
    }
}

/// The path of an `http://host:port/path` URL (`/` when it has none).
fn url_path(url: &str) -> &str {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    rest.find('/').map_or("/", |i| &rest[i..])
}

/// Threads of this process (/proc/self/status).
pub fn thread_count() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Threads:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Open fds of this process.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Raises the soft RLIMIT_NOFILE to at least `want` (up to the hard limit).
pub fn raise_nofile(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointer to an rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
