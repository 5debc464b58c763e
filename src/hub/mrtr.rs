//! Translating client input between the two eras (docs/decisions.md D1, D5).
//!
//! A 2025-11-25 server asks its client for input with server→client requests
//! (`sampling/createMessage`, `elicitation/create`, `roots/list`) on the
//! call's event stream and waits for the POSTed answers. A 2026-07-28 server
//! answers the call with an `InputRequiredResult` (`resultType:
//! "input_required"`, `inputRequests` by key, an opaque `requestState`) and
//! the client retries the same request with `params.inputResponses` (same
//! keys) and the echoed `requestState` (2026-07-28 `basic/patterns/mrtr.mdx`).
//! Same-era pairs pass through (`relay`); this module bridges the other two:
//!
//! - **Modern upstream → legacy client** ([`next_round`]): the hub plays the
//!   MRTR client. It sends each input request to the legacy client on the
//!   call's SSE stream under a hub id (`mcphub-i{n}`), waits for the POSTed
//!   answers ([`Mrtr::answer`]), re-issues the call upstream with
//!   `inputResponses` and the server's `requestState`, at most
//!   [`MAX_ROUNDS`] times, all within the call's hub deadline.
//! - **Legacy upstream → modern client** ([`park`], [`resume`]): the hub
//!   plays the MRTR server. It keeps the upstream call open ("parked"), and
//!   answers the client with an `InputRequiredResult` whose `requestState` is
//!   a random hub token; the retry's `inputResponses` are POSTed to the
//!   upstream session under the upstream's own request ids, and the same
//!   upstream call is relayed on. A parked call lives at most
//!   [`PARK_TTL`] (and never past its upstream budget); then a reaper thread
//!   ends it (`notifications/cancelled` upstream) and its token is unknown.

use super::relay::{self, ClientSide};
use super::refusal::Refusal;
use super::{Downstream, Hub};
use crate::http::{Response, SseSink};
use crate::protocol::{codes, Era, ErrorObject};
use crate::upstream::cancel::CallHandle;
use crate::upstream::{CallContext, CallStream, Outcome, Upstream};
use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// Most input rounds of one call, in either direction.
pub const MAX_ROUNDS: usize = 8;
/// Longest a parked upstream call waits for its client's retry.
pub const PARK_TTL: Duration = Duration::from_secs(60);
/// Most upstream calls parked at once.
pub const MAX_PARKED: usize = 1024;
/// Most legacy-client answers awaited at once.
pub const MAX_WAITING: usize = 10_000;
/// Prefix of the hub's `requestState` tokens: `mcphub-state-<hex>`, or with
/// the cluster bus `mcphub-state-<instance>.<hex>` (the instance holding the
/// parked call, to which a retry landing elsewhere is forwarded; docs/cluster.md §2).
pub const TOKEN_PREFIX: &str = "mcphub-state-";

/// Whether a response message carries an `InputRequiredResult`.
pub fn is_input_required(message: &Value) -> bool {
    crate::protocol::jsonrpc::at(message, &["result", "resultType"]).and_then(Value::as_str) == Some("input_required")
}

/// The client capabilities the hub declares to a 2026-07-28 upstream on a
/// client's behalf: a modern client's own (it answers `input_required`
/// itself); a legacy client's own when it accepts SSE (the hub relays the
/// input requests on the call's stream); otherwise without `sampling`,
/// `elicitation` and `roots`, so the server falls back instead of asking
/// for input nobody can give (mrtr.mdx: servers MUST NOT send input
/// requests the client has not declared).
pub fn upstream_capabilities(down: &Downstream) -> Option<Value> {
    let caps = down.capabilities.clone()?;
    if down.era == Era::Modern || down.accepts_sse {
        return Some(caps);
    }
    Some(crate::upstream::relayable_capabilities(Some(&caps)))
}

/// What re-issuing or parking a relayed call needs (set by `forward`).
#[derive(Clone)]
pub struct Origin {
    /// The method as sent upstream.
    pub method: String,
    /// The params as first sent upstream (routed name, hub progress token).
    pub params: Map<String, Value>,
    /// The upstream call context (deadline, cancellation handle).
    pub ctx: CallContext,
    /// Extra headers of the upstream call (`Mcp-Param-*`).
    pub extra_headers: Vec<(String, String)>,
    /// Input rounds already done for this call.
    pub rounds: usize,
}

