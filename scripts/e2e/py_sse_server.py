#!/usr/bin/env python3
"""Legacy HTTP+SSE (2024-11-05 transport) server on the official MCP Python SDK (mcp==2.3.0,
`MCPServer`; FastMCP in 1.x), used by scripts/stdio-test.sh as a `"type": "sse"` hub upstream.

Endpoints (the SDK's defaults): GET /sse (the event stream; its first event, `endpoint`, names
`/messages/?session_id=<hex>`), POST /messages/?session_id=... (202, the answer comes on the
stream). The SDK's DNS-rebinding protection admits only loopback Host headers.

Tools: echo(message) -> "Echo: <message>"; add(a, b) -> a + b.

Usage: py_sse_server.py PORT   (listens on 127.0.0.1:PORT)
"""

from __future__ import annotations

import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("mcphub-e2e-py-sse")


@server.tool()
def echo(message: str) -> str:
    return f"Echo: {message}"


@server.tool()
def add(a: int, b: int) -> int:
    return a + b


if __name__ == "__main__":
    server.run(transport="sse", host="127.0.0.1", port=int(sys.argv[1]))
