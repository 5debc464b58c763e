//! The signed-in person's pages: Connect, Keys, Service tokens (issue 17).

use super::{error_page, Ctx};
use crate::http::Response;

fn todo(ctx: &Ctx) -> Response {
    match ctx.signed_in() {
        Ok(_) => error_page(ctx, 501, "Not built yet", "This page is being built."),
        Err(r) => r,
    }
}

/// `GET /ui/connect`.
pub fn connect(ctx: &Ctx) -> Response {
    todo(ctx)
}

/// `GET /ui/keys`.
pub fn keys(ctx: &Ctx) -> Response {
    todo(ctx)
}

/// `POST /ui/keys/create`.
pub fn create_key(ctx: &Ctx) -> Response {
    todo(ctx)
}

/// `POST /ui/keys/{id}/revoke`.
pub fn revoke_key(ctx: &Ctx, _id: &str) -> Response {
    todo(ctx)
}

/// `GET /ui/tokens`.
pub fn tokens(ctx: &Ctx) -> Response {
    todo(ctx)
}

/// `POST /ui/tokens/{NAME}`.
pub fn set_token(ctx: &Ctx, _name: &str) -> Response {
    todo(ctx)
}

/// `POST /ui/tokens/{NAME}/delete`.
pub fn delete_token(ctx: &Ctx, _name: &str) -> Response {
    todo(ctx)
}
