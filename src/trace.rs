//! Request ids and W3C trace context of one downstream request, and what the
//! per-request log line says about it (issue 7).
//!
//! - **`X-Request-Id`**: the client's value when it is 1..=128 characters of
//!   `[A-Za-z0-9._:-]`, else one the hub mints (16 lowercase hex characters,
//!   64 random bits). Echoed on the response, written in the request's log
//!   lines and sent upstream as `X-Request-Id` on every HTTP call made for it.
//! - **`traceparent` / `tracestate`** (W3C Trace Context Level 1,
//!   `version-traceid-parentid-flags`, lowercase hex, trace and parent ids not
//!   all zero, version not `ff`): passed through upstream as headers when
//!   valid (an invalid `traceparent` drops both, as the W3C rule says). For a
//!   2026-07-28 upstream they also go into `params._meta` under the keys
//!   `traceparent` / `tracestate`: the keys SEP-414 (MCP, Final) names for
//!   OpenTelemetry trace context in `_meta`, an exception to the `_meta`
//!   prefix rule. A client's own `_meta.traceparent` is kept as sent.
//!
//! The context lives in a thread-local for the request's duration: the
//! request worker sets it ([`enter`]), an SSE answer's stream thread sets it
//! again, and `upstream::transport` reads it when it builds upstream
//! requests. Threads that serve no request (warm-up, listeners, hub-run
//! tasks) have none and send no id.

use std::cell::RefCell;

/// The response and upstream request header carrying the request id.
pub const REQUEST_ID_HEADER: &str = "X-Request-Id";
/// Longest accepted client request id, in characters.
pub const MAX_REQUEST_ID: usize = 128;
/// Longest `tracestate` passed on (W3C: 32 list members of ≤ 256 characters each is 8 KiB+; 512 is the "should propagate at least").
pub const MAX_TRACESTATE: usize = 512;
/// The `_meta` key for the W3C `traceparent` (SEP-414).
pub const META_TRACEPARENT: &str = "traceparent";
/// The `_meta` key for the W3C `tracestate` (SEP-414).
pub const META_TRACESTATE: &str = "tracestate";

/// What the hub knows about one downstream request: its id, its trace
/// context and the fields of its log line, filled in as it is served.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    /// The request id (client's or minted).
    pub id: String,
    /// A valid W3C `traceparent`, if the client sent one.
    pub traceparent: Option<String>,
    /// Its `tracestate` (only with a valid `traceparent`).
    pub tracestate: Option<String>,
    /// The JSON-RPC method (sanitized, ≤ 64 characters) or the HTTP method of a GET/DELETE.
    pub method: String,
    /// `params.name` (tools, prompts) or `params.uri` (resources), sanitized, ≤ 128 characters.
    pub name: Option<String>,
    /// The upstream server the request reached: the first one, or `*` when several.
    pub server: Option<String>,
    /// The user whose hub key the request carried (name only, never the key).
    pub user: Option<String>,
    /// `legacy`, `modern`, or `none` before the era is known.
    pub era: &'static str,
}

thread_local! {
    static CURRENT: RefCell<Option<RequestInfo>> = const { RefCell::new(None) };
}

/// Makes `info` the current request of this thread until the guard drops
/// (or [`Guard::finish`] takes it back); the previous one is restored.
pub fn enter(info: RequestInfo) -> Guard {
    let previous = CURRENT.with(|c| c.borrow_mut().replace(info));
    Guard { previous: Some(previous) }
}

/// Restores the thread's previous request context on drop.
pub struct Guard {
    previous: Option<Option<RequestInfo>>,
}

impl Guard {
    /// Ends the scope and returns the request's info as filled in meanwhile.
    pub fn finish(mut self) -> Option<RequestInfo> {
        let previous = self.previous.take().flatten();
        CURRENT.with(|c| std::mem::replace(&mut *c.borrow_mut(), previous))
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(previous) = self.previous.take() {
            CURRENT.with(|c| *c.borrow_mut() = previous);
        }
    }
}

/// Runs `f` on the current request's info, if this thread serves one.
pub fn with<R>(f: impl FnOnce(Option<&RequestInfo>) -> R) -> R {
    CURRENT.with(|c| f(c.borrow().as_ref()))
}

