# Shared by scripts/cluster-test.sh and scripts/bench-cluster.sh (sourced, not run): the parts of
# issue 20's cluster on loopback — Redis primary + replica, Sentinel, mcphub-mock and the Python SDK
# upstream, N hubs, HAProxy — their start, restart and stop, and what the scripts read from them.
#
# The sourcing script sets ROOT, BIN, CACHE, E2E_DIR, E2E_CACHE, CDIR, HUBS, READY_TIMEOUT and
# sources scripts/lib/checks.sh (fatal, install_py), scripts/lib/procs.sh (start, free_ports,
# stop_first) first; RUN (a directory) and PIDS (an array) exist before cluster_start_all.

SENTINEL_MASTER=mcphub
declare -A HUB_PID HUB_LOGS P_HUB REDIS_PID
RESTARTS=0

now_ms() { date +%s%3N; }

# apt_need CMD PACKAGE : CMD on PATH, installed with apt-get (as root) when missing.
apt_need() {
  command -v "$1" >/dev/null 2>&1 && return 0
  mkdir -p "$CACHE"
  if [ "$(id -u)" = 0 ]; then
    echo "# installing $2 (apt-get) ..."
    { timeout 600 apt-get install -y -qq "$2" || { timeout 300 apt-get update -qq && timeout 600 apt-get install -y -qq "$2"; }; } \
      >"$CACHE/apt-$2.log" 2>&1
  fi
  command -v "$1" >/dev/null 2>&1 || fatal "prerequisites" "'$1' not found and not installed (apt-get install $2; log: $CACHE/apt-$2.log)"
}

# cluster_prereqs : the binaries and programs; sets SENTINEL_HOW.
cluster_prereqs() {
  local t
  for t in mcphub mcphub-mock mcphub-load; do
    [ -x "$BIN/$t" ] || fatal "prerequisites" "$BIN/$t not found (run cargo build --release, or set BIN)"
  done
  for t in curl jq python3; do
    command -v "$t" >/dev/null 2>&1 || fatal "prerequisites" "'$t' not found on PATH"
  done
  apt_need haproxy haproxy
  apt_need redis-server redis-server
  apt_need redis-cli redis-tools
  # Debian's redis-sentinel package is optional: `redis-server <conf> --sentinel` is the same program.
  if command -v redis-sentinel >/dev/null 2>&1; then SENTINEL_HOW=redis-sentinel; else SENTINEL_HOW="redis-server --sentinel"; fi
}

# cluster_python : VENV with the pinned Python SDK set (scripts/e2e/requirements.txt): e2e's own
# venv when it is current, else one under $CACHE (installed once, stamped like e2e's).
cluster_python() {
  local stamp got
  stamp=$( (python3 --version; cat "$E2E_DIR/requirements.txt") | sha256sum | cut -c1-64)
  if [ "$(cat "$E2E_CACHE/venv/.e2e-stamp" 2>/dev/null)" = "$stamp" ]; then
    VENV=$E2E_CACHE/venv
  else
    VENV=$CACHE/venv
    if [ "$(cat "$VENV/.cluster-stamp" 2>/dev/null)" != "$stamp" ]; then
      mkdir -p "$CACHE"
      echo "# installing Python packages into $VENV (first run) ..."
      install_py "$VENV" "$E2E_DIR/requirements.txt" .cluster-stamp "$stamp" "$CACHE" >"$CACHE/pip-install.log" 2>&1 ||
        fatal "install python packages" "venv/pip install failed (log: $CACHE/pip-install.log)" <(tail -n 20 "$CACHE/pip-install.log")
    fi
  fi
  got=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("mcp"))' 2>&1)
  [ "$got" = "$PY_MCP_VERSION" ] || fatal "install python packages" "$VENV has mcp '$got', want $PY_MCP_VERSION"
}

