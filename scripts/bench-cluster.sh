#!/usr/bin/env bash
# `make bench-cluster` (issue 20): what running several hubs costs, on this machine.
#
#   scripts/bench-cluster.sh     (~2 min; the parts of scripts/cluster-test.sh: scripts/lib/cluster.sh)
#
# On free loopback ports: Redis primary + replica + Sentinel, mcphub-mock (legacy) and the Python SDK
# upstream (scripts/cluster/py_upstream.py), 3 hubs with one config each (redis.sentinel when the hub
# has it), HAProxy with two frontends: one in front of hub 1 alone, one round-robin over the 3 hubs.
#
# 1. req/s: mcphub-load, BENCH_CLUSTER_CONNS (70) legacy clients calling `echo` for
#    BENCH_CLUSTER_SECS (20) s through HAProxy → 1 hub, then the same through HAProxy → 3 hubs.
#    Everything runs on this machine's cores (load generator, HAProxy, hubs, Redis, mock), so the
#    figures show the overhead of shared state per call, not a scale-out.
# 2. Redis operations per request kind: the primary's INFO commandstats before and after a batch of
#    requests through the 3-hub balancer, less the background rate (Sentinel's PING/INFO/hello, the
#    hubs' heartbeats and polls) measured over BENCH_CLUSTER_IDLE_SECS (10) s with no requests,
#    divided by the requests:
#      initialize     BENCH_CLUSTER_INITS (200) legacy sessions: initialize + notifications/initialized
#      tools/call     BENCH_CLUSTER_CALLS (1000) calls of the mock's `echo` (a JSON answer) on one
#                     session, one by one (so round-robin spreads the session over the 3 hubs); one
#                     session's initialize taken off
#      tools/call SSE BENCH_CLUSTER_NOTES (200) calls of the Python upstream's `noop`, whose answer is an
#                     SSE stream (a resumable call stream: its events are kept in Redis too)
#      notification   BENCH_CLUSTER_NOTES (200) calls of its `announce` (the upstream sends
#                     tools/list_changed on its standalone stream; the hub that holds it passes it on
#                     to the others), less a `noop` each
#    Each row shows the operations by command. Figures only, nothing asserted; exit 0 iff it ran.
#    BENCH_CLUSTER_JSON (target/bench-cluster.json) keeps them.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${BIN:-$ROOT/target/release}
CONNS=${BENCH_CLUSTER_CONNS:-70}
SECS=${BENCH_CLUSTER_SECS:-20}
IDLE=${BENCH_CLUSTER_IDLE_SECS:-10}
INITS=${BENCH_CLUSTER_INITS:-200}
CALLS=${BENCH_CLUSTER_CALLS:-1000}
NOTES=${BENCH_CLUSTER_NOTES:-200}
OUT_JSON=${BENCH_CLUSTER_JSON:-$ROOT/target/bench-cluster.json}
READY_TIMEOUT=${CLUSTER_READY_TIMEOUT:-30}
E2E_DIR=$ROOT/scripts/e2e
CDIR=$ROOT/scripts/cluster
CACHE=${CLUSTER_CACHE:-$ROOT/.cache/cluster}
E2E_CACHE=${E2E_CACHE:-$ROOT/.cache/e2e}
HUBS=3

CHECKS_NAME="bench-cluster"
# shellcheck source=lib/checks.sh
. "$ROOT/scripts/lib/checks.sh"
# shellcheck source=lib/e2e-parts.sh
. "$ROOT/scripts/lib/e2e-parts.sh"
# shellcheck source=lib/procs.sh
. "$ROOT/scripts/lib/procs.sh"
# shellcheck source=lib/cluster.sh
. "$ROOT/scripts/lib/cluster.sh"

for v in CONNS SECS IDLE INITS CALLS NOTES; do
  case ${!v} in '' | *[!0-9]* | 0) fatal "settings" "$v must be a positive whole number, not '${!v}'" ;; esac
done
cluster_prereqs
cluster_python

