//! Log output on stderr: human-readable text (default, simplelog's layout)
//! or one JSON object per line (`mcphub serve --log-format json`, env
//! `MCPHUB_LOG_FORMAT`), for log shippers.
//!
//! Both formats: hub keys in a message or field are masked
//! ([`mask_keys`], `mcphub_***`); a line written while a
//! request is served carries its request id ([`crate::trace`]): text
//! appends ` [req ID]`, JSON has `request_id`. The per-request line
//! ([`REQUEST_TARGET`], info) carries its fields as log key-values.
//!
//! JSON lines: `{"ts": RFC 3339 UTC with ms, "level": "info", "msg": …,
//! "request_id"?: …}` plus, for the request line, `method`, `tool` /
//! `prompt` / `uri`, `server`, `user`, `status`, `rpc_code`,
//! `duration_ms`, `era` (absent values are `null`). Written by a small
//! `log::Log` of our own (serde_json): the crates that
//! do this (`json_env_logger`, `slog-json`, `tracing-subscriber`) would each
//! replace the `log` setup or bring a runtime the hub does not need.

//!
//! Output: one `write` per line until [`start_flusher`] runs (`mcphub serve`
//! calls it once the hub exists); from then on the per-request info lines
//! ([`REQUEST_TARGET`]) gather in memory and go to stderr in one `write`
//! every [`FLUSH_EVERY`] or per [`BATCH_BYTES`]; every other line goes out at
//! once, after the request lines gathered before it, and everything at
//! shutdown. Issue 16: the request line was the hub's one `write` syscall
//! per request beyond the forwarder's. The price: a request line may appear
//! up to [`FLUSH_EVERY`] after its answer, and a process killed by SIGKILL
//! loses at most that much of them.

use crate::trace;
use log::kv::{Key, Value as KvValue, VisitSource, VisitValue};
use log::{Level, LevelFilter, Log, Metadata, Record};
use serde_json::{Map, Value};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// How long a batched line may wait before it is written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Batched output above this many bytes is written at once.
pub const BATCH_BYTES: usize = 32 * 1024;

/// Where [`Output`] writes (stderr in the process; a buffer in tests).
type Sink = Box<dyn Fn(&[u8]) + Send + Sync>;

/// The process's log output (stderr), batched or written through (module doc).
pub struct Output {
    buf: parking_lot::Mutex<Vec<u8>>,
    batching: AtomicBool,
    sink: Sink,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output").field("batching", &self.is_batching()).finish_non_exhaustive()
    }
}

impl Output {
    fn new(sink: Sink) -> Output {
        Output { buf: parking_lot::Mutex::new(Vec::new()), batching: AtomicBool::new(false), sink }
    }

    /// Appends `bytes`; writes through unless batching (then only past [`BATCH_BYTES`]).
    fn push(&self, bytes: &[u8]) {
        let mut buf = self.buf.lock();
        buf.extend_from_slice(bytes);
        if !self.batching.load(Ordering::Acquire) || buf.len() >= BATCH_BYTES {
            self.write_out(&mut buf);
        }
    }

    /// Writes whatever is gathered (one write).
    pub fn flush(&self) {
        self.write_out(&mut self.buf.lock());
    }

    fn write_out(&self, buf: &mut Vec<u8>) {
        if buf.is_empty() {
            return;
        }
        (self.sink)(buf);
        buf.clear();
        if buf.capacity() > 4 * BATCH_BYTES {
            buf.shrink_to(BATCH_BYTES);
        }
    }

    /// Whether lines are being batched (a flusher runs).
    pub fn is_batching(&self) -> bool {
        self.batching.load(Ordering::Acquire)
    }
}

/// The one [`Output`] of the process.
pub fn output() -> &'static Arc<Output> {
    static OUTPUT: OnceLock<Arc<Output>> = OnceLock::new();
    OUTPUT.get_or_init(|| {
        Arc::new(Output::new(Box::new(|bytes| {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(bytes);
            let _ = err.flush();
        })))
    })
}

/// A `Write` handle on [`output`] (for simplelog).
struct OutputWriter(Arc<Output>);

