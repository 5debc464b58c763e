//! No secret in a log line or an error message (issue 5): a full debug run
//! of the real binary with users, keys and service tokens, every kind of
//! request and refusal, then the log and every answer are searched for
//! every secret used.

mod hub_util;

use hub_util::{mock_with, send, Client, HubProcess, ACCEPT, JSON};
use mcphub_mock::{Era, MockConfig};
use mcphub::users::{key_digest, new_key};
use serde_json::json;

#[test]
fn a_debug_run_logs_and_answers_no_key_or_token() {
    let gh = mock_with(MockConfig { era: Era::Legacy, name: "gh".into(), ..MockConfig::default() });
    let (alice, erin, stranger) = (new_key(), new_key(), new_key());
    let token = "ghp_secret_token_value_0123456789";
    let admin = "admin-secret-token-9876543210";
    let config = json!({
        "adminToken": admin,
        "users": {
            "alice": {"keys": [format!("sha256:{}", key_digest(&alice))], "tokens": {"GITHUB_TOKEN": token}},
            "erin": {"keys": [key_digest(&erin)]},
        },
        "mcpServers": {"gh": {"url": gh.url, "protocol": "legacy", "timeoutMs": 5000,
                              "headers": {"Authorization": "Bearer ${user.GITHUB_TOKEN}"}}},
    });
    let mut hub = HubProcess::start("secrets", &config);
    let url = hub.url();
    let mut answers = Vec::new();

    let a = Client::connect_as(&url, Some(&alice));
    answers.push(a.request("tools/list", json!({})).unwrap().to_string());
    answers.push(a.call("whoami").unwrap());
    answers.push(a.request("tools/call", json!({"name": "nope", "arguments": {}})).unwrap().to_string());
    let e = Client::connect_as(&url, Some(&erin));
    answers.push(e.request("tools/call", json!({"name": "whoami", "arguments": {}})).unwrap().to_string());
    let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    answers.push(send("POST", &format!("{url}?key={alice}"), &[ACCEPT, JSON], init).text);
    answers.push(send("POST", &format!("{url}?key={stranger}"), &[ACCEPT, JSON], init).text);
    answers.push(send("POST", &url, &[ACCEPT, JSON, ("Authorization", &format!("Bearer {stranger}"))], init).text);
    answers.push(send("POST", &url, &[ACCEPT, JSON, ("Authorization", &format!("Basic {alice}"))], init).text);
    answers.push(send("POST", &url, &[ACCEPT, JSON, ("Authorization", &format!("Bearer {alice}"))], "{not json").text);
    let admin_api = url.replace("/mcp", "/api/admin/upstream-sessions");
    answers.push(send("GET", &admin_api, &[("x-auth-token", admin)], "").text);
    answers.push(send("GET", &admin_api, &[("x-auth-token", &stranger)], "").text);
    answers.push(send("GET", &url.replace("/mcp", "/readyz"), &[], "").text);
    hub.terminate();

    let log = hub.log_text();
    assert!(log.contains("NEW REQUEST STARTED") && log.contains("💾"), "a debug log was written:\n{log}");
    let secrets = [("alice's key", alice.as_str()), ("erin's key", &erin), ("an unknown key", &stranger), ("the token", token), ("the admin token", admin)];
    for (what, secret) in secrets {
        assert!(!log.contains(secret), "{what} is in the log");
        for answer in &answers {
            assert!(!answer.contains(secret), "{what} is in an answer: {answer}");
        }
    }
    // The answers were the ones meant (not all empty): erin was told which token to set.
    assert!(answers[3].contains("GITHUB_TOKEN"), "{}", answers[3]);
    assert!(answers[5].contains("unknown or revoked"), "{}", answers[5]);
}
