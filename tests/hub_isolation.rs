//! The isolation suite of issue 14 ("Tests"): users never see each other's
//! data, and no injected credential reaches an answer, a log line,
//! `/readyz` or `/metrics`.
//!
//! Upstreams are `mcphub-mock`s in reflect mode (`crates/mcphub-mock/src/reflect.rs`): each
//! reflects the caller's credential as a per-user marker into every list,
//! tool result and task result, and the raw value into its error texts (a
//! JSON-RPC error, an SSE error event, HTTP 401 for a value containing
//! "bad"). `gh` (legacy, `Authorization: Bearer ${user.GITHUB_TOKEN}`) and
//! `gl` (2026-07-28, `PRIVATE-TOKEN: ${user.GITLAB_TOKEN}`) carry per-user
//! credentials, `plain` none. Three users with distinct tokens and a fourth
//! whose tokens are bad, each with a hub key, drive one legacy and one
//! modern client each at once against the real `mcphub` binary (its log is
//! read at the end) with `listCacheTtlSecs: 1`, through three phases: (A)
//! until a list cache expired and every client did a few rounds, (B) both
//! upstreams restarted on their ports, until every good user's lists are
//! complete again, (C) a few more rounds. Every answer is scanned for any
//! other user's marker or token ("foreign items") and for any token at all
//! ("injected values"); the good users' lists in phases A and C must be
//! complete (every item their credential gives, plus `plain`'s).

mod hub_util;

use hub_util::{events_of, mock_restartable, HubProcess, Mock, ACCEPT, JSON};
use mcphub_mock::{reflect_marker, Era, MockConfig};
use mcphub::users::{key_digest, new_key};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const EXT: &str = "io.modelcontextprotocol/tasks";
/// The list methods and their result fields.
const LISTS: [(&str, &str); 4] =
    [("tools/list", "tools"), ("prompts/list", "prompts"), ("resources/list", "resources"), ("resources/templates/list", "resourceTemplates")];
/// Rounds a client does at most (the phases end it sooner).
const MAX_ROUNDS: usize = 1500;
/// Pause between two rounds of a client.
const ROUND_PAUSE: Duration = Duration::from_millis(20);
/// A phase wait gives up (and the test fails) after this long.
const PHASE_WAIT: Duration = Duration::from_secs(20);

/// One user: name, hub key, the two service tokens and what the upstreams
/// see (header values) and reflect (markers).
#[derive(Clone)]
struct User {
    name: &'static str,
    key: String,
    gh_token: &'static str,
    gl_token: &'static str,
    bad: bool,
}

impl User {
    fn gh_value(&self) -> String {
        format!("Bearer {}", self.gh_token)
    }
    fn markers(&self) -> [String; 2] {
        [reflect_marker(&self.gh_value()), reflect_marker(self.gl_token)]
    }
    fn tokens(&self) -> [&'static str; 2] {
        [self.gh_token, self.gl_token]
    }
}

fn users() -> Vec<User> {
    let u = |name, gh_token, gl_token, bad| User { name, key: new_key(), gh_token, gl_token, bad };
    vec![
        u("alice", "ghp_alice_7f3a9c41", "glpat_alice_c0ffee12", false),
        u("bob", "ghp_bob_2d81e4aa", "glpat_bob_5eed5eed", false),
        u("carol", "ghp_carol_55b0aa07", "glpat_carol_0d15ea5e", false),
        u("dave", "ghp_bad_dave_9e1c", "glpat_bad_dave_77aa", true),
    ]
}

/// Phase of the run, read by the clients at the start of each round.
const PHASE_A: u8 = 0;
const PHASE_RESTART: u8 = 1;
const PHASE_C: u8 = 2;

/// One answer as a client got it.
struct Answer {
    user: usize,
    phase: u8,
    /// `tools/list`, `tools/call gh__whoami`, `tasks/get (foreign)`, …
    what: String,
    status: u16,
    /// The body as sent (JSON or the whole SSE stream).
    text: String,
    /// The final JSON-RPC message (`Null` if none could be read).
    msg: Value,
}

