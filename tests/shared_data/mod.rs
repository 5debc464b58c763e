//! Test data and small helpers that both harnesses' tests use (the
//! socket-free `tests/core_*.rs` and the socket-level `tests/hub_*.rs`), kept
//! once; a test file includes it with `mod shared_data;`.
#![allow(dead_code)]

use serde_json::Value;

/// Ids whose text a lossy (f64) echo, or serde_json's own writing, would change.
pub const IDS: [&str; 14] = [
    "1e3",
    "1E+03",
    "-0",
    "1.50",
    "18446744073709551617",
    "-18446744073709551617",
    "123456789012345678901234567890",
    "1.0",
    "-2.5E-7",
    r#""\u0041""#,
    r#""a\/b""#,
    r#""\ud83d\ude00""#,
    r#""a\"b\\c\n""#,
    r#""\u00e9\u0009""#,
];

/// `message` (JSON with `"id": "__ID__"`) with the id replaced by `id_text`.
pub fn with_id(message: Value, id_text: &str) -> String {
    message.to_string().replacen(r#""id":"__ID__""#, &format!(r#""id":{id_text}"#), 1)
}

/// The scrub tests' echoing tools and the masked text each one's answer
/// carries. A 401 under a user's credential is that user's rejected token
/// (issue 14 hole 2): the answer names the token, never the upstream's text.
pub const SCRUB_MASKS: [(&str, &str); 8] = [
    ("gh__echo401", "rejected your gh_token (http 401)"),
    ("gh__echorpc", "authorization: ***"),
    ("gh__echosse", "authorization: ***"),
    ("gh__echotool", "authorization: ***"),
    ("st__echo401", "x-api-key: ***"),
    ("st__echorpc", "x-api-key: ***"),
    ("st__echosse", "x-api-key: ***"),
    ("st__echotool", "x-api-key: ***"),
];

/// The one input request of an InputRequiredResult: (key, request, requestState).
pub fn input_of(m: &Value) -> (String, Value, String) {
    let r = &m["result"];
    assert_eq!(r["resultType"], "input_required", "{m}");
    let map = r["inputRequests"].as_object().expect("inputRequests");
    assert_eq!(map.len(), 1, "{m}");
    let (k, v) = map.iter().next().unwrap();
    (k.clone(), v.clone(), r["requestState"].as_str().expect("requestState").to_string())
}