impl Write for OutputWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.push(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(()) // the logger flushes per record where it must (warn and error)
    }
}

/// Starts batching [`output`]: a thread (`mcphub-log-flush`, owned by
/// `threads`) writes the gathered lines every [`FLUSH_EVERY`]; when the
/// owner stops, it writes the rest and output goes back to one write per line.
///
/// Errors: the OS refused the thread (output stays written through).
pub fn start_flusher(threads: &crate::threads::Threads) -> std::io::Result<()> {
    let out = output().clone();
    out.batching.store(true, Ordering::Release);
    let started = threads.spawn_owned("log-flush", crate::threads::Kind::Poller, {
        let out = out.clone();
        move |stop| {
            while !stop.sleep(FLUSH_EVERY) {
                out.flush();
            }
            out.batching.store(false, Ordering::Release);
            out.flush();
        }
    });
    if started.is_err() {
        out.batching.store(false, Ordering::Release);
        out.flush();
    }
    started
}

/// The log target of the one info line per `/mcp` request.
pub const REQUEST_TARGET: &str = "mcphub::request";

/// Log targets never written (chatty dependencies).
const IGNORED: &[&str] = &["rustls", "ureq"];

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// `2026-07-28T10:00:00.123Z [INFO] message` (simplelog).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the process logger on stderr at `level`. Errors: a logger is
/// already installed (ignored by callers that may init twice).
pub fn init(format: LogFormat, level: LevelFilter) -> Result<(), log::SetLoggerError> {
    let logger: Box<dyn Log> = match format {
        LogFormat::Text => {
            let config = simplelog::ConfigBuilder::new()
                .set_target_level(LevelFilter::Off)
                .set_thread_level(LevelFilter::Off)
                .set_time_format_rfc3339()
                .build();
            Box::new(TextLogger { inner: simplelog::WriteLogger::new(level, config, OutputWriter(output().clone())) })
        }
        LogFormat::Json => Box::new(JsonLogger { level }),
    };
    log::set_boxed_logger(logger)?;
    log::set_max_level(level);
    Ok(())
}

/// Whether a record may wait in the batch: only the per-request info line
/// ([`REQUEST_TARGET`]); every other line goes out at once, with the request
/// lines gathered before it (their order kept).
fn batched(record: &Record) -> bool {
    record.target() == REQUEST_TARGET && record.level() > Level::Warn
}

fn ignored(target: &str) -> bool {
    IGNORED.iter().any(|p| target.starts_with(p))
}

/// simplelog's text layout, with keys masked and the request id appended.
struct TextLogger {
    inner: Box<simplelog::WriteLogger<OutputWriter>>,
}

impl Log for TextLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        self.inner.enabled(metadata) && !ignored(metadata.target())
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let text = mask_keys(&record.args().to_string());
        let id = if record.target() == REQUEST_TARGET { None } else { trace::current_id() };
        let build = |args: std::fmt::Arguments| {
            self.inner.log(
                &Record::builder()
                    .args(args)
                    .level(record.level())
                    .target(record.target())
                    .module_path(record.module_path())
                    .file(record.file())
                    .line(record.line())
                    .build(),
            )
        };
        match id {
            Some(id) => build(format_args!("{text} [req {id}]")),
            None => build(format_args!("{text}")),
        }
        if !batched(record) {
            output().flush();
        }
    }

    fn flush(&self) {
        output().flush();
    }
}

/// One JSON object per line.
struct JsonLogger {
    level: LevelFilter,
}

impl Log for JsonLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= self.level && !ignored(metadata.target())
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut line = json_line(record, now_ms());
        line.push('\n');
        output().push(line.as_bytes());
        if !batched(record) {
            output().flush();
        }
    }

    fn flush(&self) {
        output().flush();
    }
}

