//! One function per MCP method, each the same shape: read params, decide the
//! route, call upstream(s), shape the result for the client's era.

use super::refusal::{self, Refusal};
use super::relay::{self, finish};
use super::shape::{self, Rewrite, LOG_LEVELS};
use super::{Downstream, Hub, SESSION_HEADER};
use crate::catalog::{Catalog, Kind, Merged};
use crate::http::{Response, SseSink};
use crate::protocol::{era, headers, jsonrpc, Era, ErrorObject};
use crate::upstream::cancel::CallHandle;
use crate::upstream::{self as upstream_api, Upstream};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use std::borrow::Cow;
use std::sync::Arc;

type MethodResult = Result<Value, ErrorObject>;

/// HTTP 429, `Retry-After: N` and the limit's JSON-RPC error
/// ([`Refusal::RateLimited`]; `id` null when `None`).
pub fn rate_limited(limited: &crate::limits::Limited, id: Option<&Value>) -> Response {
    Refusal::RateLimited(limited.clone()).response(id)
}

fn invalid_params(msg: impl Into<String>) -> ErrorObject {
    Refusal::InvalidParams(msg.into()).error()
}

/// The capabilities the hub offers downstream: change notifications reach
/// legacy clients on their GET stream and 2026-07-28 clients on
/// `subscriptions/listen` ([`super::listen`]). Tasks only when an upstream of
/// the client's era has them ([`super::tasks::advertise`]).
fn capabilities(config: &crate::config::Config, catalog: &Catalog, tasks: &super::tasks::Tasks, era: Era) -> Value {
    let mut caps = base_capabilities();
    super::tasks::advertise(config, catalog, tasks, era, &mut caps);
    caps
}

fn base_capabilities() -> Value {
    json!({
        "tools": {"listChanged": true},
        "prompts": {"listChanged": true},
        "resources": {"listChanged": true, "subscribe": true},
        "completions": {},
        "logging": {},
    })
}

fn server_info() -> Value {
    json!({"name": "mcphub", "title": "MCPHub", "version": env!("CARGO_PKG_VERSION")})
}

/// Answers one request. Unknown methods answer `-32601` at once (HTTP 404 for
/// modern clients per 2026-07-28 streamable-http, 200 for legacy ones).
pub fn dispatch(hub: &Hub, down: &Downstream, id: Value, method: &str, params: Map<String, Value>) -> Response {
    let outcome = match method {
        "initialize" => return initialize(hub.sessions(), &hub.config(), hub.catalog(), hub.tasks(), down, &id, &params),
        "server/discover" => Ok(json!({
            "supportedVersions": era::supported_versions(),
            "capabilities": capabilities(&hub.config(), hub.catalog(), hub.tasks(), Era::Modern),
            "serverInfo": server_info(),
            "instructions": "MCPHub: the tools, prompts and resources of several MCP servers behind one endpoint.",
            // DiscoverResult is cacheable (2026-07-28 schema) and names the server in _meta.
            "ttlMs": 60_000,
            "cacheScope": "public",
            "_meta": {crate::protocol::META_SERVER_INFO: server_info()},
        })),
        // ping and logging/setLevel are legacy-only (removed in 2026-07-28: 404 + -32601 below).
        "ping" if down.era == Era::Legacy => Ok(json!({})),
        "tools/list" => return list(hub.catalog(), down, &id, Kind::Tools),
        "prompts/list" => return list(hub.catalog(), down, &id, Kind::Prompts),
        "resources/list" => return list(hub.catalog(), down, &id, Kind::Resources),
        "resources/templates/list" => return list(hub.catalog(), down, &id, Kind::Templates),
        "offerings/list" => Ok(offerings(hub.catalog(), down)),
        "logging/setLevel" if down.era == Era::Legacy => set_level(hub.sessions(), down, &params),
        "tools/call" => return call_routed(hub, down, id, method, params, Kind::Tools),
        "prompts/get" => return call_routed(hub, down, id, method, params, Kind::Prompts),
        "resources/read" => return read_resource(hub, down, id, params),
        "completion/complete" => return complete(hub, down, id, params),
        m if m.starts_with("tasks/") => return super::tasks::handle(hub, down, id, m, params),
        "resources/subscribe" | "resources/unsubscribe" if down.era == Era::Legacy => {
            return subscription(hub.catalog(), hub.sessions(), hub.subscriptions(), hub.listen_streams(), down, id, method, params)
        }
        "subscriptions/listen" if down.era == Era::Modern => return super::listen::listen(hub, down, id, params),
        _ => return Refusal::MethodNotFound { method: method.to_string(), era: down.era }.response(Some(&id)),
    };
    respond(down.era, &id, outcome)
}

