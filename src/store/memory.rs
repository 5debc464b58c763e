//! The embedded default store: one process, records in a map with TTLs.
//! Nothing survives a restart; a memory-only hub DELETEs its upstream
//! sessions at shutdown instead (docs/decisions.md D3, issue 4).

use super::{Health, ListedSession, LockToken, RecoveredHook, SessionRecord, SessionStore, StoreError};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};

type Key = (String, String);

/// Session records and creation locks in memory, expiring by TTL.
#[derive(Default)]
pub struct MemoryStore {
    sessions: Mutex<HashMap<Key, (SessionRecord, Instant)>>,
    locks: Mutex<HashMap<Key, (LockToken, Instant)>>,
}

fn key(server: &str, context_key: &str) -> Key {
    (server.to_string(), context_key.to_string())
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn live<R>(&self, k: &Key, f: impl FnOnce(Option<&mut (SessionRecord, Instant)>) -> R) -> R {
        let mut map = self.sessions.lock();
        if map.get(k).is_some_and(|(_, exp)| *exp <= Instant::now()) {
            map.remove(k);
        }
        f(map.get_mut(k))
    }
}

impl SessionStore for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn health(&self) -> Health {
        Health::Memory
    }

    fn get(&self, server: &str, context_key: &str) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self.live(&key(server, context_key), |e| e.map(|(r, _)| r.clone())))
    }

    fn put(&self, server: &str, context_key: &str, record: &SessionRecord, ttl: Duration) -> Result<(), StoreError> {
        self.sessions.lock().insert(key(server, context_key), (record.clone(), Instant::now() + ttl));
        Ok(())
    }

    fn touch(&self, server: &str, context_key: &str, ttl: Duration) -> Result<bool, StoreError> {
        Ok(self.live(&key(server, context_key), |e| match e {
            Some((_, exp)) => {
                *exp = Instant::now() + ttl;
                true
            }
            None => false,
        }))
    }

    fn delete_if(&self, server: &str, context_key: &str, session_id: &str) -> Result<bool, StoreError> {
        let k = key(server, context_key);
        let mut map = self.sessions.lock();
        if map.get(&k).is_some_and(|(r, _)| r.session_id == session_id) {
            map.remove(&k);
            return Ok(true);
        }
        Ok(false)
    }

    fn delete(&self, server: &str, context_key: &str) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self.sessions.lock().remove(&key(server, context_key)).filter(|(_, exp)| *exp > Instant::now()).map(|(r, _)| r))
    }

    fn list(&self) -> Result<Vec<ListedSession>, StoreError> {
        let now = Instant::now();
        let mut map = self.sessions.lock();
        map.retain(|_, (_, exp)| *exp > now);
        let mut out: Vec<ListedSession> = map
            .iter()
            .map(|((s, c), (r, exp))| ListedSession {
                server_name: s.clone(),
                context_key: c.clone(),
                session_id: r.session_id.clone(),
                ttl: Some(exp.saturating_duration_since(now).as_secs() as i64),
            })
            .collect();
        out.sort_by(|a, b| (&a.server_name, &a.context_key).cmp(&(&b.server_name, &b.context_key)));
        Ok(out)
    }

    fn try_lock(&self, server: &str, context_key: &str, ttl: Duration) -> Result<Option<LockToken>, StoreError> {
        let k = key(server, context_key);
        let now = Instant::now();
        let mut locks = self.locks.lock();
        if locks.get(&k).is_some_and(|(_, exp)| *exp > now) {
            return Ok(None);
        }
        let token = LockToken::random();
        locks.insert(k, (token.clone(), now + ttl));
        Ok(Some(token))
    }

    fn unlock(&self, server: &str, context_key: &str, token: &LockToken) -> Result<(), StoreError> {
        let k = key(server, context_key);
        let mut locks = self.locks.lock();
        if locks.get(&k).is_some_and(|(t, _)| t == token) {
            locks.remove(&k);
        }
        Ok(())
    }

    fn on_recovered(&self, _hook: RecoveredHook) {}
}

#[cfg(test)]
mod tests {
    use super::super::SessionMeta;
    use super::*;
    use serde_json::json;

    fn rec(id: &str) -> SessionRecord {
        SessionRecord {
            session_id: id.into(),
            meta: SessionMeta { protocol_version: "2025-11-25".into(), created_ms: 1, init_result: json!({}) },
        }
    }

    #[test]
    fn records_expire_and_touch_extends_them() {
        let s = MemoryStore::new();
        s.put("a", "shared", &rec("s1"), Duration::from_millis(30)).unwrap();
        assert_eq!(s.get("a", "shared").unwrap().unwrap().session_id, "s1");
        assert!(s.touch("a", "shared", Duration::from_secs(60)).unwrap());
        std::thread::sleep(Duration::from_millis(40));
        assert!(s.get("a", "shared").unwrap().is_some(), "touched past the first TTL");
        let listed = s.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].ttl.unwrap() > 50);
        s.put("b", "shared", &rec("s2"), Duration::from_millis(1)).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(s.get("b", "shared").unwrap(), None);
        assert!(!s.touch("b", "shared", Duration::from_secs(1)).unwrap());
    }

    #[test]
    fn delete_if_compares_and_locks_exclude() {
        let s = MemoryStore::new();
        s.put("a", "shared", &rec("new"), Duration::from_secs(60)).unwrap();
        assert!(!s.delete_if("a", "shared", "old").unwrap(), "a stale id does not delete the new session");
        assert!(s.delete_if("a", "shared", "new").unwrap());
        assert_eq!(s.get("a", "shared").unwrap(), None);
        let t = s.try_lock("a", "shared", Duration::from_secs(5)).unwrap().unwrap();
        assert_eq!(s.try_lock("a", "shared", Duration::from_secs(5)).unwrap(), None);
        s.unlock("a", "shared", &LockToken("someone-else".into())).unwrap();
        assert_eq!(s.try_lock("a", "shared", Duration::from_secs(5)).unwrap(), None);
        s.unlock("a", "shared", &t).unwrap();
        assert!(s.try_lock("a", "shared", Duration::from_secs(5)).unwrap().is_some());
    }
}
