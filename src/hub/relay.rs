//! Relaying one call's upstream event stream to the client that made the
//! call (docs/decisions.md D5), on a stream thread:
//!
//! - `notifications/progress` carry a hub token upstream (unique across the
//!   clients sharing an upstream session) and go back with the client's own;
//! - `notifications/message` pass the client's log level (per client session
//!   for legacy clients, `_meta` for modern ones);
//! - `list_changed` drops the catalog's cached lists;
//! - server→client requests of legacy upstreams (`sampling/createMessage`,
//!   `elicitation/create`, `roots/list`) go to a legacy client that declared
//!   the capability, with the id replaced by a hub id so ids never collide
//!   across upstreams and clients ([`PendingRequests`]); the client's POSTed
//!   response is routed back to that upstream session with the original id.
//!   A modern client that declared the capability gets them as an
//!   `InputRequiredResult` instead (the call is parked, [`super::mrtr`]).
//!   Every other client gets them refused (`-32601` naming why, and a log
//!   line), so the upstream never waits for an answer nobody will give.
//! - server→client requests on a legacy upstream session's standalone GET
//!   stream belong to no call ([`upstream_request`], issue 21): relayed to
//!   the client's own GET stream when the upstream session is that client's
//!   (`sessionSharing: "client"`), refused as unattributable otherwise
//!   (`Upstream::listen`).

use super::Hub;
use crate::http::{SseEvent, SseSink};
use crate::protocol::Era;
use crate::upstream::cancel::CallHandle;
use crate::upstream::{CallStream, Outcome, Upstream};
use crate::upstream::transport::{Refusal, StreamItem};
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most server→client requests waiting for client answers at once.
pub const MAX_PENDING: usize = 10_000;

/// How long a request relayed to a client's GET stream waits for its answer
/// before its entry may be dropped (those belong to no call whose end would
/// remove them).
pub const STANDALONE_ANSWER_WAIT: Duration = Duration::from_secs(600);

/// A server→client request forwarded to a client, waiting for its answer.
struct Pending {
    upstream: Arc<Upstream>,
    session_headers: Vec<(String, String)>,
    upstream_id: Value,
    client_session: String,
    /// For requests relayed to a GET stream: when the entry may be dropped.
    expires: Option<Instant>,
}

/// Server→client requests in flight, by hub id (`mcphub-r{n}`; with the
/// cluster bus `mcphub-r<instance>.<n>`, so an answer POSTed to another
/// instance finds its way back, docs/cluster.md §2).
#[derive(Default)]
pub struct PendingRequests {
    map: Mutex<HashMap<String, Pending>>,
    next: AtomicU64,
    /// `mcphub-r` or `mcphub-r<instance>.`.
    prefix: String,
}

/// The prefix of hub ids of kind `kind` (`r`, `i`): `mcphub-<kind>`, or
/// `mcphub-<kind><instance>.` on the cluster bus.
pub fn id_prefix(kind: char, instance: Option<&str>) -> String {
    match instance {
        Some(i) => format!("mcphub-{kind}{i}."),
        None => format!("mcphub-{kind}"),
    }
}

