# Shared by the bench-scale curve scripts (sourced, not run): scripts/bench/scale-{sessions,users}.sh.
# Needs TAG (the script's name, for messages and its temporary directory), ROOT and PY set first.
# Sets up RUN (a temporary directory unless the driver exported one), ROWS (the rows file, printed
# on exit when this script made it), PIDS and the cleanup trap, and defines the helpers below.

die() { echo "$TAG: $*" >&2; exit 1; }
say() { echo "$TAG: $*" >&2; }

OWN_RUN=
if [ -z "${RUN:-}" ]; then RUN=$(mktemp -d "${TMPDIR:-/tmp}/mcphub-$TAG.XXXXXX"); OWN_RUN=1; fi
OWN_ROWS=
if [ -z "${ROWS:-}" ]; then ROWS=$RUN/rows.tsv; : >"$ROWS"; OWN_ROWS=1; fi
PIDS=()
# shellcheck source=procs.sh
. "$ROOT/scripts/lib/procs.sh"
cleanup() {
  set +e
  stop_pids "${PIDS[@]}"
  [ -n "$OWN_ROWS" ] && cat "$ROWS"
  [ -n "$OWN_RUN" ] && rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

row() { local IFS=$'\t'; printf '%s\n' "$*" >>"$ROWS"; } # curve x metric value unit note
ticks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
HZ=$(getconf CLK_TCK)
calc() { awk "BEGIN{ printf \"$1\", $2 }"; }
# kv KEY "k=v k=v …": the value of KEY
kv() { local p; for p in $2; do [ "${p%%=*}" = "$1" ] && { echo "${p#*=}"; return; }; done; echo ''; }
metric() { python3 "$PY" metric "$1" "$2"; }
# stop_one PID: SIGTERM (up to 3 s), SIGKILL; reaped and dropped from PIDS (stop_pids' bare
# `wait` would also wait for the mock, which runs on).
stop_one() {
  local p
  stop_first "$1"
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  for p in "${!PIDS[@]}"; do [ "${PIDS[$p]}" = "$1" ] && unset 'PIDS[p]'; done
}
