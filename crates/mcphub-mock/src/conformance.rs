//! The conformance fixtures: the tools, prompts, resources and completions
//! that `@modelcontextprotocol/conformance` 0.1.16's server scenarios call by
//! name (`scripts/conformance.sh`). Written from the scenarios' checks; they
//! are only offered when the mock runs with fixtures on
//! ([`super::MockServer::with_conformance_fixtures`] or
//! `MCPHUB_MOCK_FIXTURES=conformance`), so the default mock's lists stay as
//! the hub's tests expect.
//!
//! Tools that talk back to the client (`test_tool_with_logging`,
//! `test_tool_with_progress`, `test_sampling`, `test_elicitation*`) answer
//! with a [`Reply::Stream`]: an SSE response on which notifications and
//! server→client requests precede the result (see [`super::stream`]).
//! Under 2026-07-28 rules `test_sampling` and `test_elicitation*` use MRTR
//! instead (`basic/patterns/mrtr.mdx`): the first call answers an
//! `InputRequiredResult` (`resultType: "input_required"`, one entry in
//! `inputRequests`, `requestState` naming the tool); the retry carries
//! `params.inputResponses` (and the echoed `requestState`) and completes.

use std::time::Duration;

use serde_json::{json, Map, Value};

use super::stream::Outbound;
use super::{codes, Reply};

/// A 1×1 red PNG.
pub const PNG_1X1: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";
/// 16 samples of 8-bit mono silence at 8 kHz, as a WAV file.
pub const WAV_SILENCE: &str = "UklGRjQAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YRAAAACAgICAgICAgICAgICAgICA";

/// The fixture tools, in `tools/list` order: 0.1.16's, then 0.2.0-alpha.12's
/// 2026-07-28 fixtures (see [`MODERN_TOOL_NAMES`]).
pub const TOOL_NAMES: [&str; 27] = [
    "test_simple_text",
    "test_image_content",
    "test_audio_content",
    "test_embedded_resource",
    "test_multiple_content_types",
    "test_tool_with_logging",
    "test_error_handling",
    "test_tool_with_progress",
    "test_sampling",
    "test_elicitation",
    "test_elicitation_sep1034_defaults",
    "test_elicitation_sep1330_enums",
    "json_schema_2020_12_tool",
    "test_reconnection",
    "test_input_required_result_elicitation",
    "test_input_required_result_sampling",
    "test_input_required_result_list_roots",
    "test_input_required_result_request_state",
    "test_input_required_result_multiple_inputs",
    "test_input_required_result_multi_round",
    "test_input_required_result_capabilities",
    "test_input_required_result_tampered_state",
    "test_missing_capability",
    "test_streaming_elicitation",
    "test_logging_tool",
    "test_trigger_tool_change",
    "test_trigger_prompt_change",
];

/// The tools of [`TOOL_NAMES`] that conformance 0.2.0-alpha.12's 2026-07-28
/// server scenarios call: `input-required-result-*` (SEP-2322, MRTR) and the
/// diagnostics of `server-stateless` (SEP-2575). Served by [`call_modern`].
pub const MODERN_TOOL_NAMES: [&str; 11] = [
    "test_input_required_result_elicitation",
    "test_input_required_result_sampling",
    "test_input_required_result_list_roots",
    "test_input_required_result_request_state",
    "test_input_required_result_multiple_inputs",
    "test_input_required_result_multi_round",
    "test_input_required_result_capabilities",
    "test_input_required_result_tampered_state",
    "test_missing_capability",
    "test_streaming_elicitation",
    "test_logging_tool",
];

/// The prompt of `input-required-result-non-tool-request`: `prompts/get`
/// answers with an `InputRequiredResult` first.
pub const MRTR_PROMPT: &str = "test_input_required_result_prompt";

/// The fixture prompts, in `prompts/list` order.
pub const PROMPT_NAMES: [&str; 5] = [
    "test_simple_prompt",
    "test_prompt_with_arguments",
    "test_prompt_with_embedded_resource",
    "test_prompt_with_image",
    MRTR_PROMPT,
];

/// Completion candidates for `test_prompt_with_arguments`'s arguments.
const COMPLETIONS: [&str; 6] = ["paris", "park", "party", "test", "testing", "tested"];

/// Server→client requests wait this long for the client's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

fn no_args() -> Value {
    json!({"type": "object", "properties": {}})
}

