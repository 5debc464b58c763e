#!/usr/bin/env bash
# `make bench`: tools/call echo at 70 connections, direct to mcphub-mock and
# through the hub (modern and legacy clients), in one run. Prints figures;
# asserts nothing. Needs wrk (Debian package `wrk`; installed if missing and
# this runs as root). Loopback only; every process started is stopped.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${BIN:-$ROOT/target/release}
CONNS=${CONNS:-70}
DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}

if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ]; then apt-get install -y -qq wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }; fi
  command -v wrk >/dev/null || { echo "bench: wrk is required (apt-get install wrk)" >&2; exit 1; }
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pids=()
tmp=$(mktemp -d)
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT INT TERM

wait_http() { for _ in $(seq 100); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.05; done; echo "bench: $1 never answered" >&2; exit 1; }

MOCK_PORT=$(free_port); HUB_PORT=$(free_port)
"$BIN/mcphub-mock" --port "$MOCK_PORT" --era dual --name m >"$tmp/mock.log" 2>&1 & pids+=($!)
wait_http "http://127.0.0.1:$MOCK_PORT/stats"
cat >"$tmp/hub.json" <<JSON
{"workers": 32, "mcpServers": {"m": {"type": "streamable-http", "url": "http://127.0.0.1:$MOCK_PORT/mcp", "protocol": "legacy"}}}
JSON
"$BIN/mcphub" serve --config "$tmp/hub.json" --port "$HUB_PORT" >"$tmp/hub.log" 2>&1 & pids+=($!)
HUB_PID=${pids[-1]}
wait_http "http://127.0.0.1:$HUB_PORT/healthz"

META='"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"wrk","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}'
MODERN_BODY='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"},'"$META"'}}'
LEGACY_BODY='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}'

session_of() { # initialize against $1 and print the minted session id
  curl -s -D - -o /dev/null -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' "$1" \
    -d '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"wrk","version":"1"}}}' \
    | tr -d '\r' | awk 'tolower($1)=="mcp-session-id:"{print $2}'
}

run() { # name url body [session] — prints one table row
  local name=$1 url=$2 body=$3 session=${4:-} version method extra
  if [ -n "$session" ]; then version=2025-06-18; method=; extra=; else version=2026-07-28; method=tools/call; extra=echo; fi
  local cpu0 cpu1 out
  cpu0=$(awk '{print $14+$15}' /proc/$HUB_PID/stat)
  out=$(BODY=$body MCP_VERSION=$version MCP_METHOD=$method MCP_NAME=$extra SESSION=$session \
        wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$ROOT/scripts/bench/post.lua" "$url" | grep '^BENCH')
  cpu1=$(awk '{print $14+$15}' /proc/$HUB_PID/stat)
  local reqs rss
  reqs=$(sed -E 's/.* requests=([0-9]+).*/\1/' <<<"$out")
  rss=$(awk '/VmRSS/{print $2}' /proc/$HUB_PID/status)
  local hz; hz=$(getconf CLK_TCK)
  printf '%-28s %s hub_cpu_us_per_req=%s hub_rss_kb=%s\n' "$name" "${out#BENCH }" \
    "$(python3 -c "print(round(($cpu1-$cpu0)/$hz*1e6/max($reqs,1),1))")" "$rss"
}

echo "tools/call echo, $CONNS connections, $DURATION, wrk -t$THREADS ($(nproc) cores, $(date -u +%FT%TZ))"
DIRECT_SID=$(session_of "http://127.0.0.1:$MOCK_PORT/mcp")
HUB_SID=$(session_of "http://127.0.0.1:$HUB_PORT/mcp")
# warm-up (era, upstream session, catalog)
BODY=$LEGACY_BODY SESSION=$HUB_SID MCP_VERSION=2025-06-18 wrk -t1 -c1 -d1s -s "$ROOT/scripts/bench/post.lua" "http://127.0.0.1:$HUB_PORT/mcp" >/dev/null
run "direct mock (legacy)"   "http://127.0.0.1:$MOCK_PORT/mcp" "$LEGACY_BODY" "$DIRECT_SID"
run "hub legacy→legacy"      "http://127.0.0.1:$HUB_PORT/mcp"  "$LEGACY_BODY" "$HUB_SID"
run "direct mock (modern)"   "http://127.0.0.1:$MOCK_PORT/mcp" "$MODERN_BODY"
run "hub modern→legacy"      "http://127.0.0.1:$HUB_PORT/mcp"  "$MODERN_BODY"
echo "(hub_cpu/rss columns on direct rows show the idle hub; upstream initialize calls: $(curl -s http://127.0.0.1:$MOCK_PORT/stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["initialize"])'))"
