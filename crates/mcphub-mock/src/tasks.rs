//! Tasks on the mock, off until [`MockServer::enable_tasks`] (or
//! `MCPHUB_MOCK_TASKS=1` in the environment of [`MockServer::new`]).
//!
//! - **legacy** (2025-11-25 `basic/utilities/tasks`): capability
//!   `tasks: {list, cancel, requests: {tools: {call}}}`; a `tools/call` with
//!   `params.task` on a task tool answers `CreateTaskResult` (`{task: Task}`);
//!   `tasks/get`, `tasks/result` (blocks until the task is terminal, at most
//!   [`RESULT_WAIT`]), `tasks/list` (pages of [`PAGE_SIZE`], cursor `o{offset}`),
//!   `tasks/cancel` (a terminal task → -32602). Tasks belong to the legacy
//!   session that created them. `notifications/tasks/status` (the full Task)
//!   go on the session's standalone GET stream, queued until it is open.
//! - **modern** (SEP-2663, extension `io.modelcontextprotocol/tasks`):
//!   advertised under `capabilities.extensions` of `server/discover`; a task
//!   tool called with the extension in the request's client capabilities
//!   answers a flat `CreateTaskResult` (`resultType: "task"`, `ttlMs`,
//!   `pollIntervalMs`); `tasks/get` inlines `result` / `error` /
//!   `inputRequests`; `tasks/update` and `tasks/cancel` answer an empty ack;
//!   `tasks/result` and `tasks/list` are -32601; without the extension the
//!   tasks methods answer -32021.
//!
//! Task ids are `task-1`, `task-2`, … per mock, so two mocks mint colliding
//! ids on purpose (the hub must namespace them).
//!
//! Tools: `slow_task` (`taskSupport: "optional"`; `ms` of work, default 200,
//! `fail: true` → a tool error), `required_task` (`"required"`; without a
//! task: legacy -32601, modern -32021), and for modern callers `ask_task`
//! (parks in `input_required` with one `elicitation/create` input request
//! until `tasks/update` answers it).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use serde_json::{json, Map, Value};

use super::{codes, Ctx, MockServer, Reply};
use mcphub::http::{Request, Response, SseEvent};

/// The extension identifier (SEP-2663).
pub const EXTENSION: &str = "io.modelcontextprotocol/tasks";
/// `_meta` key associating a message with a task (2025-11-25).
pub const RELATED_TASK: &str = "io.modelcontextprotocol/related-task";
/// The task tools (without the conformance fixtures).
pub const TASK_TOOL_NAMES: [&str; 3] = ["slow_task", "required_task", "ask_task"];
/// Tasks per `tasks/list` page.
pub const PAGE_SIZE: usize = 5;
/// Longest a `tasks/result` waits for a terminal status.
pub const RESULT_WAIT: Duration = Duration::from_secs(30);
/// Most tasks kept (the oldest terminal ones are dropped first).
const MAX_TASKS: usize = 10_000;
/// Upper bound of `slow_task.ms`.
const MAX_TASK_MS: u64 = 60_000;
/// `ttl` / `ttlMs` of every task.
const TTL_MS: u64 = 600_000;
/// `pollInterval` / `pollIntervalMs` of every task.
const POLL_MS: u64 = 100;
/// Status notifications queued per session while no GET stream reads them.
const MAILBOX: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Working,
    InputRequired,
    Completed,
    Failed,
    Cancelled,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Working => "working",
            Status::InputRequired => "input_required",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    fn terminal(self) -> bool {
        matches!(self, Status::Completed | Status::Failed | Status::Cancelled)
    }
}

#[derive(Debug)]
struct Task {
    id: String,
    /// The legacy session that created it (`None`: a modern caller).
    owner: Option<String>,
    status: Status,
    message: Option<String>,
    created: String,
    updated: String,
    /// The final tool result (completed/failed).
    result: Option<Value>,
    /// The JSON-RPC error of a task that failed at the protocol level.
    error: Option<Value>,
    /// Outstanding input request keys (`input_required`).
    asking: Vec<String>,
    /// Input responses received so far.
    answers: Vec<Value>,
}

/// How a task's work ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// A tool result.
    Ok,
    /// A tool result with `isError`.
    ToolError,
    /// A JSON-RPC error (`-32603`).
    ProtocolError,
}

/// One task tool: name, `execution.taskSupport`, served to modern callers only,
/// a conformance fixture (listed only with the fixtures on).
struct ToolSpec {
    name: &'static str,
    support: Option<&'static str>,
    modern_only: bool,
    fixture: bool,
    description: &'static str,
}

