"""Each challenge's check: what the learner was asked to do, proven from what happened.

A check looks only at the challenge's own window (from its setup on), and ties
the evidence to the lever the assignment names: a transfer's history in
Temporal, the bank's ledger, and Docker's record of the lab's containers
(crashlab/track/record.py). It passes, or fails with one line that says what to do
next. A challenge is one class; a new challenge is a new class.
"""

from __future__ import annotations

import asyncio
import os
import sys
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import ClassVar, NoReturn

from temporalio.api.enums.v1 import EventType, PendingActivityState, WorkflowTaskFailedCause
from temporalio.client import Client, WorkflowExecutionStatus

from bank.models import Movement
from crashlab.experiments.bugfix import FAILING_CALL, WORKING_CALL
from crashlab.experiments.kit import ledger_after, worker_source
from crashlab.invariants import split_key
from crashlab.stack import ROOT, Stack
from crashlab.track import lab_state
from crashlab.track.history import CALL_TIMEOUT, Run, runs, transfers_since
from crashlab.track.record import DockerEvent, Recorder
from worker.shared import PRINT_NUMBERS_WORKFLOW_ID

# What the learner types, from the lab's directory.
DC = "docker compose -f compose/compose.yaml"
BUG_MESSAGE = "This deposit has failed."
# Challenge 5: a pause this long is a partition a learner can watch (the assignment: 30 s).
MIN_PAUSE = timedelta(seconds=10)
# Where the services' packages are: the replay imports the worker's code from its own copy.
SERVICES = ROOT / "services"
COMPLETED = WorkflowExecutionStatus.COMPLETED
RUNNING = WorkflowExecutionStatus.RUNNING
FAILED = WorkflowExecutionStatus.FAILED


class Fail(Exception):
    """The check did not pass: the message says what to do next."""


def fail(message: str) -> NoReturn:
    raise Fail(message)


@dataclass
class Evidence:
    """Everything a check may read, from the challenge's window on."""

    stack: Stack
    client: Client
    since: datetime | None  # None: the challenge's setup never ran here
    movements: list[Movement]
    # Docker's record of the lab's containers; None when no recorder covered the window.
    docker: list[DockerEvent] | None
    transfers: list[Run] = field(default_factory=list)

    def steps(self, reference_id: str) -> Counter[str]:
        """How often each step of a transfer moved money: {"withdraw": 1, ...}."""
        found: Counter[str] = Counter()
        for m in self.movements:
            parsed = split_key(m.idempotency_key)
            if parsed and parsed[0] == reference_id:
                found[parsed[1]] += 1
        return found

    def moved_once(self, run: Run, *, compensated: bool = False) -> None:
        want = {"withdraw": 1, "refund" if compensated else "deposit": 1}
        found = dict(self.steps(run.reference_id))
        if found != want:
            fail(
                f"Transfer {run.workflow_id} ended, but the bank's ledger shows "
                f"{found or 'nothing'} for it instead of {want}. Look at the Bank tab's "
                "ledger, and tell the lab's authors: this should never happen."
            )

    def during(self, run: Run, service: str) -> list[DockerEvent]:
        return [e for e in self.docker or [] if e.service == service and run.spans(e.at)]

    def in_window(self, status: WorkflowExecutionStatus) -> list[Run]:
        return [t for t in self.transfers if t.status == status]

    async def pending(self, run: Run) -> dict[str, tuple[int, str]]:
        """A running workflow's pending activities: name -> (attempt, last failure)."""
        handle = self.client.get_workflow_handle(run.workflow_id, run_id=run.run_id)
        description = await asyncio.wait_for(
            handle.describe(rpc_timeout=timedelta(seconds=CALL_TIMEOUT)), CALL_TIMEOUT
        )
        return {
            p.activity_type.name: (
                p.attempt,
                p.last_failure.message if p.HasField("last_failure") else "",
            )
            for p in description.raw_description.pending_activities
            if p.state != PendingActivityState.PENDING_ACTIVITY_STATE_UNSPECIFIED
        }


