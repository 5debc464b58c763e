//! The mock's MCP methods and tools, shared by both eras.

use std::time::Duration;

use serde_json::{json, Map, Value};

use super::{codes, conformance, short_sha, stream, Ctx, MockServer, Reply, META_SERVER_INFO};
use mcphub::http::ClientGone;

/// The tools the mock offers, in `tools/list` order.
pub const TOOL_NAMES: [&str; 7] = ["echo", "get_session_id", "sleep", "progress", "whoami", "counter", "region"];

/// `ttlMs` on modern list results.
const LIST_TTL_MS: u64 = 60_000;
/// Upper bound of `sleep.ms` and `progress.steps * progress.ms`.
const MAX_SLEEP_MS: u64 = 600_000;
/// Names `completion/complete` offers for the `greeting` prompt's `name`.
const NAMES: [&str; 5] = ["alice", "albert", "bob", "carol", "dave"];

/// Writes the `progress` tool's stream through `emit` (one call per SSE
/// event's data): `steps` `notifications/progress` events
/// `{progressToken, progress: i, total: steps}`, each after `ms`, then
/// `final_msg`. Stops early once `emit` reports the client gone.
pub fn run_progress(
    token: &Value,
    steps: u64,
    ms: u64,
    final_msg: &Value,
    emit: &mut dyn FnMut(&str) -> Result<(), ClientGone>,
) {
    for i in 1..=steps {
        if ms > 0 {
            std::thread::sleep(Duration::from_millis(ms));
        }
        let n = json!({
            "jsonrpc": "2.0",
            "method": "notifications/progress",
            "params": {"progressToken": token, "progress": i, "total": steps},
        });
        if emit(&n.to_string()).is_err() {
            return;
        }
    }
    let _ = emit(&final_msg.to_string());
}

fn tools() -> Value {
    let obj = |props: Value, required: &[&str]| json!({"type": "object", "properties": props, "required": required});
    let ro = json!({"readOnlyHint": true, "idempotentHint": true});
    json!([
        {"name": "echo", "description": "Echoes `text` back.",
         "inputSchema": obj(json!({"text": {"type": "string"}}), &["text"]), "annotations": ro},
        {"name": "get_session_id", "description": "The Mcp-Session-Id this request carried, or \"none\".",
         "inputSchema": obj(json!({}), &[]), "annotations": ro},
        {"name": "sleep", "description": "Sleeps `ms` milliseconds.",
         "inputSchema": obj(json!({"ms": {"type": "integer", "minimum": 0}}), &["ms"]), "annotations": ro},
        {"name": "progress", "description": "Reports `steps` progress notifications, one every `ms` (needs a progressToken to stream).",
         "inputSchema": obj(json!({"steps": {"type": "integer", "minimum": 0, "default": 3},
                                   "ms": {"type": "integer", "minimum": 0, "default": 50}}), &[]),
         "annotations": ro},
        {"name": "whoami", "description": "First 12 hex digits of SHA-256 of the Authorization header, or \"anonymous\".",
         "inputSchema": obj(json!({}), &[]), "annotations": ro},
        {"name": "counter", "description": "Increments this session's counter and returns it.",
         "inputSchema": obj(json!({}), &[]), "annotations": {"readOnlyHint": false, "idempotentHint": false}},
        {"name": "region", "description": "Returns `region`; modern callers must mirror it as `Mcp-Param-Region` (x-mcp-header).",
         "inputSchema": obj(json!({"region": {"type": "string", "x-mcp-header": "Region"}}), &["region"]), "annotations": ro},
    ])
}

/// Tool `tool-{i}` of [`crate::MockConfig::extra_tools`]: a small input
/// schema, answered like `echo`.
fn extra_tool(i: usize) -> Value {
    json!({"name": format!("tool-{i}"), "description": format!("Extra tool {i}: echoes `text` back."),
           "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
           "annotations": {"readOnlyHint": true, "idempotentHint": true}})
}

/// The `inputSchema` of one of the mock's tools.
pub(crate) fn tool_schema(name: &str) -> Option<Value> {
    tools().as_array()?.iter().find(|t| t["name"] == name).map(|t| t["inputSchema"].clone())
}

