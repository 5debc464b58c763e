//! One merged view of every server's tools, prompts, resources and resource
//! templates, and the routing table back to the owning server (DESIGN.md §4).
//!
//! - Names are exposed unchanged; when two servers offer the same name both
//!   become `{server}__{name}` (a warning is logged); `"toolNaming": "prefix"`
//!   prefixes everything. Exposed names stay within 64 characters of
//!   `[A-Za-z0-9_./-]` ([`expose_names`]).
//! - Items are kept as `serde_json::Value`: schemas, annotations, `_meta`,
//!   icons and unknown fields pass through untouched; only `name` changes.
//! - Lists are fetched from all servers in parallel (every page), cached per
//!   (server, kind) with single-flight refresh, and dropped on `list_changed`
//!   or when their TTL (`listCacheTtlSecs`, or a modern server's `ttlMs`) ends.
//!   A server that fails is left out of the merged list with a warning, and is
//!   not asked again for [`FAILURE_BACKOFF`].

use crate::config::ToolNaming;
use crate::singleflight::SlotMap;
use crate::upstream::{CallContext, Upstream, UpstreamError};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A failed list fetch is not retried for this long (the server's items are
/// left out meanwhile), so a dead server does not slow every `tools/list`.
pub const FAILURE_BACKOFF: Duration = Duration::from_secs(5);
/// Most pages read from one server's list.
pub const MAX_PAGES: usize = 100;
/// Longest exposed name.
pub const MAX_NAME_LEN: usize = 64;

/// The four kinds of list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `tools/list` → `tools`.
    Tools,
    /// `prompts/list` → `prompts`.
    Prompts,
    /// `resources/list` → `resources`.
    Resources,
    /// `resources/templates/list` → `resourceTemplates`.
    Templates,
}

impl Kind {
    /// The upstream method.
    pub fn method(self) -> &'static str {
        match self {
            Kind::Tools => "tools/list",
            Kind::Prompts => "prompts/list",
            Kind::Resources => "resources/list",
            Kind::Templates => "resources/templates/list",
        }
    }

    /// The result field holding the items.
    pub fn field(self) -> &'static str {
        match self {
            Kind::Tools => "tools",
            Kind::Prompts => "prompts",
            Kind::Resources => "resources",
            Kind::Templates => "resourceTemplates",
        }
    }

    /// The kind a `notifications/*/list_changed` method invalidates.
    pub fn from_list_changed(method: &str) -> Option<&'static [Kind]> {
        match method {
            "notifications/tools/list_changed" => Some(&[Kind::Tools]),
            "notifications/prompts/list_changed" => Some(&[Kind::Prompts]),
            "notifications/resources/list_changed" => Some(&[Kind::Resources, Kind::Templates]),
            _ => None,
        }
    }
}

/// Where an exposed tool or prompt lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The server's name.
    pub server: String,
    /// The name the server itself uses.
    pub original: String,
}

#[derive(Clone)]
struct Cached {
    items: Arc<Vec<Value>>,
    fetched: Instant,
    ttl: Duration,
    failed: bool,
}

/// A merged list and its routes.
#[derive(Debug, Clone)]
pub struct Merged {
    /// Items as exposed (names rewritten where needed), server order then upstream order.
    pub items: Vec<Value>,
    /// Exposed name (tools, prompts) or URI / URI template (resources, templates) → route.
    pub routes: HashMap<String, Route>,
    /// Exposed name / URI → index in `items`.
    pub index: HashMap<String, usize>,
    /// When the first part of this view goes stale.
    pub expires: Instant,
}

impl Merged {
    /// Remaining lifetime in ms (for modern `ttlMs`).
    pub fn ttl_ms(&self) -> u64 {
        self.expires.saturating_duration_since(Instant::now()).as_millis() as u64
    }

    /// The item exposed under `key` (a tool or prompt name, a URI).
    pub fn item(&self, key: &str) -> Option<&Value> {
        self.index.get(key).and_then(|i| self.items.get(*i))
    }
}

