#!/usr/bin/env python3
"""scripts/cluster-test.sh: a legacy Python SDK client (mcp 2.3.0) with its standalone GET stream
open through the balancer receives notifications/tools/list_changed that another client's call
caused.

Client L (mode="legacy": initialize, Mcp-Session-Id, then the SDK opens GET /mcp) lists the tools
and waits. Client T (mode=--trigger-mode, its own connections) calls the upstream tool `announce`
(the upstream sends tools/list_changed on its session's standalone stream, which one hub instance
holds) every --every seconds until L's message handler saw the notification or --timeout passes.
With round-robin and no stickiness, L's GET, T's calls and the instance that hears the upstream are
in general three different instances.

Usage: py_list_changed.py URL [--trigger-mode auto|legacy] [--timeout 20] [--every 2]
Prints `info:` lines; on failure `FAIL: reason` as the last line and exit 1.
"""

from __future__ import annotations

import argparse
import sys
import time

import anyio

from mcp import Client, types


async def run(args: argparse.Namespace) -> None:
    got = anyio.Event()
    seen: list[str] = []

    async def on_message(message) -> None:
        method = getattr(message, "method", None) or getattr(getattr(message, "root", None), "method", None)
        if isinstance(message, Exception):
            seen.append(f"exception: {message}")
            return
        seen.append(str(method))
        if method == "notifications/tools/list_changed":
            got.set()

    t0 = time.monotonic()
    async with Client(args.url, mode="legacy", message_handler=on_message) as listener:
        print(f"info: listener negotiated {listener.protocol_version}", flush=True)
        tools = await listener.list_tools()
        names = sorted(t.name for t in tools.tools)
        if "announce" not in names:
            raise SystemExit(f"FAIL: tools/list lacks announce; got {names}")
        async with Client(args.url, mode=args.trigger_mode) as trigger:
            print(f"info: trigger negotiated {trigger.protocol_version}", flush=True)
            n = 0
            with anyio.move_on_after(args.timeout):
                while not got.is_set():
                    n += 1
                    r = await trigger.call_tool("announce", {})
                    text = " ".join(getattr(b, "text", "") for b in r.content or [])
                    print(f"info: announce #{n} -> isError={r.is_error} {text!r}", flush=True)
                    with anyio.move_on_after(args.every):
                        await got.wait()
        if not got.is_set():
            raise SystemExit(f"FAIL: no notifications/tools/list_changed on the listener's GET stream within {args.timeout}s "
                             f"after {n} announce calls; the listener saw: {seen[:10]}")
        print(f"info: list_changed received {time.monotonic() - t0:.2f}s after start, after {n} announce call(s)", flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--trigger-mode", default="auto")
    p.add_argument("--timeout", type=float, default=20.0)
    p.add_argument("--every", type=float, default=2.0)
    args = p.parse_args()
    try:
        anyio.run(run, args)
    except SystemExit as e:
        print(e.code if isinstance(e.code, str) else f"FAIL: exit {e.code}", flush=True)
        sys.exit(1)
    except BaseException as e:  # noqa: BLE001 - any error is a failure line
        while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
            e = e.exceptions[0]
        print(f"FAIL: {type(e).__name__}: {e}", flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
