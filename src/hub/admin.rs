//! The admin API (`/api/admin/*`; the source notes' admin API, docs/decisions.md D3):
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
//! Users (issue 5; token values are never answered, only names):
//! - `GET /api/admin/users` → `[{name, admin, servers, source, keys: [{id,
//!   label, createdMs, source, lastUsedMs}], tokens: [NAME…]}]`; `GET …/users/{name}`;
//! - `POST /api/admin/users` `{"name", "admin"?, "servers"?}` → 201 the user;
//! - `DELETE /api/admin/users/{name}` (run-time users only; 409 for config users);
//! - `POST /api/admin/users/{name}/keys` `{"label"?}` → 201 `{key, id, label,
//!   createdMs}`: the key is shown this once;
//! - `DELETE /api/admin/users/{name}/keys/{id}` (config keys too: revoked at run time);
//! - `PUT /api/admin/users/{name}/tokens/{NAME}` `{"value"}` (a value that is
//!   not an HTTP field value → 400, `users::check_token_value`),
//!   `DELETE /api/admin/users/{name}/tokens/{NAME}`.
//!
//! Errors: 400 bad name/body, 404 unknown, 409 conflict, 503 store down or
//! no secret key for tokens (the message says to set `MCPHUB_SECRET_KEY_FILE`).
//!
//! Who may call: a user with `"admin": true` presenting one of their hub keys,
//! or the config's legacy `adminToken` (compared as SHA-256 digests, in
//! constant time), as `Authorization: Bearer …` or `x-auth-token: …`. No or a
//! wrong credential → 401 with `WWW-Authenticate: Bearer`; a live key of a
//! user who is not an admin → 403. A browser `Origin` that is not allowed
//! (`Hub::origin_allowed`) → 403. Request bodies are never logged.

use super::Hub;
use crate::http::{percent_decode, Request, Response};
use crate::store::ListedSession;
use crate::users::{looks_like_key, UsersError};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// Prefix of every admin path.
pub const PREFIX: &str = "/api/admin/";

/// `{"success": false, "error": error}` with `status`.
pub fn failure(status: u16, error: &str) -> Response {
    Response::json(status, &json!({"success": false, "error": error}))
}

/// `{"success": true, "data": data}` with `status`.
pub fn success(status: u16, data: Value) -> Response {
    Response::json(status, &json!({"success": true, "data": data})).with_header("Cache-Control", "no-store")
}

/// A registry error as its API answer.
pub fn users_failure(e: &UsersError) -> Response {
    failure(e.status(), &e.to_string())
}

/// 401 with `WWW-Authenticate: Bearer`.
pub fn unauthorized(realm: &str, why: &str) -> Response {
    failure(401, why).with_header("WWW-Authenticate", &format!("Bearer realm=\"{realm}\""))
}

/// 503 + `Retry-After` for a key that cannot be checked while the user
/// store is unavailable (issue 14 hole 8).
pub fn store_unavailable(e: &crate::users::persist::PersistError) -> Response {
    let secs = super::auth::STORE_RETRY_AFTER_SECS;
    failure(503, &e.to_string()).with_header("Retry-After", &secs.to_string())
}

/// The credential of an API request: `x-auth-token`, else `Authorization: Bearer …`.
pub fn presented_credential(req: &Request) -> Option<&str> {
    req.header("x-auth-token")
        .or_else(|| {
            req.header("Authorization").and_then(|a| {
                let (scheme, rest) = a.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then_some(rest)
            })
        })
        .map(str::trim)
        .filter(|c| !c.is_empty())
}

/// The request body as a JSON object (an empty body is `{}`); the error
/// never quotes the body (it may carry a token).
pub fn body_object(req: &Request, shape: &str) -> Result<Map<String, Value>, Response> {
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(failure(400, &format!("the body must be a JSON object {shape}"))),
    }
}

/// One info line per admin change (issue 14 hole 10): who, what, on what —
/// names and ids only, never a key or token value.
pub fn audit(actor: &str, action: &str, target: &str) {
    log::info!("audit: actor={actor} action={action} target={target}");
}

/// 429 + `Retry-After` for a source throttled after failed authentications
/// ([`super::auth::Failures`]).
pub fn throttled(hub: &Hub, req: &Request) -> Option<Response> {
    let wait = hub.auth_failures().throttled(req.peer.ip())?;
    let why = format!("too many failed authentications from this address: retry after {wait} s");
    Some(failure(429, &why).with_header("Retry-After", &wait.to_string()))
}

