#!/usr/bin/env bash
# What the `desktop` session type (plugins/desktop) runs, installed from Debian when missing:
# TigerVNC's Xvnc, websockify and noVNC's web client, and xterm to show in the desktop.
#
#   bash contrib/lab/desktop.sh          # install what is missing; print CORRAL_DESKTOP_* lines
#   bash contrib/lab/desktop.sh check    # exit 0 when everything is there, else 1 and what is not
#
# Idempotent: when every command is present it changes nothing and runs no apt-get at all;
# otherwise `apt-get update` once, then `apt-get install --no-install-recommends` of the missing
# packages only, noninteractively. Runs as root, or through `sudo -n`. Debian 12.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

readonly NOVNC_DIR=/usr/share/novnc

log() { echo "desktop: $*" >&2; }
die() { log "error: $*"; exit 1; }

as_root() {
  if [[ $(id -u) == 0 ]]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
  else die "need root (or sudo) to run: $*"; fi
}

# What each package provides, as a command on PATH or a file.
readonly -A PACKAGE_OF=(
  [Xvnc]=tigervnc-standalone-server
  [websockify]=websockify
  ["$NOVNC_DIR/vnc.html"]=novnc
  [xauth]=xauth
  [xterm]=xterm
)

missing_packages() {
  local what
  for what in "${!PACKAGE_OF[@]}"; do
    if [[ $what == /* ]]; then
      [[ -e $what ]] || echo "${PACKAGE_OF[$what]}"
    else
      command -v "$what" >/dev/null 2>&1 || echo "${PACKAGE_OF[$what]}"
    fi
  done | sort -u
}

case "${1:-install}" in
install) ;;
check)
  missing=$(missing_packages | tr '\n' ' ')
  if [[ -n $missing ]]; then log "missing Debian packages: $missing"; exit 1; fi
  exit 0;;
*) die "usage: $0 [install|check]";;
esac

# Concurrent runs take turns (apt-get refuses to run while another holds dpkg's lock).
exec 9>"/run/lock/corral-lab-apt.lock"
flock --wait 1800 9 || { echo "desktop: another install held /run/lock/corral-lab-apt.lock for 30 min" >&2; exit 1; }

mapfile -t missing < <(missing_packages)
if [[ ${#missing[@]} -gt 0 ]]; then
  log "installing ${missing[*]} from Debian"
  status=0
  {
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"
  } >&2 || status=$?
  [[ $status == 0 ]] || die "apt-get install ${missing[*]} failed (exit $status)"
  still=$(missing_packages | tr '\n' ' ')
  [[ -z $still ]] || die "still missing after apt-get install: $still"
fi

echo "CORRAL_DESKTOP_XVNC=$(command -v Xvnc)"
echo "CORRAL_DESKTOP_WEBSOCKIFY=$(command -v websockify)"
echo "CORRAL_DESKTOP_NOVNC=$NOVNC_DIR"
