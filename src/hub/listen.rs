//! `subscriptions/listen` for 2026-07-28 clients: the modern counterpart of
//! a legacy client's standalone GET stream (schema `SubscriptionsListenRequest`,
//! `SubscriptionFilter`, `SubscriptionsAcknowledgedNotification`;
//! basic/transports/streamable-http.mdx, "Receiving Messages").
//!
//! - The request's `params.notifications` filter is opt-in: a stream gets
//!   only the `list_changed` kinds it asked for and `resources/updated` for
//!   the URIs in `resourceSubscriptions` (at most [`MAX_URIS`]) that some
//!   server owns.
//! - The answer is an SSE stream on a stream thread. Its first message is
//!   `notifications/subscriptions/acknowledged` with the accepted filter;
//!   every message carries `_meta["io.modelcontextprotocol/subscriptionId"]`
//!   = the request's JSON-RPC id.
//! - Resource subscriptions are counted with the legacy ones
//!   ([`super::relay::Subscriptions`], under the key `listen:{n}`), so the
//!   owning server hears the first subscribe and the last unsubscribe of
//!   either era ([`watch_upstream`]): a legacy server by
//!   `resources/subscribe`/`unsubscribe` on the shared session, a modern one
//!   by reopening the hub's own listen stream with the new URI set
//!   ([`crate::upstream::listen`]).
//! - When the client goes away (the pinger or a failed write marks the sink
//!   gone) the stream ends within a second and its registrations are dropped.

use super::refusal::Refusal;
use super::{Downstream, Hub};
use crate::http::{Response, SseEvent, SseSink};
use crate::protocol::{jsonrpc, Era};
use crate::upstream::listen::META_SUBSCRIPTION_ID;
use crate::upstream::{CallContext, Upstream, UpstreamError};
use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Most URIs one listen request may subscribe to.
pub const MAX_URIS: usize = 256;

/// Messages queued per listen stream; beyond that a slow client misses
/// notifications rather than blocking the hub.
pub const LISTEN_QUEUE: usize = super::relay::LISTEN_QUEUE;

/// What a listen stream opted in to (2026-07-28 `SubscriptionFilter`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// `toolsListChanged`.
    pub tools: bool,
    /// `promptsListChanged`.
    pub prompts: bool,
    /// `resourcesListChanged`.
    pub resources: bool,
    /// `resourceSubscriptions`, when present (duplicates removed, order kept).
    pub uris: Option<Vec<String>>,
}

impl Filter {
    /// Reads `params.notifications`. Errors (→ `-32602`): a missing or
    /// non-object filter, a flag that is not a boolean, URIs that are not
    /// strings, more than [`MAX_URIS`] of them, or one longer than
    /// [`crate::catalog::MAX_URI_LEN`] bytes. Unknown fields are ignored.
    pub fn parse(params: &Map<String, Value>) -> Result<Filter, String> {
        let Some(f) = params.get("notifications").and_then(Value::as_object) else {
            return Err("subscriptions/listen needs params.notifications (an object)".into());
        };
        let flag = |key: &str| match f.get(key) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(format!("params.notifications.{key} must be a boolean")),
        };
        let uris = match f.get("resourceSubscriptions") {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => {
                if items.len() > MAX_URIS {
                    return Err(format!("params.notifications.resourceSubscriptions lists more than {MAX_URIS} URIs"));
                }
                let mut uris: Vec<String> = Vec::with_capacity(items.len());
                for item in items {
                    let Some(uri) = item.as_str() else {
                        return Err("params.notifications.resourceSubscriptions must list strings".into());
                    };
                    if uri.len() > crate::catalog::MAX_URI_LEN {
                        return Err(format!("a resource URI is longer than {} bytes", crate::catalog::MAX_URI_LEN));
                    }
                    if !uris.iter().any(|u| u == uri) {
                        uris.push(uri.to_string());
                    }
                }
                Some(uris)
            }
            Some(_) => return Err("params.notifications.resourceSubscriptions must be an array".into()),
        };
        Ok(Filter { tools: flag("toolsListChanged")?, prompts: flag("promptsListChanged")?, resources: flag("resourcesListChanged")?, uris })
    }

    /// The filter as JSON: the flags that are set and `resourceSubscriptions` when present.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        for (key, on) in [("toolsListChanged", self.tools), ("promptsListChanged", self.prompts), ("resourcesListChanged", self.resources)] {
            if on {
                m.insert(key.into(), Value::Bool(true));
            }
        }
        if let Some(uris) = &self.uris {
            m.insert("resourceSubscriptions".into(), json!(uris));
        }
        Value::Object(m)
    }

    /// Whether a `notifications/*/list_changed` with this method was asked for.
    pub fn wants_list_changed(&self, method: &str) -> bool {
        match method {
            "notifications/tools/list_changed" => self.tools,
            "notifications/prompts/list_changed" => self.prompts,
            "notifications/resources/list_changed" => self.resources,
            _ => false,
        }
    }
}

