//! The admin pages (issue 17), for signed-in admins only (anyone else gets
//! the 403 page of [`Ctx::admin`]):
//!
//! - `GET /ui/admin/users` (`table#users`, `form#create-user`) and
//!   `GET /ui/admin/users/{name}` (role, `table#user-keys`, token names,
//!   `form#issue-key`, delete);
//! - `GET /ui/admin/sessions` (`table#upstream-sessions`: the admin API's
//!   list, [`crate::hub::admin::upstream_sessions`]);
//! - `GET /ui/admin/servers` (`table#servers`: era, health, breaker,
//!   bulkhead in use / limit, last error class; [`crate::hub::Hub::server_statuses`]).
//!
//! Every change is a POST form with the session's CSRF field (checked by
//! `ui::route` before it gets here) answered `303` to the page it changed
//! (post/redirect/get, `?done=` naming a fixed notice), except issuing a
//! key: that answers the page with the key shown once (`output#new-key`,
//! `Cache-Control: no-store`). Refusals (a config user, a bad name) are
//! pages with the registry's reason. Token values are never shown, only
//! names; every change writes an audit line (`hub::admin::audit`, the
//! admin's user name as the actor) through the same functions as the admin
//! API where there is one.

use super::layout::{csrf_field, page as frame, Nav};
use super::{error_page, html, redirect, Ctx};
use crate::http::Response;
use crate::hub::admin::{audit, delete_user, drop_upstream_session, upstream_sessions};
use crate::users::{UserView, UsersError};
use maud::{html, Markup};

/// `/ui/admin/…` (`rest`: the path segments after `admin`).
pub fn route(ctx: &Ctx, rest: &[&str]) -> Response {
    let me = match ctx.admin() {
        Ok((_, u)) => u.name.clone(),
        Err(r) => return r,
    };
    match (ctx.req.method.as_str(), rest) {
        ("GET", [] | ["users"]) => users_page(ctx),
        ("POST", ["users", "create"]) => create_user(ctx, &me),
        ("GET", ["users", name]) => user_page(ctx, name, None),
        ("POST", ["users", name, "admin"]) => set_admin(ctx, &me, name),
        ("POST", ["users", name, "delete"]) => delete(ctx, &me, name),
        ("POST", ["users", name, "keys", "create"]) => issue_key(ctx, &me, name),
        ("POST", ["users", name, "keys", id, "revoke"]) => revoke_key(ctx, &me, name, id),
        ("GET", ["sessions"]) => sessions_page(ctx),
        ("POST", ["sessions", server, context, "delete"]) => drop_session(ctx, &me, server, context),
        ("GET", ["servers"]) => servers_page(ctx),
        ("GET" | "POST", _) => error_page(ctx, 404, "Not found", "There is no such admin page. Start again from Admin › Users."),
        _ => error_page(ctx, 405, "Method not allowed", "The pages take GET and POST only.").with_header("Allow", "GET, POST"),
    }
}

/// Which admin page is shown (the sub-navigation).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tab {
    Users,
    Sessions,
    Servers,
}

/// An admin page: the sub-navigation, the notice `?done=` names, then `body`.
fn admin_page(ctx: &Ctx, tab: Tab, title: &str, body: Markup) -> Response {
    let item = |t: Tab, href: &str, label: &str| html! { a href=(href) class=(if t == tab { "nav-item current" } else { "nav-item" }) { (label) } };
    let notice = done_notice(ctx);
    let page = html! {
        nav.admin-tabs {
            (item(Tab::Users, "/ui/admin/users", "Users"))
            (item(Tab::Sessions, "/ui/admin/sessions", "Upstream sessions"))
            (item(Tab::Servers, "/ui/admin/servers", "Servers"))
        }
        @if let Some(n) = notice { p.notice role="status" { (n) } }
        (body)
    };
    html(200, frame(ctx, Nav::Admin, title, page))
}

