#!/usr/bin/env bash
# Real-parts test of issue 18 (OAuth 2.1 for MCP clients): the official MCP TypeScript and Python
# SDK clients sign in to the release hub with OAuth, the person's part played by headless Debian
# chromium (Playwright) through the hub's sign-in at a real OpenID provider and its consent page.
#
#   scripts/oauth-test.sh     (run by `make test` as `make oauth`; needs target/release/mcphub{,-mock},
#                              or MCPHUB_BIN / MOCK_BIN pointing at them)
#
# Pinned third-party parts: those of ui-test.sh (scripts/lib/ui-parts.sh: chromium, oidc-provider,
# playwright-core, @modelcontextprotocol/sdk 1.29.0, Node 22, PyPI mcp 2.3.0; one install under
# .cache/ui/ shared by both scripts) and @modelcontextprotocol/conformance 0.2.0-alpha.12
# (scripts/lib/conformance-alpha.sh, the install conformance.sh makes, under .cache/conformance/).
# Also needs openssl (a throwaway CA).
#
# What it does:
#   1. installs what is missing; makes a throwaway CA and a server certificate for 127.0.0.1
#      and localhost (openssl) in the run's directory;
#   2. starts on free 127.0.0.1 ports: mcphub-mock (dual era) in reflect mode on X-MCPHub-User
#      (every tool result says `for who-<sha of the user name>`: the call came from that user), the OpenID
#      provider (scripts/ui/provider.mjs; alice signs in), an https site serving the TS client's
#      Client ID Metadata Document (scripts/oauth/cimd_server.py, certificate of that CA) and the
#      hub: publicUrl, auth.oidc at the provider, autoProvision, an admin `root` with a key (so
#      anonymous access is off), one server `demo` (forwardUser), auth.oauth with
#      accessTokenSecs 5 and clientMetadata {allowPrivateAddresses, caFile: the CA};
#   3. curl checks of the protected resource and the authorization server: 401 +
#      WWW-Authenticate resource_metadata, the PRM and AS metadata documents, CORS;
#   4. the official conformance suite's `authorization --scenario
#      authorization-server-metadata-endpoint` against the hub's issuer;
#   5. the TypeScript SDK client (scripts/oauth/ts_client.mjs; client_id = the metadata document's
#      https URL) and then the Python SDK client (scripts/oauth/py_client.py; Dynamic Client
#      Registration), each: 401 → discovery → authorization in the browser
#      (scripts/oauth/authorize.mjs: /ui/login → SSO at the provider → consent page → Allow →
#      the client's loopback redirect URI) → token → tools/list + tools/call → the access
#      token expires (5 s) → refresh (TS: after its 401; Python: before the request) → revocation
#      → 401; the TS client then authorizes once more and the consent is remembered;
#   6. the hub's log holds no token, code or secret; the hub fetched the metadata document
#      once (cached); the flow's round trips and times per step as a table
#      (target/oauth-screenshots/timings.md, and stdout), with the login and consent screenshots.
# Needs ~40-60 s after installs.
# Each check prints `ok - NAME` or `not ok - NAME: REASON`, then `N passed, M failed`.
# Exit status: 0 iff every check passed. Logs of a failed run are kept (path printed); a
# clean run removes them (OAUTH_KEEP=1 keeps them). Every process started here is stopped on exit.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHOTS=${OAUTH_SHOTS:-$ROOT/target/oauth-screenshots}
MCPHUB_BIN=${MCPHUB_BIN:-$ROOT/target/release/mcphub}
MOCK_BIN=${MOCK_BIN:-$ROOT/target/release/mcphub-mock}
READY_TIMEOUT=${OAUTH_READY_TIMEOUT:-15}
FLOW_TIMEOUT=${OAUTH_FLOW_TIMEOUT:-150}
ACCESS_SECS=5

CHECKS_NAME="oauth test" CHECKS_KEEP=${OAUTH_KEEP:-} CHECKS_CUT=tail
# shellcheck source=lib/checks.sh
. "$ROOT/scripts/lib/checks.sh"
# shellcheck source=lib/ui-parts.sh
. "$ROOT/scripts/lib/ui-parts.sh"
# shellcheck source=lib/conformance-alpha.sh
. "$ROOT/scripts/lib/conformance-alpha.sh"

