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
/// `prompts/get`, `uri` for `resources/read`, `taskId` for `tasks/get`,
/// `tasks/update` and `tasks/cancel` (SEP-2663), none otherwise.
pub fn name_field(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        // SEP-2663 (tasks extension), Streamable HTTP: Routing Headers.
        "tasks/get" | "tasks/update" | "tasks/cancel" => Some("taskId"),
        _ => None,
    }
}

/// The standard headers of a modern request (Request Metadata):
/// `MCP-Protocol-Version`, `Mcp-Method`, and `Mcp-Name` (encoded) from
/// `params.name`/`params.uri` where the method has one.
pub fn standard(version: &str, method: &str, params: &Map<String, Value>) -> Vec<(String, String)> {
    let mut h = vec![(PROTOCOL_VERSION.to_string(), version.to_string()), (METHOD.to_string(), method.to_string())];
    if let Some(v) = name_field(method).and_then(|f| params.get(f)).and_then(Value::as_str) {
        h.push((NAME.to_string(), encode_value(v)));
    }
    h
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

/// Why a tool's `inputSchema` breaks the `x-mcp-header` rules (Custom Headers
/// from Tool Parameters, "Schema Extension"), or `None` when it is fine (pure).
/// A client must leave such a tool out of `tools/list`. Rules:
///
/// - each value is a string, non-empty, an HTTP token (`1*tchar`, RFC 9110
///   §5.6.2; so no CR, LF or other control character), and case-insensitively
///   unique within the schema;
/// - the annotated property has `"type"` `"integer"`, `"string"` or
///   `"boolean"` (alone, or with `"null"` in a type array); `"number"`, other
///   types and a missing `"type"` are invalid;
/// - the annotation sits on a property reached from the root through
///   `properties` keys only: one on the root itself or under any other keyword
///   (`items`, `oneOf`/`anyOf`/`allOf`/`not`, `if`/`then`/`else`, `$ref`
///   targets in `$defs`, `additionalProperties`, `patternProperties`, …) is
///   invalid. Instance data (`default`, `examples`, `const`, `enum`) is not
///   searched, and a property *named* `x-mcp-header` is not an annotation.
///
/// The reason names the schema location as a JSON pointer.
pub fn x_mcp_header_problem(input_schema: &Value) -> Option<String> {
    let mut seen: Vec<(String, String)> = Vec::new();
    check_schema(input_schema, &mut String::new(), Reach::Root, &mut seen).err()
}

#[derive(Clone, Copy, PartialEq)]
enum Reach {
    /// The schema root.
    Root,
    /// A property reached through `properties` keys only.
    Static,
    /// Anything else.
    Other,
}

/// Keywords whose value is instance data, not a schema.
const DATA_KEYWORDS: [&str; 4] = ["default", "examples", "const", "enum"];
/// Keywords whose value maps names to schemas.
const SCHEMA_MAP_KEYWORDS: [&str; 6] = ["properties", "patternProperties", "$defs", "definitions", "dependentSchemas", "dependencies"];

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn pointer_push(path: &mut String, token: &str) -> usize {
    let len = path.len();
    path.push('/');
    path.push_str(&token.replace('~', "~0").replace('/', "~1"));
    len
}

fn check_schema(schema: &Value, path: &mut String, reach: Reach, seen: &mut Vec<(String, String)>) -> Result<(), String> {
    // serde_json's parser bounds nesting (128), so this recursion is bounded.
    let Some(obj) = schema.as_object() else { return Ok(()) };
    let at = |path: &str| if path.is_empty() { "/".to_string() } else { path.to_string() };
    if let Some(h) = obj.get("x-mcp-header") {
        match reach {
            Reach::Root => return Err("x-mcp-header on the schema root (it must be on a property)".into()),
            Reach::Other => {
                return Err(format!("x-mcp-header at {} is not reachable through `properties` keys alone", at(path)))
            }
            Reach::Static => {}
        }
        let Some(name) = h.as_str() else { return Err(format!("x-mcp-header at {} is not a string", at(path))) };
        if name.is_empty() {
            return Err(format!("x-mcp-header at {} is empty", at(path)));
        }
        if name.bytes().any(|b| b.is_ascii_control()) {
            return Err(format!("x-mcp-header {name:?} at {} contains a control character", at(path)));
        }
        if !name.bytes().all(is_tchar) {
            return Err(format!("x-mcp-header {name:?} at {} is not an HTTP token (1*tchar)", at(path)));
        }
        if let Some((other, other_path)) = seen.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            return Err(format!("x-mcp-header {name:?} at {} repeats {other:?} at {other_path} (case-insensitively)", at(path)));
        }
        let primitive = |t: &str| matches!(t, "integer" | "string" | "boolean");
        let type_ok = match obj.get("type") {
            Some(Value::String(t)) => primitive(t),
            Some(Value::Array(ts)) => {
                let non_null: Vec<&str> = ts.iter().filter_map(Value::as_str).filter(|t| *t != "null").collect();
                ts.iter().all(Value::is_string) && non_null.len() == 1 && primitive(non_null[0])
            }
            _ => false,
        };
        if !type_ok {
            let t = obj.get("type").map_or("no type".to_string(), |t| format!("type {t}"));
            return Err(format!("x-mcp-header {name:?} at {} is on a property with {t} (integer, string or boolean required)", at(path)));
        }
        seen.push((name.to_string(), at(path)));
    }
    for (key, value) in obj {
        if key == "x-mcp-header" || DATA_KEYWORDS.contains(&key.as_str()) {
            continue;
        }
        let mark = pointer_push(path, key);
        let result = if SCHEMA_MAP_KEYWORDS.contains(&key.as_str()) {
            let child = if key == "properties" && reach != Reach::Other { Reach::Static } else { Reach::Other };
            match value.as_object() {
                Some(map) => map.iter().try_for_each(|(name, sub)| {
                    let mark = pointer_push(path, name);
                    let r = check_schema(sub, path, child, seen);
                    path.truncate(mark);
                    r
                }),
                None => check_schema(value, path, Reach::Other, seen),
            }
        } else {
            match value {
                Value::Array(items) => items.iter().enumerate().try_for_each(|(i, sub)| {
                    let mark = pointer_push(path, &i.to_string());
                    let r = check_schema(sub, path, Reach::Other, seen);
                    path.truncate(mark);
                    r
                }),
                other => check_schema(other, path, Reach::Other, seen),
            }
        };
        path.truncate(mark);
        result?;
    }
    Ok(())
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

    #[test]
    fn valid_x_mcp_header_schemas_pass() {
        assert_eq!(x_mcp_header_problem(&json!({"type": "object"})), None);
        assert_eq!(x_mcp_header_problem(&json!(true)), None);
        let ok = json!({"type": "object", "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "n": {"type": "integer", "x-mcp-header": "N"},
            "maybe": {"type": ["boolean", "null"], "x-mcp-header": "Maybe"},
            "opts": {"type": "object", "properties": {"flag": {"type": "boolean", "x-mcp-header": "x!#$%&'*+-.^_`|~9"}}},
            "x-mcp-header": {"type": "string"},
            "items": {"type": "array", "items": {"type": "string"}},
            "d": {"type": "object", "default": {"x-mcp-header": "NotAnAnnotation"}, "enum": [{"x-mcp-header": 1}]}
        }});
        assert_eq!(x_mcp_header_problem(&ok), None);
    }

    #[test]
    fn each_x_mcp_header_rule_is_enforced() {
        let prop = |p: Value| json!({"type": "object", "properties": {"p": p}});
        let cases: Vec<(Value, &str)> = vec![
            (prop(json!({"type": "string", "x-mcp-header": ""})), "empty"),
            (prop(json!({"type": "string", "x-mcp-header": "Bad Name"})), "token"),
            (prop(json!({"type": "string", "x-mcp-header": "a:b"})), "token"),
            (prop(json!({"type": "string", "x-mcp-header": "Région"})), "token"),
            (prop(json!({"type": "string", "x-mcp-header": "A\r\nX-Injected: 1"})), "control"),
            (prop(json!({"type": "string", "x-mcp-header": "A\n"})), "control"),
            (prop(json!({"type": "string", "x-mcp-header": 7})), "not a string"),
            (prop(json!({"type": "number", "x-mcp-header": "N"})), "integer, string or boolean"),
            (prop(json!({"type": "object", "x-mcp-header": "O"})), "integer, string or boolean"),
            (prop(json!({"type": "array", "x-mcp-header": "A"})), "integer, string or boolean"),
            (prop(json!({"x-mcp-header": "NoType"})), "no type"),
            (prop(json!({"type": ["string", "integer"], "x-mcp-header": "Two"})), "integer, string or boolean"),
            (
                json!({"type": "object", "properties": {
                    "a": {"type": "string", "x-mcp-header": "Region"},
                    "b": {"type": "object", "properties": {"c": {"type": "string", "x-mcp-header": "REGION"}}}
                }}),
                "repeats",
            ),
            (json!({"type": "string", "x-mcp-header": "Root"}), "schema root"),
        ];
        for (schema, want) in cases {
            let problem = x_mcp_header_problem(&schema).unwrap_or_else(|| panic!("accepted {schema}"));
            assert!(problem.contains(want), "{schema}: {problem}");
        }
    }

    #[test]
    fn x_mcp_header_outside_a_properties_chain_is_invalid() {
        let h = json!({"type": "string", "x-mcp-header": "H"});
        let cases = vec![
            json!({"type": "object", "properties": {"list": {"type": "array", "items": h.clone()}}}),
            json!({"type": "object", "properties": {"list": {"type": "array", "prefixItems": [h.clone()]}}}),
            json!({"type": "object", "properties": {"list": {"type": "array", "items": {"type": "object", "properties": {"x": h.clone()}}}}}),
            json!({"type": "object", "oneOf": [{"properties": {"p": h.clone()}}]}),
            json!({"type": "object", "anyOf": [{"properties": {"p": h.clone()}}]}),
            json!({"type": "object", "allOf": [{"properties": {"p": h.clone()}}]}),
            json!({"type": "object", "properties": {"p": {"not": h.clone()}}}),
            json!({"type": "object", "if": {"properties": {"p": h.clone()}}}),
            json!({"type": "object", "then": {"properties": {"p": h.clone()}}}),
            json!({"type": "object", "else": {"properties": {"p": h.clone()}}}),
            json!({"type": "object", "properties": {"p": {"$ref": "#/$defs/h"}}, "$defs": {"h": h.clone()}}),
            json!({"type": "object", "definitions": {"h": h.clone()}}),
            json!({"type": "object", "additionalProperties": h.clone()}),
            json!({"type": "object", "patternProperties": {"^p": h.clone()}}),
            json!({"type": "object", "dependentSchemas": {"p": {"properties": {"q": h.clone()}}}}),
            json!({"type": "object", "properties": {"o": {"type": "object", "additionalProperties": {"properties": {"q": h.clone()}}}}}),
            json!({"type": "object", "x-vendor": {"properties": {"q": h.clone()}}}),
        ];
        for schema in cases {
            let problem = x_mcp_header_problem(&schema).unwrap_or_else(|| panic!("accepted {schema}"));
            assert!(problem.contains("not reachable"), "{schema}: {problem}");
        }
        let p = x_mcp_header_problem(&json!({"type": "object", "properties": {"l": {"items": h}}})).unwrap();
        assert!(p.contains("/properties/l/items"), "{p}");
    }
}
