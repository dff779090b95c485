#!/usr/bin/env bash
# Debian's Chromium, for the tests that open sessions in a real (headless) browser.
#
#   bash contrib/lab/chromium.sh      # install it when missing; print CORRAL_LAB_CHROMIUM=<path>
#
# Idempotent: with chromium present it runs no apt-get at all. Runs as root. Debian 12.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

# Concurrent runs take turns (apt-get refuses to run while another holds dpkg's lock).
exec 9>"/run/lock/corral-lab-apt.lock"
flock --wait 1800 9 || { echo "chromium: another install held /run/lock/corral-lab-apt.lock for 30 min" >&2; exit 1; }

found=$(command -v chromium || command -v chromium-browser || true)
if [[ -z $found ]]; then
  echo "chromium: installing from Debian" >&2
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
  found=$(command -v chromium)
fi
echo "CORRAL_LAB_CHROMIUM=$found"
