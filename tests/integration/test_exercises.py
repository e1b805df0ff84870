"""Module 1's exercise against the real stack, run the way a learner runs it.

`uv run run_workflow.py` (see module01.py for when it is plain Python instead)
prints a few numbers, gets Ctrl+C, and is run again: it re-attaches to the
workflow Temporal kept running and prints the rest, each number once.
"""

from __future__ import annotations

import asyncio
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle

from crashlab.testing import Lab
from tests.integration.module01 import exercise_env, module01_copy, run_workflow_command
from worker.shared import PRINT_NUMBERS_WORKFLOW_ID

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    # The lab just as `make up` leaves it, its worker container running: module 1
    # needs no step of its own (the container does not poll the module's queue).
    with Lab(project="crashlab-exercises") as running:
        yield running


@pytest.fixture
def module01() -> Iterator[Path]:
    here = module01_copy()
    yield here
    shutil.rmtree(here.parents[1])


class Run:
    """run_workflow.py in its own process group, as in a terminal: Ctrl+C reaches all of it."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            run_workflow_command(),
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.stdout: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for_line(self, wanted: Callable[[str], bool], timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    break
                continue
            self.stdout.append(line)
            if wanted(line):
                return line
        raise AssertionError(f"run_workflow.py never printed the line wanted: {self.output()}")

    def ctrl_c(self) -> None:
        os.killpg(self.proc.pid, signal.SIGINT)

    def finish(self, timeout: float) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise AssertionError(f"run_workflow.py did not finish: {self.output()}") from None
        self.reader.join(timeout=5)
        while not self.lines.empty():
            self.stdout.append(self.lines.get())
        return code

    def output(self) -> str:
        done = self.proc.poll() is not None
        stderr = self.proc.stderr.read() if self.proc.stderr and done else ""
        return f"\nstdout: {self.stdout}\nstderr: {stderr}"

    @property
    def numbers(self) -> list[int]:
        return [int(line) for line in self.stdout if re.fullmatch(r"[0-9]+", line)]


def is_number(line: str) -> bool:
    return re.fullmatch(r"[0-9]+", line) is not None


async def wait_until_sleeping_after(handle: WorkflowHandle[object, str], steps: int) -> int:
    """Until at least `steps` numbers are done and the workflow waits on its durable timer.

    Then no step is in flight: a Ctrl+C now cannot catch a number half-done. (Had
    it caught one printed but not yet reported, Temporal would run that step
    again, at least once being the promise, and the number would print twice.)
    Returns how many steps are done.
    """
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        events = (await handle.fetch_history()).events
        done = sum(e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED for e in events)
        if done >= steps and events[-1].event_type == EventType.EVENT_TYPE_TIMER_STARTED:
            return done
        await asyncio.sleep(0.05)
    raise AssertionError(f"{PRINT_NUMBERS_WORKFLOW_ID} did not get to step {steps}")


async def test_run_workflow_goes_on_at_the_next_number_after_ctrl_c(
    lab: Lab, module01: Path
) -> None:
    env = exercise_env({"TEMPORAL_ADDRESS": lab.temporal_address})
    client = await lab.temporal()
    handle: WorkflowHandle[object, str] = client.get_workflow_handle(PRINT_NUMBERS_WORKFLOW_ID)

    first = Run(module01, env)
    assert first.wait_for_line(lambda line: line.startswith("Started"), 120) == (
        f"Started workflow {PRINT_NUMBERS_WORKFLOW_ID}."
    )
    first.wait_for_line(lambda line: line == "3", 60)
    done = await wait_until_sleeping_after(handle, 3)
    first.ctrl_c()
    assert first.finish(30) == 130, first.output()

    assert first.numbers == list(range(1, done + 1)), first.output()
    assert any(line.startswith("Stopped.") for line in first.stdout), first.output()
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING

    second = Run(module01, env)
    assert second.finish(120) == 0, second.output()

    assert second.stdout[0] == (
        f"Workflow {PRINT_NUMBERS_WORKFLOW_ID} is already running: continuing where it stopped."
    ), second.output()
    assert second.numbers == list(range(done + 1, 11)), second.output()
    assert second.stdout[-1] == "Workflow completed", second.output()
    # Each number once across both runs, and nothing else printed (no warning
    # that another worker took a step).
    assert sorted(first.numbers + second.numbers) == list(range(1, 11))
    assert [line for line in second.stdout[1:-1] if not is_number(line)] == [], second.output()

    # Two worker processes did the work, as the Temporal UI shows it.
    identities = {
        e.activity_task_started_event_attributes.identity
        for e in (await handle.fetch_history()).events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    }
    assert len(identities) == 2, identities


def test_run_workflow_says_how_to_start_the_lab_when_temporal_is_not_there(
    module01: Path,
) -> None:
    env = exercise_env({"TEMPORAL_ADDRESS": "127.0.0.1:9"})  # the discard port: nobody listens
    result = subprocess.run(
        run_workflow_command(), cwd=module01, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1, result
    assert "Cannot reach Temporal at 127.0.0.1:9. Is the lab up?" in result.stderr
    assert result.stdout == ""
