//! Service tokens at rest: AES-256-GCM (RustCrypto `aes-gcm`), a random
//! 96-bit nonce per value, associated data `user + "\0" + token name`, so a
//! ciphertext moved to another user or token name fails to decrypt
//! (issue 5, docs/decisions.md D6).
//!
//! The 32-byte key comes from `MCPHUB_SECRET_KEY_FILE` (a file holding 64 hex
//! chars, or exactly 32 raw bytes) or `MCPHUB_SECRET_KEY` (64 hex chars). The
//! key never appears in a message.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use serde::{Deserialize, Serialize};

/// Env var naming a file with the secret key.
pub const KEY_FILE_ENV: &str = "MCPHUB_SECRET_KEY_FILE";
/// Env var holding the secret key as 64 hex chars.
pub const KEY_ENV: &str = "MCPHUB_SECRET_KEY";
/// The message given when a run-time token cannot be stored for lack of a key.
pub const NO_KEY_MESSAGE: &str = "the hub has no secret key to encrypt tokens at rest: set MCPHUB_SECRET_KEY_FILE \
     (a file with 64 hex chars, e.g. from `openssl rand -hex 32`) or MCPHUB_SECRET_KEY, and restart";

/// Why a secret key could not be read (never contains the key).
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file cannot be read.
    #[error("{KEY_FILE_ENV}: cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    /// The value is not 64 hex chars (or 32 raw bytes for a file).
    #[error("{0}: the secret key must be 64 hex characters (32 bytes; a key file may also hold 32 raw bytes)")]
    Shape(&'static str),
}

/// The AES-256 key for tokens at rest. `Debug` prints `SecretKey(***)`.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(***)")
    }
}

/// One encrypted token as stored: `{"alg": "A256GCM", "nonce": b64(12 bytes),
/// "ct": b64(ciphertext + 16-byte tag)}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// Always `A256GCM`.
    pub alg: String,
    /// Standard base64 of the 96-bit nonce.
    pub nonce: String,
    /// Standard base64 of ciphertext and tag.
    pub ct: String,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn aad(user: &str, token: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(user.len() + token.len() + 1);
    v.extend_from_slice(user.as_bytes());
    v.push(0);
    v.extend_from_slice(token.as_bytes());
    v
}

impl SecretKey {
    /// A key from 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> SecretKey {
        SecretKey(bytes)
    }

    /// A key from 64 hex chars (surrounding whitespace ignored).
    ///
    /// Errors: [`KeyError::Shape`] naming `source`.
    pub fn from_hex(text: &str, source: &'static str) -> Result<SecretKey, KeyError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut out).map_err(|_| KeyError::Shape(source))?;
        Ok(SecretKey(out))
    }

    /// A key file's content: 64 hex chars (a trailing newline is fine) or 32 raw bytes.
    pub fn from_file_bytes(bytes: &[u8]) -> Result<SecretKey, KeyError> {
        if let Ok(text) = std::str::from_utf8(bytes) {
            if let Ok(k) = SecretKey::from_hex(text, KEY_FILE_ENV) {
                return Ok(k);
            }
        }
        <[u8; 32]>::try_from(bytes).map(SecretKey).map_err(|_| KeyError::Shape(KEY_FILE_ENV))
    }

    /// The key the environment configures: `MCPHUB_SECRET_KEY_FILE` first,
    /// then `MCPHUB_SECRET_KEY`; `Ok(None)` when neither is set (or empty).
    pub fn from_env() -> Result<Option<SecretKey>, KeyError> {
        if let Some(path) = std::env::var_os(KEY_FILE_ENV).filter(|p| !p.is_empty()) {
            let bytes = std::fs::read(&path)
                .map_err(|source| KeyError::Read { path: std::path::Path::new(&path).display().to_string(), source })?;
            return SecretKey::from_file_bytes(&bytes).map(Some);
        }
        match std::env::var(KEY_ENV) {
            Ok(v) if !v.trim().is_empty() => SecretKey::from_hex(&v, KEY_ENV).map(Some),
            _ => Ok(None),
        }
    }

    /// Encrypts `value` as token `token` of user `user`.
    pub fn seal(&self, user: &str, token: &str, value: &str) -> Sealed {
        let cipher = Aes256Gcm::new(&self.0.into());
        let mut nonce = [0u8; 12];
        crate::random::fill(&mut nonce);
        let ad = aad(user, token);
        // Encryption fails only for inputs beyond 2^36 bytes; values are ≤ 8 KiB.
        let ct = cipher
            .encrypt(&Nonce::from(nonce), Payload { msg: value.as_bytes(), aad: &ad })
            .unwrap_or_default();
        Sealed { alg: "A256GCM".into(), nonce: b64().encode(nonce), ct: b64().encode(ct) }
    }

    /// Decrypts token `token` of user `user`; `None` when the key, the user,
    /// the token name or the bytes do not match what was sealed.
    pub fn open(&self, user: &str, token: &str, sealed: &Sealed) -> Option<String> {
        if sealed.alg != "A256GCM" {
            return None;
        }
        let nonce: [u8; 12] = b64().decode(&sealed.nonce).ok()?.try_into().ok()?;
        let ct = b64().decode(&sealed.ct).ok()?;
        let cipher = Aes256Gcm::new(&self.0.into());
        let plain = cipher.decrypt(&Nonce::from(nonce), Payload { msg: &ct, aad: &aad(user, token) }).ok()?;
        String::from_utf8(plain).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_tokens_open_only_for_their_user_and_name() {
        let k = SecretKey::from_hex(&"ab".repeat(32), KEY_ENV).unwrap();
        let s = k.seal("alice", "GITHUB_TOKEN", "ghp_secret");
        assert!(!s.ct.contains("ghp_secret"));
        assert_eq!(k.open("alice", "GITHUB_TOKEN", &s).as_deref(), Some("ghp_secret"));
        assert_eq!(k.open("bob", "GITHUB_TOKEN", &s), None, "moved to another user");
        assert_eq!(k.open("alice", "JIRA_TOKEN", &s), None, "moved to another token");
        let other = SecretKey::from_bytes([7; 32]);
        assert_eq!(other.open("alice", "GITHUB_TOKEN", &s), None, "another key");
        assert_ne!(k.seal("alice", "GITHUB_TOKEN", "ghp_secret").nonce, s.nonce, "a fresh nonce each time");
    }

    #[test]
    fn keys_parse_from_hex_or_raw_bytes_and_never_print() {
        assert!(SecretKey::from_file_bytes(format!("{}\n", "0f".repeat(32)).as_bytes()).is_ok());
        assert!(SecretKey::from_file_bytes(&[1u8; 32]).is_ok());
        let e = SecretKey::from_file_bytes(b"short").unwrap_err().to_string();
        assert!(e.contains("64 hex") && !e.contains("short"), "{e}");
        assert!(SecretKey::from_hex("zz", KEY_ENV).is_err());
        assert_eq!(format!("{:?}", SecretKey::from_bytes([9; 32])), "SecretKey(***)");
    }
}
