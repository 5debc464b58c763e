#!/usr/bin/env python3
"""`make attack`: the HTTP attack battery of docs/decisions.md D2a,
run against the real `mcphub` binary (not a test server).

A measurement tool run by hand, not part of `make test`. Prints one table row
per case (expected, observed, the hub's threads/fds/RSS before -> after, and
whether the hub survived: PID alive and `GET /healthz` 200 afterwards). Exits
1 if any case does not match its expectation or a hub died (hub log tails are
printed then), 2 if the set-up failed.

Python 3.11 stdlib only. Loopback only (127.0.0.1); every loop and wait is
bounded; every process started is stopped (also on Ctrl-C).

Hubs (all in front of one `mcphub-mock --era legacy`):
  A  workers 4, queue 4, head/body 2000 ms, idle 30 s, write budget 2000 ms
  B  like A but default pool (workers 32, queue 256) and idle 3 s
  C  like A but queue 256, started under `ulimit -n 48`
Env: BIN (directory of mcphub and mcphub-mock, default target/release).
"""
import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("BIN", os.path.join(ROOT, "target", "release"))
HOST = "127.0.0.1"
PROTO = "2026-07-28"

HEAD_MS = 2000
BODY_MS = 2000
WRITE_BUDGET_MS = 2000
IDLE_B_SECS = 3
FAST_S = 0.1  # "answers in ms": a normal request meanwhile must answer within this
MiB = 1024 * 1024


# ------------------------------------------------------------------ process stats


def stats(pid):
    """threads, fds, RSS (KiB) of a live process, from /proc; None if gone."""
    try:
        st = {}
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k == "Threads":
                    st["thr"] = int(v)
                elif k == "VmRSS":
                    st["rss"] = int(v.split()[0])
        st["fd"] = len(os.listdir(f"/proc/{pid}/fd"))
        return st
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def fmt(st):
    if st is None:
        return "gone"
    return f"thr {st['thr']} fd {st['fd']} rss {st['rss'] / 1024:.1f}M"


def fmt_pair(a, b):
    return f"{fmt(a)} -> {fmt(b)}"


# ------------------------------------------------------------------ HTTP client bits


