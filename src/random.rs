//! Random bytes from the operating system, with one failure policy for the
//! whole hub: a failing generator (an OS without an entropy source) is a
//! panic, never a fallback to a predictable value — hub keys, session ids,
//! task ids, lock tokens and AES-GCM nonces must not be guessable, and a
//! request id is not worth a second policy. On Linux `getrandom(2)` fails
//! only before the kernel's pool is first initialised, long before a
//! service starts. A panic on a request's thread is answered 500 by the
//! HTTP layer; the worker survives.
//!
//! Bottom layer (docs/module-order.md): imports nothing of the crate.

/// The message of the panic when the generator fails.
const UNAVAILABLE: &str = "the operating system's random number generator is unavailable";

/// Fills `buf` with OS randomness. Panics when the generator fails (module doc).
pub fn fill(buf: &mut [u8]) {
    getrandom::fill(buf).expect(UNAVAILABLE);
}

/// `N` random bytes.
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    fill(&mut b);
    b
}

/// `N` random bytes as `2 × N` lowercase hex characters.
pub fn hex<const N: usize>() -> String {
    let mut b = [0u8; N];
    fill(&mut b);
    hex::encode(b)
}

/// `base` ±20 %, uniformly: the jitter of every back-off (seeds/004:
/// jittered exponential back-off, so that many waiters do not retry in step).
pub fn jittered(base: std::time::Duration) -> std::time::Duration {
    let jitter = (u64::from_le_bytes(bytes::<8>()) % 401) as f64 / 1000.0 - 0.2;
    base.mul_f64(1.0 + jitter)
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_has_the_asked_length_and_differs_between_calls() {
        let (a, b) = (super::hex::<16>(), super::hex::<16>());
        assert_eq!((a.len(), b.len()), (32, 32));
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{a}");
        assert_ne!(a, b);
    }
}
