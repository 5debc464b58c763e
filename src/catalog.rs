//! One merged view of every server's tools, prompts, resources and resource
//! templates, and the routing table back to the owning server (docs/decisions.md D4).
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
//!   not asked again for [`FAILURE_BACKOFF`]. A merged list keeps its items
//!   serialised per caller view ([`Merged::rendered`], issue 16), so a warm
//!   list answer copies bytes; they go when the merged list is replaced.
//! - Servers whose headers template user tokens (`${user.*}`) are cached per
//!   context key instead (issue 14: the key of the caller's upstream
//!   sessions), so a caller only sees lists fetched with their own
//!   credentials; failures, back-off, the forced-refresh throttle and merged
//!   views are per context, at most `listCacheContexts` contexts (LRU).
//! - An unknown tool or prompt name forces a refetch of that kind at most once
//!   per [`FORCED_REFRESH_INTERVAL`] (for the shared lists, and per context),
//!   and never of a failed (backing-off) part.
//! - Tools whose `inputSchema` breaks the `x-mcp-header` rules are left out
//!   ([`crate::protocol::headers::x_mcp_header_problem`]); URI templates with
//!   more than [`MAX_TEMPLATE_EXPRESSIONS`] expressions are left out; URIs
//!   longer than [`MAX_URI_LEN`] are not routed.
//! - The set of servers is swapped by a config reload ([`Catalog::replace`],
//!   `hub::reload`): requests in flight finish on the set they started with
//!   ([`Catalog::upstreams`] is a snapshot); an upstream kept across the
//!   reload keeps its cached lists, a replaced one's are never served again.

use crate::config::ToolNaming;
use crate::protocol::headers::x_mcp_header_problem;
use crate::singleflight::SlotMap;
use crate::upstream::{CallContext, Upstream, UpstreamError};
use serde_json::value::RawValue;
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
/// Longest resource URI [`Catalog::route_uri`] routes (the hub answers -32602
/// for longer ones).
pub const MAX_URI_LEN: usize = 8192;
/// URI templates with more `{…}` expressions than this are left out of the
/// view (with a warning) and match nothing.
pub const MAX_TEMPLATE_EXPRESSIONS: usize = 32;
/// An unknown tool or prompt name refetches that kind's lists at most this often.
pub const FORCED_REFRESH_INTERVAL: Duration = Duration::from_secs(2);

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
    items: List,
    fetched: Instant,
    ttl: Duration,
    failed: bool,
    /// For a failed list of a server with per-user credentials: the HTTP
    /// status (401/403) with which it rejected the caller's credential.
    rejected: Option<u16>,
    /// The member id of the upstream it was fetched from: a list of a
    /// replaced upstream (same name, before a reload) is never served.
    source: u64,
}

/// A merged list and its routes.
#[derive(Debug, Clone)]
pub struct Merged {
    /// Items as exposed (names rewritten where needed), server order then
    /// upstream order. An item whose name is unchanged is the cached list's
    /// own `Arc` (views are per context, issue 14: a copy per view would
    /// double the memory of every cached context).
    pub items: Vec<Arc<Value>>,
    /// Exposed name (tools, prompts) or URI / URI template (resources, templates) → route.
    pub routes: HashMap<String, Route>,
    /// Exposed name / URI → index in `items`.
    pub index: HashMap<String, usize>,
    /// When the first part of this view goes stale.
    pub expires: Instant,
    /// The items as the callers of a few views see them, serialised once
    /// ([`Merged::rendered`]); they go with this view, so whatever replaces
    /// the view (a `list_changed`, the TTL, a reload) replaces them too.
    rendered: Rendered,
}

/// Most serialised item lists one merged view keeps ([`Merged::rendered`]),
/// the least recently used replaced beyond: a caller's view is the set of
/// servers left out for them, and the shared view is shared by every user,
/// so without a cap each distinct server allow-list would keep a copy of the
/// whole list. Deployments have a handful of such sets; beyond eight the
/// ninth costs one serialisation per miss (what every list cost before).
pub const MAX_RENDERED_VIEWS: usize = 8;

/// One serialised item list and the servers left out of it.
type RenderedView = (Box<[Box<str>]>, Arc<RawValue>);

/// The serialised item lists of a [`Merged`], keyed by the servers left out,
/// most recently used first (at most [`MAX_RENDERED_VIEWS`]).
#[derive(Default)]
struct Rendered(parking_lot::Mutex<Vec<RenderedView>>);

impl Clone for Rendered {
    fn clone(&self) -> Rendered {
        Rendered(parking_lot::Mutex::new(self.0.lock().clone()))
    }
}

impl std::fmt::Debug for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Rendered({} views)", self.0.lock().len())
    }
}

impl Merged {
    /// Remaining lifetime in ms (for modern `ttlMs`).
    pub fn ttl_ms(&self) -> u64 {
        self.expires.saturating_duration_since(Instant::now()).as_millis() as u64
    }

    /// The item exposed under `key` (a tool or prompt name, a URI).
    pub fn item(&self, key: &str) -> Option<&Value> {
        self.index.get(key).and_then(|i| self.items.get(*i)).map(|v| &**v)
    }

    /// The items as a caller sees them, serialised (a JSON array): the
    /// caller's view is named by the servers left out of it (`hidden`, in
    /// server order); `render` makes it the first time (or after the view
    /// was dropped, beyond [`MAX_RENDERED_VIEWS`]), then the same bytes are
    /// returned until this merged view is replaced. `render` must depend on
    /// nothing but this view, `hidden` and the configuration of the served
    /// servers (a reload replaces the view). It runs without a lock held: two
    /// first callers may both render, one result is kept.
    pub fn rendered(&self, hidden: &[&str], render: impl FnOnce() -> Box<RawValue>) -> Arc<RawValue> {
        let same = |key: &[Box<str>]| key.len() == hidden.len() && key.iter().zip(hidden).all(|(a, b)| **a == **b);
        {
            let mut views = self.rendered.0.lock();
            if let Some(at) = views.iter().position(|(key, _)| same(key)) {
                let bytes = views[at].1.clone();
                views[..=at].rotate_right(1); // most recently used first
                return bytes;
            }
        }
        let bytes: Arc<RawValue> = Arc::from(render());
        let mut views = self.rendered.0.lock();
        if !views.iter().any(|(key, _)| same(key)) {
            views.truncate(MAX_RENDERED_VIEWS - 1);
            views.insert(0, (hidden.iter().map(|s| Box::from(*s)).collect(), bytes.clone()));
        }
        bytes
    }
}

/// Applies the naming rule to per-server item lists (pure; docs/decisions.md D4).
///
/// Returns the exposed items and the route of every exposed name. Items
/// without a string `name` are dropped; that, collisions and duplicates are
/// pushed to `warnings` as log lines (the catalog logs each line once,
/// [`WarnOnce`]: views are rebuilt often, per context, issue 14).
pub fn expose_names(
    per_server: &[(String, List)],
    naming: ToolNaming,
    what: &str,
    warnings: &mut Vec<String>,
) -> (Vec<Arc<Value>>, HashMap<String, Route>) {
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
                warnings.push(format!("server '{server}' listed a {what} without a name; left out"));
                continue;
            };
            let collides = owners.get(original).copied().unwrap_or(0) > 1;
            if collides {
                warnings.push(format!("{what} name '{original}' is offered by several servers; exposing '{server}__{original}'"));
            }
            let wanted = if collides || naming == ToolNaming::Prefix { format!("{server}__{original}") } else { original.to_string() };
            let exposed = valid_name(&wanted);
            if routes.contains_key(&exposed) {
                warnings.push(format!("server '{server}' lists {what} '{original}' twice; the first one is kept"));
                continue;
            }
            let item = if exposed != original {
                let mut renamed = Value::clone(item);
                renamed["name"] = Value::String(exposed.clone());
                Arc::new(renamed)
            } else {
                item.clone()
            };
            routes.insert(exposed, Route { server: server.clone(), original: original.to_string() });
            out.push(item);
        }
    }
    (out, routes)
}

