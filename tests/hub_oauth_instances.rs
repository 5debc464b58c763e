//! OAuth tokens across hub instances on one Redis (issue 18): a token
//! issued by one instance is accepted by another, and when the user is
//! deleted through another instance, every instance refuses the token —
//! the grant is revoked in Redis at once, and an instance that has not yet
//! seen the deletion refuses it all the same.

mod core_util;
mod redis_util;

use core_util::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const ADMIN: &str = "admin-token-for-oauth-instances-0123";

fn instance(redis: &str) -> mcphub::hub::Hub {
    let root = "mcphub_".to_string() + &"ab".repeat(32);
    let h = hub(json!({
        "redis": {"url": redis},
        "adminToken": ADMIN,
        "publicUrl": "http://127.0.0.1:3000",
        "users": {"root": user_with_key(&root)},
    }));
    // Instances of one deployment share the secret key of the user records.
    h.users().set_secret_key(Some(mcphub::users::secrets::SecretKey::from_bytes([7; 32])));
    h
}

/// The S256 challenge of `verifier` (RFC 7636 §4.2).
fn challenge(verifier: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn initialize(h: &mcphub::hub::Hub, token: &str) -> Answer {
    let auth = format!("Bearer {token}");
    post(h, &initialize_body("2025-11-25"), &[ACCEPT, JSON, ("Authorization", &auth)])
}

#[test]
fn a_token_works_on_every_instance_until_its_user_is_deleted_on_another() {
    let redis = redis_util::RedisServer::start();
    let (a, b) = (instance(&redis.url()), instance(&redis.url()));
    let created = request(&a, "POST", "/api/admin/users", &[("x-auth-token", ADMIN), JSON], r#"{"name": "carol"}"#);
    assert_eq!(created.status, 201, "{}", created.text);

    // A DCR client and a code approved by carol, exchanged on A.
    let client = mcphub::users::oauth::RegisteredClient {
        client_id: "mcphub_client_".to_string() + &"0".repeat(32),
        client_name: Some("Instance test".into()),
        redirect_uris: vec!["http://127.0.0.1:9/cb".into()],
        token_endpoint_auth_method: "none".into(),
        secret_digest: None,
        client_uri: None,
        created_ms: 0,
    };
    assert!(a.oauth().store().register_client(&client).expect("redis"));
    let verifier = "v".repeat(50);
    let grant = mcphub::users::oauth::CodeGrant {
        client_id: client.client_id.clone(),
        client_name: "Instance test".into(),
        user: "carol".into(),
        redirect_uri: "http://127.0.0.1:9/cb".into(),
        code_challenge: challenge(&verifier),
        scope: "mcp".into(),
        resource: "http://127.0.0.1:3000/mcp".into(),
    };
    let code = a.oauth().store().issue_code(&grant).expect("redis");
    let form = format!(
        "grant_type=authorization_code&code={code}&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&client_id={}&code_verifier={verifier}&resource=http%3A%2F%2F127.0.0.1%3A3000%2Fmcp",
        client.client_id
    );
    let tokens = request(&a, "POST", "/oauth/token", &[("Content-Type", "application/x-www-form-urlencoded")], &form);
    assert_eq!(tokens.status, 200, "{}", tokens.text);
    let tokens: Value = tokens.json();
    let access = tokens["access_token"].as_str().expect("access_token").to_string();

    let on_a = initialize(&a, &access);
    assert_eq!(on_a.status, 200, "the issuing instance accepts its token: {}", on_a.text);
    // B accepts A's token once its user registry has carol (it polls Redis
    // once a second). Polling B's /mcp with the token instead would count
    // as failed authentications and throttle this address.
    wait_until("instance B to know carol", PATIENCE, || b.users().get("carol").is_some());
    let on_b = initialize(&b, &access);
    assert_eq!(on_b.status, 200, "another instance accepts the token: {}", on_b.text);

    // carol is deleted through B; A refuses her token at once, before its registry polls:
    // the deletion revoked her grants in Redis.
    let deleted = request(&b, "DELETE", "/api/admin/users/carol", &[("x-auth-token", ADMIN)], "");
    assert!(deleted.status == 200 || deleted.status == 204, "{} {}", deleted.status, deleted.text);
    assert_eq!(a.oauth().store().access(&access).expect("redis"), None, "the grant is revoked in Redis");
    let refused = initialize(&a, &access);
    assert_eq!(refused.status, 401, "{}", refused.text);
    let challenge = refused.header("WWW-Authenticate").unwrap_or_default().to_string();
    assert!(challenge.contains("error=\"invalid_token\"") && challenge.contains("resource_metadata=\"http://127.0.0.1:3000/.well-known/oauth-protected-resource/mcp\""), "{challenge}");
    assert!(!refused.text.contains(&access), "the token is not echoed");
    // And the refresh token is dead too.
    let refresh = tokens["refresh_token"].as_str().expect("refresh_token");
    let form = format!("grant_type=refresh_token&refresh_token={refresh}&client_id={}", client.client_id);
    let again = request(&b, "POST", "/oauth/token", &[("Content-Type", "application/x-www-form-urlencoded")], &form);
    assert_eq!(again.status, 400, "{}", again.text);
    assert_eq!(again.json()["error"], "invalid_grant");
}
