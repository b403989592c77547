#!/bin/sh
# install.sh: installs the Kestrel bundle this script sits in as the `kestrel` systemd service, or upgrades to it.
# Run as root. Running it again changes nothing.
#   ./install.sh              install this bundle's version and make it current (an upgrade is the same, run
#                             from the newer bundle: unpack, switch /opt/kestrel/current, restart)
#   ./install.sh --rollback   make the version that was current before the last switch current again, restart
# Layout: /opt/kestrel/<version> (read-only app), /opt/kestrel/current and /opt/kestrel/previous (symlinks),
# /var/lib/kestrel (data, owned by the kestrel user), /etc/kestrel/kestrel.env (settings, written only when absent),
# /etc/systemd/system/kestrel.service.
# KESTREL_ROOT prefixes every path (an image being prepared, or tests); KESTREL_NO_SYSTEMCTL=1 skips systemctl,
# which is also skipped where systemd is not running (a container).
set -eu

R=${KESTREL_ROOT:-}
opt="$R/opt/kestrel"
data="$R/var/lib/kestrel"
etc="$R/etc/kestrel"
units="$R/etc/systemd/system"
src=$(cd "$(dirname "$0")" && pwd -P)

say() { echo "install.sh: $*"; }
die() {
  echo "install.sh: $*" >&2
  exit 1
}

[ "$(id -u)" = 0 ] || die "run as root"

systemctl_() {
  if [ "${KESTREL_NO_SYSTEMCTL:-}" = 1 ] || [ ! -d /run/systemd/system ]; then
    say "systemd is not running here: skipped 'systemctl $*'"
  else
    systemctl "$@"
  fi
}

changed=0
# Points current at version $1 (atomically: a new link renamed over the old one); the old target becomes previous.
switch_to() {
  old=$(readlink "$opt/current" 2>/dev/null || true)
  if [ "$old" = "$1" ]; then
    say "current is already $1"
    return 0
  fi
  ln -sfn "$1" "$opt/.current.new"
  mv -T "$opt/.current.new" "$opt/current"
  if [ -n "$old" ]; then
    ln -sfn "$old" "$opt/.previous.new"
    mv -T "$opt/.previous.new" "$opt/previous"
  fi
  say "current -> $1 (was ${old:-none})"
  changed=1
}

restart_service() {
  systemctl_ daemon-reload
  systemctl_ enable kestrel.service
  if [ "$changed" = 1 ]; then systemctl_ restart kestrel.service; else systemctl_ start kestrel.service; fi
}

if [ "${1:-}" = --rollback ]; then
  previous=$(readlink "$opt/previous" 2>/dev/null) || die "no previous version under $opt to roll back to"
  [ -d "$opt/$previous" ] || die "previous version $opt/$previous is gone"
  switch_to "$previous"
  restart_service
  exit 0
fi
[ $# -eq 0 ] || die "usage: install.sh [--rollback]"

version=$(cat "$src/VERSION")
[ -n "$version" ] || die "$src/VERSION is empty"
# A bundle for another CPU would install cleanly and leave a service that cannot start (on an upgrade, after
# switching current away from one that ran): its Deno must run here before anything is changed.
"$src/bin/deno" --version >/dev/null 2>&1 ||
  die "$src/bin/deno does not run on this $(uname -m) machine (a bundle for another CPU?); nothing was changed"

# The service user; it may use the GPU's render nodes where those groups exist.
if ! grep -q '^kestrel:' "$R/etc/passwd" 2>/dev/null; then
  groups=$(grep -o -E '^(render|video):' "$R/etc/group" 2>/dev/null | tr -d : | paste -sd, -)
  useradd ${R:+--prefix "$R"} --system --user-group --home-dir /var/lib/kestrel --no-create-home \
    --shell /usr/sbin/nologin ${groups:+-G "$groups"} kestrel
  say "created user kestrel"
fi
uid=$(awk -F: '$1 == "kestrel" { print $3 }' "$R/etc/passwd")
gid=$(awk -F: '$1 == "kestrel" { print $4 }' "$R/etc/passwd")

# The app, root-owned and read-only to the service; copied under a temporary name, then renamed into place.
dest="$opt/$version"
if [ ! -d "$dest" ]; then
  mkdir -p "$opt"
  rm -rf "$opt/.$version.new"
  cp -a "$src" "$opt/.$version.new"
  chown -R 0:0 "$opt/.$version.new"
  mv -T "$opt/.$version.new" "$dest"
  say "installed $dest"
fi

install -d -m 750 -o "$uid" -g "$gid" "$data"
install -d -m 750 -o 0 -g "$gid" "$etc"
if [ ! -e "$etc/kestrel.env" ]; then
  key=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
  sed "s/@API_KEY@/$key/" "$src/kestrel.env" >"$etc/.kestrel.env.new"
  chown 0:"$gid" "$etc/.kestrel.env.new"
  chmod 640 "$etc/.kestrel.env.new"
  mv "$etc/.kestrel.env.new" "$etc/kestrel.env"
  say "wrote $etc/kestrel.env (with a new API key)"
fi

mkdir -p "$units"
if ! cmp -s "$src/kestrel.service" "$units/kestrel.service"; then
  install -m 644 "$src/kestrel.service" "$units/kestrel.service"
  say "installed $units/kestrel.service"
  changed=1
fi

switch_to "$version"
restart_service
