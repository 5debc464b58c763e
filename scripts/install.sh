#!/usr/bin/env bash
# Installs MCPHub as a systemd service: the binary, the unit, and /etc/mcphub
# with an example config and environment file (never overwriting existing ones).
#
#   scripts/install.sh [--no-user] [--bin PATH]        (or `make install`)
#
# Variables (GNU conventions):
#   DESTDIR     staging root prepended to every path (packaging); default empty
#   PREFIX      default /usr/local   → $PREFIX/bin/mcphub (0755 root)
#   SYSCONFDIR  default /etc         → $SYSCONFDIR/mcphub/ (0750 root:mcphub)
#   UNITDIR     default /etc/systemd/system → mcphub.service (0644 root)
#   BIN         the binary to install; default target/release/mcphub
#
# --no-user: do not create the `mcphub` system user and do not chown (for a
# staging DESTDIR or a non-root run). Without root, chown is skipped with a
# warning. The unit's paths are rewritten when PREFIX or SYSCONFDIR differ
# from the defaults. Nothing is started: the next steps are printed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
SYSCONFDIR=${SYSCONFDIR:-/etc}
UNITDIR=${UNITDIR:-/etc/systemd/system}
BIN=${BIN:-$ROOT/target/release/mcphub}
SERVICE_USER=mcphub
make_user=1

while [ $# -gt 0 ]; do
  case "$1" in
    --no-user) make_user=0 ;;
    --bin) BIN=$2; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

die() { echo "install.sh: $*" >&2; exit 1; }
[ -x "$BIN" ] || die "no binary at $BIN (run 'cargo build --release --locked' or 'make build' first)"
for f in etc/mcphub.service etc/mcphub.example.json etc/mcphub.env.example; do
  [ -f "$ROOT/$f" ] || die "missing $ROOT/$f"
done

is_root=0
[ "$(id -u)" -eq 0 ] && is_root=1
chown_ok=0
if [ "$make_user" -eq 1 ]; then
  if [ "$is_root" -eq 0 ]; then
    echo "install.sh: not root: the '$SERVICE_USER' user is not created and ownership is not set" >&2
  else
    if ! getent passwd "$SERVICE_USER" >/dev/null; then
      nologin=$(command -v nologin || echo /usr/sbin/nologin)
      useradd --system --user-group --home-dir /var/lib/mcphub --no-create-home \
        --shell "$nologin" --comment "MCPHub service" "$SERVICE_USER"
      echo "created system user '$SERVICE_USER'"
    fi
    chown_ok=1
  fi
fi

bindir=$DESTDIR$PREFIX/bin
confdir=$DESTDIR$SYSCONFDIR/mcphub
unitdir=$DESTDIR$UNITDIR
docdir=$DESTDIR$PREFIX/share/doc/mcphub

install -d -m 0755 "$bindir" "$unitdir" "$docdir"
install -m 0755 "$BIN" "$bindir/mcphub"
[ "$is_root" -eq 1 ] && chown root:root "$bindir/mcphub"

# The unit names /usr/local/bin and /etc/mcphub; follow PREFIX and SYSCONFDIR.
tmp_unit=$(mktemp)
trap 'rm -f "$tmp_unit"' EXIT
sed -e "s#/usr/local/bin/mcphub#$PREFIX/bin/mcphub#g" \
    -e "s#/usr/local/share/doc/mcphub#$PREFIX/share/doc/mcphub#g" \
    -e "s#/etc/mcphub/#$SYSCONFDIR/mcphub/#g" \
    "$ROOT/etc/mcphub.service" >"$tmp_unit"
install -m 0644 "$tmp_unit" "$unitdir/mcphub.service"
install -m 0644 "$ROOT/README.md" "$docdir/README.md"

install -d -m 0750 "$confdir"
[ "$chown_ok" -eq 1 ] && chown "root:$SERVICE_USER" "$confdir"
# Reference copies, refreshed on every install.
install -m 0644 "$ROOT/etc/mcphub.example.json" "$confdir/mcphub.example.json"
install -m 0644 "$ROOT/etc/mcphub.env.example" "$confdir/mcphub.env.example"
# The live files: only if absent. An existing config is never overwritten.
kept=()
for pair in "mcphub.example.json:mcphub.json" "mcphub.env.example:mcphub.env"; do
  src=${pair%%:*} dst=${pair##*:}
  if [ -e "$confdir/$dst" ]; then
    kept+=("$confdir/$dst")
  else
    install -m 0640 "$ROOT/etc/$src" "$confdir/$dst"
    [ "$chown_ok" -eq 1 ] && chown "root:$SERVICE_USER" "$confdir/$dst"
  fi
done

echo "installed:"
echo "  $bindir/mcphub (0755)"
echo "  $unitdir/mcphub.service (0644)"
echo "  $confdir/ (0750$([ "$chown_ok" -eq 1 ] && echo " root:$SERVICE_USER"))"
for k in ${kept[@]+"${kept[@]}"}; do echo "  kept existing $k"; done
cat <<NEXT

next steps:
  1. edit $SYSCONFDIR/mcphub/mcphub.json (mcpServers, users; 'mcphub keygen --admin' mints a key)
     and check it: $PREFIX/bin/mcphub check-config --config $SYSCONFDIR/mcphub/mcphub.json
  2. edit $SYSCONFDIR/mcphub/mcphub.env (REDIS_URL, MCPHUB_SECRET_KEY_FILE, ...)
  3. systemctl daemon-reload && systemctl enable --now mcphub
  4. systemctl status mcphub; curl -s http://127.0.0.1:3000/healthz
     reload the config: systemctl reload mcphub; logs: journalctl -u mcphub -f
NEXT
