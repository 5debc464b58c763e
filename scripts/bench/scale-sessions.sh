#!/usr/bin/env bash
# Curve `sessions` of `make bench-scale` (issue 16): what idle legacy client sessions cost as
# their number grows. For each x in SCALE_SESSIONS (1000 10000 100000) two FRESH hubs
# (maxClientSessions x, one mcphub-mock behind them; A: clientSessionIdleSecs 1, B: 3600) each
# get x `initialize` over SCALE_SESSION_CONNS (2) keep-alive connections (scale.py sessions):
#   (A) RSS per session  (VmRSS after − before) ÷ x, KiB
#   (A) initialize CPU   hub utime+stime while creating them ÷ x, µs
#   (A) sweep expiring all   one sweep that expires all x: once the newest is idle past 1 s, the
#                        next `initialize` finds the table full and sweeps it; the hub's
#                        mcphub_client_session_sweep_seconds (sum, count 1), ms — and per session, ns;
#                        plus hub CPU ticks around that `initialize`, ms (10 ms resolution)
#   (B) sweep expiring none  the same table, none idle: the (x+1)th `initialize` sweeps (scans
#                        all, keeps all) and is refused 503 — the cost of the every-60-s sweep
#                        of a busy hub; ms and ns per session
# Rows `sessions<TAB>x<TAB>metric<TAB>value<TAB>unit<TAB>note` are appended to ROWS.
#
# Env (set by scripts/bench-scale.sh; defaults when run alone): BIN (target/release), ROOT
# (the repo), RUN (a temp dir, removed on exit when made here), ROWS (RUN/rows.tsv; printed
# when made here), SECS (unused: no wrk point here). Loopback only; every process started is
# stopped on exit.
set -euo pipefail
ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BIN=${BIN:-$ROOT/target/release}
POINTS=${SCALE_SESSIONS:-1000 10000 100000}
CONNS=${SCALE_SESSION_CONNS:-2}
READY_TIMEOUT=${READY_TIMEOUT:-10}
IDLE_SECS=1
PY=$ROOT/scripts/bench/scale.py
CURVE=sessions

TAG=scale-sessions
# shellcheck source=../lib/scale.sh
. "$ROOT/scripts/lib/scale.sh"
for b in mcphub mcphub-mock; do [ -x "$BIN/$b" ] || die "$BIN/$b not found (cargo build --release, or set BIN)"; done
command -v curl >/dev/null || die "curl is required"

read -r P_MOCK < <(free_ports 1)
start mock "$BIN/mcphub-mock" --port "$P_MOCK" --era dual --name m
ready mock http_ok "http://127.0.0.1:$P_MOCK/stats"
printf '# sessions: each x two fresh hubs (maxClientSessions x; clientSessionIdleSecs %s, then 3600 for the sweep expiring none); %s keep-alive connections; %s cores\n' \
  "$IDLE_SECS" "$CONNS" "$(nproc)" >>"$ROWS"

# hub_with X IDLE TAG: a fresh hub (clientSessionIdleSecs IDLE, maxClientSessions X) with X idle
# legacy sessions; sets pid, port, out (scale.py's line), rss0/rss1 and t0/t1 (before/after).
hub_with() {
  local x=$1 idle=$2 name=hub$1$3 pidvar
  read -r port < <(free_ports 1)
  cat >"$RUN/$name.json" <<JSON
{"clientSessionIdleSecs": $idle, "maxClientSessions": $x,
 "mcpServers": {"m": {"type": "streamable-http", "url": "http://127.0.0.1:$P_MOCK/mcp", "protocol": "legacy"}}}
JSON
  start "$name" "$BIN/mcphub" serve --config "$RUN/$name.json" --port "$port"
  pidvar=PID_$name
  pid=${!pidvar}
  ready "$name" http_ok "http://127.0.0.1:$port/healthz"
  # One session first (allocator, catalog warm-up), then the baseline, then the other x − 1.
  python3 "$PY" init "$port" >/dev/null
  rss0=$(rss_kb "$pid")
  t0=$(ticks "$pid")
  say "x=$x: $x initialize over $CONNS connections (clientSessionIdleSecs $idle)"
  out=$(python3 "$PY" sessions "$port" "$((x - 1))" "$CONNS")
  t1=$(ticks "$pid")
  rss1=$(rss_kb "$pid")
}
# sweep_rows X LABEL NOTE: rows from the hub's sweep histogram (one sweep expected).
sweep_rows() {
  local count sum left
  count=$(metric "$port" mcphub_client_session_sweep_seconds_count)
  sum=$(metric "$port" mcphub_client_session_sweep_seconds_sum)
  left=$(metric "$port" mcphub_client_sessions)
  local note="sweeps=$count, sessions left $left; $3"
  [ "$count" = 1 ] || note="sweep count ${count:-none} ≠ 1: sum over all; $note"
  row "$CURVE" "$1" "$2" "$(calc %.3f "${sum:-0} * 1e3")" ms "$note"
  row "$CURVE" "$1" "$2 per session" "$(calc %.1f "${sum:-0} * 1e9 / $1")" ns "that ÷ x"
}

for x in $POINTS; do
  # A: idle 1 s — memory, initialize cost, then one sweep that expires all x.
  hub_with "$x" "$IDLE_SECS" a
  live=$(metric "$port" mcphub_client_sessions)
  made=$(kv sessions "$out")
  note="fresh hub; $out; live=$live"
  [ "$(kv failed "$out")" = 0 ] || note="FAILURES; $note"
  row "$CURVE" "$x" "RSS per session" "$(calc %.2f "($rss1 - $rss0) / $x")" KiB "$note; RSS $rss0 → $rss1 KiB"
  row "$CURVE" "$x" "initialize CPU" "$(calc %.1f "($t1 - $t0) / $HZ * 1e6 / ($made > 0 ? $made : 1)")" "µs" \
    "hub CPU while creating ÷ sessions created; $(calc %.0f "$made / $(kv secs "$out")") initialize/s"
  # Wait (bounded by the clock: nothing else shows it without touching a session) until the
  # newest session is idle past clientSessionIdleSecs; the next `initialize` finds the table
  # full and sweeps it.
  python3 -c 'import sys, time; time.sleep(max(0.0, float(sys.argv[1]) + float(sys.argv[2]) + 0.3 - time.time()))' \
    "$(kv last "$out")" "$IDLE_SECS"
  s0=$(ticks "$pid")
  trig=$(python3 "$PY" init "$port")
  s1=$(ticks "$pid")
  sweep_rows "$x" "sweep expiring all" "the next initialize (table full, all idle > ${IDLE_SECS}s): $trig; 1 left = that one"
  row "$CURVE" "$x" "sweep expiring all, CPU" "$(calc %.0f "($s1 - $s0) / $HZ * 1e3")" ms \
    "hub CPU ticks around that initialize ($HZ Hz: 10 ms steps)"
  stop_one "$pid"
  # B: idle 3600 s — the same table, none expired: the sweep scans all x and keeps them
  # (the every-60-s sweep of a busy hub; here the (x+1)th initialize is refused 503).
  hub_with "$x" 3600 b
  # A forced sweep runs at most once a second after the last (here: the hub's start); until
  # then the refused initialize sweeps nothing — retry until the histogram counts one.
  for _ in $(seq 1 50); do
    trig=$(python3 "$PY" init "$port")
    [ "$(metric "$port" mcphub_client_session_sweep_seconds_count)" = 0 ] || break
    sleep 0.1
  done
  sweep_rows "$x" "sweep expiring none" "the next initialize (table full, none idle): $trig"
  stop_one "$pid"
done
