//! Coverage-guided fuzzing of the sans-IO HTTP request reader.
//!
//! Run (stable toolchain; cargo-fuzz needs nightly flags, RUSTC_BOOTSTRAP unlocks them):
//!
//! ```sh
//! cargo install cargo-fuzz
//! cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run request_reader -- -max_total_time=300
//! ```
//!
//! Input layout: the first byte seeds the split sizes, the rest is the byte
//! stream of one connection (fed in pieces, as a socket would deliver it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcphub::http::parse::{Limits, Outcome, RequestReader};

fuzz_target!(|data: &[u8]| {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        max_head_bytes: 1024,
        max_body_bytes: 512,
    };
    let mut r = RequestReader::new(limits, "127.0.0.1:1".parse().expect("addr"));
    let step = 1 + (seed as usize % 17);
    for piece in stream.chunks(step) {
        r.feed(piece);
        loop {
            match r.advance() {
                Outcome::NeedMore => break,
                Outcome::Continue100 => {}
                Outcome::Complete(p) => {
                    assert!(p.request.body.len() <= limits.max_body_bytes);
                    assert!(p.minor_version <= 1);
                }
                Outcome::Error(s) => {
                    assert!(matches!(s, 400 | 413 | 431 | 505), "status {s}");
                    return;
                }
            }
        }
    }
});
