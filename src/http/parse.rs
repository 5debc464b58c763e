//! Sans-IO request reader: bytes in, a complete [`Request`] or a limit error out.
//!
//! The reader owns the bytes received on one connection that are not yet part
//! of a finished request. Feed it what the socket gave ([`RequestReader::feed`])
//! and ask it to make progress ([`RequestReader::advance`]); bytes after a
//! complete request stay buffered (pipelining) and the next `advance` starts
//! on them. No sockets, no clocks: deadlines (408) are the server's job.
//!
//! Rules (RFC 9112):
//! - head not complete within `max_head_bytes` (or more than 64 fields) → 431;
//! - request line with a version other than `HTTP/1.0`/`HTTP/1.1` → 505;
//! - anything malformed → 400, including both `Content-Length` and
//!   `Transfer-Encoding` (§6.1, request smuggling), a non-numeric or repeated
//!   differing `Content-Length` (§6.3), a transfer coding other than a final
//!   `chunked`, a bad chunk size line or a missing CRLF after chunk data;
//! - `Content-Length` above `max_body_bytes` → 413 decided from the header,
//!   before any body byte is read; chunked bodies are de-chunked as they
//!   arrive and 413 is answered as soon as the total goes over the limit;
//! - `Expect: 100-continue` on an HTTP/1.1 request with a body that has not
//!   started to arrive → [`Outcome::Continue100`] once, so the server writes
//!   `HTTP/1.1 100 Continue` before reading the body (§10.1.1 of RFC 9110).

use super::Request;
use std::net::SocketAddr;

/// Most header fields accepted in one head; more → 431.
pub const MAX_HEADERS: usize = 64;

/// Longest chunk-size line (with extensions) accepted, in bytes; longer → 400.
const MAX_CHUNK_LINE: usize = 1024;

/// Size limits for one request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Maximum head size in bytes (request line + fields + blank line); beyond → 431.
    pub max_head_bytes: usize,
    /// Maximum body size in bytes (after de-chunking); beyond → 413.
    pub max_body_bytes: usize,
}

/// What a request needs from the connection besides the [`Request`] itself.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The request, body de-chunked.
    pub request: Request,
    /// Bytes this request took on the wire (head + framed body).
    pub consumed: usize,
    /// Whether the connection may be kept open after the response
    /// (HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`).
    pub keep_alive: bool,
    /// Minor HTTP version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// The method is `HEAD`: the response must carry no body.
    pub head_only: bool,
}

/// The result of [`RequestReader::advance`].
#[derive(Debug)]
pub enum Outcome {
    /// Feed more bytes.
    NeedMore,
    /// The head asked `Expect: 100-continue`: write `HTTP/1.1 100 Continue\r\n\r\n`,
    /// then keep feeding. Returned at most once per request.
    Continue100,
    /// One request is complete; leftover bytes stay buffered for the next one.
    Complete(Box<Parsed>),
    /// The request is refused with this status (400, 413, 431 or 505); answer
    /// it with `Connection: close`. Every later `advance` returns the same error.
    Error(u16),
}

/// How far the current request has got; the server picks its deadline from this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Progress {
    /// No byte of the next request has arrived (keep-alive idle).
    Idle,
    /// Some of the head has arrived.
    Head,
    /// The head is complete; the body is arriving.
    Body,
}

#[derive(Debug)]
struct Head {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    minor: u8,
    keep_alive: bool,
}

#[derive(Debug)]
enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside chunk data, this many bytes left.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// After the last chunk: trailer fields until an empty line; bytes seen so far.
    Trailers(usize),
}

#[derive(Debug)]
enum Framing {
    Length(usize),
    Chunked(Chunk),
}

#[derive(Debug)]
enum State {
    Head,
    Body {
        head: Head,
        framing: Framing,
        body: Vec<u8>,
        expect_continue: bool,
    },
    Failed(u16),
}

/// Incremental reader of HTTP/1.x requests for one connection.
#[derive(Debug)]
pub struct RequestReader {
    limits: Limits,
    peer: SocketAddr,
    buf: Vec<u8>,
    state: State,
    consumed: usize,
}

