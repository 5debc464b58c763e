#!/usr/bin/env bash
# `make run`: the hub on the embedded default (no Redis), in front of three demo
# upstreams — `mcphub-mock --era legacy` on 3101, `--era modern` on 3102, and
# `mcphub-mock --stdio` as a stdio server the hub starts itself (one process
# per context, stopped when idle) — with etc/mcphub.demo.json (the example
# config with the stdio demo in place of its npx entry: no Node.js needed).
# Ctrl-C stops everything.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${BIN:-$ROOT/target/release}
CONFIG=${MCPHUB_CONFIG:-$ROOT/etc/mcphub.demo.json}
# The stdio demo's command is the bare name `mcphub-mock`: found here.
export PATH="$BIN:$PATH"
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
echo "demo upstreams: legacy http://127.0.0.1:3101/mcp, modern http://127.0.0.1:3102/mcp, stdio: mcphub-mock --stdio (started on first use)"
echo "MCPHub: http://127.0.0.1:$PORT/mcp   pages: http://127.0.0.1:$PORT/ui/   (Ctrl-C stops everything)"
# In the foreground: Ctrl-C reaches the hub once (it drains and exits 0), then
# the EXIT trap stops the mocks. (A SIGTERM from the trap as well would be a
# second stop signal: exit at once, status 1.)
"$BIN/mcphub" serve --config "$CONFIG" --port "$PORT"