class Challenge(ABC):
    slug: ClassVar[str]
    # Runs the challenge reads: transfers (MoneyTransfer) or nothing (it reads its own).
    reads_transfers: ClassVar[bool] = True

    def prepare(self, stack: Stack, say: lab_state.Say) -> None:  # noqa: B027 (most need none)
        """What this challenge's setup does beyond the common one."""

    @abstractmethod
    async def check(self, e: Evidence) -> str:
        """The PASS message, or Fail."""


# --- 1: crash-proof ---------------------------------------------------------------------


class CrashProof(Challenge):
    """print-numbers-workflow completed, carried on by a second worker process after the
    first one stopped: the workers took over one after the other, never in turns."""

    slug = "crash-proof"
    reads_transfers = False
    again = (
        "In exercises/module01 run `uv run run_workflow.py`, press Ctrl+C after a few "
        "numbers, then run it again until it prints 'Workflow completed'."
    )

    def prepare(self, stack: Stack, say: lab_state.Say) -> None:
        asyncio.run(_fresh_print_numbers(stack, say))

    async def check(self, e: Evidence) -> str:
        found = await runs(e.client, f"WorkflowId = '{PRINT_NUMBERS_WORKFLOW_ID}'")
        found = [r for r in found if e.since is None or r.started >= e.since]
        if not found:
            fail(
                f"{PRINT_NUMBERS_WORKFLOW_ID} has not run since this challenge began. {self.again}"
            )
        for run in found:
            workers = run.worker_sequence()
            if run.status == COMPLETED and len(workers) > 1 and len(set(workers)) == len(workers):
                return (
                    f"{PRINT_NUMBERS_WORKFLOW_ID} completed, carried on by a new worker "
                    f"process ({workers[-1]}) after the first one ({workers[0]}) stopped."
                )
        latest = found[0]
        workers = latest.worker_sequence()
        if latest.status == RUNNING:
            fail(
                f"{PRINT_NUMBERS_WORKFLOW_ID} is still running and waits for a worker. Run "
                "`uv run run_workflow.py` again (in exercises/module01) and let it finish."
            )
        shared = [r.worker_sequence() for r in found if r.status == COMPLETED]
        shared = [w for w in shared if len(set(w)) < len(w)]
        if shared:
            fail(
                f"{PRINT_NUMBERS_WORKFLOW_ID} ran on two workers at the same time (they took "
                f"turns: {', '.join(shared[0][:4])}...), so nothing had to recover. Keep one "
                f"terminal running it: {self.again}"
            )
        if latest.status == COMPLETED:
            fail(f"{PRINT_NUMBERS_WORKFLOW_ID} ran from start to end in one go. {self.again}")
        state = latest.status.name.lower() if latest.status else "unknown"
        fail(f"{PRINT_NUMBERS_WORKFLOW_ID} did not complete (it was {state}). {self.again}")


async def _fresh_print_numbers(stack: Stack, say: lab_state.Say) -> None:
    """No print-numbers-workflow left running: the learner's first run starts a new one."""
    client = await stack.temporal()
    for run in await runs(
        client,
        f"WorkflowId = '{PRINT_NUMBERS_WORKFLOW_ID}' AND ExecutionStatus = 'Running'",
        with_history=False,
    ):
        await client.get_workflow_handle(run.workflow_id, run_id=run.run_id).terminate(
            "A new start of the crash-proof challenge"
        )
        say(f"Terminated the {PRINT_NUMBERS_WORKFLOW_ID} left running.")
    await _only_the_terminal_prints(stack, client, say)


async def _only_the_terminal_prints(stack: Stack, client: Client, say: lab_state.Say) -> None:
    """A lab whose worker container also polls print-numbers-task-queue would share the
    steps with the learner's terminal: that worker is stopped for this challenge."""
    from crashlab.status import queue_pollers, service_states  # the status screen's own reading
    from worker.shared import PRINT_NUMBERS_TASK_QUEUE_NAME

    pollers = await queue_pollers(
        client, PRINT_NUMBERS_TASK_QUEUE_NAME, containers=service_states(stack)
    )
    if any(p.live and p.container for p in pollers.pollers):
        say("The lab's worker polls print-numbers-task-queue too: stopping it for module 1.")
        stack.stop("worker")