/// The fixture tool definitions.
pub(crate) fn tools() -> Vec<Value> {
    let simple = |name: &str, description: &str| json!({"name": name, "description": description, "inputSchema": no_args()});
    let string_arg = |name: &str, description: &str, arg: &str, arg_desc: &str| {
        json!({"name": name, "description": description, "inputSchema": {
            "type": "object", "properties": {arg: {"type": "string", "description": arg_desc}}, "required": [arg]}})
    };
    vec![
        simple("test_simple_text", "Returns one text content item."),
        simple("test_image_content", "Returns one image content item (1x1 PNG)."),
        simple("test_audio_content", "Returns one audio content item (WAV)."),
        simple("test_embedded_resource", "Returns one embedded text resource."),
        simple("test_multiple_content_types", "Returns text, image and embedded resource content."),
        simple("test_tool_with_logging", "Sends three info log notifications ~50 ms apart, then returns."),
        simple("test_error_handling", "Always fails with isError: true."),
        simple("test_tool_with_progress", "Reports progress 0, 50, 100 of 100 (with a progressToken), ~50 ms apart."),
        string_arg("test_sampling", "Asks the client for an LLM completion (sampling/createMessage).", "prompt", "The prompt to send"),
        string_arg("test_elicitation", "Asks the user for a username and email (elicitation/create).", "message", "The message to show"),
        simple("test_elicitation_sep1034_defaults", "Elicits a form whose fields all carry defaults (SEP-1034)."),
        simple("test_elicitation_sep1330_enums", "Elicits a form with the five enum shapes of SEP-1330."),
        json!({"name": "json_schema_2020_12_tool", "description": "Tool with JSON Schema 2020-12 features",
               "inputSchema": {
                   "$schema": "https://json-schema.org/draft/2020-12/schema",
                   "type": "object",
                   "$defs": {"address": {"$anchor": "addressDef", "type": "object",
                                         "properties": {"street": {"type": "string"}, "city": {"type": "string"}}}},
                   "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"},
                                  "contactMethod": {"type": "string", "enum": ["phone", "email"]},
                                  "phone": {"type": "string"}, "email": {"type": "string"}},
                   "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
                   "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
                   "then": {"required": ["phone"]},
                   "else": {"required": ["email"]},
                   "additionalProperties": false}}),
        simple("test_reconnection", "Closes its SSE stream after a priming event; the result is replayed on GET with Last-Event-ID."),
        simple("test_input_required_result_elicitation", "MRTR: asks for the user's name (elicitation), then greets."),
        simple("test_input_required_result_sampling", "MRTR: asks the client's LLM a question (sampling), then returns the answer."),
        simple("test_input_required_result_list_roots", "MRTR: asks for the client's roots (roots/list), then lists them."),
        simple("test_input_required_result_request_state", "MRTR: asks for a confirmation with a signed requestState; the retry must echo it."),
        simple("test_input_required_result_multiple_inputs", "MRTR: asks for elicitation, sampling and roots/list at once."),
        simple("test_input_required_result_multi_round", "MRTR: two rounds (name, then colour), each with a new requestState."),
        simple("test_input_required_result_capabilities", "MRTR: asks only for the inputs whose capability the client declared."),
        simple("test_input_required_result_tampered_state", "MRTR: a retry whose requestState fails verification is rejected (-32602)."),
        simple("test_missing_capability", "Needs the client's sampling capability: without it, -32021 (HTTP 400)."),
        simple("test_streaming_elicitation", "Asks for a confirmation with an InputRequiredResult (never a request on the stream)."),
        simple("test_logging_tool", "Logs three info messages (only at the request's logLevel), then returns."),
        simple("test_trigger_tool_change", "Announces notifications/tools/list_changed to listen streams (2026-07-28 requests only, see mock::listen)."),
        simple("test_trigger_prompt_change", "Announces notifications/prompts/list_changed to listen streams (2026-07-28 requests only, see mock::listen)."),
    ]
}

fn text(t: impl Into<String>) -> Value {
    json!({"type": "text", "text": t.into()})
}

fn result(content: Vec<Value>) -> Value {
    json!({"content": content, "isError": false})
}

fn tool_error(t: impl Into<String>) -> Reply {
    Reply::Result(json!({"content": [text(t)], "isError": true}))
}