/// Changes the current request's info (no-op without one).
pub fn note(f: impl FnOnce(&mut RequestInfo)) {
    CURRENT.with(|c| {
        if let Some(info) = c.borrow_mut().as_mut() {
            f(info);
        }
    });
}

/// The current request's id, if any.
pub fn current_id() -> Option<String> {
    with(|i| i.map(|i| i.id.clone()))
}

/// Records that the current request reached upstream `server` (a configured name).
pub fn note_server(server: &str) {
    note(|i| match &i.server {
        None => i.server = Some(server.to_string()),
        Some(s) if s != server && s != "*" => i.server = Some("*".into()),
        Some(_) => {}
    });
}

/// The headers an upstream HTTP call made for the current request carries:
/// `X-Request-Id`, and `traceparent` / `tracestate` when the client sent valid ones.
pub fn upstream_headers() -> Vec<(&'static str, String)> {
    with(|i| {
        let Some(i) = i else { return Vec::new() };
        let mut out = Vec::with_capacity(3);
        out.push((REQUEST_ID_HEADER, i.id.clone()));
        if let Some(tp) = &i.traceparent {
            out.push(("traceparent", tp.clone()));
            if let Some(ts) = &i.tracestate {
                out.push(("tracestate", ts.clone()));
            }
        }
        out
    })
}

/// The client's request id if acceptable (1..=128 of `[A-Za-z0-9._:-]`).
pub fn valid_request_id(v: &str) -> bool {
    !v.is_empty() && v.len() <= MAX_REQUEST_ID && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// A new request id: 16 lowercase hex characters, unique in the process and
/// different in every process: a counter whose start is drawn once from the
/// OS RNG ([`crate::random`]'s one failure policy), passed through a
/// bijective 64-bit mix (SplitMix64's finaliser) so ids do not look
/// sequential. A request id names a log line; it is not a secret, so it no
/// longer costs a `getrandom` system call per request (issue 16).
pub fn mint_request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static NEXT: OnceLock<AtomicU64> = OnceLock::new();
    let next = NEXT.get_or_init(|| {
        let mut seed = [0u8; 8];
        crate::random::fill(&mut seed);
        AtomicU64::new(u64::from_le_bytes(seed))
    });
    format!("{:016x}", mix64(next.fetch_add(1, Ordering::Relaxed)))
}

/// SplitMix64's finaliser: a bijection on `u64` (distinct inputs, distinct outputs).
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Whether `v` is a W3C `traceparent` the hub passes on: `00-` + 32 hex +
/// `-` + 16 hex + `-` + 2 hex (lowercase), ids not all zero; a future
/// version (not `ff`) may carry more after the flags (`-…`), W3C §3.2.4.
pub fn valid_traceparent(v: &str) -> bool {
    let b = v.as_bytes();
    let hex = |s: &[u8]| s.iter().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c));
    if b.len() < 55 || !hex(&b[0..2]) || &b[0..2] == b"ff" {
        return false;
    }
    if b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return false;
    }
    let (trace, parent, flags) = (&b[3..35], &b[36..52], &b[53..55]);
    if !hex(trace) || !hex(parent) || !hex(flags) || trace.iter().all(|c| *c == b'0') || parent.iter().all(|c| *c == b'0') {
        return false;
    }
    match &b[0..2] {
        b"00" => b.len() == 55,
        _ => b.len() == 55 || b[55] == b'-',
    }
}

/// Whether `v` may be passed on as `tracestate`: ≤ [`MAX_TRACESTATE`]
/// printable ASCII characters, no control characters.
pub fn valid_tracestate(v: &str) -> bool {
    v.len() <= MAX_TRACESTATE && v.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// A new request context from the downstream request's headers:
/// `X-Request-Id` (kept when valid, else minted), `traceparent` and
/// `tracestate` (kept when valid).
pub fn from_headers<'a>(header: impl Fn(&str) -> Option<&'a str>) -> RequestInfo {
    let id = header(REQUEST_ID_HEADER).map(str::trim).filter(|v| valid_request_id(v)).map_or_else(mint_request_id, str::to_string);
    let traceparent = header("traceparent").map(str::trim).filter(|v| valid_traceparent(v)).map(str::to_string);
    let tracestate =
        traceparent.as_ref().and_then(|_| header("tracestate")).map(str::trim).filter(|v| !v.is_empty() && valid_tracestate(v)).map(str::to_string);
    RequestInfo { id, traceparent, tracestate, era: "none", ..RequestInfo::default() }
}