/// The JSON object of one record (without the newline), at `ms` (Unix ms).
pub fn json_line(record: &Record, ms: u64) -> String {
    let mut obj = Map::new();
    obj.insert("ts".into(), Value::String(rfc3339(ms)));
    obj.insert("level".into(), Value::String(record.level().as_str().to_ascii_lowercase()));
    obj.insert("msg".into(), Value::String(mask_keys(&record.args().to_string())));
    let mut fields = Fields(Map::new());
    let _ = record.key_values().visit(&mut fields);
    if !fields.0.contains_key("request_id") {
        if let Some(id) = trace::current_id() {
            obj.insert("request_id".into(), Value::String(id));
        }
    }
    obj.extend(fields.0);
    serde_json::to_string(&Value::Object(obj)).unwrap_or_default()
}

struct Fields(Map<String, Value>);

impl<'kvs> VisitSource<'kvs> for Fields {
    fn visit_pair(&mut self, key: Key<'kvs>, value: KvValue<'kvs>) -> Result<(), log::kv::Error> {
        let mut v = ToJson(Value::Null);
        value.visit(&mut v)?;
        self.0.insert(key.as_str().to_string(), v.0);
        Ok(())
    }
}

struct ToJson(Value);

impl<'v> VisitValue<'v> for ToJson {
    fn visit_any(&mut self, value: KvValue) -> Result<(), log::kv::Error> {
        self.0 = Value::String(mask_keys(&value.to_string()));
        Ok(())
    }
    fn visit_null(&mut self) -> Result<(), log::kv::Error> {
        self.0 = Value::Null;
        Ok(())
    }
    fn visit_u64(&mut self, value: u64) -> Result<(), log::kv::Error> {
        self.0 = Value::from(value);
        Ok(())
    }
    fn visit_i64(&mut self, value: i64) -> Result<(), log::kv::Error> {
        self.0 = Value::from(value);
        Ok(())
    }
    fn visit_f64(&mut self, value: f64) -> Result<(), log::kv::Error> {
        self.0 = Value::from(value);
        Ok(())
    }
    fn visit_bool(&mut self, value: bool) -> Result<(), log::kv::Error> {
        self.0 = Value::Bool(value);
        Ok(())
    }
    fn visit_str(&mut self, value: &str) -> Result<(), log::kv::Error> {
        self.0 = Value::String(mask_keys(value));
        Ok(())
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// `ms` (Unix time in ms) as RFC 3339 UTC with milliseconds,
/// e.g. `2026-07-28T10:00:00.123Z`.
pub fn rfc3339(ms: u64) -> String {
    stamp(ms / 1000, Some(ms % 1000))
}

/// `t` as RFC 3339 UTC in whole seconds, e.g. `2025-11-25T10:30:00Z` (task
/// timestamps; a time before 1970 counts as 1970).
pub fn rfc3339_seconds(t: std::time::SystemTime) -> String {
    stamp(t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()), None)
}

/// The one civil-date formatter (proleptic Gregorian; Howard Hinnant's
/// civil_from_days): `secs` since the Unix epoch, with `.mmm` when `millis`.
/// Kept by hand rather than taken from a crate: the small ones
/// (`humantime`'s `format_rfc3339_*`) panic past year 9999 and on times
/// before 1970, while this is total over `u64`; the test checks it against
/// `httpdate`'s calendar through year 9999.
fn stamp(secs: u64, millis: Option<u64>) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    match millis {
        Some(ms) => format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z"),
        None => format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z"),
    }
}

