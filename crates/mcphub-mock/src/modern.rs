//! Modern-era (2026-07-28) checks and result decorations. Header validation
//! is the hub's own [`mcphub::protocol::headers::validate_standard`]
//! (`2026-07-28/basic/transports/streamable-http.mdx`, "Server Validation").

use serde_json::{Map, Value};

use mcphub::http::Request;
use mcphub::protocol::headers::{validate_params, validate_standard};

/// Methods 2026-07-28 removed (changelog, SEP-2575): a modern request for one
/// is answered 404 + -32601 (`initialize` is served only as legacy).
pub(crate) const REMOVED_METHODS: [&str; 4] = ["ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe"];

/// Validates `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name` and (for
/// `tools/call` of a tool with `x-mcp-header` properties) `Mcp-Param-*`
/// against the body. `Err` carries the reason, already prefixed "Header mismatch: "
/// (→ 400 + -32020).
pub(crate) fn validate_headers(req: &Request, msg: &Value) -> Result<(), String> {
    let method = msg.get("method").and_then(Value::as_str).unwrap_or_default();
    let empty = Map::new();
    let params = msg.get("params").and_then(Value::as_object).unwrap_or(&empty);
    validate_standard(|name| req.header(name).map(str::trim), method, params).map_err(|e| e.message)?;
    // Mcp-Param-* mirrored from `x-mcp-header` schema properties (tools/call only).
    if method == "tools/call" {
        let schema = params.get("name").and_then(Value::as_str).and_then(super::methods::tool_schema);
        if let Some(schema) = schema {
            let args = params.get("arguments").cloned().unwrap_or(Value::Null);
            validate_params(|name| req.header(name).map(str::trim), &schema, &args).map_err(|e| e.message)?;
        }
    }
    Ok(())
}

/// Adds `resultType: "complete"` to a modern result (unless present).
pub(crate) fn complete(mut result: Value) -> Value {
    if let Some(obj) = result.as_object_mut() {
        obj.entry("resultType").or_insert_with(|| Value::from("complete"));
    }
    result
}
