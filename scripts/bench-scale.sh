#!/usr/bin/env bash
# `make bench-scale` (issue 16): how the hub's cost grows as the work grows, from one run on this
# machine: rows.tsv, tables.md (printed), scale.svg and scale.png in ${BENCH_SCALE_OUT:-target/bench-scale}.
# Figures only; nothing is asserted. ~4–6 minutes with the defaults on 2 cores.
#
# Curves (x = the work; each point one wrk run of BENCH_SCALE_SECS (5) s unless said otherwise):
#   connections  keep-alive connections 1, 8, 70, 256, 1000 (SCALE_CONNECTIONS): legacy tools/call echo
#                through a hub (workers 32, one legacy mcphub-mock) — req/s (all, and answers with a
#                result), p50, p99, hub CPU µs per call and its kernel share, hub RSS after the point,
#                error % — and the same points direct to the mock. A point where the hub answered
#                errors (its request queue, 256 by default, full: 503) is run again against a hub
#                with queue SCALE_BIG_QUEUE (2048).
#   servers      upstream servers 1, 10, 100 (SCALE_SERVERS), each mcphub-mock --extra-tools 50
#                --workers 2 (57 tools each: 5,700 at 100), toolNaming SCALE_TOOL_NAMING (prefix: no
#                collision warnings; `auto` logs one WARN per colliding tool at every merge, and every
#                mock offers the same names): tools/list sequential (wrk -c1) warm
#                (cached) and cold (a second hub with listCacheTtlSecs 0: every list fetches every
#                server's list again), hub CPU µs per list, list bytes, tools listed, hub RSS; then
#                tools/call of tool-50 of the LAST server at SCALE_CALL_CONNS (8) connections: hub
#                CPU µs per call (routing cost as tools grow), beside the hub's idle CPU (ms/s).
#   sessions     scripts/bench/scale-sessions.sh, if present (idle legacy client sessions).
#   users        scripts/bench/scale-users.sh, if present (users with per-user credentials).
# The curve scripts get BIN, ROOT, RUN (a temp dir), ROWS (rows.tsv), SECS exported and append
# rows `curve<TAB>x<TAB>metric<TAB>value<TAB>unit<TAB>note` to ROWS ('#' lines are comments).
# SCALE_CURVES picks curves (default "connections servers sessions users").
#
# Needs target/release/{mcphub,mcphub-mock}, wrk (Debian package; installed if missing and
# root), curl, python3 (matplotlib is pip-installed by the renderer if missing). Loopback only;
# every process started is stopped on exit. BENCH_KEEP=1 keeps the run directory (logs).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${BIN:-$ROOT/target/release}
SECS=${BENCH_SCALE_SECS:-5}
OUT=${BENCH_SCALE_OUT:-$ROOT/target/bench-scale}
CURVES=${SCALE_CURVES:-connections servers sessions users}
CONN_POINTS=${SCALE_CONNECTIONS:-1 8 70 256 1000}
SERVER_POINTS=${SCALE_SERVERS:-1 10 100}
CALL_CONNS=${SCALE_CALL_CONNS:-8}
BIG_QUEUE=${SCALE_BIG_QUEUE:-2048}
TOOL_NAMING=${SCALE_TOOL_NAMING:-prefix}
EXTRA_TOOLS=50
READY_TIMEOUT=${BENCH_READY_TIMEOUT:-10}
LUA=$ROOT/scripts/bench/post.lua
export BIN ROOT SECS READY_TIMEOUT

die() { echo "bench-scale: $*" >&2; exit 1; }
say() { echo "bench-scale: $*" >&2; }
if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ]; then apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; } >/dev/null 2>&1 || true; fi
  command -v wrk >/dev/null || die "wrk is required (apt-get install wrk)"
fi
command -v curl >/dev/null || die "curl is required"
command -v python3 >/dev/null || die "python3 is required"
for b in mcphub mcphub-mock; do
  [ -x "$BIN/$b" ] || die "$BIN/$b not found (run cargo build --release, or set BIN)"
done
# 1000 wrk connections (+ the hub's, + 100 mocks'): raise the soft limit to the hard one.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" -ge 4096 ] || say "ulimit -n is $(ulimit -n): the 1000-connection points may fail"

