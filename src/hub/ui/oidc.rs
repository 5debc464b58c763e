//! Sign-in with an OpenID Connect provider: authorization code + PKCE (issue 17).

use super::{error_page, Ctx};
use crate::http::Response;

/// `GET /ui/login/oidc`: to the provider.
pub fn start(ctx: &Ctx) -> Response {
    error_page(ctx, 404, "Not available", "Signing in with an OpenID provider is not built yet.")
}

/// `GET /ui/callback/oidc`: back from the provider.
pub fn callback(ctx: &Ctx) -> Response {
    error_page(ctx, 404, "Not available", "Signing in with an OpenID provider is not built yet.")
}
