#!/usr/bin/env bash
# `make run`: the hub on the embedded default (no Redis), in front of two demo
# upstreams — `mcphub-mock --era legacy` on 3101 and `--era modern` on 3102 —
# with etc/mcphub.example.json. Ctrl-C stops all three.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${BIN:-$ROOT/target/release}
CONFIG=${MCPHUB_CONFIG:-$ROOT/etc/mcphub.example.json}
PORT=${PORT:-3000}

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

"$BIN/mcphub-mock" --port 3101 --era legacy --name legacy-demo & pids+=($!)
"$BIN/mcphub-mock" --port 3102 --era modern --name modern-demo & pids+=($!)
for port in 3101 3102; do
  for _ in $(seq 50); do
    curl -fs "http://127.0.0.1:$port/stats" >/dev/null 2>&1 && break
    sleep 0.1
  done
done
echo "demo upstreams: legacy http://127.0.0.1:3101/mcp, modern http://127.0.0.1:3102/mcp"
echo "MCPHub: http://127.0.0.1:$PORT/mcp   pages: http://127.0.0.1:$PORT/ui/   (Ctrl-C stops everything)"
# In the foreground: Ctrl-C reaches the hub once (it drains and exits 0), then
# the EXIT trap stops the mocks. (A SIGTERM from the trap as well would be a
# second stop signal: exit at once, status 1.)
"$BIN/mcphub" serve --config "$CONFIG" --port "$PORT"