/// The content of a text message of a `sampling/createMessage` answer, or the whole answer.
fn sampled_text(answer: &Value) -> String {
    match answer.pointer("/content/text").and_then(Value::as_str) {
        Some(t) => t.to_string(),
        None => answer.get("content").map(Value::to_string).unwrap_or_else(|| answer.to_string()),
    }
}

/// `_meta` key of a 2026-07-28 request's client capabilities.
const META_CLIENT_CAPS: &str = "io.modelcontextprotocol/clientCapabilities";

/// A 2026-07-28 call that needs one input from the client (MRTR): asks for
/// it with an `InputRequiredResult` under `key`, or, on the retry that
/// carries `inputResponses[key]`, completes with `finish(answer)`.
fn mrtr(
    params: &Map<String, Value>,
    tool: &str,
    key: &str,
    capability: &str,
    request: Value,
    finish: impl FnOnce(&Value) -> Value,
) -> Reply {
    let state = format!("mcphub-mock:{tool}:{key}");
    if let Some(got) = params.get("requestState") {
        if got.as_str() != Some(state.as_str()) {
            return Reply::Error(codes::INVALID_PARAMS, format!("Invalid params: requestState {got} was not issued for {tool}"), None);
        }
    }
    if let Some(answer) = params.get("inputResponses").and_then(|r| r.get(key)) {
        return Reply::Result(finish(answer));
    }
    let caps = params.get("_meta").and_then(|m| m.get(META_CLIENT_CAPS));
    if !caps.is_some_and(|c| super::stream::declares(c, capability)) {
        return tool_error(format!("the client did not declare the {capability} capability"));
    }
    Reply::Result(json!({"resultType": "input_required", "inputRequests": {key: request}, "requestState": state}))
}

fn elicit_result(label: &str, answer: &Value) -> Value {
    let action = answer.get("action").and_then(Value::as_str).unwrap_or("?");
    let content = answer.get("content").cloned().unwrap_or(Value::Null);
    result(vec![text(format!("{label}: action={action}, content={content}"))])
}

/// `elicitation/create` with `message` and `schema`: MRTR when `modern`
/// (the call's params), else on the call's stream.
fn elicit(message: String, schema: Value, label: &'static str, tool: &str, modern: Option<&Map<String, Value>>) -> Reply {
    if let Some(params) = modern {
        let request = json!({"method": "elicitation/create",
                             "params": {"mode": "form", "message": message, "requestedSchema": schema}});
        return mrtr(params, tool, "elicitation", "elicitation", request, |a| elicit_result(label, a));
    }
    Reply::Stream(Box::new(move |out: &mut Outbound<'_>| {
        if !out.client_can("elicitation") {
            return Err("the client did not declare the elicitation capability".into());
        }
        let answer = out.request("elicitation/create", json!({"message": message, "requestedSchema": schema}), ANSWER_TIMEOUT)?;
        Ok(elicit_result(label, &answer))
    }))
}

