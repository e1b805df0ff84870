"""Module 1, "Exploring Crash-Proof": a plain script forgets where it was; a workflow does not.

First the plain script (exercises/module01/python_print.py), stopped after Step 3
and run again: it starts over. Then the same steps as PrintNumbersWorkflow: the
process that is its worker and starter (the module's run_workflow.py, or
`make print-numbers`) is killed after number 3 and run again, and the history
proves that each number ran exactly once and shows the gap while no worker ran.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from crashlab.experiments.kit import (
    ExperimentError,
    Narrator,
    Outcome,
    Say,
    cleanup,
    describe_event,
    event_name,
    largest_gap,
    prepare,
    records_named,
    seconds,
    short_id,
    status,
    status_name,
    wait_for,
)
from crashlab.stack import ROOT, Stack
from worker.shared import PRINT_NUMBERS_TASK_QUEUE_NAME

NAME = "print-numbers"
TITLE = "Module 1: crash-proof (a plain script, then a workflow, killed half-way)"
SCRIPT = ROOT / "exercises" / "module01" / "python_print.py"
ACTIVITY = "print_number"
# How long the history must stand still after the kill before the downtime counts:
# longer than the worker's 1 s sticky-queue timeout, after which Temporal writes
# its last events until a worker comes back.
QUIET = 1.5


async def run(
    stack: Stack,
    say: Say,
    *,
    pause_seconds: float = 3.0,
    down_seconds: float = 5.0,
    script_sleep: float = 0.3,
) -> Outcome:
    outcome = Outcome(NAME)
    n = Narrator(say, outcome)
    await prepare(stack, n)
    try:
        await _plain_script(n, script_sleep)
        await _workflow(stack, n, pause_seconds, down_seconds)
    finally:
        await cleanup(stack)  # the worker back up, whatever happened
    return outcome


# --- without Temporal ----------------------------------------------------------------------


async def _plain_script(n: Narrator, sleep: float) -> None:
    relative = SCRIPT.relative_to(ROOT)
    n.step(
        f"Without Temporal: run the plain script {relative} "
        "(the module's `uv run python_print.py`) and stop it with Ctrl+C after Step 3."
    )
    first = await _run_script(sleep, stop_after=3)
    n.note(f"It printed {', '.join(first)}, then Ctrl+C (SIGINT) stopped it.")
    n.step("Run the script again.")
    second = await _run_script(sleep, stop_after=None)
    n.note(f"It printed {', '.join(second)}.")
    steps = [f"Step {i}" for i in range(1, 11)]
    n.check(
        "the plain script starts over from Step 1 after it is stopped",
        first == steps[:3] and second == steps,
        f"first run: {_span(first)}; second run: {_span(second)}, so {_span(first)} ran twice",
    )


def _span(lines: list[str]) -> str:
    return f"{lines[0]} to {lines[-1]}" if lines else "nothing"


async def _run_script(sleep: float, *, stop_after: int | None) -> list[str]:
    """The script's output lines; with ``stop_after``, Ctrl+C after that many lines."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        env={**os.environ, "PRINT_SLEEP_SECONDS": str(sleep)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    printed: list[str] = []
    try:
        while stop_after is None or len(printed) < stop_after:
            line = await asyncio.wait_for(process.stdout.readline(), timeout=10 + 2 * sleep)
            if not line:
                break
            printed.append(line.decode().strip())
        if stop_after is not None:
            process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.wait(), timeout=10 + 10 * sleep)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return printed


# --- with Temporal -------------------------------------------------------------------------


