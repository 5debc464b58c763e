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

use crate::store::redis::RedisStore;
use std::time::Duration;

/// Most keys kept in memory.
pub const MEMORY_CAP: usize = 200_000;

/// Why the store could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// Redis is unreachable (or its breaker is open), or answered an error.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
}

/// The store: Redis or memory. Cheap to clone.
#[derive(Clone)]
pub struct Kv {
    redis: Option<RedisStore>,
}

impl Kv {
    /// Entries in `redis` when given, else in memory.
    pub fn new(redis: Option<RedisStore>) -> Kv {
        let _ = &redis;
        todo!("store::kv")
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
        let _ = (key, value, ttl);
        todo!()
    }

    /// `SET key value NX PX ttl`: whether it was set (false: the key exists).
    pub fn set_nx(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, KvError> {
        let _ = (key, value, ttl);
        todo!()
    }

    /// `GET key`.
    pub fn get(&self, key: &str) -> Result<Option<String>, KvError> {
        let _ = key;
        todo!()
    }

    /// `GETDEL key`: read and delete at once (one caller wins).
    pub fn take(&self, key: &str) -> Result<Option<String>, KvError> {
        let _ = key;
        todo!()
    }

    /// `DEL keys…`.
    pub fn del(&self, keys: &[String]) -> Result<(), KvError> {
        let _ = keys;
        todo!()
    }

    /// `SADD key member` then `PEXPIRE key ttl` (the set lives `ttl` after its last addition).
    pub fn set_add(&self, key: &str, member: &str, ttl: Duration) -> Result<(), KvError> {
        let _ = (key, member, ttl);
        todo!()
    }

    /// `SREM key member`.
    pub fn set_remove(&self, key: &str, member: &str) -> Result<(), KvError> {
        let _ = (key, member);
        todo!()
    }

    /// `SMEMBERS key`.
    pub fn set_members(&self, key: &str) -> Result<Vec<String>, KvError> {
        let _ = key;
        todo!()
    }

    /// `HSET key field value` then `PEXPIRE key ttl`.
    pub fn hash_set(&self, key: &str, field: &str, value: &str, ttl: Duration) -> Result<(), KvError> {
        let _ = (key, field, value, ttl);
        todo!()
    }

    /// `HGET key field`.
    pub fn hash_get(&self, key: &str, field: &str) -> Result<Option<String>, KvError> {
        let _ = (key, field);
        todo!()
    }

    /// `HGETALL key` as `(field, value)` pairs.
    pub fn hash_all(&self, key: &str) -> Result<Vec<(String, String)>, KvError> {
        let _ = key;
        todo!()
    }

    /// `HDEL key field`.
    pub fn hash_del(&self, key: &str, field: &str) -> Result<(), KvError> {
        let _ = (key, field);
        todo!()
    }

    /// A bounded membership list (a sorted set scored by expiry, ms since the
    /// Unix epoch): drops members whose expiry passed, then adds `member`
    /// expiring at `expires_ms` unless `max` live members already exist
    /// (a member already present is updated). Returns whether `member` is in.
    pub fn bounded_add(&self, key: &str, member: &str, expires_ms: u64, max: usize) -> Result<bool, KvError> {
        let _ = (key, member, expires_ms, max);
        todo!()
    }

    /// Removes `member` from a [`Kv::bounded_add`] list.
    pub fn bounded_remove(&self, key: &str, member: &str) -> Result<(), KvError> {
        let _ = (key, member);
        todo!()
    }
}