/// A client of the hub: legacy (a session) or modern (stateless).
struct Caller {
    agent: ureq::Agent,
    url: String,
    key: String,
    sid: Option<String>,
}

impl Caller {
    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(20))).build().into()
    }

    fn modern(url: &str, key: &str) -> Caller {
        Caller { agent: Caller::agent(), url: url.into(), key: key.into(), sid: None }
    }

    fn legacy(url: &str, key: &str) -> Caller {
        let mut c = Caller::modern(url, key);
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "isolation", "version": "1"}}});
        let (status, sid, text) = c.post(&[], &init.to_string());
        assert_eq!(status, 200, "initialize: {text}");
        c.sid = Some(sid.expect("the hub mints a session id"));
        let (status, _, text) = c.post(&[], r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        assert_eq!(status, 202, "{text}");
        c
    }

    fn post(&self, extra: &[(&str, String)], body: &str) -> (u16, Option<String>, String) {
        let bearer = format!("Bearer {}", self.key);
        let mut req = self.agent.post(&self.url).header(ACCEPT.0, ACCEPT.1).header(JSON.0, JSON.1).header("Authorization", &bearer);
        if let Some(s) = &self.sid {
            req = req.header("Mcp-Session-Id", s).header("MCP-Protocol-Version", "2025-11-25");
        }
        for (k, v) in extra {
            req = req.header(*k, v);
        }
        match req.send(body) {
            Ok(mut resp) => {
                let sid = resp.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_string);
                let text = resp.body_mut().read_to_string().unwrap_or_else(|e| format!("(body unreadable: {e})"));
                (resp.status().as_u16(), sid, text)
            }
            Err(e) => (0, None, format!("transport: {e}")),
        }
    }

    /// One request; `tasks`: a modern request declares the tasks extension.
    fn request(&self, method: &str, mut params: Value, tasks: bool) -> (u16, String, Value) {
        let mut extra = Vec::new();
        if self.sid.is_none() {
            let caps = if tasks { json!({"extensions": {EXT: {}}}) } else { json!({}) };
            params["_meta"] = json!({
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientInfo": {"name": "isolation", "version": "1"},
                "io.modelcontextprotocol/clientCapabilities": caps,
            });
            extra.push(("MCP-Protocol-Version", "2026-07-28".to_string()));
            extra.push(("Mcp-Method", method.to_string()));
            if let Some(field) = mcphub::protocol::headers::name_field(method) {
                let name = params[field].as_str().unwrap_or_default();
                extra.push(("Mcp-Name", mcphub::protocol::headers::encode_value(name)));
            }
        }
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
        let (status, _, text) = self.post(&extra, &body);
        let msg = if text.trim_start().starts_with('{') {
            serde_json::from_str(&text).unwrap_or(Value::Null)
        } else {
            events_of(&text).pop().map_or(Value::Null, |e| e.data)
        };
        (status, text, msg)
    }
}

/// The counts of the checks, kept as the answers arrive (so a long run
/// holds no answers).
#[derive(Default)]
struct Tally {
    answers: usize,
    foreign: usize,
    injected: usize,
    incomplete: usize,
    good_failed: usize,
    foreign_probes: usize,
    foreign_tasks: usize,
    not_failing: Vec<String>,
    bad_sample: Option<String>,
    /// Up to three answers per kind of failure.
    samples: BTreeMap<&'static str, Vec<String>>,
}

/// What a client records, shared with the main thread.
#[derive(Default)]
struct Shared {
    users: Vec<User>,
    expected: BTreeMap<&'static str, Expected>,
    tally: Mutex<Tally>,
    /// Hub task ids by (user, legacy?), for other users' `tasks/get` probes.
    tasks: Mutex<BTreeMap<(usize, bool), Vec<String>>>,
    /// The phase now (starts at [`PHASE_A`]).
    phase: AtomicU8,
    /// Set when the clients are to stop.
    stop: AtomicBool,
}

impl Shared {
    /// Every token and hub key.
    fn secrets(&self) -> Vec<String> {
        self.users.iter().flat_map(|u| u.tokens().map(str::to_string).into_iter().chain([u.key.clone()])).collect()
    }

