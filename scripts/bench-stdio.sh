#!/usr/bin/env bash
# `make bench-stdio`: what a stdio server costs behind the hub (issue 19), measured in one run on
# this machine, printed as one small table. Figures only; nothing is asserted. ~2 minutes.
#
#   1. Process start latency through the hub (spawn → initialize answered, from the hub's log
#      line "stdio server 'X': process N started in M ms"), median of BENCH_STARTS (5) fresh
#      starts each: `npx -y @modelcontextprotocol/server-memory@2026.8.31` (its package already in
#      the npm cache, warmed by one start that is not counted) vs `node <entry>` (e2e's pinned
#      install). A fresh start is forced by idleTimeoutSecs 1: after each call the script waits
#      (bounded) until /readyz shows the process evicted, then calls again (404 → heal → spawn).
#   2. RSS per process: VmRSS of the hub's child and all its descendants (npx: `npm exec` node,
#      sh, node), read right after each call; median.
#   3. tools/call echo req/s through the hub at BENCH_CONNS (70) connections for BENCH_SECS (10) s
#      (mcphub-load, legacy clients): `mcphub-mock --stdio` as one shared process vs the same mock
#      over HTTP (`mcphub-mock --port P --era legacy`).
#
# Needs target/release/{mcphub,mcphub-mock,mcphub-load}, node, npm/npx, curl, jq, python3 and
# e2e's pinned parts (installed under .cache/e2e/ on first run, as scripts/stdio-test.sh does).
# npx uses the cache .cache/e2e/npx-cache (it may ask the npm registry on the warm-up start).
# Loopback only; every process started is stopped on exit. BENCH_KEEP=1 keeps the logs.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${BIN:-$ROOT/target/release}
E2E_DIR=$ROOT/scripts/e2e
CACHE=${E2E_CACHE:-$ROOT/.cache/e2e}
STARTS=${BENCH_STARTS:-5}
CONNS=${BENCH_CONNS:-70}
SECS=${BENCH_SECS:-10}
READY_TIMEOUT=${BENCH_READY_TIMEOUT:-60}
MEMORY_VERSION=2026.8.31

die() { echo "bench-stdio: $*" >&2; exit 1; }
for b in mcphub mcphub-mock mcphub-load; do
  [ -x "$BIN/$b" ] || die "$BIN/$b not found (run cargo build --release, or set BIN)"
done
command -v npx >/dev/null || die "npx is required"

# the pinned parts (shared install; its failures print a `not ok` line and exit)
CHECKS_NAME=bench-stdio
# shellcheck source=lib/checks.sh
. "$ROOT/scripts/lib/checks.sh"
# shellcheck source=lib/e2e-parts.sh
. "$ROOT/scripts/lib/e2e-parts.sh"
e2e_parts_install >/dev/null
MEMORY_JS=$NPM_PREFIX/node_modules/@modelcontextprotocol/server-memory/dist/index.js
[ -f "$MEMORY_JS" ] || die "$MEMORY_JS missing"

RUN=$(mktemp -d "${TMPDIR:-/tmp}/mcphub-bench-stdio.XXXXXX")
PIDS=()
# shellcheck source=lib/procs.sh
. "$ROOT/scripts/lib/procs.sh"
cleanup() {
  set +e
  local v p kids=()
  for v in hub hubs hubh; do
    p="PID_$v"
    [ -n "${!p:-}" ] || continue
    mapfile -t -O "${#kids[@]}" kids < <(pgrep -P "${!p}")
    stop_first "${!p}"
  done
  stop_pids "${PIDS[@]}" "${kids[@]}"
  if [ -z "${BENCH_KEEP:-}" ]; then rm -rf "$RUN"; else echo "bench-stdio: logs kept in $RUN" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

read -r P_HUB P_HUBS P_HUBH P_MOCK < <(free_ports 4)
NPX_CACHE=$CACHE/npx-cache
mkdir -p "$NPX_CACHE"

# ---------------------------------------------------------------------------------------------
# 1 + 2: start latency and RSS
# ---------------------------------------------------------------------------------------------
cat >"$RUN/hub.json" <<EOF
{"mcpServers": {
  "npx": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-memory@$MEMORY_VERSION"],
          "env": {"npm_config_cache": "$NPX_CACHE", "MEMORY_FILE_PATH": "$RUN/npx.jsonl"},
          "idleTimeoutSecs": 1, "startTimeoutMs": 20000},
  "node": {"command": "node", "args": ["$MEMORY_JS"], "env": {"MEMORY_FILE_PATH": "$RUN/node.jsonl"},
           "idleTimeoutSecs": 1, "startTimeoutMs": 20000}
}}
EOF
# npx's first run downloads the package into its cache: done here, outside the figures (the
# server exits at stdin EOF)
timeout 180 env npm_config_cache="$NPX_CACHE" MEMORY_FILE_PATH="$RUN/warm.jsonl" \
  npx -y "@modelcontextprotocol/server-memory@$MEMORY_VERSION" </dev/null >"$RUN/npx-warm.log" 2>&1 ||
  die "npx -y @modelcontextprotocol/server-memory@$MEMORY_VERSION failed: $(tail -n 3 "$RUN/npx-warm.log")"