/// `message` tagged with the subscription it goes out on
/// (`params._meta["io.modelcontextprotocol/subscriptionId"]`, 2026-07-28
/// `NotificationMetaObject`); `params` and `_meta` are created if missing.
pub fn tag(message: &Value, subscription_id: &Value) -> Value {
    let mut m = message.clone();
    if !m.get("params").is_some_and(Value::is_object) {
        m["params"] = json!({});
    }
    if !m["params"].get("_meta").is_some_and(Value::is_object) {
        m["params"]["_meta"] = json!({});
    }
    m["params"]["_meta"][META_SUBSCRIPTION_ID] = subscription_id.clone();
    m
}

/// The first message of a listen stream: the accepted filter, tagged.
pub fn acknowledgement(subscription_id: &Value, accepted: &Filter) -> Value {
    let ack = jsonrpc::notification("notifications/subscriptions/acknowledged", json!({"notifications": accepted.to_json()}));
    tag(&ack, subscription_id)
}

/// The key a listen stream's resource subscriptions are counted under in
/// [`super::relay::Subscriptions`] (legacy client session ids are never of this form).
pub fn subscriber_key(token: u64) -> String {
    format!("listen:{token}")
}

struct Entry {
    filter: Filter,
    tx: crossbeam_channel::Sender<Value>,
}

/// The open listen streams of modern clients, by token.
#[derive(Default)]
pub struct ListenStreams {
    map: Mutex<HashMap<u64, Entry>>,
    next: AtomicU64,
    /// Held while a modern upstream's URI set is read and handed over, so
    /// the last handover always carries the latest set.
    watch_order: Mutex<()>,
}

impl ListenStreams {
    fn open(&self, filter: Filter) -> (u64, crossbeam_channel::Receiver<Value>) {
        let (tx, rx) = crossbeam_channel::bounded(LISTEN_QUEUE);
        let token = self.next.fetch_add(1, Ordering::Relaxed);
        self.map.lock().insert(token, Entry { filter, tx });
        (token, rx)
    }

    fn close(&self, token: u64) {
        self.map.lock().remove(&token);
    }

