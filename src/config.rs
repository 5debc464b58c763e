//! The hub's configuration: one typed struct, read from JSON, validated once
//! at load with messages that name the offending key (docs/decisions.md D9).
//!
//! The `mcpServers` map reads the same JSON that Claude Desktop, Cursor and
//! other hubs use (`type`, `url`, `headers`, `command`, `args`, `env`) plus the
//! hub's own keys (docs/decisions.md D8). Stdio entries (`command`) and legacy
//! `"type": "sse"` ones load too (issue 19, [`process`]); an entry of another
//! type is skipped with a warning instead of failing the file.
//!
//! ```json
//! {
//!   "port": 3000,
//!   "toolNaming": "auto",
//!   "mcpServers": {
//!     "github": {"type": "streamable-http", "url": "https://api.githubcopilot.com/mcp/",
//!                "headers": {"Authorization": "Bearer ${env.GITHUB_TOKEN}"}},
//!     "mock":   {"type": "http", "url": "http://127.0.0.1:3101/mcp", "protocol": "legacy"}
//!   }
//! }
//! ```

pub mod auth;
pub mod process;
pub use process::{ProcessLimits, StdioConfig, TransportKind};
pub mod limits;

use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

/// A configuration error; the message names the key (e.g. `mcpServers.github.url`).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid JSON (the message has the line and column).
    #[error("config is not valid JSON: {0}")]
    Syntax(String),
    /// A key is unknown, a value has the wrong type or is invalid; `key` is
    /// its full dotted path (issue 14: never a line/column alone).
    #[error("{key}: {message}")]
    Invalid {
        /// Dotted path of the key.
        key: String,
        /// What is wrong.
        message: String,
    },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.into(), message: message.into() }
}

/// How exposed tool and prompt names are formed (docs/decisions.md D4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ToolNaming {
    /// Names unchanged; only colliding names become `{server}__{name}`.
    #[default]
    Auto,
    /// Every name becomes `{server}__{name}`.
    Prefix,
}

/// Which protocol era to speak to a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ProtocolPin {
    /// Probe once (modern first, then legacy `initialize`) and cache the result.
    #[default]
    Auto,
    /// Always `initialize` + sessions.
    Legacy,
    /// Always 2026-07-28 per-request metadata.
    Modern,
}

/// How upstream sessions are shared (docs/decisions.md D3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SessionSharing {
    /// One upstream session per (server, context key).
    #[default]
    Context,
    /// One upstream session per downstream client session.
    Client,
}

/// One upstream server the hub can serve: a Streamable HTTP endpoint, a stdio
/// process or an HTTP+SSE endpoint (`transport`).
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// The key in `mcpServers`; the prefix of its tools on a name collision.
    pub name: String,
    /// The MCP endpoint URL (`http://` or `https://`); for a stdio server
    /// `"stdio:" + command`, only shown, never requested.
    pub url: String,
    /// Extra request headers sent to this server only (no user references).
    pub headers: Vec<(String, String)>,
    /// Header templates naming a user's service tokens (`${user.NAME}`),
    /// resolved per request for the calling user (docs/decisions.md D6); for
    /// a stdio server the `env` entries with `${user.NAME}`, named by the env var.
    pub user_headers: Vec<(String, String)>,
    /// The token names `user_headers` reference (sorted, unique): a user
    /// lacking one does not see this server.
    pub user_tokens: Vec<String>,
    /// Send `X-MCPHub-User: <name>` on every request (`forwardUser`).
    pub forward_user: bool,
    /// Era pin.
    pub protocol: ProtocolPin,
    /// Budget of one upstream call (`timeoutMs`, shorter than `timeouts.hubMs`).
    pub timeout: Duration,
    /// `timeouts.hubMs`, the deadline outside every call: named in a
    /// `-32001` whose `data.layer` is `"hub"`.
    pub hub_timeout: Duration,
    /// A `notifications/progress` from the server moves the call's deadline
    /// to now + `timeout` (`resetTimeoutOnProgress`, default false) …
    pub reset_timeout_on_progress: bool,
    /// … never past this from the call's start (`maxTotalTimeoutMs`: from
    /// `timeoutMs` to `timeouts.hubMs`, default `timeouts.hubMs`), and never
    /// past the request's hub deadline.
    pub max_total_timeout: Duration,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Upstream session sharing.
    pub session_sharing: SessionSharing,
    /// `maxConcurrency`: upstream calls in flight at once (`None`: unlimited).
    pub max_concurrency: Option<usize>,
    /// `maxQueue`: calls waiting for a slot (default 64; crate::limits::bulkhead).
    pub max_queue: usize,
    /// `heavyTools`: tool names or glob patterns (`*`, `?`) of this server's
    /// heavy tools, run through their own queue (crate::limits::heavy).
    pub heavy_tools: limits::HeavyTools,
    /// `heavyConcurrency`: heavy calls in flight at once (default 1).
    pub heavy_concurrency: usize,
    /// `heavyQueue`: heavy calls waiting (default 16); full → 503.
    pub heavy_queue: usize,
    /// How the hub reaches it: Streamable HTTP at `url` (default), a stdio
    /// process, or the 2024-11-05 HTTP+SSE transport (issue 19).
    pub transport: TransportKind,
}

/// An entry of `mcpServers` the hub skips, with why.
#[derive(Debug, Clone)]
pub struct SkippedServer {
    /// The key in `mcpServers`.
    pub name: String,
    /// Why it is not served.
    pub reason: String,
}

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen port (env `PORT`, `--port`).
    pub port: u16,
    /// Listen address; 127.0.0.1 unless told otherwise (docs/decisions.md D6).
    pub bind: IpAddr,
    /// Naming mode of tools and prompts.
    pub tool_naming: ToolNaming,
    /// Extra `Origin` values accepted besides localhost origins.
    pub allowed_origins: Vec<String>,
    /// Request workers.
    pub workers: usize,
    /// Bounded queue in front of the workers.
    pub queue: usize,
    /// Concurrent SSE streams.
    pub max_streams: usize,
    /// Maximum request body in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// The request head must arrive within this (`headTimeoutMs`, 408).
    pub head_timeout: Duration,
    /// The body must arrive within this after the head (`bodyTimeoutMs`, 408).
    pub body_timeout: Duration,
    /// Idle keep-alive connections are closed after this (`idleTimeoutSecs`).
    pub idle_timeout: Duration,
    /// Wall-clock budget to write one response or SSE event (`writeBudgetMs`).
    pub write_budget: Duration,
    /// At SIGTERM/SIGINT, how long in-flight requests and call streams get to
    /// finish before they are cut (`drainTimeoutMs`, 0..=3,600,000, default
    /// 10,000). A systemd unit's `TimeoutStopSec` must be longer.
    pub drain_timeout: Duration,
    /// A legacy client session idle this long expires (404 afterwards).
    pub client_session_idle: Duration,
    /// Most live legacy client sessions (`maxClientSessions`); beyond, `initialize` → 503.
    pub max_client_sessions: usize,
    /// The whole request inside the hub (`timeouts.hubMs`).
    pub hub_timeout: Duration,
    /// How long a merged list stays cached without a `list_changed` (`listCacheTtlSecs`).
    pub list_cache_ttl: Duration,
    /// Budget of one server's list fetch (`listTimeoutMs`); a slower server is
    /// left out of that list rather than holding the answer up.
    pub list_timeout: Duration,
    /// Context keys whose lists of servers with per-user credentials are
    /// cached at most (`listCacheContexts`, 1..=1,000,000, default 1000; the
    /// least recently used is evicted; issue 14). Measured at 1,000
    /// contexts: about 86 KiB per context whose tools list holds 20 tools
    /// (10 KB of JSON; `serde_json::Value`s), 91 KiB beside 20 shared tools
    /// (`tests/list_cache_memory.rs`).
    pub list_cache_contexts: usize,
    /// Servers served, in name order.
    pub servers: Vec<ServerConfig>,
    /// Entries skipped with a warning.
    pub skipped: Vec<SkippedServer>,
    /// `maxProcesses` (top level): stdio server processes of all servers at
    /// once (default 64; each server also has its own cap).
    pub max_processes: usize,
    /// The shared session store (`redis`, or env `REDIS_URL`); `None` → in memory.
    pub redis: Option<RedisConfig>,
    /// TTL of stored upstream sessions (`sessionTtlSecs`, default 3600 s),
    /// refreshed on use at most once a minute.
    pub session_ttl: Duration,
    /// The token that opens `/api/admin/*` (`adminToken`, `${env.NAME}`
    /// allowed); `None` → the admin API answers 401 to everyone.
    pub admin_token: Option<String>,
    /// Users from the config file (`users`); more are added at run time.
    pub users: Vec<UserConfig>,
    /// Whether requests without a hub key are served once users exist
    /// (`allowAnonymous`, default false; with no users at all, they are).
    pub allow_anonymous: bool,
    /// Where run-time users are kept without Redis (`stateDir`; `mcphub
    /// serve` lets `MCPHUB_STATE_DIR` override it); `None` → `$STATE_DIRECTORY`
    /// (systemd) or `./state`.
    pub state_dir: Option<std::path::PathBuf>,
    /// Rate limits (`rateLimits` and `mcpServers.NAME.rateLimit`; see `crate::limits`).
    pub rate_limits: limits::RateLimitConfig,
    /// Most tasks one user (the anonymous identity counting as one) holds in
    /// the hub at once, upstream-run and hub-run, both eras
    /// (`maxTasksPerUser`, 1..=10,000, default 100; issue 14 hole 5; see
    /// `crate::hub::tasks::Tasks::reserve`).
    pub max_tasks_per_user: usize,
    /// Most tasks the hub keeps at once, all users, upstream-run and hub-run,
    /// both eras (`maxTasks`, 1..=100,000, default 10,000; see
    /// `crate::hub::tasks::Tasks::reserve`).
    pub max_tasks: usize,
    /// What loads but deserves the operator's eye, one line each naming the
    /// key (issue 14): keys other MCP clients write into `mcpServers`
    /// entries, `tokens` no server uses, `${user.X}` no config user has.
    /// `check-config` prints them; `serve` logs them at WARN.
    pub warnings: Vec<String>,
    /// Where browsers and clients reach the hub (`publicUrl`, no trailing
    /// `/`): sign-in redirect URIs, the Connect page's endpoint, the `Secure`
    /// cookie rule (issue 17). `None`: `http://` + the loopback `Host` a
    /// request came with, else `http://{bind}:{port}` (`crate::hub::ui`).
    pub public_url: Option<String>,
    /// Sign-in to the users' pages (`auth`, [`auth::AuthConfig`]; issue 17).
    pub auth: auth::AuthConfig,
}

/// One user of the config file (`"users": {"alice": {…}}`, docs/decisions.md D6).
#[derive(Debug, Clone, PartialEq)]
pub struct UserConfig {
    /// The user's name (`[A-Za-z0-9_.@-]`, ≤ 64).
    pub name: String,
    /// SHA-256 digests (64 lowercase hex) of the user's hub keys (`keys`,
    /// each `"sha256:<hex>"` or bare hex; `mcphub keygen` prints them).
    pub key_digests: Vec<String>,
    /// Whether the user may use `/api/admin/*` (`admin`).
    pub admin: bool,
    /// The servers the user may use, groups expanded (`servers`: names or
    /// `"@group"`); `None` = all.
    pub servers: Option<Vec<String>>,
    /// Service tokens (`tokens`: `NAME` → literal or `${env.NAME}`).
    pub tokens: Vec<(String, String)>,
    /// Sign-in identities mapped to this user (`identities`: `github:<login>`,
    /// `oidc:<sub>` or `oidc:<e-mail>`; stored normalised,
    /// [`auth::normalize_identity`]); each belongs to one user.
    pub identities: Vec<String>,
}

/// Where the shared session store is (`"redis": {"url": …}`, `REDIS_URL`,
/// or `"redis": {"sentinel": {…}}`; exactly one of `url` and `sentinel`).
#[derive(Debug, Clone, PartialEq)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`; never printed unredacted.
    /// Empty when [`RedisConfig::sentinel`] is set.
    pub url: String,
    /// The primary is found through Redis Sentinel (docs/cluster.md §3); `url` is then unused.
    pub sentinel: Option<SentinelConfig>,
    /// Budget to open one connection (`connectTimeoutMs`, default 300 ms).
    pub connect_timeout: Duration,
    /// Read/write timeout of one command (`ioTimeoutMs`, default 500 ms).
    pub io_timeout: Duration,
    /// Longest wait for a pooled connection (`checkoutTimeoutMs`, default 200 ms).
    pub checkout_timeout: Duration,
    /// Most pooled connections (`poolSize`, default 8).
    pub pool_size: u32,
}

/// `redis.sentinel` (docs/cluster.md §3): the sentinels to ask for the current
/// primary of `masterName`, each time a connection is opened.
#[derive(Debug, Clone, PartialEq)]
pub struct SentinelConfig {
    /// `masterName`: the name the sentinels monitor the primary under.
    pub master_name: String,
    /// `nodes`: sentinel URLs, `redis://[:password@]host:port` (their own
    /// credentials); at least one; asked in order.
    pub nodes: Vec<String>,
    /// `password` (optional, `${env.NAME}` allowed): AUTH of the primary.
    /// Never printed.
    pub password: Option<String>,
    /// `db` (optional, default 0): the database on the primary.
    pub db: i64,
}

impl RedisConfig {
    /// Where it points, safe to print: the redacted URL, or
    /// `sentinel <masterName> via <redacted nodes>`.
    pub fn shown(&self) -> String {
        match &self.sentinel {
            None => redact_url(&self.url),
            Some(s) => format!("sentinel {} via {}", s.master_name, s.nodes.iter().map(|n| redact_url(n)).collect::<Vec<_>>().join(", ")),
        }
    }

