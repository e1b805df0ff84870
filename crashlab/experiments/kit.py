"""What every experiment shares: the outcome, the narration, waiting, and the evidence.

The evidence always comes from the two places that cannot be talked round: the
workflow's history in Temporal, and the bank's ledger. A claim an experiment
makes is a `Check`: what the source document promises, whether it held, and
the evidence (a ledger row, a history event, a log line).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from temporalio.api.enums.v1 import EventType, PendingActivityState, RetryState
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflow.v1 import PendingActivityInfo
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowHistory,
)

from bank.client import BankClient
from bank.models import Movement
from crashlab.constants import SERVICES
from crashlab.invariants import check_bank
from crashlab.levers import in_thread, restore
from crashlab.stack import ROOT, Stack
from crashlab.transfers import TransferHandle as TransferHandle
from crashlab.transfers import ledger_after as ledger_after
from crashlab.transfers import ledger_end as ledger_end
from crashlab.transfers import rows as rows
from crashlab.transfers import start_transfer as start_transfer
from crashlab.transfers import transfer_id as transfer_id
from worker.shared import (
    MONEY_TRANSFER_WORKFLOW,
    PaymentDetails,
    idempotency_key,
)

T = TypeVar("T")
Say = Callable[[str], None]

# Where the worker container finds its code (compose/compose.yaml bind-mounts it).
WORKER_MOUNT = "/app/worker"
# The file the worker writes once it polls Temporal (WORKER_READY_FILE in compose.yaml).
WORKER_READY_FILE = "/tmp/worker-ready"


class ExperimentError(Exception):
    """The experiment could not go on; the message says why and what to look at."""


# --- the outcome -------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One promise of the source document, and whether the lab kept it."""

    claim: str
    passed: bool
    evidence: str


@dataclass
class Outcome:
    name: str
    checks: list[Check] = field(default_factory=list)
    # Measurements worth printing (seconds, counts); never asserted on in tests.
    figures: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def claims(self, fragment: str) -> list[Check]:
        """The checks whose claim contains ``fragment`` (for tests)."""
        return [c for c in self.checks if fragment in c.claim]


class Narrator:
    """Numbered steps and verdict lines for a learner; records the checks as it goes."""

    def __init__(self, say: Say, outcome: Outcome) -> None:
        self._say = say
        self.outcome = outcome
        self._steps = 0

    def step(self, text: str) -> None:
        self._steps += 1
        self._say("")
        self._say(f"{self._steps}. {text}")

    def note(self, text: str) -> None:
        for line in text.splitlines():
            self._say(f"   {line}")

    def look(self, what: str) -> None:
        self.note(f"Look: {what}")

    def on_dashboard(self, what: str) -> None:
        """What this step looks like on the dashboard (`make up OBSERVE=1`, `make panel`)."""
        self.note(f"On the dashboard: {what}")

    def check(self, claim: str, passed: bool, evidence: str) -> bool:
        self.outcome.checks.append(Check(claim, passed, evidence))
        self.note(f"{'PASS' if passed else 'FAIL'}: {claim} ({evidence})")
        return passed

    def figure(self, key: str, value: float, text: str) -> None:
        self.outcome.figures[key] = round(value, 2)
        self.note(f"FIGURE: {text}")


# --- waiting -----------------------------------------------------------------------------


async def wait_for(
    what: str,
    probe: Callable[[], Awaitable[T | None]],
    *,
    within: float,
    every: float = 0.2,
) -> T:
    """Poll ``probe`` until it returns something other than None (or False)."""
    deadline = time.monotonic() + within
    while True:
        found = await probe()
        if found is not None and found is not False:
            return found
        if time.monotonic() > deadline:
            raise ExperimentError(f"Gave up after {within:g} s waiting for {what}.")
        await asyncio.sleep(every)


# Pull one of the Stack's levers (a docker command) without blocking the event loop.
lever = in_thread


def short_id() -> str:
    return uuid.uuid4().hex[:8]


def seconds(value: float) -> str:
    return f"{value:.2f} s" if abs(value) < 1 else f"{value:.1f} s"


# --- the lab -----------------------------------------------------------------------------