/// Who the admin caller is (for the log), or the refusal.
fn authorized(hub: &Hub, req: &Request) -> Result<String, Response> {
    if !hub.origin_allowed(req.header("Origin")) {
        return Err(failure(403, "Forbidden: Origin not allowed"));
    }
    if let Some(refused) = throttled(hub, req) {
        return Err(refused);
    }
    let realm = "mcphub-admin";
    let config = hub.config();
    let configured = config.admin_token.as_deref();
    let Some(presented) = presented_credential(req) else {
        let why = if configured.is_none() && !hub.users().list().iter().any(|u| u.admin) {
            "the admin API is off: give a user \"admin\": true (mcphub keygen --admin) or set adminToken in the config"
        } else {
            "admin credential required: send Authorization: Bearer <an admin's hub key> (or x-auth-token)"
        };
        return Err(unauthorized(realm, why));
    };
    if looks_like_key(presented) {
        match hub.users().authenticate_checked(presented) {
            Ok(Some(user)) => {
                return if user.admin {
                    Ok(user.name.clone())
                } else {
                    Err(failure(403, &format!("user '{}' is not an admin", user.name)))
                };
            }
            Ok(None) => {}
            Err(e) => return Err(store_unavailable(&e)),
        }
    }
    if let Some(expected) = configured {
        let (a, b) = (Sha256::digest(presented.as_bytes()), Sha256::digest(expected.as_bytes()));
        if super::auth::same_secret(&a, &b) {
            return Ok("adminToken".into());
        }
    }
    hub.auth_failures().record(req.peer.ip(), super::auth::FailureKind::Admin);
    Err(unauthorized(realm, "invalid admin credential (unknown or revoked key, or wrong adminToken)"))
}

/// Serves `/api/admin/*`.
pub fn handle(hub: &Hub, req: &Request) -> Response {
    let caller = match authorized(hub, req) {
        Ok(c) => c,
        Err(denied) => return denied,
    };
    let rest = req.path().strip_prefix(PREFIX).unwrap_or("");
    let parts: Vec<String> = rest.split('/').filter(|p| !p.is_empty()).map(percent_decode).collect();
    let users = hub.users();
    let done = |r: Result<Value, UsersError>, status: u16| match r {
        Ok(v) => success(status, v),
        Err(e) => users_failure(&e),
    };
    match (req.method.as_str(), parts.iter().map(String::as_str).collect::<Vec<_>>().as_slice()) {
        ("GET", ["upstream-sessions"]) => match upstream_sessions(hub) {
            Ok(data) => Response::json(200, &json!({"success": true, "data": data})),
            Err(e) => failure(503, &e.to_string()),
        },
        ("DELETE", ["upstream-sessions", server, context]) => match drop_upstream_session(hub, &caller, server, context) {
            Ok(id) => Response::json(200, &json!({"success": true, "data": {"serverName": server, "contextKey": context, "sessionId": id}})),
            Err((status, why)) => failure(status, &why),
        },
        (_, ["upstream-sessions", ..]) => failure(405, "use GET /api/admin/upstream-sessions or DELETE …/{serverName}/{contextKey}")
            .with_header("Allow", "GET, DELETE"),
        ("GET", ["users"]) => success(200, json!(users.list())),
        ("POST", ["users"]) => {
            let shape = "{\"name\": \"…\", \"admin\"?: bool, \"servers\"?: [\"…\"]}";
            let body = match body_object(req, shape) {
                Ok(b) => b,
                Err(r) => return r,
            };
            let Some(name) = body.get("name").and_then(Value::as_str) else {
                return failure(400, &format!("\"name\" is required: {shape}"));
            };
            let admin = match body.get("admin") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => return failure(400, "\"admin\" must be true or false"),
            };
            let servers = match body.get("servers") {
                None | Some(Value::Null) => None,
                Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
                    Some(a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                }
                Some(_) => return failure(400, "\"servers\" must be a list of server names"),
            };
            let keyless_before = users.anonymous_allowed();
            match users.create(name, admin, servers) {
                Ok(view) => {
                    audit(&caller, "user.create", name);
                    let mut data = json!(view);
                    if keyless_before && !users.anonymous_allowed() {
                        // The first user: requests without a key are refused from now on.
                        let notice = "this is the hub's first user: requests without a hub key are refused from now on \
                                      (set \"allowAnonymous\": true in the config to keep key-less access)";
                        log::warn!("users: '{name}' is the first user: key-less access to /mcp is now off (allowAnonymous is false)");
                        data["keylessAccess"] = json!("off");
                        data["notice"] = json!(notice);
                    }
                    success(201, data)
                }
                Err(e) => users_failure(&e),
            }
        }
        ("GET", ["users", name]) => match users.view(name) {
            Some(v) => success(200, json!(v)),
            None => failure(404, &format!("no user named '{}'", crate::users::printable_name(name))),
        },
        ("DELETE", ["users", name]) => done(delete_user(hub, &caller, name).map(|()| json!({"name": name, "deleted": true})), 200),
        ("POST", ["users", name, "keys"]) => {
            let body = match body_object(req, "{\"label\"?: \"…\"}") {
                Ok(b) => b,
                Err(r) => return r,
            };
            let label = match body.get("label") {
                None | Some(Value::Null) => None,
                Some(Value::String(l)) => Some(l.clone()),
                Some(_) => return failure(400, "\"label\" must be a string"),
            };
            match users.issue_key(name, label) {
                Ok((key, view)) => {
                    audit(&caller, "key.issue", &format!("{name}/{}", view.id));
                    success(
                    201,
                    json!({"user": name, "key": key, "id": view.id, "label": view.label, "createdMs": view.created_ms,
                           "note": "the key is shown once; only its SHA-256 digest is kept"}),
                    )
                }
                Err(e) => users_failure(&e),
            }
        }
        ("DELETE", ["users", name, "keys", id]) => {
            let r = users.revoke_key(name, id).map(|()| json!({"user": name, "id": id, "revoked": true}));
            if r.is_ok() {
                audit(&caller, "key.revoke", &format!("{name}/{id}"));
            }
            done(r, 200)
        }
        ("PUT", ["users", name, "tokens", token]) => match token_value(req) {
            Ok(value) => {
                let r = users.set_token(name, token, &value).map(|()| json!({"user": name, "token": token, "set": true}));
                if r.is_ok() {
                    audit(&caller, "token.set", &format!("{name}/{token}"));
                }
                done(r, 200)
            }
            Err(r) => r,
        },
        ("DELETE", ["users", name, "tokens", token]) => {
            let r = users.delete_token(name, token).map(|()| json!({"user": name, "token": token, "deleted": true}));
            if r.is_ok() {
                audit(&caller, "token.delete", &format!("{name}/{token}"));
            }
            done(r, 200)
        }
        (_, ["users", ..]) => failure(
            405,
            "users endpoints: GET/POST /api/admin/users, GET/DELETE …/users/{name}, POST …/{name}/keys, \
             DELETE …/{name}/keys/{id}, PUT/DELETE …/{name}/tokens/{NAME}",
        ),
        _ => failure(404, "unknown admin endpoint"),
    }
}

