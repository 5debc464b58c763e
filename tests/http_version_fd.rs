//! `GET / HTTP/2.0` ×50 → 505 each, and no thread or fd is leaked.
//! Alone in its binary so the /proc counters are not disturbed.

mod http_util;
mod wait_util;

use http_util::*;
use wait_util::{wait_until, PATIENCE};
use mcphub::http::ServerConfig;

#[test]
fn http2_request_lines_get_505_without_leaks() {
    let srv = start(ServerConfig {
        workers: 2,
        ..ServerConfig::default()
    });
    let addr = srv.local_addr();
    assert_eq!(get(addr, "/").expect("warm up").status, 200);
    let fds = fd_count();
    let threads = thread_count();
    for _ in 0..50 {
        let r = roundtrip(addr, b"GET / HTTP/2.0\r\nHost: t\r\n\r\n").expect("505");
        assert_eq!(r.status, 505);
        assert_eq!(r.header("connection"), Some("close"));
    }
    let r = roundtrip(addr, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").expect("505");
    assert_eq!(r.status, 505);
    wait_until("the 505 connections' fds to be closed", PATIENCE, || fd_count() <= fds);
    assert_eq!(thread_count(), threads);
    eprintln!(
        "50 × 505; fds {fds} → {}, threads {threads} → {}",
        fd_count(),
        thread_count()
    );
    assert_eq!(get(addr, "/").expect("still serving").status, 200);
    srv.shutdown();
}
