#!/usr/bin/env bash
# In an unpacked bundle (make bundle), puts the bundle's images into the Docker
# engine, so that `make up` starts the lab without building or downloading.
#
# Exit 0: the bundle's images are loaded and match the source; nothing to build.
# Exit 3: build the images as usual. There is no bundle here (a clone), or the
#         source changed since the bundle was made; then the bundle's base and
#         runtime images are loaded first, so the build needs no network.
# --load-only: load what is missing and exit 0 (also without a bundle); `make`
# runs it beside the .venv install, then this script again for the verdict.
set -euo pipefail
load_only=false
[[ ${1:-} == --load-only ]] && load_only=true
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
manifest=$root/bundle/images.txt
archive=$root/bundle/images.tar
tag=${LAB_IMAGE_TAG:-latest}

say() { printf '    %s\n' "$*"; }

if [[ ! -f $manifest ]]; then
  $load_only && exit 0
  exit 3
fi

# The manifest: "inputs <hash>", then "<image> <id>" lines; a service image's
# name has no tag, and gets LAB_IMAGE_TAG's here.
declare -A wanted=()
while read -r name value; do
  case $name in
    inputs) recorded=$value ;;
    *:*) wanted[$name]=$value ;;
    *) wanted[$name:$tag]=$value ;;
  esac
done <"$manifest"

# Each image the manifest names, tagged and with the bundle's id.
missing() {
  local ref id
  for ref in "${!wanted[@]}"; do
    id=$(docker image inspect -f '{{.Id}}' "$ref" 2>/dev/null || true)
    [[ $id == "${wanted[$ref]}" ]] || return 0
  done
  return 1
}

if missing; then
  size=$(du -h "$archive" | cut -f1)
  say "Loading the lab's images from the bundle ($size)..."
  started=$SECONDS
  docker load --quiet --input "$archive" >/dev/null
  for ref in "${!wanted[@]}"; do
    docker tag "${wanted[$ref]}" "$ref"
  done
  say "Images loaded in $((SECONDS - started)) s."
fi

$load_only && exit 0
if [[ $("$here/inputs.sh") != "${recorded:-}" ]]; then
  say "The services' source changed since the bundle was made: building the images"
  say "from it (the bundle's base and runtime images make that work offline)."
  exit 3
fi