async def _workflow(stack: Stack, n: Narrator, pause: float, down: float) -> None:
    client = await stack.temporal()
    workflow_id = f"print-numbers-{short_id()}"
    n.step(
        f"With Temporal: start PrintNumbersWorkflow as {workflow_id} on task queue "
        f"{PRINT_NUMBERS_TASK_QUEUE_NAME}, {pause:g} s between numbers, from a process that "
        "is its worker and its starter at once (the module's `uv run run_workflow.py`; "
        "`make print-numbers` is the same). Each number is one activity, each pause a "
        "durable timer."
    )
    n.look(f"the workflow in the Temporal UI: {stack.workflow_url(workflow_id)}")
    first = await _NumbersProcess.start(stack, workflow_id, pause)
    handle: WorkflowHandle[object, str] = client.get_workflow_handle(workflow_id, result_type=str)
    converter = client.data_converter.payload_converter

    async def numbers_done() -> list[int] | None:
        if first.process.returncode is not None:
            raise ExperimentError(
                f"The print-numbers process ended (exit code {first.process.returncode}) "
                f"before number 3; it printed: {first.lines or 'nothing'}"
            )
        try:
            history = await handle.fetch_history()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:  # the process has not started it yet
                return None
            raise
        done = [
            converter.from_payloads(r.payloads, [int])[0]
            for r in records_named(history, ACTIVITY)
            if r.outcome == "completed"
        ]
        return done if 3 in done else None

    try:
        await wait_for("number 3's activity to complete", numbers_done, within=30 + 3 * pause)
    except BaseException:
        await first.kill()  # never leave a worker of it behind
        raise
    n.step("Number 3 is done. Kill the process (SIGKILL: harsher than Ctrl+C).")
    printed = await first.kill()
    killed = time.monotonic()
    n.note(f"It printed {_list(printed)} before it died.")

    n.step("No worker runs now. Watch the workflow in Temporal.")
    last = await _history_at_rest(handle)
    n.note(f"The history stands still at {describe_event(last)}: the next step waits for a worker.")
    n.on_dashboard(
        "nothing: it charts the lab's transfers, and this workflow's worker is your own "
        "process, which Prometheus does not watch. Its history in the Temporal UI is the "
        "picture here."
    )
    n.note(f"Leaving it down for {down:g} s, so the gap shows in the history...")
    await asyncio.sleep(down)  # the deliberate downtime: this is the experiment
    while_down = await status(handle)
    n.check(
        "the workflow stays Running while no worker runs",
        while_down == WorkflowExecutionStatus.RUNNING,
        f"status {status_name(while_down)} {seconds(time.monotonic() - killed)} after the kill",
    )

    n.step("Run the same command again (the module's second `uv run run_workflow.py`).")
    n.figure(
        "process_down_seconds",
        time.monotonic() - killed,
        f"no process ran it for {seconds(time.monotonic() - killed)}",
    )
    second = await _NumbersProcess.start(stack, workflow_id, pause)
    code, after = await second.finish(within=60 + 12 * pause)
    n.note(f"It printed {_list(_numbers(after))}, then {after[-1] if after else 'nothing'!r}.")

    n.step("Verify with the workflow's history and what each process printed.")
    n.check(
        "the second process re-attached and the workflow's result is 'Workflow completed'",
        code == 0 and after[-1:] == ["Workflow completed"],
        f"exit code {code}, last line {after[-1] if after else 'none'!r}",
    )
    history = await handle.fetch_history()
    records = records_named(history, ACTIVITY)
    scheduled = [converter.from_payloads(r.payloads, [int])[0] for r in records]
    completed = [
        converter.from_payloads(r.payloads, [int])[0] for r in records if r.outcome == "completed"
    ]
    expected = list(range(1, 11))
    n.check(
        "each number 1 to 10 was printed by exactly one completed activity, in order",
        completed == expected,
        f"ActivityTaskCompleted for {_list(completed)}",
    )
    n.check(
        "no number was scheduled twice: the workflow went on at 4, it did not start over",
        scheduled == expected,
        f"{len(scheduled)} ActivityTaskScheduled events, inputs {_list(scheduled)}",
    )
    numbers_after = _numbers(after)
    n.check(
        "the second process went on from where the workflow was: it printed none of 1 to 3",
        bool(numbers_after) and min(numbers_after) >= 4 and numbers_after[-1] == 10,
        f"it printed {_list(numbers_after)}",
    )
    gap, before_gap, after_gap = largest_gap(history)
    n.figure("history_gap_seconds", gap, f"the longest gap in the history is {seconds(gap)}")
    n.check(
        f"the history shows the gap: no event for at least the {down:g} s no process ran it",
        gap >= down,
        f"{seconds(gap)} from {describe_event(before_gap)} to {describe_event(after_gap)}",
    )
    n.look(
        "the UI's Event History and Timeline for this workflow: the gap is where no worker ran. "
        f"{stack.workflow_url(workflow_id)}"
    )


class _NumbersProcess:
    """The starter's print-numbers command in a process of its own, on this machine:
    the workflow's only worker while it runs."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, stack: Stack, workflow_id: str, pause: float) -> _NumbersProcess:
        command = ["print-numbers", "--workflow-id", workflow_id, "--pause", f"{pause:g}"]
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "starter",
            *command,
            env={
                **os.environ,
                "PYTHONPATH": str(ROOT / "services"),
                "TEMPORAL_ADDRESS": stack.temporal_address,
                "TEMPORAL_UI_URL": stack.ui_url,
            },
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        return cls(process)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            self.lines.append(line.decode().strip())

    async def kill(self) -> list[int]:
        """SIGKILL it; the numbers it printed."""
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()
        await self.reader
        return _numbers(self.lines)

    async def finish(self, within: float) -> tuple[int | None, list[str]]:
        """Its exit code (None: killed for taking longer than ``within``) and its output."""
        try:
            await asyncio.wait_for(self.process.wait(), within)
        except TimeoutError:
            await self.kill()
            return None, self.lines
        await self.reader
        return self.process.returncode, self.lines


async def _history_at_rest(handle: WorkflowHandle[object, str]) -> HistoryEvent:
    """The last event, once the history has stood still for QUIET seconds on a task that
    waits for a worker (after the kill, Temporal still writes a timer firing and the
    sticky queue's time-out)."""
    last_id, since = -1, time.monotonic()

    async def probe() -> HistoryEvent | None:
        nonlocal last_id, since
        events = list((await handle.fetch_history()).events)
        if not events:
            return None
        last = events[-1]
        if event_name(last) == "WorkflowExecutionCompleted":
            raise ExperimentError("The workflow finished although the worker was killed.")
        if last.event_id != last_id:
            last_id, since = last.event_id, time.monotonic()
            return None
        waiting = event_name(last) in ("WorkflowTaskScheduled", "ActivityTaskScheduled")
        return last if waiting and time.monotonic() - since >= QUIET else None

    return await wait_for("the history to stand still", probe, within=30, every=0.25)


def _numbers(lines: list[str]) -> list[int]:
    """The numbers print_number printed (lines that are only a number)."""
    return [int(line.strip()) for line in lines if line.strip().isdigit()]


def _list(numbers: list[int]) -> str:
    return ", ".join(str(x) for x in numbers) if numbers else "nothing"
