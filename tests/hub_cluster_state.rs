//! Per-instance state that works on every instance sharing one Redis
//! (issue 20, docs/cluster.md §4 and the tasks part): two hubs in process on
//! loopback, a redis-server of the test's own, `mcphub-mock` upstreams.
//!
//! - resumable call streams: a legacy call's stream cut on hub 1 is resumed
//!   from Redis by hub 2 (every later event and the final result once, in
//!   order); another session's or an unknown stream id is refused;
//! - tasks: upstream-run tasks of either era and hub-run tasks are answered
//!   (get, cancel, list, result) by the other instance for their owner only;
//!   a legacy hub-run task whose instance died turns failed within the bound.
//!
//! Legacy client sessions are shared through Redis, so hub 2 serves hub 1's
//! session over HTTP; the library-level checks on hub 2's state
//! (`Streams::remote`, `tasks::shared`) come first.

mod hub_util;
mod redis_util;

use hub_util::*;
use mcphub_mock::Era;
use redis_util::RedisServer;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The next event as (id, data as sent), the priming event (empty data) included.
fn next_event(r: &mut SseStream) -> Option<(Option<String>, String)> {
    r.next_raw_within(IO_TIMEOUT).map(|e| (e.id, e.data))
}

fn redis_extra(r: &RedisServer) -> Value {
    json!({"redis": {"url": r.url()}})
}

/// The progress values and the final message of a resumed stream's events.
fn progress_and_final(messages: &[Value]) -> (Vec<i64>, usize) {
    let progress = messages.iter().filter_map(|m| m.pointer("/params/progress").and_then(Value::as_i64)).collect();
    let finals = messages.iter().filter(|m| m.get("id") == Some(&json!(5))).count();
    (progress, finals)
}

#[test]
fn a_call_stream_cut_on_one_instance_is_resumed_from_redis_on_another() {
    let redis = RedisServer::start();
    let up = mock(Era::Legacy, "m");
    let h1 = hub(&[("m", &up.url)], redis_extra(&redis));
    let h2 = hub(&[("m", &up.url)], redis_extra(&redis));
    let sid = legacy_session(&h1.url);
    let call = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "progress", "arguments": {"steps": 6, "ms": 150}, "_meta": {"progressToken": "p"}}}).to_string();
    let mut r = SseStream::post(&h1.url, &[("Mcp-Session-Id", &sid), ("MCP-Protocol-Version", "2025-11-25")], &call);
    let (priming, _) = next_event(&mut r).expect("priming event");
    let priming = priming.expect("a priming id");
    let (first_id, first) = next_event(&mut r).expect("first progress");
    assert!(first.contains("notifications/progress"), "{first}");
    drop(r); // the connection breaks; the call goes on on hub 1
    let first_id = first_id.expect("an event id");
    let (stream, seq) = mcphub::hub::resume::parse_event_id(&first_id).expect("{stream}:{seq}");
    assert!(mcphub::hub::resume::is_stream_id(stream), "stream ids are 128 random bits: {stream}");
    let key = mcphub::hub::resume::redis_key(stream, &sid);
    assert!(!key.contains(&sid), "the session is in Redis only as a digest");

    // Hub 2 has the stream only in Redis: the rest, live, until the end.
    let mut remote = h2.hub.streams().remote(&sid, stream, seq).expect("hub 2 finds hub 1's stream in Redis");
    let mut messages = Vec::new();
    let mut ids = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        assert!(Instant::now() < deadline, "the resumed stream did not end: {messages:?}");
        let read = remote.read();
        for (s, data) in read.events {
            ids.push(remote.event_id(s));
            messages.push(serde_json::from_str::<Value>(&data).unwrap());
        }
        if read.ended {
            break;
        }
        assert!(!read.gone, "the key vanished mid-call");
    }
    let (progress, finals) = progress_and_final(&messages);
    assert_eq!(progress, vec![2, 3, 4, 5, 6], "every later progress event, once, in order");
    assert_eq!(finals, 1, "the final result exactly once: {messages:?}");
    assert_eq!(messages.last().map(|m| m["id"].clone()), Some(json!(5)), "the result comes last");
    assert!(text_of(messages.last().unwrap()).contains("6 steps"));
    assert!(ids.iter().all(|i| i.starts_with(stream)), "{ids:?}");
    // A resume from the priming event gets everything after it.
    let (_, zero) = mcphub::hub::resume::parse_event_id(&priming).unwrap();
    let mut from_start = h2.hub.streams().remote(&sid, stream, zero).expect("from the priming event");
    let all = from_start.read();
    assert_eq!(all.events.len(), 7, "6 progress events and the result: {all:?}");
    assert!(all.ended);

    // Another session, an unknown or forged stream id: not found.
    let other = legacy_session(&h2.url);
    assert!(h2.hub.streams().remote(&other, stream, seq).is_none(), "another session's stream");
    assert!(h2.hub.streams().remote(&sid, "s0123456789abcdef0123456789abcdef", 1).is_none(), "an unknown stream");
    assert!(h2.hub.streams().remote(&sid, "s1", 1).is_none(), "not a hub stream id");
    let refused = send("GET", &h2.url, &[("Accept", "text/event-stream"), ("Mcp-Session-Id", &other), ("Last-Event-ID", &first_id)], "");
    assert_eq!(refused.status, 404, "another session's stream: today's refusal: {}", refused.text);
    assert!(refused.text.contains("Unknown or expired Last-Event-ID"), "{}", refused.text);

    // Over HTTP on hub 2 with the owning session (shared through Redis).
    let knows = send("POST", &h2.url, &[ACCEPT, JSON, ("Mcp-Session-Id", &sid), ("MCP-Protocol-Version", "2025-06-18")], r#"{"jsonrpc":"2.0","id":9,"method":"ping"}"#);
    assert_eq!(knows.status, 200, "hub 2 serves hub 1's legacy session: {}", knows.text);
    let mut g = SseStream::get(&h2.url, &[("Mcp-Session-Id", &sid), ("Last-Event-ID", &first_id)]);
    let mut over_http = Vec::new();
    while let Some((_, data)) = next_event(&mut g) {
        over_http.push(serde_json::from_str::<Value>(&data).unwrap());
    }
    assert_eq!(progress_and_final(&over_http), (vec![2, 3, 4, 5, 6], 1), "{over_http:?}");
}