/// Calls fixture tool `name` (one of [`TOOL_NAMES`]) with the call's
/// `params`; `modern`: served under 2026-07-28 rules.
pub(crate) fn call(name: &str, args: &Map<String, Value>, params: &Map<String, Value>, modern: bool) -> Reply {
    let meta = params.get("_meta");
    let mrtr_params = if modern { Some(params) } else { None };
    match name {
        "test_simple_text" => Reply::Result(result(vec![text("This is a simple text response for testing.")])),
        "test_image_content" => {
            Reply::Result(result(vec![json!({"type": "image", "data": PNG_1X1, "mimeType": "image/png"})]))
        }
        "test_audio_content" => {
            Reply::Result(result(vec![json!({"type": "audio", "data": WAV_SILENCE, "mimeType": "audio/wav"})]))
        }
        "test_embedded_resource" => Reply::Result(result(vec![json!({"type": "resource", "resource": {
            "uri": "test://embedded-resource", "mimeType": "text/plain", "text": "This is an embedded resource content."}})])),
        "test_multiple_content_types" => Reply::Result(result(vec![
            text("Multiple content types test:"),
            json!({"type": "image", "data": PNG_1X1, "mimeType": "image/png"}),
            json!({"type": "resource", "resource": {"uri": "test://mixed-content-resource",
                   "mimeType": "application/json", "text": "{\"test\":\"data\",\"value\":123}"}}),
        ])),
        "test_error_handling" => tool_error("This tool intentionally returns an error for testing"),
        "test_tool_with_logging" => Reply::Stream(Box::new(|out: &mut Outbound<'_>| {
            let steps = ["Tool execution started", "Tool processing data", "Tool execution completed"];
            for (i, msg) in steps.iter().enumerate() {
                if i > 0 {
                    out.pause(Duration::from_millis(50))?;
                }
                out.log("info", json!(msg))?;
            }
            Ok(result(vec![text("Tool with logging executed successfully")]))
        })),
        "test_tool_with_progress" => {
            let token = meta.and_then(|m| m.get("progressToken")).filter(|t| t.is_string() || t.is_number()).cloned();
            Reply::Stream(Box::new(move |out: &mut Outbound<'_>| {
                for (i, p) in [0u64, 50, 100].into_iter().enumerate() {
                    if i > 0 {
                        out.pause(Duration::from_millis(50))?;
                    }
                    if let Some(token) = &token {
                        out.notify("notifications/progress", json!({"progressToken": token, "progress": p, "total": 100}))?;
                    }
                }
                Ok(result(vec![text("Tool with progress executed successfully")]))
            }))
        }
        "test_sampling" => {
            let Some(prompt) = args.get("prompt").and_then(Value::as_str).map(str::to_string) else {
                return tool_error("invalid arguments: `prompt` must be a string");
            };
            let request = json!({"messages": [{"role": "user", "content": {"type": "text", "text": prompt}}], "maxTokens": 100});
            if let Some(params) = mrtr_params {
                let request = json!({"method": "sampling/createMessage", "params": request});
                return mrtr(params, name, "sampling", "sampling", request, |a| {
                    result(vec![text(format!("LLM response: {}", sampled_text(a)))])
                });
            }
            Reply::Stream(Box::new(move |out: &mut Outbound<'_>| {
                if !out.client_can("sampling") {
                    return Err("the client did not declare the sampling capability".into());
                }
                let answer = out.request("sampling/createMessage", request, ANSWER_TIMEOUT)?;
                Ok(result(vec![text(format!("LLM response: {}", sampled_text(&answer)))]))
            }))
        }
        "test_elicitation" => {
            let Some(message) = args.get("message").and_then(Value::as_str).map(str::to_string) else {
                return tool_error("invalid arguments: `message` must be a string");
            };
            let schema = json!({"type": "object", "properties": {
                "username": {"type": "string", "description": "User's response"},
                "email": {"type": "string", "description": "User's email address"}},
                "required": ["username", "email"]});
            elicit(message, schema, "User response", name, mrtr_params)
        }
        "test_elicitation_sep1034_defaults" => {
            let schema = json!({"type": "object", "properties": {
                "name": {"type": "string", "description": "User name", "default": "John Doe"},
                "age": {"type": "integer", "description": "User age", "default": 30},
                "score": {"type": "number", "description": "User score", "default": 95.5},
                "status": {"type": "string", "description": "User status", "enum": ["active", "inactive", "pending"], "default": "active"},
                "verified": {"type": "boolean", "description": "Verification status", "default": true}},
                "required": []});
            elicit("Please review the defaults and accept or change them".into(), schema, "Elicitation completed", name, mrtr_params)
        }
        "test_elicitation_sep1330_enums" => {
            let titled = |pairs: &[(&str, &str)]| -> Value {
                pairs.iter().map(|(c, t)| json!({"const": c, "title": t})).collect::<Vec<_>>().into()
            };
            let schema = json!({"type": "object", "properties": {
                "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
                "titledSingle": {"type": "string", "oneOf": titled(&[("value1", "First Option"), ("value2", "Second Option"), ("value3", "Third Option")])},
                "legacyEnum": {"type": "string", "enum": ["opt1", "opt2", "opt3"], "enumNames": ["Option One", "Option Two", "Option Three"]},
                "untitledMulti": {"type": "array", "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
                "titledMulti": {"type": "array", "items": {"anyOf": titled(&[("value1", "First Choice"), ("value2", "Second Choice"), ("value3", "Third Choice")])}}},
                "required": []});
            elicit("Please pick from each kind of enum".into(), schema, "Elicitation completed", name, mrtr_params)
        }
        "json_schema_2020_12_tool" => Reply::Result(result(vec![text(format!("received {}", Value::Object(args.clone())))])),
        "test_reconnection" => Reply::Reconnect(result(vec![text("Reconnection test completed successfully")])),
        "test_logging_tool" => call("test_tool_with_logging", args, params, modern),
        _ if MODERN_TOOL_NAMES.contains(&name) && !modern => {
            tool_error(format!("{name} is a 2026-07-28 fixture (InputRequiredResult); call it with per-request _meta"))
        }
        _ if MODERN_TOOL_NAMES.contains(&name) => call_modern(name, params),
        _ => Reply::Error(codes::INVALID_PARAMS, format!("Invalid params: unknown tool: {name}"), None),
    }
}