const TOOLS: [ToolSpec; 10] = [
    ToolSpec { name: "slow_task", support: Some("optional"), modern_only: false, fixture: false, description: "Works `ms` ms (default 200) as a task or not; `fail` → tool error." },
    ToolSpec { name: "required_task", support: Some("required"), modern_only: false, fixture: false, description: "Works `ms` ms; must be called as a task." },
    ToolSpec { name: "ask_task", support: Some("required"), modern_only: true, fixture: false, description: "A task that asks for confirmation (tasks/update) before completing." },
    // The tasks-* scenarios of the conformance suite (SEP-2663) call these by name.
    ToolSpec { name: "greet", support: None, modern_only: true, fixture: true, description: "Returns `Hello, {name}!`." },
    ToolSpec { name: "slow_compute", support: Some("optional"), modern_only: true, fixture: true, description: "Sleeps `seconds` s, as a task." },
    ToolSpec { name: "failing_job", support: Some("required"), modern_only: true, fixture: true, description: "Returns a tool execution error after a moment." },
    ToolSpec { name: "protocol_error_job", support: Some("optional"), modern_only: true, fixture: true, description: "Fails with a JSON-RPC error." },
    ToolSpec { name: "confirm_delete", support: Some("optional"), modern_only: true, fixture: true, description: "Asks to confirm deleting `filename`." },
    ToolSpec { name: "multi_input", support: Some("optional"), modern_only: true, fixture: true, description: "Asks two questions at once." },
    ToolSpec { name: "test_tool_with_task", support: Some("required"), modern_only: true, fixture: true, description: "Asks for `user_name` (MRTR), then becomes a task greeting them." },
];

/// The mock's tasks and the status mailboxes of legacy sessions.
#[derive(Default)]
pub(crate) struct TaskStore {
    enabled: AtomicBool,
    next: AtomicU64,
    tasks: Mutex<Vec<Task>>,
    mailboxes: Mutex<HashMap<String, Vec<Value>>>,
}

impl TaskStore {
    /// Tasks on iff `MCPHUB_MOCK_TASKS=1`.
    pub(crate) fn from_env() -> TaskStore {
        let store = TaskStore::default();
        store.enabled.store(std::env::var("MCPHUB_MOCK_TASKS").is_ok_and(|v| v.trim() == "1"), Ordering::SeqCst);
        store
    }
}

/// RFC 3339 UTC timestamp (`2025-11-25T10:30:00Z`) of `t`.
pub fn iso8601(t: SystemTime) -> String {
    mcphub::logging::rfc3339_seconds(t)
}

fn now() -> String {
    iso8601(SystemTime::now())
}

fn text_result(text: String, is_error: bool) -> Value {
    json!({"content": [{"type": "text", "text": text}], "isError": is_error})
}

/// The `Task` object of either era (no inlined payload).
fn task_object(t: &Task, modern: bool) -> Value {
    let mut o = json!({"taskId": t.id, "status": t.status.as_str(), "createdAt": t.created, "lastUpdatedAt": t.updated});
    if let Some(m) = &t.message {
        o["statusMessage"] = json!(m);
    }
    if modern {
        o["ttlMs"] = json!(TTL_MS);
        o["pollIntervalMs"] = json!(POLL_MS);
    } else {
        o["ttl"] = json!(TTL_MS);
        o["pollInterval"] = json!(POLL_MS);
    }
    o
}

/// The `inputRequests` of an `ask_task` waiting for `key`.
fn input_requests(key: &str) -> Value {
    json!({key: {"method": "elicitation/create", "params": {
        "mode": "form",
        "message": "Proceed?",
        "requestedSchema": {"type": "object", "properties": {"confirm": {"type": "boolean"}}, "required": ["confirm"]},
    }}})
}

/// A 2026-07-28 request's `_meta` client capabilities declare the extension.
fn declares_extension(params: &Map<String, Value>) -> bool {
    params
        .get("_meta")
        .and_then(|m| m.get(mcphub::protocol::META_CLIENT_CAPABILITIES))
        .and_then(|c| c.get("extensions"))
        .and_then(|e| e.get(EXTENSION))
        .is_some()
}

fn missing_extension() -> Reply {
    Reply::Error(
        codes::MISSING_CLIENT_CAPABILITY,
        "Missing required client capability".into(),
        Some(json!({"requiredCapabilities": {"extensions": {EXTENSION: {}}}})),
    )
}

fn not_found(id: &str) -> Reply {
    Reply::Error(codes::INVALID_PARAMS, format!("Failed to retrieve task: Task not found: {id}"), None)
}

impl MockServer {
    fn store(&self) -> &TaskStore {
        &self.inner.tasks
    }

    /// Turns tasks on (for tests; before the first client sees the server).
    pub fn enable_tasks(&self) {
        self.store().enabled.store(true, Ordering::SeqCst);
    }

    /// Whether tasks are on.
    pub fn tasks_enabled(&self) -> bool {
        self.store().enabled.load(Ordering::SeqCst)
    }

