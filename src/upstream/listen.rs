//! The hub as a 2026-07-28 client of change notifications: one
//! `subscriptions/listen` stream per modern upstream (schema
//! `SubscriptionsListenRequest`; basic/transports/streamable-http.mdx,
//! "Receiving Messages"), the counterpart of the legacy GET listener in
//! [`super::Upstream`].
//!
//! - The filter asks for every list change (`toolsListChanged`,
//!   `promptsListChanged`, `resourcesListChanged`: the hub's cached lists
//!   depend on them whoever listens downstream) and `resourceSubscriptions`
//!   for the URIs downstream clients of either era subscribed to on this
//!   server ([`super::Upstream::watch_resources`]). A changed URI set cuts the
//!   open stream and reopens it with the new filter at once, so there is never
//!   more than one stream per server.
//! - Notifications go to the hub's notification sink with the upstream's
//!   `io.modelcontextprotocol/subscriptionId` removed (it names the hub's
//!   subscription, not a client's); the acknowledgement is only logged.
//! - A broken or refused stream is reopened after a back-off
//!   ([`super::retry::reconnect_backoff`], the legacy GET listener's too); a server that answers `-32601` / 404 (no
//!   `subscriptions/listen`) is not asked again. The thread holds the upstream
//!   only weakly and ends when it is dropped (the open stream is cut then).

use super::cancel::{self, CallHandle};
use super::transport::{Answer, StreamItem};
use super::{hub_client_info, NotificationSink, Upstream};
use crate::protocol::{self, codes, headers, jsonrpc, MODERN_VERSION};
use parking_lot::{Condvar, Mutex};
use serde_json::{json, Map, Value};
use std::sync::{Arc, Weak};

/// `_meta` key naming the subscription a notification was delivered on
/// (2026-07-28 schema `NotificationMetaObject`).
pub const META_SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";

/// One server's listen stream: the wanted URI set and the thread's controls.
#[derive(Default)]
pub struct Watch {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    /// Resource URIs to ask `notifications/resources/updated` for, sorted.
    uris: Vec<String>,
    /// Bumped whenever `uris` changes; a stream opened for an older one is stale.
    generation: u64,
    /// The thread was started.
    started: bool,
    /// The upstream is gone or refuses `subscriptions/listen`: no more attempts.
    stopped: bool,
    /// The open stream's connection, to cut it for a new filter.
    current: Option<Arc<CallHandle>>,
    /// The open stream was acknowledged (for `/readyz` and tests).
    acknowledged: bool,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Watch {
    /// Stops the listen thread for good (the upstream is dropped or retired
    /// by a config reload): the open stream is cut, no new one is opened.
    pub(super) fn stop(&self) {
        let mut s = self.shared.state.lock();
        s.stopped = true;
        if let Some(h) = s.current.take() {
            h.cut();
        }
        self.shared.wake.notify_all();
    }

    /// Sets the URI set; true when it changed (the open stream was cut).
    fn set_uris(&self, mut uris: Vec<String>) -> bool {
        uris.sort();
        uris.dedup();
        let mut s = self.shared.state.lock();
        if s.uris == uris {
            return false;
        }
        s.uris = uris;
        s.generation += 1;
        s.acknowledged = false;
        if let Some(h) = &s.current {
            h.cut();
        }
        self.shared.wake.notify_all();
        true
    }

    /// Whether the server's current listen stream is open and acknowledged.
    pub fn is_acknowledged(&self) -> bool {
        self.shared.state.lock().acknowledged
    }
}

/// The `SubscriptionFilter` the hub asks a modern upstream for.
pub fn upstream_filter(uris: &[String]) -> Value {
    let mut f = json!({"toolsListChanged": true, "promptsListChanged": true, "resourcesListChanged": true});
    if !uris.is_empty() {
        f["resourceSubscriptions"] = json!(uris);
    }
    f
}

/// Removes the upstream's subscription id from a notification's `_meta`
/// (and `_meta` itself when nothing else is left).
pub fn strip_subscription_id(message: &mut Value) {
    let Some(params) = message.get_mut("params").and_then(Value::as_object_mut) else { return };
    if let Some(Value::Object(meta)) = params.get_mut("_meta") {
        meta.remove(META_SUBSCRIPTION_ID);
        if meta.is_empty() {
            params.remove("_meta");
        }
    }
}

/// How one stream ended.
enum End {
    /// Cut for a new URI set, or the upstream is gone: go on at once.
    Superseded,
    /// Broken, refused or ended by the server: back off.
    Failed,
    /// The server has no `subscriptions/listen`: stop.
    Unsupported,
}

impl Upstream {
    /// Sets the resource URIs downstream clients subscribed to on this
    /// (modern) server; the listen stream is reopened with the new filter.
    /// Starts the listener when it is not running yet.
    pub fn watch_resources(&self, uris: Vec<String>) {
        self.listen_watch.set_uris(uris);
        self.start_modern_listener();
    }