# wait_until SECS WHAT CMD... : run CMD until it succeeds, at most SECS seconds; on timeout
# SETUP_WHY="WHAT: not after SECS s" and return 1.
wait_until() {
  local secs=$1 what=$2 deadline
  shift 2
  deadline=$(($(date +%s%3N) + secs * 1000))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s%3N)" -ge "$deadline" ]; then
      SETUP_WHY="$what: not after ${secs}s"
      return 1
    fi
    sleep 0.1
  done
}

redis_role_is() { redis-cli -p "$1" role 2>/dev/null | head -n 1 | grep -qx "$2"; }
replica_link_up() { redis-cli -p "$1" info replication 2>/dev/null | tr -d '\r' | grep -qx 'master_link_status:up'; }
# replica_of PORT MASTER_PORT : PORT replicates MASTER_PORT, link up
replica_of() {
  local info
  info=$(redis-cli -p "$1" info replication 2>/dev/null | tr -d '\r')
  grep -qx "master_port:$2" <<<"$info" && grep -qx 'master_link_status:up' <<<"$info"
}
sentinel_master_port() { redis-cli -p "$P_SENTINEL" sentinel get-master-addr-by-name "$SENTINEL_MASTER" 2>/dev/null | sed -n 2p; }
sentinel_master_is() { [ "$(sentinel_master_port)" = "$1" ]; }
# redis_settled : Sentinel names one of the two nodes the primary, it is one, and the other is its
# replica in sync; sets SETTLED_PRIMARY / SETTLED_REPLICA.
redis_settled() {
  local m o
  m=$(sentinel_master_port)
  case $m in "$P_RA") o=$P_RB ;; "$P_RB") o=$P_RA ;; *) return 1 ;; esac
  redis_role_is "$m" master && replica_of "$o" "$m" || return 1
  SETTLED_PRIMARY=$m SETTLED_REPLICA=$o
}
sentinel_knows_replica() {
  [ "$(redis-cli -p "$P_SENTINEL" sentinel master "$SENTINEL_MASTER" 2>/dev/null | grep -A1 -x num-slaves | sed -n 2p)" -ge 1 ] 2>/dev/null
}

# start_redis NAME PORT [ARGS...] : redis-server on PORT with AOF (everysec) in $RUN/redis-PORT
# (a node started again on its port finds its own data, as after a real restart).
start_redis() {
  local name=$1 port=$2
  shift 2
  mkdir -p "$RUN/redis-$port"
  start "$name" redis-server --port "$port" --bind 127.0.0.1 --dir "$RUN/redis-$port" --save '' \
    --appendonly yes --appendfsync everysec --daemonize no "$@"
}

# hub_config I : $RUN/hubI.json — the same servers and user on every hub, its own port, Redis
# through the Sentinel (or, for a hub without redis.sentinel, the first primary's URL).
hub_config() {
  local redis
  if [ "$SENTINEL_CONFIG" = 1 ]; then
    redis="{\"sentinel\": {\"masterName\": \"$SENTINEL_MASTER\", \"nodes\": [\"redis://127.0.0.1:$P_SENTINEL\"]}}"
  else
    redis="{\"url\": \"redis://127.0.0.1:$P_RA\"}"
  fi
  cat >"$RUN/hub$1.json" <<EOF
{"port": ${P_HUB[$1]}, "bind": "127.0.0.1",
 "redis": $redis,
 "users": {"alice": {"keys": ["$DIGEST"]}},
 "mcpServers": {
   "mock": {"type": "http", "url": "http://127.0.0.1:$P_MOCK/mcp", "protocol": "legacy"},
   "py": {"type": "http", "url": "http://127.0.0.1:$P_PY/mcp", "protocol": "legacy"}
 }}
EOF
}

# start_hub I NAME : hub I (config $RUN/hubI.json) as process NAME; waits until /healthz answers.
start_hub() {
  local i=$1 name=$2 pv
  start "$name" "$BIN/mcphub" serve --config "$RUN/hub$i.json"
  pv=PID_$name
  HUB_PID[$i]=${!pv}
  HUB_LOGS[$i]="${HUB_LOGS[$i]:-} $RUN/$name.log"
  wait_http "$name" "http://127.0.0.1:${P_HUB[$i]}/healthz" || { SETUP_WHY="hub$i: $(cat "$RUN/$name.why")"; SETUP_LOG=$RUN/$name.log; return 1; }
}

