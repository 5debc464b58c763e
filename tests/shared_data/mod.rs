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
