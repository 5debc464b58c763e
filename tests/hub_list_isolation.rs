//! Lists of servers with per-user credentials are cached per context key
//! (issue 14 holes 1 and 2): a user sees only lists fetched with their own
//! credential, one user's rejected token answers that user and changes
//! nothing for the others, and the context cache is bounded
//! (`listCacheContexts`). The upstreams are `mcphub-mock`s in reflect mode
//! (`crates/mcphub-mock/src/reflect.rs`) on `Authorization`: every list carries the marker
//! of the `Authorization` it was fetched with (and a tool, prompt, resource
//! and template private to it), and an `Authorization` containing `bad` gets
//! HTTP 401 with the value echoed.

mod hub_util;

use hub_util::{hub, mock_with, Client, HubUnderTest, Mock};
use mcphub_mock::{reflect_marker, Era, MockConfig};
use mcphub::users::{key_digest, new_key};
use serde_json::{json, Value};

fn caller_mock(era: Era, name: &str) -> Mock {
    mock_with(MockConfig { era, name: name.into(), reflect_credential: Some("Authorization".into()), ..MockConfig::default() })
}

/// The mock's marker for the caller with this GitHub token.
fn sha(token: &str) -> String {
    reflect_marker(&format!("Bearer {token}"))
}

const ALICE: &str = "ghp_alice_secret_1";
const BOB: &str = "ghp_bob_secret_2";
const MALLORY: &str = "ghp_bad_mallory_3";
/// `plain`'s one `Authorization` for everyone (not a user credential).
const SHARED: &str = "Bearer plain_shared_key";
const LISTS: [(&str, &str); 4] =
    [("tools/list", "tools"), ("prompts/list", "prompts"), ("resources/list", "resources"), ("resources/templates/list", "resourceTemplates")];

/// A hub over `gh` (legacy) and `gh2` (modern, era probed) whose
/// Authorization comes from `${user.GITHUB_TOKEN}`, and `plain` (no user
/// credential: [`SHARED`] for everyone); one user per `(name, token)` pair. Returns the hub and
/// each user's hub key.
fn isolation_hub(gh: &Mock, gh2: &Mock, plain: &Mock, users: &[(&str, &str)], extra: Value) -> (HubUnderTest, Vec<String>) {
    let keys: Vec<String> = users.iter().map(|_| new_key()).collect();
    let mut config = json!({
        "users": {},
        "mcpServers": {
            "gh": {"url": gh.url, "protocol": "legacy", "timeoutMs": 5000, "headers": {"Authorization": "Bearer ${user.GITHUB_TOKEN}"}},
            "gh2": {"url": gh2.url, "timeoutMs": 5000, "headers": {"Authorization": "Bearer ${user.GITHUB_TOKEN}"}},
            "plain": {"url": plain.url, "protocol": "legacy", "timeoutMs": 5000, "headers": {"Authorization": SHARED}},
        },
    });
    for ((name, token), key) in users.iter().zip(&keys) {
        config["users"][*name] = json!({"keys": [format!("sha256:{}", key_digest(key))], "tokens": {"GITHUB_TOKEN": token}});
    }
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    (hub(&[], config), keys)
}

/// Every list a client gets, as text (items of every kind).
fn all_lists(c: &Client) -> Vec<(String, String)> {
    LISTS
        .iter()
        .map(|(method, field)| {
            let msg = c.request(method, json!({})).unwrap_or_else(|e| panic!("{method}: {e}"));
            let items = msg["result"][*field].as_array().unwrap_or_else(|| panic!("{method}: no {field} in {msg}"));
            (method.to_string(), Value::Array(items.clone()).to_string())
        })
        .collect()
}

fn error_message(msg: &Value) -> String {
    msg.pointer("/error/message").and_then(Value::as_str).unwrap_or_else(|| panic!("not an error: {msg}")).to_string()
}

#[test]
fn each_user_sees_only_lists_fetched_with_their_own_credential() {
    let (gh, gh2, plain) = (caller_mock(Era::Legacy, "gh"), caller_mock(Era::Modern, "gh2"), caller_mock(Era::Legacy, "plain"));
    let (h, keys) = isolation_hub(&gh, &gh2, &plain, &[("alice", ALICE), ("bob", BOB)], json!({}));
    let (alice, bob) = (Client::connect_as(&h.url, Some(&keys[0])), Client::connect_as(&h.url, Some(&keys[1])));
    let (a, b, anon) = (sha(ALICE), sha(BOB), reflect_marker(SHARED));
    // bob first: with one shared cache alice would now get bob's lists
    for round in 0..2 {
        for (who, client, mine, theirs) in [("bob", &bob, &b, &a), ("alice", &alice, &a, &b)] {
            for (method, items) in all_lists(client) {
                assert!(items.contains(mine.as_str()), "round {round}: {who}'s {method} lacks their own items: {items}");
                assert!(!items.contains(theirs.as_str()), "round {round}: {who}'s {method} shows the other user's items: {items}");
                // the shared server's items are there, fetched without a user credential
                assert!(items.contains(&anon), "round {round}: {who}'s {method} lacks plain's items: {items}");
            }
        }
    }
    // routing follows the caller's own lists
    assert_eq!(alice.call(&format!("gh__private-{a}")), Ok(format!("private to {a}")));
    assert_eq!(alice.call(&format!("gh2__private-{a}")), Ok(format!("private to {a}")));
    let foreign = alice.request("tools/call", json!({"name": format!("gh__private-{b}"), "arguments": {}})).unwrap();
    assert_eq!(error_message(&foreign), format!("Unknown tool: gh__private-{b}"));
    let foreign = alice.request("resources/read", json!({"uri": format!("mock://private/{b}")})).unwrap();
    assert_eq!(foreign.pointer("/error/code"), Some(&json!(-32602)), "{foreign}");
    assert_eq!(h.hub.catalog().cached_contexts(), 2);
}

