#!/usr/bin/env bash
# `make bench-shaping`: the source notes' concurrency run (docs/decisions.md D8: 70 clients against an
# upstream that limits concurrency got 253 of 8,260 calls through) as a benchmark.
#
#   SHAPING_SECS=60 scripts/bench-shaping.sh     (needs target/release/{mcphub,mcphub-mock,mcphub-load})
#
# Starts, on free 127.0.0.1 ports, two `mcphub-mock --era legacy --max-concurrency 8
# --latency-ms 200` (429 + Retry-After: 1 beyond 8 requests in flight; one behind the hub, one
# called directly, so each one's /stats counts one path) and the hub with the first as its one
# server, `maxConcurrency: 8` (its bulkhead shapes the traffic). Then `mcphub-load` runs
# SHAPING_CONCURRENCY (70) legacy clients calling get_session_id for SHAPING_SECS (60) seconds
# through the hub, and the same directly against the other mock (--compare-url), and prints its
# table, the mocks' /stats (requests, rejected_429, max_in_flight) and the hub's /readyz bulkhead.
# Asserts nothing beyond "it ran": exit 0 iff every process came up and mcphub-load exited 0
# (mcphub-load exits non-zero when calls failed: the direct run's 429s count, so its exit code
# is reported, not used). Every process started here is stopped on exit; SHAPING_KEEP=1 keeps the
# run directory (logs); the JSON summary goes to SHAPING_JSON (default target/bench-shaping.json).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${BIN:-$ROOT/target/release}
SHAPING_SECS=${SHAPING_SECS:-60}
SHAPING_CONCURRENCY=${SHAPING_CONCURRENCY:-70}
SHAPING_UPSTREAM_LIMIT=${SHAPING_UPSTREAM_LIMIT:-8}
SHAPING_LATENCY_MS=${SHAPING_LATENCY_MS:-200}
SHAPING_JSON=${SHAPING_JSON:-$ROOT/target/bench-shaping.json}
READY_TIMEOUT=${SHAPING_READY_TIMEOUT:-10}

die() { echo "bench-shaping: $*" >&2; exit 1; }

command -v curl >/dev/null || die "curl is required"
command -v python3 >/dev/null || die "python3 is required (free ports, /stats)"
for b in mcphub mcphub-mock mcphub-load; do
  [ -x "$BIN/$b" ] || die "$BIN/$b not found (run cargo build --release, or set BIN)"
done
for v in SHAPING_SECS SHAPING_CONCURRENCY SHAPING_UPSTREAM_LIMIT SHAPING_LATENCY_MS; do
  case ${!v} in '' | *[!0-9]*) die "$v must be a whole number, not '${!v}'" ;; esac
done

RUN=$(mktemp -d "${TMPDIR:-/tmp}/mcphub-shaping.XXXXXX")
PIDS=()
# shellcheck source=lib/procs.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/procs.sh"
cleanup() {
  # The hub first (bounded), so its shutdown still reaches the mock; then everything.
  stop_first "${PID_hub:-}"
  stop_pids "${PIDS[@]}"
  if [ -z "${SHAPING_KEEP:-}" ]; then rm -rf "$RUN"; else echo "bench-shaping: logs kept in $RUN" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM


# free loopback ports, all distinct (the sockets are held until every port is chosen)
read -r P_MOCK P_HUB P_DIRECT < <(free_ports 3)

# Enough mock workers that the limit, not the worker pool, is what refuses.
MOCK_ARGS=(--era legacy --max-concurrency "$SHAPING_UPSTREAM_LIMIT" --latency-ms "$SHAPING_LATENCY_MS" --workers $((SHAPING_CONCURRENCY + 32)))
start mock "$BIN/mcphub-mock" "${MOCK_ARGS[@]}" --port "$P_MOCK"
ready mock http_ok "http://127.0.0.1:$P_MOCK/stats"
start direct "$BIN/mcphub-mock" "${MOCK_ARGS[@]}" --port "$P_DIRECT"
ready direct http_ok "http://127.0.0.1:$P_DIRECT/stats"

# One hub worker per client, so every client's call reaches the bulkhead (not the HTTP queue).
cat >"$RUN/hub.json" <<EOF
{"workers": $((SHAPING_CONCURRENCY + 16)),
 "mcpServers": {"jira": {"type": "http", "url": "http://127.0.0.1:$P_MOCK/mcp", "protocol": "legacy",
   "maxConcurrency": $SHAPING_UPSTREAM_LIMIT, "maxQueue": $((SHAPING_CONCURRENCY * 2))}}}
EOF
start hub env PORT="$P_HUB" "$BIN/mcphub" serve --config "$RUN/hub.json"
ready hub http_ok "http://127.0.0.1:$P_HUB/healthz"

HUB_URL=http://127.0.0.1:$P_HUB/mcp
MOCK_URL=http://127.0.0.1:$P_DIRECT/mcp
echo "bench-shaping: mcphub-mock --max-concurrency $SHAPING_UPSTREAM_LIMIT --latency-ms $SHAPING_LATENCY_MS :$P_MOCK behind the hub :$P_HUB (maxConcurrency $SHAPING_UPSTREAM_LIMIT), another :$P_DIRECT called directly"
echo "bench-shaping: ${SHAPING_SECS}s × $SHAPING_CONCURRENCY clients, get_session_id, through the hub then directly ($(date -u +%FT%TZ), $(nproc) cores)"
mkdir -p "$(dirname "$SHAPING_JSON")"

"$BIN/mcphub-load" --url "$HUB_URL" --concurrency "$SHAPING_CONCURRENCY" --tool get_session_id \
  --duration "$SHAPING_SECS" --compare-url "$MOCK_URL" --json "$SHAPING_JSON"
LOAD_RC=$?
kill -0 "$PID_hub" 2>/dev/null || { echo "bench-shaping: the hub exited during the run; its log ends:" >&2; tail -n 20 "$RUN/hub.log" >&2; exit 1; }

echo
stats() {
  curl -fs -m 5 "http://127.0.0.1:$1/stats" | python3 -c '
import json, sys
s = json.load(sys.stdin)
print("requests=%s rejected_429=%s max_in_flight=%s" % (s["requests"], s["rejected_429"], s.get("max_in_flight", "?")))
' 2>/dev/null || echo unavailable
}
echo "mock behind the hub /stats: $(stats "$P_MOCK")"
echo "mock called directly /stats: $(stats "$P_DIRECT")"
echo "hub /readyz jira: $(curl -fs -m 5 "http://127.0.0.1:$P_HUB/readyz" | python3 -c '
import json, sys
s = json.load(sys.stdin)["servers"]["jira"]
print(json.dumps({k: s.get(k) for k in ("ok", "lastError", "bulkhead")}))' 2>/dev/null || echo unavailable)"
echo "hub log: $(grep -c 'holding its calls' "$RUN/hub.log") upstream 429/503 holds"
echo "summary JSON: $SHAPING_JSON (mcphub-load exit code $LOAD_RC)"
