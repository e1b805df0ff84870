#!/usr/bin/env bash
# Builds crashlab/prometheus:$LAB_IMAGE_TAG, the lab's Prometheus (compose/prometheus/Dockerfile),
# for `make up OBSERVE=1`. `make up` alone never runs this: the lab without it starts as fast.
#
# Debian's prometheus package (and what it depends on) is downloaded on the host when it runs
# Debian bookworm, as compose/link/build-link.sh does for iproute2: apt resolves it against
# the base image's own package list, so exactly the missing packages come down and the build
# needs no network. On any other host the build installs it from Debian's archive itself. The
# image is labelled with a hash of its inputs and rebuilt only when they change.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
image=crashlab/prometheus:${LAB_IMAGE_TAG:-latest}
base=${BASE_IMAGE:-crashlab/base:bookworm}
ctx=$root/build/prometheus

say() { printf '    %s\n' "$*"; }

base_id=$(docker image inspect -f '{{.Id}}' "$base")
inputs=$(cat "$here/Dockerfile" "$here/prometheus.yml" <(echo "$base_id") | sha256sum | cut -c1-16)
have=$(docker image inspect -f '{{index .Config.Labels "lab.inputs"}}' "$image" 2>/dev/null || true)
if [[ $have == "$inputs" ]]; then
  exit 0
fi

rm -rf "$ctx" && mkdir -p "$ctx/debs/partial" "$ctx/state"
cp "$here/Dockerfile" "$here/prometheus.yml" "$ctx/"
codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
engine_arch=$(docker info -f '{{.Architecture}}')
host_arch=$(dpkg --print-architecture 2>/dev/null || true)
case $engine_arch in x86_64) engine_arch=amd64 ;; aarch64) engine_arch=arm64 ;; esac
if [[ $codename == bookworm && $host_arch == "$engine_arch" ]] && command -v apt-get >/dev/null; then
  say "Downloading Prometheus from Debian (about 22 MB, for make up OBSERVE=1)..."
  docker run --rm "$base" cat /var/lib/dpkg/status >"$ctx/state/status"
  # Its own status and cache: nothing of the host's apt is written, so no root needed.
  if ! apt-get install --download-only --no-install-recommends -y -qq \
    -o Dir::State::status="$ctx/state/status" -o Dir::Cache::archives="$ctx/debs" \
    -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= -o Debug::NoLocking=1 \
    prometheus >/dev/null; then
    say "The download failed: the image build fetches Prometheus itself."
    rm -f "$ctx"/debs/*.deb
  fi
else
  say "This host is not Debian bookworm on the engine's CPU: the image build fetches Prometheus itself."
fi
rm -rf "$ctx/debs/partial" "$ctx/debs/lock"
say "Building $image..."
if ! out=$(docker build --quiet --label "lab.inputs=$inputs" -t "$image" "$ctx" 2>&1); then
  printf '%s\n' "$out"
  exit 1
fi
say "Prometheus image ready."
