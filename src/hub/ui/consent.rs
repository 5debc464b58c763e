//! `/oauth/authorize` (issue 18): the authorization request of an MCP
//! client, as a page. The person signs in with the pages' sign-in (the
//! request is resumed after it), then a consent page names the client, its
//! redirect URI and the scopes; Allow sends the browser to the client's
//! redirect URI with `code`, `state` and `iss` (RFC 9207). A consent is
//! remembered per user and client: a later request within it skips the page.

use super::Ctx;
use crate::http::Response;

/// The authorization endpoint's path (served with the pages: their
/// sign-in, session, CSRF checks and headers).
pub const PATH: &str = "/oauth/authorize";

/// `GET /oauth/authorize`.
pub fn authorize(ctx: &Ctx) -> Response {
    let _ = ctx;
    todo!()
}

/// `POST /oauth/authorize`: the consent form's Allow or Deny.
pub fn decide(ctx: &Ctx) -> Response {
    let _ = ctx;
    todo!()
}