# haproxy_config : frontend :P_LB → backend `hubs` (all HUBS hubs), frontend :P_LB1 → backend
# `one` (hub 1 only, for bench-cluster's 1-instance figure), stats (CSV) on :P_STATS.
haproxy_config() {
  local i
  {
    cat <<EOF
global
    maxconn 2000
defaults
    mode http
    # Streamable HTTP: SSE answers and GET streams stay open; requests are not buffered
    # (no "option http-buffer-request"), answers are streamed as they come.
    timeout connect 1s
    timeout client 1h
    timeout server 1h
    timeout tunnel 1h
    timeout http-request 10s
    timeout http-keep-alive 2m
    timeout queue 5s
    # a refused connect (a dead hub before the health check noticed) goes to another hub
    retries 3
    option redispatch 1
frontend mcp
    bind 127.0.0.1:$P_LB
    default_backend hubs
frontend mcp1
    bind 127.0.0.1:$P_LB1
    default_backend one
backend hubs
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
    default-server inter 500ms fall 2 rise 2 check
EOF
    for i in $(seq 1 "$HUBS"); do echo "    server hub$i 127.0.0.1:${P_HUB[$i]}"; done
    cat <<EOF
backend one
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
    server hub1 127.0.0.1:${P_HUB[1]} check inter 500ms fall 2 rise 2
listen stats
    bind 127.0.0.1:$P_STATS
    stats enable
    stats uri /stats
EOF
  } >"$RUN/haproxy.cfg"
}

# haproxy_csv : the stats page as CSV.
haproxy_csv() { curl -fs -m 2 "http://127.0.0.1:$P_STATS/stats;csv"; }
# haproxy_up BACKEND SERVER : that server is UP in HAProxy's view.
haproxy_up() { haproxy_csv | awk -F, -v b="$1" -v s="$2" '$1 == b && $2 == s && $18 ~ /^UP/ {f = 1} END {exit !f}'; }
haproxy_down() { haproxy_csv | awk -F, -v b="$1" -v s="$2" '$1 == b && $2 == s && $18 ~ /^DOWN/ {f = 1} END {exit !f}'; }
haproxy_all_up() {
  local i
  for i in $(seq 1 "$HUBS"); do haproxy_up hubs "hub$i" || return 1; done
}

