#!/usr/bin/env python3
"""Load shapes for the memory rows of scripts/bench.sh (loopback only).

  memory.py sessions PORT N
      N legacy `initialize` requests to http://127.0.0.1:PORT/mcp on one
      keep-alive connection (nothing else: the sessions stay idle on the
      server); prints "sessions=<minted> failed=<n>".

  memory.py conns PORT N READY_FILE STOP_FILE [MAX_SECS]
      Opens N TCP connections, sends one `GET /healthz` (HTTP/1.1,
      keep-alive) on each and reads its answer, then writes
      "open=<n> failed=<n>" to READY_FILE and holds them all open until
      STOP_FILE exists (or MAX_SECS, default 60, have passed).

Exit status 0 when it ran (failures counted), 2 on bad arguments.
"""
import http.client
import json
import os
import socket
import sys
import time

INIT = json.dumps({
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {},
               "clientInfo": {"name": "bench-memory", "version": "1"}},
})


def sessions(port, n):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    minted = failed = 0
    for _ in range(n):
        try:
            conn.request("POST", "/mcp", INIT, {
                "Content-Type": "application/json",
                "Accept": "application/json, text/event-stream",
            })
            r = conn.getresponse()
            r.read()
            if r.status == 200 and r.getheader("Mcp-Session-Id"):
                minted += 1
            else:
                failed += 1
        except (OSError, http.client.HTTPException):
            failed += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.close()
    print(f"sessions={minted} failed={failed}")


def read_answer(s):
    """Reads one HTTP answer with a Content-Length body; True when it was 200."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            return False
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    while len(body) < length:
        chunk = s.recv(4096)
        if not chunk:
            return False
        body += chunk
    return head.startswith(b"HTTP/1.1 200")


def conns(port, n, ready_file, stop_file, max_secs):
    held, failed = [], 0
    req = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    for _ in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(req)
            if read_answer(s):
                held.append(s)
            else:
                failed += 1
                s.close()
        except OSError:
            failed += 1
    with open(ready_file + ".tmp", "w") as f:
        f.write(f"open={len(held)} failed={failed}\n")
    os.rename(ready_file + ".tmp", ready_file)
    deadline = time.monotonic() + max_secs
    while not os.path.exists(stop_file) and time.monotonic() < deadline:
        time.sleep(0.05)
    for s in held:
        s.close()


def main(argv):
    try:
        if argv[1] == "sessions":
            sessions(int(argv[2]), int(argv[3]))
        elif argv[1] == "conns":
            conns(int(argv[2]), int(argv[3]), argv[4], argv[5], float(argv[6]) if len(argv) > 6 else 60.0)
        else:
            raise ValueError(argv[1])
    except (IndexError, ValueError) as e:
        print(f"memory.py: bad arguments ({e}); see the docstring", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