/// A JSON response for a result or an error, shaped for the era.
fn respond(era: Era, id: &Value, outcome: MethodResult) -> Response {
    match outcome {
        Ok(result) => Response::json(200, &jsonrpc::result_response(id, shape::result(era, result))),
        Err(e) => Response::json(200, &e.to_response(Some(id))),
    }
}

/// Creates the legacy client session; answers the capabilities
/// ([`capabilities`]: the config, the catalog and the tasks decide them).
fn initialize(
    sessions: &super::sessions::ClientSessions,
    config: &crate::config::Config,
    catalog: &Catalog,
    tasks: &super::tasks::Tasks,
    down: &Downstream,
    id: &Value,
    params: &Map<String, Value>,
) -> Response {
    let requested = params.get("protocolVersion").and_then(Value::as_str);
    if requested.is_none() {
        let err = invalid_params("initialize needs params.protocolVersion");
        return Response::json(200, &err.to_response(Some(id)));
    }
    let version = era::negotiate_legacy(requested);
    let created = sessions.create(
        version,
        params.get("clientInfo").cloned().unwrap_or(json!({})),
        params.get("capabilities").cloned().unwrap_or(json!({})),
        down.user.as_ref().map(|u| u.name.clone()),
    );
    let session = match created {
        Ok(s) => s,
        Err(full) => {
            log::warn!("initialize refused: {full}");
            return Refusal::SessionsFull(full.to_string()).response(Some(id));
        }
    };
    let result = json!({
        "protocolVersion": version,
        "capabilities": capabilities(config, catalog, tasks, Era::Legacy),
        "serverInfo": server_info(),
        "instructions": "MCPHub: the tools, prompts and resources of several MCP servers behind one endpoint.",
    });
    log::info!("client session created (version {version}, client {})", session.client_info.get("name").and_then(Value::as_str).unwrap_or("?"));
    Response::json(200, &jsonrpc::result_response(id, result)).with_header(SESSION_HEADER, &session.id)
}

/// Whether the caller may see and use `upstream`: its allow-list, and every
/// service token the server's templates need (docs/decisions.md D6).
pub fn visible(upstream: &Upstream, user: Option<&crate::users::User>) -> bool {
    super::auth::may_use(user, upstream.name()) && upstream.missing_tokens(user).is_empty()
}

/// The servers whose items the caller may not see, in server order: not
/// [`visible`] to them.
fn hidden_servers<'a>(upstreams: &'a crate::catalog::Upstreams, user: Option<&crate::users::User>) -> Vec<&'a str> {
    upstreams.iter().filter(|u| !visible(u, user)).map(|u| u.name()).collect()
}

/// The field naming an item of `kind` (its route key).
fn item_key(kind: Kind) -> &'static str {
    match kind {
        Kind::Resources => "uri",
        Kind::Templates => "uriTemplate",
        Kind::Tools | Kind::Prompts => "name",
    }
}

/// Whether `item` of `merged` is on a server in `hidden`, or on none.
fn is_hidden(kind: Kind, merged: &Merged, hidden: &[&str], item: &Value) -> bool {
    let server = item.get(item_key(kind)).and_then(Value::as_str).and_then(|k| merged.routes.get(k)).map(|r| r.server.as_str());
    server.is_none_or(|s| hidden.contains(&s))
}

/// The items of a merged list the caller may see (all of them, cloned, when
/// every server is visible to them).
fn visible_items(catalog: &Catalog, down: &Downstream, kind: Kind, merged: &Merged) -> Vec<Value> {
    let upstreams = catalog.upstreams();
    let hidden = hidden_servers(&upstreams, down.user.as_deref());
    merged.items.iter().filter(|it| hidden.is_empty() || !is_hidden(kind, merged, &hidden, it)).map(|v| Value::clone(v)).collect()
}

