#!/usr/bin/env python3
"""E2E client built on the official MCP Python SDK (mcp==2.3.0), used by scripts/e2e.sh.

How the 2.x SDK chooses its protocol era (read from mcp/client/client.py and
mcp/client/_probe.py of mcp 2.3.0):

  * `mcp.Client(url, mode=...)` -- a URL string means the streamable HTTP
    transport (`streamable_http_client`).
  * mode="auto" (the DEFAULT): `negotiate_auto()` first sends `server/discover`
    at the newest modern version (2026-07-28, per-request `_meta` +
    MCP-Protocol-Version / Mcp-Method headers, no session). If the answer is a
    DiscoverResult listing a modern version, the session `adopt()`s it and the
    client stays modern (no initialize, no Mcp-Session-Id). Any JSON-RPC error
    (or HTTP 4xx mapped to one) falls back to the legacy `initialize`
    handshake -- except -32022 whose `supported` list is modern-only and
    disjoint (then it raises), and -32022 naming a mutual modern version (then
    one re-probe at that version). A discover result advertising no modern
    version also falls back to initialize. Network errors propagate.
  * mode="legacy": `session.initialize()` only (byte-identical pre-2026
    behaviour: initialize -> notifications/initialized -> Mcp-Session-Id).
  * mode="2026-07-28" (a modern version string): adopts that version directly
    with a synthesized DiscoverResult, no probe at all.
  * `client.protocol_version` tells what was negotiated.

Usage:
  py_client.py URL --mode auto|legacy|2026-07-28 [--expect-era modern|legacy]
               [--expect-tool NAME ...] [--call NAME=TEXT ...]

--call NAME[:ARG]=TEXT calls tool NAME with {ARG: TEXT} (ARG defaults to "text";
mcphub-mock's echo takes {"text"}, server-everything's echo takes {"message"}) and
requires TEXT to appear in the result's text content. Prints one `info:` line per step; on failure prints
`FAIL: reason` as the last line and exits 1.
"""

from __future__ import annotations

import argparse
import json
import sys

import anyio

from mcp import Client


class Fail(Exception):
    pass


def fail(msg: str) -> None:
    raise Fail(msg)


def text_of(result) -> str:
    parts = []
    for block in getattr(result, "content", None) or []:
        t = getattr(block, "text", None)
        if t is not None:
            parts.append(t)
    sc = getattr(result, "structured_content", None)
    if sc:
        parts.append(json.dumps(sc))
    return "\n".join(parts)


async def run(args: argparse.Namespace) -> None:
    with anyio.fail_after(args.timeout):
        async with Client(args.url, mode=args.mode) as client:
            pv = client.protocol_version
            era = "modern" if pv >= "2026-07-28" else "legacy"
            print(f"info: mode={args.mode} negotiated protocol_version={pv} era={era}", flush=True)
            if args.expect_era and era != args.expect_era:
                fail(f"expected {args.expect_era} era, negotiated {pv}")

            names: list[str] = []
            cursor = None
            for _ in range(20):
                page = await client.list_tools(cursor=cursor)
                names.extend(t.name for t in page.tools)
                cursor = page.next_cursor
                if not cursor:
                    break
            print(f"info: tools/list -> {len(names)} tools: {' '.join(sorted(names))}", flush=True)
            missing = [n for n in args.expect_tool if n not in names]
            if missing:
                fail(f"tools/list lacks {missing}; got {sorted(names)}")

            for spec in args.call:
                target, _, text = spec.partition("=")
                name, _, arg = target.partition(":")
                result = await client.call_tool(name, {arg or "text": text})
                out = text_of(result)
                print(f"info: tools/call {name} -> isError={result.is_error} text={out!r}", flush=True)
                if result.is_error:
                    fail(f"tools/call {name} returned isError: {out!r}")
                if text not in out:
                    fail(f"tools/call {name}: {text!r} not echoed, got {out!r}")
    print("info: done", flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--mode", default="auto")
    p.add_argument("--expect-era", choices=["modern", "legacy"])
    p.add_argument("--expect-tool", action="append", default=[])
    p.add_argument("--call", action="append", default=[])
    p.add_argument("--timeout", type=float, default=30.0)
    args = p.parse_args()
    try:
        anyio.run(run, args)
    except BaseException as e:  # noqa: BLE001 - report anything as a failure line
        # unwrap exception groups from anyio task groups for a readable reason
        while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
            e = e.exceptions[0]
        reason = str(e) if isinstance(e, Fail) else f"{type(e).__name__}: {e}"
        print(f"FAIL: {reason}", flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
