//! The signed-in person's pages: Connect, Keys, Service tokens (issue 17).
//!
//! - `GET /ui/connect`: the endpoint `{base}/mcp`, the Cursor, Claude Code
//!   and VS Code snippets of README "Pointing your client at the hub"
//!   (`pre#snippet-cursor`, `#snippet-claude`, `#snippet-claude-json`,
//!   `#snippet-vscode`, each with a `button[data-copy]`), the key as the
//!   placeholder `mcphub_…`, and the servers the person may use with the
//!   service tokens they still lack;
//! - `GET /ui/keys`: `table#keys` (label, id, created, last used, source, a
//!   revoke form per row) and `form#create-key`; `POST /ui/keys/create`
//!   answers 200 with the new key once (`output#new-key`) and the snippets
//!   filled with it; `POST /ui/keys/{id}/revoke` → 303 `/ui/keys?done=revoked`
//!   (an id that is not the person's own → 404, nothing changes); below,
//!   "Connected apps" (`table#apps`): the OAuth clients the person allowed,
//!   each with a revoke form → `POST /ui/apps/revoke` (field `client`) →
//!   303 `/ui/keys?done=app-revoked`;
//! - `GET /ui/tokens`: per token name the servers needing it, set or not
//!   (names only: values are write-only and never rendered), a
//!   `form.set-token` and, when set, a delete form; `POST /ui/tokens/{NAME}`
//!   and `POST /ui/tokens/{NAME}/delete` → 303 `/ui/tokens?done=set-NAME` /
//!   `?done=deleted-NAME`.
//!
//! Every change goes through the same registry calls as `/api/me` and
//! `/api/admin/*` and logs the same `audit` line. The CSRF and `Origin`
//! checks ran before these handlers (`super::check_post`).

use super::layout::{csrf_field, page, Nav};
use super::{error_page, html, redirect, Ctx};
use crate::http::Response;
use crate::hub::admin::audit;
use crate::store::kv::KvError;
use crate::users::oauth::ConnectedApp;
use crate::users::{User, UsersError};
use maud::{html, Markup};
use serde_json::json;
use std::collections::BTreeMap;

/// Most characters of a key label (the registry's rule, `Users::issue_key`).
pub const MAX_LABEL_CHARS: usize = 64;
/// What the snippets show where the key goes when no key is at hand.
pub const KEY_PLACEHOLDER: &str = "mcphub_…";

/// `ms` since the Unix epoch as `YYYY-MM-DD HH:MM UTC`.
pub fn utc_minute(ms: u64) -> String {
    let stamp = crate::logging::rfc3339(ms);
    format!("{} UTC", stamp.get(..16).unwrap_or(&stamp).replacen('T', " ", 1))
}

/// The client snippets for `endpoint` (`{base}/mcp`) and `key`: `(id, title,
/// where it goes, text)`, the same shapes as README "Pointing your client at the hub".
pub fn snippets(endpoint: &str, key: &str) -> Vec<(&'static str, &'static str, &'static str, String)> {
    let pretty = |v: serde_json::Value| serde_json::to_string_pretty(&v).unwrap_or_default();
    let bearer = format!("Bearer {key}");
    vec![
        (
            "snippet-cursor",
            "Cursor",
            "~/.cursor/mcp.json (or .cursor/mcp.json in a project)",
            pretty(json!({"mcpServers": {"mcphub": {"url": format!("{endpoint}?key={key}")}}})),
        ),
        (
            "snippet-claude",
            "Claude Code",
            "run in a terminal",
            format!("claude mcp add --transport http mcphub {endpoint} --header \"Authorization: {bearer}\""),
        ),
        (
            "snippet-claude-json",
            "Claude Code (.mcp.json)",
            ".mcp.json in a project",
            pretty(json!({"mcpServers": {"mcphub": {"type": "http", "url": endpoint, "headers": {"Authorization": bearer}}}})),
        ),
        (
            "snippet-vscode",
            "VS Code",
            ".vscode/mcp.json",
            pretty(json!({"servers": {"mcphub": {"type": "http", "url": endpoint, "headers": {"Authorization": bearer}}}})),
        ),
    ]
}

/// The servers `user` may use, in name order, with the `${user.X}` token names each needs.
fn usable_servers(ctx: &Ctx, user: &User) -> Vec<(String, Vec<String>)> {
    let config = ctx.hub.config();
    config.servers.iter().filter(|s| user.may_use(&s.name)).map(|s| (s.name.clone(), s.user_tokens.clone())).collect()
}