start hub "$BIN/mcphub" serve --config "$RUN/hub.json" --port "$P_HUB"
ready hub http_ok "http://127.0.0.1:$P_HUB/healthz"
HUB_URL=http://127.0.0.1:$P_HUB/mcp

# one legacy client session for all the calls
SID=$(curl -s -m 30 -D - -o /dev/null -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' "$HUB_URL" \
  -d '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench-stdio","version":"1"}}}' |
  tr -d '\r' | awk 'tolower($1)=="mcp-session-id:"{print $2}')
[ -n "$SID" ] || die "no client session from the hub"
H=(-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' -H "Mcp-Session-Id: $SID" -H 'MCP-Protocol-Version: 2025-11-25')
curl -s -m 10 -o /dev/null "${H[@]}" "$HUB_URL" -d '{"jsonrpc":"2.0","method":"notifications/initialized"}'

# processes SERVER : running+starting+idle processes of SERVER in /readyz
processes() { curl -s -m 5 "http://127.0.0.1:$P_HUB/readyz" | jq -r --arg s "$1" '.servers[$s].processes | .running + .starting + .idle'; }
# wait_evicted SERVER : until SERVER has no process (bounded)
wait_evicted() {
  local deadline=$(($(date +%s) + READY_TIMEOUT))
  until [ "$(processes "$1")" = 0 ]; do
    [ "$(date +%s)" -ge "$deadline" ] && die "'$1' still has a process after ${READY_TIMEOUT}s (idleTimeoutSecs 1)"
    sleep 0.2
  done
}
# call SERVER : read_graph on SERVER (the tool names collide: prefixed); dies on an error
call() {
  local out
  out=$(curl -s -m 60 "${H[@]}" "$HUB_URL" -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"$1__read_graph\",\"arguments\":{}}}")
  grep -q '"result"' <<<"$out" || die "tools/call $1__read_graph: $(head -c 300 <<<"$out")"
}
# tree_rss_kib PID : VmRSS of PID and all its descendants, KiB
tree_rss_kib() {
  local total=0 p kib
  for p in "$1" $(descendants "$1"); do
    kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null)
    total=$((total + ${kib:-0}))
  done
  echo "$total"
}
descendants() { local c; for c in $(pgrep -P "$1"); do echo "$c"; descendants "$c"; done; }
# the hub's child whose command line names WORD
child_of_hub() { local c; for c in $(pgrep -P "$PID_hub"); do grep -qa -- "$1" "/proc/$c/cmdline" && { echo "$c"; return; }; done; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR == 0) print "-"; else if (NR % 2) print a[(NR+1)/2]; else printf "%.0f\n", (a[NR/2]+a[NR/2+1])/2}'; }

echo "bench-stdio: $(date -u +%FT%TZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $STARTS fresh starts each (+1 warm-up)"
for s in npx node; do
  word=$([ $s = npx ] && echo "server-memory@" || echo "dist/index.js")
  : >"$RUN/$s.rss"
  for i in $(seq 0 "$STARTS"); do
    wait_evicted "$s"
    call "$s"
    pid=$(child_of_hub "$word")
    [ -n "$pid" ] && [ "$i" -gt 0 ] && tree_rss_kib "$pid" >>"$RUN/$s.rss"
  done
  wait_evicted "$s"
  # the first start of each server (the hub's catalog) and the warm-up one are not counted
  grep -o "stdio server '$s': process [0-9]* started in [0-9]* ms" "$RUN/hub.log" | awk '{print $(NF-1)}' | tail -n "$STARTS" >"$RUN/$s.ms"
  [ "$(wc -l <"$RUN/$s.ms")" -eq "$STARTS" ] || die "'$s': $(wc -l <"$RUN/$s.ms") start lines in the hub log, want $STARTS"
