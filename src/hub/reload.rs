//! Configuration reload (issue 7: `SIGHUP` to `mcphub serve`): the served
//! configuration is swapped while requests are in flight.
//!
//! - **Servers** (`mcpServers`), compared entry by entry ([`ServerConfig`]
//!   equality, so `timeouts.hubMs`, which every entry carries, changes them
//!   all):
//!   - *kept* (entry unchanged): the same [`Upstream`] goes on serving: its
//!     era, legacy sessions, bulkhead and breaker, listen stream and cached
//!     lists;
//!   - *added*: a new upstream, its notifications wired as at start;
//!   - *removed*: out of the catalog at once (its names answer "unknown
//!     tool"); calls in flight finish;
//!   - *changed*: a new upstream replaces the old one under the same name;
//!     the old one's calls in flight finish on it.
//!
//!   A removed or replaced upstream is *retired* ([`Upstream::retire`]): its
//!   `subscriptions/listen` stream is cut and what it still sends is dropped;
//!   with the memory store its session records are forgotten at once (a
//!   replacement creates its own), then, once its calls are done (at most
//!   the old `timeouts.hubMs`), its sessions are ended like at shutdown
//!   ([`Hub::close_upstream_sessions`]: HTTP DELETE, except the ones a shared
//!   Redis store keeps, which a replacement adopts as after a restart).
//!   When the set changed, every legacy client GET stream and every
//!   2026-07-28 `subscriptions/listen` stream that asked for it gets
//!   `notifications/{tools,prompts,resources}/list_changed`.
//! - **Applied at once**: `toolNaming`, `listCacheTtlSecs`, `listTimeoutMs`
//!   (the catalog), `timeouts` (new requests' deadline), `allowedOrigins`,
//!   `adminToken`, `rateLimits` and the servers' `rateLimit` (the limiter is
//!   rebuilt: local buckets start full, Redis ones keep their state), `users`,
//!   `groups` and `allowAnonymous` (the user registry is rebuilt from the
//!   config and the stored run-time records).
//! - **Restart needed** ([`RESTART_ONLY`]): these keys keep their old value,
//!   each change is logged once and listed in [`ReloadReport::restart_needed`].
//! - **Rejected**: a configuration that does not validate changes nothing
//!   ([`ReloadError`]); loading the file is the caller's (`Config::load`).

use super::{listen, relay, Hub};
use crate::config::{Config, ConfigError, ServerConfig};
use crate::store::SessionStore;
use crate::upstream::{CallContext, Upstream};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Keys read once at start; a reload keeps their old value (the config file
/// names, in the order they are checked).
pub const RESTART_ONLY: &[&str] = &[
    "port",
    "bind",
    "workers",
    "queue",
    "maxStreams",
    "maxBodyBytes",
    "headTimeoutMs",
    "bodyTimeoutMs",
    "idleTimeoutSecs",
    "writeBudgetMs",
    "clientSessionIdleSecs",
    "maxClientSessions",
    "redis",
    "sessionTtlSecs",
    "stateDir",
    "drainTimeoutMs",
    "listCacheContexts",
    "maxProcesses",
];

/// The list changes announced to clients when the set of servers changed.
const LIST_CHANGED: [&str; 3] =
    ["notifications/tools/list_changed", "notifications/prompts/list_changed", "notifications/resources/list_changed"];

/// How often a retired upstream's calls in flight are counted.
const RETIRE_POLL: Duration = Duration::from_millis(50);

/// What a reload changed. Server names are in config (name) order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// Servers served from now on that were not before.
    pub added: Vec<String>,
    /// Servers no longer served.
    pub removed: Vec<String>,
    /// Servers whose entry changed: a new upstream replaced the old one.
    pub changed: Vec<String>,
    /// Servers whose entry is unchanged: the same upstream goes on serving.
    pub kept: Vec<String>,
    /// Other keys whose new value applies now (config file names).
    pub applied: Vec<&'static str>,
    /// Keys that changed but need a restart: they keep their old value.
    pub restart_needed: Vec<&'static str>,
}

