//! The admin pages and the Activity page (issue 17), Request → Response
//! without a socket on a hub from a literal config: an admin sees and uses
//! the users, upstream sessions and servers pages; anyone else gets 403; a
//! POST without or with a wrong CSRF token is 403 and changes nothing;
//! HTML in a key label, a tool name or an error text renders escaped; a
//! person's Activity page shows their own requests only.

mod core_util;

use core_util::*;
use mcphub::hub::Hub;
use mcphub::users::new_key;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

const HOST: (&str, &str) = ("Host", "127.0.0.1:3000");
const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

/// A signed-in browser: its cookie header and CSRF token.
struct Browser {
    cookie: String,
    csrf: String,
}

fn sign_in(h: &Hub, user: &str) -> Browser {
    let (cookie, session) = h.ui().sessions().create(user, "key", Duration::from_secs(3600)).expect("a memory session");
    // Host 127.0.0.1 is a secure context: the cookie has the __Host- prefix.
    Browser { cookie: format!("__Host-mcphub_session={cookie}"), csrf: session.csrf }
}

impl Browser {
    fn get(&self, h: &Hub, path: &str) -> Answer {
        request(h, "GET", path, &[HOST, ("Cookie", &self.cookie)], "")
    }

    /// A form POST with this session's CSRF token plus `fields` (already encoded).
    fn post(&self, h: &Hub, path: &str, fields: &str) -> Answer {
        let body = if fields.is_empty() { format!("csrf={}", self.csrf) } else { format!("csrf={}&{fields}", self.csrf) };
        self.post_raw(h, path, &body)
    }