/// The body of the Connect page; `key`: the key just created (else the placeholder and a link to create one).
fn connect_body(ctx: &Ctx, user: &User, key: Option<&str>) -> Markup {
    let endpoint = format!("{}/mcp", ctx.base);
    let servers = usable_servers(ctx, user);
    html! {
        @if let Some(k) = key {
            div.card.new-key {
                h2 { "Your new key" }
                output id="new-key" { (k) }
                p.notice { "This key is shown only now: copy it into your client below. The hub keeps only its SHA-256 digest; if you lose it, create another and revoke this one." }
                button type="button" data-copy="new-key" { "Copy key" }
            }
        }
        p.lead {
            "Your MCPHub endpoint is " code id="endpoint" { (endpoint) } ". "
            "Point your MCP client at it with one of your hub keys."
        }
        @if key.is_none() {
            p.card {
                "The snippets below show " code { (KEY_PLACEHOLDER) } " where your key goes. "
                "Keys are shown only when they are created: "
                a href="/ui/keys#create-key" { "create a key" }
                " and the snippets come back filled in."
            }
        }
        @for (id, title, place, text) in snippets(&endpoint, key.unwrap_or(KEY_PLACEHOLDER)) {
            section.snippet {
                div.snippet-head {
                    h2 { (title) }
                    span.muted { (place) }
                    button type="button" data-copy=(id) { "Copy" }
                }
                pre id=(id) { (text) }
            }
        }
        h2 { "Servers you can use" }
        @if servers.is_empty() {
            p.muted { "No servers are configured for you yet. Ask your admin." }
        } @else {
            table id="servers" {
                thead { tr { th { "Server" } th { "Service tokens it needs" } } }
                tbody {
                    @for (name, tokens) in &servers {
                        tr {
                            td { code { (name) } }
                            td {
                                @if tokens.is_empty() { span.muted { "none" } }
                                @for t in tokens {
                                    @if user.token(t).is_some() {
                                        span.tag.set { (t) " set" } " "
                                    } @else {
                                        span.tag.unset { (t) " not set" } " "
                                    }
                                }
                                @if tokens.iter().any(|t| user.token(t).is_none()) {
                                    " " a href="/ui/tokens" { "Set it on Service tokens" }
                                    " — until then this server's tools are hidden from you."
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /ui/connect`.
pub fn connect(ctx: &Ctx) -> Response {
    let (_, user) = match ctx.signed_in() {
        Ok(s) => s,
        Err(r) => return r,
    };
    html(200, page(ctx, Nav::Connect, "Connect your client", connect_body(ctx, user, None)))
}

/// The Keys page with `status`, an optional problem (error) line and notice.
fn keys_page(ctx: &Ctx, user: &User, status: u16, problem: Option<&str>, label: &str) -> Response {
    let Some(view) = ctx.hub.users().view(&user.name) else {
        return error_page(ctx, 404, "Not found", "Your user no longer exists. Sign in again.");
    };
    let notice = match ctx.req.query("done").as_deref() {
        Some("revoked") => Some("The key was revoked: clients using it are refused (401) from now on."),
        Some("app-revoked") => Some("The app was disconnected: its tokens are refused (401) from now on, and it must ask again to connect."),
        _ => None,
    };
    let apps = ctx.hub.oauth().store().connected_apps(&user.name);
    let body = html! {
        @if let Some(p) = problem { p.problem role="alert" { (p) } }
        @if let Some(n) = notice { p.notice role="status" { (n) } }
        p.lead { "Your hub keys. A key is shown once, when it is created; here you see its label and the first 8 hex characters of its SHA-256 (its id)." }
        @if view.keys.is_empty() {
            p.muted { "You have no live key. Create one below." }
        } @else {
            table id="keys" {
                thead { tr { th { "Label" } th { "Id" } th { "Created" } th { "Last used" } th { "Source" } th {} } }
                tbody {
                    @for k in &view.keys {
                        tr {
                            td { @match &k.label { Some(l) => { (l) } None => { span.muted { "—" } } } }
                            td { code { (k.id) } }
                            td { @match k.created_ms { Some(ms) => { (utc_minute(ms)) } None => { span.muted { "config file" } } } }
                            td { @match k.last_used_ms { Some(ms) => { (utc_minute(ms)) } None => { span.muted { "never" } } } }
                            td { (k.source) }
                            td {
                                form.inline method="post" action={ "/ui/keys/" (k.id) "/revoke" } {
                                    (csrf_field(ctx))
                                    button.danger type="submit" { "Revoke" }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Create a key" }
        form.row id="create-key" method="post" action="/ui/keys/create" {
            (csrf_field(ctx))
            div.field {
                label for="label" { "Label" }
                input id="label" type="text" name="label" maxlength="64" placeholder="laptop, CI, …" value=(label) autocomplete="off";
            }
            button type="submit" { "Create key" }
        }
        p.muted { "A label says where the key is used (at most 64 characters). The key is shown once, on the next page, with your client snippets filled in." }
        (connected_apps(ctx, apps))
    };
    html(status, page(ctx, Nav::Keys, "Keys", body))
}

/// What the Connected apps list shows for a client id: a metadata
/// document's host, or a registered client's id shortened to 8 hex.
pub fn short_client_id(client_id: &str) -> String {
    if client_id.starts_with("https://") || client_id.starts_with("http://") {
        return crate::config::auth::host_of(client_id).to_string();
    }
    match client_id.strip_prefix("mcphub_client_") {
        Some(hex) => format!("mcphub_client_{}…", hex.get(..8).unwrap_or(hex)),
        None => client_id.chars().take(24).collect(),
    }
}

/// The Keys page's "Connected apps" section (`table#apps`, a revoke form per app).
fn connected_apps(ctx: &Ctx, apps: Result<Vec<ConnectedApp>, KvError>) -> Markup {
    if let Err(e) = &apps {
        log::warn!("ui: connected apps: the store is unavailable ({e})");
    }
    html! {
        h2 id="connected-apps" { "Connected apps" }
        @match apps {
            Err(_) => {
                p.problem role="alert" { "The hub cannot reach its store right now, so your connected apps cannot be listed. Try again in a few seconds." }
            }
            Ok(apps) if apps.is_empty() => {
                p.muted id="no-apps" {
                    "No apps connected yet. MCP clients that support OAuth (Claude Code, Cursor, VS Code…) can connect with just the URL "
                    code { (ctx.base) "/mcp" } "."
                }
            }
            Ok(apps) => {
                p.lead { "Apps you allowed to use MCPHub as you (OAuth). Revoking one stops its tokens at once." }
                table id="apps" {
                    thead { tr { th { "App" } th { "Client" } th { "May" } th { "Approved" } th { "Last used" } th {} } }
                    tbody {
                        @for app in &apps {
                            tr {
                                td { (app.client_name) }
                                td { code title=(app.client_id) { (short_client_id(&app.client_id)) } }
                                td { @for s in app.scope.split(' ') { span.tag { (s) } " " } }
                                td { (utc_minute(app.consented_ms)) }
                                td { @match app.last_used_ms { Some(ms) => { (utc_minute(ms)) } None => { span.muted { "never" } } } }
                                td {
                                    form.inline.revoke-app method="post" action="/ui/apps/revoke" {
                                        (csrf_field(ctx))
                                        input type="hidden" name="client" value=(app.client_id);
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
}

/// `POST /ui/apps/revoke` (form field `client`): forgets the signed-in
/// person's consent to that client and revokes its tokens → 303
/// `/ui/keys?done=app-revoked`.
pub fn revoke_app(ctx: &Ctx) -> Response {
    let (_, user) = match ctx.signed_in() {
        Ok(s) => s,
        Err(r) => return r,
    };
    let form = ctx.form();
    let Some(client) = form.get("client").filter(|c| !c.is_empty()) else {
        return keys_page(ctx, user, 400, Some("No app was named. Go back to Keys and use an app's Revoke button."), "");
    };
    match ctx.hub.oauth().store().revoke_app(&user.name, client) {
        Ok(()) => {
            audit(&user.name, "oauth.revoke", &format!("{}/{}", user.name, crate::trace::sanitize(client, 200)));
            redirect("/ui/keys?done=app-revoked")
        }
        Err(e) => {
            log::warn!("ui: revoking an app: the store is unavailable ({e})");
            keys_page(ctx, user, 503, Some("The hub cannot reach its store right now; nothing was changed. Try again in a few seconds."), "")
        }
    }
}

/// `GET /ui/keys`.
pub fn keys(ctx: &Ctx) -> Response {
    match ctx.signed_in() {
        Ok((_, user)) => keys_page(ctx, user, 200, None, ""),
        Err(r) => r,
    }
}

/// `POST /ui/keys/create`: the new key once, in the Connect page (200, `no-store`).
pub fn create_key(ctx: &Ctx) -> Response {
    let (_, user) = match ctx.signed_in() {
        Ok(s) => s,
        Err(r) => return r,
    };
    let form = ctx.form();
    let label = form.get("label").map(|l| l.trim()).unwrap_or("");
    if label.chars().count() > MAX_LABEL_CHARS || label.chars().any(char::is_control) {
        let shown: String = label.chars().filter(|c| !c.is_control()).take(MAX_LABEL_CHARS).collect();
        return keys_page(ctx, user, 400, Some("A key label is at most 64 characters, without control characters. Shorten it and try again."), &shown);
    }
    let label = (!label.is_empty()).then(|| label.to_string());
    match ctx.hub.users().issue_key(&user.name, label) {
        Ok((key, view)) => {
            audit(&user.name, "key.issue", &format!("{}/{}", user.name, view.id));
            html(200, page(ctx, Nav::Keys, "Key created", connect_body(ctx, user, Some(&key))))
        }
        Err(e) => keys_page(ctx, user, e.status(), Some(&registry_problem(&e)), ""),
    }
}

/// `POST /ui/keys/{id}/revoke`: only the signed-in person's own key (else 404).
pub fn revoke_key(ctx: &Ctx, id: &str) -> Response {
    let (_, user) = match ctx.signed_in() {
        Ok(s) => s,
        Err(r) => return r,
    };
    match ctx.hub.users().revoke_key(&user.name, id) {
        Ok(()) => {
            audit(&user.name, "key.revoke", &format!("{}/{id}", user.name));
            redirect("/ui/keys?done=revoked")
        }
        Err(UsersError::NotFound(_) | UsersError::Invalid(_)) => {
            error_page(ctx, 404, "No such key", "You have no live key with that id. Go back to Keys and reload the page.")
        }
        Err(e) => keys_page(ctx, user, e.status(), Some(&registry_problem(&e)), ""),
    }
}

/// A registry refusal as a sentence for the page (never a secret: the
/// registry's messages name rules and names only).
fn registry_problem(e: &UsersError) -> String {
    match e {
        UsersError::NoSecretKey => "Service tokens cannot be stored on this hub yet: it has no secret key to encrypt them. \
             Ask your admin to set MCPHUB_SECRET_KEY_FILE (a file with 64 hex characters, e.g. from `openssl rand -hex 32`) and restart the hub."
            .into(),
        UsersError::Store(_) => "The hub cannot reach its user store right now; nothing was changed. Try again in a few seconds.".into(),
        other => {
            let text = other.to_string();
            let mut first = text.chars();
            match first.next() {
                Some(c) => format!("{}{}.", c.to_uppercase(), first.as_str().trim_end_matches('.')),
                None => "The change was refused.".into(),
            }
        }
    }
}

/// The Service tokens page with `status` and an optional problem line.
fn tokens_page(ctx: &Ctx, user: &User, status: u16, problem: Option<&str>) -> Response {
    // Token name → the servers needing it (empty: a token no server needs).
    let mut names: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (server, tokens) in usable_servers(ctx, user) {
        for t in tokens {
            names.entry(t).or_default().push(server.clone());
        }
    }
    for t in user.tokens.keys() {
        names.entry(t.clone()).or_default();
    }
    let done = ctx.req.query("done");
    let notice = match done.as_deref().and_then(|d| d.split_once('-')) {
        Some(("set", name)) => Some(html! { "Token " code { (name) } " was saved. Servers that need it use it from your next request." }),
        Some(("deleted", name)) => Some(html! { "Token " code { (name) } " was deleted." }),
        _ => None,
    };
    let body = html! {
        @if let Some(p) = problem { p.problem role="alert" { (p) } }
        @if let Some(n) = notice { p.notice role="status" { (n) } }
        p.lead {
            "Some servers act as you and need your own credentials (a GitHub token, an Atlassian token, …). "
            "Set them here; the hub sends each only to the servers whose configuration names it. "
            "Values are write-only: they are never shown again, here or anywhere."
        }
        @if names.is_empty() {
            p.muted { "None of the servers you may use needs a service token." }
        } @else {
            table id="tokens" {
                thead { tr { th { "Token" } th { "Needed by" } th { "Status" } th { "Set or replace" } th {} } }
                tbody {
                    @for (name, servers) in &names {
                        @let set = user.token(name).is_some();
                        tr {
                            td { code { (name) } }
                            td {
                                @if servers.is_empty() { span.muted { "no server you may use" } }
                                @for (i, s) in servers.iter().enumerate() {
                                    @if i > 0 { ", " }
                                    code { (s) }
                                }
                            }
                            td {
                                @if set { span.tag.set { "set" } } @else { span.tag.unset { "not set" } }
                            }
                            td {
                                @if !servers.is_empty() || set {
                                    form.set-token.row method="post" action={ "/ui/tokens/" (name) } {
                                        (csrf_field(ctx))
                                        input type="hidden" name="name" value=(name);
                                        input type="password" name="value" autocomplete="off" required
                                            placeholder=(if set { "new value" } else { "value" }) aria-label={ "Value of " (name) };
                                        button type="submit" { @if set { "Replace" } @else { "Set" } }
                                    }
                                }
                            }
                            td {
                                @if set {
                                    form.delete-token.inline method="post" action={ "/ui/tokens/" (name) "/delete" } {
                                        (csrf_field(ctx))
                                        button.danger type="submit" { "Delete" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    html(status, page(ctx, Nav::Tokens, "Service tokens", body))
}

/// `GET /ui/tokens`.
pub fn tokens(ctx: &Ctx) -> Response {
    match ctx.signed_in() {
        Ok((_, user)) => tokens_page(ctx, user, 200, None),
        Err(r) => r,
    }
}

/// The problem line for a token name that is not one (`name` escaped by maud where shown).
fn bad_token_name(name: &str) -> Option<String> {
    if crate::config::valid_token_name(name) {
        return None;
    }
    let shown: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
    Some(format!("“{shown}” is not a token name: token names are 1 to 64 characters of A–Z, a–z, 0–9 and _."))
}

/// `POST /ui/tokens/{NAME}`: sets or replaces the token (its value never shown back).
pub fn set_token(ctx: &Ctx, name: &str) -> Response {
    let (_, user) = match ctx.signed_in() {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Some(p) = bad_token_name(name) {
        return tokens_page(ctx, user, 400, Some(&p));
    }
    let form = ctx.form();
    let value = form.get("value").map(String::as_str).unwrap_or("");
    match ctx.hub.users().set_token(&user.name, name, value) {
        Ok(()) => {
            audit(&user.name, "token.set", &format!("{}/{name}", user.name));
            redirect(&format!("/ui/tokens?done=set-{name}"))
        }
        Err(e) => tokens_page(ctx, user, e.status(), Some(&registry_problem(&e))),
    }
}

/// `POST /ui/tokens/{NAME}/delete`.
pub fn delete_token(ctx: &Ctx, name: &str) -> Response {
    let (_, user) = match ctx.signed_in() {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Some(p) = bad_token_name(name) {
        return tokens_page(ctx, user, 400, Some(&p));
    }
    match ctx.hub.users().delete_token(&user.name, name) {
        Ok(()) => {
            audit(&user.name, "token.delete", &format!("{}/{name}", user.name));
            redirect(&format!("/ui/tokens?done=deleted-{name}"))
        }
        Err(e) => tokens_page(ctx, user, e.status(), Some(&registry_problem(&e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_show_to_the_minute_in_utc() {
        assert_eq!(utc_minute(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_minute(1_764_977_123_456), "2025-12-05 23:25 UTC");
    }

    #[test]
    fn snippets_carry_the_endpoint_and_key_in_the_readme_shapes() {
        let s = snippets("https://hub.example.com/mcp", "mcphub_k");
        let by = |id: &str| s.iter().find(|x| x.0 == id).map(|x| x.3.clone()).unwrap();
        let cursor: serde_json::Value = serde_json::from_str(&by("snippet-cursor")).unwrap();
        assert_eq!(cursor["mcpServers"]["mcphub"]["url"], "https://hub.example.com/mcp?key=mcphub_k");
        assert_eq!(
            by("snippet-claude"),
            "claude mcp add --transport http mcphub https://hub.example.com/mcp --header \"Authorization: Bearer mcphub_k\""
        );
        let claude: serde_json::Value = serde_json::from_str(&by("snippet-claude-json")).unwrap();
        assert_eq!(claude["mcpServers"]["mcphub"]["type"], "http");
        assert_eq!(claude["mcpServers"]["mcphub"]["headers"]["Authorization"], "Bearer mcphub_k");
        let vscode: serde_json::Value = serde_json::from_str(&by("snippet-vscode")).unwrap();
        assert_eq!(vscode["servers"]["mcphub"]["url"], "https://hub.example.com/mcp");
        assert_eq!(vscode["servers"]["mcphub"]["headers"]["Authorization"], "Bearer mcphub_k");
    }
}
