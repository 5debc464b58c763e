#!/usr/bin/env bash
# `make bench`: what the hub costs, measured in one run on this machine, printed as ONE table.
# Figures only; nothing is asserted. ~2 minutes with the defaults.
#
#   1. tools/call echo at BENCH_CONNS (70) connections for BENCH_SECS (10) s, wrk -t2: direct to
#      mcphub-mock, through mcphub-forward (a bare forwarder on the same HTTP layer: the floor any
#      gateway pays) and through the hub; legacy clients (a session each path), then modern clients
#      (2026-07-28, no session). Columns: req/s, p50, p99, CPU µs per request of the proxy (hub or
#      forwarder) and of the mock, the proxy's RSS after the run; ratio rows hub/direct, hub/forwarder.
#   2. tools/list through a hub in front of 3 mcphub-mock servers, sequential (wrk -c1 -t1,
#      BENCH_LAT_SECS s): warm (lists cached, listCacheTtlSecs 300) and cold (a second hub with
#      listCacheTtlSecs 0: every request fetches the 3 lists again; the mocks' request counts say
#      how many upstream requests one list cost).
#   3. Memory of a fresh hub (VmRSS): idle, then after BENCH_SESSIONS (1000) legacy `initialize`
#      (idle client sessions, no connection kept), then with BENCH_IDLE_CONNS (1000) keep-alive
#      connections held open (one GET /healthz each); the per-session / per-connection cost in KiB.
#   4. Latency at 1 connection (wrk -c1 -t1, BENCH_LAT_SECS s): direct, forwarder, hub, and what
#      the forwarder and the hub add (p50, p99).
#
# Needs target/release/{mcphub,mcphub-mock,mcphub-forward}, wrk (Debian package `wrk`; installed
# if missing and this runs as root), curl, python3. Loopback only; every process started is
# stopped on exit. BENCH_KEEP=1 keeps the run directory (logs, rows.tsv).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${BIN:-$ROOT/target/release}
CONNS=${BENCH_CONNS:-70}
SECS=${BENCH_SECS:-10}
THREADS=${BENCH_THREADS:-2}
LAT_SECS=${BENCH_LAT_SECS:-5}
SESSIONS=${BENCH_SESSIONS:-1000}
IDLE_CONNS=${BENCH_IDLE_CONNS:-1000}
READY_TIMEOUT=${BENCH_READY_TIMEOUT:-10}
LUA=$ROOT/scripts/bench/post.lua

die() { echo "bench: $*" >&2; exit 1; }
if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ]; then apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; } >/dev/null 2>&1 || true; fi
  command -v wrk >/dev/null || die "wrk is required (apt-get install wrk)"
fi
command -v curl >/dev/null || die "curl is required"
command -v python3 >/dev/null || die "python3 is required"
for b in mcphub mcphub-mock mcphub-forward; do
  [ -x "$BIN/$b" ] || die "$BIN/$b not found (run cargo build --release, or set BIN)"
done
# 1000 held connections + wrk's: raise the soft limit to the hard one (best effort).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

