//! Graceful shutdown of the HTTP layer (issue 7): the listener closes at once,
//! in-flight requests and call streams finish within `drain_timeout`,
//! open-ended (GET) streams end with their terminal chunk, what outlives the
//! drain is cut and counted; and the liveness probe a watchdog uses.

mod http_util;
mod wait_util;

use crossbeam_channel::bounded;
use http_util::*;
use wait_util::{wait_until, PATIENCE};
use mcphub::http::{Probe, Response, ServerConfig, SseEvent, Stalled};
use std::io::{BufReader, Read};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A GET of the stream at `path`; the reader of what comes back.
fn send_get(addr: std::net::SocketAddr, path: &str) -> BufReader<TcpStream> {
    send_raw(addr, request("GET", path, &[("Accept", "text/event-stream")], "").as_bytes())
}

/// A POST of `{}` to `path`; the reader of what comes back.
fn send_post(addr: std::net::SocketAddr, path: &str) -> BufReader<TcpStream> {
    send_raw(addr, request("POST", path, &[], "{}").as_bytes())
}

/// Waits until a new connection to `addr` is refused (the reactor closes
/// the listener within one poll of the shutdown).
fn wait_refused(addr: std::net::SocketAddr) {
    wait_until("new connections to be refused after the shutdown began", PATIENCE, || {
        TcpStream::connect_timeout(&addr, Duration::from_millis(200))
            .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
    });
}