/// Builds the merged view of one kind from per-server lists (pure).
///
/// Tools whose `inputSchema` breaks the `x-mcp-header` rules and templates
/// with more than [`MAX_TEMPLATE_EXPRESSIONS`] expressions are left out, each
/// with a line in `warnings` (a view is built only when one of its parts changed).
fn build_view(kind: Kind, per_server: &[(String, List)], naming: ToolNaming, expires: Instant, warnings: &mut Vec<String>) -> Merged {
    let (items, routes) = match kind {
        Kind::Tools => {
            let tools = without_invalid_tools(per_server, warnings);
            expose_names(&tools, naming, "tool", warnings)
        }
        Kind::Prompts => expose_names(per_server, naming, "prompt", warnings),
        Kind::Resources | Kind::Templates => {
            let key = if kind == Kind::Resources { "uri" } else { "uriTemplate" };
            let mut items = Vec::new();
            let mut routes = HashMap::new();
            for (server, list) in per_server {
                for item in list.iter() {
                    let Some(uri) = item.get(key).and_then(Value::as_str) else { continue };
                    if kind == Kind::Templates {
                        let expressions = uri.matches('{').count();
                        if expressions > MAX_TEMPLATE_EXPRESSIONS {
                            warnings.push(format!(
                                "server '{server}' lists a resource template with {expressions} expressions (more than {MAX_TEMPLATE_EXPRESSIONS}); left out"
                            ));
                            continue;
                        }
                    }
                    if routes.contains_key(uri) {
                        warnings.push(format!("{key} '{uri}' is offered by several servers; '{server}' left out"));
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
    Merged { items, routes, index, expires, rendered: Rendered::default() }
}

/// The per-server tool lists without the tools [`x_mcp_header_problem`]
/// rejects (Custom Headers from Tool Parameters: a client must exclude them
/// from `tools/list`); one line in `warnings` per tool. Lists with nothing to
/// drop are shared, not copied.
fn without_invalid_tools(per_server: &[(String, List)], warnings: &mut Vec<String>) -> Vec<(String, List)> {
    per_server
        .iter()
        .map(|(server, tools)| {
            let problem = |tool: &Value| tool.get("inputSchema").and_then(x_mcp_header_problem);
            if !tools.iter().any(|t| problem(t).is_some()) {
                return (server.clone(), tools.clone());
            }
            let kept = tools
                .iter()
                .filter(|tool| match problem(tool) {
                    None => true,
                    Some(reason) => {
                        let name = tool.get("name").and_then(Value::as_str).unwrap_or("(unnamed)");
                        warnings.push(format!("server '{server}': tool '{name}' left out of tools/list: {reason}"));
                        false
                    }
                })
                .cloned()
                .collect();
            (server.clone(), Arc::new(kept))
        })
        .collect()
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

/// One piece of a tokenized URI template.
#[derive(Debug, Clone, PartialEq)]
enum Piece<'a> {
    /// Text that must appear as is.
    Literal(&'a str),
    /// An expression: any run of characters, with `/` only when `allow_slash`.
    Var { allow_slash: bool },
}

/// Splits a template into literals and expressions; `None` when a `{` is not
/// closed or there are more than [`MAX_TEMPLATE_EXPRESSIONS`] expressions.
fn tokenize(template: &str) -> Option<Vec<Piece<'_>>> {
    let mut pieces = Vec::new();
    let mut rest = template;
    let mut expressions = 0;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            pieces.push(Piece::Literal(&rest[..open]));
        }
        let close = open + rest[open..].find('}')?;
        expressions += 1;
        if expressions > MAX_TEMPLATE_EXPRESSIONS {
            return None;
        }
        let expr = &rest[open + 1..close];
        let allow_slash = expr.starts_with('+') || expr.starts_with('/') || expr.starts_with('#');
        pieces.push(Piece::Var { allow_slash });
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Literal(rest));
    }
    Some(pieces)
}

/// Whether a URI matches an RFC 6570 template: an expression matches any run
/// of characters (possibly empty) without `/`, or with `/` for the
/// reserved/fragment/path operators `{+var}`, `{#var}`, `{/var}`. A template
/// with an unclosed `{` or more than [`MAX_TEMPLATE_EXPRESSIONS`] expressions
/// matches nothing.
///
/// Linear: the set of URI positions reachable after each piece is tracked
/// (no backtracking, no recursion), so the cost is O(pieces × (URI + literal
/// lengths)).
pub fn template_matches(template: &str, uri: &str) -> bool {
    let Some(pieces) = tokenize(template) else { return false };
    let u = uri.as_bytes();
    let n = u.len();
    // reach[p]: the pieces so far can match exactly uri[..p]. A byte position
    // inside a multi-byte character may be marked after a Var, but no literal
    // (valid UTF-8, non-empty) can start there and the end (n) is a boundary,
    // so the answer equals the character-wise one.
    let mut reach = vec![false; n + 1];
    reach[0] = true;
    for piece in &pieces {
        match piece {
            Piece::Literal(lit) => reach = advance_literal(&reach, u, lit.as_bytes()),
            Piece::Var { allow_slash: true } => {
                let Some(first) = reach.iter().position(|r| *r) else { return false };
                reach[first..].fill(true);
            }
            Piece::Var { allow_slash: false } => {
                for q in 1..=n {
                    reach[q] = reach[q] || (reach[q - 1] && u[q - 1] != b'/');
                }
            }
        }
        if !reach.contains(&true) {
            return false;
        }
    }
    reach[n]
}

/// The positions reachable after `lit` from the positions in `reach`: every
/// `p + lit.len()` where `reach[p]` and `u[p..]` starts with `lit`. Finds the
/// occurrences with Knuth–Morris–Pratt, so it is O(|u| + |lit|).
fn advance_literal(reach: &[bool], u: &[u8], lit: &[u8]) -> Vec<bool> {
    let mut next = vec![false; reach.len()];
    let m = lit.len();
    if m == 0 {
        return reach.to_vec();
    }
    // failure[i]: length of the longest proper border of lit[..=i].
    let mut failure = vec![0usize; m];
    let mut k = 0;
    for i in 1..m {
        while k > 0 && lit[i] != lit[k] {
            k = failure[k - 1];
        }
        if lit[i] == lit[k] {
            k += 1;
        }
        failure[i] = k;
    }
    let mut k = 0;
    for (i, b) in u.iter().enumerate() {
        while k > 0 && *b != lit[k] {
            k = failure[k - 1];
        }
        if *b == lit[k] {
            k += 1;
        }
        if k == m {
            let end = i + 1;
            next[end] = reach[end - m];
            k = failure[m - 1];
        }
    }
    next
}

/// One server's cached list: items shared (by `Arc`) with the views built from it.
type List = Arc<Vec<Arc<Value>>>;

/// One part of a view: the member id of its server and that server's list.
type Part = (u64, List);

/// A merged view, the naming it was built with and the parts it was built from.
struct View {
    built_from: Vec<Part>,
    naming: ToolNaming,
    merged: Arc<Merged>,
    /// The catalog's change count when its parts were last read: while the count
    /// is the same, no part was fetched or dropped since.
    changes: u64,
    /// When the first of its parts (failed ones too) goes stale.
    fresh_until: Instant,
}

/// The served set of upstreams: the upstreams in order and, beside each,
/// its member id (new for every upstream a reload creates).
struct Members {
    upstreams: Vec<Arc<Upstream>>,
    ids: Vec<u64>,
    /// Whether any of them sends per-user credentials (`${user.*}` headers);
    /// without one every list takes the shared path alone.
    per_user: bool,
}

impl Members {
    fn new(upstreams: Vec<Arc<Upstream>>, ids: Vec<u64>) -> Members {
        let per_user = upstreams.iter().any(|u| u.needs_user_tokens());
        Members { upstreams, ids, per_user }
    }
}

/// A snapshot of the catalog's upstreams ([`Catalog::upstreams`]): a
/// reload swaps the set, a snapshot taken before keeps the old one.
/// Dereferences to `[Arc<Upstream>]`; iterating it by value yields owned
/// `Arc<Upstream>`s.
#[derive(Clone)]
pub struct Upstreams(Arc<Members>);

impl std::ops::Deref for Upstreams {
    type Target = [Arc<Upstream>];
    fn deref(&self) -> &[Arc<Upstream>] {
        &self.0.upstreams
    }
}

impl IntoIterator for Upstreams {
    type Item = Arc<Upstream>;
    type IntoIter = std::vec::IntoIter<Arc<Upstream>>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.upstreams.clone().into_iter()
    }
}

impl<'a> IntoIterator for &'a Upstreams {
    type Item = &'a Arc<Upstream>;
    type IntoIter = std::slice::Iter<'a, Arc<Upstream>>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.upstreams.iter()
    }
}

