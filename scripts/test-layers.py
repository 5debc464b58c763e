#!/usr/bin/env python3
"""Counts the workspace's tests by layer (issue 15): pure, unit with time or
threads, loopback sockets, Redis, processes. A test's layer is the heaviest
part its file uses (a heuristic over the source: the file's imports and calls),
so a file mixing layers counts wholly in its heaviest one.

Usage: scripts/test-layers.py [ROOT]   (ROOT defaults to the repository)"""
import os, re, sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYERS = ["pure", "time/threads", "sockets", "redis", "processes"]
SIGNS = [  # heaviest first
    ("processes", r"HubProcess|Command::new|process::Command|cargo_bin|CARGO_BIN_EXE"),
    ("redis", r"RedisServer|redis-server"),
    ("sockets", r"TcpStream|TcpListener|hub_util::|http_util::|fake_upstream|MockServer|::serve\(|\.url\(\)"),
    ("time/threads", r"thread::spawn|thread::sleep|Instant::now|Duration::from|std::thread|crossbeam"),
]
TEST = re.compile(r"#\[test\]")

def layer(text):
    for name, pat in SIGNS:
        if re.search(pat, text):
            return name
    return "pure"

def test_blocks(text):
    """(test count, text of the tests module) of a src file: only its #[cfg(test)] part."""
    i = text.find("#[cfg(test)]")
    part = text[i:] if i >= 0 else text  # a tests.rs included under #[cfg(test)] by its parent
    return len(TEST.findall(part)), part

counts = {l: 0 for l in LAYERS}
for dirpath, dirs, files in os.walk(ROOT):
    dirs[:] = [d for d in dirs if d not in ("target", ".git", "node_modules", "fuzz")]
    for f in files:
        if not f.endswith(".rs"):
            continue
        p = os.path.join(dirpath, f)
        text = open(p, encoding="utf-8", errors="replace").read()
        if "/tests/" in p:
            n, body = len(TEST.findall(text)), text
        else:
            n, body = test_blocks(text)
        if n:
            counts[layer(body)] += n
total = sum(counts.values())
for l in LAYERS:
    print(f"{l:13} {counts[l]:5}")
print(f"{'total':13} {total:5}")
