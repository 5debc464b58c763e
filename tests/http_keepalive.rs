//! Keep-alive paths of the server's reactor (issue 16): a connection stays
//! registered with the poller while a worker holds it, is given back without
//! waking the reactor unless data came meanwhile, and the worker writes with
//! one non-blocking write, falling back to bounded blocking writes. Real
//! sockets on 127.0.0.1, port 0; every wait is on observable state.

mod http_util;
mod wait_util;

use http_util::*;
use mcphub::http::{Body, Request, Response, ServerConfig};
use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex};
use wait_util::{wait_until, PATIENCE};

fn cfg() -> ServerConfig {
    ServerConfig {
        workers: 2,
        queue: 64,
        ..ServerConfig::default()
    }
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";

/// Two requests in one write: the second sits in the request reader when
/// the first is answered (no readiness event will come for it), so the
/// reactor must read it when the connection is given back. Many rounds on
/// one connection.
#[test]
fn two_pipelined_requests_in_one_write_are_answered_in_order() {
    let srv = start(cfg());
    let mut s = connect(srv.local_addr());
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    for round in 0..50 {
        let one = format!("r{round}a");
        let two = format!("r{round}b");
        let raw = format!(
            "{}{}",
            request("POST", "/echo", &[], &one),
            request("POST", "/echo", &[], &two)
        );
        s.write_all(raw.as_bytes()).expect("write");
        let first = read_response(&mut r, false).expect("first response");
        let second = read_response(&mut r, false).expect("second response");
        assert_eq!((first.text(), second.text()), (one, two), "round {round}");
    }
    srv.shutdown();
}

/// Clients that send their next request as soon as they have read a
/// response: the request often arrives while the worker still holds the
/// connection (between its write and its give-back), the race the
/// "readable while out" flag covers. A request the reactor missed would
/// never be answered (the client's read times out).
#[test]
fn next_request_right_after_the_response_is_always_answered() {
    let srv = start(cfg());
    let addr = srv.local_addr();
    let clients: Vec<_> = (0..4)
        .map(|c| {
            std::thread::spawn(move || {
                let mut s = connect(addr);
                let mut r = BufReader::new(s.try_clone().expect("clone"));
                for round in 0..500 {
                    let body = format!("c{c}r{round}");
                    s.write_all(request("POST", "/echo", &[], &body).as_bytes())
                        .expect("write");
                    let resp = read_response(&mut r, false)
                        .unwrap_or_else(|e| panic!("client {c} round {round}: {e}"));
                    assert_eq!(resp.text(), body);
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("client thread");
    }
    srv.shutdown();
}

/// A handler that holds `/hold` until the test lets it go (and says when it
/// is holding), and answers everything else like [`test_handler`].
fn holding_handler() -> (
    impl Fn(Request) -> Response + Send + Sync + 'static,
    crossbeam_channel::Receiver<()>,
    crossbeam_channel::Sender<()>,
) {
    let (held_tx, held_rx) = crossbeam_channel::unbounded::<()>();
    let (go_tx, go_rx) = crossbeam_channel::unbounded::<()>();
    let go_rx = Mutex::new(go_rx);
    let handler = move |req: Request| {
        if req.path() == "/hold" {
            let _ = held_tx.send(());
            let _ = go_rx.lock().expect("lock").recv();
            return Response::text(200, "held");
        }
        test_handler(req)
    };
    (handler, held_rx, go_tx)
}

/// The next request arrives while a worker holds the connection: the
/// reactor notes the event and reads the request once the connection is
/// given back.
#[test]
fn request_arriving_while_the_worker_holds_the_connection_is_answered() {
    let (handler, held, go) = holding_handler();
    let srv = start_with(cfg(), handler);
    let mut s = connect(srv.local_addr());
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    for _ in 0..20 {
        s.write_all(b"GET /hold HTTP/1.1\r\nHost: t\r\n\r\n").expect("write");
        held.recv_timeout(PATIENCE).expect("the handler to hold the request");
        s.write_all(GET).expect("write the next request");
        go.send(()).expect("let the handler go");
        assert_eq!(read_response(&mut r, false).expect("held").text(), "held");
        assert_eq!(read_response(&mut r, false).expect("next").text(), "ok");
    }
    srv.shutdown();
}

/// The client half-closes while its request is being handled: it still
/// gets the answer, then the server closes (the FIN noted while out).
#[test]
fn half_close_while_out_is_answered_then_closed() {
    let (handler, held, go) = holding_handler();
    let srv = start_with(cfg(), handler);
    let mut s = connect(srv.local_addr());
    s.write_all(b"GET /hold HTTP/1.1\r\nHost: t\r\n\r\n").expect("write");
    held.recv_timeout(PATIENCE).expect("the handler to hold the request");
    s.shutdown(Shutdown::Write).expect("half-close");
    go.send(()).expect("let the handler go");
    let mut r = BufReader::new(s);
    assert_eq!(read_response(&mut r, false).expect("held").text(), "held");
    let mut rest = Vec::new();
    assert_eq!(r.read_to_end(&mut rest).expect("closed by the server"), 0);
    srv.shutdown();
}

/// A response far larger than the socket buffers, to a client with a small
/// receive buffer reading a little at a time: the worker's non-blocking
/// write takes only part of it and the rest goes by the blocking fallback.
/// It arrives whole, and the connection is still good for the next request.
#[test]
fn response_larger_than_the_send_buffer_reaches_a_slow_reader_whole() {
    const SIZE: usize = 8 * 1024 * 1024;
    let big: Arc<Vec<u8>> = Arc::new((0..SIZE).map(|i| (i % 251) as u8).collect());
    let body = big.clone();
    let srv = start_with(cfg(), move |req: Request| {
        if req.path() == "/big" {
            return Response {
                status: 200,
                headers: vec![],
                body: Body::Full(body.as_ref().clone()),
            };
        }
        test_handler(req)
    });
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    sock.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    sock.connect(&srv.local_addr().into()).expect("connect");
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("read timeout");
    s.write_all(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n").expect("write");
    // Head first, then the body in small reads.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).expect("head");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains(&format!("Content-Length: {SIZE}")), "{head}");
    let mut got = Vec::with_capacity(SIZE);
    let mut buf = [0u8; 2048];
    while got.len() < SIZE {
        let want = buf.len().min(SIZE - got.len());
        let n = s.read(&mut buf[..want]).expect("body");
        assert!(n > 0, "closed after {} of {SIZE} bytes", got.len());
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got == *big, "the body arrived altered");
    s.write_all(GET).expect("write the next request");
    assert_eq!(read_response(&mut BufReader::new(s), false).expect("next").text(), "ok");
    srv.shutdown();
}

/// A keep-alive connection given back (several times) and then left idle is
/// closed after the idle timeout: the given-back connection's deadline runs
/// though nothing woke the reactor for it.
#[test]
fn given_back_connection_left_idle_is_closed_after_the_idle_timeout() {
    let srv = start(ServerConfig {
        idle_timeout: std::time::Duration::from_millis(200),
        ..cfg()
    });
    let mut s = connect(srv.local_addr());
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    for _ in 0..5 {
        s.write_all(GET).expect("write");
        assert_eq!(read_response(&mut r, false).expect("resp").status, 200);
    }
    let mut rest = Vec::new();
    // EOF (not the client's read timeout, which would be an error).
    assert_eq!(r.read_to_end(&mut rest).expect("closed by the server"), 0);
    assert!(rest.is_empty());
    // The server is still serving.
    wait_until("a new client to be answered", PATIENCE, || {
        get(srv.local_addr(), "/").is_ok_and(|r| r.status == 200)
    });
    srv.shutdown();
}