/// `item` as listed: a server's `heavyTools` marked `execution.taskSupport:
/// "optional"` (absent means "forbidden": a 2025-11-25 client must not ask
/// for a task otherwise; SEP-2663 uses the same field), since the hub runs
/// them as tasks (`tasks::heavy`); a tool the server itself marks "required"
/// keeps it.
fn mark_heavy<'a>(upstreams: &crate::catalog::Upstreams, merged: &Merged, item: &'a Value) -> Cow<'a, Value> {
    let route = item.get("name").and_then(Value::as_str).and_then(|n| merged.routes.get(n));
    let heavy = route.is_some_and(|r| upstreams.iter().find(|u| u.name() == r.server).is_some_and(|u| u.config.heavy_tools.matches(&r.original)));
    if !heavy || crate::protocol::jsonrpc::at(item, &["execution", "taskSupport"]).and_then(Value::as_str) == Some("required") {
        return Cow::Borrowed(item);
    }
    let mut item = item.clone();
    if let Some(obj) = item.as_object_mut() {
        let execution = obj.entry("execution").or_insert_with(|| json!({}));
        if !execution.is_object() {
            *execution = json!({});
        }
        execution["taskSupport"] = json!("optional");
    }
    Cow::Owned(item)
}

/// The items of `merged` a caller without the `hidden` servers sees, heavy
/// tools marked ([`mark_heavy`]), serialised as a JSON array.
fn render_items(upstreams: &crate::catalog::Upstreams, kind: Kind, merged: &Merged, hidden: &[&str]) -> Box<RawValue> {
    let heavy = kind == Kind::Tools && upstreams.iter().any(|u| !u.config.heavy_tools.0.is_empty());
    let items: Vec<Cow<Value>> = merged
        .items
        .iter()
        .filter(|it| hidden.is_empty() || !is_hidden(kind, merged, hidden, it))
        .map(|it| if heavy { mark_heavy(upstreams, merged, it) } else { Cow::Borrowed(&**it) })
        .collect();
    serde_json::value::to_raw_value(&items).unwrap_or_else(|e| {
        log::warn!("{} could not be written ({e}); answered empty", kind.method());
        RawValue::from_string("[]".into()).expect("[] is JSON")
    })
}

/// A list method's result with its items already written: `{"<field>":
/// items}` and, for a 2026-07-28 client, the cache hints (SEP-2549) and the
/// `resultType` [`shape::result`] gives every modern result, in that order.
struct ListResult<'a> {
    field: &'static str,
    items: &'a RawValue,
    /// `ttlMs` for a modern client; `None` for a legacy one.
    modern_ttl_ms: Option<u64>,
}

impl serde::Serialize for ListResult<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry(self.field, self.items)?;
        if let Some(ttl_ms) = self.modern_ttl_ms {
            map.serialize_entry("ttlMs", &ttl_ms)?;
            map.serialize_entry("cacheScope", "private")?;
            map.serialize_entry("resultType", "complete")?;
        }
        map.end()
    }
}

/// `tools/list`, `prompts/list`, `resources/list`, `resources/templates/list`:
/// every page of every visible server in one answer (no `nextCursor`; a
/// client's `cursor` is ignored). The items are written once per merged
/// view and caller view ([`Merged::rendered`]); an answer copies them into
/// its envelope, the bytes `serde_json::to_vec` gives for the result as a
/// `Value` (tests/core_lists.rs).
fn list(catalog: &Catalog, down: &Downstream, id: &Value, kind: Kind) -> Response {
    // Warm: no call context to build.
    let merged = catalog.warm(kind).unwrap_or_else(|| catalog.merged(kind, &down.call_context()));
    let upstreams = catalog.upstreams();
    let hidden = hidden_servers(&upstreams, down.user.as_deref());
    let items = merged.rendered(&hidden, || render_items(&upstreams, kind, &merged, &hidden));
    let result = ListResult { field: kind.field(), items: &items, modern_ttl_ms: (down.era == Era::Modern).then(|| merged.ttl_ms()) };
    // The envelope and the hints are < 128 bytes; a long id grows the buffer once.
    Response::json_bytes(200, jsonrpc::result_bytes(id, &result, items.get().len() + 128))
}

