#!/usr/bin/env bash
# Issue 20's real-parts test: three hubs behind HAProxy (round-robin, no stickiness) on one Redis
# primary with a replica and Redis Sentinel, driven by real clients through the balancer, then
# mcphub-load while a hub is killed, a hub is reloaded and the Redis primary fails over.
#
#   scripts/cluster-test.sh                       (`make cluster`, part of `make test`; ~2-3 min)
#   CLUSTER_SECS=600 scripts/cluster-test.sh      (`make soak-cluster`)
#
# Needs target/release/{mcphub,mcphub-mock,mcphub-load} (or BIN), redis-server, haproxy (both
# installed with apt-get when missing and root), python3; Sentinel runs as `redis-sentinel`
# when that package is there, else as `redis-server <conf> --sentinel` (the same program).
# Python SDK: the pinned set of scripts/e2e/requirements.txt (mcp 2.3.0): e2e's venv under
# .cache/e2e/venv when it is there and current, else one of its own under .cache/cluster/venv.
#
# Parts, all on free 127.0.0.1 ports and stopped on exit (trap; the hubs first):
#   redis primary (AOF everysec) + replica (--replicaof); one Sentinel watching them as
#     `mcphub` (quorum 1, down-after CLUSTER_DOWN_AFTER_MS (1000) ms, failover-timeout
#     3000 ms; the old primary comes back as a replica, and the run waits until one primary has its
#     replica in sync, whichever way Sentinel settled);
#   mcphub-mock (legacy) `mock` and a Python SDK server `py` (scripts/cluster/py_upstream.py:
#     `sample` asks the client for a completion on the call's stream, `announce` sends
#     tools/list_changed on the session's standalone stream);
#   hubs 1..3: one config each, the same servers and user, `redis.sentinel` {masterName,
#     nodes} (a hub without it gets `redis.url` of the primary instead, and the run says so);
#   HAProxy: `balance roundrobin`, no stickiness, health check GET /healthz every 500 ms,
#     `timeout server/tunnel` 1 h for SSE, request buffering off (the default), retries with
#     redispatch for refused connects; its stats page (CSV) tells which hubs are UP.
# Checks, each `ok - NAME` / `not ok - NAME: why` (scripts/lib/checks.sh), then `N passed, M failed`:
#   a. Python SDK legacy and auto (2026-07-28) clients, 6 at once each, list and call through the
#      balancer; every hub served some of the calls (its request log lines).
#   b. a legacy SDK client's GET stream receives tools/list_changed caused by another client's call.
#   c. sampling: legacy (the answer POSTed through the balancer reaches the waiting call) and
#      2026-07-28 (MRTR: the retry lands on another instance).
#   d. a resumable call stream cut after 2 events is resumed with Last-Event-ID through the
#      balancer (so on the next instance).
#   e. mcphub-load: CLUSTER_CONCURRENCY (70) legacy clients, CLUSTER_SECS (60) s, through the
#      balancer, while every CLUSTER_EVENT_EVERY s (default: CLUSTER_SECS/4, at least 10) in turn
#      a hub is killed (kill -9) and started again, a hub is reloaded (SIGHUP), the Redis primary
#      is killed (kill -9) and Sentinel promotes the replica (the old primary comes back as the
#      new one's replica). Targets (issue 20): failed calls only among those in flight on a killed
#      hub at the kill (sent before it, failed after it), per kill no more than the requests
#      HAProxy saw die on that hub (its `eresp` + `srv_abrt` across the kill); 0 client
#      re-initializations; 0 sessions lost (404); 0 new upstream `initialize` at the mock; every
#      hub served calls; after a failover the hubs are connected to the new primary.
# The counts are printed (failed calls by cause, events with their timing, calls per hub, mock
# /stats) and kept as JSON in CLUSTER_JSON (target/cluster.json). Logs of a failed run are kept
# (CLUSTER_KEEP=1: always). Waits are bounded (CLUSTER_READY_TIMEOUT, 30 s), never bare sleeps.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${BIN:-$ROOT/target/release}
CLUSTER_SECS=${CLUSTER_SECS:-60}
CLUSTER_CONCURRENCY=${CLUSTER_CONCURRENCY:-70}
CLUSTER_EVENT_EVERY=${CLUSTER_EVENT_EVERY:-}
CLUSTER_JSON=${CLUSTER_JSON:-$ROOT/target/cluster.json}
READY_TIMEOUT=${CLUSTER_READY_TIMEOUT:-30}
CLIENT_TIMEOUT=${CLUSTER_CLIENT_TIMEOUT:-60}
E2E_DIR=$ROOT/scripts/e2e
CDIR=$ROOT/scripts/cluster
CACHE=${CLUSTER_CACHE:-$ROOT/.cache/cluster}
E2E_CACHE=${E2E_CACHE:-$ROOT/.cache/e2e}
HUBS=3

