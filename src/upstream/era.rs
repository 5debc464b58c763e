//! Detecting an upstream's era (2026-07-28 `streamable-http.mdx`, Backward
//! Compatibility): send a modern `server/discover`; a success or a recognised
//! modern error means modern; anything else (a 4xx without one, an empty or
//! foreign body, `-32601`) means legacy, and the hub falls back to `initialize`.

use super::transport::HttpReply;
use super::CallContext;
use crate::protocol::{codes, headers, jsonrpc, Era, META_CLIENT_CAPABILITIES, META_CLIENT_INFO, META_PROTOCOL_VERSION, MODERN_VERSION};
use serde_json::{json, Value};

/// The probe to send.
pub struct Probe {
    /// JSON-RPC body.
    pub body: Value,
    /// Standard headers.
    pub headers: Vec<(String, String)>,
}

/// A `server/discover` request with the modern `_meta` and headers.
pub fn probe_request(id: Value, ctx: &CallContext) -> Probe {
    let params = json!({"_meta": {
        META_PROTOCOL_VERSION: MODERN_VERSION,
        META_CLIENT_INFO: ctx.client_info.clone().unwrap_or_else(|| json!({"name": "mcphub", "version": env!("CARGO_PKG_VERSION")})),
        META_CLIENT_CAPABILITIES: json!({}),
    }});
    Probe {
        body: jsonrpc::request(&id, "server/discover", params),
        headers: vec![
            (headers::PROTOCOL_VERSION.to_string(), MODERN_VERSION.to_string()),
            (headers::METHOD.to_string(), "server/discover".to_string()),
        ],
    }
}

/// The era a probe reply reveals.
///
/// Modern: 2xx with a result whose `supportedVersions` names 2026-07-28 (or has
/// none), or a recognised modern error (`-32020`/`-32021`, or `-32022` whose
/// `data.supported` names 2026-07-28). Legacy: everything else.
pub fn classify_probe(reply: &HttpReply) -> Era {
    let names_modern = |list: Option<&Value>| match list.and_then(Value::as_array) {
        Some(versions) => versions.iter().any(|v| v.as_str() == Some(MODERN_VERSION)),
        None => true,
    };
    let Some(msg) = &reply.message else { return Era::Legacy };
    if (200..300).contains(&reply.status) {
        if let Some(result) = msg.get("result") {
            return if names_modern(result.get("supportedVersions")) { Era::Modern } else { Era::Legacy };
        }
    }
    match reply.error_code() {
        Some(codes::UNSUPPORTED_PROTOCOL_VERSION) => {
            if names_modern(msg.pointer("/error/data/supported")) && msg.pointer("/error/data/supported").is_some() {
                Era::Modern
            } else {
                Era::Legacy
            }
        }
        Some(c) if codes::is_recognised_modern(c) => Era::Modern,
        _ => Era::Legacy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, message: Option<Value>) -> HttpReply {
        HttpReply { status, session_id: None, message, excerpt: String::new() }
    }

    #[test]
    fn a_discover_result_means_modern() {
        let r = reply(200, Some(json!({"jsonrpc":"2.0","id":1,"result":{"supportedVersions":["2026-07-28"],"capabilities":{}}})));
        assert_eq!(classify_probe(&r), Era::Modern);
        let old = reply(200, Some(json!({"jsonrpc":"2.0","id":1,"result":{"supportedVersions":["2025-03-26"]}})));
        assert_eq!(classify_probe(&old), Era::Legacy);
    }

    #[test]
    fn recognised_modern_errors_mean_modern() {
        let mismatch = reply(400, Some(json!({"jsonrpc":"2.0","id":1,"error":{"code":-32020,"message":"Header mismatch"}})));
        assert_eq!(classify_probe(&mismatch), Era::Modern);
        let unsupported = reply(
            400,
            Some(json!({"jsonrpc":"2.0","id":1,"error":{"code":-32022,"message":"x","data":{"supported":["2026-07-28"]}}})),
        );
        assert_eq!(classify_probe(&unsupported), Era::Modern);
    }

    #[test]
    fn anything_else_means_legacy() {
        let no_session = reply(400, Some(json!({"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Bad Request: No valid session ID provided"}})));
        assert_eq!(classify_probe(&no_session), Era::Legacy);
        assert_eq!(classify_probe(&reply(400, None)), Era::Legacy);
        assert_eq!(classify_probe(&reply(404, None)), Era::Legacy);
        let unknown = reply(200, Some(json!({"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"Method not found"}})));
        assert_eq!(classify_probe(&unknown), Era::Legacy);
    }
}
