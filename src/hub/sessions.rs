//! Legacy client sessions minted by the hub (`Mcp-Session-Id`, 2025-11-25
//! transports §Session Management). In memory in this version; ids are 128
//! random bits from the OS. Idle sessions expire (most clients never DELETE).

use parking_lot::Mutex;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One legacy client session.
#[derive(Debug)]
pub struct ClientSession {
    /// The id the hub minted.
    pub id: String,
    /// The version negotiated at `initialize`.
    pub protocol_version: String,
    /// The client's `clientInfo` from `initialize`.
    pub client_info: Value,
    /// The client's capabilities from `initialize`.
    pub capabilities: Value,
    /// The user who created it (`None`: anonymous); only they may use it.
    pub user: Option<String>,
    /// The level set with `logging/setLevel` (None: everything is relayed).
    pub log_level: Mutex<Option<String>>,
    last_seen: Mutex<Instant>,
}

/// All live client sessions.
pub struct ClientSessions {
    map: Mutex<HashMap<String, Arc<ClientSession>>>,
    /// Told the ids of sessions that ended (deleted or expired), outside the locks.
    on_end: std::sync::OnceLock<EndHook>,
    idle: Duration,
    max: usize,
    last_sweep: Mutex<Instant>,
    /// How long each sweep for idle sessions took (`mcphub_client_session_sweep_seconds`).
    sweeps: prometheus::Histogram,
}

/// Receives the ids of client sessions that ended.
pub type EndHook = Box<dyn Fn(&[String]) + Send + Sync>;

/// No room for another session: `max` live sessions, none idle long enough to expire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many client sessions ({0}); retry later")]
pub struct SessionsFull(pub usize);

/// A fresh random session id: 32 lowercase hex characters (128 bits).
pub fn new_session_id() -> String {
    crate::random::hex::<16>()
}

impl ClientSessions {
    /// Sessions idle longer than `idle` expire; at most `max` live at once.
    pub fn new(idle: Duration, max: usize) -> ClientSessions {
        ClientSessions {
            map: Mutex::new(HashMap::new()),
            on_end: std::sync::OnceLock::new(),
            idle,
            max,
            last_sweep: Mutex::new(Instant::now()),
            sweeps: crate::metrics::client_session_sweep_histogram(),
        }
    }

    /// The durations of the sweeps for idle sessions (`mcphub_client_session_sweep_seconds`).
    pub fn sweeps(&self) -> &prometheus::Histogram {
        &self.sweeps
    }

    /// Sets who is told when sessions end (once; later calls are ignored).
    pub fn set_on_end(&self, hook: EndHook) {
        let _ = self.on_end.set(hook);
    }

    fn ended(&self, ids: &[String]) {
        if let (Some(hook), false) = (self.on_end.get(), ids.is_empty()) {
            hook(ids);
        }
    }

    /// Creates a session after `initialize`. When `max` sessions are live,
    /// expired ones are dropped first (at most once a second, so a flood of
    /// `initialize` does not sweep the whole table each time); if none is,
    /// `SessionsFull`. The check and the insert happen under one lock.
    pub fn create(&self, protocol_version: &str, client_info: Value, capabilities: Value, user: Option<String>) -> Result<Arc<ClientSession>, SessionsFull> {
        let mut map = self.map.lock();
        let mut expired = Vec::new();
        {
            let mut last = self.last_sweep.lock();
            let since = last.elapsed();
            let due = since >= Duration::from_secs(60) || (map.len() >= self.max && since >= Duration::from_secs(1));
            if due {
                let timer = self.sweeps.start_timer();
                let idle = self.idle;
                map.retain(|id, s| {
                    let keep = s.last_seen.lock().elapsed() <= idle;
                    if !keep {
                        expired.push(id.clone());
                    }
                    keep
                });
                timer.observe_duration();
                *last = Instant::now();
            }
        }
        if !expired.is_empty() {
            drop(map);
            self.ended(&expired);
            map = self.map.lock();
        }
        if map.len() >= self.max {
            return Err(SessionsFull(self.max));
        }
        let s = Arc::new(ClientSession {
            id: new_session_id(),
            protocol_version: protocol_version.to_string(),
            client_info,
            capabilities,
            user,
            log_level: Mutex::new(None),
            last_seen: Mutex::new(Instant::now()),
        });
        map.insert(s.id.clone(), s.clone());
        Ok(s)
    }

    /// The live session with this id, marking it used; `None` when unknown or expired.
    pub fn get(&self, id: &str) -> Option<Arc<ClientSession>> {
        let s = self.map.lock().get(id).cloned()?;
        let mut seen = s.last_seen.lock();
        if seen.elapsed() > self.idle {
            drop(seen);
            if self.map.lock().remove(id).is_some() {
                self.ended(&[id.to_string()]);
            }
            return None;
        }
        *seen = Instant::now();
        drop(seen);
        Some(s)
    }

    /// Ends a session; false when it was unknown.
    pub fn remove(&self, id: &str) -> bool {
        let removed = self.map.lock().remove(id).is_some();
        if removed {
            self.ended(&[id.to_string()]);
        }
        removed
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.map.lock().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_are_random_hex_and_sessions_expire_when_idle() {
        let a = new_session_id();
        assert_eq!(a.len(), 32);
        assert_ne!(a, new_session_id());
        let sessions = ClientSessions::new(Duration::from_millis(30), 10);
        let s = sessions.create("2025-06-18", json!({}), json!({}), None).unwrap();
        assert!(sessions.get(&s.id).is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert!(sessions.get(&s.id).is_none());
        assert!(sessions.is_empty());
    }

    #[test]
    fn removed_sessions_are_gone() {
        let sessions = ClientSessions::new(Duration::from_secs(60), 10);
        let s = sessions.create("2025-06-18", json!({}), json!({}), None).unwrap();
        assert!(sessions.remove(&s.id));
        assert!(!sessions.remove(&s.id));
        assert!(sessions.get(&s.id).is_none());
    }

    #[test]
    fn a_full_table_expires_idle_sessions_first_then_refuses() {
        let sessions = ClientSessions::new(Duration::from_millis(40), 2);
        sessions.create("2025-06-18", json!({}), json!({}), None).unwrap();
        sessions.create("2025-06-18", json!({}), json!({}), None).unwrap();
        assert_eq!(sessions.create("2025-06-18", json!({}), json!({}), None).unwrap_err(), SessionsFull(2));
        // Forced sweeps run at most once a second.
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(sessions.sweeps().get_sample_count(), 0, "no sweep while the table had room");
        assert!(sessions.create("2025-06-18", json!({}), json!({}), None).is_ok(), "expired sessions make room");
        assert_eq!(sessions.len(), 1);
        assert_eq!(sessions.sweeps().get_sample_count(), 1, "the forced sweep is observed once");
    }
}
