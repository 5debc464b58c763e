//! The limit settings as data: `rateLimits` / `mcpServers.NAME.rateLimit`
//! ([`RateLimitConfig`], [`Rate`]), `heavyTools` ([`HeavyTools`]) and the
//! bounds of `maxConcurrency` / `maxQueue`. The machinery that enforces them is
//! `crate::limits` (above this module; docs/module-order.md), which re-exports
//! these names.

use super::{unknown_key, ConfigError};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// Default `maxQueue`: calls waiting for a slot of one server.
pub const DEFAULT_MAX_QUEUE: usize = 64;
/// Largest `maxConcurrency` / `maxQueue` accepted.
pub const MAX_LIMIT: usize = 100_000;

/// Largest `perSecond` / `perMinute` / `burst` accepted.
const MAX_COUNT: u64 = 1_000_000;

/// One limit: `count` requests per `period`, at most `burst` at once (GCRA:
/// one request every `period / count`, `burst - 1` of them early).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests per period (`perSecond` / `perMinute`), ≥ 1.
    pub count: u32,
    /// 1 s for `perSecond`, 60 s for `perMinute`.
    pub period: Duration,
    /// Requests allowed at once (`burst`, default `count`), ≥ 1.
    pub burst: u32,
}

impl Rate {
    /// The GCRA emission interval: `period / count` (≥ 1 µs).
    pub fn interval(&self) -> Duration {
        (self.period / self.count.max(1)).max(Duration::from_micros(1))
    }
}

/// The `rateLimits` section and the servers' `rateLimit` overrides.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RateLimitConfig {
    /// `rateLimits.global`: every POST to `/mcp`, all users together.
    pub global: Option<Rate>,
    /// `rateLimits.perUser`: every POST to `/mcp`, per user name.
    pub per_user: Option<Rate>,
    /// `rateLimits.perServer`: calls routed to one server, per server.
    pub per_server: Option<Rate>,
    /// `mcpServers.NAME.rateLimit`, replacing `per_server` for NAME.
    pub servers: BTreeMap<String, Rate>,
}

impl RateLimitConfig {
    /// Reads `rateLimits` (`None`: absent) with the servers' already parsed
    /// overrides. Errors name the key (`rateLimits.perUser.burst`, …).
    pub fn parse(raw: Option<&Value>, servers: BTreeMap<String, Rate>) -> Result<RateLimitConfig, ConfigError> {
        let mut out = RateLimitConfig { servers, ..RateLimitConfig::default() };
        let Some(raw) = raw else { return Ok(out) };
        let obj = raw.as_object().ok_or_else(|| invalid("rateLimits", "must be an object (global, perUser, perServer)"))?;
        for (k, v) in obj {
            let key = format!("rateLimits.{k}");
            let slot = match k.as_str() {
                "global" => &mut out.global,
                "perUser" => &mut out.per_user,
                "perServer" => &mut out.per_server,
                _ => return Err(unknown_key(&key, &["global", "perUser", "perServer"])),
            };
            *slot = Some(parse_rate(&key, v)?);
        }
        Ok(out)
    }

    /// Whether no limit at all is configured.
    pub fn is_empty(&self) -> bool {
        self.global.is_none() && self.per_user.is_none() && self.per_server.is_none() && self.servers.is_empty()
    }
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.into(), message: message.into() }
}

/// One rate object at `key`: `{"perSecond"|"perMinute": N, "burst": B}`.
///
/// Errors (naming `key` or `key.field`): not an object, an unknown field,
/// both or neither of perSecond/perMinute, a value outside 1..=1000000.
pub fn parse_rate(key: &str, v: &Value) -> Result<Rate, ConfigError> {
    let obj = v.as_object().ok_or_else(|| invalid(key, "must be an object like {\"perSecond\": 10, \"burst\": 20}"))?;
    if let Some(k) = obj.keys().find(|k| !["perSecond", "perMinute", "burst"].contains(&k.as_str())) {
        return Err(unknown_key(&format!("{key}.{k}"), &["perSecond", "perMinute", "burst"]));
    }
    let num = |name: &str| -> Result<Option<u32>, ConfigError> {
        match obj.get(name) {
            None => Ok(None),
            Some(n) => n
                .as_u64()
                .filter(|n| (1..=MAX_COUNT).contains(n))
                .map(|n| Some(n as u32))
                .ok_or_else(|| invalid(format!("{key}.{name}"), format!("must be a whole number in 1..={MAX_COUNT}"))),
        }
    };
    let (count, period) = match (num("perSecond")?, num("perMinute")?) {
        (Some(n), None) => (n, Duration::from_secs(1)),
        (None, Some(n)) => (n, Duration::from_secs(60)),
        (Some(_), Some(_)) => return Err(invalid(key, "give perSecond or perMinute, not both")),
        (None, None) => return Err(invalid(key, "needs perSecond or perMinute")),
    };
    Ok(Rate { count, period, burst: num("burst")?.unwrap_or(count) })
}

/// Whether `name` matches the glob `pattern`: `*` any run of characters
/// (also empty), `?` exactly one character, everything else literal.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Iterative matcher with one backtrack point (the last `*`): O(p·n) worst case.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(c) if *c == '?' || *c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// A server's heavy tool patterns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeavyTools(pub Vec<String>);

impl HeavyTools {
    /// Whether the server's tool `name` (its own name, not the exposed one) is heavy.
    pub fn matches(&self, name: &str) -> bool {
        self.0.iter().any(|p| glob_match(p, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(v: Value) -> String {
        RateLimitConfig::parse(Some(&v), BTreeMap::new()).unwrap_err().to_string()
    }

    #[test]
    fn rates_parse_with_default_bursts() {
        let c = RateLimitConfig::parse(
            Some(&json!({"global": {"perSecond": 100, "burst": 200}, "perUser": {"perMinute": 60}})),
            BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(c.global, Some(Rate { count: 100, period: Duration::from_secs(1), burst: 200 }));
        assert_eq!(c.per_user, Some(Rate { count: 60, period: Duration::from_secs(60), burst: 60 }));
        assert_eq!(c.per_server, None);
        assert_eq!(c.per_user.unwrap().interval(), Duration::from_secs(1));
        assert_eq!(c.global.unwrap().interval(), Duration::from_millis(10));
        assert!(RateLimitConfig::parse(None, BTreeMap::new()).unwrap().is_empty());
    }

    #[test]
    fn errors_name_the_key() {
        assert!(err(json!({"perHour": {}})).contains("rateLimits.perHour"));
        assert!(err(json!({"global": {"perSecond": 0}})).contains("rateLimits.global.perSecond"));
        assert!(err(json!({"perUser": {"perMinute": 5, "burst": -1}})).contains("rateLimits.perUser.burst"));
        assert!(err(json!({"perServer": {"burst": 3}})).contains("rateLimits.perServer"));
        assert!(err(json!({"global": {"perSecond": 1, "perMinute": 1}})).contains("not both"));
        assert!(err(json!({"global": {"perSecond": 1, "brust": 1}})).contains("rateLimits.global.brust"));
        assert!(err(json!({"global": 5})).contains("rateLimits.global"));
    }
}