impl ReloadReport {
    /// Whether servers were added, removed or replaced.
    pub fn servers_changed(&self) -> bool {
        !(self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty())
    }

    /// One line: `+added -removed ~changed =kept` counts, then the names
    /// and keys involved, e.g. `+1 -0 ~1 =2 (added: b; changed: c;
    /// applied: rateLimits; restart needed: port)`.
    pub fn summary(&self) -> String {
        let mut line = format!("+{} -{} ~{} ={}", self.added.len(), self.removed.len(), self.changed.len(), self.kept.len());
        let parts: Vec<String> = [
            ("added", self.added.join(", ")),
            ("removed", self.removed.join(", ")),
            ("changed", self.changed.join(", ")),
            ("applied", self.applied.join(", ")),
            ("restart needed", self.restart_needed.join(", ")),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
        if !parts.is_empty() {
            line.push_str(&format!(" ({})", parts.join("; ")));
        }
        line
    }
}

impl std::fmt::Display for ReloadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.summary())
    }
}

/// Why a reload was rejected (nothing changed). Messages name the key,
/// never a header value, token or password.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file could not be read or does not validate (`Config::load`).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Two `mcpServers` entries have the same name.
    #[error("config key `mcpServers.{0}`: the name appears twice")]
    DuplicateServer(String),
    /// An `mcpServers` entry the hub cannot serve.
    #[error("config key `mcpServers.{name}`: {message}")]
    Server {
        /// The entry's name.
        name: String,
        /// What is wrong.
        message: String,
    },
}

/// The upstream of one server entry, built like at start: its transport from
/// `connector` (`workers` keep-alive connections), sessions kept in `store`
/// for `sessionTtlSecs`.
pub(super) fn new_upstream(
    server: &ServerConfig,
    config: &Config,
    store: &Arc<dyn SessionStore>,
    threads: &crate::threads::Threads,
    connector: &crate::upstream::Connector,
) -> Arc<Upstream> {
    let transport = connector(server, config.workers);
    let upstream = Arc::new_cyclic(|me| Upstream::with_transport(server.clone(), transport, store.clone(), config.session_ttl, me.clone()));
    upstream.attach_threads(threads.clone());
    upstream
}

/// Sends what `upstream` hears outside calls (GET stream, listen stream) to
/// the hub ([`relay::upstream_notification`], and requests on a
/// `sessionSharing: "client"` session's GET stream to [`relay::upstream_request`]),
/// until a reload retires it.
pub(super) fn wire_notifications(hub: &Hub, upstream: &Arc<Upstream>) {
    let for_requests = Arc::downgrade(&hub.inner);
    let hub = Arc::downgrade(&hub.inner);
    let me = Arc::downgrade(upstream);
    upstream.set_notification_sink(Arc::new(move |server: &str, message: &Value| {
        if me.upgrade().is_none_or(|u| u.is_retired()) {
            return;
        }
        if let Some(inner) = hub.upgrade() {
            relay::upstream_notification(&Hub { inner }, server, message);
        }
    }));
    upstream.set_request_sink(Arc::new(move |up: &Arc<Upstream>, client: &str, headers: &[(String, String)], request: Value| {
        let inner = for_requests.upgrade().filter(|_| !up.is_retired()).ok_or("the hub no longer serves this server")?;
        relay::upstream_request(&Hub { inner }, up, client, headers, request)
    }));
}

