-- wrk script: POST one JSON-RPC body with MCP headers taken from the environment.
--   BODY (required), and optional MCP_VERSION, MCP_METHOD, MCP_NAME, SESSION.
wrk.method = "POST"
wrk.body = os.getenv("BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
local function set(h, v) if v and v ~= "" then wrk.headers[h] = v end end
set("MCP-Protocol-Version", os.getenv("MCP_VERSION"))
set("Mcp-Method", os.getenv("MCP_METHOD"))
set("Mcp-Name", os.getenv("MCP_NAME"))
set("Mcp-Session-Id", os.getenv("SESSION"))

local errors = 0
response = function(status, headers, body)
  if status ~= 200 or not string.find(body, '"result"', 1, true) then errors = errors + 1 end
end
done = function(summary, latency, requests)
  io.write(string.format("BENCH rps=%.0f p50_ms=%.3f p99_ms=%.3f requests=%d non2xx_or_error=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, errors + summary.errors.status))
end