RUN=$(mktemp -d "${TMPDIR:-/tmp}/mcphub-bench-scale.XXXXXX")
mkdir -p "$OUT"
ROWS=$OUT/rows.tsv
export RUN ROWS
PIDS=()
# shellcheck source=lib/procs.sh
. "$ROOT/scripts/lib/procs.sh"
cleanup() {
  set +e # stop_pids' SIGKILL of already-gone processes fails, and everything must still be stopped
  [ "${#PIDS[@]}" -gt 0 ] && stop_pids "${PIDS[@]}"
  if [ -z "${BENCH_KEEP:-}" ]; then rm -rf "$RUN"; else echo "bench-scale: logs kept in $RUN" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

HZ=$(getconf CLK_TCK)
ticks() { # summed utime+stime (clock ticks) of the given pids
  local t=0 p
  for p in "$@"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
  echo "$t"
}
sys_ticks() { awk '{print $15}' "/proc/$1/stat" 2>/dev/null || echo 0; } # stime of one pid
rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status" 2>/dev/null || echo ''; }
us_per() { awk -v d="$1" -v n="$2" -v hz="$HZ" 'BEGIN{ if (n > 0) printf "%.1f", d / hz * 1e6 / n }'; }
row() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "${6:-}" >>"$ROWS"; } # curve x metric value unit note
# stop NAME...: stop these processes now (SIGTERM, up to 3 s, SIGKILL), reap them and forget
# them; the rest keep running for later points and the cleanup. (procs.sh's stop_pids waits
# for every child, so it is only for the end.)
stop() {
  local n v p keep=() gone=() alive
  for n in "$@"; do v=PID_$n; gone+=("${!v}"); done
  for p in "${gone[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for _ in $(seq 1 30); do
    alive=0
    for p in "${gone[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" -eq 0 ] && break
    sleep 0.1
  done
  for p in "${gone[@]}"; do kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do [[ " ${gone[*]} " == *" $p "* ]] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

CALL='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}'
LIST='{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}'
call_of() { printf '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"%s","arguments":{"text":"hello"}}}' "$1"; }
export MCP_VERSION=2025-06-18 MCP_METHOD= MCP_NAME=

# shellcheck source=lib/mcp.sh
. "$ROOT/scripts/lib/mcp.sh"
post() { # URL SESSION BODY OUTFILE: one legacy POST, the body to OUTFILE
  curl -s -m 60 -o "$4" -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
    -H "Mcp-Session-Id: $2" -H 'MCP-Protocol-Version: 2025-06-18' "$1" -d "$3"
}

# wrk_point URL CONNS SECS PID(S): one wrk run with BODY/SESSION from the environment. Sets
# W_RPS W_P50 W_P99 W_N W_ERRS, W_OK (answers with a result per second), W_CPU (µs of the given
# pids' CPU per request) and W_SYS (the first pid's share of that CPU spent in the kernel, %).
wrk_point() {
  local url=$1 c=$2 secs=$3 t0 t1 s0 s1 out kv t
  shift 3
  t=$((c < 2 ? c : 2))
  W_RPS='' W_P50='' W_P99='' W_N=0 W_ERRS=0 W_CPU='' W_OK='' W_SYS=''
  t0=$(ticks "$@") s0=$(sys_ticks "$1")
  out=$(wrk -t"$t" -c"$c" -d"${secs}s" --timeout 10s --latency -s "$LUA" "$url" 2>&1 | grep '^BENCH' || true)
  t1=$(ticks "$@") s1=$(sys_ticks "$1")
  for kv in $out; do
    case $kv in
      rps=*) W_RPS=${kv#*=} ;; p50_ms=*) W_P50=${kv#*=} ;; p99_ms=*) W_P99=${kv#*=} ;;
      requests=*) W_N=${kv#*=} ;; non2xx_or_error=*) W_ERRS=${kv#*=} ;;
    esac
  done
  [ -n "$out" ] || say "wrk failed against $url at -c$c"
  W_CPU=$(us_per $((t1 - t0)) "$W_N")
  W_OK=$(awk -v r="$W_RPS" -v n="$W_N" -v e="$W_ERRS" 'BEGIN{ if (n > 0) printf "%.0f", r * (n - e) / n }')
  W_SYS=$(awk -v s=$((s1 - s0)) -v t=$((t1 - t0)) 'BEGIN{ if (t > 0) printf "%.0f", 100 * s / t }')
}
# idle_cpu PID SECS: the process's CPU while nobody calls it, ms per second (background threads).
idle_cpu() {
  local t0 t1
  t0=$(ticks "$1")
  sleep "$2" # measuring an interval: the wait is the measurement
  t1=$(ticks "$1")
  awk -v d=$((t1 - t0)) -v s="$2" -v hz="$HZ" 'BEGIN{ printf "%.1f", d / hz * 1000 / s }'
}
pct() { awk -v e="$1" -v n="$2" 'BEGIN{ if (n > 0) printf "%.2f", 100 * e / n; else print "" }'; }

