//! The HTTP client of a metadata fetch: a ureq agent that connects only to
//! the addresses the SSRF guard already checked (a [`Resolver`] that returns
//! them: no second lookup, so DNS cannot rebind between check and connect),
//! through no proxy, following no redirect, and speaking TLS with the public
//! (webpki) roots plus `clientMetadata.caFile`. ureq's own rustls connector
//! takes either the public roots or a given list, not both, hence the small
//! TLS connector here (the shape of ureq's `RustlsConnector`).

use std::fmt;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConnection, StreamOwned};
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, TcpConnector, Transport, TransportAdapter,
};

/// Most addresses handed to ureq (its resolver's capacity).
const MAX_ADDRS: usize = 16;

/// An agent for one fetch: to `addrs` only, `tls` for https, the whole call
/// within `timeout`, the TLS handshake within `deadline`.
pub(super) fn build(addrs: Vec<SocketAddr>, tls: Option<Arc<rustls::ClientConfig>>, timeout: Duration, deadline: Instant) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .max_redirects(0)
        .http_status_as_error(false)
        .proxy(None)
        .user_agent(concat!("mcphub/", env!("CARGO_PKG_VERSION")))
        .build();
    let connector = ().chain(TcpConnector::default()).chain(TlsConnector { tls, deadline });
    ureq::Agent::with_parts(config, connector, CheckedAddrs(addrs))
}

/// The TLS client configuration: the webpki roots plus the certificates of
/// the PEM file `ca_file`. Errors: the file unreadable or without a
/// certificate (the message names the file, not its content).
pub(super) fn tls_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(path) = ca_file {
        let shown = path.display();
        let pem = std::fs::read(path).map_err(|e| format!("clientMetadata.caFile {shown}: {e}"))?;
        let mut added = 0;
        for item in ureq::tls::parse_pem(&pem) {
            match item {
                Ok(ureq::tls::PemItem::Certificate(cert)) => {
                    roots
                        .add(CertificateDer::from(cert.der().to_vec()))
                        .map_err(|e| format!("clientMetadata.caFile {shown}: {e}"))?;
                    added += 1;
                }
                Ok(_) => {}
                Err(e) => return Err(format!("clientMetadata.caFile {shown}: {e}")),
            }
        }
        if added == 0 {
            return Err(format!("clientMetadata.caFile {shown}: no certificate"));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The resolver: the addresses the guard checked, whatever the URI says.
#[derive(Debug)]
struct CheckedAddrs(Vec<SocketAddr>);

impl Resolver for CheckedAddrs {
    fn resolve(&self, _uri: &ureq::http::Uri, _config: &ureq::config::Config, _timeout: NextTimeout) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let mut out = self.empty();
        for addr in self.0.iter().take(MAX_ADDRS) {
            out.push(*addr);
        }
        if out.is_empty() {
            return Err(ureq::Error::HostNotFound);
        }
        Ok(out)
    }
}

/// Wraps the TCP transport in TLS for https.
struct TlsConnector {
    tls: Option<Arc<rustls::ClientConfig>>,
    deadline: Instant,
}

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnector").finish()
    }
}

impl<In: Transport> Connector<In> for TlsConnector {
    type Out = Either<In, TlsTransport>;

    fn connect(&self, details: &ConnectionDetails, chained: Option<In>) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Err(ureq::Error::ConnectionFailed);
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let Some(tls) = self.tls.clone() else {
            return Err(ureq::Error::Tls("no TLS configuration"));
        };
        let host = details.uri.host().unwrap_or("");
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let name = ServerName::try_from(host).map_err(|_| ureq::Error::Tls("not a TLS server name"))?.to_owned();
        let mut conn = ClientConnection::new(tls, name)?;
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        sock.set_timeout(NextTimeout { after: remaining.into(), ..details.timeout });
        conn.complete_io(&mut sock)?;
        let buffers = LazyBuffers::new(details.config.input_buffer_size(), details.config.output_buffer_size());
        Ok(Some(Either::B(TlsTransport { buffers, stream: StreamOwned { conn, sock } })))
    }
}

/// A TLS connection as a ureq transport.
struct TlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsTransport").finish()
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}
