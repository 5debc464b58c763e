//! Run-time users survive the hub (issue 5): the state file (atomic, tokens
//! sealed, associated data bound to user and token name) and Redis (two hubs
//! on one Redis see each other's changes; a down Redis keeps loaded users).

mod hub_util;
mod redis_util;

use hub_util::{hub, send, wait_until, HubUnderTest, Reply, JSON, PATIENCE};
use mcphub::users::{key_digest, new_key, secrets::SecretKey};
use redis_util::RedisServer;
use serde_json::{json, Value};
use std::path::PathBuf;

/// A fresh directory under the temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = std::env::temp_dir().join(format!("mcphub-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn secret() -> SecretKey {
    SecretKey::from_bytes([7; 32])
}

/// A hub whose config admin is `root` (key returned), plus `extra` keys.
fn hub_with(root_key: &str, extra: Value) -> HubUnderTest {
    let mut cfg = json!({"users": {"root": {"keys": [key_digest(root_key)], "admin": true}}});
    for (k, v) in extra.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    hub(&[], cfg)
}

fn admin(h: &HubUnderTest, key: &str, method: &str, path: &str, body: Option<Value>) -> Reply {
    let url = h.url.replace("/mcp", path);
    let auth = format!("Bearer {key}");
    send(method, &url, &[JSON, ("Authorization", &auth)], &body.map(|b| b.to_string()).unwrap_or_default())
}

fn issue(h: &HubUnderTest, root: &str, user: &str) -> String {
    let r = admin(h, root, "POST", &format!("/api/admin/users/{user}/keys"), None);
    assert_eq!(r.status, 201, "{}", r.text);
    r.json()["data"]["key"].as_str().unwrap().to_string()
}

#[test]
fn the_state_file_keeps_users_keys_and_sealed_tokens_across_hubs() {
    let dir = TempDir::new("users-state");
    let root = new_key();
    let value = "ghp_persisted_d00d1e";
    let (alice_key, bob_key) = {
        let a = hub_with(&root, json!({"stateDir": dir.0}));
        a.hub.users().set_secret_key(Some(secret()));
        for name in ["alice", "bob"] {
            assert_eq!(admin(&a, &root, "POST", "/api/admin/users", Some(json!({"name": name}))).status, 201);
        }
        let keys = (issue(&a, &root, "alice"), issue(&a, &root, "bob"));
        let r = admin(&a, &root, "PUT", "/api/admin/users/alice/tokens/GITHUB_TOKEN", Some(json!({"value": value})));
        assert_eq!(r.status, 200, "{}", r.text);
        // A revoked config key stays revoked too.
        let root_id = &key_digest(&root)[..8];
        let spare = issue(&a, &root, "root");
        assert_eq!(admin(&a, &spare, "DELETE", &format!("/api/admin/users/root/keys/{root_id}"), None).status, 200);
        keys
    };
    let file = dir.0.join("users.json");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains(value), "token in clear: {text}");
    assert!(!text.contains(&alice_key) && text.contains(&key_digest(&alice_key)), "keys are stored as digests");
    assert!(!dir.0.join("users.json.tmp").exists());

    // A new hub on the same directory: same users, keys and tokens.
    let b = hub_with(&root, json!({"stateDir": dir.0}));
    let users = b.hub.users();
    assert_eq!(users.authenticate(&alice_key).unwrap().name, "alice");
    assert_eq!(users.authenticate(&bob_key).unwrap().name, "bob");
    assert!(users.authenticate(&root).is_none(), "the revoked config key");
    assert!(users.get("alice").unwrap().token("GITHUB_TOKEN").is_none(), "no secret key yet: token unreadable");
    users.set_secret_key(Some(SecretKey::from_bytes([8; 32])));
    assert!(users.get("alice").unwrap().token("GITHUB_TOKEN").is_none(), "another secret key: unreadable");
    users.set_secret_key(Some(secret()));
    assert_eq!(users.get("alice").unwrap().token("GITHUB_TOKEN").unwrap().expose(), value);
    drop(b);

    // A ciphertext moved to another user, or renamed, does not decrypt.
    let mut state: Value = serde_json::from_str(&text).unwrap();
    let sealed = state["users"]["alice"]["tokens"]["GITHUB_TOKEN"].clone();
    assert!(sealed["ct"].is_string(), "{state}");
    state["users"]["bob"]["tokens"]["GITHUB_TOKEN"] = sealed.clone();
    state["users"]["alice"]["tokens"]["OTHER_TOKEN"] = sealed;
    std::fs::write(&file, state.to_string()).unwrap();
    let c = hub_with(&root, json!({"stateDir": dir.0}));
    c.hub.users().set_secret_key(Some(secret()));
    let users = c.hub.users();
    assert!(users.get("bob").unwrap().token("GITHUB_TOKEN").is_none(), "moved to bob");
    assert!(users.get("alice").unwrap().token("OTHER_TOKEN").is_none(), "renamed");
    assert_eq!(users.get("alice").unwrap().token("GITHUB_TOKEN").unwrap().expose(), value, "the original still opens");
}

