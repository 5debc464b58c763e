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
