//! The systemd unit, the environment example and `scripts/install.sh`
//! (issue 7): the unit's required keys (parsed), `systemd-analyze verify`
//! when the tool is present (said loudly when it is not), the command lines
//! the unit runs accepted by the real binary, and an install into a
//! temporary DESTDIR with the files' modes checked.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const BIN: &str = env!("CARGO_BIN_EXE_mcphub");

/// `[Section]` → key → values (a key may repeat), comments and blanks skipped.
type Unit = BTreeMap<String, BTreeMap<String, Vec<String>>>;

fn parse_unit(text: &str) -> Unit {
    let mut unit = Unit::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
            continue;
        }
        let (k, v) = line.split_once('=').unwrap_or_else(|| panic!("not KEY=value: {line:?}"));
        assert!(!section.is_empty(), "key outside a section: {line:?}");
        unit.entry(section.clone()).or_default().entry(k.trim().to_string()).or_default().push(v.trim().to_string());
    }
    unit
}

fn one<'a>(unit: &'a Unit, section: &str, key: &str) -> &'a str {
    let values = unit.get(section).and_then(|s| s.get(key)).unwrap_or_else(|| panic!("[{section}] {key}= is missing"));
    assert_eq!(values.len(), 1, "[{section}] {key}= is set {} times", values.len());
    &values[0]
}

/// systemd time spans as the unit uses them: `30s`, `2min`, `500ms`, a bare number = s.
fn span(v: &str) -> Duration {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (n, unit) = v.split_at(split);
    let n: u64 = n.parse().unwrap_or_else(|_| panic!("not a time span: {v:?}"));
    match unit {
        "" | "s" | "sec" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "min" | "m" => Duration::from_secs(n * 60),
        _ => panic!("unexpected time unit in {v:?}"),
    }
}

fn unit_text() -> String {
    std::fs::read_to_string(Path::new(ROOT).join("etc/mcphub.service")).expect("etc/mcphub.service")
}

