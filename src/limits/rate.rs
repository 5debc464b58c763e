//! The three rate limits (docs/decisions.md D7): GCRA in memory (the `governor`
//! crate) and, with `redis` configured, a GCRA Lua script in Redis so
//! several hub instances share one limit.
//!
//! Redis: one `EVALSHA` per check on `mcp:ratelimit:{scope}:{key}`
//! (`global:all`, `user:{name}` / `user:anonymous`, `server:{name}`), whose
//! value is the theoretical arrival time (TAT, µs of Redis' own `TIME`, so
//! instance clocks do not matter) with a `PX` expiry at the TAT. The
//! connection is a [`RedisStore`] of its own (pool, connect/IO timeouts,
//! circuit breaker): when Redis errs or times out the check is made by the
//! local limiter instead (per instance, so N instances admit up to N times the
//! limit while Redis is down); the switch each way is logged once.
//!
//! A refused request consumes nothing in its own scope. Checks run user
//! first, then global, so a user over their limit does not use up the global
//! budget; a request the global limit refuses has used one of its user's.

use super::{Limited, Rate, RateLimitConfig, Scope};
use crate::store::redis::RedisStore;
use crate::store::StoreError;
use governor::clock::{Clock, MonotonicClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The user key of requests without a hub key (all of them share it).
pub const ANONYMOUS: &str = "anonymous";
/// Prefix of the Redis keys: `mcp:ratelimit:{scope}:{key}`.
pub const KEY_PREFIX: &str = "mcp:ratelimit:";

type Instant = <MonotonicClock as Clock>::Instant;
type Direct = RateLimiter<NotKeyed, InMemoryState, MonotonicClock, NoOpMiddleware<Instant>>;
type Keyed = RateLimiter<String, DashMapStateStore<String>, MonotonicClock, NoOpMiddleware<Instant>>;

/// GCRA on one key. KEYS[1] = the key; ARGV[1] = emission interval (µs),
/// ARGV[2] = burst. Time is Redis' `TIME` in µs. Returns `{1, 0}` when
/// admitted (TAT advanced by one interval, `PX` until the new TAT), else
/// `{0, µs until a request would be admitted}` (nothing written).
const GCRA_LUA: &str = r"
if redis.replicate_commands then pcall(redis.replicate_commands) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = interval * (tonumber(ARGV[2]) - 1)
local tat = tonumber(redis.call('GET', KEYS[1]) or now) or now
if tat < now then tat = now end
local allow_at = tat - tolerance
if now < allow_at then
  return {0, allow_at - now}
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.floor((new_tat - now) / 1000) + 1)
return {1, 0}
";

/// One scope's local limiter(s).
struct Local {
    rate: Rate,
    limiter: Limiter,
}

enum Limiter {
    Direct(Direct),
    Keyed(Keyed),
}

impl Local {
    fn new(rate: Rate, keyed: bool) -> Local {
        let quota = quota(rate);
        let limiter = if keyed {
            Limiter::Keyed(RateLimiter::dashmap_with_clock(quota, MonotonicClock))
        } else {
            Limiter::Direct(RateLimiter::direct_with_clock(quota, MonotonicClock))
        };
        Local { rate, limiter }
    }

    /// `Err(wait)` when over the limit.
    fn check(&self, key: &str) -> Result<(), Duration> {
        let result = match &self.limiter {
            Limiter::Direct(l) => l.check(),
            Limiter::Keyed(l) => l.check_key(&key.to_string()),
        };
        result.map_err(|not_until| not_until.wait_time_from(MonotonicClock.now()))
    }
}

fn quota(rate: Rate) -> Quota {
    let one = NonZeroU32::MIN;
    let burst = NonZeroU32::new(rate.burst).unwrap_or(one);
    Quota::with_period(rate.interval()).unwrap_or_else(|| Quota::per_second(one)).allow_burst(burst)
}

/// The shared limits, when `redis` is configured.
struct Shared {
    store: RedisStore,
    script: redis::Script,
    /// Whether the last Redis check failed (checks are local meanwhile).
    local: AtomicBool,
}