server() { printf '"%s": {"type": "streamable-http", "url": "http://127.0.0.1:%s/mcp", "protocol": "legacy"}' "$1" "$2"; }

# ---------------------------------------------------------------------------------------------
# point_rows CONNS WHO CPU_LABEL: the rows of the last wrk_point for WHO (hub or direct).
point_rows() {
  local note=''
  [ "$W_ERRS" = 0 ] || note="$W_ERRS of $W_N answers non-2xx or without a result"
  row connections "$1" "$2 req/s" "$W_RPS" "req/s" "$note"
  row connections "$1" "$2 ok req/s" "$W_OK" "req/s"
  row connections "$1" "$2 p50" "$W_P50" "ms"
  row connections "$1" "$2 p99" "$W_P99" "ms"
  row connections "$1" "$3" "$W_CPU" "µs"
}

curve_connections() {
  local p_mock p_hub p_hubq hub_url hubq_url mock_url hub_sid hubq_sid mock_sid c note
  read -r p_mock p_hub p_hubq < <(free_ports 3)
  start cmock "$BIN/mcphub-mock" --port "$p_mock" --era dual --name m
  ready cmock http_ok "http://127.0.0.1:$p_mock/stats"
  printf '{"workers": 32, "mcpServers": {%s}}\n' "$(server m "$p_mock")" >"$RUN/conn-hub.json"
  printf '{"workers": 32, "queue": %s, "mcpServers": {%s}}\n' "$BIG_QUEUE" "$(server m "$p_mock")" >"$RUN/conn-hubq.json"
  start chub "$BIN/mcphub" serve --config "$RUN/conn-hub.json" --port "$p_hub"
  start chubq "$BIN/mcphub" serve --config "$RUN/conn-hubq.json" --port "$p_hubq"
  ready chub http_ok "http://127.0.0.1:$p_hub/healthz"
  ready chubq http_ok "http://127.0.0.1:$p_hubq/healthz"
  hub_url=http://127.0.0.1:$p_hub/mcp mock_url=http://127.0.0.1:$p_mock/mcp
  hubq_url=http://127.0.0.1:$p_hubq/mcp
  hub_sid=$(session_of "$hub_url") mock_sid=$(session_of "$mock_url") hubq_sid=$(session_of "$hubq_url")
  printf '# connections: legacy tools/call echo, keep-alive, wrk -t min(c,2), %s s a point; hub workers 32 (queue 256, the default), one mcphub-mock (64 workers, queue 256); ok req/s = answers with a result; kernel share = stime / (utime+stime) of the hub; where the hub answered errors, the point again against a hub with queue %s\n' "$SECS" "$BIG_QUEUE" >>"$ROWS"
  export BODY=$CALL
  SESSION=$hub_sid wrk -t1 -c4 -d1s -s "$LUA" "$hub_url" >/dev/null # warm-up: era, upstream session, catalog
  SESSION=$hubq_sid wrk -t1 -c4 -d1s -s "$LUA" "$hubq_url" >/dev/null
  for c in $CONN_POINTS; do
    say "connections $c: hub"
    SESSION=$hub_sid wrk_point "$hub_url" "$c" "$SECS" "$PID_chub"
    point_rows "$c" hub "hub CPU/call"
    row connections "$c" "hub kernel share" "$W_SYS" "%"
    row connections "$c" "hub RSS" "$(rss_kb "$PID_chub")" "KiB"
    row connections "$c" "hub errors" "$(pct "$W_ERRS" "$W_N")" "%"
    if [ "$W_ERRS" != 0 ]; then # the same point against a hub whose request queue holds every connection
      say "connections $c: hub with queue $BIG_QUEUE"
      SESSION=$hubq_sid wrk_point "$hubq_url" "$c" "$SECS" "$PID_chubq"
      row connections "$c" "hub ok req/s, queue $BIG_QUEUE" "$W_OK" "req/s"
      row connections "$c" "hub p99, queue $BIG_QUEUE" "$W_P99" "ms"
      row connections "$c" "hub CPU/call, queue $BIG_QUEUE" "$W_CPU" "µs"
      row connections "$c" "hub errors, queue $BIG_QUEUE" "$(pct "$W_ERRS" "$W_N")" "%"
    fi
    say "connections $c: direct"
    SESSION=$mock_sid wrk_point "$mock_url" "$c" "$SECS" "$PID_cmock"
    point_rows "$c" direct "mock CPU/call"
    row connections "$c" "direct errors" "$(pct "$W_ERRS" "$W_N")" "%"
  done
  stop_first "$PID_chub"
  stop_first "$PID_chubq"
  stop chub chubq cmock
}