RUN=$(mktemp -d "${TMPDIR:-/tmp}/mcphub-bench.XXXXXX")
PIDS=()
# shellcheck source=lib/procs.sh
. "$ROOT/scripts/lib/procs.sh"
cleanup() {
  set +e # stop_pids' SIGKILL of already-gone processes fails, and everything must still be stopped
  touch "$RUN/stop" 2>/dev/null
  stop_pids "${PIDS[@]}"
  if [ -z "${BENCH_KEEP:-}" ]; then rm -rf "$RUN"; else echo "bench: logs kept in $RUN" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ROWS=$RUN/rows.tsv
: >"$ROWS"
say() { echo "bench: $*" >&2; }
title() { printf '#%s\n' "$1" >>"$ROWS"; }
row() { local IFS=$'\t'; printf '%s\n' "$*" >>"$ROWS"; } # key label rps p50 p99 proxy_cpu mock_cpu rss note

ticks() { # summed utime+stime (clock ticks) of the given pids
  local t=0 p
  for p in "$@"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
  echo "$t"
}
rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status" 2>/dev/null || echo ''; }
HZ=$(getconf CLK_TCK)
us_per_req() { awk -v d="$1" -v n="$2" -v hz="$HZ" 'BEGIN{ if (n > 0) printf "%.1f", d / hz * 1e6 / n }'; }

read -r P_MOCK P_FWD P_HUB P_M1 P_M2 P_M3 P_WARM P_COLD P_MEM < <(free_ports 9)

start mock "$BIN/mcphub-mock" --port "$P_MOCK" --era dual --name m
start m1 "$BIN/mcphub-mock" --port "$P_M1" --era dual --name m1
start m2 "$BIN/mcphub-mock" --port "$P_M2" --era dual --name m2
start m3 "$BIN/mcphub-mock" --port "$P_M3" --era dual --name m3
for m in mock m1 m2 m3; do p=P_${m^^}; ready "$m" http_ok "http://127.0.0.1:${!p}/stats"; done
start fwd "$BIN/mcphub-forward" --port "$P_FWD" --upstream "http://127.0.0.1:$P_MOCK/mcp" --workers 32

server() { printf '"%s": {"type": "streamable-http", "url": "http://127.0.0.1:%s/mcp", "protocol": "legacy"}' "$1" "$2"; }
cat >"$RUN/hub.json" <<JSON
{"workers": 32, "mcpServers": {$(server m "$P_MOCK")}}
JSON
cat >"$RUN/warm.json" <<JSON
{"workers": 32, "mcpServers": {$(server m1 "$P_M1"), $(server m2 "$P_M2"), $(server m3 "$P_M3")}}
JSON
cat >"$RUN/cold.json" <<JSON
{"workers": 32, "listCacheTtlSecs": 0, "mcpServers": {$(server m1 "$P_M1"), $(server m2 "$P_M2"), $(server m3 "$P_M3")}}
JSON
start hub "$BIN/mcphub" serve --config "$RUN/hub.json" --port "$P_HUB"
start warm "$BIN/mcphub" serve --config "$RUN/warm.json" --port "$P_WARM"
start cold "$BIN/mcphub" serve --config "$RUN/cold.json" --port "$P_COLD"
ready fwd tcp_open "$P_FWD"
for h in hub warm cold; do p=P_${h^^}; ready "$h" http_ok "http://127.0.0.1:${!p}/healthz"; done

META='"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"wrk","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}'
CALL_MODERN='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"},'"$META"'}}'
CALL_LEGACY='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}'
LIST_LEGACY='{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}'

# shellcheck source=lib/mcp.sh
. "$ROOT/scripts/lib/mcp.sh"

# measure KEY LABEL URL CONNS THREADS SECS PROXY_PID "MOCK_PIDS" [NOTE]: one wrk run → one row.
# The request comes from the environment of post.lua: BODY, SESSION, MCP_VERSION, MCP_METHOD, MCP_NAME.
measure() {
  local key=$1 label=$2 url=$3 c=$4 t=$5 secs=$6 proxy=$7 mocks=$8 note=${9:-}
  local p0 p1 m0 m1 out kv rps='' p50='' p99='' n=0 errs=0 pcpu='' mcpu='' rss=''
  # shellcheck disable=SC2086
  { p0=$(ticks $proxy); m0=$(ticks $mocks); }
  say "$label: wrk -t$t -c$c -d${secs}s"
  out=$(wrk -t"$t" -c"$c" -d"${secs}s" --latency -s "$LUA" "$url" | grep '^BENCH' || true)
  # shellcheck disable=SC2086
  { p1=$(ticks $proxy); m1=$(ticks $mocks); }
  for kv in $out; do
    case $kv in
      rps=*) rps=${kv#*=} ;; p50_ms=*) p50=${kv#*=} ;; p99_ms=*) p99=${kv#*=} ;;
      requests=*) n=${kv#*=} ;; non2xx_or_error=*) errs=${kv#*=} ;;
    esac
  done
  [ -n "$out" ] || note="wrk failed; $note"
  [ "$errs" = 0 ] || note="errors=$errs; $note"
  if [ -n "$proxy" ]; then pcpu=$(us_per_req $((p1 - p0)) "$n"); rss=$(rss_kb "$proxy"); fi
  mcpu=$(us_per_req $((m1 - m0)) "$n")
  row "$key" "$label" "$rps" "$p50" "$p99" "$pcpu" "$mcpu" "$rss" "${note%; }"
}

MOCK_URL=http://127.0.0.1:$P_MOCK/mcp
FWD_URL=http://127.0.0.1:$P_FWD/mcp
HUB_URL=http://127.0.0.1:$P_HUB/mcp
DIRECT_SID=$(session_of "$MOCK_URL")
FWD_SID=$(session_of "$FWD_URL")
HUB_SID=$(session_of "$HUB_URL")
# Warm-up of each path (the hub: era, upstream session, catalog; everyone: keep-alive pools).
for pair in "$MOCK_URL $DIRECT_SID" "$FWD_URL $FWD_SID" "$HUB_URL $HUB_SID"; do
  set -- $pair
  BODY=$CALL_LEGACY SESSION=$2 MCP_VERSION=2025-06-18 wrk -t1 -c4 -d1s -s "$LUA" "$1" >/dev/null
done

echo "make bench: $(nproc) cores, $(date -u +%FT%TZ); wrk, mcphub-mock, mcphub-forward and the hubs share this machine" >&2

# 1. tools/call echo at CONNS connections.
title "1. tools/call echo, $CONNS connections, ${SECS} s, wrk -t$THREADS"
export BODY=$CALL_LEGACY MCP_VERSION=2025-06-18 MCP_METHOD= MCP_NAME=
SESSION=$DIRECT_SID measure call.direct "legacy: direct to the mock" "$MOCK_URL" "$CONNS" "$THREADS" "$SECS" "" "$PID_mock"
SESSION=$FWD_SID measure call.fwd "legacy: through mcphub-forward" "$FWD_URL" "$CONNS" "$THREADS" "$SECS" "$PID_fwd" "$PID_mock"
SESSION=$HUB_SID measure call.hub "legacy: through the hub" "$HUB_URL" "$CONNS" "$THREADS" "$SECS" "$PID_hub" "$PID_mock" "upstream pinned legacy"
export BODY=$CALL_MODERN MCP_VERSION=2026-07-28 MCP_METHOD=tools/call MCP_NAME=echo SESSION=
measure call.direct_modern "modern: direct to the mock" "$MOCK_URL" "$CONNS" "$THREADS" "$SECS" "" "$PID_mock"
measure call.fwd_modern "modern: through mcphub-forward" "$FWD_URL" "$CONNS" "$THREADS" "$SECS" "$PID_fwd" "$PID_mock"
measure call.hub_modern "modern: through the hub" "$HUB_URL" "$CONNS" "$THREADS" "$SECS" "$PID_hub" "$PID_mock" "modern client → legacy upstream"

# 2. tools/list over 3 servers, sequential.
title "2. tools/list, 3 upstream servers behind one hub, 1 connection, ${LAT_SECS} s each"
upstream_requests() { # total /mcp requests the three mocks have seen
  local t=0 p
  for p in "$P_M1" "$P_M2" "$P_M3"; do
    t=$((t + $(curl -fs -m 5 "http://127.0.0.1:$p/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])' 2>/dev/null || echo 0)))
  done
  echo "$t"
}
list_row() { # KEY LABEL HUB_PORT HUB_PID
  local url=http://127.0.0.1:$3/mcp sid before after n
  sid=$(session_of "$url")
  BODY=$LIST_LEGACY SESSION=$sid MCP_VERSION=2025-06-18 MCP_METHOD= MCP_NAME= wrk -t1 -c1 -d1s -s "$LUA" "$url" >/dev/null
  before=$(upstream_requests)
  BODY=$LIST_LEGACY SESSION=$sid MCP_VERSION=2025-06-18 MCP_METHOD= MCP_NAME= measure "$1" "$2" "$url" 1 1 "$LAT_SECS" "$4" "$PID_m1 $PID_m2 $PID_m3"
  after=$(upstream_requests)
  n=$(awk -F'\t' -v k="$1" '$1==k{print $3}' "$ROWS")
  # Append the upstream cost to the row's note (requests seen by the mocks ÷ lists served).
  python3 - "$ROWS" "$1" "$((after - before))" "$n" "$LAT_SECS" <<'PY'
import sys
path, key, up, rps, secs = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4] or 0), float(sys.argv[5])
lines = open(path, encoding="utf-8").read().split("\n")
for i, l in enumerate(lines):
    f = l.split("\t")
    if f[0] == key:
        lists = rps * secs
        per = f"{up / lists:.2f}" if lists else "?"
        f[8] = (f[8] + "; " if f[8] else "") + f"upstream requests per list: {per}"
        lines[i] = "\t".join(f)
open(path, "w", encoding="utf-8").write("\n".join(lines))
PY
}
list_row list.warm "warm: lists cached" "$P_WARM" "$PID_warm"
list_row list.cold "cold: listCacheTtlSecs 0" "$P_COLD" "$PID_cold"

# 3. Memory of a fresh hub.
title "3. memory of a fresh hub (VmRSS): idle, + $SESSIONS idle legacy sessions, + $IDLE_CONNS idle keep-alive connections"
start mem "$BIN/mcphub" serve --config "$RUN/hub.json" --port "$P_MEM"
ready mem http_ok "http://127.0.0.1:$P_MEM/healthz"
MEM_SID=$(session_of "http://127.0.0.1:$P_MEM/mcp") # one session, one call: the catalog and the upstream session exist
curl -s -m 10 -o /dev/null -H 'Content-Type: application/json' -H "Mcp-Session-Id: $MEM_SID" -H 'MCP-Protocol-Version: 2025-06-18' \
  "http://127.0.0.1:$P_MEM/mcp" -d "$CALL_LEGACY"
sleep 1
RSS_IDLE=$(rss_kb "$PID_mem")
row mem.idle "hub idle (1 session, 1 call done)" "" "" "" "" "" "$RSS_IDLE" ""
say "memory: $SESSIONS initialize requests"
SESS_OUT=$(python3 "$ROOT/scripts/bench/memory.py" sessions "$P_MEM" "$SESSIONS")
sleep 1
RSS_SESS=$(rss_kb "$PID_mem")
row mem.sessions "+ $SESSIONS idle legacy client sessions" "" "" "" "" "" "$RSS_SESS" \
  "$SESS_OUT; $(awk -v a="$RSS_SESS" -v b="$RSS_IDLE" -v n="$SESSIONS" 'BEGIN{printf "%+.2f KiB per session", (a-b)/n}')"
say "memory: $IDLE_CONNS idle keep-alive connections"
python3 "$ROOT/scripts/bench/memory.py" conns "$P_MEM" "$IDLE_CONNS" "$RUN/conns.ready" "$RUN/stop" 120 &
CONNS_PID=$!
PIDS+=("$CONNS_PID")
for _ in $(seq 1 600); do [ -e "$RUN/conns.ready" ] || ! kill -0 "$CONNS_PID" 2>/dev/null && break; sleep 0.1; done
sleep 1
RSS_CONNS=$(rss_kb "$PID_mem")
CONNS_OUT=$(cat "$RUN/conns.ready" 2>/dev/null || echo "conns: not ready")
touch "$RUN/stop"
wait "$CONNS_PID" 2>/dev/null || true
row mem.conns "+ $IDLE_CONNS idle keep-alive connections" "" "" "" "" "" "$RSS_CONNS" \
  "$CONNS_OUT; $(awk -v a="$RSS_CONNS" -v b="$RSS_SESS" -v n="$IDLE_CONNS" 'BEGIN{printf "%+.2f KiB per connection", (a-b)/n}')"
row mem.fwd "mcphub-forward after its runs" "" "" "" "" "" "$(rss_kb "$PID_fwd")" "for scale"

# 4. Latency at one connection.
title "4. latency added at 1 connection, tools/call echo (legacy), ${LAT_SECS} s each"
export BODY=$CALL_LEGACY MCP_VERSION=2025-06-18 MCP_METHOD= MCP_NAME=
SESSION=$DIRECT_SID measure lat.direct "direct to the mock" "$MOCK_URL" 1 1 "$LAT_SECS" "" "$PID_mock"
SESSION=$FWD_SID measure lat.fwd "through mcphub-forward" "$FWD_URL" 1 1 "$LAT_SECS" "$PID_fwd" "$PID_mock"
SESSION=$HUB_SID measure lat.hub "through the hub" "$HUB_URL" 1 1 "$LAT_SECS" "$PID_hub" "$PID_mock"

echo
echo "make bench — $(nproc) cores, $(date -u +%FT%TZ), wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}'); everything on this one machine"
python3 "$ROOT/scripts/bench/table.py" "$ROWS"
echo "(CPU µs/req = utime+stime of the process over the run ÷ requests, ${HZ} Hz ticks; RSS = VmRSS after the run)"