async def prepare(stack: Stack, n: Narrator) -> None:
    """Every service up and healthy, the bank without faults: the starting line."""
    for service in SERVICES:
        if not await lever(stack.containers, service):
            raise ExperimentError(
                f"The lab is not running in Compose project {stack.project!r}: there is no "
                f"{service} container. Start it with `make up`."
            )
    for repaired in await restore(stack):
        n.note(f"{repaired} (left over from an interrupted experiment?)")
    async with stack.bank() as bank:
        faults = await bank.faults()
        if faults.withdraw or faults.deposit:
            n.note("The bank had faults switched on: clearing them first (DELETE /faults).")
            await bank.clear_faults()


async def cleanup(stack: Stack) -> None:
    """What every experiment does in its `finally`: all services back, no bank faults."""
    await restore(stack)
    async with stack.bank() as bank:
        await bank.clear_faults()


def worker_source(stack: Stack) -> Path:
    """The directory the worker container runs its code from (its bind mount)."""
    for container in stack.containers("worker"):
        out = subprocess.run(
            ["docker", "inspect", "--format", "{{json .Mounts}}", container.id],
            capture_output=True,
            text=True,
            check=False,
        )
        mounts = json.loads(out.stdout or "[]") if out.returncode == 0 else []
        for mount in mounts or []:
            if mount.get("Destination") == WORKER_MOUNT and mount.get("Source"):
                return Path(mount["Source"])
    return Path(stack.env.get("WORKER_SOURCE") or ROOT / "services" / "worker")


async def start_worker(stack: Stack) -> float:
    """Start the killed or stopped worker; returns the moment (time.monotonic()) it was
    back, i.e. polling Temporal again.

    That moment is when the worker writes its ready file (it does once Temporal lists it
    as a poller). Docker's health check looks for the same file but only once a second,
    too coarse to time a recovery that takes about one.
    """
    await lever(stack.start, "worker", wait=False)
    ids = [c.id for c in await lever(stack.containers, "worker")]

    def ready() -> bool:
        return all(
            subprocess.run(
                ["docker", "exec", cid, "test", "-f", WORKER_READY_FILE],
                capture_output=True,
                check=False,
            ).returncode
            == 0
            for cid in ids
        )

    async def probe() -> float | None:
        return time.monotonic() if await lever(ready) else None

    back = await wait_for("the worker to poll Temporal again", probe, within=120, every=0.1)
    await lever(stack.wait_healthy, "worker", timeout=60)
    return back


def worker_log(stack: Stack, since: datetime) -> list[str]:
    """The worker's log lines since ``since`` (every container of the service)."""
    stamp = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    out = stack.compose("logs", "--no-log-prefix", "--since", stamp, "worker", check=False)
    return out.stdout.splitlines()


def now() -> datetime:
    return datetime.now(UTC)


# --- transfers ---------------------------------------------------------------------------


async def result_within(handle: WorkflowHandle[Any, T], within: float, what: str) -> T:
    try:
        return await asyncio.wait_for(handle.result(), within)
    except TimeoutError:
        raise ExperimentError(
            f"{what} did not finish within {within:g} s (workflow {handle.id})."
        ) from None


async def status(handle: WorkflowHandle[Any, Any]) -> WorkflowExecutionStatus | None:
    return (await handle.describe()).status


def status_name(value: WorkflowExecutionStatus | None) -> str:
    return value.name.capitalize() if value else "unknown"


async def pending_activity(
    handle: WorkflowHandle[Any, Any], activity: str
) -> PendingActivityInfo | None:
    """The workflow's pending activity of that type, if there is one."""
    description = await handle.describe()
    for info in description.raw_description.pending_activities:
        if info.activity_type.name == activity:
            return info
    return None


def is_started(info: PendingActivityInfo | None) -> PendingActivityInfo | None:
    """The activity, if a worker has picked it up (and not finished it)."""
    if info and info.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED:
        return info
    return None


