#!/usr/bin/env bash
# `make profile`: where the hub's (or the forwarder's) CPU goes under load — perf record -g on one
# process under wrk, a flame graph (inferno) and the top frames by self time. Figures only.
#
#   scripts/bench/profile.sh [hub|forward] [call-legacy|call-modern|list-warm]   (default: hub call-legacy)
#
# PROFILE_SECS (10) of wrk at PROFILE_CONNS (70) connections (list-warm: 1 connection, 3 upstreams);
# perf samples at PROFILE_FREQ (1999) Hz with DWARF call graphs (the release profile keeps line tables).
# Output in PROFILE_OUT (target/profile/<target>-<scenario>/): perf.data, folded.txt, flame.svg, summary.txt
# (inclusive share of chosen frames, and CPU µs per request), top.txt (self time by function, top 40) and children.txt (inclusive time, top 60).
# Needs perf (Debian `linux-perf`), wrk, inferno (`cargo install inferno`); installs perf and wrk as root.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${BIN:-$ROOT/target/release}
WHAT=${1:-hub}
SCENARIO=${2:-call-legacy}
SECS=${PROFILE_SECS:-10}
CONNS=${PROFILE_CONNS:-70}
FREQ=${PROFILE_FREQ:-999}
OUT=${PROFILE_OUT:-$ROOT/target/profile/$WHAT-$SCENARIO}
READY_TIMEOUT=10
LUA=$ROOT/scripts/bench/post.lua
die() { echo "profile: $*" >&2; exit 1; }
need() { # need CMD DEBIAN_PACKAGE
  command -v "$1" >/dev/null && return
  if [ "$(id -u)" = 0 ]; then { apt-get install -y -qq "$2" || { apt-get update -qq && apt-get install -y -qq "$2"; }; } >/dev/null 2>&1 || true; fi
  command -v "$1" >/dev/null || die "$1 is required (apt-get install $2)"
}
need wrk wrk
need perf linux-perf
command -v inferno-flamegraph >/dev/null || PATH=$PATH:$HOME/.cargo/bin
command -v inferno-flamegraph >/dev/null || die "inferno is required (cargo install inferno)"
case $WHAT in hub|forward) ;; *) die "target: hub or forward, not $WHAT" ;; esac
case $SCENARIO in call-legacy|call-modern|list-warm) ;; *) die "scenario: call-legacy, call-modern or list-warm" ;; esac
[ "$WHAT/$SCENARIO" != forward/list-warm ] || die "list-warm profiles the hub only"

RUN=$(mktemp -d "${TMPDIR:-/tmp}/mcphub-profile.XXXXXX")
PIDS=()
# shellcheck source=../lib/procs.sh
. "$ROOT/scripts/lib/procs.sh"
# shellcheck source=../lib/mcp.sh
. "$ROOT/scripts/lib/mcp.sh"
cleanup() { set +e; stop_pids "${PIDS[@]}"; rm -rf "$RUN"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$OUT"

read -r P_M1 P_M2 P_M3 P_PROXY < <(free_ports 4)
for m in 1 2 3; do p=P_M$m; start "m$m" "$BIN/mcphub-mock" --port "${!p}" --era dual --name "m$m"; done
for m in 1 2 3; do p=P_M$m; ready "m$m" http_ok "http://127.0.0.1:${!p}/stats"; done
server() { printf '"%s": {"type": "streamable-http", "url": "http://127.0.0.1:%s/mcp", "protocol": "legacy"}' "$1" "$2"; }
if [ "$WHAT" = forward ]; then
  start proxy "$BIN/mcphub-forward" --port "$P_PROXY" --upstream "http://127.0.0.1:$P_M1/mcp" --workers 32
  ready proxy tcp_open "$P_PROXY"
else
  if [ "$SCENARIO" = list-warm ]; then
    echo "{\"workers\": 32, \"mcpServers\": {$(server m1 "$P_M1"), $(server m2 "$P_M2"), $(server m3 "$P_M3")}}" >"$RUN/hub.json"
  else
    echo "{\"workers\": 32, \"mcpServers\": {$(server m1 "$P_M1")}}" >"$RUN/hub.json"
  fi
  start proxy "$BIN/mcphub" serve --config "$RUN/hub.json" --port "$P_PROXY"
  ready proxy http_ok "http://127.0.0.1:$P_PROXY/healthz"
fi
URL=http://127.0.0.1:$P_PROXY/mcp
META='"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"wrk","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}'
SID=
if [ "$SCENARIO" != call-modern ]; then
  SID=$(session_of "$URL")
fi
case $SCENARIO in
  call-legacy) export BODY='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}' MCP_VERSION=2025-06-18 ;;
  call-modern) export BODY='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"},'"$META"'}}' MCP_VERSION=2026-07-28 MCP_METHOD=tools/call MCP_NAME=echo ;;
  list-warm) export BODY='{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}' MCP_VERSION=2025-06-18; CONNS=1 ;;
esac
export SESSION=$SID
wrk -t1 -c4 -d1s -s "$LUA" "$URL" >/dev/null # warm-up: era, upstream session, catalog, pools
THREADS=2; [ "$CONNS" -ge 2 ] || THREADS=1
echo "profile: $WHAT $SCENARIO, wrk -t$THREADS -c$CONNS -d${SECS}s, perf -F $FREQ --call-graph dwarf" >&2
perf record -q -F "$FREQ" --call-graph dwarf,16384 -p "$PID_proxy" -o "$OUT/perf.data" -- sleep "$((SECS + 1))" 2>"$RUN/perf.err" &
PERF=$!
WRK=$(wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" --latency -s "$LUA" "$URL" | grep '^BENCH' || true)
wait "$PERF" || die "perf record failed: $(tail -3 "$RUN/perf.err")"
echo "profile: $WRK" | tee "$OUT/wrk.txt" >&2
perf script -i "$OUT/perf.data" 2>/dev/null | inferno-collapse-perf >"$OUT/folded.txt"
inferno-flamegraph --title "$WHAT $SCENARIO ($WRK)" <"$OUT/folded.txt" >"$OUT/flame.svg"
report() { perf report -i "$OUT/perf.data" "$1" --sort symbol --stdio -g none 2>/dev/null | grep -E '^ +[0-9.]+%' | sed 's/ *- *- *$//' | head -"$2" || true; }
report --no-children 40 >"$OUT/top.txt"
report --children 60 >"$OUT/children.txt"
python3 "$ROOT/scripts/bench/folded_summary.py" "$OUT/folded.txt" "$WRK" >"$OUT/summary.txt"
echo "profile: $OUT/flame.svg; top frames by self time:" >&2
head -25 "$OUT/top.txt"
echo "profile: inclusive share of the hub's own frames ($OUT/summary.txt):" >&2
cat "$OUT/summary.txt"