/// What `Config::parse` guarantees and a hand-built `Config` may lack:
/// unique, valid server names and http(s) URLs.
fn check(config: &Config) -> Result<(), ReloadError> {
    let mut seen = std::collections::HashSet::new();
    for s in &config.servers {
        let name_ok = !s.name.is_empty()
            && s.name.len() <= 32
            && s.name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            && !s.name.contains("__");
        if !name_ok {
            let message = "server names must be 1..=32 characters of [A-Za-z0-9_.-] without \"__\"".to_string();
            return Err(ReloadError::Server { name: crate::users::printable_name(&s.name).to_string(), message });
        }
        if !seen.insert(s.name.as_str()) {
            return Err(ReloadError::DuplicateServer(s.name.clone()));
        }
        if !matches!(s.transport, crate::config::TransportKind::Stdio(_)) {
            crate::config::check_url(&s.url).map_err(|message| ReloadError::Server { name: s.name.clone(), message })?;
        }
    }
    Ok(())
}

/// Puts the running value back into `new` for every [`RESTART_ONLY`] key
/// that changed; returns those keys.
fn keep_restart_only(old: &Config, new: &mut Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    macro_rules! keep {
        ($($field:ident => $key:literal),* $(,)?) => {$(
            if new.$field != old.$field {
                changed.push($key);
                new.$field = old.$field.clone();
            }
        )*};
    }
    keep!(
        port => "port",
        bind => "bind",
        workers => "workers",
        queue => "queue",
        max_streams => "maxStreams",
        max_body_bytes => "maxBodyBytes",
        head_timeout => "headTimeoutMs",
        body_timeout => "bodyTimeoutMs",
        idle_timeout => "idleTimeoutSecs",
        write_budget => "writeBudgetMs",
        client_session_idle => "clientSessionIdleSecs",
        max_client_sessions => "maxClientSessions",
        redis => "redis",
        session_ttl => "sessionTtlSecs",
        state_dir => "stateDir",
        drain_timeout => "drainTimeoutMs",
        list_cache_contexts => "listCacheContexts",
        max_processes => "maxProcesses",
    );
    changed
}

/// The other keys whose value changed (they apply at once).
fn applied_keys(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut applied = Vec::new();
    let mut note = |changed: bool, key: &'static str| {
        if changed {
            applied.push(key);
        }
    };
    note(old.tool_naming != new.tool_naming, "toolNaming");
    note(old.list_cache_ttl != new.list_cache_ttl, "listCacheTtlSecs");
    note(old.list_timeout != new.list_timeout, "listTimeoutMs");
    note(old.hub_timeout != new.hub_timeout, "timeouts");
    note(old.allowed_origins != new.allowed_origins, "allowedOrigins");
    note(old.admin_token != new.admin_token, "adminToken");
    note(old.rate_limits != new.rate_limits, "rateLimits");
    note(old.users != new.users, "users");
    note(old.allow_anonymous != new.allow_anonymous, "allowAnonymous");
    note(old.max_tasks_per_user != new.max_tasks_per_user, "maxTasksPerUser");
    note(old.max_tasks != new.max_tasks, "maxTasks");
    applied
}

/// Server names a run-time user may be given (served and skipped entries).
fn known_servers(config: &Config) -> Vec<&str> {
    let mut names: Vec<&str> = config.servers.iter().map(|s| s.name.as_str()).chain(config.skipped.iter().map(|s| s.name.as_str())).collect();
    names.sort_unstable();
    names
}