fn offerings(catalog: &Catalog, down: &Downstream) -> Value {
    let c = down.call_context();
    json!({
        "tools": visible_items(catalog, down, Kind::Tools, &catalog.merged(Kind::Tools, &c)),
        "prompts": visible_items(catalog, down, Kind::Prompts, &catalog.merged(Kind::Prompts, &c)),
        "resources": visible_items(catalog, down, Kind::Resources, &catalog.merged(Kind::Resources, &c)),
    })
}

fn set_level(sessions: &super::sessions::ClientSessions, down: &Downstream, params: &Map<String, Value>) -> MethodResult {
    let level = params.get("level").and_then(Value::as_str).filter(|l| LOG_LEVELS.contains(l));
    let Some(level) = level else {
        return Err(invalid_params(format!("params.level must be one of {}", LOG_LEVELS.join(", "))));
    };
    // Recorded per client (and in its Redis record, docs/cluster.md §1); a shared
    // upstream session is never changed (docs/decisions.md D5).
    if let Some(s) = &down.session {
        sessions.set_log_level(s, level);
    }
    Ok(json!({}))
}

fn call_routed(hub: &Hub, down: &Downstream, id: Value, method: &str, mut params: Map<String, Value>, kind: Kind) -> Response {
    let Some(name) = params.get("name").and_then(Value::as_str).map(str::to_string) else {
        return respond(down.era, &id, Err(invalid_params(format!("{method} needs params.name"))));
    };
    let c = down.call_context();
    // One view serves the route and the tool's schema; an unknown name goes
    // through route_name, which may refresh the lists (throttled), once.
    let mut view = hub.catalog().merged(kind, &c);
    if !view.routes.contains_key(&name) && hub.catalog().route_name(kind, &name, &c).is_some() {
        view = hub.catalog().merged(kind, &c);
    }
    // A server the user may not use is not there for them at all; one
    // missing a token answers (upstream) with the token to set.
    let route = view.routes.get(&name).filter(|r| super::auth::may_use(down.user.as_deref(), &r.server)).cloned();
    let Some(route) = route else {
        // A server this caller lacks a token for, or that rejected theirs,
        // may well have it: say which token to set (issue 14).
        let may_use = |s: &str| super::auth::may_use(down.user.as_deref(), s);
        if let Some(e) = hub.catalog().rejection(&[kind], &c, may_use) {
            return Response::json(200, &finish(down.era, &id, Err(e)));
        }
        let what = if kind == Kind::Tools { "tool" } else { "prompt" };
        return respond(down.era, &id, Err(invalid_params(format!("Unknown {what}: {name}"))));
    };
    let Some(upstream) = hub.catalog().upstream(&route.server) else {
        return respond(down.era, &id, Err(invalid_params(format!("Unknown server for {name}"))));
    };
    let mut extra_headers = Vec::new();
    if kind == Kind::Tools {
        let schema = view.item(&name).and_then(|t| t.get("inputSchema")).unwrap_or(&Value::Null);
        let no_arguments = json!({});
        let arguments = params.get("arguments").unwrap_or(&no_arguments);
        if down.era == Era::Modern {
            if let Err(e) = headers::validate_params(|n| down.header(n), schema, arguments) {
                return Refusal::HeaderMismatch(e).response(Some(&id));
            }
        }
        extra_headers = headers::param_headers(schema, arguments);
    }
    params.insert("name".into(), Value::String(route.original.clone()));
    // A heavy tool called with a task (legacy `params.task`, modern
    // extension): the hub runs it as a task.
    if kind == Kind::Tools && super::tasks::heavy::wanted(&hub.config(), down, &route.server, &route.original, &params) {
        return super::tasks::heavy::start(hub, down, id, upstream, params, extra_headers);
    }
    // A call that may create a task takes one of the user's task slots first (issue 14).
    let rewrite = match (kind == Kind::Tools).then(|| super::tasks::on_tools_call(hub, down, &upstream, &params)).transpose() {
        Ok(rewrite) => rewrite,
        Err(limit) => return respond(down.era, &id, Err(limit)),
    };
    forward_with(hub, down, id, method, params, upstream, extra_headers, rewrite)
}

