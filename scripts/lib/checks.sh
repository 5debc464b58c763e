# Shared by the check scripts scripts/e2e.sh and scripts/ui-test.sh (sourced, not run):
# TAP-like reporting, first-run installs of pinned npm/PyPI sets, and a bounded wait for HTTP.
#
# The sourcing script sets, before calling these:
#   CHECKS_NAME   what `finish` calls the run ("e2e", "ui test")
#   CHECKS_KEEP   non-empty to keep the run's logs even when every check passed
#   CHECKS_CUT    head | tail: which 30 lines of a failed check's evidence file are shown (default head)
#   RUN           the run's log directory (once made), READY_TIMEOUT (s) for wait_http

PASS=0
FAIL=0
T0=$(date +%s)

ok() { echo "ok - $1"; PASS=$((PASS + 1)); }
# notok NAME REASON [FILE] : a failed check, with up to 30 lines of FILE as evidence.
notok() {
  echo "not ok - $1: $2"
  FAIL=$((FAIL + 1))
  if [ -n "${3:-}" ] && [ -r "$3" ]; then sed -e 's/^/#   /' "$3" | "${CHECKS_CUT:-head}" -n 30; fi
}
# finish : the summary line (last line of output) and the exit status: 0 iff every check passed.
finish() {
  if [ -n "${RUN:-}" ] && { [ "$FAIL" -ne 0 ] || [ -n "${CHECKS_KEEP:-}" ]; }; then echo "# logs kept in $RUN"; fi
  echo "# ${CHECKS_NAME:-run} took $(($(date +%s) - T0))s"
  echo "$PASS passed, $FAIL failed"
  [ "$FAIL" -eq 0 ]
  exit $?
}
# fatal NAME REASON [FILE] : a setup step that makes the rest pointless: a failed check, then stop.
fatal() {
  notok "$1" "$2" "${3:-}"
  finish
}

# install_npm FROM_DIR PREFIX STAMP_FILE STAMP CACHE : `npm ci` of FROM_DIR's package.json and
# package-lock.json into PREFIX; STAMP written to PREFIX/STAMP_FILE on success.
install_npm() {
  local from=$1 prefix=$2 stamp_file=$3 stamp=$4 cache=$5
  rm -rf "$prefix" && mkdir -p "$prefix" &&
    cp "$from/package.json" "$from/package-lock.json" "$prefix/" &&
    (cd "$prefix" && timeout 600 npm ci --no-audit --no-fund --loglevel=error --cache "$cache/npm-cache") &&
    echo "$stamp" >"$prefix/$stamp_file"
}

# install_py VENV REQUIREMENTS STAMP_FILE STAMP CACHE : a fresh venv with REQUIREMENTS;
# STAMP written to VENV/STAMP_FILE on success.
install_py() {
  local venv=$1 reqs=$2 stamp_file=$3 stamp=$4 cache=$5
  rm -rf "$venv" && python3 -m venv "$venv" &&
    timeout 600 "$venv/bin/pip" install --disable-pip-version-check -q --cache-dir "$cache/pip-cache" -r "$reqs" &&
    echo "$stamp" >"$venv/$stamp_file"
}

# wait_http NAME URL [any] : poll until URL answers 200 (or any HTTP status with "any"), bounded
# by READY_TIMEOUT; fails early if NAME's process (PID_NAME) died. The reason is left in
# $RUN/NAME.why.
wait_http() {
  local name=$1 url=$2 mode=${3:-200} pidvar="PID_$1" code deadline=$(($(date +%s) + READY_TIMEOUT))
  while :; do
    code=$(curl -s -o /dev/null -m 1 -w '%{http_code}' "$url" 2>/dev/null) || true
    if [ "$code" = 200 ] || { [ "$mode" = any ] && [ "${code:-000}" != 000 ]; }; then return 0; fi
    if ! kill -0 "${!pidvar}" 2>/dev/null; then
      echo "process exited before $url answered" >"$RUN/$name.why"
      return 1
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "$url not answering after ${READY_TIMEOUT}s (last status ${code:-none})" >"$RUN/$name.why"
      return 1
    fi
    sleep 0.1
  done
}
