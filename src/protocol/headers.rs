//! Request-metadata headers of the 2026-07-28 Streamable HTTP transport
//! (`basic/transports/streamable-http.mdx`, "Request Metadata"): what a client
//! must send, how values are encoded, and how a server validates them.

use super::codes::HEADER_MISMATCH;
use super::era::meta_version;
use super::jsonrpc::ErrorObject;
use base64::Engine;
use serde_json::{Map, Value};

/// Header carrying the protocol version.
pub const PROTOCOL_VERSION: &str = "MCP-Protocol-Version";
/// Header mirroring the body's `method`.
pub const METHOD: &str = "Mcp-Method";
/// Header mirroring `params.name` / `params.uri`.
pub const NAME: &str = "Mcp-Name";
/// Prefix of headers mirrored from `x-mcp-header` tool parameters.
pub const PARAM_PREFIX: &str = "Mcp-Param-";

const SENTINEL_START: &str = "=?base64?";
const SENTINEL_END: &str = "?=";

/// The body field `Mcp-Name` mirrors for a method: `name` for `tools/call` and
/// `prompts/get`, `uri` for `resources/read`, none otherwise.
pub fn name_field(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    }
}

/// Encodes a value for a header: as is when it is plain visible ASCII without
/// leading/trailing whitespace and not sentinel-shaped, else `=?base64?…?=`
/// (Value Encoding).
pub fn encode_value(value: &str) -> String {
    let visible_ascii = value.bytes().all(|b| (0x20..=0x7e).contains(&b));
    let padded = value.starts_with(' ') || value.ends_with(' ');
    let sentinel_shaped = value.starts_with(SENTINEL_START) && value.ends_with(SENTINEL_END);
    if visible_ascii && !padded && !sentinel_shaped {
        value.to_string()
    } else {
        format!("{SENTINEL_START}{}{SENTINEL_END}", base64::engine::general_purpose::STANDARD.encode(value))
    }
}

/// Decodes a header value: the sentinel form is Base64 of UTF-8; any other
/// value must be visible ASCII, space or tab. `None` when malformed.
pub fn decode_value(raw: &str) -> Option<String> {
    if let Some(inner) = raw.strip_prefix(SENTINEL_START).and_then(|r| r.strip_suffix(SENTINEL_END)) {
        let bytes = base64::engine::general_purpose::STANDARD.decode(inner).ok()?;
        return String::from_utf8(bytes).ok();
    }
    raw.bytes().all(|b| b == b'\t' || (0x20..=0x7e).contains(&b)).then(|| raw.to_string())
}

/// What a modern request's headers declared, after validation.
#[derive(Debug, Clone, PartialEq)]
pub struct ModernHeaders {
    /// The protocol version (header and `_meta` agree).
    pub version: String,
}

fn mismatch(msg: String) -> ErrorObject {
    ErrorObject::new(HEADER_MISMATCH, format!("Header mismatch: {msg}"))
}