async def ensure_funds(
    client: Client, bank: BankClient, n: Narrator, source: str, target: str, amount: int
) -> None:
    """Experiments rerun on the same lab move the tutorial's $250 again and again: when the
    source runs dry, an ordinary transfer brings the money back from the target first."""
    balances = {a.id: a.balance for a in await bank.accounts()}
    have, back = balances.get(source, 0), balances.get(target, 0)
    if have >= amount:
        return
    if have + back < amount:
        raise ExperimentError(
            f"{source} holds ${have} and {target} ${back}: not enough to move ${amount}. "
            "`make clean up` starts the bank afresh (and deletes the workflow history)."
        )
    n.note(
        f"{source} holds only ${have} after earlier runs: first moving ${back} back from "
        f"{target} with an ordinary transfer."
    )
    details = PaymentDetails(target, source, back, f"top-up-{short_id()}")
    handle = await start_transfer(client, details)
    await result_within(handle, 60, "The top-up transfer")


# --- the ledger --------------------------------------------------------------------------


def check_moved_once(
    n: Narrator,
    movements: Sequence[Movement],
    reference_id: str,
    step: str,
    account: str,
    amount: int,
) -> bool:
    """The claim "<step> moved $N exactly once", with the ledger row as evidence."""
    found = rows(movements, reference_id, step)
    key = idempotency_key(reference_id, step)
    if len(found) == 1:
        m = found[0]
        sign = "-" if m.operation == "withdraw" else "+"
        evidence = f"ledger row {m.seq}: {m.account_id} {sign}${m.amount}, key {key}"
        passed = m.account_id == account and m.amount == amount
    else:
        evidence = f"{len(found)} ledger rows with key {key}" + (
            f" (rows {', '.join(str(m.seq) for m in found)})" if found else ""
        )
        passed = False
    return n.check(f"{step} moved ${amount} exactly once", passed, evidence)


def check_moved_never(
    n: Narrator, movements: Sequence[Movement], reference_id: str, step: str
) -> bool:
    found = rows(movements, reference_id, step)
    key = idempotency_key(reference_id, step)
    evidence = (
        f"no ledger row with key {key}"
        if not found
        else f"ledger rows {', '.join(str(m.seq) for m in found)} have key {key}"
    )
    return n.check(f"no {step} moved any money", not found, evidence)


async def running_transfers(client: Client) -> int:
    query = f"WorkflowType = '{MONEY_TRANSFER_WORKFLOW}' AND ExecutionStatus = 'Running'"
    return (await client.count_workflows(query)).count


async def check_invariants(
    n: Narrator, client: Client, bank: BankClient, expected: dict[str, str]
) -> bool:
    """The ledger invariants (crashlab.invariants), and each of our transfers' outcome.

    "Settled" (no withdrawal may wait for its deposit) when no transfer runs at all, so
    a learner's own transfer in flight elsewhere on the lab is not counted against us.
    """
    settled = await running_transfers(client) == 0
    report = await check_bank(bank, settled=settled)
    if report.ok:
        evidence = (
            f"${report.total} in the bank as the ledger says, no negative balance, no key "
            "applied twice, every transfer completed or compensated"
            + ("" if settled else f", ${report.in_flight} in flight elsewhere")
        )
    else:
        evidence = "; ".join(line for line in report.lines() if line.startswith("FAIL"))
    ok = n.check("the bank's ledger invariants hold", report.ok, evidence)
    if len(expected) == 1:
        [(reference_id, outcome)] = expected.items()
        found = report.outcome(reference_id)
        ok &= n.check(
            f"transfer {reference_id} is {outcome} in the ledger",
            found == outcome,
            f"the ledger says {found}",
        )
    elif expected:
        wrong = {r: report.outcome(r) for r, o in expected.items() if report.outcome(r) != o}
        outcomes = sorted(set(expected.values()))
        ok &= n.check(
            f"the ledger shows each of the {len(expected)} transfers {' or '.join(outcomes)}",
            not wrong,
            ", ".join(f"{r} is {o}" for r, o in wrong.items())
            or f"{len(expected)} of {len(expected)} as expected",
        )
    return ok


# --- the history -------------------------------------------------------------------------


