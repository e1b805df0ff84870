#!/usr/bin/env bash
# Builds the image of a fresh lab VM, as a hosted-lab platform would hand it
# over: Debian bookworm from its own packages with a Docker engine, Python,
# make, git and curl (what a cloud VM image with Docker has), and nothing of
# the lab: no images in its engine, no .venv, no copy of the repository.
#
# Prints the image's name. The name carries a hash of this script, so the
# image is built once and again only when the recipe changes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
packages=docker.io,iptables,python3,python3-venv,make,git,ca-certificates,curl,procps
image=crashlab-test/fresh-vm:$(sha256sum "$0" | cut -c1-12)

if docker image inspect "$image" >/dev/null 2>&1; then
  echo "$image"
  exit 0
fi

echo "    Building the fresh-VM image from Debian packages (once; about 2 minutes)..." >&2
command -v debootstrap >/dev/null || { echo "    debootstrap is needed (apt-get install debootstrap)." >&2; exit 1; }
mkdir -p "$root/build"
rootfs=$(mktemp -d "$root/build/vm-rootfs.XXXXXX")
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase --include="$packages" bookworm "$rootfs" "$mirror" \
  >"$root/build/vm-debootstrap.log" 2>&1 || {
  echo "    debootstrap failed; its log is in build/vm-debootstrap.log" >&2; exit 1; }
# As on a real VM, apt-get can refresh its lists; the downloaded lists and
# documentation are not part of a fresh image.
rm -rf "$rootfs"/usr/share/{doc,man,info,locale}/* "$rootfs"/var/lib/apt/lists/* \
  "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
tar -C "$rootfs" -c . | docker import -c 'ENV LANG=C.UTF-8' -c 'CMD ["/bin/bash"]' \
  -m "A fresh lab VM: Debian bookworm with Docker, Python, make, git" - "$image" >/dev/null
echo "$image"