#[test]
fn a_resume_on_the_same_instance_still_reads_its_memory_and_memory_only_hubs_are_unchanged() {
    let up = mock(Era::Legacy, "m");
    let h = hub(&[("m", &up.url)], json!({}));
    let sid = legacy_session(&h.url);
    let r = legacy(&h.url, &sid, "tools/call", json!({"name": "progress", "arguments": {"steps": 2, "ms": 1}, "_meta": {"progressToken": 1}}));
    let first_id = r.text.lines().find_map(|l| l.strip_prefix("id: ")).expect("event ids").to_string();
    let (stream, seq) = mcphub::hub::resume::parse_event_id(&first_id).unwrap();
    assert!(h.hub.streams().remote(&sid, stream, seq).is_none(), "no Redis: nothing remote");
    let again = send("GET", &h.url, &[("Accept", "text/event-stream"), ("Mcp-Session-Id", &sid), ("Last-Event-ID", &first_id)], "");
    assert_eq!(again.status, 200);
}

/// The added cost of the Redis copy per event (figures printed, nothing
/// asserted on time): `StreamLog::push` with and without Redis.
#[test]
fn figures_the_redis_cost_per_event() {
    let redis = RedisServer::start();
    let cfg = mcphub::config::RedisConfig::new(redis.url());
    let store = mcphub::store::redis::RedisStore::new(&cfg).unwrap();
    let data = json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": "p", "progress": 1, "total": 100}}).to_string();
    let n = 2000;
    let time = |streams: &mcphub::hub::resume::Streams| {
        let log = streams.open("session");
        let t = Instant::now();
        for _ in 0..n {
            log.push(data.clone());
        }
        log.end();
        t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
    };
    let memory = time(&mcphub::hub::resume::Streams::default());
    let with_redis = time(&mcphub::hub::resume::Streams::new(Some((store.clone(), cfg.clone()))));
    let open = {
        let streams = mcphub::hub::resume::Streams::new(Some((store, cfg)));
        let t = Instant::now();
        for _ in 0..200 {
            streams.open("session");
        }
        t.elapsed().as_secs_f64() * 1e6 / 200.0
    };
    eprintln!("resume log, {n} events of {} bytes: memory {memory:.1} µs/event, with Redis {with_redis:.1} µs/event (+{:.1} µs: one round trip, XADD+PEXPIRE pipelined); open with Redis {open:.1} µs/stream", data.len(), with_redis - memory);
    let len = redis.cli(&["XLEN", &mcphub::hub::resume::redis_key("x", "y")]);
    assert_eq!(len, "0");
}