impl Origin {
    /// What names the call's target: `name` (tools, prompts) or `uri`.
    fn target(&self) -> Option<&Value> {
        self.params.get("name").or_else(|| self.params.get("uri"))
    }
}

/// The hub's MRTR state: legacy-client answers awaited (modern upstream →
/// legacy client) and parked upstream calls (legacy upstream → modern client).
#[derive(Default)]
pub struct Mrtr {
    waiting: Mutex<HashMap<String, Waiter>>,
    next: AtomicU64,
    parked: Arc<Parked>,
    /// This instance on the cluster bus (ids and tokens name it), if any.
    instance: Option<String>,
}

struct Waiter {
    client_session: String,
    key: String,
    tx: crossbeam_channel::Sender<(String, Value)>,
}

impl Mrtr {
    /// Empty state whose hub ids and tokens name `instance` (the cluster bus), if any.
    pub fn for_instance(instance: Option<&str>) -> Mrtr {
        Mrtr { instance: instance.map(str::to_string), ..Mrtr::default() }
    }

    /// Routes a legacy client's POSTed JSON-RPC response to the call waiting
    /// for it: only the client session the request was sent to may answer,
    /// once. Returns whether it was routed.
    pub fn answer(&self, client_session: &str, response: &Value) -> bool {
        let Some(w) = relay::claim(&self.waiting, client_session, response, |w| &w.client_session) else { return false };
        let _ = w.tx.try_send((w.key, response.clone()));
        true
    }

    /// Number of upstream calls parked now.
    pub fn parked_len(&self) -> usize {
        self.parked.state.lock().calls.len()
    }

    /// Number of legacy-client answers awaited now.
    pub fn waiting_len(&self) -> usize {
        self.waiting.lock().len()
    }
}

// ------------------------------------------------------------------------
// Modern upstream → legacy client

/// After one upstream answer: the next upstream call to read when the answer
/// was an `InputRequiredResult` the hub has just had a legacy client answer
/// (`Ok`), or the final message for the client (`Err`; `Value::Null` when
/// the call was cancelled meanwhile).
///
/// `emit` writes a message on the client's stream. Errors the client gets:
/// `-32021` naming a capability it did not declare at `initialize`, the
/// client's own error for a request it refused, `-32001` when the hub
/// deadline passes before every answer is in, `-32603` after
/// [`MAX_ROUNDS`] rounds or for a malformed `inputRequests`.
pub fn next_round(
    hub: &Hub,
    upstream: &Upstream,
    client: &mut ClientSide,
    reply: Result<Value, crate::upstream::UpstreamError>,
    emit: &mut dyn FnMut(&Value) -> bool,
) -> Result<Outcome, Value> {
    let finish = |reply| relay::finish(client.era, &client.id, reply);
    let (Ok(message), Era::Legacy, Some(session)) = (&reply, client.era, client.session.clone()) else {
        return Err(finish(reply));
    };
    if !is_input_required(message) || client.mrtr.is_none() {
        return Err(finish(reply));
    }
    let fail = |e: ErrorObject| Err(e.to_response(Some(&client.id)));
    let result = &message["result"];
    let Some(origin) = client.mrtr.as_mut() else { return Err(Value::Null) };
    origin.rounds += 1;
    if origin.rounds > MAX_ROUNDS {
        return fail(Refusal::InputRoundsExceeded { max: MAX_ROUNDS }.error());
    }
    let requests = match input_requests(result, client.capabilities.as_ref()) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    // The upstream answer is complete: its connection may be pooled again,
    // so the call's handle must not cut it while the client is asked.
    client.handle.finish();
    let answers = match ask(hub, &session, &requests, origin.ctx.deadline, &client.handle, emit) {
        Ok(a) => a,
        Err(None) => return Err(Value::Null),
        Err(Some(e)) => return fail(e),
    };
    let mut params = origin.params.clone();
    params.remove("requestState");
    params.insert("inputResponses".into(), Value::Object(answers));
    if let Some(state) = result.get("requestState") {
        params.insert("requestState".into(), state.clone());
    }
    log::debug!("input round {} answered by the client; re-issuing {} upstream", origin.rounds, origin.method);
    match upstream.request_open(&origin.method, params, &origin.ctx, &origin.extra_headers) {
        Ok(outcome) => Ok(outcome),
        Err(e) => Err(relay::finish(client.era, &client.id, Err(e))),
    }
}