#[test]
fn an_unreadable_state_file_is_never_overwritten() {
    let dir = TempDir::new("users-bad");
    std::fs::create_dir_all(&dir.0).unwrap();
    std::fs::write(dir.0.join("users.json"), "{not json").unwrap();
    let root = new_key();
    let h = hub_with(&root, json!({"stateDir": dir.0}));
    let r = admin(&h, &root, "POST", "/api/admin/users", Some(json!({"name": "carol"})));
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(r.text.contains("users.json"), "{}", r.text);
    assert_eq!(std::fs::read_to_string(dir.0.join("users.json")).unwrap(), "{not json");
}

#[test]
fn two_hubs_on_one_redis_see_each_others_changes() {
    let mut redis = RedisServer::start();
    let root = new_key();
    let cfg = json!({"redis": {"url": redis.url()}});
    let a = hub_with(&root, cfg.clone());
    let b = hub_with(&root, cfg);
    for h in [&a, &b] {
        h.hub.users().set_secret_key(Some(secret()));
        assert_eq!(h.hub.users().store_kind(), "redis");
    }
    assert_eq!(admin(&a, &root, "POST", "/api/admin/users", Some(json!({"name": "alice"}))).status, 201);
    let key = issue(&a, &root, "alice");
    assert!(a.hub.users().authenticate(&key).is_some(), "at once on the issuing hub");
    wait_until("the key to reach hub B", PATIENCE, || b.hub.users().authenticate(&key).is_some_and(|u| u.name == "alice"));
    let value = "ghp_shared_via_redis_1";
    let r = admin(&b, &root, "PUT", "/api/admin/users/alice/tokens/GITHUB_TOKEN", Some(json!({"value": value})));
    assert_eq!(r.status, 200, "{}", r.text);
    wait_until("the token set on B to reach hub A", PATIENCE, || {
        a.hub.users().get("alice").and_then(|u| u.token("GITHUB_TOKEN").map(|t| t.expose() == value)) == Some(true)
    });
    // Records in Redis: JSON with sealed tokens and digests only.
    let stored = redis.cli(&["GET", "mcp:user:alice"]);
    assert!(stored.contains(&key_digest(&key)) && !stored.contains(value) && !stored.contains(&key), "{stored}");
    assert_eq!(redis.cli(&["GET", &format!("mcp:user-key:{}", key_digest(&key))]), "alice");

    // Revocation on A reaches B.
    let id = &key_digest(&key)[..8];
    assert_eq!(admin(&a, &root, "DELETE", &format!("/api/admin/users/alice/keys/{id}"), None).status, 200);
    assert!(a.hub.users().authenticate(&key).is_none());
    wait_until("the revocation to reach hub B", PATIENCE, || b.hub.users().authenticate(&key).is_none());

    // A key this hub has not loaded, whose record arrived without a version
    // bump (so the once-a-second poll does not reload): the key index finds it.
    let zed_key = new_key();
    let zed = json!({"name": "zed", "keys": [{"digest": key_digest(&zed_key), "id": &key_digest(&zed_key)[..8], "createdMs": 1}]});
    redis.cli(&["SET", "mcp:user:zed", &zed.to_string()]);
    redis.cli(&["SADD", "mcp:users", "zed"]);
    redis.cli(&["SET", &format!("mcp:user-key:{}", key_digest(&zed_key)), "zed"]);
    assert_eq!(b.hub.users().authenticate(&zed_key).map(|u| u.name.clone()).as_deref(), Some("zed"));

    // Redis down: loaded users still authenticate, changes are refused with 503.
    let key2 = issue(&a, &root, "alice");
    wait_until("the second key to reach hub B", PATIENCE, || b.hub.users().authenticate(&key2).is_some());
    redis.stop();
    for h in [&a, &b] {
        assert_eq!(h.hub.users().authenticate(&key2).unwrap().name, "alice");
        assert_eq!(h.hub.users().get("alice").unwrap().token("GITHUB_TOKEN").unwrap().expose(), value);
    }
    let r = admin(&a, &root, "POST", "/api/admin/users", Some(json!({"name": "dave"})));
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(r.json()["error"].as_str().unwrap().contains("unavailable"), "{}", r.text);
    assert!(!r.text.contains(value));
}