CHECKS_NAME="cluster test" CHECKS_KEEP=${CLUSTER_KEEP:-} CHECKS_CUT=head
# shellcheck source=lib/checks.sh
. "$ROOT/scripts/lib/checks.sh"
# shellcheck source=lib/e2e-parts.sh
. "$ROOT/scripts/lib/e2e-parts.sh"   # pyc, run_check, need, PY_MCP_VERSION (not its installs)
# shellcheck source=lib/procs.sh
. "$ROOT/scripts/lib/procs.sh"
# shellcheck source=lib/cluster.sh
. "$ROOT/scripts/lib/cluster.sh"

for v in CLUSTER_SECS CLUSTER_CONCURRENCY; do
  case ${!v} in '' | *[!0-9]* | 0) fatal "settings" "$v must be a positive whole number, not '${!v}'" ;; esac
done
[ -n "$CLUSTER_EVENT_EVERY" ] || CLUSTER_EVENT_EVERY=$((CLUSTER_SECS / 4 < 10 ? 10 : CLUSTER_SECS / 4))

cluster_prereqs
cluster_python

# ---------------------------------------------------------------------------------------------
# The parts
# ---------------------------------------------------------------------------------------------
RUN=$(mktemp -d "${TMPDIR:-/tmp}/mcphub-cluster.XXXXXX")
RUN=$(realpath "$RUN")
PIDS=()
WIRE_LOG=$RUN/wire.txt
cleanup() {
  local i p
  for i in $(seq 1 $HUBS); do
    p=${HUB_PID[$i]:-}
    [ -n "$p" ] && stop_first "$p"
  done
  stop_pids "${PIDS[@]}"
  if [ "$FAIL" -eq 0 ] && [ -z "${CLUSTER_KEEP:-}" ]; then rm -rf "$RUN"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cluster_start_all || fatal "setup" "$SETUP_WHY" "$SETUP_LOG"
ok "setup: redis primary :$P_PRIMARY + replica :$P_REPLICA, sentinel :$P_SENTINEL ($SENTINEL_HOW), mock :$P_MOCK, py upstream :$P_PY, hubs :${P_HUB[1]} :${P_HUB[2]} :${P_HUB[3]} ($REDIS_MODE), haproxy :$P_LB all UP"
[ "$SENTINEL_CONFIG" = 1 ] ||
  echo "# this hub has no redis.sentinel (check-config refused it): the hubs use redis.url of the first primary, so they cannot follow a failover"
[ "$CLUSTER_FEATURES" = 1 ] ||
  echo "# this hub's /readyz has no \"cluster\" section (issue 20's cluster bus): checks that need it are expected to fail"

LB=http://127.0.0.1:$P_LB/mcp
LBK="$LB?key=$KEY"
# pyb ARGS... : the Python SDK client (scripts/e2e/py_client.py) through the balancer with the key
# on the URL; the transcript names the balancer, not the key.
pyb() {
  client_run "python py_client.py <balancer>/mcp?key=*** $*" "$VENV/bin/python" "$E2E_DIR/py_client.py" "$LBK" "$@"
}

# ---------------------------------------------------------------------------------------------
# a. Python SDK clients list and call through the balancer; every hub served some calls
# ---------------------------------------------------------------------------------------------
c_sdk() { # MODE ERA
  pyb --mode "$1" --expect-era "$2" --clients 6 --tag "$1-" --expect-tool echo --expect-tool sample --expect-tool announce \
    --call 'echo=one-{tag}' --call 'echo=two-{tag}' --call 'echo=three-{tag}' --call-json 'get_session_id={}=>sess-'
}
CALLS_BEFORE=$(calls_per_hub)
run_check "a. python-sdk $PY_MCP_VERSION legacy (2025-11-25), 6 clients: tools/list and 4 calls each through the balancer" c_sdk legacy legacy
run_check "a. python-sdk $PY_MCP_VERSION auto (2026-07-28), 6 clients: tools/list and 4 calls each through the balancer" c_sdk auto modern
c_spread() {
  local after i b a spread="" zero=0
  after=$(calls_per_hub)
  for i in $(seq 1 $HUBS); do
    b=$(cut -d' ' -f"$i" <<<"$CALLS_BEFORE") a=$(cut -d' ' -f"$i" <<<"$after")
    spread="$spread hub$i=$((a - b))"
    [ $((a - b)) -gt 0 ] || zero=1
  done
  echo "# tools/call lines per hub during a:$spread" >>"$WIRE_LOG"
  [ "$zero" = 0 ] || { echo "a hub served no tools/call:$spread"; return 1; }
  echo "#   tools/call per hub:$spread; client sessions loaded from Redis (another instance's): $(metric_sum mcphub_client_sessions_loaded_total)"
}
run_check "a. the SDK clients' calls were spread over all $HUBS hubs (request log lines)" c_spread
cat "$RUN/reason" 2>/dev/null | grep '^#' || true

# ---------------------------------------------------------------------------------------------
# b. list_changed on a legacy GET stream, caused through other instances
# ---------------------------------------------------------------------------------------------
c_list_changed() {
  client_run "python py_list_changed.py" "$VENV/bin/python" "$CDIR/py_list_changed.py" "$LBK" --trigger-mode auto --timeout 20
}
DELIV_BEFORE=$(deliveries_received)
run_check "b. legacy SDK client with its GET stream open gets tools/list_changed after another client's announce call (through the balancer)" c_list_changed

# ---------------------------------------------------------------------------------------------
# c. sampling round trips whose answers come back through the balancer
# ---------------------------------------------------------------------------------------------
c_sampling() { # MODE ERA
  pyb --mode "$1" --expect-era "$2" --sampling --tag "s$1" \
    --call 'sample:prompt=ask-{tag}-1=>sampled-by-{tag}' --call 'sample:prompt=ask-{tag}-2=>sampled-by-{tag}' \
    --call 'sample:prompt=ask-{tag}-3=>sampled-by-{tag}'
}
run_check "c. sampling, legacy SDK client: 3 round trips, each answer POSTed through the balancer reaches the waiting call" c_sampling legacy legacy
run_check "c. sampling, 2026-07-28 SDK client (MRTR): 3 round trips, each retry through the balancer is served" c_sampling auto modern
c_crossed() {
  local before=$1 after
  after=$(deliveries_received)
  [ -n "$after" ] || { echo "no mcphub_cluster_deliveries_total{direction=\"received\"} in the hubs' /metrics (cluster bus missing)"; return 1; }
  [ "$((after - ${before:-0}))" -gt 0 ] || { echo "no cross-instance delivery counted during b and c"; return 1; }
  echo "#   cross-instance deliveries received during b and c: $((after - ${before:-0}))"
}
run_check "b/c. the hubs counted cross-instance deliveries (mcphub_cluster_deliveries_total{direction=\"received\"})" c_crossed "$DELIV_BEFORE"
grep '^#' "$RUN/reason" 2>/dev/null || true

# ---------------------------------------------------------------------------------------------
# d. a resumable stream resumed on another instance
# ---------------------------------------------------------------------------------------------
c_resume() {
  client_run "python raw_mcp.py resume" "$VENV/bin/python" "$CDIR/raw_mcp.py" resume "$LB" "$KEY"
}
run_check "d. a call stream (progress, 8 steps) cut after 2 events resumes with Last-Event-ID through the balancer: the rest, nothing twice" c_resume

# ---------------------------------------------------------------------------------------------
# e. mcphub-load while a hub dies, a hub reloads and the Redis primary fails over
# ---------------------------------------------------------------------------------------------
cluster_load_with_events
cluster_load_checks
finish
