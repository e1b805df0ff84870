#!/usr/bin/env bash
# Builds crashlab/link:$LAB_IMAGE_TAG, the tool behind `make link` (compose/link/Dockerfile).
#
# Debian's iproute2 and iptables are downloaded on the host when it runs Debian bookworm,
# as the base image does: apt resolves them against the base image's own package list
# (its dpkg status), so exactly the missing packages come down and the build needs no
# network. On any other host the build installs them from Debian's archive itself. The
# image is labelled with a hash of its inputs and rebuilt only when they change.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
image=crashlab/link:${LAB_IMAGE_TAG:-latest}
base=${BASE_IMAGE:-crashlab/base:bookworm}
ctx=${LAB_BUILD_DIR:-$root/build}/link

say() { printf '    %s\n' "$*"; }

base_id=$(docker image inspect -f '{{.Id}}' "$base")
inputs=$(cat "$here/Dockerfile" "$here/linkfault.py" <(echo "$base_id") | sha256sum | cut -c1-16)
have=$(docker image inspect -f '{{index .Config.Labels "lab.inputs"}}' "$image" 2>/dev/null || true)
if [[ $have == "$inputs" ]]; then
  exit 0
fi

rm -rf "$ctx" && mkdir -p "$ctx/debs/partial" "$ctx/state"
cp "$here/Dockerfile" "$here/linkfault.py" "$ctx/"
codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
engine_arch=$(docker info -f '{{.Architecture}}')
host_arch=$(dpkg --print-architecture 2>/dev/null || true)
case $engine_arch in x86_64) engine_arch=amd64 ;; aarch64) engine_arch=arm64 ;; esac
if [[ $codename == bookworm && $host_arch == "$engine_arch" ]] && command -v apt-get >/dev/null; then
  say "Downloading iproute2 and iptables from Debian (about 3 MB, for the link faults)..."
  docker run --rm "$base" cat /var/lib/dpkg/status >"$ctx/state/status"
  # Its own status and cache: nothing of the host's apt is written, so no root needed.
  if ! apt-get install --download-only --no-install-recommends -y -qq \
    -o Dir::State::status="$ctx/state/status" -o Dir::Cache::archives="$ctx/debs" \
    -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= -o Debug::NoLocking=1 \
    iproute2 iptables >/dev/null; then
    say "The download failed: the image build fetches iproute2 and iptables itself."
    rm -f "$ctx"/debs/*.deb
  fi
else
  say "This host is not Debian bookworm on the engine's CPU: the image build fetches iproute2 and iptables itself."
fi
rm -rf "$ctx/debs/partial" "$ctx/debs/lock"
say "Building $image..."
if ! out=$(docker build --quiet --label "lab.inputs=$inputs" -t "$image" "$ctx" 2>&1); then
  printf '%s\n' "$out"
  exit 1
fi
say "Link-fault image ready."
