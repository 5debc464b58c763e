//! The attack battery of docs/decisions.md D2a against the hub's own
//! HTTP/1.1 server, plus protocol cases (pipelining, chunked, 100-continue,
//! HEAD, handler panic). Real sockets on 127.0.0.1, port 0.

mod http_util;
mod wait_util;

use http_util::*;
use wait_util::{wait_until, PATIENCE};
use mcphub::http::ServerConfig;
use std::io::{BufReader, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn cfg() -> ServerConfig {
    ServerConfig {
        workers: 4,
        queue: 64,
        ..ServerConfig::default()
    }
}

#[test]
fn huge_content_length_is_413_at_once_and_server_still_serves() {
    let srv = start(cfg());
    let t0 = Instant::now();
    let r = roundtrip(
        srv.local_addr(),
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100000000000000\r\n\r\n0123456789",
    )
    .expect("response");
    assert_eq!(r.status, 413);
    assert_eq!(r.header("connection"), Some("close"));
    // "At once": answered from the head alone; a server that tried to read
    // the body would answer 408 after its body deadline instead.
    eprintln!("413 after {:?}", t0.elapsed());
    assert_eq!(get(srv.local_addr(), "/").expect("get").status, 200);
    srv.shutdown();
}

#[test]
fn slow_body_gets_408_and_others_are_unaffected() {
    let srv = start(ServerConfig {
        body_timeout: Duration::from_millis(1500),
        ..cfg()
    });
    let mut s = connect(srv.local_addr());
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n0123456789")
        .expect("write");
    let t0 = Instant::now();
    assert_eq!(get(srv.local_addr(), "/").expect("get").status, 200);
    // The other client was answered while the slow one still waited for its
    // body: nothing (no 408 yet) has been sent to the slow one.
    let mut peek = [0u8; 1];
    s.set_nonblocking(true).expect("nonblocking");
    let pending = matches!(s.peek(&mut peek), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    s.set_nonblocking(false).expect("blocking");
    assert!(pending, "the other client was answered only after the slow one's 408 ({:?})", t0.elapsed());
    let r = read_response(&mut BufReader::new(s), false).expect("408");
    assert_eq!(r.status, 408);
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(1000) && waited < Duration::from_secs(10),
        "408 after {waited:?}"
    );
    srv.shutdown();
}

#[test]
fn slowloris_is_cut_with_408_while_normal_requests_answer_fast() {
    let srv = start(ServerConfig {
        head_timeout: Duration::from_millis(2000),
        ..cfg()
    });
    let addr = srv.local_addr();
    let mut conns: Vec<_> = (0..20).map(|_| connect(addr)).collect();
    let head = b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let t0 = Instant::now();
    let mut fast = Vec::new();
    let mut cut = vec![false; conns.len()];
    'outer: for (i, byte) in head.iter().enumerate() {
        for (j, c) in conns.iter_mut().enumerate() {
            if !cut[j] && c.write_all(&[*byte]).is_err() {
                cut[j] = true;
            }
        }
        if i % 2 == 0 {
            let t = Instant::now();
            assert_eq!(get(addr, "/").expect("normal get").status, 200);
            fast.push(t.elapsed());
        }
        if t0.elapsed() > Duration::from_secs(2) {
            break 'outer;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut statuses = Vec::new();
    for c in conns {
        c.set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        statuses.push(
            read_response(&mut BufReader::new(c), false)
                .map(|r| r.status)
                .unwrap_or(0),
        );
    }
    assert!(statuses.iter().all(|&s| s == 408), "statuses {statuses:?}");
    let worst = fast.iter().max().copied().unwrap_or_default();
    // Not queued behind the slow heads: each answered within half the head
    // deadline (one queued behind them would wait the whole 2 s).
    assert!(
        worst < Duration::from_millis(1000),
        "normal request took {worst:?}"
    );
    eprintln!(
        "slowloris: 20 × 408 after {:?}; {} normal requests meanwhile, worst {worst:?}",
        t0.elapsed(),
        fast.len()
    );
    srv.shutdown();
}

#[test]
fn burst_of_200_new_connections_all_answered() {
    let srv = start(ServerConfig {
        queue: 256,
        ..cfg()
    });
    let addr = srv.local_addr();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                let conns: Vec<_> = (0..25).map(|_| connect(addr)).collect();
                let mut ok = 0;
                let mut conns: Vec<_> = conns
                    .into_iter()
                    .map(|mut c| {
                        c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                            .expect("write");
                        BufReader::new(c)
                    })
                    .collect();
                for c in conns.iter_mut() {
                    if read_response(c, false).map(|r| r.status).unwrap_or(0) == 200 {
                        ok += 1;
                    }
                }
                ok
            })
        })
        .collect();
    let ok: usize = threads.into_iter().map(|t| t.join().expect("join")).sum();
    assert_eq!(ok, 200);
    srv.shutdown();
}

