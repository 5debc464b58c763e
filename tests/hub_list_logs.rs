//! Log lines of issue 14 hole 11, with the real binary: the warm-up line
//! names the servers with per-user tools instead of "0 tools", and a call
//! refused by an open circuit names its server in the request line (it said
//! `server=-`: nothing was sent upstream).

mod hub_util;

use hub_util::*;
use mcphub_mock::Era;
use serde_json::json;

#[test]
fn warm_up_names_per_user_servers_and_a_circuit_open_line_names_its_server() {
    let up = mock(Era::Legacy, "m");
    let config = json!({
        "mcpServers": {
            "m": {"type": "streamable-http", "url": up.url, "timeoutMs": 5000, "connectTimeoutMs": 500},
            "gh": {"url": up.url, "protocol": "legacy", "headers": {"Authorization": "Bearer ${user.GITHUB_TOKEN}"}},
        },
    });
    let mut hub = HubProcess::start("list-logs", &config);
    wait_until("the warm-up line (catalog ready) in the log", PATIENCE, || hub.log_text().contains("catalog ready"));
    let log = hub.log_text();
    assert!(log.contains("shared tools; 1 server(s) with per-user tools, listed with each user's tokens"), "{log}");

    // A listed tool, then its server goes away: connect failures open the circuit.
    let client = Client::connect(&hub.url());
    let echoed = client.request("tools/call", json!({"name": "echo", "arguments": {"text": "hi"}})).unwrap();
    assert_eq!(tool_text(&echoed), Ok("hi".to_string()), "{echoed}");
    drop(up);
    let mut refused = None;
    for _ in 0..40 {
        let answer = client.request("tools/call", json!({"name": "echo", "arguments": {"text": "hi"}}));
        if answer.as_ref().is_err_and(|e| e.contains("circuit open")) {
            refused = Some(answer);
            break;
        }
    }
    assert!(refused.is_some(), "the circuit never opened:\n{}", hub.log_text());
    // While it is open (1 s) calls are refused before anything is sent upstream.
    for _ in 0..3 {
        let answer = client.request("tools/call", json!({"name": "echo", "arguments": {"text": "hi"}}));
        assert!(answer.as_ref().is_err_and(|e| e.contains("HTTP 503")), "{answer:?}");
    }
    hub.terminate();
    let log = hub.log_text();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("[INFO] request ") && l.contains("tools/call") && l.contains("status=503")).collect();
    assert!(!lines.is_empty(), "no refused request line:\n{log}");
    for line in lines {
        assert!(line.contains(" server=m "), "{line}");
    }
}