/// The fixture prompt definitions.
pub(crate) fn prompts() -> Vec<Value> {
    let arg = |name: &str, description: &str| json!({"name": name, "description": description, "required": true});
    vec![
        json!({"name": "test_simple_prompt", "description": "A prompt without arguments."}),
        json!({"name": "test_prompt_with_arguments", "description": "A prompt with two required arguments.",
               "arguments": [arg("arg1", "First test argument"), arg("arg2", "Second test argument")]}),
        json!({"name": "test_prompt_with_embedded_resource", "description": "A prompt embedding a resource.",
               "arguments": [arg("resourceUri", "URI of the resource to embed")]}),
        json!({"name": "test_prompt_with_image", "description": "A prompt with an image."}),
        json!({"name": MRTR_PROMPT, "description": "2026-07-28 only: asks for context (InputRequiredResult), then answers."}),
    ]
}

/// `prompts/get` of a fixture prompt; `None` if `name` is not one.
/// `params`: the request's params; `modern`: served under 2026-07-28 rules
/// ([`MRTR_PROMPT`] is modern-only).
pub(crate) fn get_prompt(name: &str, params: &Map<String, Value>, modern: bool) -> Option<Reply> {
    if name == MRTR_PROMPT {
        if !modern {
            return Some(Reply::Error(codes::INVALID_PARAMS, format!("Invalid params: {name} needs 2026-07-28 (InputRequiredResult)"), None));
        }
        return Some(mrtr_prompt(params));
    }
    let args = params.get("arguments");
    let arg = |k: &str| args.and_then(|a| a.get(k)).and_then(Value::as_str).map(str::to_string);
    let missing = |k: &str| Reply::Error(codes::INVALID_PARAMS, format!("Invalid params: argument `{k}` is required"), None);
    let user = |content: Value| json!({"role": "user", "content": content});
    let messages = match name {
        "test_simple_prompt" => vec![user(text("This is a simple prompt for testing."))],
        "test_prompt_with_arguments" => {
            let Some(a1) = arg("arg1") else { return Some(missing("arg1")) };
            let Some(a2) = arg("arg2") else { return Some(missing("arg2")) };
            vec![user(text(format!("Prompt with arguments: arg1='{a1}', arg2='{a2}'")))]
        }
        "test_prompt_with_embedded_resource" => {
            let Some(uri) = arg("resourceUri") else { return Some(missing("resourceUri")) };
            vec![
                user(json!({"type": "resource", "resource": {"uri": uri, "mimeType": "text/plain",
                            "text": "Embedded resource content for testing."}})),
                user(text("Please process the embedded resource above.")),
            ]
        }
        "test_prompt_with_image" => vec![
            user(json!({"type": "image", "data": PNG_1X1, "mimeType": "image/png"})),
            user(text("Please analyze the image above.")),
        ],
        _ => return None,
    };
    Some(Reply::Result(json!({"description": format!("{name} (conformance fixture)"), "messages": messages})))
}

/// The fixture resources.
pub(crate) fn resources() -> Vec<Value> {
    vec![
        json!({"uri": "test://static-text", "name": "static-text", "description": "A static text resource.", "mimeType": "text/plain"}),
        json!({"uri": "test://static-binary", "name": "static-binary", "description": "A static binary resource (PNG).", "mimeType": "image/png"}),
        json!({"uri": "test://watched-resource", "name": "watched-resource", "description": "A resource to subscribe to.", "mimeType": "text/plain"}),
    ]
}

/// The fixture resource templates.
pub(crate) fn templates() -> Vec<Value> {
    vec![json!({"uriTemplate": "test://template/{id}/data", "name": "template-data",
                "description": "Data for one id.", "mimeType": "application/json"})]
}