#[test]
fn huge_header_line_is_431_and_server_still_serves() {
    let srv = start(cfg());
    let addr = srv.local_addr();
    let mut s = connect(addr);
    let w = s.try_clone().expect("clone");
    let writer = std::thread::spawn(move || {
        let mut w = w;
        let _ = w.write_all(b"GET / HTTP/1.1\r\nX-Big: ");
        let block = vec![b'a'; 64 * 1024];
        for _ in 0..16 {
            // 1 MiB header line; the server answers after max_head_bytes
            if w.write_all(&block).is_err() {
                break;
            }
        }
    });
    let r = read_response(&mut BufReader::new(&mut s), false).expect("431");
    assert_eq!(r.status, 431);
    drop(s);
    let _ = writer.join();
    assert_eq!(get(addr, "/").expect("get").status, 200);
    srv.shutdown();
}

/// A handler whose `/block` requests hold their worker until `release` is
/// set (at most 60 s, so a failing test still ends); `started` counts them.
fn blocking_handler(
    started: Arc<AtomicUsize>,
    release: Arc<AtomicBool>,
) -> impl Fn(mcphub::http::Request) -> mcphub::http::Response + Send + Sync + 'static {
    move |req| {
        if req.path() == "/block" {
            started.fetch_add(1, Ordering::SeqCst);
            let end = Instant::now() + Duration::from_secs(60);
            while !release.load(Ordering::SeqCst) && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        mcphub::http::Response::text(200, "done")
    }
}

#[test]
fn queue_full_answers_503_with_retry_after_quickly() {
    let started = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(AtomicBool::new(false));
    let (srv, stats) = start_observed(
        ServerConfig {
            workers: 2,
            queue: 2,
            retry_after_secs: 3,
            ..cfg()
        },
        blocking_handler(started.clone(), release.clone()),
    );
    let addr = srv.local_addr();
    let t0 = Instant::now();
    let mut conns: Vec<_> = (0..20)
        .map(|_| {
            let mut c = connect(addr);
            c.write_all(b"GET /block HTTP/1.1\r\nHost: t\r\n\r\n")
                .expect("write");
            BufReader::new(c)
        })
        .collect();
    // Every request is either with a blocked worker, in the queue, or
    // rejected; the workers stay blocked until `release`, so the 503s below
    // were answered while no worker was free. (The queue's 2 slots also
    // hold jobs a worker has not picked up yet, so 2 to 4 are accepted.)
    let dispatched = || started.load(Ordering::SeqCst) + stats.queue_depth() + stats.rejected().0 as usize;
    wait_until("all 20 requests dispatched or rejected", PATIENCE, || dispatched() == 20);
    let rejected = stats.rejected().0 as usize;
    assert!((16..=18).contains(&rejected), "{rejected} rejected with 2 workers and a queue of 2");
    let answered = |conns: &[BufReader<std::net::TcpStream>]| {
        conns
            .iter()
            .filter(|c| {
                let s = c.get_ref();
                s.set_nonblocking(true).expect("nonblocking");
                let ready = s.peek(&mut [0u8; 1]).is_ok_and(|n| n > 0);
                s.set_nonblocking(false).expect("blocking");
                ready
            })
            .count()
    };
    wait_until("every rejected request answered while the workers are blocked", PATIENCE, || {
        answered(&conns) == rejected
    });
    release.store(true, Ordering::SeqCst);
    let mut busy = 0;
    let mut ok = 0;
    for c in conns.iter_mut() {
        let r = read_response(c, false).expect("response");
        match r.status {
            503 => {
                busy += 1;
                assert_eq!(r.header("retry-after"), Some("3"));
                let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json body");
                assert_eq!(v["error"]["code"], -32000);
                assert_eq!(v["error"]["data"]["retry_after_seconds"], 3);
            }
            200 => ok += 1,
            s => panic!("unexpected status {s}"),
        }
    }
    eprintln!("queue full: {ok} × 200, {busy} × 503 in {:?}", t0.elapsed());
    assert_eq!((ok, busy), (20 - rejected, rejected));
    srv.shutdown();
}