def connect(port, timeout=5.0, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect((HOST, port))
    return s


class Closed(Exception):
    pass


def _recv_more(sock, buf, deadline):
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("deadline")
    sock.settimeout(left)
    data = sock.recv(65536)
    if not data:
        raise Closed(f"EOF after {len(buf)} bytes")
    return buf + data


def parse_head(raw):
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers


def read_head(sock, deadline, buf=b""):
    """(status, headers, bytes after the head)."""
    while b"\r\n\r\n" not in buf:
        buf = _recv_more(sock, buf, deadline)
    head, _, rest = buf.partition(b"\r\n\r\n")
    status, headers = parse_head(head)
    return status, headers, rest


def read_response(sock, deadline, buf=b""):
    """(status, headers, body, leftover) of one response (Content-Length, chunked or EOF)."""
    status, headers, buf = read_head(sock, deadline, buf)
    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(buf) < n:
            buf = _recv_more(sock, buf, deadline)
        return status, headers, buf[:n], buf[n:]
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            while b"\r\n" not in buf:
                buf = _recv_more(sock, buf, deadline)
            line, _, buf = buf.partition(b"\r\n")
            size = int(line.split(b";")[0], 16)
            while len(buf) < size + 2:
                buf = _recv_more(sock, buf, deadline)
            body += buf[:size]
            buf = buf[size + 2:]
            if size == 0:
                return status, headers, body, buf
    body = buf
    try:
        while True:
            body = _recv_more(sock, body, deadline)
    except Closed:
        pass
    return status, headers, body, b""


def get(path, extra=""):
    return f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n{extra}\r\n".encode()


def healthz(port, timeout=2.0):
    """(status or None, latency s, error text)."""
    t0 = time.monotonic()
    try:
        with connect(port, timeout) as s:
            s.sendall(get("/healthz", "Connection: close\r\n"))
            status, _, _, _ = read_response(s, t0 + timeout)
            return status, time.monotonic() - t0, ""
    except (OSError, Closed, ValueError, IndexError) as e:
        return None, time.monotonic() - t0, f"{type(e).__name__}: {e}"


def mcp_call(name, arguments, progress=False):
    meta = {
        "io.modelcontextprotocol/protocolVersion": PROTO,
        "io.modelcontextprotocol/clientInfo": {"name": "attack", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    if progress:
        meta["progressToken"] = progress if isinstance(progress, str) else "t"
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": name, "arguments": arguments, "_meta": meta}}).encode()
    head = (f"POST /mcp HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
            f"Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: {PROTO}\r\n"
            f"Mcp-Method: tools/call\r\nMcp-Name: {name}\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


def ms(seconds):
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


# ------------------------------------------------------------------ processes


class Proc:
    """A child process with its log in a file; stop() is idempotent."""

    def __init__(self, name, argv, log_path):
        self.name = name
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.p = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, cwd=ROOT)
        self.pid = self.p.pid
        self.port = None

    def alive(self):
        return self.p.poll() is None

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def tail(self, n=25):
        return "\n".join(self.log_text().splitlines()[-n:])

    def wait_log(self, needle, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_text()
            i = text.find(needle)
            if i >= 0:
                return text[i:].splitlines()[0]
            if not self.alive():
                break
            time.sleep(0.05)
        raise RuntimeError(f"{self.name}: no '{needle}' in its log within {timeout}s "
                           f"(alive={self.alive()})\n{self.tail()}")

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        self.log.close()


def port_of(line):
    # "... http://127.0.0.1:PORT/mcp ..."
    return int(line.split("http://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])


def start_mock(tmp, procs):
    m = Proc("mock", [os.path.join(BIN, "mcphub-mock"), "--port", "0", "--era", "legacy"],
             os.path.join(tmp, "mock.log"))
    procs.append(m)
    m.port = port_of(m.wait_log("listening on http://"))
    return m


def start_hub(tmp, procs, name, mock_port, ulimit_n=None, **cfg):
    conf = {"workers": 4, "queue": 4, "headTimeoutMs": HEAD_MS, "bodyTimeoutMs": BODY_MS,
            "idleTimeoutSecs": 30, "writeBudgetMs": WRITE_BUDGET_MS,
            "mcpServers": {"m": {"type": "http", "url": f"http://{HOST}:{mock_port}/mcp"}}}
    for k, v in cfg.items():
        if v is None:
            conf.pop(k, None)
        else:
            conf[k] = v
    path = os.path.join(tmp, f"hub-{name}.json")
    with open(path, "w") as f:
        json.dump(conf, f)
    argv = [os.path.join(BIN, "mcphub"), "serve", "--config", path, "--port", "0"]
    if ulimit_n is not None:
        # exec: the PID we hold is the hub itself, not the shell.
        argv = ["sh", "-c", f'ulimit -n {ulimit_n} && exec "$@"', "sh"] + argv
    h = Proc(f"hub {name}", argv, os.path.join(tmp, f"hub-{name}.log"))
    procs.append(h)
    h.port = port_of(h.wait_log("MCPHub listening on http://"))
    h.wait_log("catalog ready")
    deadline = time.monotonic() + 10
    while True:
        status, _, err = healthz(h.port, 1.0)
        if status == 200:
            break
        if time.monotonic() > deadline or not h.alive():
            raise RuntimeError(f"{h.name}: /healthz never 200 ({status} {err})\n{h.tail()}")
        time.sleep(0.05)
    h.conf = {k: v for k, v in conf.items() if k != "mcpServers"}
    return h


def settle(hub, timeout=5.0):
    """Wait (bounded) until the hub's fd and thread counts stop changing for 0.5 s."""
    deadline = time.monotonic() + timeout
    last, since = stats(hub.pid), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        cur = stats(hub.pid)
        if cur is None:
            return None
        if (cur["fd"], cur["thr"]) != (last["fd"], last["thr"]):
            last, since = cur, time.monotonic()
        elif time.monotonic() - since >= 0.5:
            return cur
    return stats(hub.pid)


def wait_until(pred, timeout, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


# ------------------------------------------------------------------ cases
# Each returns (expected, observed, ok, stats text); the runner adds "survived".


def case_huge_content_length(hub):
    before = settle(hub)
    with connect(hub.port) as s:
        t0 = time.monotonic()
        s.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100000000000000\r\n\r\n0123456789")
        status, _, _, _ = read_response(s, t0 + 5)
        lat = time.monotonic() - t0
    time.sleep(0.2)
    after = stats(hub.pid)
    drss = (after["rss"] - before["rss"]) / 1024
    ok = status == 413 and lat < 0.5 and drss < 2
    return ("413 at once (<500 ms); RSS +<2 MiB",
            f"{status} in {ms(lat)}; RSS {drss:+.1f} MiB", ok, fmt_pair(before, after))


def case_slow_body(hub):
    before = settle(hub)
    s = connect(hub.port)
    try:
        head, _, body = mcp_call("sleep", {"ms": 1}).partition(b"\r\n\r\n")
        head = head.replace(b"Content-Length: %d" % len(body), b"Content-Length: 100000")
        t0 = time.monotonic()
        s.sendall(head + b"\r\n\r\n" + b'{"jsonrpc"')
        time.sleep(0.5)
        h_status, h_lat, h_err = healthz(hub.port)
        status, _, _, _ = read_response(s, t0 + 8)
        el = time.monotonic() - t0
    finally:
        s.close()
    after = stats(hub.pid)
    lo, hi = BODY_MS / 1000 - 0.1, BODY_MS / 1000 + 1.0
    ok = status == 408 and lo <= el <= hi and h_status == 200 and h_lat < FAST_S
    return (f"408 after bodyTimeoutMs ({BODY_MS} ms; ok {lo:.1f}-{hi:.1f} s); other /healthz 200 <{ms(FAST_S)}",
            f"{status} after {el:.2f} s; other /healthz {h_status} in {ms(h_lat)} {h_err}".strip(),
            ok, fmt_pair(before, after))


def case_slowloris(hub, n=50):
    before = settle(hub)
    line = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"  # 1 byte/s: never completes in time
    socks, t_open, bufs, done = [], [], [b""] * n, {}
    try:
        for _ in range(n):
            s = connect(hub.port)
            s.setblocking(False)
            socks.append(s)
            t_open.append(time.monotonic())
        t_start = time.monotonic()
        normal, during = None, None
        for sec in range(10):  # bounded: 10 bytes, 10 s
            for i, s in enumerate(socks):
                if i not in done:
                    try:
                        s.send(line[sec:sec + 1])
                    except OSError as e:
                        done[i] = (None, time.monotonic() - t_open[i], type(e).__name__)
            tick_end = t_start + sec + 1
            while time.monotonic() < tick_end:
                for i, s in enumerate(socks):
                    if i in done:
                        continue
                    try:
                        data = s.recv(4096)
                    except BlockingIOError:
                        continue
                    except OSError as e:
                        done[i] = (None, time.monotonic() - t_open[i], type(e).__name__)
                        continue
                    if not data:
                        done[i] = (None, time.monotonic() - t_open[i], "EOF")
                        continue
                    bufs[i] += data
                    if b"\r\n" in bufs[i]:
                        done[i] = (int(bufs[i].split(b" ", 2)[1]), time.monotonic() - t_open[i], "")
                if sec == 0 and normal is None and time.monotonic() - t_start > 0.7:
                    normal = healthz(hub.port)
                    during = stats(hub.pid)
                if len(done) == n:
                    break
                time.sleep(0.02)
            if len(done) == n:
                break
    finally:
        for s in socks:
            s.close()
    after = settle(hub)
    codes = {}
    for st, _, why in done.values():
        k = st if st is not None else why
        codes[k] = codes.get(k, 0) + 1
    cut = [el for st, el, _ in done.values() if st == 408]
    lo, hi = HEAD_MS / 1000 - 0.1, HEAD_MS / 1000 + 1.0
    ok = (len(cut) == n and min(cut) >= lo and max(cut) <= hi
          and normal is not None and normal[0] == 200 and normal[1] < FAST_S)
    obs = (f"{codes} of {n}; cut after {min(cut) if cut else 0:.2f}-{max(cut) if cut else 0:.2f} s; "
           f"normal /healthz meanwhile {normal[0] if normal else None} in {ms(normal[1]) if normal else '-'}")
    return (f"{n}x408 at head deadline ({lo:.1f}-{hi:.1f} s); normal /healthz 200 <{ms(FAST_S)}",
            obs, ok, f"{fmt(before)} -> during {fmt(during)} -> {fmt(after)}")


def case_burst(hub, n):
    before = settle(hub)
    barrier = threading.Barrier(n)
    res = [None] * n

    def one(i):
        try:
            barrier.wait(10)
        except threading.BrokenBarrierError:
            res[i] = ("barrier", 0)
            return
        t0 = time.monotonic()
        try:
            with connect(hub.port, 10) as s:
                s.sendall(get("/healthz", "Connection: close\r\n"))
                st, _, _, _ = read_response(s, t0 + 10)
                res[i] = (st, time.monotonic() - t0)
        except (OSError, Closed, ValueError) as e:
            res[i] = (type(e).__name__, time.monotonic() - t0)

    ths = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    for t in ths:
        t.start()
    for t in ths:
        t.join(20)
    after = settle(hub)
    codes = {}
    for r in res:
        k = r[0] if r else "hung"
        codes[k] = codes.get(k, 0) + 1
    lats = [r[1] for r in res if r and r[0] == 200]
    ok = codes.get(200, 0) == n
    return (f"{n}/{n} answered 200",
            f"{codes}; latency max {ms(max(lats)) if lats else '-'}", ok, fmt_pair(before, after))


def case_idle_keepalive(hub, n=1000):
    idle = hub.conf["idleTimeoutSecs"]
    before = settle(hub)
    socks, t_last, failed = [], [], 0
    try:
        t_begin = time.monotonic()
        for _ in range(n):
            try:
                s = connect(hub.port, 5)
                s.sendall(get("/healthz"))
                st, _, _, _ = read_response(s, time.monotonic() + 5)
            except (OSError, Closed, ValueError):
                failed += 1
                continue
            socks.append(s)
            t_last.append(time.monotonic())
            if st != 200:
                failed += 1
        t_opened = time.monotonic() - t_begin
        during = stats(hub.pid)
        new_status, new_lat, new_err = healthz(hub.port)
        # Closed by the server? Poll all sockets (non-blocking) until EOF/RST, bounded.
        for s in socks:
            s.setblocking(False)
        closed_after = {}
        early_data = 0
        deadline = time.monotonic() + idle + 10
        while len(closed_after) < len(socks) and time.monotonic() < deadline:
            for i, s in enumerate(socks):
                if i in closed_after:
                    continue
                try:
                    data = s.recv(1)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data:
                    early_data += 1
                closed_after[i] = time.monotonic() - t_last[i]
            time.sleep(0.05)
    finally:
        for s in socks:
            s.close()
    after = settle(hub)
    cl = list(closed_after.values())
    lo, hi = idle - 0.1, idle + 2.0
    thr_ok = during["thr"] <= before["thr"] + 2
    rss_d = (during["rss"] - before["rss"]) / 1024
    ok = (failed == 0 and len(socks) == n and new_status == 200 and new_lat < FAST_S
          and thr_ok and rss_d < 16 and len(cl) == n and early_data == 0
          and min(cl) >= lo and max(cl) <= hi)
    obs = (f"{len(socks)}/{n} open+answered in {t_opened:.2f} s; new client {new_status} in {ms(new_lat)} {new_err}; "
           f"with {len(socks)} idle: thr {during['thr']} (was {before['thr']}), RSS {rss_d:+.1f} MiB, fd {during['fd']}; "
           f"server-closed {len(cl)}/{n} (recv b''), idle {min(cl) if cl else 0:.2f}-{max(cl) if cl else 0:.2f} s before close")
    return (f"new client 200 <{ms(FAST_S)}; thr +<=2, RSS +<16 MiB; all closed by server after idle "
            f"{idle} s ({lo:.1f}-{hi:.1f} s)", obs, ok,
            f"{fmt(before)} -> during {fmt(during)} -> {fmt(after)}")


def case_emfile(hub, n=60):
    before = settle(hub)
    socks, bufs, answered, refused = {}, {}, {}, 0
    rounds = []
    try:
        for i in range(n):
            try:
                s = connect(hub.port, 2)
                s.sendall(get("/healthz"))
                s.setblocking(False)
                socks[i] = s
                bufs[i] = b""
            except OSError:
                refused += 1
        during = None
        for rnd in range(8):  # bounded: 8 rounds of 1.5 s
            got = []
            end = time.monotonic() + 1.5
            while time.monotonic() < end and len(answered) < len(socks):
                for i, s in socks.items():
                    if i in answered:
                        continue
                    try:
                        data = s.recv(4096)
                    except BlockingIOError:
                        continue
                    except OSError as e:
                        answered[i] = type(e).__name__
                        got.append(i)
                        continue
                    if not data:
                        answered[i] = "EOF"
                        got.append(i)
                        continue
                    bufs[i] += data
                    if b"\r\n\r\n" in bufs[i] and bufs[i].endswith(b"}"):
                        answered[i] = int(bufs[i].split(b" ", 2)[1])
                        got.append(i)
                time.sleep(0.02)
            if during is None:
                during = stats(hub.pid)
            rounds.append(len(got))
            if len(answered) == len(socks):
                break
            # Free the hub's fds: close the connections it answered (keep-alive holds them).
            for i in got:
                socks[i].close()
    finally:
        for s in socks.values():
            s.close()
    after = settle(hub)
    time.sleep(0.2)
    new_status, new_lat, new_err = healthz(hub.port)
    accept_lines = [ln for ln in hub.log_text().splitlines() if "accept failed" in ln]
    codes = {}
    for v in answered.values():
        codes[v] = codes.get(v, 0) + 1
    first = rounds[0] if rounds else 0
    ok = (first < n and codes.get(200, 0) + refused == n and new_status == 200
          and len(accept_lines) > 0)
    sample = accept_lines[0].split("http: ", 1)[-1] if accept_lines else ""
    obs = (f"connect refused {refused}; answered per round (closing answered ones between rounds) {rounds} "
           f"-> {codes}, unanswered {len(socks) - len(answered)}; after closing all: new /healthz {new_status} in "
           f"{ms(new_lat)} {new_err}; 'accept failed' log lines: {len(accept_lines)} ('{sample}')")
    return ("first round < 60 answered (refused/delayed), accept loop keeps running: the rest answered "
            "as fds free up; afterwards 200; >=1 'accept failed' line", obs, ok,
            f"{fmt(before)} -> during {fmt(during)} -> {fmt(after)}")


def case_http2(hub, n=50):
    before = settle(hub)
    codes = {}
    for _ in range(n):
        t0 = time.monotonic()
        try:
            with connect(hub.port) as s:
                s.sendall(b"GET / HTTP/2.0\r\nHost: 127.0.0.1\r\n\r\n")
                st, _, _, _ = read_response(s, t0 + 5)
        except (OSError, Closed, ValueError) as e:
            st = type(e).__name__
        codes[st] = codes.get(st, 0) + 1
    after = settle(hub)
    ok = codes.get(505, 0) == n and after["fd"] == before["fd"] and after["thr"] == before["thr"]
    return (f"{n}x505; fd and thread counts equal before/after", f"{codes}", ok, fmt_pair(before, after))


def case_huge_header(hub):
    before = settle(hub)
    chunk = b"a" * 65536
    total, sent, status, how = 64 * MiB, 0, None, ""
    t0 = time.monotonic()
    with connect(hub.port, 5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX: ")
        buf = b""
        try:
            while sent < total:
                s.sendall(chunk)
                sent += len(chunk)
                try:
                    data = s.recv(65536, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    continue
                if not data:
                    how = "EOF"
                    break
                buf += data
                how = "answer"
                break
        except OSError as e:
            how = type(e).__name__
        try:
            status, _, _, _ = read_response(s, time.monotonic() + 3, buf)
        except (OSError, Closed, ValueError) as e:
            how += f", no answer ({type(e).__name__})"
    el = time.monotonic() - t0
    time.sleep(0.2)
    after = settle(hub)
    drss = (after["rss"] - before["rss"]) / 1024
    ok = status == 431 and drss < 2 and el < 3
    return ("431 after the 16 KiB head limit; RSS +<2 MiB",
            f"{status} after {sent / 1024:.0f} KiB of the 64 MiB line sent ({how}) in {ms(el)}; RSS {drss:+.1f} MiB",
            ok, fmt_pair(before, after))


def case_sse_stalled(hub):
    budget = hub.conf["writeBudgetMs"] / 1000
    limit = 3 * budget
    before = settle(hub)
    s = connect(hub.port, 5, rcvbuf=16384)
    try:
        t0 = time.monotonic()
        # mcphub-mock caps `steps` at 10,000 (~1.2 MB of events with token "t"), which the
        # loopback socket buffers (hub SO_SNDBUF autotunes up to tcp_wmem max, 4 MiB here)
        # absorb whole: the stream would complete without the hub ever blocking. The mock
        # echoes the token in every event, so a 2 KiB token makes the stream ~21 MB.
        token = "t" * 2048
        s.sendall(mcp_call("progress", {"steps": 200000, "ms": 0}, progress=token))
        status, headers, _ = read_head(s, t0 + 5)
        t_stop = time.monotonic()  # from here on: not reading
        time.sleep(0.3)
        during = stats(hub.pid)
        back = wait_until(lambda: (st := stats(hub.pid)) is not None and st["thr"] <= before["thr"], 30, 0.05)
        t_back = time.monotonic() - t_stop
        # Now drain: the socket must end (EOF or RST) without the stream having completed.
        drained, end, tail = 0, "timeout", b""
        deadline = time.monotonic() + 15
        try:
            while time.monotonic() < deadline:
                s.settimeout(max(0.01, deadline - time.monotonic()))
                data = s.recv(1 << 20)
                if not data:
                    end = "EOF"
                    break
                drained += len(data)
                tail = (tail + data)[-4096:]
        except ConnectionResetError:
            end = "RST"
        except TimeoutError:
            end = "still open after 15 s"
        t_end = time.monotonic() - t_stop
    finally:
        s.close()
    after = settle(hub)
    completed = b"progress done" in tail or tail.endswith(b"0\r\n\r\n")
    ok = (status == 200 and headers.get("content-type", "").startswith("text/event-stream")
          and during["thr"] > before["thr"] and back and t_back <= limit
          and end in ("EOF", "RST") and not completed)
    obs = (f"head {status} {headers.get('content-type')}; stream thread up (thr {during['thr']}); "
           f"thr back to {before['thr']} {t_back:.2f} s after client stopped reading; "
           f"drained {drained / 1024:.0f} KiB then {end} at {t_end:.2f} s; stream completed: {completed}")
    return (f"cut within 3 write budgets (<= {limit:.0f} s): thr back to baseline, socket EOF/RST, stream not completed",
            obs, ok, f"{fmt(before)} -> during {fmt(during)} -> {fmt(after)}")


def case_queue_full(hub, n=20):
    cap = hub.conf["workers"] + hub.conf["queue"]
    before = settle(hub)
    res = [None] * n
    socks = [None] * n
    barrier = threading.Barrier(n)

    def one(i):
        try:
            s = connect(hub.port, 15)
            socks[i] = s
            barrier.wait(10)
            t0 = time.monotonic()
            s.sendall(mcp_call("sleep", {"ms": 3000}))
            st, hdr, _, _ = read_response(s, t0 + 15)
            res[i] = (st, time.monotonic() - t0, "retry-after" in hdr)
        except (OSError, Closed, ValueError, threading.BrokenBarrierError) as e:
            res[i] = (type(e).__name__, 0, False)
        finally:
            if socks[i]:
                socks[i].close()

    ths = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    for t in ths:
        t.start()
    time.sleep(1.0)
    during = stats(hub.pid)
    for t in ths:
        t.join(25)
    after = settle(hub)
    busy = [r for r in res if r and r[0] == 503]
    good = [r for r in res if r and r[0] == 200]
    other = [r[0] if r else "hung" for r in res if not r or r[0] not in (200, 503)]
    busy_max = max((r[1] for r in busy), default=0)
    ok = (len(busy) == n - cap and len(good) == cap and all(r[2] for r in busy)
          and busy_max < 0.25 and not other)
    obs = (f"503: {len(busy)} (Retry-After on {sum(r[2] for r in busy)}), max latency {ms(busy_max)}; "
           f"200: {len(good)} in {ms(min((r[1] for r in good), default=0))}-{ms(max((r[1] for r in good), default=0))}"
           f"{'; other: ' + str(other) if other else ''}")
    return (f"{n - cap}x503 + Retry-After <250 ms; {cap}x200 (workers {hub.conf['workers']} + queue {hub.conf['queue']})",
            obs, ok, f"{fmt(before)} -> during {fmt(during)} -> {fmt(after)}")


def case_pipelined(hub):
    before = settle(hub)
    out = []
    with connect(hub.port) as s:
        for reqs in ([get("/healthz")] * 3, [get("/healthz"), get("/no-such-path"), get("/")]):
            s.sendall(b"".join(reqs))
            buf, got = b"", []
            deadline = time.monotonic() + 5
            for _ in reqs:
                st, _, body, buf = read_response(s, deadline, buf)
                got.append((st, body))
            out.append(got)
    after = stats(hub.pid)
    same = [st for st, _ in out[0]]
    mixed = [st for st, _ in out[1]]
    order_ok = (mixed == [200, 404, 200] and b"status" in out[1][0][1]
                and b"not found" in out[1][1][1] and b"MCPHub" in out[1][2][1])
    ok = same == [200, 200, 200] and order_ok
    return ("3x /healthz in one write -> 3x200; /healthz,/no-such-path,/ -> 200,404,200 in that order",
            f"{same}; {mixed} bodies in order: {order_ok}", ok, fmt_pair(before, after))


# ------------------------------------------------------------------ runner


def survived(hub):
    if not hub.alive():
        return False, f"DEAD (exit {hub.p.returncode})"
    for _ in range(3):
        status, lat, err = healthz(hub.port, 3)
        if status == 200:
            return hub.alive(), f"yes ({ms(lat)})"
        time.sleep(0.3)
    return False, f"no: /healthz {status} {err}"


def parse_args(argv):
    """Command-line options; `--help` prints the usage and exits 0."""
    parser = argparse.ArgumentParser(
        prog="attack.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--bin", default=BIN, metavar="DIR",
                        help=f"directory of mcphub and mcphub-mock (default: $BIN or {BIN})")
    return parser.parse_args(argv)


def main(argv=None):
    global BIN
    BIN = parse_args(argv).bin
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    for b in ("mcphub", "mcphub-mock"):
        if not os.access(os.path.join(BIN, b), os.X_OK):
            print(f"attack: {BIN}/{b} missing (cargo build --release)", file=sys.stderr)
            return 2
    procs = []
    tmp = tempfile.mkdtemp(prefix="mcphub-attack-")
    t_begin = time.monotonic()
    rows, failed = [], False
    try:
        mock = start_mock(tmp, procs)
        hub_a = start_hub(tmp, procs, "A", mock.port)
        hub_b = start_hub(tmp, procs, "B", mock.port, workers=None, queue=None, idleTimeoutSecs=IDLE_B_SECS)
        # queue 256: with queue 4 most of the 41 connections accepted at once get 503
        # (queue full), which is case 10, not what case 6 measures.
        hub_c = start_hub(tmp, procs, "C", mock.port, ulimit_n=48, queue=256)
        print(f"attack: RLIMIT_NOFILE {resource.getrlimit(resource.RLIMIT_NOFILE)}; mock :{mock.port} (legacy)")
        for h, note in ((hub_a, ""), (hub_b, " (default pool 32/256)"), (hub_c, " (queue 256, ulimit -n 48)")):
            print(f"  hub {h.name[-1]} :{h.port} pid {h.pid}{note} {json.dumps(h.conf)} idle: {fmt(stats(h.pid))}")
        sys.stdout.flush()

        cases = [
            ("1", "huge Content-Length, tiny body", hub_a, case_huge_content_length),
            ("2", "slow body (10 of 100000 B)", hub_a, case_slow_body),
            ("3", "slowloris 50 x 1 B/s", hub_a, case_slowloris),
            ("4a", "burst 70 new connections", hub_b, lambda h: case_burst(h, 70)),
            ("4b", "burst 200 new connections", hub_b, lambda h: case_burst(h, 200)),
            ("5", "1000 idle keep-alive", hub_b, case_idle_keepalive),
            ("6", "ulimit -n 48, 60 connections", hub_c, case_emfile),
            ("7", "GET / HTTP/2.0 x50", hub_a, case_http2),
            ("8", "64 MiB header line", hub_a, case_huge_header),
            ("9", "SSE client stops reading", hub_a, case_sse_stalled),
            ("10", "queue full: 20 x sleep 3000", hub_a, case_queue_full),
            ("11", "pipelined", hub_a, case_pipelined),
        ]
        used = set()
        for cid, title, hub, fn in cases:
            t0 = time.monotonic()
            try:
                expected, observed, ok, st = fn(hub)
            except Exception as e:  # a case's own failure is a row, not a crash
                expected, observed, ok, st = "-", f"EXCEPTION {type(e).__name__}: {e}", False, fmt(stats(hub.pid))
            alive, surv = survived(hub)
            rows.append((cid, title, hub.name[-1], expected, observed, st,
                         "yes" if ok else "NO", surv, time.monotonic() - t0))
            used.add(hub)
            if not ok or not alive:
                failed = True
            print(f"  case {cid} done in {time.monotonic() - t0:.1f} s: match {'yes' if ok else 'NO'}, "
                  f"survived {surv}", flush=True)
        for h in (hub_a, hub_b, hub_c):
            if not h.alive():
                failed = True

        print()
        print("| # | case | hub | expected | observed | hub thr/fd/RSS before -> after | match | survived | time |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            print("| " + " | ".join(list(r[:8]) + [f"{r[8]:.1f} s"]) + " |")
        print()
        for h in (hub_a, hub_b, hub_c):
            print(f"hub {h.name[-1]} at the end: pid {h.pid} alive={h.alive()} {fmt(stats(h.pid))}")
        if failed:
            for h in [mock, hub_a, hub_b, hub_c]:
                print(f"\n--- {h.name} log tail ({h.log_path}) ---\n{h.tail()}")
        print(f"\nattack: {len(rows)} cases, {sum(r[6] == 'yes' for r in rows)} matched, "
              f"{'FAILED' if failed else 'all matched, all hubs alive'} in {time.monotonic() - t_begin:.1f} s")
        return 1 if failed else 0
    except RuntimeError as e:
        print(f"attack: set-up failed: {e}", file=sys.stderr)
        return 2
    finally:
        for p in reversed(procs):
            p.stop()
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("attack: interrupted (children stopped)", file=sys.stderr)
        sys.exit(130)
