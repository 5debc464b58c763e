//! Where run-time users live (issue 5): Redis when the config names one,
//! else a JSON state file written atomically (temp file + fsync + rename).
//!
//! Redis keys:
//! - `mcp:user:{name}` → a [`UserRecord`] as JSON (tokens sealed, keys as digests);
//! - `mcp:user-key:{digest}` → the user name owning that run-time key;
//! - `mcp:users` → SET of the names that have a record;
//! - `mcp:users:version` → a counter bumped (`INCR`) by every change; other
//!   instances poll it once a second and reload when it moved;
//! - `mcp:user-identity:{identity}` → the run-time user a sign-in identity
//!   (`github:octocat`, normalised) belongs to: the one-owner rule across
//!   instances ([`Backend::claim_identity`] writes a user's record and
//!   the index in one transaction);
//! - `mcp:users:lastused` → HASH key digest → its last use, ms since the Unix
//!   epoch (written by `Users`' poll thread; a run-time key's field is
//!   dropped when the key is revoked).
//!
//! State file: `{stateDir}/users.json` = `{"version": 1, "users": {name: UserRecord}}`.
//! One hub instance per state directory.

use super::secrets::Sealed;
use crate::store::redis::RedisStore;
use crate::store::StoreError;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Redis key prefix of user records.
pub const USER_PREFIX: &str = "mcp:user:";
/// Redis key prefix of the run-time key index (digest → name).
pub const KEY_INDEX_PREFIX: &str = "mcp:user-key:";
/// Redis SET of user names with a record.
pub const USERS_SET: &str = "mcp:users";
/// Redis key prefix of the sign-in identity index (identity → name).
pub const IDENTITY_INDEX_PREFIX: &str = "mcp:user-identity:";
/// Redis change counter.
pub const VERSION_KEY: &str = "mcp:users:version";
/// Redis HASH of keys' last uses (digest → ms since the Unix epoch).
pub const LAST_USED_KEY: &str = "mcp:users:lastused";
/// File name of the state file under the state directory.
pub const STATE_FILE: &str = "users.json";

/// A hub key issued at run time (only its digest is kept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyRecord {
    /// SHA-256 of the key, 64 lowercase hex.
    pub digest: String,
    /// The first 8 hex chars of the digest (what the API names the key by).
    pub id: String,
    /// Optional free-text label (`"laptop"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Creation time, ms since the Unix epoch.
    pub created_ms: u64,
}

/// What the store keeps of one user: a run-time user, or the run-time part
/// of a config user (`overlay`: keys, tokens and revoked config keys added
/// through the API; admin/servers come from the config file).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserRecord {
    /// The user's name.
    pub name: String,
    /// Whether this record only extends a config user (ignored, with a
    /// warning, once that user leaves the config file).
    #[serde(default)]
    pub overlay: bool,
    /// Admin role (run-time users only).
    #[serde(default)]
    pub admin: bool,
    /// Allowed servers, `None` = all (run-time users only).
    #[serde(default)]
    pub servers: Option<Vec<String>>,
    /// Run-time keys.
    #[serde(default)]
    pub keys: Vec<KeyRecord>,
    /// Run-time service tokens, sealed (AES-256-GCM, AD = `user\0NAME`).
    #[serde(default)]
    pub tokens: BTreeMap<String, Sealed>,
    /// Digests of config keys revoked at run time.
    #[serde(default)]
    pub revoked: Vec<String>,
    /// Creation time, ms since the Unix epoch.
    #[serde(default)]
    pub created_ms: u64,
    /// Sign-in identities (`github:<login>`, `oidc:<sub or e-mail>`,
    /// normalised by `crate::config::auth::normalize_identity`) mapped to
    /// this user: a user provisioned at its first sign-in (issue 17).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identities: Vec<String>,
}

/// What [`Backend::claim_identity`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// The changed record was stored; the Redis version after it (0 for other backends).
    Stored(UserRecord, u64),
    /// The change declined (it answered `None`): nothing was stored.
    Declined,
    /// The identity belongs to this user (perhaps the same one, perhaps
    /// mapped meanwhile by another instance): nothing was stored.
    IdentityOf(String),
}

#[derive(Serialize, Deserialize, Default)]
struct StateFile {
    version: u32,
    #[serde(default)]
    users: BTreeMap<String, UserRecord>,
}

