//! `mcphub`: serve the hub, or check a configuration.
//!
//! As a service (`etc/mcphub.service`, `Type=notify`): READY=1 once the
//! listener is bound and the hub built, WATCHDOG=1 every half
//! `WATCHDOG_USEC` while the HTTP reactor and worker pool make progress,
//! RELOADING=1 … READY=1 around a SIGHUP reload, STOPPING=1 when SIGTERM or
//! SIGINT starts the drain (`drainTimeoutMs`), then exit 0.

#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use mcphub::catalog::Kind;
use mcphub::config::Config;
use mcphub::http::{Probe, Server, ServerHandle};
use mcphub::hub::Hub;
use mcphub::logging::LogFormat;
use mcphub::upstream::CallContext;
use mcphub::threads::{Kind as ThreadKind, Stop};
use sd_notify::NotifyState;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(name = "mcphub", version, about = "One MCP endpoint in front of many MCP servers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the hub on /mcp.
    #[command(after_long_help = SERVE_HELP)]
    Serve {
        /// Configuration file (JSON).
        #[arg(long, env = "MCPHUB_CONFIG")]
        config: PathBuf,
        /// Listen port (overrides the config's `port`).
        #[arg(long, env = "PORT")]
        port: Option<u16>,
        /// Listen address (overrides the config's `bind`; default 127.0.0.1).
        #[arg(long)]
        bind: Option<IpAddr>,
        /// Redis for shared upstream sessions (overrides the config's `redis.url`).
        #[arg(long, env = "REDIS_URL", hide_env_values = true)]
        redis_url: Option<String>,
        /// Where run-time users are kept without Redis (overrides the config's `stateDir`).
        #[arg(long, env = "MCPHUB_STATE_DIR")]
        state_dir: Option<PathBuf>,
        /// Log lines on stderr: `text` (human-readable) or `json` (one object per line).
        #[arg(long, env = "MCPHUB_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// Print a new hub key and its SHA-256 digest (with --user/--admin, a config
    /// snippet: the user with the digest and a service token, and a server
    /// whose header names it as ${user.GITHUB_TOKEN}).
    Keygen {
        /// Make the snippet's user an admin (name `admin` unless --user is given).
        #[arg(long)]
        admin: bool,
        /// Print a `"users"` snippet for this user name.
        #[arg(long)]
        user: Option<String>,
    },
    /// Validate a configuration and print what the hub would serve.
    CheckConfig {
        /// Configuration file (JSON).
        #[arg(long, env = "MCPHUB_CONFIG")]
        config: PathBuf,
    },
}

/// `mcphub serve --help`: who may use the hub and the environment it reads
/// (issue 14, test-suite hygiene).
const SERVE_HELP: &str = "\
Users and keys:
  Without users, /mcp needs no key. Once any user exists (the config's
  \"users\", or one created through the admin API), every request needs a hub
  key (Authorization: Bearer mcphub_…) unless \"allowAnonymous\": true.
  `mcphub keygen --user NAME` prints a key and a config snippet with its digest.
  Users set their own service tokens with PUT /api/me/tokens/NAME; a server's
  headers name them as ${user.NAME}.

Admin API (/api/admin/*):
  Open to users with \"admin\": true (their hub key), or to the config's
  \"adminToken\" (at least 16 characters; \"${env.NAME}\" allowed). With
  neither, it answers 401 to everyone.

Environment:
  MCPHUB_CONFIG           the config file (or --config)
  PORT                    listen port (or --port)
  REDIS_URL               shared store for sessions and users (or --redis-url)
  MCPHUB_STATE_DIR        run-time users without Redis (else $STATE_DIRECTORY, ./state)
  MCPHUB_SECRET_KEY_FILE  file with the 32-byte key (64 hex) that encrypts
                          run-time service tokens at rest (`openssl rand -hex 32`)
  MCPHUB_SECRET_KEY       the same key as 64 hex chars (prefer the file)
  MCPHUB_LOG_FORMAT       text | json (or --log-format)
  DEBUG_MCPHUB            true: debug log lines
Without a secret key, run-time tokens cannot be stored (config tokens work);
a secret key that is set but unreadable stops the start.";

/// Logs on stderr at info (debug with `DEBUG_MCPHUB=true|1`), as text or
/// JSON lines ([`mcphub::logging`]: keys masked, request ids attached).
fn init_logging(format: LogFormat) {
    let debug = std::env::var("DEBUG_MCPHUB").is_ok_and(|v| v == "true" || v == "1");
    let level = if debug { log::LevelFilter::Debug } else { log::LevelFilter::Info };
    let _ = mcphub::logging::init(format, level);
}

/// Panics are logged with hub keys masked (`mcphub_***`); payloads that are
/// not strings are not printed. Service tokens are `Secret`s, which print
/// `***` wherever they are formatted.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(non-text payload)".into());
        let location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        let thread = std::thread::current().name().unwrap_or("unnamed").to_string();
        log::error!("panic in thread '{thread}' at {location}: {}", mcphub::users::mask_keys(&payload));
    }));
}

fn load(path: &Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("mcphub: {e}");
        ExitCode::from(2)
    })
}

/// Sends `states` to the service manager (`$NOTIFY_SOCKET`; nothing without it).
/// A failure is logged, never fatal.
fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        log::warn!("sd_notify: cannot notify the service manager: {e}");
    }
}

/// The service watchdog: every half `interval` (systemd's `WATCHDOG_USEC`),
/// WATCHDOG=1 if [`ServerHandle::probe`] finds the reactor turning and the
/// worker pool not wedged; otherwise no ping (one log line per change), so
/// systemd restarts a hub that stopped making progress (`WatchdogSec=`).
/// How long the shutdown waits for the background threads after the drain
/// ([`mcphub::threads::Threads::shutdown_join`]).
const THREADS_JOIN: Duration = Duration::from_secs(2);

/// A worker holding one request longer than any request may take is wedged:
/// the hub deadline + the write budget + 30 s.
fn stall_limit(config: &Config) -> Duration {
    config.hub_timeout + config.write_budget + Duration::from_secs(30)
}

fn watchdog(server: Arc<ServerHandle>, hub: Hub, interval: Duration, stop: &Stop) {
    let period = (interval / 2).max(Duration::from_millis(10));
    let mut probe = Probe::new(stall_limit(&hub.config()));
    let mut failing = false;
    log::info!("systemd watchdog: pinging every {} ms while the hub makes progress", period.as_millis());
    loop {
        // A reload may have moved `timeouts.hubMs`.
        probe.stall_limit = stall_limit(&hub.config());
        match server.probe(&mut probe) {
            Ok(()) => {
                if failing {
                    log::warn!("watchdog: the hub makes progress again; pinging systemd");
                    failing = false;
                }
                notify(&[NotifyState::Watchdog]);
            }
            Err(stalled) => {
                if !failing {
                    log::error!("watchdog: {stalled}; no longer pinging systemd (it restarts the service after WatchdogSec)");
                    failing = true;
                }
            }
        }
        if stop.sleep(period) {
            return;
        }
    }
}

/// Handles SIGTERM/SIGINT (graceful shutdown: STOPPING=1, then the drain on
/// its own thread; a second one exits at once with status 1) and SIGHUP
/// (RELOADING=1, [`reload_config`], READY=1). Returns when the signal
/// iterator is closed.
fn handle_signals(mut signals: Signals, server: Arc<ServerHandle>, hub: Hub, config_path: PathBuf, status: String) {
    let mut stopping = false;
    for sig in signals.forever() {
        match sig {
            SIGHUP if stopping => log::info!("SIGHUP ignored: the hub is stopping"),
            SIGHUP => {
                log::info!("SIGHUP received: reloading {}", config_path.display());
                let mut states = vec![NotifyState::Reloading];
                if let Ok(now) = NotifyState::monotonic_usec_now() {
                    states.push(now);
                }
                notify(&states);
                // A panic in a reload must not end signal handling (later
                // SIGTERMs would be swallowed) nor leave systemd "reloading".
                let reloaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reload_config(&hub, &config_path)));
                if reloaded.is_err() {
                    log::error!("config reload failed (a panic, logged above); the old configuration keeps serving");
                }
                notify(&[NotifyState::Ready, NotifyState::Status(&status)]);
            }
            _ if stopping => {
                log::warn!("second stop signal: exiting without waiting for the drain");
                std::process::exit(1);
            }
            _ => {
                stopping = true;
                let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
                let drain = server.drain_timeout();
                log::info!(
                    "{name} received: no longer accepting; draining {} in-flight requests and {} streams (up to {} ms)",
                    server.in_flight(),
                    server.open_streams(),
                    drain.as_millis()
                );
                notify(&[NotifyState::Stopping, NotifyState::Status("draining in-flight requests")]);
                let s = server.clone();
                let spawned = hub.threads().spawn_owned("shutdown", ThreadKind::Control, move |_| {
                    s.shutdown();
                });
                if let Err(e) = spawned {
                    log::error!("cannot start the shutdown thread: {e}; draining on the signal thread");
                    server.shutdown();
                }
            }
        }
    }
}

fn serve(config: Config, config_path: PathBuf) -> ExitCode {
    // Before anything slow: a SIGHUP now must not kill the process (its default action).
    let signals = match Signals::new([SIGTERM, SIGINT, SIGHUP]) {
        Ok(s) => s,
        Err(e) => {
            log::error!("cannot install the signal handlers: {e}");
            return ExitCode::from(1);
        }
    };
    for s in &config.skipped {
        log::warn!("server '{}' is not served: {}", s.name, s.reason);
    }
    for w in &config.warnings {
        log::warn!("config: {w}");
    }
    let addr = SocketAddr::new(config.bind, config.port);
    let http = config.http_server();
    let hub = match Hub::new(config) {
        Ok(h) => h,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::from(2);
        }
    };
    log::info!("upstream sessions kept in the {} store", hub.store().kind());
    let users = hub.users();
    match users.store_kind() {
        "file" => log::info!(
            "{} users; run-time users kept in {}",
            users.list().len(),
            mcphub::users::state_dir(&hub.config()).join(mcphub::users::persist::STATE_FILE).display()
        ),
        kind => log::info!("{} users; run-time users kept in {kind}", users.list().len()),
    }
    if !users.has_secret_key() {
        log::info!("no MCPHUB_SECRET_KEY_FILE / MCPHUB_SECRET_KEY: run-time tokens cannot be stored (config tokens are served)");
    }
    drop(users);
    let server = match Server::bind(addr, http, Arc::new(hub.clone())) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            log::error!("cannot listen on {addr}: {e}");
            return ExitCode::from(1);
        }
    };
    if let Err(e) = mcphub::logging::start_flusher(hub.threads()) {
        log::warn!("cannot start the log flusher thread ({e}); log lines are written one by one");
    }
    let servers = hub.catalog().upstreams().len();
    log::info!("MCPHub listening on http://{}/mcp ({servers} servers)", server.local_addr());
    let status = format!("serving {servers} MCP servers on http://{}/mcp", server.local_addr());
    notify(&[NotifyState::Ready, NotifyState::Status(&status)]);
    if let Some(interval) = sd_notify::watchdog_enabled() {
        let (s, h) = (server.clone(), hub.clone());
        if let Err(e) = hub.threads().spawn_owned("watchdog", ThreadKind::Poller, move |stop| watchdog(s, h, interval, stop)) {
            log::error!("cannot start the watchdog thread: {e}");
        }
    }
    let signal_handle = signals.handle();
    {
        let (server, hub) = (server.clone(), hub.clone());
        // Ends when `signal_handle` closes the iterator, after the drain.
        let threads = hub.threads().clone();
        if let Err(e) = threads.spawn_owned("signals", ThreadKind::Control, move |_| handle_signals(signals, server, hub, config_path, status)) {
            log::error!("cannot start the signal thread: {e}");
            return ExitCode::from(1);
        }
    }
    // Warm the catalog in the background: era probes, sessions, first lists.
    // Bounded by its 20 s deadline: counted, detached.
    let warm = hub.clone();
    let _ = hub.threads().spawn("catalog-warm", ThreadKind::Call, move || {
        let ctx = CallContext::shared(Instant::now() + Duration::from_secs(20));
        let tools = warm.catalog().merged(Kind::Tools, &ctx);
        // Servers with per-user credentials are listed per user, not here (issue 14).
        match warm.catalog().upstreams().iter().filter(|u| u.needs_user_tokens()).count() {
            0 => log::info!("catalog ready: {} tools", tools.items.len()),
            n => log::info!("catalog ready: {} shared tools; {n} server(s) with per-user tools, listed with each user's tokens", tools.items.len()),
        }
    });
    let drained = server.wait();
    signal_handle.close();
    if drained.cut_requests + drained.cut_streams > 0 {
        log::warn!(
            "drain timeout ({} ms) reached: {} requests and {} call streams cut",
            server.drain_timeout().as_millis(),
            drained.cut_requests,
            drained.cut_streams
        );
    }
    log::info!(
        "drained in {} ms ({} open-ended streams ended)",
        drained.took.as_millis(),
        drained.ended_streams
    );
    hub.close_upstream_sessions();
    // Pollers, listeners, the watchdog and the signal thread end on the stop;
    // one blocked past the deadline is named in a WARN line, not waited for.
    let joined = hub.threads().shutdown_join(Instant::now() + THREADS_JOIN);
    log::info!("background threads joined: {} ({} left running)", joined.joined.len(), joined.blocked.len());
    log::info!("MCPHub stopped");
    log::logger().flush();
    ExitCode::SUCCESS
}

/// What `serve` took from its command line and environment instead of the
/// config file (`--port`/`PORT`, `--bind`, `REDIS_URL`, `MCPHUB_STATE_DIR`):
/// a reloaded file gets them again, so they never read as changed.
struct Overrides {
    port: Option<u16>,
    bind: Option<IpAddr>,
    redis_url: Option<String>,
    state_dir: Option<PathBuf>,
}

static OVERRIDES: std::sync::OnceLock<Overrides> = std::sync::OnceLock::new();

impl Overrides {
    fn apply(&self, config: &mut Config) {
        if let Some(p) = self.port {
            config.port = p;
        }
        if let Some(b) = self.bind {
            config.bind = b;
        }
        if let Some(url) = self.redis_url.clone().filter(|u| !u.trim().is_empty()) {
            config.redis = Some(match config.redis.take() {
                Some(r) => mcphub::config::RedisConfig { url, sentinel: None, ..r },
                None => mcphub::config::RedisConfig::new(url),
            });
        }
        if let Some(dir) = self.state_dir.clone().filter(|d| !d.as_os_str().is_empty()) {
            config.state_dir = Some(dir);
        }
    }
}

/// Reloads the configuration file at `path` into the running hub (on
/// `SIGHUP`): `serve`'s overrides apply again, then [`Hub::reload`]. Logs
/// one info line, `config reloaded: +added -removed ~changed =kept (…)`, or
/// one error line naming the problem (a file that cannot be read or does
/// not validate): the old configuration keeps serving.
fn reload_config(hub: &Hub, path: &Path) {
    let reloaded = Config::load(path).map_err(mcphub::hub::reload::ReloadError::from).and_then(|mut config| {
        for w in &config.warnings {
            log::warn!("config: {w}");
        }
        if let Some(o) = OVERRIDES.get() {
            o.apply(&mut config);
        }
        hub.reload(config)
    });
    match reloaded {
        Ok(report) => log::info!("config reloaded: {report}"),
        Err(e) => log::error!("config reload rejected: {e}; the old configuration keeps serving"),
    }
}

/// `mcphub keygen`: the key, its digest, and with `--user`/`--admin` a config snippet.
fn keygen(admin: bool, user: Option<String>) -> ExitCode {
    let key = mcphub::users::new_key();
    let digest = format!("sha256:{}", mcphub::users::key_digest(&key));
    println!("key: {key}");
    println!("digest: {digest}");
    if admin || user.is_some() {
        let name = user.unwrap_or_else(|| "admin".to_string());
        if !mcphub::config::valid_user_name(&name) {
            eprintln!("mcphub: --user: user names are 1..=64 characters of [A-Za-z0-9_.@-]");
            return ExitCode::from(2);
        }
        // The token comes from the environment, not the file (users may also set it themselves).
        let env: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
        let env = format!("{env}_GITHUB_TOKEN");
        let mut entry = serde_json::json!({"keys": [digest], "tokens": {"GITHUB_TOKEN": format!("${{env.{env}}}")}});
        if admin {
            entry["admin"] = serde_json::Value::Bool(true);
        }
        let snippet = serde_json::json!({
            "users": { &name: entry },
            "mcpServers": {"github": {"type": "http", "url": "https://api.githubcopilot.com/mcp/",
                                      "headers": {"Authorization": "Bearer ${user.GITHUB_TOKEN}"}}}
        });
        println!(
            "config snippet (merge it into the config file; {name}'s GITHUB_TOKEN is read from ${env}, \
             or {name} sets it with PUT /api/me/tokens/GITHUB_TOKEN and the \"tokens\" entry goes):"
        );
        println!("{}", serde_json::to_string_pretty(&snippet).unwrap_or_default());
    }
    eprintln!("The key is shown once: give it to its user. Only the digest goes into the config.");
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(match &cli.command {
        Command::Serve { log_format, .. } => *log_format,
        _ => LogFormat::Text,
    });
    install_panic_hook();
    match cli.command {
        Command::Keygen { admin, user } => keygen(admin, user),
        Command::Serve { config: config_path, port, bind, redis_url, state_dir, .. } => {
            let _ = OVERRIDES.set(Overrides { port, bind, redis_url: redis_url.clone(), state_dir: state_dir.clone() });
            let mut config = match load(&config_path) {
                Ok(c) => c,
                Err(code) => return code,
            };
            if let Some(p) = port {
                config.port = p;
            }
            if let Some(b) = bind {
                config.bind = b;
            }
            if let Some(url) = redis_url.filter(|u| !u.trim().is_empty()) {
                if let Err(e) = mcphub::config::check_redis_url(&url) {
                    eprintln!("mcphub: REDIS_URL: {e}");
                    return ExitCode::from(2);
                }
                config.redis = Some(match config.redis.take() {
                    Some(r) => mcphub::config::RedisConfig { url, sentinel: None, ..r },
                    None => mcphub::config::RedisConfig::new(url),
                });
            }
            if let Some(dir) = state_dir.filter(|d| !d.as_os_str().is_empty()) {
                config.state_dir = Some(dir);
            }
            // A key that is set but unusable stops the start (it would
            // otherwise hide every stored token).
            if let Err(e) = mcphub::users::secrets::SecretKey::from_env() {
                eprintln!("mcphub: {e}");
                return ExitCode::from(2);
            }
            serve(config, config_path)
        }
        Command::CheckConfig { config } => match load(&config) {
            Ok(c) => {
                print!("{}", c.describe());
                // Warnings do not fail the check (issue 14): they are printed, exit 0.
                for w in &c.warnings {
                    eprintln!("mcphub: warning: {w}");
                }
                match c.warnings.len() {
                    0 => println!("config OK"),
                    n => println!("config OK ({n} warning{})", if n == 1 { "" } else { "s" }),
                }
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
    }
}
