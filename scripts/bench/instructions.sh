#!/usr/bin/env bash
# `make bench-instructions`: user-space instructions per request of the hub and of mcphub-forward,
# counted by valgrind's callgrind — a figure that does not drift with the machine's load (wall
# time and CPU time on a shared 2-core machine do, ±15 % run to run). Kernel time (system calls,
# wake-ups) is not in it: `make bench` measures that with the rest; scripts/bench/profile.sh shows it.
#
#   scripts/bench/instructions.sh [BIN_DIR]      (default target/release)
#
# For each of: forwarder tools/call, hub tools/call (legacy client, legacy upstream), hub warm
# tools/list over 3 servers — the process runs under callgrind (4 workers), is warmed up with
# wrk -c1 for 3 s, its counters are zeroed, wrk -c1 runs INSTR_SECS (6) s, the counters are dumped,
# and the total is divided by the requests wrk counted. INSTR_TOP=N also prints the N functions
# with the most instructions of their own (per request). Needs valgrind, wrk, mcphub-mock.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${1:-$ROOT/target/release}
SECS=${INSTR_SECS:-6}
READY_TIMEOUT=60
LUA=$ROOT/scripts/bench/post.lua
die() { echo "instructions: $*" >&2; exit 1; }
for c in valgrind callgrind_control callgrind_annotate wrk curl; do command -v "$c" >/dev/null || die "$c is required"; done
for b in mcphub mcphub-forward mcphub-mock; do [ -x "$BIN/$b" ] || die "$BIN/$b not found"; done
RUN=$(mktemp -d "${TMPDIR:-/tmp}/mcphub-instr.XXXXXX")
PIDS=()
# shellcheck source=../lib/procs.sh
. "$ROOT/scripts/lib/procs.sh"
# shellcheck source=../lib/mcp.sh
. "$ROOT/scripts/lib/mcp.sh"
cleanup() { set +e; stop_pids "${PIDS[@]}"; rm -rf "$RUN"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

read -r P1 P2 P3 < <(free_ports 3)
for p in "$P1" "$P2" "$P3"; do start "m$p" "$BIN/mcphub-mock" --port "$p" --era dual --name "m$p"; done
for p in "$P1" "$P2" "$P3"; do ready "m$p" http_ok "http://127.0.0.1:$p/stats"; done
server() { printf '"%s": {"type": "streamable-http", "url": "http://127.0.0.1:%s/mcp", "protocol": "legacy"}' "$1" "$2"; }
echo "{\"workers\": 4, \"mcpServers\": {$(server m "$P1")}}" >"$RUN/one.json"
echo "{\"workers\": 4, \"mcpServers\": {$(server a "$P1"), $(server b "$P2"), $(server c "$P3")}}" >"$RUN/three.json"
CALL='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}'
LIST='{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}'

# measure LABEL BODY CMD... : one process under callgrind, one figure.
measure() {
  local label=$1 body=$2 port sid out n total name
  shift 2
  port=$(free_ports 1)
  name=p$port
  start "$name" valgrind --tool=callgrind --callgrind-out-file="$RUN/$name.out" "$@" --port "$port"
  local pid=PID_$name
  ready "$name" tcp_open "$port"
  local url=http://127.0.0.1:$port/mcp
  sid=$(session_of "$url")
  export BODY=$body MCP_VERSION=2025-06-18 SESSION=$sid
  wrk -t1 -c1 -d3s -s "$LUA" "$url" >/dev/null
  callgrind_control -z "${!pid}" >/dev/null 2>&1
  out=$(wrk -t1 -c1 -d"${SECS}s" -s "$LUA" "$url" | grep '^BENCH' || true)
  callgrind_control -d "${!pid}" >/dev/null 2>&1
  n=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' <<<"$out")
  [ -n "$n" ] && [ "$n" -gt 0 ] || die "$label: wrk counted no requests"
  total=$(callgrind_annotate "$RUN/$name.out.1" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",","",$1); print $1}')
  [ -n "$total" ] || die "$label: no callgrind totals"
  printf '%-52s %9d instructions per request (%d requests)\n' "$label" "$((total / n))" "$n"
  if [ -n "${INSTR_TOP:-}" ]; then
    callgrind_annotate --threshold=100 "$RUN/$name.out.1" 2>/dev/null | sed -n '/file:function/,$p' | tail -n +3 | head -"$INSTR_TOP" \
      | awk -v n="$n" '{gsub(",","",$1); if ($1+0>0) printf "    %8.0f  %s\n", $1/n, $NF}' | sed 's|/rustc/[0-9a-f]*/library/||; s|/root/.cargo/registry/src/[^/]*/||'
  fi
  kill -TERM "${!pid}" 2>/dev/null || true
  wait "${!pid}" 2>/dev/null || true # this one only (stop_pids would wait for the mocks too)
}

echo "instructions per request, user space (callgrind), $(date -u +%FT%TZ), binaries in $BIN"
measure "mcphub-forward: legacy tools/call" "$CALL" "$BIN/mcphub-forward" --upstream "http://127.0.0.1:$P1/mcp" --workers 4
measure "hub: legacy tools/call (legacy upstream)" "$CALL" "$BIN/mcphub" serve --config "$RUN/one.json"
measure "hub: warm tools/list over 3 servers" "$LIST" "$BIN/mcphub" serve --config "$RUN/three.json"