fn read_resource(hub: &Hub, down: &Downstream, id: Value, params: Map<String, Value>) -> Response {
    let Some(uri) = params.get("uri").and_then(Value::as_str).map(str::to_string) else {
        return respond(down.era, &id, Err(invalid_params("resources/read needs params.uri")));
    };
    if uri.len() > crate::catalog::MAX_URI_LEN {
        let msg = format!("params.uri is longer than {} bytes", crate::catalog::MAX_URI_LEN);
        return respond(down.era, &id, Err(invalid_params(msg)));
    }
    // Resource not found: -32602 with data.uri (2026-07-28, SEP-2164).
    let not_found = || Refusal::UnknownResource { uri: uri.clone() }.error();
    let c = down.call_context();
    let Some(server) = hub.catalog().route_uri(&uri, &c) else {
        let may_use = |s: &str| super::auth::may_use(down.user.as_deref(), s);
        if let Some(e) = hub.catalog().rejection(&[Kind::Resources, Kind::Templates], &c, may_use) {
            return Response::json(200, &finish(down.era, &id, Err(e)));
        }
        return respond(down.era, &id, Err(not_found()));
    };
    match hub.catalog().upstream(&server) {
        Some(u) => forward(hub, down, id, "resources/read", params, u, Vec::new()),
        None => respond(down.era, &id, Err(not_found())),
    }
}

/// `resources/subscribe` / `resources/unsubscribe` (legacy; 2026-07-28 uses
/// `subscriptions/listen`). Routed by URI to the owning server. The upstream
/// session is shared, so subscriptions are counted per (server, URI): the
/// first client's subscribe and the last client's unsubscribe go upstream,
/// the others are answered by the hub — one client never unsubscribes
/// another; modern clients' `subscriptions/listen` URIs count too. A modern
/// owner hears it as a new filter on the hub's listen stream
/// ([`super::listen::watch_upstream`]). `notifications/resources/updated`
/// reaches the subscribed sessions on their GET streams.
#[allow(clippy::too_many_arguments)]
fn subscription(
    catalog: &Catalog,
    sessions: &super::sessions::ClientSessions,
    subscriptions: &relay::Subscriptions,
    listen_streams: &super::listen::ListenStreams,
    down: &Downstream,
    id: Value,
    method: &str,
    params: Map<String, Value>,
) -> Response {
    let Some(uri) = params.get("uri").and_then(Value::as_str).map(str::to_string) else {
        return respond(down.era, &id, Err(invalid_params(format!("{method} needs params.uri"))));
    };
    let Some(session) = down.session.as_ref().map(|s| s.id.clone()) else {
        return respond(down.era, &id, Err(invalid_params("a session is required")));
    };
    let Some(server) = catalog.route_uri(&uri, &down.call_context()) else {
        return respond(down.era, &id, Err(invalid_params(format!("Unknown resource: {}", truncate(&uri)))));
    };
    let Some(upstream) = catalog.upstream(&server) else {
        return respond(down.era, &id, Err(invalid_params("Unknown resource")));
    };
    let subscribe = method == "resources/subscribe";
    let goes_upstream = subscriptions.update(&server, &uri, &session, subscribe);
    // The session's record keeps its subscriptions (docs/cluster.md §1).
    let record = |on: bool| {
        if let Some(s) = &down.session {
            sessions.set_subscription(s, &server, &uri, on);
        }
    };
    if !goes_upstream {
        record(subscribe);
        return respond(down.era, &id, Ok(json!({})));
    }
    let reply = super::listen::watch_upstream(listen_streams, subscriptions, &upstream, &uri, subscribe, params, &down.call_context());
    if subscribe && !reply.as_ref().is_ok_and(|m| m.get("result").is_some()) {
        subscriptions.update(&server, &uri, &session, false); // not subscribed after all
    } else {
        record(subscribe);
    }
    Response::json(200, &finish(down.era, &id, reply))
}

/// A URI cut to 200 bytes for an error message.
fn truncate(uri: &str) -> &str {
    let mut end = uri.len().min(200);
    while !uri.is_char_boundary(end) {
        end -= 1;
    }
    &uri[..end]
}