/// A store failure, for the API's 503 (no secret in it).
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// Redis is down (breaker open) or did not answer.
    #[error("the user store (Redis) is unavailable: {0}; users are served from the last loaded copy, changes are refused until it is back")]
    Unavailable(String),
    /// The state file cannot be read or written.
    #[error("the user state file {path}: {message}")]
    File { path: String, message: String },
    /// Anything else (a record that is not JSON).
    #[error("the user store: {0}")]
    Other(String),
}

impl From<StoreError> for PersistError {
    fn from(e: StoreError) -> PersistError {
        match e {
            StoreError::Unavailable(m) => PersistError::Unavailable(m),
            other => PersistError::Other(other.to_string()),
        }
    }
}

/// The persistence backend.
pub enum Backend {
    /// Nothing is persisted (`Users::from_config`).
    None,
    /// `{dir}/users.json`.
    File(PathBuf),
    /// Redis, through its own pool and breaker.
    Redis(RedisStore),
}

/// The result of one change: the new record (`None` = deleted) and the
/// Redis version after it (0 for other backends).
pub type Applied = (Option<UserRecord>, u64);

impl Backend {
    /// `file` or `redis` or `none`.
    pub fn kind(&self) -> &'static str {
        match self {
            Backend::None => "none",
            Backend::File(_) => "file",
            Backend::Redis(_) => "redis",
        }
    }

    /// Every record and the version they were read at.
    pub fn load(&self) -> Result<(BTreeMap<String, UserRecord>, u64), PersistError> {
        match self {
            Backend::None => Ok((BTreeMap::new(), 0)),
            Backend::File(dir) => load_file(&dir.join(STATE_FILE)).map(|u| (u, 0)),
            Backend::Redis(r) => load_redis(r),
        }
    }

    /// The Redis change counter (0 when absent or not Redis).
    pub fn version(&self) -> Result<u64, PersistError> {
        match self {
            Backend::Redis(r) => Ok(r.run(|c| redis::cmd("GET").arg(VERSION_KEY).query::<Option<u64>>(c))?.unwrap_or(0)),
            _ => Ok(0),
        }
    }

    /// The user a run-time key digest belongs to, per the Redis index.
    pub fn owner_of(&self, digest: &str) -> Result<Option<String>, PersistError> {
        match self {
            Backend::Redis(r) => Ok(r.run(|c| redis::cmd("GET").arg(format!("{KEY_INDEX_PREFIX}{digest}")).query(c))?),
            _ => Ok(None),
        }
    }

    /// Applies `change` to the current record of `name` and stores the result.
    /// `local` is this instance's copy of every record (the file backend's
    /// source of truth; Redis reads the record fresh, under `WATCH`).
    /// `change` answers the new record (`None` deletes) or refuses with `E`.
    pub fn update<E>(
        &self,
        name: &str,
        local: &BTreeMap<String, UserRecord>,
        mut change: impl FnMut(Option<UserRecord>) -> Result<Option<UserRecord>, E>,
    ) -> Result<Result<Applied, E>, PersistError> {
        match self {
            Backend::None => Ok(change(local.get(name).cloned()).map(|r| (r, 0))),
            Backend::File(dir) => {
                let new = match change(local.get(name).cloned()) {
                    Ok(n) => n,
                    Err(e) => return Ok(Err(e)),
                };
                let mut all = local.clone();
                match &new {
                    Some(r) => all.insert(name.to_string(), r.clone()),
                    None => all.remove(name),
                };
                write_file(dir, &all)?;
                Ok(Ok((new, 0)))
            }
            Backend::Redis(r) => update_redis(r, name, &mut change),
        }
    }
}

impl Backend {
    /// Gives `identity` to user `name`: `change` turns the user's current
    /// record (`None`: none stored) into the one to store, the identity
    /// added, or declines (`None`). Atomic: unless `identity` is some stored
    /// record's already ([`Claimed::IdentityOf`]), the record and (Redis) the
    /// index `mcp:user-identity:{identity}` are written together — Redis
    /// reads `mcp:user:{name}` and the index under `WATCH` and writes the
    /// record, the name, the index and the version in one `MULTI`; the file
    /// and memory backends rely on the caller holding the registry's write
    /// lock (one instance per state directory) and on `local` being every
    /// record. An index entry whose user no longer holds the identity is
    /// stale and is overwritten.
    pub fn claim_identity(
        &self,
        name: &str,
        identity: &str,
        local: &BTreeMap<String, UserRecord>,
        mut change: impl FnMut(Option<UserRecord>) -> Option<UserRecord>,
    ) -> Result<Claimed, PersistError> {
        match self {
            Backend::None | Backend::File(_) => {
                if let Some(owner) = local.values().find(|r| r.identities.iter().any(|i| i == identity)) {
                    return Ok(Claimed::IdentityOf(owner.name.clone()));
                }
                let Some(new) = change(local.get(name).cloned()) else { return Ok(Claimed::Declined) };
                if let Backend::File(dir) = self {
                    let mut all = local.clone();
                    all.insert(name.to_string(), new.clone());
                    write_file(dir, &all)?;
                }
                Ok(Claimed::Stored(new, 0))
            }
            Backend::Redis(r) => claim_redis(r, name, identity, &mut change),
        }
    }
}

