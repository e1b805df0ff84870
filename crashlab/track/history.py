"""What a check reads from Temporal: the workflows a challenge ran, step by step.

A transfer's outcome comes from its history and the bank's ledger, never from
its result value, so the checks hold whatever the workflow returns.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from temporalio.api.enums.v1 import EventType
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowExecutionStatus

from worker.shared import MONEY_TRANSFER_WORKFLOW

# Each Temporal call gets this long: a paused server answers nothing, ever.
CALL_TIMEOUT = 5.0  # seconds
# At most this many workflows are read one by one.
LIMIT = 50


@dataclass
class Attempt:
    """One activity's final attempt, as the history records it."""

    activity: str  # withdraw, deposit, refund, settle, print_number
    attempt: int
    identity: str  # the worker that ran it
    last_failure: Failure | None  # why the attempt before it failed
    completed: bool = False

    @property
    def retried_after_timeout(self) -> bool:
        """An earlier attempt timed out: its worker went silent (killed, paused, cut off)."""
        return self.attempt > 1 and _timed_out(self.last_failure)

    @property
    def retried_after_error(self) -> bool:
        """An earlier attempt failed with an error (the bug, a bank fault), not silence."""
        return (
            self.attempt > 1 and self.last_failure is not None and not _timed_out(self.last_failure)
        )

    @property
    def failure_message(self) -> str:
        return _message(self.last_failure) if self.last_failure else ""


@dataclass
class Run:
    """One workflow run: when it ran, how it ended, and who did its work."""

    workflow_id: str
    run_id: str
    status: WorkflowExecutionStatus | None
    started: datetime
    closed: datetime | None
    events: list[HistoryEvent] = field(default_factory=list)

    @property
    def reference_id(self) -> str:
        """The transfer's reference id, from its input."""
        if not self.events:
            return ""
        payloads = self.events[0].workflow_execution_started_event_attributes.input.payloads
        try:
            details = json.loads(payloads[0].data)
        except (IndexError, ValueError):
            return ""
        return str(details.get("reference_id", "")) if isinstance(details, dict) else ""

    @property
    def attempts(self) -> dict[str, Attempt]:
        """Each activity's final attempt, by activity name."""
        scheduled: dict[int, str] = {}
        found: dict[str, Attempt] = {}
        for e in self.events:
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                scheduled[e.event_id] = (
                    e.activity_task_scheduled_event_attributes.activity_type.name
                )
            elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                a = e.activity_task_started_event_attributes
                name = scheduled.get(a.scheduled_event_id, "?")
                failure = a.last_failure if a.HasField("last_failure") else None
                found[name] = Attempt(name, a.attempt, a.identity, failure)
            elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                done = scheduled.get(e.activity_task_completed_event_attributes.scheduled_event_id)
                if done in found:
                    found[done].completed = True
        return found

    def worker_sequence(self) -> list[str]:
        """The workers that ran its tasks, in order, each run of one worker once:
        [A, B] when A worked and then B took over; [A, B, A] when they took turns."""
        sequence: list[str] = []
        for e in self.events:
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
                identity = e.workflow_task_started_event_attributes.identity
            elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                identity = e.activity_task_started_event_attributes.identity
            else:
                continue
            if identity and (not sequence or sequence[-1] != identity):
                sequence.append(identity)
        return sequence

    def workflow_task_timed_out(self) -> bool:
        """A workflow task given to a worker was never answered: the worker went away."""
        return any(
            e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT for e in self.events
        )

    def longest_silence(self) -> timedelta:
        times = [e.event_time.ToDatetime(tzinfo=UTC) for e in self.events]
        return max((b - a for a, b in itertools.pairwise(times)), default=timedelta(0))

    def spans(self, moment: datetime) -> bool:
        """The run was open at this moment."""
        return self.started <= moment <= (self.closed or datetime.now(UTC))


async def runs(client: Client, query: str, *, with_history: bool = True) -> list[Run]:
    """The runs the visibility query finds (newest first), each with its history."""

    async def listing() -> list[Run]:
        return [
            Run(wf.id, wf.run_id, wf.status, wf.start_time, wf.close_time)
            async for wf in client.list_workflows(
                query, limit=LIMIT, rpc_timeout=timedelta(seconds=CALL_TIMEOUT)
            )
        ]

    found = await asyncio.wait_for(listing(), CALL_TIMEOUT)
    if with_history:
        histories = await asyncio.gather(*(_history(client, r) for r in found))
        for run, events in zip(found, histories, strict=True):
            run.events = events
    return found


async def transfers_since(client: Client, since: datetime | None) -> list[Run]:
    """Every MoneyTransfer started from ``since`` on (all of them when None)."""
    query = f"WorkflowType = '{MONEY_TRANSFER_WORKFLOW}'"
    if since is not None:
        query += f" AND StartTime >= '{since.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}'"
    return await runs(client, query)


async def _history(client: Client, run: Run) -> list[HistoryEvent]:
    handle = client.get_workflow_handle(run.workflow_id, run_id=run.run_id)
    history = await asyncio.wait_for(
        handle.fetch_history(rpc_timeout=timedelta(seconds=CALL_TIMEOUT)), 2 * CALL_TIMEOUT
    )
    return list(history.events)


def _timed_out(failure: Failure | None) -> bool:
    return failure is not None and failure.HasField("timeout_failure_info")


def _message(failure: Failure) -> str:
    """The failure's own message; Temporal wraps a too-big one, keeping it as the cause."""
    while failure.message.startswith("Failure exceeds size limit") and failure.HasField("cause"):
        failure = failure.cause
    return failure.message