#[test]
fn in_flight_requests_and_call_streams_finish_while_new_connects_are_refused() {
    let (started_tx, started_rx) = bounded::<&'static str>(4);
    // /slow and /call hold until the test releases them, after the shutdown
    // began, so they are in flight during the drain on any machine.
    let (release_tx, release_rx) = bounded::<()>(2);
    let srv = start_with(
        ServerConfig { workers: 4, drain_timeout: Duration::from_secs(10), ..ServerConfig::default() },
        move |req| {
            let started = started_tx.clone();
            match req.path() {
                "/slow" => {
                    let _ = started.send("slow");
                    let _ = release_rx.recv_timeout(Duration::from_secs(30));
                    Response::text(200, "slow done")
                }
                "/call" => {
                    let release = release_rx.clone();
                    Response::sse(move |sink| {
                        let _ = sink.send(&SseEvent { data: "progress", ..Default::default() });
                        let _ = started.send("call");
                        let _ = release.recv_timeout(Duration::from_secs(30));
                        let _ = sink.send(&SseEvent { data: "result", ..Default::default() });
                    })
                }
                "/events" => Response::sse(move |sink| {
                    let _ = sink.send(&SseEvent { data: "hello", ..Default::default() });
                    let _ = started.send("events");
                    let t0 = Instant::now();
                    while !sink.is_gone() && t0.elapsed() < Duration::from_secs(20) {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }),
                _ => Response::text(200, "ok"),
            }
        },
    );
    let addr = srv.local_addr();
    let mut slow = send_post(addr, "/slow");
    let mut call = send_post(addr, "/call");
    let mut events = send_get(addr, "/events");
    let mut seen: Vec<&str> = (0..3).map(|_| started_rx.recv_timeout(Duration::from_secs(5)).expect("started")).collect();
    seen.sort();
    assert_eq!(seen, ["call", "events", "slow"]);

    let stopper = std::thread::spawn(move || {
        let d = srv.shutdown();
        (srv, d)
    });
    wait_refused(addr);
    release_tx.send(()).expect("release /slow");
    release_tx.send(()).expect("release /call");

    // The open-ended GET stream ends at once, politely: its event, then the terminal chunk.
    let head = read_response(&mut events, true).expect("events head");
    assert_eq!(head.status, 200);
    assert_eq!(read_chunk(&mut events).expect("event").as_deref(), Some(&b"data: hello\n\n"[..]));
    assert_eq!(read_chunk(&mut events).expect("terminal chunk"), None, "GET stream must end with 0\\r\\n\\r\\n");
    let mut rest = Vec::new();
    assert_eq!(events.read_to_end(&mut rest).expect("clean FIN, not a reset"), 0);

    // The in-flight request completes, with Connection: close.
    let r = read_response(&mut slow, false).expect("slow answer");
    assert_eq!((r.status, r.text().as_str()), (200, "slow done"));
    assert_eq!(r.header("connection"), Some("close"));

    // The call stream runs to its end.
    assert_eq!(read_response(&mut call, true).expect("call head").status, 200);
    assert_eq!(read_chunk(&mut call).expect("c1").as_deref(), Some(&b"data: progress\n\n"[..]));
    assert_eq!(read_chunk(&mut call).expect("c2").as_deref(), Some(&b"data: result\n\n"[..]));
    assert_eq!(read_chunk(&mut call).expect("terminal"), None);

    let (_srv, drained) = stopper.join().expect("shutdown thread");
    eprintln!("drain report: {drained:?}");
    assert_eq!((drained.cut_requests, drained.cut_streams), (0, 0), "{drained:?}");
    assert_eq!(drained.ended_streams, 1, "{drained:?}");
    assert!(drained.took < Duration::from_secs(9), "{drained:?}");
}

#[test]
fn work_outliving_the_drain_timeout_is_cut_and_counted() {
    let drain = Duration::from_millis(300);
    let (stuck_tx, stuck_rx) = bounded::<()>(1);
    let srv = start_with(
        ServerConfig { workers: 2, drain_timeout: drain, ..ServerConfig::default() },
        move |req| match req.path() {
            "/stuck" => {
                // Outlives the drain by far; released when the test ends.
                let _ = stuck_rx.recv_timeout(Duration::from_secs(60));
                Response::text(200, "too late")
            }
            _ => Response::sse(move |sink| {
                let _ = sink.send(&SseEvent { data: "working", ..Default::default() });
                let t0 = Instant::now();
                while !sink.is_gone() && t0.elapsed() < Duration::from_secs(5) {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }),
        },
    );
    let addr = srv.local_addr();
    let _stuck = send_post(addr, "/stuck");
    let mut call = send_post(addr, "/call");
    assert_eq!(read_response(&mut call, true).expect("head").status, 200);
    assert_eq!(read_chunk(&mut call).expect("c1").as_deref(), Some(&b"data: working\n\n"[..]));
    wait_until("the stuck request to be in a handler", PATIENCE, || srv.in_flight() == 1);
    let t0 = Instant::now();
    let drained = srv.shutdown();
    let took = t0.elapsed();
    eprintln!("cut after {took:?}: {drained:?}");
    assert_eq!((drained.cut_requests, drained.cut_streams, drained.ended_streams), (1, 1, 0), "{drained:?}");
    assert!(took >= drain, "returned before the drain timeout: {took:?}");
    // Cut, not waited for: the stuck handler holds until released below (60 s).
    assert!(took < Duration::from_secs(20), "shutdown took {took:?}");
    // The cut call stream still ends with a terminal chunk, not a reset.
    assert_eq!(read_chunk(&mut call).expect("terminal chunk"), None);
    // A second shutdown returns the same report at once.
    assert_eq!(srv.shutdown(), drained);
    let _ = stuck_tx.send(());
}

#[test]
fn a_stream_declared_open_ended_is_not_waited_for() {
    let srv = start_with(ServerConfig { drain_timeout: Duration::from_secs(10), ..ServerConfig::default() }, move |_req| {
        Response::sse(move |sink| {
            sink.open_ended();
            let _ = sink.send(&SseEvent { data: "listening", ..Default::default() });
            let t0 = Instant::now();
            while !sink.is_gone() && t0.elapsed() < Duration::from_secs(20) {
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    });
    let mut listen = send_post(srv.local_addr(), "/listen");
    assert_eq!(read_response(&mut listen, true).expect("head").status, 200);
    assert_eq!(read_chunk(&mut listen).expect("c1").as_deref(), Some(&b"data: listening\n\n"[..]));
    let drained = srv.shutdown();
    assert_eq!((drained.ended_streams, drained.cut_streams), (1, 0), "{drained:?}");
    // Not waited for: well under the 10 s drain timeout.
    assert!(drained.took < Duration::from_secs(5), "{drained:?}");
    assert_eq!(read_chunk(&mut listen).expect("terminal chunk"), None);
}

#[test]
fn the_liveness_probe_sees_the_reactor_turn_and_a_wedged_pool() {
    let (release_tx, release_rx) = bounded::<()>(1);
    let srv = start_with(ServerConfig { workers: 1, ..ServerConfig::default() }, move |req| {
        if req.path() == "/wedge" {
            let _ = release_rx.recv_timeout(Duration::from_secs(20));
        }
        Response::text(200, "ok")
    });
    let mut probe = Probe::new(Duration::from_millis(200));
    // First call only records; each call wakes the reactor, which turns.
    assert_eq!(srv.probe(&mut probe), Ok(()));
    // A turning reactor is seen as healthy (how soon it turns after a wake
    // depends on the machine's load, so wait for it rather than sleep).
    for _ in 0..3 {
        wait_until("the probe to see the reactor turn", PATIENCE, || srv.probe(&mut probe).is_ok());
    }
    let _wedge = send_post(srv.local_addr(), "/wedge");
    wait_until("the wedge request to be in the only worker", PATIENCE, || srv.in_flight() == 1);
    wait_until("the probe to report the pool whose only worker is stuck past the limit", PATIENCE, || {
        matches!(srv.probe(&mut probe), Err(Stalled::Pool { workers: 1, .. }))
    });
    release_tx.send(()).expect("release");
    wait_until("the probe to be healthy again after the release", PATIENCE, || srv.probe(&mut probe).is_ok());
    srv.shutdown();
}
