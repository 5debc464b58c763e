//! Time, load and isolation (issue 6, docs/decisions.md D7).
//!
//! This part: rate limits at three levels ([`rate::RateLimits`]) — global
//! (requests/second), per user (requests/minute, keyed by user name;
//! anonymous requests share the key `anonymous`) and per server
//! (requests/second, keyed by server name), each with a burst. Over a limit
//! the client gets HTTP 429 with `Retry-After` and the note's JSON-RPC error
//! (`crate::hub::refusal::Refusal::RateLimited`, docs/errors.md).
//!
//! Config (`rateLimits`, every scope optional; absent = unlimited):
//! `{"global": {"perSecond": N, "burst": B}, "perUser": {"perMinute": N,
//! "burst": B}, "perServer": {"perSecond": N, "burst": B}}`, and per server
//! `mcpServers.NAME.rateLimit: {"perSecond": N, "burst": B}`, which replaces
//! `perServer` for that server. Each rate takes exactly one of `perSecond`
//! / `perMinute` (1..=1000000); `burst` (1..=1000000) defaults to that count.
//!
//! Per server also: a bulkhead (`maxConcurrency`, `maxQueue`), upstream
//! back-pressure (429/503 `Retry-After`) and a circuit breaker
//! ([`bulkhead`], [`breaker`]).

pub mod breaker;
pub mod bulkhead;
pub mod heavy;
pub mod rate;

pub use rate::RateLimits;

// The settings are data of the config (below this module, docs/module-order.md);
// re-exported here where the limiters read them.
pub use crate::config::limits::{parse_rate, Rate, RateLimitConfig};

use std::time::Duration;

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `rateLimits.global`.
    Global,
    /// `rateLimits.perUser`.
    User,
    /// `rateLimits.perServer` or the server's `rateLimit`.
    Server,
}

impl Scope {
    /// `"global"`, `"user"` or `"server"` (`data.scope`, the Redis key part).
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Global => "global",
            Scope::User => "user",
            Scope::Server => "server",
        }
    }
}

/// A request over a limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rate limit exceeded ({}{}), retry after {} s", .scope.as_str(), .server.as_deref().map(|s| format!(" {s}")).unwrap_or_default(), self.retry_after_secs())]
pub struct Limited {
    /// The limit that refused it.
    pub scope: Scope,
    /// The server, for [`Scope::Server`].
    pub server: Option<String>,
    /// When the next request of this scope would be admitted.
    pub retry_after: Duration,
}

impl Limited {
    /// `retry_after` in whole seconds, rounded up, at least 1 (`Retry-After`).
    pub fn retry_after_secs(&self) -> u64 {
        bulkhead::whole_secs(self.retry_after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON-RPC error and HTTP answer are `hub::refusal`'s (its table test).
    #[test]
    fn retry_after_is_whole_seconds_rounded_up_and_never_0() {
        let l = Limited { scope: Scope::Server, server: Some("jira".into()), retry_after: Duration::from_millis(1200) };
        assert_eq!(l.retry_after_secs(), 2);
        assert_eq!(Limited { retry_after: Duration::from_millis(2000), ..l }.retry_after_secs(), 2);
        let g = Limited { scope: Scope::Global, server: None, retry_after: Duration::ZERO };
        assert_eq!(g.retry_after_secs(), 1, "never Retry-After: 0");
    }
}
