//! `/api/me`: a user manages their own service tokens with their own hub
//! key, so an admin never has to see them (issue 5).
//!
//! - `GET /api/me` → `{"success": true, "data": {name, admin, servers,
//!   source, keys: [{id, label, createdMs, source, lastUsedMs}], tokens: [NAME…]}}`;
//! - `PUT /api/me/tokens/{NAME}` `{"value": "…"}` → `{name, token, set: true}`;
//!   a value that is not an HTTP field value (`users::check_token_value`,
//!   RFC 9110 §5.5) → 400 naming the rule and the token, never the value;
//! - `DELETE /api/me/tokens/{NAME}` → `{name, token, deleted: true}`.
//!
//! The key is sent as `Authorization: Bearer mcphub_…` or `x-auth-token`;
//! none or an unknown/revoked one → 401 with `WWW-Authenticate: Bearer`.
//! Errors as in the admin API (400, 404, 409, 503 — no secret key: the
//! message says to set `MCPHUB_SECRET_KEY_FILE`). Bodies are never logged.

use super::admin::{audit, failure, presented_credential, store_unavailable, success, throttled, token_value, unauthorized, users_failure};
use super::Hub;
use crate::http::{percent_decode, Request, Response};
use serde_json::json;

/// The `/api/me` path.
pub const PATH: &str = "/api/me";
/// Prefix of the paths under it.
pub const PREFIX: &str = "/api/me/";

/// Serves `/api/me` and `/api/me/*`.
pub fn handle(hub: &Hub, req: &Request) -> Response {
    if !hub.origin_allowed(req.header("Origin")) {
        return failure(403, "Forbidden: Origin not allowed");
    }
    if let Some(refused) = throttled(hub, req) {
        return refused;
    }
    let Some(key) = presented_credential(req) else {
        return unauthorized("mcphub", "a hub key is required: send Authorization: Bearer mcphub_… (your key)");
    };
    let user = match hub.users().authenticate_checked(key) {
        Ok(Some(user)) => user,
        Ok(None) => {
            hub.auth_failures().record(req.peer.ip(), super::auth::FailureKind::HubKey);
            return unauthorized("mcphub", "unknown or revoked hub key: ask your admin for a new one");
        }
        Err(e) => return store_unavailable(&e),
    };
    let rest = req.path().strip_prefix(PATH).unwrap_or("");
    let parts: Vec<String> = rest.split('/').filter(|p| !p.is_empty()).map(percent_decode).collect();
    let users = hub.users();
    match (req.method.as_str(), parts.iter().map(String::as_str).collect::<Vec<_>>().as_slice()) {
        ("GET", []) => match users.view(&user.name) {
            Some(v) => success(200, json!(v)),
            None => failure(404, "your user was just deleted"),
        },
        ("PUT", ["tokens", token]) => match token_value(req) {
            Ok(value) => match users.set_token(&user.name, token, &value) {
                Ok(()) => {
                    audit(&user.name, "token.set", &format!("{}/{token}", user.name));
                    success(200, json!({"name": user.name, "token": token, "set": true}))
                }
                Err(e) => users_failure(&e),
            },
            Err(r) => r,
        },
        ("DELETE", ["tokens", token]) => match users.delete_token(&user.name, token) {
            Ok(()) => {
                audit(&user.name, "token.delete", &format!("{}/{token}", user.name));
                success(200, json!({"name": user.name, "token": token, "deleted": true}))
            }
            Err(e) => users_failure(&e),
        },
        (_, ["tokens", ..]) | (_, []) => {
            failure(405, "use GET /api/me, PUT /api/me/tokens/{NAME} {\"value\": \"…\"} or DELETE /api/me/tokens/{NAME}")
                .with_header("Allow", "GET, PUT, DELETE")
        }
        _ => failure(404, "unknown endpoint under /api/me"),
    }
}
