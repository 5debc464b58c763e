//! The guard's rules as tables, and fetches from real loopback servers
//! (`allowPrivateAddresses` on, except where the guard itself is tested).

use super::*;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::thread::JoinHandle;

#[test]
fn public_addresses_are_told_from_the_rest() {
    let table: &[(&str, bool)] = &[
        ("8.8.8.8", true),
        ("1.1.1.1", true),
        ("93.184.216.34", true),
        ("100.63.255.255", true),
        ("100.128.0.0", true),
        ("172.15.255.255", true),
        ("172.32.0.0", true),
        ("198.17.255.255", true),
        ("198.20.0.0", true),
        ("223.255.255.255", true),
        ("0.0.0.0", false),
        ("0.1.2.3", false),
        ("10.0.0.1", false),
        ("127.0.0.1", false),
        ("127.255.255.254", false),
        ("100.64.0.1", false),
        ("100.127.255.255", false),
        ("169.254.169.254", false),
        ("172.16.0.1", false),
        ("172.31.255.255", false),
        ("192.0.0.8", false),
        ("192.0.2.1", false),
        ("192.168.1.1", false),
        ("198.18.0.1", false),
        ("198.19.255.255", false),
        ("198.51.100.7", false),
        ("203.0.113.9", false),
        ("224.0.0.1", false),
        ("239.255.255.250", false),
        ("240.0.0.1", false),
        ("255.255.255.255", false),
        ("2606:4700:4700::1111", true),
        ("2001:4860:4860::8888", true),
        ("::ffff:8.8.8.8", true),
        ("64:ff9b::808:808", true),
        ("2002:808:808::1", true),
        ("::", false),
        ("::1", false),
        ("::ffff:127.0.0.1", false),
        ("::ffff:10.1.2.3", false),
        ("::ffff:169.254.169.254", false),
        ("::127.0.0.1", false),
        ("::192.168.0.1", false),
        ("::ffff:0:10.0.0.1", false),
        ("64:ff9b::a00:1", false),
        ("64:ff9b::7f00:1", false),
        ("64:ff9b:1::1", false),
        ("2002:a00:1::1", false),
        ("2002:7f00:1::1", false),
        ("fc00::1", false),
        ("fd12:3456::1", false),
        ("fe80::1", false),
        ("febf::1", false),
        ("fec0::1", false),
        ("ff02::1", false),
        ("2001:db8::1", false),
        ("2001::1", false),
        ("2001:2::1", false),
        ("100::1", false),
    ];
    for (ip, public) in table {
        let parsed: IpAddr = ip.parse().unwrap();
        assert_eq!(is_public(parsed), *public, "{ip}");
    }
}

#[test]
fn document_urls_are_https_with_a_path() {
    let table: &[(&str, bool, bool)] = &[
        // (client_id, allow_http, is a document URL)
        ("https://app.example.com/oauth/client.json", false, true),
        ("https://app.example.com/c", false, true),
        ("https://app.example.com:8443/c?v=1", false, true),
        ("https://192.0.2.1/c", false, true),
        ("https://[2001:db8::1]/c", false, true),
        ("https://app.example.com/a/b/", false, true),
        ("http://127.0.0.1:8080/c", true, true),
        ("http://127.0.0.1:8080/c", false, false),
        ("https://app.example.com", false, false),
        ("https://app.example.com/", false, false),
        ("https://user@app.example.com/c", false, false),
        ("https://user:pw@app.example.com/c", false, false),
        ("https://app.example.com/c#frag", false, false),
        ("https://app.example.com/c#", false, false),
        ("https://app.example.com/a/../c", false, false),
        ("https://app.example.com/./c", false, false),
        ("https://app.example.com/a/..", false, false),
        ("https://app.example.com/a/%2e%2E/c", false, false),
        ("https://app.example.com/a/%2e/c", false, false),
        ("https://app.example.com/a\\..\\c", false, false),
        ("https://app.example.com/a..b/c", false, true),
        ("https://app.example.com/c?x=/../", false, true),
        (" https://app.example.com/c", false, false),
        ("https://app.example.com/c\n", false, false),
        ("https://app.exa\tmple.com/c", false, false),
        ("ftp://app.example.com/c", false, false),
        ("mcphub_client_0123456789abcdef0123456789abcdef", false, false),
        ("", false, false),
        ("https:///c", false, false),
        ("file:///etc/passwd", true, false),
    ];
    for (id, allow_http, want) in table {
        assert_eq!(is_document_url(id, *allow_http), *want, "{id:?} allow_http={allow_http}");
    }
}

