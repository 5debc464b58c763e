//! `"type": "sse"` servers (the 2024-11-05 HTTP+SSE transport, issue 19)
//! through a hub on real sockets, against a minimal HTTP+SSE MCP server
//! written here: `GET /sse` sends `event: endpoint` then every answer as
//! `event: message`; `POST /message?sessionId=S` answers 202 and puts its
//! JSON-RPC answer on S's stream.

mod hub_util;

use crossbeam_channel::{Receiver, Sender};
use hub_util::{wait_until, Client, PATIENCE};
use mcphub::config::Config;
use mcphub::http::{Request, Response, Server, ServerConfig, ServerHandle, SseEvent};
use mcphub::hub::Hub;
use mcphub::users::{key_digest, new_key};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a stream is told: a message to send, or to end.
enum Say {
    Message(Value),
    End,
}

/// One request as the server saw it: (method and path, `X-Static`, `Host`).
type Seen = (String, Option<String>, Option<String>);

#[derive(Default)]
struct Shared {
    /// Open streams by session id.
    streams: Mutex<HashMap<String, Sender<Say>>>,
    /// Streams of forgotten sessions, kept open.
    forgotten: Mutex<Vec<Sender<Say>>>,
    /// GETs of the SSE URL so far.
    gets: AtomicUsize,
    /// Methods POSTed, in order (tools/call as `tools/call:<name>`).
    posted: Mutex<Vec<String>>,
    /// Header fields of every request: (method path, `X-Static`, `Host`).
    seen: Mutex<Vec<Seen>>,
    /// `Authorization` of every request.
    auth: Mutex<Vec<Option<String>>>,
    /// The only `Authorization` a GET may carry (else 401), when set.
    require: Mutex<Option<String>>,
    /// The endpoint event's data, `{sid}` replaced (default `/message?sessionId={sid}`).
    endpoint: Mutex<Option<String>>,
}

/// A minimal 2024-11-05 HTTP+SSE MCP server; stopped on drop.
struct SseServer {
    shared: Arc<Shared>,
    handle: ServerHandle,
    url: String,
}

impl Drop for SseServer {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

impl SseServer {
    fn start() -> SseServer {
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let handle = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default(), Arc::new(move |req: Request| handle(&s, req))).expect("bind");
        let url = format!("http://{}/sse", handle.local_addr());
        SseServer { shared, handle, url }
    }

    fn gets(&self) -> usize {
        self.shared.gets.load(Ordering::SeqCst)
    }

    fn posted(&self) -> Vec<String> {
        self.shared.posted.lock().unwrap().clone()
    }
}

fn handle(shared: &Arc<Shared>, req: Request) -> Response {
    shared.seen.lock().unwrap().push((format!("{} {}", req.method, req.path()), req.header("x-static").map(str::to_string), req.header("host").map(str::to_string)));
    shared.auth.lock().unwrap().push(req.header("authorization").map(str::to_string));
    let required = shared.require.lock().unwrap().clone();
    match (req.method.as_str(), req.path()) {
        ("GET", "/sse") if required.is_some() && req.header("authorization") != required.as_deref() => Response::text(401, "bad token"),
        ("GET", "/sse") => open_stream(shared),
        ("POST", "/message") => {
            let sid = req.query("sessionId").unwrap_or_default();
            let Some(tx) = shared.streams.lock().unwrap().get(&sid).cloned() else { return Response::text(404, "Could not find session") };
            let Ok(msg) = serde_json::from_slice::<Value>(&req.body) else { return Response::text(400, "Invalid JSON") };
            let method = msg.get("method").and_then(Value::as_str).unwrap_or("(response)").to_string();
            let tool = msg.pointer("/params/name").and_then(Value::as_str).unwrap_or_default().to_string();
            shared.posted.lock().unwrap().push(if method == "tools/call" { format!("{method}:{tool}") } else { method.clone() });
            if let (Some(id), false) = (msg.get("id"), method == "(response)") {
                let result = match (method.as_str(), tool.as_str()) {
                    ("initialize", _) => json!({"protocolVersion": "2024-11-05", "capabilities": {"tools": {}}, "serverInfo": {"name": "old-sse", "version": "1"}}),
                    ("tools/list", _) => json!({"tools": [
                        {"name": "echo", "description": "says it back", "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}},
                        {"name": "hang", "description": "never answers", "inputSchema": {"type": "object"}},
                        {"name": "drop_stream", "description": "ends the event stream", "inputSchema": {"type": "object"}},
                        {"name": "forget", "description": "forgets the session, stream left open", "inputSchema": {"type": "object"}}
                    ]}),
                    ("tools/call", "echo") => {
                        let text = msg.pointer("/params/arguments/text").and_then(Value::as_str).unwrap_or("echo");
                        json!({"content": [{"type": "text", "text": text}]})
                    }
                    ("tools/call", "hang") => return Response::text(202, "Accepted"),
                    ("tools/call", "drop_stream") => {
                        let _ = tx.send(Say::End);
                        return Response::text(202, "Accepted");
                    }
                    ("tools/call", "forget") => {
                        if let Some(tx) = shared.streams.lock().unwrap().remove(&sid) {
                            shared.forgotten.lock().unwrap().push(tx);
                        }
                        return Response::text(202, "Accepted");
                    }
                    ("ping", _) => json!({}),
                    _ => {
                        let _ = tx.send(Say::Message(json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "Method not found"}})));
                        return Response::text(202, "Accepted");
                    }
                };
                let _ = tx.send(Say::Message(json!({"jsonrpc": "2.0", "id": id, "result": result})));
            }
            Response::text(202, "Accepted")
        }
        _ => Response::text(404, "not found"),
    }
}

