"""The host tools and the services pin the packages they share to one version.

The host tools import the bank's client and the worker's contract from
services/, so a version that differs between crashlab/requirements.txt and
services/requirements.txt would test one thing and ship another.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def pins(path: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            name, _, version = line.partition("==")
            assert version, f"{path.name}: {line} is not pinned to one version"
            found[name.lower().replace("_", "-")] = version
    return found


def test_shared_packages_have_one_version() -> None:
    host = pins(ROOT / "crashlab" / "requirements.txt")
    services = pins(ROOT / "services" / "requirements.txt")
    differ = {
        n: (host[n], services[n]) for n in host.keys() & services.keys() if host[n] != services[n]
    }
    assert not differ, f"crashlab/ and services/ pin these differently: {differ}"


def test_every_requirement_is_pinned() -> None:
    for path in [ROOT / "crashlab/requirements.txt", ROOT / "tests/requirements.txt"]:
        pins(path)