/// Validates the standard headers of a modern request against its body
/// (Server Validation): `MCP-Protocol-Version` present and equal to
/// `_meta["io.modelcontextprotocol/protocolVersion"]`, `Mcp-Method` equal to
/// `method`, `Mcp-Name` (decoded) equal to `params.name`/`params.uri` where
/// required. `header` looks a header up case-insensitively.
///
/// Errors: `-32020` HeaderMismatch naming the header (HTTP 400). Whether the
/// version is supported is the caller's decision (`-32022`).
pub fn validate_standard<'a>(
    header: impl Fn(&str) -> Option<&'a str>,
    method: &str,
    params: &Map<String, Value>,
) -> Result<ModernHeaders, ErrorObject> {
    let version = header(PROTOCOL_VERSION).ok_or_else(|| mismatch(format!("{PROTOCOL_VERSION} header is missing")))?;
    match meta_version(params) {
        Some(body) if body == version => {}
        Some(body) => {
            return Err(mismatch(format!(
                "{PROTOCOL_VERSION} header value '{version}' does not match body value '{body}'"
            )))
        }
        None => {
            return Err(mismatch(format!(
                "the body's params._meta has no \"io.modelcontextprotocol/protocolVersion\" (header says '{version}')"
            )))
        }
    }
    match header(METHOD) {
        None => return Err(mismatch(format!("{METHOD} header is missing"))),
        Some(h) if h != method => {
            return Err(mismatch(format!("{METHOD} header value '{h}' does not match body value '{method}'")))
        }
        Some(_) => {}
    }
    if let Some(field) = name_field(method) {
        let body = params.get(field).and_then(Value::as_str);
        match (header(NAME), body) {
            (None, _) => return Err(mismatch(format!("{NAME} header is missing"))),
            (Some(raw), body) => {
                let decoded = decode_value(raw).ok_or_else(|| mismatch(format!("{NAME} header value is malformed")))?;
                if Some(decoded.as_str()) != body {
                    return Err(mismatch(format!(
                        "{NAME} header value '{}' does not match body value '{}'",
                        decoded,
                        body.unwrap_or("")
                    )));
                }
            }
        }
    }
    Ok(ModernHeaders { version: version.to_string() })
}

/// The `Mcp-Param-{Name}` headers a tool's `inputSchema` asks for with
/// `x-mcp-header`, given call arguments (Custom Headers from Tool Parameters):
/// only properties reachable through `properties` chains, primitive values
/// (string, integer, boolean), absent or null values omitted. Values encoded
/// with [`encode_value`].
pub fn param_headers(input_schema: &Value, arguments: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    collect_params(input_schema, Some(arguments), &mut out);
    out
}

fn collect_params(schema: &Value, value: Option<&Value>, out: &mut Vec<(String, String)>) {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else { return };
    for (key, sub) in props {
        let v = value.and_then(|v| v.get(key));
        if let Some(name) = sub.get("x-mcp-header").and_then(Value::as_str) {
            let text = match v {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Bool(b)) => Some(b.to_string()),
                Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Some(n.to_string()),
                Some(Value::Number(n)) => n.as_f64().filter(|f| f.fract() == 0.0).map(|f| (f as i64).to_string()),
                _ => None,
            };
            if let Some(text) = text {
                out.push((format!("{PARAM_PREFIX}{name}"), encode_value(&text)));
            }
        }
        collect_params(sub, v, out);
    }
}

