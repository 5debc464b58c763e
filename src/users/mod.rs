//! Users of the hub (DESIGN.md §6, seeds/003): hub keys, service tokens and
//! the servers each user may use.
//!
//! - A hub key is `mcphub_` + 64 hex chars (256 random bits); only its
//!   SHA-256 digest is kept. Presented as `Authorization: Bearer …` or
//!   `?key=…` on `/mcp`.
//! - A service token (`GITHUB_TOKEN`) is a [`Secret`]: its `Debug`/`Display`
//!   print `***`, so it cannot reach a log line by accident.
//!
//! Users come from the config file now; the run-time registry (admin API,
//! store persistence, encryption at rest) extends [`Users`].

use crate::config::UserConfig;
use parking_lot::RwLock;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A secret value (service token, hub key) that never prints itself.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that must send it (an upstream header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// One user as the request path sees it (immutable; replaced on change).
#[derive(Debug, Clone)]
pub struct User {
    /// The user's name.
    pub name: String,
    /// Whether the user may use `/api/admin/*`.
    pub admin: bool,
    /// The servers the user may use (`None` = all).
    pub servers: Option<Vec<String>>,
    /// Service tokens by name.
    pub tokens: BTreeMap<String, Secret>,
}

impl User {
    /// Whether the user may use `server` at all (before token checks).
    pub fn may_use(&self, server: &str) -> bool {
        self.servers.as_ref().is_none_or(|s| s.iter().any(|n| n == server))
    }

    /// The user's token `name`, if set.
    pub fn token(&self, name: &str) -> Option<&Secret> {
        self.tokens.get(name)
    }
}

/// `mcphub_` + 64 lowercase hex chars from 256 OS-random bits.
pub fn new_key() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the operating system's random number generator is unavailable");
    format!("mcphub_{}", hex::encode(b))
}

/// SHA-256 of a presented key, 64 lowercase hex (what is stored).
pub fn key_digest(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Whether `key` has the hub key shape (`mcphub_` + 64 hex).
pub fn looks_like_key(key: &str) -> bool {
    key.strip_prefix("mcphub_").is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `text` with every hub key (`mcphub_` + 64 hex) replaced by `mcphub_***`.
pub fn mask_keys(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("mcphub_") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 7..];
        let hex_len = after.bytes().take_while(u8::is_ascii_hexdigit).count();
        out.push_str(if hex_len >= 16 { "mcphub_***" } else { "mcphub_" });
        rest = if hex_len >= 16 { &after[hex_len..] } else { after };
    }
    out.push_str(rest);
    out
}

#[derive(Default)]
struct State {
    /// Users by name.
    users: BTreeMap<String, Arc<User>>,
    /// Key digest → user name.
    keys: HashMap<String, String>,
}

/// The registry: users by name and by key digest.
pub struct Users {
    state: RwLock<State>,
    allow_anonymous: bool,
}

impl Users {
    /// The config file's users.
    pub fn from_config(users: &[UserConfig], allow_anonymous: bool) -> Users {
        let mut state = State::default();
        for u in users {
            let user = User {
                name: u.name.clone(),
                admin: u.admin,
                servers: u.servers.clone(),
                tokens: u.tokens.iter().map(|(n, v)| (n.clone(), Secret::new(v.clone()))).collect(),
            };
            for d in &u.key_digests {
                state.keys.insert(d.clone(), u.name.clone());
            }
            state.users.insert(u.name.clone(), Arc::new(user));
        }
        Users { state: RwLock::new(state), allow_anonymous }
    }

    /// Whether any user exists (then a key is required unless anonymous access is allowed).
    pub fn is_empty(&self) -> bool {
        self.state.read().users.is_empty()
    }

    /// Whether requests without a key are served: no users at all, or `allowAnonymous`.
    pub fn anonymous_allowed(&self) -> bool {
        self.allow_anonymous || self.is_empty()
    }

    /// The user owning `key`, if it is a live key.
    pub fn authenticate(&self, key: &str) -> Option<Arc<User>> {
        let digest = key_digest(key);
        let state = self.state.read();
        let name = state.keys.get(&digest)?;
        state.users.get(name).cloned()
    }

    /// The user named `name`.
    pub fn get(&self, name: &str) -> Option<Arc<User>> {
        self.state.read().users.get(name).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_documented_shape_and_authenticate_by_digest() {
        let k = new_key();
        assert!(looks_like_key(&k), "{k}");
        assert_ne!(k, new_key());
        let cfg = UserConfig {
            name: "alice".into(),
            key_digests: vec![key_digest(&k)],
            admin: false,
            servers: Some(vec!["github".into()]),
            tokens: vec![("GITHUB_TOKEN".into(), "ghp_x".into())],
        };
        let users = Users::from_config(&[cfg], false);
        let alice = users.authenticate(&k).unwrap();
        assert_eq!(alice.name, "alice");
        assert!(alice.may_use("github") && !alice.may_use("jira"));
        assert!(users.authenticate(&new_key()).is_none());
        assert!(!users.anonymous_allowed());
        assert_eq!(format!("{:?} {}", alice.token("GITHUB_TOKEN").unwrap(), alice.token("GITHUB_TOKEN").unwrap()), "Secret(***) ***");
        assert!(!format!("{alice:?}").contains("ghp_x"));
        assert_eq!(mask_keys(&format!("bad key {k} here; mcphub_ok")), "bad key mcphub_*** here; mcphub_ok");
    }
}