# cluster_start_all : every part, in order, each waited for; on failure SETUP_WHY (and SETUP_LOG)
# and return 1. Sets the P_* ports, KEY/DIGEST, SENTINEL_CONFIG, CLUSTER_FEATURES, REDIS_MODE.
cluster_start_all() {
  local out i
  read -r P_RA P_RB P_SENTINEL P_MOCK P_PY P_LB P_LB1 P_STATS P_HUB[1] P_HUB[2] P_HUB[3] < <(free_ports 11)
  P_PRIMARY=$P_RA P_REPLICA=$P_RB
  SETUP_LOG=""

  out=$("$BIN/mcphub" keygen 2>/dev/null) || { SETUP_WHY="mcphub keygen failed"; return 1; }
  KEY=$(awk '$1 == "key:" {print $2}' <<<"$out")
  DIGEST=$(awk '$1 == "digest:" {print $2}' <<<"$out")
  [ -n "$KEY" ] && [ -n "$DIGEST" ] || { SETUP_WHY="no key/digest from mcphub keygen"; return 1; }

  start_redis redisA "$P_RA"
  REDIS_PID[$P_RA]=$PID_redisA
  wait_until "$READY_TIMEOUT" "redis primary :$P_RA" redis_role_is "$P_RA" master || { SETUP_LOG=$RUN/redisA.log; return 1; }
  start_redis redisB "$P_RB" --replicaof 127.0.0.1 "$P_RA"
  REDIS_PID[$P_RB]=$PID_redisB
  wait_until "$READY_TIMEOUT" "redis replica :$P_RB in sync with :$P_RA" replica_link_up "$P_RB" || { SETUP_LOG=$RUN/redisB.log; return 1; }

  mkdir -p "$RUN/sentinel"
  cat >"$RUN/sentinel/sentinel.conf" <<EOF
port $P_SENTINEL
bind 127.0.0.1
daemonize no
dir $RUN/sentinel
sentinel monitor $SENTINEL_MASTER 127.0.0.1 $P_RA 1
sentinel down-after-milliseconds $SENTINEL_MASTER ${CLUSTER_DOWN_AFTER_MS:-1000}
sentinel failover-timeout $SENTINEL_MASTER 3000
sentinel parallel-syncs $SENTINEL_MASTER 1
EOF
  if [ "$SENTINEL_HOW" = redis-sentinel ]; then
    start sentinel redis-sentinel "$RUN/sentinel/sentinel.conf"
  else
    start sentinel redis-server "$RUN/sentinel/sentinel.conf" --sentinel
  fi
  wait_until "$READY_TIMEOUT" "sentinel :$P_SENTINEL names :$P_RA the primary" sentinel_master_is "$P_RA" || { SETUP_LOG=$RUN/sentinel.log; return 1; }
  wait_until "$READY_TIMEOUT" "sentinel :$P_SENTINEL knows the replica" sentinel_knows_replica || { SETUP_LOG=$RUN/sentinel.log; return 1; }

  start mock "$BIN/mcphub-mock" --era legacy --port "$P_MOCK"
  wait_http mock "http://127.0.0.1:$P_MOCK/stats" || { SETUP_WHY="mock: $(cat "$RUN/mock.why")"; SETUP_LOG=$RUN/mock.log; return 1; }
  start py "$VENV/bin/python" -I "$CDIR/py_upstream.py" "$P_PY"
  wait_http py "http://127.0.0.1:$P_PY/ready-probe" any || { SETUP_WHY="py upstream: $(cat "$RUN/py.why")"; SETUP_LOG=$RUN/py.log; return 1; }

  # redis.sentinel if this hub has it (the probe config must pass check-config)
  SENTINEL_CONFIG=1
  hub_config 1
  if ! "$BIN/mcphub" check-config --config "$RUN/hub1.json" >"$RUN/check-config.log" 2>&1; then
    SENTINEL_CONFIG=0
  fi
  REDIS_MODE=$([ "$SENTINEL_CONFIG" = 1 ] && echo "redis.sentinel" || echo "redis.url, no sentinel support")
  for i in $(seq 1 "$HUBS"); do hub_config "$i"; done
  for i in $(seq 1 "$HUBS"); do start_hub "$i" "hub$i" || return 1; done
  CLUSTER_FEATURES=0
  curl -fs -m 2 "http://127.0.0.1:${P_HUB[1]}/readyz" | jq -e '.cluster' >/dev/null 2>&1 && CLUSTER_FEATURES=1

  haproxy_config
  haproxy -c -f "$RUN/haproxy.cfg" >"$RUN/haproxy-check.log" 2>&1 || { SETUP_WHY="haproxy -c refused the config"; SETUP_LOG=$RUN/haproxy-check.log; return 1; }
  start haproxy haproxy -db -f "$RUN/haproxy.cfg"
  wait_until "$READY_TIMEOUT" "haproxy :$P_LB with all $HUBS hubs UP" haproxy_all_up || { SETUP_LOG=$RUN/haproxy.log; return 1; }
}

# calls_per_hub : tools/call request log lines of each hub (all its processes), space-separated.
calls_per_hub() {
  local i n f out=""
  for i in $(seq 1 "$HUBS"); do
    n=0
    for f in ${HUB_LOGS[$i]}; do n=$((n + $(grep -c ' request [^ ]* tools/call ' "$f" 2>/dev/null || true))); done
    out="$out $n"
  done
  echo "${out# }"
}

