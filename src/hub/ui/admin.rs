//! The admin pages: users, upstream sessions, servers (issue 17).

use super::{error_page, Ctx};
use crate::http::Response;

/// `/ui/admin/…` (`rest`: the path segments after `admin`).
pub fn route(ctx: &Ctx, _rest: &[&str]) -> Response {
    match ctx.admin() {
        Ok(_) => error_page(ctx, 501, "Not built yet", "This page is being built."),
        Err(r) => r,
    }
}
