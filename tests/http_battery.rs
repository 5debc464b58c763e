//! The attack battery of shared/notes/http-layer.md against the hub's own
//! HTTP/1.1 server, plus protocol cases (pipelining, chunked, 100-continue,
//! HEAD, handler panic). Real sockets on 127.0.0.1, port 0.

mod http_util;

use http_util::*;
use mcphub::http::ServerConfig;
use std::io::{BufReader, Read, Write};
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
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "413 took {:?}",
        t0.elapsed()
    );
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
    // The other client was answered before the slow one's body deadline.
    let other = t0.elapsed();
    assert!(other < Duration::from_millis(1500), "the other client waited {other:?}");
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
        head_timeout: Duration::from_millis(800),
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
    // Not queued behind the slow heads: each answered well inside the head deadline.
    assert!(
        worst < Duration::from_millis(800),
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

#[test]
fn queue_full_answers_503_with_retry_after_quickly() {
    let srv = start(ServerConfig {
        workers: 2,
        queue: 2,
        retry_after_secs: 3,
        ..cfg()
    });
    let addr = srv.local_addr();
    let t0 = Instant::now();
    let mut conns: Vec<_> = (0..20)
        .map(|_| {
            let mut c = connect(addr);
            c.write_all(b"GET /slow?ms=700 HTTP/1.1\r\nHost: t\r\n\r\n")
                .expect("write");
            BufReader::new(c)
        })
        .collect();
    // The rejected ones are answered long before the slow ones finish.
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
    assert_eq!(ok + busy, 20);
    assert!(busy >= 14, "only {busy} rejected");
    assert!(ok >= 2);
    srv.shutdown();
}

#[test]
fn queue_full_503_arrives_within_milliseconds() {
    let started = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let st = started.clone();
    let srv = start_with(
        ServerConfig {
            workers: 1,
            queue: 1,
            ..cfg()
        },
        move |req| {
            if req.path() == "/block" {
                st.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(800));
            }
            mcphub::http::Response::text(200, "done")
        },
    );
    let addr = srv.local_addr();
    let mut a = connect(addr);
    a.write_all(b"GET /block HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("write");
    assert!(eventually(Duration::from_secs(2), || started
        .load(std::sync::atomic::Ordering::SeqCst)
        == 1));
    let mut b = connect(addr);
    b.write_all(b"GET /block HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("write");
    std::thread::sleep(Duration::from_millis(50)); // b reaches the queue (not observable from outside)
    let t0 = Instant::now();
    let r = get(addr, "/").expect("503");
    let took = t0.elapsed();
    assert_eq!(r.status, 503);
    // Answered by the rejecter while every worker is still blocked (the
    // blocking handler never returns until the test releases it).
    assert!(took < Duration::from_secs(1), "503 took {took:?}");
    eprintln!(
        "queue full: 503 + Retry-After {:?} in {took:?}",
        r.header("retry-after")
    );
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