/// `resources/read` contents of a fixture resource; `None` if `uri` is not one.
pub(crate) fn read(uri: &str) -> Option<Value> {
    let content = match uri {
        "test://static-text" => json!({"uri": uri, "mimeType": "text/plain", "text": "This is the content of the static text resource."}),
        "test://static-binary" => json!({"uri": uri, "mimeType": "image/png", "blob": PNG_1X1}),
        "test://watched-resource" => json!({"uri": uri, "mimeType": "text/plain", "text": "Watched resource content."}),
        _ => {
            let id = uri.strip_prefix("test://template/")?.strip_suffix("/data").filter(|id| !id.is_empty() && !id.contains('/'))?;
            let body = json!({"id": id, "templateTest": true, "data": format!("Data for ID: {id}")});
            json!({"uri": uri, "mimeType": "application/json", "text": body.to_string()})
        }
    };
    Some(json!({"contents": [content]}))
}

/// `completion/complete` values for a fixture prompt's argument; `None` if
/// the ref is not a fixture prompt.
pub(crate) fn complete(prompt: &str, arg: &str, value: &str) -> Option<Vec<&'static str>> {
    if prompt != "test_prompt_with_arguments" {
        return None;
    }
    Some(match arg {
        "arg1" | "arg2" => COMPLETIONS.iter().copied().filter(|c| c.starts_with(value)).collect(),
        _ => Vec::new(),
    })
}

// ---------------------------------------------------------------------------
// 2026-07-28 fixtures of conformance 0.2.0-alpha.12 (SEP-2322 MRTR, SEP-2575)
// ---------------------------------------------------------------------------

/// The key that signs `requestState` values (random per process).
fn state_key() -> &'static [u8; 16] {
    static KEY: std::sync::OnceLock<[u8; 16]> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let mut k = [0u8; 16];
        mcphub::random::fill(&mut k);
        k
    })
}

fn state_mac(body: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(state_key());
    h.update(body.as_bytes());
    hex::encode(h.finalize())[..32].to_string()
}

/// An opaque, integrity-protected `requestState`: `hex(json).mac`
/// (`basic/patterns/mrtr.mdx`: servers MUST verify state they get back).
pub(crate) fn sign_state(payload: &Value) -> String {
    let body = hex::encode(payload.to_string());
    let mac = state_mac(&body);
    format!("{body}.{mac}")
}

/// The payload of a `requestState` made by [`sign_state`]; `None` if it was
/// altered or is not one of ours.
pub(crate) fn verify_state(state: &str) -> Option<Value> {
    let (body, mac) = state.rsplit_once('.')?;
    if state_mac(body) != mac {
        return None;
    }
    serde_json::from_slice(&hex::decode(body).ok()?).ok()
}

fn invalid_params(msg: String) -> Reply {
    Reply::Error(codes::INVALID_PARAMS, format!("Invalid params: {msg}"), None)
}

/// A retry's `inputResponses` (empty on a first call). `Err`: -32602 when it
/// is not an object of objects (SEP-2322: protocol errors are JSON-RPC errors).
fn input_responses(params: &Map<String, Value>) -> Result<Map<String, Value>, Box<Reply>> {
    match params.get("inputResponses") {
        None => Ok(Map::new()),
        Some(Value::Object(m)) => {
            if let Some((k, _)) = m.iter().find(|(_, v)| !v.is_object()) {
                return Err(Box::new(invalid_params(format!("inputResponses.{k} must be an object"))));
            }
            Ok(m.clone())
        }
        Some(_) => Err(Box::new(invalid_params("inputResponses must be an object".into()))),
    }
}

/// A retry's verified `requestState` payload for `tool` (`None` on a first
/// call). `Err`: -32602 when it fails verification or names another tool.
fn request_state(params: &Map<String, Value>, tool: &str) -> Result<Option<Value>, Box<Reply>> {
    let Some(raw) = params.get("requestState") else { return Ok(None) };
    let payload = raw.as_str().and_then(verify_state).filter(|p| p.get("tool").and_then(Value::as_str) == Some(tool));
    match payload {
        Some(p) => Ok(Some(p)),
        None => Err(Box::new(invalid_params(format!("requestState failed verification for {tool}")))),
    }
}

fn client_caps(params: &Map<String, Value>) -> Option<&Map<String, Value>> {
    params.get("_meta")?.get(META_CLIENT_CAPS)?.as_object()
}

