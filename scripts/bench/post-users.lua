-- wrk script: like post.lua, but each request carries the next hub key of the file KEYS
-- (one a line) as `Authorization: Bearer …`, so the requests are spread over every user.
-- Each wrk thread starts at its own offset in the list. Env: BODY, KEYS (required),
-- MCP_VERSION, MCP_METHOD, MCP_NAME, SESSION (optional).
local keys = {}
for line in io.lines(os.getenv("KEYS")) do
  if line ~= "" then keys[#keys + 1] = line end
end

local headers = {
  ["Content-Type"] = "application/json",
  ["Accept"] = "application/json, text/event-stream",
}
local function set(h, v) if v and v ~= "" then headers[h] = v end end
set("MCP-Protocol-Version", os.getenv("MCP_VERSION"))
set("Mcp-Method", os.getenv("MCP_METHOD"))
set("Mcp-Name", os.getenv("MCP_NAME"))
set("Mcp-Session-Id", os.getenv("SESSION"))
local body = os.getenv("BODY")

local threads = {}
setup = function(thread)
  thread:set("offset", #threads)
  threads[#threads + 1] = thread
end

local next_key = 1
init = function(args)
  -- `offset` is set by setup() before init runs in the thread.
  next_key = ((offset or 0) * 7919) % #keys + 1
end

request = function()
  headers["Authorization"] = "Bearer " .. keys[next_key]
  next_key = next_key % #keys + 1
  return wrk.format("POST", nil, headers, body)
end

errors = 0 -- per thread (non-200 or no result); done() sums them
response = function(status, hdrs, b)
  if status ~= 200 or not string.find(b, '"result"', 1, true) then errors = errors + 1 end
end
done = function(summary, latency, requests)
  local errors = 0
  for _, t in ipairs(threads) do errors = errors + (t:get("errors") or 0) end
  io.write(string.format("BENCH rps=%.0f p50_ms=%.3f p99_ms=%.3f requests=%d non2xx_or_error=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, errors))
end