    fn post_raw(&self, h: &Hub, path: &str, body: &str) -> Answer {
        request(h, "POST", path, &[HOST, FORM, ("Cookie", &self.cookie)], body)
    }
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// `srv`: a 2026-07-28 server with `echo`, and a tool whose name is HTML;
/// `fail` answers an error whose message is HTML. `leg`: a legacy server
/// (its sessions are listed on the sessions page).
fn servers() -> Vec<(&'static str, Value, Script)> {
    let modern = modern_server("srv", json!([tool("echo"), tool("<img src=x>"), tool("fail")]));
    let srv: Script = Arc::new(move |body: &Value, headers: &[(String, String)]| {
        if body["method"] == "tools/call" && body["params"]["name"] == "fail" {
            return Reply::error(body, -32603, "<script>alert('x')</script> went wrong");
        }
        modern(body, headers)
    });
    vec![("srv", json!({"maxConcurrency": 3}), srv), ("leg", json!({"protocol": "legacy"}), legacy_server("leg", json!([tool("old")])))]
}

/// root (config admin), alice and bob (config users); their keys.
fn admin_hub() -> (Hub, String, String, String) {
    let (root, alice, bob) = (new_key(), new_key(), new_key());
    let mut r = user_with_key(&root);
    r["admin"] = json!(true);
    let (h, _traffic) = hub_with_servers(json!({"users": {"root": r, "alice": user_with_key(&alice), "bob": user_with_key(&bob)}}), servers());
    (h, root, alice, bob)
}

fn location(a: &Answer) -> &str {
    a.header("location").unwrap_or_else(|| panic!("no Location: {} {:?}", a.status, a.headers))
}

#[test]
fn an_admin_sees_the_admin_pages_and_anyone_else_gets_403() {
    let (h, _root, _alice, _bob) = admin_hub();
    let root = sign_in(&h, "root");
    for (path, marker) in [
        ("/ui/admin/users", "id=\"users\""),
        ("/ui/admin", "id=\"users\""),
        ("/ui/admin/users/alice", "id=\"issue-key\""),
        ("/ui/admin/sessions", "Upstream sessions"),
        ("/ui/admin/servers", "id=\"servers\""),
    ] {
        let r = root.get(&h, path);
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        assert!(r.text.contains(marker), "{path} lacks {marker}: {}", r.text);
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert!(r.header("content-security-policy").is_some_and(|c| c.starts_with("default-src 'self'")));
        assert!(!r.text.contains("style="), "{path}: no inline style");
    }
    let servers = root.get(&h, "/ui/admin/servers").text;
    assert!(servers.contains(">srv<") && servers.contains(">leg<"), "{servers}");
    assert!(servers.contains("0 / 3") && servers.contains("0 / unlimited"), "bulkhead in use / limit: {servers}");
    assert!(servers.contains("closed"), "breaker state: {servers}");

    let alice = sign_in(&h, "alice");
    for path in ["/ui/admin/users", "/ui/admin/users/root", "/ui/admin/sessions", "/ui/admin/servers"] {
        let r = alice.get(&h, path);
        assert_eq!(r.status, 403, "{path}: {}", r.text);
        assert!(r.text.contains("Admins only"), "{}", r.text);
    }
    let r = alice.post(&h, "/ui/admin/users/create", "name=mallory&admin=on");
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(h.users().view("mallory").is_none(), "a non-admin creates nobody");
    // Not signed in: to the sign-in page.
    let r = request(&h, "GET", "/ui/admin/users", &[HOST], "");
    assert_eq!((r.status, location(&r)), (303, "/ui/login"));
}

#[test]
fn posts_without_or_with_a_wrong_csrf_token_are_403_and_change_nothing() {
    let (h, _root, _alice, _bob) = admin_hub();
    let root = sign_in(&h, "root");
    for body in ["name=carol", "csrf=&name=carol", "csrf=wrong&name=carol", &format!("csrf={}x&name=carol", root.csrf)] {
        let r = root.post_raw(&h, "/ui/admin/users/create", body);
        assert_eq!(r.status, 403, "{body}: {}", r.text);
        assert!(r.text.contains("This form cannot be accepted"), "{}", r.text);
    }
    // Another session's token is wrong too.
    let other = sign_in(&h, "root");
    let r = root.post_raw(&h, "/ui/admin/users/create", &format!("csrf={}&name=carol", other.csrf));
    assert_eq!(r.status, 403);
    assert!(h.users().view("carol").is_none());
    let r = root.post(&h, "/ui/admin/users/create", "name=carol");
    assert_eq!((r.status, location(&r)), (303, "/ui/admin/users/carol?done=created"));
    assert!(h.users().view("carol").is_some());
}

#[test]
fn an_admin_creates_promotes_issues_revokes_and_deletes() {
    let (h, _root, alice_key, _bob) = admin_hub();
    let root = sign_in(&h, "root");
    let r = root.post(&h, "/ui/admin/users/create", "name=carol");
    assert_eq!(r.status, 303, "{}", r.text);
    let page = root.get(&h, location(&r));
    assert!(page.text.contains("User created."), "the notice after the redirect: {}", page.text);
    assert!(page.text.contains("Make admin"), "{}", page.text);

    let r = root.post(&h, "/ui/admin/users/carol/admin", "admin=on");
    assert_eq!((r.status, location(&r)), (303, "/ui/admin/users/carol?done=admin-on"));
    assert!(h.users().get("carol").unwrap().admin);
    let r = root.post(&h, "/ui/admin/users/carol/admin", "admin=off");
    assert_eq!(r.status, 303);
    assert!(!h.users().get("carol").unwrap().admin);

    // A config user's role is read-only: explained on the page, refused on POST.
    let page = root.get(&h, "/ui/admin/users/alice").text;
    assert!(page.contains("id=\"config-user\"") && !page.contains("id=\"set-admin\""), "{page}");
    let r = root.post(&h, "/ui/admin/users/alice/admin", "admin=on");
    assert_eq!(r.status, 409, "{}", r.text);
    assert!(r.text.contains("config file"), "{}", r.text);
    assert!(!h.users().get("alice").unwrap().admin);
    // Nor can an admin demote or delete themselves.
    assert_eq!(root.post(&h, "/ui/admin/users/root/admin", "admin=off").status, 409);

    // A key is shown once; its label renders escaped; it works, then is revoked.
    let r = root.post(&h, "/ui/admin/users/carol/keys/create", "label=%3Cb%3Elaptop%3C%2Fb%3E");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let start = r.text.find("<output id=\"new-key\">").expect("output#new-key") + "<output id=\"new-key\">".len();
    let key = &r.text[start..start + 71];
    assert!(mcphub::users::looks_like_key(key), "{key}");
    assert_eq!(h.users().authenticate(key).map(|u| u.name.clone()).as_deref(), Some("carol"));
    assert!(r.text.contains("&lt;b&gt;laptop&lt;/b&gt;") && !r.text.contains("<b>laptop"), "the label escaped: {}", r.text);
    let again = root.get(&h, "/ui/admin/users/carol").text;
    assert!(!again.contains(key), "a key is shown once");
    let id = h.users().view("carol").unwrap().keys[0].id.clone();
    let r = root.post(&h, &format!("/ui/admin/users/carol/keys/{id}/revoke"), "");
    assert_eq!((r.status, location(&r)), (303, "/ui/admin/users/carol?done=revoked"));
    assert!(h.users().authenticate(key).is_none(), "revoked");
    // A config user's key can be revoked too.
    let alice_id = h.users().view("alice").unwrap().keys[0].id.clone();
    assert_eq!(root.post(&h, &format!("/ui/admin/users/alice/keys/{alice_id}/revoke"), "").status, 303);
    assert!(h.users().authenticate(&alice_key).is_none());

    // Delete needs the confirmation box; a config user cannot be deleted.
    assert_eq!(root.post(&h, "/ui/admin/users/carol/delete", "").status, 400);
    assert!(h.users().view("carol").is_some());
    let r = root.post(&h, "/ui/admin/users/carol/delete", "confirm=on");
    assert_eq!((r.status, location(&r)), (303, "/ui/admin/users?done=deleted"));
    assert!(h.users().view("carol").is_none());
    assert_eq!(root.post(&h, "/ui/admin/users/alice/delete", "confirm=on").status, 409);
    assert_eq!(root.post(&h, "/ui/admin/users/root/delete", "confirm=on").status, 409);
    let r = root.post(&h, "/ui/admin/users/create", "name=%3Cscript%3E");
    assert_eq!(r.status, 400, "an invalid name is refused with a page: {}", r.text);
    let list = root.get(&h, "/ui/admin/users").text;
    assert!(!list.contains(">carol<"), "{list}");
    assert!(!list.contains("mcphub_"), "no key on the users list");
}

#[test]
fn the_sessions_page_lists_and_drops_upstream_sessions() {
    let (h, _root, alice_key, _bob) = admin_hub();
    let a = bearer(&alice_key);
    let sid = legacy_session_with(&h, &[("Authorization", &a)]);
    let mut headers = legacy_headers(&sid);
    headers.push(("Authorization", &a));
    let call = post(&h, &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "old", "arguments": {"text": "x"}}}).to_string(), &headers);
    assert_eq!(call.status, 200, "{}", call.text);
    let root = sign_in(&h, "root");
    let page = root.get(&h, "/ui/admin/sessions").text;
    assert!(page.contains("id=\"upstream-sessions\"") && page.contains("leg-s1"), "the leg session is listed: {page}");
    let r = root.post(&h, "/ui/admin/sessions/leg/shared/delete", "");
    assert_eq!((r.status, location(&r)), (303, "/ui/admin/sessions?done=session-deleted"), "{}", r.text);
    let page = root.get(&h, location(&r)).text;
    assert!(!page.contains("leg-s1") && page.contains("Upstream session dropped"), "{page}");
    assert!(h.store().list().unwrap().is_empty(), "dropped from the store");
    assert_eq!(root.post(&h, "/ui/admin/sessions/leg/shared/delete", "").status, 404);
}