/// The notice of a `?done=` code after a redirect (a fixed set: nothing
/// from the query string is shown).
fn done_notice(ctx: &Ctx) -> Option<&'static str> {
    let query = ctx.req.target.split_once('?').map(|(_, q)| q)?;
    let code = super::parse_form(query.as_bytes()).remove("done")?;
    Some(match code.as_str() {
        "created" => "User created. Issue a key for them below, or let them sign in.",
        "first-user" => {
            "User created. This is the hub's first user: requests to /mcp without a hub key are refused from now on \
             (set \"allowAnonymous\": true in the config to keep key-less access)."
        }
        "admin-on" => "The user is an admin now.",
        "admin-off" => "The user is no longer an admin.",
        "deleted" => "User deleted, with their keys, tokens and activity.",
        "revoked" => "Key revoked: requests with it are refused from now on.",
        "session-deleted" => "Upstream session dropped; the next request to that server starts a new one.",
        _ => return None,
    })
}

/// A path segment with everything but unreserved characters percent-encoded
/// (context keys hold `:`; names are already plain).
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `/ui/admin/users/{name}`.
fn user_href(name: &str) -> String {
    format!("/ui/admin/users/{}", segment(name))
}

/// A refused change as a page: the registry's reason (names only, escaped).
fn refused(ctx: &Ctx, e: &UsersError) -> Response {
    let title = match e.status() {
        404 => "Not found",
        409 => "Cannot change this user",
        503 => "Temporarily unavailable",
        _ => "Cannot do that",
    };
    let r = error_page(ctx, e.status(), title, &e.to_string());
    if e.status() == 503 {
        r.with_header("Retry-After", "2")
    } else {
        r
    }
}

/// `ms` since the Unix epoch as `2026-12-06 23:40` (UTC).
fn date_of(ms: u64) -> String {
    let mut t = crate::logging::rfc3339(ms);
    t.truncate(16);
    t.replacen('T', " ", 1)
}

fn servers_text(servers: &Option<Vec<String>>) -> String {
    match servers {
        None => "all".into(),
        Some(s) if s.is_empty() => "none".into(),
        Some(s) => s.join(", "),
    }
}

/// `GET /ui/admin/users`.
fn users_page(ctx: &Ctx) -> Response {
    let users = ctx.hub.users().list();
    let body = html! {
        p.lead { "People and services with hub keys. Users from the config file are read-only here (edit the file and reload); users created here are run-time users." }
        table #users {
            thead { tr { th { "Name" } th { "Role" } th { "Source" } th { "Servers" } th { "Keys" } th { "Service tokens" } } }
            tbody {
                @for u in &users {
                    tr {
                        td { a href=(user_href(&u.name)) { (u.name) } }
                        td { @if u.admin { span.tag.warn { "admin" } } @else { "user" } }
                        td { (u.source) }
                        td { (servers_text(&u.servers)) }
                        td.num { (u.keys.len()) }
                        td { @if u.tokens.is_empty() { span.muted { "none" } } @else { (u.tokens.join(", ")) } }
                    }
                }
            }
        }
        h2 { "Create a user" }
        form.row #create-user method="post" action="/ui/admin/users/create" {
            (csrf_field(ctx))
            div { label for="new-user-name" { "Name" } br; input #new-user-name name="name" type="text" required maxlength="64" pattern="[A-Za-z0-9_.@\\-]+" placeholder="alice"; }
            div { label { input name="admin" type="checkbox" value="on"; " admin" } }
            button type="submit" { "Create user" }
        }
        p.muted { "Names are 1–64 characters of letters, digits, _ . @ -. A new user has no key: issue one on their page, or let them sign in." }
    };
    admin_page(ctx, Tab::Users, "Admin · Users", body)
}

