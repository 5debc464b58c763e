#!/usr/bin/env python3
"""Upstream for scripts/cluster-test.sh on the official MCP Python SDK (mcp 2.3.0, the pinned set of
scripts/e2e/requirements.txt). Streamable HTTP on 127.0.0.1:PORT/mcp, legacy sessions.

Tools:
  sample(prompt)   ctx.session.create_message(..., related_request_id=ctx.request_id): a sampling
                   request on the call's own stream -> "sampled: <the client's answer>"
  announce()       ctx.session.send_tool_list_changed(): notifications/tools/list_changed on the
                   session's standalone GET stream (related to no request), which whichever hub
                   instance holds that stream hears -> "announced"
  noop()           -> "ok", answered like announce (an SSE answer) without the notification: the
                   baseline scripts/bench-cluster.sh subtracts from announce

Usage: py_upstream.py PORT
"""

from __future__ import annotations

import sys

import uvicorn

from mcp import types
from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("mcphub-cluster-py-upstream")


@server.tool()
async def sample(prompt: str, ctx: Context) -> str:
    result = await ctx.session.create_message(
        messages=[types.SamplingMessage(role="user", content=types.TextContent(type="text", text=prompt))],
        max_tokens=50,
        related_request_id=ctx.request_id,
    )
    return f"sampled: {getattr(result.content, 'text', result.content)}"


@server.tool()
async def announce(ctx: Context) -> str:
    await ctx.session.send_tool_list_changed()
    return "announced"


@server.tool()
async def noop() -> str:
    return "ok"


if __name__ == "__main__":
    port = int(sys.argv[1])
    app = server.streamable_http_app(host="127.0.0.1")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