#[test]
fn the_unit_has_the_required_keys() {
    let unit = parse_unit(&unit_text());
    let svc = "Service";
    for (key, want) in [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("Restart", "on-failure"),
        ("User", "mcphub"),
        ("EnvironmentFile", "/etc/mcphub/mcphub.env"),
        ("ExecStart", "/usr/local/bin/mcphub serve --config /etc/mcphub/mcphub.json"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("StateDirectory", "mcphub"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
    ] {
        assert_eq!(one(&unit, svc, key), want, "[Service] {key}=");
    }
    let env = &unit[svc]["Environment"];
    assert!(env.iter().any(|e| e == "MCPHUB_STATE_DIR=%S/mcphub"), "MCPHUB_STATE_DIR must point at the StateDirectory: {env:?}");
    let nofile: u64 = one(&unit, svc, "LimitNOFILE").parse().expect("LimitNOFILE is a number");
    assert!(nofile >= 65_536, "LimitNOFILE={nofile}: too few for many keep-alive clients");
    let watchdog = span(one(&unit, svc, "WatchdogSec"));
    assert!(watchdog >= Duration::from_secs(10), "WatchdogSec={watchdog:?}: pings are every half of it");
    // The stop timeout must cover the drain (drainTimeoutMs default) and the session DELETEs.
    let stop = span(one(&unit, svc, "TimeoutStopSec"));
    let drain = Duration::from_millis(mcphub::config::DEFAULT_DRAIN_TIMEOUT_MS);
    assert!(stop > drain + Duration::from_secs(5), "TimeoutStopSec={stop:?} must exceed drainTimeoutMs ({drain:?}) with room");
    assert_eq!(one(&unit, "Install", "WantedBy"), "multi-user.target");
    assert!(unit["Unit"].contains_key("Description"));
}

#[test]
fn the_units_command_lines_are_accepted_by_the_binary() {
    let unit = parse_unit(&unit_text());
    let example = Path::new(ROOT).join("etc/mcphub.example.json");
    for key in ["ExecStartPre", "ExecStart"] {
        let line = one(&unit, "Service", key);
        let mut args: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        assert_eq!(args.remove(0), "/usr/local/bin/mcphub", "{key}");
        // The same flags against the example config the installer puts in place.
        let config_at = args.iter().position(|a| a == "--config").expect("--config") + 1;
        args[config_at] = example.display().to_string();
        if args[0] == "serve" {
            // `serve` would run: ask clap to parse the flags only.
            args.push("--help".into());
        }
        let out = Command::new(BIN).args(&args).env_remove("REDIS_URL").output().expect("run mcphub");
        assert!(out.status.success(), "{key}: mcphub {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("\n*** SKIPPED: systemd-analyze is not installed: `systemd-analyze verify` did NOT run.");
        eprintln!("*** Only the parsed keys were checked (the_unit_has_the_required_keys). apt-get install systemd to run it.\n");
        return;
    };
    eprintln!("{}", String::from_utf8_lossy(&version.stdout).lines().next().unwrap_or("systemd-analyze"));
    // verify also checks that each Exec path is executable: point them at the built binary.
    let dir = std::env::temp_dir().join(format!("mcphub-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("mcphub.service");
    std::fs::write(&copy, unit_text().replace("/usr/local/bin/mcphub", BIN)).unwrap();
    let out = Command::new("systemd-analyze").arg("verify").arg(&copy).output().expect("systemd-analyze verify");
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify failed: {stderr}");
    // Unknown or misplaced keys are only warnings (exit 0): none is allowed.
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("mcphub.service")).collect();
    assert!(warnings.is_empty(), "systemd-analyze verify warned: {warnings:?}");
}

#[test]
fn the_env_example_documents_what_the_binary_reads() {
    let text = std::fs::read_to_string(Path::new(ROOT).join("etc/mcphub.env.example")).unwrap();
    for name in ["REDIS_URL", "MCPHUB_SECRET_KEY_FILE", "MCPHUB_SECRET_KEY", "MCPHUB_STATE_DIR", "DEBUG_MCPHUB", "MCPHUB_LOG_FORMAT", "PORT", "RUST_BACKTRACE"] {
        assert!(text.lines().any(|l| l.trim_start_matches('#').starts_with(&format!("{name}="))), "{name} is not in mcphub.env.example");
    }
    // Nothing set to a real secret in the example.
    let set: Vec<&str> = text.lines().filter(|l| !l.starts_with('#') && l.contains('=')).collect();
    assert!(set.is_empty(), "the example sets {set:?}: every line should be commented out");
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o7777
}

fn install(destdir: &Path, extra_env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(Path::new(ROOT).join("scripts/install.sh"));
    cmd.arg("--no-user").env("DESTDIR", destdir).env("BIN", BIN).env_remove("PREFIX").env_remove("SYSCONFDIR");
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run install.sh");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "install.sh failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// Removes a temporary DESTDIR on drop.
struct Dest(PathBuf);

impl Drop for Dest {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn install_sh_into_a_destdir_puts_files_with_their_modes_and_never_overwrites_a_config() {
    let dest = Dest(std::env::temp_dir().join(format!("mcphub-install-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dest.0);
    let d = &dest.0;
    let out = install(d, &[]);
    assert!(out.contains("next steps:") && out.contains("systemctl enable --now mcphub"), "{out}");

    let bin = d.join("usr/local/bin/mcphub");
    assert_eq!(mode(&bin), 0o755);
    assert_eq!(std::fs::read(&bin).unwrap(), std::fs::read(BIN).unwrap(), "the built binary");
    let unit = d.join("etc/systemd/system/mcphub.service");
    assert_eq!(mode(&unit), 0o644);
    assert_eq!(std::fs::read_to_string(&unit).unwrap(), unit_text(), "default PREFIX: the unit as shipped");
    let conf = d.join("etc/mcphub");
    assert_eq!(mode(&conf), 0o750);
    assert_eq!(mode(&conf.join("mcphub.json")), 0o640);
    assert_eq!(mode(&conf.join("mcphub.env")), 0o640);
    assert_eq!(
        std::fs::read_to_string(conf.join("mcphub.json")).unwrap(),
        std::fs::read_to_string(Path::new(ROOT).join("etc/mcphub.example.json")).unwrap()
    );

    // A second install keeps an edited config and env file.
    std::fs::write(conf.join("mcphub.json"), "{\"mcpServers\": {}}\n").unwrap();
    std::fs::write(conf.join("mcphub.env"), "REDIS_URL=redis://127.0.0.1:6379\n").unwrap();
    let out = install(d, &[]);
    assert!(out.contains("kept existing"), "{out}");
    assert_eq!(std::fs::read_to_string(conf.join("mcphub.json")).unwrap(), "{\"mcpServers\": {}}\n");
    assert_eq!(std::fs::read_to_string(conf.join("mcphub.env")).unwrap(), "REDIS_URL=redis://127.0.0.1:6379\n");

    // Another PREFIX: the unit follows it.
    let out = install(d, &[("PREFIX", "/opt/mcphub")]);
    assert!(out.contains("/opt/mcphub/bin/mcphub"), "{out}");
    assert_eq!(mode(&d.join("opt/mcphub/bin/mcphub")), 0o755);
    let unit = std::fs::read_to_string(d.join("etc/systemd/system/mcphub.service")).unwrap();
    assert!(unit.contains("ExecStart=/opt/mcphub/bin/mcphub serve --config /etc/mcphub/mcphub.json"), "{unit}");
    let stale: Vec<&str> = unit.lines().filter(|l| !l.starts_with('#') && l.contains("/usr/local/")).collect();
    assert!(stale.is_empty(), "paths not following PREFIX: {stale:?}");
}

#[test]
fn install_sh_refuses_a_missing_binary_and_unknown_flags() {
    let dest = Dest(std::env::temp_dir().join(format!("mcphub-install-bad-{}", std::process::id())));
    let script = Path::new(ROOT).join("scripts/install.sh");
    let out = Command::new(&script).arg("--no-user").env("DESTDIR", &dest.0).env("BIN", "/nonexistent/mcphub").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no binary at /nonexistent/mcphub"));
    assert!(!dest.0.exists(), "nothing installed");
    let out = Command::new(&script).arg("--frobnicate").env("DESTDIR", &dest.0).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
