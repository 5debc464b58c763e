//! A small key–value store with expiry, in Redis when the hub has one
//! (every instance sees the same entries) or in this process's memory:
//! strings, sets and hashes, each key with a time to live. Used where a
//! feature needs a few records with lifetimes and nothing of Redis beyond
//! them (the OAuth records of `crate::users::oauth`, issue 18).
//!
//! Keys are given whole (`mcp:oauth:…`); values are strings (JSON where a
//! record). In memory, the entries are bounded ([`MEMORY_CAP`]): beyond,
//! expired ones are purged, then the soonest to expire dropped.
//!
//! Errors: [`KvError::Unavailable`] when Redis cannot be reached (or its
//! breaker is open); never a value in a message.

use crate::store::now_ms;
use crate::store::redis::RedisStore;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// Most keys kept in memory.
pub const MEMORY_CAP: usize = 200_000;

/// Adds a member to a bounded list atomically (one instance's ZCARD and
/// ZADD cannot interleave with another's): KEYS[1] the sorted set; ARGV[1]
/// now (ms), ARGV[2] the member, ARGV[3] its expiry (ms), ARGV[4] the
/// bound. 1 when the member is in.
const BOUNDED_ADD_LUA: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
  return 1
end
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[4]) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
  return 1
end
return 0
";

/// Why the store could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// Redis is unreachable (or its breaker is open), or answered an error.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
}

impl From<crate::store::StoreError> for KvError {
    fn from(e: crate::store::StoreError) -> KvError {
        KvError::Unavailable(e.to_string())
    }
}

/// A value in memory, as Redis would type it.
#[derive(Debug, Clone)]
enum Value {
    Str(String),
    Set(HashSet<String>),
    Hash(HashMap<String, String>),
    /// member → expiry (ms since the Unix epoch), the score.
    Sorted(HashMap<String, u64>),
}

#[derive(Debug, Clone)]
struct Entry {
    value: Value,
    /// `None`: no time to live (a bounded list).
    expires_ms: Option<u64>,
}

impl Entry {
    fn live(&self, now: u64) -> bool {
        self.expires_ms.is_none_or(|e| e > now)
    }
}

/// The in-memory entries.
#[derive(Default)]
struct Memory {
    entries: HashMap<String, Entry>,
}

impl Memory {
    /// The live entry of `key` (an expired one is removed).
    fn live(&mut self, key: &str, now: u64) -> Option<&mut Entry> {
        if self.entries.get(key).is_some_and(|e| !e.live(now)) {
            self.entries.remove(key);
        }
        self.entries.get_mut(key)
    }

    /// Makes room for a new key within [`MEMORY_CAP`]: expired entries go,
    /// then the soonest to expire (a hundredth of the cap at once, so the
    /// scan is not paid on every insert).
    fn make_room(&mut self, key: &str, now: u64) {
        if self.entries.len() < MEMORY_CAP || self.entries.contains_key(key) {
            return;
        }
        self.entries.retain(|_, e| e.live(now));
        if self.entries.len() < MEMORY_CAP {
            return;
        }
        let target = MEMORY_CAP - MEMORY_CAP / 100;
        let mut by_expiry: Vec<(u64, String)> =
            self.entries.iter().map(|(k, e)| (e.expires_ms.unwrap_or(u64::MAX), k.clone())).collect();
        by_expiry.sort_unstable();
        for (_, k) in by_expiry.into_iter().take(self.entries.len() - target) {
            self.entries.remove(&k);
        }
    }

    /// The live entry of `key` holding a value like `empty`'s kind, created
    /// (or replacing another kind) when needed.
    fn entry_of(&mut self, key: &str, now: u64, empty: fn() -> Value) -> &mut Entry {
        let same_kind = self.live(key, now).is_some_and(|e| std::mem::discriminant(&e.value) == std::mem::discriminant(&empty()));
        if !same_kind {
            self.make_room(key, now);
            self.entries.insert(key.to_string(), Entry { value: empty(), expires_ms: None });
        }
        self.entries.get_mut(key).expect("inserted above")
    }
}

/// Milliseconds of `ttl`, at least 1 (Redis refuses `PX 0`).
fn ttl_ms(ttl: Duration) -> u64 {
    (ttl.as_millis() as u64).max(1)
}

/// The store: Redis or memory. Cheap to clone.
#[derive(Clone)]
pub struct Kv {
    redis: Option<RedisStore>,
    memory: Arc<Mutex<Memory>>,
    bounded_add: Arc<redis::Script>,
}

