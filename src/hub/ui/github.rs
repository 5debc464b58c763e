//! Sign-in with GitHub OAuth 2.0 (issue 17).

use super::{error_page, Ctx};
use crate::http::Response;

/// `GET /ui/login/github`: to the provider.
pub fn start(ctx: &Ctx) -> Response {
    error_page(ctx, 404, "Not available", "Signing in with GitHub is not built yet.")
}

/// `GET /ui/callback/github`: back from the provider.
pub fn callback(ctx: &Ctx) -> Response {
    error_page(ctx, 404, "Not available", "Signing in with GitHub is not built yet.")
}