    /// Whether this server's `subscriptions/listen` stream is open and acknowledged.
    pub fn modern_listen_acknowledged(&self) -> bool {
        self.listen_watch.is_acknowledged()
    }

    /// Starts the `subscriptions/listen` thread once (a no-op until the
    /// notification sink is set and the server is known to be modern).
    pub(super) fn start_modern_listener(&self) {
        if *self.era.read() != Some(protocol::Era::Modern) {
            return;
        }
        let Some(sink) = self.on_notification.get().cloned() else { return };
        {
            let mut s = self.listen_watch.shared.state.lock();
            if s.started || s.stopped {
                return;
            }
            s.started = true;
        }
        let shared = self.listen_watch.shared.clone();
        let me = self.me.clone();
        let name = self.config.name.clone();
        // Owned by the hub's threads; `Watch::stop` (retire, shutdown) ends it.
        let spawned = self.threads().spawn_owned(&format!("subscribe-{name}"), crate::threads::Kind::Listen, move |_| run(&me, &shared, &sink, &name));
        if let Err(e) = spawned {
            log::warn!("cannot start the subscriptions/listen thread of '{}': {e}", self.config.name);
            self.listen_watch.shared.state.lock().started = false;
        }
    }
}

fn run(me: &Weak<Upstream>, shared: &Shared, sink: &NotificationSink, name: &str) {
    let mut failures = 0u32;
    loop {
        let (uris, generation, handle) = {
            let mut s = shared.state.lock();
            if s.stopped {
                return;
            }
            let handle = Arc::new(CallHandle::default());
            s.current = Some(handle.clone());
            (s.uris.clone(), s.generation, handle)
        };
        let end = match me.upgrade() {
            Some(upstream) => listen_once(upstream, shared, sink, name, &uris, &handle),
            None => return,
        };
        let mut s = shared.state.lock();
        s.current = None;
        s.acknowledged = false;
        let superseded = s.generation != generation || s.stopped;
        match end {
            End::Unsupported => {
                log::info!("upstream '{name}' offers no subscriptions/listen; its lists are refreshed by TTL");
                s.stopped = true;
                return;
            }
            End::Superseded => continue,
            End::Failed if superseded => continue,
            End::Failed => {
                let pause = super::retry::reconnect_backoff(failures);
                failures = failures.saturating_add(1);
                // Wake early for a new URI set or the end of the upstream.
                let _ = shared.wake.wait_while_for(&mut s, |s| s.generation == generation && !s.stopped, pause);
            }
        }
    }
}

/// Opens one stream and reads it to its end.
fn listen_once(upstream: Arc<Upstream>, shared: &Shared, sink: &NotificationSink, name: &str, uris: &[String], handle: &Arc<CallHandle>) -> End {
    let mut params = Map::new();
    params.insert(
        "_meta".into(),
        json!({
            protocol::META_PROTOCOL_VERSION: MODERN_VERSION,
            protocol::META_CLIENT_INFO: hub_client_info(),
            protocol::META_CLIENT_CAPABILITIES: {},
        }),
    );
    params.insert("notifications".into(), upstream_filter(uris));
    let hdrs = headers::standard(MODERN_VERSION, "subscriptions/listen", &params);
    let id = upstream.next_id();
    let body = jsonrpc::request(&id, "subscriptions/listen", Value::Object(params));
    let answer = {
        let _bound = cancel::bind(handle);
        upstream.transport.post_long(&body, &hdrs)
    };
    // Only the stream is needed from here on: the upstream may be dropped.
    drop(upstream);
    let mut events = match answer {
        Ok(Answer::Stream(events)) => events,
        Ok(Answer::Reply(reply)) => {
            let unsupported = reply.status == 404 || reply.status == 405 || reply.error_code() == Some(codes::METHOD_NOT_FOUND);
            log::debug!("subscriptions/listen on '{name}' answered HTTP {} without a stream", reply.status);
            return if unsupported { End::Unsupported } else { End::Failed };
        }
        Err(e) => {
            log::debug!("subscriptions/listen on '{name}' failed: {e}");
            return if handle.is_cut() { End::Superseded } else { End::Failed };
        }
    };
    loop {
        match events.next_item() {
            Ok(Some(StreamItem::Notification(mut n))) => {
                if n.get("method").and_then(Value::as_str) == Some("notifications/subscriptions/acknowledged") {
                    log::debug!("upstream '{name}' acknowledged the hub's subscription: {}", crate::protocol::jsonrpc::at(&n, &["params", "notifications"]).unwrap_or(&Value::Null));
                    shared.state.lock().acknowledged = true;
                    continue;
                }
                strip_subscription_id(&mut n);
                sink(name, &n);
            }
            // 2026-07-28 servers send no requests on a stream; nothing can answer one.
            Ok(Some(StreamItem::Request(_))) => {}
            Ok(Some(StreamItem::Final(m))) => {
                log::debug!("upstream '{name}' ended the hub's subscription: {m}");
                return End::Failed;
            }
            Ok(None) | Err(_) => return if handle.is_cut() { End::Superseded } else { End::Failed },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_asks_for_every_list_change_and_the_watched_uris() {
        assert_eq!(
            upstream_filter(&[]),
            json!({"toolsListChanged": true, "promptsListChanged": true, "resourcesListChanged": true})
        );
        assert_eq!(upstream_filter(&["a://1".into()])["resourceSubscriptions"], json!(["a://1"]));
    }

    #[test]
    fn the_upstream_subscription_id_is_removed() {
        let mut n = json!({"method": "notifications/resources/updated", "params": {"uri": "a://1", "_meta": {META_SUBSCRIPTION_ID: 7}}});
        strip_subscription_id(&mut n);
        assert_eq!(n, json!({"method": "notifications/resources/updated", "params": {"uri": "a://1"}}));
        let mut keep = json!({"method": "x", "params": {"_meta": {META_SUBSCRIPTION_ID: 7, "other": 1}}});
        strip_subscription_id(&mut keep);
        assert_eq!(keep["params"]["_meta"], json!({"other": 1}));
        let mut bare = json!({"method": "notifications/tools/list_changed"});
        strip_subscription_id(&mut bare);
        assert_eq!(bare, json!({"method": "notifications/tools/list_changed"}));
    }

    #[test]
    fn a_new_uri_set_bumps_the_generation_and_cuts_the_open_stream() {
        let w = Watch::default();
        let h = Arc::new(CallHandle::default());
        w.shared.state.lock().current = Some(h.clone());
        assert!(w.set_uris(vec!["b".into(), "a".into(), "a".into()]));
        assert!(h.is_cut());
        assert_eq!(w.shared.state.lock().uris, vec!["a".to_string(), "b".to_string()]);
        assert!(!w.set_uris(vec!["a".into(), "b".into()]), "the same set changes nothing");
        assert_eq!(w.shared.state.lock().generation, 1);
    }
}