/// -32021 MissingRequiredClientCapability naming `caps` (SEP-2575: a server
/// MUST NOT rely on capabilities the client did not declare; HTTP 400).
fn require(params: &Map<String, Value>, caps: &[&str]) -> Result<(), Box<Reply>> {
    let declared = client_caps(params);
    let missing: Vec<&str> = caps.iter().copied().filter(|c| declared.is_none_or(|d| !d.contains_key(*c))).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let required: Map<String, Value> = missing.iter().map(|c| (c.to_string(), json!({}))).collect();
    Err(Box::new(Reply::Error(
        codes::MISSING_CLIENT_CAPABILITY,
        format!("Missing required client capability: {}", missing.join(", ")),
        Some(json!({"requiredCapabilities": required})),
    )))
}

fn elicit_request(message: &str, field: &str, kind: &str) -> Value {
    json!({"method": "elicitation/create", "params": {"mode": "form", "message": message, "requestedSchema": {
        "type": "object", "properties": {field: {"type": kind}}, "required": [field]}}})
}

fn sampling_request(question: &str, max_tokens: u64) -> Value {
    json!({"method": "sampling/createMessage", "params": {
        "messages": [{"role": "user", "content": {"type": "text", "text": question}}], "maxTokens": max_tokens}})
}

fn roots_request() -> Value {
    json!({"method": "roots/list", "params": {}})
}

/// `InputRequiredResult` asking for `requests`, with `state` when given.
fn input_required(requests: Map<String, Value>, state: Option<Value>) -> Reply {
    let mut r = json!({"resultType": "input_required", "inputRequests": requests});
    if let Some(s) = state {
        r["requestState"] = json!(sign_state(&s));
    }
    Reply::Result(r)
}

fn one(key: &str, request: Value) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(key.into(), request);
    m
}

