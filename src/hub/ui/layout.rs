//! The frame of every page (maud): head with the stylesheet and script,
//! the navigation for the signed-in person (admins see Admin), the logout
//! form, and the sign-in and message pages. Nothing here uses
//! `PreEscaped` on a value from a user, an upstream or a provider.

use super::Ctx;
use crate::config::auth::AuthConfig;
use maud::{html, Markup, DOCTYPE};

/// Which navigation entry is the current page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// `/ui/connect`.
    Connect,
    /// `/ui/keys`.
    Keys,
    /// `/ui/tokens`.
    Tokens,
    /// `/ui/activity`.
    Activity,
    /// `/ui/admin/*`.
    Admin,
    /// None (sign-in, messages).
    None,
}

/// The hidden CSRF field of a form for the signed-in session (empty when
/// there is no session; such a POST is refused anyway).
pub fn csrf_field(ctx: &Ctx) -> Markup {
    let token = ctx.session.as_ref().map(|s| s.csrf.as_str()).unwrap_or("");
    html! { input type="hidden" name="csrf" value=(token); }
}

/// The whole page: `title` in `<title>` and as the `h1`, `body` below it.
pub fn page(ctx: &Ctx, nav: Nav, title: &str, body: Markup) -> Markup {
    let user = ctx.user.as_ref();
    let item = |n: Nav, href: &str, label: &str| {
        html! { a href=(href) class=(if n == nav { "nav-item current" } else { "nav-item" }) { (label) } }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · MCPHub" }
                link rel="stylesheet" href="/ui/static/style.css";
                script src="/ui/static/app.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/ui/" { "MCPHub" }
                    @if let Some(u) = user {
                        nav {
                            (item(Nav::Connect, "/ui/connect", "Connect"))
                            (item(Nav::Keys, "/ui/keys", "Keys"))
                            (item(Nav::Tokens, "/ui/tokens", "Service tokens"))
                            (item(Nav::Activity, "/ui/activity", "Activity"))
                            @if u.admin { (item(Nav::Admin, "/ui/admin/users", "Admin")) }
                        }
                        div.who {
                            span.user-name title="Signed in as" { (u.name) }
                            form.inline method="post" action="/ui/logout" {
                                (csrf_field(ctx))
                                button.link type="submit" id="logout" { "Sign out" }
                            }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
                footer { "MCPHub · " a href="/ui/connect" { "Connect" } " · endpoint " code { (ctx.base) "/mcp" } }
            }
        }
    }
}

/// A page with one message (errors, refusals): `title` and `text`, and a way on.
pub fn message(ctx: &Ctx, title: &str, text: &str) -> Markup {
    let body = html! {
        p.message { (text) }
        p {
            @if ctx.session.is_some() { a.button href="/ui/connect" { "Back to your pages" } }
            @else { a.button href="/ui/login" { "Back to sign-in" } }
        }
    };
    page(ctx, Nav::None, title, body)
}

/// The sign-in page: provider buttons (`a#signin-oidc`, `a#signin-github`)
/// and the key form (`form#signin-key`) with the double-submit `csrf`;
/// `connecting`: the name of the OAuth client waiting for this sign-in
/// (`p#connecting`).
pub fn login(ctx: &Ctx, auth: &AuthConfig, csrf: &str, problem: Option<&str>, connecting: Option<&str>) -> Markup {
    let body = html! {
        @if let Some(p) = problem { p.problem role="alert" { (p) } }
        @if let Some(c) = connecting { p.notice id="connecting" { "Sign in to connect " strong { (c) } " to MCPHub." } }
        p.lead { "Sign in to get your MCPHub key, set the service tokens your servers need, and see your activity." }
        @if ctx.hub.users().is_empty() {
            p.notice id="no-users" {
                "This hub has no users yet, so /mcp is open to anyone on this machine. To sign in here, an admin creates the first user: "
                code { "mcphub keygen --admin --user NAME" }
                " prints a key and the lines for the config file; or configure a sign-in provider with "
                code { "\"autoProvision\": true" } "."
            }
        }
        div.signin {
            @if let Some(o) = &auth.oidc {
                a.button.primary id="signin-oidc" href="/ui/login/oidc" { (o.label) }
            }
            @if auth.github.is_some() {
                a.button.primary id="signin-github" href="/ui/login/github" { "Sign in with GitHub" }
            }
            @if auth.key_sign_in {
                form id="signin-key" method="post" action="/ui/login/key" {
                    input type="hidden" name="csrf" value=(csrf);
                    label for="key" { "Or paste your hub key" }
                    input id="key" name="key" type="password" autocomplete="off" placeholder="mcphub_…" required;
                    button type="submit" { "Sign in with a key" }
                }
            }
            @if auth.oidc.is_none() && auth.github.is_none() && !auth.key_sign_in {
                p { "No way to sign in is configured on this hub. Ask your admin." }
            }
        }
    };
    page(ctx, Nav::None, "Sign in", body)
}
