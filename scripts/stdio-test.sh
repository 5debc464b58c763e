#!/usr/bin/env bash
# Issue 19's real-parts checks: real MCP servers from npm and PyPI run by the hub as stdio
# processes (and, once the hub has the legacy HTTP+SSE transport, real SSE servers), driven
# through the hub by real MCP clients.
#
#   scripts/stdio-test.sh     (`make stdio`, part of `make test`; needs target/release/mcphub,
#                              or MCPHUB_BIN)
#
# Pinned parts (the set of scripts/e2e.sh, installed once under .cache/e2e/ by
# scripts/lib/e2e-parts.sh; exact sets in scripts/e2e/package-lock.json and requirements.txt):
#   npm  @modelcontextprotocol/server-memory      2026.8.31  (node dist/index.js)
#   npm  @modelcontextprotocol/server-filesystem  2026.8.31
#   npm  @modelcontextprotocol/server-everything  2026.8.31  (stdio; sse for the SSE checks)
#   npm  @modelcontextprotocol/inspector          2.12.0     (CLI, on Node 22)
#   PyPI mcp-server-time 2026.10.19, mcp-server-git 2026.10.19 (venv binaries; need mcp 2.3.0)
#   PyPI mcp 2.3.0                                             (client: scripts/e2e/py_client.py;
#                                                               SSE server: scripts/e2e/py_sse_server.py)
# Servers are spawned by the hub as `node <entry>` / venv binaries, never through npx.
#
# Hubs (each its own config, on free 127.0.0.1 ports):
#   D  {memory, fs, time, git, everything}: stdio servers, anonymous clients;
#   U  {envy}: server-everything whose env has E2E_SECRET = ${user.SECRET}; users alice and
#      carol have the same SECRET, bob another (hub keys from `mcphub keygen`);
#   S  {evsse, pysse}: `"type": "sse"` servers — server-everything `sse` (loopback.cjs pins its
#      listen() to 127.0.0.1: the package itself binds every interface) and a Python SDK
#      MCPServer on SSE. Only when the hub has the SSE transport (STDIO_TEST_SSE=auto, the
#      default: src/upstream names TransportKind::Sse; 1: always; 0: never — then the run says
#      so in a `#` line).
# Checks print `ok - NAME` / `not ok - NAME: REASON` (plus `#` evidence lines), then
# `N passed, M failed`; exit 0 iff all passed. Readiness waits are bounded (STDIO_READY_TIMEOUT,
# 30 s: the Python servers take ~2 s to start on a loaded machine), never a bare sleep. Every
# process started here is stopped on exit (the hubs first: their shutdown stops their stdio
# processes; a check says whether it did), logs of a failed run are kept (STDIO_KEEP=1: always).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
E2E_DIR=$ROOT/scripts/e2e
CACHE=${E2E_CACHE:-$ROOT/.cache/e2e}
MCPHUB_BIN=${MCPHUB_BIN:-$ROOT/target/release/mcphub}
READY_TIMEOUT=${STDIO_READY_TIMEOUT:-30}
CLIENT_TIMEOUT=${E2E_CLIENT_TIMEOUT:-60}
SSE_MODE=${STDIO_TEST_SSE:-auto}

CHECKS_NAME="stdio test" CHECKS_KEEP=${STDIO_KEEP:-} CHECKS_CUT=head
# shellcheck source=lib/checks.sh
. "$ROOT/scripts/lib/checks.sh"
# shellcheck source=lib/e2e-parts.sh
. "$ROOT/scripts/lib/e2e-parts.sh"
e2e_parts_install
command -v git >/dev/null 2>&1 || fatal "prerequisites" "'git' not found on PATH (mcp-server-git needs it)"
[ -x "$MCPHUB_BIN" ] || fatal "hub binary" "$MCPHUB_BIN not found (run cargo build --release, or set MCPHUB_BIN)"

MODS=$NPM_PREFIX/node_modules/@modelcontextprotocol
MEMORY_JS=$MODS/server-memory/dist/index.js
FS_JS=$MODS/server-filesystem/dist/index.js
for f in "$MEMORY_JS" "$FS_JS" "$EVERYTHING_JS" "$VENV/bin/mcp-server-time" "$VENV/bin/mcp-server-git"; do
  [ -e "$f" ] || fatal "install" "$f missing after install"