impl Hub {
    /// Serves `new` from now on without stopping requests in flight (see
    /// the module doc for what is kept, replaced, applied, or needs a
    /// restart). One reload runs at a time. Logs one warning per
    /// restart-only key that changed; the caller logs the summary.
    ///
    /// Errors: [`ReloadError`] when `new` has duplicate, invalid or
    /// unservable server entries; then nothing changed.
    pub fn reload(&self, new: Config) -> Result<ReloadReport, ReloadError> {
        let _one_at_a_time = self.inner.reloading.lock();
        check(&new)?;
        let old = self.config();
        let mut new = new;
        let mut report = ReloadReport { restart_needed: keep_restart_only(&old, &mut new), ..ReloadReport::default() };
        report.applied = applied_keys(&old, &new);

        // The new set: unchanged entries keep their upstream.
        let current = self.catalog().upstreams();
        let mut next = Vec::with_capacity(new.servers.len());
        let mut retired = Vec::new();
        for s in &new.servers {
            match current.iter().find(|u| u.name() == s.name) {
                Some(u) if u.config == *s => {
                    report.kept.push(s.name.clone());
                    next.push(u.clone());
                }
                found => {
                    let upstream = new_upstream(s, &new, self.store(), self.threads(), &self.inner.connector);
                    wire_notifications(self, &upstream);
                    match found {
                        Some(old_upstream) => {
                            report.changed.push(s.name.clone());
                            retired.push(old_upstream.clone());
                        }
                        None => report.added.push(s.name.clone()),
                    }
                    next.push(upstream);
                }
            }
        }
        for u in current.iter().filter(|u| !new.servers.iter().any(|s| s.name == u.name())) {
            report.removed.push(u.name().to_string());
            retired.push(u.clone());
        }
        let keep_stored = self.store().kind() != "memory";
        for u in &retired {
            u.retire(keep_stored);
        }

        // Registries that read the config.
        if old.users != new.users || old.allow_anonymous != new.allow_anonymous || known_servers(&old) != known_servers(&new) {
            // In place: the backend, secret key, stored records and poll
            // thread go on, serialized with admin changes.
            self.inner.users.read().reconfigure(&new);
        }
        if old.rate_limits != new.rate_limits {
            *self.inner.limits.write() = Arc::new(crate::limits::RateLimits::new(&new.rate_limits, self.inner.redis.clone()));
        }
        for s in new.skipped.iter().filter(|s| !old.skipped.iter().any(|o| o.name == s.name)) {
            log::warn!("server '{}' is not served: {}", s.name, s.reason);
        }

        if old.auth.oauth != new.auth.oauth {
            self.oauth().store().set_config(&new.auth.oauth);
            self.oauth().fetcher().set_config(&new.auth.oauth.client_metadata);
        }
        // The swap.
        let (naming, ttl, budget) = (new.tool_naming, new.list_cache_ttl, new.list_timeout);
        *self.inner.config.write() = Arc::new(new);
        self.catalog().replace(next, naming, ttl, budget);
        for u in &retired {
            self.tasks().forget_support(u.name()); // checked again on the replacement
        }

        if report.servers_changed() || report.applied.contains(&"toolNaming") {
            for method in LIST_CHANGED {
                self.listeners().send_all(&json!({"jsonrpc": "2.0", "method": method}));
                self.listen_streams().send_list_changed(method);
            }
        }
        for key in &report.restart_needed {
            log::warn!("config reload: `{key}` changed; it keeps its old value until restart");
        }
        self.resubscribe(&report.changed);
        self.close_when_idle(retired, keep_stored, old.hub_timeout);
        Ok(report)
    }

    /// Ends the sessions of retired upstreams once their calls in flight are
    /// done (or after `budget`, the longest a call may take), off the caller's
    /// thread: HTTP DELETE, except what a shared store keeps.
    fn close_when_idle(&self, retired: Vec<Arc<Upstream>>, keep_stored: bool, budget: Duration) {
        if retired.is_empty() {
            return;
        }
        // Bounded by `budget`: counted, detached.
        let spawned = self.threads().spawn("reload-retire", crate::threads::Kind::Call, move || {
            let deadline = Instant::now() + budget;
            loop {
                // A request that took the upstream just before the swap takes
                // its bulkhead slot right after: look after a first pause.
                std::thread::sleep(RETIRE_POLL);
                let busy: usize = retired.iter().map(|u| u.calls_in_flight()).sum();
                if busy == 0 {
                    break;
                }
                if Instant::now() >= deadline {
                    log::warn!("config reload: {busy} calls still in flight on retired servers after {} ms; their sessions are closed now", budget.as_millis());
                    break;
                }
            }
            for u in &retired {
                u.close_sessions(keep_stored);
                log::debug!("config reload: sessions of the retired '{}' closed", u.name());
            }
        });
        if let Err(e) = spawned {
            log::warn!("config reload: cannot start the thread closing retired sessions ({e}); they expire on their own");
        }
    }

