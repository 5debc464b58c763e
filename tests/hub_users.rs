//! Users on the request path (issue 5, docs/decisions.md D6): hub keys, per-user
//! service tokens injected into upstream headers, context keys, isolation
//! under concurrent load, 401/404 cases, and servers a user may not use.
//! `mcphub-mock`'s `whoami` answers the first 12 hex of SHA-256 of the
//! Authorization header it got; `counter` counts per upstream session.

mod hub_util;

use hub_util::{hub, mock_with, send, tool_text, Client, HubUnderTest, Mock, ACCEPT, JSON};
use mcphub_mock::{Era, MockConfig};
use mcphub::users::{key_digest, new_key};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const ADMIN: &str = "admin-token-for-tests-0123456789";

fn legacy_mock(name: &str) -> Mock {
    mock_with(MockConfig { era: Era::Legacy, name: name.into(), ..MockConfig::default() })
}

fn short_sha(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))[..12].to_string()
}

struct Keys {
    alice: String,
    bob: String,
    carol: String,
    dave: String,
    erin: String,
}

/// A hub with `gh` (Authorization from `${user.GITHUB_TOKEN}`) and `plain`
/// (no user credential) and four users: alice and bob with their own
/// tokens, carol with alice's token value, dave with no token and only
/// `plain` allowed, erin allowed everything but without a token.
fn users_hub(gh: &Mock, plain: &Mock) -> (HubUnderTest, Keys) {
    let keys = Keys { alice: new_key(), bob: new_key(), carol: new_key(), dave: new_key(), erin: new_key() };
    let user = |key: &str, token: Option<&str>| {
        let mut u = json!({"keys": [format!("sha256:{}", key_digest(key))]});
        if let Some(t) = token {
            u["tokens"] = json!({"GITHUB_TOKEN": t});
        }
        u
    };
    let mut dave = user(&keys.dave, None);
    dave["servers"] = json!(["@open"]);
    let h = hub(
        &[],
        json!({
            "adminToken": ADMIN,
            "workers": 16,
            "groups": {"open": ["plain"]},
            "users": {
                "alice": user(&keys.alice, Some("ghp_alice_secret_1")),
                "bob": user(&keys.bob, Some("ghp_bob_secret_2")),
                "carol": user(&keys.carol, Some("ghp_alice_secret_1")),
                "dave": dave,
                "erin": user(&keys.erin, None),
            },
            "mcpServers": {
                "gh": {"url": gh.url, "protocol": "legacy", "timeoutMs": 5000, "forwardUser": true,
                       "headers": {"Authorization": "Bearer ${user.GITHUB_TOKEN}"}},
                "plain": {"url": plain.url, "protocol": "legacy", "timeoutMs": 5000},
            },
        }),
    );
    (h, keys)
}

fn sessions_listed(h: &HubUnderTest) -> Vec<(String, String, String)> {
    let listed = send("GET", &h.url.replace("/mcp", "/api/admin/upstream-sessions"), &[("x-auth-token", ADMIN)], "").json();
    listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["serverName"].as_str().unwrap().into(), d["contextKey"].as_str().unwrap().into(), d["sessionId"].as_str().unwrap().into()))
        .collect()
}

/// Tool names the client sees.
fn tool_names(c: &Client) -> BTreeSet<String> {
    let msg = c.request("tools/list", json!({})).unwrap();
    msg["result"]["tools"].as_array().unwrap().iter().filter_map(|t| t["name"].as_str().map(str::to_string)).collect()
}

