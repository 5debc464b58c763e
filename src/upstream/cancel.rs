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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};
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
    /// The JSON-RPC method sent (for the timeout log line).
    pub method: String,
}

/// A movable deadline for every socket read of one call's connection
/// (`resetTimeoutOnProgress`): ureq's `timeout_global` is fixed when the
/// request is sent, so the reads of [`TrackedTcp`] are bounded by this too,
/// and a read past it fails as a ureq timeout. Unset: ureq's bounds only.
#[derive(Debug, Default)]
pub struct ReadDeadline(AtomicU64);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl ReadDeadline {
    /// Sets (or with `None` clears) the deadline.
    pub fn set(&self, at: Option<Instant>) {
        let nanos = at.map_or(0, |t| t.saturating_duration_since(epoch()).as_nanos().min(u64::MAX as u128) as u64 + 1);
        self.0.store(nanos, Ordering::SeqCst);
    }

    /// The deadline, if set.
    pub fn get(&self) -> Option<Instant> {
        match self.0.load(Ordering::SeqCst) {
            0 => None,
            n => Some(epoch() + Duration::from_nanos(n - 1)),
        }
    }
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
    read_deadline: Arc<ReadDeadline>,
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

    /// The read deadline of this call's connection (see [`ReadDeadline`]);
    /// requests sent while the handle is bound take it along.
    pub fn read_deadline(&self) -> &Arc<ReadDeadline> {
        &self.read_deadline
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

/// The handle bound to this thread ([`bind`]), if any: for a transport
/// without a tracked socket (an in-process one in tests), which checks
/// [`CallHandle::is_cut`] itself to stop a read the way a cut socket would.
pub fn current() -> Option<Arc<CallHandle>> {
    CURRENT.with(|c| c.borrow().clone())
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
        Ok(Some(Either::B(TrackedTcp {
            stream,
            shared,
            _handle: handle,
            buffers,
            read_deadline: None,
            pending: Vec::new(),
            pending_timeout: None,
            read_timeout: TimeoutSlot::default(),
            write_timeout: TimeoutSlot::default(),
        })))
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

/// A TCP transport that records its socket on every send, and costs as few
/// system calls per request as it can (issue 16: ureq's own TCP transport made
/// nine besides the one send and one receive of a pooled request):
/// - the request's head and body go out in **one** `send` — ureq transmits the
///   head and each body chunk separately; they wait in `pending` until ureq
///   waits for the answer (or [`MAX_PENDING`] bytes are pending);
/// - socket timeouts are set only when the one in place is no longer right
///   ([`TimeoutSlot`]), not before every read and write;
/// - the liveness probe of a pooled connection is one non-blocking `MSG_PEEK`
///   instead of two `fcntl` toggles around a read.
#[derive(Debug)]
pub struct TrackedTcp {
    stream: TcpStream,
    shared: Arc<TcpStream>,
    _handle: Arc<Shutter>,
    buffers: LazyBuffers,
    /// The read deadline of the call that sent the last request on this connection.
    read_deadline: Option<Arc<ReadDeadline>>,
    /// Output ureq has transmitted that is not on the wire yet, and the write
    /// timeout of its last part.
    pending: Vec<u8>,
    pending_timeout: Option<NextTimeout>,
    read_timeout: TimeoutSlot,
    write_timeout: TimeoutSlot,
}

/// Pending output above this is sent at once (a large body is not held whole).
pub const MAX_PENDING: usize = 64 * 1024;

/// The socket timeout (`SO_RCVTIMEO` or `SO_SNDTIMEO`) in place on a socket,
/// so that it is set again only when it must change.
///
/// A timeout `t` is served by the one in place, `c`, when `t ≤ c ≤ t + t/32 + 2 ms`:
/// a blocked read or write may outlast its exact budget by at most 1/32 of it
/// plus 2 ms (≤ 0.94 s + 2 ms of a 30 s call timeout), never end early. When it
/// must change it is set to `t + t/64 + 1 ms`, the middle of that window, so the
/// next requests of a keep-alive connection (the same call timeout, a few µs
/// less remaining) find it still right.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TimeoutSlot(Option<Option<Duration>>);

impl TimeoutSlot {
    /// The value to set for `want` (`None`: block without a timeout), or
    /// `None` when the one in place serves it.
    pub fn update(&mut self, want: Option<Duration>) -> Option<Option<Duration>> {
        let set = match (self.0, want) {
            (Some(None), None) => return None,
            (_, None) => None,
            (Some(Some(c)), Some(t)) if t <= c && c <= t + t / 32 + Duration::from_millis(2) => return None,
            (_, Some(t)) => Some(t + t / 64 + Duration::from_millis(1)),
        };
        self.0 = Some(set);
        Some(set)
    }

    /// Forgets what is in place (after a failed `setsockopt`).
    pub fn reset(&mut self) {
        self.0 = None;
    }
}

fn timeout_error(e: io::Error, timeout: &NextTimeout) -> ureq::Error {
    if matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock) {
        ureq::Error::Timeout(timeout.reason)
    } else {
        ureq::Error::Io(e)
    }
}

impl TrackedTcp {
    /// Sends what is pending, in one `write_all`, within the last part's write timeout.
    fn flush_pending(&mut self) -> Result<(), ureq::Error> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let timeout = self.pending_timeout.take().unwrap_or_default();
        if let Some(set) = self.write_timeout.update(timeout.not_zero().map(|t| *t)) {
            if let Err(e) = self.stream.set_write_timeout(set) {
                self.write_timeout.reset();
                return Err(e.into());
            }
        }
        let result = self.stream.write_all(&self.pending).map_err(|e| timeout_error(e, &timeout));
        self.pending.clear();
        result
    }
}

impl Transport for TrackedTcp {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.read_deadline = CURRENT.with(|c| {
            let current = c.borrow();
            let handle = current.as_ref()?;
            handle.record_socket(&self.shared);
            Some(handle.read_deadline.clone())
        });
        let output = &self.buffers.output()[..amount];
        self.pending.extend_from_slice(output);
        self.pending_timeout = Some(timeout.for_write());
        if self.pending.len() >= MAX_PENDING {
            self.flush_pending()?;
        }
        Ok(())
    }

