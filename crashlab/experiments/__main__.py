"""``python -m crashlab.experiments NAME``: run a source document's experiment, and check it.

Each experiment narrates its steps, then checks every promise of the document
against the evidence (workflow histories, the bank's ledger, the worker's log)
and prints one PASS or FAIL line per claim. Exit code 0 when every claim held,
1 when any failed or an experiment could not run, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from crashlab.constants import AMOUNT, DEFAULT_PROJECT, SOURCE, TARGET
from crashlab.experiments import (
    bugfix,
    compensation,
    crash,
    link,
    partition,
    print_numbers,
    task_queue,
    versioning,
)
from crashlab.experiments.kit import Outcome, Say
from crashlab.stack import Stack

Options = dict[str, Any]


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    source: str  # where in the source documents it comes from
    run: Callable[..., Awaitable[Outcome]]
    add_arguments: Callable[[argparse.ArgumentParser], None]
    options: Callable[[argparse.Namespace], Options]
    quick: Options  # short durations, for `all --quick`


def _accounts(parser: argparse.ArgumentParser, amount: int = AMOUNT) -> None:
    parser.add_argument("--from", dest="source", default=SOURCE, metavar="ACCOUNT")
    parser.add_argument("--to", dest="target", default=TARGET, metavar="ACCOUNT")
    parser.add_argument("--amount", type=int, default=amount, help=f"dollars (default {amount})")


def _account_options(args: argparse.Namespace) -> Options:
    return {"source": args.source, "target": args.target, "amount": args.amount}


def _both(choice: str, all_: Sequence[str]) -> tuple[str, ...]:
    return tuple(all_) if choice == "both" else (choice,)


def _print_numbers_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pause", type=float, default=3.0, help="seconds between numbers (3)")
    p.add_argument(
        "--down", type=float, default=5.0, help="seconds no process runs the workflow (5)"
    )
    p.add_argument("--script-pause", type=float, default=0.3, help="the plain script's pause (0.3)")


def _crash_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--during", choices=("withdraw", "deposit", "both"), default="both")
    p.add_argument(
        "--latency-ms", type=int, default=3000, help="how long the bank holds the step (3000)"
    )
    _accounts(p)


def _bugfix_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--way",
        choices=("switch", "code", "both"),
        default="both",
        help="switch: a fault on the bank; code: the tutorial's edit of activities.py",
    )
    _accounts(p)


def _link_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--delay-ms", type=int, default=200, help="the slow link's delay each way")
    p.add_argument("--loss-seconds", type=float, default=10.0, help="how long every packet is lost")
    p.add_argument("--transfers", type=int, default=3, help="transfers per round (2 to 4)")


def _partition_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, default=30.0, help="how long each partition lasts")
    p.add_argument("--transfers", type=int, default=5, help="transfers in flight (2 to 8)")
    p.add_argument("--amount", type=int, default=10, help="dollars per transfer (10)")
    p.add_argument(
        "--way",
        choices=("pause", "disconnect", "both"),
        default="both",
        help="pause: freeze Temporal; disconnect: cut the bank off the network",
    )


def _task_queue_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, default=10.0, help="how long to watch it stall")
    p.add_argument("--typo", default=task_queue.TYPO, help=f"default {task_queue.TYPO}")
    _accounts(p)


def _versioning_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--transfers", type=int, default=2, help="transfers caught by the change (2)")


EXPERIMENTS = (
    Experiment(
        print_numbers.NAME,
        print_numbers.TITLE,
        "Instruqt module 1, steps 1 to 3",
        print_numbers.run,
        _print_numbers_args,
        lambda a: {
            "pause_seconds": a.pause,
            "down_seconds": a.down,
            "script_sleep": a.script_pause,
        },
        {"pause_seconds": 1.0, "down_seconds": 2.0, "script_sleep": 0.2},
    ),
    Experiment(
        crash.NAME,
        crash.TITLE,
        "money-transfer tutorial part 2, experiment 1 and its challenge",
        crash.run,
        _crash_args,
        lambda a: {
            "during": _both(a.during, crash.STEPS),
            "latency_ms": a.latency_ms,
            **_account_options(a),
        },
        {},
    ),
    Experiment(
        bugfix.NAME,
        bugfix.TITLE,
        "money-transfer tutorial part 2, experiment 2",
        bugfix.run,
        _bugfix_args,
        lambda a: {"ways": _both(a.way, bugfix.WAYS), **_account_options(a)},
        {},
    ),
    Experiment(
        compensation.NAME,
        compensation.TITLE,
        "money-transfer tutorial part 2, 'Mission: Compensating Transactions'",
        compensation.run,
        _accounts,
        _account_options,
        {},
    ),
    Experiment(
        partition.NAME,
        partition.TITLE,
        "money-transfer tutorial part 2, 'Mission: Network Partition Simulation'",
        partition.run,
        _partition_args,
        lambda a: {
            "seconds_down": a.seconds,
            "transfers": a.transfers,
            "amount": a.amount,
            "ways": _both(a.way, partition.WAYS),
        },
        {"seconds_down": 5.0},
    ),
    Experiment(
        link.NAME,
        link.TITLE,
        "money-transfer tutorial part 2, its partition mission, one link at a time",
        link.run,
        _link_args,
        lambda a: {"delay_ms": a.delay_ms, "transfers": a.transfers},
        {},
    ),
    Experiment(
        task_queue.NAME,
        task_queue.TITLE,
        "money-transfer tutorial part 2, knowledge check on the task queue name",
        task_queue.run,
        _task_queue_args,
        lambda a: {"seconds_stalled": a.seconds, "typo": a.typo, **_account_options(a)},
        {"seconds_stalled": 3.0},
    ),
    Experiment(
        versioning.NAME,
        versioning.TITLE,
        "beyond the tutorial: the workflow's own code changed while transfers run",
        versioning.run,
        _versioning_args,
        lambda a: {"transfers": a.transfers},
        {},
    ),
)
BY_NAME = {e.name: e for e in EXPERIMENTS}


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--project",
        default=DEFAULT_PROJECT,
        help=f"the lab's Compose project (default {DEFAULT_PROJECT}, the one `make up` starts)",
    )
    parser = argparse.ArgumentParser(
        prog="python -m crashlab.experiments",
        description=(
            "Run the source documents' experiments on the running lab: each one narrates "
            "its steps, then checks every promise against the workflow history and the "
            "bank's ledger. Start the lab first with `make up`."
        ),
        epilog="Exit code: 0 every claim held, 1 a claim failed or an experiment could not run.",
    )
    names = parser.add_subparsers(dest="name", required=True, metavar="NAME")
    for e in EXPERIMENTS:
        sub = names.add_parser(
            e.name, parents=[common], help=e.title, description=f"{e.title}. From: {e.source}."
        )
        e.add_arguments(sub)
    every = names.add_parser(
        "all",
        parents=[common],
        help="every experiment, in order",
        description="Every experiment in order, with its default options.",
    )
    every.add_argument(
        "--quick",
        action="store_true",
        help="short pauses and partitions: about 2.5 minutes instead of 4",
    )
    names.add_parser("list", help="list the experiments")
    return parser


async def run_all(
    stack: Stack, plan: Sequence[tuple[Experiment, Options]], say: Say
) -> list[tuple[Experiment, Outcome | None, str]]:
    """Runs each experiment; an experiment that cannot finish is reported, and the next runs."""
    results: list[tuple[Experiment, Outcome | None, str]] = []
    for experiment, options in plan:
        say("")
        say(f"=== {experiment.name}: {experiment.title} ===")
        say(f"    (from the {experiment.source})")
        try:
            outcome = await experiment.run(stack, say, **options)
        except Exception as err:  # report it and go on: the next experiment may still run
            message = str(err) or type(err).__name__
            say("")
            say(f"FAIL: {experiment.name} could not finish: {message}")
            results.append((experiment, None, message))
            continue
        held = sum(c.passed for c in outcome.checks)
        say("")
        say(
            f"{'PASS' if outcome.ok else 'FAIL'}: {experiment.name}: "
            f"{held} of {len(outcome.checks)} claims held"
        )
        results.append((experiment, outcome, ""))
    return results


def summary(results: Sequence[tuple[Experiment, Outcome | None, str]]) -> list[str]:
    lines = ["", "Summary"]
    width = max(len(e.name) for e, _, _ in results)
    for experiment, outcome, error in results:
        if outcome is None:
            lines.append(f"  FAIL  {experiment.name:<{width}}  could not finish: {error}")
            continue
        held = sum(c.passed for c in outcome.checks)
        mark = "PASS" if outcome.ok else "FAIL"
        lines.append(
            f"  {mark}  {experiment.name:<{width}}  {held} of {len(outcome.checks)} claims held"
        )
        lines.extend(f"          FAIL: {c.claim} ({c.evidence})" for c in outcome.failed)
    figures = [
        f"{e.name} {key} = {value:g}"
        for e, outcome, _ in results
        if outcome
        for key, value in outcome.figures.items()
    ]
    if figures:
        lines.append("Figures: " + "; ".join(figures))
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.name == "list":
        for e in EXPERIMENTS:
            print(f"{e.name:<14} {e.title}")
        return 0
    if args.name == "all":
        plan = [(e, dict(e.quick) if args.quick else {}) for e in EXPERIMENTS]
    else:
        experiment = BY_NAME[args.name]
        plan = [(experiment, experiment.options(args))]

    def say(line: str) -> None:
        print(line, flush=True)

    try:
        results = asyncio.run(run_all(Stack(project=args.project), plan, say))
    except KeyboardInterrupt:
        print("\nInterrupted. The lab was put back as it was (faults cleared, services up).")
        return 130
    for line in summary(results):
        say(line)
    return 0 if all(outcome and outcome.ok for _, outcome, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
