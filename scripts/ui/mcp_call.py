#!/usr/bin/env python3
"""The Cursor-like client of scripts/ui-test.sh: the official MCP Python SDK (mcp==2.3.0, as in
scripts/e2e/py_client.py) connecting to the URL a user pastes from the Connect page,
`http://HUB/mcp?key=mcphub_…`, listing the tools and calling one.

Usage: mcp_call.py URL [--call NAME] [--text TEXT] [--timeout S]

Prints one JSON line and exits 0 when the call went through:
  {"ok": true, "protocol": "...", "tools": [...], "text": "<the call's text content>"}
or, when the hub refused (or anything else failed), exits 1 with
  {"ok": false, "status": 401 | null, "error": "<type: message>"}
`status` is the HTTP status the SDK's transport saw, when it says one. Hub keys in any text
are shown as `mcphub_…` (the URL carries one).
"""

from __future__ import annotations

import argparse
import json
import re
import sys

import anyio

from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

KEY = re.compile(r"mcphub_[0-9a-fA-F]{8,}")


def scrub(s: str) -> str:
    return KEY.sub("mcphub_…", s)


def text_of(result) -> str:
    parts = [getattr(b, "text", None) for b in (getattr(result, "content", None) or [])]
    return "\n".join(p for p in parts if p is not None)


# HTTP statuses >= 400 the transport got (the SDK turns a 401's JSON-RPC body into an MCPError
# that does not carry the status)
REFUSED: list[int] = []


async def on_response(response) -> None:
    if response.status_code >= 400:
        REFUSED.append(response.status_code)


def status_of(e: BaseException) -> int | None:
    """The HTTP status of a refused request: what the transport saw, else from the exception."""
    if REFUSED:
        return REFUSED[-1]
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        resp = getattr(e, "response", None)
        code = getattr(resp, "status_code", None)
        if isinstance(code, int):
            return code
        m = re.search(r"\b(4\d\d|5\d\d)\b", str(e))
        if m:
            return int(m.group(1))
        e = e.__cause__ or e.__context__
    return None


async def run(args) -> dict:
    with anyio.fail_after(args.timeout):
        http = create_mcp_http_client()
        http.event_hooks["response"].append(on_response)
        async with http, Client(streamable_http_client(args.url, http_client=http)) as client:
            tools = []
            cursor = None
            for _ in range(20):
                page = await client.list_tools(cursor=cursor)
                tools.extend(t.name for t in page.tools)
                cursor = page.next_cursor
                if not cursor:
                    break
            out = {"ok": True, "protocol": client.protocol_version, "tools": sorted(tools)}
            if args.call:
                result = await client.call_tool(args.call, {"text": args.text})
                out["text"] = text_of(result)
                out["isError"] = bool(result.is_error)
            return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--call")
    p.add_argument("--text", default="hello from the ui test")
    p.add_argument("--timeout", type=float, default=20.0)
    args = p.parse_args()
    try:
        out = anyio.run(run, args)
    except BaseException as e:  # noqa: BLE001 - every failure is reported as JSON
        while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
            e = e.exceptions[0]
        print(json.dumps({"ok": False, "status": status_of(e), "error": scrub(f"{type(e).__name__}: {e}")[:500]}), flush=True)
        sys.exit(1)
    print(scrub(json.dumps(out)), flush=True)


if __name__ == "__main__":
    main()