/// What a catalog reads from the configuration ([`Catalog::replace`]).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Settings {
    naming: ToolNaming,
    ttl: Duration,
    fetch_budget: Duration,
}

/// Cached lists of one context key (issue 14): the parts of the servers
/// with per-user credentials fetched with that key's credentials, the merged
/// views of the callers whose first such part lives here, and this context's
/// forced-refresh throttle.
#[derive(Default)]
struct ContextLists {
    /// (server, kind) → list, single-flight per slot; a failure stays for
    /// [`FAILURE_BACKOFF`] here, for this context only.
    lists: SlotMap<(String, Kind), Cached>,
    /// Views per kind, reused while every part is the same `Arc` (parts are
    /// fetched per context, so a view built from another context's parts
    /// never matches).
    views: parking_lot::Mutex<HashMap<Kind, View>>,
    /// When an unknown name last forced a refetch of this context's lists, per kind.
    forced: parking_lot::Mutex<HashMap<Kind, Instant>>,
}

/// The per-context lists, the least recently used context evicted (with its
/// lists and views) once there are more than `cap` (`listCacheContexts`).
struct Contexts {
    cap: usize,
    lru: parking_lot::Mutex<Lru>,
}

/// Contexts by key, and their keys by last use (a tick).
#[derive(Default)]
struct Lru {
    map: HashMap<Arc<str>, (Arc<ContextLists>, u64)>,
    order: std::collections::BTreeMap<u64, Arc<str>>,
    tick: u64,
}

impl Contexts {
    /// The lists of `context_key`, created if new (evicting the least
    /// recently used context beyond the cap); marks it used. O(log n).
    fn get(&self, context_key: &str) -> Arc<ContextLists> {
        let mut guard = self.lru.lock();
        let lru = &mut *guard;
        lru.tick += 1;
        let now = lru.tick;
        if let Some((lists, used)) = lru.map.get_mut(context_key) {
            if let Some(k) = lru.order.remove(used) {
                lru.order.insert(now, k);
            }
            *used = now;
            return lists.clone();
        }
        let key: Arc<str> = Arc::from(context_key);
        let lists = Arc::new(ContextLists::default());
        lru.map.insert(key.clone(), (lists.clone(), now));
        lru.order.insert(now, key);
        while lru.map.len() > self.cap {
            let Some((_, oldest)) = lru.order.pop_first() else { break };
            lru.map.remove(&oldest);
            log::debug!("list cache: the least recently used context left ({} cached at most, listCacheContexts)", self.cap);
        }
        lists
    }

    /// Every cached context.
    fn all(&self) -> Vec<Arc<ContextLists>> {
        self.lru.lock().map.values().map(|(lists, _)| lists.clone()).collect()
    }
}

/// Where one server's list comes from for one caller.
enum Place {
    /// The shared cache (the server injects no per-user credential).
    Shared,
    /// The caller's context for that server.
    Context(Arc<ContextLists>),
    /// The caller lacks the server's tokens: nothing fetched or cached.
    Unfetchable,
}

/// Remembered warning lines at most; beyond, the memory starts again.
const MAX_WARNED: usize = 4096;

/// Log lines written at most once ([`build_view`]'s warnings: views are
/// rebuilt on every change of a part, per context; issue 14 hole 11).
#[derive(Default)]
struct WarnOnce(parking_lot::Mutex<std::collections::HashSet<String>>);

impl WarnOnce {
    /// Logs the lines not logged before; returns how many it logged.
    fn log(&self, lines: Vec<String>) -> usize {
        if lines.is_empty() {
            return 0;
        }
        let mut seen = self.0.lock();
        let mut logged = 0;
        for line in lines {
            if seen.len() >= MAX_WARNED {
                seen.clear();
            }
            if !seen.contains(&line) {
                log::warn!("{line}");
                seen.insert(line);
                logged += 1;
            }
        }
        logged
    }
}

/// Takes the forced-refresh turn of `kind` in `forced`: true at most once
/// per [`FORCED_REFRESH_INTERVAL`] (and records it).
fn claim(forced: &parking_lot::Mutex<HashMap<Kind, Instant>>, kind: Kind) -> bool {
    let mut forced = forced.lock();
    let now = Instant::now();
    match forced.get(&kind) {
        Some(last) if now.saturating_duration_since(*last) < FORCED_REFRESH_INTERVAL => false,
        _ => {
            forced.insert(kind, now);
            true
        }
    }
}

/// The merged catalog over the served set of upstreams, which a config
/// reload swaps ([`Catalog::replace`]) while requests are in flight.
///
/// Lists of servers without per-user credentials are cached once for
/// everyone. Lists of servers whose headers template user tokens
/// (`${user.*}`) are cached per context key (the key of the caller's upstream
/// sessions, `Upstream::credentials`), so every caller sees only lists
/// fetched with their own credentials (issue 14); failures, back-off and the
/// forced-refresh throttle are per context too. At most `listCacheContexts`
/// contexts are kept (least recently used evicted).
pub struct Catalog {
    members: parking_lot::RwLock<Arc<Members>>,
    settings: parking_lot::RwLock<Settings>,
    next_id: std::sync::atomic::AtomicU64,
    /// Lists of servers without per-user credentials.
    cache: SlotMap<(String, Kind), Cached>,
    /// The last merged view per kind of callers with no per-user context, and
    /// the parts it was built from: reused while every part is the same `Arc`.
    views: parking_lot::Mutex<HashMap<Kind, View>>,
    /// When an unknown name last forced a refetch of the shared lists, per kind.
    forced: parking_lot::Mutex<HashMap<Kind, Instant>>,
    /// Lists of servers with per-user credentials, per context key.
    contexts: Contexts,
    /// The part of a server the caller cannot fetch (no user tokens for it):
    /// one shared empty list, so views stay reusable.
    unfetchable: List,
    /// View warnings already logged.
    warned: WarnOnce,
    /// Counts every change of a cached list (fetched, dropped) and every
    /// reload, each counted after it is made ([`Catalog::warm`]).
    changes: std::sync::atomic::AtomicU64,
}