RUN=$(mktemp -d "${TMPDIR:-/tmp}/mcphub-bench-cluster.XXXXXX")
RUN=$(realpath "$RUN")
PIDS=()
cleanup() {
  local i
  for i in $(seq 1 $HUBS); do [ -n "${HUB_PID[$i]:-}" ] && stop_first "${HUB_PID[$i]}"; done
  stop_pids "${PIDS[@]}"
  if [ "$FAIL" -eq 0 ] && [ -z "${BENCH_CLUSTER_KEEP:-}" ]; then rm -rf "$RUN"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cluster_start_all || fatal "setup" "$SETUP_WHY" "$SETUP_LOG"
LB=http://127.0.0.1:$P_LB/mcp
LB1=http://127.0.0.1:$P_LB1/mcp
echo "# bench-cluster: $(date -u +%FT%TZ), $(nproc) cores, $(redis-server --version | awk '{print $3}'), $(haproxy -v | head -n 1 | awk '{print $1, $3}'), hubs with $REDIS_MODE"
[ "$CLUSTER_FEATURES" = 1 ] || echo "# this hub's /readyz has no \"cluster\" section (issue 20's cluster bus): client sessions are per instance, so the 3-hub run meets 404s"

# ---------------------------------------------------------------------------------------------
# 1. req/s through 1 vs 3 hubs
# ---------------------------------------------------------------------------------------------
load() { # NAME URL
  MCPHUB_LOAD_KEY=$KEY "$BIN/mcphub-load" --url "$2" --concurrency "$CONNS" --tool echo --args '{"text":"bench"}' \
    --duration "$SECS" --timeout-ms 30000 --json "$RUN/$1.json" >"$RUN/$1.log" 2>&1 ||
    fatal "mcphub-load $1" "exit $?" "$RUN/$1.log"
}
# a short warm-up through both (upstream session, lists, connections)
MCPHUB_LOAD_KEY=$KEY "$BIN/mcphub-load" --url "$LB" --concurrency 6 --tool echo --args '{"text":"w"}' --rounds 5 >/dev/null 2>&1
B1=$(calls_per_hub)
load one "$LB1"
M1=$(calls_per_hub)
load three "$LB"
M3=$(calls_per_hub)

# ---------------------------------------------------------------------------------------------
# 2. Redis operations per request kind (the primary's INFO commandstats)
# ---------------------------------------------------------------------------------------------
cmdstats() { # FILE : "command calls" lines of the primary
  redis-cli -p "$P_PRIMARY" info commandstats | tr -d '\r' | sed -n 's/^cmdstat_\([^:]*\):calls=\([0-9]*\),.*/\1 \2/p' >"$1"
}
raw() { "$VENV/bin/python" "$CDIR/raw_mcp.py" "$@" >"$RUN/raw.log" 2>&1 || fatal "raw_mcp.py $1" "$(tail -n 1 "$RUN/raw.log")" "$RUN/raw.log"; }
phase() { # NAME CMD... : commandstats around CMD, with its duration in ms
  local t
  cmdstats "$RUN/$1.before"
  t=$(now_ms)
  "${@:2}"
  echo $(($(now_ms) - t)) >"$RUN/$1.ms"
  cmdstats "$RUN/$1.after"
}
idle() { local end=$(($(now_ms) + IDLE * 1000)); while [ "$(now_ms)" -lt "$end" ]; do sleep 0.2; done; }
# through the 3 hubs; a hub without the cluster bus cannot take a session from another instance,
# so then through hub 1 alone (and the table says so)
OPS_URL=$LB OPS_VIA="3 hubs"
[ "$CLUSTER_FEATURES" = 1 ] || OPS_URL=$LB1 OPS_VIA="1 hub (no cluster bus in this hub)"
phase idle idle
phase inits raw inits "$OPS_URL" "$KEY" "$INITS"
phase calls raw calls "$OPS_URL" "$KEY" "$CALLS" echo '{"text":"x"}'
phase sse raw calls "$OPS_URL" "$KEY" "$NOTES" noop '{}'
phase notes raw calls "$OPS_URL" "$KEY" "$NOTES" announce '{}'

python3 - "$RUN" "$OUT_JSON" "$INITS" "$CALLS" "$NOTES" "$B1" "$M1" "$M3" "$OPS_VIA" <<'PY'
import json, os, sys
run, out, inits, calls, notes = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
b1, m1, m3 = ([int(x) for x in a.split()] for a in sys.argv[6:9])
via = sys.argv[9]

def snap(path):
    return {k: int(v) for k, v in (l.split() for l in open(path) if l.strip())}

def delta(name):
    a, b = snap(f"{run}/{name}.before"), snap(f"{run}/{name}.after")
    ms = int(open(f"{run}/{name}.ms").read())
    return {k: b.get(k, 0) - a.get(k, 0) for k in set(a) | set(b)}, ms

bg, bg_ms = delta("idle")
bg_rate = {k: v / bg_ms for k, v in bg.items()}  # per ms

def net(name):
    d, ms = delta(name)
    return {k: v - bg_rate.get(k, 0) * ms for k, v in d.items()}, ms

def per(d, n):
    return {k: v / n for k, v in d.items()}

init_d, _ = net("inits")
init_per = per(init_d, inits)
calls_d, _ = net("calls")
calls_per = per({k: v - init_per.get(k, 0) for k, v in calls_d.items()}, calls)
sse_d, _ = net("sse")
sse_per = per({k: v - init_per.get(k, 0) for k, v in sse_d.items()}, notes)
notes_d, _ = net("notes")
notes_per = per({k: v - init_per.get(k, 0) for k, v in notes_d.items()}, notes)
note_only = {k: notes_per.get(k, 0) - sse_per.get(k, 0) for k in set(notes_per) | set(sse_per)}

def fmt(d):
    items = sorted(((k, v) for k, v in d.items() if abs(v) >= 0.005), key=lambda kv: -abs(kv[1]))
    return " ".join(f"{k}={v:.2f}" for k, v in items) or "-"

def total(d):
    return sum(v for v in d.values())

runs = {}
print()
print("tools/call through HAProxy, %s" % "same load each")
print(f"{'setup':<24} {'calls':>8} {'ok':>8} {'req/s':>9} {'p50_ms':>8} {'p99_ms':>8}  errors / calls per hub")
for name, label, before, after in (("one", "HAProxy → 1 hub", b1, m1), ("three", "HAProxy → 3 hubs", m1, m3)):
    j = json.load(open(f"{run}/{name}.json"))
    spread = " ".join(f"hub{i + 1}={a - b}" for i, (a, b) in enumerate(zip(after, before)))
    errs = " ".join(f"{k}={v}" for k, v in sorted(j["errors"].items())) or "none"
    runs[name] = {k: j[k] for k in ("total", "ok", "rps", "p50_ms", "p99_ms", "errors")} | {"per_hub": spread}
    print(f"{label:<24} {j['total']:>8} {j['ok']:>8} {j['rps']:>9.1f} {j['p50_ms']:>8.3f} {j['p99_ms']:>8.3f}  {errs}; {spread}")

print()
print(f"Redis operations per request through HAProxy → {via} (primary's INFO commandstats; background {total(bg) / bg_ms * 1000:.1f} ops/s subtracted: {fmt({k: v / bg_ms * 1000 for k, v in bg.items()})})")
print(f"{'request':<44} {'n':>6} {'ops':>7}  by command")
rows = [
    ("initialize (+ notifications/initialized)", inits, init_per),
    ("tools/call, JSON answer (one session)", calls, calls_per),
    ("tools/call, SSE answer (one session)", notes, sse_per),
    ("notification (upstream list_changed)", notes, note_only),
]
for label, n, d in rows:
    print(f"{label:<44} {n:>6} {total(d):>7.2f}  {fmt(d)}")
call_ops = total(calls_per)
if call_ops > 0:
    print()
    print(f"at ~100k simple operations/s per Redis core (an estimate; measure with redis-benchmark), one primary "
          f"saturates near {100000 / call_ops:,.0f} tools/call/s at {call_ops:.2f} ops per call")
json.dump({"runs": runs, "ops_measured_through": via, "background_ops_per_s": total(bg) / bg_ms * 1000,
           "ops_per_request": {label: {"n": n, "total": round(total(d), 3), "by_command": {k: round(v, 3) for k, v in d.items() if abs(v) >= 0.005}}
                               for label, n, d in rows}}, open(out, "w"), indent=2)
print(f"\nJSON: {out}")
PY