fn complete(hub: &Hub, down: &Downstream, id: Value, mut params: Map<String, Value>) -> Response {
    let c = down.call_context();
    let reference = params.get("ref").cloned().unwrap_or(Value::Null);
    let server = match reference.get("type").and_then(Value::as_str) {
        Some("ref/prompt") => {
            let name = reference.get("name").and_then(Value::as_str).unwrap_or("");
            hub.catalog().route_name(Kind::Prompts, name, &c).map(|r| {
                params.insert("ref".into(), json!({"type": "ref/prompt", "name": r.original}));
                r.server
            })
        }
        Some("ref/resource") => {
            let uri = reference.get("uri").and_then(Value::as_str).unwrap_or("");
            let merged = hub.catalog().merged(Kind::Templates, &c);
            merged.routes.get(uri).map(|r| r.server.clone()).or_else(|| hub.catalog().route_uri(uri, &c))
        }
        _ => return respond(down.era, &id, Err(invalid_params("params.ref must be a ref/prompt or ref/resource"))),
    };
    match server.and_then(|s| hub.catalog().upstream(&s)) {
        Some(u) => forward(hub, down, id, "completion/complete", params, u, Vec::new()),
        None => respond(down.era, &id, Err(invalid_params("Unknown completion reference"))),
    }
}

/// Relays one request to `upstream` and the answer back, re-identified with
/// the client's id and shaped for its era.
///
/// The call runs on the request worker until the upstream's answer head is
/// in. A JSON answer is returned from the worker. An SSE answer moves to a
/// stream thread when the client accepts SSE, and [`relay::relay`] forwards
/// what belongs to this client (its progress with its own token, log
/// messages at its level, server→client requests) before the final response
/// (docs/decisions.md D5). A client that does not accept SSE gets the final response
/// as JSON, the stream drained on the worker. Input rounds between the eras
/// (`input_required` for a legacy client, a legacy upstream's requests for a
/// modern one, and the modern client's retry) go through [`super::mrtr`].
fn forward(
    hub: &Hub,
    down: &Downstream,
    id: Value,
    method: &str,
    params: Map<String, Value>,
    upstream: Arc<Upstream>,
    extra_headers: Vec<(String, String)>,
) -> Response {
    forward_with(hub, down, id, method, params, upstream, extra_headers, None)
}

