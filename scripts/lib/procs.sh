# Shared by the test scripts (sourced, not run).

# stop_pids PID... : SIGTERM each, wait up to 3 s for all to exit, SIGKILL the rest, reap.
stop_pids() {
  local p n alive
  for p in "$@"; do kill -TERM "$p" 2>/dev/null; done
  for n in $(seq 1 30); do
    alive=0
    for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" -eq 0 ] && break
    sleep 0.1
  done
  for p in "$@"; do kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
}

# start NAME CMD... : run CMD in the background, its output in $RUN/NAME.log; its pid is
# appended to PIDS and kept in PID_NAME. Needs RUN (a directory) and PIDS (an array).
start() {
  local name=$1
  shift
  "$@" >"$RUN/$name.log" 2>&1 </dev/null &
  PIDS+=($!)
  printf -v "PID_$name" '%s' "$!"
}

# ready NAME CHECK... : run CHECK until it succeeds, bounded by READY_TIMEOUT seconds; exits
# the script (with the last lines of NAME's log) if NAME's process dies first or never gets
# ready. Messages are prefixed with the script's name.
ready() {
  local name=$1 pidvar="PID_$1" deadline=$(($(date +%s) + READY_TIMEOUT)) tag
  tag=$(basename "$0" .sh)
  shift
  until "$@" >/dev/null 2>&1; do
    if ! kill -0 "${!pidvar}" 2>/dev/null; then
      echo "$tag: $name exited before it was ready; its log:" >&2
      tail -n 20 "$RUN/$name.log" >&2
      exit 1
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "$tag: $name not ready after ${READY_TIMEOUT}s; its log:" >&2
      tail -n 20 "$RUN/$name.log" >&2
      exit 1
    fi
    sleep 0.1
  done
}

tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
http_ok() { curl -fs -m 1 -o /dev/null "$1"; }

# free_ports N : N distinct free 127.0.0.1 ports on one line (all held until all are chosen).
free_ports() {
  python3 -I -c '
import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))
for s in ss: s.close()' "$1"
}

# stop_first PID : SIGTERM one process and wait up to 3 s for it (a hub before its upstreams,
# so its shutdown still reaches them); stop_pids does the rest.
stop_first() {
  [ -n "${1:-}" ] && kill -TERM "$1" 2>/dev/null || return 0
  for _ in $(seq 1 30); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
}
