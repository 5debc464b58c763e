# Shared by the measuring scripts (sourced, not run): MCP client steps done with curl.
# Needs a `die` function in the sourcing script.

# session_of URL : a legacy (2025-06-18) `initialize` against URL, then
# `notifications/initialized`; prints the session id (dies without one).
session_of() {
  local sid
  sid=$(curl -s -m 30 -D - -o /dev/null -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' "$1" \
    -d '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"wrk","version":"1"}}}' \
    | tr -d '\r' | awk 'tolower($1)=="mcp-session-id:"{print $2}')
  [ -n "$sid" ] || die "no session from $1"
  curl -s -m 30 -o /dev/null -H 'Content-Type: application/json' -H "Mcp-Session-Id: $sid" -H 'MCP-Protocol-Version: 2025-06-18' "$1" \
    -d '{"jsonrpc":"2.0","method":"notifications/initialized"}'
  echo "$sid"
}
