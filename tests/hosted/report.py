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
            f"(make up {bundle['make_up_s']:.0f} s from unpacked to healthy); "
            f"setup again {bundle['second_setup_s']:.0f} s; slowest check "
            f"{bundle['slowest_check_s']:.0f} s.",
        ]
    if clone := figures.get("clone"):
        out.append(
            f"From a clone, every image built in the VM: track playable in "
            f"{clone['track_setup_s']:.0f} s; setup again {clone['second_setup_s']:.0f} s; "
            f"slowest check {clone['slowest_check_s']:.0f} s."
        )
    return out or ["No figures: neither way of the fresh-VM test passed."]


if __name__ == "__main__":
    known = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    print("\n".join(lines(known)))
