//! SSE through the hub's HTTP server: events flushed one by one, a client
//! that stops reading or leaves is detected, stream limit, shutdown ends streams.

mod http_util;
mod wait_util;

use crossbeam_channel::{bounded, Receiver, Sender};
use http_util::*;
use wait_util::{wait_until, PATIENCE};
use mcphub::http::{Response, ServerConfig, SseEvent};
use std::io::{BufRead, BufReader, Write};
use std::time::{Duration, Instant};

/// A GET of the stream at `path`, read up to its head: what follows is
/// checked chunk by chunk, byte for byte (the framing is under test here).
fn open_chunked(addr: std::net::SocketAddr, path: &str) -> BufReader<std::net::TcpStream> {
    let mut r = send_raw(addr, request("GET", path, &[("Accept", "text/event-stream")], "").as_bytes());
    let head = read_response(&mut r, true).expect("head");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type"), Some("text/event-stream"));
    assert_eq!(head.header("transfer-encoding"), Some("chunked"));
    r
}

#[test]
fn events_arrive_one_by_one_then_keep_alive() {
    let (gate_tx, gate_rx): (Sender<()>, Receiver<()>) = bounded(1);
    let srv = start_with(
        ServerConfig {
            workers: 1,
            ..ServerConfig::default()
        },
        move |req| {
            if req.path() != "/sse" {
                return Response::text(200, "after");
            }
            let gate = gate_rx.clone();
            Response::sse(move |sink| {
                let _ = sink.send(&SseEvent {
                    id: Some("1"),
                    event: Some("message"),
                    data: "first\nline",
                    ..Default::default()
                });
                // Blocked until the client has seen the first event.
                let _ = gate.recv_timeout(Duration::from_secs(5));
                let _ = sink.send(&SseEvent {
                    data: "second",
                    ..Default::default()
                });
            })
        },
    );
    let mut r = open_chunked(srv.local_addr(), "/sse");
    let first = read_chunk(&mut r).expect("chunk").expect("not terminal");
    assert_eq!(
        String::from_utf8_lossy(&first),
        "id: 1\nevent: message\ndata: first\ndata: line\n\n"
    );
    // The only worker is free while the stream runs: another client is served.
    assert_eq!(get(srv.local_addr(), "/other").expect("get").status, 200);
    gate_tx.send(()).expect("gate");
    let second = read_chunk(&mut r).expect("chunk").expect("not terminal");
    assert_eq!(String::from_utf8_lossy(&second), "data: second\n\n");
    assert!(read_chunk(&mut r).expect("terminal").is_none());
    // Same connection, next request.
    r.get_mut()
        .write_all(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("write");
    assert_eq!(read_response(&mut r, false).expect("resp").text(), "after");
    srv.shutdown();
}

#[test]
fn client_that_stops_reading_is_cut_within_write_budget() {
    let (done_tx, done_rx) = bounded::<(Duration, Duration, usize)>(1);
    let budget = Duration::from_millis(300);
    let srv = start_with(
        ServerConfig {
            write_budget: budget,
            ..ServerConfig::default()
        },
        move |_req| {
            let done = done_tx.clone();
            Response::sse(move |sink| {
                let big = "x".repeat(64 * 1024);
                let t0 = Instant::now();
                let mut last_ok = Instant::now();
                let mut sent = 0;
                while t0.elapsed() < Duration::from_secs(20) {
                    match sink.send(&SseEvent {
                        data: &big,
                        ..Default::default()
                    }) {
                        Ok(()) => {
                            sent += 1;
                            last_ok = Instant::now();
                        }
                        Err(_) => break,
                    }
                }
                assert!(sink
                    .send(&SseEvent {
                        data: "late",
                        ..Default::default()
                    })
                    .is_err());
                assert!(sink.is_gone());
                let _ = done.send((t0.elapsed(), last_ok.elapsed(), sent));
            })
        },
    );
    let r = open_chunked(srv.local_addr(), "/sse");
    let (total, since_last_ok, sent) = done_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("producer saw ClientGone");
    eprintln!("non-reading client: {sent} events of 64 KiB sent, ClientGone after {total:?}, {since_last_ok:?} after the last successful send");
    assert!(
        since_last_ok < budget * 4,
        "cut {since_last_ok:?} after the last write"
    );
    drop(r);
    srv.shutdown();
}

#[test]
fn pinger_detects_a_client_that_left_while_the_producer_is_blocked() {
    let (done_tx, done_rx) = bounded::<Option<Duration>>(1);
    let (left_tx, left_rx) = bounded::<Instant>(1);
    let cfg = ServerConfig {
        ping_interval: Duration::from_millis(100),
        ..ServerConfig::default()
    };
    let srv = start_with(cfg, move |_req| {
        let (done, left) = (done_tx.clone(), left_rx.clone());
        Response::sse(move |sink| {
            let _ = sink.send(&SseEvent {
                data: "hello",
                ..Default::default()
            });
            let Ok(at) = left.recv_timeout(Duration::from_secs(5)) else {
                return;
            };
            // "Blocked elsewhere": never writes, only looks at is_gone.
            wait_until("the sink to notice the departed client", PATIENCE, || sink.is_gone());
            let _ = done.send(Some(at.elapsed()));
        })
    });
    let mut r = open_chunked(srv.local_addr(), "/sse");
    read_chunk(&mut r).expect("first").expect("not terminal");
    drop(r);
    left_tx.send(Instant::now()).expect("left");
    let seen = done_rx
        .recv_timeout(PATIENCE + Duration::from_secs(10))
        .expect("producer finished");
    let seen = seen.expect("client departure noticed");
    eprintln!("pinger noticed the departed client after {seen:?}");
    assert!(seen < Duration::from_secs(5), "noticed after {seen:?} (ping interval 100 ms)");
    srv.shutdown();
}

#[test]
fn pings_are_written_on_a_silent_stream() {
    let (gate_tx, gate_rx) = bounded::<()>(1);
    let cfg = ServerConfig {
        ping_interval: Duration::from_millis(100),
        ..ServerConfig::default()
    };
    let srv = start_with(cfg, move |_req| {
        let gate = gate_rx.clone();
        Response::sse(move |_sink| {
            let _ = gate.recv_timeout(Duration::from_secs(5));
        })
    });
    let mut r = open_chunked(srv.local_addr(), "/sse");
    let ping = read_chunk(&mut r).expect("ping").expect("not terminal");
    assert_eq!(ping, b": ping\n\n");
    gate_tx.send(()).expect("gate");
    while let Some(c) = read_chunk(&mut r).expect("chunk") {
        assert_eq!(c, b": ping\n\n");
    }
    srv.shutdown();
}

#[test]
fn streams_beyond_max_streams_get_503_and_shutdown_ends_streams() {
    let cfg = ServerConfig {
        max_streams: 2,
        ..ServerConfig::default()
    };
    let srv = start_with(cfg, move |_req| {
        Response::sse(move |sink| {
            let t0 = Instant::now();
            while !sink.is_gone() && t0.elapsed() < Duration::from_secs(20) {
                let _ = sink.comment("tick");
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    });
    let a = open_chunked(srv.local_addr(), "/sse");
    let b = open_chunked(srv.local_addr(), "/sse");
    let r = get(srv.local_addr(), "/sse").expect("503");
    assert_eq!(r.status, 503);
    assert!(r.header("retry-after").is_some());
    let t0 = Instant::now();
    srv.shutdown();
    assert!(
        t0.elapsed() < Duration::from_secs(4),
        "shutdown took {:?}",
        t0.elapsed()
    );
    for mut s in [a, b] {
        // The stream ends (terminal chunk or close), it does not hang.
        let mut line = String::new();
        while s.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
            line.clear();
        }
    }
}
