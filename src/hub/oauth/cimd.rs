//! Client ID Metadata Documents (MCP 2026-07-28 authorization, "Client ID
//! Metadata Documents"; draft-ietf-oauth-client-id-metadata-document): a
//! client whose `client_id` is an https URL publishes its metadata there,
//! and the hub fetches it — from the open internet, on a client's say-so,
//! so behind an SSRF guard:
//! - https only (`clientMetadata.allowHttp` for tests), no userinfo, no fragment;
//! - the host's addresses are resolved once and every one must be public
//!   (no loopback, private, link-local, CGNAT, ULA, multicast, unspecified,
//!   documentation or IPv4-mapped private address) unless
//!   `clientMetadata.allowPrivateAddresses`; the connection goes to those
//!   checked addresses (no second lookup to rebind);
//! - no redirect is followed; at most `maxBytes`; the whole fetch within
//!   `timeoutMs`;
//! - the document must be a JSON object whose `client_id` equals the URL,
//!   with `redirect_uris`, and no shared-secret auth method.
//!
//! Documents are cached per URL for their `Cache-Control: max-age` (no
//! `Cache-Control`: 5 minutes; `no-store`: not at all), at most
//! `maxCacheSecs`; a failure is remembered for 10 s so a client cannot
//! make the hub fetch in a loop.

use crate::config::auth::ClientMetadataConfig;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod agent;

/// Most documents (and remembered failures) kept at once.
const CACHE_ENTRIES: usize = 1000;
/// How long a failed fetch is remembered (the module doc's 10 s).
const FAILURE_CACHE: Duration = Duration::from_secs(10);
/// How long a document without `Cache-Control` is reused.
const DEFAULT_CACHE: Duration = Duration::from_secs(300);
/// Most fetches in flight at once: each holds a request worker for up to
/// `timeoutMs`, and anyone can name a URL (`/oauth/authorize` before
/// sign-in), so slow URLs must not tie up every worker.
const MAX_FETCHES_AT_ONCE: usize = 8;

/// A fetched and checked client metadata document (the fields the hub uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientMetadata {
    /// `client_id`: the document's own URL.
    pub client_id: String,
    /// `client_name`, if any.
    pub client_name: Option<String>,
    /// `redirect_uris` (at least one).
    pub redirect_uris: Vec<String>,
    /// `client_uri`, if any.
    pub client_uri: Option<String>,
}

/// Why a document was not accepted. The message names the URL's host, never more.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CimdError {
    /// Not an https URL with a path (or http when allowed).
    #[error("client_id is not an acceptable metadata document URL: {0}")]
    BadUrl(String),
    /// The host resolves to an address the guard refuses.
    #[error("the client metadata host resolves to a non-public address")]
    PrivateAddress,
    /// Unreachable, timed out, or a status other than 200 (a redirect included).
    #[error("the client metadata document could not be fetched: {0}")]
    Fetch(String),
    /// Larger than `maxBytes`.
    #[error("the client metadata document is larger than {0} bytes")]
    TooLarge(usize),
    /// Not JSON, or a required field missing or wrong.
    #[error("the client metadata document is invalid: {0}")]
    Invalid(String),
    /// Its `client_id` is not the URL it was fetched from.
    #[error("the client metadata document's client_id does not match its URL")]
    ClientIdMismatch,
}

/// Whether `client_id` names a metadata document (an https URL with a
/// path; http too when `allow_http`), as opposed to a registered client's id.
///
/// The rules (draft-ietf-oauth-client-id-metadata-document §3; MCP
/// 2026-07-28 "Client Registration"): scheme `https` (or `http` when
/// allowed), a host, a path other than `/`, no userinfo, no fragment, no
/// `.` or `..` path segment (also percent-encoded), and no whitespace or
/// control character anywhere (the URL parser would silently drop them).
pub fn is_document_url(client_id: &str, allow_http: bool) -> bool {
    document_url(client_id, allow_http).is_ok()
}