/// The `inputRequests` of an `InputRequiredResult` as (key, method, params),
/// each checked against the capabilities the legacy client declared.
fn input_requests(result: &Value, capabilities: Option<&Value>) -> Result<Vec<(String, String, Value)>, ErrorObject> {
    let Some(map) = result.get("inputRequests") else { return Ok(Vec::new()) };
    let malformed = || Refusal::InputRequestsMalformed.error();
    let map = map.as_object().ok_or_else(malformed)?;
    let mut out = Vec::with_capacity(map.len());
    for (key, request) in map {
        let method = request.get("method").and_then(Value::as_str).ok_or_else(malformed)?;
        let Some(capability) = relay::capability_for(method) else {
            return Err(Refusal::InputUnknown { method: method.to_string() }.error());
        };
        if capabilities.and_then(|c| c.get(capability)).is_none() {
            return Err(Refusal::InputCapabilityMissing { capability: capability.to_string(), method: method.to_string() }.error());
        }
        let mut params = request.get("params").cloned().unwrap_or_else(|| json!({}));
        if let Some(p) = params.as_object_mut() {
            crate::upstream::strip_modern_meta(p);
        }
        out.push((key.clone(), method.to_string(), params));
    }
    Ok(out)
}

/// Sends each request to the legacy client under a hub id and collects the
/// results by key, until `deadline`. `Err(None)`: the call was cancelled.
fn ask(
    hub: &Hub,
    session: &str,
    requests: &[(String, String, Value)],
    deadline: Instant,
    handle: &CallHandle,
    emit: &mut dyn FnMut(&Value) -> bool,
) -> Result<Map<String, Value>, Option<ErrorObject>> {
    let mrtr = hub.mrtr();
    let (tx, rx) = crossbeam_channel::bounded(requests.len().max(1));
    let mut ids = Vec::with_capacity(requests.len());
    let outcome = (|| {
        for (key, method, params) in requests {
            let n = mrtr.next.fetch_add(1, Ordering::Relaxed);
            let hub_id = format!("{}{n}", relay::id_prefix('i', mrtr.instance.as_deref()));
            {
                let mut waiting = mrtr.waiting.lock();
                if waiting.len() >= MAX_WAITING {
                    return Err(Some(Refusal::InputAwaitedFull.error()));
                }
                waiting.insert(hub_id.clone(), Waiter { client_session: session.to_string(), key: key.clone(), tx: tx.clone() });
            }
            ids.push(hub_id.clone());
            if !emit(&json!({"jsonrpc": "2.0", "id": hub_id, "method": method, "params": params})) {
                return Err(None);
            }
        }
        let mut answers = Map::new();
        while answers.len() < requests.len() {
            if handle.is_cut() {
                return Err(None);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Some(Refusal::InputTimeout.error()));
            }
            let Ok((key, response)) = rx.recv_timeout(left.min(Duration::from_millis(200))) else { continue };
            match (response.get("result"), response.get("error")) {
                (Some(result), _) => {
                    answers.insert(key, result.clone());
                }
                (None, Some(error)) => {
                    let code = error.get("code").and_then(Value::as_i64).unwrap_or(codes::INTERNAL_ERROR);
                    let msg = error.get("message").and_then(Value::as_str).unwrap_or("");
                    let method = requests.iter().find(|r| r.0 == key).map(|r| r.1.as_str()).unwrap_or("?");
                    return Err(Some(Refusal::InputRefused { code, method: method.to_string(), message: msg.to_string() }.error()));
                }
                _ => return Err(Some(Refusal::InputAnswerEmpty.error())),
            }
        }
        Ok(answers)
    })();
    let mut waiting = mrtr.waiting.lock();
    for id in &ids {
        waiting.remove(id);
    }
    outcome
}