/// `text` with every hub key (`mcphub_` + 64 hex) replaced by `mcphub_***`,
/// and every OAuth token or client secret (`mcphub_at_…`, `mcphub_rt_…`,
/// `mcphub_cs_…`) by its prefix and `***`.
pub fn mask_keys(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("mcphub_") {
        out.push_str(&rest[..i]);
        let mut after = &rest[i + 7..];
        // OAuth access and refresh tokens and client secrets (issue 18):
        // `mcphub_at_`, `mcphub_rt_`, `mcphub_cs_` + hex.
        let kind = ["at_", "rt_", "cs_"].into_iter().find(|k| after.starts_with(k)).unwrap_or("");
        let hex_len = after[kind.len()..].bytes().take_while(u8::is_ascii_hexdigit).count();
        if hex_len >= 16 {
            out.push_str("mcphub_");
            out.push_str(kind);
            out.push_str("***");
            after = &after[kind.len() + hex_len..];
        } else {
            out.push_str("mcphub_");
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn output_writes_through_until_batching_then_gathers_until_flushed() {
        let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::<u8>::new()));
        let out = super::Output::new(Box::new({
            let seen = seen.clone();
            move |b| seen.lock().extend_from_slice(b)
        }));
        out.push(b"one\n");
        assert_eq!(seen.lock().as_slice(), b"one\n", "written through while not batching");
        out.batching.store(true, std::sync::atomic::Ordering::Release);
        out.push(b"two\n");
        assert_eq!(seen.lock().as_slice(), b"one\n", "gathered while batching");
        out.flush();
        assert_eq!(seen.lock().as_slice(), b"one\ntwo\n", "written by a flush, in order");
        let big = vec![b'x'; super::BATCH_BYTES];
        out.push(&big);
        assert_eq!(seen.lock().len(), 8 + super::BATCH_BYTES, "a full batch is written at once");
        out.flush();
        assert_eq!(seen.lock().len(), 8 + super::BATCH_BYTES, "nothing left to write");
    }

    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_785_233_096_789), "2026-07-28T10:04:56.789Z");
        assert_eq!(rfc3339(4_107_542_400_001), "2100-03-01T00:00:00.001Z", "2100 is not a leap year");
        assert_eq!(rfc3339(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(253_402_300_800_000), "10000-01-01T00:00:00.000Z", "past 9999: more digits, no panic");
        let before = std::time::UNIX_EPOCH - std::time::Duration::from_secs(86_400);
        assert_eq!(rfc3339_seconds(before), "1970-01-01T00:00:00Z", "before 1970 counts as 1970");
    }

    /// `stamp` against `httpdate`'s own calendar (another implementation),
    /// every ~92 days and a varying time of day from 1970 to 9999.
    #[test]
    fn civil_dates_agree_with_httpdate() {
        const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
        let mut checked = 0;
        for secs in (0..253_402_300_800u64).step_by(7_919_993).chain([951_782_399, 951_868_800, 4_107_542_399]) {
            let http = httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs));
            let parts: Vec<&str> = http.split(' ').collect();
            let [_, day, month, year, hms, "GMT"] = parts[..] else { panic!("{http}") };
            let month = MONTHS.iter().position(|m| *m == month).unwrap() + 1;
            assert_eq!(stamp(secs, None), format!("{year}-{month:02}-{day}T{hms}Z"), "{secs}s: {http}");
            checked += 1;
        }
        assert!(checked > 30_000, "{checked}");
    }

    #[test]
    fn oauth_tokens_are_masked_like_keys() {
        let hex = "0123456789abcdef".repeat(4);
        let line = format!("a mcphub_at_{hex} b mcphub_rt_{hex}; mcphub_cs_{hex}, mcphub_client_{hex} mcphub_at_short");
        let masked = super::mask_keys(&line);
        assert_eq!(masked, format!("a mcphub_at_*** b mcphub_rt_***; mcphub_cs_***, mcphub_client_{hex} mcphub_at_short"));
    }

    #[test]
    fn json_lines_carry_fields_and_mask_keys() {
        let key = format!("mcphub_{}", "ab".repeat(32));
        let kvs: [(&str, KvValue); 4] =
            [("status", KvValue::from(200u64)), ("user", KvValue::from("alice")), ("tool", KvValue::from(key.as_str())), ("rpc_code", KvValue::null())];
        let args = format!("sent {key}");
        let line = json_line(&Record::builder().args(format_args!("{args}")).level(log::Level::Info).target(REQUEST_TARGET).key_values(&kvs).build(), 0);
        assert!(!line.contains(&key), "{line}");
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["status"], 200);
        assert_eq!(v["user"], "alice");
        assert_eq!(v["rpc_code"], Value::Null);
        assert_eq!(v["level"], "info");
        assert_eq!(v["tool"], "mcphub_***");
    }
}
