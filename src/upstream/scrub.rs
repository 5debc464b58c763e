//! Injected values out of upstream text (issue 14, hole 4).
//!
//! An upstream may repeat what the hub sent it — `401 invalid credentials:
//! Bearer ghp_…` — and that text goes on into log lines, `/readyz`, a
//! client's error. Every value the hub injected into the request (a
//! server's configured header values, `${env.*}` ones included; the
//! caller's `${user.*}` tokens and the header values filled with them) is
//! replaced by [`MASK`] in upstream-derived text before it leaves the
//! upstream layer ([`super::Upstream`] applies it where an `UpstreamError`
//! or a final message is made, [`super::transport::EventStream`] to its
//! final messages and read errors).
//!
//! Forms removed for each value: the raw value, its percent-encoding
//! (RFC 3986 unreserved characters kept), its JSON string escaping, its
//! base64 (standard, padded and not; URL-safe without padding), and, at the
//! very end of a text, a cut-off beginning of any of those (upstream bodies
//! are excerpted to 200 bytes, which may cut a token in two). Values shorter
//! than [`MIN_LEN`] bytes are left alone: a 3-letter value would shred
//! ordinary words, and no real credential is that short. Not handled: a
//! value the upstream transforms otherwise (case changed, hashed, split, or
//! base64 of a longer string that contains it at an unaligned offset).

use base64::Engine;
use serde_json::Value;

/// What a removed value becomes.
pub const MASK: &str = "***";

/// Shortest value removed, bytes (shorter ones would shred ordinary text).
pub const MIN_LEN: usize = 6;

/// The values injected into one upstream request, ready to be removed from
/// its answers. `Debug` prints only how many there are.
#[derive(Clone, Default)]
pub struct Injected {
    /// The injected values, each ≥ [`MIN_LEN`].
    values: Vec<String>,
    /// Every form to remove (see the module doc), longest first, each ≥
    /// [`MIN_LEN`]: computed on the first scrub, so a call that meets no
    /// error (most of them) pays only for copying its values.
    forms: std::sync::OnceLock<Vec<String>>,
}

impl std::fmt::Debug for Injected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Injected({} values)", self.values.len())
    }
}

impl Injected {
    /// The values to remove (short and empty ones skipped); their forms are
    /// derived when first needed.
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Injected {
        let values = values.into_iter().filter(|v| v.len() >= MIN_LEN).map(str::to_string).collect();
        Injected { values, forms: std::sync::OnceLock::new() }
    }

    fn forms(&self) -> &[String] {
        self.forms.get_or_init(|| {
            let mut forms = Vec::new();
            for v in &self.values {
                forms.push(v.clone());
                forms.push(percent_encode(v));
                if let Ok(json) = serde_json::to_string(v) {
                    forms.push(json[1..json.len() - 1].to_string());
                }
                let b = v.as_bytes();
                forms.push(base64::engine::general_purpose::STANDARD.encode(b));
                forms.push(base64::engine::general_purpose::STANDARD_NO_PAD.encode(b));
                forms.push(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b));
            }
            forms.retain(|f| f.len() >= MIN_LEN);
            forms.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
            forms.dedup();
            forms
        })
    }

    /// Whether there is nothing to remove.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `text` with every injected value replaced by [`MASK`].
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for f in self.forms() {
            if out.contains(f.as_str()) {
                out = out.replace(f.as_str(), MASK);
            }
        }
        // A cut-off value at the very end (an excerpt ends mid-token).
        for f in self.forms() {
            let tail = (MIN_LEN..f.len()).rev().find(|&n| out.ends_with(&f[..n]) && f.is_char_boundary(n));
            if let Some(n) = tail {
                out.truncate(out.len() - n);
                out.push_str(MASK);
            }
        }
        out
    }

    /// [`Injected::scrub`] on every string (not key) inside `value`.
    pub fn scrub_value(&self, value: &mut Value) {
        match value {
            Value::String(s) if self.forms().iter().any(|f| s.contains(f.as_str()) || ends_with_prefix(s, f)) => *s = self.scrub(s),
            Value::Array(items) => items.iter_mut().for_each(|v| self.scrub_value(v)),
            Value::Object(map) => map.values_mut().for_each(|v| self.scrub_value(v)),
            _ => {}
        }
    }

    /// A final JSON-RPC message with its error text scrubbed: every string
    /// of `error` (message and data), and of `result.content` when
    /// `result.isError` is true (a tool's error is an error text too).
    pub fn scrub_message(&self, message: &mut Value) {
        if self.is_empty() {
            return;
        }
        if let Some(e) = message.get_mut("error") {
            self.scrub_value(e);
        }
        if let Some(r) = message.get_mut("result").filter(|r| r.get("isError") == Some(&Value::Bool(true))) {
            if let Some(c) = r.get_mut("content") {
                self.scrub_value(c);
            }
        }
    }
}

