//! SSE writing: one write per event, chunked framing, a wall-clock write budget.
//! (Implementation owned by the HTTP-layer work; this file fixes the interface.)

/// The client of a stream is gone (write failed, budget exceeded, or ping failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the client of this event stream is gone")]
pub struct ClientGone;

/// One Server-Sent Event. `data` may contain newlines (split into `data:` lines).
#[derive(Debug, Clone, Default)]
pub struct SseEvent<'a> {
    /// `id:` field, for resumability.
    pub id: Option<&'a str>,
    /// `event:` field; `None` means the default `message`.
    pub event: Option<&'a str>,
    /// `retry:` field in ms.
    pub retry_ms: Option<u64>,
    /// The data.
    pub data: &'a str,
}

/// Writes events to one client. Shared with the pinger, which writes `: ping`
/// after `ping_interval` of silence so a gone client is noticed while the
/// producer is blocked elsewhere.
pub struct SseSink {
    _private: (),
}

impl SseSink {
    /// Writes one event in a single chunk; `Err(ClientGone)` once the client is gone.
    pub fn send(&mut self, _event: &SseEvent<'_>) -> Result<(), ClientGone> {
        Err(ClientGone)
    }
    /// Writes a comment line (`: text`).
    pub fn comment(&mut self, _text: &str) -> Result<(), ClientGone> {
        Err(ClientGone)
    }
    /// Whether a previous write (or the pinger) found the client gone.
    pub fn is_gone(&self) -> bool {
        true
    }
}