// ------------------------------------------------------------------------
// Legacy upstream → modern client

/// Parked upstream calls by token, with the reaper's flag.
#[derive(Default)]
struct Parked {
    state: Mutex<ParkedState>,
}

#[derive(Default)]
struct ParkedState {
    calls: HashMap<String, Box<ParkedCall>>,
    reaper: bool,
}

/// One upstream call waiting for its client's retry.
struct ParkedCall {
    upstream: Arc<Upstream>,
    call: CallStream,
    handle: Arc<CallHandle>,
    /// Hub key → the upstream's request id, still to be answered.
    outstanding: Vec<(String, Value, Value)>,
    /// The method and target (`name`/`uri`) the retry must repeat.
    method: String,
    target: Option<Value>,
    /// The hub progress token the upstream call carries.
    hub_progress: Option<String>,
    origin: Origin,
    expires: Instant,
}

impl ParkedCall {
    /// Ends the upstream call: the server is told (legacy cancellation) and
    /// the connection closes.
    fn release(self, why: &str) {
        log::debug!("parked call on '{}' released: {why}", self.upstream.name());
        self.upstream.notify_cancelled(&self.handle, why);
        self.handle.finish();
        drop(self.call);
    }
}

/// Whether a server→client request of a legacy upstream can be turned into
/// an `InputRequiredResult` for this client: a modern client that declared
/// the capability in its `_meta` clientCapabilities, with rounds left.
pub fn parks(client: &ClientSide, request: &Value) -> bool {
    let capability = request.get("method").and_then(Value::as_str).and_then(relay::capability_for);
    client.era == Era::Modern
        && client.mrtr.as_ref().is_some_and(|o| o.rounds < MAX_ROUNDS)
        && request.get("id").is_some()
        && capability.is_some_and(|c| client.capabilities.as_ref().and_then(|caps| caps.get(c)).is_some())
}

/// Parks `call` (whose upstream just sent `request`) and returns the
/// client's final message: an `InputRequiredResult` with the request under a
/// hub key and a fresh token as `requestState`. Gives the call back when no
/// more calls can be parked.
pub fn park(hub: &Hub, upstream: &Arc<Upstream>, call: CallStream, request: Value, client: &ClientSide) -> Result<Value, (CallStream, Value)> {
    let Some(origin) = client.mrtr.clone() else { return Err((call, request)) };
    let upstream_id = request.get("id").cloned().unwrap_or(Value::Null);
    let key = format!("input-{}", origin.rounds + 1);
    let parked = Box::new(ParkedCall {
        upstream: upstream.clone(),
        expires: Instant::now() + call.events.remaining().min(PARK_TTL),
        call,
        handle: client.handle.clone(),
        outstanding: vec![(key, upstream_id, request)],
        method: origin.method.clone(),
        target: origin.target().cloned(),
        hub_progress: client.progress.as_ref().map(|(_, hub)| hub.clone()),
        origin,
    });
    match store(hub, parked) {
        Ok((_, result)) => {
            log::debug!("upstream '{}' asked a modern client for input; call parked", upstream.name());
            Ok(relay::finish(Era::Modern, &client.id, Ok(json!({"result": result}))))
        }
        Err(p) => {
            let request = p.outstanding.into_iter().next().map(|o| o.2).unwrap_or(Value::Null);
            Err((p.call, request))
        }
    }
}