fn open_stream(shared: &Arc<Shared>) -> Response {
    let n = shared.gets.fetch_add(1, Ordering::SeqCst) + 1;
    let sid = format!("s{n}");
    let (tx, rx): (Sender<Say>, Receiver<Say>) = crossbeam_channel::unbounded();
    shared.streams.lock().unwrap().insert(sid.clone(), tx);
    let endpoint = shared.endpoint.lock().unwrap().clone().unwrap_or_else(|| "/message?sessionId={sid}".into()).replace("{sid}", &sid);
    let shared = shared.clone();
    Response::sse(move |sink| {
        if sink.send(&SseEvent { event: Some("endpoint"), data: &endpoint, ..Default::default() }).is_ok() {
            loop {
                match rx.recv_timeout(Duration::from_millis(50)) {
                    Ok(Say::Message(m)) => {
                        if sink.send(&SseEvent { event: Some("message"), data: &m.to_string(), ..Default::default() }).is_err() {
                            break;
                        }
                    }
                    Ok(Say::End) | Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) if sink.is_gone() => break,
                    Err(_) => {}
                }
            }
        }
        shared.streams.lock().unwrap().remove(&sid);
    })
}

/// A running hub serving `servers` (the `mcpServers` map); stopped on drop.
struct TestHub {
    _hub: Hub,
    handle: ServerHandle,
    url: String,
}

