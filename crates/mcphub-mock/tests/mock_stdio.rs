//! `mcphub-mock --stdio`: the built binary spoken to over its stdin/stdout,
//! one JSON-RPC message per line (MCP stdio transport).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Bound of every wait for a line or an exit.
const WAIT: Duration = Duration::from_secs(20);

/// A running `mcphub-mock --stdio`: killed and reaped when dropped.
struct Mock {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Mock {
    fn start(env: &[(&str, &str)]) -> Mock {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcphub-mock"));
        cmd.args(["--stdio", "--name", "stdiomock"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn mcphub-mock --stdio");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Mock { child, stdin, lines }
    }

    fn send(&mut self, msg: &Value) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{msg}").expect("write to the mock's stdin");
        stdin.flush().expect("flush");
    }

    /// The next line, parsed; fails after [`WAIT`].
    fn next(&self, what: &str) -> Value {
        let line = self.lines.recv_timeout(WAIT).unwrap_or_else(|e| panic!("no line from the mock within {WAIT:?} while waiting for {what}: {e}"));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not one JSON message per line ({e}): {line}"))
    }

    /// Lines up to the response with `id`: (the messages before it, the response).
    fn until(&self, id: &Value) -> (Vec<Value>, Value) {
        let mut before = Vec::new();
        loop {
            let msg = self.next(&format!("the response to {id}"));
            if msg.get("id") == Some(id) && msg.get("method").is_none() {
                return (before, msg);
            }
            before.push(msg);
        }
    }

    fn call(&mut self, id: u64, name: &str, args: Value) -> Value {
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": args}}));
        self.until(&json!(id)).1
    }

    fn initialize(&mut self, capabilities: Value) -> Value {
        self.send(&json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": capabilities, "clientInfo": {"name": "test", "version": "1"}}}));
        let answer = self.until(&json!(0)).1;
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        answer
    }

    /// Waits (bounded) for the process to exit.
    fn exit_status(&mut self) -> ExitStatus {
        let end = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < end, "the mock did not exit within {WAIT:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn text(answer: &Value) -> &str {
    answer.pointer("/result/content/0/text").and_then(Value::as_str).unwrap_or_else(|| panic!("no text result: {answer}"))
}

#[test]
fn stdio_mode_answers_lists_tools_env_pid_progress_and_exits_0_on_stdin_eof() {
    let mut m = Mock::start(&[("MOCK_STDIO_VALUE", "hello stdio")]);
    let init = m.initialize(json!({}));
    assert_eq!(init["result"]["protocolVersion"], "2025-11-25", "{init}");
    assert_eq!(init["result"]["serverInfo"]["name"], "stdiomock");

    m.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
    let list = m.until(&json!(1)).1;
    let names: Vec<&str> = list["result"]["tools"].as_array().expect("tools").iter().filter_map(|t| t["name"].as_str()).collect();
    for t in mcphub_mock::TOOL_NAMES.iter().chain(mcphub_mock::stdio::STDIO_TOOL_NAMES.iter()) {
        assert!(names.contains(t), "tools/list lacks {t}: {names:?}");
    }

    assert_eq!(text(&m.call(2, "echo", json!({"text": "hi"}))), "stdiomock: hi");
    assert_eq!(text(&m.call(3, "env", json!({"name": "MOCK_STDIO_VALUE"}))), "hello stdio");
    assert_eq!(text(&m.call(4, "env", json!({"name": "MOCK_STDIO_UNSET_X"}))), "(unset)");
    assert_eq!(text(&m.call(5, "pid", json!({}))), m.child.id().to_string());
    let sid = m.call(6, "get_session_id", json!({}));
    assert!(text(&sid).starts_with("stdiomock: sess-"), "the adapter carries the minted session: {sid}");

    m.send(&json!({"jsonrpc": "2.0", "id": "p", "method": "tools/call",
        "params": {"name": "progress", "arguments": {"steps": 3, "ms": 1}, "_meta": {"progressToken": "tok"}}}));
    let (before, done) = m.until(&json!("p"));
    assert_eq!(text(&done), "stdiomock: progress done, 3 steps");
    assert_eq!(before.len(), 3, "{before:?}");
    for (i, n) in before.iter().enumerate() {
        assert_eq!(n["method"], "notifications/progress");
        assert_eq!(n["params"]["progressToken"], "tok");
        assert_eq!(n["params"]["progress"], i as u64 + 1);
    }

    drop(m.stdin.take());
    let status = m.exit_status();
    assert_eq!(status.code(), Some(0), "stdin EOF → exit 0: {status}");
}

#[test]
fn a_long_call_does_not_block_others() {
    let mut m = Mock::start(&[]);
    m.initialize(json!({}));
    m.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "sleep", "arguments": {"ms": 1000}}}));
    m.send(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "fast"}}}));
    let first = m.next("the first answer");
    assert_eq!(first["id"], 2, "echo answered while sleep runs: {first}");
    let second = m.next("the sleep's answer");
    assert_eq!(text(&second), "stdiomock: slept 1000 ms");
}

