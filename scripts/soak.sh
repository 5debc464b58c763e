#!/usr/bin/env bash
# `make soak`: the concurrency test of the source notes (seeds/000) as a soak run.
#
#   SOAK_SECS=180 scripts/soak.sh      (needs target/release/{mcphub,mcphub-mock,mcphub-load}
#                                       and redis-server on PATH)
#
# Starts, on free 127.0.0.1 ports: redis-server (no persistence), two `mcphub-mock --era legacy
# --expire-sessions-every $SOAK_EXPIRE` (one behind the hub, one called directly, so each one's
# /stats counts one path's initialize calls) and the hub (DEBUG_MCPHUB=true, its log in a file) with Redis as
# its session store and the mock as its one server. Then `mcphub-load` runs 70 legacy clients
# calling get_session_id for SOAK_SECS seconds through the hub, and the same scenario directly
# against the mock (--compare-url). Prints the mcphub-load output, the mock's /stats
# (initialize, expired_404), the hub's RSS before and after the load (VmRSS), and the count of
# ♻️ (session invalidated → re-established) and 💾 (session saved) lines in the hub's log, and
# the upstream-session keys in Redis (when redis-cli is there).
# Asserts nothing beyond "it ran": exit 0 iff every process came up and mcphub-load exited 0.
# Every process started here is stopped on exit. SOAK_KEEP=1 keeps the run directory (logs);
# the JSON summary goes to SOAK_JSON (default target/soak.json).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${BIN:-$ROOT/target/release}
SOAK_SECS=${SOAK_SECS:-180}
SOAK_CONCURRENCY=${SOAK_CONCURRENCY:-70}
SOAK_JSON=${SOAK_JSON:-$ROOT/target/soak.json}
SOAK_EXPIRE=${SOAK_EXPIRE:-50}   # the mocks expire every Nth session use (0: never)
SOAK_DEBUG=${SOAK_DEBUG:-true}   # the hub's DEBUG_MCPHUB (the ♻️/💾 counts need it)
READY_TIMEOUT=${SOAK_READY_TIMEOUT:-10}

die() { echo "soak: $*" >&2; exit 1; }

command -v redis-server >/dev/null || die "redis-server is required and not on PATH (Debian: apt-get install redis-server)"
command -v curl >/dev/null || die "curl is required"
command -v python3 >/dev/null || die "python3 is required (free ports, /stats)"
for b in mcphub mcphub-mock mcphub-load; do
  [ -x "$BIN/$b" ] || die "$BIN/$b not found (run cargo build --release, or set BIN)"
done
case $SOAK_SECS in '' | *[!0-9]*) die "SOAK_SECS must be a whole number of seconds, not '$SOAK_SECS'" ;; esac

RUN=$(mktemp -d "${TMPDIR:-/tmp}/mcphub-soak.XXXXXX")
PIDS=()
# shellcheck source=lib/procs.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/procs.sh"
cleanup() {
  # The hub first (bounded), so its shutdown still reaches the mock; then everything.
  stop_first "${PID_hub:-}"
  stop_pids "${PIDS[@]}"
  if [ -z "${SOAK_KEEP:-}" ]; then rm -rf "$RUN"; else echo "soak: logs kept in $RUN" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status" 2>/dev/null || echo '?'; }

# free loopback ports, all distinct (the sockets are held until every port is chosen)
read -r P_REDIS P_MOCK P_HUB P_DIRECT < <(free_ports 4)

start redis redis-server --port "$P_REDIS" --bind 127.0.0.1 --save '' --appendonly no --daemonize no
ready redis tcp_open "$P_REDIS"
start mock "$BIN/mcphub-mock" --era legacy --expire-sessions-every "$SOAK_EXPIRE" --port "$P_MOCK"
ready mock http_ok "http://127.0.0.1:$P_MOCK/stats"
start direct "$BIN/mcphub-mock" --era legacy --expire-sessions-every "$SOAK_EXPIRE" --port "$P_DIRECT"
ready direct http_ok "http://127.0.0.1:$P_DIRECT/stats"

cat >"$RUN/hub.json" <<EOF
{"redis": {"url": "redis://127.0.0.1:$P_REDIS"},
 "mcpServers": {"mock": {"type": "http", "url": "http://127.0.0.1:$P_MOCK/mcp", "protocol": "legacy"}}}
EOF
start hub env PORT="$P_HUB" DEBUG_MCPHUB="$SOAK_DEBUG" "$BIN/mcphub" serve --config "$RUN/hub.json"
ready hub http_ok "http://127.0.0.1:$P_HUB/healthz"

HUB_URL=http://127.0.0.1:$P_HUB/mcp
MOCK_URL=http://127.0.0.1:$P_DIRECT/mcp
echo "soak: redis :$P_REDIS, mcphub-mock (legacy, expires every ${SOAK_EXPIRE}th session use; 0 = never) :$P_MOCK behind the hub :$P_HUB (pid $PID_hub), another :$P_DIRECT called directly"
echo "soak: ${SOAK_SECS}s × $SOAK_CONCURRENCY clients, get_session_id, through the hub then directly ($(date -u +%FT%TZ), $(nproc) cores)"
RSS_START=$(rss_kb "$PID_hub")
mkdir -p "$(dirname "$SOAK_JSON")"

"$BIN/mcphub-load" --url "$HUB_URL" --concurrency "$SOAK_CONCURRENCY" --tool get_session_id \
  --duration "$SOAK_SECS" --compare-url "$MOCK_URL" --json "$SOAK_JSON"
LOAD_RC=$?
RSS_END=$(rss_kb "$PID_hub")
kill -0 "$PID_hub" 2>/dev/null || { echo "soak: the hub exited during the run; its log ends:" >&2; tail -n 20 "$RUN/hub.log" >&2; exit 1; }

echo
stats() {
  curl -fs -m 5 "http://127.0.0.1:$1/stats" | python3 -c '
import json, sys
s = json.load(sys.stdin)
print("initialize=%s expired_404=%s requests=%s" % (s["initialize"], s["expired_404"], s["requests"]))
' 2>/dev/null || echo unavailable
}
echo "mock behind the hub /stats: $(stats "$P_MOCK")"
echo "mock called directly /stats: $(stats "$P_DIRECT")"
echo "hub VmRSS: start=${RSS_START} kB end=${RSS_END} kB"
echo "hub log: ♻️ lines=$(grep -c '♻️' "$RUN/hub.log") 💾 lines=$(grep -c '💾' "$RUN/hub.log") ($(du -h "$RUN/hub.log" | cut -f1) of log)"
if command -v redis-cli >/dev/null; then
  echo "redis: mcp:upstream:session:* keys=$(redis-cli -p "$P_REDIS" --scan --pattern 'mcp:upstream:session:*' 2>/dev/null | wc -l)"
fi
echo "summary JSON: $SOAK_JSON"
[ "$LOAD_RC" -eq 0 ] || { echo "soak: mcphub-load exited $LOAD_RC" >&2; exit 1; }