fn text_result(text: String) -> Value {
    json!({"content": [{"type": "text", "text": text}], "isError": false})
}

fn tool_error(text: String) -> Value {
    json!({"content": [{"type": "text", "text": text}], "isError": true})
}

fn invalid(msg: impl Into<String>) -> Reply {
    Reply::Error(codes::INVALID_PARAMS, format!("Invalid params: {}", msg.into()), None)
}

/// An optional non-negative integer argument; `Err` names the problem.
fn uint_arg(args: &Map<String, Value>, key: &str, default: Option<u64>) -> Result<u64, String> {
    match args.get(key) {
        None | Some(Value::Null) => default.ok_or_else(|| format!("`{key}` is required")),
        Some(v) => v.as_u64().ok_or_else(|| format!("`{key}` must be a non-negative integer")),
    }
}

impl MockServer {
    /// Adds `ttlMs` / `cacheScope` to a cacheable result (lists, `resources/read`,
    /// `server/discover`) under modern rules (2026-07-28, SEP-2549).
    fn cacheable(&self, ctx: &Ctx<'_>, mut result: Value) -> Value {
        if ctx.modern {
            result["ttlMs"] = json!(LIST_TTL_MS);
            result["cacheScope"] = json!("public");
        }
        result
    }

    /// Runs one JSON-RPC request. Unknown method → -32601, bad params → -32602.
    pub(crate) fn dispatch(&self, ctx: &Ctx<'_>, method: &str, params: Option<&Value>) -> Reply {
        if let Some(cred) = ctx.credential {
            return self.reflect_dispatch(ctx, cred, method, params);
        }
        let empty = Map::new();
        let params = match params {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(m)) => m,
            Some(_) => return invalid("params must be an object"),
        };
        match method {
            "ping" => Reply::Result(json!({})),
            "logging/setLevel" => match params.get("level").and_then(Value::as_str) {
                Some(level) if stream::level_rank(level).is_some() => {
                    self.set_log_level(ctx.session, level);
                    Reply::Result(json!({}))
                }
                Some(level) => invalid(format!("unknown log level `{level}` (one of {})", stream::LOG_LEVELS.join(", "))),
                None => invalid("`level` must be a string"),
            },
            "resources/subscribe" | "resources/unsubscribe" if self.has_conformance_fixtures() => {
                let Some(uri) = params.get("uri").and_then(Value::as_str) else {
                    return invalid("`uri` is required");
                };
                self.subscribe(ctx.session, uri, method == "resources/subscribe");
                Reply::Result(json!({}))
            }
            "server/discover" if ctx.modern => {
                let name = &self.config().name;
                let mut meta = Map::new();
                meta.insert(META_SERVER_INFO.into(), json!({"name": name, "version": env!("CARGO_PKG_VERSION")}));
                let mut result = self.cacheable(
                    ctx,
                    json!({
                        "supportedVersions": self.supported_versions(),
                        "capabilities": {
                            "tools": {"listChanged": false},
                            "prompts": {},
                            "resources": {"subscribe": self.has_conformance_fixtures()},
                            "completions": {},
                            "logging": {},
                        },
                        "instructions": format!("{name} is a mock MCP server for tests."),
                        "_meta": meta,
                    }),
                );
                self.add_task_capability(&mut result, true);
                Reply::Result(result)
            }
            "tools/list" => {
                let mut list = tools();
                if self.has_conformance_fixtures() {
                    if let Some(a) = list.as_array_mut() {
                        a.extend(conformance::tools());
                    }
                }
                if let Some(a) = list.as_array_mut() {
                    a.extend(self.task_tools(ctx.modern));
                    a.extend((1..=self.config().extra_tools).map(extra_tool));
                }
                Reply::Result(self.cacheable(ctx, json!({"tools": list})))
            }
            "tools/call" => self.call_tool(ctx, params),
            m if m.starts_with("tasks/") => self.tasks_method(ctx, m, params),
            "prompts/list" => {
                let mut list = vec![json!({
                    "name": "greeting",
                    "description": "Greets someone by name.",
                    "arguments": [{"name": "name", "description": "Who to greet", "required": true}],
                })];
                if self.has_conformance_fixtures() {
                    list.extend(conformance::prompts());
                }
                Reply::Result(self.cacheable(ctx, json!({"prompts": list})))
            }
            "prompts/get" => {
                let name = params.get("name").and_then(Value::as_str).unwrap_or_default();
                if self.has_conformance_fixtures() {
                    if let Some(reply) = conformance::get_prompt(name, params, ctx.modern) {
                        return reply;
                    }
                }
                if name != "greeting" {
                    return invalid("unknown prompt");
                }
                let Some(who) = params.get("arguments").and_then(|a| a.get("name")).and_then(Value::as_str) else {
                    return invalid("argument `name` is required");
                };
                Reply::Result(json!({
                    "description": "A greeting",
                    "messages": [{"role": "user", "content": {"type": "text", "text": format!("Hello, {who}!")}}],
                }))
            }
            "resources/list" => {
                let mut list = vec![json!({
                    "uri": "mock://info", "name": "info", "description": "About this mock server.", "mimeType": "text/plain",
                })];
                if self.has_conformance_fixtures() {
                    list.extend(conformance::resources());
                }
                Reply::Result(self.cacheable(ctx, json!({"resources": list})))
            }
            "resources/templates/list" => {
                let mut list = vec![json!({
                    "uriTemplate": "mock://item/{id}", "name": "item", "description": "One item by id.", "mimeType": "text/plain",
                })];
                if self.has_conformance_fixtures() {
                    list.extend(conformance::templates());
                }
                Reply::Result(self.cacheable(ctx, json!({"resourceTemplates": list})))
            }
            "resources/read" => {
                let Some(uri) = params.get("uri").and_then(Value::as_str) else {
                    return invalid("`uri` is required");
                };
                if let Some(read) = conformance::read(uri).filter(|_| self.has_conformance_fixtures()) {
                    return Reply::Result(self.cacheable(ctx, read));
                }
                let text = if uri == "mock://info" {
                    format!("{} mock MCP server ({})", self.config().name, self.config().era.as_str())
                } else if let Some(id) = uri.strip_prefix("mock://item/").filter(|id| !id.is_empty()) {
                    format!("item {id}")
                } else {
                    // -32602 from 2026-07-28 on (SEP-2164); -32002 before.
                    let code = if ctx.modern { codes::INVALID_PARAMS } else { codes::RESOURCE_NOT_FOUND };
                    return Reply::Error(code, "Resource not found".into(), Some(json!({"uri": uri})));
                };
                Reply::Result(self.cacheable(ctx, json!({"contents": [{"uri": uri, "mimeType": "text/plain", "text": text}]})))
            }
            "completion/complete" => {
                let r = params.get("ref");
                let is_greeting = r.and_then(|r| r.get("type")).and_then(Value::as_str) == Some("ref/prompt")
                    && r.and_then(|r| r.get("name")).and_then(Value::as_str) == Some("greeting");
                let arg = params.get("argument");
                let (Some(arg_name), Some(value)) = (
                    arg.and_then(|a| a.get("name")).and_then(Value::as_str),
                    arg.and_then(|a| a.get("value")).and_then(Value::as_str),
                ) else {
                    return invalid("`argument.name` and `argument.value` are required");
                };
                if !is_greeting {
                    let prompt = r.filter(|r| r.get("type").and_then(Value::as_str) == Some("ref/prompt"));
                    let name = prompt.and_then(|r| r.get("name")).and_then(Value::as_str).unwrap_or_default();
                    if let Some(values) = conformance::complete(name, arg_name, value).filter(|_| self.has_conformance_fixtures()) {
                        return Reply::Result(json!({"completion": {"values": values, "total": values.len(), "hasMore": false}}));
                    }
                    return invalid("unknown ref");
                }
                let values: Vec<&str> = if arg_name == "name" {
                    NAMES.iter().copied().filter(|n| n.starts_with(value)).collect()
                } else {
                    Vec::new()
                };
                Reply::Result(json!({"completion": {"values": values, "total": values.len(), "hasMore": false}}))
            }
            _ => Reply::Error(codes::METHOD_NOT_FOUND, format!("Method not found: {method}"), None),
        }
    }

    /// Whether `name` is one of the extra tools `tool-1` … `tool-N`.
    pub(crate) fn is_extra_tool(&self, name: &str) -> bool {
        name.strip_prefix("tool-")
            .filter(|i| !i.starts_with('0'))
            .and_then(|i| i.parse::<usize>().ok())
            .is_some_and(|i| (1..=self.config().extra_tools).contains(&i))
    }

    fn call_tool(&self, ctx: &Ctx<'_>, params: &Map<String, Value>) -> Reply {
        let Some(name) = params.get("name").and_then(Value::as_str) else {
            return invalid("`name` is required");
        };
        let empty = Map::new();
        let args = match params.get("arguments") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(m)) => m,
            Some(_) => return invalid("`arguments` must be an object"),
        };
        if let Some(reply) = self.call_task_tool(ctx, name, params) {
            return reply;
        }
        if self.has_conformance_fixtures() && conformance::TOOL_NAMES.contains(&name) {
            self.count_tool(name);
            return conformance::call(name, args, params, ctx.modern);
        }
        let prefix = &self.config().name;
        if self.is_extra_tool(name) {
            self.count_tool(name);
            return match args.get("text").and_then(Value::as_str) {
                Some(t) => Reply::Result(text_result(format!("{prefix}: {t}"))),
                None => Reply::Result(tool_error("invalid arguments: `text` must be a string".into())),
            };
        }
        if !TOOL_NAMES.contains(&name) {
            return invalid(format!("unknown tool: {name}"));
        }
        self.count_tool(name);
        // Input validation failures are tool execution errors (isError), per
        // the 2025-11-25 tools spec; unknown tools stay -32602.
        let text = match name {
            "echo" => match args.get("text").and_then(Value::as_str) {
                Some(t) => t.to_string(),
                None => return Reply::Result(tool_error("invalid arguments: `text` must be a string".into())),
            },
            "get_session_id" => ctx.session.unwrap_or("none").to_string(),
            "sleep" => match uint_arg(args, "ms", None) {
                Ok(ms) => {
                    let ms = ms.min(MAX_SLEEP_MS);
                    std::thread::sleep(Duration::from_millis(ms));
                    format!("slept {ms} ms")
                }
                Err(e) => return Reply::Result(tool_error(format!("invalid arguments: {e}"))),
            },
            "progress" => {
                let (steps, ms) = match (uint_arg(args, "steps", Some(3)), uint_arg(args, "ms", Some(50))) {
                    (Ok(s), Ok(m)) => (s, m),
                    (Err(e), _) | (_, Err(e)) => return Reply::Result(tool_error(format!("invalid arguments: {e}"))),
                };
                let steps = steps.min(10_000);
                let ms = MAX_SLEEP_MS.checked_div(steps).map_or(0, |cap| ms.min(cap));
                let result = text_result(format!("{prefix}: progress done, {steps} steps"));
                match params.get("_meta").and_then(|m| m.get("progressToken")) {
                    Some(token) if token.is_string() || token.is_number() => {
                        return Reply::Progress { token: token.clone(), steps, ms, result };
                    }
                    _ => {
                        std::thread::sleep(Duration::from_millis(steps * ms));
                        return Reply::Result(result);
                    }
                }
            }
            "whoami" => ctx.authorization.map(short_sha).unwrap_or_else(|| "anonymous".into()),
            "counter" => self.bump_counter(ctx.session).to_string(),
            "region" => match args.get("region").and_then(Value::as_str) {
                Some(r) => format!("region {r}"),
                None => return Reply::Result(tool_error("invalid arguments: `region` must be a string".into())),
            },
            _ => unreachable!("checked against TOOL_NAMES"),
        };
        Reply::Result(text_result(format!("{prefix}: {text}")))
    }
}
