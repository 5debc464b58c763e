//! The mock's 2026-07-28 `subscriptions/listen` (schema
//! `SubscriptionsListenRequest`, `SubscriptionFilter`): an SSE stream that
//! first acknowledges the filter (`notifications/subscriptions/acknowledged`,
//! all requested types accepted), then carries the change notifications the
//! filter opted in to, each tagged with
//! `_meta["io.modelcontextprotocol/subscriptionId"]` = the request's id.
//!
//! Triggers: [`MockServer::announce_list_changed`] and
//! [`MockServer::announce_resource_updated`] (tests hold the server), and the
//! conformance hooks `test_trigger_tool_change` / `test_trigger_prompt_change`
//! when called by a modern client. A stream ends when its client is gone or
//! the server shuts down; streams are not counted as requests in `/stats`.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{json, Value};

use super::MockServer;
use mcphub::http::{Request, Response, SseEvent};

const META_SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";

/// Messages queued per stream before further ones are dropped.
const QUEUE: usize = 256;

/// The open listen streams: (filter, queue) by a mock-local number.
#[derive(Default)]
pub(crate) struct Streams {
    map: Mutex<HashMap<u64, (Value, crossbeam_channel::Sender<Value>)>>,
    next: Mutex<u64>,
    /// The filter of the most recently opened stream (for tests).
    last_filter: Mutex<Option<Value>>,
}

/// Whether `req` is a `subscriptions/listen` POST (by its `Mcp-Method`
/// header), so `/stats` can leave it out like a GET stream.
pub(crate) fn is_listen(req: &Request) -> bool {
    req.header("Mcp-Method").is_some_and(|m| m.trim() == "subscriptions/listen")
}

/// Whether the filter opted in to `message`.
fn wanted(filter: &Value, message: &Value) -> bool {
    let flag = |k: &str| filter.get(k).and_then(Value::as_bool).unwrap_or(false);
    match message.get("method").and_then(Value::as_str).unwrap_or_default() {
        "notifications/tools/list_changed" => flag("toolsListChanged"),
        "notifications/prompts/list_changed" => flag("promptsListChanged"),
        "notifications/resources/list_changed" => flag("resourcesListChanged"),
        "notifications/resources/updated" => {
            let uri = message.pointer("/params/uri");
            filter.get("resourceSubscriptions").and_then(Value::as_array).is_some_and(|a| a.iter().any(|u| Some(u) == uri))
        }
        _ => false,
    }
}

fn tagged(method: &str, mut params: Value, id: &Value) -> String {
    params["_meta"] = json!({META_SUBSCRIPTION_ID: id});
    json!({"jsonrpc": "2.0", "method": method, "params": params}).to_string()
}

impl MockServer {
    /// Number of open `subscriptions/listen` streams.
    pub fn listen_streams(&self) -> usize {
        self.inner.listen.map.lock().len()
    }

    /// The `notifications` filter of the most recently opened listen stream.
    pub fn last_listen_filter(&self) -> Option<Value> {
        self.inner.listen.last_filter.lock().clone()
    }

    /// Sends `notifications/{kind}/list_changed` (`kind`: tools, prompts,
    /// resources) on every listen stream that opted in to it.
    pub fn announce_list_changed(&self, kind: &str) {
        self.broadcast(json!({"method": format!("notifications/{kind}/list_changed"), "params": {}}));
    }

    /// Sends `notifications/resources/updated` for `uri` on every listen
    /// stream subscribed to it.
    pub fn announce_resource_updated(&self, uri: &str) {
        self.broadcast(json!({"method": "notifications/resources/updated", "params": {"uri": uri}}));
    }

    fn broadcast(&self, message: Value) {
        for (filter, tx) in self.inner.listen.map.lock().values() {
            if wanted(filter, &message) {
                let _ = tx.try_send(message.clone());
            }
        }
    }
}

/// `tools/call` of a conformance trigger (`test_trigger_tool_change`,
/// `test_trigger_prompt_change`): announces the change and answers; `None`
/// for any other call.
pub(crate) fn trigger(server: &MockServer, id: &Value, method: &str, params: Option<&Value>) -> Option<Response> {
    let kind = match (method, params.and_then(|p| p.get("name")).and_then(Value::as_str)) {
        ("tools/call", Some("test_trigger_tool_change")) => "tools",
        ("tools/call", Some("test_trigger_prompt_change")) => "prompts",
        _ => return None,
    };
    server.announce_list_changed(kind);
    let result = json!({"content": [{"type": "text", "text": format!("{kind} list change announced")}], "resultType": "complete"});
    Some(Response::json(200, &json!({"jsonrpc": "2.0", "id": id, "result": result})))
}

/// Opens a listen stream (modern request already validated). A missing or
/// non-object `params.notifications` → `-32602`.
pub(crate) fn open(server: &MockServer, id: Value, params: Option<&Value>) -> Response {
    let Some(filter) = params.and_then(|p| p.get("notifications")).filter(|f| f.is_object()).cloned() else {
        let err = json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32602, "message": "params.notifications (an object) is required"}});
        return Response::json(200, &err);
    };
    let streams = &server.inner.listen;
    let (tx, rx) = crossbeam_channel::bounded(QUEUE);
    let token = {
        let mut n = streams.next.lock();
        *n += 1;
        *n
    };
    streams.map.lock().insert(token, (filter.clone(), tx));
    *streams.last_filter.lock() = Some(filter.clone());
    let server = server.clone();
    Response::sse(move |sink| {
        let ack = tagged("notifications/subscriptions/acknowledged", json!({"notifications": filter}), &id);
        let mut ok = sink.send(&SseEvent { data: &ack, ..Default::default() }).is_ok();
        while ok && !sink.is_gone() {
            match rx.recv_timeout(Duration::from_millis(250)) {
                Ok(m) => {
                    let data = tagged(m["method"].as_str().unwrap_or_default(), m["params"].clone(), &id);
                    ok = sink.send(&SseEvent { data: &data, ..Default::default() }).is_ok();
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(_) => ok = false,
            }
        }
        server.inner.listen.map.lock().remove(&token);
    })
    .with_header("X-Accel-Buffering", "no")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_opted_in_notifications_pass() {
        let f = json!({"toolsListChanged": true, "resourceSubscriptions": ["a://1"]});
        assert!(wanted(&f, &json!({"method": "notifications/tools/list_changed"})));
        assert!(!wanted(&f, &json!({"method": "notifications/prompts/list_changed"})));
        assert!(wanted(&f, &json!({"method": "notifications/resources/updated", "params": {"uri": "a://1"}})));
        assert!(!wanted(&f, &json!({"method": "notifications/resources/updated", "params": {"uri": "a://2"}})));
    }
}