fn ends_with_prefix(s: &str, f: &str) -> bool {
    (MIN_LEN..f.len()).any(|n| f.is_char_boundary(n) && s.ends_with(&f[..n]))
}

/// Bytes outside RFC 3986's unreserved set (§2.3: ALPHA / DIGIT / `-._~`).
const NOT_UNRESERVED: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// `v` with every byte outside RFC 3986's unreserved set as `%XX` (upper-case hex).
fn percent_encode(v: &str) -> String {
    percent_encoding::utf8_percent_encode(v, NOT_UNRESERVED).to_string()
}

/// `text` with each of `values` (and its encoded forms, see the module doc)
/// replaced by [`MASK`]. Values shorter than [`MIN_LEN`] bytes stay.
pub fn scrub(text: &str, values: &[&str]) -> String {
    Injected::new(values.iter().copied()).scrub(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_token_repeated_in_an_error_is_masked() {
        assert_eq!(
            scrub("401 invalid credentials: Bearer ghp_abc123XYZ", &["ghp_abc123XYZ"]),
            "401 invalid credentials: Bearer ***"
        );
        assert_eq!(scrub("ghp_abc123XYZ ghp_abc123XYZ!", &["ghp_abc123XYZ"]), "*** ***!");
    }

    #[test]
    fn the_whole_header_value_and_the_token_both_go() {
        let text = "got 'Bearer ghp_abc123XYZ' and then ghp_abc123XYZ";
        assert_eq!(scrub(text, &["Bearer ghp_abc123XYZ", "ghp_abc123XYZ"]), "got '***' and then ***");
    }

    #[test]
    fn encoded_forms_are_masked() {
        let token = "s3cr/t+v=lue";
        assert_eq!(scrub("url: ?t=s3cr%2Ft%2Bv%3Dlue&x=1", &[token]), "url: ?t=***&x=1");
        assert_eq!(scrub("b64 czNjci90K3Y9bHVl end", &[token]), "b64 *** end");
        assert_eq!(percent_encode("aZ09-._~ /+=%\u{e9}"), "aZ09-._~%20%2F%2B%3D%25%C3%A9");
        let quoted = "pa\"ss\\word";
        assert_eq!(scrub(r#"{"message":"bad pa\"ss\\word"}"#, &[quoted]), r#"{"message":"bad ***"}"#);
    }

    #[test]
    fn a_token_cut_off_at_the_end_of_an_excerpt_is_masked() {
        assert_eq!(scrub("invalid: Bearer ghp_abc1", &["ghp_abc123XYZ"]), "invalid: Bearer ***");
        // Fewer than MIN_LEN bytes of it left: nothing to say it is the token.
        assert_eq!(scrub("invalid: gh", &["ghp_abc123XYZ"]), "invalid: gh");
    }

    #[test]
    fn short_values_do_not_shred_text() {
        assert_eq!(scrub("bob is not allowed", &["bob", "", "is"]), "bob is not allowed");
    }

    #[test]
    fn error_strings_of_a_message_are_masked_results_are_not() {
        let inj = Injected::new(["ghp_abc123XYZ"]);
        let mut m = json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32000, "message": "bad ghp_abc123XYZ", "data": {"seen": ["ghp_abc123XYZ"]}}});
        inj.scrub_message(&mut m);
        assert_eq!(m["error"], json!({"code": -32000, "message": "bad ***", "data": {"seen": ["***"]}}));
        let mut ok = json!({"result": {"content": [{"type": "text", "text": "ghp_abc123XYZ"}]}});
        inj.scrub_message(&mut ok);
        assert_eq!(ok["result"]["content"][0]["text"], "ghp_abc123XYZ", "a successful result is the user's own data");
        let mut tool_err = json!({"result": {"isError": true, "content": [{"type": "text", "text": "rejected ghp_abc123XYZ"}]}});
        inj.scrub_message(&mut tool_err);
        assert_eq!(tool_err["result"]["content"][0]["text"], "rejected ***");
    }

    #[test]
    fn debug_never_prints_a_value() {
        let shown = format!("{:?}", Injected::new(["ghp_abc123XYZ"]));
        assert!(shown.starts_with("Injected(") && !shown.contains("ghp_"), "{shown}");
    }
}