    /// Adds the tasks capability to an `initialize` (legacy) or
    /// `server/discover` (modern) result, when tasks are on.
    pub(crate) fn add_task_capability(&self, result: &mut Value, modern: bool) {
        if !self.tasks_enabled() {
            return;
        }
        if modern {
            result["capabilities"]["extensions"] = json!({EXTENSION: {}});
        } else {
            result["capabilities"]["tasks"] = json!({"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}});
        }
    }

    /// The task tool `name` if this caller may use it.
    fn task_tool(&self, name: &str, modern: bool) -> Option<&'static ToolSpec> {
        let fixtures = self.has_conformance_fixtures();
        TOOLS.iter().find(|t| t.name == name && (modern || !t.modern_only) && (fixtures || !t.fixture)).filter(|_| self.tasks_enabled())
    }

    /// The task tools for `tools/list` (none when tasks are off).
    pub(crate) fn task_tools(&self, modern: bool) -> Vec<Value> {
        let schema = json!({"type": "object", "properties": {
            "ms": {"type": "integer", "minimum": 0}, "fail": {"type": "boolean"}, "seconds": {"type": "number", "minimum": 0},
            "label": {"type": "string"}, "name": {"type": "string"}, "filename": {"type": "string"}}});
        TOOLS
            .iter()
            .filter(|t| self.task_tool(t.name, modern).is_some())
            .map(|t| {
                let mut tool = json!({"name": t.name, "description": t.description, "inputSchema": schema});
                if let Some(s) = t.support {
                    tool["execution"] = json!({"taskSupport": s});
                }
                tool
            })
            .collect()
    }

    /// A task tool's call, or `None` for other tools (or tasks off).
    pub(crate) fn call_task_tool(&self, ctx: &Ctx<'_>, name: &str, params: &Map<String, Value>) -> Option<Reply> {
        let spec = self.task_tool(name, ctx.modern)?;
        let args = params.get("arguments").and_then(Value::as_object);
        let arg = |k: &str| args.and_then(|a| a.get(k));
        let seconds_ms = arg("seconds").and_then(Value::as_f64).map(|s| (s.max(0.0) * 1000.0) as u64);
        let ms = arg("ms").and_then(Value::as_u64).or(seconds_ms).unwrap_or(200).min(MAX_TASK_MS);
        let outcome = match name {
            "failing_job" => Outcome::ToolError,
            "protocol_error_job" => Outcome::ProtocolError,
            _ if arg("fail").and_then(Value::as_bool) == Some(true) => Outcome::ToolError,
            _ => Outcome::Ok,
        };
        let asking: Vec<String> = match name {
            "ask_task" | "confirm_delete" => vec!["confirm".into()],
            "multi_input" => vec!["first".into(), "second".into()],
            _ => Vec::new(),
        };
        // MRTR before the task (SEP-2663, Composition with Multi Round-Trip Requests).
        let mut greeting = None;
        if name == "test_tool_with_task" {
            let Some(answer) = params.get("inputResponses").and_then(|r| r.get("user_name")) else {
                let ask = json!({"method": "elicitation/create", "params": {"mode": "form", "message": "Your name?",
                    "requestedSchema": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}}});
                return Some(Reply::Result(json!({"resultType": "input_required", "inputRequests": {"user_name": ask}})));
            };
            let who = answer.pointer("/content/name").and_then(Value::as_str).unwrap_or("stranger");
            greeting = Some(format!("Hello, {who}!"));
        }
        if name == "greet" {
            let who = arg("name").and_then(Value::as_str).unwrap_or("world");
            return Some(Reply::Result(text_result(format!("Hello, {who}!"), false)));
        }
        let as_task = if ctx.modern { declares_extension(params) } else { params.get("task").is_some_and(Value::is_object) };
        if !as_task {
            if spec.support == Some("required") || !asking.is_empty() {
                return Some(if ctx.modern {
                    missing_extension()
                } else {
                    Reply::Error(codes::METHOD_NOT_FOUND, format!("{name} must be called as a task (execution.taskSupport: required)"), None)
                });
            }
            std::thread::sleep(Duration::from_millis(ms));
            let text = format!("{}: worked {ms} ms", self.config().name);
            return Some(match outcome {
                Outcome::ProtocolError => Reply::Error(codes::INTERNAL_ERROR, text, None),
                o => Reply::Result(text_result(text, o == Outcome::ToolError)),
            });
        }
        let id = format!("task-{}", self.store().next.fetch_add(1, Ordering::SeqCst) + 1);
        let stamp = now();
        let asking: Vec<String> = asking.iter().map(|k| format!("{k}-{id}")).collect();
        let task = Task {
            id: id.clone(),
            owner: ctx.session.filter(|_| !ctx.modern).map(str::to_string),
            status: if asking.is_empty() { Status::Working } else { Status::InputRequired },
            message: None,
            created: stamp.clone(),
            updated: stamp,
            result: None,
            error: None,
            asking,
            answers: Vec::new(),
        };
        let waits_for_input = !task.asking.is_empty();
        let created = task_object(&task, ctx.modern);
        {
            let mut tasks = self.store().tasks.lock();
            if tasks.len() >= MAX_TASKS {
                let oldest_terminal = tasks.iter().position(|t| t.status.terminal()).unwrap_or(0);
                tasks.remove(oldest_terminal);
            }
            tasks.push(task);
        }
        if !waits_for_input {
            let text = greeting.unwrap_or_else(|| format!("{}: {id} worked {ms} ms", self.config().name));
            self.spawn_worker(id, ms, outcome, text);
        }
        Some(Reply::Result(if ctx.modern {
            let mut r = created;
            r["resultType"] = json!("task");
            r
        } else {
            json!({"task": created})
        }))
    }