# ---------------------------------------------------------------------------------------------
# Prerequisites and install
# ---------------------------------------------------------------------------------------------
command -v openssl >/dev/null 2>&1 || fatal "prerequisites" "'openssl' not found on PATH"
ui_parts # sets UI_DIR, CACHE, NPM_PREFIX, NODE, VENV, CHROMIUM
ALPHA_OK=1
conformance_alpha_install "${CONFORMANCE_CACHE:-$ROOT/.cache/conformance}" || ALPHA_OK=0
[ -x "$MCPHUB_BIN" ] || fatal "hub binary" "$MCPHUB_BIN not found (run cargo build --release, or set MCPHUB_BIN)"
[ -x "$MOCK_BIN" ] || fatal "mock binary" "$MOCK_BIN not found (run cargo build --release, or set MOCK_BIN)"
OAUTH_DIR=$ROOT/scripts/oauth

# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------
RUN=$(mktemp -d "${TMPDIR:-/tmp}/mcphub-oauth.XXXXXX")
PIDS=()
# shellcheck source=lib/procs.sh
. "$ROOT/scripts/lib/procs.sh"
cleanup() {
  stop_first "${PID_hub:-}"
  stop_pids "${PIDS[@]}"
  if [ "$FAIL" -eq 0 ] && [ -z "${OAUTH_KEEP:-}" ]; then rm -rf "$RUN"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

read -r P_HUB P_OP P_CTRL P_MOCK P_CIMD P_CB_TS P_CB_PY < <(free_ports 7)
HUB=http://127.0.0.1:$P_HUB
OP=http://127.0.0.1:$P_OP
CTRL=http://127.0.0.1:$P_CTRL
CIMD_URL=https://127.0.0.1:$P_CIMD/oauth/client-metadata.json
TS_NAME="MCPHub OAuth test (TypeScript SDK)"
PY_NAME="MCPHub OAuth test (Python SDK)"
OIDC_SECRET=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
# what the reflect-mode mock says for alice's calls (crates/mcphub-mock/src/reflect.rs: marker of
# the X-MCPHub-User value the hub sends with forwardUser)
ALICE_MARKER=who-$(printf 'alice' | sha256sum | cut -c1-12)
SECRETS=$RUN/secrets.txt
(umask 077 && : >"$SECRETS")

# A throwaway CA and the client site's certificate (127.0.0.1 and localhost); the hub trusts the
# CA through auth.oauth.clientMetadata.caFile.
make_certs() {
  local d=$RUN/tls
  mkdir -p "$d" && cd "$d" || return 1
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem -days 2 \
    -subj "/CN=MCPHub oauth-test CA" -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" &&
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout site.key -out site.csr -subj "/CN=127.0.0.1" &&
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' >site.ext &&
    openssl x509 -req -in site.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out site.pem -days 2 -extfile site.ext
}
if (make_certs) >"$RUN/openssl.log" 2>&1; then ok "setup: a throwaway CA and a certificate for 127.0.0.1 (openssl)"
else fatal "setup: openssl CA and certificate" "openssl failed" "$RUN/openssl.log"; fi
CA=$RUN/tls/ca.pem

# The TS client's metadata document (draft-ietf-oauth-client-id-metadata-document §3)
jq -n --arg id "$CIMD_URL" --arg name "$TS_NAME" --arg cb "http://127.0.0.1:$P_CB_TS/callback" \
  '{client_id: $id, client_name: $name, redirect_uris: [$cb], grant_types: ["authorization_code", "refresh_token"],
    response_types: ["code"], token_endpoint_auth_method: "none"}' >"$RUN/client-metadata.json"

(umask 077 && python3 -c 'import secrets; print(secrets.token_hex(32))' >"$RUN/secret.key")
mkdir -p "$RUN/state"
"$MCPHUB_BIN" keygen --admin >"$RUN/keygen.out" 2>/dev/null || fatal "setup: mcphub keygen" "exit $?"
ROOT_KEY=$(sed -n 's/^key: //p' "$RUN/keygen.out")
ROOT_DIGEST=$(sed -n 's/^digest: //p' "$RUN/keygen.out")
rm -f "$RUN/keygen.out"
[ -n "$ROOT_KEY" ] && [ -n "$ROOT_DIGEST" ] || fatal "setup: mcphub keygen" "no key:/digest: lines in its output"

# The hub config. Secrets come from the environment (${env.X}), never the file.
cat >"$RUN/hub.json" <<EOF
{
  "publicUrl": "$HUB",
  "auth": {
    "oidc": {"issuer": "$OP", "clientId": "mcphub", "clientSecret": "\${env.OAUTH_OIDC_SECRET}",
             "scopes": ["openid", "email", "profile"], "allow": {"emailDomains": ["example.com"]}},
    "autoProvision": true,
    "oauth": {"enabled": true, "accessTokenSecs": $ACCESS_SECS,
              "clientMetadata": {"allowPrivateAddresses": true, "caFile": "$CA"}}
  },
  "stateDir": "$RUN/state",
  "users": {"root": {"keys": ["$ROOT_DIGEST"], "admin": true}},
  "mcpServers": {
    "demo": {"type": "streamable-http", "url": "http://127.0.0.1:$P_MOCK/mcp", "forwardUser": true}
  }
}
EOF
export OAUTH_OIDC_SECRET=$OIDC_SECRET MCPHUB_SECRET_KEY_FILE=$RUN/secret.key