# --- 2: crash recovery ------------------------------------------------------------------


class CrashRecovery(Challenge):
    """A transfer completed although its worker was killed (SIGKILL) while it ran; each
    step once in the ledger."""

    slug = "crash-recovery"
    how = (
        "Slow the bank down (make fault OP=all MODE=latency LATENCY_MS=4000), start a "
        f"transfer (make transfer), kill the worker while it runs ({DC} kill worker), then "
        f"start it again ({DC} start worker)."
    )

    async def check(self, e: Evidence) -> str:
        if not e.transfers:
            fail(f"No transfer has run since this challenge began. {self.how}")
        for run in e.in_window(COMPLETED):
            if self._killed_during(e, run):
                e.moved_once(run)
                return (
                    f"Transfer {run.workflow_id} completed although its worker was killed "
                    "half-way, and the ledger has its withdraw and its deposit exactly once."
                )
        self._explain(e)

    @staticmethod
    def _killed_during(e: Evidence, run: Run) -> bool:
        if e.docker is not None:
            return any(ev.is_crash for ev in e.during(run, "worker"))
        # No record of Docker's: a worker (re)started while it ran, and the history shows
        # the old one went silent rather than saying goodbye.
        started = lab_state.worker_started_at(e.stack)
        silent = run.workflow_task_timed_out() or any(
            a.retried_after_timeout for a in run.attempts.values()
        )
        return started is not None and run.spans(started) and silent

    def _explain(self, e: Evidence) -> NoReturn:
        waiting = e.in_window(RUNNING)
        workers = e.stack.containers("worker")
        if waiting and not any(c.state == "running" for c in workers):
            fail(
                f"Transfer {waiting[0].workflow_id} waits for a worker: the worker is down. "
                f"Start it again ({DC} start worker) and the transfer completes."
            )
        if waiting:
            fail(
                f"Transfer {waiting[0].workflow_id} is still running. Let it complete (the bank "
                "may be slow), then press Check again."
            )
        graceful = [
            ev
            for run in e.in_window(COMPLETED)
            for ev in e.during(run, "worker")
            if ev.action == "die" and not ev.is_crash
        ]
        if graceful:
            fail(
                "The worker was stopped gracefully while your transfer ran (exit code "
                f"{graceful[0].exit_code}): it finished its step and told Temporal it was "
                f"leaving, so nothing crashed. Crash it instead: {DC} kill worker. {self.how}"
            )
        fail(f"Your transfers completed without losing their worker. {self.how}")


# --- 3: live bug fix --------------------------------------------------------------------


class LiveBugFix(Challenge):
    """A transfer completed after its deposit failed and was retried: the bug in
    deposit(), or the bank's fault switch, fixed while it retried."""

    slug = "live-bug-fix"
    how = (
        f"In services/worker/activities.py change `{WORKING_CALL}...` to `{FAILING_CALL}...` "
        f"in deposit(), restart the worker ({DC} restart worker), start a transfer "
        "(make transfer), watch the deposit fail and retry, then undo the change and restart "
        "the worker again."
    )

    async def check(self, e: Evidence) -> str:
        for run in e.in_window(COMPLETED):
            deposit = run.attempts.get("deposit")
            if deposit and deposit.completed and deposit.retried_after_error:
                e.moved_once(run)
                return (
                    f"Transfer {run.workflow_id}: the deposit failed {deposit.attempt - 1} "
                    f"time(s) ('{deposit.failure_message}'), the fix went live, withdraw ran "
                    "once, and the transfer completed."
                )
        await self._explain(e)

    async def _explain(self, e: Evidence) -> NoReturn:
        has_bug = lab_state.deposit_has_bug(lab_state.activities_file(e.stack).read_text())
        loaded = lab_state.code_loaded(e.stack)
        restart = f"restart the worker so that it runs the file as it is now ({DC} restart worker)"
        for run in e.in_window(RUNNING):
            attempt, failure = (await e.pending(run)).get("deposit", (0, ""))
            if attempt > 1 and BUG_MESSAGE in failure:
                if has_bug:
                    fail(
                        f"Transfer {run.workflow_id} retries its failing deposit (attempt "
                        f"{attempt}). Now fix the bug: change `{FAILING_CALL}` back to "
                        f"`{WORKING_CALL}` in services/worker/activities.py, save, and {restart}."
                    )
                fail(
                    f"You fixed deposit(), but transfer {run.workflow_id} still fails: the "
                    f"worker runs the old code. Now {restart}."
                )
            if attempt > 1:
                fail(
                    f"Transfer {run.workflow_id} retries its failing deposit (attempt "
                    f"{attempt}: {failure}). Fix what breaks it: clear the bank's faults "
                    "(make faults-clear), or undo your change to deposit() and restart the worker."
                )
        if has_bug and not loaded:
            fail(f"deposit() has the bug, but the worker does not run it yet: {restart}.")
        if has_bug:
            fail(
                "The worker runs the bug in deposit(). Now start a transfer (make transfer) "
                "and watch the deposit fail and retry."
            )
        fail(f"No transfer has recovered from a failing deposit yet. {self.how}")


