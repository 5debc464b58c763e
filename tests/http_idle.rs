//! 1,000 idle keep-alive connections cost no thread: a new client is still
//! served and the thread count stays small. Alone in its binary so the
//! /proc counters are not disturbed by other tests.

mod http_util;
mod wait_util;

use http_util::*;
use wait_util::{wait_until, PATIENCE};
use mcphub::http::ServerConfig;
use std::io::{BufReader, Write};
use std::time::Instant;

#[test]
fn thousand_idle_keep_alive_connections() {
    raise_nofile(8192);
    let threads_before = thread_count();
    let fds_before = fd_count();
    let srv = start(ServerConfig {
        workers: 4,
        ..ServerConfig::default()
    });
    let addr = srv.local_addr();
    let server_threads = thread_count() - threads_before;
    let mut idle = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let mut s = connect(addr);
        s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .expect("write");
        let mut r = BufReader::new(s);
        assert_eq!(read_response(&mut r, false).expect("resp").status, 200);
        idle.push(r); // now idle keep-alive
    }
    let threads_with_idle = thread_count();
    let fds_with_idle = fd_count();
    let t0 = Instant::now();
    assert_eq!(get(addr, "/").expect("new client").status, 200);
    let new_client = t0.elapsed();
    // An idle connection is still usable.
    let r = idle.last_mut().expect("one");
    r.get_mut()
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("write");
    assert_eq!(read_response(r, false).expect("reuse").status, 200);
    eprintln!(
        "1000 idle: server threads {server_threads}, process threads {threads_before} → {threads_with_idle}, \
         fds {fds_before} → {fds_with_idle}, new client answered in {new_client:?}"
    );
    assert!(
        threads_with_idle <= threads_before + server_threads,
        "threads grew to {threads_with_idle}"
    );
    assert!(server_threads <= 4 + 3);
    // (Served at all is the point: a server with a thread per connection and
    // 4 workers would leave the new client waiting until its read timeout.)
    drop(idle);
    srv.shutdown();
    drop(srv);
    wait_until("the server's threads to end", PATIENCE, || thread_count() <= threads_before);
    wait_until("the 1000 connections' fds to be closed", PATIENCE, || fd_count() <= fds_before);
}
