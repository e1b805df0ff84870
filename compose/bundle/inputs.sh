#!/usr/bin/env bash
# Prints a hash of everything the lab's images are built from: the services'
# code, Dockerfiles and requirements, the runtime's Dockerfile. A bundle
# records it, so `make up` can tell that its images still match the source.
set -euo pipefail
cd "$(dirname "$0")/../.."
# Caches and editor leftovers are not inputs: a learner's run must not force a build.
find services compose/runtime -type f \
  ! -path '*/__pycache__/*' ! -name '*.pyc' ! -name '*~' ! -name '.*.sw?' -print0 |
  LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16