    /// Defaults for `url`.
    pub fn new(url: impl Into<String>) -> RedisConfig {
        RedisConfig {
            url: url.into(),
            sentinel: None,
            connect_timeout: Duration::from_millis(300),
            io_timeout: Duration::from_millis(500),
            checkout_timeout: Duration::from_millis(200),
            pool_size: 8,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConfig {
    #[serde(rename = "$schema")]
    _schema: Option<Value>,
    port: Option<u16>,
    bind: Option<String>,
    #[serde(default)]
    tool_naming: ToolNaming,
    #[serde(default)]
    allowed_origins: Vec<String>,
    workers: Option<usize>,
    queue: Option<usize>,
    max_streams: Option<usize>,
    max_body_bytes: Option<usize>,
    head_timeout_ms: Option<u64>,
    body_timeout_ms: Option<u64>,
    idle_timeout_secs: Option<u64>,
    write_budget_ms: Option<u64>,
    drain_timeout_ms: Option<u64>,
    client_session_idle_secs: Option<u64>,
    max_client_sessions: Option<usize>,
    list_cache_ttl_secs: Option<u64>,
    list_timeout_ms: Option<u64>,
    list_cache_contexts: Option<u64>,
    timeouts: Option<RawTimeouts>,
    redis: Option<RawRedis>,
    session_ttl_secs: Option<u64>,
    admin_token: Option<String>,
    #[serde(default)]
    users: BTreeMap<String, RawUser>,
    #[serde(default)]
    groups: BTreeMap<String, Vec<String>>,
    allow_anonymous: Option<bool>,
    state_dir: Option<String>,
    rate_limits: Option<Value>,
    max_tasks_per_user: Option<u64>,
    max_tasks: Option<u64>,
    max_processes: Option<u64>,
    public_url: Option<String>,
    auth: Option<auth::RawAuth>,
    #[serde(default)]
    mcp_servers: BTreeMap<String, Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawTimeouts {
    client_ms: Option<u64>,
    hub_ms: Option<u64>,
    external_ms: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawUser {
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default)]
    admin: bool,
    servers: Option<Vec<String>>,
    #[serde(default)]
    tokens: BTreeMap<String, String>,
    #[serde(default)]
    identities: Vec<String>,
}

// ---- Strict reading (issue 14, hole 6) ----------------------------------
//
// Every level of the file is read by `read`: serde_ignored reports the keys
// a `Raw*` struct does not declare, serde_path_to_error the full key path of
// a wrong type. The keys a level knows are serde's own list for its struct
// (`known_keys`), so declaring a key is still one field of one `Raw*` struct.

/// Reads `value`, found at key path `at`, as `T`: `T` and the full paths of
/// the keys `T` does not declare (in document order).
///
/// Errors: a wrong type, named by the full key path in words:
/// `mcpServers.docs.timeoutMs: expected an integer, got the string "20000"`.
fn read<T: serde::de::DeserializeOwned>(value: Value, at: &[&str]) -> Result<(T, Vec<Vec<String>>), ConfigError> {
    let at_path: Vec<String> = at.iter().map(|s| s.to_string()).collect();
    if value.is_array() && !declared_keys::<T>().is_empty() {
        return Err(invalid(if at.is_empty() { "(the whole file)".into() } else { at.join(".") }, "expected an object, got an array"));
    }
    refuse_arrays(&value, &at_path)?;
    let mut unknown = Vec::new();
    // Read through a reference: `value` stays whole for the error path
    // (naming the offending number) without a copy on every load.
    let result = {
        let mut note = |path: serde_ignored::Path| {
            let mut segments: Vec<String> = at.iter().map(|s| s.to_string()).collect();
            path_segments(&path, &mut segments);
            unknown.push(segments);
        };
        serde_path_to_error::deserialize(serde_ignored::Deserializer::new(&value, &mut note))
    };
    match result {
        Ok(t) => Ok((t, unknown)),
        Err(e) => {
            let mut segments: Vec<String> = at.iter().map(|s| s.to_string()).collect();
            for s in e.path().iter() {
                segments.push(match s {
                    serde_path_to_error::Segment::Seq { index } => index.to_string(),
                    serde_path_to_error::Segment::Map { key } => key.clone(),
                    serde_path_to_error::Segment::Enum { variant } => variant.clone(),
                    serde_path_to_error::Segment::Unknown => "?".into(),
                });
            }
            let sensitive = segments.iter().any(|s| SENSITIVE_KEYS.contains(&s.as_str()));
            let key = if segments.is_empty() { "(the whole file)".to_string() } else { segments.join(".") };
            let serde = e.inner().to_string();
            // serde_json's arbitrary_precision (ids echoed byte for byte,
            // issue 14 hole 9) reports a number that does not fit its field
            // as just "invalid number": say which number and why.
            let relative = &segments[at.len().min(segments.len())..];
            let found = relative.iter().try_fold(&value, |v, k| match v {
                Value::Object(m) => m.get(k),
                Value::Array(a) => k.parse::<usize>().ok().and_then(|i| a.get(i)),
                _ => None,
            });
            if serde == "invalid number" {
                if let Some(Value::Number(n)) = found {
                    let text = n.to_string();
                    let why = if text.contains(['.', 'e', 'E']) {
                        "expected an integer"
                    } else if text.starts_with('-') {
                        "expected a non-negative integer"
                    } else {
                        "expected a smaller integer"
                    };
                    return Err(invalid(key, format!("{why}, got {text}")));
                }
            }
            let message = type_error_message(&serde, !sensitive);
            match (message.strip_suffix(", got number"), found) {
                (Some(expected), Some(Value::Number(n))) => Err(invalid(key, format!("{expected}, got {n}"))),
                _ => Err(invalid(key, message)),
            }
        }
    }
}

/// serde reads a struct from an array too (`"timeouts": [1, 2, 3]`): an
/// array where a known level (an object) belongs is refused.
fn refuse_arrays(value: &Value, path: &[String]) -> Result<(), ConfigError> {
    if let Value::Object(map) = value {
        for (k, v) in map {
            let mut child = path.to_vec();
            child.push(k.clone());
            if v.is_array() && !known_keys(&child).is_empty() {
                return Err(invalid(child.join("."), "expected an object, got an array"));
            }
            refuse_arrays(v, &child)?;
        }
    }
    Ok(())
}

fn path_segments(path: &serde_ignored::Path, out: &mut Vec<String>) {
    use serde_ignored::Path;
    match path {
        Path::Root => {}
        Path::Seq { parent, index } => {
            path_segments(parent, out);
            out.push(index.to_string());
        }
        Path::Map { parent, key } => {
            path_segments(parent, out);
            out.push(key.clone());
        }
        Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => path_segments(parent, out),
    }
}

/// Keys under which a string value may be a secret: a type error there says
/// "a string", never the string.
const SENSITIVE_KEYS: &[&str] = &["tokens", "headers", "adminToken", "url", "redis", "keys", "env"];

/// serde's wording of a type error (`invalid type: string "20000", expected
/// u64`) in the file's terms (`expected an integer, got the string "20000"`).
/// `quote`: whether a string value may be shown. Other messages pass unchanged.
pub fn type_error_message(serde: &str, quote: bool) -> String {
    if let Some(rest) = serde.strip_prefix("unknown variant ") {
        // unknown variant `v9`, expected one of `auto`, `legacy`, `modern`
        if let Some((got, expected)) = rest.split_once(", expected ") {
            let got = got.trim_matches('`');
            let expected = expected.strip_prefix("one of ").unwrap_or(expected).replace('`', "\"");
            return if quote {
                format!("expected one of {expected}, got the string \"{got}\"")
            } else {
                format!("expected one of {expected}")
            };
        }
    }
    let (rest, out_of_range) = match (serde.strip_prefix("invalid type: "), serde.strip_prefix("invalid value: ")) {
        (Some(r), _) => (r, false),
        (_, Some(r)) => (r, true),
        _ => return serde.to_string(),
    };
    let Some((got, expected)) = rest.rsplit_once(", expected ") else { return serde.to_string() };
    let max = match expected {
        "u8" => Some(u64::from(u8::MAX)),
        "u16" => Some(u64::from(u16::MAX)),
        "u32" => Some(u64::from(u32::MAX)),
        "u64" | "usize" => Some(u64::MAX),
        _ => None,
    };
    let expected = match (expected, max) {
        (_, Some(u64::MAX)) if out_of_range => "a non-negative integer".to_string(),
        (_, Some(max)) if out_of_range => format!("an integer from 0 to {max}"),
        (_, Some(_)) => "an integer".to_string(),
        ("a boolean", _) => "true or false".to_string(),
        ("a map", _) => "an object".to_string(),
        ("a sequence", _) => "an array".to_string(),
        // An enum (`toolNaming`, `protocol`, `sessionSharing`): its names are strings.
        ("string or map", _) => "a string".to_string(),
        (e, _) if e.starts_with("struct ") => "an object".to_string(),
        (e, _) => e.to_string(),
    };
    let got = if let Some(s) = got.strip_prefix("string ") {
        if quote {
            format!("the string {s}")
        } else {
            "a string".to_string()
        }
    } else if let Some(v) = ["integer ", "floating point ", "boolean "].iter().find_map(|p| got.strip_prefix(p)) {
        v.trim_matches('`').to_string()
    } else {
        match got {
            "map" => "an object".to_string(),
            "sequence" => "an array".to_string(),
            "unit value" | "null" => "null".to_string(),
            other => other.to_string(),
        }
    };
    format!("expected {expected}, got {got}")
}

/// The keys the `Raw*` struct `T` declares, after renames (serde's own list,
/// read through a deserializer that only asks for it).
fn declared_keys<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    #[derive(Debug)]
    struct Fields(&'static [&'static str]);
    impl std::fmt::Display for Fields {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("fields")
        }
    }
    impl std::error::Error for Fields {}
    impl serde::de::Error for Fields {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Fields(&[])
        }
    }
    struct AskFields;
    impl<'de> serde::Deserializer<'de> for AskFields {
        type Error = Fields;
        fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Fields> {
            Err(Fields(&[]))
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Fields> {
            Err(Fields(fields))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    match T::deserialize(AskFields) {
        Err(Fields(f)) => f,
        Ok(_) => &[],
    }
}

/// The keys known at the level whose path is `parent` (empty: nothing is
/// known there, e.g. inside a free-form map).
fn known_keys(parent: &[String]) -> &'static [&'static str] {
    match parent.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [] => declared_keys::<RawConfig>(),
        ["timeouts"] => declared_keys::<RawTimeouts>(),
        ["redis"] => declared_keys::<RawRedis>(),
        ["redis", "sentinel"] => declared_keys::<RawSentinel>(),
        ["users", _] => declared_keys::<RawUser>(),
        ["mcpServers", _] => declared_keys::<RawServer>(),
        ["mcpServers", _, "limits"] => declared_keys::<RawLimits>(),
        p => auth::known_keys(p).unwrap_or(&[]),
    }
}