#[test]
fn a_rejected_token_answers_its_user_and_changes_nothing_for_the_others() {
    let (gh, gh2, plain) = (caller_mock(Era::Legacy, "gh"), caller_mock(Era::Modern, "gh2"), caller_mock(Era::Legacy, "plain"));
    let (h, keys) = isolation_hub(&gh, &gh2, &plain, &[("alice", ALICE), ("mallory", MALLORY)], json!({}));
    let (alice, mallory) = (Client::connect_as(&h.url, Some(&keys[0])), Client::connect_as(&h.url, Some(&keys[1])));
    let (a, m, shared) = (sha(ALICE), sha(MALLORY), reflect_marker(SHARED));
    let expected = "server 'gh' rejected your GITHUB_TOKEN (HTTP 401): update it with PUT /api/me/tokens/GITHUB_TOKEN";
    let expected2 = expected.replace("'gh'", "'gh2'");
    for round in 0..4 {
        // mallory's lists leave the rejecting servers out, the shared one in
        let tools = mallory.request("tools/list", json!({})).unwrap().to_string();
        assert!(!tools.contains(&m) && tools.contains(&shared), "round {round}: {tools}");
        // her calls (unknown names and URIs, a forced refresh each) answer with the token to fix
        let call = mallory.request("tools/call", json!({"name": format!("gh__private-{m}"), "arguments": {}})).unwrap();
        let msg = error_message(&call);
        assert!(msg == expected || msg == expected2, "round {round}: {call}");
        assert!(!call.to_string().contains(MALLORY) && !call.to_string().contains("invalid credentials"), "{call}");
        let prompt = mallory.request("prompts/get", json!({"name": format!("private-{m}")})).unwrap();
        assert!([expected, expected2.as_str()].contains(&error_message(&prompt).as_str()), "round {round}: {prompt}");
        let read = mallory.request("resources/read", json!({"uri": format!("mock://private/{m}")})).unwrap();
        assert!([expected, expected2.as_str()].contains(&error_message(&read).as_str()), "round {round}: {read}");
        // alice, right after each of mallory's failures: everything, no back-off
        for (method, items) in all_lists(&alice) {
            assert!(items.contains(&a), "round {round}: alice's {method} lost items after mallory's failure: {items}");
        }
        assert_eq!(alice.call(&format!("gh__private-{a}")), Ok(format!("private to {a}")), "round {round}");
    }
    // the server's state is not the rejected user's
    let state = h.hub.catalog().upstream("gh").unwrap().state();
    assert!(state.ok, "{:?}", state.last_error);
}

#[test]
fn the_context_cache_keeps_at_most_list_cache_contexts() {
    let (gh, gh2, plain) = (caller_mock(Era::Legacy, "gh"), caller_mock(Era::Modern, "gh2"), caller_mock(Era::Legacy, "plain"));
    let users = [("u1", "ghp_one"), ("u2", "ghp_two"), ("u3", "ghp_three")];
    let (h, keys) = isolation_hub(&gh, &gh2, &plain, &users, json!({"listCacheContexts": 2}));
    let clients: Vec<Client> = keys.iter().map(|k| Client::connect_as(&h.url, Some(k))).collect();
    let tools_of = |i: usize| clients[i].request("tools/list", json!({})).unwrap().to_string();
    // Counted at the legacy `gh`: reflect mode's modern lists live 1 s
    // (`ttlMs`), so gh2's could expire between two lists on a slow machine.
    let lists_of = |i: usize| gh.server.reflected_tool_lists().get(&sha(users[i].1)).copied().unwrap_or(0);
    for (i, (_, token)) in users.iter().enumerate() {
        assert!(tools_of(i).contains(&sha(token)));
        assert!(h.hub.catalog().cached_contexts() <= 2, "after user {i}: {}", h.hub.catalog().cached_contexts());
    }
    assert_eq!(h.hub.catalog().cached_contexts(), 2);
    // u3 is cached: listing again asks gh nothing
    let before = lists_of(2);
    assert!(tools_of(2).contains(&sha(users[2].1)));
    assert_eq!(lists_of(2), before, "a cached context's list is served from the cache");
    // u1 was evicted (least recently used): its lists are fetched again, with its own credential
    let before = lists_of(0);
    assert!(tools_of(0).contains(&sha(users[0].1)));
    assert!(lists_of(0) > before, "an evicted context's list is fetched again");
    assert_eq!(h.hub.catalog().cached_contexts(), 2);
}
