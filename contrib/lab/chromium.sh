#!/usr/bin/env bash
# Debian's Chromium, for the tests that open sessions in a real (headless) browser.
#
#   bash contrib/lab/chromium.sh      # install it when missing; print CORRAL_LAB_CHROMIUM=<path>
#
# Idempotent: with chromium present it runs no apt-get at all. Runs as root. Debian 12.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

found=$(command -v chromium || command -v chromium-browser || true)
if [[ -z $found ]]; then
  echo "chromium: installing from Debian" >&2
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
  found=$(command -v chromium)
fi
echo "CORRAL_LAB_CHROMIUM=$found"
