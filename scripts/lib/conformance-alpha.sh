# The install of @modelcontextprotocol/conformance 0.2.0-alpha.12 (its own npm prefix: the 0.1.16
# suite cannot share one node_modules), shared by scripts/conformance.sh and scripts/oauth-test.sh
# (sourced, not run). It has no Node of its own: the callers run it on a Node 22 they have.

CONFORMANCE_ALPHA_VERSION=0.2.0-alpha.12

# conformance_alpha_install CACHE : installs the alpha suite into CACHE/npm-alpha unless its stamp
# says it is there; prints `# installing …` and the time taken when it installs. Sets ALPHA_PREFIX
# and ALPHA_JS (the suite's entry point). Returns 1 with the reason in ALPHA_WHY (the npm log is
# CACHE/npm-install-alpha.log) when the install or its version check failed.
conformance_alpha_install() {
  local cache=$1 stamp="conformance=$CONFORMANCE_ALPHA_VERSION" t got
  ALPHA_PREFIX=$cache/npm-alpha
  ALPHA_JS=$ALPHA_PREFIX/node_modules/@modelcontextprotocol/conformance/dist/index.js
  if [ "$(cat "$ALPHA_PREFIX/.conformance-stamp" 2>/dev/null)" != "$stamp" ]; then
    echo "# installing @modelcontextprotocol/conformance@$CONFORMANCE_ALPHA_VERSION into $ALPHA_PREFIX (first run) ..."
    t=$(date +%s)
    mkdir -p "$cache"
    if ! (rm -rf "$ALPHA_PREFIX" && mkdir -p "$ALPHA_PREFIX" && cd "$ALPHA_PREFIX" &&
      printf '{"name":"mcphub-conformance-alpha","private":true,"dependencies":{"@modelcontextprotocol/conformance":"%s"}}\n' \
        "$CONFORMANCE_ALPHA_VERSION" >package.json &&
      timeout 600 npm install --no-audit --no-fund --loglevel=error --cache "$cache/npm-cache") >"$cache/npm-install-alpha.log" 2>&1; then
      tail -n 20 "$cache/npm-install-alpha.log" | sed 's/^/#   /'
      ALPHA_WHY="npm install of the alpha suite failed (log: $cache/npm-install-alpha.log)"
      return 1
    fi
    echo "$stamp" >"$ALPHA_PREFIX/.conformance-stamp"
    echo "# install took $(($(date +%s) - t))s"
  fi
  [ -f "$ALPHA_JS" ] || { ALPHA_WHY="$ALPHA_JS missing after install"; return 1; }
  got=$(jq -r .version "$ALPHA_PREFIX/node_modules/@modelcontextprotocol/conformance/package.json" 2>&1)
  [ "$got" = "$CONFORMANCE_ALPHA_VERSION" ] || { ALPHA_WHY="alpha conformance is $got, want $CONFORMANCE_ALPHA_VERSION"; return 1; }
}
