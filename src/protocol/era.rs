//! Protocol versions and eras (docs/decisions.md D1; 2026-07-28 `basic/versioning.mdx`).

use super::META_PROTOCOL_VERSION;
use serde_json::{Map, Value};

/// Legacy (initialize-based) protocol versions the hub speaks, oldest first.
pub const LEGACY_VERSIONS: &[&str] = &["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];
/// The newest legacy version, answered when a client asks for one the hub does not know.
pub const LATEST_LEGACY: &str = "2025-11-25";
/// The modern (per-request metadata) protocol version.
pub const MODERN_VERSION: &str = "2026-07-28";
/// Versions a legacy client may omit the header for (2025-06-18 transports:
/// a missing `MCP-Protocol-Version` is assumed to be 2025-03-26).
pub const ASSUMED_WITHOUT_HEADER: &str = "2025-03-26";

/// The era of a peer or a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Era {
    /// `initialize` + sessions (2024-11-05 … 2025-11-25).
    Legacy,
    /// Stateless, per-request `_meta` (2026-07-28).
    Modern,
}

impl Era {
    /// `"legacy"` or `"modern"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Era::Legacy => "legacy",
            Era::Modern => "modern",
        }
    }
}

/// Whether `v` is a legacy version the hub supports.
pub fn is_legacy_version(v: &str) -> bool {
    LEGACY_VERSIONS.contains(&v)
}

/// Every version the hub accepts, newest first (the `supported` list of `-32022`).
pub fn supported_versions() -> Vec<&'static str> {
    let mut all = vec![MODERN_VERSION];
    all.extend(LEGACY_VERSIONS.iter().rev());
    all
}

/// The version to answer a legacy `initialize` with: the requested one when
/// supported, else the newest legacy version (2025-11-25 lifecycle, Version Negotiation).
pub fn negotiate_legacy(requested: Option<&str>) -> &'static str {
    requested
        .and_then(|r| LEGACY_VERSIONS.iter().find(|v| **v == r).copied())
        .unwrap_or(LATEST_LEGACY)
}

/// The modern protocol version a request's `params._meta` declares, if any.
pub fn meta_version(params: &Map<String, Value>) -> Option<&str> {
    params.get("_meta")?.get(META_PROTOCOL_VERSION)?.as_str()
}

/// Checks the per-request `_meta` of a 2026-07-28 request (2026-07-28
/// `basic/index.mdx`, SEP-2575): `params._meta` is an object with a string
/// `io.modelcontextprotocol/protocolVersion` and an object
/// `io.modelcontextprotocol/clientCapabilities` (`clientInfo` is only a
/// SHOULD). `Err` is the reason, for a `-32602` Invalid params error sent
/// with HTTP 400.
pub fn check_request_meta(params: &Map<String, Value>) -> Result<(), String> {
    let Some(meta) = params.get("_meta").and_then(Value::as_object) else {
        return Err("Invalid params: params._meta is required (2026-07-28 per-request metadata)".into());
    };
    if !meta.get(crate::protocol::META_PROTOCOL_VERSION).is_some_and(Value::is_string) {
        return Err(format!("Invalid params: params._meta[\"{}\"] must be a string", crate::protocol::META_PROTOCOL_VERSION));
    }
    if !meta.get(crate::protocol::META_CLIENT_CAPABILITIES).is_some_and(Value::is_object) {
        return Err(format!("Invalid params: params._meta[\"{}\"] must be an object", crate::protocol::META_CLIENT_CAPABILITIES));
    }
    Ok(())
}

/// Decides the era of one downstream request (2026-07-28 versioning: "A
/// dual-era server selects its behavior from how the client opens").
///
/// Modern when the body's `_meta` declares a protocol version, when the
/// `MCP-Protocol-Version` header names a non-legacy version, or for
/// `server/discover`; legacy otherwise (including `initialize`).
pub fn classify(method: &str, params: &Map<String, Value>, version_header: Option<&str>) -> Era {
    if method == "initialize" {
        return Era::Legacy;
    }
    if meta_version(params).is_some() || method == "server/discover" {
        return Era::Modern;
    }
    match version_header {
        Some(v) if !is_legacy_version(v) => Era::Modern,
        _ => Era::Legacy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn initialize_negotiates_the_requested_or_the_newest_legacy_version() {
        assert_eq!(negotiate_legacy(Some("2025-03-26")), "2025-03-26");
        assert_eq!(negotiate_legacy(Some("2024-11-05")), "2024-11-05");
        assert_eq!(negotiate_legacy(Some("1999-01-01")), LATEST_LEGACY);
        assert_eq!(negotiate_legacy(Some(MODERN_VERSION)), LATEST_LEGACY);
        assert_eq!(negotiate_legacy(None), LATEST_LEGACY);
    }

    #[test]
    fn modern_meta_needs_a_version_string_and_capabilities_object() {
        let ok = params(json!({"_meta": {META_PROTOCOL_VERSION: "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}}));
        assert_eq!(check_request_meta(&ok), Ok(()));
        assert!(check_request_meta(&Map::new()).unwrap_err().contains("_meta is required"));
        let no_version = params(json!({"_meta": {"io.modelcontextprotocol/clientCapabilities": {}}}));
        assert!(check_request_meta(&no_version).unwrap_err().contains("protocolVersion"));
        let no_caps = params(json!({"_meta": {META_PROTOCOL_VERSION: "2026-07-28"}}));
        assert!(check_request_meta(&no_caps).unwrap_err().contains("clientCapabilities"));
        let caps_not_object = params(json!({"_meta": {META_PROTOCOL_VERSION: "2026-07-28", "io.modelcontextprotocol/clientCapabilities": []}}));
        assert!(check_request_meta(&caps_not_object).is_err());
    }

    #[test]
    fn a_request_is_modern_when_its_meta_or_header_says_so() {
        let modern = params(json!({"_meta": {META_PROTOCOL_VERSION: "2026-07-28"}}));
        assert_eq!(classify("tools/list", &modern, None), Era::Modern);
        assert_eq!(classify("server/discover", &Map::new(), None), Era::Modern);
        assert_eq!(classify("tools/list", &Map::new(), Some("2026-07-28")), Era::Modern);
        assert_eq!(classify("tools/list", &Map::new(), Some("2099-01-01")), Era::Modern);
        assert_eq!(classify("tools/list", &Map::new(), Some("2025-06-18")), Era::Legacy);
        assert_eq!(classify("tools/list", &Map::new(), None), Era::Legacy);
        assert_eq!(classify("initialize", &modern, Some("2026-07-28")), Era::Legacy);
    }

    #[test]
    fn supported_versions_lead_with_the_modern_one() {
        let v = supported_versions();
        assert_eq!(v[0], MODERN_VERSION);
        assert_eq!(v.len(), LEGACY_VERSIONS.len() + 1);
    }
}