#[test]
fn queue_full_503_is_answered_while_every_worker_is_blocked() {
    let started = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(AtomicBool::new(false));
    let (srv, stats) = start_observed(
        ServerConfig {
            workers: 1,
            queue: 1,
            ..cfg()
        },
        blocking_handler(started.clone(), release.clone()),
    );
    let addr = srv.local_addr();
    let mut a = connect(addr);
    a.write_all(b"GET /block HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("write");
    wait_until("the only worker to take request a", PATIENCE, || {
        started.load(Ordering::SeqCst) == 1
    });
    let mut b = connect(addr);
    b.write_all(b"GET /block HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("write");
    wait_until("request b to wait in the worker queue", PATIENCE, || {
        stats.queue_depth() == 1
    });
    // The only worker stays blocked until `release`, so a 503 that arrives at
    // all was answered by the rejecter without a worker (a 503 that waited
    // for one would run into the client's 10 s read timeout instead).
    let t0 = Instant::now();
    let r = get(addr, "/").expect("503 while the worker is blocked");
    let took = t0.elapsed();
    assert_eq!(r.status, 503);
    assert_eq!(stats.rejected().0, 1, "counted as a queue-full rejection");
    assert_eq!(started.load(Ordering::SeqCst), 1, "b is still queued");
    eprintln!(
        "queue full: 503 + Retry-After {:?} in {took:?}",
        r.header("retry-after")
    );
    release.store(true, Ordering::SeqCst);
    for c in [a, b] {
        assert_eq!(
            read_response(&mut BufReader::new(c), false)
                .expect("slow")
                .status,
            200
        );
    }
    srv.shutdown();
}

#[test]
fn pipelined_requests_answered_in_order() {
    let srv = start(cfg());
    let mut s = connect(srv.local_addr());
    s.write_all(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\none\
          GET /slow?ms=50 HTTP/1.1\r\nHost: t\r\n\r\n\
          POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nthree",
    )
    .expect("write");
    let mut r = BufReader::new(s);
    let bodies: Vec<String> = (0..3)
        .map(|_| read_response(&mut r, false).expect("resp").text())
        .collect();
    assert_eq!(bodies, ["one", "slow", "three"]);
    srv.shutdown();
}

#[test]
fn chunked_request_body_is_dechunked() {
    let srv = start(cfg());
    let r = roundtrip(
        srv.local_addr(),
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1;x=y\r\n \r\n5\r\nworld\r\n0\r\n\r\n",
    )
    .expect("resp");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello world");
    srv.shutdown();
}

#[test]
fn expect_100_continue_then_response() {
    let srv = start(cfg());
    let mut s = connect(srv.local_addr());
    s.write_all(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
    )
    .expect("write");
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let first = read_response(&mut r, false).expect("100");
    assert_eq!(first.status, 100);
    s.write_all(b"body").expect("write body");
    let second = read_response(&mut r, false).expect("200");
    assert_eq!((second.status, second.text().as_str()), (200, "body"));
    srv.shutdown();
}

#[test]
fn handler_panic_is_500_and_server_survives() {
    let srv = start(ServerConfig {
        workers: 1,
        ..cfg()
    });
    for _ in 0..3 {
        assert_eq!(get(srv.local_addr(), "/panic").expect("500").status, 500);
    }
    assert_eq!(get(srv.local_addr(), "/").expect("200").status, 200);
    srv.shutdown();
}

#[test]
fn keep_alive_head_and_http10() {
    let srv = start(cfg());
    let mut s = connect(srv.local_addr());
    s.write_all(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("write");
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let h = read_response(&mut r, true).expect("head");
    assert_eq!((h.status, h.header("content-length")), (200, Some("2")));
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("write");
    assert_eq!(read_response(&mut r, false).expect("get").text(), "ok");
    // HTTP/1.0 without keep-alive: answered, then closed.
    let mut s = connect(srv.local_addr());
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").expect("write");
    let mut all = Vec::new();
    s.read_to_end(&mut all).expect("read to close");
    let text = String::from_utf8_lossy(&all);
    assert!(
        text.starts_with("HTTP/1.1 200")
            && text.contains("Connection: close")
            && text.ends_with("ok"),
        "{text}"
    );
    srv.shutdown();
}

#[test]
fn malformed_and_smuggling_requests_are_400() {
    let srv = start(cfg());
    for raw in [
        &b"GET / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
        b"G\x01T / HTTP/1.1\r\n\r\n",
    ] {
        assert_eq!(roundtrip(srv.local_addr(), raw).expect("resp").status, 400);
    }
    assert_eq!(get(srv.local_addr(), "/").expect("get").status, 200);
    srv.shutdown();
}

#[test]
fn idle_keep_alive_is_closed_after_idle_timeout() {
    let srv = start(ServerConfig {
        idle_timeout: Duration::from_millis(300),
        ..cfg()
    });
    let mut s = connect(srv.local_addr());
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("write");
    let mut r = BufReader::new(s);
    assert_eq!(read_response(&mut r, false).expect("resp").status, 200);
    let t0 = Instant::now();
    let mut rest = Vec::new();
    let n = r.read_to_end(&mut rest).expect("closed by server");
    assert_eq!(n, 0);
    assert!(
        t0.elapsed() >= Duration::from_millis(250) && t0.elapsed() < Duration::from_secs(10),
        "{:?}",
        t0.elapsed()
    );
    srv.shutdown();
}

#[test]
fn shutdown_from_another_thread_releases_wait() {
    let srv = std::sync::Arc::new(start(cfg()));
    let s2 = srv.clone();
    let waiter = std::thread::spawn(move || s2.wait());
    assert_eq!(get(srv.local_addr(), "/").expect("get").status, 200);
    srv.shutdown();
    waiter.join().expect("wait returned");
    assert!(
        std::net::TcpStream::connect(srv.local_addr()).is_err()
            || get(srv.local_addr(), "/").is_err()
    );
}
