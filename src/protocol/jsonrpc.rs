//! JSON-RPC 2.0 messages as MCP uses them.
//!
//! Batches (JSON arrays) were removed in MCP 2025-06-18 and never existed in
//! 2026-07-28; the hub answers them `-32600`.

use super::codes;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

/// A JSON-RPC request id: a string or a number (never null for a request).
///
/// The id's value, for the hub's own use (keys, comparisons, logs). serde_json
/// is built with `arbitrary_precision`, so a number keeps its digits
/// (`18446744073709551617`, `1.0`, `-0`, `2.50` are written back as sent),
/// but an exponent is written `1e+3` however it came (`1E3`, `1e3`), and a
/// string is written with the fewest escapes (`"\u0041"` → `"A"`). The text
/// the client sent, when it differs, is kept in an [`IdText`] and written in
/// place of the id in every answer to the request (issue 14, hole 9; JSON-RPC
/// 2.0 §5: the response id "MUST be the same as the value of the id member in
/// the Request Object").
pub type RequestId = Value;

/// One parsed message from a POST body.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A request: expects a response.
    Request {
        /// The id, a string or number.
        id: RequestId,
        /// The id's text as sent, when serde_json would write `id` otherwise.
        sent_as: Option<IdText>,
        /// The method, e.g. `tools/call`.
        method: String,
        /// `params`, an object (absent → empty object).
        params: Map<String, Value>,
    },
    /// A notification: no id, no response.
    Notification {
        /// The method, e.g. `notifications/initialized`.
        method: String,
        /// `params`, an object (absent → empty object).
        params: Map<String, Value>,
    },
    /// A response sent by the client (an answer to a server→client request).
    Response {
        /// The id it answers.
        id: RequestId,
        /// The whole message, kept as sent.
        message: Value,
    },
}

/// A JSON-RPC error object plus the id to answer with (null when unknown).
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorObject {
    /// The error code (see [`codes`]).
    pub code: i64,
    /// A short message; never contains secrets.
    pub message: String,
    /// Optional structured data.
    pub data: Option<Value>,
}

impl ErrorObject {
    /// An error without data.
    pub fn new(code: i64, message: impl Into<String>) -> ErrorObject {
        ErrorObject { code, message: message.into(), data: None }
    }

    /// An error with data.
    pub fn with_data(code: i64, message: impl Into<String>, data: Value) -> ErrorObject {
        ErrorObject { code, message: message.into(), data: Some(data) }
    }

    /// The error as a full JSON-RPC error response for `id` (null when `None`).
    pub fn to_response(&self, id: Option<&RequestId>) -> Value {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(data) = &self.data {
            error["data"] = data.clone();
        }
        json!({"jsonrpc": "2.0", "id": id.cloned().unwrap_or(Value::Null), "error": error})
    }
}

/// Why a body is not an acceptable message: the error to answer and the id to
/// answer it with (when one could be read).
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// `-32700` or `-32600`.
    pub error: ErrorObject,
    /// The request's id, when readable.
    pub id: Option<RequestId>,
    /// The id's text as sent, when readable and serde_json would write `id` otherwise.
    pub sent_as: Option<IdText>,
}

/// `value[k0][k1]…` through objects only: a JSON pointer of plain keys
/// (no escapes, no array indexes) without the parsing and the allocations
/// `Value::pointer` makes on every call (issue 16: five lookups were 7 % of
/// the hub's instructions per `tools/call`). `None` when a step is missing or
/// not an object.
pub fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, k| v.as_object()?.get(*k))
}

/// A result response for `id`.
pub fn result_response(id: &RequestId, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// A notification message.
pub fn notification(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "method": method, "params": params})
}

/// A request message.
pub fn request(id: &RequestId, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// The text a request's id was sent as, when serde_json writes its value
/// differently (`1E3` is written `1e+3`, `"\u0041"` is written `"A"`), so an
/// answer can carry the id byte for byte: [`IdText::echo`].
///
/// Both texts are valid JSON of one number or one string (the parser read
/// them): nothing else can be written in place of an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdText {
    /// The id as serde_json writes its value, e.g. `1e+3`.
    written: Box<str>,
    /// The id as the client sent it, e.g. `1E3`.
    sent: Box<str>,
}