/// A client-supplied string made safe for one log line: control characters
/// become `?`, at most `max` characters (then `…`).
pub fn sanitize(v: &str, max: usize) -> String {
    let mut out: String = v.chars().take(max).map(|c| if c.is_control() { '?' } else { c }).collect();
    if v.chars().count() > max {
        out.push('…');
    }
    out
}

/// A value for a `key=value` text log line: as it is when it holds no
/// space, `=` or `"`, else quoted (`{:?}`), so a client's name cannot forge
/// other fields of the line.
pub fn field(v: &str) -> std::borrow::Cow<'_, str> {
    if v.contains(|c: char| c.is_whitespace() || c == '=' || c == '"') {
        std::borrow::Cow::Owned(format!("{v:?}"))
    } else {
        std::borrow::Cow::Borrowed(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_fields_cannot_forge_others() {
        assert_eq!(field("echo"), "echo");
        assert_eq!(field("x server=a user=admin"), r#""x server=a user=admin""#);
        assert_eq!(field(r#"a"b"#), r#""a\"b""#);
    }

    #[test]
    fn request_ids_are_validated_or_minted() {
        assert!(valid_request_id("abc-123_x.y:z"));
        assert!(!valid_request_id(""));
        assert!(!valid_request_id("has space"));
        assert!(!valid_request_id(&"a".repeat(129)));
        assert!(valid_request_id(&"a".repeat(128)));
        let m = mint_request_id();
        assert_eq!(m.len(), 16);
        assert!(m.bytes().all(|b| b.is_ascii_hexdigit()));
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| mint_request_id()).collect();
        assert_eq!(ids.len(), 10_000, "request ids repeat");
        assert_eq!(super::mix64(0), 0, "SplitMix64's finaliser fixes 0 (a known value)");
        assert_eq!(super::mix64(1), 0x5692_161d_100b_05e5, "SplitMix64's finaliser of 1");
        let info = from_headers(|n| (n == "X-Request-Id").then_some("bad id\r\n"));
        assert_eq!(info.id.len(), 16);
        let info = from_headers(|n| (n == "X-Request-Id").then_some("client-1"));
        assert_eq!(info.id, "client-1");
    }

    #[test]
    fn traceparent_follows_w3c() {
        let ok = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        assert!(valid_traceparent(ok));
        assert!(!valid_traceparent(&ok.to_uppercase()));
        assert!(!valid_traceparent("00-00000000000000000000000000000000-b7ad6b7169203331-01"));
        assert!(!valid_traceparent("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01"));
        assert!(!valid_traceparent("ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"));
        assert!(!valid_traceparent(&format!("{ok}-extra")), "version 00 has nothing after the flags");
        assert!(valid_traceparent("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra"));
        assert!(!valid_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331"));
        let info = from_headers(|n| match n {
            "traceparent" => Some("garbage"),
            "tracestate" => Some("a=b"),
            _ => None,
        });
        assert_eq!((info.traceparent, info.tracestate), (None, None), "an invalid traceparent drops tracestate too");
    }

    #[test]
    fn the_context_is_per_thread_and_restored() {
        assert!(current_id().is_none());
        let g = enter(RequestInfo { id: "one".into(), ..RequestInfo::default() });
        note_server("a");
        note_server("a");
        assert_eq!(with(|i| i.unwrap().server.clone()), Some("a".into()));
        note_server("b");
        std::thread::spawn(|| assert!(current_id().is_none())).join().unwrap();
        let info = g.finish().unwrap();
        assert_eq!((info.id.as_str(), info.server.as_deref()), ("one", Some("*")));
        assert!(current_id().is_none());
    }

    #[test]
    fn sanitize_keeps_lines_whole() {
        assert_eq!(sanitize("a\nb", 10), "a?b");
        assert_eq!(sanitize("abcdef", 3), "abc…");
    }
}
