//! Sign-in with a provider under `/ui` (issue 17), Request → Response
//! without the hub's socket: routes of a provider that is not configured,
//! the `state` rule of the callbacks, the redirect to GitHub, a provider
//! that is down, and the whole GitHub flow against a small in-process fake
//! of GitHub's documented endpoints (`login/oauth/access_token`, `/user`,
//! `/user/orgs`). The real OpenID provider and browser walk are
//! scripts/ui-test.sh.

mod core_util;

use core_util::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

const BASE: &str = "http://127.0.0.1:3000";

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn assert_page(a: &Answer, status: u16, words: &str) {
    assert_eq!(a.status, status, "{}", a.text);
    assert!(a.header("Content-Type").unwrap_or_default().starts_with("text/html"), "{:?}", a.headers);
    assert!(a.text.contains("<h1>"), "{}", a.text);
    assert!(a.text.contains(words), "want {words:?} in {}", a.text);
}

#[test]
fn a_provider_that_is_not_configured_is_a_404_page() {
    let h = hub(json!({}));
    for path in ["/ui/login/oidc", "/ui/callback/oidc?state=x&code=y", "/ui/login/github", "/ui/callback/github?state=x&code=y"] {
        let a = get(&h, path, &[]);
        assert_page(&a, 404, "not configured");
    }
}

fn oidc_hub(issuer: &str) -> mcphub::hub::Hub {
    hub(json!({"publicUrl": BASE, "auth": {"oidc": {"issuer": issuer, "clientId": "mcphub", "clientSecret": "oidc-secret-1"}}}))
}

#[test]
fn an_oidc_callback_with_an_unknown_or_missing_state_is_the_expired_page() {
    let h = oidc_hub(&format!("http://127.0.0.1:{}", closed_port()));
    for path in ["/ui/callback/oidc?state=bogus&code=x", "/ui/callback/oidc?code=x", "/ui/callback/oidc"] {
        let a = get(&h, path, &[]);
        assert_page(&a, 400, "This sign-in link has expired or was already used; start again");
        assert!(a.header("Set-Cookie").is_none_or(|c| !c.contains("mcphub_session=")), "{:?}", a.headers);
    }
}

#[test]
fn an_oidc_provider_that_is_down_is_a_502_page() {
    let h = oidc_hub(&format!("http://127.0.0.1:{}", closed_port()));
    let a = get(&h, "/ui/login/oidc", &[]);
    assert_page(&a, 502, "The sign-in provider did not answer; try again");
}

fn github_hub(gh: &str, extra: Value) -> mcphub::hub::Hub {
    let mut github = json!({"clientId": "Iv1.test", "clientSecret": "gh-secret-1", "baseUrl": gh, "apiUrl": format!("{gh}/api")});
    if let (Some(g), Some(e)) = (github.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            g.insert(k.clone(), v.clone());
        }
    }
    hub(json!({"publicUrl": BASE, "auth": {"github": github, "autoProvision": true}}))
}

/// `GET /ui/login/github` → the state it sent to GitHub.
fn github_start(h: &mcphub::hub::Hub, gh: &str) -> String {
    let a = get(h, "/ui/login/github", &[]);
    assert_eq!(a.status, 303, "{}", a.text);
    let to = location(&a);
    assert!(to.starts_with(&format!("{gh}/login/oauth/authorize?")), "{to}");
    assert_eq!(param(&to, "client_id").as_deref(), Some("Iv1.test"));
    assert_eq!(param(&to, "redirect_uri"), Some(format!("{BASE}/ui/callback/github")));
    assert_eq!(param(&to, "scope").as_deref(), Some("read:user user:email read:org"));
    let state = param(&to, "state").unwrap_or_default();
    assert_eq!(state.len(), 43, "{to}");
    state
}

#[test]
fn github_start_redirects_to_the_configured_base_url_and_the_state_is_used_once() {
    let gh = format!("http://127.0.0.1:{}", closed_port());
    let h = github_hub(&gh, json!({}));
    let state = github_start(&h, &gh);
    assert_ne!(state, github_start(&h, &gh), "a new state per sign-in");
    // The provider said no: a clear page, and the state is spent.
    let a = get(&h, &format!("/ui/callback/github?error=access_denied&state={state}"), &[]);
    assert_page(&a, 403, "cancelled or denied");
    let a = get(&h, &format!("/ui/callback/github?code=x&state={state}"), &[]);
    assert_page(&a, 400, "This sign-in link has expired or was already used; start again");
    // GitHub down: the code exchange finds nobody.
    let state = github_start(&h, &gh);
    let a = get(&h, &format!("/ui/callback/github?code=x&state={state}"), &[]);
    assert_page(&a, 502, "The sign-in provider did not answer; try again");
    assert!(!a.text.contains("gh-secret-1"));
}