    /// Re-establishes on the replacements of `changed` servers the resource
    /// subscriptions clients hold there (legacy `resources/subscribe`, or
    /// the modern listen filter), off the caller's thread, with the shared
    /// context (a server needing user tokens is left to the clients' next
    /// subscribe).
    fn resubscribe(&self, changed: &[String]) {
        let wanted: Vec<(Arc<Upstream>, Vec<String>)> = changed
            .iter()
            .filter_map(|name| {
                let uris = self.subscriptions().uris(name);
                (!uris.is_empty()).then(|| self.catalog().upstream(name).map(|u| (u, uris))).flatten()
            })
            .collect();
        if wanted.is_empty() {
            return;
        }
        let hub = self.clone();
        // Bounded by the hub deadline: counted, detached.
        let spawned = self.threads().spawn("reload-resubscribe", crate::threads::Kind::Call, move || {
            let ctx = CallContext::shared(Instant::now() + hub.config().hub_timeout);
            for (upstream, uris) in wanted {
                for uri in uris {
                    if let Err(e) = listen::watch_upstream(hub.listen_streams(), hub.subscriptions(), &upstream, &uri, true, serde_json::Map::new(), &ctx) {
                        log::debug!("config reload: subscribing again to a resource of '{}' failed: {e}", upstream.name());
                    }
                }
            }
        });
        if let Err(e) = spawned {
            log::warn!("config reload: cannot start the thread renewing resource subscriptions ({e})");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        Config::parse(text).expect("valid config")
    }

    #[test]
    fn restart_only_keys_keep_their_running_value_and_are_named() {
        let old = config(r#"{"port": 3000, "workers": 4, "mcpServers": {}}"#);
        let mut new = config(r#"{"port": 3001, "workers": 4, "maxStreams": 9, "toolNaming": "prefix", "mcpServers": {}}"#);
        assert_eq!(keep_restart_only(&old, &mut new), vec!["port", "maxStreams"]);
        assert_eq!((new.port, new.max_streams), (3000, old.max_streams));
        assert_eq!(applied_keys(&old, &new), vec!["toolNaming"]);
        assert!(keep_restart_only(&old, &mut new).is_empty());
    }

    #[test]
    fn hand_built_configs_with_duplicate_or_bad_servers_are_rejected() {
        let ok = config(r#"{"mcpServers": {"a": {"url": "http://127.0.0.1:1/mcp"}, "b": {"url": "http://127.0.0.1:2/mcp"}}}"#);
        assert!(check(&ok).is_ok());
        let mut twice = ok.clone();
        twice.servers[1].name = "a".into();
        assert!(matches!(check(&twice), Err(ReloadError::DuplicateServer(n)) if n == "a"));
        let mut bad_url = ok.clone();
        bad_url.servers[0].url = "ftp://x/".into();
        let err = check(&bad_url).unwrap_err().to_string();
        assert!(err.contains("mcpServers.a") && err.contains("http"), "{err}");
        let mut bad_name = ok;
        bad_name.servers[0].name = "a__b".into();
        assert!(matches!(check(&bad_name), Err(ReloadError::Server { .. })));
    }

    #[test]
    fn the_summary_counts_then_names() {
        let r = ReloadReport {
            added: vec!["b".into()],
            changed: vec!["c".into()],
            kept: vec!["a".into(), "d".into()],
            restart_needed: vec!["port"],
            ..ReloadReport::default()
        };
        assert_eq!(r.summary(), "+1 -0 ~1 =2 (added: b; changed: c; restart needed: port)");
        assert!(r.servers_changed());
        assert_eq!(ReloadReport::default().to_string(), "+0 -0 ~0 =0");
    }
}