# ---------------------------------------------------------------------------------------------
curve_servers() {
  local max=0 n i ports p name names=() mock_pids=() servers hub_url sid last tool pw pc warm_rss
  for n in $SERVER_POINTS; do [ "$n" -gt "$max" ] && max=$n; done
  read -r -a ports < <(free_ports "$max")
  say "servers: starting $max mcphub-mock --extra-tools $EXTRA_TOOLS --workers 2"
  for i in $(seq 1 "$max"); do
    name=$(printf 's%03d' "$i")
    names+=("$name")
    start "$name" "$BIN/mcphub-mock" --port "${ports[i - 1]}" --era dual --name "$name" --extra-tools "$EXTRA_TOOLS" --workers 2
  done
  for i in $(seq 1 "$max"); do
    name=${names[i - 1]}
    ready "$name" http_ok "http://127.0.0.1:${ports[i - 1]}/stats"
    p=PID_$name
    mock_pids+=("${!p}")
  done
  printf '# servers: n mcphub-mock --extra-tools %s --workers 2 (%s tools each) behind one hub (workers 32, toolNaming %s); lists: wrk -c1 %s s, warm = cached, cold = a hub with listCacheTtlSecs 0 (every list fetches all n lists); call: tool-%s of the last server (s<n>__tool-%s), wrk -c%s; hub idle CPU: the warm hub over 2 s without requests; hub RSS: the warm hub after its lists\n' \
    "$EXTRA_TOOLS" "$((EXTRA_TOOLS + 7))" "$TOOL_NAMING" "$SECS" "$EXTRA_TOOLS" "$EXTRA_TOOLS" "$CALL_CONNS" >>"$ROWS"
  for n in $SERVER_POINTS; do
    servers=''
    for i in $(seq 1 "$n"); do servers+="${servers:+, }$(server "${names[i - 1]}" "${ports[i - 1]}")"; done
    read -r pw pc < <(free_ports 2)
    printf '{"workers": 32, "toolNaming": "%s", "mcpServers": {%s}}\n' "$TOOL_NAMING" "$servers" >"$RUN/warm-$n.json"
    printf '{"workers": 32, "toolNaming": "%s", "listCacheTtlSecs": 0, "mcpServers": {%s}}\n' "$TOOL_NAMING" "$servers" >"$RUN/cold-$n.json"
    start "warm$n" "$BIN/mcphub" serve --config "$RUN/warm-$n.json" --port "$pw"
    start "cold$n" "$BIN/mcphub" serve --config "$RUN/cold-$n.json" --port "$pc"
    ready "warm$n" http_ok "http://127.0.0.1:$pw/healthz"
    ready "cold$n" http_ok "http://127.0.0.1:$pc/healthz"
    local wpid=PID_warm$n cpid=PID_cold$n
    wpid=${!wpid} cpid=${!cpid}

    # Warm: one list (fills the cache; its size and the tool to call), a warm-up run, then the point.
    hub_url=http://127.0.0.1:$pw/mcp
    sid=$(session_of "$hub_url")
    post "$hub_url" "$sid" "$LIST" "$RUN/list-$n.json"
    last=${names[n - 1]}
    read -r tool listed < <(python3 - "$RUN/list-$n.json" "$last" "tool-$EXTRA_TOOLS" <<'PY'
import json, sys
tools = json.load(open(sys.argv[1], encoding="utf-8"))["result"]["tools"]
last, want = sys.argv[2], sys.argv[3]
names = [t["name"] for t in tools]
pick = next((x for x in (f"{last}__{want}", want) if x in names), "")
print(pick or "-", len(names))
PY
)
    [ "$tool" != "-" ] || die "servers $n: tool-$EXTRA_TOOLS of $last not in the hub's list ($listed tools)"
    say "servers $n: $listed tools listed; warm tools/list"
    export BODY=$LIST SESSION=$sid
    wrk -t1 -c1 -d1s -s "$LUA" "$hub_url" >/dev/null
    wrk_point "$hub_url" 1 "$SECS" "$wpid"
    warm_rss=$(rss_kb "$wpid")
    row servers "$n" "tools listed" "$listed" "tools"
    row servers "$n" "list size" "$(stat -c %s "$RUN/list-$n.json")" "bytes"
    row servers "$n" "warm lists/s" "$W_RPS" "lists/s" "$([ "$W_ERRS" = 0 ] || echo "$W_ERRS errors")"
    row servers "$n" "warm p50" "$W_P50" "ms"
    row servers "$n" "hub CPU/warm list" "$W_CPU" "µs"
    row servers "$n" "warm kernel share" "$W_SYS" "%"

    # Cold: every list fetches all n lists from the mocks.
    hub_url=http://127.0.0.1:$pc/mcp
    export SESSION
    SESSION=$(session_of "$hub_url")
    say "servers $n: cold tools/list"
    wrk -t1 -c1 -d1s -s "$LUA" "$hub_url" >/dev/null
    local m0 m1
    m0=$(ticks "${mock_pids[@]:0:n}")
    wrk_point "$hub_url" 1 "$SECS" "$cpid"
    m1=$(ticks "${mock_pids[@]:0:n}")
    row servers "$n" "cold lists/s" "$W_RPS" "lists/s" "$([ "$W_ERRS" = 0 ] || echo "$W_ERRS errors")"
    row servers "$n" "cold p50" "$W_P50" "ms"
    row servers "$n" "hub CPU/cold list" "$W_CPU" "µs"
    row servers "$n" "cold kernel share" "$W_SYS" "%"
    row servers "$n" "mocks CPU/cold list" "$(us_per $((m1 - m0)) "$W_N")" "µs"
    row servers "$n" "cold hub RSS" "$(rss_kb "$cpid")" "KiB"
    stop_first "$cpid"
    stop "cold$n"

    # Routing: tools/call of the last server's tool-50 through the warm hub.
    hub_url=http://127.0.0.1:$pw/mcp
    export BODY SESSION=$sid
    BODY=$(call_of "$tool")
    say "servers $n: tools/call $tool"
    wrk -t1 -c4 -d1s -s "$LUA" "$hub_url" >/dev/null
    row servers "$n" "hub idle CPU" "$(idle_cpu "$wpid" 2)" "ms/s"
    wrk_point "$hub_url" "$CALL_CONNS" "$SECS" "$wpid"
    row servers "$n" "call req/s" "$W_RPS" "req/s" "$([ "$W_ERRS" = 0 ] || echo "$W_ERRS errors")"
    row servers "$n" "call p50" "$W_P50" "ms"
    row servers "$n" "hub CPU/call" "$W_CPU" "µs"
    row servers "$n" "hub RSS" "$warm_rss" "KiB"
    stop_first "$wpid"
    stop "warm$n"
  done
  stop "${names[@]}"
}