# --- 4: compensation --------------------------------------------------------------------


class Compensation(Challenge):
    """A transfer failed on the deposit and was compensated: its withdraw and its refund
    in the ledger, and no deposit."""

    slug = "compensation"
    how = "Make the deposit fail (see the assignment), then run make transfer ATTEMPTS=1."

    async def check(self, e: Evidence) -> str:
        for run in e.transfers:
            if e.steps(run.reference_id) == Counter({"withdraw": 1, "refund": 1}):
                e.moved_once(run, compensated=True)
                return (
                    f"Transfer {run.workflow_id} failed on the deposit and was compensated: "
                    "the ledger shows its withdraw and its refund, and no deposit."
                )
        await self._explain(e)

    async def _explain(self, e: Evidence) -> NoReturn:
        for run in e.in_window(RUNNING):
            pending = await e.pending(run)
            if "refund" in pending:
                attempt, failure = pending["refund"]
                fail(
                    f"The refund of transfer {run.workflow_id} is retrying (attempt {attempt}: "
                    f"{failure}): the bank's fault fails every deposit, and a refund is a "
                    "deposit too. Clear the fault (make faults-clear): the refund goes through "
                    "and the transfer fails with the money back. Then press Check again."
                )
            if "deposit" in pending:
                fail(
                    f"Transfer {run.workflow_id} retries its deposit for as long as it fails: "
                    "it has no attempt limit. Start one that tries once: make transfer "
                    "ATTEMPTS=1. (Let this one finish: fix the bug or clear the fault.)"
                )
        failed = e.in_window(FAILED)
        if failed:
            fail(
                f"Transfer {failed[0].workflow_id} failed before any money moved (its withdraw "
                "failed), so there was nothing to refund. Make the deposit fail, not the "
                f"withdraw. {self.how}"
            )
        if e.transfers:
            fail(f"Your transfers completed: nothing needed a refund. {self.how}")
        fail(f"No transfer has failed and been refunded yet. {self.how}")


# --- 5: network partition ---------------------------------------------------------------


@dataclass(frozen=True)
class Pause:
    service: str
    began: datetime
    ended: datetime | None  # None: still paused

    @property
    def length(self) -> timedelta:
        return (self.ended or datetime.now(UTC)) - self.began

    def overlaps(self, run: Run) -> bool:
        end = run.closed or datetime.now(UTC)
        return self.began < end and (self.ended or datetime.now(UTC)) > run.started


def pauses(events: list[DockerEvent]) -> list[Pause]:
    found: list[Pause] = []
    open_: dict[str, datetime] = {}
    for ev in events:
        if ev.action == "pause":
            open_.setdefault(ev.container_id, ev.at)
        elif ev.action == "unpause" and ev.container_id in open_:
            found.append(Pause(ev.service, open_.pop(ev.container_id), ev.at))
    services = {ev.container_id: ev.service for ev in events}
    found += [Pause(services[cid], began, None) for cid, began in open_.items()]
    return found


