//! The Activity page: the signed-in person's last requests and a 14-day chart (issue 17).

use super::{error_page, Ctx};
use crate::http::Response;

/// `GET /ui/activity`.
pub fn page(ctx: &Ctx) -> Response {
    match ctx.signed_in() {
        Ok(_) => error_page(ctx, 501, "Not built yet", "This page is being built."),
        Err(r) => r,
    }
}
