//! `users::oauth::OauthStore` in Redis (issue 18): the whole flow, and two
//! stores on one Redis (two hub instances): a token issued by one is
//! accepted by the other, and a revocation by one is seen by the other.

mod redis_util;

use mcphub::config::auth::OauthConfig;
use mcphub::config::RedisConfig;
use mcphub::store::redis::RedisStore;
use mcphub::users::oauth::{CodeGrant, OauthStore, TokenError};
use redis_util::RedisServer;

const RESOURCE: &str = "https://hub.example/mcp";
const REDIRECT: &str = "http://127.0.0.1:5555/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn store(server: &RedisServer) -> OauthStore {
    OauthStore::new(Some(RedisStore::new(&RedisConfig::new(server.url())).expect("a valid URL")), &OauthConfig::default())
}

fn grant() -> CodeGrant {
    CodeGrant {
        client_id: "app".into(),
        client_name: "App".into(),
        user: "alice".into(),
        redirect_uri: REDIRECT.into(),
        code_challenge: CHALLENGE.into(),
        scope: "mcp".into(),
        resource: RESOURCE.into(),
    }
}

#[test]
fn the_flow_in_redis_across_two_instances() {
    let server = RedisServer::start();
    let (a, b) = (store(&server), store(&server));
    a.remember_consent("alice", "app", "App", "mcp").unwrap();
    assert_eq!(b.consent("alice", "app").unwrap().unwrap().scope, "mcp");
    // A code issued by one instance is exchanged at the other.
    let code = a.issue_code(&grant()).unwrap();
    let t = b.exchange_code(&code, "app", REDIRECT, VERIFIER, Some(RESOURCE)).unwrap();
    assert!(matches!(a.exchange_code(&code, "app", REDIRECT, VERIFIER, None), Err(TokenError::InvalidGrant(_))));
    assert!(b.access(&t.access_token).unwrap().is_none(), "the reused code revoked the family everywhere");
    // Again, cleanly.
    let code = a.issue_code(&grant()).unwrap();
    let t = a.exchange_code(&code, "app", REDIRECT, VERIFIER, Some(RESOURCE)).unwrap();
    let g = b.access(&t.access_token).unwrap().expect("the other instance accepts the token");
    assert_eq!((g.user.as_str(), g.client_id.as_str(), g.scope.as_str()), ("alice", "app", "mcp"));
    // Only digests are keys.
    let keys = server.cli(&["KEYS", "mcp:oauth:*"]);
    assert!(!keys.contains(&t.access_token[10..]) && !keys.contains(&code), "{keys}");
    assert!(keys.contains("mcp:oauth:at:") && keys.contains("mcp:oauth:rt:") && keys.contains("mcp:oauth:family:"), "{keys}");
    // Refresh at b; the replay at a revokes the family for both.
    let t2 = b.refresh(&t.refresh_token, "app", None, Some(RESOURCE)).unwrap();
    assert!(a.access(&t2.access_token).unwrap().is_some());
    assert!(matches!(a.refresh(&t.refresh_token, "app", None, None), Err(TokenError::InvalidGrant(_))));
    assert!(b.access(&t2.access_token).unwrap().is_none());
    // Revocations at one instance are seen by the other.
    let code = a.issue_code(&grant()).unwrap();
    let t3 = a.exchange_code(&code, "app", REDIRECT, VERIFIER, None).unwrap();
    assert_eq!(b.connected_apps("alice").unwrap().len(), 1);
    b.revoke_token(&t3.access_token, "app").unwrap();
    assert!(a.access(&t3.access_token).unwrap().is_none());
    let t4 = a.refresh(&t3.refresh_token, "app", None, None).unwrap();
    b.revoke_app("alice", "app").unwrap();
    assert!(a.access(&t4.access_token).unwrap().is_none());
    assert!(a.connected_apps("alice").unwrap().is_empty());
    let code = a.issue_code(&grant()).unwrap();
    let t5 = a.exchange_code(&code, "app", REDIRECT, VERIFIER, None).unwrap();
    b.revoke_user("alice").unwrap();
    assert!(a.access(&t5.access_token).unwrap().is_none());
    assert!(matches!(a.refresh(&t5.refresh_token, "app", None, None), Err(TokenError::InvalidGrant(_))));
}

#[test]
fn a_down_redis_is_unavailable_not_a_refusal() {
    let mut server = RedisServer::start();
    let s = store(&server);
    server.stop();
    assert!(s.access("mcphub_at_0000000000000000000000000000000000000000000000000000000000000000").is_err());
    assert!(matches!(s.refresh("mcphub_rt_00", "app", None, None), Err(TokenError::Unavailable(_))));
}