#[test]
fn cache_lifetime_follows_cache_control_within_the_cap() {
    let day = Duration::from_secs(86400);
    let table: &[(&str, Duration, u64)] = &[
        ("", day, 300),
        ("", Duration::from_secs(60), 60),
        ("max-age=3600", day, 3600),
        ("public, max-age=3600", day, 3600),
        ("Max-Age=\"120\"", day, 120),
        ("max-age=999999", day, 86400),
        ("max-age=0", day, 0),
        ("max-age=soon", day, 0),
        ("no-store", day, 0),
        ("max-age=600, no-store", day, 0),
        ("no-cache", day, 0),
        ("private", day, 300),
        ("max-age=600", Duration::ZERO, 0),
    ];
    for (header, cap, want) in table {
        assert_eq!(cache_lifetime(header, *cap), Duration::from_secs(*want), "{header:?} cap {cap:?}");
    }
}

const URL: &str = "https://app.example.com/client.json";

fn doc_with(extra: &str) -> String {
    format!(r#"{{"client_id":"{URL}","client_name":"App","redirect_uris":["http://127.0.0.1:3000/cb"]{extra}}}"#)
}

#[test]
fn documents_are_checked_field_by_field() {
    let ok = parse_document(doc_with(r#","client_uri":"https://app.example.com","token_endpoint_auth_method":"none","logo_uri":"x""#).as_bytes(), URL).unwrap();
    assert_eq!(
        ok,
        ClientMetadata {
            client_id: URL.into(),
            client_name: Some("App".into()),
            redirect_uris: vec!["http://127.0.0.1:3000/cb".into()],
            client_uri: Some("https://app.example.com".into()),
        }
    );
    let invalid = |body: &str| match parse_document(body.as_bytes(), URL) {
        Err(CimdError::Invalid(why)) => why,
        other => panic!("{body}: {other:?}"),
    };
    invalid("not json");
    invalid("[1]");
    invalid(r#"{"client_name":"App","redirect_uris":["https://a/cb"]}"#);
    invalid(&format!(r#"{{"client_id":"{URL}","redirect_uris":["https://a/cb"]}}"#));
    invalid(&format!(r#"{{"client_id":"{URL}","client_name":7,"redirect_uris":["https://a/cb"]}}"#));
    invalid(&format!(r#"{{"client_id":"{URL}","client_name":"App"}}"#));
    invalid(&format!(r#"{{"client_id":"{URL}","client_name":"App","redirect_uris":[]}}"#));
    invalid(&format!(r#"{{"client_id":"{URL}","client_name":"App","redirect_uris":"https://a/cb"}}"#));
    invalid(&format!(r#"{{"client_id":"{URL}","client_name":"App","redirect_uris":[7]}}"#));
    invalid(&format!(r#"{{"client_id":"{URL}","client_name":"App","redirect_uris":["/cb"]}}"#));
    invalid(&format!(r#"{{"client_id":"{URL}","client_name":"App","redirect_uris":["https://a/cb#x"]}}"#));
    assert!(invalid(&doc_with(r#","token_endpoint_auth_method":"private_key_jwt""#)).contains("not supported"));
    invalid(&doc_with(r#","token_endpoint_auth_method":"client_secret_post""#));
    invalid(&doc_with(r#","token_endpoint_auth_method":"client_secret_basic""#));
    invalid(&doc_with(r#","token_endpoint_auth_method":"tls_client_auth""#));
    invalid(&doc_with(r#","client_secret":"s3cret""#));
    invalid(&doc_with(r#","client_uri":7"#));
    let mismatch = format!(r#"{{"client_id":"{URL}?x","client_name":"App","redirect_uris":["https://a/cb"]}}"#);
    assert_eq!(parse_document(mismatch.as_bytes(), URL), Err(CimdError::ClientIdMismatch));
}

// ---- loopback servers ----

/// What a test server does with one connection, after reading the request head.
enum Answer {
    /// Writes these bytes and closes.
    Bytes(Vec<u8>),
    /// Writes these bytes, then holds the connection until the client closes it.
    Stall(Vec<u8>),
}

/// An HTTP/1.1 answer that closes the connection.
fn http(status: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut out = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(body);
    Answer::Bytes(out.into_bytes())
}

/// A loopback server answering one connection per answer, in order, then
/// ending; joining it gives the request heads it read.
struct Server {
    thread: JoinHandle<Vec<String>>,
}

impl Server {
    fn join(self) -> Vec<String> {
        self.thread.join().expect("the test server panicked")
    }
}

/// A server for `path` (over TLS with `tls` when given) and that URL; the
/// answers are made from the URL, since a document names its own URL and
/// the port is known only once the server listens.
fn serve_tls(path: &str, tls: Option<Arc<rustls::ServerConfig>>, answers: impl FnOnce(&str) -> Vec<Answer>) -> (Server, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = format!("{}://127.0.0.1:{port}{path}", if tls.is_some() { "https" } else { "http" });
    let answers = answers(&url);
    let thread = std::thread::spawn(move || {
        let mut heads = Vec::new();
        for answer in answers {
            let (tcp, _) = listener.accept().unwrap();
            // A bound on a broken test, not a wait: every client here sends at once.
            tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            match &tls {
                None => heads.push(answer_one(tcp, answer)),
                Some(config) => {
                    let conn = rustls::ServerConnection::new(config.clone()).unwrap();
                    heads.push(answer_one(rustls::StreamOwned::new(conn, tcp), answer));
                }
            }
        }
        heads
    });
    (Server { thread }, url)
}

/// [`serve_tls`] over plain HTTP.
fn serve(path: &str, answers: impl FnOnce(&str) -> Vec<Answer>) -> (Server, String) {
    serve_tls(path, None, answers)
}

fn answer_one<S: Read + Write>(mut stream: S, answer: Answer) -> String {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    match answer {
        Answer::Bytes(bytes) => {
            let _ = stream.write_all(&bytes);
            let _ = stream.flush();
        }
        Answer::Stall(bytes) => {
            let _ = stream.write_all(&bytes);
            let _ = stream.flush();
            // Until the client gives up and closes.
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 {
                    break;
                }
            }
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

fn loopback_config() -> ClientMetadataConfig {
    ClientMetadataConfig {
        max_bytes: 5120,
        timeout: Duration::from_secs(5),
        max_cache: Duration::from_secs(86400),
        allow_http: true,
        allow_private_addresses: true,
        ca_file: None,
    }
}

fn document(url: &str) -> String {
    format!(r#"{{"client_id":"{url}","client_name":"Loopback App","redirect_uris":["http://127.0.0.1:3000/callback"],"token_endpoint_auth_method":"none"}}"#)
}

/// A listener that is never accepted from (non-blocking), for URLs that must not be fetched.
fn listener() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

fn never_contacted(l: &TcpListener) -> bool {
    matches!(l.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

#[test]
fn a_good_document_is_fetched_once_then_served_from_the_cache() {
    let (server, url) = serve("/client.json", |url| vec![http("200 OK", &[("Content-Type", "application/json")], &document(url))]);
    let fetcher = Fetcher::new(&loopback_config());
    let first = fetcher.get(&url).unwrap();
    assert_eq!(first.client_id, url);
    assert_eq!(first.client_name.as_deref(), Some("Loopback App"));
    assert_eq!(first.redirect_uris, vec!["http://127.0.0.1:3000/callback".to_string()]);
    let second = fetcher.get(&url).unwrap();
    assert!(Arc::ptr_eq(&first, &second));
    let heads = server.join();
    assert_eq!(heads.len(), 1);
    let head = heads[0].to_ascii_lowercase();
    assert!(head.starts_with("get /client.json http/1.1\r\n"), "{head}");
    assert!(head.contains("\r\naccept: application/json\r\n"), "{head}");
}

#[test]
fn no_store_and_max_age_zero_are_fetched_each_time() {
    for cache_control in ["no-store", "max-age=0"] {
        let (server, url) = serve("/c", |url| {
            vec![http("200 OK", &[("Cache-Control", cache_control)], &document(url)), http("200 OK", &[("Cache-Control", cache_control)], &document(url))]
        });
        let fetcher = Fetcher::new(&loopback_config());
        fetcher.get(&url).unwrap();
        fetcher.get(&url).unwrap();
        assert_eq!(server.join().len(), 2, "{cache_control}");
    }
}

#[test]
fn a_failure_is_remembered_and_a_reload_forgets_it() {
    let (server, url) = serve("/c", |url| vec![http("500 Internal Server Error", &[], "oops"), http("200 OK", &[], &document(url))]);
    let fetcher = Fetcher::new(&loopback_config());
    let failed = fetcher.get(&url).unwrap_err();
    assert_eq!(failed, CimdError::Fetch("127.0.0.1: status 500".into()));
    // Remembered: no second connection.
    assert_eq!(fetcher.get(&url).unwrap_err(), failed);
    // A reload with other limits drops the cache.
    fetcher.set_config(&ClientMetadataConfig { max_bytes: 4096, ..loopback_config() });
    fetcher.get(&url).unwrap();
    assert_eq!(server.join().len(), 2);
}

#[test]
fn a_body_over_max_bytes_is_too_large() {
    let (server, url) = serve("/c", |url| {
        let padded = document(url).replace("\"client_name\"", &format!("\"pad\":\"{}\",\"client_name\"", "x".repeat(10_000)));
        vec![http("200 OK", &[], &padded)]
    });
    let fetcher = Fetcher::new(&ClientMetadataConfig { max_bytes: 256, ..loopback_config() });
    assert_eq!(fetcher.get(&url), Err(CimdError::TooLarge(256)));
    server.join();
}

#[test]
fn a_stalled_server_fails_within_the_timeout() {
    let timeout = Duration::from_millis(300);
    let (server, url) = serve("/c", |_| {
        vec![Answer::Stall(b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\nConnection: close\r\n\r\n{\"client_id\":".to_vec())]
    });
    let fetcher = Fetcher::new(&ClientMetadataConfig { timeout, ..loopback_config() });
    let started = Instant::now();
    let result = fetcher.get(&url);
    let took = started.elapsed();
    assert_eq!(result, Err(CimdError::Fetch("127.0.0.1: timed out".into())));
    assert!(took >= timeout - Duration::from_millis(20), "{took:?}");
    assert!(took < timeout + Duration::from_millis(1500), "{took:?}");
    println!("stalled server: failed after {took:?} (timeout {timeout:?})");
    server.join();
}

#[test]
fn a_stalled_server_before_the_headers_fails_within_the_timeout() {
    let timeout = Duration::from_millis(300);
    let (server, url) = serve("/c", |_| vec![Answer::Stall(b"HTTP/1.1 200 OK\r\n".to_vec())]);
    let fetcher = Fetcher::new(&ClientMetadataConfig { timeout, ..loopback_config() });
    let started = Instant::now();
    assert_eq!(fetcher.get(&url), Err(CimdError::Fetch("127.0.0.1: timed out".into())));
    assert!(started.elapsed() < timeout + Duration::from_millis(1500), "{:?}", started.elapsed());
    server.join();
}

#[test]
fn a_redirect_is_not_followed() {
    let (target, target_port) = listener();
    for location in [format!("http://127.0.0.1:{target_port}/c"), "http://169.254.169.254/latest/meta-data/".to_string()] {
        let (server, url) = serve("/c", |_| vec![http("302 Found", &[("Location", &location)], "")]);
        let fetcher = Fetcher::new(&loopback_config());
        assert_eq!(fetcher.get(&url), Err(CimdError::Fetch("127.0.0.1: redirect not followed".into())));
        server.join();
    }
    assert!(never_contacted(&target));
}

#[test]
fn a_document_for_another_url_is_a_client_id_mismatch() {
    let (server, url) = serve("/c", |url| vec![http("200 OK", &[], &document(&format!("{url}/other")))]);
    assert_eq!(Fetcher::new(&loopback_config()).get(&url), Err(CimdError::ClientIdMismatch));
    server.join();
}

#[test]
fn a_body_that_is_not_json_is_invalid() {
    let (server, url) = serve("/c", |_| vec![http("200 OK", &[("Content-Type", "text/html")], "<html>hello</html>")]);
    assert_eq!(Fetcher::new(&loopback_config()).get(&url), Err(CimdError::Invalid("not JSON".into())));
    server.join();
}

#[test]
fn a_shared_secret_auth_method_is_invalid() {
    let (server, url) = serve("/c", |url| {
        vec![http("200 OK", &[], &document(url).replace(r#""token_endpoint_auth_method":"none""#, r#""token_endpoint_auth_method":"client_secret_post""#))]
    });
    assert!(matches!(Fetcher::new(&loopback_config()).get(&url), Err(CimdError::Invalid(_))));
    server.join();
}

#[test]
fn the_guard_refuses_loopback_without_a_request() {
    let (l, port) = listener();
    let guarded = ClientMetadataConfig { allow_private_addresses: false, ..loopback_config() };
    let fetcher = Fetcher::new(&guarded);
    assert_eq!(fetcher.get(&format!("http://127.0.0.1:{port}/x")), Err(CimdError::PrivateAddress));
    assert_eq!(fetcher.get(&format!("http://localhost:{port}/x")), Err(CimdError::PrivateAddress));
    assert_eq!(fetcher.get(&format!("http://[::ffff:127.0.0.1]:{port}/x")), Err(CimdError::PrivateAddress));
    assert!(never_contacted(&l));
    // Not a document URL at all: refused before any lookup.
    assert!(matches!(fetcher.get("https://example.com/"), Err(CimdError::BadUrl(_))));
    assert!(matches!(Fetcher::new(&ClientMetadataConfig { allow_http: false, ..guarded }).get(&format!("http://127.0.0.1:{port}/x")), Err(CimdError::BadUrl(_))));
}

#[test]
fn fetches_beyond_the_limit_are_refused_at_once_and_not_remembered() {
    let (server, url) = serve("/c", |url| vec![http("200 OK", &[], &document(url))]);
    let fetcher = Fetcher::new(&loopback_config());
    fetcher.in_flight.store(MAX_FETCHES_AT_ONCE, Ordering::SeqCst);
    assert_eq!(fetcher.get(&url), Err(CimdError::Fetch("127.0.0.1: too many metadata fetches at once".into())));
    fetcher.in_flight.store(MAX_FETCHES_AT_ONCE - 1, Ordering::SeqCst);
    fetcher.get(&url).unwrap();
    assert_eq!(fetcher.in_flight.load(Ordering::SeqCst), MAX_FETCHES_AT_ONCE - 1);
    assert_eq!(server.join().len(), 1);
}

#[test]
fn fetch_time_of_a_good_document_from_loopback() {
    const RUNS: usize = 20;
    let (server, url) = serve("/c", |url| (0..RUNS).map(|_| http("200 OK", &[("Cache-Control", "no-store")], &document(url))).collect());
    let fetcher = Fetcher::new(&loopback_config());
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            fetcher.get(&url).unwrap();
            started.elapsed()
        })
        .collect();
    times.sort();
    println!("cimd fetch over http from loopback: median {:?} of {RUNS} (min {:?}, max {:?})", times[RUNS / 2], times[0], times[RUNS - 1]);
    assert_eq!(server.join().len(), RUNS);
}

// ---- https with a test CA ----

/// A temporary directory holding a CA (`ca.pem`) and a certificate for
/// 127.0.0.1 signed by it (`cert.pem`, `key.pem`), made with the `openssl`
/// command; removed on drop.
struct TestCa {
    dir: PathBuf,
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl").args(args).current_dir(dir).output().expect("the https test needs the openssl command");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn test_ca(name: &str) -> TestCa {
    let dir = std::env::temp_dir().join(format!("mcphub-cimd-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=mcphub test CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"]);
    openssl(&dir, &ca);
    let mut req = vec!["req"];
    req.extend(ec);
    req.extend(["-keyout", "key.pem", "-out", "cert.csr", "-subj", "/CN=127.0.0.1"]);
    openssl(&dir, &req);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n").unwrap();
    openssl(&dir, &["x509", "-req", "-in", "cert.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "cert.pem", "-days", "2", "-extfile", "ext.cnf"]);
    TestCa { dir }
}

fn server_tls(ca: &TestCa) -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca.dir.join("cert.pem")).unwrap().map(|c| c.unwrap()).collect();
    let key = PrivateKeyDer::from_pem_file(ca.dir.join("key.pem")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    Arc::new(config)
}

#[test]
fn https_with_the_ca_file_fetches_and_without_it_fails() {
    const RUNS: usize = 20;
    let ca = test_ca("https");
    let tls = server_tls(&ca);
    // Without the CA: the handshake fails before any request is sent.
    let (untrusted, url) = serve_tls("/c", Some(tls.clone()), |_| vec![http("200 OK", &[], "{}")]);
    let https = ClientMetadataConfig { allow_http: false, ..loopback_config() };
    match Fetcher::new(&https).get(&url) {
        Err(CimdError::Fetch(why)) => assert!(why.starts_with("127.0.0.1: TLS"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(untrusted.join(), vec![String::new()], "no request went over an untrusted connection");

    let (server, url) = serve_tls("/client.json", Some(tls), |url| {
        (0..RUNS).map(|_| http("200 OK", &[("Cache-Control", "no-store")], &document(url))).collect()
    });
    let fetcher = Fetcher::new(&ClientMetadataConfig { ca_file: Some(ca.dir.join("ca.pem")), ..https });
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            let got = fetcher.get(&url).unwrap();
            assert_eq!(got.client_id, url);
            started.elapsed()
        })
        .collect();
    times.sort();
    println!("cimd fetch over https from loopback: median {:?} of {RUNS} (min {:?}, max {:?})", times[RUNS / 2], times[0], times[RUNS - 1]);
    let heads = server.join();
    assert_eq!(heads.len(), RUNS);
    assert!(heads[0].starts_with("GET /client.json HTTP/1.1\r\n"), "{}", heads[0]);
}

#[test]
fn an_unreadable_ca_file_fails_the_fetch_and_names_the_file() {
    let (l, port) = listener();
    let missing = std::env::temp_dir().join("mcphub-cimd-no-such-ca.pem");
    let config = ClientMetadataConfig { ca_file: Some(missing), ..loopback_config() };
    match Fetcher::new(&config).get(&format!("https://127.0.0.1:{port}/c")) {
        Err(CimdError::Fetch(why)) => assert!(why.contains("mcphub-cimd-no-such-ca.pem"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert!(never_contacted(&l));
}
