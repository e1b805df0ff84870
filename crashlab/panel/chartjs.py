"""Chart.js for the dashboard, from Debian's libjs-chart.js package, kept in build/.

`python -m crashlab.panel.chartjs` (run by `make panel`) downloads the package once from
Debian's archive (DEBIAN_MIRROR), checks it against the hash pinned here, and keeps
chart.min.js; the panel then serves it itself, so the dashboard fetches nothing from
anywhere but the panel.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tarfile
import urllib.request
from pathlib import Path

from crashlab import BUILD_DIR

PACKAGE = "pool/main/n/node-chart.js/libjs-chart.js_3.9.1+~0.2.1-2_all.deb"
SHA256 = "16456ab02ad662f480ae3f4d0769a069f69133d0a957821925bbdd648ae5390a"
MEMBER = "./usr/share/javascript/chart.js/chart.min.js"
CHART_JS = BUILD_DIR / "chart.js" / "chart.min.js"


def ar_members(data: bytes) -> dict[str, bytes]:
    """The files in an ar archive (a .deb is one): name -> contents."""
    if not data.startswith(b"!<arch>\n"):
        raise ValueError("not an ar archive")
    members, at = {}, 8
    while at + 60 <= len(data):
        header = data[at : at + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        members[name] = data[at + 60 : at + 60 + size]
        at += 60 + size + (size % 2)  # members are aligned on even offsets
    return members


def extract(deb: bytes) -> bytes:
    """chart.min.js out of the package."""
    payload = next(v for k, v in ar_members(deb).items() if k.startswith("data.tar"))
    with tarfile.open(fileobj=io.BytesIO(payload)) as tar:
        member = tar.extractfile(MEMBER)
        if member is None:
            raise ValueError(f"{MEMBER} is not in the package")
        return member.read()


def ensure(path: Path = CHART_JS) -> Path:
    """chart.min.js in build/, downloaded once; raises OSError or ValueError if it cannot."""
    if path.exists():
        return path
    mirror = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian").rstrip("/")
    with urllib.request.urlopen(f"{mirror}/{PACKAGE}", timeout=60) as answer:
        deb = answer.read()
    if hashlib.sha256(deb).hexdigest() != SHA256:
        raise ValueError(f"{mirror}/{PACKAGE} is not the package this lab pins (sha256)")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(extract(deb))
    return path


def main() -> int:
    if CHART_JS.exists():
        return 0
    print("    Downloading Chart.js from Debian (libjs-chart.js, 170 kB, once)...", flush=True)
    try:
        ensure()
    except (OSError, ValueError) as err:
        print(f"Could not get Chart.js: {err}. The dashboard needs it; the panel works without.")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