fn claim_redis(
    r: &RedisStore,
    name: &str,
    identity: &str,
    change: &mut impl FnMut(Option<UserRecord>) -> Option<UserRecord>,
) -> Result<Claimed, PersistError> {
    let user_key = format!("{USER_PREFIX}{name}");
    let index_key = format!("{IDENTITY_INDEX_PREFIX}{identity}");
    Ok(r.run(|c| {
        redis::transaction(c, &[&user_key, &index_key], |c, pipe| {
            let owner: Option<String> = redis::cmd("GET").arg(&index_key).query(c)?;
            if let Some(owner) = owner {
                let owner_key = format!("{USER_PREFIX}{owner}");
                redis::cmd("WATCH").arg(&owner_key).exec(c)?;
                let raw: Option<Vec<u8>> = redis::cmd("GET").arg(&owner_key).query(c)?;
                if raw.and_then(|raw| parse_record(&owner, &raw)).is_some_and(|o| o.identities.iter().any(|i| i == identity)) {
                    return Ok(Some(Claimed::IdentityOf(owner)));
                }
            }
            let raw: Option<Vec<u8>> = redis::cmd("GET").arg(&user_key).query(c)?;
            let Some(new) = change(raw.and_then(|raw| parse_record(name, &raw))) else { return Ok(Some(Claimed::Declined)) };
            let body = serde_json::to_vec(&new).unwrap_or_default();
            pipe.cmd("SET").arg(&user_key).arg(body).ignore();
            pipe.cmd("SADD").arg(USERS_SET).arg(name).ignore();
            pipe.cmd("SET").arg(&index_key).arg(name).ignore();
            pipe.cmd("INCR").arg(VERSION_KEY);
            let done: Option<(u64,)> = pipe.query(c)?;
            Ok(done.map(|(v,)| Claimed::Stored(new.clone(), v)))
        })
    })?)
}

fn load_file(path: &Path) -> Result<BTreeMap<String, UserRecord>, PersistError> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(PersistError::File { path: path.display().to_string(), message: e.to_string() }),
    };
    let state: StateFile = serde_json::from_slice(&text)
        .map_err(|e| PersistError::File { path: path.display().to_string(), message: format!("not a users state file: {e}") })?;
    Ok(state.users)
}

/// Writes `{dir}/users.json` atomically: `users.json.tmp`, fsync, rename,
/// fsync of the directory. Creates `dir` (mode 0700) on first use; the
/// file is 0600.
fn write_file(dir: &Path, users: &BTreeMap<String, UserRecord>) -> Result<(), PersistError> {
    let path = dir.join(STATE_FILE);
    let err = |e: std::io::Error| PersistError::File { path: path.display().to_string(), message: e.to_string() };
    if !dir.exists() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(err)?;
    }
    let body = serde_json::to_vec_pretty(&StateFile { version: 1, users: users.clone() })
        .map_err(|e| PersistError::Other(e.to_string()))?;
    let tmp = dir.join(format!("{STATE_FILE}.tmp"));
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(err)?;
        f.write_all(&body).map_err(err)?;
        f.sync_all().map_err(err)?;
    }
    std::fs::rename(&tmp, &path).map_err(err)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn parse_record(name: &str, raw: &[u8]) -> Option<UserRecord> {
    match serde_json::from_slice::<UserRecord>(raw) {
        Ok(r) if r.name == name => Some(r),
        Ok(_) => {
            log::warn!("user store: the record under {USER_PREFIX}{name} names another user; ignored");
            None
        }
        Err(e) => {
            log::warn!("user store: the record under {USER_PREFIX}{name} is not a user record ({e}); ignored");
            None
        }
    }
}