impl RequestReader {
    /// A reader for a connection from `peer`.
    pub fn new(limits: Limits, peer: SocketAddr) -> RequestReader {
        RequestReader {
            limits,
            peer,
            buf: Vec::new(),
            state: State::Head,
            consumed: 0,
        }
    }

    /// Appends bytes received from the client. Cheap; call [`advance`](Self::advance) after.
    pub fn feed(&mut self, data: &[u8]) {
        if !matches!(self.state, State::Failed(_)) {
            self.buf.extend_from_slice(data);
        }
    }

    /// Bytes buffered and not yet part of a completed request.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// How far the current request has got.
    pub fn progress(&self) -> Progress {
        match self.state {
            State::Head if self.buf.is_empty() => Progress::Idle,
            State::Head | State::Failed(_) => Progress::Head,
            State::Body { .. } => Progress::Body,
        }
    }

    /// Makes as much progress as the buffered bytes allow.
    pub fn advance(&mut self) -> Outcome {
        match self.step() {
            Ok(o) => o,
            Err(status) => {
                self.state = State::Failed(status);
                self.buf = Vec::new();
                Outcome::Error(status)
            }
        }
    }

    fn step(&mut self) -> Result<Outcome, u16> {
        if let State::Failed(s) = self.state {
            return Err(s);
        }
        if let State::Head = self.state {
            match self.parse_head()? {
                None => return Ok(Outcome::NeedMore),
                Some((head, framing, expect)) => {
                    self.state = State::Body {
                        head,
                        framing,
                        body: Vec::new(),
                        expect_continue: expect,
                    };
                }
            }
        }
        let State::Body {
            framing,
            body,
            expect_continue,
            ..
        } = &mut self.state
        else {
            return Ok(Outcome::NeedMore);
        };
        let limit = self.limits.max_body_bytes;
        let done = match framing {
            Framing::Length(remaining) => {
                let take = (*remaining).min(self.buf.len());
                body.extend_from_slice(&self.buf[..take]);
                self.buf.drain(..take);
                self.consumed += take;
                *remaining -= take;
                *remaining == 0
            }
            Framing::Chunked(chunk) => {
                let mut pos = 0;
                let done = dechunk(
                    &self.buf,
                    &mut pos,
                    chunk,
                    body,
                    limit,
                    self.limits.max_head_bytes,
                )?;
                self.buf.drain(..pos);
                self.consumed += pos;
                done
            }
        };
        if !done {
            // Ask for the body only if none of it has arrived yet (RFC 9110 §10.1.1).
            if *expect_continue {
                *expect_continue = false;
                if body.is_empty()
                    && self.buf.is_empty()
                    && matches!(framing, Framing::Length(_) | Framing::Chunked(Chunk::Size))
                {
                    return Ok(Outcome::Continue100);
                }
            }
            return Ok(Outcome::NeedMore);
        }
        let State::Body { head, body, .. } = std::mem::replace(&mut self.state, State::Head) else {
            return Ok(Outcome::NeedMore);
        };
        let consumed = std::mem::take(&mut self.consumed);
        let head_only = head.method == "HEAD";
        Ok(Outcome::Complete(Box::new(Parsed {
            request: Request {
                method: head.method,
                target: head.target,
                headers: head.headers,
                body,
                peer: self.peer,
            },
            consumed,
            keep_alive: head.keep_alive,
            minor_version: head.minor,
            head_only,
        })))
    }