@dataclass
class ActivityRecord:
    """One activity of a workflow as its history tells it (retries included)."""

    name: str
    scheduled_event: int
    scheduled_at: datetime
    payloads: list[Any]  # temporalio.api.common.v1.Payload
    attempt: int = 0  # the attempt that ended it (1 = never retried); 0: still pending
    outcome: str = "pending"  # completed, failed, timed out, canceled
    failure: str = ""
    retry_state: str = ""


def activity_records(history: WorkflowHistory) -> list[ActivityRecord]:
    records: dict[int, ActivityRecord] = {}
    for e in history.events:
        if e.HasField("activity_task_scheduled_event_attributes"):
            a = e.activity_task_scheduled_event_attributes
            records[e.event_id] = ActivityRecord(
                name=a.activity_type.name,
                scheduled_event=e.event_id,
                scheduled_at=e.event_time.ToDatetime(tzinfo=UTC),
                payloads=list(a.input.payloads),
            )
        elif e.HasField("activity_task_started_event_attributes"):
            s = e.activity_task_started_event_attributes
            records[s.scheduled_event_id].attempt = s.attempt
        elif e.HasField("activity_task_completed_event_attributes"):
            c = e.activity_task_completed_event_attributes
            records[c.scheduled_event_id].outcome = "completed"
        elif e.HasField("activity_task_failed_event_attributes"):
            f = e.activity_task_failed_event_attributes
            record = records[f.scheduled_event_id]
            record.outcome, record.failure = "failed", f.failure.message
            record.retry_state = _retry_state(f.retry_state)
        elif e.HasField("activity_task_timed_out_event_attributes"):
            t = e.activity_task_timed_out_event_attributes
            record = records[t.scheduled_event_id]
            record.outcome, record.failure = "timed out", t.failure.message
            record.retry_state = _retry_state(t.retry_state)
        elif e.HasField("activity_task_canceled_event_attributes"):
            records[
                e.activity_task_canceled_event_attributes.scheduled_event_id
            ].outcome = "canceled"
    return sorted(records.values(), key=lambda r: r.scheduled_event)


def _retry_state(value: int) -> str:
    return (
        RetryState.Name(RetryState.ValueType(value))
        .removeprefix("RETRY_STATE_")
        .lower()
        .replace("_", " ")
    )


def records_named(history: WorkflowHistory, name: str) -> list[ActivityRecord]:
    return [r for r in activity_records(history) if r.name == name]


def event_name(event: HistoryEvent) -> str:
    """EVENT_TYPE_WORKFLOW_TASK_SCHEDULED -> WorkflowTaskScheduled, as the UI shows it."""
    raw = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
    return "".join(part.capitalize() for part in raw.split("_"))


def describe_event(event: HistoryEvent) -> str:
    at = event.event_time.ToDatetime(tzinfo=UTC).strftime("%H:%M:%S.%f")[:-3]
    return f"event {event.event_id} {event_name(event)} at {at}"


def largest_gap(history: WorkflowHistory) -> tuple[float, HistoryEvent, HistoryEvent]:
    """The longest quiet interval between two consecutive events, in seconds."""
    events = list(history.events)
    if len(events) < 2:
        raise ExperimentError("The workflow's history has fewer than two events.")
    pairs = itertools.pairwise(events)
    return max(
        (
            (
                (b.event_time.ToDatetime() - a.event_time.ToDatetime()).total_seconds(),
                a,
                b,
            )
            for a, b in pairs
        ),
        key=lambda gap: gap[0],
    )


async def wait_pending(
    handle: TransferHandle,
    activity: str,
    *,
    within: float,
    started: bool = False,
    min_attempt: int = 1,
) -> PendingActivityInfo:
    """Until the workflow has that activity pending (picked up by a worker, if ``started``;
    on attempt ``min_attempt`` or later)."""

    async def probe() -> PendingActivityInfo | None:
        info = await pending_activity(handle, activity)
        if info is None or info.attempt < min_attempt:
            return None
        if started and not is_started(info):
            return None
        return info

    what = f"the {activity} activity" + (" to be running on the worker" if started else "")
    if min_attempt > 1:
        what += f" (attempt {min_attempt} or later)"
    return await wait_for(what, probe, within=within)


def lines_with(lines: Iterable[str], text: str) -> list[str]:
    return [line for line in lines if text in line]