#[test]
fn two_hubs_provisioning_one_identity_on_one_redis_make_one_user() {
    let redis = RedisServer::start();
    let root = new_key();
    let cfg = json!({"redis": {"url": redis.url()}});
    let a = hub_with(&root, cfg.clone());
    let b = hub_with(&root, cfg);
    // The same first sign-in on both hubs at once, several times over: one user, one name.
    let names: Vec<String> = std::thread::scope(|s| {
        let runs: Vec<_> = (0..8)
            .map(|i| {
                let h = if i % 2 == 0 { &a } else { &b };
                s.spawn(move || h.hub.users().provision("octocat", "github:OctoCat").unwrap())
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    assert!(names.iter().all(|n| n == "octocat"), "{names:?}");
    assert_eq!(redis.cli(&["GET", "mcp:user-identity:github:octocat"]), "octocat");
    assert!(redis.cli(&["GET", "mcp:user:octocat"]).contains("\"identities\":[\"github:octocat\"]"));
    wait_until("hub B to see the provisioned user", PATIENCE, || b.hub.users().user_of_identity("github:octocat").as_deref() == Some("octocat"));
    // Another identity wanting the same name gets the next free one, on either hub.
    assert_eq!(b.hub.users().provision("octocat", "oidc:sub-9").unwrap(), "octocat-2");
    assert!(!a.hub.users().view("octocat").unwrap().admin);
    // An identity one hub just gave is refused (409) to another user on the other hub at once.
    b.hub.users().create("zed", false, None).unwrap();
    assert_eq!(a.hub.users().provision("newbie", "github:newbie").unwrap(), "newbie");
    let e = b.hub.users().add_identity("zed", "github:newbie").unwrap_err();
    assert_eq!(e.status(), 409, "{e}");
    b.hub.users().add_identity("zed", "github:zed").unwrap();
    assert_eq!(redis.cli(&["GET", "mcp:user-identity:github:zed"]), "zed");
    // Deleting the user frees its identity in the index.
    assert_eq!(admin(&a, &root, "DELETE", "/api/admin/users/octocat", None).status, 200);
    assert_eq!(redis.cli(&["EXISTS", "mcp:user-identity:github:octocat"]), "0");
    assert_eq!(a.hub.users().provision("octo", "github:octocat").unwrap(), "octo");
}

/// `mcphub serve` as a process; killed (SIGTERM, then SIGKILL) on drop.
struct Serve {
    child: std::process::Child,
    stderr: std::sync::Arc<parking_lot::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Serve {
    fn start(config: &std::path::Path, env: &[(&str, &str)]) -> Serve {
        use std::io::BufRead;
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mcphub"));
        cmd.args(["serve", "--port", "0", "--config"]).arg(config).env("DEBUG_MCPHUB", "1");
        for k in ["MCPHUB_SECRET_KEY", "MCPHUB_SECRET_KEY_FILE", "MCPHUB_STATE_DIR", "STATE_DIRECTORY", "REDIS_URL"] {
            cmd.env_remove(k);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.stdin(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().unwrap();
        let stderr = std::sync::Arc::new(parking_lot::Mutex::new(String::new()));
        let (pipe, sink) = (child.stderr.take().unwrap(), stderr.clone());
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Serve { child, stderr, reader: Some(reader) }
    }

    /// The base URL once the log says where it listens.
    fn base(&self) -> String {
        let mut found = None;
        wait_until("the 'listening on' line", PATIENCE, || {
            found = self.stderr.lock().lines().find_map(|l| {
                l.split("listening on ").nth(1).and_then(|r| r.split("/mcp").next()).map(str::to_string)
            });
            found.is_some()
        });
        found.unwrap()
    }

    /// SIGTERM, wait for the exit; the whole stderr.
    fn stop(mut self) -> String {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        wait_until("mcphub serve to exit after SIGTERM", PATIENCE, || self.child.try_wait().ok().flatten().is_some());
        // The reader ends at the pipe's EOF: every line is in.
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.stderr.lock().clone()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn serve_takes_the_secret_key_and_state_dir_from_the_environment_and_logs_no_secret() {
    let dir = TempDir::new("users-serve");
    std::fs::create_dir_all(&dir.0).unwrap();
    let root = new_key();
    let config = dir.0.join("config.json");
    std::fs::write(&config, json!({"users": {"root": {"keys": [key_digest(&root)], "admin": true}}}).to_string()).unwrap();
    let key_file = dir.0.join("secret.key");
    let hex_key = "5e".repeat(32);
    std::fs::write(&key_file, format!("{hex_key}\n")).unwrap();
    let state = dir.0.join("state");
    let env = [("MCPHUB_SECRET_KEY_FILE", key_file.to_str().unwrap()), ("MCPHUB_STATE_DIR", state.to_str().unwrap())];

    // A secret key that is set but malformed stops the start, without echoing it.
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_mcphub"))
        .args(["serve", "--port", "0", "--config"])
        .arg(&config)
        .env_remove("MCPHUB_SECRET_KEY_FILE")
        .env("MCPHUB_SECRET_KEY", "not-a-key-zzz")
        .output()
        .unwrap();
    let msg = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{msg}");
    assert!(msg.contains("MCPHUB_SECRET_KEY") && !msg.contains("not-a-key-zzz"), "{msg}");

    let value = "ghp_process_secret_9911";
    let serve = Serve::start(&config, &env);
    let base = serve.base();
    let auth = format!("Bearer {root}");
    let call = |method: &str, path: &str, body: Value| send(method, &format!("{base}{path}"), &[JSON, ("Authorization", &auth)], &body.to_string());
    assert_eq!(call("POST", "/api/admin/users", json!({"name": "alice"})).status, 201);
    let r = call("POST", "/api/admin/users/alice/keys", json!({}));
    let alice = r.json()["data"]["key"].as_str().unwrap().to_string();
    let r = send("PUT", &format!("{base}/api/me/tokens/GITHUB_TOKEN"), &[JSON, ("Authorization", &format!("Bearer {alice}"))], &json!({"value": value}).to_string());
    assert_eq!(r.status, 200, "{}", r.text);
    let log = serve.stop();
    let stored = std::fs::read_to_string(state.join("users.json")).expect("the state file under MCPHUB_STATE_DIR");
    assert!(stored.contains("alice") && !stored.contains(value));
    for secret in [value, alice.as_str(), root.as_str(), hex_key.as_str()] {
        assert!(!log.contains(secret), "a secret in the log:\n{log}");
    }
    assert!(log.contains("token GITHUB_TOKEN of 'alice' set"), "{log}");

    // Restarted with the same key file: alice and her token are back.
    let serve = Serve::start(&config, &env);
    let base = serve.base();
    let me = send("GET", &format!("{base}/api/me"), &[("Authorization", &format!("Bearer {alice}"))], "");
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.json()["data"]["tokens"], json!(["GITHUB_TOKEN"]));
    let log = serve.stop();
    assert!(!log.contains("cannot be decrypted"), "{log}");
}