# the .mjs files resolve their packages next to themselves: run them from $RUN
cp "$UI_DIR/provider.mjs" "$OAUTH_DIR"/*.mjs "$RUN/" && ln -s "$NPM_PREFIX/node_modules" "$RUN/node_modules"

# dual era: the hub speaks the modern era to it, whose per-request headers carry X-MCPHub-User
# (with a legacy-era upstream the hub's shared session does not forward it)
start mock "$MOCK_BIN" --port "$P_MOCK" --name demo --era dual --reflect-credential X-MCPHub-User
start op env OP_PORT="$P_OP" OP_CTRL_PORT="$P_CTRL" HUB_URL="$HUB" OP_CLIENT_SECRET="$OIDC_SECRET" "$NODE" "$RUN/provider.mjs"
start cimd python3 -I "$OAUTH_DIR/cimd_server.py" "$P_CIMD" "$RUN/tls/site.pem" "$RUN/tls/site.key" "$RUN/client-metadata.json" /oauth/client-metadata.json

if wait_http mock "http://127.0.0.1:$P_MOCK/stats" any; then ok "setup: mcphub-mock (reflect mode on X-MCPHub-User) up on :$P_MOCK"
else fatal "setup: mcphub-mock up" "$(cat "$RUN/mock.why")" "$RUN/mock.log"; fi
if wait_http op "$OP/.well-known/openid-configuration" any && wait_http op "$CTRL/state" any; then
  ok "setup: oidc-provider $UI_OIDC_PROVIDER_VERSION up, issuer $OP"
else fatal "setup: oidc-provider up" "$(cat "$RUN/op.why")" "$RUN/op.log"; fi
# the client's site answers over https with a certificate of the test CA
cimd_up() { curl -fs -m 2 --cacert "$CA" -o /dev/null "$CIMD_URL"; }
deadline=$(($(date +%s) + READY_TIMEOUT))
until cimd_up || [ "$(date +%s)" -ge "$deadline" ] || ! kill -0 "$PID_cimd" 2>/dev/null; do sleep 0.1; done
if cimd_up; then ok "setup: the client's https site serves its metadata document at $CIMD_URL (test CA)"
else fatal "setup: the client's https site" "no answer from $CIMD_URL with --cacert the test CA" "$RUN/cimd.log"; fi
cimd_fetches() { curl -s -m 2 --cacert "$CA" "https://127.0.0.1:$P_CIMD/_count" | jq -r '.fetches // empty'; }
CIMD_BASE=$(cimd_fetches) # the fetches above are the test's own

if "$MCPHUB_BIN" check-config --config "$RUN/hub.json" >"$RUN/check-config.log" 2>&1; then
  ok "setup: mcphub check-config accepts auth.oauth (accessTokenSecs, clientMetadata.allowPrivateAddresses, caFile)"
else
  fatal "setup: mcphub check-config accepts auth.oauth" "it refused the config" "$RUN/check-config.log"
fi
# JSON log lines: their duration_ms go into the timings table
start hub env MCPHUB_LOG_FORMAT=json "$MCPHUB_BIN" serve --config "$RUN/hub.json" --port "$P_HUB"
if wait_http hub "$HUB/healthz" any; then ok "setup: hub up on :$P_HUB"
else fatal "setup: hub up" "$(cat "$RUN/hub.why")" "$RUN/hub.log"; fi

run_check() { # run_check NAME FN (FN runs in this shell; its last output line is the reason)
  if "$2" >"$RUN/check.out" 2>&1; then ok "$1"; else notok "$1" "$(tail -n 1 "$RUN/check.out")"; fi
}

# ---------------------------------------------------------------------------------------------
# The protected resource and the authorization server, by curl
# ---------------------------------------------------------------------------------------------
PRM_URL=$HUB/.well-known/oauth-protected-resource/mcp
# get URL OUT [curl args...] : body to OUT, headers to OUT.h, status printed
get() {
  local url=$1 out=$2
  shift 2
  curl -s -m 5 -D "$out.h" -o "$out" -w '%{http_code}' "$@" "$url"
}
hdr() { grep -i "^$1:" "$2" | head -n 1 | cut -d: -f2- | tr -d '\r' | sed 's/^ *//'; }

