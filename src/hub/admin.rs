//! The admin API (`/api/admin/*`; seeds/001 "관리 API", DESIGN.md §3):
//!
//! - `GET /api/admin/upstream-sessions` → `200 {"success": true, "data":
//!   [{serverName, contextKey, sessionId, ttl}]}`: the store's sessions (ttl in
//!   s) plus this process's `sessionSharing: "client"` sessions (ttl `null`,
//!   never stored);
//! - `DELETE /api/admin/upstream-sessions/{serverName}/{contextKey}` →
//!   `200 {"success": true, "data": {serverName, contextKey, sessionId}}`, or
//!   404 `{"success": false, "error": …}`: the session is dropped from the
//!   cache and the store and DELETEd upstream; the next request re-establishes.
//!
//! Protected by the config's `adminToken`, sent as `x-auth-token: T` or
//! `Authorization: Bearer T` (compared as SHA-256 digests, in constant time);
//! no or a wrong token → 401 with `WWW-Authenticate: Bearer`. Without a
//! configured token every request is refused (the users issue folds this
//! into admin keys).

use super::Hub;
use crate::http::{percent_decode, Request, Response};
use crate::store::ListedSession;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Prefix of every admin path.
pub const PREFIX: &str = "/api/admin/";

fn failure(status: u16, error: &str) -> Response {
    Response::json(status, &json!({"success": false, "error": error}))
}

/// Whether the request carries the admin token.
fn authorized(hub: &Hub, req: &Request) -> Result<(), Response> {
    let unauthorized = |why: &str| failure(401, why).with_header("WWW-Authenticate", "Bearer realm=\"mcphub-admin\"");
    let Some(expected) = hub.config().admin_token.as_deref() else {
        return Err(unauthorized("the admin API is off: set adminToken in the config"));
    };
    let presented = req
        .header("x-auth-token")
        .or_else(|| req.header("Authorization").and_then(|a| a.strip_prefix("Bearer ").or_else(|| a.strip_prefix("bearer "))))
        .map(str::trim);
    let Some(presented) = presented else {
        return Err(unauthorized("admin token required: send x-auth-token or Authorization: Bearer"));
    };
    let (a, b) = (Sha256::digest(presented.as_bytes()), Sha256::digest(expected.as_bytes()));
    if a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) != 0 {
        return Err(unauthorized("invalid admin token"));
    }
    Ok(())
}

/// Serves `/api/admin/*`.
pub fn handle(hub: &Hub, req: &Request) -> Response {
    if let Err(denied) = authorized(hub, req) {
        return denied;
    }
    let rest = req.path().strip_prefix(PREFIX).unwrap_or("");
    let parts: Vec<String> = rest.split('/').filter(|p| !p.is_empty()).map(percent_decode).collect();
    match (req.method.as_str(), parts.iter().map(String::as_str).collect::<Vec<_>>().as_slice()) {
        ("GET", ["upstream-sessions"]) => list(hub),
        ("DELETE", ["upstream-sessions", server, context]) => delete(hub, server, context),
        (_, ["upstream-sessions", ..]) => failure(405, "use GET /api/admin/upstream-sessions or DELETE …/{serverName}/{contextKey}")
            .with_header("Allow", "GET, DELETE"),
        _ => failure(404, "unknown admin endpoint"),
    }
}

fn list(hub: &Hub) -> Response {
    let mut data = match hub.store().list() {
        Ok(d) => d,
        Err(e) => return failure(503, &e.to_string()),
    };
    for u in hub.catalog().upstreams() {
        for (context_key, id, stored) in u.sessions() {
            if let (Some(session_id), false) = (id, stored) {
                if context_key.starts_with("client:") {
                    data.push(ListedSession { server_name: u.name().to_string(), context_key, session_id, ttl: None });
                }
            }
        }
    }
    Response::json(200, &json!({"success": true, "data": data}))
}

fn delete(hub: &Hub, server: &str, context: &str) -> Response {
    let Some(upstream) = hub.catalog().upstreams().iter().find(|u| u.name() == server) else {
        return failure(404, &format!("no server named '{server}'"));
    };
    match upstream.drop_session(context) {
        Some(id) => {
            log::info!("admin: upstream session {server}/{context} deleted");
            Response::json(200, &json!({"success": true, "data": {"serverName": server, "contextKey": context, "sessionId": Value::String(id)}}))
        }
        None => failure(404, &format!("no upstream session for {server}/{context}")),
    }
}
