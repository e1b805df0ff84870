"""``python -m crashlab.replay``: can the worker's code, as it is now, still run these workflows?

A worker that restarts with changed workflow code replays each open workflow's
history through the new code. If the code now asks for something else at some
point (another activity, a timer, a different order), the replay no longer
matches the history: a non-determinism error, and the workflow is stuck until
the change is made safe (``workflow.patched``) or undone. This replays the
histories first, with Temporal's Replayer and no server, so it says so before a
deploy rather than after:

    python -m crashlab.replay                   every workflow in the lab (make replay)
    python -m crashlab.replay tests/histories   every saved history in a folder
    python -m crashlab.replay --workflow-id ID  only these workflows of the lab
    python -m crashlab.replay --save ID... DIR  keep these workflows' histories in DIR

Exit codes: 0 every history replays, 1 at least one would fail, 2 bad input or
Temporal cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from crashlab.stack import DEFAULT_PROJECT, Stack, StackError
from worker.config import exit_now, quiet_runtime
from worker.print_numbers import PrintNumbersWorkflow
from worker.shared import MONEY_TRANSFER_WORKFLOW, PRINT_NUMBERS_WORKFLOW
from worker.workflows import MoneyTransfer

EXIT_OK = 0
EXIT_WOULD_FAIL = 1
EXIT_BAD_INPUT = 2

# Every workflow the lab runs, as the code in services/ defines it now.
WORKFLOWS = [MoneyTransfer, PrintNumbersWorkflow]
WORKFLOW_NAMES = [MONEY_TRANSFER_WORKFLOW, PRINT_NUMBERS_WORKFLOW]
WORKFLOW_TASK_STARTED = EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED
WORKFLOW_TASK_COMPLETED = EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
# How many of the lab's most recent workflows a replay of the lab looks at.
DEFAULT_LIMIT = 500


@dataclass
class Verdict:
    workflow_id: str
    workflow_type: str
    failure: Exception | None
    # For a non-determinism error: the first event of the history the code no
    # longer produces, in words ("event 5 ActivityTaskScheduled (withdraw)").
    mismatch: str | None = None

    @property
    def nondeterministic(self) -> bool:
        return isinstance(self.failure, NondeterminismError)

    def lines(self) -> list[str]:
        if self.failure is None:
            return [f"ok    {self.workflow_id} ({self.workflow_type})"]
        reason = core_messages(str(self.failure))
        if self.nondeterministic:
            return [
                f"FAIL  {self.workflow_id} ({self.workflow_type}): non-determinism error: "
                "the code no longer does what its history recorded.",
                f"      first mismatching event: {self.mismatch or 'unknown'}",
                f"      the replayer said: {reason}",
            ]
        return [
            f"FAIL  {self.workflow_id} ({self.workflow_type}): the code fails on this "
            f"history (not a non-determinism error): {reason}"
        ]


def core_messages(text: str) -> str:
    """The messages of a failure the SDK core reports in its own debug format
    (``Failure { message: "...", cause: Some(Failure { message: "..." ...``), outer first."""
    messages = re.findall(r'message: "((?:[^"\\]|\\.)*)"', text)
    messages = [re.sub(r"^\[TMPRL\d+\]\s*", "", m) for m in messages] or [text]
    return ": ".join(messages)


def describe(event: HistoryEvent) -> str:
    """``event 5 ActivityTaskScheduled (withdraw)``, as the Temporal UI names events."""
    raw = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
    name = "".join(part.capitalize() for part in raw.split("_"))
    detail = ""
    if event.HasField("activity_task_scheduled_event_attributes"):
        detail = f" ({event.activity_task_scheduled_event_attributes.activity_type.name})"
    elif event.HasField("marker_recorded_event_attributes"):
        detail = f" ({event.marker_recorded_event_attributes.marker_name})"
    return f"event {event.event_id} {name}{detail}"


async def first_mismatch(replayer: Replayer, history: WorkflowHistory) -> HistoryEvent | None:
    """The first event the code no longer produces, for a history that fails to replay.

    The replayer's message names what differs but not where. Replaying the history
    cut after each WorkflowTaskStarted (the points where a worker takes over)
    finds the first workflow task whose commands no longer match: the mismatch is
    the first event its WorkflowTaskCompleted led to. (A history cut elsewhere can
    leave the replayer waiting for events that never come.)
    """
    events = list(history.events)
    cuts = [i + 1 for i, e in enumerate(events) if e.event_type == WORKFLOW_TASK_STARTED]
    last_good = 0
    for end in [*cuts, len(events)]:
        prefix = WorkflowHistory(history.workflow_id, events[:end])
        result = await replayer.replay_workflow(prefix, raise_on_replay_failure=False)
        if isinstance(result.replay_failure, NondeterminismError):
            after = events[last_good:end]
            completed = [i for i, e in enumerate(after) if e.event_type == WORKFLOW_TASK_COMPLETED]
            if completed and completed[0] + 1 < len(after):
                return after[completed[0] + 1]
            return after[-1] if after else None
        last_good = end
    return None


def workflow_type(history: WorkflowHistory) -> str:
    first = history.events[0] if history.events else None
    if first is None or not first.HasField("workflow_execution_started_event_attributes"):
        return "unknown type"
    return first.workflow_execution_started_event_attributes.workflow_type.name


async def replay(
    histories: Sequence[WorkflowHistory], workflows: Sequence[type] = WORKFLOWS
) -> list[Verdict]:
    """Each history through the workflows' code (the lab's, as it is now), in order."""
    # The verdicts say what failed; the SDK's own warnings and tracebacks for the same
    # failures would bury them.
    logging.getLogger("temporalio").setLevel(logging.CRITICAL)
    replayer = Replayer(workflows=workflows, runtime=quiet_runtime())
    verdicts = []
    for history in histories:
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        verdict = Verdict(history.workflow_id, workflow_type(history), result.replay_failure)
        if verdict.nondeterministic:
            event = await first_mismatch(replayer, history)
            verdict.mismatch = describe(event) if event is not None else None
        verdicts.append(verdict)
    return verdicts


def load_folder(folder: Path) -> list[WorkflowHistory]:
    """Every ``*.json`` history in ``folder`` (as the Temporal UI and CLI export them)."""
    histories = []
    for path in sorted(folder.glob("*.json")):
        histories.append(WorkflowHistory.from_json(path.stem, path.read_text()))
    return histories


async def lab_histories(client: Client, limit: int) -> list[WorkflowHistory]:
    """The lab's workflows of the types it runs, most recent first (open ones included)."""
    names = " or ".join(f"WorkflowType = '{name}'" for name in WORKFLOW_NAMES)
    return [h async for h in client.list_workflows(names, limit=limit).map_histories()]


async def save(client: Client, workflow_ids: Sequence[str], folder: Path) -> list[Path]:
    saved = []
    for workflow_id in workflow_ids:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        path = folder / f"{workflow_id}.json"
        path.write_text(json.dumps(json.loads(history.to_json()), indent=1) + "\n")
        saved.append(path)
    return saved


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m crashlab.replay",
        description=(
            "Replay workflow histories against the worker's current code (services/worker) "
            "and name every one that would fail, before a worker runs the code."
        ),
    )
    parser.add_argument(
        "folder",
        nargs="?",
        type=Path,
        help="replay the *.json histories in this folder instead of the lab's workflows",
    )
    parser.add_argument(
        "--project", default=DEFAULT_PROJECT, help=f"the lab's Compose project ({DEFAULT_PROJECT})"
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        help=f"at most this many of the lab's latest workflows ({DEFAULT_LIMIT})",
    )
    parser.add_argument(
        "--workflow-id",
        dest="workflow_ids",
        metavar="ID",
        action="append",
        help="only this workflow of the lab (repeat for more)",
    )
    parser.add_argument(
        "--save",
        metavar="ID",
        nargs="+",
        help="instead: save these workflows' histories as FOLDER/<ID>.json",
    )
    return parser


async def run(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else EXIT_BAD_INPUT
    if args.save and args.folder is None:
        print("--save needs the folder to save into: --save ID ... FOLDER", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.folder is not None and not args.save:
        if not args.folder.is_dir():
            print(f"{args.folder} is not a folder of saved histories.", file=sys.stderr)
            return EXIT_BAD_INPUT
        histories = load_folder(args.folder)
        where = f"the {len(histories)} histories in {args.folder}"
    else:
        try:
            client = await Stack(project=args.project).temporal()
        except (StackError, RuntimeError) as err:
            print(
                f"Cannot reach the lab's Temporal ({err}). Is the lab up? (`make up`)",
                file=sys.stderr,
            )
            return EXIT_BAD_INPUT
        if args.save:
            args.folder.mkdir(parents=True, exist_ok=True)
            for path in await save(client, args.save, args.folder):
                print(f"Saved {path}")
            return EXIT_OK
        if args.workflow_ids:
            histories = [
                await client.get_workflow_handle(i).fetch_history() for i in args.workflow_ids
            ]
            where = f"{len(histories)} of the lab's workflows"
        else:
            histories = await lab_histories(client, args.limit)
            where = f"the lab's {len(histories)} latest workflows"
    if not histories:
        print(f"Nothing to replay: {where}.")
        return EXIT_OK
    print(f"Replaying {where} against the code in services/worker...")
    verdicts = await replay(histories)
    for verdict in verdicts:
        for line in verdict.lines():
            print(line)
    failed = [v for v in verdicts if v.failure is not None]
    if not failed:
        print(f"Every history replays: this code can take over all {len(verdicts)}.")
        return EXIT_OK
    changed = sum(v.nondeterministic for v in failed)
    if changed:
        print(
            f"{changed} of {len(verdicts)} would fail with a non-determinism error: a worker "
            "running this code gets stuck on each that is still open. Put the change behind "
            "workflow.patched(...) (old histories keep the old path, new workflows take the "
            "new one), or undo it."
        )
    if len(failed) > changed:
        print(
            f"{len(failed) - changed} of {len(verdicts)} fail for another reason: the code "
            "raises on their history (a bug, or they ran on other code, such as the "
            "tutorial's own worker)."
        )
    return EXIT_WOULD_FAIL


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return asyncio.run(run(argv))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    exit_now(main())