/// Stores a parked call under a new token (starting the reaper if needed);
/// returns the token and the `InputRequiredResult` naming its outstanding
/// requests, or the call back when [`MAX_PARKED`] are parked.
fn store(hub: &Hub, mut parked: Box<ParkedCall>) -> Result<(String, Value), Box<ParkedCall>> {
    parked.origin.rounds += 1;
    let token = match &hub.mrtr().instance {
        Some(i) => format!("{TOKEN_PREFIX}{i}.{}", super::sessions::new_session_id()),
        None => format!("{TOKEN_PREFIX}{}", super::sessions::new_session_id()),
    };
    let mut requests = Map::new();
    for (key, _, request) in &parked.outstanding {
        let mut entry = json!({"method": request.get("method").cloned().unwrap_or(Value::Null)});
        if let Some(p) = request.get("params") {
            entry["params"] = p.clone();
        }
        requests.insert(key.clone(), entry);
    }
    let shared = &hub.mrtr().parked;
    let start_reaper = {
        let mut state = shared.state.lock();
        if state.calls.len() >= MAX_PARKED {
            return Err(parked);
        }
        state.calls.insert(token.clone(), parked);
        !std::mem::replace(&mut state.reaper, true)
    };
    if start_reaper {
        spawn_reaper(hub.threads(), Arc::downgrade(shared));
    }
    Ok((token.clone(), json!({"resultType": "input_required", "inputRequests": requests, "requestState": token})))
}

/// Releases parked calls whose time is up, every 200 ms, until none is left
/// (or the hub is gone, or shutting down: an owned thread of `threads`).
fn spawn_reaper(threads: &crate::threads::Threads, parked: Weak<Parked>) {
    let weak = parked.clone();
    let spawned = threads.spawn_owned("mrtr-reaper", crate::threads::Kind::Poller, move |stop| loop {
        let stopped = stop.sleep(Duration::from_millis(200));
        let Some(p) = weak.upgrade() else { return };
        if stopped {
            p.state.lock().reaper = false;
            return;
        }
        let now = Instant::now();
        let (expired, done) = {
            let mut state = p.state.lock();
            let keys: Vec<String> = state.calls.iter().filter(|(_, c)| c.expires <= now).map(|(k, _)| k.clone()).collect();
            let expired: Vec<Box<ParkedCall>> = keys.iter().filter_map(|k| state.calls.remove(k)).collect();
            let done = state.calls.is_empty();
            if done {
                state.reaper = false;
            }
            (expired, done)
        };
        for c in expired {
            c.release("the client did not retry in time");
        }
        if done {
            return;
        }
    });
    if let Err(e) = spawned {
        log::warn!("cannot start the MRTR reaper: {e}");
        if let Some(p) = parked.upgrade() {
            p.state.lock().reaper = false;
        }
    }
}

/// A modern client's retry of a call the hub parked: `None` when this is not
/// one (no `requestState`, or the upstream is not a legacy server, whose
/// own state then passes through). Otherwise the answer: `-32602` for an
/// unknown, expired, already used or mismatched `requestState`; a new
/// `InputRequiredResult` for requests the retry left unanswered; else the
/// answers go upstream and the same upstream call is relayed on.
///
/// With the cluster bus, a token naming another instance is forwarded to it
/// ([`crate::cluster::Cluster::forward`] until the request's deadline), which
/// resumes the call ([`resume_forwarded`]) and answers with the JSON-RPC
/// message (as JSON: the rest of the call is not streamed across
/// instances); a dead or silent owner → the same `-32602`.
pub fn resume(hub: &Hub, down: &Downstream, id: &Value, method: &str, params: &Map<String, Value>, upstream: &Arc<Upstream>) -> Option<Response> {
    let state = params.get("requestState")?;
    if down.era == Era::Modern {
        if let Some(owner) = state.as_str().and_then(token_owner).filter(|o| hub.mrtr().instance.as_deref().is_some_and(|me| me != *o)) {
            return Some(forward_retry(hub, down, id, method, params, upstream, owner));
        }
    }
    if down.era != Era::Modern || upstream.state().era != Some(Era::Legacy) {
        return None;
    }
    let invalid = || Some(Refusal::RequestStateInvalid.response(Some(id)));
    let Some(token) = state.as_str().filter(|t| t.starts_with(TOKEN_PREFIX)) else { return invalid() };
    let target = params.get("name").or_else(|| params.get("uri"));
    let parked = {
        let mut st = hub.mrtr().parked.state.lock();
        match st.calls.get(token) {
            Some(p) if p.method == method && p.target.as_ref() == target && p.expires > Instant::now() => st.calls.remove(token),
            _ => None,
        }
    };
    let Some(mut parked) = parked else { return invalid() };
    // Answers go upstream under the upstream's own ids; unanswered requests are asked again.
    let responses = params.get("inputResponses").and_then(Value::as_object);
    let mut missing = Vec::new();
    for (key, upstream_id, request) in std::mem::take(&mut parked.outstanding) {
        match responses.and_then(|r| r.get(&key)).filter(|v| v.is_object()) {
            Some(result) => {
                let answer = json!({"jsonrpc": "2.0", "id": upstream_id, "result": result});
                parked.upstream.answer(&parked.call.session_headers, &answer, parked.call.events.remaining());
            }
            None => missing.push((key, upstream_id, request)),
        }
    }
    if !missing.is_empty() {
        parked.outstanding = missing;
        return Some(match store(hub, parked) {
            Ok((_, result)) => Response::json(200, &relay::finish(Era::Modern, id, Ok(json!({"result": result})))),
            Err(p) => {
                p.release("too many parked calls");
                Refusal::ParkedFull.response(Some(id))
            }
        });
    }
    Some(continue_call(hub, down, id, params, parked))
}