// ---- tasks across instances ----

use mcphub::hub::tasks::{shared, Owner};
use mcphub::users::{key_digest, new_key};

const EXT: &str = "io.modelcontextprotocol/tasks";
/// A well-formed hub task id that no hub ever minted.
const NEVER: &str = "mcphub-t00000000000000000000000000000000";

/// Users alice and bob, upstreams `lm` (legacy, tasks), `mm` (modern,
/// tasks) and `jobs` (legacy, `sleep` a heavy tool: hub-run tasks), Redis.
fn task_config(lm: &str, mm: &str, jobs: &str, alice: &str, bob: &str, redis: &RedisServer) -> Value {
    let user = |key: &str| json!({"keys": [format!("sha256:{}", key_digest(key))]});
    json!({
        "toolNaming": "prefix",
        "timeouts": {"hubMs": 28000, "clientMs": 30000},
        "users": {"alice": user(alice), "bob": user(bob)},
        "mcpServers": {
            "lm": {"url": lm, "protocol": "legacy", "timeoutMs": 7000},
            "mm": {"url": mm, "protocol": "modern", "timeoutMs": 7000},
            "jobs": {"url": jobs, "protocol": "legacy", "timeoutMs": 27000, "heavyTools": ["sleep"]},
        },
        "redis": {"url": redis.url()},
    })
}

fn task_mock(era: Era, name: &str, tasks: bool) -> Mock {
    let m = mock_with(mcphub_mock::MockConfig { era, name: name.into(), ..mcphub_mock::MockConfig::default() });
    if tasks {
        m.server.enable_tasks();
    }
    m
}

/// A 2026-07-28 request with `key`, declaring the tasks extension.
fn modern_with(url: &str, key: &str, method: &str, mut params: Value) -> Reply {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {"extensions": {EXT: {}}},
    });
    let field = mcphub::protocol::headers::name_field(method);
    let name = field.and_then(|f| params.get(f)).and_then(Value::as_str).map(mcphub::protocol::headers::encode_value);
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}).to_string();
    let auth = format!("Bearer {key}");
    let mut h = vec![ACCEPT, JSON, ("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", method), ("Authorization", auth.as_str())];
    let name_owned;
    if let Some(n) = name {
        name_owned = n;
        h.push(("Mcp-Name", name_owned.as_str()));
    }
    send("POST", url, &h, &body)
}

/// A 2025-11-25 client session of the user with `key` (or anonymous) on `url`.
struct LegacyClient {
    url: String,
    auth: Option<String>,
    sid: String,
}

impl LegacyClient {
    fn open(url: &str, key: Option<&str>) -> LegacyClient {
        let auth = key.map(|k| format!("Bearer {k}"));
        let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"test","version":"1"}}}"#;
        let mut h = vec![ACCEPT, JSON];
        if let Some(a) = &auth {
            h.push(("Authorization", a.as_str()));
        }
        let r = send("POST", url, &h, init);
        assert_eq!(r.status, 200, "{}", r.text);
        let sid = r.header("mcp-session-id").expect("a session id").to_string();
        let c = LegacyClient { url: url.to_string(), auth, sid };
        assert_eq!(c.post(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).status, 202);
        c
    }

    /// The same session, asked through another instance.
    fn via(&self, url: &str) -> LegacyClient {
        LegacyClient { url: url.to_string(), auth: self.auth.clone(), sid: self.sid.clone() }
    }

    fn post(&self, body: &str) -> Reply {
        let mut h = vec![ACCEPT, JSON, ("Mcp-Session-Id", self.sid.as_str()), ("MCP-Protocol-Version", "2025-11-25")];
        if let Some(a) = &self.auth {
            h.push(("Authorization", a.as_str()));
        }
        send("POST", &self.url, &h, body)
    }

    fn call(&self, method: &str, params: Value) -> Reply {
        self.post(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string())
    }

    /// Whether this instance knows the session (legacy sessions are shared through Redis).
    fn known(&self) -> bool {
        let r = self.call("ping", json!({}));
        assert!(r.status == 200 || r.status == 404, "{} {}", r.status, r.text);
        r.status == 200
    }
}

fn task_id_of(created: &Value) -> String {
    let id = created.pointer("/result/task/taskId").or(created.pointer("/result/taskId"));
    id.and_then(Value::as_str).unwrap_or_else(|| panic!("no CreateTaskResult: {created}")).to_string()
}