class NetworkPartition(Challenge):
    """A transfer completed although Temporal was paused for 10 s or more while it ran;
    each step once in the ledger."""

    slug = "network-partition"
    how = (
        "Slow the bank down (make fault OP=all MODE=latency LATENCY_MS=4000), start a transfer "
        f"(make transfer), pause Temporal while it runs ({DC} pause temporal), wait 30 s, "
        f"resume it ({DC} unpause temporal) and let the transfer finish."
    )

    async def check(self, e: Evidence) -> str:
        if e.docker is None:
            return self._from_history(e)
        held = [p for p in pauses(e.docker) if p.service == "temporal"]
        for run in e.in_window(COMPLETED):
            for pause in held:
                if pause.overlaps(run) and pause.length >= MIN_PAUSE:
                    e.moved_once(run)
                    return (
                        f"Transfer {run.workflow_id} completed although Temporal was paused "
                        f"for {pause.length.total_seconds():.0f} s while it ran, with each step "
                        "once in the ledger."
                    )
        self._explain(e, held)

    def _explain(self, e: Evidence, held: list[Pause]) -> NoReturn:
        if e.in_window(RUNNING):
            fail(
                f"Transfer {e.in_window(RUNNING)[0].workflow_id} is still running. Let it "
                "complete (the bank may be slow), then press Check again."
            )
        others = [p for p in pauses(e.docker or []) if p.service != "temporal"]
        if not held and others:
            fail(
                f"You paused the {others[0].service}, not Temporal. This challenge cuts off "
                f"the Temporal server. {self.how}"
            )
        if any(p.length < MIN_PAUSE for p in held):
            fail(
                f"Temporal was paused for less than {MIN_PAUSE.total_seconds():.0f} s: too "
                f"short to see. {self.how}"
            )
        if held:
            fail(f"Temporal was paused while no transfer ran. {self.how}")
        if not e.transfers:
            fail(f"No transfer has run since this challenge began. {self.how}")
        fail(f"Temporal has not been paused while a transfer ran. {self.how}")

    def _from_history(self, e: Evidence) -> str:
        """Without Docker's record: a long silence in a transfer whose worker kept running
        and whose steps failed, if at all, only by timing out."""
        started = lab_state.worker_started_at(e.stack)
        for run in e.in_window(COMPLETED):
            silent = run.longest_silence()
            if silent < MIN_PAUSE or (started is not None and run.spans(started)):
                continue
            if any(a.retried_after_error for a in run.attempts.values()):
                continue
            e.moved_once(run)
            return (
                f"Transfer {run.workflow_id} went silent for {silent.total_seconds():.0f} s "
                "while Temporal was out of reach, then completed with each step once."
            )
        fail(f"No transfer has lived through a pause of Temporal yet. {self.how}")


# --- 6: versioning ----------------------------------------------------------------------


def nondeterminism(run: Run) -> str | None:
    """The message of the run's first non-determinism error, if it met one."""
    for event in run.events:
        failed = event.workflow_task_failed_event_attributes
        if event.HasField("workflow_task_failed_event_attributes") and failed.cause == (
            WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_NON_DETERMINISTIC_ERROR
        ):
            return failed.failure.message
    return None


def patched(run: Run) -> bool:
    """The run took a patched path: workflow.patched recorded its marker."""
    return any(e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED for e in run.events)