/// An accepted elicitation's `content[field]` as text.
fn elicited(answer: &Value, field: &str) -> Option<String> {
    if answer.get("action").and_then(Value::as_str) != Some("accept") {
        return None;
    }
    let v = answer.get("content")?.get(field)?;
    Some(v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
}

fn roots_text(answer: &Value) -> String {
    let uris: Vec<&str> = answer.get("roots").and_then(Value::as_array).into_iter().flatten()
        .filter_map(|r| r.get("uri").and_then(Value::as_str)).collect();
    format!("roots: {}", if uris.is_empty() { "(none)".to_string() } else { uris.join(", ") })
}

/// Calls one of [`MODERN_TOOL_NAMES`] under 2026-07-28 rules. Each MRTR tool
/// answers an `InputRequiredResult` until the retry's `inputResponses`
/// carry what it asked for (missing keys are asked for again; extra keys are
/// ignored); a `requestState` that fails verification is -32602.
pub(crate) fn call_modern(name: &str, params: &Map<String, Value>) -> Reply {
    let responses = match input_responses(params) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    let state = match request_state(params, name) {
        Ok(s) => s,
        Err(e) => return *e,
    };
    let state_for = |round: u64, extra: Value| {
        let mut s = json!({"tool": name, "round": round});
        if let (Some(o), Value::Object(more)) = (s.as_object_mut(), extra) {
            o.extend(more);
        }
        Some(s)
    };
    match name {
        "test_input_required_result_elicitation" => {
            if let Err(e) = require(params, &["elicitation"]) {
                return *e;
            }
            match responses.get("user_name").and_then(|a| elicited(a, "name")) {
                Some(who) => Reply::Result(result(vec![text(format!("Hello, {who}!"))])),
                None => input_required(one("user_name", elicit_request("What is your name?", "name", "string")), None),
            }
        }
        "test_input_required_result_sampling" => {
            if let Err(e) = require(params, &["sampling"]) {
                return *e;
            }
            match responses.get("capital_question") {
                Some(a) => Reply::Result(result(vec![text(format!("LLM response: {}", sampled_text(a)))])),
                None => input_required(one("capital_question", sampling_request("What is the capital of France?", 100)), None),
            }
        }
        "test_input_required_result_list_roots" => {
            if let Err(e) = require(params, &["roots"]) {
                return *e;
            }
            match responses.get("client_roots") {
                Some(a) => Reply::Result(result(vec![text(roots_text(a))])),
                None => input_required(one("client_roots", roots_request()), None),
            }
        }
        "test_input_required_result_request_state" | "test_input_required_result_tampered_state" | "test_streaming_elicitation" => {
            if let Err(e) = require(params, &["elicitation"]) {
                return *e;
            }
            match (state, responses.get("confirm")) {
                (Some(_), Some(a)) => {
                    let ok = a.get("content").and_then(|c| c.get("ok")).cloned().unwrap_or(Value::Null);
                    Reply::Result(result(vec![text(format!("state-ok: requestState verified, confirmed={ok}"))]))
                }
                _ => input_required(one("confirm", elicit_request("Please confirm", "ok", "boolean")), state_for(1, json!({}))),
            }
        }
        "test_input_required_result_multiple_inputs" => {
            if let Err(e) = require(params, &["elicitation", "sampling", "roots"]) {
                return *e;
            }
            let keys = ["user_name", "greeting", "client_roots"];
            if state.is_some() && keys.iter().all(|k| responses.contains_key(*k)) {
                let who = elicited(&responses["user_name"], "name").unwrap_or_else(|| "?".into());
                let line = format!("name: {who}; greeting: {}; {}", sampled_text(&responses["greeting"]), roots_text(&responses["client_roots"]));
                return Reply::Result(result(vec![text(line)]));
            }
            let mut asks = Map::new();
            asks.insert("user_name".into(), elicit_request("What is your name?", "name", "string"));
            asks.insert("greeting".into(), sampling_request("Generate a greeting", 50));
            asks.insert("client_roots".into(), roots_request());
            input_required(asks, state_for(1, json!({})))
        }
        "test_input_required_result_multi_round" => {
            if let Err(e) = require(params, &["elicitation"]) {
                return *e;
            }
            let round = state.as_ref().and_then(|s| s.get("round")).and_then(Value::as_u64).unwrap_or(0);
            match round {
                1 => match responses.get("user_name").and_then(|a| elicited(a, "name")) {
                    Some(who) => input_required(
                        one("favorite_color", elicit_request("What is your favourite colour?", "color", "string")),
                        state_for(2, json!({"name": who})),
                    ),
                    None => input_required(one("user_name", elicit_request("What is your name?", "name", "string")), state_for(1, json!({}))),
                },
                2 => {
                    let who = state.as_ref().and_then(|s| s.get("name")).and_then(Value::as_str).unwrap_or("?").to_string();
                    match responses.get("favorite_color").and_then(|a| elicited(a, "color")) {
                        Some(colour) => Reply::Result(result(vec![text(format!("{who} likes {colour}"))])),
                        None => input_required(
                            one("favorite_color", elicit_request("What is your favourite colour?", "color", "string")),
                            state_for(2, json!({"name": who})),
                        ),
                    }
                }
                _ => input_required(one("user_name", elicit_request("What is your name?", "name", "string")), state_for(1, json!({}))),
            }
        }
        "test_input_required_result_capabilities" => {
            let declared = client_caps(params);
            let can = |c: &str| declared.is_some_and(|d| d.contains_key(c));
            let mut asks = Map::new();
            if can("elicitation") && !responses.contains_key("user_name") {
                asks.insert("user_name".into(), elicit_request("What is your name?", "name", "string"));
            }
            if can("sampling") && !responses.contains_key("greeting") {
                asks.insert("greeting".into(), sampling_request("Generate a greeting", 50));
            }
            if asks.is_empty() {
                let got: Vec<&String> = responses.keys().collect();
                return Reply::Result(result(vec![text(format!("inputs received: {got:?}"))]));
            }
            input_required(asks, None)
        }
        "test_missing_capability" => match require(params, &["sampling"]) {
            Ok(()) => Reply::Result(result(vec![text("the client declared sampling")])),
            Err(e) => *e,
        },
        _ => Reply::Error(codes::INVALID_PARAMS, format!("Invalid params: unknown tool: {name}"), None),
    }
}

/// `prompts/get` of [`MRTR_PROMPT`]: asks for context, then answers with a
/// `GetPromptResult` that quotes it.
fn mrtr_prompt(params: &Map<String, Value>) -> Reply {
    let responses = match input_responses(params) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    if let Err(e) = request_state(params, MRTR_PROMPT) {
        return *e;
    }
    if let Err(e) = require(params, &["elicitation"]) {
        return *e;
    }
    match responses.get("context").and_then(|a| elicited(a, "context")) {
        Some(context) => Reply::Result(json!({"description": format!("{MRTR_PROMPT} (conformance fixture)"), "messages": [
            {"role": "user", "content": text(format!("Answer with this context: {context}"))}]})),
        None => input_required(one("context", elicit_request("What context should the prompt use?", "context", "string")), None),
    }
}