/// The hub's rate limits (global, per user, per server), built once from the
/// config. Cheap to check from any worker; every check is bounded by the
/// Redis timeouts (or is in memory).
pub struct RateLimits {
    global: Option<Local>,
    user: Option<Local>,
    /// `perServer` for servers without their own `rateLimit`.
    server: Option<Local>,
    /// Servers with their own `rateLimit`.
    servers: BTreeMap<String, Local>,
    shared: Option<Shared>,
    /// Requests refused, by scope (global, user, server), for `/metrics`.
    refused: [std::sync::atomic::AtomicU64; 3],
}

impl RateLimits {
    /// Limits from `cfg`; in Redis as well when `redis` (the hub's one
    /// connection) is given and some limit is configured.
    pub fn new(cfg: &RateLimitConfig, redis: Option<RedisStore>) -> RateLimits {
        let shared = match redis {
            Some(store) if !cfg.is_empty() => Some(Shared {
                store,
                script: redis::Script::new(GCRA_LUA),
                local: AtomicBool::new(false),
            }),
            _ => None,
        };
        RateLimits { shared, ..RateLimits::local(cfg) }
    }

    /// The limits of `cfg`, in memory only (per instance).
    pub fn local(cfg: &RateLimitConfig) -> RateLimits {
        RateLimits {
            global: cfg.global.map(|r| Local::new(r, false)),
            user: cfg.per_user.map(|r| Local::new(r, true)),
            server: cfg.per_server.map(|r| Local::new(r, true)),
            servers: cfg.servers.iter().map(|(name, r)| (name.clone(), Local::new(*r, false))).collect(),
            shared: None,
            refused: Default::default(),
        }
    }

    /// No limits at all.
    pub fn unlimited() -> RateLimits {
        RateLimits::local(&RateLimitConfig::default())
    }

    /// Whether limits are kept in Redis (shared by instances).
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// The edge check of one POST to `/mcp`: the user's limit (`user`, or
    /// the shared [`ANONYMOUS`] key), then the global one.
    ///
    /// Errors: [`Limited`] with scope `user` or `global` and the wait.
    pub fn check_request(&self, user: Option<&str>) -> Result<(), Limited> {
        if let Some(l) = &self.user {
            let key = user.unwrap_or(ANONYMOUS);
            self.admit(Scope::User, key, l).map_err(|wait| limited(Scope::User, None, wait))?;
        }
        if let Some(l) = &self.global {
            self.admit(Scope::Global, "all", l).map_err(|wait| limited(Scope::Global, None, wait))?;
        }
        Ok(())
    }

    /// The check of one call routed to `server`: its `rateLimit`, else `perServer`.
    ///
    /// Errors: [`Limited`] with scope `server`, naming it.
    pub fn check_server(&self, server: &str) -> Result<(), Limited> {
        let Some(l) = self.servers.get(server).or(self.server.as_ref()) else { return Ok(()) };
        self.admit(Scope::Server, server, l).map_err(|wait| limited(Scope::Server, Some(server), wait))
    }

    /// Both checks, as one: [`Self::check_request`] when `server` is `None`,
    /// else [`Self::check_server`] too (after it).
    pub fn check(&self, user: Option<&str>, server: Option<&str>) -> Result<(), Limited> {
        self.check_request(user)?;
        server.map_or(Ok(()), |s| self.check_server(s))
    }

    /// Requests refused so far (429), by scope: `[(scope, count)]` for
    /// global, user and server, in that order.
    pub fn refused(&self) -> [(Scope, u64); 3] {
        let n = |i: usize| self.refused[i].load(Ordering::Relaxed);
        [(Scope::Global, n(0)), (Scope::User, n(1)), (Scope::Server, n(2))]
    }

    /// Redis when configured and reachable, else the local limiter; counts a refusal.
    fn admit(&self, scope: Scope, key: &str, local: &Local) -> Result<(), Duration> {
        let verdict = self.decide(scope, key, local);
        if verdict.is_err() {
            let i = match scope {
                Scope::Global => 0,
                Scope::User => 1,
                Scope::Server => 2,
            };
            self.refused[i].fetch_add(1, Ordering::Relaxed);
        }
        verdict
    }

