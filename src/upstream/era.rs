//! Detecting an upstream's era (2026-07-28 `streamable-http.mdx`, Backward
//! Compatibility): send a modern `server/discover`; a success or a recognised
//! modern error means modern; a 400/404/405 without one, or a JSON-RPC error
//! that is not modern (`-32601` from a stateless legacy server), means legacy,
//! and the hub falls back to `initialize`. Anything else (5xx, 429, 401/403,
//! a 2xx that is not JSON-RPC) decides nothing: the probe is tried again later.

use super::transport::HttpReply;
use super::{hub_client_info, CallContext};
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
        META_CLIENT_INFO: ctx.client_info.clone().unwrap_or_else(hub_client_info),
        META_CLIENT_CAPABILITIES: json!({}),
    }});
    let headers = headers::standard(MODERN_VERSION, "server/discover", params.as_object().unwrap_or(&Default::default()));
    Probe { body: jsonrpc::request(&id, "server/discover", params), headers }
}

/// The era a probe reply reveals, or `None` when it reveals nothing.
///
/// Modern: 2xx with a result whose `supportedVersions` names 2026-07-28 (or has
/// none), or a recognised modern error (`-32020`/`-32021`, or `-32022` whose
/// `data.supported` names 2026-07-28). Legacy: a 2xx result without
/// 2026-07-28, a non-modern JSON-RPC error, or 400/404/405 without a modern
/// error. `None`: any other status or body (an outage or an auth problem must
/// not pin a server to the wrong era).
pub fn classify_probe(reply: &HttpReply) -> Option<Era> {
    let era = classify_message(reply);
    match (era, reply.status) {
        (Some(e), _) => Some(e),
        (None, 400 | 404 | 405) => Some(Era::Legacy),
        (None, _) => None,
    }
}

fn classify_message(reply: &HttpReply) -> Option<Era> {
    let names_modern = |list: Option<&Value>| match list.and_then(Value::as_array) {
        Some(versions) => versions.iter().any(|v| v.as_str() == Some(MODERN_VERSION)),
        None => true,
    };
    let msg = reply.message.as_ref()?;
    if (200..300).contains(&reply.status) {
        if let Some(result) = msg.get("result") {
            return Some(if names_modern(result.get("supportedVersions")) { Era::Modern } else { Era::Legacy });
        }
    }
    match reply.error_code() {
        Some(codes::UNSUPPORTED_PROTOCOL_VERSION) => {
            let supported = crate::protocol::jsonrpc::at(msg, &["error", "data", "supported"]);
            Some(if supported.is_some() && names_modern(supported) { Era::Modern } else { Era::Legacy })
        }
        Some(c) if codes::is_recognised_modern(c) => Some(Era::Modern),
        Some(_) if (200..300).contains(&reply.status) => Some(Era::Legacy),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, message: Option<Value>) -> HttpReply {
        HttpReply { status, session_id: None, message, excerpt: String::new(), retry_after: None }
    }

    #[test]
    fn a_discover_result_means_modern() {
        let r = reply(200, Some(json!({"jsonrpc":"2.0","id":1,"result":{"supportedVersions":["2026-07-28"],"capabilities":{}}})));
        assert_eq!(classify_probe(&r), Some(Era::Modern));
        let old = reply(200, Some(json!({"jsonrpc":"2.0","id":1,"result":{"supportedVersions":["2025-03-26"]}})));
        assert_eq!(classify_probe(&old), Some(Era::Legacy));
    }

    #[test]
    fn recognised_modern_errors_mean_modern() {
        let mismatch = reply(400, Some(json!({"jsonrpc":"2.0","id":1,"error":{"code":-32020,"message":"Header mismatch"}})));
        assert_eq!(classify_probe(&mismatch), Some(Era::Modern));
        let unsupported = reply(
            400,
            Some(json!({"jsonrpc":"2.0","id":1,"error":{"code":-32022,"message":"x","data":{"supported":["2026-07-28"]}}})),
        );
        assert_eq!(classify_probe(&unsupported), Some(Era::Modern));
    }

    #[test]
    fn a_4xx_without_a_modern_error_means_legacy() {
        let no_session = reply(400, Some(json!({"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Bad Request: No valid session ID provided"}})));
        assert_eq!(classify_probe(&no_session), Some(Era::Legacy));
        assert_eq!(classify_probe(&reply(400, None)), Some(Era::Legacy));
        assert_eq!(classify_probe(&reply(404, None)), Some(Era::Legacy));
        assert_eq!(classify_probe(&reply(405, None)), Some(Era::Legacy));
        let unknown = reply(200, Some(json!({"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"Method not found"}})));
        assert_eq!(classify_probe(&unknown), Some(Era::Legacy));
        let only_legacy = reply(400, Some(json!({"jsonrpc":"2.0","id":1,"error":{"code":-32022,"message":"x","data":{"supported":["2025-06-18"]}}})));
        assert_eq!(classify_probe(&only_legacy), Some(Era::Legacy));
    }

    #[test]
    fn outages_and_auth_failures_decide_nothing() {
        for status in [500, 502, 503, 429, 401, 403] {
            assert_eq!(classify_probe(&reply(status, None)), None, "{status}");
            let err = reply(status, Some(json!({"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"busy"}})));
            assert_eq!(classify_probe(&err), None, "{status} with a JSON-RPC error");
        }
        assert_eq!(classify_probe(&reply(200, None)), None, "a 200 that is not JSON-RPC (an HTML page)");
    }
}