/// The `"value"` of a `{"value": "…"}` body (never quoted back).
pub fn token_value(req: &Request) -> Result<String, Response> {
    let shape = "{\"value\": \"…\"}";
    let body = body_object(req, shape)?;
    match body.get("value") {
        Some(Value::String(v)) => Ok(v.clone()),
        _ => Err(failure(400, &format!("the body must be {shape} with the token as a string"))),
    }
}

/// Deletes run-time user `name` (keys and tokens with it), writes the audit
/// line for `caller`, forgets the user's activity and revokes their OAuth
/// grants (issue 18). The admin API and the
/// admin pages (`hub::ui`) both delete through here.
///
/// Errors: as [`crate::users::Users::delete`] (404 unknown, 409 config user, 503 store).
pub fn delete_user(hub: &Hub, caller: &str, name: &str) -> Result<(), UsersError> {
    hub.users().delete(name)?;
    audit(caller, "user.delete", name);
    if let Err(e) = hub.activity().forget(name) {
        log::warn!("activity: the deleted user's activity stays until it expires ({e})");
    }
    if let Err(e) = hub.oauth().store().revoke_user(name) {
        // `/mcp` refuses their tokens anyway (the user is gone); only a user
        // created again under this name could use them before they expire.
        log::warn!("oauth: the deleted user's OAuth grants could not be revoked ({e})");
    }
    Ok(())
}

/// The upstream sessions the admin API lists: the store's (ttl in s) plus
/// this process's `sessionSharing: "client"` sessions (ttl `None`, never
/// stored). Used by the API and the admin pages.
///
/// Errors: the store is unavailable.
pub fn upstream_sessions(hub: &Hub) -> Result<Vec<ListedSession>, crate::store::StoreError> {
    let mut data = hub.store().list()?;
    for u in hub.catalog().upstreams() {
        for (context_key, id, stored) in u.sessions() {
            if let (Some(session_id), false) = (id, stored) {
                if context_key.starts_with("client:") {
                    data.push(ListedSession { server_name: u.name().to_string(), context_key, session_id, ttl: None });
                }
            }
        }
    }
    Ok(data)
}

/// Drops the upstream session of `server`/`context` from the cache and the
/// store and DELETEs it upstream (the next request re-establishes); writes
/// the audit line for `caller`. Answers the dropped session id. Used by the
/// API and the admin pages.
///
/// Errors: (404, why) for an unknown server or no such session.
pub fn drop_upstream_session(hub: &Hub, caller: &str, server: &str, context: &str) -> Result<String, (u16, String)> {
    let Some(upstream) = hub.catalog().upstream(server) else {
        return Err((404, format!("no server named '{server}'")));
    };
    match upstream.drop_session(context) {
        Some(id) => {
            audit(caller, "upstream_session.delete", &format!("{server}/{context}"));
            Ok(id)
        }
        None => Err((404, format!("no upstream session for {server}/{context}"))),
    }
}