    fn decide(&self, scope: Scope, key: &str, local: &Local) -> Result<(), Duration> {
        if let Some(shared) = &self.shared {
            let redis_key = format!("{KEY_PREFIX}{}:{key}", scope.as_str());
            let interval = local.rate.interval().as_micros().min(i64::MAX as u128) as i64;
            let reply: Result<(i64, i64), StoreError> =
                shared.store.eval_script(&shared.script, &[&redis_key], &[interval, i64::from(local.rate.burst)]);
            match reply {
                Ok((admitted, wait_us)) => {
                    if shared.local.swap(false, Ordering::AcqRel) {
                        log::info!("rate limits: Redis answers again; limits are shared by the hub instances again");
                    }
                    return if admitted == 1 { Ok(()) } else { Err(Duration::from_micros(wait_us.max(0) as u64)) };
                }
                Err(e) => {
                    if !shared.local.swap(true, Ordering::AcqRel) {
                        let (StoreError::Unavailable(why) | StoreError::Other(why)) = &e;
                        log::warn!("rate limits: Redis failed ({why}); enforcing them per instance until it answers");
                    }
                }
            }
        }
        local.check(key)
    }
}

fn limited(scope: Scope, server: Option<&str>, retry_after: Duration) -> Limited {
    Limited { scope, server: server.map(str::to_string), retry_after }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn limits(section: serde_json::Value, servers: &[(&str, serde_json::Value)]) -> RateLimits {
        let overrides = servers
            .iter()
            .map(|(n, v)| (n.to_string(), super::super::parse_rate(&format!("mcpServers.{n}.rateLimit"), v).unwrap()))
            .collect();
        RateLimits::new(&RateLimitConfig::parse(Some(&section), overrides).unwrap(), None)
    }

    #[test]
    fn the_burst_plus_first_request_is_refused() {
        let l = limits(json!({"global": {"perSecond": 1, "burst": 3}}), &[]);
        for n in 0..3 {
            assert_eq!(l.check_request(None), Ok(()), "request {n} of the burst");
        }
        let refused = l.check_request(None).unwrap_err();
        assert_eq!((refused.scope, refused.server.as_deref()), (Scope::Global, None));
        assert!(refused.retry_after <= Duration::from_secs(1), "{:?}", refused.retry_after);
        assert_eq!(refused.retry_after_secs(), 1);
    }

    #[test]
    fn users_have_their_own_limits_and_anonymous_ones_share_one() {
        let l = limits(json!({"perUser": {"perMinute": 1, "burst": 2}}), &[]);
        assert_eq!(l.check_request(Some("alice")), Ok(()));
        assert_eq!(l.check_request(Some("alice")), Ok(()));
        let refused = l.check_request(Some("alice")).unwrap_err();
        assert_eq!(refused.scope, Scope::User);
        assert!(refused.retry_after > Duration::from_secs(50), "one per minute: {:?}", refused.retry_after);
        assert_eq!(l.check_request(Some("bob")), Ok(()), "bob is not alice");
        assert_eq!(l.check_request(None), Ok(()));
        assert_eq!(l.check_request(None), Ok(()));
        assert_eq!(l.check_request(None).unwrap_err().scope, Scope::User, "anonymous requests share one key");
    }

    #[test]
    fn servers_use_their_override_or_the_default() {
        let l = limits(json!({"perServer": {"perSecond": 1, "burst": 2}}), &[("jira", json!({"perMinute": 1, "burst": 1}))]);
        assert_eq!(l.check_server("jira"), Ok(()));
        let refused = l.check_server("jira").unwrap_err();
        assert_eq!((refused.scope, refused.server.as_deref()), (Scope::Server, Some("jira")));
        assert_eq!(l.check_server("gh"), Ok(()));
        assert_eq!(l.check_server("gh"), Ok(()));
        assert_eq!(l.check_server("gh").unwrap_err().server.as_deref(), Some("gh"));
        assert_eq!(l.check_server("other"), Ok(()), "each server has its own key");
        assert_eq!(l.check_request(Some("alice")), Ok(()), "no edge limits configured");
    }

    #[test]
    fn no_section_means_unlimited() {
        let l = RateLimits::unlimited();
        for _ in 0..1000 {
            assert_eq!(l.check(Some("alice"), Some("jira")), Ok(()));
        }
        let only_server = limits(json!({}), &[("jira", json!({"perSecond": 1, "burst": 1}))]);
        assert_eq!(only_server.check_server("gh"), Ok(()));
        assert_eq!(only_server.check_server("gh"), Ok(()), "only jira is limited");
        assert_eq!(only_server.check(None, Some("jira")), Ok(()));
        assert_eq!(only_server.check(None, Some("jira")).unwrap_err().scope, Scope::Server);
    }
}