#[test]
fn sampling_request_goes_out_as_a_line_and_the_answer_line_reaches_the_call() {
    let mut m = Mock::start(&[("MCPHUB_MOCK_FIXTURES", "conformance")]);
    m.initialize(json!({"sampling": {}}));
    m.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "test_sampling", "arguments": {"prompt": "2+2?"}}}));
    let req = m.next("sampling/createMessage");
    assert_eq!(req["method"], "sampling/createMessage", "{req}");
    let rid = req["id"].clone();
    m.send(&json!({"jsonrpc": "2.0", "id": rid, "result": {"role": "assistant", "content": {"type": "text", "text": "4"}, "model": "m"}}));
    let answer = m.until(&json!(1)).1;
    assert_eq!(text(&answer), "LLM response: 4", "{answer}");
}

#[test]
fn exit_tool_exits_with_its_code_without_answering() {
    let mut m = Mock::start(&[]);
    m.initialize(json!({}));
    m.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "exit", "arguments": {"code": 3}}}));
    assert_eq!(m.exit_status().code(), Some(3));
    assert!(m.lines.recv_timeout(WAIT).is_err(), "no answer, stdout closed");
}

#[test]
fn crash_after_ms_exits_70() {
    let mut m = Mock::start(&[]);
    m.initialize(json!({}));
    m.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "crash_after_ms", "arguments": {"ms": 10}}}));
    assert_eq!(m.exit_status().code(), Some(mcphub_mock::stdio::CRASH_EXIT_CODE));
}

#[test]
fn stop_reading_answers_ok_and_keeps_the_process_alive() {
    let mut m = Mock::start(&[]);
    m.initialize(json!({}));
    assert_eq!(text(&m.call(1, "stop_reading", json!({}))), "ok");
    m.send(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "x"}}}));
    assert!(m.lines.recv_timeout(Duration::from_millis(300)).is_err(), "nothing read, nothing answered");
    assert!(m.child.try_wait().expect("try_wait").is_none(), "still alive");
    drop(m.stdin.take());
    assert!(m.lines.recv_timeout(Duration::from_millis(300)).is_err());
    assert!(m.child.try_wait().expect("try_wait").is_none(), "stdin EOF unseen: still alive (killed by the guard)");
}

#[test]
fn announce_sends_an_unsolicited_notification_after_its_answer() {
    let mut m = Mock::start(&[]);
    m.initialize(json!({}));
    assert_eq!(text(&m.call(1, "announce", json!({}))), "ok");
    let n = m.next("the announced notification");
    assert_eq!(n, json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed", "params": {}}));
}

#[test]
fn a_cancelled_streamed_call_writes_nothing_more() {
    let mut m = Mock::start(&[]);
    m.initialize(json!({}));
    m.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "progress", "arguments": {"steps": 50, "ms": 20}, "_meta": {"progressToken": 7}}}));
    let first = m.next("the first progress");
    assert_eq!(first["method"], "notifications/progress");
    m.send(&json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1, "reason": "test"}}));
    // Whatever was already on its way may still come; then nothing, and no response.
    assert_eq!(text(&m.call(2, "echo", json!({"text": "after"}))), "stdiomock: after");
    let end = Instant::now() + Duration::from_millis(1500);
    while let Ok(line) = m.lines.recv_timeout(end.saturating_duration_since(Instant::now())) {
        assert!(!line.contains("\"id\":1"), "a cancelled call is not answered: {line}");
    }
}

#[test]
fn elicitation_and_logging_of_a_call_come_as_lines_before_its_response() {
    let mut m = Mock::start(&[("MCPHUB_MOCK_FIXTURES", "conformance")]);
    m.initialize(json!({"elicitation": {}}));
    m.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "test_tool_with_logging", "arguments": {}}}));
    let (before, done) = m.until(&json!(1));
    assert_eq!(before.len(), 3, "{before:?}");
    assert!(before.iter().all(|n| n["method"] == "notifications/message"), "{before:?}");
    assert!(done["result"]["isError"] != json!(true), "{done}");

    m.send(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "test_elicitation", "arguments": {"message": "who?"}}}));
    let req = m.next("elicitation/create");
    assert_eq!(req["method"], "elicitation/create", "{req}");
    m.send(&json!({"jsonrpc": "2.0", "id": req["id"], "result": {"action": "accept", "content": {"username": "u", "email": "e@x"}}}));
    let answer = m.until(&json!(2)).1;
    assert!(answer["result"]["isError"] != json!(true), "{answer}");
    assert!(answer.to_string().contains("accept"), "{answer}");
}