c_401() {
  local st www
  st=$(get "$HUB/mcp" "$RUN/401" -X POST -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
    --data '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}')
  www=$(hdr WWW-Authenticate "$RUN/401.h")
  [ "$st" = 401 ] || { echo "POST /mcp without credentials: HTTP $st, want 401"; return 1; }
  [[ $www == Bearer* ]] || { echo "WWW-Authenticate '$www' is not a Bearer challenge"; return 1; }
  [[ $www == *"resource_metadata=\"$PRM_URL\""* ]] || { echo "WWW-Authenticate '$www' lacks resource_metadata=\"$PRM_URL\""; return 1; }
  [[ $www == *'scope="mcp"'* ]] || { echo "WWW-Authenticate '$www' lacks scope=\"mcp\""; return 1; }
}
run_check "resource: POST /mcp without credentials → 401, WWW-Authenticate: Bearer resource_metadata=\"$PRM_URL\", scope=\"mcp\"" c_401

c_prm() {
  local u st bad
  for u in "$PRM_URL" "$HUB/.well-known/oauth-protected-resource"; do
    st=$(get "$u" "$RUN/prm")
    [ "$st" = 200 ] || { echo "GET $u: HTTP $st"; return 1; }
    bad=$(jq -r --arg hub "$HUB" '[
      (if .resource != ($hub + "/mcp") then "resource \(.resource)" else empty end),
      (if .authorization_servers != [$hub] then "authorization_servers \(.authorization_servers)" else empty end),
      (if ((.scopes_supported // []) | index("mcp")) == null or ((.scopes_supported // []) | index("mcp:read")) == null then "scopes_supported \(.scopes_supported)" else empty end),
      (if .bearer_methods_supported != ["header"] then "bearer_methods_supported \(.bearer_methods_supported)" else empty end)
      ] | join(", ")' "$RUN/prm" 2>&1)
    [ -z "$bad" ] || { echo "GET $u: $bad"; return 1; }
    [ "$(hdr Access-Control-Allow-Origin "$RUN/prm.h")" = "*" ] || { echo "GET $u: no Access-Control-Allow-Origin: *"; return 1; }
  done
}
run_check "resource: PRM (RFC 9728) at /.well-known/oauth-protected-resource/mcp and at the root: resource $HUB/mcp, authorization_servers [$HUB], scopes mcp + mcp:read, bearer header, CORS *" c_prm

c_asm() {
  local u st bad
  for u in "$HUB/.well-known/oauth-authorization-server" "$HUB/.well-known/openid-configuration"; do
    st=$(get "$u" "$RUN/asm")
    [ "$st" = 200 ] || { echo "GET $u: HTTP $st"; return 1; }
    [[ $(hdr Content-Type "$RUN/asm.h") == application/json* ]] || { echo "GET $u: Content-Type $(hdr Content-Type "$RUN/asm.h")"; return 1; }
    bad=$(jq -r --arg hub "$HUB" '[
      (if .issuer != $hub then "issuer \(.issuer)" else empty end),
      (if .authorization_endpoint != ($hub + "/oauth/authorize") then "authorization_endpoint \(.authorization_endpoint)" else empty end),
      (if .token_endpoint != ($hub + "/oauth/token") then "token_endpoint \(.token_endpoint)" else empty end),
      (if .revocation_endpoint != ($hub + "/oauth/revoke") then "revocation_endpoint \(.revocation_endpoint)" else empty end),
      (if .registration_endpoint != ($hub + "/oauth/register") then "registration_endpoint \(.registration_endpoint)" else empty end),
      (if .response_types_supported != ["code"] then "response_types_supported \(.response_types_supported)" else empty end),
      (if (.grant_types_supported | sort) != ["authorization_code", "refresh_token"] then "grant_types_supported \(.grant_types_supported)" else empty end),
      (if .code_challenge_methods_supported != ["S256"] then "code_challenge_methods_supported \(.code_challenge_methods_supported)" else empty end),
      (if ((.token_endpoint_auth_methods_supported // []) | sort) != ["client_secret_basic", "client_secret_post", "none"] then "token_endpoint_auth_methods_supported \(.token_endpoint_auth_methods_supported)" else empty end),
      (if ((.scopes_supported // []) | sort) != ["mcp", "mcp:read"] then "scopes_supported \(.scopes_supported)" else empty end),
      (if .authorization_response_iss_parameter_supported != true then "authorization_response_iss_parameter_supported \(.authorization_response_iss_parameter_supported)" else empty end),
      (if .client_id_metadata_document_supported != true then "client_id_metadata_document_supported \(.client_id_metadata_document_supported)" else empty end)
      ] | join(", ")' "$RUN/asm" 2>&1)
    [ -z "$bad" ] || { echo "GET $u: $bad"; return 1; }
  done
}
run_check "server: AS metadata (RFC 8414) at /.well-known/oauth-authorization-server and openid-configuration: issuer, the four endpoints, code, S256, grants, auth methods, scopes, iss parameter, metadata documents" c_asm

c_cors() {
  local st
  st=$(get "$HUB/oauth/token" "$RUN/cors" -X OPTIONS -H 'Origin: https://app.example' -H 'Access-Control-Request-Method: POST' \
    -H 'Access-Control-Request-Headers: content-type')
  [ "$st" = 204 ] || { echo "OPTIONS /oauth/token: HTTP $st, want 204"; return 1; }
  [ "$(hdr Access-Control-Allow-Origin "$RUN/cors.h")" = "*" ] || { echo "OPTIONS /oauth/token: no Access-Control-Allow-Origin: *"; return 1; }
  [ -n "$(hdr Access-Control-Allow-Methods "$RUN/cors.h")" ] || { echo "OPTIONS /oauth/token: no Access-Control-Allow-Methods"; return 1; }
}
run_check "server: OPTIONS /oauth/token (a browser-based client's preflight) → 204 with Access-Control-Allow-Origin *, Allow-Methods" c_cors

# ---------------------------------------------------------------------------------------------
# The official conformance suite's authorization-server scenario
# ---------------------------------------------------------------------------------------------
NAME_CONF="conformance $CONFORMANCE_ALPHA_VERSION: authorization --scenario authorization-server-metadata-endpoint against the hub's issuer"
if [ "$ALPHA_OK" != 1 ]; then
  notok "$NAME_CONF" "not installed: $ALPHA_WHY"
else
  mkdir -p "$RUN/conformance"
  (cd "$RUN/conformance" && HOME=$RUN/conformance timeout -k 5 60 "$NODE" "$ALPHA_JS" authorization --url "$HUB" \
    --scenario authorization-server-metadata-endpoint -o "$RUN/conformance/results") >"$RUN/conformance/suite.log" 2>&1 </dev/null
  rc=$?
  find "$RUN/conformance/results" -name checks.json -exec jq -r '.[] | [.id, .status, (.errorMessage // "" | gsub("[\r\n\t]+"; " "))] | @tsv' {} + \
    >"$RUN/conformance/checks.tsv" 2>/dev/null
  cpass=$(awk -F'\t' '$2 == "SUCCESS"' "$RUN/conformance/checks.tsv" | wc -l)
  cfail=$(awk -F'\t' '$2 == "FAILURE"' "$RUN/conformance/checks.tsv" | wc -l)
  cwarn=$(awk -F'\t' '$2 == "WARNING"' "$RUN/conformance/checks.tsv" | wc -l)
  awk -F'\t' '$2 == "WARNING" || $2 == "FAILURE" { printf "#   %s %s: %s\n", $2, $1, $3 }' "$RUN/conformance/checks.tsv"
  if [ "$rc" -eq 0 ] && [ "$cfail" -eq 0 ] && [ "$cpass" -gt 0 ]; then
    ok "$NAME_CONF ($cpass checks passed, $cwarn warnings)"
  else
    notok "$NAME_CONF" "exit $rc, $cpass passed, $cfail failed" "$RUN/conformance/suite.log"
  fi
fi

# ---------------------------------------------------------------------------------------------
# The two SDK clients
# ---------------------------------------------------------------------------------------------
rm -rf "$SHOTS" && mkdir -p "$SHOTS"
export OA_HUB=$HUB OA_OP=$OP OA_CHROMIUM=$CHROMIUM OA_SHOTS_DIR=$SHOTS OA_AUTHORIZE=$RUN/authorize.mjs OA_NODE=$NODE \
  OA_SECRETS=$SECRETS OA_MARKER=$ALICE_MARKER OA_LOGIN=alice

# jcheck NAME FILE JQ_EXPR REASON_EXPR : ok when JQ_EXPR is true on FILE's JSON, else REASON_EXPR's value
jcheck() {
  if jq -e "$3" "$2" >/dev/null 2>&1; then ok "$1"
  else notok "$1" "$(jq -r "$4" "$2" 2>&1 | tr '\n' ' ' | cut -c1-400)"; fi
}
# flow NAME OUT CMD... : one client run, its JSON line in OUT (a failure line when it printed none)
flow() {
  local name=$1 out=$2 rc
  shift 2
  echo "# $name client: $*" | sed "s|$RUN|\$RUN|g; s|$ROOT/||g"
  timeout -k 5 "$FLOW_TIMEOUT" "$@" >"$out.raw" 2>"$out.err"
  rc=$?
  if ! tail -n 1 "$out.raw" | jq -e . >"$out" 2>/dev/null; then
    jq -n --arg e "printed no JSON (exit $rc$([ "$rc" = 124 ] && echo ", timed out after ${FLOW_TIMEOUT}s")): $(tail -n 5 "$out.err" | tr '\n' ' ')" \
      '{ok: false, error: $e, facts: {}, steps: {}}' >"$out"
  fi
  if ! jq -e .ok "$out" >/dev/null; then
    notok "$name: the whole flow ran" "$(jq -r '"in step \(.facts.failedIn // "?"): \(.error)"' "$out")" "$out.err"
  fi
}

# --- TypeScript SDK, client_id = metadata document URL -----------------------------------------
OA_CB_PORT=$P_CB_TS OA_CIMD_URL=$CIMD_URL OA_CLIENT_NAME=$TS_NAME flow ts "$RUN/ts.json" "$NODE" "$RUN/ts_client.mjs"
T=$RUN/ts.json
jcheck "ts: connect without a token → 401 → the SDK finds the PRM and AS metadata and asks for authorization (UnauthorizedError)" "$T" \
  '.facts.unauthorized == true' '.error'
jcheck "ts: client_id is the metadata document's https URL (client_id_metadata_document_supported), no registration request" "$T" \
  '.facts.usedCimd == true and ([.steps.discover.requests[] | select(.path == "/oauth/register")] | length) == 0' \
  '"client_id \(.facts.clientId), requests \([.steps.discover.requests[]? | "\(.m) \(.path) \(.st)"])"'
jcheck "ts: the authorization request: response_type code, S256 challenge, state, scope mcp, resource $HUB/mcp" "$T" \
  ".facts.authorizeParams.response_type == \"code\" and .facts.authorizeParams.code_challenge_method == \"S256\" and .facts.authorizeHasChallenge and .facts.authorizeHasState and .facts.authorizeParams.scope == \"mcp\" and .facts.authorizeParams.resource == \"$HUB/mcp\"" \
  '.facts.authorizeParams'
jcheck "browser (ts): signed out → /ui/login → SSO at the provider → consent page with the client's name, its host, the redirect URI and the scope → Allow → the client's redirect URI; the Keys page lists it under Connected apps" "$T" \
  '.facts.browser.ok and .facts.browser.loginShown and .facts.browser.consentShown and .facts.browser.consent.clientName and .facts.browser.consent.redirectUri and .facts.browser.consent.scope and .facts.browser.consent.cimdHost and .facts.browser.connectedApp' \
  '.facts.browser'
jcheck "ts: the redirect carries a code, the state sent and iss = $HUB (RFC 9207)" "$T" \
  ".facts.callback.hasCode and .facts.callback.stateOk and .facts.callback.iss == \"$HUB\"" '.facts.callback // .error'
jcheck "ts: finishAuth exchanged the code (PKCE): Bearer mcphub_at_…, refresh mcphub_rt_…, expires_in $ACCESS_SECS, scope mcp" "$T" \
  ".facts.token.accessPrefix and .facts.token.refreshPrefix and (.facts.token.tokenType | ascii_downcase) == \"bearer\" and .facts.token.expiresIn == $ACCESS_SECS and .facts.token.scope == \"mcp\"" \
  '.facts.token // .error'
jcheck "ts: tools/list and tools/call echo with the token; the upstream got alice (X-MCPHub-User)" "$T" \
  '(.facts.tools | index("echo")) != null and .facts.callText and .facts.callMarker' '{tools: .facts.tools, callText: .facts.callText, callMarker: .facts.callMarker, error}'
jcheck "ts: ${ACCESS_SECS} s later the hub refuses the access token: 401, error=\"invalid_token\"" "$T" \
  '.facts.expiry.status == 401 and .facts.expiry.wwwInvalidToken' '.facts.expiry // .error'
jcheck "ts: the next call succeeds: 401 → the SDK refreshes (new access and refresh token) → retried; refresh_token counter in /metrics rose" "$T" \
  '.facts.refresh.callOk and .facts.refresh.newAccess and .facts.refresh.newRefresh and .facts.refresh.counterAfter > .facts.refresh.counterBefore' \
  '.facts.refresh // .error'
jcheck "ts: POST /oauth/revoke (refresh token) → 200; the access token then gets 401; the SDK's next call fails (its refresh gets invalid_grant: UnauthorizedError) and asks for a new authorization" "$T" \
  '.facts.revoke.status == 200 and .facts.revoke.rawStatus == 401 and .facts.revokeSdkUnauthorized and .facts.revoke.askedForAuthorization and (.facts.revoke.paths | index("POST /oauth/token 400")) != null' \
  '.facts.revoke // .error'
jcheck "ts: the second authorization (fresh browser, signed in again) skips the consent page (remembered) and its token works" "$T" \
  '.facts.reauth.ok and .facts.reauth.consentShown == false and .facts.reauth.stateOk and .facts.reauth.callOk' '.facts.reauth // .error'

# --- Python SDK, Dynamic Client Registration ---------------------------------------------------
OA_CB_PORT=$P_CB_PY OA_CLIENT_NAME=$PY_NAME flow py "$RUN/py.json" "$VENV/bin/python" -I "$OAUTH_DIR/py_client.py"
P=$RUN/py.json
jcheck "py: the first request → 401 → PRM, AS metadata → POST /oauth/register 201 (DCR: mcphub_client_…, client_secret_basic with a secret) → redirect_handler" "$P" \
  '.facts.clientIdIsDcr and ([.steps.discover.requests[] | select(.path == "/oauth/register" and .st == 201)] | length) == 1 and .facts.clientAuthMethod == "client_secret_basic" and .facts.hasClientSecret' \
  '{clientId: .facts.authorizeParams.client_id, method: .facts.clientAuthMethod, secret: .facts.hasClientSecret, requests: [.steps.discover.requests[]? | "\(.m) \(.path) \(.st)"], error}'
jcheck "browser (py): sign-in → consent page with the client's name marked unverified, the redirect URI, the scope → Allow → redirect; Connected apps lists it" "$P" \
  '.facts.browser.ok and .facts.browser.consentShown and .facts.browser.consent.clientName and .facts.browser.consent.unverified and .facts.browser.consent.redirectUri and .facts.browser.consent.scope and .facts.browser.connectedApp' \
  '.facts.browser'
jcheck "py: the SDK accepted state and iss = $HUB, exchanged the code: Bearer mcphub_at_…, refresh mcphub_rt_…, expires_in $ACCESS_SECS" "$P" \
  ".facts.callback.iss == \"$HUB\" and .facts.connected and .facts.token.accessPrefix and .facts.token.refreshPrefix and .facts.token.expiresIn == $ACCESS_SECS" \
  '{callback: .facts.callback, token: .facts.token, error}'
jcheck "py: tools/list and tools/call echo with the token; the upstream got alice" "$P" \
  '(.facts.tools | index("echo")) != null and .facts.callText and .facts.callMarker' '{tools: .facts.tools, callText: .facts.callText, callMarker: .facts.callMarker, error}'
jcheck "py: ${ACCESS_SECS} s later the hub refuses the access token (401, invalid_token) and the SDK counts it expired" "$P" \
  '.facts.expiry.status == 401 and .facts.expiry.wwwInvalidToken and .facts.expiry.sdkCountsExpired' '.facts.expiry // .error'
jcheck "py: the next call refreshes first (POST /oauth/token 200, new tokens, sent the new one); refresh_token counter rose" "$P" \
  '.facts.refresh.callOk and .facts.refresh.newAccess and .facts.refresh.newRefresh and .facts.refresh.sentNewToken and .facts.refresh.counterAfter > .facts.refresh.counterBefore and (.facts.refresh.paths | index("POST /oauth/token 200")) != null' \
  '.facts.refresh // .error'
jcheck "py: POST /oauth/revoke (Basic client auth, refresh token) → 200; the access token then gets 401; the SDK's next call fails and asks for a new authorization" "$P" \
  '.facts.revoke.status == 200 and .facts.revoke.rawStatus == 401 and .facts.revoke.sdkError != null and .facts.revoke.askedForAuthorization' \
  '.facts.revoke // .error'

# ---------------------------------------------------------------------------------------------
# After the flows: the metadata document's cache, the log, the processes, the timings
# ---------------------------------------------------------------------------------------------
fetches=$(($(cimd_fetches) - ${CIMD_BASE:-0}))
auths=$(jq '[.steps.browser, .steps.reauth | select(. != null)] | length' "$T")
if [ "$fetches" = 1 ]; then ok "cimd: the hub fetched the metadata document once for the TS client's $auths authorizations (Cache-Control max-age=300)"
else notok "cimd: the hub fetched the metadata document once for the TS client's $auths authorizations (Cache-Control max-age=300)" "fetched $fetches times" "$RUN/cimd.log"; fi

for v in mock op cimd hub; do
  pv="PID_$v"
  if [ -n "${!pv:-}" ] && ! kill -0 "${!pv}" 2>/dev/null; then
    notok "teardown: $v still running after the checks" "it exited" "$RUN/$v.log"
  fi
done

leaks=""
grep -qE 'mcphub_at_[0-9a-f]{8}' "$RUN/hub.log" && leaks="$leaks an access token (mcphub_at_),"
grep -qE 'mcphub_rt_[0-9a-f]{8}' "$RUN/hub.log" && leaks="$leaks a refresh token (mcphub_rt_),"
grep -qE 'mcphub_cs_[0-9a-f]{8}' "$RUN/hub.log" && leaks="$leaks a client secret (mcphub_cs_),"
grep -qE 'mcphub_[0-9a-f]{64}' "$RUN/hub.log" && leaks="$leaks a hub key,"
grep -qF "$OIDC_SECRET" "$RUN/hub.log" && leaks="$leaks the OIDC client secret,"
n=0
while IFS= read -r s; do
  [ -n "$s" ] || continue
  n=$((n + 1))
  grep -qF -- "$s" "$RUN/hub.log" && leaks="$leaks a token/code/secret the clients saw (#$n),"
done <"$SECRETS"
if [ -n "$leaks" ]; then notok "logs: no access/refresh token, code, client secret or key in the hub log ($n values the clients saw)" "found${leaks%,} in $RUN/hub.log"
else ok "logs: no access/refresh token, code, client secret or key in the hub log ($n values the clients saw)"; fi
if grep -q 'oauth: user alice authorized client' "$RUN/hub.log"; then ok "logs: one info line per grant (\"oauth: user alice authorized client …\")"
else notok "logs: one info line per grant (\"oauth: user alice authorized client …\")" "no such line in the hub log" "$RUN/hub.log"; fi

# The flow's round trips and times per step: the requests each client made to the hub (the SDK's
# own, the browser's, and this test's probes, marked), their wall time as the client measured it,
# and the hub's own time: the duration_ms of its /mcp request lines (JSON log) within the step,
# and the Server-Timing of its pages and OAuth endpoints (metadata, token, revoke, register).
python3 -I - "$T" "$P" "$RUN/hub.log" "$SHOTS/timings.md" <<'EOF_PY'
import json, sys
from datetime import datetime

mcp_lines = []  # (epoch ms, duration ms) of the hub's /mcp request lines
for line in open(sys.argv[3], errors="replace"):
    try:
        j = json.loads(line)
    except ValueError:
        continue
    # (not the GET streams: their duration is how long they stayed open)
    if isinstance(j, dict) and j.get("duration_ms") is not None and j.get("ts") and j.get("method") != "GET":
        t = datetime.fromisoformat(j["ts"].replace("Z", "+00:00")).timestamp() * 1000
        mcp_lines.append((t, j["duration_ms"]))
rows = []
for label, f in (("TypeScript SDK (metadata document)", sys.argv[1]), ("Python SDK (DCR)", sys.argv[2])):
    try:
        j = json.load(open(f))
    except (OSError, ValueError):
        continue
    for name, s in j.get("steps", {}).items():
        reqs = [r for r in s.get("requests", []) if r.get("host", "hub") == "hub"]
        op = [r for r in s.get("requests", []) if r.get("host") == "op"]
        srv = [r["srv"] for r in reqs if "srv" in r]
        logged = [d for t, d in mcp_lines if s.get("t0", 0) <= t < s.get("t1", 0)]
        paths = {}
        for r in reqs:
            k = f"{r['m']} {r['path']}" + (" (test probe)" if r.get("raw") else "")
            paths[k] = paths.get(k, 0) + 1
        rows.append((label, name, len(reqs), len(op), s.get("ms", 0), round(sum(r.get("ms") or 0 for r in reqs), 1),
                     f"{sum(logged)} ({len(logged)})" if logged else "-",
                     f"{round(sum(srv), 1)} ({len(srv)})" if srv else "-",
                     ", ".join(f"{k} ×{v}" if v > 1 else k for k, v in paths.items())))
out = ["| client | step | hub requests | provider requests | step wall ms | hub requests ms (client side) | hub /mcp ms (log, n) | hub pages and /oauth ms (Server-Timing, n) | requests |",
       "|---|---|---:|---:|---:|---:|---:|---:|---|"]
out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
text = "\n".join(out) + "\n"
open(sys.argv[4], "w").write("# OAuth flow: round trips and time per step (scripts/oauth-test.sh)\n\n" + text)
print("# timings (also in target/oauth-screenshots/timings.md):")
for line in text.splitlines():
    print("#   " + line)
EOF_PY
echo "# screenshots: $SHOTS"
finish