    /// Parses the head if it is complete; drains it from the buffer.
    #[allow(clippy::type_complexity)]
    fn parse_head(&mut self) -> Result<Option<(Head, Framing, bool)>, u16> {
        let max = self.limits.max_head_bytes;
        let window = &self.buf[..self.buf.len().min(max)];
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut fields);
        let head_len = match req.parse(window) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                return if self.buf.len() >= max {
                    Err(431)
                } else {
                    Ok(None)
                };
            }
            Err(httparse::Error::TooManyHeaders) => return Err(431),
            Err(httparse::Error::Version) => return Err(version_error(window)),
            Err(_) => return Err(400),
        };
        let minor = match req.version {
            Some(v @ (0 | 1)) => v,
            _ => return Err(505),
        };
        let method = req.method.ok_or(400u16)?.to_string();
        let target = req.path.ok_or(400u16)?;
        if target.is_empty() {
            return Err(400);
        }
        let target = target.to_string();
        let mut headers = Vec::with_capacity(req.headers.len());
        let mut content_length: Option<u64> = None;
        let mut chunked = false;
        let mut has_te = false;
        let mut conn_close = false;
        let mut conn_keep_alive = false;
        let mut expect_continue = false;
        for h in req.headers.iter() {
            let value = String::from_utf8_lossy(h.value).into_owned();
            if h.name.eq_ignore_ascii_case("content-length") {
                let n = parse_content_length(&value)?;
                if content_length.is_some_and(|old| old != n) {
                    return Err(400);
                }
                content_length = Some(n);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                has_te = true;
                // Only `chunked`, as the final (here: the only) coding.
                let codings: Vec<&str> = value
                    .split(',')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .collect();
                if chunked || codings.len() != 1 || !codings[0].eq_ignore_ascii_case("chunked") {
                    return Err(400);
                }
                chunked = true;
            } else if h.name.eq_ignore_ascii_case("connection") {
                for token in value.split(',').map(str::trim) {
                    conn_close |= token.eq_ignore_ascii_case("close");
                    conn_keep_alive |= token.eq_ignore_ascii_case("keep-alive");
                }
            } else if h.name.eq_ignore_ascii_case("expect") {
                expect_continue |= value.trim().eq_ignore_ascii_case("100-continue");
            }
            headers.push((h.name.to_string(), value));
        }
        if has_te && (content_length.is_some() || minor == 0) {
            return Err(400);
        }
        let framing = if chunked {
            Framing::Chunked(Chunk::Size)
        } else {
            let n = content_length.unwrap_or(0);
            if n > self.limits.max_body_bytes as u64 {
                return Err(413);
            }
            Framing::Length(n as usize)
        };
        let keep_alive = if minor == 0 {
            conn_keep_alive && !conn_close
        } else {
            !conn_close
        };
        let has_body = chunked || content_length.unwrap_or(0) > 0;
        self.buf.drain(..head_len);
        self.consumed = head_len;
        let head = Head {
            method,
            target,
            headers,
            minor,
            keep_alive,
        };
        Ok(Some((
            head,
            framing,
            expect_continue && minor == 1 && has_body,
        )))
    }
}

/// 505 when the request line's version is `HTTP/` + a digit (2.0, 3, 1.2 …);
/// else 400. Decided on the version's prefix so the answer does not depend
/// on how the bytes were split.
fn version_error(window: &[u8]) -> u16 {
    let line_end = window
        .iter()
        .position(|&b| b == b'\n' || b == b'\r')
        .unwrap_or(window.len());
    let line = &window[..line_end];
    // method SP target SP version: the version is what follows the second space.
    let version = line.splitn(3, |&b| b == b' ').nth(2).unwrap_or(b"");
    match version {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', minor, ..] if minor.is_ascii_digit() => 505,
        [b'H', b'T', b'T', b'P', b'/', major, ..] if major.is_ascii_digit() && *major != b'1' => {
            505
        }
        _ => 400,
    }
}

/// `Content-Length` must be 1*DIGIT; values too big for u64 are reported as
/// `u64::MAX` (so they hit the body limit → 413, not 400).
fn parse_content_length(value: &str) -> Result<u64, u16> {
    let v = value.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(400);
    }
    Ok(v.parse::<u64>().unwrap_or(u64::MAX))
}

