#!/usr/bin/env python3
"""Raw MCP steps for scripts/cluster-test.sh and scripts/bench-cluster.sh (Python stdlib only, one
new connection per request, so a round-robin balancer sends consecutive requests to consecutive
instances).

  raw_mcp.py resume URL KEY     legacy session; tools/call `progress` (steps 8, 300 ms apart, with a
                                progressToken) read until 2 events with ids, then the connection is
                                cut; GET with Last-Event-ID (and the session) resumes the stream: it
                                must carry the rest (progress after the last seen one, then the
                                result) and nothing already seen.
  raw_mcp.py inits URL KEY N    N legacy sessions: initialize + notifications/initialized each.
  raw_mcp.py calls URL KEY N TOOL ARGS_JSON
                                one legacy session, then N tools/call of TOOL, one by one.

Prints `info:` lines and, for inits/calls, `done N`; on failure `FAIL: reason` last and exit 1.
"""

from __future__ import annotations

import http.client
import json
import sys
import time
import urllib.parse

LEGACY = "2025-11-25"
TIMEOUT = 30


class Fail(Exception):
    pass


def conn_for(url: str) -> tuple[http.client.HTTPConnection, str]:
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=TIMEOUT)
    return c, (u.path or "/") + (("?" + u.query) if u.query else "")


def headers(key: str, session: str | None = None, extra: dict | None = None) -> dict:
    h = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream", "Authorization": f"Bearer {key}"}
    if session:
        h["Mcp-Session-Id"] = session
        h["MCP-Protocol-Version"] = LEGACY
    h.update(extra or {})
    return h


def events(resp):
    """SSE events of a response as (id, data) pairs, as they arrive."""
    ev_id, data = None, []
    while True:
        line = resp.readline()
        if not line:
            if data:
                yield ev_id, "\n".join(data)
            return
        line = line.decode("utf-8", "replace").rstrip("\r\n")
        if line == "":
            if data:
                yield ev_id, "\n".join(data)
            ev_id, data = None, []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "id":
                ev_id = value
            elif field == "data":
                data.append(value)


def post(url: str, key: str, msg: dict, session: str | None = None):
    c, path = conn_for(url)
    c.request("POST", path, body=json.dumps(msg), headers=headers(key, session))
    return c, c.getresponse()


def answer_of(resp, rid) -> dict:
    if resp.getheader("Content-Type", "").startswith("text/event-stream"):
        for _, data in events(resp):
            try:
                m = json.loads(data)
            except ValueError:
                continue
            if m.get("id") == rid and "method" not in m:
                return m
        raise Fail(f"no answer to id {rid} in the SSE stream")
    body = resp.read()
    try:
        return json.loads(body)
    except ValueError:
        raise Fail(f"HTTP {resp.status}: {body[:200]!r}") from None


def session(url: str, key: str) -> str:
    c, r = post(url, key, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "cluster-raw", "version": "1"}}})
    sid = r.getheader("Mcp-Session-Id")
    a = answer_of(r, 1)
    c.close()
    if r.status != 200 or not sid or "result" not in a:
        raise Fail(f"initialize: HTTP {r.status}, session {sid!r}, answer {str(a)[:200]}")
    c, r = post(url, key, {"jsonrpc": "2.0", "method": "notifications/initialized"}, sid)
    r.read()
    c.close()
    if r.status not in (200, 202):
        raise Fail(f"notifications/initialized: HTTP {r.status}")
    return sid


def resume(url: str, key: str) -> None:
    sid = session(url, key)
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "progress", "arguments": {"steps": 8, "ms": 300}, "_meta": {"progressToken": "cluster-p"}}}
    c, r = post(url, key, call, sid)
    if r.status != 200 or not r.getheader("Content-Type", "").startswith("text/event-stream"):
        raise Fail(f"tools/call progress: HTTP {r.status} {r.getheader('Content-Type')}, want an SSE stream: {r.read()[:200]!r}")
    seen: list[tuple[str, str]] = []
    for ev_id, data in events(r):
        if ev_id:
            seen.append((ev_id, data))
        if len([s for s in seen if '"notifications/progress"' in s[1]]) >= 2:
            break
    last = seen[-1][0] if seen else None
    # cut the connection mid-stream (the client goes away, as on a network break)
    c.sock.close()
    c.close()
    if not last:
        raise Fail(f"the call's stream carried no event ids before the cut: {seen}")
    print(f"info: session {sid[:8]}…; cut after {len(seen)} events, Last-Event-ID {last}", flush=True)
    t0 = time.monotonic()
    c, path = conn_for(url)
    c.request("GET", path, headers=headers(key, sid, {"Accept": "text/event-stream", "Last-Event-ID": last}))
    r = c.getresponse()
    if r.status != 200:
        raise Fail(f"GET with Last-Event-ID {last}: HTTP {r.status} {r.read()[:200]!r}")
    resumed: list[tuple[str, str]] = []
    result = None
    for ev_id, data in events(r):
        resumed.append((ev_id, data))
        try:
            m = json.loads(data)
        except ValueError:
            continue
        if m.get("id") == 2 and "method" not in m:
            result = m
            break
    c.close()
    seen_ids = {i for i, _ in seen}
    again = [i for i, _ in resumed if i in seen_ids]
    if again:
        raise Fail(f"the resumed stream repeated events already seen: {again}")
    progress_after = sum('"notifications/progress"' in d for _, d in resumed)
    if result is None or "result" not in result:
        raise Fail(f"the resumed stream ended without the call's result; it carried {len(resumed)} events: {[d[:80] for _, d in resumed][:5]}")
    print(f"info: resumed stream: {len(resumed)} events ({progress_after} progress, then the result) in "
          f"{time.monotonic() - t0:.2f}s; result {json.dumps(result['result'])[:120]}", flush=True)
    if progress_after < 1:
        raise Fail("the resumed stream carried no progress after the last seen event")


def inits(url: str, key: str, n: int) -> None:
    for _ in range(n):
        session(url, key)
    print(f"done {n}", flush=True)


def calls(url: str, key: str, n: int, tool: str, args: dict) -> None:
    sid = session(url, key)
    for i in range(n):
        c, r = post(url, key, {"jsonrpc": "2.0", "id": 10 + i, "method": "tools/call", "params": {"name": tool, "arguments": args}}, sid)
        a = answer_of(r, 10 + i)
        c.close()
        if r.status != 200 or "result" not in a or a["result"].get("isError"):
            raise Fail(f"tools/call {tool} #{i}: HTTP {r.status} {str(a)[:200]}")
    print(f"done {n}", flush=True)


def main() -> None:
    try:
        cmd, url, key = sys.argv[1], sys.argv[2], sys.argv[3]
        if cmd == "resume":
            resume(url, key)
        elif cmd == "inits":
            inits(url, key, int(sys.argv[4]))
        elif cmd == "calls":
            calls(url, key, int(sys.argv[4]), sys.argv[5], json.loads(sys.argv[6]))
        else:
            raise Fail(f"unknown command {cmd}")
    except Exception as e:  # noqa: BLE001 - reported as the failure line
        print(f"FAIL: {type(e).__name__ if not isinstance(e, Fail) else ''}{': ' if not isinstance(e, Fail) else ''}{e}", flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