class Versioning(Challenge):
    """A transfer that was waiting when the workflow's code changed met a non-determinism
    error, and completed on its old path once the change went behind workflow.patched;
    a transfer started after that took the new path; the code on disk replays them all."""

    slug = "versioning"
    how = (
        "With the bank refusing deposits (make fault OP=deposit MODE=error), start a transfer "
        "(make transfer NO_WAIT=1), add `await workflow.sleep(timedelta(seconds=1))` before "
        "the deposit in services/worker/workflows.py, restart the worker (make stop start "
        "SERVICE=worker) and clear the fault (make faults-clear)."
    )

    async def check(self, e: Evidence) -> str:
        stuck = [r for r in e.transfers if nondeterminism(r) is not None]
        if not stuck:
            self._not_yet(e)
        freed = [r for r in stuck if r.status == COMPLETED and not patched(r)]
        if not freed:
            fail(
                f"Transfer {stuck[0].workflow_id} is stuck on a non-determinism error "
                f"({nondeterminism(stuck[0])}). Put the new step behind "
                '`if workflow.patched("cooling-off"):`, check with make replay, and restart '
                "the worker (make stop start SERVICE=worker)."
            )
        newer = [r for r in e.in_window(COMPLETED) if patched(r)]
        if not newer:
            fail(
                f"Transfer {freed[0].workflow_id} finished on its old path. Now start a new "
                "transfer (make transfer) and see it take the new one: its history gets a "
                "marker and a timer."
            )
        problems = await replay_on_disk(e.stack, [r.workflow_id for r in [*freed, *newer]])
        if problems:
            fail(
                "The workflow code on disk cannot replay these transfers any more (make "
                f"replay says: {problems}). Keep the patched step in services/worker/"
                "workflows.py while any workflow that took either path may be replayed."
            )
        for run in [*freed, *newer]:
            e.moved_once(run)
        return (
            f"Transfer {freed[0].workflow_id} met a non-determinism error, then finished on "
            f"its old path once the change was patched; {newer[0].workflow_id} took the new "
            "path; the code on disk replays both, and the ledger has each step once."
        )

    def _not_yet(self, e: Evidence) -> NoReturn:
        if any(patched(r) for r in e.in_window(COMPLETED)):
            fail(
                "Your new transfers take the patched path, but no transfer was caught by the "
                "change first: that is the failure this challenge is about. Take the patch "
                f"out and start again from the beginning. {self.how}"
            )
        if e.in_window(RUNNING):
            fail(
                f"Transfer {e.in_window(RUNNING)[0].workflow_id} is running. Now change the "
                "workflow's code while it waits: add `await workflow.sleep(timedelta("
                "seconds=1))` before the deposit, restart the worker, and clear the fault."
            )
        fail(f"No transfer has met a non-determinism error yet. {self.how}")


async def replay_on_disk(stack: Stack, workflow_ids: list[str]) -> str:
    """What `make replay` says about these workflows with the worker's code as it is on
    disk (the worker's own copy: a fresh process imports it); empty when all replay."""
    source = worker_source(stack)
    command = [sys.executable, "-m", "crashlab.replay", "--project", stack.project]
    for workflow_id in workflow_ids:
        command += ["--workflow-id", workflow_id]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(source.parent), str(SERVICES)])}
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 30)
    if process.returncode == 0:
        return ""
    failed = [line.strip() for line in out.decode().splitlines() if line.startswith("FAIL")]
    return "; ".join(failed) or out.decode().strip()


CHALLENGES: dict[str, Challenge] = {
    c.slug: c
    for c in (
        CrashProof(),
        CrashRecovery(),
        LiveBugFix(),
        Compensation(),
        NetworkPartition(),
        Versioning(),
    )
}


async def gather(stack: Stack, challenge: Challenge, since: datetime | None) -> Evidence:
    client = await _connect(stack)
    async with stack.bank() as bank:
        movements = await asyncio.wait_for(ledger_after(bank), CALL_TIMEOUT)
    recorder = Recorder(stack.project)
    recording_since = recorder.since()
    covered = since is not None and recording_since is not None and recording_since <= since
    evidence = Evidence(
        stack,
        client,
        since,
        movements,
        recorder.events(since) if covered and since is not None else None,
    )
    if challenge.reads_transfers:
        evidence.transfers = await transfers_since(client, since)
    return evidence


async def _connect(stack: Stack) -> Client:
    from crashlab.status import Unreachable, connect_temporal

    try:
        return await connect_temporal(stack.temporal_address, call_timeout=CALL_TIMEOUT)
    except Unreachable as err:
        fail(f"{err}. Is the lab up? (make ps, then make up)")
