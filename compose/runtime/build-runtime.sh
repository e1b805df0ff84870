#!/usr/bin/env bash
# Builds crashlab/runtime, the Python virtualenv every lab service runs in.
#
# The wheels are downloaded on the host, for the Docker engine's CPU, so the
# image build needs no network: containers here may not reach PyPI, and a lab
# VM may have no registry. The image is labelled with a hash of its inputs and
# rebuilt only when they change.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
python=${LAB_PYTHON:-$root/.venv/bin/python}
image=crashlab/runtime:latest
reqs=$root/services/requirements.txt
ctx=${LAB_BUILD_DIR:-$root/build}/runtime

say() { printf '    %s\n' "$*"; }

inputs=$(cat "$reqs" "$here/Dockerfile" | sha256sum | cut -c1-16)
have=$(docker image inspect -f '{{index .Config.Labels "lab.inputs"}}' "$image" 2>/dev/null || true)
if [[ $have == "$inputs" ]]; then
  exit 0
fi

arch=$(docker info -f '{{.Architecture}}')
case $arch in
  x86_64 | amd64) arch=x86_64 ;;
  aarch64 | arm64) arch=aarch64 ;;
  *) say "The Docker engine runs on $arch; the lab's wheels exist for x86_64 and aarch64 only."; exit 1 ;;
esac

mkdir -p "$ctx/wheels"
cp "$reqs" "$ctx/requirements.txt"
say "Downloading the services' Python packages for linux/$arch (about 60 MB, cached in build/)..."
"$python" -m pip download --quiet --dest "$ctx/wheels" --only-binary=:all: \
  --implementation cp --python-version 3.11 \
  --platform "manylinux2014_$arch" --platform "manylinux_2_17_$arch" --platform "manylinux_2_28_$arch" \
  -r "$ctx/requirements.txt"
say "Building $image..."
# Quiet unless it fails: without buildx the CLI warns about its legacy builder,
# which builds this two-stage file just as well.
if ! out=$(docker build --quiet --label "lab.inputs=$inputs" -t "$image" -f "$here/Dockerfile" "$ctx" 2>&1); then
  printf '%s\n' "$out"
  exit 1
fi
say "Runtime image ready."