/// `POST /ui/admin/users/create` → 303 to the new user's page.
fn create_user(ctx: &Ctx, me: &str) -> Response {
    let form = ctx.form();
    let name = form.get("name").map(|n| n.trim()).unwrap_or("");
    let admin = form.get("admin").is_some_and(|v| v == "on");
    let users = ctx.hub.users();
    let keyless_before = users.anonymous_allowed();
    match users.create(name, admin, None) {
        Ok(_) => {
            audit(me, "user.create", name);
            let first = keyless_before && !users.anonymous_allowed();
            if first {
                log::warn!("users: '{name}' is the first user: key-less access to /mcp is now off (allowAnonymous is false)");
            }
            redirect(&format!("{}?done={}", user_href(name), if first { "first-user" } else { "created" }))
        }
        Err(e) => refused(ctx, &e),
    }
}

/// `GET /ui/admin/users/{name}`; `new_key`: a key just issued, shown once.
fn user_page(ctx: &Ctx, name: &str, new_key: Option<(&str, &str)>) -> Response {
    let Some(u) = ctx.hub.users().view(name) else {
        return error_page(ctx, 404, "No such user", &format!("There is no user named '{}'. Go back to Admin › Users.", crate::users::printable_name(name)));
    };
    let me = ctx.user.as_ref().map(|m| m.name.as_str()) == Some(u.name.as_str());
    let base = user_href(&u.name);
    let body = html! {
        p { a href="/ui/admin/users" { "← All users" } }
        @if let Some((key, id)) = new_key {
            div.card #issued {
                p { strong { "New key " code { (id) } " for " (u.name) ": copy it now, it is not shown again." } }
                output #new-key { (key) }
                p { button type="button" data-copy="new-key" { "Copy" } }
                p.muted { "Only its SHA-256 digest is kept. Give it to " (u.name) " over a private channel." }
            }
        }
        (role_section(ctx, &u, &base, me))
        h2 { "Keys" }
        (keys_table(ctx, &u, &base))
        form.row #issue-key method="post" action=(format!("{base}/keys/create")) {
            (csrf_field(ctx))
            div { label for="key-label" { "Label (optional)" } br; input #key-label name="label" type="text" maxlength="100" placeholder="laptop"; }
            button type="submit" { "Issue a key" }
        }
        h2 { "Service tokens" }
        @if u.tokens.is_empty() {
            p.muted { "No service tokens. " (u.name) " sets their own on their Service tokens page." }
        } @else {
            ul #user-tokens { @for t in &u.tokens { li { code { (t) } " " span.tag.set { "set" } } } }
            p.muted { "Values are never shown; " (u.name) " replaces or deletes them on their Service tokens page." }
        }
        @if u.source == "runtime" {
            h2 { "Delete" }
            @if me {
                p.muted { "You cannot delete yourself here; ask another admin." }
            } @else {
                form.row #delete-user method="post" action=(format!("{base}/delete")) {
                    (csrf_field(ctx))
                    label { input name="confirm" type="checkbox" value="on" required; " delete " (u.name) ", their keys, tokens and activity" }
                    button.danger type="submit" { "Delete user" }
                }
            }
        }
    };
    admin_page(ctx, Tab::Users, &format!("Admin · {}", u.name), body)
}

/// The role line and its form (run-time users), or why it is read-only.
fn role_section(ctx: &Ctx, u: &UserView, base: &str, me: bool) -> Markup {
    html! {
        dl.facts {
            dt { "Role" } dd { @if u.admin { span.tag.warn { "admin" } } @else { "user" } }
            dt { "Source" } dd { (u.source) }
            dt { "Servers" } dd { (servers_text(&u.servers)) }
        }
        @if u.source == "config" {
            p.muted #config-user { "This user comes from the config file: their role, servers and config keys are read-only here. Edit the config file and reload the hub to change them. Keys issued here and revoking keys work." }
        } @else if me && u.admin {
            p.muted { "You cannot take away your own admin role; ask another admin." }
        } @else {
            form.row #set-admin method="post" action=(format!("{base}/admin")) {
                (csrf_field(ctx))
                input type="hidden" name="admin" value=(if u.admin { "off" } else { "on" });
                button type="submit" { @if u.admin { "Remove admin role" } @else { "Make admin" } }
            }
        }
    }
}

