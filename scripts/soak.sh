#!/usr/bin/env bash
# `make soak`: the concurrency test of the source notes (docs/decisions.md D8) as a soak run, with restarts.
#
#   SOAK_SECS=600 scripts/soak.sh      (needs target/release/{mcphub,mcphub-mock,mcphub-load}
#                                       and redis-server on PATH)
#
# Starts, on free 127.0.0.1 ports: redis-server (no persistence: --save '' --appendonly no), two
# `mcphub-mock --era legacy --expire-sessions-every $SOAK_EXPIRE` (one behind the hub, one called
# directly) and the hub (DEBUG_MCPHUB=true, its log in a file) with Redis as its session store and
# the mock as its one server. Then `mcphub-load` runs SOAK_CONCURRENCY (70) legacy clients calling
# get_session_id through the hub for SOAK_SECS seconds, and in the middle (SOAK_EVENTS=1):
#   at 25 %  the upstream restarts: the mock behind the hub is killed and started again on its port
#            (a new process: every upstream session the hub holds is gone → 404 → the hub heals);
#   at 50 %  the hub restarts: SIGTERM, wait for it to exit (≤ SOAK_STOP_TIMEOUT s, then SIGKILL),
#            start it again on its port with the same config and Redis (upstream sessions stored in
#            Redis survive; client sessions are per instance, so every client meets a 404 and
#            initializes again);
#   at 75 %  Redis restarts on its port (it kept nothing: the stored sessions are gone).
# mcphub-load goes on through all of it like a real client (a 404 → initialize again; refused or
# reset → a pause, 100 ms doubling to 2 s) and counts every failed call by cause. Afterwards the
# same scenario runs directly against the other mock for SOAK_DIRECT_SECS (60; 0 skips it).
#
# Prints: the event timeline, the mcphub-load summary (calls, failed by cause, recoveries), the
# mocks' /stats (initialize = upstream sessions created, expired_404; both processes of the mock
# behind the hub), the ♻️ (session invalidated → re-established) and 💾 (session saved) counts of
# both hub logs, the hub's VmRSS at start and end of each hub process, and the upstream-session
# keys in Redis. Asserts nothing beyond "it ran": exit 0 iff every process came up (and came back)
# and mcphub-load exited 0. Every process started here is stopped on exit. SOAK_KEEP=1 keeps the
# run directory (logs); the JSON summaries go to SOAK_JSON (default target/soak.json: an array,
# through the hub then direct).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${BIN:-$ROOT/target/release}
SOAK_SECS=${SOAK_SECS:-600}
SOAK_DIRECT_SECS=${SOAK_DIRECT_SECS:-60}
SOAK_CONCURRENCY=${SOAK_CONCURRENCY:-70}
SOAK_JSON=${SOAK_JSON:-$ROOT/target/soak.json}
SOAK_EXPIRE=${SOAK_EXPIRE:-50}   # the mocks expire every Nth session use (0: never)
SOAK_DEBUG=${SOAK_DEBUG:-true}   # the hub's DEBUG_MCPHUB (the ♻️/💾 counts need it)
SOAK_EVENTS=${SOAK_EVENTS:-1}    # 0: no restarts (the plain soak)
SOAK_STOP_TIMEOUT=${SOAK_STOP_TIMEOUT:-20}
READY_TIMEOUT=${SOAK_READY_TIMEOUT:-10}

die() { echo "soak: $*" >&2; exit 1; }

command -v redis-server >/dev/null || die "redis-server is required and not on PATH (Debian: apt-get install redis-server)"
command -v curl >/dev/null || die "curl is required"
command -v python3 >/dev/null || die "python3 is required (free ports, /stats)"
for b in mcphub mcphub-mock mcphub-load; do
  [ -x "$BIN/$b" ] || die "$BIN/$b not found (run cargo build --release, or set BIN)"
done
for v in SOAK_SECS SOAK_DIRECT_SECS SOAK_STOP_TIMEOUT; do
  case ${!v} in '' | *[!0-9]*) die "$v must be a whole number of seconds, not '${!v}'" ;; esac