    /// Completes a task after `ms` unless it was cancelled meanwhile.
    fn spawn_worker(&self, id: String, ms: u64, outcome: Outcome, text: String) {
        let server = self.clone();
        let spawned = std::thread::Builder::new().name("mock-task".into()).spawn(move || {
            // Until the work is done, or sooner when the task was cancelled.
            let done = Instant::now() + Duration::from_millis(ms);
            while Instant::now() < done {
                let live = server.store().tasks.lock().iter().any(|t| t.id == id && !t.status.terminal());
                if !live {
                    return;
                }
                std::thread::sleep(done.saturating_duration_since(Instant::now()).min(Duration::from_millis(20)));
            }
            server.settle(&id, |t| {
                if t.status == Status::Working {
                    t.status = if outcome == Outcome::Ok { Status::Completed } else { Status::Failed };
                    match outcome {
                        Outcome::ProtocolError => t.error = Some(json!({"code": codes::INTERNAL_ERROR, "message": text})),
                        o => t.result = Some(text_result(text, o == Outcome::ToolError)),
                    }
                }
            });
        });
        if let Err(e) = spawned {
            log::warn!("mock: cannot start a task thread: {e}");
        }
    }

    /// Applies `change` to task `id`; a status change is stamped and queued
    /// as `notifications/tasks/status` for the owning legacy session.
    ///
    /// The notification is queued while the task table is still locked, so
    /// whoever reads the new status (`tasks/get`) also finds its notification
    /// in the mailbox (issue 14: a test polling the status read the mailbox
    /// between two separate critical sections). Lock order: tasks, then
    /// mailboxes; nothing locks them the other way round.
    fn settle(&self, id: &str, change: impl FnOnce(&mut Task)) {
        let mut tasks = self.store().tasks.lock();
        let Some(t) = tasks.iter_mut().find(|t| t.id == id) else { return };
        let before = t.status;
        change(t);
        if t.status == before {
            return;
        }
        t.updated = now();
        let Some(session) = t.owner.clone() else { return };
        let task = task_object(t, false);
        let mut boxes = self.store().mailboxes.lock();
        let mailbox = boxes.entry(session).or_default();
        if mailbox.len() < MAILBOX {
            mailbox.push(json!({"jsonrpc": "2.0", "method": "notifications/tasks/status", "params": task}));
        }
    }

    /// Runs `f` on the task `id` visible to this caller (legacy: its own
    /// session's; modern: any task a modern caller created).
    fn with_task<T>(&self, ctx: &Ctx<'_>, id: &str, f: impl FnOnce(&mut Task) -> T) -> Option<T> {
        let owner = ctx.session.filter(|_| !ctx.modern);
        let mut tasks = self.store().tasks.lock();
        let t = tasks.iter_mut().find(|t| t.id == id && t.owner.as_deref() == owner)?;
        Some(f(t))
    }

