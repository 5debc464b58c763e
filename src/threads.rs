//! Thread ownership (issue 15, item 6): every background thread of the hub is
//! started through one [`Threads`] owner, which names it `mcphub-<name>`,
//! counts it by [`Kind`] while it runs (`mcphub_threads{kind}` in
//! `/metrics`), and at shutdown stops and joins the long-lived ones.
//!
//! Two ways to start a thread:
//! - [`Threads::spawn_owned`]: a long-lived loop (poller, listener, watchdog).
//!   It gets a [`Stop`] to observe — its sleeps are [`Stop::sleep`], so a
//!   stop wakes it at once — and the owner keeps its handle;
//!   [`Threads::shutdown_join`] raises the stop and joins it, up to a
//!   deadline. A thread still running then (blocked in a read, say) is named
//!   in one WARN line and left detached: shutdown never hangs on it.
//! - [`Threads::spawn`]: the caller gets the [`JoinHandle`] and joins it
//!   (the HTTP server joins its reactor, workers and stream threads in its own
//!   drain) or drops it, detaching a short-lived, bounded per-call thread
//!   (a cancel note, a hub-run task, a catalog warm-up). Either way the
//!   thread is counted while it runs.
//!
//! Invariant: this module imports nothing of the crate; every other module
//! may use it (it sits at the bottom of the module order).

use parking_lot::{Condvar, Mutex};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What a thread is for: the `kind` label of `mcphub_threads`. A fixed set,
/// so the label is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The HTTP server's reactor, request workers, rejecter and pinger.
    Http,
    /// One thread per streamed (SSE) answer while it streams.
    Stream,
    /// Upstream GET streams and `subscriptions/listen` streams.
    Listen,
    /// Periodic loops: Redis probe, users reload, MRTR reaper, task watcher, watchdog.
    Poller,
    /// Hub-run tasks (heavy tools, one thread per run).
    Task,
    /// Short-lived helpers of one call or event: cancel notes, session ends,
    /// reload follow-ups, the catalog warm-up.
    Call,
    /// Process control: signal handling and the shutdown drain.
    Control,
    /// The pipes of stdio server processes (stdout, stderr, stdin: three per process).
    Process,
}

impl Kind {
    /// Every kind, in label order.
    pub const ALL: [Kind; 8] = [Kind::Http, Kind::Stream, Kind::Listen, Kind::Poller, Kind::Task, Kind::Call, Kind::Control, Kind::Process];

    /// The label value (`http`, `stream`, `listen`, `poller`, `task`, `call`, `control`, `process`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Http => "http",
            Kind::Stream => "stream",
            Kind::Listen => "listen",
            Kind::Poller => "poller",
            Kind::Task => "task",
            Kind::Call => "call",
            Kind::Control => "control",
            Kind::Process => "process",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The stop signal of one owner, observed by its long-lived threads. Cheap to clone.
#[derive(Clone, Default)]
pub struct Stop {
    inner: Arc<(Mutex<bool>, Condvar)>,
}

impl Stop {
    /// Whether the owner is shutting down.
    pub fn is_stopped(&self) -> bool {
        *self.inner.0.lock()
    }

    /// Sleeps `period`, or less when the stop is raised meanwhile. Returns
    /// true when stopped (the loop should end).
    pub fn sleep(&self, period: Duration) -> bool {
        let deadline = Instant::now() + period;
        let mut stopped = self.inner.0.lock();
        while !*stopped {
            if self.inner.1.wait_until(&mut stopped, deadline).timed_out() {
                break;
            }
        }
        *stopped
    }

    fn raise(&self) {
        *self.inner.0.lock() = true;
        self.inner.1.notify_all();
    }
}

/// What [`Threads::shutdown_join`] did: full thread names (`mcphub-…`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Joined {
    /// Long-lived threads that ended and were joined (a panicked one included).
    pub joined: Vec<String>,
    /// Long-lived threads still running at the deadline, left detached.
    pub blocked: Vec<String>,
}

struct Owned {
    name: String,
    handle: JoinHandle<()>,
}

#[derive(Default)]
struct Inner {
    /// Running threads per [`Kind`]; notified when one ends.
    live: Mutex<[usize; Kind::ALL.len()]>,
    ended: Condvar,
    stop: Stop,
    owned: Mutex<Vec<Owned>>,
}