/// [`is_document_url`]'s check, returning the parsed URL or why not.
fn document_url(client_id: &str, allow_http: bool) -> Result<url::Url, CimdError> {
    let bad = |why: &str| CimdError::BadUrl(why.to_string());
    if client_id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("whitespace or a control character"));
    }
    let url = url::Url::parse(client_id).map_err(|_| bad("not an absolute URL"))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {}
        _ => return Err(bad("not an https URL")),
    }
    if url.host().is_none() {
        return Err(bad("no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("userinfo is not allowed"));
    }
    if url.fragment().is_some() {
        return Err(bad("a fragment is not allowed"));
    }
    if url.path() == "/" || url.path().is_empty() {
        return Err(bad("no path"));
    }
    // The parser resolves dot segments away, so look at the text as written:
    // the path is what follows the authority, up to `?` or `#`.
    let after_scheme = client_id.split_once("://").map_or("", |(_, rest)| rest);
    let path = after_scheme.find(['/', '\\']).map_or("", |i| &after_scheme[i..]);
    let path = path.split(['?', '#']).next().unwrap_or("");
    let dot = |seg: &str| {
        let seg = seg.to_ascii_lowercase().replace("%2e", ".");
        seg == "." || seg == ".."
    };
    if path.split(['/', '\\']).any(dot) {
        return Err(bad("a dot path segment"));
    }
    Ok(url)
}

/// Whether `ip` is a public unicast address a metadata host may have: not
/// loopback, private (RFC 1918), shared/CGNAT (RFC 6598), link-local,
/// unspecified, broadcast, multicast, documentation (RFC 5737, RFC 3849),
/// benchmarking (RFC 2544, RFC 5180), `0.0.0.0/8`, `192.0.0.0/24`, reserved
/// `240.0.0.0/4`, unique-local `fc00::/7`, site-local `fec0::/10`, nor an
/// IPv6 form of a refused IPv4 address (mapped `::ffff:0:0/96`, compatible
/// `::/96`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`). IPv6 outside global
/// unicast `2000::/3` is refused, as are Teredo `2001::/32` and the local
/// NAT64 prefix `64:ff9b:1::/48` (RFC 8215).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let refused = a == 0 // "this network", 0.0.0.0 included
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b)) // 100.64.0.0/10 shared (CGNAT)
        || (a == 169 && b == 254)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 0 && c == 0) // 192.0.0.0/24 protocol assignments
        || (a == 192 && b == 0 && c == 2)
        || (a == 192 && b == 168)
        || (a == 198 && (b == 18 || b == 19)) // 198.18.0.0/15 benchmarking
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
        || a >= 224; // multicast 224/4, reserved 240/4, broadcast
    !refused
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if s[..5] == [0; 5] && (s[5] == 0xffff || s[5] == 0) {
        // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible; :: and ::1 land
        // on 0.0.0.0/8 and are refused with it).
        return is_public_v4(embedded(s[6], s[7]));
    }
    if s[..6] == [0, 0, 0, 0, 0xffff, 0] {
        return is_public_v4(embedded(s[6], s[7])); // ::ffff:0:a.b.c.d (SIIT)
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_public_v4(embedded(s[6], s[7])); // NAT64 well-known prefix
    }
    if s[0] == 0x2002 {
        return is_public_v4(embedded(s[1], s[2])); // 6to4
    }
    let global_unicast = s[0] & 0xe000 == 0x2000;
    let refused = !global_unicast
        || (s[0] == 0x2001 && s[1] == 0) // Teredo
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x2001 && s[1] == 0x0002 && s[2] == 0); // benchmarking 2001:2::/48
    !refused
}

/// One cached answer: a document or a failure, until `expires`.
struct Cached {
    result: Result<Arc<ClientMetadata>, CimdError>,
    expires: Instant,
    stored: Instant,
}

/// Fetches and caches documents.
///
/// A fetch runs on the caller's thread (plus one short DNS thread, so the
/// lookup too stays within `timeoutMs`), at most [`MAX_FETCHES_AT_ONCE`] at
/// a time; the cache lock is not held while fetching, so two first requests
/// for one URL may both fetch it.
pub struct Fetcher {
    /// Owner of the name-lookup threads.
    threads: crate::threads::Threads,
    config: RwLock<ClientMetadataConfig>,
    /// URL → answer, at most [`CACHE_ENTRIES`].
    cache: Mutex<HashMap<String, Cached>>,
    /// Bumped by [`Fetcher::set_config`]: a fetch begun under older limits
    /// does not store its answer.
    generation: AtomicU64,
    /// Fetches in flight.
    in_flight: AtomicUsize,
    /// The TLS client configuration (public roots plus `caFile`), built at
    /// the first https fetch after a (re)configuration.
    tls: Mutex<Option<Arc<rustls::ClientConfig>>>,
}