impl Kv {
    /// Entries in `redis` when given, else in memory.
    pub fn new(redis: Option<RedisStore>) -> Kv {
        Kv { redis, memory: Default::default(), bounded_add: Arc::new(redis::Script::new(BOUNDED_ADD_LUA)) }
    }

    /// `redis` or `memory`.
    pub fn kind(&self) -> &'static str {
        if self.redis.is_some() {
            "redis"
        } else {
            "memory"
        }
    }

    /// `SET key value PX ttl`.
    pub fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), KvError> {
        let ms = ttl_ms(ttl);
        if let Some(r) = &self.redis {
            return Ok(r.run(|c| redis::cmd("SET").arg(key).arg(value).arg("PX").arg(ms).query::<()>(c))?);
        }
        let now = now_ms();
        let mut m = self.memory.lock();
        m.make_room(key, now);
        m.entries.insert(key.to_string(), Entry { value: Value::Str(value.to_string()), expires_ms: Some(now + ms) });
        Ok(())
    }

    /// `SET key value NX PX ttl`: whether it was set (false: the key exists).
    pub fn set_nx(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, KvError> {
        let ms = ttl_ms(ttl);
        if let Some(r) = &self.redis {
            let set: Option<String> = r.run(|c| redis::cmd("SET").arg(key).arg(value).arg("NX").arg("PX").arg(ms).query(c))?;
            return Ok(set.is_some());
        }
        let now = now_ms();
        let mut m = self.memory.lock();
        if m.live(key, now).is_some() {
            return Ok(false);
        }
        m.make_room(key, now);
        m.entries.insert(key.to_string(), Entry { value: Value::Str(value.to_string()), expires_ms: Some(now + ms) });
        Ok(true)
    }

    /// `GET key`.
    pub fn get(&self, key: &str) -> Result<Option<String>, KvError> {
        if let Some(r) = &self.redis {
            return Ok(r.run(|c| redis::cmd("GET").arg(key).query(c))?);
        }
        let mut m = self.memory.lock();
        Ok(match m.live(key, now_ms()) {
            Some(Entry { value: Value::Str(s), .. }) => Some(s.clone()),
            _ => None,
        })
    }

    /// `GETDEL key`: read and delete at once (one caller wins).
    pub fn take(&self, key: &str) -> Result<Option<String>, KvError> {
        if let Some(r) = &self.redis {
            return Ok(r.run(|c| redis::cmd("GETDEL").arg(key).query(c))?);
        }
        let mut m = self.memory.lock();
        if !matches!(m.live(key, now_ms()), Some(Entry { value: Value::Str(_), .. })) {
            return Ok(None);
        }
        Ok(match m.entries.remove(key) {
            Some(Entry { value: Value::Str(s), .. }) => Some(s),
            _ => None,
        })
    }

    /// `DEL keys…`.
    pub fn del(&self, keys: &[String]) -> Result<(), KvError> {
        if keys.is_empty() {
            return Ok(());
        }
        if let Some(r) = &self.redis {
            return Ok(r.run(|c| redis::cmd("DEL").arg(keys).query::<()>(c))?);
        }
        let mut m = self.memory.lock();
        for k in keys {
            m.entries.remove(k);
        }
        Ok(())
    }

    /// `SADD key member` then `PEXPIRE key ttl` (the set lives `ttl` after its last addition).
    pub fn set_add(&self, key: &str, member: &str, ttl: Duration) -> Result<(), KvError> {
        let ms = ttl_ms(ttl);
        if let Some(r) = &self.redis {
            return Ok(r.run(|c| {
                redis::pipe().atomic().cmd("SADD").arg(key).arg(member).ignore().cmd("PEXPIRE").arg(key).arg(ms).ignore().query::<()>(c)
            })?);
        }
        let now = now_ms();
        let mut m = self.memory.lock();
        let e = m.entry_of(key, now, || Value::Set(HashSet::new()));
        if let Value::Set(s) = &mut e.value {
            s.insert(member.to_string());
        }
        e.expires_ms = Some(now + ms);
        Ok(())
    }

    /// `SREM key member`.
    pub fn set_remove(&self, key: &str, member: &str) -> Result<(), KvError> {
        if let Some(r) = &self.redis {
            return Ok(r.run(|c| redis::cmd("SREM").arg(key).arg(member).query::<()>(c))?);
        }
        let mut m = self.memory.lock();
        let empty = match m.live(key, now_ms()) {
            Some(Entry { value: Value::Set(s), .. }) => {
                s.remove(member);
                s.is_empty()
            }
            _ => false,
        };
        if empty {
            m.entries.remove(key);
        }
        Ok(())
    }

    /// `SMEMBERS key`.
    pub fn set_members(&self, key: &str) -> Result<Vec<String>, KvError> {
        if let Some(r) = &self.redis {
            return Ok(r.run(|c| redis::cmd("SMEMBERS").arg(key).query(c))?);
        }
        let mut m = self.memory.lock();
        Ok(match m.live(key, now_ms()) {
            Some(Entry { value: Value::Set(s), .. }) => s.iter().cloned().collect(),
            _ => Vec::new(),
        })
    }

    /// `HSET key field value` then `PEXPIRE key ttl`.
    pub fn hash_set(&self, key: &str, field: &str, value: &str, ttl: Duration) -> Result<(), KvError> {
        let ms = ttl_ms(ttl);
        if let Some(r) = &self.redis {
            return Ok(r.run(|c| {
                redis::pipe()
                    .atomic()
                    .cmd("HSET")
                    .arg(key)
                    .arg(field)
                    .arg(value)
                    .ignore()
                    .cmd("PEXPIRE")
                    .arg(key)
                    .arg(ms)
                    .ignore()
                    .query::<()>(c)
            })?);
        }
        let now = now_ms();
        let mut m = self.memory.lock();
        let e = m.entry_of(key, now, || Value::Hash(HashMap::new()));
        if let Value::Hash(h) = &mut e.value {
            h.insert(field.to_string(), value.to_string());
        }
        e.expires_ms = Some(now + ms);
        Ok(())
    }

    /// `HGET key field`.
    pub fn hash_get(&self, key: &str, field: &str) -> Result<Option<String>, KvError> {
        if let Some(r) = &self.redis {
            return Ok(r.run(|c| redis::cmd("HGET").arg(key).arg(field).query(c))?);
        }
        let mut m = self.memory.lock();
        Ok(match m.live(key, now_ms()) {
            Some(Entry { value: Value::Hash(h), .. }) => h.get(field).cloned(),
            _ => None,
        })
    }

    /// `HGETALL key` as `(field, value)` pairs.
    pub fn hash_all(&self, key: &str) -> Result<Vec<(String, String)>, KvError> {
        if let Some(r) = &self.redis {
            let all: HashMap<String, String> = r.run(|c| redis::cmd("HGETALL").arg(key).query(c))?;
            return Ok(all.into_iter().collect());
        }
        let mut m = self.memory.lock();
        Ok(match m.live(key, now_ms()) {
            Some(Entry { value: Value::Hash(h), .. }) => h.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            _ => Vec::new(),
        })
    }

    /// `HDEL key field`.
    pub fn hash_del(&self, key: &str, field: &str) -> Result<(), KvError> {
        if let Some(r) = &self.redis {
            return Ok(r.run(|c| redis::cmd("HDEL").arg(key).arg(field).query::<()>(c))?);
        }
        let mut m = self.memory.lock();
        let empty = match m.live(key, now_ms()) {
            Some(Entry { value: Value::Hash(h), .. }) => {
                h.remove(field);
                h.is_empty()
            }
            _ => false,
        };
        if empty {
            m.entries.remove(key);
        }
        Ok(())
    }

    /// A bounded membership list (a sorted set scored by expiry, ms since the
    /// Unix epoch): drops members whose expiry passed, then adds `member`
    /// expiring at `expires_ms` unless `max` live members already exist
    /// (a member already present is updated). Returns whether `member` is in.
    /// In Redis one script (`ZREMRANGEBYSCORE -inf now`, `ZSCORE`, `ZCARD`,
    /// `ZADD`), so two instances cannot both take the last place.
    pub fn bounded_add(&self, key: &str, member: &str, expires_ms: u64, max: usize) -> Result<bool, KvError> {
        let now = now_ms();
        if let Some(r) = &self.redis {
            let added: i64 = r.run(|c| self.bounded_add.key(key).arg(now).arg(member).arg(expires_ms).arg(max).invoke(c))?;
            return Ok(added == 1);
        }
        let mut m = self.memory.lock();
        let e = m.entry_of(key, now, || Value::Sorted(HashMap::new()));
        let Value::Sorted(z) = &mut e.value else { return Ok(false) };
        z.retain(|_, exp| *exp > now);
        if z.contains_key(member) || z.len() < max {
            z.insert(member.to_string(), expires_ms);
            return Ok(true);
        }
        Ok(false)
    }

    /// Removes `member` from a [`Kv::bounded_add`] list.
    pub fn bounded_remove(&self, key: &str, member: &str) -> Result<(), KvError> {
        if let Some(r) = &self.redis {
            return Ok(r.run(|c| redis::cmd("ZREM").arg(key).arg(member).query::<()>(c))?);
        }
        let mut m = self.memory.lock();
        if let Some(Entry { value: Value::Sorted(z), .. }) = m.live(key, now_ms()) {
            z.remove(member);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    /// Waits (≤ 5 s) until `done`, polling.
    fn wait(what: &str, done: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn strings_are_set_read_taken_once_and_deleted() {
        let kv = Kv::new(None);
        assert_eq!(kv.kind(), "memory");
        kv.set("a", "1", MIN).unwrap();
        assert_eq!(kv.get("a").unwrap().as_deref(), Some("1"));
        assert!(!kv.set_nx("a", "2", MIN).unwrap());
        assert!(kv.set_nx("b", "2", MIN).unwrap());
        assert_eq!(kv.take("a").unwrap().as_deref(), Some("1"));
        assert_eq!(kv.take("a").unwrap(), None);
        kv.del(&["b".to_string(), "none".to_string()]).unwrap();
        assert_eq!(kv.get("b").unwrap(), None);
        kv.del(&[]).unwrap();
    }

    #[test]
    fn entries_expire() {
        let kv = Kv::new(None);
        kv.set("s", "v", Duration::from_millis(30)).unwrap();
        kv.set_add("set", "m", Duration::from_millis(30)).unwrap();
        kv.hash_set("h", "f", "v", Duration::from_millis(30)).unwrap();
        assert_eq!(kv.get("s").unwrap().as_deref(), Some("v"));
        wait("the entries to expire", || {
            kv.get("s").unwrap().is_none() && kv.set_members("set").unwrap().is_empty() && kv.hash_get("h", "f").unwrap().is_none()
        });
        assert!(kv.set_nx("s", "again", MIN).unwrap(), "an expired key is free for NX");
    }

    #[test]
    fn sets_and_hashes() {
        let kv = Kv::new(None);
        kv.set_add("s", "a", MIN).unwrap();
        kv.set_add("s", "b", MIN).unwrap();
        kv.set_add("s", "a", MIN).unwrap();
        let mut members = kv.set_members("s").unwrap();
        members.sort();
        assert_eq!(members, ["a", "b"]);
        kv.set_remove("s", "a").unwrap();
        assert_eq!(kv.set_members("s").unwrap(), ["b"]);
        kv.hash_set("h", "f", "1", MIN).unwrap();
        kv.hash_set("h", "g", "2", MIN).unwrap();
        kv.hash_set("h", "f", "3", MIN).unwrap();
        assert_eq!(kv.hash_get("h", "f").unwrap().as_deref(), Some("3"));
        let mut all = kv.hash_all("h").unwrap();
        all.sort();
        assert_eq!(all, [("f".to_string(), "3".to_string()), ("g".to_string(), "2".to_string())]);
        kv.hash_del("h", "f").unwrap();
        assert_eq!(kv.hash_get("h", "f").unwrap(), None);
        assert_eq!(kv.hash_all("nope").unwrap(), []);
    }

    #[test]
    fn a_bounded_list_keeps_at_most_max_live_members() {
        let kv = Kv::new(None);
        let now = now_ms();
        assert!(kv.bounded_add("l", "a", now + 60_000, 2).unwrap());
        assert!(kv.bounded_add("l", "b", now + 60_000, 2).unwrap());
        assert!(!kv.bounded_add("l", "c", now + 60_000, 2).unwrap(), "full");
        assert!(kv.bounded_add("l", "a", now + 120_000, 2).unwrap(), "a member already in is updated");
        kv.bounded_remove("l", "b").unwrap();
        assert!(kv.bounded_add("l", "c", now + 30, 2).unwrap());
        assert!(!kv.bounded_add("l", "d", now + 60_000, 2).unwrap());
        wait("c to expire from the list", || kv.bounded_add("l", "d", now + 60_000, 2).unwrap());
    }

    #[test]
    fn memory_is_bounded() {
        let kv = Kv::new(None);
        for i in 0..MEMORY_CAP + 10 {
            kv.set(&format!("k{i}"), "v", Duration::from_secs(60 + i as u64)).unwrap();
        }
        let len = kv.memory.lock().entries.len();
        assert!(len <= MEMORY_CAP, "{len}");
        assert_eq!(kv.get(&format!("k{}", MEMORY_CAP + 9)).unwrap().as_deref(), Some("v"), "the newest stays");
        assert_eq!(kv.get("k0").unwrap(), None, "the soonest to expire went");
    }
}