fn same_as_unknown(what: &str, theirs: &Reply, never: &Reply) {
    assert_eq!(theirs.status, never.status, "{what}: {}", theirs.text);
    assert_eq!(theirs.text, never.text, "{what}: another user's task must look exactly like an unknown one");
    assert_eq!(theirs.json()["error"]["code"], -32602, "{what}: {}", theirs.text);
}

#[test]
fn an_upstream_run_task_created_through_one_instance_is_its_owners_on_the_other() {
    let redis = RedisServer::start();
    let (lm, mm, jobs) = (task_mock(Era::Legacy, "lm", true), task_mock(Era::Modern, "mm", true), task_mock(Era::Legacy, "jobs", false));
    let (alice, bob) = (new_key(), new_key());
    let cfg = task_config(&lm.url, &mm.url, &jobs.url, &alice, &bob, &redis);
    let (h1, h2) = (hub(&[], cfg.clone()), hub(&[], cfg));

    // Modern, upstream-run: created on hub 1, answered and cancelled on hub 2.
    let id = task_id_of(&modern_with(&h1.url, &bob, "tools/call", json!({"name": "mm__slow_task", "arguments": {"ms": 20000}})).json());
    let got = modern_with(&h2.url, &bob, "tasks/get", json!({"taskId": id})).json();
    assert_eq!((got["result"]["taskId"].as_str(), got["result"]["status"].as_str()), (Some(id.as_str()), Some("working")), "{got}");
    for method in ["tasks/get", "tasks/update", "tasks/cancel"] {
        let theirs = modern_with(&h2.url, &alice, method, json!({"taskId": id}));
        let never = modern_with(&h2.url, &alice, method, json!({"taskId": NEVER}));
        same_as_unknown(&format!("alice's {method} on hub 2"), &theirs, &never);
    }
    let still = modern_with(&h1.url, &bob, "tasks/get", json!({"taskId": id})).json();
    assert_eq!(still["result"]["status"], "working", "alice's cancel did not reach it: {still}");
    let cancelled = modern_with(&h2.url, &bob, "tasks/cancel", json!({"taskId": id})).json();
    assert!(cancelled["result"].is_object(), "{cancelled}");
    let after = modern_with(&h1.url, &bob, "tasks/get", json!({"taskId": id})).json();
    assert_eq!(after["result"]["status"], "cancelled", "bob's cancel through hub 2 reached the upstream: {after}");

    // Legacy, upstream-run: the entry names the session only by its digest.
    let client = LegacyClient::open(&h1.url, Some(&bob));
    let created = client.call("tools/call", json!({"name": "lm__slow_task", "arguments": {"ms": 20000}, "task": {"ttl": 60000}})).json();
    let id = task_id_of(&created);
    let entry = redis.cli(&["GET", &format!("{}{id}", shared::ENTRY_PREFIX)]);
    assert!(entry.contains(&shared::digest(&client.sid)) && !entry.contains(&client.sid), "session digest only: {entry}");
    let owner = Owner { user: Some("bob".into()), session: Some(client.sid.clone()) };
    let (server, upstream_id) = h2.hub.tasks().find(&id, &owner).expect("hub 2 finds hub 1's task for its owner");
    assert_eq!(server, "lm");
    assert!(h2.hub.tasks().find(&id, &Owner { user: Some("alice".into()), ..owner.clone() }).is_none(), "another user");
    assert!(h2.hub.tasks().find(&id, &Owner { session: Some("another".into()), ..owner.clone() }).is_none(), "another session");
    assert!(h2.hub.tasks().find(&id, &Owner { session: None, ..owner.clone() }).is_none(), "a modern client of the same user");
    assert_eq!(h2.hub.tasks().hub_ids_for("lm", &[upstream_id.clone(), "task-999".into()], &owner), vec![Some(id.clone()), None], "tasks/list's lookup");
    assert_eq!(h2.hub.tasks().hub_ids_for("lm", std::slice::from_ref(&upstream_id), &Owner { user: Some("alice".into()), ..owner.clone() }), vec![None]);
    assert_eq!(h2.hub.tasks().hub_id_of_session("lm", &upstream_id, &client.sid), Some(id.clone()), "status routing's lookup");
    assert_eq!(h2.hub.tasks().hub_id_of_session("lm", &upstream_id, "another"), None);
    // Over HTTP on hub 2 (the legacy session is shared through Redis).
    let there = client.via(&h2.url);
    assert!(there.known(), "hub 2 serves hub 1's legacy session");
    let got = there.call("tasks/get", json!({"taskId": id})).json();
    assert_eq!(got["result"]["taskId"], json!(id), "{got}");
    let listed = there.call("tasks/list", json!({})).json();
    assert!(listed.to_string().contains(&id), "{listed}");
    assert!(there.call("tasks/cancel", json!({"taskId": id})).json()["result"].is_object());
}