#[test]
fn two_users_under_load_never_see_each_others_credentials_or_sessions() {
    let (gh, plain) = (legacy_mock("gh"), legacy_mock("plain"));
    let (h, keys) = users_hub(&gh, &plain);
    let (alice_sha, bob_sha) = (short_sha("Bearer ghp_alice_secret_1"), short_sha("Bearer ghp_bob_secret_2"));
    // 35 clients each; even clients call whoami, odd ones counter (prefixed names: both servers have them).
    let mut clients = Vec::new();
    for i in 0..70 {
        let key = if i % 2 == 0 { &keys.alice } else { &keys.bob };
        clients.push(Client::connect_as(&h.url, Some(key)));
    }
    let until = Instant::now() + Duration::from_secs(20);
    let handles: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            std::thread::spawn(move || {
                let alice = i % 2 == 0;
                let mut seen = Vec::new();
                let mut n = 0;
                while n == 0 || Instant::now() < until {
                    let tool = if (i / 2) % 2 == 0 { "gh__whoami" } else { "gh__counter" };
                    seen.push((tool, c.call(tool)));
                    n += 1;
                }
                (alice, seen)
            })
        })
        .collect();
    let (mut calls, mut wrong, mut failed) = (0, Vec::new(), Vec::new());
    let (mut alice_counts, mut bob_counts) = (Vec::new(), Vec::new());
    for h in handles {
        let (alice, seen) = h.join().unwrap();
        for (tool, answer) in seen {
            calls += 1;
            match (tool, answer) {
                ("gh__whoami", Ok(sha)) => {
                    let expected = if alice { &alice_sha } else { &bob_sha };
                    if &sha != expected {
                        wrong.push(sha);
                    }
                }
                ("gh__counter", Ok(n)) => {
                    let n: u64 = n.parse().unwrap();
                    if alice { alice_counts.push(n) } else { bob_counts.push(n) }
                }
                (_, Err(e)) => failed.push(e),
                _ => unreachable!(),
            }
        }
    }
    eprintln!("isolation: {calls} calls in 20 s by 70 clients of 2 users, {} wrong credential, {} failed", wrong.len(), failed.len());
    assert!(failed.is_empty(), "{} of {calls} calls failed: {:?}", failed.len(), &failed[..failed.len().min(3)]);
    assert!(wrong.is_empty(), "{} of {calls} answers carried another credential: {:?}", wrong.len(), &wrong[..wrong.len().min(3)]);
    // Each user's counter calls ran on that user's own upstream session:
    // exactly 1..=n, no value skipped (taken by the other user) or repeated.
    for (who, mut counts) in [("alice", alice_counts), ("bob", bob_counts)] {
        counts.sort();
        assert!(!counts.is_empty());
        assert_eq!(counts, (1..=counts.len() as u64).collect::<Vec<_>>(), "{who}'s counter values");
    }
    assert_eq!(gh.stats()["initialize"], 2, "one upstream session per credential");
    let gh_sessions: Vec<_> = sessions_listed(&h).into_iter().filter(|(s, _, _)| s == "gh").collect();
    assert_eq!(gh_sessions.len(), 2, "{gh_sessions:?}");
    assert!(gh_sessions.iter().all(|(_, k, _)| k.starts_with("tok:") && k.len() == 36), "{gh_sessions:?}");
    for secret in ["ghp_alice_secret_1", "ghp_bob_secret_2", &keys.alice, &keys.bob] {
        assert!(!format!("{gh_sessions:?}").contains(secret));
    }

    // carol holds alice's token value: she shares alice's upstream session.
    let alice = Client::connect_as(&h.url, Some(&keys.alice));
    let carol = Client::connect_as(&h.url, Some(&keys.carol));
    let bob = Client::connect_as(&h.url, Some(&keys.bob));
    let (a, c, b) = (alice.call("gh__get_session_id").unwrap(), carol.call("gh__get_session_id").unwrap(), bob.call("gh__get_session_id").unwrap());
    assert_eq!(a, c, "same credential, same session");
    assert_ne!(a, b, "different credentials, never the same session");
    assert_eq!(gh.stats()["initialize"], 2);
    // forwardUser tells the upstream who calls, never the hub key.
    assert_eq!(carol.call("gh__whoami").unwrap(), short_sha("Bearer ghp_alice_secret_1"));
}