    /// `tasks/*` requests (−32601 when tasks are off or the method is not in the era).
    pub(crate) fn tasks_method(&self, ctx: &Ctx<'_>, method: &str, params: &Map<String, Value>) -> Reply {
        let unknown = || Reply::Error(codes::METHOD_NOT_FOUND, format!("Method not found: {method}"), None);
        if !self.tasks_enabled() {
            return unknown();
        }
        if ctx.modern && matches!(method, "tasks/get" | "tasks/update" | "tasks/cancel") && !declares_extension(params) {
            return missing_extension();
        }
        if method == "tasks/list" {
            return if ctx.modern { unknown() } else { self.list_tasks(ctx, params) };
        }
        let Some(id) = params.get("taskId").and_then(Value::as_str) else {
            return Reply::Error(codes::INVALID_PARAMS, format!("{method} needs params.taskId"), None);
        };
        match (method, ctx.modern) {
            ("tasks/get", modern) => self.with_task(ctx, id, |t| detailed(t, modern)).map_or_else(|| not_found(id), Reply::Result),
            ("tasks/result", false) => self.task_result(ctx, id),
            ("tasks/cancel", modern) => self.cancel_task(ctx, id, modern),
            ("tasks/update", true) => {
                let answers = params.get("inputResponses").and_then(Value::as_object).cloned().unwrap_or_default();
                let name = self.config().name.clone();
                // Answers to keys not outstanding are ignored (SEP-2663 Task Update Requests).
                let known = self.with_task(ctx, id, |t| {
                    if t.status == Status::InputRequired {
                        let now: Vec<Value> = t.asking.iter().filter_map(|k| answers.get(k).cloned()).collect();
                        t.asking.retain(|k| !answers.contains_key(k));
                        t.answers.extend(now);
                    }
                });
                if known.is_none() {
                    return not_found(id);
                }
                self.settle(id, |t| {
                    if t.status == Status::InputRequired && t.asking.is_empty() {
                        t.status = Status::Completed;
                        let answers = Value::Array(t.answers.clone());
                        t.result = Some(text_result(format!("{name}: {} answered {answers}", t.id), false));
                    }
                });
                Reply::Result(json!({}))
            }
            _ => unknown(),
        }
    }

    fn list_tasks(&self, ctx: &Ctx<'_>, params: &Map<String, Value>) -> Reply {
        let offset = match params.get("cursor") {
            None | Some(Value::Null) => 0,
            Some(c) => match c.as_str().and_then(|c| c.strip_prefix('o')).and_then(|n| n.parse::<usize>().ok()) {
                Some(n) => n,
                None => return Reply::Error(codes::INVALID_PARAMS, "Invalid cursor".into(), None),
            },
        };
        let tasks = self.store().tasks.lock();
        let mine: Vec<&Task> = tasks.iter().filter(|t| t.owner.as_deref() == ctx.session).collect();
        let page: Vec<Value> = mine.iter().skip(offset).take(PAGE_SIZE).map(|t| task_object(t, false)).collect();
        let mut result = json!({"tasks": page});
        if offset + PAGE_SIZE < mine.len() {
            result["nextCursor"] = json!(format!("o{}", offset + PAGE_SIZE));
        }
        Reply::Result(result)
    }

