#!/usr/bin/env bash
# Installs headless Chromium from Debian's (or Ubuntu's) packages, if it is
# missing, for the browser tests (tests/integration/test_pages.py). Needs root
# or sudo, like the base image build; does nothing when Chromium is there.
set -euo pipefail

for name in chromium chromium-browser; do
  if command -v "$name" >/dev/null; then
    exit 0
  fi
done
if ! command -v apt-get >/dev/null; then
  echo "Chromium is missing and this machine has no apt-get: install Chromium, then run the tests again." >&2
  exit 1
fi
sudo=()
if [[ $(id -u) != 0 ]]; then
  sudo=(sudo)
fi
echo "    Installing Chromium from the distribution's packages (for the browser tests)..."
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq chromium >/dev/null