/// The known key nearest to `key` (OSA distance, ignoring ASCII case, at
/// most a third of the key's length, at least 1), if any is near.
pub fn nearest_key<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    let key_lower = key.to_ascii_lowercase();
    let limit = (key.chars().count() / 3).clamp(1, 3);
    known
        .iter()
        .map(|k| (strsim::osa_distance(&key_lower, &k.to_ascii_lowercase()), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// The error for the unknown key at `path` (its full dotted path; the last
/// segment is the key) among `known` (issue 14):
/// `mcpServers.gh.header: unknown key — did you mean "headers"?`, or the
/// known keys listed when none is near.
pub fn unknown_key(path: &str, known: &[&str]) -> ConfigError {
    let key = path.rsplit('.').next().unwrap_or(path);
    let message = match nearest_key(key, known) {
        Some(near) => format!("unknown key — did you mean \"{near}\"?"),
        None if known.is_empty() => "unknown key".to_string(),
        None => format!("unknown key (known here: {})", known.join(", ")),
    };
    invalid(path, message)
}

/// Keys other MCP clients write into their `mcpServers` entries and the hub
/// does not use: they load with a warning instead of failing the file, so
/// one file can serve a client and the hub (issue 14). Where they come from:
/// - Claude Desktop `claude_desktop_config.json`: `command`, `args`, `env`
///   (the hub's own keys since issue 19: a stdio entry, like Cline's and
///   Gemini CLI's `cwd`); Claude Code `.mcp.json` (code.claude.com/docs/en/mcp): `oauth`, `headersHelper`
///   (a command that makes headers — the hub does not run it);
/// - Cline `src/services/mcp/schemas.ts` (`BaseConfigSchema` and the
///   transports): `autoApprove`, `disabled`, `timeout` (s),
///   `remoteConfigured`, `oauth`, `metadata`, `transportType`;
/// - Roo Code / Kilo Code `mcp_settings.json` (kilo.ai/docs, "Using MCP in
///   the CLI"): `alwaysAllow`, `disabled`;
/// - Sourcegraph Cody (its MCP `BaseConfigSchema`): `disabledTools`, `error`;
/// - VS Code / Copilot `mcp.json` (code.visualstudio.com, "MCP configuration
///   reference"): `envFile`, `sandboxEnabled`, `sandbox`, `oauth`, `dev`;
///   Cursor `mcp.json` (cursor.com/docs/mcp) writes `envFile` too;
/// - Gemini CLI `settings.json` (google-gemini/gemini-cli
///   `docs/tools/mcp-server.md`): `httpUrl`, `timeout` (ms), `trust`,
///   `description`, `includeTools`, `excludeTools`, `extensionName`;
/// - `transport`: named in issue 14 (other hubs' entries); no client schema
///   read here declares it.
pub const OTHER_CLIENT_KEYS: &[&str] = &[
    "envFile", "disabled", "autoApprove", "alwaysAllow", "description", "transport", "transportType",
    "timeout", "trust", "includeTools", "excludeTools", "disabledTools", "oauth", "metadata", "remoteConfigured", "error",
    "sandboxEnabled", "sandbox", "dev", "httpUrl", "extensionName", "headersHelper",
];

/// The warning for a key of another MCP client at `path` in a served entry.
fn other_client_key_warning(path: &str) -> String {
    let key = path.rsplit('.').next().unwrap_or(path);
    let hint = match key {
        "disabled" => " (to skip a server, the hub reads \"enabled\": false)",
        "timeout" => " (the hub reads \"timeoutMs\")",
        "httpUrl" => " (the hub reads \"url\")",
        "transport" | "transportType" => " (the hub reads \"type\")",
        _ => "",
    };
    format!("{path}: ignored — a key other MCP clients write, not used by the hub{hint}")
}

/// Warnings about service tokens (issue 14): a config user's token that no
/// served server's headers name, and a `${user.X}` that no config user has
/// (with no config users at all, every token is set at run time: no warning).
fn token_warnings(users: &[UserConfig], servers: &[ServerConfig]) -> Vec<String> {
    let used: BTreeSet<&str> = servers.iter().flat_map(|s| s.user_tokens.iter().map(String::as_str)).collect();
    let used_list: Vec<&str> = used.iter().copied().collect();
    let mut out = Vec::new();
    for u in users {
        for (t, _) in &u.tokens {
            if !used.contains(t.as_str()) {
                let hint = match nearest_key(t, &used_list) {
                    Some(near) => format!(" — did you mean \"{near}\"?"),
                    None => String::new(),
                };
                out.push(format!("users.{}.tokens.{t}: no server uses this token (no ${{user.{t}}} in any mcpServers headers){hint}", u.name));
            }
        }
    }
    if users.is_empty() {
        return out;
    }
    for s in servers {
        for (h, template) in &s.user_headers {
            for t in s.user_tokens.iter().filter(|t| template.contains(&format!("${{user.{t}}}"))) {
                if !users.iter().any(|u| u.tokens.iter().any(|(n, _)| n == t)) {
                    out.push(format!(
                        "mcpServers.{}.{}.{h}: no config user has token {t} (${{user.{t}}}); users without it do not see '{}' until they set it (PUT /api/me/tokens/{t})",
                        s.name,
                        if matches!(s.transport, TransportKind::Stdio(_)) { "env" } else { "headers" },
                        s.name
                    ));
                }
            }
        }
    }
    out
}

/// The error for the first of `unknown` (full key paths), if any.
fn refuse_unknown(unknown: &[Vec<String>]) -> Result<(), ConfigError> {
    match unknown.first() {
        Some(path) => Err(unknown_key(&path.join("."), known_keys(&path[..path.len() - 1]))),
        None => Ok(()),
    }
}

/// Whether `name` is a valid user name: `[A-Za-z0-9_.@-]`, 1..=64.
pub fn valid_user_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.@-".contains(&b))
}

/// A key digest from config: `sha256:<64 hex>` or bare 64 hex → lowercase hex.
fn key_digest(text: &str) -> Option<String> {
    let hex = text.strip_prefix("sha256:").unwrap_or(text).to_ascii_lowercase();
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

fn parse_users(
    raw: BTreeMap<String, RawUser>,
    groups: &BTreeMap<String, Vec<String>>,
    servers: &[ServerConfig],
    skipped: &[SkippedServer],
) -> Result<Vec<UserConfig>, ConfigError> {
    let known = |n: &str| servers.iter().any(|s| s.name == n) || skipped.iter().any(|s| s.name == n);
    for (g, members) in groups {
        if let Some(m) = members.iter().find(|m| !known(m)) {
            return Err(invalid(format!("groups.{g}"), format!("'{m}' is not a server in mcpServers")));
        }
    }
    let mut out = Vec::new();
    // Key digest → the user it was first listed under (users in name order).
    let mut owners: BTreeMap<String, String> = BTreeMap::new();
    // Identity → the user it was first listed under.
    let mut identity_owners: BTreeMap<String, String> = BTreeMap::new();
    for (name, u) in raw {
        let key = format!("users.{name}");
        if !valid_user_name(&name) {
            return Err(invalid(&key, "user names are 1..=64 characters of [A-Za-z0-9_.@-]"));
        }
        let mut key_digests = Vec::new();
        for k in &u.keys {
            if k.starts_with("mcphub_") {
                return Err(invalid(format!("{key}.keys"), "put the key's digest here, not the key (mcphub keygen prints it)"));
            }
            let digest = key_digest(k).ok_or_else(|| invalid(format!("{key}.keys"), "each key is \"sha256:<64 hex>\""))?;
            if let Some(other) = owners.insert(digest.clone(), name.clone()) {
                let which = format!("sha256:{}…", &digest[..8]);
                return Err(if other == name {
                    invalid(format!("{key}.keys"), format!("the key {which} is listed twice"))
                } else {
                    invalid(format!("{key}.keys"), format!("the key {which} is listed under both users '{other}' and '{name}': a key belongs to one user"))
                });
            }
            key_digests.push(digest);
        }
        let servers = match u.servers {
            None => None,
            Some(list) => {
                let mut expanded = Vec::new();
                for entry in list {
                    if let Some(g) = entry.strip_prefix('@') {
                        let members = groups.get(g).ok_or_else(|| invalid(format!("{key}.servers"), format!("no group named '{g}'")))?;
                        expanded.extend(members.iter().cloned());
                    } else if known(&entry) {
                        expanded.push(entry);
                    } else {
                        return Err(invalid(format!("{key}.servers"), format!("'{entry}' is not a server in mcpServers (groups are \"@name\")")));
                    }
                }
                expanded.sort();
                expanded.dedup();
                Some(expanded)
            }
        };
        let mut tokens = Vec::new();
        for (t, v) in u.tokens {
            if !valid_token_name(&t) {
                return Err(invalid(format!("{key}.tokens"), format!("'{t}': token names are [A-Za-z0-9_]+")));
            }
            let v = substitute_env(&v).map_err(|m| invalid(format!("{key}.tokens.{t}"), m))?;
            check_token_value(&t, &v).map_err(|m| invalid(format!("{key}.tokens.{t}"), m))?;
            tokens.push((t, v));
        }
        let mut identities = Vec::new();
        for i in &u.identities {
            if !auth::valid_identity(i) {
                return Err(invalid(format!("{key}.identities"), format!("'{i}': identities are \"github:<login>\" or \"oidc:<sub or e-mail>\"")));
            }
            let i = auth::normalize_identity(i);
            if let Some(other) = identity_owners.insert(i.clone(), name.clone()) {
                return Err(invalid(format!("{key}.identities"), format!("'{i}' is listed under both users '{other}' and '{name}': an identity belongs to one user")));
            }
            if !identities.contains(&i) {
                identities.push(i);
            }
        }
        out.push(UserConfig { name, key_digests, admin: u.admin, servers, tokens, identities });
    }
    Ok(out)
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawRedis {
    url: Option<String>,
    sentinel: Option<RawSentinel>,
    connect_timeout_ms: Option<u64>,
    io_timeout_ms: Option<u64>,
    checkout_timeout_ms: Option<u64>,
    pool_size: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawSentinel {
    master_name: Option<String>,
    nodes: Option<Vec<String>>,
    password: Option<String>,
    db: Option<u32>,
}

/// `redis.sentinel`, checked: a master name, at least one node URL.
fn parse_sentinel(raw: RawSentinel) -> Result<SentinelConfig, ConfigError> {
    let master_name = raw.master_name.filter(|n| !n.trim().is_empty()).ok_or_else(|| invalid("redis.sentinel.masterName", "is required (the name the sentinels monitor)"))?;
    let nodes = raw.nodes.filter(|n| !n.is_empty()).ok_or_else(|| invalid("redis.sentinel.nodes", "needs at least one sentinel URL (redis://host:26379)"))?;
    let nodes = nodes
        .into_iter()
        .enumerate()
        .map(|(i, n)| {
            let key = format!("redis.sentinel.nodes.{i}");
            let n = substitute_env(&n).map_err(|m| invalid(&key, m))?;
            check_redis_url(&n).map_err(|m| invalid(&key, m))?;
            Ok(n)
        })
        .collect::<Result<Vec<_>, ConfigError>>()?;
    let password = raw.password.map(|p| substitute_env(&p).map_err(|m| invalid("redis.sentinel.password", m))).transpose()?;
    Ok(SentinelConfig { master_name, nodes, password, db: bounded("redis.sentinel.db", raw.db.map(u64::from), 0, 0, 1_000_000)? as i64 })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawServer {
    #[serde(rename = "type")]
    kind: Option<String>,
    url: Option<String>,
    headers: Option<BTreeMap<String, String>>,
    command: Option<String>,
    args: Option<Vec<String>>,
    env: Option<BTreeMap<String, String>>,
    cwd: Option<String>,
    limits: Option<RawLimits>,
    max_processes: Option<u64>,
    idle_timeout_secs: Option<u64>,
    start_timeout_ms: Option<u64>,
    ping_interval_secs: Option<u64>,
    #[serde(default)]
    protocol: ProtocolPin,
    timeout_ms: Option<u64>,
    #[serde(default)]
    reset_timeout_on_progress: bool,
    max_total_timeout_ms: Option<u64>,
    connect_timeout_ms: Option<u64>,
    #[serde(default)]
    session_sharing: SessionSharing,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    forward_user: bool,
    rate_limit: Option<Value>,
    max_concurrency: Option<u64>,
    max_queue: Option<u64>,
    #[serde(default)]
    heavy_tools: Vec<String>,
    heavy_concurrency: Option<u64>,
    heavy_queue: Option<u64>,
}

/// `mcpServers.NAME.limits` of a stdio server (issue 19).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawLimits {
    memory_mb: Option<u64>,
    cpu_secs: Option<u64>,
    open_files: Option<u64>,
}

fn yes() -> bool {
    true
}

/// Checks an upstream URL: http(s), a host, parseable as a URI. Messages
/// show the URL without its query or user info (they may carry tokens).
pub fn check_url(url: &str) -> Result<(), String> {
    let shown = redact_url(url);
    let uri: ureq::http::Uri = url.parse().map_err(|_| format!("'{shown}' is not a valid URL"))?;
    if !matches!(uri.scheme_str(), Some("http") | Some("https")) {
        return Err(format!("'{shown}' must start with http:// or https://"));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("'{shown}' has no host"));
    }
    Ok(())
}

/// `(static headers, user templates, token names)`: with `${user.X}`, a
/// value is a template resolved per request (docs/decisions.md D6).
type HeaderParts = (Vec<(String, String)>, Vec<(String, String)>, Vec<String>);

/// Headers of an HTTP or SSE server; `${env.X}` is filled now. Errors name
/// `{key}.headers` (a bad name) or `{key}.headers.NAME` (a bad value).
fn parse_headers(key: &str, raw: BTreeMap<String, String>) -> Result<HeaderParts, ConfigError> {
    let (mut headers, mut user_headers, mut user_tokens) = (Vec::new(), Vec::new(), Vec::new());
    for (h, v) in raw {
        if h.is_empty() || !h.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)) {
            return Err(invalid(format!("{key}.headers"), format!("'{h}' is not a valid header name")));
        }
        let (v, refs) = substitute_keeping_user_refs(&v).map_err(|m| invalid(format!("{key}.headers.{h}"), m))?;
        if v.contains(['\r', '\n']) {
            return Err(invalid(format!("{key}.headers.{h}"), "header values must be a single line"));
        }
        if refs.is_empty() {
            headers.push((h, v));
        } else {
            user_tokens.extend(refs);
            user_headers.push((h, v));
        }
    }
    Ok((headers, user_headers, user_tokens))
}

/// Keys of a stdio server found on an HTTP or SSE one: an error naming the first.
fn refuse_stdio_keys(key: &str, s: &RawServer) -> Result<(), ConfigError> {
    let present = [
        ("command", s.command.is_some()),
        ("args", s.args.is_some()),
        ("env", s.env.is_some()),
        ("cwd", s.cwd.is_some()),
        ("limits", s.limits.is_some()),
        ("maxProcesses", s.max_processes.is_some()),
        ("idleTimeoutSecs", s.idle_timeout_secs.is_some()),
        ("startTimeoutMs", s.start_timeout_ms.is_some()),
        ("pingIntervalSecs", s.ping_interval_secs.is_some()),
    ];
    match present.iter().find(|(_, p)| *p) {
        Some((k, _)) => Err(invalid(format!("{key}.{k}"), "only for stdio servers (this entry has a url)")),
        None => Ok(()),
    }
}

/// A string of a stdio server other than an env value (an arg, `cwd`):
/// `${env.X}` filled, `${user.X}` refused, no NUL byte (it cannot reach exec).
fn stdio_literal(key: &str, text: &str) -> Result<String, ConfigError> {
    let (filled, refs) = substitute_keeping_user_refs(text).map_err(|m| invalid(key, m))?;
    if let Some(t) = refs.first() {
        return Err(invalid(key, format!("${{user.{t}}} is only allowed in env values (a user's token reaches a stdio server through its environment)")));
    }
    if filled.contains('\0') {
        return Err(invalid(key, "contains a NUL byte"));
    }
    Ok(filled)
}

/// Whether `name` is an environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
fn valid_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_') && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Whether `path` is a regular file (symlinks followed) with an execute bit.
fn executable_file(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Checks a stdio server's `command` (issue 19): a path (it contains `/`;
/// relative to `cwd` when set, as the child resolves it after its `chdir`)
/// must exist, be a file and be executable by its mode bits; a bare name must
/// be an executable file in one of the directories of `path` (the `PATH` the
/// child gets: its `env` entry, else the hub's). Errors name `key`.
fn check_command(key: &str, command: &str, cwd: Option<&Path>, path: &str) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    if command.contains('/') {
        let p = match cwd {
            Some(dir) => dir.join(command),
            None => std::path::PathBuf::from(command),
        };
        let meta = std::fs::metadata(&p).map_err(|_| invalid(key, format!("'{command}' does not exist")))?;
        if !meta.is_file() {
            return Err(invalid(key, format!("'{command}' is not a file")));
        }
        if meta.permissions().mode() & 0o111 == 0 {
            return Err(invalid(key, format!("'{command}' is not executable")));
        }
        return Ok(());
    }
    if path.split(':').filter(|d| !d.is_empty()).any(|d| executable_file(&Path::new(d).join(command))) {
        return Ok(());
    }
    let shown = if path.is_empty() { "empty" } else { path };
    Err(invalid(key, format!("'{command}' is not found in PATH ({shown})")))
}

/// The stdio part of a server entry (issue 19, design "Config"): its
/// [`StdioConfig`], and its [`HeaderParts`]: no headers, the env entries
/// naming `${user.X}` as `(env var name, template)` and the token names they
/// use — the server's `user_headers` and `user_tokens`, filled per request
/// like header templates.
///
/// Errors name the key: `url`, `headers`, `forwardUser: true` or `protocol:
/// "modern"` on a stdio server; a missing, unfound or non-executable
/// `command`; `${…}` in `command`, `${user.X}` in `args` or `cwd`; a `cwd`
/// that is not a directory; a bad env name; bounds (`maxProcesses`
/// 1..=1024, `idleTimeoutSecs` 1..=86400, `startTimeoutMs` 100..=`hubMs`,
/// `pingIntervalSecs` 1..=3600, `limits.memoryMb` ≥ 16, `cpuSecs` and
/// `openFiles` ≥ 1).
fn parse_stdio(key: &str, s: &mut RawServer, hub_ms: u64) -> Result<(StdioConfig, HeaderParts), ConfigError> {
    if s.url.is_some() {
        return Err(invalid(format!("{key}.url"), "a stdio server (it has a command) takes no url"));
    }
    if s.headers.is_some() {
        return Err(invalid(format!("{key}.headers"), "stdio servers take env, not headers"));
    }
    if s.forward_user {
        return Err(invalid(format!("{key}.forwardUser"), "stdio servers take no headers (pass a user's token in env as ${user.NAME})"));
    }
    if s.protocol == ProtocolPin::Modern {
        return Err(invalid(
            format!("{key}.protocol"),
            "a stdio server speaks the session era (initialize): \"modern\" cannot be pinned (use \"auto\" or \"legacy\")",
        ));
    }
    let command = s.command.take().unwrap_or_default();
    if command.trim().is_empty() {
        return Err(invalid(format!("{key}.command"), "is required"));
    }
    if command.contains("${") {
        return Err(invalid(
            format!("{key}.command"),
            "is taken as written: no ${…} references (${env.NAME} is allowed in args, env and cwd; ${user.NAME} in env values)",
        ));
    }
    let (mut env, mut user_env, mut user_tokens) = (Vec::new(), Vec::new(), Vec::new());
    for (n, v) in s.env.take().unwrap_or_default() {
        if !valid_env_name(&n) {
            return Err(invalid(format!("{key}.env"), format!("'{n}' is not a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*)")));
        }
        let (v, refs) = substitute_keeping_user_refs(&v).map_err(|m| invalid(format!("{key}.env.{n}"), m))?;
        if v.contains('\0') {
            return Err(invalid(format!("{key}.env.{n}"), "contains a NUL byte"));
        }
        if refs.is_empty() {
            env.push((n, v));
        } else {
            user_tokens.extend(refs);
            user_env.push((n, v));
        }
    }
    let cwd = match s.cwd.take() {
        None => None,
        Some(c) => {
            let c = stdio_literal(&format!("{key}.cwd"), &c)?;
            match std::fs::metadata(&c) {
                Err(_) => return Err(invalid(format!("{key}.cwd"), format!("'{c}' does not exist"))),
                Ok(m) if !m.is_dir() => return Err(invalid(format!("{key}.cwd"), format!("'{c}' is not a directory"))),
                Ok(_) => Some(std::path::PathBuf::from(c)),
            }
        }
    };
    let path = match env.iter().find(|(n, _)| n == "PATH") {
        Some((_, p)) => p.clone(),
        None => std::env::var("PATH").unwrap_or_default(),
    };
    check_command(&format!("{key}.command"), &command, cwd.as_deref(), &path)?;
    let mut args = Vec::new();
    for (i, a) in s.args.take().unwrap_or_default().iter().enumerate() {
        args.push(stdio_literal(&format!("{key}.args.{i}"), a)?);
    }
    let raw_limits = s.limits.take().unwrap_or_default();
    let limit = |k: &str, v: Option<u64>, min: u64, max: u64| v.map(|v| bounded(&format!("{key}.limits.{k}"), Some(v), min, min, max)).transpose();
    let limits = ProcessLimits {
        // ≤ 2^40 MiB, so the byte count (× 2^20) fits a u64.
        memory_mb: limit("memoryMb", raw_limits.memory_mb, 16, 1 << 40)?,
        cpu_secs: limit("cpuSecs", raw_limits.cpu_secs, 1, u64::from(u32::MAX))?,
        open_files: limit("openFiles", raw_limits.open_files, 1, 1 << 20)?,
    };
    let config = StdioConfig {
        command,
        args,
        env,
        cwd,
        limits,
        max_processes: bounded(&format!("{key}.maxProcesses"), s.max_processes, process::DEFAULT_MAX_PROCESSES as u64, 1, 1024)? as usize,
        idle_timeout: Duration::from_secs(bounded(
            &format!("{key}.idleTimeoutSecs"),
            s.idle_timeout_secs,
            process::DEFAULT_IDLE_TIMEOUT.as_secs(),
            1,
            DAY_SECS,
        )?),
        start_timeout: Duration::from_millis(bounded(
            &format!("{key}.startTimeoutMs"),
            s.start_timeout_ms,
            (process::DEFAULT_START_TIMEOUT.as_millis() as u64).min(hub_ms),
            100,
            hub_ms,
        )?),
        ping_interval: Duration::from_secs(bounded(
            &format!("{key}.pingIntervalSecs"),
            s.ping_interval_secs,
            process::DEFAULT_PING_INTERVAL.as_secs(),
            1,
            3600,
        )?),
    };
    Ok((config, (Vec::new(), user_env, user_tokens)))
}

/// Checks a Redis URL: `redis://`, `rediss://` or `redis+unix://`. Messages
/// never show the password.
pub fn check_redis_url(url: &str) -> Result<(), String> {
    if ["redis://", "rediss://", "redis+unix://", "unix://"].iter().any(|p| url.starts_with(p)) {
        Ok(())
    } else {
        Err(format!("'{}' must start with redis:// (or rediss://, redis+unix://)", redact_url(url)))
    }
}

/// A URL safe to print: user info replaced by `***@`, query by `?***`.
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, _)) => (b, "?***"),
        None => (url, ""),
    };
    let redacted = match base.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            match authority.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://***@{host}{path}"),
                None => base.to_string(),
            }
        }
        None => base.to_string(),
    };
    format!("{redacted}{query}")
}