# ---------------------------------------------------------------------------------------------
external() { # CURVE: run scripts/bench/scale-CURVE.sh (another script's curve) if it is there
  local s=$ROOT/scripts/bench/scale-$1.sh
  if [ ! -f "$s" ]; then
    say "curve $1: $s not found; skipped"
    printf '# %s: skipped (scripts/bench/scale-%s.sh not found)\n' "$1" "$1" >>"$ROWS"
    return 0
  fi
  local rc=0
  bash "$s" || rc=$?
  if [ "$rc" != 0 ]; then
    say "curve $1: $s failed (exit $rc); going on"
    printf '# %s: scripts/bench/scale-%s.sh failed; its rows may be incomplete\n' "$1" "$1" >>"$ROWS"
  fi
}

{
  printf '# make bench-scale: %s cores, %s, wrk %s; everything on this one machine\n' \
    "$(nproc)" "$(date -u +%FT%TZ)" "$(wrk -v 2>&1 | head -1 | awk '{print $2}')"
  printf '# curve\tx\tmetric\tvalue\tunit\tnote\n'
} >"$ROWS"
say "$(nproc) cores; ${SECS} s per wrk point; rows in $ROWS"
for curve in $CURVES; do
  case $curve in
    connections) curve_connections ;;
    servers) curve_servers ;;
    sessions | users) external "$curve" ;;
    *) say "unknown curve $curve; skipped" ;;
  esac
done

echo
python3 "$ROOT/scripts/bench/scale_render.py" "$ROWS" "$OUT"
echo "(CPU µs = utime+stime of the process over the point ÷ requests, ${HZ} Hz ticks; RSS = VmRSS after the point)"
echo "rows:   $ROWS"
echo "tables: $OUT/tables.md"
echo "plot:   $OUT/scale.svg"
echo "plot:   $OUT/scale.png"
