//! `mcphub-load`: the concurrency test of docs/decisions.md D8 — N concurrent MCP
//! clients call one tool in rounds. See [`mcphub_tools::load`].
//!
//! ```text
//! mcphub-load --url URL [--key K] [--concurrency 70] --tool NAME [--args '{json}']
//!             [--duration SECS] [--rounds N] [--era legacy|modern]
//!             [--compare-url URL] [--json FILE] [--timeout-ms 30000]
//! ```
//! Exit status: 0 when it ran (failed calls included), 2 on bad arguments or
//! when no client could initialize a session.

#![forbid(unsafe_code)]

use std::io::{IsTerminal, Write};
use std::time::Duration;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use mcphub_tools::load::{self, LoadConfig, LoadError, Summary};
use mcphub::protocol::era::Era;

/// N concurrent MCP clients calling one tool in rounds (Streamable HTTP).
#[derive(Debug, Parser)]
#[command(name = "mcphub-load", version, about)]
struct Args {
    /// The MCP endpoint, e.g. http://127.0.0.1:3000/mcp.
    #[arg(long)]
    url: String,
    /// Bearer token sent on every request (never printed).
    #[arg(long, env = "MCPHUB_LOAD_KEY", hide_env_values = true)]
    key: Option<String>,
    /// Clients (each its own session and thread).
    #[arg(long, default_value_t = 70)]
    concurrency: usize,
    /// The tool to call.
    #[arg(long)]
    tool: String,
    /// The tool's arguments, a JSON object.
    #[arg(long, default_value = "{}")]
    args: String,
    /// Start rounds until this many seconds have passed.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    duration: Option<u64>,
    /// Run at most this many rounds (default 1 when --duration is not given).
    #[arg(long)]
    rounds: Option<u64>,
    /// How the clients speak MCP: legacy (initialize + session) or modern (2026-07-28).
    #[arg(long, default_value = "legacy", value_parser = ["legacy", "modern"])]
    era: String,
    /// Run the same scenario against this URL afterwards and compare.
    #[arg(long)]
    compare_url: Option<String>,
    /// Write the summary as JSON here (an array of two with --compare-url).
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Budget of each HTTP request in milliseconds, answer included.
    #[arg(long, default_value_t = 30_000)]
    timeout_ms: u64,
}

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("mcphub-load: {msg}");
    std::process::exit(2);
}

fn main() {
    let args = Args::parse();
    let arguments: serde_json::Value =
        serde_json::from_str(&args.args).unwrap_or_else(|e| fail(format!("--args is not JSON: {e}")));
    let base = LoadConfig {
        url: args.url.clone(),
        key: args.key.clone(),
        concurrency: args.concurrency,
        tool: args.tool.clone(),
        arguments,
        duration: args.duration.map(Duration::from_secs),
        rounds: args.rounds,
        era: if args.era == "modern" { Era::Modern } else { Era::Legacy },
        timeout: Duration::from_millis(args.timeout_ms),
    };
    let mut configs = vec![base.clone()];
    if let Some(url) = &args.compare_url {
        configs.push(LoadConfig { url: url.clone(), ..base });
    }
    for c in &configs {
        if let Err(e) = c.validate() {
            fail(e);
        }
    }

    let tty = std::io::stdout().is_terminal();
    let mut summaries: Vec<Summary> = Vec::new();
    let mut no_session = false;
    for (i, cfg) in configs.iter().enumerate() {
        let bar = if tty {
            let bar = ProgressBar::new(cfg.concurrency as u64);
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} [{bar:40}] {pos}/{len} ({elapsed})") {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        } else {
            ProgressBar::hidden()
        };
        if i > 0 {
            println!();
        }
        let mut out = std::io::stdout();
        let result = load::run(cfg, &bar, &mut out);
        bar.finish_and_clear();
        match result {
            Ok(s) => {
                print!("{}", s.report());
                summaries.push(s);
            }
            Err(e @ LoadError::NoSession { .. }) => {
                eprintln!("mcphub-load: {e}");
                no_session = true;
            }
            Err(e) => fail(e),
        }
        let _ = std::io::stdout().flush();
    }
    if summaries.len() > 1 {
        println!();
        print!("{}", load::compare_table(&summaries));
    }
    if let Some(path) = &args.json {
        let doc = match summaries.as_slice() {
            [one] if configs.len() == 1 => one.to_json(),
            many => serde_json::Value::Array(many.iter().map(Summary::to_json).collect()),
        };
        let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
        if let Err(e) = std::fs::write(path, text + "\n") {
            eprintln!("mcphub-load: cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
    }
    std::process::exit(if no_session { 2 } else { 0 });
}