#[test]
fn a_server_without_user_credentials_gives_seventy_clients_of_three_users_one_shared_session() {
    let (gh, plain) = (legacy_mock("gh"), legacy_mock("plain"));
    let (h, keys) = users_hub(&gh, &plain);
    let clients: Vec<Client> = (0..70)
        .map(|i| Client::connect_as(&h.url, Some([&keys.alice, &keys.bob, &keys.carol][i % 3].as_str())))
        .collect();
    let (ok, failed) = hub_util::load_clients(clients, "plain__get_session_id", Instant::now(), 1);
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(ok.len(), 70);
    assert!(ok.iter().all(|(_, s)| *s == ok[0].1), "one shared session");
    assert_eq!(plain.stats()["initialize"], 1);
    assert!(sessions_listed(&h).iter().any(|(s, k, id)| s == "plain" && k == "shared" && *id == ok[0].1));
    // The upstream never got an Authorization header: the hub key is not forwarded.
    assert_eq!(plain.stats()["last_authorization_sha"], Value::Null, "{}", plain.stats());
}

#[test]
fn keys_are_required_and_checked_and_sessions_belong_to_their_user() {
    let (gh, plain) = (legacy_mock("gh"), legacy_mock("plain"));
    let (h, keys) = users_hub(&gh, &plain);
    let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let unknown = format!("Bearer {}", new_key());
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: [Case; 4] = [
        ("no key", vec![], "key is required"),
        ("unknown key", vec![("Authorization", &unknown)], "unknown or revoked"),
        ("wrong scheme", vec![("Authorization", "Basic YWxpY2U6eA==")], "Bearer"),
        ("empty bearer", vec![("Authorization", "Bearer ")], "key is required"),
    ];
    for (what, extra, says) in cases {
        let mut hdrs = vec![ACCEPT, JSON];
        hdrs.extend(extra);
        let r = send("POST", &h.url, &hdrs, init);
        assert_eq!(r.status, 401, "{what}: {}", r.text);
        assert!(r.header("www-authenticate").is_some_and(|v| v.starts_with("Bearer")), "{what}");
        let msg = r.json();
        assert_eq!(msg["jsonrpc"], "2.0");
        let text = msg["error"]["message"].as_str().unwrap();
        assert!(text.contains(says), "{what}: {text}");
    }
    // A key revoked at run time is refused at once.
    let users = h.hub.users();
    let (late, view) = users.issue_key("bob", Some("laptop".into())).unwrap();
    assert!(Client::connect_as(&h.url, Some(&late)).request("tools/list", json!({})).is_ok());
    users.revoke_key("bob", &view.id).unwrap();
    let r = send("POST", &h.url, &[ACCEPT, JSON, ("Authorization", &format!("Bearer {late}"))], init);
    assert_eq!(r.status, 401, "a revoked key: {}", r.text);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("unknown or revoked"));
    // The URL form Cursor uses.
    let r = send("POST", &format!("{}?key={}", h.url, keys.alice), &[ACCEPT, JSON], init);
    assert_eq!(r.status, 200, "{}", r.text);
    // A session id used with another user's key is not found.
    let alice = Client::connect_as(&h.url, Some(&keys.alice));
    let stolen = Client { key: Some(keys.bob.clone()), ..Client::connect_as(&h.url, Some(&keys.alice)) };
    let stolen = Client { sid: alice.sid.clone(), ..stolen };
    let err = stolen.request("tools/list", json!({})).unwrap_err();
    assert!(err.starts_with("HTTP 404"), "{err}");
    let r = send("DELETE", &h.url, &[("Authorization", &format!("Bearer {}", keys.bob)), ("Mcp-Session-Id", &alice.sid)], "");
    assert_eq!(r.status, 404, "bob cannot end alice's session");
    assert!(alice.request("tools/list", json!({})).is_ok(), "alice's session lives on");
}

