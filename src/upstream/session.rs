//! Legacy upstream sessions: one per (server, context key), created once and
//! shared by every client of that context (DESIGN.md §3).
//!
//! Creation is single-flight: each context key has its own slot lock, held
//! only while that context initializes; everyone else waits for that one
//! result. The hot path takes the slot lock just to clone an `Arc`.
//! (In-memory in this version; the Redis store sits behind the same pool later.)

use super::transport::Transport;
use super::UpstreamError;
use crate::protocol::{headers, jsonrpc, LATEST_LEGACY};
use crate::singleflight::SlotMap;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One live legacy session on an upstream server.
#[derive(Debug)]
pub struct LegacySession {
    /// The `Mcp-Session-Id` the server minted; `None` when it minted none
    /// (a stateless legacy server).
    pub id: Option<String>,
    /// The protocol version the server answered `initialize` with.
    pub protocol_version: String,
    /// The server's `initialize` result (capabilities, serverInfo, instructions).
    pub init_result: Value,
    /// When it was created.
    pub created: Instant,
}

impl LegacySession {
    /// Headers for a request on this session: `Mcp-Session-Id` (when minted)
    /// and `MCP-Protocol-Version`.
    pub fn headers(&self) -> Vec<(String, String)> {
        let mut h = vec![(headers::PROTOCOL_VERSION.to_string(), self.protocol_version.clone())];
        if let Some(id) = &self.id {
            h.push(("Mcp-Session-Id".to_string(), id.clone()));
        }
        h
    }
}

/// Sessions of one server by context key (single-flight creation).
#[derive(Default)]
pub struct SessionPool {
    slots: SlotMap<String, Arc<LegacySession>>,
}

impl SessionPool {
    /// The session of `key`, or the one `create` makes; concurrent callers
    /// for the same key wait for a single `create`.
    pub fn get_or_create(
        &self,
        key: &str,
        create: impl FnOnce() -> Result<LegacySession, UpstreamError>,
    ) -> Result<Arc<LegacySession>, UpstreamError> {
        self.slots.get_or_try_fill(&key.to_string(), |_| true, || create().map(Arc::new))
    }

    /// Drops `stale` from `key` unless another caller already replaced it
    /// (compare-and-delete, so a fresh session is never thrown away).
    pub fn invalidate(&self, key: &str, stale: &Arc<LegacySession>) {
        self.slots.clear_if(&key.to_string(), |cur| Arc::ptr_eq(cur, stale));
    }

    /// `(context key, session id)` of every live session.
    pub fn list(&self) -> Vec<(String, Option<String>)> {
        let mut out: Vec<_> = self.slots.snapshot().into_iter().map(|(k, s)| (k, s.id.clone())).collect();
        out.sort();
        out
    }

    /// Removes and returns every live session.
    pub fn drain(&self) -> Vec<Arc<LegacySession>> {
        self.slots.drain()
    }
}

/// Runs the legacy handshake: `initialize` (newest legacy version, declaring
/// the sampling/elicitation/roots capabilities the hub relays), then
/// `notifications/initialized` on the minted session.
///
/// Errors: transport errors and timeouts; an `initialize` answered with a
/// JSON-RPC error or without a result → `Protocol`.
pub fn initialize(
    transport: &Transport,
    server: &str,
    context_key: &str,
    id: Value,
    budget: Duration,
) -> Result<LegacySession, UpstreamError> {
    let params = json!({
        "protocolVersion": LATEST_LEGACY,
        // The hub relays these to the client whose call the request belongs to
        // (issue 3); a client without the capability gets them refused.
        "capabilities": {"sampling": {}, "elicitation": {}, "roots": {}},
        "clientInfo": super::hub_client_info(),
    });
    let started = Instant::now();
    let reply = transport.post(&jsonrpc::request(&id, "initialize", params), &[], budget, &mut |_| {})?;
    let protocol_error = |detail: String| UpstreamError::Protocol { server: server.to_string(), detail };
    let message = reply
        .message
        .ok_or_else(|| protocol_error(format!("initialize answered HTTP {}: {}", reply.status, reply.excerpt)))?;
    let result = match (message.get("result"), message.get("error")) {
        (Some(r), _) => r.clone(),
        (None, Some(e)) => return Err(protocol_error(format!("initialize failed: {e}"))),
        _ => return Err(protocol_error("initialize answered without a result".into())),
    };
    let version = result.get("protocolVersion").and_then(Value::as_str).unwrap_or(LATEST_LEGACY).to_string();
    let session = LegacySession { id: reply.session_id, protocol_version: version, init_result: result, created: Instant::now() };
    log::debug!(
        "🪪 upstream session confirmed from initialize (server={server}, context={context_key}, session={})",
        session.id.as_deref().unwrap_or("none")
    );
    let remaining = budget.saturating_sub(started.elapsed()).max(Duration::from_millis(100));
    let note = jsonrpc::notification("notifications/initialized", json!({}));
    if let Err(e) = transport.post(&note, &session.headers(), remaining, &mut |_| {}) {
        log::warn!("notifications/initialized to '{server}' failed: {e}");
    }
    log::debug!("💾 upstream session saved (server={server}, context={context_key})");
    Ok(session)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn session(id: &str) -> LegacySession {
        LegacySession { id: Some(id.into()), protocol_version: "2025-11-25".into(), init_result: json!({}), created: Instant::now() }
    }

    #[test]
    fn concurrent_first_calls_create_one_session() {
        let pool = Arc::new(SessionPool::default());
        let creations = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..16)
            .map(|_| {
                let (pool, creations) = (pool.clone(), creations.clone());
                std::thread::spawn(move || {
                    pool.get_or_create("shared", || {
                        creations.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        Ok(session("s1"))
                    })
                    .map(|s| s.id.clone())
                })
            })
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap().unwrap().as_deref(), Some("s1"));
        }
        assert_eq!(creations.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn invalidate_only_drops_the_stale_session() {
        let pool = SessionPool::default();
        let old = pool.get_or_create("k", || Ok(session("old"))).unwrap();
        pool.invalidate("k", &old);
        let new = pool.get_or_create("k", || Ok(session("new"))).unwrap();
        pool.invalidate("k", &old); // a late invalidation of the old one
        let again = pool.get_or_create("k", || Ok(session("third"))).unwrap();
        assert!(Arc::ptr_eq(&new, &again));
        assert_eq!(pool.list(), vec![("k".to_string(), Some("new".to_string()))]);
    }
}