/// Replaces `${env.NAME}` references with the environment variable's value.
/// Errors (naming the variable, never its value): an unset variable, an
/// unterminated reference, or another kind of reference.
pub fn substitute_env(text: &str) -> Result<String, String> {
    substitute(text, false).map(|(s, _)| s)
}

/// Like [`substitute_env`], but `${user.NAME}` references (a user's service
/// token, docs/decisions.md D6) are kept as they are and their names returned, for
/// server header templates resolved per request.
pub fn substitute_keeping_user_refs(text: &str) -> Result<(String, Vec<String>), String> {
    substitute(text, true)
}

fn substitute(text: &str, keep_user: bool) -> Result<(String, Vec<String>), String> {
    let mut out = String::with_capacity(text.len());
    let mut user_refs = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| "unterminated \"${\" reference".to_string())?;
        let reference = &after[..end];
        if let (true, Some(name)) = (keep_user, reference.strip_prefix("user.")) {
            if !valid_token_name(name) {
                return Err(format!("${{user.{name}}}: token names are [A-Za-z0-9_]+"));
            }
            out.push_str(&rest[start..start + 2 + end + 1]);
            user_refs.push(name.to_string());
            rest = &after[end + 1..];
            continue;
        }
        let supported = if keep_user { "${env.NAME} and ${user.NAME} are" } else { "only ${env.NAME} is" };
        let name = reference.strip_prefix("env.").ok_or_else(|| format!("unsupported reference ${{{reference}}} ({supported} supported)"))?;
        let value = std::env::var(name).map_err(|_| format!("environment variable {name} is not set"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok((out, user_refs))
}

/// Whether `name` is a valid service token name (`GITHUB_TOKEN`): `[A-Za-z0-9_]+`, ≤ 64.
pub fn valid_token_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

const DAY_MS: u64 = 86_400_000;
const DAY_SECS: u64 = 86_400;

/// `value` or `default`, checked to lie in `min..=max` (so no duration can
/// overflow an `Instant`); the error names the key.
fn bounded(key: &str, value: Option<u64>, default: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
    let v = value.unwrap_or(default);
    if v < min || v > max {
        return Err(invalid(key, format!("{v} is outside {min}..={max}")));
    }
    Ok(v)
}

/// Default hub deadline (docs/decisions.md D7: client 30 s > hub 25 s > server 20 s).
pub const DEFAULT_HUB_TIMEOUT_MS: u64 = 25_000;
/// Default of `timeouts.clientMs`, the client's own timeout: not enforced by
/// the hub (clients set it), only checked to be longer than `timeouts.hubMs`.
pub const DEFAULT_CLIENT_TIMEOUT_MS: u64 = 30_000;
/// Default budget of one upstream call.
pub const DEFAULT_SERVER_TIMEOUT_MS: u64 = 20_000;
/// Default of `drainTimeoutMs` (graceful shutdown; below the unit's `TimeoutStopSec=45s`).
pub const DEFAULT_DRAIN_TIMEOUT_MS: u64 = 10_000;
/// Largest `drainTimeoutMs`: one hour.
pub const MAX_DRAIN_TIMEOUT_MS: u64 = 3_600_000;
/// Most tasks the hub keeps at once, upstream-run and hub-run together, when
/// the config does not say (`maxTasks`); a task-creating call beyond is refused
/// (`crate::hub::tasks`).
pub const DEFAULT_MAX_TASKS: usize = 10_000;

/// Longest token value, bytes (it goes into an HTTP header).
pub const MAX_TOKEN_BYTES: usize = 8192;

/// Checks a service token value when it is set — through the API (`PUT
/// /api/me/tokens/NAME`, `PUT /api/admin/users/NAME/tokens/NAME`) and in the
/// config (`users.NAME.tokens`) — because it is sent in an upstream request
/// header (issue 14, hole 2): it must be an HTTP field value (RFC 9110 §5.5:
/// visible ASCII, space and horizontal tab; no control characters, nothing
/// outside ASCII), 1..=[`MAX_TOKEN_BYTES`] bytes, and neither start nor end
/// with a space or tab (RFC 9110 §5.5 has them stripped by the receiver).
///
/// Errors: the rule broken, naming `token` (the token's name) and the
/// character's position — never the value or any part of it.
pub fn check_token_value(token: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("token {token} is empty"));
    }
    if value.len() > MAX_TOKEN_BYTES {
        return Err(format!("token {token} is longer than {MAX_TOKEN_BYTES} bytes"));
    }
    let rule = "is not a valid HTTP field value (RFC 9110 §5.5: visible ASCII, space and tab only)";
    if let Some((i, c)) = value.chars().enumerate().find(|(_, c)| !matches!(c, ' ' | '\t' | '!'..='~')) {
        let what = if c.is_ascii() { "a control character" } else { "not ASCII" };
        return Err(format!("token {token} {rule}: character {} is {what}", i + 1));
    }
    if value.starts_with([' ', '\t']) || value.ends_with([' ', '\t']) {
        return Err(format!("token {token} starts or ends with a space or tab (RFC 9110 §5.5: a receiver strips them)"));
    }
    Ok(())
}

impl Config {
    /// The HTTP layer's settings taken from this configuration (the rest stay
    /// at `crate::http::ServerConfig::default()`).
    pub fn http_server(&self) -> crate::http::ServerConfig {
        crate::http::ServerConfig {
            workers: self.workers,
            queue: self.queue,
            max_streams: self.max_streams,
            max_body_bytes: self.max_body_bytes,
            head_timeout: self.head_timeout,
            body_timeout: self.body_timeout,
            idle_timeout: self.idle_timeout,
            write_budget: self.write_budget,
            drain_timeout: self.drain_timeout,
            ..crate::http::ServerConfig::default()
        }
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        Config::parse(&text)
    }