done
[ "$SOAK_SECS" -ge 1 ] || die "SOAK_SECS must be at least 1"

RUN=$(mktemp -d "${TMPDIR:-/tmp}/mcphub-soak.XXXXXX")
PIDS=()
HUB_PID=
# shellcheck source=lib/procs.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/procs.sh"
cleanup() {
  # The hub first (bounded), so its shutdown still reaches the mock; then everything.
  stop_first "$HUB_PID"
  stop_pids "${PIDS[@]}"
  if [ -z "${SOAK_KEEP:-}" ]; then rm -rf "$RUN"; else echo "soak: logs kept in $RUN" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status" 2>/dev/null || echo '?'; }
stats_json() { curl -fs -m 5 "http://127.0.0.1:$1/stats" 2>/dev/null || echo '{}'; }
stats_line() { # a saved /stats document → one line
  python3 -c '
import json, sys
try:
    s = json.loads(sys.argv[1])
    print("initialize=%s expired_404=%s requests=%s" % (s["initialize"], s["expired_404"], s["requests"]))
except Exception:
    print("unavailable")' "$1"
}
T0=$(date +%s)
EVENTS=$RUN/events.log
event() { printf '  t=%4ss  %s\n' "$(($(date +%s) - T0))" "$*" | tee -a "$EVENTS"; }

# free loopback ports, all distinct (the sockets are held until every port is chosen)
read -r P_REDIS P_MOCK P_HUB P_DIRECT < <(free_ports 4)

start_redis() { # NAME
  start "$1" redis-server --port "$P_REDIS" --bind 127.0.0.1 --save '' --appendonly no --daemonize no
  ready "$1" tcp_open "$P_REDIS"
}
start_mock() { # NAME
  start "$1" "$BIN/mcphub-mock" --era legacy --expire-sessions-every "$SOAK_EXPIRE" --port "$P_MOCK"
  ready "$1" http_ok "http://127.0.0.1:$P_MOCK/stats"
}
start_hub() { # NAME
  start "$1" env PORT="$P_HUB" DEBUG_MCPHUB="$SOAK_DEBUG" "$BIN/mcphub" serve --config "$RUN/hub.json"
  ready "$1" http_ok "http://127.0.0.1:$P_HUB/healthz"
  local v=PID_$1
  HUB_PID=${!v}
}

start_redis redis
REDIS_PID=$PID_redis
start_mock mock
MOCK_PID=$PID_mock
start direct "$BIN/mcphub-mock" --era legacy --expire-sessions-every "$SOAK_EXPIRE" --port "$P_DIRECT"
ready direct http_ok "http://127.0.0.1:$P_DIRECT/stats"

cat >"$RUN/hub.json" <<EOF
{"redis": {"url": "redis://127.0.0.1:$P_REDIS"},
 "mcpServers": {"mock": {"type": "http", "url": "http://127.0.0.1:$P_MOCK/mcp", "protocol": "legacy"}}}
EOF
start_hub hub
HUB1_PID=$HUB_PID

HUB_URL=http://127.0.0.1:$P_HUB/mcp
MOCK_URL=http://127.0.0.1:$P_DIRECT/mcp
echo "soak: redis :$P_REDIS, mcphub-mock (legacy, expires every ${SOAK_EXPIRE}th session use; 0 = never) :$P_MOCK behind the hub :$P_HUB, another :$P_DIRECT called directly"
echo "soak: ${SOAK_SECS}s × $SOAK_CONCURRENCY clients, get_session_id, through the hub$([ "$SOAK_EVENTS" = 1 ] && echo ', restarts at 25/50/75 %: upstream, hub, Redis'), then ${SOAK_DIRECT_SECS}s directly ($(date -u +%FT%TZ), $(nproc) cores)"
RSS1_START=$(rss_kb "$HUB1_PID")
mkdir -p "$(dirname "$SOAK_JSON")"

start load "$BIN/mcphub-load" --url "$HUB_URL" --concurrency "$SOAK_CONCURRENCY" --tool get_session_id \
  --duration "$SOAK_SECS" --json "$RUN/hub-load.json"
LOAD_PID=$PID_load
T0=$(date +%s)
echo "events:"
event "mcphub-load started (pid $LOAD_PID); hub pid $HUB1_PID, VmRSS ${RSS1_START} kB"

# The hub's VmRSS every SOAK_RSS_EVERY s (whichever hub process runs), so a
# leak shows as a trend, not just as two end points.
SOAK_RSS_EVERY=${SOAK_RSS_EVERY:-30}
(
  while kill -0 "$LOAD_PID" 2>/dev/null; do
    sleep "$SOAK_RSS_EVERY"
    for p in $(pgrep -f -- "serve --config $RUN/hub.json" || true); do
      printf '%s %s %s\n' "$(($(date +%s) - T0))" "$p" "$(rss_kb "$p")" >>"$RUN/rss.log"
    done
  done
) &
RSS_SAMPLER=$!

# until SECS: sleep until T0+SECS, or return 1 at once if mcphub-load has ended.
until_t() {
  while [ "$(($(date +%s) - T0))" -lt "$1" ]; do
    kill -0 "$LOAD_PID" 2>/dev/null || return 1
    sleep 0.5
  done
}
# wait_exit PID SECS: wait up to SECS for PID (a child of this shell) to exit, SIGKILL after that;
# sets EXITED to "rc=N after T s" (run it directly, not in $(…): only this shell can reap it).
wait_exit() {
  local t0 rc n killed=''
  t0=$(date +%s%N)
  for n in $(seq 1 $(($2 * 10))); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$1" 2>/dev/null; then kill -KILL "$1" 2>/dev/null; killed="still running after $2 s: SIGKILL, "; fi
  wait "$1" 2>/dev/null
  rc=$?
  EXITED="${killed}rc=$rc after $(( ($(date +%s%N) - t0) / 1000000 )) ms"
}

MOCK1_STATS='{}'
RSS1_END='?'
RSS2_START='?'
if [ "$SOAK_EVENTS" = 1 ]; then
  if until_t $((SOAK_SECS * 25 / 100)); then
    MOCK1_STATS=$(stats_json "$P_MOCK")
    kill -KILL "$MOCK_PID" 2>/dev/null
    wait "$MOCK_PID" 2>/dev/null
    event "upstream restart: mock (pid $MOCK_PID) killed; its /stats: $(stats_line "$MOCK1_STATS")"
    start_mock mock2
    MOCK_PID=$PID_mock2
    event "upstream restart: mock started again on :$P_MOCK (pid $MOCK_PID)"
  fi
  if until_t $((SOAK_SECS * 50 / 100)); then
    RSS1_END=$(rss_kb "$HUB1_PID")
    kill -TERM "$HUB1_PID" 2>/dev/null
    event "hub restart: SIGTERM to the hub (pid $HUB1_PID, VmRSS ${RSS1_END} kB)"
    wait_exit "$HUB1_PID" "$SOAK_STOP_TIMEOUT"
    event "hub restart: the hub exited: $EXITED"
    HUB_PID=
    start_hub hub2
    RSS2_START=$(rss_kb "$HUB_PID")
    event "hub restart: the hub started again on :$P_HUB (pid $HUB_PID, VmRSS ${RSS2_START} kB)"
  fi
  if until_t $((SOAK_SECS * 75 / 100)); then
    keys=$(redis-cli -p "$P_REDIS" --scan --pattern 'mcp:upstream:session:*' 2>/dev/null | wc -l)
    kill -TERM "$REDIS_PID" 2>/dev/null
    wait_exit "$REDIS_PID" 10
    event "redis restart: SIGTERM to redis (pid $REDIS_PID, $keys mcp:upstream:session:* keys before); $EXITED"
    start_redis redis2
    REDIS_PID=$PID_redis2
    event "redis restart: redis started again on :$P_REDIS (pid $REDIS_PID), empty"
  fi
fi
# mcphub-load ends by itself after SOAK_SECS (+ its last round, each call bounded by --timeout-ms 30 s).
until_t $((SOAK_SECS + 120)) && { event "mcphub-load still running 120 s after its duration: killed"; kill -KILL "$LOAD_PID"; }
wait "$LOAD_PID"
LOAD_RC=$?
event "mcphub-load ended (exit $LOAD_RC)"
kill "$RSS_SAMPLER" 2>/dev/null; wait "$RSS_SAMPLER" 2>/dev/null || true
RSS_END=$(rss_kb "$HUB_PID")
kill -0 "$HUB_PID" 2>/dev/null || { echo "soak: the hub exited during the run; its log ends:" >&2; tail -n 20 "$RUN/$([ "$HUB_PID" = "$HUB1_PID" ] && echo hub || echo hub2).log" >&2; exit 1; }
MOCK2_STATS=$(stats_json "$P_MOCK")

echo
echo "through the hub (mcphub-load):"
grep -v '^round=' "$RUN/load.log"
rounds_short=$(grep '^round=' "$RUN/load.log" | awk -F'[= /]' '$4 < $5' | wc -l)
echo "rounds with a failed call: $rounds_short of $(grep -c '^round=' "$RUN/load.log")"

DIRECT_RC=0
if [ "$SOAK_DIRECT_SECS" -gt 0 ]; then
  echo
  echo "directly against the other mock, ${SOAK_DIRECT_SECS}s (no restarts):"
  "$BIN/mcphub-load" --url "$MOCK_URL" --concurrency "$SOAK_CONCURRENCY" --tool get_session_id \
    --duration "$SOAK_DIRECT_SECS" --json "$RUN/direct-load.json" >"$RUN/direct-load.log" 2>&1
  DIRECT_RC=$?
  grep -v '^round=' "$RUN/direct-load.log"
fi
python3 - "$SOAK_JSON" "$RUN/hub-load.json" "$RUN/direct-load.json" <<'PY'
import json, os, sys
docs = [json.load(open(p)) for p in sys.argv[2:] if os.path.exists(p)]
json.dump(docs, open(sys.argv[1], "w"), indent=2)
PY

echo
if [ "$SOAK_EVENTS" = 1 ]; then
  echo "mock behind the hub /stats: first process $(stats_line "$MOCK1_STATS"); after the restart $(stats_line "$MOCK2_STATS")"
else
  echo "mock behind the hub /stats: $(stats_line "$MOCK2_STATS")"
fi
echo "mock called directly /stats: $(stats_line "$(stats_json "$P_DIRECT")")"
if [ "$HUB_PID" = "$HUB1_PID" ]; then
  echo "hub VmRSS: start=${RSS1_START} kB end=${RSS_END} kB"
else
  echo "hub VmRSS: first process start=${RSS1_START} kB before SIGTERM=${RSS1_END} kB; second process start=${RSS2_START} kB end=${RSS_END} kB"
fi
if [ -s "$RUN/rss.log" ]; then
  echo "hub VmRSS every ${SOAK_RSS_EVERY} s (t: kB, per process):"
  awk '{ if ($2 != pid) { if (line != "") print line; pid = $2; line = "  pid " $2 ":" } line = line " " $1 "s=" $3 } END { if (line != "") print line }' "$RUN/rss.log"
fi
for h in hub hub2; do
  [ -f "$RUN/$h.log" ] || continue
  echo "$h log: ♻️ lines=$(grep -c '♻️' "$RUN/$h.log") 💾 lines=$(grep -c '💾' "$RUN/$h.log") ERROR lines=$(grep -c '\[ERROR\]' "$RUN/$h.log") WARN lines=$(grep -c '\[WARN\]' "$RUN/$h.log") ($(du -h "$RUN/$h.log" | cut -f1) of log)"
done
if command -v redis-cli >/dev/null; then
  echo "redis: mcp:upstream:session:* keys=$(redis-cli -p "$P_REDIS" --scan --pattern 'mcp:upstream:session:*' 2>/dev/null | wc -l)"
fi
echo "summary JSON: $SOAK_JSON"
[ "$LOAD_RC" -eq 0 ] || { echo "soak: mcphub-load exited $LOAD_RC" >&2; exit 1; }
[ "$DIRECT_RC" -eq 0 ] || { echo "soak: mcphub-load (direct) exited $DIRECT_RC" >&2; exit 1; }