#[test]
fn servers_a_user_may_not_use_or_lacks_a_token_for_are_hidden_and_refused() {
    let (gh, plain) = (legacy_mock("gh"), legacy_mock("plain"));
    let (h, keys) = users_hub(&gh, &plain);
    let alice = Client::connect_as(&h.url, Some(&keys.alice));
    let dave = Client::connect_as(&h.url, Some(&keys.dave));
    let (alice_tools, dave_tools) = (tool_names(&alice), tool_names(&dave));
    assert!(alice_tools.contains("gh__whoami") && alice_tools.contains("plain__whoami"), "{alice_tools:?}");
    // Names collide per view (issue 14: lists are per context): without gh, plain's are unprefixed.
    assert!(dave_tools.contains("whoami"), "{dave_tools:?}");
    assert!(!dave_tools.iter().any(|t| t.starts_with("gh__")), "dave may not use gh: {dave_tools:?}");
    let refused = dave.request("tools/call", json!({"name": "gh__whoami", "arguments": {}})).unwrap();
    assert_eq!(refused["error"]["code"], -32602, "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("Unknown tool"), "{refused}");
    assert_eq!(gh.stats()["tools"]["whoami"].as_u64().unwrap_or(0), 0, "dave's call never reached gh");

    // erin may use everything but has no GITHUB_TOKEN: gh is hidden from
    // her lists (nothing is fetched for her), and a name unknown to her
    // names the token to set.
    let erin = Client::connect_as(&h.url, Some(&keys.erin));
    let erin_tools = tool_names(&erin);
    assert!(erin_tools.contains("whoami") && !erin_tools.iter().any(|t| t.starts_with("gh__")), "{erin_tools:?}");
    let missing = erin.request("tools/call", json!({"name": "gh__whoami", "arguments": {}})).unwrap();
    let text = missing["error"]["message"].as_str().unwrap_or_default();
    assert!(text.contains("GITHUB_TOKEN") && text.contains("/api/me/tokens/GITHUB_TOKEN"), "{missing}");
    assert_eq!(missing["error"]["data"]["missingTokens"], json!(["GITHUB_TOKEN"]));
    assert_eq!(gh.stats()["tools"]["whoami"].as_u64().unwrap_or(0), 0, "erin's call never reached gh");
    assert!(tool_text(&erin.request("tools/call", json!({"name": "whoami", "arguments": {}})).unwrap()).is_ok());
}

#[test]
fn forward_user_names_each_caller_on_a_shared_legacy_session() {
    // A server without per-user tokens: every user shares its one legacy
    // session, which one of them created. X-MCPHub-User must still name the
    // user of each call, not the session's creator.
    let fw = mock_with(MockConfig { era: Era::Legacy, name: "fw".into(), reflect_credential: Some("X-MCPHub-User".into()), ..MockConfig::default() });
    let keys = (new_key(), new_key());
    let h = hub(
        &[],
        json!({
            "users": {"alice": {"keys": [key_digest(&keys.0)]}, "bob": {"keys": [key_digest(&keys.1)]}},
            "mcpServers": {"fw": {"url": fw.url, "protocol": "legacy", "timeoutMs": 5000, "forwardUser": true}},
        }),
    );
    let (alice, bob) = (Client::connect_as(&h.url, Some(&keys.0)), Client::connect_as(&h.url, Some(&keys.1)));
    for _ in 0..2 {
        for (client, me, other) in [(&alice, "alice", "bob"), (&bob, "bob", "alice")] {
            let answer = client.request("tools/call", json!({"name": "echo", "arguments": {"text": "hi"}})).expect("the call");
            let text = answer.to_string();
            assert!(text.contains(&format!("for {}", mcphub_mock::reflect_marker(me))), "{me}'s call names {me}: {text}");
            assert!(!text.contains(&mcphub_mock::reflect_marker(other)), "{me}'s call does not name {other}: {text}");
        }
    }
    assert_eq!(fw.stats()["initialize"], 1, "one shared session: {}", fw.stats());
}