impl Catalog {
    /// A catalog over `upstreams` (in the order given); lists stay cached for
    /// `ttl`, one server's fetch may take `fetch_budget`, and lists of at most
    /// `max_contexts` context keys (`listCacheContexts`, ≥ 1) are kept.
    pub fn new(upstreams: Vec<Arc<Upstream>>, naming: ToolNaming, ttl: Duration, fetch_budget: Duration, max_contexts: usize) -> Catalog {
        let first_new = upstreams.len() as u64 + 1;
        let ids = (1..first_new).collect();
        Catalog {
            members: parking_lot::RwLock::new(Arc::new(Members::new(upstreams, ids))),
            settings: parking_lot::RwLock::new(Settings { naming, ttl, fetch_budget }),
            next_id: std::sync::atomic::AtomicU64::new(first_new),
            cache: SlotMap::default(),
            views: Default::default(),
            forced: Default::default(),
            contexts: Contexts { cap: max_contexts.max(1), lru: Default::default() },
            unfetchable: Arc::default(),
            warned: WarnOnce::default(),
            changes: Default::default(),
        }
    }

    /// Serves `upstreams` from now on (a config reload): an upstream already
    /// served (the same `Arc`) keeps its cached lists; the lists of every
    /// other one (removed, or replaced under the same name) are dropped and
    /// never served again, even when a fetch in flight stores one late.
    /// Views are rebuilt on next use (with the new naming). Requests in
    /// flight finish on the set they started with.
    pub fn replace(&self, upstreams: Vec<Arc<Upstream>>, naming: ToolNaming, ttl: Duration, fetch_budget: Duration) {
        let mut members = self.members.write();
        let ids: Vec<u64> = upstreams
            .iter()
            .map(|u| match members.upstreams.iter().position(|old| Arc::ptr_eq(old, u)) {
                Some(i) => members.ids[i],
                None => self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            })
            .collect();
        let live: std::collections::HashSet<(String, u64)> =
            upstreams.iter().zip(&ids).map(|(u, id)| (u.name().to_string(), *id)).collect();
        *members = Arc::new(Members::new(upstreams, ids));
        *self.settings.write() = Settings { naming, ttl, fetch_budget };
        drop(members);
        let dead = |(server, _): &(String, Kind), c: &Cached| !live.contains(&(server.clone(), c.source));
        self.cache.clear_where(dead);
        self.views.lock().clear();
        for context in self.contexts.all() {
            context.lists.clear_where(dead);
            context.views.lock().clear();
        }
        self.changed();
    }

