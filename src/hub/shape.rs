//! Era shaping and id/token rewriting of the messages a client gets (pure:
//! no hub, no I/O, no clock; issue 15 item 5): a result's `resultType` per
//! era ([`result`]), an upstream reply re-identified with the client's id
//! ([`reply`]), the log levels a client hears ([`log_passes`]), the hub task
//! ids of relayed messages ([`Rewrite`], [`rewrite_ids`]) and the request id
//! echoed as the client wrote it ([`echo_id`]).

use super::refusal::Refusal;
use crate::http::{Body, Response};
use crate::protocol::{jsonrpc, Era, ErrorObject};
use serde_json::{json, Value};
use std::sync::Arc;

/// Rewrites a message of a relayed call before the client sees it (hub task
/// ids, see [`super::tasks`]).
pub type Rewrite = Arc<dyn Fn(&mut Value) + Send + Sync>;

/// `_meta` key tying a message to a task (2025-11-25 tasks, Related Task Metadata).
pub const RELATED_TASK: &str = "io.modelcontextprotocol/related-task";

/// Levels of `notifications/message`, least severe first (RFC 5424 as MCP uses them).
pub const LOG_LEVELS: &[&str] = &["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"];

/// Adapts a result object to the client's era: modern results carry
/// `resultType` ("complete" when absent; 2026-07-28 schema `Result`), legacy
/// ones do not.
pub fn result(era: Era, mut result: Value) -> Value {
    if let Some(obj) = result.as_object_mut() {
        match era {
            Era::Modern => {
                obj.entry("resultType").or_insert_with(|| json!("complete"));
            }
            Era::Legacy => {
                if obj.get("resultType").and_then(Value::as_str) == Some("complete") {
                    obj.remove("resultType");
                }
            }
        }
    }
    result
}

/// The client-facing message for an upstream's answer message `msg`: the
/// client's `id`, `jsonrpc`, and the result shaped for `era`; an
/// `InputRequiredResult` a legacy client cannot be asked about here becomes
/// the [`untranslated`] error.
pub fn reply(era: Era, id: &Value, mut msg: Value) -> Value {
    if let Some(obj) = msg.as_object_mut() {
        obj.insert("id".into(), id.clone());
        obj.insert("jsonrpc".into(), json!("2.0"));
    }
    let input_required = crate::protocol::jsonrpc::at(&msg, &["result", "resultType"]).and_then(Value::as_str) == Some("input_required");
    if input_required && era == Era::Legacy {
        return untranslated(&msg).to_response(Some(id));
    }
    if let Some(r) = msg.get_mut("result") {
        *r = result(era, r.take());
    }
    msg
}

/// The client-facing error for an `InputRequiredResult` a legacy client
/// cannot be asked about on this request (no event stream to ask on).
pub fn untranslated(message: &Value) -> ErrorObject {
    Refusal::InputNeedsEventStream { methods: requested_methods(message) }.error()
}

fn requested_methods(message: &Value) -> Vec<String> {
    let requests = crate::protocol::jsonrpc::at(message, &["result", "inputRequests"]).and_then(Value::as_object);
    requests.map(|r| r.values().filter_map(|v| v.get("method").and_then(Value::as_str)).map(str::to_string).collect()).unwrap_or_default()
}

/// Whether a `notifications/message` at `level` reaches a client whose
/// threshold is `threshold` (legacy: none set → everything; modern: none set
/// → nothing, 2026-07-28 `RequestMetaObject.logLevel`).
pub fn log_passes(era: Era, threshold: Option<&str>, level: Option<&str>) -> bool {
    let rank = |l: &str| LOG_LEVELS.iter().position(|x| *x == l);
    match (threshold, era) {
        (None, Era::Legacy) => true,
        (None, Era::Modern) => false,
        (Some(t), _) => match (rank(t), level.and_then(rank)) {
            (Some(t), Some(l)) => l >= t,
            _ => true,
        },
    }
}