/// What the fake GitHub saw: (method, path, headers, body) per request.
type Seen = Arc<Mutex<Vec<(String, String, Vec<(String, String)>, String)>>>;

/// A JSON answer of a fake provider: (status, body).
type Handler = dyn Fn(&str, &str, &[(String, String)], &str) -> (u16, Value) + Send + Sync;

/// A one-request-per-connection HTTP server on a loopback port answering
/// with `handler(method, target, headers, body)`; what it saw is recorded.
fn fake_server(handler: Box<Handler>) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (method, target) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.trim().split_once(':') {
                    headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                }
            }
            let len: usize = headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            let body = String::from_utf8_lossy(&body).to_string();
            let (status, answer) = handler(&method, &target, &headers, &body);
            log.lock().unwrap().push((method, target, headers, body));
            let text = answer.to_string();
            let _ = write!(
                conn,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    (url, seen)
}

/// A fake of GitHub's OAuth and API endpoints (documented shapes): code
/// `good-octocat` / `good-mallory` → a token for that login, any other code
/// → 200 `{"error": "bad_verification_code"}`; `/api/user`, `/api/user/orgs`
/// (octocat is in Acme, mallory in nothing).
fn fake_github() -> (String, Seen) {
    fake_server(Box::new(|method, target, headers, body| {
        let auth = headers.iter().find(|(k, _)| k == "authorization").map(|(_, v)| v.clone()).unwrap_or_default();
        let path = target.split('?').next().unwrap_or("");
        match (method, path) {
            ("POST", "/login/oauth/access_token") => {
                let code = body.split('&').find_map(|p| p.strip_prefix("code=")).unwrap_or("");
                match code.strip_prefix("good-") {
                    Some(login) => (200, json!({"access_token": format!("gho_{login}"), "token_type": "bearer", "scope": "read:user"})),
                    None => (200, json!({"error": "bad_verification_code", "error_description": "The code passed is incorrect or expired."})),
                }
            }
            ("GET", "/api/user") => match auth.strip_prefix("Bearer gho_") {
                Some(login) => (200, json!({"login": if login == "octocat" { "OctoCat" } else { login }, "id": 1})),
                None => (401, json!({"message": "Bad credentials"})),
            },
            ("GET", "/api/user/orgs") => match auth.strip_prefix("Bearer gho_") {
                Some("octocat") => (200, json!([{"login": "Acme", "id": 9}])),
                Some(_) => (200, json!([])),
                None => (401, json!({"message": "Bad credentials"})),
            },
            _ => (404, json!({"message": "Not Found"})),
        }
    }))
}

