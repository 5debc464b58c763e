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
use std::sync::Arc;

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
pub fn is_document_url(client_id: &str, allow_http: bool) -> bool {
    let _ = (client_id, allow_http);
    todo!()
}

/// Fetches and caches documents.
pub struct Fetcher {
    config: parking_lot::RwLock<ClientMetadataConfig>,
}

impl Fetcher {
    /// A fetcher with `config`'s limits.
    pub fn new(config: &ClientMetadataConfig) -> Fetcher {
        Fetcher { config: parking_lot::RwLock::new(config.clone()) }
    }

    /// Adopts new limits (a reload).
    pub fn set_config(&self, config: &ClientMetadataConfig) {
        *self.config.write() = config.clone();
    }

    /// The document at `url`, from the cache or fetched now.
    pub fn get(&self, url: &str) -> Result<Arc<ClientMetadata>, CimdError> {
        let _ = url;
        todo!()
    }
}