/// Replaces `from` by `to` wherever a message names a task: the `taskId` of
/// `result` / `params` / `result.task`, and the related-task `_meta` of
/// `result`, `params` and `error.data`.
pub fn rewrite_ids(msg: &mut Value, from: &str, to: &str) {
    for path in ["/result", "/params", "/result/task", "/error/data"] {
        let Some(obj) = msg.pointer_mut(path).and_then(Value::as_object_mut) else { continue };
        if obj.get("taskId").and_then(Value::as_str) == Some(from) {
            obj.insert("taskId".into(), json!(to));
        }
        if let Some(related) = obj.get_mut("_meta").and_then(|m| m.get_mut(RELATED_TASK)).and_then(Value::as_object_mut) {
            if related.get("taskId").and_then(Value::as_str) == Some(from) {
                related.insert("taskId".into(), json!(to));
            }
        }
    }
}

/// `resp`, the answer to a request whose id was sent as `sent_as`, with that
/// text in place of the id wherever the answer's messages carry it at their
/// top level (issue 14, hole 9): a JSON body, and each event of an event
/// stream (`SseSink::map_data`). Nothing to do (the common case) when the id
/// was sent as serde_json writes it.
pub fn echo_id(mut resp: Response, sent_as: Option<jsonrpc::IdText>) -> Response {
    let Some(sent_as) = sent_as else { return resp };
    resp.body = match resp.body {
        Body::Full(bytes) => {
            let json = resp.headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("content-type") && v.starts_with("application/json"));
            match json.then(|| sent_as.echo(&bytes)).flatten() {
                Some(echoed) => Body::Full(echoed),
                None => Body::Full(bytes),
            }
        }
        Body::Sse(producer) => Body::Sse(Box::new(move |sink: &mut crate::http::SseSink| {
            sink.map_data(move |data| sent_as.echo_str(data));
            producer(sink)
        })),
    };
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{codes, Incoming};

    #[test]
    fn results_carry_result_type_only_for_modern_clients() {
        assert_eq!(result(Era::Modern, json!({"tools": []})), json!({"tools": [], "resultType": "complete"}));
        assert_eq!(result(Era::Legacy, json!({"content": [], "resultType": "complete"})), json!({"content": []}));
        assert_eq!(result(Era::Modern, json!({"resultType": "input_required"}))["resultType"], "input_required");
        assert_eq!(result(Era::Legacy, json!({"resultType": "task", "taskId": "t"})), json!({"resultType": "task", "taskId": "t"}));
        assert_eq!(result(Era::Modern, json!([1])), json!([1]), "a non-object is left alone");
    }

    #[test]
    fn upstream_answers_are_reidentified_with_the_client_id() {
        let up = json!({"jsonrpc": "2.0", "id": 991, "result": {"content": [{"type": "text", "text": "hi"}]}});
        assert_eq!(
            reply(Era::Modern, &json!("c-1"), up.clone()),
            json!({"jsonrpc": "2.0", "id": "c-1", "result": {"content": [{"type": "text", "text": "hi"}], "resultType": "complete"}})
        );
        assert_eq!(reply(Era::Legacy, &json!(4), up), json!({"jsonrpc": "2.0", "id": 4, "result": {"content": [{"type": "text", "text": "hi"}]}}));
        let err = json!({"jsonrpc": "2.0", "id": 991, "error": {"code": -32602, "message": "bad"}});
        assert_eq!(reply(Era::Modern, &json!(8), err), json!({"jsonrpc": "2.0", "id": 8, "error": {"code": -32602, "message": "bad"}}));
        let mrtr = json!({"jsonrpc": "2.0", "id": 1, "result": {"resultType": "input_required", "inputRequests": {}}});
        assert_eq!(reply(Era::Legacy, &json!(5), mrtr.clone())["error"]["code"], codes::INVALID_REQUEST);
        assert_eq!(reply(Era::Modern, &json!(5), mrtr)["result"]["resultType"], "input_required");
    }

    #[test]
    fn an_untranslated_input_request_names_the_methods() {
        let m = json!({"result": {"resultType": "input_required", "inputRequests": {"k": {"method": "elicitation/create"}}}});
        assert!(crate::hub::mrtr::is_input_required(&m));
        let e = untranslated(&m);
        assert!(e.message.contains("elicitation/create") && e.message.contains("text/event-stream"), "{}", e.message);
    }

    #[test]
    fn log_levels_filter_per_client() {
        assert!(log_passes(Era::Legacy, None, Some("debug")));
        assert!(!log_passes(Era::Modern, None, Some("error")));
        assert!(log_passes(Era::Modern, Some("warning"), Some("error")));
        assert!(log_passes(Era::Modern, Some("warning"), Some("warning")));
        assert!(!log_passes(Era::Legacy, Some("warning"), Some("info")));
        assert!(log_passes(Era::Legacy, Some("warning"), Some("verbose")), "an unknown level passes");
        assert!(log_passes(Era::Legacy, Some("warning"), None));
    }

    #[test]
    fn task_ids_and_related_task_meta_are_rewritten() {
        let mut m = json!({"result": {"content": [], "_meta": {RELATED_TASK: {"taskId": "task-1"}}}});
        rewrite_ids(&mut m, "task-1", "mcphub-tx");
        assert_eq!(m, json!({"result": {"content": [], "_meta": {RELATED_TASK: {"taskId": "mcphub-tx"}}}}));
        let mut c = json!({"result": {"task": {"taskId": "task-1"}}});
        rewrite_ids(&mut c, "task-1", "mcphub-tx");
        assert_eq!(c, json!({"result": {"task": {"taskId": "mcphub-tx"}}}));
        let mut e = json!({"error": {"code": -1, "message": "x", "data": {"_meta": {RELATED_TASK: {"taskId": "task-1"}}}}});
        rewrite_ids(&mut e, "task-1", "mcphub-tx");
        assert_eq!(e["error"]["data"]["_meta"][RELATED_TASK]["taskId"], "mcphub-tx");
        let mut n = json!({"method": "notifications/tasks/status", "params": {"taskId": "task-2"}});
        rewrite_ids(&mut n, "task-1", "mcphub-tx");
        assert_eq!(n["params"]["taskId"], "task-2", "another task's id is left alone");
    }

    fn sent_as(body: &str) -> Option<jsonrpc::IdText> {
        match jsonrpc::parse(body.as_bytes()) {
            Ok(Incoming::Request { sent_as, .. }) => sent_as,
            other => panic!("{other:?}"),
        }
    }

    fn body(r: &Response) -> &[u8] {
        match &r.body {
            Body::Full(b) => b,
            Body::Sse(_) => panic!("a full body"),
        }
    }

    #[test]
    fn a_json_answer_gets_the_id_as_sent_and_other_bodies_are_left_alone() {
        let s = sent_as(r#"{"jsonrpc":"2.0","id":"\u0041","method":"x"}"#);
        let answer = Refusal::MethodNotFound { method: "x".into(), era: Era::Legacy }.response(Some(&json!("A")));
        let echoed = echo_id(answer, s.clone());
        assert_eq!(body(&echoed), br#"{"jsonrpc":"2.0","id":"\u0041","error":{"code":-32601,"message":"Method not found: x"}}"#);
        // Not JSON (a text body that happens to look like it), or no id text: unchanged.
        let text = Response::text(200, r#"{"id":"A"}"#);
        assert_eq!(body(&echo_id(text, s)), br#"{"id":"A"}"#);
        let plain = Refusal::Cancelled.response(Some(&json!(7)));
        assert!(body(&echo_id(plain, None)).starts_with(br#"{"jsonrpc":"2.0","id":7,"#));
    }
}
