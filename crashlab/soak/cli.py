"""`python -m crashlab.soak`'s command line: options, the dry run, the lab to soak, the report."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import random
import sys
from collections.abc import Sequence
from pathlib import Path

from crashlab import BUILD_DIR
from crashlab.constants import DEFAULT_PROJECT
from crashlab.reports import soak as reports
from crashlab.soak.clock import Say
from crashlab.soak.plan import KIND_HELP, SoakConfig, SoakError, parse_kinds
from crashlab.soak.records import SoakResult
from crashlab.soak.report import render, write_json
from crashlab.soak.run import soak
from crashlab.soak.verdict import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK, exit_code
from crashlab.stack import Stack

PROG = "python -m crashlab.soak"
DEFAULT_JSON = BUILD_DIR / "soak.json"
# --own-lab never runs on the learner's project (it deletes its volumes afterwards).
OWN_LAB_PROJECT = "crashlab-soak-lab"


# --- the command line --------------------------------------------------------------------


def _range(text: str) -> tuple[float, float]:
    try:
        low, _, high = text.partition(":")
        pair = (float(low), float(high or low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give MIN:MAX in seconds, e.g. 2:6") from None
    if not 0 <= pair[0] <= pair[1]:
        raise argparse.ArgumentTypeError(f"{text!r}: need 0 <= MIN <= MAX")
    return pair


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a share from 0 to 1")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a whole number from 1")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description=importlib.import_module("crashlab.soak").__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Fault kinds:\n"
        + "\n".join(f"  {kind:<14} {text}" for kind, text in KIND_HELP.items()),
    )
    p.add_argument(
        "--project",
        default=None,
        help=f"the Compose project to soak (default {DEFAULT_PROJECT}, the one `make up` "
        f"starts; with --own-lab, {OWN_LAB_PROJECT})",
    )
    p.add_argument(
        "--own-lab",
        action="store_true",
        help="start a lab of its own on random ports and delete it afterwards",
    )
    p.add_argument("--transfers", type=_positive, default=300, help="how many (default 300)")
    p.add_argument(
        "--concurrency", type=_positive, default=20, help="transfers in flight at most (20)"
    )
    p.add_argument("--seed", type=int, default=None, help="the schedule's seed (default: random)")
    p.add_argument(
        "--workers", type=_positive, default=2, help="worker containers during the soak (2)"
    )
    p.add_argument(
        "--faults",
        default="all",
        help="comma list of fault kinds (below), all (default) or none",
    )
    p.add_argument(
        "--fault-count",
        type=int,
        default=None,
        help="how many faults (default: transfers / 10, at least one of each kind)",
    )
    p.add_argument("--hold", type=_range, default=(2.0, 6.0), help="MIN:MAX seconds a fault lasts")
    p.add_argument("--gap", type=_range, default=(3.0, 8.0), help="MIN:MAX seconds between faults")
    p.add_argument(
        "--failing",
        type=_share,
        default=0.1,
        help="share of transfers that must fail: unknown target, unknown source, too much (0.1)",
    )
    p.add_argument(
        "--one-attempt",
        type=_share,
        default=0.2,
        help="share of normal transfers with max_attempts=1 (0.2): one try, so a lost answer "
        "makes the workflow settle the step with the bank before it refunds or gives up",
    )
    p.add_argument(
        "--duration",
        type=float,
        default=3600.0,
        help="cap in seconds on the faults phase; then no new faults or transfers (3600)",
    )
    p.add_argument(
        "--settle",
        type=float,
        default=180.0,
        help="seconds the transfers may take to end once the faults stop (180)",
    )
    p.add_argument(
        "--json", type=Path, default=DEFAULT_JSON, help="the report as JSON (build/soak.json)"
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the fault schedule for these options and exit; touches nothing",
    )
    return p


def config_from(args: argparse.Namespace) -> SoakConfig:
    return SoakConfig(
        transfers=args.transfers,
        concurrency=args.concurrency,
        seed=args.seed,
        workers=args.workers,
        kinds=parse_kinds(args.faults),
        fault_count=args.fault_count,
        hold=args.hold,
        gap=args.gap,
        failing=args.failing,
        one_attempt=args.one_attempt,
        duration=args.duration,
        settle=args.settle,
    )


def main(argv: Sequence[str] | None = None, say: Say = print) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.seed is None:
        args.seed = random.randrange(1_000_000)
    try:
        config = config_from(args)
    except ValueError as err:
        p.error(str(err))
    if args.fault_count is not None and args.fault_count < 0:
        p.error("--fault-count cannot be negative")
    project = args.project or (OWN_LAB_PROJECT if args.own_lab else DEFAULT_PROJECT)
    if args.own_lab and project == DEFAULT_PROJECT:
        p.error(f"--own-lab deletes its lab afterwards: it will not use {DEFAULT_PROJECT!r}")
    if args.dry_run:
        schedule = config.schedule()
        say(
            f"seed {config.seed}: {len(schedule.faults)} faults over {schedule.length:g} s "
            "of planned time"
        )
        for spec in schedule.faults:
            say(f"  +{spec.at:6.1f} s  {spec.number:>3}. {spec.kind:<14} {spec.describe()}")
        return EXIT_OK
    say(f"Seed {config.seed}: the same options with --seed {config.seed} repeat this schedule.")
    try:
        result = asyncio.run(_run(project, args.own_lab, config, say))
    except SoakError as err:
        say(f"Cannot soak: {err}")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        say("Interrupted.")
        return EXIT_INTERRUPTED
    data = write_json(result, args.json)
    say("")
    for line in render(data):
        say(line)
    page, junit = reports.write(result, args.json)
    say(f"\nWritten to {args.json}, {page} (open it in a browser) and {junit} (JUnit, for CI)")
    return exit_code(result)


async def _run(project: str, own_lab: bool, config: SoakConfig, say: Say) -> SoakResult:
    if not own_lab:
        return await soak(Stack(project=project), config, say)
    from crashlab.testing import Lab  # testcontainers: only needed here

    lab = Lab(project=project)
    say(f"Starting a lab of its own (project {project}, random ports)...")
    await asyncio.to_thread(lab.__enter__)
    try:
        return await soak(lab, config, say, scale_back=False)
    finally:
        say(f"Removing project {project} and its volumes...")
        await asyncio.to_thread(lab.__exit__, None, None, None)


if __name__ == "__main__":
    sys.exit(main())