/// The instance named by a hub id of the cluster form
/// (`mcphub-r<instance>.<n>`, `mcphub-i<instance>.<n>`); `None` otherwise.
pub fn instance_of_hub_id(id: &str) -> Option<&str> {
    let rest = id.strip_prefix("mcphub-r").or_else(|| id.strip_prefix("mcphub-i"))?;
    let (instance, n) = rest.rsplit_once('.')?;
    (crate::cluster::valid_instance_id(instance) && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then_some(instance)
}

impl PendingRequests {
    /// An empty table whose ids name `instance` (the cluster bus), if any.
    pub fn for_instance(instance: Option<&str>) -> PendingRequests {
        PendingRequests { prefix: id_prefix('r', instance), ..PendingRequests::default() }
    }

    fn insert(&self, pending: Pending) -> Option<String> {
        let mut map = self.map.lock();
        if map.len() >= MAX_PENDING {
            let now = Instant::now();
            map.retain(|_, p| p.expires.is_none_or(|at| at > now));
        }
        if map.len() >= MAX_PENDING {
            return None;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let id = if self.prefix.is_empty() { format!("mcphub-r{n}") } else { format!("{}{n}", self.prefix) };
        map.insert(id.clone(), pending);
        Some(id)
    }

    fn remove(&self, id: &str) {
        self.map.lock().remove(id);
    }

    /// Routes a client's JSON-RPC response to the upstream request it
    /// answers: only the client session the request was sent to may answer
    /// it, once. Returns whether it was routed.
    pub fn answer(&self, client_session: &str, response: &Value) -> bool {
        let Some(p) = claim(&self.map, client_session, response, |p| &p.client_session) else { return false };
        let mut restored = response.clone();
        restored["id"] = p.upstream_id.clone();
        p.upstream.answer(&p.session_headers, &restored, Duration::from_secs(5));
        true
    }

    /// Number of requests waiting for an answer.
    pub fn len(&self) -> usize {
        self.map.lock().len()
    }

    /// Whether none is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Takes the entry a client's JSON-RPC response answers from `map` (keyed
/// by the hub request id the client was sent): only the client session the
/// request went to (`owner` of the entry) may answer it, and only once.
pub(super) fn claim<T>(map: &Mutex<HashMap<String, T>>, client_session: &str, response: &Value, owner: impl Fn(&T) -> &String) -> Option<T> {
    let hub_id = response.get("id").and_then(Value::as_str)?;
    let mut map = map.lock();
    match map.get(hub_id) {
        Some(entry) if owner(entry) == client_session => map.remove(hub_id),
        _ => None,
    }
}

/// Calls in flight that a legacy client may cancel, by (client session,
/// JSON text of the client's request id).
#[derive(Default)]
pub struct InFlight {
    map: Mutex<HashMap<(String, String), Arc<CallHandle>>>,
}

impl InFlight {
    /// Registers a call; returns the key to unregister it with.
    pub fn register(&self, session: &str, request_id: &Value, handle: Arc<CallHandle>) -> (String, String) {
        let key = (session.to_string(), request_id.to_string());
        self.map.lock().insert(key.clone(), handle);
        key
    }

    /// Unregisters a call (when it ends).
    pub fn unregister(&self, key: &(String, String)) {
        self.map.lock().remove(key);
    }

    /// A legacy client's `notifications/cancelled {requestId}`: cuts that
    /// call's upstream connection, so whoever waits on it stops at once.
    /// Returns whether such a call was in flight.
    pub fn cancel(&self, session: &str, request_id: &Value) -> bool {
        let handle = self.map.lock().remove(&(session.to_string(), request_id.to_string()));
        match handle {
            Some(h) => {
                h.cut();
                true
            }
            None => false,
        }
    }

    /// Number of registered calls.
    pub fn len(&self) -> usize {
        self.map.lock().len()
    }

    /// Whether none is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Resource subscriptions of legacy client sessions, counted per
/// (server, URI), since the upstream session is shared.
#[derive(Default)]
pub struct Subscriptions {
    map: Mutex<HashMap<(String, String), std::collections::HashSet<String>>>,
}

impl Subscriptions {
    /// Adds or removes `session`'s subscription to `uri` on `server`; true
    /// when the change must go upstream (first subscriber in, last one out).
    pub fn update(&self, server: &str, uri: &str, session: &str, subscribe: bool) -> bool {
        let mut map = self.map.lock();
        let key = (server.to_string(), uri.to_string());
        let set = map.entry(key.clone()).or_default();
        let was_empty = set.is_empty();
        let changed = if subscribe { set.insert(session.to_string()) } else { set.remove(session) };
        let now_empty = set.is_empty();
        if now_empty {
            map.remove(&key);
        }
        changed && (if subscribe { was_empty } else { now_empty })
    }

    /// The URIs on `server` someone is subscribed to.
    pub fn uris(&self, server: &str) -> Vec<String> {
        self.map.lock().keys().filter(|(s, _)| s == server).map(|(_, u)| u.clone()).collect()
    }

    /// The client sessions subscribed to `uri` on `server`.
    pub fn subscribers(&self, server: &str, uri: &str) -> Vec<String> {
        self.map.lock().get(&(server.to_string(), uri.to_string())).map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }
}

/// Standalone GET streams of legacy client sessions (2025-11-25
/// transports): where notifications unrelated to any call go. One stream
/// per session receives them (a message goes on one stream only); a newer
/// GET replaces an older one. Each stream buffers at most [`LISTEN_QUEUE`]
/// messages; beyond that a slow client misses notifications, never blocks
/// the hub.
#[derive(Default)]
pub struct Listeners {
    map: Mutex<HashMap<String, (u64, crossbeam_channel::Sender<Value>)>>,
    next: AtomicU64,
}

/// Messages queued per client GET stream.
pub const LISTEN_QUEUE: usize = 256;

impl Listeners {
    /// Opens `session`'s stream; returns its token and receiving end.
    pub fn open(&self, session: &str) -> (u64, crossbeam_channel::Receiver<Value>) {
        let (tx, rx) = crossbeam_channel::bounded(LISTEN_QUEUE);
        let token = self.next.fetch_add(1, Ordering::Relaxed);
        self.map.lock().insert(session.to_string(), (token, tx));
        (token, rx)
    }

    /// Closes `session`'s stream if it is still the one `token` opened;
    /// true when it was.
    pub fn close(&self, session: &str, token: u64) -> bool {
        let mut map = self.map.lock();
        if map.get(session).is_some_and(|(t, _)| *t == token) {
            map.remove(session);
            return true;
        }
        false
    }

    /// Drops `session`'s stream (the session ended); its reader then ends.
    pub fn remove(&self, session: &str) {
        self.map.lock().remove(session);
    }

    /// Queues `message` for every listening session.
    pub fn send_all(&self, message: &Value) {
        for (_, tx) in self.map.lock().values() {
            let _ = tx.try_send(message.clone());
        }
    }

    /// Queues `message` for `session`'s stream; false when it has none open
    /// or its queue is full.
    pub fn send_one(&self, session: &str, message: &Value) -> bool {
        self.map.lock().get(session).is_some_and(|(_, tx)| tx.try_send(message.clone()).is_ok())
    }

    /// Queues `message` for the listed sessions that listen.
    pub fn send_to(&self, sessions: &[String], message: &Value) {
        let map = self.map.lock();
        for s in sessions {
            if let Some((_, tx)) = map.get(s) {
                let _ = tx.try_send(message.clone());
            }
        }
    }

    /// The sessions with a GET stream open here.
    pub fn sessions(&self) -> Vec<String> {
        self.map.lock().keys().cloned().collect()
    }
}

/// A notification an upstream sent outside any call: `list_changed` drops
/// the cached lists and goes to every listening client, `resources/updated`
/// to the clients subscribed to that URI on that server; others are dropped.
/// With the cluster bus it is then broadcast
/// ([`crate::cluster::Delivery::UpstreamNotification`]; one PUBLISH), and
/// every other instance applies it without broadcasting again ([`delivered`]).
pub fn upstream_notification(hub: &Hub, server: &str, message: &Value) {
    let Some(method) = message.get("method").and_then(Value::as_str) else { return };
    let shared = apply_notification(hub, server, method, message);
    if let (true, Some(c)) = (shared, hub.cluster()) {
        c.broadcast(&crate::cluster::Delivery::UpstreamNotification { server: server.to_string(), message: message.clone() });
    }
}

/// Applies an upstream's notification here ([`upstream_notification`]);
/// true for the kinds other instances need too.
fn apply_notification(hub: &Hub, server: &str, method: &str, message: &Value) -> bool {
    hub.catalog().on_notification(server, method);
    match method {
        "notifications/tools/list_changed" | "notifications/prompts/list_changed" | "notifications/resources/list_changed" => {
            if hub.coalesce().first(method, "") {
                hub.listeners().send_all(&json!({"jsonrpc": "2.0", "method": method}));
                hub.listen_streams().send_list_changed(method);
            }
            true
        }
        "notifications/resources/updated" => {
            let Some(uri) = crate::protocol::jsonrpc::at(message, &["params", "uri"]).and_then(Value::as_str) else { return false };
            if hub.coalesce().first(method, uri) {
                let subscribers = hub.subscriptions().subscribers(server, uri);
                if hub.cluster().is_none() {
                    hub.listeners().send_to(&subscribers, message);
                } else {
                    for s in &subscribers {
                        hub.send_to_session(s, message);
                    }
                }
                hub.listen_streams().send_to(&subscribers, message);
            }
            true
        }
        "notifications/tasks/status" => {
            super::tasks::route_status(hub, server, message);
            true
        }
        _ => false,
    }
}

/// Deliveries to client streams within [`COALESCE_WINDOW`] of the same one
/// (same `list_changed` method; `resources/updated` per URI) are sent once:
/// with several instances each may hear an upstream's notification itself
/// and from the bus (docs/cluster.md §2). Off (every delivery passes) without the
/// cluster bus, so one instance behaves as before.
pub struct Coalesce {
    on: bool,
    seen: Mutex<HashMap<(String, String), Instant>>,
}

/// How long a delivery to client streams suppresses the same one.
pub const COALESCE_WINDOW: Duration = Duration::from_millis(250);

impl Coalesce {
    /// Coalescing on (`on`: the cluster bus is on) or off.
    pub fn new(on: bool) -> Coalesce {
        Coalesce { on, seen: Mutex::new(HashMap::new()) }
    }

    /// Whether a delivery of `method` (for `uri`, or `""`) goes out now:
    /// true unless the same went out less than [`COALESCE_WINDOW`] ago.
    pub fn first(&self, method: &str, uri: &str) -> bool {
        if !self.on {
            return true;
        }
        let now = Instant::now();
        let mut seen = self.seen.lock();
        if seen.len() > 1024 {
            seen.retain(|_, at| now.duration_since(*at) < COALESCE_WINDOW);
        }
        let key = (method.to_string(), uri.to_string());
        match seen.get(&key) {
            Some(at) if now.duration_since(*at) < COALESCE_WINDOW => false,
            _ => {
                seen.insert(key, now);
                true
            }
        }
    }
}

/// A delivery from another instance (the cluster bus's handler; runs on the
/// subscriber thread, so anything that may block — an upstream POST, a
/// parked call's resume — moves to a short `cluster-work` thread).
pub fn delivered(hub: &Hub, from: &str, d: crate::cluster::Delivery) {
    use crate::cluster::Delivery;
    match d {
        Delivery::UpstreamNotification { server, message } => {
            if let Some(method) = message.get("method").and_then(Value::as_str) {
                apply_notification(hub, &server, method, &message);
            }
        }
        Delivery::ToSession { session, message } => {
            let method = message.get("method").and_then(Value::as_str).unwrap_or("");
            let uri = crate::protocol::jsonrpc::at(&message, &["params", "uri"]).and_then(Value::as_str).unwrap_or("");
            let fresh = (!method.ends_with("list_changed") && method != "notifications/resources/updated") || hub.coalesce().first(&format!("{session}\0{method}"), uri);
            if fresh && !hub.listeners().send_one(&session, &message) {
                log::debug!("cluster: a message for a GET stream that is no longer here; dropped");
            }
        }
        Delivery::SessionEnded { session } => {
            // The session ended elsewhere: drop the local copy, its stream and tasks.
            hub.forget_session_local(&session);
        }
        Delivery::ClientAnswer { session, user, message } => {
            let hub2 = hub.clone();
            let spawned = hub.threads().spawn("cluster-work", crate::threads::Kind::Call, move || {
                if !claim_remote(&hub2, &session, user.as_deref(), &message) {
                    log::debug!("cluster: a client answer forwarded here matched no waiting request; ignored");
                }
            });
            if let Err(e) = spawned {
                log::warn!("cluster: cannot start a thread for a client answer: {e}");
            }
        }
        Delivery::Forward { from: asker, corr, kind, body } => {
            let hub2 = hub.clone();
            let spawned = hub.threads().spawn("cluster-work", crate::threads::Kind::Call, move || {
                let answer = match kind.as_str() {
                    "mrtr" => super::mrtr::resume_forwarded(&hub2, &body),
                    _ => serde_json::json!({"status": 400, "body": null}),
                };
                if let Some(c) = hub2.cluster() {
                    c.reply(&asker, corr, answer);
                }
            });
            if let Err(e) = spawned {
                log::warn!("cluster: cannot start a thread for a forward from '{from}': {e}");
            }
        }
        Delivery::Reply { .. } => {}
    }
}

/// A client's answer forwarded by another instance: claimed here like a
/// local one, when `session` is a live session here of `user`.
pub fn claim_remote(hub: &Hub, session: &str, user: Option<&str>, message: &Value) -> bool {
    let Some(s) = hub.sessions().get(session) else { return false };
    if s.user.as_deref() != user {
        return false;
    }
    hub.pending().answer(session, message) || hub.mrtr().answer(session, message)
}

/// Sends a client's answer to the instance its id names
/// ([`instance_of_hub_id`]) when that is another one; true when an instance
/// received it.
pub fn answer_elsewhere(hub: &Hub, session: &str, user: Option<String>, message: &Value) -> bool {
    let Some(c) = hub.cluster() else { return false };
    let Some(owner) = message.get("id").and_then(Value::as_str).and_then(instance_of_hub_id) else { return false };
    if owner == c.id() {
        return false;
    }
    let d = crate::cluster::Delivery::ClientAnswer { session: session.to_string(), user, message: message.clone() };
    c.send(owner, &d)
}

/// A server→client request on the standalone GET stream of the upstream
/// session that belongs to legacy client session `client_session`
/// (`sessionSharing: "client"`, issue 21): sent on that client's GET stream
/// under a hub id, its answer routed back on `session_headers` like a
/// call's ([`PendingRequests::answer`]). `Err(why)` when the client cannot
/// take it: it did not declare the capability, or has no GET stream open.
pub fn upstream_request(hub: &Hub, upstream: &Arc<Upstream>, client_session: &str, session_headers: &[(String, String)], mut r: Value) -> Result<(), &'static str> {
    let method = r.get("method").and_then(Value::as_str).unwrap_or("").to_string();
    let capability = capability_for(&method).ok_or("unknown server→client request")?;
    let session = hub.sessions().get(client_session).ok_or("the client's session has ended")?;
    if session.capabilities.get(capability).is_none() {
        return Err("the client did not declare that capability");
    }
    let upstream_id = r.get("id").cloned().ok_or("no id")?;
    let pending = Pending {
        upstream: upstream.clone(),
        session_headers: session_headers.to_vec(),
        upstream_id,
        client_session: client_session.to_string(),
        expires: Some(Instant::now() + STANDALONE_ANSWER_WAIT),
    };
    let hub_id = hub.pending().insert(pending).ok_or("too many server→client requests are waiting")?;
    r["id"] = json!(hub_id);
    if hub.send_to_session(client_session, &r) {
        log::debug!("upstream '{}' sent '{method}' on its standalone stream; relayed to the client's GET stream as {hub_id}", upstream.name());
        Ok(())
    } else {
        hub.pending().remove(&hub_id);
        Err("it came on the standalone stream and the client has no GET stream open to receive it")
    }
}

/// The end of a call that was cut (cancelled by its client or its client
/// left): tell a legacy upstream, and answer nothing (2025-11-25
/// cancellation: no response for a cancelled request).
pub fn after_cut(upstream: &Upstream, handle: &CallHandle) {
    upstream.notify_cancelled(handle, "cancelled by the client");
}

/// What the relay needs to know about the client.
pub struct ClientSide {
    /// The client's era.
    pub era: Era,
    /// The client's request id.
    pub id: Value,
    /// The legacy client session (None for modern clients).
    pub session: Option<String>,
    /// The client's declared capabilities.
    pub capabilities: Option<Value>,
    /// The client's progress token and the hub token that replaced it.
    pub progress: Option<(Value, String)>,
    /// The client's log threshold (see [`super::shape::log_passes`]).
    pub log_threshold: Option<String>,
    /// The call's cancellation handle.
    pub handle: Arc<CallHandle>,
    /// Applied to every message before it is written (task id rewriting).
    pub rewrite: Option<super::shape::Rewrite>,
    /// How to re-issue or park the call for input rounds ([`super::mrtr`]).
    pub mrtr: Option<super::mrtr::Origin>,
}

/// The capability a server→client request needs from the client.
pub fn capability_for(method: &str) -> Option<&'static str> {
    match method {
        "sampling/createMessage" => Some("sampling"),
        "elicitation/create" => Some("elicitation"),
        "roots/list" => Some("roots"),
        _ => None,
    }
}

/// Reads the call to its end, writing what the client should see to `sink`;
/// ends with the final response (re-identified and shaped by `finish`).
/// `first` is the upstream's first answer: an open stream, or (for a legacy
/// client a modern upstream asked for input) a complete message; input
/// rounds are translated on the way ([`super::mrtr`]). A client that goes
/// away ends the relay; dropping the stream then closes the upstream
/// connection. Returns true when the upstream call was parked for a modern
/// client's retry (its handle then stays armed).
pub fn relay(hub: &Hub, upstream: &Arc<Upstream>, first: Outcome, client: &mut ClientSide, sink: &mut SseSink) -> bool {
    // A 2026-07-28 client that closes the stream cancels the call, and must
    // not leave this thread blocked on the upstream. A legacy client's
    // disconnect is not a cancellation (2025-11-25 transports: it SHOULD NOT
    // be read as one; it sends notifications/cancelled): the call runs on to
    // its end within its budget, and its events stay in the stream's log for
    // a resume (`GET` with `Last-Event-ID`, see `resume`).
    let log = match (&client.session, client.era) {
        (Some(session), Era::Legacy) => Some(hub.streams().open(session)),
        _ => None,
    };
    if client.era == Era::Modern {
        let handle = client.handle.clone();
        sink.on_gone(move || handle.cut());
    }
    if let Some(log) = &log {
        // The priming event: an id to resume from, and how soon to retry.
        let priming = log.priming_id();
        let _ = sink.send(&SseEvent { id: Some(&priming), retry_ms: Some(super::resume::RETRY_MS), data: "", ..Default::default() });
    }
    // Writes one message; false when the relay should stop (a modern client left).
    let rewrite = client.rewrite.clone();
    let emit = |m: &Value, sink: &mut SseSink| -> bool {
        let data = match &rewrite {
            Some(rewrite) => {
                let mut m = m.clone();
                rewrite(&mut m);
                m.to_string()
            }
            None => m.to_string(),
        };
        // As the client gets it (its id as sent), for the resume log too.
        let data = sink.mapped(data);
        let id = log.as_ref().map(|l| l.push(data.clone()));
        let sent = sink.send_premapped(&SseEvent { id: id.as_deref(), data: &data, ..Default::default() }).is_ok();
        sent || log.is_some()
    };
    let mut forwarded: Vec<String> = Vec::new();
    let mut next = first;
    let mut parked = false;
    let final_message = loop {
        let reply = match next {
            Outcome::Done(m) => Ok(m),
            Outcome::Streaming(call) => match read_call(hub, upstream, call, client, &mut forwarded, &mut |m| emit(m, sink)) {
                Step::Final(reply) => reply,
                Step::Gone => break Value::Null,
                Step::Input(call, r) => {
                    // The call outlives this stream: this client leaving must not cut it.
                    sink.on_gone(|| {});
                    if client.handle.is_cut() {
                        break Value::Null;
                    }
                    match super::mrtr::park(hub, upstream, call, r, client) {
                        Ok(m) => {
                            parked = true;
                            break m;
                        }
                        Err((call, r)) => {
                            upstream.refuse(&call, &r, Refusal::Hub("too many calls wait for client input"));
                            let handle = client.handle.clone();
                            sink.on_gone(move || handle.cut());
                            next = Outcome::Streaming(call);
                            continue;
                        }
                    }
                }
            },
        };
        match super::mrtr::next_round(hub, upstream, client, reply, &mut |m| emit(m, sink)) {
            Ok(outcome) => next = outcome,
            Err(message) => break message,
        }
    };
    for id in &forwarded {
        hub.pending().remove(id);
    }
    if client.handle.is_cut() && !parked {
        after_cut(upstream, &client.handle);
    } else if !final_message.is_null() {
        emit(&final_message, sink);
    }
    if let Some(log) = &log {
        log.end();
    }
    parked
}

/// How reading one upstream call's stream ended.
enum Step {
    /// The upstream's final message (or why there is none).
    Final(Result<Value, crate::upstream::UpstreamError>),
    /// The client left (a modern client: the call is cancelled).
    Gone,
    /// A server→client request to turn into an `InputRequiredResult`.
    Input(CallStream, Value),
}

/// Reads `call` until its final message, relaying what belongs to this
/// client; the stream is dropped (closing the connection) unless handed back
/// in [`Step::Input`].
fn read_call(
    hub: &Hub,
    upstream: &Arc<Upstream>,
    mut call: CallStream,
    client: &ClientSide,
    forwarded: &mut Vec<String>,
    emit: &mut dyn FnMut(&Value) -> bool,
) -> Step {
    loop {
        match call.events.next_item() {
            Ok(Some(StreamItem::Final(m))) => return Step::Final(Ok(m)),
            Ok(Some(StreamItem::Notification(n))) => {
                if let Some(m) = notification_for_client(hub.catalog(), hub.tasks(), upstream.name(), n, client) {
                    if !emit(&m) {
                        return Step::Gone;
                    }
                }
            }
            Ok(Some(StreamItem::Request(r))) if super::mrtr::parks(client, &r) => return Step::Input(call, r),
            Ok(Some(StreamItem::Request(r))) => match forward_request(hub, upstream, &call, r, client) {
                Ok((hub_id, m)) => {
                    forwarded.push(hub_id);
                    if !emit(&m) {
                        return Step::Gone;
                    }
                }
                Err((r, why)) => upstream.refuse(&call, &r, why),
            },
            Ok(None) => {
                let detail = "the event stream ended without a response".into();
                return Step::Final(Err(crate::upstream::UpstreamError::Protocol { server: upstream.name().to_string(), detail }));
            }
            Err(e) => {
                // Past its deadline the stream is cut (dropped here), the
                // upstream told, and the client gets -32001 on its stream.
                upstream.timed_out(Some(&client.handle), &e);
                return Step::Final(Err(e));
            }
        }
    }
}

/// The notification as the client should get it, or None when it is not for
/// this client (another client's progress token, a log level below its threshold).
fn notification_for_client(catalog: &crate::catalog::Catalog, tasks: &super::tasks::Tasks, server: &str, mut n: Value, client: &ClientSide) -> Option<Value> {
    let method = n.get("method").and_then(Value::as_str)?.to_string();
    catalog.on_notification(server, &method);
    match method.as_str() {
        "notifications/progress" => {
            let (client_token, hub_token) = client.progress.as_ref()?;
            if crate::protocol::jsonrpc::at(&n, &["params", "progressToken"]).and_then(Value::as_str) != Some(hub_token.as_str()) {
                return None;
            }
            n["params"]["progressToken"] = client_token.clone();
            Some(n)
        }
        "notifications/message" => {
            let level = crate::protocol::jsonrpc::at(&n, &["params", "level"]).and_then(Value::as_str);
            super::shape::log_passes(client.era, client.log_threshold.as_deref(), level).then_some(n)
        }
        "notifications/tasks/status" => {
            let session = client.session.as_deref().filter(|_| client.era == Era::Legacy)?;
            super::tasks::status_for(tasks, server, n, session)
        }
        _ => None,
    }
}

/// Registers a server→client request for this client and returns it with
/// the hub id, or the request and why it cannot be relayed.
fn forward_request(
    hub: &Hub,
    upstream: &Arc<Upstream>,
    call: &CallStream,
    mut r: Value,
    client: &ClientSide,
) -> Result<(String, Value), (Value, Refusal<'static>)> {
    let method = r.get("method").and_then(Value::as_str).unwrap_or("").to_string();
    let Some(capability) = capability_for(&method) else {
        return Err((r, Refusal::Client("unknown server→client request")));
    };
    let Some(session) = client.session.clone().filter(|_| client.era == Era::Legacy) else {
        return Err((r, Refusal::Client("the 2026-07-28 client did not declare that capability")));
    };
    if client.capabilities.as_ref().and_then(|c| c.get(capability)).is_none() {
        return Err((r, Refusal::Client("the client did not declare that capability")));
    }
    let Some(upstream_id) = r.get("id").cloned() else { return Err((r, Refusal::Client("no id"))) };
    let pending =
        Pending { upstream: upstream.clone(), session_headers: call.session_headers.clone(), upstream_id, client_session: session, expires: None };
    let Some(hub_id) = hub.pending().insert(pending) else {
        return Err((r, Refusal::Hub("too many server→client requests are waiting")));
    };
    r["id"] = json!(hub_id);
    Ok((hub_id, r))
}

/// The client-facing response message for an upstream outcome: a reply
/// re-identified and shaped for `era` ([`super::shape::reply`]), or the
/// upstream failure logged (throttled) and refused ([`Refusal::Upstream`]).
pub fn finish(era: Era, id: &Value, reply: Result<Value, crate::upstream::UpstreamError>) -> Value {
    match reply {
        Ok(msg) => super::shape::reply(era, id, msg),
        Err(e) => {
            match (e.timeout_layer(), e.retry_after_secs()) {
                (Some(_), _) => log::debug!("{e}"), // logged where it happened (Upstream::timed_out)
                // Circuit open, queue full: one line per server per 10 s,
                // not one per refused call (a storm of them is the point).
                (None, Some(_)) => warn_throttled(e.server(), &e),
                // One user's token, never its value nor the upstream's text;
                // the request line names the user (issue 14).
                (None, None) if matches!(e, crate::upstream::UpstreamError::Rejected { .. }) => {
                    let user = crate::trace::with(|i| i.and_then(|i| i.user.clone())).unwrap_or_else(|| "-".into());
                    log::warn!("user '{user}': {e}");
                }
                (None, None) => log::warn!("{e}"),
            }
            super::refusal::Refusal::Upstream(e).message(Some(id))
        }
    }
}

/// How often a refusal (circuit open, queue full) is logged per server.
const REFUSAL_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Logs `line` at warn for `server` at most once per [`REFUSAL_LOG_EVERY`],
/// saying how many like it were not logged since (`line` is formatted only
/// when logged: a storm of refusals is the point).
fn warn_throttled(server: &str, line: &dyn std::fmt::Display) {
    static LAST: parking_lot::Mutex<Option<std::collections::HashMap<String, (std::time::Instant, u64)>>> = parking_lot::Mutex::new(None);
    let now = std::time::Instant::now();
    let mut last = LAST.lock();
    let map = last.get_or_insert_with(Default::default);
    match map.get_mut(server) {
        Some((at, skipped)) if now.duration_since(*at) < REFUSAL_LOG_EVERY => *skipped += 1,
        entry => {
            let skipped = entry.map_or(0, |(_, n)| *n);
            map.insert(server.to_string(), (now, 0));
            drop(last);
            match skipped {
                0 => log::warn!("{line}"),
                n => log::warn!("{line} ({n} more refusals of '{server}' since the last such line)"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_subscribe_and_the_last_unsubscribe_go_upstream() {
        let s = Subscriptions::default();
        assert!(s.update("m", "test://x", "a", true));
        assert!(!s.update("m", "test://x", "b", true));
        assert!(!s.update("m", "test://x", "b", true), "a repeated subscribe changes nothing");
        assert!(!s.update("m", "test://x", "a", false));
        assert_eq!(s.subscribers("m", "test://x"), vec!["b".to_string()]);
        assert!(s.update("m", "test://x", "b", false));
        assert!(!s.update("m", "test://x", "b", false), "unsubscribing twice changes nothing");
        assert!(s.subscribers("m", "test://x").is_empty());
    }
}
