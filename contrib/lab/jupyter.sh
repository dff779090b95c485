#!/usr/bin/env bash
# A JupyterLab every lab user can run (the `jupyter` session type's tests on the lab cluster):
# a virtual environment at /opt/corral-lab/jupyter, world-readable, made with uv from PyPI
# (jupyterlab and ipykernel) on Debian's python3, when it is missing.
#
#   bash contrib/lab/jupyter.sh      # make it if missing; print CORRAL_LAB_JUPYTER=<jupyter>
#
# Idempotent: an environment whose jupyter answers --version is left alone. Runs as root.
set -euo pipefail
umask 022

readonly PREFIX=/opt/corral-lab/jupyter
readonly JUPYTER=$PREFIX/bin/jupyter

log() { echo "jupyter: $*" >&2; }

# Concurrent runs (CI and a developer, parallel test workers) take turns: a second one waits,
# then finds the install done instead of removing it half-way.
exec 9>"/run/lock/corral-lab-jupyter.lock"
flock --wait 1800 9 || { echo "jupyter: another install held /run/lock/corral-lab-jupyter.lock for 30 min" >&2; exit 1; }

if ! "$JUPYTER" --version >/dev/null 2>&1; then
  command -v uv >/dev/null 2>&1 || { log "uv is needed (pip install uv)"; exit 1; }
  python=$(command -v python3 || true)
  [[ -x /usr/bin/python3 ]] && python=/usr/bin/python3
  [[ -n $python ]] || { log "python3 is needed"; exit 1; }
  log "making $PREFIX with $python"
  rm -rf "$PREFIX"
  mkdir -p "$(dirname "$PREFIX")"
  uv venv --quiet --python "$python" "$PREFIX"
  uv pip install --quiet --python "$PREFIX/bin/python" "jupyterlab>=4.2" "ipykernel>=6.29"
  chmod -R a+rX "$PREFIX"
fi
echo "CORRAL_LAB_JUPYTER=$JUPYTER"