/// De-chunks what `buf[*pos..]` holds; returns whether the body is complete.
fn dechunk(
    buf: &[u8],
    pos: &mut usize,
    chunk: &mut Chunk,
    body: &mut Vec<u8>,
    max_body: usize,
    max_trailers: usize,
) -> Result<bool, u16> {
    loop {
        let rest = &buf[*pos..];
        match chunk {
            Chunk::Size => match httparse::parse_chunk_size(rest) {
                Ok(httparse::Status::Complete((n, size))) => {
                    if size > (max_body - body.len()) as u64 {
                        return Err(413);
                    }
                    *pos += n;
                    *chunk = if size == 0 {
                        Chunk::Trailers(0)
                    } else {
                        Chunk::Data(size)
                    };
                }
                Ok(httparse::Status::Partial) => {
                    return if rest.len() > MAX_CHUNK_LINE {
                        Err(400)
                    } else {
                        Ok(false)
                    };
                }
                Err(_) => return Err(400),
            },
            Chunk::Data(left) => {
                if rest.is_empty() {
                    return Ok(false);
                }
                let take = (*left).min(rest.len() as u64) as usize;
                body.extend_from_slice(&rest[..take]);
                *pos += take;
                *left -= take as u64;
                if *left == 0 {
                    *chunk = Chunk::DataEnd;
                }
            }
            Chunk::DataEnd => match rest {
                [b'\r', b'\n', ..] => {
                    *pos += 2;
                    *chunk = Chunk::Size;
                }
                [] | [b'\r'] => return Ok(false),
                _ => return Err(400),
            },
            Chunk::Trailers(seen) => {
                let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                    return if *seen + rest.len() > max_trailers {
                        Err(431)
                    } else {
                        Ok(false)
                    };
                };
                let line = &rest[..nl];
                *pos += nl + 1;
                *seen += nl + 1;
                if *seen > max_trailers {
                    return Err(431);
                }
                if line.is_empty() || line == b"\r" {
                    return Ok(true);
                }
                // Trailer fields are read and dropped (RFC 9112 §7.1.2 allows discarding).
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader() -> RequestReader {
        RequestReader::new(
            Limits {
                max_head_bytes: 1024,
                max_body_bytes: 100,
            },
            "127.0.0.1:9".parse().expect("addr"),
        )
    }

    fn one(bytes: &[u8]) -> Outcome {
        let mut r = reader();
        r.feed(bytes);
        r.advance()
    }

    fn complete(o: Outcome) -> Box<Parsed> {
        match o {
            Outcome::Complete(p) => p,
            other => panic!("expected Complete, got {other:?}"),
        }
    }

    fn status(o: Outcome) -> u16 {
        match o {
            Outcome::Error(s) => s,
            other => panic!("expected Error, got {other:?}"),
        }
    }

    #[test]
    fn simple_get() {
        let p = complete(one(b"GET /a?b=c HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert_eq!(p.request.method, "GET");
        assert_eq!(p.request.target, "/a?b=c");
        assert_eq!(p.request.header("host"), Some("x"));
        assert!(p.keep_alive);
        assert_eq!(p.consumed, 32);
    }

    #[test]
    fn byte_by_byte_with_body() {
        let msg = b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
        let mut r = reader();
        for (i, b) in msg.iter().enumerate() {
            r.feed(&[*b]);
            let o = r.advance();
            if i + 1 < msg.len() {
                assert!(matches!(o, Outcome::NeedMore), "at {i}: {o:?}");
            } else {
                assert_eq!(complete(o).request.body, b"hello");
            }
        }
    }

    #[test]
    fn pipelined_leftover_is_kept() {
        let mut r = reader();
        r.feed(b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\nGET /3 HT");
        assert_eq!(complete(r.advance()).request.target, "/1");
        assert_eq!(complete(r.advance()).request.target, "/2");
        assert!(matches!(r.advance(), Outcome::NeedMore));
        assert_eq!(r.progress(), Progress::Head);
        r.feed(b"TP/1.1\r\n\r\n");
        assert_eq!(complete(r.advance()).request.target, "/3");
        assert_eq!(r.progress(), Progress::Idle);
    }

    #[test]
    fn keep_alive_rules() {
        assert!(!complete(one(b"GET / HTTP/1.0\r\n\r\n")).keep_alive);
        assert!(complete(one(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")).keep_alive);
        assert!(!complete(one(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")).keep_alive);
        assert!(complete(one(b"HEAD / HTTP/1.1\r\n\r\n")).head_only);
    }

    #[test]
    fn limits() {
        assert_eq!(
            status(one(
                b"POST / HTTP/1.1\r\nContent-Length: 100000000000000\r\n\r\nabc"
            )),
            413
        );
        assert_eq!(
            status(one(
                b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n"
            )),
            413
        );
        assert_eq!(
            status(one(b"POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n")),
            413
        );
        assert_eq!(status(one(&[b'a'; 2000])), 431);
        assert_eq!(status(one(b"GET\x01 / HTTP/1.1\r\n\r\n")), 400);
        let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        long.extend_from_slice(&[b'a'; 2000]);
        assert_eq!(status(one(&long)), 431);
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..70 {
            many.extend_from_slice(format!("X{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(status(one(&many)), 431);
    }

    #[test]
    fn versions() {
        assert_eq!(status(one(b"GET / HTTP/2.0\r\n\r\n")), 505);
        assert_eq!(status(one(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")), 505);
        assert_eq!(status(one(b"GET / HTTP/3\r\n\r\n")), 505);
        assert_eq!(status(one(b"GET / FOO/1.1\r\n\r\n")), 400);
        assert_eq!(status(one(b"GET / HTTP/1.1 x\r\n\r\n")), 400);
    }

    #[test]
    fn smuggling_and_bad_lengths() {
        assert_eq!(
            status(one(
                b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
            )),
            400
        );
        assert_eq!(
            status(one(b"POST / HTTP/1.1\r\nContent-Length: -3\r\n\r\n")),
            400
        );
        assert_eq!(
            status(one(b"POST / HTTP/1.1\r\nContent-Length: 3, 4\r\n\r\n")),
            400
        );
        assert_eq!(
            status(one(
                b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"
            )),
            400
        );
        assert_eq!(
            status(one(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n")),
            400
        );
        assert_eq!(
            status(one(
                b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
            )),
            400
        );
        assert_eq!(
            status(one(
                b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"
            )),
            400
        );
        // Same value twice is allowed (RFC 9112 §6.3).
        let p = complete(one(
            b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab",
        ));
        assert_eq!(p.request.body, b"ab");
    }

    #[test]
    fn chunked() {
        let msg: &[u8] = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\nGET /next HTTP/1.1\r\n\r\n";
        let mut r = reader();
        let mut done = false;
        for b in msg.iter() {
            r.feed(&[*b]);
            if !done {
                if let Outcome::Complete(p) = r.advance() {
                    assert_eq!(p.request.body, b"hello world");
                    done = true;
                }
            }
        }
        assert!(done);
        assert_eq!(complete(r.advance()).request.target, "/next");
        assert_eq!(
            status(one(
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
            )),
            400
        );
        assert_eq!(
            status(one(
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n"
            )),
            400
        );
        assert_eq!(
            status(one(
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n"
            )),
            413
        );
        assert_eq!(
            status(one(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n0000000000000000000000000000000000000000000000000000000000000000\r\n40\r\n")),
            413
        );
        assert_eq!(
            status(one(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffffffff\r\n")),
            400
        );
    }

    #[test]
    fn expect_continue() {
        let mut r = reader();
        r.feed(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
        assert!(matches!(r.advance(), Outcome::Continue100));
        assert!(matches!(r.advance(), Outcome::NeedMore));
        r.feed(b"ok");
        assert_eq!(complete(r.advance()).request.body, b"ok");
        // Body already sent: no 100.
        let p = complete(one(
            b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
        ));
        assert_eq!(p.request.body, b"ok");
        // No body: no 100.
        complete(one(b"GET / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n"));
    }

    #[test]
    fn errors_are_sticky() {
        let mut r = reader();
        r.feed(b"GET / HTTP/2.0\r\n\r\n");
        assert_eq!(status(r.advance()), 505);
        r.feed(b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(status(r.advance()), 505);
    }
}