impl IdText {
    /// The text `sent` (one JSON number or string, as read) if serde_json
    /// writes `value` (parsed from it) otherwise; `None` when they agree,
    /// which is decided without writing for a number without an exponent and
    /// a string without a backslash (serde_json keeps a number's digits and
    /// escapes only `"`, `\` and control characters, which JSON requires
    /// escaped anyway).
    fn of(sent: &str, value: &Value) -> Option<IdText> {
        let plain = match value {
            Value::Number(_) => !sent.contains(['e', 'E']),
            Value::String(_) => !sent.contains('\\'),
            _ => return None,
        };
        if plain {
            return None;
        }
        let written = value.to_string();
        (written != sent).then(|| IdText { written: written.into(), sent: sent.into() })
    }

    /// The id as the client sent it.
    pub fn sent(&self) -> &str {
        &self.sent
    }

    /// `message` (one JSON object as serde_json writes it, compact or not)
    /// with its top-level `"id"` member's value written as sent, if that
    /// value is this id's written form; `None` otherwise (another message, a
    /// message answering another id, text that is not a JSON object). Only
    /// the top level is looked at: an `"id"` nested in a result is content.
    /// Scans up to the id member (the second member of a message the hub
    /// builds), not the whole message.
    pub fn echo(&self, message: &[u8]) -> Option<Vec<u8>> {
        let at = top_level_id(message)?;
        if &message[at.clone()] != self.written.as_bytes() {
            return None;
        }
        let mut out = Vec::with_capacity(message.len() - at.len() + self.sent.len());
        out.extend_from_slice(&message[..at.start]);
        out.extend_from_slice(self.sent.as_bytes());
        out.extend_from_slice(&message[at.end..]);
        Some(out)
    }