/// Validates `Mcp-Param-*` headers of a `tools/call` against the tool's schema
/// and the arguments: every expected header present and equal after decoding
/// (integers compared numerically). Unrecognised `Mcp-Param-*` headers are ignored.
///
/// Errors: `-32020` naming the header.
pub fn validate_params<'a>(
    header: impl Fn(&str) -> Option<&'a str>,
    input_schema: &Value,
    arguments: &Value,
) -> Result<(), ErrorObject> {
    for (name, expected) in param_headers(input_schema, arguments) {
        let Some(raw) = header(&name) else {
            return Err(mismatch(format!("{name} header is missing")));
        };
        let got = decode_value(raw).ok_or_else(|| mismatch(format!("{name} header value is malformed")))?;
        let want = decode_value(&expected).unwrap_or_default();
        let numeric_equal = match (got.trim().parse::<f64>(), want.parse::<f64>()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        if got != want && !numeric_equal {
            return Err(mismatch(format!("{name} header value '{got}' does not match body value '{want}'")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn headers<'a>(list: &'a [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<&'static str> + 'a {
        move |n: &str| list.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).map(|(_, v)| *v)
    }

    fn call_params(name: &str) -> Map<String, Value> {
        json!({"name": name, "arguments": {}, "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}})
            .as_object()
            .cloned()
            .unwrap()
    }

    #[test]
    fn values_outside_plain_ascii_use_the_base64_sentinel() {
        assert_eq!(encode_value("us-west1"), "us-west1");
        assert_eq!(encode_value("Hello, 世界"), "=?base64?SGVsbG8sIOS4lueVjA==?=");
        assert_eq!(encode_value(" padded "), "=?base64?IHBhZGRlZCA=?=");
        assert_eq!(encode_value("line1\nline2"), "=?base64?bGluZTEKbGluZTI=?=");
        assert_eq!(encode_value("=?base64?literal?="), "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?=");
        assert_eq!(decode_value("=?base64?SGVsbG8sIOS4lueVjA==?=").as_deref(), Some("Hello, 世界"));
        assert_eq!(decode_value("=?base64?***?="), None);
        assert_eq!(decode_value("bad\u{1}value"), None);
    }

    #[test]
    fn matching_headers_pass() {
        let h = [("mcp-protocol-version", "2026-07-28"), ("MCP-METHOD", "tools/call"), ("Mcp-Name", "echo")];
        let ok = validate_standard(headers(&h), "tools/call", &call_params("echo")).unwrap();
        assert_eq!(ok.version, "2026-07-28");
        let h = [("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", "tools/call"), ("Mcp-Name", "=?base64?5pel5pys?=")];
        assert!(validate_standard(headers(&h), "tools/call", &call_params("日本")).is_ok());
    }

    #[test]
    fn each_missing_or_different_header_is_a_header_mismatch() {
        let p = call_params("echo");
        let cases: [&[(&str, &str)]; 5] = [
            &[("Mcp-Method", "tools/call"), ("Mcp-Name", "echo")],
            &[("MCP-Protocol-Version", "2025-11-25"), ("Mcp-Method", "tools/call"), ("Mcp-Name", "echo")],
            &[("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Name", "echo")],
            &[("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", "tools/list"), ("Mcp-Name", "echo")],
            &[("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", "tools/call"), ("Mcp-Name", "other")],
        ];
        for h in cases {
            let e = validate_standard(headers(h), "tools/call", &p).unwrap_err();
            assert_eq!(e.code, HEADER_MISMATCH, "{h:?}");
        }
        let no_name: &[(&str, &str)] = &[("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", "tools/call")];
        assert!(validate_standard(headers(no_name), "tools/call", &p).unwrap_err().message.contains("Mcp-Name"));
    }

    #[test]
    fn tools_list_needs_no_name_header() {
        let p = json!({"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}).as_object().cloned().unwrap();
        let h = [("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", "tools/list")];
        assert!(validate_standard(headers(&h), "tools/list", &p).is_ok());
    }

    #[test]
    fn x_mcp_header_parameters_are_mirrored_and_validated() {
        let schema = json!({"type": "object", "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "n": {"type": "integer", "x-mcp-header": "N"},
            "opts": {"type": "object", "properties": {"flag": {"type": "boolean", "x-mcp-header": "Flag"}}},
            "query": {"type": "string"}
        }});
        let args = json!({"region": "us-west1", "n": 42, "opts": {"flag": true}, "query": "x"});
        let got = param_headers(&schema, &args);
        assert_eq!(got, vec![
            ("Mcp-Param-Region".to_string(), "us-west1".to_string()),
            ("Mcp-Param-N".to_string(), "42".to_string()),
            ("Mcp-Param-Flag".to_string(), "true".to_string()),
        ]);
        let h = [("mcp-param-region", "us-west1"), ("Mcp-Param-N", "42.0"), ("Mcp-Param-Flag", "true")];
        assert!(validate_params(headers(&h), &schema, &args).is_ok());
        let h = [("mcp-param-region", "eu"), ("Mcp-Param-N", "42"), ("Mcp-Param-Flag", "true")];
        assert_eq!(validate_params(headers(&h), &schema, &args).unwrap_err().code, HEADER_MISMATCH);
        let h = [("Mcp-Param-N", "42"), ("Mcp-Param-Flag", "true")];
        assert!(validate_params(headers(&h), &schema, &args).is_err());
        // absent value → header not expected
        assert!(validate_params(headers(&[]), &schema, &json!({"query": "x"})).is_ok());
    }
}
