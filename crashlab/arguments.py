"""The levers' argument types, for people: each refuses a value with a message that says
what to give instead (argparse shows it after "error:"). The CLI and the catalogue's
levers (crashlab/levers.py) declare their options with them."""

from __future__ import annotations

import argparse
import math

from bank.faults import MAX_LATENCY_MS


def which(text: str) -> str:
    if text in ("all", "random") or (text.isdigit() and int(text) > 0):
        return text
    raise argparse.ArgumentTypeError(
        f"{text!r}: give all, random, or a container number such as 2 (from crashlab-worker-2)"
    )


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds: give 0 or more (0 holds until you undo it)"
        )
    return value


def rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= 1:  # NaN fails this too
        raise argparse.ArgumentTypeError(
            f"{text!r}: the rate is the chance a call is hit, a number in (0, 1]: "
            "1 for every call, 0.5 for about half"
        )
    return value


def milliseconds(text: str) -> int:
    if not text.isdigit() or int(text) > MAX_LATENCY_MS:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give a whole number of milliseconds from 0 to {MAX_LATENCY_MS}"
        )
    return int(text)


def percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 100:  # NaN fails this too
        raise argparse.ArgumentTypeError(f"{text!r}: give a percentage from 0 to 100, e.g. 5")
    return value


def kbit(text: str) -> int:
    if not text.isdigit() or int(text) < 8:
        raise argparse.ArgumentTypeError(f"{text!r}: give whole kbit/s, 8 or more, e.g. 256")
    return int(text)