    /// [`IdText::echo`] for text.
    pub fn echo_str(&self, message: &str) -> Option<String> {
        // Valid: UTF-8 text with one UTF-8 JSON value replaced by another.
        self.echo(message.as_bytes()).map(|b| String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }
}

/// The byte range of the value of the top-level `"id"` member of the JSON
/// object `text`; `None` if there is none or `text` is not such an object.
fn top_level_id(text: &[u8]) -> Option<std::ops::Range<usize>> {
    let mut i = skip_ws(text, 0);
    if text.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    loop {
        i = skip_ws(text, i);
        if text.get(i) != Some(&b'"') {
            return None; // `}` (no id) or not JSON
        }
        let key_end = string_end(text, i)?;
        let key = &text[i..key_end];
        i = skip_ws(text, key_end);
        if text.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(text, i + 1);
        let value_end = value_end(text, i)?;
        if key == b"\"id\"" {
            return Some(i..value_end);
        }
        i = skip_ws(text, value_end);
        if text.get(i) != Some(&b',') {
            return None;
        }
        i += 1;
    }
}

fn skip_ws(text: &[u8], mut i: usize) -> usize {
    while text.get(i).is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// The index after the string starting at `text[start]` (a `"`).
fn string_end(text: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < text.len() {
        match text[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// The index after the value starting at `text[start]`.
fn value_end(text: &[u8], start: usize) -> Option<usize> {
    match text.get(start)? {
        b'"' => string_end(text, start),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = start;
            while i < text.len() {
                match text[i] {
                    b'"' => {
                        i = string_end(text, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            None
        }
        _ => {
            let len = text[start..].iter().position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))?;
            (len > 0).then_some(start + len)
        }
    }
}

/// The top level of a body, read in one pass: an object (its members, the
/// `id` kept as its text), an array (a batch), or another value.
enum TopLevel {
    Object(Map<String, Value>, Option<Box<RawValue>>),
    Array,
    Other,
}

/// The key serde_json's `arbitrary_precision` hands a number to a visitor
/// under (a top-level number arrives as a one-member map).
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

impl<'de> Deserialize<'de> for TopLevel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<TopLevel, D::Error> {
        d.deserialize_any(TopVisitor)
    }
}

struct TopVisitor;

impl<'de> Visitor<'de> for TopVisitor {
    type Value = TopLevel;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopLevel, A::Error> {
        let mut obj = Map::new();
        let mut id = None;
        let mut first = true;
        while let Some(key) = map.next_key::<String>()? {
            if std::mem::take(&mut first) && key == NUMBER_TOKEN {
                map.next_value::<IgnoredAny>()?;
                return Ok(TopLevel::Other);
            }
            if key == "id" {
                id = Some(map.next_value::<Box<RawValue>>()?);
            } else {
                obj.insert(key, map.next_value::<Value>()?);
            }
        }
        Ok(TopLevel::Object(obj, id))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TopLevel, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(TopLevel::Array)
    }

    fn visit_bool<E>(self, _: bool) -> Result<TopLevel, E> {
        Ok(TopLevel::Other)
    }

    fn visit_i64<E>(self, _: i64) -> Result<TopLevel, E> {
        Ok(TopLevel::Other)
    }

    fn visit_u64<E>(self, _: u64) -> Result<TopLevel, E> {
        Ok(TopLevel::Other)
    }

    fn visit_f64<E>(self, _: f64) -> Result<TopLevel, E> {
        Ok(TopLevel::Other)
    }

    fn visit_str<E>(self, _: &str) -> Result<TopLevel, E> {
        Ok(TopLevel::Other)
    }

    fn visit_unit<E>(self) -> Result<TopLevel, E> {
        Ok(TopLevel::Other)
    }
}

/// Parses a POST body into one message, in one pass over the body (the id
/// is kept as its text, then its few bytes parsed to a value).
///
/// Errors: invalid JSON → `-32700`; an array (batch), a non-object, a missing or
/// wrong `jsonrpc`, a bad id, a non-string method or non-object params → `-32600`.
/// The returned id (when one could be read) is the one to answer the error with.
pub fn parse(body: &[u8]) -> Result<Incoming, Box<Rejection>> {
    let parse_error = |e: serde_json::Error| Box::new(Rejection { error: ErrorObject::new(codes::PARSE_ERROR, format!("Parse error: {e}")), id: None, sent_as: None });
    let top: TopLevel = serde_json::from_slice(body).map_err(parse_error)?;
    let (obj, raw_id) = match top {
        TopLevel::Object(obj, raw_id) => (obj, raw_id),
        TopLevel::Array => return Err(invalid(BATCH, None, None)),
        TopLevel::Other => return Err(invalid(NOT_OBJECT, None, None)),
    };
    let (id, sent_as) = match raw_id {
        None => (None, None),
        Some(raw) => {
            let value: Value = serde_json::from_str(raw.get()).map_err(parse_error)?;
            let sent_as = IdText::of(raw.get(), &value);
            (Some(value), sent_as)
        }
    };
    classify(obj, id, sent_as)
}

/// Like [`parse`], from an already decoded value (the id's text is its
/// value's: no [`IdText`]).
pub fn parse_value(value: Value) -> Result<Incoming, Box<Rejection>> {
    let mut obj = match value {
        Value::Object(obj) => obj,
        Value::Array(_) => return Err(invalid(BATCH, None, None)),
        _ => return Err(invalid(NOT_OBJECT, None, None)),
    };
    let id = obj.remove("id");
    classify(obj, id, None)
}

const BATCH: &str = "JSON-RPC batches are not supported (removed in MCP 2025-06-18)";
const NOT_OBJECT: &str = "expected a JSON object";

fn invalid(msg: &str, id: Option<RequestId>, sent_as: Option<IdText>) -> Box<Rejection> {
    Box::new(Rejection { error: ErrorObject::new(codes::INVALID_REQUEST, format!("Invalid request: {msg}")), id, sent_as })
}

/// The message an object without its `id` member is, given that id.
fn classify(mut obj: Map<String, Value>, id: Option<Value>, sent_as: Option<IdText>) -> Result<Incoming, Box<Rejection>> {
    let id_ok = matches!(id, None | Some(Value::String(_)) | Some(Value::Number(_)));
    let answer_id = id.clone().filter(|_| id_ok);
    let answer_as = sent_as.filter(|_| id_ok);
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(invalid("\"jsonrpc\" must be \"2.0\"", answer_id, answer_as));
    }
    if !id_ok {
        return Err(invalid("\"id\" must be a string or a number", None, None));
    }
    match obj.remove("method") {
        Some(Value::String(method)) => {
            let params = match obj.remove("params") {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(p)) => p,
                Some(_) => return Err(invalid("\"params\" must be an object", answer_id, answer_as)),
            };
            Ok(match id {
                Some(id) => Incoming::Request { id, sent_as: answer_as, method, params },
                None => Incoming::Notification { method, params },
            })
        }
        Some(_) => Err(invalid("\"method\" must be a string", answer_id, answer_as)),
        None => match id {
            Some(id) if obj.contains_key("result") || obj.contains_key("error") => {
                obj.insert("id".into(), id.clone());
                Ok(Incoming::Response { id, message: Value::Object(obj) })
            }
            _ => Err(invalid("missing \"method\"", answer_id, answer_as)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_a_notification_and_a_response_are_told_apart() {
        let r = parse(br#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#).unwrap();
        assert_eq!(r, Incoming::Request { id: json!(7), sent_as: None, method: "tools/list".into(), params: Map::new() });
        let n = parse(br#"{"jsonrpc":"2.0","method":"notifications/initialized","params":{}}"#).unwrap();
        assert!(matches!(n, Incoming::Notification { ref method, .. } if method == "notifications/initialized"));
        let resp = parse(br#"{"jsonrpc":"2.0","id":"s1","result":{}}"#).unwrap();
        assert!(matches!(resp, Incoming::Response { ref id, .. } if id == &json!("s1")));
    }

    #[test]
    fn malformed_json_is_a_parse_error() {
        let r = parse(b"{not json").unwrap_err();
        assert_eq!(r.error.code, codes::PARSE_ERROR);
        assert_eq!(r.id, None);
    }

    #[test]
    fn invalid_requests_keep_their_id_when_it_is_readable() {
        let cases: [(&[u8], Option<Value>); 5] = [
            (br#"{"jsonrpc":"1.0","id":3,"method":"x"}"#, Some(json!(3))),
            (br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#, None),
            (br#"{"jsonrpc":"2.0","id":{"x":1},"method":"ping"}"#, None),
            (br#"{"jsonrpc":"2.0","id":1,"method":"ping","params":[1]}"#, Some(json!(1))),
            (br#"{"jsonrpc":"2.0","id":1}"#, Some(json!(1))),
        ];
        for (body, id) in cases {
            let r = parse(body).unwrap_err();
            assert_eq!((r.error.code, r.id), (codes::INVALID_REQUEST, id), "{}", String::from_utf8_lossy(body));
        }
    }

    /// The id as written in a response built from a parsed request (the
    /// result and an error answer), through [`IdText::echo`] as the hub does.
    fn echoed(id_text: &str) -> (String, String) {
        let body = format!(r#"{{"jsonrpc":"2.0","id":{id_text},"method":"ping"}}"#);
        let Ok(Incoming::Request { id, sent_as, .. }) = parse(body.as_bytes()) else { panic!("{body}") };
        let write = |msg: Value| {
            let text = serde_json::to_vec(&msg).unwrap();
            String::from_utf8(sent_as.as_ref().and_then(|s| s.echo(&text)).unwrap_or(text)).unwrap()
        };
        (write(result_response(&id, json!({}))), write(ErrorObject::new(-32601, "x").to_response(Some(&id))))
    }

    #[test]
    fn every_id_is_echoed_byte_for_byte() {
        let ids = [
            "18446744073709551617",
            "-18446744073709551617",
            "9223372036854775808",
            "123456789012345678901234567890",
            "1.0",
            "1e-3",
            "1e+300",
            "1e3",
            "1E3",
            "1E+03",
            "-1.5E-07",
            "-7",
            "-0",
            "0.1",
            "1.50",
            "2.50",
            "1.5e-7",
            r#""plain""#,
            r#""q\"uote\\back\nline\ttab""#,
            r#""é€😀""#,
            r#""\u0001""#,
            r#""""#,
            r#""\u0041""#,
            r#""a\/b""#,
            r#""\ud83d\ude00""#,
            r#""\u00e9\/\u0022""#,
        ];
        for id in ids {
            let (ok, err) = echoed(id);
            assert_eq!(ok, format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{}}}}"#), "result for {id}");
            assert!(err.starts_with(&format!(r#"{{"jsonrpc":"2.0","id":{id},"error":"#)), "error for {id}: {err}");
        }
        // A rejected request keeps its readable id exactly too.
        for (body, id) in [
            (r#"{"jsonrpc":"1.0","id":18446744073709551617,"method":"x"}"#, "18446744073709551617"),
            (r#"{"jsonrpc":"1.0","id":1E3,"method":"x"}"#, "1E3"),
            (r#"{"jsonrpc":"2.0","id":"\u0041","method":"x","params":7}"#, r#""\u0041""#),
        ] {
            let r = parse(body.as_bytes()).unwrap_err();
            let answer = serde_json::to_vec(&r.error.to_response(r.id.as_ref())).unwrap();
            let answer = String::from_utf8(r.sent_as.as_ref().and_then(|s| s.echo(&answer)).unwrap_or(answer)).unwrap();
            assert!(answer.starts_with(&format!(r#"{{"jsonrpc":"2.0","id":{id},"#)), "{answer}");
        }
    }

    #[test]
    fn the_id_text_is_kept_only_when_it_differs_and_is_read_without_its_spacing() {
        let sent_as = |body: &str| match parse(body.as_bytes()) {
            Ok(Incoming::Request { sent_as, .. }) => sent_as,
            other => panic!("{body}: {other:?}"),
        };
        for plain in ["7", "-0", "1.50", "1e+3", "1e-3", r#""a/b""#, r#""q\"""#, r#""\n""#, r#""é""#] {
            assert_eq!(sent_as(&format!(r#"{{"jsonrpc":"2.0","id":{plain},"method":"ping"}}"#)), None, "{plain}");
        }
        let s = sent_as("{ \"jsonrpc\": \"2.0\", \"id\" :\n 1E3 , \"method\": \"ping\" }").expect("1E3 is written 1e+3");
        assert_eq!(s.sent(), "1E3");
        let s = sent_as(r#"{"jsonrpc":"2.0","method":"ping","id":"\u0041"}"#).expect("an escape");
        assert_eq!(s.sent(), r#""\u0041""#);
        // Notifications and answers carry no id to echo; a bad id is not echoed.
        assert!(matches!(parse(br#"{"jsonrpc":"2.0","id":"\u0041","result":{}}"#), Ok(Incoming::Response { ref id, .. }) if id == "A"));
        let r = parse(br#"{"jsonrpc":"2.0","id":["\u0041"],"method":"ping"}"#).unwrap_err();
        assert_eq!((r.error.code, r.id, r.sent_as), (codes::INVALID_REQUEST, None, None));
    }

    #[test]
    fn only_the_top_level_id_of_the_same_value_is_replaced() {
        let Ok(Incoming::Request { sent_as: Some(s), .. }) = parse(br#"{"jsonrpc":"2.0","id":1E3,"method":"ping"}"#) else { panic!() };
        // An "id" nested in the result (before or after the top-level one) is content.
        let m = br#"{"jsonrpc":"2.0","result":{"id":1e+3,"a":["}",{"id":1e+3}],"s":"\"id\":1e+3"},"id":1e+3}"#;
        let out = String::from_utf8(s.echo(m).unwrap()).unwrap();
        assert_eq!(out, r#"{"jsonrpc":"2.0","result":{"id":1e+3,"a":["}",{"id":1e+3}],"s":"\"id\":1e+3"},"id":1E3}"#);
        assert_eq!(s.echo(out.as_bytes()), None, "idempotent");
        // Another id, no id, or no JSON object: nothing to replace.
        for other in [&br#"{"jsonrpc":"2.0","id":1000,"result":{}}"#[..], br#"{"jsonrpc":"2.0","method":"x","params":{"id":1e+3}}"#, b"", b"1e+3", b"{", br#"{"id""#, br#"{"id":"#, b"not json"] {
            assert_eq!(s.echo(other), None, "{}", String::from_utf8_lossy(other));
        }
        // Spacing around members is allowed.
        assert_eq!(s.echo(b"{ \"a\" : [1, 2] ,\n \"id\" : 1e+3 }").unwrap(), b"{ \"a\" : [1, 2] ,\n \"id\" : 1E3 }");
    }

    #[test]
    fn non_objects_and_batches_are_invalid_requests() {
        for body in [&b"1e3"[..], b"7", br#""x""#, b"null", b"true", b"[]", br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#] {
            let r = parse(body).unwrap_err();
            assert_eq!((r.error.code, r.id), (codes::INVALID_REQUEST, None), "{}", String::from_utf8_lossy(body));
        }
        assert!(parse(br#"[1,"#).unwrap_err().error.code == codes::PARSE_ERROR);
        assert!(parse(br#"{"jsonrpc":"2.0","id":1e,"method":"x"}"#).unwrap_err().error.code == codes::PARSE_ERROR);
    }

    #[test]
    fn numeric_ids_still_compare_and_convert_as_numbers() {
        let Ok(Incoming::Request { id, .. }) = parse(br#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#) else { panic!() };
        assert_eq!(id, json!(7));
        assert_eq!(id.as_u64(), Some(7));
        let Ok(Incoming::Request { id, .. }) = parse(br#"{"jsonrpc":"2.0","id":18446744073709551617,"method":"ping"}"#) else { panic!() };
        assert_eq!(id.as_u64(), None, "beyond u64");
        assert_eq!(id.to_string(), "18446744073709551617");
    }

    #[test]
    fn error_responses_have_the_jsonrpc_shape() {
        let e = ErrorObject::with_data(-32022, "Unsupported protocol version", json!({"supported": ["2026-07-28"]}));
        assert_eq!(
            e.to_response(Some(&json!(1))),
            json!({"jsonrpc":"2.0","id":1,"error":{"code":-32022,"message":"Unsupported protocol version","data":{"supported":["2026-07-28"]}}})
        );
        assert_eq!(ErrorObject::new(-32700, "x").to_response(None)["id"], Value::Null);
    }
}