/// The instance a cluster-form token names (`mcphub-state-<instance>.<hex>`).
pub fn token_owner(token: &str) -> Option<&str> {
    let (instance, rest) = token.strip_prefix(TOKEN_PREFIX)?.split_once('.')?;
    (crate::cluster::valid_instance_id(instance) && !rest.is_empty()).then_some(instance)
}

/// A retry of a call parked on instance `owner`: forwarded there, its
/// answer given back as it came (status and JSON body); `-32602` when the
/// owner is gone or silent until the deadline.
fn forward_retry(hub: &Hub, down: &Downstream, id: &Value, method: &str, params: &Map<String, Value>, upstream: &Upstream, owner: &str) -> Response {
    let invalid = || Refusal::RequestStateInvalid.response(Some(id));
    let Some(c) = hub.cluster() else { return invalid() };
    let body = json!({
        "id": id,
        "method": method,
        "params": params,
        "server": upstream.name(),
        "capabilities": down.capabilities,
        "clientInfo": down.client_info,
        "logLevel": down.log_level,
        "user": down.user.as_ref().map(|u| u.name.clone()),
        "remainingMs": down.deadline.saturating_duration_since(Instant::now()).as_millis() as u64,
    });
    match c.forward(owner, "mrtr", body, down.deadline) {
        Ok(answer) => {
            let status = answer.get("status").and_then(Value::as_u64).and_then(|s| u16::try_from(s).ok()).unwrap_or(502);
            match answer.get("body") {
                Some(b) if !b.is_null() => Response::json(status, b),
                _ => invalid(),
            }
        }
        Err(e) => {
            log::debug!("a retry of a call parked on instance '{owner}' was not answered: {e}");
            invalid()
        }
    }
}

/// Runs a retry another instance forwarded ([`forward_retry`]) here, where
/// the call is parked; the answer as `{"status", "body"}` (the JSON-RPC
/// message). A retry whose token is not parked here, or for a server this
/// instance does not serve, gets the `-32602` refusal.
pub fn resume_forwarded(hub: &Hub, body: &Value) -> Value {
    let id = body.get("id").cloned().unwrap_or(Value::Null);
    let refuse = |r: Response| wrap(r);
    let method = body.get("method").and_then(Value::as_str).unwrap_or("");
    let params = body.get("params").and_then(Value::as_object).cloned().unwrap_or_default();
    let server = body.get("server").and_then(Value::as_str).unwrap_or("");
    let Some(upstream) = hub.catalog().upstreams().into_iter().find(|u| u.name() == server) else {
        return refuse(Refusal::RequestStateInvalid.response(Some(&id)));
    };
    // Only a token of this instance is resumed here: never forwarded on.
    if params.get("requestState").and_then(Value::as_str).and_then(token_owner) != hub.mrtr().instance.as_deref() {
        return refuse(Refusal::RequestStateInvalid.response(Some(&id)));
    }
    let remaining = Duration::from_millis(body.get("remainingMs").and_then(Value::as_u64).unwrap_or(0));
    let down = Downstream {
        era: Era::Modern,
        session: None,
        client_info: body.get("clientInfo").filter(|v| !v.is_null()).cloned(),
        capabilities: body.get("capabilities").filter(|v| !v.is_null()).cloned(),
        log_level: body.get("logLevel").and_then(Value::as_str).map(str::to_string),
        accepts_sse: false,
        deadline: Instant::now() + remaining,
        headers: Vec::new(),
        user: None,
    };
    let answer = resume(hub, &down, &id, method, &params, &upstream).unwrap_or_else(|| Refusal::RequestStateInvalid.response(Some(&id)));
    wrap(answer)
}

