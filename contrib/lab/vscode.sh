#!/usr/bin/env bash
# A code-server every lab user can run (the `vscode` session type's tests, plugins/vscode):
# code-server from npm into /opt/corral-lab/code-server (bin/code-server), world-readable, when
# it is missing.
#
#   bash contrib/lab/vscode.sh         # install it if missing; print CORRAL_LAB_CODE_SERVER=<path>
#   bash contrib/lab/vscode.sh check   # exit 0 when it is there and runs, else 1
#
# Idempotent: a code-server that answers --version is left alone (no apt-get, no npm). Runs as
# root, or through `sudo -n`. Debian 12 with Node.js 20 and npm; the first time takes about a
# minute with npm's cache warm, a few minutes cold (npm builds VS Code's native modules).
#
# Only the npm registry and Debian's apt are needed, not GitHub:
# - code-server 4.100.3 is the last release for Node 20 (later ones want Node 22, then 24);
#   set CORRAL_CODE_SERVER_VERSION for another one (with the Node it wants).
# - Native modules that find no prebuilt binary (prebuild-install asks GitHub) are built from
#   source: build-essential, pkg-config, python3 and libkrb5-dev (for `kerberos`); node-gyp
#   uses the installed Node's headers (/usr/include/node) instead of downloading them; node-pty's
#   install script runs `npx node-gyp` (from npm), so npx may install without asking.
# - @vscode/ripgrep's install script downloads rg from GitHub unless its download cache
#   ($TMPDIR/vscode-ripgrep-cache-<version>/) holds the archive: Debian's ripgrep is put there.
set -euo pipefail
umask 022
export DEBIAN_FRONTEND=noninteractive

readonly PREFIX=/opt/corral-lab/code-server
readonly CODE_SERVER=$PREFIX/bin/code-server
readonly VERSION=${CORRAL_CODE_SERVER_VERSION:-4.100.3}
# What code-server 4.100.3's VS Code locks: @vscode/ripgrep 1.15.11, which fetches rg v13.0.0-10.
readonly RIPGREP_PACKAGE=1.15.11 RIPGREP_RELEASE=v13.0.0-10

log() { echo "vscode: $*" >&2; }
die() { log "error: $*"; exit 1; }

as_root() {
  if [[ $(id -u) == 0 ]]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
  else die "need root (or sudo) to run: $*"; fi
}

installed() { "$CODE_SERVER" --version >/dev/null 2>&1; }

case "${1:-install}" in
install) ;;
check) if installed; then exit 0; fi; log "no working $CODE_SERVER"; exit 1;;
*) die "usage: $0 [install|check]";;
esac

# Concurrent runs (CI and a developer, parallel test workers) take turns: a second one waits,
# then finds the install done instead of removing it half-way.
exec 9>"/run/lock/corral-lab-vscode.lock"
flock --wait 1800 9 || { echo "vscode: another install held /run/lock/corral-lab-vscode.lock for 30 min" >&2; exit 1; }

if ! installed; then
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    die "node and npm are needed"
  fi
  node_major=$(node -p 'process.versions.node.split(".")[0]')
  [[ $VERSION != 4.100.3 || $node_major == 20 ]] ||
    die "code-server $VERSION needs Node.js 20, this is $(node --version)"

  # What each Debian package provides (a command, or a header file).
  declare -A package_of=(
    [g++]=build-essential [make]=build-essential [pkg-config]=pkg-config [python3]=python3
    [/usr/include/gssapi/gssapi.h]=libkrb5-dev [rg]=ripgrep
  )
  missing=()
  for what in "${!package_of[@]}"; do
    if [[ $what == /* ]]; then [[ -e $what ]] && continue
    else command -v "$what" >/dev/null 2>&1 && continue; fi
    missing+=("${package_of[$what]}")
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    log "installing ${missing[*]} from Debian"
    {
      as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
          -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"
    } >&2 || die "apt-get install ${missing[*]} failed"
  fi

  node_dir=$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")
  [[ -e $node_dir/include/node/node.h ]] ||
    die "Node.js's headers are not in $node_dir/include/node (node-gyp would download them)"

  case $(uname -m) in
  x86_64) rg_target=x86_64-unknown-linux-musl ;;
  aarch64) rg_target=aarch64-unknown-linux-musl ;;
  *) die "no ripgrep target for $(uname -m)" ;;
  esac
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  cp "$(command -v rg)" "$work/rg"
  cache=$work/tmp/vscode-ripgrep-cache-$RIPGREP_PACKAGE
  mkdir -p "$cache"
  tar czf "$cache/ripgrep-$RIPGREP_RELEASE-$rg_target.tar.gz" -C "$work" rg

  log "installing code-server $VERSION from npm into $PREFIX (a few minutes)"
  as_root rm -rf "$PREFIX"
  as_root mkdir -p "$PREFIX"
  status=0
  # A local install in $PREFIX (not --global: code-server's install script runs npm install
  # for VS Code, which would inherit --global and install VS Code's modules elsewhere).
  (cd "$PREFIX" && as_root env TMPDIR="$work/tmp" npm_config_nodedir="$node_dir" \
    npm_config_update_notifier=false npm_config_yes=true \
    npm install --unsafe-perm --no-audit --no-fund "code-server@$VERSION") \
    >"$work/npm.log" 2>&1 || status=$?
  as_root mkdir -p "$PREFIX/bin"
  as_root ln -sfn ../node_modules/.bin/code-server "$CODE_SERVER"
  if [[ $status != 0 ]] || ! installed; then
    tail -n 40 "$work/npm.log" >&2
    as_root rm -rf "$PREFIX"
    die "npm install code-server@$VERSION failed (exit $status)"
  fi
  as_root chmod -R a+rX "$PREFIX"
fi
echo "CORRAL_LAB_CODE_SERVER=$CODE_SERVER"