impl Fetcher {
    /// A fetcher with `config`'s limits.
    pub fn new(config: &ClientMetadataConfig) -> Fetcher {
        Fetcher::with_threads(config, &crate::threads::Threads::new())
    }

    /// [`Fetcher::new`] whose name-lookup threads are counted by `threads`
    /// (the hub's owner; kind `call`, short and detached).
    pub fn with_threads(config: &ClientMetadataConfig, threads: &crate::threads::Threads) -> Fetcher {
        Fetcher {
            threads: threads.clone(),
            config: RwLock::new(config.clone()),
            cache: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            tls: Mutex::new(None),
        }
    }

    /// Adopts new limits (a reload). When they changed, the cache and the TLS
    /// roots are dropped (documents are fetched again under the new rules).
    pub fn set_config(&self, config: &ClientMetadataConfig) {
        let mut current = self.config.write();
        if *current == *config {
            return;
        }
        *current = config.clone();
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.cache.lock().clear();
        *self.tls.lock() = None;
    }

    /// The document at `url`, from the cache or fetched now.
    ///
    /// Errors: [`CimdError::BadUrl`] when `url` is not a document URL, and
    /// [`CimdError::Fetch`] when [`MAX_FETCHES_AT_ONCE`] fetches are already
    /// running, are not remembered; any other error is, for 10 s.
    pub fn get(&self, url: &str) -> Result<Arc<ClientMetadata>, CimdError> {
        let config = self.config.read().clone();
        let generation = self.generation.load(Ordering::SeqCst);
        let parsed = document_url(url, config.allow_http)?;
        if let Some(hit) = self.cache.lock().get(url) {
            if hit.expires > Instant::now() {
                return hit.result.clone();
            }
        }
        let slot = InFlight::take(&self.in_flight);
        if slot.is_none() {
            let host = parsed.host_str().unwrap_or("");
            return Err(CimdError::Fetch(format!("{host}: too many metadata fetches at once")));
        }
        let fetched = self.fetch(&parsed, url, &config);
        drop(slot);
        let (result, keep) = match fetched {
            Ok((doc, keep)) => (Ok(Arc::new(doc)), keep),
            Err(e) => (Err(e), FAILURE_CACHE),
        };
        let mut cache = self.cache.lock();
        if self.generation.load(Ordering::SeqCst) != generation {
            return result;
        }
        if keep.is_zero() {
            cache.remove(url);
            return result;
        }
        let now = Instant::now();
        if cache.len() >= CACHE_ENTRIES && !cache.contains_key(url) {
            cache.retain(|_, c| c.expires > now);
            if cache.len() >= CACHE_ENTRIES {
                let oldest = cache.iter().min_by_key(|(_, c)| c.stored).map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    cache.remove(&oldest);
                }
            }
        }
        cache.insert(url.to_string(), Cached { result: result.clone(), expires: now + keep, stored: now });
        result
    }

    /// Fetches and checks the document at `url` (`client_id`, as written):
    /// the document and how long it may be reused.
    fn fetch(&self, url: &url::Url, client_id: &str, config: &ClientMetadataConfig) -> Result<(ClientMetadata, Duration), CimdError> {
        let deadline = Instant::now() + config.timeout;
        let host = url.host_str().unwrap_or("").to_string();
        let failed = |why: String| CimdError::Fetch(format!("{host}: {why}"));
        let addrs = resolve(url, deadline, &self.threads).map_err(&failed)?;
        if !config.allow_private_addresses && addrs.iter().any(|a| !is_public(a.ip())) {
            return Err(CimdError::PrivateAddress);
        }
        let tls = if url.scheme() == "https" { Some(self.tls_config(config)?) } else { None };
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(failed("timed out".into()));
        }
        let agent = agent::build(addrs, tls, remaining, deadline);
        let mut response = agent
            .get(url.as_str())
            .header("Accept", "application/json")
            .call()
            .map_err(|e| failed(describe(&e)))?;
        let status = response.status().as_u16();
        if (300..400).contains(&status) {
            return Err(failed("redirect not followed".into()));
        }
        if status != 200 {
            return Err(failed(format!("status {status}")));
        }
        let cache_control: Vec<&str> =
            response.headers().get_all("cache-control").iter().filter_map(|v| v.to_str().ok()).collect();
        let keep = cache_lifetime(&cache_control.join(","), config.max_cache);
        let body = response.body_mut().with_config().limit(config.max_bytes as u64 + 1).read_to_vec();
        let body = match body {
            Ok(b) if b.len() > config.max_bytes => return Err(CimdError::TooLarge(config.max_bytes)),
            Ok(b) => b,
            Err(ureq::Error::BodyExceedsLimit(_)) => return Err(CimdError::TooLarge(config.max_bytes)),
            Err(e) => return Err(failed(describe(&e))),
        };
        Ok((parse_document(&body, client_id)?, keep))
    }

    /// The TLS client configuration, built once per configuration.
    fn tls_config(&self, config: &ClientMetadataConfig) -> Result<Arc<rustls::ClientConfig>, CimdError> {
        let mut slot = self.tls.lock();
        if let Some(tls) = slot.as_ref() {
            return Ok(tls.clone());
        }
        let tls = agent::tls_config(config.ca_file.as_deref()).map_err(CimdError::Fetch)?;
        *slot = Some(tls.clone());
        Ok(tls)
    }
}