# deliveries_received : the sum over the hubs of mcphub_cluster_deliveries_total{direction="received"};
# empty when no hub has that family.
deliveries_received() {
  local i
  for i in $(seq 1 "$HUBS"); do curl -fs -m 2 "http://127.0.0.1:${P_HUB[$i]}/metrics" 2>/dev/null; done |
    awk '/^mcphub_cluster_deliveries_total\{/ && /direction="received"/ {s += $NF; f = 1} END {if (f) printf "%d\n", s}'
}

# metric_sum FAMILY : the sum of FAMILY's samples over the hubs' /metrics; "none" when no hub has it.
metric_sum() {
  local i
  for i in $(seq 1 "$HUBS"); do curl -fs -m 2 "http://127.0.0.1:${P_HUB[$i]}/metrics" 2>/dev/null; done |
    awk -v f="$1" '$1 == f || index($1, f "{") == 1 {s += $NF; n = 1} END {if (n) printf "%d\n", s; else print "none"}'
}

# primary_hub_clients : connections to the current primary that are not Sentinel's, a replica's or
# this query's own (so: the hubs' pools and cluster subscribers).
primary_hub_clients() {
  redis-cli -p "$P_PRIMARY" client list 2>/dev/null | tr -d '\r' |
    grep -v -e 'name=sentinel-' -e 'cmd=client|list' | grep -vc -E 'flags=[A-Za-z]*S'
}

mock_initialize() { curl -fs -m 5 "http://127.0.0.1:$P_MOCK/stats" | jq -r '.initialize // empty'; }

# ---------------------------------------------------------------------------------------------
# Events during the load (cluster-test.sh e.)
# ---------------------------------------------------------------------------------------------
EVENTS_JSONL=""
# event KIND HUB TEXT : a timeline line (t relative to the load's start) and a JSON record.
event() {
  local t
  t=$(now_ms)
  printf '  t=%6.1fs  %s\n' "$(awk -v a="$t" -v b="$LOAD_T0" 'BEGIN {print (a - b) / 1000}')" "$3" | tee -a "$RUN/events.txt"
  printf '{"kind":"%s","hub":"%s","unix_ms":%s,"text":"%s"}\n' "$1" "$2" "$t" "${3//\"/\'}" >>"$EVENTS_JSONL"
}

ev_hub_kill() { # I
  local i=$1 pid=${HUB_PID[$1]} t name stats=$RUN/haproxy-kill$((RESTARTS + 1))
  # HAProxy's counters around the kill: the victim's `eresp` + `srv_abrt` grow by the requests that were in
  # flight on it when it died (the answer never came)
  haproxy_csv >"$stats-before.csv" 2>/dev/null
  t=$(now_ms)
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  printf '{"kind":"kill","hub":"hub%s","unix_ms":%s,"text":"kill -9","stats":"%s"}\n' "$i" "$t" "$stats" >>"$EVENTS_JSONL"
  event note "hub$i" "kill -9 hub$i (pid $pid)"
  # down long enough for the balancer to notice (so its retries and redispatches are exercised too)
  if wait_until 10 "haproxy marks hub$i DOWN" haproxy_down hubs "hub$i"; then
    event note "hub$i" "haproxy: hub$i DOWN, $(($(now_ms) - t)) ms after the kill"
  else
    event fail "hub$i" "haproxy did not mark hub$i DOWN within 10 s"
  fi
  RESTARTS=$((RESTARTS + 1))
  name="hub${i}r$RESTARTS"
  t=$(now_ms)
  if start_hub "$i" "$name"; then
    event note "hub$i" "hub$i started again (pid ${HUB_PID[$i]}), /healthz after $(($(now_ms) - t)) ms"
  else
    event fail "hub$i" "hub$i did not come back: $SETUP_WHY"
    return 1
  fi
  if wait_until 15 "haproxy marks hub$i UP" haproxy_up hubs "hub$i"; then
    event note "hub$i" "haproxy: hub$i UP again, $(($(now_ms) - t)) ms after its start"
  else
    event fail "hub$i" "haproxy did not mark hub$i UP within 15 s"
  fi
  haproxy_csv >"$stats-after.csv" 2>/dev/null
}

