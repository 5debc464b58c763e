#!/usr/bin/env bash
# Curve `users` of `make bench-scale` (issue 16): what users with hub keys and per-user upstream
# credentials cost as their number grows. For each x in SCALE_USERS (1 100 10000) a FRESH hub
# whose config file lists x users (scale.py users-config: one hub key each, stored as its
# SHA-256 digest; a token CRED = cred-<i>) in front of a fresh mcphub-mock in reflect mode
# (--reflect-credential X-Cred: each credential sees its own tools list) behind the server
# header X-Cred: ${user.CRED} — so every user gets an own upstream session and own list:
#   RSS per configured user  (VmRSS of the fresh hub − the 1-user hub's) ÷ (x − 1), KiB
#   RSS per user listed      every user's key sends one modern tools/list: the first alone (it
#                            also warms the hub up), then the others over SCALE_USER_CONNS (4)
#                            keep-alive connections: (VmRSS after − after the first) ÷ (x − 1),
#                            KiB (x = 1: the first list's growth, warm-up included)
#   call CPU                 wrk -t2 -cSCALE_USER_WRK_CONNS (16) for SECS s, modern tools/call echo,
#                            each request the next user's key (post-users.lua): hub µs per call
#   call CPU vs 1 user       that ÷ the 1-user figure (the first point must be x = 1 for it)
#   call rate                req/s of that run
# Users come from the config file, not the admin API: 10,000 users are one JSON file, parsed
# at start; listCacheContexts stays at its default (1000) unless SCALE_LIST_CONTEXTS is set.
# Rows `users<TAB>x<TAB>metric<TAB>value<TAB>unit<TAB>note` are appended to ROWS.
#
# Env (set by scripts/bench-scale.sh; defaults when run alone): BIN (target/release), ROOT
# (the repo), RUN (a temp dir, removed on exit when made here), ROWS (RUN/rows.tsv; printed
# when made here), SECS (5). Needs wrk. Loopback only; every process started is stopped on exit.
set -euo pipefail
ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BIN=${BIN:-$ROOT/target/release}
SECS=${SECS:-5}
POINTS=${SCALE_USERS:-1 100 10000}
LIST_CONNS=${SCALE_USER_CONNS:-4}
WRK_CONNS=${SCALE_USER_WRK_CONNS:-16}
READY_TIMEOUT=${READY_TIMEOUT:-20}
PY=$ROOT/scripts/bench/scale.py
LUA=$ROOT/scripts/bench/post-users.lua
CURVE=users