    /// Counts a change of the cached lists, after it is made ([`Catalog::warm`]).
    fn changed(&self) {
        self.changes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// The upstream with this name.
    pub fn upstream(&self, name: &str) -> Option<Arc<Upstream>> {
        self.members.read().upstreams.iter().find(|u| u.name() == name).cloned()
    }

    /// The upstreams served now (a snapshot; see [`Upstreams`]).
    pub fn upstreams(&self) -> Upstreams {
        Upstreams(self.members.read().clone())
    }

    /// How many context keys have cached lists (≤ `listCacheContexts`).
    pub fn cached_contexts(&self) -> usize {
        self.contexts.lru.lock().map.len()
    }

    /// Drops cached lists of `server` for the kinds a `list_changed` method
    /// names — in every context, not only the one whose upstream session
    /// sent it: the notification reaches the hub without its context (a GET
    /// or listen stream is wired per server, `NotificationSink`), a change
    /// of a server's offer is rarely per user, and dropping more only costs
    /// each context one refetch, made lazily with its own credentials.
    pub fn on_notification(&self, server: &str, method: &str) {
        if let Some(kinds) = Kind::from_list_changed(method) {
            log::debug!("{method} from '{server}': cached list dropped");
            let matches = |(s, k): &(String, Kind), _: &Cached| s == server && kinds.contains(k);
            self.cache.clear_where(matches);
            if self.members.read().per_user {
                for context in self.contexts.all() {
                    context.lists.clear_where(matches);
                }
            }
            self.changed();
        }
    }

    /// Drops every cached list of one kind that did not fail, shared and in
    /// every context (forces a refetch); failed parts keep their [`FAILURE_BACKOFF`].
    pub fn invalidate(&self, kind: Kind) {
        let healthy = |(_, k): &(String, Kind), c: &Cached| *k == kind && !c.failed;
        self.cache.clear_where(healthy);
        for context in self.contexts.all() {
            context.lists.clear_where(healthy);
        }
        self.changed();
    }

    /// Whether an unknown name may force a refetch of the shared lists of
    /// `kind` now: true at most once per [`FORCED_REFRESH_INTERVAL`] per kind
    /// (and records it).
    fn claim_forced_refresh(&self, kind: Kind) -> bool {
        claim(&self.forced, kind)
    }

    /// An unknown name under `ctx`: drops the lists of `kind` the caller sees
    /// that did not fail — the shared ones at most once per
    /// [`FORCED_REFRESH_INTERVAL`], each of the caller's contexts' at most
    /// once per interval — so one user's unknown names never refetch another
    /// user's lists. Returns whether anything was dropped.
    fn force_refresh(&self, kind: Kind, ctx: &CallContext) -> bool {
        let healthy = |(_, k): &(String, Kind), c: &Cached| *k == kind && !c.failed;
        let members = self.members.read().clone();
        let mut dropped = false;
        if members.upstreams.iter().any(|u| !u.needs_user_tokens()) && self.claim_forced_refresh(kind) {
            self.cache.clear_where(healthy);
            dropped = true;
        }
        for upstream in members.upstreams.iter().filter(|u| u.needs_user_tokens()) {
            if let Place::Context(context) = self.place(upstream, ctx) {
                if claim(&context.forced, kind) {
                    context.lists.clear_where(healthy);
                    dropped = true;
                }
            }
        }
        if dropped {
            self.changed();
        }
        dropped
    }

    /// Where `upstream`'s lists come from for the caller of `ctx`.
    fn place(&self, upstream: &Upstream, ctx: &CallContext) -> Place {
        if !upstream.needs_user_tokens() {
            return Place::Shared;
        }
        match upstream.credentials(ctx) {
            Ok(creds) => Place::Context(self.contexts.get(&creds.context_key)),
            Err(_) => Place::Unfetchable,
        }
    }

    /// The merged list of `kind` over every server, as the caller of `ctx`
    /// sees it: shared parts, and the parts of servers with per-user
    /// credentials fetched with the caller's own. Cached parts are used as
    /// they are; missing or stale ones are fetched, in parallel when several.
    pub fn merged(&self, kind: Kind, ctx: &CallContext) -> Arc<Merged> {
        if let Some(view) = self.warm(kind) {
            return view;
        }
        // Read before the parts: a change made while they are read counts later.
        let changes = self.changes.load(std::sync::atomic::Ordering::SeqCst);
        let members = self.members.read().clone();
        let settings = *self.settings.read();
        // Without servers with per-user credentials every part is shared and
        // nothing is allocated for places (the warm path of issue 16).
        let places: Vec<Place> = if members.per_user { members.upstreams.iter().map(|u| self.place(u, ctx)).collect() } else { Vec::new() };
        let place = |i: usize| places.get(i).unwrap_or(&Place::Shared);
        let fresh = |id: u64| move |c: &Cached| c.source == id && c.fetched.elapsed() < c.ttl;
        let mut parts: Vec<Option<Cached>> = members
            .upstreams
            .iter()
            .zip(&members.ids)
            .enumerate()
            .map(|(i, (u, id))| match place(i) {
                Place::Shared => self.cache.get_if(&(u.name().to_string(), kind), fresh(*id)),
                Place::Context(c) => c.lists.get_if(&(u.name().to_string(), kind), fresh(*id)),
                Place::Unfetchable => Some(Cached {
                    items: self.unfetchable.clone(),
                    fetched: Instant::now(),
                    ttl: Duration::ZERO,
                    failed: true,
                    rejected: None,
                    source: *id,
                }),
            })
            .collect();
        let missing: Vec<usize> = (0..parts.len()).filter(|i| parts[*i].is_none()).collect();
        let fetch = |i: usize| {
            let slots = match place(i) {
                Place::Context(c) => &c.lists,
                _ => &self.cache,
            };
            self.server_list(&members.upstreams[i], members.ids[i], kind, ctx, &settings, slots)
        };
        match missing.as_slice() {
            [] => {}
            [one] => parts[*one] = Some(fetch(*one)),
            many => std::thread::scope(|scope| {
                let handles: Vec<_> = many.iter().map(|i| (*i, scope.spawn(move || fetch(*i)))).collect();
                for (i, h) in handles {
                    parts[i] = h.join().ok();
                }
            }),
        }
        let parts: Vec<(String, u64, Cached)> = members
            .upstreams
            .iter()
            .zip(&members.ids)
            .zip(parts)
            .filter_map(|((u, id), c)| c.map(|c| (u.name().to_string(), *id, c)))
            .collect();
        let lists: Vec<Part> = parts.iter().map(|(_, id, c)| (*id, c.items.clone())).collect();
        // A caller with per-user parts keeps views in their (first) context.
        let home = places.iter().find_map(|p| match p {
            Place::Context(c) => Some(c),
            _ => None,
        });
        let fresh_until = parts.iter().map(|(_, _, c)| c.fetched + c.ttl).min().unwrap_or_else(Instant::now);
        let mut views = home.map_or(&self.views, |c| &c.views).lock();
        if let Some(view) = views.get_mut(&kind) {
            let same = |(a, b): (&Part, &Part)| a.0 == b.0 && Arc::ptr_eq(&a.1, &b.1);
            if view.naming == settings.naming && view.built_from.len() == lists.len() && view.built_from.iter().zip(&lists).all(same) {
                (view.changes, view.fresh_until) = (changes, fresh_until);
                return view.merged.clone();
            }
        }
        let expires = parts
            .iter()
            .filter(|(_, _, c)| !c.failed)
            .map(|(_, _, c)| c.fetched + c.ttl)
            .min()
            .unwrap_or_else(Instant::now);
        let per_server: Vec<(String, List)> = parts.into_iter().map(|(s, _, c)| (s, c.items)).collect();
        let mut warnings = Vec::new();
        let view = Arc::new(build_view(kind, &per_server, settings.naming, expires, &mut warnings));
        views.insert(kind, View { built_from: lists, naming: settings.naming, merged: view.clone(), changes, fresh_until });
        drop(views);
        self.warned.log(warnings);
        view
    }

    /// The shared merged view of `kind` if it can be served without looking
    /// at its parts (the warm path of a list, issue 16): no server has
    /// per-user credentials, no cached list was fetched or dropped and no
    /// reload happened since its parts were last read (the change count),
    /// and none of them is stale yet. `None`: ask [`Catalog::merged`].
    pub fn warm(&self, kind: Kind) -> Option<Arc<Merged>> {
        let changes = self.changes.load(std::sync::atomic::Ordering::SeqCst);
        if self.members.read().per_user {
            return None;
        }
        let naming = self.settings.read().naming;
        let views = self.views.lock();
        let view = views.get(&kind)?;
        (view.changes == changes && view.naming == naming && Instant::now() < view.fresh_until).then(|| view.merged.clone())
    }

    /// One server's list of `kind` in `slots` (the shared cache or the
    /// caller's context), fetched now if missing or stale (single-flight).
    /// A failure is cached for [`FAILURE_BACKOFF`] in the same slot, so it
    /// hides the server from that context only.
    fn server_list(
        &self,
        upstream: &Upstream,
        source: u64,
        kind: Kind,
        ctx: &CallContext,
        settings: &Settings,
        slots: &SlotMap<(String, Kind), Cached>,
    ) -> Cached {
        let key = (upstream.name().to_string(), kind);
        let fresh = |c: &Cached| c.source == source && c.fetched.elapsed() < c.ttl;
        let ctx = &CallContext { deadline: ctx.deadline.min(Instant::now() + settings.fetch_budget), ..ctx.clone() };
        let fetched = slots.get_or_try_fill(&key, fresh, || -> Result<Cached, UpstreamError> {
            let ok = |items: Vec<Value>, ttl: Option<Duration>| Cached {
                items: Arc::new(items.into_iter().map(Arc::new).collect()),
                fetched: Instant::now(),
                ttl: ttl.unwrap_or(settings.ttl),
                failed: false,
                rejected: None,
                source,
            };
            let cached = match fetch_all(upstream, kind, ctx) {
                Ok((items, ttl)) if kind == Kind::Tools => {
                    upstream.note_tools(&items);
                    ok(items, ttl)
                }
                Ok((items, ttl)) => ok(items, ttl),
                Err(e) => {
                    let user = ctx.user.as_ref().map_or("-", |u| u.name.as_str());
                    let rejected = match &e {
                        UpstreamError::Rejected { status, tokens, .. } => {
                            log::warn!(
                                "{} of '{}' for user '{user}': the server rejected their {} (HTTP {status}); left out of their lists for {} s",
                                kind.method(),
                                upstream.name(),
                                tokens.join(", "),
                                FAILURE_BACKOFF.as_secs()
                            );
                            Some(*status)
                        }
                        _ if upstream.needs_user_tokens() => {
                            log::warn!(
                                "{} of '{}' for user '{user}' failed, left out of their lists for {} s: {e}",
                                kind.method(),
                                upstream.name(),
                                FAILURE_BACKOFF.as_secs()
                            );
                            None
                        }
                        _ => {
                            log::warn!("{} of '{}' failed, its items are left out for {} s: {e}", kind.method(), upstream.name(), FAILURE_BACKOFF.as_secs());
                            None
                        }
                    };
                    Cached { items: Arc::new(Vec::new()), fetched: Instant::now(), ttl: FAILURE_BACKOFF, failed: true, rejected, source }
                }
            };
            Ok(cached)
        });
        self.changed(); // a list stored (or a concurrent caller's found)
        fetched.unwrap_or_else(|_: UpstreamError| Cached { items: Arc::default(), fetched: Instant::now(), ttl: Duration::ZERO, failed: true, rejected: None, source })
    }

    /// The error to answer a caller whose name or URI is unknown when a
    /// server with per-user credentials that `may_use` accepts could not be
    /// listed for them: they lack its tokens (`MissingToken`), or it rejected
    /// their credential for a list of `kinds` (HTTP 401/403, cached for
    /// [`FAILURE_BACKOFF`]; `Rejected`). The item may well be on that server;
    /// the error names it and the token to set. `None` otherwise.
    pub fn rejection(&self, kinds: &[Kind], ctx: &CallContext, may_use: impl Fn(&str) -> bool) -> Option<UpstreamError> {
        let members = self.members.read().clone();
        if !members.per_user {
            return None;
        }
        for (u, id) in members.upstreams.iter().zip(&members.ids) {
            if !u.needs_user_tokens() || !may_use(u.name()) {
                continue;
            }
            let context = match u.credentials(ctx) {
                Ok(creds) => self.contexts.get(&creds.context_key),
                Err(missing) => return Some(missing),
            };
            for kind in kinds {
                let rejected = context.lists.get_if(&(u.name().to_string(), *kind), |c| c.source == *id && c.fetched.elapsed() < c.ttl);
                if let Some(status) = rejected.and_then(|c| c.rejected) {
                    return Some(u.rejected(status));
                }
            }
        }
        None
    }

    /// Resolves an exposed tool or prompt name in the caller's view. When the
    /// name is unknown (a tool may have appeared since the last fetch) the
    /// caller's lists of `kind` are refetched, but at most once per
    /// [`FORCED_REFRESH_INTERVAL`] for the shared lists and per context
    /// however many unknown names arrive, and failed parts keep their
    /// [`FAILURE_BACKOFF`] (`force_refresh`). Within the interval the view
    /// is only looked at again (which waits for a refetch in flight).
    pub fn route_name(&self, kind: Kind, exposed: &str, ctx: &CallContext) -> Option<Route> {
        if let Some(r) = self.merged(kind, ctx).routes.get(exposed) {
            return Some(r.clone());
        }
        if self.force_refresh(kind, ctx) {
            log::debug!("unknown {} name '{exposed}': refetching {}", kind.field(), kind.method());
        }
        self.merged(kind, ctx).routes.get(exposed).cloned()
    }

    /// The server owning a resource URI in the caller's view: an exact
    /// resource first, then the first matching template (server order, then
    /// list order). `None` for a URI longer than [`MAX_URI_LEN`] or one
    /// nothing matches.
    pub fn route_uri(&self, uri: &str, ctx: &CallContext) -> Option<String> {
        if uri.len() > MAX_URI_LEN {
            return None;
        }
        if let Some(r) = self.merged(Kind::Resources, ctx).routes.get(uri) {
            return Some(r.server.clone());
        }
        let templates = self.merged(Kind::Templates, ctx);
        templates
            .items
            .iter()
            .filter_map(|it| it.get("uriTemplate").and_then(Value::as_str))
            .filter(|t| template_matches(t, uri))
            .find_map(|t| templates.routes.get(t).map(|r| r.server.clone()))
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

    fn lists(v: Vec<(&str, Value)>) -> Vec<(String, List)> {
        v.into_iter().map(|(s, l)| (s.to_string(), Arc::new(l.as_array().cloned().unwrap().into_iter().map(Arc::new).collect()))).collect()
    }

    #[test]
    fn unique_names_pass_unchanged_and_collisions_get_both_prefixes() {
        let input = lists(vec![
            ("github", json!([{"name": "get_issue", "inputSchema": {"type": "object", "x-extra": 1}}, {"name": "echo"}])),
            ("mock", json!([{"name": "echo", "annotations": {"readOnlyHint": true}}, {"name": "counter"}])),
        ]);
        let (items, routes) = expose_names(&input, ToolNaming::Auto, "tool", &mut Vec::new());
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
        let (items, routes) = expose_names(&input, ToolNaming::Prefix, "tool", &mut Vec::new());
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
        let (items, _) = expose_names(&input, ToolNaming::Auto, "tool", &mut Vec::new());
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

    #[test]
    fn uri_template_matching_is_exact() {
        // adjacent expressions
        assert!(template_matches("x://{a}{b}", "x://12"));
        assert!(template_matches("x://{a}{b}", "x://"));
        assert!(!template_matches("x://{a}{b}", "x://1/2"));
        assert!(template_matches("x://{a}{+b}", "x://1/2"));
        // literals after expressions, including ones that also occur inside
        assert!(template_matches("x://{a}.json", "x://a.b.json"));
        assert!(!template_matches("x://{a}.json", "x://a.json.x"));
        assert!(template_matches("x://{a}-{b}-end", "x://1-2-3-end"));
        assert!(!template_matches("x://{a}-{b}-end", "x://1-2/3-end"));
        assert!(template_matches("x://{a}abab", "x://ababab"));
        assert!(!template_matches("x://{a}abab", "x://aba"));
        // {+path}, {#frag}, {/seg} span slashes
        assert!(template_matches("file:///{+path}/meta", "file:///a/b/c/meta"));
        assert!(!template_matches("file:///{+path}/meta", "file:///a/b/c/data"));
        assert!(template_matches("x://h{#f}", "x://h#a/b"));
        assert!(template_matches("x://h{/seg}", "x://h/a/b"));
        assert!(template_matches("x://{+a}{b}", "x://1/2/3"));
        // empty expressions
        assert!(template_matches("mock://item/{id}", "mock://item/"));
        assert!(template_matches("{a}", ""));
        assert!(!template_matches("{a}", "/"));
        // literal-only and malformed templates
        assert!(template_matches("x://fixed", "x://fixed"));
        assert!(!template_matches("x://fixed", "x://fixed2"));
        assert!(!template_matches("x://{a", "x://{a"));
        assert!(template_matches("x://{a}/", "x://é日本/"));
        assert!(!template_matches("x://{a}é", "x://aa"));
        // too many expressions match nothing
        let many = "{a}".repeat(MAX_TEMPLATE_EXPRESSIONS + 1);
        assert!(!template_matches(&many, "x"));
        assert!(template_matches(&"{a}".repeat(MAX_TEMPLATE_EXPRESSIONS), "x"));
    }

    #[test]
    fn huge_uris_and_many_expressions_stay_linear() {
        // each of these took exponential time (or overflowed the stack) before
        let tpl = format!("mock://item/{}", "{a}".repeat(20));
        let mut uri = format!("mock://item/{}", "a".repeat(1 << 20));
        assert!(template_matches(&tpl, &uri));
        uri.push('/');
        assert!(!template_matches(&tpl, &uri));
        assert!(!template_matches("mock://item/{id}", &uri));
        let with_tail = format!("{tpl}/x");
        assert!(!template_matches(&with_tail, &uri));
        uri.push('x');
        assert!(template_matches(&with_tail, &uri));
        let huge_template = "{a}".repeat(100_000);
        assert!(!template_matches(&huge_template, "abc"));
        // a long literal repeated in the URI
        let lit = "ab".repeat(500);
        assert!(!template_matches(&format!("{{a}}{lit}c"), &"ab".repeat(1 << 19)));
        assert!(template_matches(&format!("{{a}}{lit}"), &"ab".repeat(1 << 19)));
    }

    fn tool(name: &str, schema: Value) -> Value {
        json!({"name": name, "inputSchema": schema})
    }

    #[test]
    fn tools_with_invalid_x_mcp_headers_are_left_out_of_the_view() {
        let good = json!({"type": "object", "properties": {"region": {"type": "string", "x-mcp-header": "Region"}}});
        let bad = json!({"type": "object", "properties": {"n": {"type": "number", "x-mcp-header": "N"}}});
        let input = lists(vec![
            ("a", Value::Array(vec![tool("ok", good.clone()), tool("bad", bad.clone()), json!({"name": "plain"})])),
            ("b", Value::Array(vec![tool("other", good)])),
        ]);
        let view = build_view(Kind::Tools, &input, ToolNaming::Auto, Instant::now(), &mut Vec::new());
        let names: Vec<&str> = view.items.iter().map(|i| i["name"].as_str().unwrap()).collect();
        assert_eq!(names, vec!["ok", "plain", "other"]);
        assert!(!view.routes.contains_key("bad"));
        // an untouched list is shared, not copied
        assert!(Arc::ptr_eq(&without_invalid_tools(&input, &mut Vec::new())[1].1, &input[1].1));
        // prompts are not checked
        let prompts = lists(vec![("a", Value::Array(vec![tool("p", bad)]))]);
        assert_eq!(build_view(Kind::Prompts, &prompts, ToolNaming::Auto, Instant::now(), &mut Vec::new()).items.len(), 1);
    }

    #[test]
    fn templates_with_too_many_expressions_are_left_out_of_the_view() {
        let many = format!("x://{}", "{a}".repeat(MAX_TEMPLATE_EXPRESSIONS + 1));
        let input = lists(vec![("a", json!([{"uriTemplate": many}, {"uriTemplate": "x://{id}"}]))]);
        let view = build_view(Kind::Templates, &input, ToolNaming::Auto, Instant::now(), &mut Vec::new());
        assert_eq!(view.items.len(), 1);
        assert_eq!(view.items[0]["uriTemplate"], "x://{id}");
    }

    fn part(failed: bool) -> Cached {
        Cached { items: Arc::default(), fetched: Instant::now(), ttl: Duration::from_secs(60), failed, rejected: None, source: 0 }
    }

    #[test]
    fn unknown_names_force_a_refetch_at_most_every_interval_and_spare_failed_parts() {
        let catalog = Catalog::new(Vec::new(), ToolNaming::Auto, Duration::from_secs(60), Duration::from_secs(1), 1000);
        for (server, kind, failed) in
            [("up", Kind::Tools, false), ("down", Kind::Tools, true), ("up", Kind::Prompts, false), ("down", Kind::Prompts, true)]
        {
            let _ = catalog.cache.get_or_try_fill(&(server.to_string(), kind), |_| true, || Ok::<_, ()>(part(failed)));
        }
        let keys = |c: &Catalog| {
            let mut k: Vec<(String, Kind)> = c.cache.snapshot().into_iter().map(|(k, _)| k).collect();
            k.sort_by_key(|(s, k)| (s.clone(), k.method()));
            k
        };
        // invalidation drops the healthy part of that kind only
        catalog.invalidate(Kind::Tools);
        assert_eq!(
            keys(&catalog),
            vec![("down".to_string(), Kind::Prompts), ("down".to_string(), Kind::Tools), ("up".to_string(), Kind::Prompts)]
        );
        // one forced refresh per kind per interval
        assert!(catalog.claim_forced_refresh(Kind::Tools));
        for _ in 0..20 {
            assert!(!catalog.claim_forced_refresh(Kind::Tools));
        }
        assert!(catalog.claim_forced_refresh(Kind::Prompts));
        assert!(!catalog.claim_forced_refresh(Kind::Prompts));
        catalog.forced.lock().insert(Kind::Tools, Instant::now() - FORCED_REFRESH_INTERVAL);
        assert!(catalog.claim_forced_refresh(Kind::Tools));
        // with no upstreams an unknown name is simply unknown
        let ctx = CallContext::shared(Instant::now() + Duration::from_secs(1));
        assert_eq!(catalog.route_name(Kind::Tools, "nope", &ctx), None);
        // a list_changed drops that server's parts, failed or not
        catalog.on_notification("down", "notifications/prompts/list_changed");
        assert_eq!(keys(&catalog), vec![("down".to_string(), Kind::Tools), ("up".to_string(), Kind::Prompts)]);
    }

    fn gh_upstream() -> Arc<Upstream> {
        let text = json!({"mcpServers": {"gh": {"url": "http://127.0.0.1:9/mcp", "protocol": "modern",
            "headers": {"Authorization": "Bearer ${user.GITHUB_TOKEN}"}}}});
        let cfg = crate::config::Config::parse(&text.to_string()).unwrap();
        let store: Arc<dyn crate::store::SessionStore> = Arc::new(crate::store::memory::MemoryStore::new());
        Arc::new_cyclic(|me| Upstream::new(cfg.servers[0].clone(), 1, store, Duration::from_secs(60), me.clone()))
    }

    fn user_ctx(name: &str, token: Option<&str>) -> CallContext {
        let tokens = token.map(|t| ("GITHUB_TOKEN".to_string(), crate::users::Secret::new(t))).into_iter().collect();
        let user = crate::users::User { name: name.into(), admin: false, servers: None, tokens };
        CallContext { user: Some(Arc::new(user)), ..CallContext::shared(Instant::now() + Duration::from_secs(5)) }
    }

    /// Stores `items` (or a failure rejected with `rejected`) as the caller's
    /// `kind` list of `gh` (member id 1), as a fetch would.
    fn prime(catalog: &Catalog, up: &Upstream, ctx: &CallContext, kind: Kind, items: Value, rejected: Option<u16>) {
        let Place::Context(context) = catalog.place(up, ctx) else { panic!("the caller has a context for gh") };
        let cached = Cached {
            items: Arc::new(items.as_array().cloned().unwrap().into_iter().map(Arc::new).collect()),
            fetched: Instant::now(),
            ttl: if rejected.is_some() { FAILURE_BACKOFF } else { Duration::from_secs(60) },
            failed: rejected.is_some(),
            rejected,
            source: 1,
        };
        context.lists.clear_where(|(_, k), _| *k == kind);
        let _ = context.lists.get_or_try_fill(&("gh".to_string(), kind), |_| true, || Ok::<_, ()>(cached));
    }

    fn tool_names(view: &Merged) -> Vec<&str> {
        view.items.iter().map(|t| t["name"].as_str().unwrap()).collect()
    }

    #[test]
    fn per_user_lists_and_views_are_kept_per_context_and_never_cross() {
        let up = gh_upstream();
        let catalog = Catalog::new(vec![up.clone()], ToolNaming::Auto, Duration::from_secs(60), Duration::from_secs(1), 1000);
        let (alice, bob, carol) = (user_ctx("alice", Some("ta")), user_ctx("bob", Some("tb")), user_ctx("carol", Some("ta")));
        prime(&catalog, &up, &alice, Kind::Tools, json!([{"name": "alice_repo"}]), None);
        prime(&catalog, &up, &bob, Kind::Tools, json!([{"name": "bob_repo"}]), None);
        assert_eq!(catalog.cached_contexts(), 2);
        for _ in 0..3 {
            let a = catalog.merged(Kind::Tools, &alice);
            assert_eq!(tool_names(&a), vec!["alice_repo"]);
            assert_eq!(tool_names(&catalog.merged(Kind::Tools, &bob)), vec!["bob_repo"]);
            // alice's view is reused (not rebuilt) although bob's came between
            assert!(Arc::ptr_eq(&a, &catalog.merged(Kind::Tools, &alice)));
        }
        // the same token value is the same context (docs/decisions.md D3): carol shares alice's lists
        assert_eq!(tool_names(&catalog.merged(Kind::Tools, &carol)), vec!["alice_repo"]);
        assert_eq!(catalog.cached_contexts(), 2);
        // routing uses the caller's lists
        assert_eq!(catalog.route_name(Kind::Tools, "alice_repo", &alice).map(|r| r.server), Some("gh".into()));
        assert_eq!(catalog.route_name(Kind::Tools, "alice_repo", &bob), None);
        // a caller without the token gets nothing fetched, no context
        let erin = user_ctx("erin", None);
        assert!(catalog.merged(Kind::Tools, &erin).items.is_empty());
        assert_eq!(catalog.cached_contexts(), 2);
    }

    #[test]
    fn the_least_recently_used_context_is_evicted_beyond_the_cap() {
        let up = gh_upstream();
        let catalog = Catalog::new(vec![up.clone()], ToolNaming::Auto, Duration::from_secs(60), Duration::from_secs(1), 2);
        let (a, b, c) = (user_ctx("a", Some("1")), user_ctx("b", Some("2")), user_ctx("c", Some("3")));
        prime(&catalog, &up, &a, Kind::Tools, json!([{"name": "a_tool"}]), None);
        prime(&catalog, &up, &b, Kind::Tools, json!([{"name": "b_tool"}]), None);
        assert_eq!(tool_names(&catalog.merged(Kind::Tools, &a)), vec!["a_tool"]); // a used last: b is the oldest
        prime(&catalog, &up, &c, Kind::Tools, json!([{"name": "c_tool"}]), None);
        assert_eq!(catalog.cached_contexts(), 2);
        let keys: Vec<String> = catalog.contexts.lru.lock().map.keys().map(|k| k.to_string()).collect();
        let key_of = |ctx: &CallContext| up.credentials(ctx).unwrap().context_key;
        assert!(keys.contains(&key_of(&a)) && keys.contains(&key_of(&c)) && !keys.contains(&key_of(&b)), "{keys:?}");
        // the evicted context's lists and views are gone: nothing primed is left for b
        let Place::Context(fresh) = catalog.place(&up, &b) else { panic!() };
        assert!(fresh.lists.snapshot().is_empty() && fresh.views.lock().is_empty());
        assert_eq!(catalog.cached_contexts(), 2);
    }

    #[test]
    fn failures_forced_refreshes_and_rejections_stay_in_their_context() {
        let up = gh_upstream();
        let catalog = Catalog::new(vec![up.clone()], ToolNaming::Auto, Duration::from_secs(60), Duration::from_secs(1), 1000);
        let (alice, bob) = (user_ctx("alice", Some("ta")), user_ctx("bob", Some("bad")));
        prime(&catalog, &up, &alice, Kind::Tools, json!([{"name": "alice_repo"}]), None);
        prime(&catalog, &up, &bob, Kind::Tools, json!([]), Some(401));
        // bob's rejected credential: his error names the server and the token; alice has none
        let e = catalog.rejection(&[Kind::Tools], &bob, |_| true).expect("bob's list was rejected");
        assert_eq!(e.to_string(), "server 'gh' rejected your GITHUB_TOKEN (HTTP 401): update it with PUT /api/me/tokens/GITHUB_TOKEN");
        assert!(catalog.rejection(&[Kind::Tools], &alice, |_| true).is_none());
        assert!(catalog.merged(Kind::Tools, &bob).items.is_empty());
        // bob's unknown names drop his healthy lists only, never alice's; his failed part keeps its back-off
        prime(&catalog, &up, &bob, Kind::Prompts, json!([{"name": "p"}]), None);
        assert!(catalog.force_refresh(Kind::Prompts, &bob));
        assert!(!catalog.force_refresh(Kind::Prompts, &bob), "one forced refresh per context per interval");
        let Place::Context(b) = catalog.place(&up, &bob) else { panic!() };
        assert!(b.lists.get_if(&("gh".to_string(), Kind::Prompts), |_| true).is_none());
        assert!(catalog.force_refresh(Kind::Tools, &bob));
        assert!(b.lists.get_if(&("gh".to_string(), Kind::Tools), |_| true).is_some_and(|c| c.rejected == Some(401)));
        let Place::Context(a) = catalog.place(&up, &alice) else { panic!() };
        assert!(a.lists.get_if(&("gh".to_string(), Kind::Tools), |_| true).is_some());
        // alice's own forced refresh is not throttled by bob's
        assert!(catalog.force_refresh(Kind::Tools, &alice));
        assert!(a.lists.get_if(&("gh".to_string(), Kind::Tools), |_| true).is_none());
        // a list_changed drops that server's lists in every context
        prime(&catalog, &up, &alice, Kind::Tools, json!([{"name": "alice_repo"}]), None);
        catalog.on_notification("gh", "notifications/tools/list_changed");
        assert!(a.lists.snapshot().is_empty() && b.lists.snapshot().is_empty());
    }

    #[test]
    fn view_warnings_are_logged_once_per_line() {
        let input = lists(vec![("a", json!([{"name": "x"}])), ("b", json!([{"name": "x"}, {"uri": "no name"}]))]);
        let warned = WarnOnce::default();
        for round in 0..3 {
            let mut warnings = Vec::new();
            build_view(Kind::Tools, &input, ToolNaming::Auto, Instant::now(), &mut warnings);
            assert_eq!(warnings.len(), 3, "{warnings:?}"); // two collisions, one nameless tool
            assert_eq!(warned.log(warnings), if round == 0 { 3 } else { 0 });
        }
    }

    #[test]
    fn written_items_are_kept_per_caller_view_at_most_eight() {
        let input = lists(vec![("a", json!([{"name": "x"}]))]);
        let view = build_view(Kind::Tools, &input, ToolNaming::Auto, Instant::now(), &mut Vec::new());
        let renders = std::cell::Cell::new(0);
        let render = |text: &str| {
            renders.set(renders.get() + 1);
            RawValue::from_string(text.to_string()).unwrap()
        };
        let all = view.rendered(&[], || render("[1]"));
        assert!(Arc::ptr_eq(&all, &view.rendered(&[], || render("[2]"))), "written once");
        assert_eq!(view.rendered(&["b"], || render("[3]")).get(), "[3]", "another view of the callers");
        assert_eq!(renders.get(), 2);
        // the cap: nine more views push out the least recently used ones
        let names: Vec<String> = (0..MAX_RENDERED_VIEWS + 1).map(|i| format!("s{i}")).collect();
        for n in &names {
            view.rendered(&[n.as_str()], || render("[0]"));
        }
        assert_eq!(view.rendered.0.lock().len(), MAX_RENDERED_VIEWS);
        assert_eq!(view.rendered(&[], || render("[4]")).get(), "[4]", "the oldest view was dropped");
        assert_eq!(view.rendered(&[names[8].as_str()], || render("[5]")).get(), "[0]", "a recent one kept");
    }

    #[test]
    fn over_long_uris_are_not_routed() {
        let catalog = Catalog::new(Vec::new(), ToolNaming::Auto, Duration::from_secs(60), Duration::from_secs(1), 1000);
        let ctx = CallContext::shared(Instant::now() + Duration::from_secs(1));
        let long = format!("x://{}", "a".repeat(MAX_URI_LEN));
        assert_eq!(catalog.route_uri(&long, &ctx), None);
    }
}