#[test]
fn oidc_start_discovers_the_provider_and_redirects_with_pkce_state_nonce_and_scopes() {
    // The provider's issuer has a trailing slash the config drops (as Auth0's does).
    let slot: Arc<Mutex<String>> = Arc::default();
    let issuer = slot.clone();
    let (url, seen) = fake_server(Box::new(move |_, target, _, _| {
        let iss = issuer.lock().unwrap().clone();
        match target {
            "/.well-known/openid-configuration" => (
                200,
                json!({
                    "issuer": format!("{iss}/"),
                    "authorization_endpoint": format!("{iss}/authorize"),
                    "token_endpoint": format!("{iss}/token"),
                    "jwks_uri": format!("{iss}/jwks"),
                    "response_types_supported": ["code"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                }),
            ),
            "/jwks" => (200, json!({"keys": []})),
            _ => (404, json!({})),
        }
    }));
    *slot.lock().unwrap() = url.clone();
    let h = hub(json!({"publicUrl": BASE, "auth": {"oidc": {"issuer": format!("{url}/"), "clientId": "mcphub", "scopes": ["openid", "email", "groups"]}}}));
    let a = get(&h, "/ui/login/oidc", &[]);
    assert_eq!(a.status, 303, "{}", a.text);
    let to = location(&a);
    assert!(to.starts_with(&format!("{url}/authorize?")), "{to}");
    assert_eq!(param(&to, "response_type").as_deref(), Some("code"));
    assert_eq!(param(&to, "client_id").as_deref(), Some("mcphub"));
    assert_eq!(param(&to, "redirect_uri"), Some(format!("{BASE}/ui/callback/oidc")));
    assert_eq!(param(&to, "scope").as_deref(), Some("openid email groups"));
    assert_eq!(param(&to, "code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(param(&to, "code_challenge").unwrap_or_default().len(), 43);
    assert_eq!(param(&to, "state").unwrap_or_default().len(), 43);
    assert_eq!(param(&to, "nonce").unwrap_or_default().len(), 43);
    // A second sign-in reuses the cached discovery document and keys.
    let calls = seen.lock().unwrap().len();
    assert_eq!(get(&h, "/ui/login/oidc", &[]).status, 303);
    assert_eq!(seen.lock().unwrap().len(), calls, "discovery is cached");
    // The provider said no: a clear page, the state spent.
    let state = param(&to, "state").unwrap_or_default();
    let a = get(&h, &format!("/ui/callback/oidc?error=access_denied&state={state}"), &[]);
    assert_page(&a, 403, "cancelled or denied");
    let a = get(&h, &format!("/ui/callback/oidc?code=x&state={state}"), &[]);
    assert_page(&a, 400, "This sign-in link has expired or was already used; start again");
}

#[test]
fn github_sign_in_maps_provisions_and_refuses_by_org() {
    let (gh, seen) = fake_github();
    let h = github_hub(&gh, json!({"allowOrgs": ["acme"]}));

    // octocat (in Acme): provisioned as a non-admin run-time user, signed in.
    let state = github_start(&h, &gh);
    let a = get(&h, &format!("/ui/callback/github?code=good-octocat&state={state}"), &[]);
    assert_eq!(a.status, 303, "{}", a.text);
    assert_eq!(location(&a), "/ui/connect");
    assert!(a.header("Set-Cookie").unwrap_or_default().starts_with("__Host-mcphub_session="), "{:?}", a.headers);
    let view = h.users().view("octocat").expect("octocat provisioned");
    assert!(!view.admin);
    assert_eq!(view.identities, vec!["github:octocat"]);
    assert_eq!(h.users().user_of_identity("github:OCTOCAT").as_deref(), Some("octocat"));

    // The calls GitHub saw: the form exchange (JSON asked), then the API with the token and GitHub's headers.
    {
        let seen = seen.lock().unwrap();
        let (m, t, hs, body) = &seen[0];
        assert_eq!((m.as_str(), t.as_str()), ("POST", "/login/oauth/access_token"));
        assert!(hs.contains(&("accept".into(), "application/json".into())), "{hs:?}");
        assert!(body.contains("client_id=Iv1.test") && body.contains("client_secret=gh-secret-1") && body.contains("code=good-octocat"), "{body}");
        let (_, t, hs, _) = &seen[1];
        assert_eq!(t, "/api/user");
        for h in [("authorization", "Bearer gho_octocat"), ("accept", "application/vnd.github+json"), ("user-agent", "mcphub"), ("x-github-api-version", "2022-11-28")] {
            assert!(hs.contains(&(h.0.into(), h.1.into())), "{h:?} not in {hs:?}");
        }
        assert!(seen[2].1.starts_with("/api/user/orgs"));
    }

    // Signing in again maps to the same user; nothing new is created.
    let state = github_start(&h, &gh);
    let a = get(&h, &format!("/ui/callback/github?code=good-octocat&state={state}"), &[]);
    assert_eq!(a.status, 303, "{}", a.text);
    assert_eq!(h.users().list().len(), 1);

    // mallory (in no allowed org): refused, no user.
    let state = github_start(&h, &gh);
    let a = get(&h, &format!("/ui/callback/github?code=good-mallory&state={state}"), &[]);
    assert_page(&a, 403, "github:mallory is not allowed to sign in here");
    assert!(h.users().view("mallory").is_none());

    // A bad code: GitHub's 200 with an error → a refusal page naming the error, no token, no user.
    let state = github_start(&h, &gh);
    let a = get(&h, &format!("/ui/callback/github?code=stale&state={state}"), &[]);
    assert_page(&a, 400, "bad_verification_code");
    assert!(!a.text.contains("gh-secret-1") && !a.text.contains("gho_"));
    assert_eq!(h.users().list().len(), 1);
}

#[test]
fn without_auto_provisioning_an_unlinked_identity_is_refused_and_a_linked_one_signs_in() {
    let (gh, _) = fake_github();
    let github = json!({"clientId": "Iv1.test", "clientSecret": "gh-secret-1", "baseUrl": gh, "apiUrl": format!("{gh}/api")});
    let h = hub(json!({
        "publicUrl": BASE,
        "auth": {"github": github},
        "users": {"root": {"admin": true}, "octo": {"identities": ["github:octocat"]}},
    }));
    let state = github_start(&h, &gh);
    let a = get(&h, &format!("/ui/callback/github?code=good-mallory&state={state}"), &[]);
    assert_page(&a, 403, "No MCPHub user is linked to github:mallory; ask your admin to add it to your user");
    assert!(h.users().view("mallory").is_none());
    let state = github_start(&h, &gh);
    let a = get(&h, &format!("/ui/callback/github?code=good-octocat&state={state}"), &[]);
    assert_eq!((a.status, location(&a).as_str()), (303, "/ui/connect"), "{}", a.text);
    let cookie = a.header("Set-Cookie").unwrap_or_default().split(';').next().unwrap_or_default().to_string();
    let page = get(&h, "/ui/", &[("Cookie", &cookie)]);
    assert_eq!(location(&page), "/ui/connect", "the session works");
    assert_eq!(h.users().list().len(), 2, "no user created");
}