TAG=scale-users
# shellcheck source=../lib/scale.sh
. "$ROOT/scripts/lib/scale.sh"
for b in mcphub mcphub-mock; do [ -x "$BIN/$b" ] || die "$BIN/$b not found (cargo build --release, or set BIN)"; done
command -v wrk >/dev/null || die "wrk is required (apt-get install wrk)"
command -v curl >/dev/null || die "curl is required"
mock_requests() { curl -fs -m 5 "http://127.0.0.1:$1/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])'; }

META='"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"wrk","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}'
export BODY='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"},'"$META"'}}'
export MCP_VERSION=2026-07-28 MCP_METHOD=tools/call MCP_NAME=echo SESSION=

printf '# users: each x a fresh hub (x users in its config file) and a fresh reflect-mode mock; lists: %s keep-alive connections; calls: wrk -t2 -c%s %ss; listCacheContexts %s; %s cores\n' \
  "$LIST_CONNS" "$WRK_CONNS" "$SECS" "${SCALE_LIST_CONTEXTS:-1000 (default)}" "$(nproc)" >>"$ROWS"

rss_one='' cpu_one=''
for x in $POINTS; do
  read -r P_MOCK P_HUB < <(free_ports 2)
  python3 "$PY" users-config "$x" "$P_MOCK" "$RUN/users-$x.json" "$RUN/keys-$x.txt"
  if [ -n "${SCALE_LIST_CONTEXTS:-}" ]; then
    python3 - "$RUN/users-$x.json" "$SCALE_LIST_CONTEXTS" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["listCacheContexts"] = int(sys.argv[2]); json.dump(c, open(sys.argv[1], "w"))
PY
  fi
  start "mock$x" "$BIN/mcphub-mock" --port "$P_MOCK" --era dual --name m --reflect-credential X-Cred
  start "hub$x" "$BIN/mcphub" serve --config "$RUN/users-$x.json" --port "$P_HUB"
  mv=PID_mock$x hv=PID_hub$x
  mock=${!mv} hub=${!hv}
  ready "mock$x" http_ok "http://127.0.0.1:$P_MOCK/stats"
  ready "hub$x" http_ok "http://127.0.0.1:$P_HUB/healthz"
  rss0=$(rss_kb "$hub")
  [ -n "$rss_one" ] || rss_one=$rss0
  if [ "$x" -gt 1 ]; then
    row "$CURVE" "$x" "RSS per configured user" "$(calc %.2f "($rss0 - $rss_one) / ($x - 1)")" KiB \
      "fresh hub, before any request: $rss0 KiB vs $rss_one KiB with the first point's users"
  fi

  say "x=$x: every user lists tools once ($LIST_CONNS connections)"
  # The first user's list also warms the hub up (catalog, pools, thread stacks): alone first, so
  # for x > 1 the per-user figure is over the other x − 1 users.
  head -n 1 "$RUN/keys-$x.txt" >"$RUN/keys-$x.first"
  tail -n +2 "$RUN/keys-$x.txt" >"$RUN/keys-$x.rest"
  m0=$(mock_requests "$P_MOCK")
  first=$(python3 "$PY" users-list "$P_HUB" "$RUN/keys-$x.first" 1)
  rss1=$(rss_kb "$hub")
  out='listed=0 failed=0'
  [ "$x" -le 1 ] || out=$(python3 "$PY" users-list "$P_HUB" "$RUN/keys-$x.rest" "$LIST_CONNS")
  m1=$(mock_requests "$P_MOCK")
  rss2=$(rss_kb "$hub")
  ups=$(metric "$P_HUB" 'mcphub_upstream_sessions_active{server="m"}')
  note="first user: $first; the others: $out; upstream sessions $ups; mock requests per list $(calc %.2f "($m1 - $m0) / $x")"
  [ "$(kv failed "$first")" = 0 ] && [ "$(kv failed "$out")" = 0 ] || note="FAILURES; $note"
  if [ "$x" -le 1 ]; then
    row "$CURVE" "$x" "RSS per user listed" "$(calc %.2f "$rss1 - $rss0")" KiB "the first list of a fresh hub (one-time warm-up included); $note"
  else
    row "$CURVE" "$x" "RSS per user listed" "$(calc %.2f "($rss2 - $rss1) / ($x - 1)")" KiB \
      "after the first user's list, ÷ the other x − 1; $note; RSS $rss0 → $rss1 (first) → $rss2 KiB"
  fi

  say "x=$x: tools/call echo, wrk -t2 -c$WRK_CONNS -d${SECS}s over $x keys"
  t0=$(ticks "$hub")
  m0=$(mock_requests "$P_MOCK")
  w=$(KEYS=$RUN/keys-$x.txt wrk -t2 -c"$WRK_CONNS" -d"${SECS}s" --latency -s "$LUA" "http://127.0.0.1:$P_HUB/mcp" | grep '^BENCH' || true)
  t1=$(ticks "$hub")
  m1=$(mock_requests "$P_MOCK")
  n=$(kv requests "$w")
  [ -n "$n" ] && [ "$n" -gt 0 ] || die "x=$x: wrk produced no requests ($w)"
  cpu=$(calc %.1f "($t1 - $t0) / $HZ * 1e6 / $n")
  [ -n "$cpu_one" ] || cpu_one=$cpu
  wnote="errors=$(kv non2xx_or_error "$w"); p50 $(kv p50_ms "$w") ms, p99 $(kv p99_ms "$w") ms; mock requests per call $(calc %.2f "($m1 - $m0) / $n")"
  row "$CURVE" "$x" "call CPU" "$cpu" "µs" "hub CPU per tools/call, keys rotated over $x users; $wnote"
  row "$CURVE" "$x" "call CPU vs 1 user" "$(calc %.2f "$cpu / $cpu_one")" "×" "÷ the first point's call CPU"
  row "$CURVE" "$x" "call rate" "$(kv rps "$w")" "req/s" "wrk -t2 -c$WRK_CONNS ${SECS}s"
  row "$CURVE" "$x" "RSS after calls" "$(rss_kb "$hub")" KiB ""
  stop_one "$hub"
  stop_one "$mock"
done