/// Applies the naming rule to per-server item lists (pure; DESIGN.md §4).
///
/// Returns the exposed items and the route of every exposed name. Items
/// without a string `name` are dropped with a warning.
pub fn expose_names(per_server: &[(String, Arc<Vec<Value>>)], naming: ToolNaming, what: &str) -> (Vec<Value>, HashMap<String, Route>) {
    let mut owners: HashMap<&str, usize> = HashMap::new();
    for (_, items) in per_server {
        let mut seen_here = std::collections::HashSet::new();
        for item in items.iter() {
            if let Some(n) = item.get("name").and_then(Value::as_str) {
                if seen_here.insert(n) {
                    *owners.entry(n).or_default() += 1;
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut routes = HashMap::new();
    for (server, items) in per_server {
        for item in items.iter() {
            let Some(original) = item.get("name").and_then(Value::as_str) else {
                log::warn!("server '{server}' listed a {what} without a name; left out");
                continue;
            };
            let collides = owners.get(original).copied().unwrap_or(0) > 1;
            if collides {
                log::warn!("{what} name '{original}' is offered by several servers; exposing '{server}__{original}'");
            }
            let wanted = if collides || naming == ToolNaming::Prefix { format!("{server}__{original}") } else { original.to_string() };
            let exposed = valid_name(&wanted);
            if routes.contains_key(&exposed) {
                log::warn!("server '{server}' lists {what} '{original}' twice; the first one is kept");
                continue;
            }
            let mut item = item.clone();
            if exposed != original {
                item["name"] = Value::String(exposed.clone());
            }
            routes.insert(exposed, Route { server: server.clone(), original: original.to_string() });
            out.push(item);
        }
    }
    (out, routes)
}

/// Builds the merged view of one kind from per-server lists (pure).
fn build_view(kind: Kind, per_server: &[(String, Arc<Vec<Value>>)], naming: ToolNaming, expires: Instant) -> Merged {
    let (items, routes) = match kind {
        Kind::Tools | Kind::Prompts => {
            let what = if kind == Kind::Tools { "tool" } else { "prompt" };
            expose_names(per_server, naming, what)
        }
        Kind::Resources | Kind::Templates => {
            let key = if kind == Kind::Resources { "uri" } else { "uriTemplate" };
            let mut items = Vec::new();
            let mut routes = HashMap::new();
            for (server, list) in per_server {
                for item in list.iter() {
                    let Some(uri) = item.get(key).and_then(Value::as_str) else { continue };
                    if routes.contains_key(uri) {
                        log::warn!("{key} '{uri}' is offered by several servers; '{server}' left out");
                        continue;
                    }
                    routes.insert(uri.to_string(), Route { server: server.clone(), original: uri.to_string() });
                    items.push(item.clone());
                }
            }
            (items, routes)
        }
    };
    let key = match kind {
        Kind::Resources => "uri",
        Kind::Templates => "uriTemplate",
        Kind::Tools | Kind::Prompts => "name",
    };
    let index = items
        .iter()
        .enumerate()
        .filter_map(|(i, it)| it.get(key).and_then(Value::as_str).map(|k| (k.to_string(), i)))
        .collect();
    Merged { items, routes, index, expires }
}

/// `name` made valid: characters outside `[A-Za-z0-9_./-]` become `_`; a name
/// longer than 64 keeps 55 characters plus `_` and 8 hex of its SHA-256.
pub fn valid_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "_./-".contains(c) { c } else { '_' })
        .collect();
    if !cleaned.is_empty() && cleaned.len() <= MAX_NAME_LEN {
        return cleaned;
    }
    let digest = hex::encode(Sha256::digest(name.as_bytes()));
    format!("{}_{}", &cleaned[..cleaned.len().min(55)], &digest[..8])
}

/// Whether a URI matches an RFC 6570 template (level 1–2 expressions match
/// any run of characters; `{+var}`/`{/var}` may include `/`).
pub fn template_matches(template: &str, uri: &str) -> bool {
    fn go(t: &str, u: &str) -> bool {
        match t.find('{') {
            None => t == u,
            Some(open) => {
                let (lit, rest) = t.split_at(open);
                let Some(u) = u.strip_prefix(lit) else { return false };
                let Some(close) = rest.find('}') else { return false };
                let expr = &rest[1..close];
                let tail = &rest[close + 1..];
                let allow_slash = expr.starts_with('+') || expr.starts_with('/') || expr.starts_with('#');
                (0..=u.len()).filter(|i| u.is_char_boundary(*i)).any(|i| {
                    let var = &u[..i];
                    (allow_slash || !var.contains('/')) && go(tail, &u[i..])
                })
            }
        }
    }
    go(template, uri)
}

/// A merged view and the per-server lists it was built from.
type View = (Vec<Arc<Vec<Value>>>, Arc<Merged>);

/// The merged catalog over a fixed set of upstreams.
pub struct Catalog {
    upstreams: Vec<Arc<Upstream>>,
    naming: ToolNaming,
    ttl: Duration,
    fetch_budget: Duration,
    cache: SlotMap<(String, Kind), Cached>,
    /// The last merged view per kind and the parts it was built from: reused
    /// while every part is the same `Arc` (no rebuild, no repeated warnings).
    views: parking_lot::Mutex<HashMap<Kind, View>>,
}

impl Catalog {
    /// A catalog over `upstreams` (in the order given); lists stay cached for
    /// `ttl` and one server's fetch may take `fetch_budget`.
    pub fn new(upstreams: Vec<Arc<Upstream>>, naming: ToolNaming, ttl: Duration, fetch_budget: Duration) -> Catalog {
        Catalog { upstreams, naming, ttl, fetch_budget, cache: SlotMap::default(), views: Default::default() }
    }

    /// The upstream with this name.
    pub fn upstream(&self, name: &str) -> Option<&Arc<Upstream>> {
        self.upstreams.iter().find(|u| u.name() == name)
    }

    /// All upstreams.
    pub fn upstreams(&self) -> &[Arc<Upstream>] {
        &self.upstreams
    }

    /// Drops cached lists of `server` for the kinds a `list_changed` method names.
    pub fn on_notification(&self, server: &str, method: &str) {
        if let Some(kinds) = Kind::from_list_changed(method) {
            log::debug!("{method} from '{server}': cached list dropped");
            self.cache.clear_matching(|(s, k)| s == server && kinds.contains(k));
        }
    }

    /// Drops every cached list of one kind (forces a refetch).
    pub fn invalidate(&self, kind: Kind) {
        self.cache.clear_matching(|(_, k)| *k == kind);
    }

    /// The merged list of `kind` over every server. Cached parts are used as
    /// they are; missing or stale ones are fetched, in parallel when several.
    pub fn merged(&self, kind: Kind, ctx: &CallContext) -> Arc<Merged> {
        let fresh = |c: &Cached| c.fetched.elapsed() < c.ttl;
        let mut parts: Vec<Option<Cached>> =
            self.upstreams.iter().map(|u| self.cache.get_if(&(u.name().to_string(), kind), fresh)).collect();
        let missing: Vec<usize> = (0..parts.len()).filter(|i| parts[*i].is_none()).collect();
        match missing.as_slice() {
            [] => {}
            [one] => parts[*one] = Some(self.server_list(&self.upstreams[*one], kind, ctx)),
            many => std::thread::scope(|scope| {
                let handles: Vec<_> = many
                    .iter()
                    .map(|i| (*i, scope.spawn(move || self.server_list(&self.upstreams[*i], kind, ctx))))
                    .collect();
                for (i, h) in handles {
                    parts[i] = h.join().ok();
                }
            }),
        }
        let parts: Vec<(String, Cached)> = self
            .upstreams
            .iter()
            .zip(parts)
            .filter_map(|(u, c)| c.map(|c| (u.name().to_string(), c)))
            .collect();
        let lists: Vec<Arc<Vec<Value>>> = parts.iter().map(|(_, c)| c.items.clone()).collect();
        let mut views = self.views.lock();
        if let Some((built_from, view)) = views.get(&kind) {
            if built_from.len() == lists.len() && built_from.iter().zip(&lists).all(|(a, b)| Arc::ptr_eq(a, b)) {
                return view.clone();
            }
        }
        let expires = parts
            .iter()
            .filter(|(_, c)| !c.failed)
            .map(|(_, c)| c.fetched + c.ttl)
            .min()
            .unwrap_or_else(Instant::now);
        let per_server: Vec<(String, Arc<Vec<Value>>)> = parts.into_iter().map(|(s, c)| (s, c.items)).collect();
        let view = Arc::new(build_view(kind, &per_server, self.naming, expires));
        views.insert(kind, (lists, view.clone()));
        view
    }

    fn server_list(&self, upstream: &Upstream, kind: Kind, ctx: &CallContext) -> Cached {
        let key = (upstream.name().to_string(), kind);
        let fresh = |c: &Cached| c.fetched.elapsed() < c.ttl;
        let ctx = &CallContext { deadline: ctx.deadline.min(Instant::now() + self.fetch_budget), ..ctx.clone() };
        let fetched = self.cache.get_or_try_fill(&key, fresh, || -> Result<Cached, UpstreamError> {
            let cached = match fetch_all(upstream, kind, ctx) {
                Ok((items, ttl)) => Cached { items: Arc::new(items), fetched: Instant::now(), ttl: ttl.unwrap_or(self.ttl), failed: false },
                Err(e) => {
                    log::warn!("{} of '{}' failed, its items are left out for {} s: {e}", kind.method(), upstream.name(), FAILURE_BACKOFF.as_secs());
                    Cached { items: Arc::new(Vec::new()), fetched: Instant::now(), ttl: FAILURE_BACKOFF, failed: true }
                }
            };
            Ok(cached)
        });
        fetched.unwrap_or_else(|_: UpstreamError| Cached { items: Arc::default(), fetched: Instant::now(), ttl: Duration::ZERO, failed: true })
    }

    /// Resolves an exposed tool or prompt name, refreshing the lists once when
    /// the name is unknown (a tool may have appeared since the last fetch).
    pub fn route_name(&self, kind: Kind, exposed: &str, ctx: &CallContext) -> Option<Route> {
        if let Some(r) = self.merged(kind, ctx).routes.get(exposed) {
            return Some(r.clone());
        }
        self.invalidate(kind);
        self.merged(kind, ctx).routes.get(exposed).cloned()
    }

    /// The server owning a resource URI: an exact resource first, then a
    /// matching template, then the only server offering resources at all.
    pub fn route_uri(&self, uri: &str, ctx: &CallContext) -> Option<String> {
        if let Some(r) = self.merged(Kind::Resources, ctx).routes.get(uri) {
            return Some(r.server.clone());
        }
        let templates = self.merged(Kind::Templates, ctx);
        let mut by_template = templates.routes.iter().filter(|(t, _)| template_matches(t, uri));
        if let Some((_, r)) = by_template.next() {
            return Some(r.server.clone());
        }
        None
    }
}

/// Reads every page of one server's list. Returns the items and the server's
/// `ttlMs` if it sent one. A `-32601` (capability not offered) is an empty list.
fn fetch_all(upstream: &Upstream, kind: Kind, ctx: &CallContext) -> Result<(Vec<Value>, Option<Duration>), UpstreamError> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    let mut ttl = None;
    for _ in 0..MAX_PAGES {
        let mut params = Map::new();
        if let Some(c) = &cursor {
            params.insert("cursor".into(), Value::String(c.clone()));
        }
        let msg = upstream.request(kind.method(), params, ctx, &[], &mut |n| {
            if let Some(m) = n.get("method").and_then(Value::as_str) {
                log::debug!("notification {m} from '{}' during a list fetch", upstream.name());
            }
        })?;
        if let Some(err) = msg.get("error") {
            if err.get("code").and_then(Value::as_i64) == Some(crate::protocol::codes::METHOD_NOT_FOUND) {
                return Ok((items, ttl));
            }
            return Err(UpstreamError::Protocol { server: upstream.name().to_string(), detail: format!("{} failed: {err}", kind.method()) });
        }
        let result = msg.get("result").cloned().unwrap_or(Value::Null);
        if let Some(list) = result.get(kind.field()).and_then(Value::as_array) {
            items.extend(list.iter().cloned());
        }
        if let Some(ms) = result.get("ttlMs").and_then(Value::as_u64) {
            ttl = Some(Duration::from_millis(ms).min(ttl.unwrap_or(Duration::MAX)));
        }
        match result.get("nextCursor").and_then(Value::as_str) {
            Some(c) if !c.is_empty() && cursor.as_deref() != Some(c) => cursor = Some(c.to_string()),
            _ => return Ok((items, ttl)),
        }
    }
    log::warn!("{} of '{}' has more than {MAX_PAGES} pages; the rest is left out", kind.method(), upstream.name());
    Ok((items, ttl))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lists(v: Vec<(&str, Value)>) -> Vec<(String, Arc<Vec<Value>>)> {
        v.into_iter().map(|(s, l)| (s.to_string(), Arc::new(l.as_array().cloned().unwrap()))).collect()
    }

    #[test]
    fn unique_names_pass_unchanged_and_collisions_get_both_prefixes() {
        let input = lists(vec![
            ("github", json!([{"name": "get_issue", "inputSchema": {"type": "object", "x-extra": 1}}, {"name": "echo"}])),
            ("mock", json!([{"name": "echo", "annotations": {"readOnlyHint": true}}, {"name": "counter"}])),
        ]);
        let (items, routes) = expose_names(&input, ToolNaming::Auto, "tool");
        let names: Vec<&str> = items.iter().map(|i| i["name"].as_str().unwrap()).collect();
        assert_eq!(names, vec!["get_issue", "github__echo", "mock__echo", "counter"]);
        assert_eq!(routes["mock__echo"], Route { server: "mock".into(), original: "echo".into() });
        assert_eq!(routes["get_issue"].server, "github");
        // unknown fields pass through untouched
        assert_eq!(items[0]["inputSchema"]["x-extra"], 1);
        assert_eq!(items[2]["annotations"]["readOnlyHint"], true);
    }

    #[test]
    fn prefix_mode_prefixes_everything() {
        let input = lists(vec![("a", json!([{"name": "x"}])), ("b", json!([{"name": "y"}]))]);
        let (items, routes) = expose_names(&input, ToolNaming::Prefix, "tool");
        assert_eq!(items[0]["name"], "a__x");
        assert_eq!(routes["b__y"].original, "y");
    }

    #[test]
    fn exposed_names_stay_within_64_valid_characters() {
        assert_eq!(valid_name("get_issue"), "get_issue");
        assert_eq!(valid_name("a b:c"), "a_b_c");
        let long = "x".repeat(80);
        let v = valid_name(&long);
        assert_eq!(v.len(), 64);
        assert_ne!(valid_name(&"x".repeat(81)), v);
        assert!(v.chars().all(|c| c.is_ascii_alphanumeric() || "_./-".contains(c)));
    }

    #[test]
    fn a_name_listed_twice_by_one_server_is_not_a_collision() {
        let input = lists(vec![("a", json!([{"name": "x"}, {"name": "x"}]))]);
        let (items, _) = expose_names(&input, ToolNaming::Auto, "tool");
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["name"], "x");
    }

    #[test]
    fn uri_templates_match() {
        assert!(template_matches("mock://item/{id}", "mock://item/42"));
        assert!(!template_matches("mock://item/{id}", "mock://item/4/2"));
        assert!(template_matches("file:///{+path}", "file:///a/b/c"));
        assert!(!template_matches("mock://item/{id}", "other://item/1"));
        assert!(template_matches("x://{a}/{b}", "x://1/2"));
    }
}