    /// Legacy `tasks/result`: waits (≤ [`RESULT_WAIT`]) for a terminal status.
    fn task_result(&self, ctx: &Ctx<'_>, id: &str) -> Reply {
        let until = Instant::now() + RESULT_WAIT;
        loop {
            let Some((status, result, error)) = self.with_task(ctx, id, |t| (t.status, t.result.clone(), t.error.clone())) else {
                return not_found(id);
            };
            let related = json!({RELATED_TASK: {"taskId": id}});
            if let Some(e) = error {
                let message = e["message"].as_str().unwrap_or("failed").to_string();
                return Reply::Error(e["code"].as_i64().unwrap_or(codes::INTERNAL_ERROR), message, Some(json!({"_meta": related})));
            }
            match (status, result) {
                (Status::Cancelled, _) => {
                    return Reply::Error(codes::SERVER_ERROR, "Task cancelled".into(), Some(json!({"_meta": related})))
                }
                (s, Some(mut r)) if s.terminal() => {
                    r["_meta"] = related;
                    return Reply::Result(r);
                }
                _ if Instant::now() >= until => {
                    return Reply::Error(codes::INTERNAL_ERROR, format!("{id} is still not done after {} s", RESULT_WAIT.as_secs()), None)
                }
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    fn cancel_task(&self, ctx: &Ctx<'_>, id: &str, modern: bool) -> Reply {
        let Some(status) = self.with_task(ctx, id, |t| t.status) else { return not_found(id) };
        if status.terminal() {
            // 2025-11-25: -32602 for a terminal task; SEP-2663: the same empty ack.
            return if modern { Reply::Result(json!({})) } else { Reply::Error(codes::INVALID_PARAMS, format!("{id} is already {}", status.as_str()), None) };
        }
        self.settle(id, |t| {
            t.status = Status::Cancelled;
            t.message = Some("The task was cancelled by request.".into());
        });
        if modern {
            return Reply::Result(json!({}));
        }
        self.with_task(ctx, id, |t| task_object(t, false)).map_or_else(|| not_found(id), Reply::Result)
    }

    /// Legacy `GET /mcp` without `Last-Event-ID` when tasks are on: the
    /// session's standalone stream of `notifications/tasks/status`.
    pub(crate) fn task_stream(&self, req: &Request) -> Response {
        let Some(sid) = req.header("Mcp-Session-Id").map(str::to_string).filter(|s| self.has_session(s)) else {
            return Response::json(404, &super::rpc_error(&Value::Null, codes::SESSION_NOT_FOUND, "Session not found", None));
        };
        let server = self.clone();
        Response::sse(move |sink| {
            while !sink.is_gone() && server.has_session(&sid) {
                let batch = server.store().mailboxes.lock().remove(&sid).unwrap_or_default();
                for m in &batch {
                    if sink.send(&SseEvent { data: &m.to_string(), ..Default::default() }).is_err() {
                        return;
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
        .with_header("X-Accel-Buffering", "no")
    }
}

/// A 2026-07-28 `tasks/get` result (DetailedTask) or a 2025-11-25 Task.
fn detailed(t: &Task, modern: bool) -> Value {
    let mut o = task_object(t, modern);
    if modern {
        match (t.status, &t.result, &t.error) {
            (_, _, Some(e)) => o["error"] = e.clone(),
            // SEP-2663: a tool error is `completed` + isError; `failed` is for JSON-RPC errors.
            (Status::Completed | Status::Failed, Some(r), _) => {
                o["status"] = json!("completed");
                o["result"] = r.clone();
            }
            (Status::InputRequired, _, _) => {
                let requests: Map<String, Value> = t.asking.iter().map(|k| (k.clone(), input_requests(k)[k].clone())).collect();
                o["inputRequests"] = Value::Object(requests);
            }
            _ => {}
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::super::{Era, MockConfig};
    use super::*;
    use mcphub::http::Body;

    fn server(era: Era, name: &str) -> MockServer {
        let m = MockServer::new(MockConfig { era, name: name.into(), ..MockConfig::default() });
        m.enable_tasks();
        m
    }

    fn post(m: &MockServer, headers: &[(&str, &str)], body: Value) -> Value {
        let mut h: Vec<(String, String)> = vec![("Content-Type".into(), "application/json".into())];
        h.extend(headers.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let req = Request { method: "POST".into(), target: "/mcp".into(), headers: h, body: body.to_string().into_bytes(), peer: "127.0.0.1:1".parse().unwrap() };
        match m.handle(req).body {
            Body::Full(b) => serde_json::from_slice(&b).expect("JSON"),
            Body::Sse(_) => panic!("SSE"),
        }
    }

    fn legacy_session(m: &MockServer) -> (String, Value) {
        let body = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}});
        let req = Request { method: "POST".into(), target: "/mcp".into(), headers: vec![("Content-Type".into(), "application/json".into())], body: body.to_string().into_bytes(), peer: "127.0.0.1:1".parse().unwrap() };
        let r = m.handle(req);
        let sid = r.headers.iter().find(|(k, _)| k == "Mcp-Session-Id").map(|(_, v)| v.clone()).expect("session");
        let Body::Full(b) = r.body else { panic!("SSE") };
        (sid, serde_json::from_slice(&b).unwrap())
    }

    fn legacy(m: &MockServer, sid: &str, method: &str, params: Value) -> Value {
        post(m, &[("Mcp-Session-Id", sid)], json!({"jsonrpc":"2.0","id":2,"method":method,"params":params}))
    }

    fn modern(m: &MockServer, method: &str, mut params: Value, extension: bool) -> Value {
        let caps = if extension { json!({"extensions": {EXTENSION: {}}}) } else { json!({}) };
        params["_meta"] = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": caps});
        let name = mcphub::protocol::headers::name_field(method).and_then(|f| params[f].as_str()).unwrap_or("").to_string();
        let mut h = vec![("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", method)];
        if !name.is_empty() {
            h.push(("Mcp-Name", &name));
        }
        post(m, &h, json!({"jsonrpc":"2.0","id":3,"method":method,"params":params}))
    }

    fn wait_for(m: &MockServer, sid: &str, id: &str, status: &str) -> Value {
        for _ in 0..500 {
            let t = legacy(m, sid, "tasks/get", json!({"taskId": id}));
            if t["result"]["status"] == status {
                return t;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("{id} never became {status}");
    }

    #[test]
    fn the_capability_is_advertised_only_when_tasks_are_on() {
        let off = MockServer::new(MockConfig::default());
        let (_, init) = legacy_session(&off);
        assert!(init["result"]["capabilities"].get("tasks").is_none());
        let (_, init) = legacy_session(&server(Era::Dual, "a"));
        assert_eq!(init["result"]["capabilities"]["tasks"]["requests"]["tools"]["call"], json!({}));
        let discover = modern(&server(Era::Dual, "a"), "server/discover", json!({}), false);
        assert_eq!(discover["result"]["capabilities"]["extensions"][EXTENSION], json!({}));
        assert!(modern(&off, "server/discover", json!({}), false)["result"]["capabilities"].get("extensions").is_none());
    }

    #[test]
    fn a_legacy_task_runs_to_its_result_and_is_listed_per_session_in_pages() {
        let m = server(Era::Legacy, "a");
        let (sid, _) = legacy_session(&m);
        let (other, _) = legacy_session(&m);
        let tools = legacy(&m, &sid, "tools/list", json!({}));
        let slow = tools["result"]["tools"].as_array().unwrap().iter().find(|t| t["name"] == "slow_task").cloned().unwrap();
        assert_eq!(slow["execution"]["taskSupport"], "optional");
        let created = legacy(&m, &sid, "tools/call", json!({"name": "slow_task", "arguments": {"ms": 50}, "task": {"ttl": 60000}}));
        let task = &created["result"]["task"];
        assert_eq!(task["taskId"], "task-1");
        assert_eq!(task["status"], "working");
        assert!(task["createdAt"].as_str().unwrap().ends_with('Z'));
        let result = legacy(&m, &sid, "tasks/result", json!({"taskId": "task-1"}));
        assert_eq!(result["result"]["content"][0]["text"], "a: task-1 worked 50 ms");
        assert_eq!(result["result"]["_meta"][RELATED_TASK]["taskId"], "task-1");
        assert_eq!(legacy(&m, &sid, "tasks/get", json!({"taskId": "task-1"}))["result"]["status"], "completed");
        assert_eq!(legacy(&m, &other, "tasks/get", json!({"taskId": "task-1"}))["error"]["code"], codes::INVALID_PARAMS, "another session's task");
        for _ in 0..6 {
            legacy(&m, &sid, "tools/call", json!({"name": "slow_task", "arguments": {"ms": 0}, "task": {}}));
        }
        let first = legacy(&m, &sid, "tasks/list", json!({}));
        assert_eq!(first["result"]["tasks"].as_array().unwrap().len(), PAGE_SIZE);
        let cursor = first["result"]["nextCursor"].clone();
        let second = legacy(&m, &sid, "tasks/list", json!({"cursor": cursor}));
        assert_eq!(second["result"]["tasks"].as_array().unwrap().len(), 2);
        assert!(second["result"].get("nextCursor").is_none());
        assert_eq!(legacy(&m, &other, "tasks/list", json!({}))["result"]["tasks"], json!([]));
        assert_eq!(legacy(&m, &sid, "tasks/list", json!({"cursor": "junk"}))["error"]["code"], codes::INVALID_PARAMS);
        let required = legacy(&m, &sid, "tools/call", json!({"name": "required_task", "arguments": {}}));
        assert_eq!(required["error"]["code"], codes::METHOD_NOT_FOUND);
        let sync = legacy(&m, &sid, "tools/call", json!({"name": "slow_task", "arguments": {"ms": 0}}));
        assert_eq!(sync["result"]["content"][0]["text"], "a: worked 0 ms");
    }

    #[test]
    fn a_cancelled_legacy_task_stays_cancelled_and_status_changes_are_queued_for_its_session() {
        let m = server(Era::Legacy, "a");
        let (sid, _) = legacy_session(&m);
        legacy(&m, &sid, "tools/call", json!({"name": "slow_task", "arguments": {"ms": 60000}, "task": {}}));
        let cancelled = legacy(&m, &sid, "tasks/cancel", json!({"taskId": "task-1"}));
        assert_eq!(cancelled["result"]["status"], "cancelled");
        assert_eq!(legacy(&m, &sid, "tasks/cancel", json!({"taskId": "task-1"}))["error"]["code"], codes::INVALID_PARAMS);
        assert_eq!(legacy(&m, &sid, "tasks/result", json!({"taskId": "task-1"}))["error"]["code"], codes::SERVER_ERROR);
        legacy(&m, &sid, "tools/call", json!({"name": "slow_task", "arguments": {"ms": 10}, "task": {}}));
        wait_for(&m, &sid, "task-2", "completed");
        let queued = m.store().mailboxes.lock().get(&sid).cloned().unwrap_or_default();
        let seen: Vec<(String, String)> = queued
            .iter()
            .map(|n| (n["params"]["taskId"].as_str().unwrap().to_string(), n["params"]["status"].as_str().unwrap().to_string()))
            .collect();
        assert_eq!(seen, vec![("task-1".into(), "cancelled".into()), ("task-2".into(), "completed".into())]);
        assert_eq!(queued[0]["method"], "notifications/tasks/status");
    }

    #[test]
    fn modern_tasks_are_server_directed_polled_updated_and_gated_on_the_extension() {
        let m = server(Era::Modern, "b");
        let sync = modern(&m, "tools/call", json!({"name": "slow_task", "arguments": {"ms": 0}}), false);
        assert_eq!(sync["result"]["resultType"], "complete");
        let required = modern(&m, "tools/call", json!({"name": "required_task", "arguments": {}}), false);
        assert_eq!(required["error"]["code"], codes::MISSING_CLIENT_CAPABILITY);
        assert_eq!(required["error"]["data"]["requiredCapabilities"]["extensions"][EXTENSION], json!({}));
        let created = modern(&m, "tools/call", json!({"name": "slow_task", "arguments": {"ms": 10}}), true);
        assert_eq!(created["result"]["resultType"], "task");
        assert_eq!(created["result"]["taskId"], "task-1");
        assert!(created["result"].get("ttl").is_none() && created["result"]["ttlMs"].is_u64());
        assert_eq!(modern(&m, "tasks/get", json!({"taskId": "task-1"}), false)["error"]["code"], codes::MISSING_CLIENT_CAPABILITY);
        let mut done = Value::Null;
        for _ in 0..500 {
            done = modern(&m, "tasks/get", json!({"taskId": "task-1"}), true);
            if done["result"]["status"] == "completed" {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(done["result"]["result"]["content"][0]["text"], "b: task-1 worked 10 ms");
        assert_eq!(done["result"]["resultType"], "complete");
        assert_eq!(modern(&m, "tasks/get", json!({"taskId": "task-9"}), true)["error"]["code"], codes::INVALID_PARAMS);
        assert_eq!(modern(&m, "tasks/list", json!({}), true)["error"]["code"], codes::METHOD_NOT_FOUND);
        assert_eq!(modern(&m, "tasks/result", json!({"taskId": "task-1"}), true)["error"]["code"], codes::METHOD_NOT_FOUND);
        assert_eq!(modern(&m, "tasks/cancel", json!({"taskId": "task-1"}), true)["result"], json!({"resultType": "complete"}));
        let ask = modern(&m, "tools/call", json!({"name": "ask_task", "arguments": {}}), true);
        let id = ask["result"]["taskId"].as_str().unwrap().to_string();
        let parked = modern(&m, "tasks/get", json!({"taskId": id}), true);
        assert_eq!(parked["result"]["status"], "input_required");
        let key = parked["result"]["inputRequests"].as_object().unwrap().keys().next().unwrap().clone();
        let ack = modern(&m, "tasks/update", json!({"taskId": id, "inputResponses": {key: {"action": "accept", "content": {"confirm": true}}}}), true);
        assert_eq!(ack["result"], json!({"resultType": "complete"}));
        assert_eq!(modern(&m, "tasks/get", json!({"taskId": id}), true)["result"]["status"], "completed");
    }

    #[test]
    fn conformance_fixtures_fail_ask_twice_and_compose_with_mrtr() {
        let m = MockServer::with_conformance_fixtures(MockConfig { era: Era::Modern, ..MockConfig::default() });
        m.enable_tasks();
        let poll = |id: &str| {
            for _ in 0..500 {
                let g = modern(&m, "tasks/get", json!({"taskId": id}), true);
                if g["result"]["status"] != "working" {
                    return g;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            panic!("{id} stays working");
        };
        let failing = modern(&m, "tools/call", json!({"name": "protocol_error_job", "arguments": {"seconds": 0}}), true);
        let failed = poll(failing["result"]["taskId"].as_str().unwrap());
        assert_eq!(failed["result"]["status"], "failed");
        assert_eq!(failed["result"]["error"]["code"], codes::INTERNAL_ERROR);
        assert!(failed["result"].get("result").is_none());
        let multi = modern(&m, "tools/call", json!({"name": "multi_input", "arguments": {}}), true);
        let id = multi["result"]["taskId"].as_str().unwrap().to_string();
        let parked = modern(&m, "tasks/get", json!({"taskId": id}), true);
        let keys: Vec<String> = parked["result"]["inputRequests"].as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys.len(), 2);
        modern(&m, "tasks/update", json!({"taskId": id, "inputResponses": {keys[0].clone(): {"action": "accept"}}}), true);
        let half = modern(&m, "tasks/get", json!({"taskId": id}), true);
        assert_eq!(half["result"]["status"], "input_required");
        assert_eq!(half["result"]["inputRequests"].as_object().unwrap().keys().cloned().collect::<Vec<_>>(), vec![keys[1].clone()]);
        let round1 = modern(&m, "tools/call", json!({"name": "test_tool_with_task", "arguments": {}}), true);
        assert_eq!(round1["result"]["resultType"], "input_required");
        assert!(round1["result"].get("taskId").is_none());
        let answer = json!({"user_name": {"action": "accept", "content": {"name": "Alice"}}});
        let round2 = modern(&m, "tools/call", json!({"name": "test_tool_with_task", "arguments": {}, "inputResponses": answer}), true);
        assert_eq!(round2["result"]["resultType"], "task");
        let done = poll(round2["result"]["taskId"].as_str().unwrap());
        assert_eq!(done["result"]["result"]["content"][0]["text"], "Hello, Alice!");
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(iso8601(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_066_600); // 2025-11-25T10:30:00Z
        assert_eq!(iso8601(t), "2025-11-25T10:30:00Z");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(iso8601(leap), "2000-02-29T00:00:00Z");
    }
}
