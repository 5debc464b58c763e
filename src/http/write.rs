//! Bounded blocking writes, shared by the workers ([`super::server`]: the
//! rest of a response their one non-blocking write could not send), the
//! rejecter and the stream threads ([`super::sse`]); the bottom of `http`
//! (docs/module-order.md).

use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Longest single blocking write slice (`SO_SNDTIMEO`); the budget is checked between slices.
const WRITE_SLICE: Duration = Duration::from_secs(1);

/// Writes all of `buf` to a blocking socket within `budget` (wall clock).
/// `SO_SNDTIMEO` is set to at most one second per slice and the budget is
/// checked between slices, since a send timeout alone restarts with every
/// byte a zero-window probe lets through.
pub(crate) fn write_all_budget(
    sock: &mut TcpStream,
    buf: &[u8],
    budget: Duration,
) -> std::io::Result<()> {
    let deadline = Instant::now() + budget;
    let mut slice_set: Option<Duration> = None;
    let mut off = 0;
    while off < buf.len() {
        let now = Instant::now();
        if now >= deadline {
            return Err(std::io::Error::new(
                ErrorKind::TimedOut,
                "write budget exceeded",
            ));
        }
        let slice = (deadline - now)
            .min(WRITE_SLICE)
            .max(Duration::from_millis(1));
        if slice_set.is_none_or(|s| slice < s) {
            sock.set_write_timeout(Some(slice))?;
            slice_set = Some(slice);
        }
        match sock.write(&buf[off..]) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => off += n,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