fn load_redis(r: &RedisStore) -> Result<(BTreeMap<String, UserRecord>, u64), PersistError> {
    let version: Option<u64> = r.run(|c| redis::cmd("GET").arg(VERSION_KEY).query(c))?;
    let names: Vec<String> = r.run(|c| redis::cmd("SMEMBERS").arg(USERS_SET).query(c))?;
    let mut out = BTreeMap::new();
    for chunk in names.chunks(200) {
        let raws: Vec<Option<Vec<u8>>> = r.run(|c| {
            let mut p = redis::pipe();
            for n in chunk {
                p.cmd("GET").arg(format!("{USER_PREFIX}{n}"));
            }
            p.query(c)
        })?;
        for (name, raw) in chunk.iter().zip(raws) {
            if let Some(rec) = raw.and_then(|raw| parse_record(name, &raw)) {
                out.insert(name.clone(), rec);
            }
        }
    }
    Ok((out, version.unwrap_or(0)))
}

fn update_redis<E>(
    r: &RedisStore,
    name: &str,
    change: &mut impl FnMut(Option<UserRecord>) -> Result<Option<UserRecord>, E>,
) -> Result<Result<Applied, E>, PersistError> {
    let key = format!("{USER_PREFIX}{name}");
    let mut refused: Option<E> = None;
    let mut applied: Option<UserRecord> = None;
    let version: u64 = r.run(|c| {
        redis::transaction(c, &[&key], |c, pipe| {
            refused = None;
            let raw: Option<Vec<u8>> = redis::cmd("GET").arg(&key).query(c)?;
            let old = raw.and_then(|raw| parse_record(name, &raw));
            let new = match change(old.clone()) {
                Ok(n) => n,
                Err(e) => {
                    refused = Some(e);
                    return Ok(Some(0));
                }
            };
            let old_keys: BTreeSet<&str> = old.iter().flat_map(|o| o.keys.iter().map(|k| k.digest.as_str())).collect();
            let new_keys: BTreeSet<&str> = new.iter().flat_map(|o| o.keys.iter().map(|k| k.digest.as_str())).collect();
            for gone in old_keys.difference(&new_keys) {
                pipe.cmd("DEL").arg(format!("{KEY_INDEX_PREFIX}{gone}")).ignore();
                pipe.cmd("HDEL").arg(LAST_USED_KEY).arg(*gone).ignore();
            }
            for added in new_keys.difference(&old_keys) {
                pipe.cmd("SET").arg(format!("{KEY_INDEX_PREFIX}{added}")).arg(name).ignore();
            }
            let old_ids: BTreeSet<&str> = old.iter().flat_map(|o| o.identities.iter().map(String::as_str)).collect();
            let new_ids: BTreeSet<&str> = new.iter().flat_map(|o| o.identities.iter().map(String::as_str)).collect();
            for gone in old_ids.difference(&new_ids) {
                pipe.cmd("DEL").arg(format!("{IDENTITY_INDEX_PREFIX}{gone}")).ignore();
            }
            for added in new_ids.difference(&old_ids) {
                pipe.cmd("SET").arg(format!("{IDENTITY_INDEX_PREFIX}{added}")).arg(name).ignore();
            }
            match &new {
                Some(rec) => {
                    let body = serde_json::to_vec(rec).unwrap_or_default();
                    pipe.cmd("SET").arg(&key).arg(body).ignore().cmd("SADD").arg(USERS_SET).arg(name).ignore();
                }
                None => {
                    pipe.cmd("DEL").arg(&key).ignore().cmd("SREM").arg(USERS_SET).arg(name).ignore();
                }
            }
            pipe.cmd("INCR").arg(VERSION_KEY);
            let done: Option<(u64,)> = pipe.query(c)?;
            applied = new;
            Ok(done.map(|(v,)| v))
        })
    })?;
    Ok(match refused {
        Some(e) => Err(e),
        None => Ok((applied, version)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_file_round_trips_and_is_private() {
        let dir = std::env::temp_dir().join(format!("mcphub-persist-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let b = Backend::File(dir.clone());
        assert!(b.load().unwrap().0.is_empty(), "no file yet: no users");
        let rec = UserRecord { name: "carol".into(), created_ms: 1, ..UserRecord::default() };
        let (new, _) = b.update("carol", &BTreeMap::new(), |_| Ok::<_, ()>(Some(rec.clone()))).unwrap().unwrap();
        assert_eq!(new.as_ref(), Some(&rec));
        assert_eq!(b.load().unwrap().0.get("carol"), Some(&rec));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(STATE_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!dir.join("users.json.tmp").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
