"""Prints what `make test-hosted` measured (build/test-hosted.json), for the README."""

from __future__ import annotations

import json
from pathlib import Path

FIGURES = Path(__file__).resolve().parents[2] / "build" / "test-hosted.json"


def lines(figures: dict[str, dict[str, float]]) -> list[str]:
    out = []
    if bundle := figures.get("bundle"):
        out += [
            f"Bundle: {bundle['bundle_mb']:.0f} MB.",
            f"From the bundle, no network: track playable in {bundle['track_setup_s']:.0f} s "
            f"(make up {bundle['make_up_s']:.0f} s from unpacked to healthy){rest(bundle)}.",
        ]
    if clone := figures.get("clone"):
        out.append(
            f"From a clone, every image built in the VM: track playable in "
            f"{clone['track_setup_s']:.0f} s{rest(clone)}."
        )
    return out or ["No figures: the fresh-VM test got no track set up."]


def rest(way: dict[str, float]) -> str:
    """What the figures of a way say beyond its first setup (absent where a challenge failed)."""
    said = []
    if "second_setup_s" in way:
        said.append(f"setup again {way['second_setup_s']:.0f} s")
    if "slowest_check_s" in way:
        said.append(f"slowest check {way['slowest_check_s']:.0f} s")
    if "rebuild_after_edit_s" in way:
        said.append(f"make up after an edit to the services {way['rebuild_after_edit_s']:.0f} s")
    return "".join(f"; {part}" for part in said)


if __name__ == "__main__":
    known = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    print("\n".join(lines(known)))