reloads_in() { cat ${HUB_LOGS[$1]} 2>/dev/null | grep -c 'config reloaded' || true; }
ev_hub_reload() { # I
  local i=$1 n t
  n=$(reloads_in "$i")
  t=$(now_ms)
  kill -HUP "${HUB_PID[$i]}"
  if wait_until 10 "hub$i reload" eval "[ \$(reloads_in $i) -gt $n ]"; then
    event note "hub$i" "SIGHUP hub$i: '$(cat ${HUB_LOGS[$i]} | grep 'config reloaded' | tail -n 1 | sed 's/.*config reloaded/config reloaded/')' after $(($(now_ms) - t)) ms"
  else
    event fail "hub$i" "SIGHUP hub$i: no 'config reloaded' line within 10 s"
  fi
}

ev_failover() {
  local old=$P_PRIMARY new=$P_REPLICA pid=${REDIS_PID[$P_PRIMARY]} t name pv
  t=$(now_ms)
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  printf '{"kind":"redis_kill","hub":"","unix_ms":%s,"text":"kill -9 primary"}\n' "$t" >>"$EVENTS_JSONL"
  event note "" "kill -9 the redis primary :$old (pid $pid)"
  if wait_until 30 "sentinel promotes :$new" sentinel_master_is "$new"; then
    event note "" "sentinel: :$new is the primary, $(($(now_ms) - t)) ms after the kill"
    printf '{"kind":"promoted","hub":"","unix_ms":%s,"text":"promoted"}\n' "$(now_ms)" >>"$EVENTS_JSONL"
  else
    event fail "" "sentinel did not promote :$new within 30 s (master: $(sentinel_master_port))"
    return 1
  fi
  # the old primary comes back as the new one's replica (as an operator, or systemd and Sentinel, would)
  RESTARTS=$((RESTARTS + 1))
  name="redis$RESTARTS"
  start_redis "$name" "$old" --replicaof 127.0.0.1 "$new"
  pv=PID_$name
  REDIS_PID[$old]=${!pv}
  # Sentinel may switch again (a new primary that misses down-after-milliseconds under load):
  # whichever way it settles, one primary and its replica in sync
  if wait_until 30 "one primary and its replica in sync" redis_settled; then
    P_PRIMARY=$SETTLED_PRIMARY P_REPLICA=$SETTLED_REPLICA
    if [ "$P_PRIMARY" = "$new" ]; then
      event note "" "the old primary :$old is back as a replica of :$new, in sync $(($(now_ms) - t)) ms after the kill"
    else
      event note "" "Sentinel switched again: :$P_PRIMARY is the primary, :$P_REPLICA its replica in sync, $(($(now_ms) - t)) ms after the kill"
    fi
  else
    event fail "" "no primary with its replica in sync within 30 s (sentinel names :$(sentinel_master_port))"
  fi
}