    /// Parses and validates config JSON.
    ///
    /// Errors name the key: unknown top-level keys, a server without `url`, a
    /// URL that is not http(s), a server name outside `[A-Za-z0-9_.-]` (it
    /// becomes a tool-name prefix), header values that are not single-line, a
    /// timeout layer not shorter than the one outside it (docs/decisions.md D7:
    /// `timeouts.clientMs` > `timeouts.hubMs` > `mcpServers.NAME.timeoutMs` >
    /// `timeouts.externalMs` when set; `timeoutMs` ≤ `maxTotalTimeoutMs` ≤ `hubMs`),
    /// a stdio entry whose command or cwd cannot work, or with keys it cannot
    /// take (`parse_stdio`), stdio keys on a URL entry.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let value: Value = serde_json::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        let (raw, unknown): (RawConfig, _) = read(value, &[])?;
        refuse_unknown(&unknown)?;
        let mut warnings = Vec::new();
        let bind: IpAddr = match raw.bind.as_deref() {
            None => IpAddr::from([127, 0, 0, 1]),
            Some(b) => b.parse().map_err(|_| invalid("bind", format!("'{b}' is not an IP address")))?,
        };
        let timeouts = raw.timeouts.unwrap_or_default();
        let hub_ms = bounded("timeouts.hubMs", timeouts.hub_ms, DEFAULT_HUB_TIMEOUT_MS, 1, DAY_MS)?;
        let client_ms = bounded("timeouts.clientMs", timeouts.client_ms, DEFAULT_CLIENT_TIMEOUT_MS, 1, DAY_MS)?;
        if hub_ms >= client_ms {
            return Err(invalid("timeouts.hubMs", format!("{hub_ms} ms must be shorter than timeouts.clientMs ({client_ms} ms)")));
        }
        let external_ms = timeouts.external_ms.map(|ms| bounded("timeouts.externalMs", Some(ms), 0, 1, DAY_MS)).transpose()?;
        let positive = |key: &str, v: Option<usize>, default: usize| -> Result<usize, ConfigError> {
            match v {
                Some(0) => Err(invalid(key, "must be greater than 0")),
                Some(n) => Ok(n),
                None => Ok(default),
            }
        };
        let mut servers = Vec::new();
        let mut skipped = Vec::new();
        let mut rate_overrides = BTreeMap::new();
        for (name, value) in raw.mcp_servers {
            let key = format!("mcpServers.{name}");
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) || name.contains("__") {
                return Err(invalid(&key, "server names must be non-empty [A-Za-z0-9_.-] without \"__\" (they prefix tool names)"));
            }
            if name.len() > 32 {
                return Err(invalid(&key, "server names must be at most 32 characters (they prefix tool names)"));
            }
            let (mut server, unknown): (RawServer, _) = read(value, &["mcpServers", &name])?;
            let (other_clients, unknown): (Vec<_>, Vec<_>) =
                unknown.into_iter().partition(|p| p.len() == 3 && OTHER_CLIENT_KEYS.contains(&p[2].as_str()));
            refuse_unknown(&unknown)?;
            if !server.enabled {
                skipped.push(SkippedServer { name, reason: "disabled (\"enabled\": false)".into() });
                continue;
            }
            let kind = server.kind.as_deref().unwrap_or(if server.command.is_some() { "stdio" } else { "streamable-http" });
            let stdio = match kind {
                "streamable-http" | "streamableHttp" | "http" | "sse" => false,
                "stdio" => true,
                other => {
                    skipped.push(SkippedServer { name, reason: format!("type \"{other}\" is not supported yet") });
                    continue;
                }
            };
            let sse = kind == "sse";
            // Entries the hub skips are reported once as skipped; only served ones get a line per key.
            warnings.extend(other_clients.iter().map(|p| other_client_key_warning(&p.join("."))));
            let (url, headers, user_headers, mut user_tokens, protocol, transport);
            if stdio {
                let (config, parts) = parse_stdio(&key, &mut server, hub_ms)?;
                url = format!("stdio:{}", config.command);
                (headers, user_headers, user_tokens) = parts;
                // A process is a legacy session (issue 19): `auto` and `legacy` both mean legacy.
                protocol = ProtocolPin::Legacy;
                transport = TransportKind::Stdio(std::sync::Arc::new(config));
            } else {
                refuse_stdio_keys(&key, &server)?;
                let u = server.url.take().ok_or_else(|| invalid(format!("{key}.url"), format!("is required for a{} server", if sse { "n sse" } else { " streamable-http" })))?;
                check_url(&u).map_err(|m| invalid(format!("{key}.url"), m))?;
                url = u;
                (headers, user_headers, user_tokens) = parse_headers(&key, server.headers.take().unwrap_or_default())?;
                if sse && server.protocol == ProtocolPin::Modern {
                    return Err(invalid(
                        format!("{key}.protocol"),
                        "an sse server speaks the 2024-11-05 session era: \"modern\" cannot be pinned (use \"auto\" or \"legacy\")",
                    ));
                }
                protocol = if sse { ProtocolPin::Legacy } else { server.protocol };
                transport = if sse { TransportKind::Sse } else { TransportKind::StreamableHttp };
            }
            user_tokens.sort();
            user_tokens.dedup();
            let timeout_ms = server.timeout_ms.unwrap_or(DEFAULT_SERVER_TIMEOUT_MS.min(hub_ms.saturating_sub(1).max(1)));
            if timeout_ms == 0 || timeout_ms >= hub_ms {
                return Err(invalid(
                    format!("{key}.timeoutMs"),
                    format!("{timeout_ms} ms must be greater than 0 and shorter than timeouts.hubMs ({hub_ms} ms)"),
                ));
            }
            if let Some(external_ms) = external_ms.filter(|e| *e >= timeout_ms) {
                return Err(invalid(
                    format!("{key}.timeoutMs"),
                    format!("{timeout_ms} ms must be longer than timeouts.externalMs ({external_ms} ms)"),
                ));
            }
            let max_total_ms = server.max_total_timeout_ms.unwrap_or(hub_ms);
            if max_total_ms < timeout_ms || max_total_ms > hub_ms {
                return Err(invalid(
                    format!("{key}.maxTotalTimeoutMs"),
                    format!("{max_total_ms} ms must be from {key}.timeoutMs ({timeout_ms} ms) to timeouts.hubMs ({hub_ms} ms)"),
                ));
            }
            if let Some(r) = &server.rate_limit {
                rate_overrides.insert(name.clone(), limits::parse_rate(&format!("{key}.rateLimit"), r)?);
            }
            servers.push(ServerConfig {
                name,
                url,
                headers,
                protocol,
                timeout: Duration::from_millis(timeout_ms),
                hub_timeout: Duration::from_millis(hub_ms),
                reset_timeout_on_progress: server.reset_timeout_on_progress,
                max_total_timeout: Duration::from_millis(max_total_ms),
                connect_timeout: Duration::from_millis(bounded(&format!("{key}.connectTimeoutMs"), server.connect_timeout_ms, 3_000.min(timeout_ms), 1, timeout_ms)?),
                session_sharing: server.session_sharing,
                user_headers,
                user_tokens,
                forward_user: server.forward_user,
                max_concurrency: match server.max_concurrency {
                    None => None,
                    n => Some(bounded(&format!("{key}.maxConcurrency"), n, 1, 1, limits::MAX_LIMIT as u64)? as usize),
                },
                max_queue: bounded(&format!("{key}.maxQueue"), server.max_queue, limits::DEFAULT_MAX_QUEUE as u64, 0, limits::MAX_LIMIT as u64)? as usize,
                heavy_tools: limits::HeavyTools(server.heavy_tools),
                heavy_concurrency: bounded(&format!("{key}.heavyConcurrency"), server.heavy_concurrency, 1, 1, limits::MAX_LIMIT as u64)? as usize,
                heavy_queue: bounded(&format!("{key}.heavyQueue"), server.heavy_queue, 16, 0, limits::MAX_LIMIT as u64)? as usize,
                transport,
            });
        }
        let redis = match raw.redis {
            None => None,
            Some(r) => {
                let d = match (r.url, r.sentinel) {
                    (Some(_), Some(_)) => return Err(invalid("redis.sentinel", "cannot be given with redis.url: give exactly one")),
                    (None, None) => return Err(invalid("redis.url", "is required (redis://host:port), or redis.sentinel")),
                    (None, Some(sentinel)) => RedisConfig { url: String::new(), sentinel: Some(parse_sentinel(sentinel)?), ..RedisConfig::new("") },
                    (Some(url), None) => {
                        let url = substitute_env(&url).map_err(|m| invalid("redis.url", m))?;
                        check_redis_url(&url).map_err(|m| invalid("redis.url", m))?;
                        RedisConfig::new(url)
                    }
                };
                let ms = |k: &str, v: Option<u64>, d: Duration| bounded(k, v, d.as_millis() as u64, 1, 60_000).map(Duration::from_millis);
                Some(RedisConfig {
                    connect_timeout: ms("redis.connectTimeoutMs", r.connect_timeout_ms, d.connect_timeout)?,
                    io_timeout: ms("redis.ioTimeoutMs", r.io_timeout_ms, d.io_timeout)?,
                    checkout_timeout: ms("redis.checkoutTimeoutMs", r.checkout_timeout_ms, d.checkout_timeout)?,
                    pool_size: bounded("redis.poolSize", r.pool_size.map(u64::from), u64::from(d.pool_size), 1, 256)? as u32,
                    ..d
                })
            }
        };
        let admin_token = match raw.admin_token {
            None => None,
            Some(t) => {
                let t = substitute_env(&t).map_err(|m| invalid("adminToken", m))?;
                if t.len() < 16 {
                    return Err(invalid("adminToken", "must be at least 16 characters"));
                }
                Some(t)
            }
        };
        let users = parse_users(raw.users, &raw.groups, &servers, &skipped)?;
        let port = raw.port.unwrap_or(3000);
        let public_url = raw.public_url.map(auth::public_url).transpose()?;
        let auth = auth::AuthConfig::parse(raw.auth)?;
        warnings.extend(auth::warnings(public_url.as_deref(), &auth));
        warnings.extend(token_warnings(&users, &servers));
        Ok(Config {
            rate_limits: limits::RateLimitConfig::parse(raw.rate_limits.as_ref(), rate_overrides)?,
            users,
            allow_anonymous: raw.allow_anonymous.unwrap_or(false),
            state_dir: match raw.state_dir {
                None => None,
                Some(d) if d.trim().is_empty() => return Err(invalid("stateDir", "must not be empty")),
                Some(d) => Some(std::path::PathBuf::from(substitute_env(&d).map_err(|m| invalid("stateDir", m))?)),
            },
            redis,
            session_ttl: Duration::from_secs(bounded("sessionTtlSecs", raw.session_ttl_secs, 3600, 1, 30 * DAY_SECS)?),
            admin_token,
            port,
            public_url,
            auth,
            bind,
            tool_naming: raw.tool_naming,
            allowed_origins: raw.allowed_origins,
            workers: positive("workers", raw.workers, 32)?,
            queue: positive("queue", raw.queue, 256)?,
            max_streams: positive("maxStreams", raw.max_streams, 256)?,
            max_body_bytes: positive("maxBodyBytes", raw.max_body_bytes, 4 * 1024 * 1024)?,
            head_timeout: Duration::from_millis(bounded("headTimeoutMs", raw.head_timeout_ms, 10_000, 1, DAY_MS)?),
            body_timeout: Duration::from_millis(bounded("bodyTimeoutMs", raw.body_timeout_ms, 30_000, 1, DAY_MS)?),
            idle_timeout: Duration::from_secs(bounded("idleTimeoutSecs", raw.idle_timeout_secs, 120, 1, DAY_SECS)?),
            write_budget: Duration::from_millis(bounded("writeBudgetMs", raw.write_budget_ms, 10_000, 1, DAY_MS)?),
            drain_timeout: Duration::from_millis(bounded("drainTimeoutMs", raw.drain_timeout_ms, DEFAULT_DRAIN_TIMEOUT_MS, 0, MAX_DRAIN_TIMEOUT_MS)?),
            client_session_idle: Duration::from_secs(bounded("clientSessionIdleSecs", raw.client_session_idle_secs, 3600, 1, 30 * DAY_SECS)?),
            max_client_sessions: positive("maxClientSessions", raw.max_client_sessions, 100_000)?,
            hub_timeout: Duration::from_millis(hub_ms),
            list_cache_ttl: Duration::from_secs(bounded("listCacheTtlSecs", raw.list_cache_ttl_secs, 300, 0, 30 * DAY_SECS)?),
            list_timeout: Duration::from_millis(bounded("listTimeoutMs", raw.list_timeout_ms, 5_000, 1, DAY_MS)?),
            list_cache_contexts: bounded("listCacheContexts", raw.list_cache_contexts, 1000, 1, 1_000_000)? as usize,
            servers,
            skipped,
            max_processes: bounded("maxProcesses", raw.max_processes, process::DEFAULT_GLOBAL_MAX_PROCESSES as u64, 1, 4096)? as usize,
            max_tasks_per_user: bounded("maxTasksPerUser", raw.max_tasks_per_user, 100, 1, 10_000)? as usize,
            max_tasks: bounded("maxTasks", raw.max_tasks, DEFAULT_MAX_TASKS as u64, 1, 100_000)? as usize,
            warnings,
        })
    }

    /// A human-readable summary of what the hub would serve (for `check-config`).
    pub fn describe(&self) -> String {
        let mut out = format!(
            "listen: {}:{}\ntool naming: {:?}\nworkers: {} (queue {}), streams: {}, hub timeout: {} ms\nservers ({}):\n",
            self.bind,
            self.port,
            self.tool_naming,
            self.workers,
            self.queue,
            self.max_streams,
            self.hub_timeout.as_millis(),
            self.servers.len()
        );
        let store = match &self.redis {
            Some(r) => format!("redis {}", r.shown()),
            None => "memory".to_string(),
        };
        out.insert_str(0, &format!("session store: {store} (ttl {} s)\n", self.session_ttl.as_secs()));
        let rate = |r: &Option<limits::Rate>| match r {
            Some(r) => format!("{}/{} s burst {}", r.count, r.period.as_secs(), r.burst),
            None => "unlimited".into(),
        };
        let admins = self.users.iter().filter(|u| u.admin).count();
        out.insert_str(
            0,
            &format!(
                "users: {} in the config ({admins} admin), anonymous {}\nrate limits: global {}, per user {}, per server {}\n",
                self.users.len(),
                if self.allow_anonymous || self.users.is_empty() { "allowed" } else { "refused" },
                rate(&self.rate_limits.global),
                rate(&self.rate_limits.per_user),
                rate(&self.rate_limits.per_server),
            ),
        );
        for s in &self.servers {
            if let TransportKind::Stdio(p) = &s.transport {
                // Env names only: values (filled `${env.X}`, user templates) are never printed.
                let names: Vec<&str> = p.env.iter().chain(&s.user_headers).map(|(k, _)| k.as_str()).collect();
                let mut extra = String::new();
                if !names.is_empty() {
                    extra.push_str(&format!("env: {}; ", names.join(", ")));
                }
                if !s.user_tokens.is_empty() {
                    extra.push_str(&format!("user tokens: {}; ", s.user_tokens.join(", ")));
                }
                let command = std::iter::once(p.command.as_str()).chain(p.args.iter().map(String::as_str)).collect::<Vec<_>>().join(" ");
                out.push_str(&format!(
                    "  {:<20} stdio: {command} ({extra}maxProcesses {}, idle {} s, timeout {} ms)\n",
                    s.name,
                    p.max_processes,
                    p.idle_timeout.as_secs(),
                    s.timeout.as_millis(),
                ));
                continue;
            }
            // Header names only: values (and filled user tokens) are never printed.
            let hdrs: Vec<&str> = s.headers.iter().chain(&s.user_headers).map(|(k, _)| k.as_str()).collect();
            let mut extra = String::new();
            if !hdrs.is_empty() {
                extra.push_str(&format!(", headers: {}", hdrs.join(", ")));
            }
            if !s.user_tokens.is_empty() {
                extra.push_str(&format!(", user tokens: {}", s.user_tokens.join(", ")));
            }
            if let Some(n) = s.max_concurrency {
                extra.push_str(&format!(", max {n} in flight + {} queued", s.max_queue));
            }
            if !s.heavy_tools.0.is_empty() {
                extra.push_str(&format!(", heavy tools {} ({} at once)", s.heavy_tools.0.join(" "), s.heavy_concurrency));
            }
            out.push_str(&format!(
                "  {:<20} {} ({}protocol {:?}, timeout {} ms, sessions {:?}{extra})\n",
                s.name,
                redact_url(&s.url),
                if s.transport == TransportKind::Sse { "sse, " } else { "" },
                s.protocol,
                s.timeout.as_millis(),
                s.session_sharing,
            ));
        }
        for s in &self.skipped {
            out.push_str(&format!("  {:<20} skipped: {}\n", s.name, s.reason));
        }
        if self.servers.iter().any(|s| matches!(s.transport, TransportKind::Stdio(_))) {
            out.push_str(&format!("stdio processes: at most {} at once (maxProcesses)\n", self.max_processes));
        }
        let mut ways: Vec<String> = Vec::new();
        if let Some(o) = &self.auth.oidc {
            ways.push(format!("oidc {}", redact_url(&o.issuer)));
        }
        if self.auth.github.is_some() {
            ways.push("github".into());
        }
        if self.auth.key_sign_in {
            ways.push("hub key".into());
        }
        out.push_str(&format!(
            "pages: /ui/ at {}; sign-in: {}{}\n",
            self.public_url.as_deref().unwrap_or("(the request's loopback Host)"),
            if ways.is_empty() { "none".to_string() } else { ways.join(", ") },
            if self.auth.auto_provision { "; new identities become users (autoProvision)" } else { "" }
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_timeout_defaults_bounds_and_errors_name_the_key() {
        let c = Config::parse(r#"{"mcpServers": {}}"#).unwrap();
        assert_eq!(c.drain_timeout, Duration::from_millis(DEFAULT_DRAIN_TIMEOUT_MS));
        assert_eq!(c.http_server().drain_timeout, Duration::from_secs(10));
        let c = Config::parse(r#"{"drainTimeoutMs": 250}"#).unwrap();
        assert_eq!(c.http_server().drain_timeout, Duration::from_millis(250));
        // 0: in-flight requests are cut at once.
        assert_eq!(Config::parse(r#"{"drainTimeoutMs": 0}"#).unwrap().drain_timeout, Duration::ZERO);
        let too_long = Config::parse(r#"{"drainTimeoutMs": 3600001}"#).unwrap_err().to_string();
        assert!(too_long.contains("drainTimeoutMs"), "{too_long}");
        assert!(Config::parse(r#"{"drainTimeoutMs": -1}"#).is_err());
        assert!(Config::parse(r#"{"drainTimeoutMs": "10s"}"#).is_err());
    }

    #[test]
    fn max_tasks_per_user_defaults_to_100_and_is_bounded() {
        assert_eq!(Config::parse(r#"{"mcpServers": {}}"#).unwrap().max_tasks_per_user, 100);
        assert_eq!(Config::parse(r#"{"maxTasksPerUser": 5}"#).unwrap().max_tasks_per_user, 5);
        for bad in ["0", "10001"] {
            let e = Config::parse(&format!(r#"{{"maxTasksPerUser": {bad}}}"#)).unwrap_err().to_string();
            assert!(e.contains("maxTasksPerUser") && e.contains("1..=10000"), "{e}");
        }
        assert!(Config::parse(r#"{"maxTasksPerUser": "5"}"#).is_err());
    }

    #[test]
    fn max_tasks_defaults_to_10000_and_is_bounded() {
        assert_eq!(Config::parse(r#"{"mcpServers": {}}"#).unwrap().max_tasks, 10_000);
        assert_eq!(Config::parse(r#"{"maxTasks": 3}"#).unwrap().max_tasks, 3);
        for bad in ["0", "100001"] {
            let e = Config::parse(&format!(r#"{{"maxTasks": {bad}}}"#)).unwrap_err().to_string();
            assert!(e.contains("maxTasks") && e.contains("1..=100000"), "{e}");
        }
        assert!(Config::parse(r#"{"maxTasks": "3"}"#).is_err());
    }

    #[test]
    fn a_claude_desktop_style_file_loads_its_stdio_and_sse_entries() {
        let c = Config::parse(
            r#"{"mcpServers": {
                "mock": {"type": "http", "url": "http://127.0.0.1:1/mcp", "headers": {"X-A": "b"}},
                "fs": {"command": "sh", "args": ["-c", "exec cat"]},
                "old": {"type": "sse", "url": "http://127.0.0.1:2/sse"},
                "ws": {"type": "websocket", "url": "ws://127.0.0.1:3/"}
            }}"#,
        )
        .unwrap();
        let names: Vec<&str> = c.servers.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["fs", "mock", "old"]);
        let (fs, mock, old) = (&c.servers[0], &c.servers[1], &c.servers[2]);
        assert_eq!(mock.headers, vec![("X-A".to_string(), "b".to_string())]);
        assert_eq!(mock.transport, TransportKind::StreamableHttp);
        assert_eq!((fs.url.as_str(), fs.protocol), ("stdio:sh", ProtocolPin::Legacy));
        let TransportKind::Stdio(p) = &fs.transport else { panic!("{:?}", fs.transport) };
        assert_eq!((p.command.as_str(), p.args.clone()), ("sh", vec!["-c".to_string(), "exec cat".to_string()]));
        assert_eq!((old.transport.clone(), old.protocol), (TransportKind::Sse, ProtocolPin::Legacy));
        assert_eq!(c.skipped.len(), 1);
        assert!(c.skipped[0].name == "ws" && c.skipped[0].reason.contains("not supported yet"), "{:?}", c.skipped);
        assert_eq!(c.bind.to_string(), "127.0.0.1");
        assert_eq!(mock.timeout, Duration::from_millis(20_000));
    }

    fn err(text: &str) -> String {
        Config::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn redis_sentinel_is_exclusive_with_url_checked_and_never_printed_with_passwords() {
        std::env::set_var("MCPHUB_TEST_SENTINEL_PW", "prim@ryPW");
        let c = Config::parse(
            r#"{"redis": {"sentinel": {"masterName": "mymaster", "nodes": ["redis://:sentPW@127.0.0.1:26379", "redis://10.0.0.2:26379"],
                "password": "${env.MCPHUB_TEST_SENTINEL_PW}", "db": 2}, "ioTimeoutMs": 300}}"#,
        )
        .unwrap();
        let r = c.redis.clone().unwrap();
        let s = r.sentinel.clone().unwrap();
        assert_eq!((s.master_name.as_str(), s.nodes.len(), s.password.as_deref(), s.db), ("mymaster", 2, Some("prim@ryPW"), 2));
        assert_eq!((r.url.as_str(), r.io_timeout), ("", Duration::from_millis(300)));
        let d = c.describe();
        assert!(d.contains("redis sentinel mymaster via redis://***@127.0.0.1:26379, redis://10.0.0.2:26379"), "{d}");
        assert!(!d.contains("sentPW") && !d.contains("prim@ryPW"), "{d}");
        let e = err(r#"{"redis": {"url": "redis://h:1", "sentinel": {"masterName": "m", "nodes": ["redis://h:2"]}}}"#);
        assert!(e.starts_with("redis.sentinel: ") && e.contains("exactly one"), "{e}");
        assert!(err(r#"{"redis": {"sentinel": {"nodes": ["redis://h:2"]}}}"#).starts_with("redis.sentinel.masterName: "));
        assert!(err(r#"{"redis": {"sentinel": {"masterName": "m", "nodes": []}}}"#).starts_with("redis.sentinel.nodes: "));
        let e = err(r#"{"redis": {"sentinel": {"masterName": "m", "nodes": ["redis://h:2", "http://:leakPW@h:3"]}}}"#);
        assert!(e.starts_with("redis.sentinel.nodes.1: ") && !e.contains("leakPW"), "{e}");
        let e = err(r#"{"redis": {"sentinel": {"masterName": "m", "nodes": ["redis://h:2"], "pasword": "x"}}}"#);
        assert!(e.contains("redis.sentinel.pasword") && e.contains("password"), "{e}");
        assert!(err(r#"{"redis": {}}"#).contains("redis.sentinel"), "the error names both ways");
    }

    #[test]
    fn errors_name_the_offending_key() {
        assert!(err(r#"{"mcpServers": {"a": {"type": "http"}}}"#).contains("mcpServers.a.url"));
        assert!(err(r#"{"mcpServers": {"a": {"url": "ftp://x"}}}"#).contains("mcpServers.a.url"));
        assert!(err(r#"{"mcpServers": {"a b": {"url": "http://x"}}}"#).contains("mcpServers.a b"));
        assert!(err(r#"{"mcpServers": {"a__b": {"url": "http://x"}}}"#).contains("mcpServers.a__b"));
        assert!(err(r#"{"bind": "localhost"}"#).starts_with("bind: "));
        assert!(err(r#"{"workers": 0}"#).starts_with("workers: "));
        assert!(err(r#"{"wrokers": 3}"#).contains("wrokers"));
        assert!(err(r#"{"mcpServers": {"a": {"url": "http://x", "timeoutMs": 30000}}}"#).contains("mcpServers.a.timeoutMs"));
        assert!(err(r#"{"mcpServers": {"a": {"url": "http://x", "headers": {"X": "a\nb"}}}}"#).contains("mcpServers.a.headers.X"));
        assert!(err(r#"{"mcpServers": {"a": {"url": "http://x", "protocol": "v9"}}}"#).contains("mcpServers.a"));
    }

    #[test]
    fn urls_are_parsed_and_printed_without_secrets() {
        assert!(err(r#"{"mcpServers": {"a": {"url": "http:///mcp"}}}"#).contains("mcpServers.a.url"));
        assert!(err(r#"{"mcpServers": {"a": {"url": "http://[::1/mcp"}}}"#).contains("mcpServers.a.url"));
        let e = err(r#"{"mcpServers": {"a": {"url": "ftp://u:pw@x/mcp?api_key=SECRET"}}}"#);
        assert!(!e.contains("SECRET") && !e.contains("pw"), "{e}");
        assert_eq!(redact_url("https://u:pw@host:1/mcp?api_key=S"), "https://***@host:1/mcp?***");
        assert_eq!(redact_url("http://host/mcp"), "http://host/mcp");
        let c = Config::parse(r#"{"mcpServers": {"a": {"url": "https://host/mcp?api_key=SECRET"}}}"#).unwrap();
        assert!(!c.describe().contains("SECRET"));
    }

    #[test]
    fn durations_are_bounded_and_unsupported_sharing_is_refused() {
        assert!(err(r#"{"listCacheTtlSecs": 18446744073709551615}"#).contains("listCacheTtlSecs"));
        assert!(err(r#"{"timeouts": {"hubMs": 0}}"#).contains("timeouts.hubMs"));
        assert!(err(r#"{"mcpServers": {"a": {"url": "http://x", "connectTimeoutMs": 999999}}}"#).contains("connectTimeoutMs"));
        assert!(err(r#"{"mcpServers": {"a": {"url": "http://x", "sessionSharing": "everyone"}}}"#).contains("mcpServers.a"));
        assert!(err(r#"{"redis": {}}"#).contains("redis.url"));
        assert!(err(r#"{"redis": {"url": "http://127.0.0.1:6379"}}"#).contains("redis.url"));
        assert!(err(r#"{"redis": {"url": "redis://:pw@h:1", "ioTimeoutMs": 0}}"#).contains("redis.ioTimeoutMs"));
        assert!(!err(r#"{"redis": {"url": "http://:secretpw@h:1"}}"#).contains("secretpw"));
        assert!(err(r#"{"adminToken": "short"}"#).contains("adminToken"));
        assert!(err(r#"{"sessionTtlSecs": 0}"#).contains("sessionTtlSecs"));
    }

    #[test]
    fn env_references_are_substituted() {
        std::env::set_var("MCPHUB_TEST_TOKEN_CFG", "t0k");
        assert_eq!(substitute_env("Bearer ${env.MCPHUB_TEST_TOKEN_CFG}!").unwrap(), "Bearer t0k!");
        assert!(substitute_env("${env.MCPHUB_SURELY_UNSET_VAR}").unwrap_err().contains("MCPHUB_SURELY_UNSET_VAR"));
        assert!(substitute_env("${user.X}").is_err());
        assert!(substitute_env("${env.X").is_err());
    }

    #[test]
    fn describe_lists_servers_without_header_values() {
        let c = Config::parse(r#"{"mcpServers": {"gh": {"url": "https://x/mcp", "headers": {"Authorization": "Bearer secret"}}}}"#)
            .unwrap();
        let d = c.describe();
        assert!(d.contains("gh") && d.contains("Authorization"));
        assert!(!d.contains("secret"));
    }

    #[test]
    fn store_keys_load_with_defaults() {
        std::env::set_var("MCPHUB_TEST_ADMIN_TOKEN", "0123456789abcdef0123");
        let c = Config::parse(
            r#"{"redis": {"url": "redis://127.0.0.1:6390/2", "poolSize": 4}, "sessionTtlSecs": 120,
                "adminToken": "${env.MCPHUB_TEST_ADMIN_TOKEN}",
                "mcpServers": {"a": {"url": "http://x", "sessionSharing": "client"}}}"#,
        )
        .unwrap();
        let r = c.redis.clone().unwrap();
        assert_eq!((r.url.as_str(), r.pool_size, r.io_timeout), ("redis://127.0.0.1:6390/2", 4, Duration::from_millis(500)));
        assert_eq!(c.session_ttl, Duration::from_secs(120));
        assert_eq!(c.admin_token.as_deref(), Some("0123456789abcdef0123"));
        assert_eq!(c.servers[0].session_sharing, SessionSharing::Client);
        let d = Config::parse("{}").unwrap();
        assert_eq!((d.redis, d.session_ttl, d.admin_token), (None, Duration::from_secs(3600), None));
    }
}

#[cfg(test)]
mod rate_limit_tests {
    use super::*;

    #[test]
    fn rate_limits_load_and_errors_name_the_key() {
        let c = Config::parse(
            r#"{"rateLimits": {"global": {"perSecond": 50, "burst": 100}, "perUser": {"perMinute": 60}},
                "mcpServers": {"jira": {"url": "http://x/mcp", "rateLimit": {"perSecond": 8, "burst": 8}}, "gh": {"url": "http://y/mcp"}}}"#,
        )
        .unwrap();
        let r = &c.rate_limits;
        assert_eq!(r.global.map(|g| (g.count, g.burst, g.period)), Some((50, 100, Duration::from_secs(1))));
        assert_eq!(r.per_user.map(|u| (u.count, u.burst, u.period)), Some((60, 60, Duration::from_secs(60))));
        assert_eq!(r.per_server, None);
        assert_eq!(r.servers.keys().collect::<Vec<_>>(), ["jira"]);
        assert!(Config::parse("{}").unwrap().rate_limits.is_empty(), "absent = unlimited");
        let err = |t: &str| Config::parse(t).unwrap_err().to_string();
        assert!(err(r#"{"rateLimits": {"perServer": {"perSecond": 0}}}"#).contains("rateLimits.perServer.perSecond"));
        assert!(err(r#"{"rateLimits": {"global": {"perSecond": 5, "burst": 1.5}}}"#).contains("rateLimits.global.burst"));
        assert!(err(r#"{"mcpServers": {"jira": {"url": "http://x/mcp", "rateLimit": {"burst": 2}}}}"#).contains("mcpServers.jira.rateLimit"));
    }
}

#[cfg(test)]
mod deadline_tests {
    use super::*;

    fn err(text: &str) -> String {
        Config::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn each_timeout_layer_must_be_shorter_than_the_one_outside_it() {
        let e = err(r#"{"timeouts": {"clientMs": 20000, "hubMs": 20000}}"#);
        assert!(e.contains("timeouts.hubMs") && e.contains("timeouts.clientMs"), "{e}");
        assert!(err(r#"{"timeouts": {"hubMs": 40000}}"#).contains("timeouts.clientMs (30000 ms)"));
        let e = err(r#"{"timeouts": {"hubMs": 9000}, "mcpServers": {"a": {"url": "http://x", "timeoutMs": 9000}}}"#);
        assert!(e.contains("mcpServers.a.timeoutMs") && e.contains("timeouts.hubMs"), "{e}");
        let e = err(r#"{"timeouts": {"externalMs": 10000}, "mcpServers": {"a": {"url": "http://x", "timeoutMs": 10000}}}"#);
        assert!(e.contains("mcpServers.a.timeoutMs") && e.contains("timeouts.externalMs"), "{e}");
        let e = err(r#"{"mcpServers": {"a": {"url": "http://x", "timeoutMs": 5000, "maxTotalTimeoutMs": 4000}}}"#);
        assert!(e.contains("mcpServers.a.maxTotalTimeoutMs") && e.contains("mcpServers.a.timeoutMs"), "{e}");
        let e = err(r#"{"timeouts": {"hubMs": 9000}, "mcpServers": {"a": {"url": "http://x", "maxTotalTimeoutMs": 9001}}}"#);
        assert!(e.contains("mcpServers.a.maxTotalTimeoutMs") && e.contains("timeouts.hubMs"), "{e}");
        assert!(err(r#"{"timeouts": {"clientMs": 0}}"#).contains("timeouts.clientMs"));
        assert!(err(r#"{"timeouts": {"serverMs": 1}}"#).contains("serverMs"));
    }

    #[test]
    fn nested_timeouts_load_with_their_defaults() {
        let c = Config::parse(r#"{"mcpServers": {"a": {"url": "http://x"}, "b": {"url": "http://y", "timeoutMs": 3000, "resetTimeoutOnProgress": true, "maxTotalTimeoutMs": 9000}}}"#).unwrap();
        let (a, b) = (&c.servers[0], &c.servers[1]);
        assert_eq!(c.hub_timeout, Duration::from_millis(25_000));
        assert_eq!((a.timeout, a.hub_timeout, a.reset_timeout_on_progress, a.max_total_timeout), (Duration::from_millis(20_000), c.hub_timeout, false, c.hub_timeout));
        assert_eq!((b.timeout, b.reset_timeout_on_progress, b.max_total_timeout), (Duration::from_millis(3_000), true, Duration::from_millis(9_000)));
        let ok = r#"{"timeouts": {"clientMs": 60000, "hubMs": 50000, "externalMs": 10000}, "mcpServers": {"a": {"url": "http://x", "timeoutMs": 40000}}}"#;
        assert_eq!(Config::parse(ok).unwrap().servers[0].max_total_timeout, Duration::from_millis(50_000));
    }
}

#[cfg(test)]
mod strict_tests {
    //! Issue 14, hole 6: unknown keys, types and duplicates, with the literal messages.
    use super::*;

    fn err(text: &str) -> String {
        Config::parse(text).unwrap_err().to_string()
    }

    const KEY_A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    #[test]
    fn an_unknown_key_names_its_full_path_and_the_nearest_known_key_at_every_level() {
        assert_eq!(
            err(r#"{"mcpServers": {"gh": {"url": "https://x/mcp", "header": {"Authorization": "Bearer ${user.GH}"}}}}"#),
            r#"mcpServers.gh.header: unknown key — did you mean "headers"?"#
        );
        assert_eq!(
            err(r#"{"mcpServers": {"docs": {"url": "http://x", "timeoutMS": 20000}}}"#),
            r#"mcpServers.docs.timeoutMS: unknown key — did you mean "timeoutMs"?"#
        );
        assert_eq!(err(r#"{"wrokers": 3}"#), r#"wrokers: unknown key — did you mean "workers"?"#);
        assert_eq!(err(r#"{"timeouts": {"hubMS": 9000}}"#), r#"timeouts.hubMS: unknown key — did you mean "hubMs"?"#);
        assert_eq!(err(r#"{"redis": {"url": "redis://h:1", "poolsize": 2}}"#), r#"redis.poolsize: unknown key — did you mean "poolSize"?"#);
        assert_eq!(err(r#"{"users": {"al": {"token": {}}}}"#), r#"users.al.token: unknown key — did you mean "tokens"?"#);
        assert_eq!(err(r#"{"rateLimits": {"perUsr": {"perSecond": 1}}}"#), r#"rateLimits.perUsr: unknown key — did you mean "perUser"?"#);
        assert_eq!(
            err(r#"{"rateLimits": {"global": {"perSecnd": 1}}}"#),
            r#"rateLimits.global.perSecnd: unknown key — did you mean "perSecond"?"#
        );
        assert_eq!(
            err(r#"{"mcpServers": {"j": {"url": "http://x", "rateLimit": {"perMinute": 1, "brust": 2}}}}"#),
            r#"mcpServers.j.rateLimit.brust: unknown key — did you mean "burst"?"#
        );
        // Nothing near: the known keys are listed.
        assert_eq!(err(r#"{"timeouts": {"serverMs": 1}}"#), "timeouts.serverMs: unknown key (known here: clientMs, hubMs, externalMs)");
    }

    #[test]
    fn keys_other_mcp_clients_write_warn_instead_of_failing() {
        let c = Config::parse(
            r#"{"mcpServers": {
                "gh": {"url": "https://x/mcp", "disabled": false, "autoApprove": ["a"], "alwaysAllow": [], "timeout": 60,
                       "description": "GitHub", "trust": true, "includeTools": ["x"], "excludeTools": [], "envFile": ".env", "transport": "http"},
                "fs": {"command": "sh", "args": ["-y", "x"], "env": {"A": "b"}, "cwd": "/tmp"}
            }}"#,
        )
        .unwrap();
        assert_eq!(c.servers.len(), 2, "args, env and cwd are the stdio entry's own keys (issue 19)");
        assert!(c.skipped.is_empty());
        assert_eq!(c.warnings.len(), 10, "{:#?}", c.warnings);
        assert_eq!(c.warnings[0], r#"mcpServers.gh.disabled: ignored — a key other MCP clients write, not used by the hub (to skip a server, the hub reads "enabled": false)"#);
        assert_eq!(c.warnings[3], r#"mcpServers.gh.timeout: ignored — a key other MCP clients write, not used by the hub (the hub reads "timeoutMs")"#);
        assert_eq!(c.warnings[4], "mcpServers.gh.description: ignored — a key other MCP clients write, not used by the hub");
        assert!(!c.warnings.iter().any(|w| w.contains("mcpServers.fs")), "{:#?}", c.warnings);
    }

    #[test]
    fn type_errors_name_the_full_key_path_in_words() {
        assert_eq!(
            err(r#"{"mcpServers": {"docs": {"url": "http://x", "timeoutMs": "20000"}}}"#),
            r#"mcpServers.docs.timeoutMs: expected an integer, got the string "20000""#
        );
        assert_eq!(err(r#"{"port": 70000}"#), "port: expected a smaller integer, got 70000");
        assert_eq!(err(r#"{"drainTimeoutMs": -1}"#), "drainTimeoutMs: expected a non-negative integer, got -1");
        assert_eq!(err(r#"{"timeouts": {"hubMs": 1.5}}"#), "timeouts.hubMs: expected an integer, got 1.5");
        assert_eq!(err(r#"{"allowAnonymous": "yes"}"#), r#"allowAnonymous: expected true or false, got the string "yes""#);
        assert_eq!(err(r#"{"timeouts": []}"#), "timeouts: expected an object, got an array");
        assert_eq!(err(r#"{"users": {"al": {"servers": "gh"}}}"#), r#"users.al.servers: expected an array, got the string "gh""#);
        assert_eq!(err(r#"{"mcpServers": {"a": {"url": "http://x", "heavyTools": [1]}}}"#), "mcpServers.a.heavyTools.0: expected a string, got 1");
        assert_eq!(
            err(r#"{"mcpServers": {"a": {"url": "http://x", "protocol": "v9"}}}"#),
            r#"mcpServers.a.protocol: expected one of "auto", "legacy", "modern", got the string "v9""#
        );
        assert_eq!(err(r#"{"toolNaming": 5}"#), "toolNaming: expected a string, got 5");
        assert_eq!(err("[]"), "(the whole file): expected an object, got an array");
        assert_eq!(err(r#"{"timeouts": [1000, 900, 100]}"#), "timeouts: expected an object, got an array");
        assert_eq!(err(r#"{"mcpServers": {"a": ["http://x"]}}"#), "mcpServers.a: expected an object, got an array");
        // A string where a secret may be is never quoted back.
        assert_eq!(err(r#"{"users": {"al": {"tokens": "ghp_SECRET"}}}"#), "users.al.tokens: expected an object, got a string");
        assert_eq!(err(r#"{"adminToken": ["x"]}"#), "adminToken: expected a string, got an array");
        // A syntax error keeps serde's line and column: there is no key to name.
        assert!(err("{\"port\": 1,}").starts_with("config is not valid JSON: trailing comma at line 1"), "{}", err("{\"port\": 1,}"));
    }

    #[test]
    fn type_error_message_shapes_serde_wording() {
        assert_eq!(type_error_message(r#"invalid type: string "20000", expected u64"#, true), r#"expected an integer, got the string "20000""#);
        assert_eq!(type_error_message(r#"invalid type: string "20000", expected u64"#, false), "expected an integer, got a string");
        assert_eq!(type_error_message("invalid type: map, expected a sequence", true), "expected an array, got an object");
        assert_eq!(type_error_message("invalid type: unit value, expected a string", true), "expected a string, got null");
        assert_eq!(type_error_message("invalid type: boolean `true`, expected struct RawTimeouts", true), "expected an object, got true");
        assert_eq!(type_error_message("something else", true), "something else");
    }

    #[test]
    fn nearest_key_is_case_blind_and_only_suggests_near_keys() {
        assert_eq!(nearest_key("header", &["url", "headers"]), Some("headers"));
        assert_eq!(nearest_key("TIMEOUTMS", &["timeoutMs", "maxTotalTimeoutMs"]), Some("timeoutMs"));
        assert_eq!(nearest_key("wrokers", &["workers", "queue"]), Some("workers"));
        assert_eq!(nearest_key("zzz", &["url", "headers"]), None);
        assert_eq!(nearest_key("x", &[]), None);
    }

    #[test]
    fn one_key_digest_under_two_users_is_an_error_naming_both() {
        let text = format!(r#"{{"users": {{"bob": {{"keys": ["{KEY_A}"]}}, "alice": {{"keys": ["{}"]}}}}}}"#, KEY_A.to_uppercase().replace("SHA256", "sha256"));
        assert_eq!(
            err(&text),
            "users.bob.keys: the key sha256:aaaaaaaa… is listed under both users 'alice' and 'bob': a key belongs to one user"
        );
        assert_eq!(
            err(&format!(r#"{{"users": {{"al": {{"keys": ["{KEY_A}", "{}"]}}}}}}"#, KEY_A.trim_start_matches("sha256:"))),
            "users.al.keys: the key sha256:aaaaaaaa… is listed twice"
        );
    }

    #[test]
    fn unused_tokens_and_user_references_no_config_user_has_are_warnings() {
        let c = Config::parse(&format!(
            r#"{{"users": {{"al": {{"keys": ["{KEY_A}"], "tokens": {{"GITHUB_TOKN": "t1", "JIRA_TOKEN": "t2"}}}}}},
                "mcpServers": {{"gh": {{"url": "https://x/mcp", "headers": {{"Authorization": "Bearer ${{user.GITHUB_TOKEN}}"}}}},
                               "jira": {{"url": "https://y/mcp", "headers": {{"Authorization": "Bearer ${{user.JIRA_TOKEN}}"}}}}}}}}"#
        ))
        .unwrap();
        assert_eq!(
            c.warnings,
            [
                r#"users.al.tokens.GITHUB_TOKN: no server uses this token (no ${user.GITHUB_TOKN} in any mcpServers headers) — did you mean "GITHUB_TOKEN"?"#,
                "mcpServers.gh.headers.Authorization: no config user has token GITHUB_TOKEN (${user.GITHUB_TOKEN}); users without it do not see 'gh' until they set it (PUT /api/me/tokens/GITHUB_TOKEN)",
            ]
        );
        // No config users: every token is set at run time, nothing to warn about.
        let c = Config::parse(r#"{"mcpServers": {"gh": {"url": "https://x/mcp", "headers": {"A": "${user.T}"}}}}"#).unwrap();
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn config_tokens_follow_the_http_field_value_rule_and_the_error_never_shows_the_value() {
        let with = |v: &str| err(&format!(r#"{{"users": {{"al": {{"tokens": {{"GH": "{v}"}}}}}}}}"#));
        assert_eq!(
            with("ghp_é"),
            "users.al.tokens.GH: token GH is not a valid HTTP field value (RFC 9110 §5.5: visible ASCII, space and tab only): character 5 is not ASCII"
        );
        assert_eq!(
            with("ghp_x\u{2028}"),
            "users.al.tokens.GH: token GH is not a valid HTTP field value (RFC 9110 §5.5: visible ASCII, space and tab only): character 6 is not ASCII"
        );
        assert_eq!(
            with("a\\u0007b"),
            "users.al.tokens.GH: token GH is not a valid HTTP field value (RFC 9110 §5.5: visible ASCII, space and tab only): character 2 is a control character"
        );
        assert!(!with("SECRETé").contains("SECRET"));
        assert_eq!(with(""), "users.al.tokens.GH: token GH is empty");
    }

    #[test]
    fn every_raw_level_reports_its_declared_keys() {
        assert!(declared_keys::<RawConfig>().contains(&"mcpServers") && declared_keys::<RawConfig>().contains(&"$schema"));
        assert_eq!(declared_keys::<RawTimeouts>(), ["clientMs", "hubMs", "externalMs"]);
        assert!(declared_keys::<RawServer>().contains(&"headers") && declared_keys::<RawServer>().contains(&"type"));
        assert!(declared_keys::<RawUser>().contains(&"tokens"));
        // A key declared by one of the hub's own structs is never one "other clients" write.
        for k in OTHER_CLIENT_KEYS {
            assert!(!declared_keys::<RawServer>().contains(k), "{k}");
        }
    }
}

#[cfg(test)]
mod stdio_tests {
    //! Issue 19, design "Config": stdio and sse entries of `mcpServers`.
    use super::*;

    fn err(text: &str) -> String {
        Config::parse(text).unwrap_err().to_string()
    }

    fn one(entry: &str) -> ServerConfig {
        Config::parse(&format!(r#"{{"mcpServers": {{"fs": {entry}}}}}"#)).unwrap().servers.remove(0)
    }

    fn stdio(s: &ServerConfig) -> &StdioConfig {
        match &s.transport {
            TransportKind::Stdio(p) => p,
            other => panic!("not stdio: {other:?}"),
        }
    }

    #[test]
    fn env_splits_into_static_entries_and_user_templates() {
        std::env::set_var("MCPHUB_TEST_STDIO_LOG", "debug");
        let s = one(
            r#"{"command": "sh", "args": ["-c", "${env.MCPHUB_TEST_STDIO_LOG}"], "cwd": "/tmp",
                "env": {"GITHUB_TOKEN": "${user.GITHUB_TOKEN}", "LOG": "${env.MCPHUB_TEST_STDIO_LOG}", "X": "literal",
                        "PAIR": "${user.A}:${user.B}"}}"#,
        );
        let p = stdio(&s);
        assert_eq!(p.env, vec![("LOG".to_string(), "debug".to_string()), ("X".to_string(), "literal".to_string())]);
        assert_eq!(p.args, ["-c", "debug"]);
        assert_eq!(p.cwd.as_deref(), Some(Path::new("/tmp")));
        assert_eq!(
            s.user_headers,
            vec![("GITHUB_TOKEN".to_string(), "${user.GITHUB_TOKEN}".to_string()), ("PAIR".to_string(), "${user.A}:${user.B}".to_string())]
        );
        assert_eq!(s.user_tokens, ["A", "B", "GITHUB_TOKEN"]);
        assert!(s.headers.is_empty());
        assert_eq!(s.url, "stdio:sh");
        assert_eq!(err(r#"{"mcpServers": {"fs": {"command": "sh", "env": {"1X": "a"}}}}"#), "mcpServers.fs.env: '1X' is not a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*)");
        assert!(err(r#"{"mcpServers": {"fs": {"command": "sh", "env": {"A": "${env.MCPHUB_SURELY_UNSET_VAR}"}}}}"#).starts_with("mcpServers.fs.env.A: "));
    }

    #[test]
    fn user_references_are_refused_outside_env_values() {
        assert_eq!(
            err(r#"{"mcpServers": {"fs": {"command": "sh", "args": ["--token", "${user.GH}"]}}}"#),
            "mcpServers.fs.args.1: ${user.GH} is only allowed in env values (a user's token reaches a stdio server through its environment)"
        );
        assert!(err(r#"{"mcpServers": {"fs": {"command": "sh", "cwd": "/tmp/${user.GH}"}}}"#).starts_with("mcpServers.fs.cwd: ${user.GH}"));
        assert!(err(r#"{"mcpServers": {"fs": {"command": "${user.GH}"}}}"#).starts_with("mcpServers.fs.command: is taken as written"));
        assert!(err(r#"{"mcpServers": {"fs": {"command": "${env.HOME}/x"}}}"#).starts_with("mcpServers.fs.command: is taken as written"));
    }

    #[test]
    fn a_stdio_server_speaks_the_session_era_and_takes_no_url_headers_or_forward_user() {
        assert_eq!(one(r#"{"command": "sh", "protocol": "auto"}"#).protocol, ProtocolPin::Legacy);
        assert_eq!(one(r#"{"type": "stdio", "command": "sh", "protocol": "legacy"}"#).protocol, ProtocolPin::Legacy);
        assert!(err(r#"{"mcpServers": {"fs": {"command": "sh", "protocol": "modern"}}}"#).starts_with("mcpServers.fs.protocol: "));
        assert_eq!(err(r#"{"mcpServers": {"fs": {"command": "sh", "headers": {"A": "b"}}}}"#), "mcpServers.fs.headers: stdio servers take env, not headers");
        assert!(err(r#"{"mcpServers": {"fs": {"command": "sh", "url": "http://x/mcp"}}}"#).starts_with("mcpServers.fs.url: "));
        assert!(err(r#"{"mcpServers": {"fs": {"command": "sh", "forwardUser": true}}}"#).starts_with("mcpServers.fs.forwardUser: "));
        assert_eq!(err(r#"{"mcpServers": {"fs": {"type": "stdio"}}}"#), "mcpServers.fs.command: is required");
    }

    #[test]
    fn the_command_must_be_an_executable_file_and_cwd_a_directory() {
        let dir = std::env::temp_dir().join(format!("mcphub-cfg-stdio-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let plain = dir.join("plain");
        std::fs::write(&plain, "#!/bin/sh\n").unwrap();
        let at = |entry: String| err(&format!(r#"{{"mcpServers": {{"fs": {entry}}}}}"#));
        assert_eq!(at(r#"{"command": "/nope/x"}"#.into()), "mcpServers.fs.command: '/nope/x' does not exist");
        assert_eq!(at(format!(r#"{{"command": "{}"}}"#, plain.display())), format!("mcpServers.fs.command: '{}' is not executable", plain.display()));
        assert_eq!(at(format!(r#"{{"command": "{}"}}"#, dir.display())), format!("mcpServers.fs.command: '{}' is not a file", dir.display()));
        assert!(at(r#"{"command": "mcphub-surely-not-a-program"}"#.into())
            .starts_with("mcpServers.fs.command: 'mcphub-surely-not-a-program' is not found in PATH ("));
        assert_eq!(at(r#"{"command": "sh", "cwd": "/nope/dir"}"#.into()), "mcpServers.fs.cwd: '/nope/dir' does not exist");
        assert_eq!(at(format!(r#"{{"command": "sh", "cwd": "{}"}}"#, plain.display())), format!("mcpServers.fs.cwd: '{}' is not a directory", plain.display()));
        // A relative path is resolved against cwd, as the child does after its chdir.
        assert_eq!(stdio(&one(r#"{"command": "./sh", "cwd": "/bin"}"#)).command, "./sh");
        // A configured PATH is where a bare name is looked up.
        assert!(at(r#"{"command": "sh", "env": {"PATH": "/nope"}}"#.into()).contains("not found in PATH (/nope)"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stdio_bounds_and_defaults() {
        let p = stdio(&one(r#"{"command": "sh"}"#)).clone();
        assert_eq!(
            (p.max_processes, p.idle_timeout, p.start_timeout, p.ping_interval, p.limits),
            (16, Duration::from_secs(600), Duration::from_millis(25_000), Duration::from_secs(30), ProcessLimits::default())
        );
        let p = stdio(&one(
            r#"{"command": "sh", "maxProcesses": 2, "idleTimeoutSecs": 5, "startTimeoutMs": 100, "pingIntervalSecs": 3600,
                "limits": {"memoryMb": 512, "cpuSecs": 600, "openFiles": 256}}"#,
        ))
        .clone();
        assert_eq!((p.max_processes, p.idle_timeout, p.start_timeout, p.ping_interval), (2, Duration::from_secs(5), Duration::from_millis(100), Duration::from_secs(3600)));
        assert_eq!(p.limits, ProcessLimits { memory_mb: Some(512), cpu_secs: Some(600), open_files: Some(256) });
        for (entry, key) in [
            (r#""maxProcesses": 0"#, "maxProcesses"),
            (r#""maxProcesses": 1025"#, "maxProcesses"),
            (r#""idleTimeoutSecs": 0"#, "idleTimeoutSecs"),
            (r#""idleTimeoutSecs": 86401"#, "idleTimeoutSecs"),
            (r#""startTimeoutMs": 99"#, "startTimeoutMs"),
            (r#""startTimeoutMs": 25001"#, "startTimeoutMs"),
            (r#""pingIntervalSecs": 0"#, "pingIntervalSecs"),
            (r#""pingIntervalSecs": 3601"#, "pingIntervalSecs"),
            (r#""limits": {"memoryMb": 15}"#, "limits.memoryMb"),
            (r#""limits": {"cpuSecs": 0}"#, "limits.cpuSecs"),
            (r#""limits": {"openFiles": 0}"#, "limits.openFiles"),
        ] {
            let e = err(&format!(r#"{{"mcpServers": {{"fs": {{"command": "sh", {entry}}}}}}}"#));
            assert!(e.starts_with(&format!("mcpServers.fs.{key}: ")) && e.contains("is outside"), "{entry}: {e}");
        }
        // startTimeoutMs never passes timeouts.hubMs, and defaults to it when shorter than 30 s.
        let c = Config::parse(r#"{"timeouts": {"hubMs": 5000}, "mcpServers": {"fs": {"command": "sh", "timeoutMs": 4000}}}"#).unwrap();
        assert_eq!(stdio(&c.servers[0]).start_timeout, Duration::from_millis(5000));
        assert_eq!(
            err(r#"{"mcpServers": {"fs": {"command": "sh", "limits": {"memoryMB": 1}}}}"#),
            r#"mcpServers.fs.limits.memoryMB: unknown key — did you mean "memoryMb"?"#
        );
    }

    #[test]
    fn sse_loads_like_http_with_the_legacy_era() {
        std::env::set_var("MCPHUB_TEST_SSE_KEY", "k3y");
        let s = one(r#"{"type": "sse", "url": "http://127.0.0.1:9000/sse", "headers": {"X-Key": "${env.MCPHUB_TEST_SSE_KEY}", "Authorization": "Bearer ${user.OLD}"}}"#);
        assert_eq!((s.transport.clone(), s.protocol, s.url.as_str()), (TransportKind::Sse, ProtocolPin::Legacy, "http://127.0.0.1:9000/sse"));
        assert_eq!(s.headers, vec![("X-Key".to_string(), "k3y".to_string())]);
        assert_eq!(s.user_tokens, ["OLD"]);
        assert_eq!(err(r#"{"mcpServers": {"old": {"type": "sse"}}}"#), "mcpServers.old.url: is required for an sse server");
        assert!(err(r#"{"mcpServers": {"old": {"type": "sse", "url": "ftp://x"}}}"#).starts_with("mcpServers.old.url: "));
        assert!(err(r#"{"mcpServers": {"old": {"type": "sse", "url": "http://x/sse", "protocol": "modern"}}}"#).starts_with("mcpServers.old.protocol: "));
        for k in [r#""command": "sh""#, r#""args": []"#, r#""env": {}"#, r#""cwd": "/tmp""#, r#""maxProcesses": 2"#, r#""limits": {}"#] {
            for t in ["sse", "http"] {
                let e = err(&format!(r#"{{"mcpServers": {{"old": {{"type": "{t}", "url": "http://x/sse", {k}}}}}}}"#));
                assert!(e.contains("only for stdio servers"), "{t} {k}: {e}");
                let name = k.split('"').nth(1).unwrap();
                assert!(e.starts_with(&format!("mcpServers.old.{name}: ")), "{e}");
            }
        }
    }

    #[test]
    fn the_global_process_cap_defaults_to_64_and_is_bounded() {
        assert_eq!(Config::parse("{}").unwrap().max_processes, 64);
        assert_eq!(Config::parse(r#"{"maxProcesses": 4096}"#).unwrap().max_processes, 4096);
        for bad in ["0", "4097"] {
            assert!(err(&format!(r#"{{"maxProcesses": {bad}}}"#)).starts_with("maxProcesses: "), "{bad}");
        }
    }

    #[test]
    fn describe_shows_stdio_env_names_never_values() {
        std::env::set_var("MCPHUB_TEST_STDIO_SECRET", "s3cr3t");
        let c = Config::parse(
            r#"{"mcpServers": {"fs": {"command": "sh", "args": ["-c", "exec cat"], "maxProcesses": 3, "idleTimeoutSecs": 60,
                                      "env": {"TOKEN": "${env.MCPHUB_TEST_STDIO_SECRET}", "GH": "${user.GH}", "X": "lit3ral"}},
                               "old": {"type": "sse", "url": "http://u:pw@127.0.0.1:9000/sse?k=v", "headers": {"A": "hdrval"}}}}"#,
        )
        .unwrap();
        let d = c.describe();
        assert!(d.contains("stdio: sh -c exec cat (env: TOKEN, X, GH; user tokens: GH; maxProcesses 3, idle 60 s"), "{d}");
        assert!(d.contains("http://***@127.0.0.1:9000/sse?*** (sse, protocol Legacy"), "{d}");
        assert!(d.contains("stdio processes: at most 64 at once"), "{d}");
        for secret in ["s3cr3t", "lit3ral", "hdrval", "pw"] {
            assert!(!d.contains(secret), "{secret}: {d}");
        }
    }
}
