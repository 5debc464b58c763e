//! Stopping one upstream call at once from another thread.
//!
//! A thread blocked reading an upstream answer cannot be woken by flags: the
//! read has to fail. ureq keeps its sockets private, so the hub's agents use
//! [`TrackedTcpConnector`]: it opens the TCP connection itself, keeps a
//! duplicate of the socket, and every time a request is sent on that
//! connection (a new or a pooled one) it records the socket in the
//! [`CallHandle`] bound to the sending thread ([`bind`]). Any thread can then
//! [`CallHandle::cut`] the call: the socket is shut down, the blocked read
//! returns at once and the connection is dropped from the pool. That is both "the hub
//! stops waiting" for a cancelled call and, for 2026-07-28 servers, the
//! cancellation signal itself (closing the request's stream).
//!
//! Built on ureq's `unversioned` transport API (outside its semver promise;
//! Cargo.lock pins the version). TLS connectors chain on top unchanged.

use parking_lot::Mutex;
use serde_json::Value;
use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use ureq::unversioned::transport::{Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, Transport};
use ureq::unversioned::transport::ShutdownHandle;

thread_local! {
    static CURRENT: RefCell<Option<Arc<CallHandle>>> = const { RefCell::new(None) };
}

/// What the hub sent upstream for one call, for a legacy `notifications/cancelled`.
#[derive(Debug, Clone)]
pub struct UpstreamCall {
    /// The hub's JSON-RPC id of the upstream request.
    pub id: Value,
    /// Headers naming the upstream session (legacy) to notify on.
    pub session_headers: Vec<(String, String)>,
    /// Whether the server is legacy (it gets `notifications/cancelled`; a
    /// 2026-07-28 server takes the closed stream as the cancellation).
    pub legacy: bool,
}

/// One downstream call's hold on its upstream connection: [`CallHandle::cut`]
/// from any thread makes a read blocked on that call fail at once. Disarmed by
/// [`CallHandle::finish`] when the call ends, so a pooled connection later used
/// by another call is never cut by a stale handle.
#[derive(Debug, Default)]
pub struct CallHandle {
    socket: Mutex<Option<Arc<TcpStream>>>,
    cut: AtomicBool,
    call: Mutex<Option<UpstreamCall>>,
}

impl CallHandle {
    /// Cancels: shuts the call's connection down (now, or as soon as it is known).
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        if let Some(s) = self.socket.lock().as_ref() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Whether [`CallHandle::cut`] was called.
    pub fn is_cut(&self) -> bool {
        self.cut.load(Ordering::SeqCst)
    }

    /// The call is over: forget its connection.
    pub fn finish(&self) {
        self.socket.lock().take();
    }

    /// Records what was sent upstream (by the upstream client).
    pub fn record_call(&self, call: UpstreamCall) {
        *self.call.lock() = Some(call);
    }

    /// What was sent upstream, if anything yet.
    pub fn upstream_call(&self) -> Option<UpstreamCall> {
        self.call.lock().clone()
    }

    fn record_socket(&self, socket: &Arc<TcpStream>) {
        let mut slot = self.socket.lock();
        *slot = Some(socket.clone());
        if self.is_cut() {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }
}

/// While the guard lives, requests sent on this thread record their
/// connection in `handle`.
pub fn bind(handle: &Arc<CallHandle>) -> Bound {
    CURRENT.with(|c| *c.borrow_mut() = Some(handle.clone()));
    Bound(())
}

/// Unbinds on drop (see [`bind`]).
pub struct Bound(());

impl Drop for Bound {
    fn drop(&mut self) {
        CURRENT.with(|c| c.borrow_mut().take());
    }
}

/// Opens plain TCP connections whose sockets calls can cut (see module docs).
#[derive(Debug, Default)]
pub struct TrackedTcpConnector;

impl<In: Transport> Connector<In> for TrackedTcpConnector {
    type Out = Either<In, TrackedTcp>;

    fn connect(&self, details: &ConnectionDetails, chained: Option<In>) -> Result<Option<Self::Out>, ureq::Error> {
        if chained.is_some() {
            return Ok(chained.map(Either::A));
        }
        let per_address = details.timeout.not_zero().map(|t| *t).unwrap_or(Duration::from_secs(30));
        let mut last: Option<io::Error> = None;
        let mut stream = None;
        for addr in details.addrs.iter() {
            match TcpStream::connect_timeout(addr, per_address) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let Some(stream) = stream else {
            return Err(last.map(ureq::Error::Io).unwrap_or(ureq::Error::ConnectionFailed));
        };
        if details.config.no_delay() {
            stream.set_nodelay(true)?;
        }
        let shared = Arc::new(stream.try_clone()?);
        let handle = Arc::new(Shutter(shared.clone()));
        let weak: Weak<dyn ShutdownHandle> = Arc::downgrade(&handle) as Weak<dyn ShutdownHandle>;
        (details.register_shutdown)(weak)?;
        let buffers = LazyBuffers::new(details.config.input_buffer_size(), details.config.output_buffer_size());
        Ok(Some(Either::B(TrackedTcp { stream, shared, _handle: handle, buffers })))
    }
}

/// Lets ureq's `Agent::shutdown` reach tracked sockets too.
#[derive(Debug)]
struct Shutter(Arc<TcpStream>);

impl ShutdownHandle for Shutter {
    fn shutdown(&self) {
        let _ = self.0.shutdown(Shutdown::Both);
    }
}

/// A TCP transport that records its socket on every send.
#[derive(Debug)]
pub struct TrackedTcp {
    stream: TcpStream,
    shared: Arc<TcpStream>,
    _handle: Arc<Shutter>,
    buffers: LazyBuffers,
}

fn timeout_error(e: io::Error, timeout: &NextTimeout) -> ureq::Error {
    if matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock) {
        ureq::Error::Timeout(timeout.reason)
    } else {
        ureq::Error::Io(e)
    }
}

impl Transport for TrackedTcp {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        CURRENT.with(|c| {
            if let Some(handle) = c.borrow().as_ref() {
                handle.record_socket(&self.shared);
            }
        });
        let timeout = timeout.for_write();
        self.stream.set_write_timeout(timeout.not_zero().map(|t| *t))?;
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output).map_err(|e| timeout_error(e, &timeout))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let timeout = timeout.for_read();
        self.stream.set_read_timeout(timeout.not_zero().map(|t| *t))?;
        let input = self.buffers.input_append_buf();
        let amount = loop {
            match self.stream.read(input) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other.map_err(|e| timeout_error(e, &timeout))?,
            }
        };
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        // Open when a non-blocking read finds nothing waiting (no EOF, no
        // unexpected bytes from the server).
        if self.stream.set_nonblocking(true).is_err() {
            return false;
        }
        let mut probe = [0u8; 1];
        let open = matches!(self.stream.read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
        self.stream.set_nonblocking(false).is_ok() && open
    }
}