# cluster_load_with_events : mcphub-load through the balancer for CLUSTER_SECS with the events.
cluster_load_with_events() {
  local k=0 kind victim next
  EVENTS_JSONL=$RUN/events.jsonl
  : >"$EVENTS_JSONL"
  MOCK_INIT_BEFORE=$(mock_initialize)
  LOAD_CALLS_BEFORE=$(calls_per_hub)
  echo "# e. mcphub-load: $CLUSTER_CONCURRENCY legacy clients × ${CLUSTER_SECS}s through haproxy :$P_LB, an event every ${CLUSTER_EVENT_EVERY}s ($(date -u +%FT%TZ), $(nproc) cores)"
  start load env MCPHUB_LOAD_KEY="$KEY" "$BIN/mcphub-load" --url "$LB" --concurrency "$CLUSTER_CONCURRENCY" \
    --tool echo --args '{"text":"load"}' --duration "$CLUSTER_SECS" --timeout-ms 30000 --json "$RUN/load.json"
  LOAD_PID=$PID_load
  LOAD_T0=$(now_ms)
  event note "" "mcphub-load started (pid $LOAD_PID)"
  while :; do
    k=$((k + 1))
    next=$((LOAD_T0 + k * CLUSTER_EVENT_EVERY * 1000))
    [ $((k * CLUSTER_EVENT_EVERY)) -lt "$CLUSTER_SECS" ] || break
    while [ "$(now_ms)" -lt "$next" ] && kill -0 "$LOAD_PID" 2>/dev/null; do sleep 0.2; done
    kill -0 "$LOAD_PID" 2>/dev/null || break
    kind=$(((k - 1) % 3))
    victim=$((((k - 1) / 3) % HUBS + 1))
    case $kind in
      0) ev_hub_kill "$victim" ;;
      1) ev_hub_reload $((victim % HUBS + 1)) ;;
      2) ev_failover ;;
    esac
  done
  next=$((LOAD_T0 + (CLUSTER_SECS + 120) * 1000))
  while kill -0 "$LOAD_PID" 2>/dev/null && [ "$(now_ms)" -lt "$next" ]; do sleep 0.2; done
  if kill -0 "$LOAD_PID" 2>/dev/null; then
    kill -KILL "$LOAD_PID"
    event fail "" "mcphub-load still running 120 s after its duration: killed"
  fi
  wait "$LOAD_PID" 2>/dev/null
  LOAD_RC=$?
  event note "" "mcphub-load ended (exit $LOAD_RC)"
  MOCK_INIT_AFTER=$(mock_initialize)
  LOAD_CALLS_AFTER=$(calls_per_hub)
  haproxy_csv >"$RUN/haproxy-stats.csv" 2>/dev/null
}

# cluster_load_checks : the load's report and its checks (targets of issue 20).
cluster_load_checks() {
  local name verdict why
  echo "# mcphub-load:"
  grep -v '^round=' "$RUN/load.log" | sed 's/^/#   /'
  [ "$LOAD_RC" = 0 ] && [ -s "$RUN/load.json" ] || { notok "e. mcphub-load ran" "exit $LOAD_RC" "$RUN/load.log"; return; }
  mkdir -p "$(dirname "$CLUSTER_JSON")"
  python3 "$CDIR/load_report.py" --load "$RUN/load.json" --events "$EVENTS_JSONL" --haproxy "$RUN/haproxy-stats.csv" \
    --hubs "$HUBS" --concurrency "$CLUSTER_CONCURRENCY" --calls-before "$LOAD_CALLS_BEFORE" --calls-after "$LOAD_CALLS_AFTER" \
    --mock-init-before "${MOCK_INIT_BEFORE:-}" --mock-init-after "${MOCK_INIT_AFTER:-}" --json "$CLUSTER_JSON" \
    --verdicts "$RUN/verdicts.txt"
  while IFS='|' read -r verdict name why; do
    if [ "$verdict" = ok ]; then ok "$name"; else notok "$name" "$why"; fi
  done <"$RUN/verdicts.txt"
  if grep -q '"kind":"redis_kill"' "$EVENTS_JSONL"; then
    local n
    n=$(primary_hub_clients)
    if [ "${n:-0}" -ge "$HUBS" ]; then
      ok "e. after the failover the hubs talk to the new primary :$P_PRIMARY ($n client connections besides Sentinel's and the replica's)"
    else
      notok "e. after the failover the hubs talk to the new primary :$P_PRIMARY" \
        "${n:-0} client connections besides Sentinel's and the replica's, want at least one per hub ($HUBS)$([ "$SENTINEL_CONFIG" = 1 ] || echo '; the hubs have redis.url, not redis.sentinel')"
    fi
  fi
  if grep -q '"kind":"fail"' "$EVENTS_JSONL"; then
    notok "e. every event went through (kill/restart, reload, failover)" "$(grep '"kind":"fail"' "$EVENTS_JSONL" | head -n 1 | jq -r .text)" "$RUN/events.txt"
  else
    ok "e. every event went through (kill/restart, reload, failover)"
  fi
}