    /// Number of open listen streams.
    pub fn len(&self) -> usize {
        self.map.lock().len()
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues a `notifications/*/list_changed` for every stream that asked for that kind.
    pub fn send_list_changed(&self, method: &str) {
        let message = json!({"jsonrpc": "2.0", "method": method});
        for e in self.map.lock().values().filter(|e| e.filter.wants_list_changed(method)) {
            let _ = e.tx.try_send(message.clone());
        }
    }

    /// Queues `message` for the listen streams among `subscribers` (keys of
    /// [`super::relay::Subscriptions`]; legacy session ids are skipped).
    pub fn send_to(&self, subscribers: &[String], message: &Value) {
        let map = self.map.lock();
        for token in subscribers.iter().filter_map(|s| s.strip_prefix("listen:")?.parse::<u64>().ok()) {
            if let Some(e) = map.get(&token) {
                let _ = e.tx.try_send(message.clone());
            }
        }
    }
}

/// Tells the server owning a resource that the hub's interest in `uri`
/// started (`subscribe`) or ended: a legacy server gets
/// `resources/subscribe`/`unsubscribe` with `params` on the shared session,
/// a modern one's listen stream is reopened with the hub's current URI set
/// for it. Returns the upstream's response message (for a modern server, an
/// empty result); its id is not the client's.
pub fn watch_upstream(
    streams: &ListenStreams,
    subscriptions: &super::relay::Subscriptions,
    upstream: &Upstream,
    uri: &str,
    subscribe: bool,
    params: Map<String, Value>,
    ctx: &CallContext,
) -> Result<Value, UpstreamError> {
    match upstream.era(ctx)? {
        Era::Modern => {
            let _in_order = streams.watch_order.lock();
            upstream.watch_resources(subscriptions.uris(upstream.name()));
            Ok(json!({"jsonrpc": "2.0", "id": null, "result": {}}))
        }
        Era::Legacy => {
            let method = if subscribe { "resources/subscribe" } else { "resources/unsubscribe" };
            let mut params = params;
            params.insert("uri".into(), json!(uri));
            upstream.request(method, params, ctx, &[], &mut |_| {})
        }
    }
}

/// Adds (`subscribe`) or removes `key`'s interest in `uri` on `server`,
/// telling the server when it is the first or the last. A failed first
/// subscribe is undone. Returns whether `key` is subscribed afterwards
/// (for `subscribe`) or the removal went through.
fn update_interest(hub: &Hub, server: &str, uri: &str, key: &str, subscribe: bool, ctx: &CallContext) -> bool {
    if !hub.subscriptions().update(server, uri, key, subscribe) {
        return true;
    }
    let Some(upstream) = hub.catalog().upstream(server) else { return !subscribe };
    let reply = watch_upstream(hub.listen_streams(), hub.subscriptions(), &upstream, uri, subscribe, Map::new(), ctx);
    let ok = reply.as_ref().is_ok_and(|m| m.get("result").is_some());
    if subscribe && !ok {
        hub.subscriptions().update(server, uri, key, false);
        log::debug!("subscribing to a resource of '{server}' failed; left out of the listen stream");
        return false;
    }
    true
}

/// `subscriptions/listen` (2026-07-28 clients): registers the stream, then
/// answers with the SSE stream that acknowledges and delivers. Errors:
/// `-32602` for a bad filter; `-32600` with HTTP 406 when the client does
/// not accept `text/event-stream`.
pub fn listen(hub: &Hub, down: &Downstream, id: Value, params: Map<String, Value>) -> Response {
    let filter = match Filter::parse(&params) {
        Ok(f) => f,
        Err(why) => return Refusal::InvalidParams(why).response(Some(&id)),
    };
    if !down.accepts_sse {
        return Refusal::ListenNeedsEventStream.response(Some(&id));
    }
    let (token, rx) = hub.listen_streams().open(filter.clone());
    let key = subscriber_key(token);
    let ctx = down.call_context();
    // Only URIs some server owns (and that server accepted) are honoured.
    let mut watched: Vec<(String, String)> = Vec::new();
    for uri in filter.uris.iter().flatten() {
        let Some(server) = hub.catalog().route_uri(uri, &ctx) else { continue };
        if update_interest(hub, &server, uri, &key, true, &ctx) {
            watched.push((server, uri.clone()));
        }
    }
    let accepted = Filter { uris: filter.uris.as_ref().map(|_| watched.iter().map(|(_, u)| u.clone()).collect()), ..filter };
    let hub = hub.clone();
    Response::sse(move |sink: &mut SseSink| {
        sink.open_ended(); // no answer to wait for: a shutdown ends it at once
        deliver(&rx, &id, &accepted, sink);
        hub.listen_streams().close(token);
        let ctx = CallContext::shared(Instant::now() + Duration::from_secs(5));
        for (server, uri) in &watched {
            update_interest(&hub, server, uri, &key, false, &ctx);
        }
        log::debug!("subscriptions/listen stream {token} ended");
    })
    .with_header("X-Accel-Buffering", "no")
}

/// The stream's loop: the acknowledgement, then each queued message tagged,
/// until the client is gone (checked at least once a second).
fn deliver(rx: &crossbeam_channel::Receiver<Value>, id: &Value, accepted: &Filter, sink: &mut SseSink) {
    let send = |m: &Value, sink: &mut SseSink| sink.send(&SseEvent { data: &m.to_string(), ..Default::default() }).is_ok();
    if !send(&acknowledgement(id, accepted), sink) {
        return;
    }
    loop {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(m) => {
                if !send(&tag(&m, id), sink) {
                    return;
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) if !sink.is_gone() => {}
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn the_filter_is_opt_in_and_read_strictly() {
        let f = Filter::parse(&params(json!({"notifications": {"toolsListChanged": true, "promptsListChanged": false, "x": 1}}))).unwrap();
        assert_eq!(f, Filter { tools: true, ..Filter::default() });
        assert!(f.wants_list_changed("notifications/tools/list_changed"));
        assert!(!f.wants_list_changed("notifications/prompts/list_changed"));
        assert!(!f.wants_list_changed("notifications/resources/updated"));
        assert_eq!(f.to_json(), json!({"toolsListChanged": true}));
        let uris = Filter::parse(&params(json!({"notifications": {"resourceSubscriptions": ["a://1", "a://2", "a://1"]}}))).unwrap();
        assert_eq!(uris.uris, Some(vec!["a://1".to_string(), "a://2".to_string()]));
        assert_eq!(Filter::parse(&params(json!({"notifications": {}}))).unwrap().to_json(), json!({}));
    }

    #[test]
    fn bad_filters_are_refused_with_a_reason() {
        for bad in [
            json!({}),
            json!({"notifications": []}),
            json!({"notifications": {"toolsListChanged": "yes"}}),
            json!({"notifications": {"resourceSubscriptions": "a://1"}}),
            json!({"notifications": {"resourceSubscriptions": [1]}}),
            json!({"notifications": {"resourceSubscriptions": vec!["a://x"; MAX_URIS + 1]}}),
            json!({"notifications": {"resourceSubscriptions": ["a".repeat(crate::catalog::MAX_URI_LEN + 1)]}}),
        ] {
            assert!(Filter::parse(&params(bad.clone())).is_err(), "{bad}");
        }
    }

    #[test]
    fn messages_carry_the_subscription_id_and_the_ack_comes_with_the_accepted_filter() {
        let n = tag(&json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}), &json!("L1"));
        assert_eq!(n["params"]["_meta"][META_SUBSCRIPTION_ID], "L1");
        let u = tag(&json!({"method": "notifications/resources/updated", "params": {"uri": "a://1", "_meta": {"k": 1}}}), &json!(7));
        assert_eq!(u["params"], json!({"uri": "a://1", "_meta": {"k": 1, META_SUBSCRIPTION_ID: 7}}));
        let accepted = Filter { prompts: true, uris: Some(vec![]), ..Filter::default() };
        let ack = acknowledgement(&json!(3), &accepted);
        assert_eq!(ack["method"], "notifications/subscriptions/acknowledged");
        assert_eq!(ack["params"]["notifications"], json!({"promptsListChanged": true, "resourceSubscriptions": []}));
        assert_eq!(ack["params"]["_meta"][META_SUBSCRIPTION_ID], 3);
    }

    #[test]
    fn fan_out_honours_each_streams_filter_and_subscriptions() {
        let streams = ListenStreams::default();
        let (a, ra) = streams.open(Filter { tools: true, ..Filter::default() });
        let (_b, rb) = streams.open(Filter { prompts: true, ..Filter::default() });
        streams.send_list_changed("notifications/tools/list_changed");
        assert_eq!(ra.try_recv().unwrap()["method"], "notifications/tools/list_changed");
        assert!(rb.try_recv().is_err(), "b asked for prompts only");
        let updated = json!({"method": "notifications/resources/updated", "params": {"uri": "a://1"}});
        streams.send_to(&["sess-legacy".into(), subscriber_key(a)], &updated);
        assert_eq!(ra.try_recv().unwrap(), updated);
        assert!(rb.try_recv().is_err());
        streams.close(a);
        assert_eq!(streams.len(), 1);
    }
}
