#!/usr/bin/env python3
"""Summarise a folded perf profile (inferno-collapse-perf output) for `make profile`.

    folded_summary.py FOLDED "BENCH rps=… requests=N …"

Prints the share of samples per thread kind and the inclusive share of the frames that name the
hub's stages (a frame counts once per stack; threads by the stack's first frame, the thread name,
since a DWARF unwind may stop short of a thread's entry point), and, with the wrk line's request count, the sampled
CPU µs per request of each (perf's cpu-clock events are in ns). Shares are of all samples of the
profiled process."""
import collections
import re
import sys

STAGES = [
    ("reactor thread (accept, read, parse, hand-off)", "^mcphub-http-rea"),
    ("worker threads, all", "^mcphub-http-wor"),
    ("  Handler::handle (the hub or the forwarder)", "serve::{{closure}}"),
    ("  response write (worker)", "mcphub::http::(write::write_all_budget|server::write_response)"),
    ("  Hub::observed (request log line, metrics)", "mcphub::hub::Hub::observed"),
    ("  Hub::post_message (JSON-RPC parse → answer)", "mcphub::hub::Hub::post_message"),
    ("  Upstream::request_open (upstream exchange)", "mcphub::upstream::Upstream::request_open"),
    ("    ureq send (request + answer head)", "ureq::run::run"),
    ("    answer body read", "HttpTransport::read_answer"),
    ("  serde_json parse (all)", "serde_json::de::from_trait"),
    ("  serde_json serialise (all)", "serde_json::ser::"),
    ("  malloc + free (all)", "__GI___libc_(malloc|free|realloc)"),
    ("  sendto syscalls", "__x64_sys_sendto"),
    ("  recvfrom syscalls", "__x64_sys_recvfrom"),
    ("  futex (wake-ups, locks)", "__x64_sys_futex"),
    ("  epoll", "__x64_sys_epoll_wait"),
]


def main() -> None:
    folded, wrk = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""
    m = re.search(r"requests=(\d+)", wrk)
    requests = int(m.group(1)) if m else 0
    total = 0
    hits = collections.Counter()
    for line in open(folded, encoding="utf-8", errors="replace"):
        stack, _, n = line.rstrip("\n").rpartition(" ")
        if not n.isdigit():
            continue
        n = int(n)
        total += n
        for label, pattern in STAGES:
            if re.search(pattern, stack):
                hits[label] += n
    if not total:
        print("no samples")
        return
    print(f"{'stage':52} {'share':>7} {'µs/req':>8}")
    for label, _ in STAGES:
        v = hits[label]
        per = f"{v / 1e3 / requests:8.1f}" if requests else "       ?"
        print(f"{label:52} {100 * v / total:6.1f}% {per}")
    per = f"{total / 1e3 / requests:8.1f}" if requests else "       ?"
    print(f"{'all samples of the process':52} {100.0:6.1f}% {per}")
    print("(sampled under perf, which inflates absolute cost; compare shares and before/after runs)")


if __name__ == "__main__":
    main()