impl Drop for TestHub {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

fn hub(servers: Value) -> TestHub {
    hub_with(servers, json!({}))
}

fn hub_with(servers: Value, users: Value) -> TestHub {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let state = std::env::temp_dir().join(format!("mcphub-test-sse-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)));
    let _ = std::fs::remove_dir_all(&state);
    let mut cfg = json!({"mcpServers": servers, "timeouts": {"hubMs": 8000}, "stateDir": state});
    if users != json!({}) {
        cfg["users"] = users;
    }
    let config = Config::parse(&cfg.to_string()).expect("valid test config");
    let http = config.http_server();
    let hub = Hub::new(config).expect("hub");
    let handle = Server::bind("127.0.0.1:0".parse().unwrap(), http, Arc::new(hub.clone())).expect("bind hub");
    let url = format!("http://{}/mcp", handle.local_addr());
    TestHub { _hub: hub, handle, url }
}

fn old(server: &SseServer) -> Value {
    json!({"old": {"type": "sse", "url": server.url, "headers": {"X-Static": "configured"}, "timeoutMs": 5000, "connectTimeoutMs": 500}})
}

fn echo(c: &Client, text: &str) -> Result<String, String> {
    c.request("tools/call", json!({"name": "echo", "arguments": {"text": text}})).and_then(|m| hub_util::tool_text(&m))
}

fn tool_names(c: &Client) -> Vec<String> {
    let msg = c.request("tools/list", json!({})).expect("tools/list");
    msg["result"]["tools"].as_array().expect("tools").iter().map(|t| t["name"].as_str().unwrap_or_default().to_string()).collect()
}

#[test]
fn clients_sharing_a_context_list_and_call_through_one_event_stream() {
    let server = SseServer::start();
    let h = hub(old(&server));
    let (a, b) = (Client::connect(&h.url), Client::connect(&h.url));
    for c in [&a, &b] {
        let mut names = tool_names(c);
        names.sort();
        assert_eq!(names, ["drop_stream", "echo", "forget", "hang"]);
    }
    assert_eq!(echo(&a, "from-a").unwrap(), "from-a");
    assert_eq!(echo(&b, "from-b").unwrap(), "from-b");
    // Concurrent calls on the one stream each get their own answer.
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let url = h.url.clone();
            std::thread::spawn(move || {
                let c = Client::connect(&url);
                echo(&c, &format!("n{i}"))
            })
        })
        .collect();
    for (i, t) in threads.into_iter().enumerate() {
        assert_eq!(t.join().unwrap().unwrap(), format!("n{i}"));
    }
    assert_eq!(server.gets(), 1, "one stream for the shared context");
    let posted = server.posted();
    assert_eq!(posted[..2], ["initialize", "notifications/initialized"], "{posted:?}");
    // The configured header goes with the GET and every POST; Host names the server's own address.
    let seen = server.shared.seen.lock().unwrap().clone();
    let host = server.url.trim_start_matches("http://").trim_end_matches("/sse").to_string();
    assert!(seen.iter().all(|(_, x, h)| x.as_deref() == Some("configured") && h.as_deref() == Some(host.as_str())), "{seen:?}");
    assert!(seen.iter().any(|(what, _, _)| what == "GET /sse"));
}

#[test]
fn a_stream_that_ends_fails_the_calls_in_flight_and_the_next_call_opens_a_new_one() {
    let server = SseServer::start();
    let h = hub(old(&server));
    let c = Client::connect(&h.url);
    assert_eq!(echo(&c, "before").unwrap(), "before");
    assert_eq!(server.gets(), 1);
    let url = h.url.clone();
    let hanging = std::thread::spawn(move || Client::connect(&url).request("tools/call", json!({"name": "hang", "arguments": {}})));
    wait_until("the server to get the hanging call", PATIENCE, || server.posted().iter().any(|m| m == "tools/call:hang"));
    let started = std::time::Instant::now();
    let dropped = c.request("tools/call", json!({"name": "drop_stream", "arguments": {}}));
    let hung = hanging.join().unwrap();
    for (what, outcome) in [("drop_stream", dropped), ("hang", hung)] {
        let msg = outcome.unwrap_or_else(|e| panic!("{what}: {e}")).to_string();
        assert!(msg.contains("'old'") && msg.contains("event stream ended"), "{what}: {msg}");
    }
    assert!(started.elapsed() < Duration::from_secs(4), "failed at once, not at the call timeout: {:?}", started.elapsed());
    // The next call heals: a new stream (after the reconnect back-off).
    assert_eq!(echo(&c, "after").unwrap(), "after");
    assert_eq!(server.gets(), 2);
}

#[test]
fn a_session_the_server_forgot_is_opened_again() {
    let server = SseServer::start();
    let h = hub(old(&server));
    let c = Client::connect(&h.url);
    assert_eq!(echo(&c, "one").unwrap(), "one");
    // The server forgets the session but keeps the stream open: the forget call
    // itself is never answered (its stream is cut when the next POST gets 404).
    let url = h.url.clone();
    let forgetting = std::thread::spawn(move || Client::connect(&url).request("tools/call", json!({"name": "forget", "arguments": {}})));
    wait_until("the server to forget the session", PATIENCE, || server.shared.streams.lock().unwrap().is_empty());
    assert_eq!(echo(&c, "two").unwrap(), "two");
    assert_eq!(server.gets(), 2);
    let msg = forgetting.join().unwrap().unwrap().to_string();
    assert!(msg.contains("no longer knows the session"), "{msg}");
}

#[test]
fn an_endpoint_on_another_origin_is_refused() {
    let server = SseServer::start();
    // Same host, another port: the hub must not POST the server's headers there.
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    *server.shared.endpoint.lock().unwrap() = Some(format!("http://{}/message?sessionId={{sid}}", other.local_addr().unwrap()));
    let h = hub(old(&server));
    let c = Client::connect(&h.url);
    // The server is left out of the list, and /readyz says why.
    assert!(tool_names(&c).is_empty());
    let ready = hub_util::send("GET", &h.url.replace("/mcp", "/readyz"), &[], "").json();
    let old = &ready["servers"]["old"];
    assert_eq!(old["ok"], false, "{ready}");
    assert!(old["lastError"].as_str().is_some_and(|e| e.contains("not the SSE URL's origin")), "{ready}");
    assert!(server.posted().is_empty(), "{:?}", server.posted());
    other.set_nonblocking(true).unwrap();
    assert!(other.accept().is_err(), "nothing connected to the other origin");
}

#[test]
fn the_callers_credentials_go_with_the_stream_and_a_refused_one_is_named() {
    let server = SseServer::start();
    *server.shared.require.lock().unwrap() = Some("Bearer good-token-123".into());
    let (alice, bob) = (new_key(), new_key());
    let users = json!({
        "alice": {"keys": [key_digest(&alice)], "tokens": {"OLD": "good-token-123"}},
        "bob": {"keys": [key_digest(&bob)], "tokens": {"OLD": "bad-token-456"}},
    });
    let servers = json!({"old": {"type": "sse", "url": server.url, "headers": {"Authorization": "Bearer ${user.OLD}"}, "timeoutMs": 5000}});
    let h = hub_with(servers, users);
    let a = Client::connect_as(&h.url, Some(&alice));
    assert_eq!(echo(&a, "mine").unwrap(), "mine");
    // The GET and every POST carried alice's credential.
    let auth = server.shared.auth.lock().unwrap().clone();
    assert!(auth.len() >= 3 && auth.iter().all(|v| v.as_deref() == Some("Bearer good-token-123")), "{auth:?}");
    let b = Client::connect_as(&h.url, Some(&bob));
    let e = b.request("tools/call", json!({"name": "echo", "arguments": {"text": "x"}})).map(|m| m.to_string()).unwrap_or_else(|e| e);
    assert!(e.contains("rejected your OLD (HTTP 401)") && !e.contains("bad-token"), "{e}");
    // bob's context got a GET of its own, refused: only alice's stream opened.
    assert!(server.shared.auth.lock().unwrap().contains(&Some("Bearer bad-token-456".into())));
    assert_eq!(server.gets(), 1);
}