/// `{"status", "body"}` of a JSON answer (a streamed one cannot cross: 502, no body).
fn wrap(r: Response) -> Value {
    match &r.body {
        crate::http::Body::Full(bytes) => json!({"status": r.status, "body": serde_json::from_slice::<Value>(bytes).unwrap_or(Value::Null)}),
        crate::http::Body::Sse(_) => json!({"status": 502, "body": null}),
    }
}

/// Relays the rest of a parked call to the client that retried it.
fn continue_call(hub: &Hub, down: &Downstream, id: &Value, params: &Map<String, Value>, parked: Box<ParkedCall>) -> Response {
    let ParkedCall { upstream, call, handle, hub_progress, origin, .. } = *parked;
    let client_token = params.get("_meta").and_then(|m| m.get("progressToken")).cloned();
    let mut client = ClientSide {
        era: Era::Modern,
        id: id.clone(),
        session: None,
        capabilities: down.capabilities.clone(),
        progress: client_token.zip(hub_progress),
        log_threshold: down.log_level.clone(),
        handle: handle.clone(),
        rewrite: None,
        mrtr: Some(origin),
    };
    if !down.accepts_sse {
        let server = upstream.name().to_string();
        let reply = upstream.finish_stream(call, &mut |m: &Value| {
            if let Some(n) = m.get("method").and_then(Value::as_str) {
                hub.catalog().on_notification(&server, n);
            }
        });
        handle.finish();
        return Response::json(200, &relay::finish(Era::Modern, id, reply));
    }
    let hub = hub.clone();
    Response::sse(move |sink: &mut SseSink| {
        if !relay::relay(&hub, &upstream, Outcome::Streaming(call), &mut client, sink) {
            handle.finish();
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_requests_need_the_declared_capability() {
        let result = json!({"resultType": "input_required", "inputRequests": {
            "a": {"method": "sampling/createMessage", "params": {"maxTokens": 5, "_meta": {"io.modelcontextprotocol/x": 1}}},
            "b": {"method": "roots/list"}}});
        let both = json!({"sampling": {}, "roots": {}});
        let r = input_requests(&result, Some(&both)).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0], ("a".to_string(), "sampling/createMessage".to_string(), json!({"maxTokens": 5})));
        assert_eq!(r[1].2, json!({}));
        let e = input_requests(&result, Some(&json!({"sampling": {}}))).unwrap_err();
        assert_eq!(e.code, codes::MISSING_CLIENT_CAPABILITY);
        assert!(e.message.contains("roots"), "{}", e.message);
        assert_eq!(input_requests(&json!({"inputRequests": {"x": {"method": "tools/call"}}}), Some(&both)).unwrap_err().code, codes::INTERNAL_ERROR);
        assert_eq!(input_requests(&json!({"inputRequests": []}), Some(&both)).unwrap_err().code, codes::INTERNAL_ERROR);
        assert!(input_requests(&json!({"requestState": "s"}), None).unwrap().is_empty(), "state only: retry at once");
    }

    #[test]
    fn answers_route_only_from_the_session_asked() {
        let m = Mrtr::default();
        let (tx, rx) = crossbeam_channel::bounded(1);
        m.waiting.lock().insert("mcphub-i7".into(), Waiter { client_session: "s1".into(), key: "k".into(), tx });
        let answer = json!({"jsonrpc": "2.0", "id": "mcphub-i7", "result": {}});
        assert!(!m.answer("s2", &answer), "another session's answer is ignored");
        assert!(m.answer("s1", &answer));
        assert!(!m.answer("s1", &answer), "answered once");
        assert_eq!(rx.try_recv().unwrap().0, "k");
    }
}