    /// Scans one answer: another user's marker or token (foreign items), any
    /// token or key (injected values), and for good users outside the restart
    /// complete lists and successful own calls.
    fn check(&self, a: Answer) {
        let users = &self.users;
        let me = &users[a.user];
        let others: Vec<String> = users
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != a.user)
            .flat_map(|(_, u)| u.markers().into_iter().chain(u.tokens().map(str::to_string)))
            .collect();
        let secrets = self.secrets();
        let mut t = self.tally.lock().unwrap();
        let t = &mut *t;
        t.answers += 1;
        let mut sample = |kind: &'static str| {
            let s = t.samples.entry(kind).or_default();
            if s.len() < 3 {
                let text: String = a.text.chars().take(400).collect();
                s.push(format!("{} phase {} {} → HTTP {}: {text}", me.name, a.phase, a.what, a.status));
            }
        };
        let f = count_in(&a, &others);
        let injected = secrets.iter().any(|s| a.text.contains(s.as_str()));
        let steady = a.phase == PHASE_A || a.phase == PHASE_C;
        let incomplete = !me.bad && steady && !complete(&a, me, &self.expected);
        // The good users' own calls succeed outside the restart, with their own marker.
        let own_call = a.what.starts_with("tools/call") && !a.what.contains("reflect_") || a.what == "tasks/result";
        let mine = me.markers().iter().any(|m| a.text.contains(m.as_str())) || a.what.contains("plain__");
        let failed = a.status != 200 || a.msg.get("error").is_some() || a.msg["result"]["isError"] == true;
        let own_failed = !me.bad && steady && own_call && (failed || (!a.what.ends_with("(task)") && !mine));
        let foreign_task = a.what == "tasks/get (foreign)" && a.msg["error"]["code"] != -32602;
        if f > 0 {
            sample("foreign");
        }
        if injected {
            sample("injected value in an answer");
        }
        if incomplete {
            sample("incomplete list");
        }
        if own_failed {
            sample("a good user's own call failed");
        }
        if foreign_task {
            sample("another user's task was served");
        }
        t.foreign += f;
        t.injected += usize::from(injected);
        t.incomplete += usize::from(incomplete);
        t.good_failed += usize::from(own_failed);
        t.foreign_tasks += usize::from(foreign_task);
        t.foreign_probes += usize::from(a.what == "tasks/get (foreign)");
        if a.what.contains("reflect_") && !failed && t.not_failing.len() < 3 {
            t.not_failing.push(format!("{} {} did not fail: {}", me.name, a.what, a.text));
        }
        if me.bad && a.what == "tools/call gh__whoami" && t.bad_sample.is_none() {
            t.bad_sample = Some(a.text.chars().take(300).collect());
        }
    }
}