#[test]
fn the_activity_page_shows_the_signed_in_users_requests_only_escaped() {
    let (h, _root, alice_key, bob_key) = admin_hub();
    let alice = sign_in(&h, "alice");
    let empty = alice.get(&h, "/ui/activity");
    assert_eq!(empty.status, 200, "{}", empty.text);
    assert!(empty.text.contains("id=\"activity-empty\"") && empty.text.contains("/ui/connect"), "how to make the first call: {}", empty.text);
    assert!(empty.text.contains("id=\"activity-chart\""), "the chart shows zeros: {}", empty.text);

    let (a, b) = (bearer(&alice_key), bearer(&bob_key));
    for name in ["echo", "<img src=x>", "fail"] {
        modern_with(&h, "tools/call", json!({"name": name, "arguments": {"text": "hi"}}), &[("Authorization", &a)]);
    }
    let bobs = modern_with(&h, "tools/call", json!({"name": "echo", "arguments": {"text": "bob-only"}}), &[("Authorization", &b)]);
    assert_eq!(bobs.status, 200);
    modern_with(&h, "tools/list", json!({}), &[("Authorization", &b)]);

    let page = alice.get(&h, "/ui/activity");
    assert_eq!(page.status, 200, "{}", page.text);
    let text = &page.text;
    let table = &text[text.find("<table id=\"activity\">").expect("table#activity")..];
    assert_eq!(table.matches("<tr class=").count(), 3, "alice's three calls only: {table}");
    assert!(!table.contains("tools/list"), "bob's request is not on alice's page: {table}");
    assert!(table.contains("&lt;img src=x&gt;") && !table.contains("<img src=x>"), "a tool name renders escaped: {table}");
    assert!(table.contains("&lt;script&gt;") && !table.contains("<script>alert"), "an error text renders escaped: {table}");
    assert!(table.contains("-32603"), "{table}");
    assert!(text.contains("<rect class=\"bar\""), "{text}");
    assert!(text.contains(": 3 requests</title>"), "today's bar counts alice's 3: {text}");
    assert!(!text.contains("style="), "no inline style (CSP)");

    let bob = sign_in(&h, "bob");
    let page = bob.get(&h, "/ui/activity").text;
    assert!(page.contains("tools/list") && !page.contains("fail"), "bob sees his own: {page}");
    assert!(page.contains(": 2 requests</title>"), "{page}");
    // Not signed in: to the sign-in page.
    let r = request(&h, "GET", "/ui/activity", &[HOST], "");
    assert_eq!((r.status, location(&r)), (303, "/ui/login"));
}