fn keys_table(ctx: &Ctx, u: &UserView, base: &str) -> Markup {
    html! {
        @if u.keys.is_empty() {
            p.muted #no-keys { "No live keys." }
        } @else {
            table #user-keys {
                thead { tr { th { "Id" } th { "Label" } th { "Created (UTC)" } th { "Source" } th {} } }
                tbody {
                    @for k in &u.keys {
                        tr {
                            td { code { (k.id) } }
                            td { (k.label.as_deref().unwrap_or("")) }
                            td { (k.created_ms.map(date_of).unwrap_or_else(|| "—".into())) }
                            td { (k.source) }
                            td {
                                form.inline method="post" action=(format!("{base}/keys/{}/revoke", segment(&k.id))) {
                                    (csrf_field(ctx))
                                    button.danger type="submit" { "Revoke" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `POST /ui/admin/users/{name}/admin` (`admin=on|off`) → 303.
fn set_admin(ctx: &Ctx, me: &str, name: &str) -> Response {
    let on = ctx.form().get("admin").is_some_and(|v| v == "on");
    if name == me && !on {
        return error_page(ctx, 409, "Cannot change your own role", "You cannot take away your own admin role; ask another admin.");
    }
    match ctx.hub.users().set_admin(name, on) {
        Ok(_) => {
            audit(me, if on { "user.admin" } else { "user.unadmin" }, name);
            redirect(&format!("{}?done={}", user_href(name), if on { "admin-on" } else { "admin-off" }))
        }
        Err(e) => refused(ctx, &e),
    }
}

/// `POST /ui/admin/users/{name}/delete` (`confirm=on`) → 303 to the list.
fn delete(ctx: &Ctx, me: &str, name: &str) -> Response {
    if name == me {
        return error_page(ctx, 409, "Cannot delete yourself", "You cannot delete your own user; ask another admin.");
    }
    if ctx.form().get("confirm").is_none_or(|v| v != "on") {
        return error_page(ctx, 400, "Not confirmed", "Tick the box to confirm the deletion, then press Delete user again.");
    }
    match delete_user(ctx.hub, me, name) {
        Ok(()) => redirect("/ui/admin/users?done=deleted"),
        Err(e) => refused(ctx, &e),
    }
}

/// `POST /ui/admin/users/{name}/keys/create` (`label`) → 200: the user's
/// page with the new key shown once.
fn issue_key(ctx: &Ctx, me: &str, name: &str) -> Response {
    let label = ctx.form().get("label").map(|l| l.trim().to_string()).filter(|l| !l.is_empty());
    match ctx.hub.users().issue_key(name, label) {
        Ok((key, view)) => {
            audit(me, "key.issue", &format!("{name}/{}", view.id));
            user_page(ctx, name, Some((&key, &view.id)))
        }
        Err(e) => refused(ctx, &e),
    }
}

/// `POST /ui/admin/users/{name}/keys/{id}/revoke` → 303.
fn revoke_key(ctx: &Ctx, me: &str, name: &str, id: &str) -> Response {
    match ctx.hub.users().revoke_key(name, id) {
        Ok(()) => {
            audit(me, "key.revoke", &format!("{name}/{id}"));
            redirect(&format!("{}?done=revoked", user_href(name)))
        }
        Err(e) => refused(ctx, &e),
    }
}

/// `GET /ui/admin/sessions`.
fn sessions_page(ctx: &Ctx) -> Response {
    let sessions = match upstream_sessions(ctx.hub) {
        Ok(s) => s,
        Err(e) => {
            log::warn!("ui: upstream sessions cannot be listed: {e}");
            return error_page(ctx, 503, "Temporarily unavailable", "The hub cannot read its session store right now. Try again in a few seconds.")
                .with_header("Retry-After", "2");
        }
    };
    let body = html! {
        p.lead {
            "The hub's sessions with legacy upstream servers, one per server and context key ("
            code { "shared" } ", or " code { "tok:…" } " per set of user credentials). Dropping one ends it upstream; the next request starts a new one."
        }
        @if sessions.is_empty() {
            p.muted #no-sessions { "No upstream sessions." }
        } @else {
            table #upstream-sessions {
                thead { tr { th { "Server" } th { "Context key" } th { "Session id" } th { "Expires in" } th {} } }
                tbody {
                    @for s in &sessions {
                        tr {
                            td { (s.server_name) }
                            td { code { (s.context_key) } }
                            td { code { (s.session_id) } }
                            td { @match s.ttl { Some(t) if t >= 0 => { (t) " s" } Some(_) => { "no expiry" } None => { span.muted { "this process only" } } } }
                            td {
                                form.inline method="post" action=(format!("/ui/admin/sessions/{}/{}/delete", segment(&s.server_name), segment(&s.context_key))) {
                                    (csrf_field(ctx))
                                    button.danger type="submit" { "Drop" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    admin_page(ctx, Tab::Sessions, "Admin · Upstream sessions", body)
}

/// `POST /ui/admin/sessions/{server}/{contextKey}/delete` → 303.
fn drop_session(ctx: &Ctx, me: &str, server: &str, context: &str) -> Response {
    match drop_upstream_session(ctx.hub, me, server, context) {
        Ok(_) => redirect("/ui/admin/sessions?done=session-deleted"),
        Err((status, why)) => error_page(ctx, status, "No such session", &format!("{why}. It may have ended already; reload the list.")),
    }
}

/// `GET /ui/admin/servers`.
fn servers_page(ctx: &Ctx) -> Response {
    let servers = ctx.hub.server_statuses();
    let skipped = ctx.hub.config().skipped.clone();
    let body = html! {
        p.lead { "Each upstream server as this hub instance sees it now (the same figures as " code { "/readyz" } " and " code { "/metrics" } ")." }
        @if servers.is_empty() {
            p.muted #no-servers { "No servers are configured." }
        } @else {
            table #servers {
                thead { tr { th { "Server" } th { "Era" } th { "Health" } th { "Breaker" } th { "Bulkhead (in use / limit, queued)" } th { "Sessions" } th { "Last error" } } }
                tbody {
                    @for s in &servers {
                        @let st = &s.state;
                        tr {
                            td { (s.name) }
                            td { (st.era.map_or("not yet known", |e| e.as_str())) }
                            td {
                                @if st.ok { span.tag.ok { "ok" } } @else { span.tag.bad { "failing" } }
                                @if let Some(ms) = st.last_success_ms { br; span.muted { "last reached " (date_of(ms)) } }
                            }
                            td { span class=(if st.bulkhead.circuit == "closed" { "tag ok" } else { "tag bad" }) { (st.bulkhead.circuit) } }
                            td {
                                (st.bulkhead.in_flight) " / " (s.max_concurrency.map_or("unlimited".to_string(), |m| m.to_string()))
                                ", " (st.bulkhead.queued) " queued"
                                @if let Some(h) = &st.heavy { br; span.muted { "heavy: " (h.in_flight) " in use, " (h.queued) " queued" } }
                            }
                            td.num { (s.sessions) }
                            td { @if let Some(c) = &st.last_error_class { code { (c) } } @else { span.muted { "—" } } }
                        }
                    }
                }
            }
        }
        @if !skipped.is_empty() {
            h2 { "Skipped at start" }
            ul { @for s in &skipped { li { (s.name) ": " (s.reason) } } }
        }
    };
    admin_page(ctx, Tab::Servers, "Admin · Servers", body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_encode_all_but_unreserved_characters() {
        assert_eq!(segment("tok:ab12"), "tok%3Aab12");
        assert_eq!(segment("a b/c?"), "a%20b%2Fc%3F");
        assert_eq!(segment("srv-1.x_y~"), "srv-1.x_y~");
        assert_eq!(crate::http::percent_decode(&segment("client:é/ö")), "client:é/ö");
    }
}