    fn maybe_await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        // Whatever ureq transmitted goes out before anything is awaited.
        self.flush_pending()?;
        if self.buffers.can_use_input() {
            return Ok(true);
        }
        self.await_input(timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.flush_pending()?;
        let timeout = timeout.for_read();
        let mut wait = timeout.not_zero().map(|t| *t);
        if let Some(at) = self.read_deadline.as_ref().and_then(|d| d.get()) {
            let left = at.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ureq::Error::Timeout(timeout.reason));
            }
            wait = Some(wait.map_or(left, |w| w.min(left)));
        }
        if let Some(set) = self.read_timeout.update(wait) {
            if let Err(e) = self.stream.set_read_timeout(set) {
                self.read_timeout.reset();
                return Err(e.into());
            }
        }
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
        // Open when a non-blocking peek finds nothing waiting (no EOF, no
        // unexpected bytes from the server), and nothing is left unsent.
        if !self.pending.is_empty() {
            return false;
        }
        let mut probe = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        let peeked = socket2::SockRef::from(&self.stream).recv_with_flags(&mut probe, libc::MSG_PEEK | libc::MSG_DONTWAIT);
        matches!(peeked, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

#[cfg(test)]
mod tests {
    use super::TimeoutSlot;
    use std::time::Duration;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_socket_timeout_is_set_only_when_the_one_in_place_no_longer_serves() {
        let mut slot = TimeoutSlot::default();
        let t = Duration::from_secs(30);
        // First use: set, a little above the budget.
        let set = slot.update(Some(t)).expect("first use sets").expect("a timeout");
        assert!(set >= t && set <= t + t / 32 + 2 * MS, "{set:?}");
        // The next request of the connection: a few µs less remaining — kept.
        assert_eq!(slot.update(Some(t - Duration::from_micros(40))), None);
        assert_eq!(slot.update(Some(t)), None);
        // Far less remaining (a call near its deadline): set again, never longer than allowed.
        let short = Duration::from_millis(200);
        let set = slot.update(Some(short)).expect("a shorter budget sets").expect("a timeout");
        assert!(set >= short && set <= short + short / 32 + 2 * MS, "{set:?}");
        // A longer budget than the one in place: set again (the read must not end early).
        assert!(slot.update(Some(t)).is_some());
        // No timeout at all, once.
        assert_eq!(slot.update(None), Some(None));
        assert_eq!(slot.update(None), None);
        // After a failed setsockopt the next use sets again.
        slot.reset();
        assert_eq!(slot.update(None), Some(None));
    }
}
