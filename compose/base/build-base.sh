#!/usr/bin/env bash
# Makes the image every lab image starts from: Debian bookworm with Python 3.11.
#
# Where a registry answers, that is the official python:3.11-slim-bookworm.
# Where none does (an air-gapped lab VM, CI behind a package-only proxy), it is
# built here from Debian's packages with debootstrap and loaded with
# `docker import`, so `make up` works in both worlds with no flag.
set -euo pipefail

image=${BASE_IMAGE:-crashlab/base:bookworm}
upstream=${UPSTREAM_BASE_IMAGE:-python:3.11-slim-bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
here=$(cd "$(dirname "$0")" && pwd)
work=${LAB_BUILD_DIR:-$here/../../build}

say() { printf '    %s\n' "$*"; }

if docker image inspect "$image" >/dev/null 2>&1; then
  exit 0
fi

if docker pull -q "$upstream" >/dev/null 2>&1; then
  docker tag "$upstream" "$image"
  say "Base image: $upstream, pulled from the registry."
  exit 0
fi

say "No container registry answers: building the base image from Debian packages."
say "This happens once; it downloads about 40 MB and takes about a minute."
if [[ $(uname -s) != Linux ]]; then
  say "Building it needs a Linux host (debootstrap). Docker Desktop users normally have a"
  say "registry: check that 'docker pull $upstream' works, then run 'make up' again."
  exit 1
fi
sudo=""
if [[ $(id -u) != 0 ]]; then
  command -v sudo >/dev/null || { say "debootstrap needs root, and sudo is missing."; exit 1; }
  sudo=sudo
  say "debootstrap needs root: sudo may ask for your password."
fi
if ! command -v debootstrap >/dev/null; then
  say "Installing debootstrap with apt-get..."
  $sudo apt-get update -qq >/dev/null
  $sudo apt-get install -y -qq debootstrap >/dev/null
fi

mkdir -p "$work"
rootfs=$(mktemp -d "$work/rootfs.XXXXXX")
log=$work/debootstrap.log
trap '$sudo rm -rf "$rootfs"' EXIT
# Show the phases, not the hundreds of package lines (they are in the log).
if ! $sudo debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$rootfs" "$mirror" 2>&1 | tee "$log" |
    grep --line-buffered -E '^I: (Retrieving Release|Resolving|Installing core|Unpacking the base|Configuring the base|Base system)' |
    sed -u 's/^I: /      /'; then
  say "debootstrap failed; its log is in $log"
  exit 1
fi
# Documentation, man pages, locales and package lists are 100 MB nobody in a
# container reads.
$sudo rm -rf "$rootfs"/usr/share/{doc,man,info,locale}/* "$rootfs"/var/lib/apt/lists/* \
  "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/log/*.log
$sudo tar -C "$rootfs" -c . | docker import \
  -c 'ENV LANG=C.UTF-8' -c 'CMD ["/bin/bash"]' \
  -m "Debian bookworm minbase with Python 3, for the crash-proof lab" - "$image" >/dev/null
say "Base image $image built from Debian packages."