/// [`forward`], with `rewrite` applied to every message the client gets.
#[allow(clippy::too_many_arguments)]
pub fn forward_with(
    hub: &Hub,
    down: &Downstream,
    id: Value,
    method: &str,
    mut params: Map<String, Value>,
    upstream: Arc<Upstream>,
    extra_headers: Vec<(String, String)>,
    rewrite: Option<Rewrite>,
) -> Response {
    if !super::auth::may_use(down.user.as_deref(), upstream.name()) {
        return respond(down.era, &id, Err(invalid_params(format!("{method}: no such tool, prompt or resource"))));
    }
    // The request line names the server even when nothing is sent (circuit
    // open, queue full, rate limited; issue 14 hole 11).
    crate::trace::note_server(upstream.name());
    if let Err(limited) = hub.limits().check_server(upstream.name()) {
        return rate_limited(&limited, Some(&id));
    }
    if let Some(resumed) = super::mrtr::resume(hub, down, &id, method, &params, &upstream) {
        return resumed; // a modern client's retry of a parked call
    }
    let client_token = params.get("_meta").and_then(|m| m.get("progressToken")).cloned();
    let progress = client_token.map(|t| (t, hub.next_progress_token()));
    if let (Some((_, hub_token)), Some(Value::Object(meta))) = (&progress, params.get_mut("_meta")) {
        meta.insert("progressToken".into(), json!(hub_token));
    }
    // Cancellable: a legacy client's notifications/cancelled finds the call
    // by (session, id); a modern client's closed stream cuts it in `relay`.
    let handle = Arc::new(CallHandle::default());
    let key = down.session.as_ref().map(|s| hub.in_flight().register(&s.id, &id, handle.clone()));
    // A call answered on the worker ends here: unregister, and answer
    // nothing useful if its client cancelled it (the upstream is told).
    let answer_on_worker = |reply: Result<Value, crate::upstream::UpstreamError>| {
        // Bulkhead full, server busy, circuit open: HTTP 503 + Retry-After (Refusal::Upstream).
        let retry_after = reply.as_ref().err().and_then(crate::upstream::UpstreamError::retry_after_secs);
        if let Some(k) = &key {
            hub.in_flight().unregister(k);
        }
        handle.finish();
        if handle.is_cut() {
            relay::after_cut(&upstream, &handle);
            return cancelled(&id);
        }
        if let Err(e) = &reply {
            upstream.timed_out(Some(&handle), e); // a timeout: logged, upstream told
        }
        let mut msg = finish(down.era, &id, reply);
        if let Some(rewrite) = &rewrite {
            rewrite(&mut msg);
        }
        refusal::relayed(down.era, &msg, retry_after)
    };
    let mut c = down.call_context();
    c.call = Some(handle.clone());
    // Input can only need translating across eras (a client that can be asked:
    // modern, or legacy on an event stream); only then is the call kept for
    // re-issuing or parking. An upstream of unknown era counts as another era.
    let cross_era = upstream.known_era().is_none_or(|e| e != down.era);
    let origin = (cross_era && (down.era == Era::Modern || down.accepts_sse))
        .then(|| super::mrtr::Origin { method: method.into(), params: params.clone(), ctx: c.clone(), extra_headers: extra_headers.clone(), rounds: 0 });
    let first = match upstream.request_open(method, params, &c, &extra_headers) {
        // A legacy client asked for input answers on an event stream (mrtr).
        Ok(upstream_api::Outcome::Done(m)) if !(super::mrtr::is_input_required(&m) && down.era == Era::Legacy && down.accepts_sse) => {
            return answer_on_worker(Ok(m))
        }
        Ok(outcome) => outcome,
        Err(e) => return answer_on_worker(Err(e)),
    };
    if !down.accepts_sse {
        let upstream_api::Outcome::Streaming(call) = first else { unreachable!("a JSON answer for a client without SSE returned above") };
        let server = upstream.name().to_string();
        let on_message = &mut |m: &Value| {
            if let Some(n) = m.get("method").and_then(Value::as_str) {
                hub.catalog().on_notification(&server, n);
            }
        };
        return answer_on_worker(upstream.finish_stream(call, on_message));
    }
    let client = relay::ClientSide {
        era: down.era,
        id,
        session: down.session.as_ref().map(|s| s.id.clone()),
        capabilities: down.capabilities.clone(),
        progress,
        log_threshold: match (&down.session, &down.log_level) {
            (_, Some(l)) => Some(l.clone()),
            (Some(s), None) => s.log_level.lock().clone(),
            _ => None,
        },
        handle: handle.clone(),
        rewrite: rewrite.clone(),
        mrtr: origin,
    };
    let hub = hub.clone();
    Response::sse(move |sink: &mut SseSink| {
        let mut client = client;
        let parked = relay::relay(&hub, &upstream, first, &mut client, sink);
        if let Some(k) = &key {
            hub.in_flight().unregister(k);
        }
        if !parked {
            handle.finish();
        }
    })
}

/// The answer to a call its client cancelled. The client ignores it
/// (2025-11-25 cancellation), but an HTTP request needs an answer.
fn cancelled(id: &Value) -> Response {
    Refusal::Cancelled.response(Some(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_limited_request_gets_429_retry_after_and_the_notes_body() {
        use crate::limits::{Limited, Scope};
        let l = Limited { scope: Scope::Server, server: Some("jira".into()), retry_after: std::time::Duration::from_millis(1200) };
        let r = rate_limited(&l, Some(&json!(7)));
        assert_eq!(r.status, 429);
        assert!(r.headers.iter().any(|(k, v)| k == "Retry-After" && v == "2"), "{:?}", r.headers);
        let crate::http::Body::Full(body) = &r.body else { panic!("a full body") };
        let v: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(
            v,
            json!({"jsonrpc": "2.0", "id": 7, "error": {"code": -32000, "message": "Rate limit exceeded",
                "data": {"retry_after_seconds": 2, "scope": "server", "server": "jira"}}})
        );
        let g = Limited { scope: Scope::Global, server: None, retry_after: std::time::Duration::ZERO };
        let crate::http::Body::Full(body) = &rate_limited(&g, None).body else { panic!("a full body") };
        let v: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["id"], Value::Null);
        assert!(rate_limited(&g, None).headers.iter().any(|(k, v)| k == "Retry-After" && v == "1"), "never Retry-After: 0");
    }
}

