#!/usr/bin/env python3
"""Pull the JSON-RPC response out of an HTTP body saved by curl (scripts/e2e.sh).

Usage: rpc.py BODY_FILE [ID]

The body is either one JSON object (Content-Type: application/json) or a
text/event-stream; for a stream, every `data:` event is parsed and the first
JSON-RPC response (an object with "result" or "error") whose id equals ID (when
given) is printed. Prints it as one compact JSON line; exits 1 with a reason on
stderr when there is none. Stdlib only (runs on the system python3).
"""

import json
import sys


def candidates(text):
    stripped = text.strip()
    if stripped.startswith("{") or stripped.startswith("["):
        try:
            doc = json.loads(stripped)
        except ValueError as e:
            raise SystemExit(f"body is not valid JSON: {e}")
        yield from (doc if isinstance(doc, list) else [doc])
        return
    # text/event-stream: events separated by blank lines, data lines joined by \n
    data = []
    for line in text.splitlines() + [""]:
        if line == "":
            if data:
                try:
                    yield json.loads("\n".join(data))
                except ValueError:
                    pass
                data = []
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" ") if line[5:6] == " " else line[5:])


def main():
    path = sys.argv[1]
    want_id = sys.argv[2] if len(sys.argv) > 2 else None
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    if not text.strip():
        sys.exit("empty body")
    for msg in candidates(text):
        if not isinstance(msg, dict) or ("result" not in msg and "error" not in msg):
            continue
        if want_id is not None and str(msg.get("id")) != want_id:
            continue
        print(json.dumps(msg, separators=(",", ":")))
        return
    sys.exit("no JSON-RPC response" + (f" with id {want_id}" if want_id else "") + " in body")


if __name__ == "__main__":
    main()
