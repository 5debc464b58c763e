//! Deterministic fuzz smoke test of the sans-IO request reader (what `make
//! test` runs; the coverage-guided fuzzer is `fuzz/`). Random and mutated
//! requests from a fixed seed are fed in random splits; the reader must never
//! panic, every error must be one of 400/413/431/505, and a completed request
//! must respect the limits.

use mcphub::http::parse::{Limits, Outcome, RequestReader};

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const SEEDS: &[&[u8]] = &[
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /mcp HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n0\r\nT: v\r\n\r\n",
    b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
    b"GET / HTTP/2.0\r\n\r\n",
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.1\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"HEAD /x?y=%20 HTTP/1.1\r\nConnection: close\r\n\r\n",
];

const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b":",
    b" ",
    b"HTTP/1.1",
    b"HTTP/9.9",
    b"Content-Length: ",
    b"Transfer-Encoding: chunked",
    b"99999999999999999999",
    b"ffffffffffffffff",
    b"0\r\n\r\n",
    b"\x00",
    b"\xff",
    b";",
    b"100-continue",
];

fn mutate(rng: &mut XorShift, input: &mut Vec<u8>) {
    for _ in 0..=rng.below(4) {
        let pos = rng.below(input.len() + 1);
        match rng.below(6) {
            0 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] = rng.next() as u8;
            }
            1 if !input.is_empty() => {
                let end = (pos + rng.below(8)).min(input.len());
                input.drain(pos.min(end)..end);
            }
            2 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                input.splice(pos..pos, t.iter().copied());
            }
            3 => {
                let n = rng.below(32);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                input.splice(pos..pos, bytes);
            }
            4 => {
                let s = SEEDS[rng.below(SEEDS.len())];
                input.extend_from_slice(s);
            }
            _ => {
                let n = rng.below(300);
                input.splice(pos..pos, std::iter::repeat_n(b'a', n));
            }
        }
    }
}

/// Feeds `input` in random pieces; checks every outcome.
fn drive(rng: &mut XorShift, input: &[u8], limits: Limits) -> (usize, usize) {
    let peer = "127.0.0.1:1".parse().expect("addr");
    let mut r = RequestReader::new(limits, peer);
    let (mut done, mut errors) = (0, 0);
    let mut off = 0;
    let mut continues = 0;
    while off < input.len() {
        let n = 1 + rng.below((input.len() - off).min(64));
        r.feed(&input[off..off + n]);
        off += n;
        loop {
            match r.advance() {
                Outcome::NeedMore => break,
                Outcome::Continue100 => {
                    continues += 1;
                    assert!(continues < 10_000);
                }
                Outcome::Complete(p) => {
                    done += 1;
                    assert!(p.request.body.len() <= limits.max_body_bytes);
                    assert!(p.minor_version <= 1);
                    assert!(!p.request.method.is_empty());
                }
                Outcome::Error(s) => {
                    assert!([400, 413, 431, 505].contains(&s), "status {s}");
                    errors += 1;
                    // Sticky: the same error again.
                    assert!(matches!(r.advance(), Outcome::Error(t) if t == s));
                    return (done, errors);
                }
            }
        }
    }
    (done, errors)
}

#[test]
fn request_reader_never_panics_on_random_and_mutated_input() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let limits = Limits {
        max_head_bytes: 512,
        max_body_bytes: 256,
    };
    let (mut done, mut errors) = (0, 0);
    for i in 0..20_000 {
        let mut input = if i % 5 == 0 {
            (0..rng.below(600)).map(|_| rng.next() as u8).collect()
        } else {
            SEEDS[rng.below(SEEDS.len())].to_vec()
        };
        if i % 5 != 0 {
            mutate(&mut rng, &mut input);
        }
        let (d, e) = drive(&mut rng, &input, limits);
        done += d;
        errors += e;
    }
    eprintln!("fuzz smoke: 20000 inputs, {done} requests completed, {errors} refused");
    assert!(
        done > 1000 && errors > 1000,
        "the corpus should exercise both paths"
    );
}

#[test]
fn same_outcome_whatever_the_split() {
    let mut rng = XorShift(42);
    let limits = Limits {
        max_head_bytes: 512,
        max_body_bytes: 256,
    };
    for i in 0..3_000 {
        let mut input = SEEDS[i % SEEDS.len()].to_vec();
        mutate(&mut rng, &mut input);
        let whole = {
            let mut r = RequestReader::new(limits, "127.0.0.1:1".parse().expect("addr"));
            r.feed(&input);
            outcome_kind(&mut r)
        };
        let split = {
            let mut r = RequestReader::new(limits, "127.0.0.1:1".parse().expect("addr"));
            let mut last = String::from("need");
            for b in &input {
                r.feed(&[*b]);
                let k = outcome_kind(&mut r);
                if k != "need" {
                    last = k;
                    break;
                }
            }
            last
        };
        // Byte-by-byte may ask for 100-continue where the whole input does not.
        if split != "continue" {
            assert_eq!(whole, split, "input {:?}", String::from_utf8_lossy(&input));
        }
    }
}

fn outcome_kind(r: &mut RequestReader) -> String {
    match r.advance() {
        Outcome::NeedMore => "need".into(),
        Outcome::Continue100 => "continue".into(),
        Outcome::Complete(p) => format!("complete {} {:?}", p.request.target, p.request.body),
        Outcome::Error(s) => format!("error {s}"),
    }
}