/// Counts one running thread of `kind`; dropped when its function returns
/// (or unwinds), or with the closure when the thread could not start.
struct Running {
    inner: Arc<Inner>,
    kind: Kind,
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut live = self.inner.live.lock();
        live[self.kind.index()] = live[self.kind.index()].saturating_sub(1);
        self.inner.ended.notify_all();
    }
}

/// The owner of a hub's background threads. Cheap to clone; clones share
/// the counts, the stop signal and the long-lived handles.
#[derive(Clone, Default)]
pub struct Threads {
    inner: Arc<Inner>,
}

/// The name prefix of every thread started here.
pub const PREFIX: &str = "mcphub-";

impl Threads {
    /// A fresh owner: no threads, stop not raised.
    pub fn new() -> Threads {
        Threads::default()
    }

    /// Starts `f` on a thread named `mcphub-<name>`, counted as `kind` while
    /// it runs; the caller joins the handle or drops it (detaching the thread).
    ///
    /// Errors: the OS refused a thread (`std::thread::Builder::spawn`).
    pub fn spawn<T, F>(&self, name: &str, kind: Kind, f: F) -> std::io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.inner.live.lock()[kind.index()] += 1;
        let running = Running { inner: self.inner.clone(), kind };
        std::thread::Builder::new().name(format!("{PREFIX}{name}")).spawn(move || {
            let _running = running;
            f()
        })
    }

    /// Starts the long-lived loop `f` on a thread named `mcphub-<name>`,
    /// counted as `kind`; `f` gets this owner's [`Stop`] and must end soon
    /// after it is raised. The owner keeps the handle and joins it in
    /// [`shutdown_join`](Self::shutdown_join); handles of loops that already
    /// ended are joined here.
    ///
    /// Errors: the OS refused a thread.
    pub fn spawn_owned<F>(&self, name: &str, kind: Kind, f: F) -> std::io::Result<()>
    where
        F: FnOnce(&Stop) + Send + 'static,
    {
        let stop = self.inner.stop.clone();
        let handle = self.spawn(name, kind, move || f(&stop))?;
        let mut owned = self.inner.owned.lock();
        let (ended, running): (Vec<Owned>, Vec<Owned>) = std::mem::take(&mut *owned).into_iter().partition(|o| o.handle.is_finished());
        *owned = running;
        owned.push(Owned { name: format!("{PREFIX}{name}"), handle });
        drop(owned);
        for o in ended {
            let _ = o.handle.join();
        }
        Ok(())
    }

    /// The stop signal the owned loops observe.
    pub fn stop_signal(&self) -> Stop {
        self.inner.stop.clone()
    }

    /// Running threads per kind, every kind listed (zeros included), in [`Kind::ALL`] order.
    pub fn live(&self) -> Vec<(Kind, usize)> {
        let live = *self.inner.live.lock();
        Kind::ALL.iter().map(|k| (*k, live[k.index()])).collect()
    }

    /// Raises the stop and joins the long-lived threads that end by
    /// `deadline`. Those still running then are left detached and named in
    /// one WARN line. Threads started with [`spawn`](Self::spawn) are not
    /// waited for (their callers own them). Callable more than once.
    pub fn shutdown_join(&self, deadline: Instant) -> Joined {
        self.inner.stop.raise();
        let mut pending = std::mem::take(&mut *self.inner.owned.lock());
        let mut report = Joined::default();
        loop {
            let (ended, running): (Vec<Owned>, Vec<Owned>) = pending.into_iter().partition(|o| o.handle.is_finished());
            for o in ended {
                if o.handle.join().is_err() {
                    log::warn!("threads: {} had panicked", o.name);
                }
                report.joined.push(o.name);
            }
            pending = running;
            let now = Instant::now();
            if pending.is_empty() || now >= deadline {
                break;
            }
            // A thread's count drops just before its handle reads finished:
            // wake on each end, and look again at least every 10 ms.
            let mut live = self.inner.live.lock();
            let _ = self.inner.ended.wait_for(&mut live, (deadline - now).min(Duration::from_millis(10)));
        }
        if !pending.is_empty() {
            report.blocked = pending.into_iter().map(|o| o.name).collect();
            log::warn!("threads: {} still running at the shutdown deadline, left detached: {}", report.blocked.len(), report.blocked.join(", "));
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn count(t: &Threads, kind: Kind) -> usize {
        t.live().into_iter().find(|(k, _)| *k == kind).map_or(0, |(_, n)| n)
    }

    #[test]
    fn threads_are_named_and_counted_while_they_run() {
        let t = Threads::new();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let h = t.spawn("probe-x", Kind::Poller, move || {
            go_rx.recv().expect("released");
            std::thread::current().name().map(str::to_string)
        });
        let h = h.expect("spawned");
        assert_eq!(count(&t, Kind::Poller), 1);
        assert_eq!(count(&t, Kind::Http), 0);
        assert_eq!(t.live().len(), Kind::ALL.len());
        go_tx.send(()).expect("thread waits");
        assert_eq!(h.join().expect("no panic").as_deref(), Some("mcphub-probe-x"));
        assert_eq!(count(&t, Kind::Poller), 0, "the count drops when the function returns");
    }

    #[test]
    fn a_panicking_thread_is_uncounted() {
        let t = Threads::new();
        let h = t.spawn("boom", Kind::Call, || panic!("on purpose")).expect("spawned");
        assert!(h.join().is_err());
        assert_eq!(count(&t, Kind::Call), 0);
    }

    #[test]
    fn owned_loops_stop_and_are_joined_by_the_deadline() {
        let t = Threads::new();
        for i in 0..3 {
            t.spawn_owned(&format!("loop-{i}"), Kind::Poller, |stop| while !stop.sleep(Duration::from_secs(60)) {}).expect("spawned");
        }
        assert_eq!(count(&t, Kind::Poller), 3);
        let started = Instant::now();
        let report = t.shutdown_join(started + Duration::from_secs(10));
        assert!(started.elapsed() < Duration::from_secs(5), "a stop wakes a sleeping loop at once");
        let mut joined = report.joined.clone();
        joined.sort();
        assert_eq!(joined, ["mcphub-loop-0", "mcphub-loop-1", "mcphub-loop-2"]);
        assert!(report.blocked.is_empty());
        assert_eq!(count(&t, Kind::Poller), 0);
        assert!(t.stop_signal().is_stopped());
    }

    #[test]
    fn a_thread_that_ignores_stop_is_named_not_waited_for() {
        let t = Threads::new();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        t.spawn_owned("stubborn", Kind::Listen, move |_stop| {
            let _ = release_rx.recv();
        })
        .expect("spawned");
        t.spawn_owned("polite", Kind::Poller, |stop| while !stop.sleep(Duration::from_secs(60)) {}).expect("spawned");
        // Generous for a loaded machine: "polite" must be joined within it.
        let report = t.shutdown_join(Instant::now() + Duration::from_secs(3));
        assert_eq!(report.blocked, ["mcphub-stubborn"]);
        assert_eq!(report.joined, ["mcphub-polite"]);
        assert_eq!(count(&t, Kind::Listen), 1, "still running, detached");
        release_tx.send(()).expect("stubborn waits");
    }

    #[test]
    fn ended_owned_loops_are_reaped_on_the_next_start() {
        let t = Threads::new();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        t.spawn_owned("once", Kind::Poller, move |_| done_tx.send(()).expect("test waits")).expect("spawned");
        done_rx.recv().expect("the loop ran");
        // Its count is gone once the function returned; the handle may need a moment to read finished.
        let deadline = Instant::now() + Duration::from_secs(5);
        while t.inner.owned.lock().iter().any(|o| !o.handle.is_finished()) {
            assert!(Instant::now() < deadline, "the ended loop never reads finished");
            std::thread::yield_now();
        }
        t.spawn_owned("twice", Kind::Poller, |stop| while !stop.sleep(Duration::from_secs(60)) {}).expect("spawned");
        let names: Vec<String> = t.inner.owned.lock().iter().map(|o| o.name.clone()).collect();
        assert_eq!(names, ["mcphub-twice"]);
        assert_eq!(t.shutdown_join(Instant::now() + Duration::from_secs(5)).joined, ["mcphub-twice"]);
    }

    #[test]
    fn stop_sleep_times_out_without_a_stop() {
        let stop = Stop::default();
        assert!(!stop.sleep(Duration::from_millis(1)));
        stop.raise();
        assert!(stop.sleep(Duration::from_secs(60)));
    }
}