/// One of the [`MAX_FETCHES_AT_ONCE`] fetch slots, given back on drop.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    /// A slot, or `None` when all are taken.
    fn take(count: &'a AtomicUsize) -> Option<InFlight<'a>> {
        if count.fetch_add(1, Ordering::SeqCst) >= MAX_FETCHES_AT_ONCE {
            count.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(InFlight(count))
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `url`'s host and port as socket addresses, looked up once, within
/// `deadline` (a lookup thread that outlives it is left to finish alone).
fn resolve(url: &url::Url, deadline: Instant, threads: &crate::threads::Threads) -> Result<Vec<SocketAddr>, String> {
    let port = url.port_or_known_default().ok_or("no port")?;
    let addrs: Vec<SocketAddr> = match url.host() {
        Some(url::Host::Ipv4(ip)) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
        Some(url::Host::Ipv6(ip)) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
        Some(url::Host::Domain(name)) => {
            let name = name.to_string();
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            threads
                .spawn("cimd-dns", crate::threads::Kind::Call, move || {
                    let found = (name.as_str(), port).to_socket_addrs().map(|a| a.collect::<Vec<_>>());
                    let _ = tx.send(found);
                })
                .map_err(|e| format!("lookup not started: {e}"))?;
            let wait = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(Ok(found)) => found,
                Ok(Err(e)) => return Err(format!("name lookup failed: {}", e.kind())),
                Err(_) => return Err("name lookup timed out".into()),
            }
        }
        None => return Err("no host".into()),
    };
    if addrs.is_empty() {
        return Err("the name has no address".into());
    }
    Ok(addrs)
}

/// A short reason for a ureq error, without the URL (some ureq errors quote it).
fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(_) => "timed out".into(),
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => "timed out".into(),
        ureq::Error::Io(io) => match io.get_ref() {
            // rustls reports certificate problems through the I/O error.
            Some(inner) if inner.is::<rustls::Error>() => format!("TLS: {inner}"),
            _ => format!("connection error: {}", io.kind()),
        },
        ureq::Error::Rustls(tls) => format!("TLS: {tls}"),
        ureq::Error::Tls(why) => format!("TLS: {why}"),
        ureq::Error::HostNotFound => "no address".into(),
        ureq::Error::ConnectionFailed => "connection failed".into(),
        ureq::Error::Protocol(_) => "not an HTTP/1.1 answer".into(),
        ureq::Error::TooManyRedirects | ureq::Error::RedirectFailed => "redirect not followed".into(),
        _ => "request failed".into(),
    }
}