done

case $SSE_MODE in
  1) SSE=1 ;;
  0) SSE=0 ;;
  *) if grep -rqs 'TransportKind::Sse' "$ROOT/src/upstream"; then SSE=1; else SSE=0; fi ;;
esac

# ---------------------------------------------------------------------------------------------
# Processes and data
# ---------------------------------------------------------------------------------------------
RUN=$(mktemp -d "${TMPDIR:-/tmp}/mcphub-stdio.XXXXXX")
RUN=$(realpath "$RUN")
PIDS=()
CHILDREN=()
WIRE_LOG=$RUN/wire.txt
# shellcheck source=lib/procs.sh
. "$ROOT/scripts/lib/procs.sh"
# hub_children PID : the hub's direct children (its stdio processes), one pid a line
hub_children() { pgrep -P "$1" 2>/dev/null || true; }
cleanup() {
  local v p
  for v in hubd hubu hubs; do
    p="PID_$v"
    [ -n "${!p:-}" ] || continue
    mapfile -t -O "${#CHILDREN[@]}" CHILDREN < <(hub_children "${!p}")
    stop_first "${!p}"
  done
  # children a hub did not stop (it was killed, or its shutdown failed): ours to stop
  stop_pids "${PIDS[@]}" "${CHILDREN[@]}"
  if [ "$FAIL" -eq 0 ] && [ -z "${STDIO_KEEP:-}" ]; then rm -rf "$RUN"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

read -r P_HUBD P_HUBU P_HUBS P_EVSSE P_PYSSE < <(free_ports 5)
HUBD_URL=http://127.0.0.1:$P_HUBD/mcp
HUBU_URL=http://127.0.0.1:$P_HUBU/mcp
HUBS_URL=http://127.0.0.1:$P_HUBS/mcp

# data the servers work on: a memory file, a filesystem root, a git repository with one commit
# and one untracked file
FSROOT=$RUN/fsroot REPO=$RUN/repo MEMFILE=$RUN/memory.jsonl
mkdir -p "$FSROOT" "$REPO"
if ! (cd "$REPO" && git init -q -b main && git config user.email e2e@example.com && git config user.name e2e &&
  echo a >a.txt && git add a.txt && git commit -qm init && echo b >untracked-e2e.txt) >"$RUN/git-init.log" 2>&1; then
  fatal "setup: temp git repository" "git init/commit failed" "$RUN/git-init.log"
fi

# hub keys for hub U's users (the config holds only their digests)
declare -A KEY DIGEST
for u in alice bob carol; do
  out=$("$MCPHUB_BIN" keygen 2>/dev/null) || fatal "setup: mcphub keygen" "exit $?"
  KEY[$u]=$(awk '$1 == "key:" {print $2}' <<<"$out")
  DIGEST[$u]=$(awk '$1 == "digest:" {print $2}' <<<"$out")
  [ -n "${KEY[$u]}" ] && [ -n "${DIGEST[$u]}" ] || fatal "setup: mcphub keygen" "no key/digest in: $out"
done
SECRET_A=alpha-$RANDOM$RANDOM SECRET_B=bravo-$RANDOM$RANDOM

cat >"$RUN/hub-d.json" <<EOF
{"mcpServers": {
  "memory": {"command": "node", "args": ["$MEMORY_JS"], "env": {"MEMORY_FILE_PATH": "$MEMFILE"}},
  "fs": {"command": "node", "args": ["$FS_JS", "$FSROOT"]},
  "time": {"command": "$VENV/bin/mcp-server-time"},
  "git": {"command": "$VENV/bin/mcp-server-git", "args": ["--repository", "$REPO"]},
  "everything": {"command": "node", "args": ["$EVERYTHING_JS", "stdio"]}
}}
EOF
cat >"$RUN/hub-u.json" <<EOF
{"users": {
  "alice": {"keys": ["${DIGEST[alice]}"], "tokens": {"SECRET": "$SECRET_A"}},
  "bob": {"keys": ["${DIGEST[bob]}"], "tokens": {"SECRET": "$SECRET_B"}},
  "carol": {"keys": ["${DIGEST[carol]}"], "tokens": {"SECRET": "$SECRET_A"}}
 },
 "mcpServers": {
  "envy": {"command": "node", "args": ["$EVERYTHING_JS", "stdio"], "env": {"E2E_SECRET": "\${user.SECRET}", "E2E_STATIC": "static-value"}}
}}
EOF
cat >"$RUN/hub-s.json" <<EOF
{"mcpServers": {
  "evsse": {"type": "sse", "url": "http://127.0.0.1:$P_EVSSE/sse"},
  "pysse": {"type": "sse", "url": "http://127.0.0.1:$P_PYSSE/sse"}
}}
EOF

UP_HUBD=0 UP_HUBU=0 UP_HUBS=0
start hubd "$MCPHUB_BIN" serve --config "$RUN/hub-d.json" --port "$P_HUBD"
start hubu "$MCPHUB_BIN" serve --config "$RUN/hub-u.json" --port "$P_HUBU"
if wait_http hubd "http://127.0.0.1:$P_HUBD/healthz"; then UP_HUBD=1; ok "setup: hub D {memory, fs, time, git, everything} (stdio) up on :$P_HUBD"
else notok "setup: hub D up" "$(cat "$RUN/hubd.why")" "$RUN/hubd.log"; fi
if wait_http hubu "http://127.0.0.1:$P_HUBU/healthz"; then UP_HUBU=1; ok "setup: hub U {envy} (stdio, users alice/bob/carol) up on :$P_HUBU"
else notok "setup: hub U up" "$(cat "$RUN/hubu.why")" "$RUN/hubu.log"; fi

# procs_of HUB_PORT SERVER : running + starting + idle processes of SERVER in the hub's /readyz
procs_of() {
  curl -s -m 5 "http://127.0.0.1:$1/readyz" |
    jq -r --arg s "$2" '.servers[$s].processes // empty | .running + .starting + .idle' 2>/dev/null
}
# started_in LOG SERVER : how many "stdio server 'SERVER': process N started" lines LOG has
started_in() { grep -c "stdio server '$2': process [0-9]* started" "$1"; }

# Hub D starts a process per server for its catalog: wait (bounded) until each has one.
c_hubd_processes() {
  need UP_HUBD || return 1
  local deadline=$(($(date +%s) + READY_TIMEOUT)) s missing
  while :; do
    missing=""
    for s in memory fs time git everything; do
      [ "$(started_in "$RUN/hubd.log" "$s")" -ge 1 ] || missing="$missing $s"
    done
    [ -z "$missing" ] && return 0
    kill -0 "$PID_hubd" 2>/dev/null || { echo "hub D exited"; return 1; }
    [ "$(date +%s)" -ge "$deadline" ] && { echo "no 'process N started' line after ${READY_TIMEOUT}s for:$missing"; tail -n 20 "$RUN/hubd.log"; return 1; }
    sleep 0.2
  done
}
run_check "setup: hub D started one stdio process per server (node <entry>, venv binaries)" c_hubd_processes

# ---------------------------------------------------------------------------------------------
# a-d: reference servers through hub D, with a legacy (2025-11-25) and a modern (auto ->
# 2026-07-28) Python SDK client
# ---------------------------------------------------------------------------------------------
c_memory() { # MODE
  need UP_HUBD || return 1
  pyc "$HUBD_URL" --mode "$1" --tag "mem-$1" \
    --call-json 'create_entities={"entities":[{"name":"Hub-{tag}","entityType":"test","observations":["via mcphub"]}]}=>Hub-{tag}' \
    --call-json 'read_graph={}=>"name": "Hub-{tag}" && via mcphub' || return 1
  grep -q "\"name\":\"Hub-mem-$1\"" "$MEMFILE" || { echo "Hub-mem-$1 not in MEMORY_FILE_PATH $MEMFILE: $(head -c 300 "$MEMFILE" 2>&1)"; return 1; }
}
c_fs() { # MODE
  need UP_HUBD || return 1
  pyc "$HUBD_URL" --mode "$1" --tag "fs-$1" \
    --call-json "write_file={\"path\":\"$FSROOT/hello-{tag}.txt\",\"content\":\"hello {tag}\"}=>Successfully wrote" \
    --call-json "read_text_file={\"path\":\"$FSROOT/hello-{tag}.txt\"}=>hello {tag}" \
    --error-json 'read_text_file={"path":"/etc/passwd"}=>Access denied' || return 1
  [ "$(cat "$FSROOT/hello-fs-$1.txt" 2>&1)" = "hello fs-$1" ] || { echo "$FSROOT/hello-fs-$1.txt: $(head -c 200 "$FSROOT/hello-fs-$1.txt" 2>&1)"; return 1; }
}
c_time() { # MODE
  need UP_HUBD && pyc "$HUBD_URL" --mode "$1" --call-json 'get_current_time={"timezone":"UTC"}=>"timezone": "UTC" && +00:00"'
}
c_git() { # MODE
  need UP_HUBD && pyc "$HUBD_URL" --mode "$1" --call-json "git_status={\"repo_path\":\"$REPO\"}=>Untracked files && untracked-e2e.txt"
}
for mode in legacy auto; do
  era=$([ $mode = legacy ] && echo "legacy, 2025-11-25" || echo "auto, 2026-07-28")
  run_check "a. server-memory (stdio) via hub D, python-sdk $era: create_entities then read_graph sees it, in MEMORY_FILE_PATH" c_memory $mode
  run_check "b. server-filesystem (stdio) via hub D, python-sdk $era: write_file, read_text_file; /etc/passwd refused (isError)" c_fs $mode
  run_check "c. mcp-server-time (stdio) via hub D, python-sdk $era: get_current_time UTC answers a +00:00 datetime" c_time $mode
  run_check "d. mcp-server-git (stdio) via hub D, python-sdk $era: git_status names the untracked file" c_git $mode
done

# ---------------------------------------------------------------------------------------------
# e: server-everything on stdio: echo, progress, sampling and elicitation relayed to the client
# that made the call (the hub attributes a server->client request on a process to the one call
# in flight there)
# ---------------------------------------------------------------------------------------------
INPUT=(--sampling --elicitation)
c_every_progress() { # MODE
  need UP_HUBD && pyc "$HUBD_URL" --mode "$1" --expect-era "$2" "${INPUT[@]}" --call 'echo:message=stdio-{tag}=>Echo: stdio-{tag}' \
    --progress-call 'trigger-long-running-operation={"duration":1,"steps":3}=>3'
}
c_every_sampling() { # MODE ERA
  need UP_HUBD && pyc "$HUBD_URL" --mode "$1" --expect-era "$2" "${INPUT[@]}" --call 'trigger-sampling-request:prompt=ask-{tag}=>"text": "sampled-by-{tag}"'
}
c_every_elicitation() { # MODE ERA
  need UP_HUBD && pyc "$HUBD_URL" --mode "$1" --expect-era "$2" "${INPUT[@]}" --call 'trigger-elicitation-request:-==>User provided the requested information'
}
for mode in legacy auto; do
  if [ $mode = legacy ]; then era=legacy what="legacy, 2025-11-25"; else era=modern what="auto, 2026-07-28"; fi
  run_check "e. server-everything (stdio) via hub D, python-sdk $what: echo; trigger-long-running-operation sends 3 progress notifications" c_every_progress $mode $era
  run_check "e. server-everything (stdio) via hub D, python-sdk $what: trigger-sampling-request answered by the client's sampling callback" c_every_sampling $mode $era
  run_check "e. server-everything (stdio) via hub D, python-sdk $what: trigger-elicitation-request accepted by the client's elicitation callback" c_every_elicitation $mode $era
done

# ---------------------------------------------------------------------------------------------
# f: the Inspector CLI through hub D
# ---------------------------------------------------------------------------------------------
c_insp() { # ERA
  need UP_HUBD || return 1
  insp "$HUBD_URL" --transport http --protocol-era "$1" --method tools/list || return 1
  local names n
  names=$(insp_tools | sort | tr '\n' ' ')
  for n in create_entities read_text_file get_current_time git_status echo; do
    grep -qw -- "$n" <<<"$names" || { echo "tools/list lacks $n; has: $names"; return 1; }
  done
  insp "$HUBD_URL" --transport http --protocol-era "$1" --method tools/call --tool-name echo --tool-arg "message=insp-$1" || return 1
  insp_text | grep -qF "Echo: insp-$1" || { echo "not echoed: $(head -c 300 <<<"$INSPECTOR_OUT")"; return 1; }
  insp "$HUBD_URL" --transport http --protocol-era "$1" --method tools/call --tool-name get-sum --tool-args-json '{"a":40,"b":2}' || return 1
  insp_text | grep -qF "is 42" || { echo "get-sum 40+2: $(head -c 300 <<<"$INSPECTOR_OUT")"; return 1; }
}
run_check "f. inspector $INSPECTOR_VERSION cli --protocol-era legacy -> hub D: tools/list has the five servers' tools; echo and get-sum (stdio)" c_insp legacy
run_check "f. inspector $INSPECTOR_VERSION cli --protocol-era auto -> hub D: tools/list has the five servers' tools; echo and get-sum (stdio)" c_insp auto

# ---------------------------------------------------------------------------------------------
# g: isolation: ${user.SECRET} in the process env. Each user sees only their own value through
# get-env; alice and carol (same value) share one process, bob has his own.
# ---------------------------------------------------------------------------------------------
c_env_user() { # USER MODE MINE OTHER
  need UP_HUBU && pyc "$HUBU_URL?key=${KEY[$1]}" --mode "$2" --tag "$1" --call "get-env:-==>\"E2E_SECRET\": \"$3\"" --forbid "$4"
}
c_env_processes() {
  need UP_HUBU || return 1
  local n p
  n=$(started_in "$RUN/hubu.log" envy)
  p=$(procs_of "$P_HUBU" envy)
  echo "# envy: $n 'process N started' lines, /readyz processes $p" >>"$WIRE_LOG"
  grep "stdio server 'envy'" "$RUN/hubu.log" >>"$WIRE_LOG"
  [ "$n" = 2 ] || { echo "want 2 envy processes started (alice+carol, bob), the log has $n"; return 1; }
  [ "$p" = 2 ] || { echo "want 2 envy processes in /readyz, got '${p:-none}'"; return 1; }
}
c_env_scrubbed() {
  need UP_HUBU || return 1
  ! grep -qF -e "$SECRET_A" -e "$SECRET_B" "$RUN/hubu.log" || { echo "a user's SECRET value appears in hub U's log"; grep -nF -e "$SECRET_A" -e "$SECRET_B" "$RUN/hubu.log" | head -n 3; return 1; }
}
run_check "g. alice (legacy) -> envy get-env: her E2E_SECRET, not bob's" c_env_user alice legacy $SECRET_A $SECRET_B
run_check "g. bob (auto, 2026-07-28) -> envy get-env: his E2E_SECRET, not alice's" c_env_user bob auto $SECRET_B $SECRET_A
run_check "g. carol (legacy; alice's value) -> envy get-env: that value, not bob's" c_env_user carol legacy $SECRET_A $SECRET_B
run_check "g. alice and carol (same value) share one process, bob has another: 2 started, /readyz envy processes = 2" c_env_processes
run_check "g. no user's SECRET value in hub U's log" c_env_scrubbed

# ---------------------------------------------------------------------------------------------
# h: legacy HTTP+SSE servers (`"type": "sse"`) through hub S
# ---------------------------------------------------------------------------------------------
if [ "$SSE" = 1 ]; then
  UP_EVSSE=0 UP_PYSSE=0
  start evsse env PORT="$P_EVSSE" node --require "$E2E_DIR/loopback.cjs" "$EVERYTHING_JS" sse
  start pysse "$VENV/bin/python" -I "$E2E_DIR/py_sse_server.py" "$P_PYSSE"
  # any answer (a 404 for this path) means the server listens; /sse itself never ends
  if wait_http evsse "http://127.0.0.1:$P_EVSSE/ready-probe" any; then UP_EVSSE=1; ok "setup: server-everything sse up on 127.0.0.1:$P_EVSSE"
  else notok "setup: server-everything sse up" "$(cat "$RUN/evsse.why")" "$RUN/evsse.log"; fi
  if wait_http pysse "http://127.0.0.1:$P_PYSSE/ready-probe" any; then UP_PYSSE=1; ok "setup: Python SDK $PY_MCP_VERSION SSE server up on 127.0.0.1:$P_PYSSE"
  else notok "setup: Python SDK SSE server up" "$(cat "$RUN/pysse.why")" "$RUN/pysse.log"; fi
  start hubs "$MCPHUB_BIN" serve --config "$RUN/hub-s.json" --port "$P_HUBS"
  if wait_http hubs "http://127.0.0.1:$P_HUBS/healthz"; then UP_HUBS=1; ok "setup: hub S {evsse, pysse} (type sse) up on :$P_HUBS"
  else notok "setup: hub S up" "$(cat "$RUN/hubs.why")" "$RUN/hubs.log"; fi
  # the servers straight from a client (no hub), to tell a server problem from a hub one
  c_sse_direct() { # UPVAR PORT
    need "$1" || return 1
    insp "http://127.0.0.1:$2/sse" --transport sse --method tools/call --tool-name echo --tool-args-json '{"message":"direct-sse"}' || return 1
    insp_text | grep -qF "Echo: direct-sse" || { echo "not echoed: $(head -c 300 <<<"$INSPECTOR_OUT")"; return 1; }
  }
  run_check "h. direct: inspector cli --transport sse -> server-everything (sse) echo" c_sse_direct UP_EVSSE "$P_EVSSE"
  run_check "h. direct: inspector cli --transport sse -> Python SDK MCPServer (sse) echo" c_sse_direct UP_PYSSE "$P_PYSSE"
  c_sse() { # MODE ERA
    need UP_HUBS UP_EVSSE UP_PYSSE && pyc "$HUBS_URL" --mode "$1" --expect-era "$2" --expect-tool evsse__echo --expect-tool pysse__echo \
      --expect-tool get-sum --expect-tool add \
      --call 'evsse__echo:message=sse-{tag}=>Echo: sse-{tag}' --call 'pysse__echo:message=py-sse-{tag}=>Echo: py-sse-{tag}' \
      --call-json 'add={"a":40,"b":2}=>42' --call-json 'get-sum={"a":2,"b":3}=>is 5'
  }
  run_check "h. python-sdk legacy -> hub S: lists and calls server-everything (sse) and a Python SDK MCPServer (sse)" c_sse legacy legacy
  run_check "h. python-sdk auto (2026-07-28) -> hub S: lists and calls server-everything (sse) and a Python SDK MCPServer (sse)" c_sse auto modern
else
  echo "# h (SSE upstreams) not run: this hub has no legacy HTTP+SSE transport yet (no TransportKind::Sse under src/upstream; STDIO_TEST_SSE=1 forces them)"
fi

# ---------------------------------------------------------------------------------------------
# Teardown: the hubs lived through the checks; hub D's shutdown stops its stdio processes
# ---------------------------------------------------------------------------------------------
for v in hubd hubu hubs evsse pysse; do
  pv="PID_$v" uv="UP_$(tr a-z A-Z <<<"$v")"
  if [ -n "${!pv:-}" ] && [ "${!uv:-0}" = 1 ] && ! kill -0 "${!pv}" 2>/dev/null; then
    notok "teardown: $v still running after the checks" "it exited" <(tail -n 20 "$RUN/$v.log")
  fi
done
c_hubd_stops_children() {
  need UP_HUBD || return 1
  local kids p left="" deadline
  mapfile -t kids < <(hub_children "$PID_hubd")
  [ "${#kids[@]}" -ge 5 ] || { echo "hub D has ${#kids[@]} child processes before shutdown, want >= 5"; return 1; }
  stop_first "$PID_hubd"
  kill -0 "$PID_hubd" 2>/dev/null && { echo "hub D still running 3 s after SIGTERM"; return 1; }
  # the hub stops each process group with SIGTERM, then SIGKILL after 5 s: wait up to 10 s
  deadline=$(($(date +%s) + 10))
  while :; do
    left=""
    for p in "${kids[@]}"; do kill -0 "$p" 2>/dev/null && left="$left $p"; done
    [ -z "$left" ] && return 0
    [ "$(date +%s)" -ge "$deadline" ] && break
    sleep 0.1
  done
  CHILDREN+=("${kids[@]}")
  echo "stdio processes still running after hub D exited:$left"
  return 1
}
run_check "teardown: hub D's shutdown stopped its stdio processes" c_hubd_stops_children
finish