#[test]
fn a_legacy_hub_run_task_is_answered_elsewhere_and_turns_failed_when_its_instance_dies() {
    let redis = RedisServer::start();
    let (lm, mm, jobs) = (task_mock(Era::Legacy, "lm", true), task_mock(Era::Modern, "mm", true), task_mock(Era::Legacy, "jobs", false));
    let (alice, bob) = (new_key(), new_key());
    let cfg = task_config(&lm.url, &mm.url, &jobs.url, &alice, &bob, &redis);
    let mut h1 = HubProcess::start("cluster-state-h1", &cfg);
    let h2 = hub(&[], cfg);

    // A finished legacy hub-run task: its outcome is in the record.
    let client = LegacyClient::open(&h1.url(), Some(&bob));
    let quick = task_id_of(&client.call("tools/call", json!({"name": "jobs__sleep", "arguments": {"ms": 10}, "task": {"ttl": 60000}})).json());
    let done = wait_until("the quick task to end in its record", Duration::from_secs(10), || {
        shared::stored(h2.hub.redis().unwrap(), &quick).filter(|s| s.task["status"] != "working")
    });
    assert_eq!(done.task["status"], "completed", "{done:?}");
    assert_eq!(done.outcome.as_ref().and_then(|o| o.pointer("/result/content/0/text")), Some(&json!("jobs: slept 10 ms")), "{done:?}");
    assert_eq!(done.session, Some(shared::digest(&client.sid)));

    // A long one: working while hub 1 lives (its heartbeat outlasts BEAT_TTL) …
    let id = task_id_of(&client.call("tools/call", json!({"name": "jobs__sleep", "arguments": {"ms": 60000}, "task": {"ttl": 120000}})).json());
    let redis2 = h2.hub.redis().unwrap();
    let started = Instant::now();
    wait_until("the running task's record", Duration::from_secs(5), || shared::stored(redis2, &id));
    // tasks/list's view from any instance: the owner's hub-run tasks, nobody else's.
    let owner = Owner { user: Some("bob".into()), session: Some(client.sid.clone()) };
    let mut listed: Vec<String> = shared::legacy_tasks(redis2, &owner).into_iter().map(|(i, _)| i).collect();
    listed.sort();
    let mut expected = vec![quick.clone(), id.clone()];
    expected.sort();
    assert_eq!(listed, expected);
    assert!(shared::legacy_tasks(redis2, &Owner { user: Some("alice".into()), ..owner.clone() }).is_empty(), "another user");
    assert!(shared::legacy_tasks(redis2, &Owner { session: Some("another".into()), ..owner.clone() }).is_empty(), "another session");
    std::thread::sleep(shared::BEAT_TTL + Duration::from_secs(1)); // a span to observe, not a synchronisation
    let alive = shared::stored(redis2, &id).expect("the record");
    assert_eq!(alive.task["status"], "working", "the heartbeat keeps a live run working past BEAT_TTL: {alive:?}");
    let there = client.via(&h2.url);
    assert!(there.known(), "hub 2 serves hub 1's legacy session");
    assert_eq!(there.call("tasks/get", json!({"taskId": id})).json()["result"]["status"], "working");
    // … then hub 1 is killed: within BEAT_TTL the record reads failed everywhere.
    h1.kill();
    let killed = Instant::now();
    let failed = wait_until("the dead instance's task to read failed", shared::BEAT_TTL + Duration::from_secs(5), || {
        shared::stored(redis2, &id).filter(|s| s.task["status"] == "failed")
    });
    eprintln!("task read failed {:.1} s after its instance was killed (bound {:?}); it had run {:.1} s", killed.elapsed().as_secs_f64(), shared::BEAT_TTL, started.elapsed().as_secs_f64());
    assert_eq!(failed.task["statusMessage"], shared::ORPHANED);
    assert!(failed.outcome.unwrap()["error"]["message"].as_str().unwrap().contains("stopped"));
    if there.known() {
        let r = there.call("tasks/result", json!({"taskId": id})).json();
        assert!(r["error"]["message"].as_str().is_some_and(|m| m.contains("stopped")), "{r}");
    }
}