/// One client's loop: every list, calls on both upstreams (their error
/// tools too), a task of its own (run to its result) and a `tasks/get` on
/// another user's task, until `stop` or [`MAX_ROUNDS`].
fn client(user: usize, legacy: bool, url: String, key: String, rounds: Arc<AtomicUsize>, shared: Arc<Shared>) {
    let phase = &shared.phase;
    let c = if legacy { Caller::legacy(&url, &key) } else { Caller::modern(&url, &key) };
    // An answer belongs to a phase only if the request began and ended in it
    // (one overlapping the restart is the restart's).
    let ask = |what: String, method: &str, params: Value, tasks: bool| {
        let before = phase.load(Ordering::SeqCst);
        let (status, text, msg) = c.request(method, params, tasks);
        let after = phase.load(Ordering::SeqCst);
        let phase = if before == after { before } else { PHASE_RESTART };
        shared.check(Answer { user, phase, what, status, text, msg: msg.clone() });
        msg
    };
    for round in 0..MAX_ROUNDS {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        for (method, _) in LISTS {
            ask(method.to_string(), method, json!({}), false);
        }
        for tool in ["gh__whoami", "gl__whoami", "plain__whoami", "gh__reflect_error", "gl__reflect_error", "gh__reflect_sse_error", "gl__reflect_sse_error"] {
            ask(format!("tools/call {tool}"), "tools/call", json!({"name": tool, "arguments": {}}), false);
        }
        // A task of its own: legacy on gh (2025-11-25 tasks), modern on gl (the extension).
        let (tool, params) = if legacy {
            ("gh__slow_task", json!({"name": "gh__slow_task", "arguments": {"ms": 0}, "task": {"ttl": 60000}}))
        } else {
            ("gl__slow_task", json!({"name": "gl__slow_task", "arguments": {"ms": 0}}))
        };
        let created = ask(format!("tools/call {tool} (task)"), "tools/call", params, true);
        let id = created.pointer("/result/task/taskId").or_else(|| created.pointer("/result/taskId")).and_then(Value::as_str).map(str::to_string);
        if let Some(id) = id {
            if legacy {
                ask("tasks/result".into(), "tasks/result", json!({"taskId": id}), true);
            } else {
                // Polled to a terminal status (bounded; a task left working is recorded as such).
                for _ in 0..100 {
                    let msg = ask("tasks/get".into(), "tasks/get", json!({"taskId": id}), true);
                    if !matches!(msg.pointer("/result/status").and_then(Value::as_str), Some("working" | "input_required")) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            shared.tasks.lock().unwrap().entry((user, legacy)).or_default().push(id);
        }
        // Another user's task of the same era: must be "not found".
        let foreign = {
            let tasks = shared.tasks.lock().unwrap();
            let others: Vec<&String> = tasks.iter().filter(|((u, l), _)| *u != user && *l == legacy).flat_map(|(_, ids)| ids).collect();
            (!others.is_empty()).then(|| others[round % others.len()].clone())
        };
        if let Some(id) = foreign {
            ask("tasks/get (foreign)".into(), "tasks/get", json!({"taskId": id}), true);
        }
        rounds.fetch_add(1, Ordering::SeqCst);
        // Paced, so a run of a few seconds stays a few thousand answers.
        std::thread::sleep(ROUND_PAUSE);
    }
}

/// Items of a list result (an empty vec if it is not one).
fn items<'a>(msg: &'a Value, field: &str) -> Vec<&'a Value> {
    msg.pointer(&format!("/result/{field}")).and_then(Value::as_array).map(|a| a.iter().collect()).unwrap_or_default()
}

/// Items (list answers) or answers (anything else) carrying one of `needles`.
fn count_in(a: &Answer, needles: &[String]) -> usize {
    let has = |s: &str| needles.iter().any(|n| s.contains(n.as_str()));
    if let Some((_, field)) = LISTS.iter().find(|(m, _)| *m == a.what) {
        let listed = items(&a.msg, field);
        let in_items = listed.iter().filter(|i| has(&i.to_string())).count();
        // Anything outside the items (an error text, a second event) counts once.
        if in_items > 0 || !has(&a.text) {
            return in_items;
        }
    }
    usize::from(has(&a.text))
}

/// What a complete list holds: the items of both reflecting servers that
/// carry the caller's marker (asked of the mocks directly), and at least
/// `plain`'s items (which carry none).
#[derive(Debug, Clone, Copy, Default)]
struct Expected {
    own: usize,
    plain: usize,
}

/// Asks a mock directly (no hub) for one list with a credential header:
/// (items carrying a marker, items without).
fn direct_count(mock: &Mock, era: Era, header: (&str, &str), method: &str, field: &str) -> (usize, usize) {
    let url = &mock.url;
    let post = |extra: &[(&str, &str)], body: &Value| {
        let mut h = vec![ACCEPT, JSON];
        if !header.0.is_empty() {
            h.push(header);
        }
        h.extend_from_slice(extra);
        hub_util::send("POST", url, &h, &body.to_string())
    };
    let msg = if era == Era::Modern {
        let params = json!({"_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "isolation", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {},
        }});
        post(&[("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", method)], &json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})).json()
    } else {
        let init = post(&[], &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}));
        let sid = init.header("mcp-session-id").expect("a mock session").to_string();
        post(&[("Mcp-Session-Id", &sid)], &json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": {}})).json()
    };
    let listed = items(&msg, field);
    assert!(!listed.is_empty(), "the mock's own {method} answered no {field}: {msg}");
    let marked = listed.iter().filter(|i| i.to_string().contains("who-")).count();
    (marked, listed.len() - marked)
}