done
stop_first "$PID_hub"

# ---------------------------------------------------------------------------------------------
# 3: tools/call throughput, stdio mock (one shared process) vs HTTP mock, through the hub
# ---------------------------------------------------------------------------------------------
cat >"$RUN/hubs.json" <<EOF
{"workers": $((CONNS + 16)), "mcpServers": {"mock": {"command": "$BIN/mcphub-mock", "args": ["--stdio"]}}}
EOF
cat >"$RUN/hubh.json" <<EOF
{"workers": $((CONNS + 16)), "mcpServers": {"mock": {"type": "streamable-http", "url": "http://127.0.0.1:$P_MOCK/mcp", "protocol": "legacy"}}}
EOF
start mock "$BIN/mcphub-mock" --port "$P_MOCK" --era legacy --workers $((CONNS + 16))
ready mock http_ok "http://127.0.0.1:$P_MOCK/stats"
start hubs "$BIN/mcphub" serve --config "$RUN/hubs.json" --port "$P_HUBS"
start hubh "$BIN/mcphub" serve --config "$RUN/hubh.json" --port "$P_HUBH"
ready hubs http_ok "http://127.0.0.1:$P_HUBS/healthz"
ready hubh http_ok "http://127.0.0.1:$P_HUBH/healthz"
"$BIN/mcphub-load" --url "http://127.0.0.1:$P_HUBS/mcp" --concurrency "$CONNS" --tool echo --args '{"text":"bench"}' \
  --duration "$SECS" --compare-url "http://127.0.0.1:$P_HUBH/mcp" --json "$RUN/load.json" >"$RUN/load.out" 2>&1 ||
  echo "bench-stdio: mcphub-load exited $? (some calls failed; see below)"
stdio_procs=$(curl -s -m 5 "http://127.0.0.1:$P_HUBS/readyz" | jq -c '.servers.mock.processes')

# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------
mib() { awk -v k="$1" 'BEGIN { if (k == "-") print "-"; else printf "%.1f", k / 1024 }'; }
ms_list() { tr '\n' ' ' <"$1" | sed 's/ $//'; }
echo
printf '%-52s %12s %12s  %s\n' "server-memory $MEMORY_VERSION via the hub" "start p50" "RSS p50" "starts (ms)"
printf '%-52s %9s ms %8s MiB  %s\n' "npx -y @modelcontextprotocol/server-memory@$MEMORY_VERSION" \
  "$(median <"$RUN/npx.ms")" "$(mib "$(median <"$RUN/npx.rss")")" "$(ms_list "$RUN/npx.ms")"
printf '%-52s %9s ms %8s MiB  %s\n' "node …/server-memory/dist/index.js" \
  "$(median <"$RUN/node.ms")" "$(mib "$(median <"$RUN/node.rss")")" "$(ms_list "$RUN/node.ms")"
echo "(RSS: the process tree, npx = npm exec node + sh + node; read right after a call)"
echo
printf '%-52s %12s %10s %10s %8s\n' "tools/call echo, $CONNS connections, ${SECS} s, hub →" "req/s" "p50 ms" "p99 ms" "failed"
jq -r '.[] | [.url, .rps, .p50_ms, .p99_ms, (.total - .ok)] | @tsv' "$RUN/load.json" 2>/dev/null | {
  n=0
  while IFS=$'\t' read -r url rps p50 p99 failed; do
    label=$([ $n = 0 ] && echo "mcphub-mock --stdio (one shared process)" || echo "mcphub-mock --port P --era legacy (HTTP)")
    printf '%-52s %12.0f %10s %10s %8s\n' "$label" "$rps" "$p50" "$p99" "$failed"
    n=$((n + 1))
  done
}
echo "(stdio mock processes after the run: $stdio_procs)"
echo
echo "mcphub-load's summary (first: --url = the stdio hub):"
grep -v '^round=' "$RUN/load.out" | sed 's/^/  /'
