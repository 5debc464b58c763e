#!/usr/bin/env python3
"""Load shapes for the `sessions` and `users` curves of `make bench-scale`
(scripts/bench/scale-sessions.sh, scale-users.sh). Loopback only; every
request goes over a few keep-alive connections (one per worker process).

  scale.py sessions PORT N CONNS
      N legacy `initialize` requests to http://127.0.0.1:PORT/mcp, spread over
      CONNS processes with one keep-alive connection each; prints
      "sessions=<minted> failed=<n> secs=<wall> last=<epoch of the last answer>".

  scale.py init PORT
      One legacy `initialize`; prints "status=<code> ms=<wall>".

  scale.py users-config N MOCK_PORT CONFIG_OUT KEYS_OUT
      Writes a hub config with N users (user-0 … user-N-1), each with one hub
      key (its SHA-256 digest in the config) and a token CRED = "cred-<i>",
      and one legacy server `m` on MOCK_PORT whose header X-Cred is
      ${user.CRED}; the keys, one a line, go to KEYS_OUT. Keys are
      `mcphub_` + 64 hex, derived from the user's index (a benchmark, not a
      secret).

  scale.py users-list PORT KEYS CONNS
      Each key of the file KEYS sends one modern `tools/list`, spread over
      CONNS processes with one keep-alive connection each; an answer counts
      as ok when it is 200 and lists the caller's private tool (the mock's
      reflect mode: `private-who-…`). Prints "listed=<ok> failed=<n> secs=<wall>".

  scale.py metric PORT NAME
      The value of the Prometheus sample NAME (exact, labels included) from
      /metrics; empty when absent.

Exit status 0 when it ran (failures counted), 2 on bad arguments.
"""
import hashlib
import http.client
import json
import multiprocessing
import sys
import time

INIT = json.dumps({
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {},
               "clientInfo": {"name": "bench-scale", "version": "1"}},
})
MODERN = "2026-07-28"
LIST = json.dumps({
    "jsonrpc": "2.0", "id": 1, "method": "tools/list",
    "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": MODERN,
                         "io.modelcontextprotocol/clientInfo": {"name": "bench-scale", "version": "1"},
                         "io.modelcontextprotocol/clientCapabilities": {}}},
})
HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def key_of(i):
    return "mcphub_" + hashlib.sha256(f"bench-scale-user-{i}".encode()).hexdigest()


def split(n, k):
    """n items into k near-equal (start, count) ranges."""
    k = max(1, min(k, n)) if n else 1
    base, extra = divmod(n, k)
    out, start = [], 0
    for j in range(k):
        c = base + (1 if j < extra else 0)
        out.append((start, c))
        start += c
    return out


def _post(conn_box, port, body, headers):
    """POST /mcp on the kept connection (reopened once after a failure); (status, headers, body) or None."""
    for _ in range(2):
        try:
            conn_box[0].request("POST", "/mcp", body, headers)
            r = conn_box[0].getresponse()
            data = r.read()
            return r.status, r, data
        except (OSError, http.client.HTTPException):
            conn_box[0].close()
            conn_box[0] = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    return None


def _init_worker(args):
    port, count = args
    box = [http.client.HTTPConnection("127.0.0.1", port, timeout=30)]
    ok = failed = 0
    for _ in range(count):
        got = _post(box, port, INIT, HEADERS)
        if got and got[0] == 200 and got[1].getheader("Mcp-Session-Id"):
            ok += 1
        else:
            failed += 1
    box[0].close()
    return ok, failed, time.time()


def sessions(port, n, conns):
    t0 = time.monotonic()
    with multiprocessing.Pool(len(split(n, conns))) as pool:
        res = pool.map(_init_worker, [(port, c) for _, c in split(n, conns)])
    secs = time.monotonic() - t0
    print(f"sessions={sum(r[0] for r in res)} failed={sum(r[1] for r in res)} secs={secs:.2f} last={max(r[2] for r in res):.3f}")


def init_once(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    t0 = time.monotonic()
    got = _post([conn], port, INIT, HEADERS)
    ms = (time.monotonic() - t0) * 1000
    conn.close()
    print(f"status={got[0] if got else 0} ms={ms:.3f}")


def users_config(n, mock_port, config_out, keys_out):
    users = {}
    with open(keys_out, "w") as keys:
        for i in range(n):
            key = key_of(i)
            keys.write(key + "\n")
            users[f"user-{i}"] = {"keys": ["sha256:" + hashlib.sha256(key.encode()).hexdigest()], "tokens": {"CRED": f"cred-{i}"}}
    config = {
        "workers": 32,
        "users": users,
        "mcpServers": {"m": {"type": "streamable-http", "url": f"http://127.0.0.1:{mock_port}/mcp", "protocol": "legacy",
                             "headers": {"X-Cred": "${user.CRED}"}}},
    }
    with open(config_out, "w") as f:
        json.dump(config, f)


def _list_worker(args):
    port, keys = args
    box = [http.client.HTTPConnection("127.0.0.1", port, timeout=30)]
    ok = failed = 0
    for key in keys:
        h = dict(HEADERS, **{"Authorization": "Bearer " + key, "MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/list"})
        got = _post(box, port, LIST, h)
        if got and got[0] == 200 and b'"private-who-' in got[2]:
            ok += 1
        else:
            failed += 1
    box[0].close()
    return ok, failed


def users_list(port, keys_file, conns):
    keys = [k.strip() for k in open(keys_file) if k.strip()]
    t0 = time.monotonic()
    parts = [(port, keys[s:s + c]) for s, c in split(len(keys), conns)]
    with multiprocessing.Pool(len(parts)) as pool:
        res = pool.map(_list_worker, parts)
    print(f"listed={sum(r[0] for r in res)} failed={sum(r[1] for r in res)} secs={time.monotonic() - t0:.2f}")


def metric(port, name):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            print(line.split()[-1])
            return


def main(argv):
    try:
        cmd = argv[1]
        if cmd == "sessions":
            sessions(int(argv[2]), int(argv[3]), int(argv[4]))
        elif cmd == "init":
            init_once(int(argv[2]))
        elif cmd == "users-config":
            users_config(int(argv[2]), int(argv[3]), argv[4], argv[5])
        elif cmd == "users-list":
            users_list(int(argv[2]), argv[3], int(argv[4]))
        elif cmd == "metric":
            metric(int(argv[2]), argv[3])
        else:
            raise ValueError(cmd)
    except (IndexError, ValueError) as e:
        print(f"scale.py: bad arguments ({e}); see the docstring", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