/// Whether a good user's list answer is complete: every item of both
/// reflecting servers for their own credentials, and `plain`'s.
fn complete(a: &Answer, me: &User, expected: &BTreeMap<&str, Expected>) -> bool {
    let Some((_, field)) = LISTS.iter().find(|(m, _)| *m == a.what) else { return true };
    let e = expected[field];
    let listed = items(&a.msg, field);
    let mine = listed.iter().filter(|i| me.markers().iter().any(|m| i.to_string().contains(m.as_str()))).count();
    let unmarked = listed.iter().filter(|i| !i.to_string().contains("who-")).count();
    a.status == 200 && mine == e.own && unmarked >= e.plain
}

fn get(url: &str) -> String {
    hub_util::send("GET", url, &[], "").text
}

#[test]
fn users_never_see_each_others_items_and_no_credential_reaches_an_answer_a_log_or_an_endpoint() {
    let started = Instant::now();
    let reflect = |era, name: &str, header: &str| {
        let m = mock_restartable(MockConfig { era, name: name.into(), reflect_credential: Some(header.into()), ..MockConfig::default() });
        m.server.enable_tasks();
        m
    };
    let mut gh = reflect(Era::Legacy, "gh", "Authorization");
    let mut gl = reflect(Era::Modern, "gl", "PRIVATE-TOKEN");
    let plain = hub_util::mock(Era::Legacy, "plain");
    let users = users();
    let config = json!({
        "workers": 24,
        "listCacheTtlSecs": 1,
        // Every round keeps a task until its ttl: a slow run makes more than
        // the default 100 per user, and the cap is not what this test checks
        // (hub_task_owners does).
        "maxTasksPerUser": 5000,
        "toolNaming": "prefix",
        "timeouts": {"hubMs": 8000},
        "users": users.iter().map(|u| (u.name.to_string(), json!({
            "keys": [format!("sha256:{}", key_digest(&u.key))],
            "tokens": {"GITHUB_TOKEN": u.gh_token, "GITLAB_TOKEN": u.gl_token},
        }))).collect::<serde_json::Map<String, Value>>(),
        "mcpServers": {
            "gh": {"type": "streamable-http", "url": gh.url, "protocol": "legacy", "connectTimeoutMs": 500, "timeoutMs": 5000,
                   "headers": {"Authorization": "Bearer ${user.GITHUB_TOKEN}"}},
            "gl": {"type": "streamable-http", "url": gl.url, "protocol": "modern", "connectTimeoutMs": 500, "timeoutMs": 5000,
                   "headers": {"PRIVATE-TOKEN": "${user.GITLAB_TOKEN}"}},
            "plain": {"type": "streamable-http", "url": plain.url, "protocol": "legacy", "connectTimeoutMs": 500, "timeoutMs": 5000},
        },
    });
    let mut hub = HubProcess::start("isolation", &config);
    let base = format!("http://127.0.0.1:{}", hub.port);

    // What a complete list holds, asked of the mocks directly (alice's credentials).
    let mut expected = BTreeMap::new();
    for (method, field) in LISTS {
        let own = direct_count(&gh, Era::Legacy, ("Authorization", &users[0].gh_value()), method, field).0
            + direct_count(&gl, Era::Modern, ("PRIVATE-TOKEN", users[0].gl_token), method, field).0;
        expected.insert(field, Expected { own, plain: direct_count(&plain, Era::Legacy, ("", ""), method, field).1 });
    }
    assert!(expected.values().all(|e| e.own > 0 && e.plain > 0), "{expected:?}");
    // The direct asks above are not part of the run.
    let (gh_lists0, gl_lists0) = (gh.server.reflected_tool_lists(), gl.server.reflected_tool_lists());

    let shared = Arc::new(Shared { users: users.clone(), expected: expected.clone(), ..Shared::default() });
    let mut rounds = Vec::new();
    let mut threads = Vec::new();
    for (i, u) in users.iter().enumerate() {
        for legacy in [true, false] {
            let n = Arc::new(AtomicUsize::new(0));
            rounds.push((i, n.clone()));
            let (url, key, shared) = (format!("{base}/mcp"), u.key.clone(), shared.clone());
            threads.push(std::thread::spawn(move || client(i, legacy, url, key, n, shared)));
        }
    }
    let mut failures: Vec<String> = Vec::new();
    let mut endpoint_texts: Vec<(String, String)> = Vec::new();
    let min_rounds = || rounds.iter().map(|(_, n)| n.load(Ordering::SeqCst)).min().unwrap_or(0);
    let wait = |what: &str, failures: &mut Vec<String>, mut ready: Box<dyn FnMut() -> bool + '_>| {
        let deadline = Instant::now() + PHASE_WAIT;
        while !ready() {
            if Instant::now() > deadline {
                failures.push(format!("timed out after {PHASE_WAIT:?} waiting until {what}"));
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    // Phase A: every client did 3 rounds and a list cache expired (some
    // credential's tools/list reached each reflecting mock a second time).
    wait(
        "every client did 3 rounds and both list caches expired once",
        &mut failures,
        Box::new(|| {
            // Some credential's tools/list reached the mock twice during the run.
            let expired = |m: &Mock, before: &BTreeMap<String, u64>| {
                m.server.reflected_tool_lists().iter().any(|(who, n)| *n >= before.get(who).copied().unwrap_or(0) + 2)
            };
            min_rounds() >= 3 && expired(&gh, &gh_lists0) && expired(&gl, &gl_lists0)
        }),
    );
    // The bad user has failed by now: nothing of it in the open endpoints.
    eprintln!("isolation: tools/list answered by gh {:?} (before {gh_lists0:?}), by gl {:?} (before {gl_lists0:?})", gh.server.reflected_tool_lists(), gl.server.reflected_tool_lists());
    endpoint_texts.push(("/readyz (phase A)".into(), get(&format!("{base}/readyz"))));
    endpoint_texts.push(("/metrics (phase A)".into(), get(&format!("{base}/metrics"))));

    // Phase B: both upstreams restart on their ports while the clients go on.
    shared.phase.store(PHASE_RESTART, Ordering::SeqCst);
    gh.restart();
    gl.restart();
    let probes: Vec<(usize, Caller)> = users.iter().enumerate().filter(|(_, u)| !u.bad).map(|(i, u)| (i, Caller::modern(&format!("{base}/mcp"), &u.key))).collect();
    wait(
        "every good user's lists are complete again and calls on both upstreams answer after the restart",
        &mut failures,
        Box::new(|| {
            probes.iter().all(|(i, c)| {
                let lists = LISTS.iter().all(|(method, _)| {
                    let (status, text, msg) = c.request(method, json!({}), false);
                    let a = Answer { user: *i, phase: PHASE_RESTART, what: method.to_string(), status, text, msg };
                    let ok = complete(&a, &users[*i], &expected);
                    shared.check(a);
                    ok
                });
                lists
                    && ["gh__whoami", "gl__whoami"].iter().all(|tool| {
                        let (status, text, msg) = c.request("tools/call", json!({"name": tool, "arguments": {}}), false);
                        let ok = status == 200 && msg.get("result").is_some() && users[*i].markers().iter().any(|m| text.contains(m.as_str()));
                        shared.check(Answer { user: *i, phase: PHASE_RESTART, what: format!("tools/call {tool}"), status, text, msg });
                        ok
                    })
            })
        }),
    );
    endpoint_texts.push(("/readyz (after the restart)".into(), get(&format!("{base}/readyz"))));

    // Phase C: three more rounds by every client (the first may have begun before).
    let at_c = min_rounds();
    shared.phase.store(PHASE_C, Ordering::SeqCst);
    wait("every client did 3 rounds after the restart", &mut failures, Box::new(|| min_rounds() >= at_c + 3));
    shared.stop.store(true, Ordering::SeqCst);
    for t in threads {
        if let Err(e) = t.join() {
            failures.push(format!("a client thread panicked: {e:?}"));
        }
    }
    endpoint_texts.push(("/readyz (end)".into(), get(&format!("{base}/readyz"))));
    endpoint_texts.push(("/metrics (end)".into(), get(&format!("{base}/metrics"))));
    // The bad user's failure as the last thing the hub saw: then the open endpoints.
    let (bad, bad_user) = users.iter().enumerate().find(|(_, u)| u.bad).unwrap();
    let last = Caller::modern(&format!("{base}/mcp"), &bad_user.key);
    for tool in ["gh__whoami", "gl__whoami"] {
        let (status, text, msg) = last.request("tools/call", json!({"name": tool, "arguments": {}}), false);
        shared.check(Answer { user: bad, phase: PHASE_C, what: format!("tools/call {tool} (last)"), status, text, msg });
    }
    endpoint_texts.push(("/readyz (after the bad user's last failure)".into(), get(&format!("{base}/readyz"))));
    endpoint_texts.push(("/metrics (after the bad user's last failure)".into(), get(&format!("{base}/metrics"))));
    hub.terminate();
    let log = hub.log_text();

    // ---- the checks ----
    let secrets = shared.secrets();
    let t = std::mem::take(&mut *shared.tally.lock().unwrap());
    let Tally { foreign, injected, incomplete, good_failed, foreign_tasks, samples, .. } = &t;
    failures.extend(t.not_failing.iter().cloned());
    let log_lines: Vec<&str> = log.lines().filter(|l| secrets.iter().any(|s| l.contains(s.as_str()))).collect();
    let endpoints: Vec<&String> = endpoint_texts.iter().filter(|(_, t)| secrets.iter().any(|s| t.contains(s.as_str()))).map(|(w, _)| w).collect();
    let checked = t.answers + log.lines().count() + endpoint_texts.len();
    let bad_sample = &t.bad_sample;
    eprintln!(
        "isolation: answers checked {checked} ({} client answers, {} log lines, {} endpoint bodies), foreign items {foreign}",
        t.answers,
        log.lines().count(),
        endpoint_texts.len()
    );
    eprintln!(
        "isolation: injected values: {injected} in answers, {} in log lines, {} in endpoints; incomplete good lists {incomplete}; \
         good users' failed own calls {good_failed}; other users' tasks served {foreign_tasks}; rounds {:?}; {:.1} s",
        log_lines.len(),
        endpoints.len(),
        rounds.iter().map(|(_, n)| n.load(Ordering::SeqCst)).collect::<Vec<_>>(),
        started.elapsed().as_secs_f64()
    );
    eprintln!("isolation: the bad user's gh__whoami answer: {bad_sample:?}");
    let servers = serde_json::from_str::<Value>(&endpoint_texts[5].1).map(|r| r["servers"].to_string()).unwrap_or_default();
    eprintln!("isolation: /readyz servers at the end: {servers}");
    let mut check = |ok: bool, what: String| {
        if !ok {
            failures.push(what);
        }
    };
    check(*foreign == 0, format!("{foreign} items of another user seen: {:?}", samples.get("foreign")));
    check(*injected == 0, format!("{injected} answers carry an injected value: {:?}", samples.get("injected value in an answer")));
    check(log_lines.is_empty(), format!("{} log lines carry an injected value: {:?}", log_lines.len(), &log_lines[..log_lines.len().min(3)]));
    check(endpoints.is_empty(), format!("injected values in {endpoints:?}: {:?}", endpoint_texts.iter().filter(|(w, _)| endpoints.contains(&w)).map(|(_, t)| t.chars().take(600).collect::<String>()).collect::<Vec<_>>()));
    check(*incomplete == 0, format!("{incomplete} list answers of good users were incomplete (expected {expected:?}): {:?}", samples.get("incomplete list")));
    check(*good_failed == 0, format!("{good_failed} own calls of good users failed: {:?}", samples.get("a good user's own call failed")));
    check(*foreign_tasks == 0, format!("{foreign_tasks} tasks/get of another user's task were not -32602: {:?}", samples.get("another user's task was served")));
    check(t.foreign_probes > 0, "no foreign task probe was made".into());
    assert!(failures.is_empty(), "{} isolation failures:\n- {}", failures.len(), failures.join("\n- "));
}