/// How long an answer with `Cache-Control: cache_control` (the header's
/// values joined with `,`; "" when absent) may be reused, at most
/// `max_cache`: `no-store` or `no-cache` → 0 (the hub does not
/// revalidate), `max-age=N` → N s (an unreadable N → 0, RFC 9111 §4.2.1),
/// none → 5 minutes.
fn cache_lifetime(cache_control: &str, max_cache: Duration) -> Duration {
    let mut lifetime = DEFAULT_CACHE;
    for directive in cache_control.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let (name, value) = directive.split_once('=').unwrap_or((directive, ""));
        match name.trim().to_ascii_lowercase().as_str() {
            "no-store" | "no-cache" => return Duration::ZERO,
            "max-age" => {
                lifetime = value.trim().trim_matches('"').parse::<u64>().map_or(Duration::ZERO, Duration::from_secs);
            }
            _ => {}
        }
    }
    lifetime.min(max_cache)
}

/// Checks a fetched document (MCP 2026-07-28 "Client ID Metadata
/// Documents"; draft-ietf-oauth-client-id-metadata-document §4): a JSON
/// object; `client_id` equal to `client_id` (the URL as the client wrote
/// it), `client_name` a string, `redirect_uris` a non-empty array of
/// absolute URLs without fragment; `token_endpoint_auth_method` absent or
/// `none` (the draft forbids shared secrets, §4.1; `private_key_jwt` is not
/// supported by the hub); no `client_secret`.
fn parse_document(body: &[u8], client_id: &str) -> Result<ClientMetadata, CimdError> {
    use serde_json::Value;
    let invalid = |why: &str| CimdError::Invalid(why.to_string());
    let doc: Value = serde_json::from_slice(body).map_err(|_| invalid("not JSON"))?;
    let doc = doc.as_object().ok_or_else(|| invalid("not a JSON object"))?;
    match doc.get("client_id") {
        Some(Value::String(id)) if id == client_id => {}
        Some(Value::String(_)) => return Err(CimdError::ClientIdMismatch),
        _ => return Err(invalid("client_id is missing or not a string")),
    }
    let client_name = match doc.get("client_name") {
        Some(Value::String(name)) => name.clone(),
        _ => return Err(invalid("client_name is missing or not a string")),
    };
    let redirect_uris = match doc.get("redirect_uris") {
        Some(Value::Array(uris)) if !uris.is_empty() => uris,
        _ => return Err(invalid("redirect_uris is missing, empty or not an array")),
    };
    let redirect_uris = redirect_uris
        .iter()
        .map(|uri| match uri {
            Value::String(uri) => match url::Url::parse(uri) {
                Ok(parsed) if parsed.fragment().is_none() => Ok(uri.clone()),
                Ok(_) => Err(invalid("a redirect URI has a fragment")),
                Err(_) => Err(invalid("a redirect URI is not an absolute URL")),
            },
            _ => Err(invalid("a redirect URI is not a string")),
        })
        .collect::<Result<Vec<String>, CimdError>>()?;
    match doc.get("token_endpoint_auth_method") {
        None => {}
        Some(Value::String(m)) if m == "none" => {}
        Some(Value::String(m)) if m == "private_key_jwt" => {
            return Err(invalid("token_endpoint_auth_method private_key_jwt is not supported"))
        }
        Some(Value::String(m)) if m.starts_with("client_secret") => {
            return Err(invalid("a shared-secret token_endpoint_auth_method is not allowed"))
        }
        Some(_) => return Err(invalid("unsupported token_endpoint_auth_method")),
    }
    if doc.contains_key("client_secret") || doc.contains_key("client_secret_expires_at") {
        return Err(invalid("a client_secret is not allowed"));
    }
    let client_uri = match doc.get("client_uri") {
        None | Some(Value::Null) => None,
        Some(Value::String(uri)) => Some(uri.clone()),
        Some(_) => return Err(invalid("client_uri is not a string")),
    };
    Ok(ClientMetadata { client_id: client_id.to_string(), client_name: Some(client_name), redirect_uris, client_uri })
}

#[cfg(test)]
mod tests;
