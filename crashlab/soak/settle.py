"""The soak's end: once the faults stop and the transfers have ended, each transfer's
workflow status and ledger outcome, and the settled ledger's invariants."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from datetime import timedelta

from temporalio.api.enums.v1 import EventType, TimeoutType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowExecutionStatus

from bank.models import Movement
from crashlab.invariants import LedgerReport, check_bank, split_key
from crashlab.soak.clock import Timeline
from crashlab.soak.connections import Connections
from crashlab.soak.observers import MoneyWatch
from crashlab.soak.records import SoakResult, TransferRecord
from crashlab.soak.verdict import (
    ALL_ENDED,
    AS_EXPECTED,
    AT_END,
    NO_LOST_TASK,
    RIGHT_ACCOUNTS,
    check_movements,
    check_outcome,
    check_timeouts,
    measure_recoveries,
)
from crashlab.transfers import ledger_after, transfer_id
from worker.shared import MONEY_TRANSFER_WORKFLOW


async def settle(
    result: SoakResult,
    conns: Connections,
    watch: MoneyWatch,
    ends: list[float],
    timeline: Timeline,
) -> None:
    """Records every end-of-run verdict into ``result``'s invariants."""
    invariants = {inv.name: inv for inv in result.invariants}
    started = [t for t in result.transfers if t.started is not None]
    timeline.say("")
    timeline.log("Checking the outcome of every transfer and the settled ledger...")
    client = await _client_within(conns, result, 60)
    for record in started:
        if not record.finished and client is not None:
            record.status = await _status(client, record)
    running_elsewhere = 0
    if client is not None:
        query = f"WorkflowType = '{MONEY_TRANSFER_WORKFLOW}' AND ExecutionStatus = 'Running'"
        with contextlib.suppress(Exception):
            running_elsewhere = (
                await client.count_workflows(query, rpc_timeout=timedelta(seconds=10))
            ).count
    ours_running = sum(not t.finished for t in started)
    settled = running_elsewhere == 0
    if not settled and running_elsewhere > ours_running:
        result.notes.append(
            f"{running_elsewhere - ours_running} MoneyTransfer workflow(s) of someone else "
            "still ran at the end: the settled check allowed money in flight for them."
        )
    report: LedgerReport | None = None
    movements: list[Movement] = []
    try:
        bank = await conns.bank()
        report = await check_bank(bank, settled=settled)
        movements = await ledger_after(bank)
    except Exception as err:
        result.notes.append(f"Could not read the bank's ledger at the end: {err}")
    if report is not None:
        watch.record_ledger(AT_END, report)
    by_ref: dict[str, list[Movement]] = {}
    for m in movements:
        parsed = split_key(m.idempotency_key)
        if parsed:
            by_ref.setdefault(parsed[0], []).append(m)
    for record in started:
        spec = record.spec
        invariants[ALL_ENDED].record(
            None
            if record.finished
            else f"transfer {spec.reference_id} is {record.status} "
            f"(workflow {transfer_id(spec.reference_id)})"
        )
        if report is None or not record.finished:
            continue
        record.outcome = report.outcome(spec.reference_id)
        invariants[AS_EXPECTED].record(check_outcome(record))
        invariants[RIGHT_ACCOUNTS].record(check_movements(spec, by_ref.get(spec.reference_id, [])))
    measure_recoveries(result.faults, sorted(ends))
    if client is not None:
        await _check_histories(client, result, [t for t in started if t.finished], timeline)


async def _check_histories(
    client: Client, result: SoakResult, ended: list[TransferRecord], timeline: Timeline
) -> None:
    """Every timeout in the ended transfers' histories, each explained by a fault or not."""
    invariant = next(inv for inv in result.invariants if inv.name == NO_LOST_TASK)
    limit = asyncio.Semaphore(8)
    redirected = timed_out = 0

    async def one(record: TransferRecord) -> None:
        nonlocal redirected, timed_out
        async with limit:
            try:
                history = await client.get_workflow_handle(
                    transfer_id(record.spec.reference_id)
                ).fetch_history(rpc_timeout=timedelta(seconds=10))
            except Exception as err:
                result.notes.append(f"Could not read {record.spec.reference_id}'s history: {err}")
                return
        lost, moved = timeouts_in(history.events, timeline)
        redirected += moved
        timed_out += len(lost)
        invariant.record(check_timeouts(record.spec.reference_id, lost, result.faults))

    await asyncio.gather(*(one(record) for record in ended))
    result.notes.append(
        f"The histories hold {timed_out} timed-out task(s) (a workflow task unanswered, an "
        "activity attempt given up on); each must fall during a fault or just after it."
    )
    if redirected:
        result.notes.append(
            f"{redirected} workflow task(s) waited past the sticky queue's 1 s and went to "
            "the normal queue (not lost: another poll took them)."
        )


def timeouts_in(events: Iterable[HistoryEvent], timeline: Timeline) -> tuple[list[float], int]:
    """When (seconds since the soak began) a task of this history was given up on: a
    workflow task whose answer never came, an activity attempt that timed out (placed at
    the next attempt's start: Temporal records only the attempt that ended). And how many
    workflow tasks left a sticky queue unanswered."""
    lost: list[float] = []
    moved = 0
    for event in events:
        at = timeline.since_start(event.event_time.ToMicroseconds() / 1e6)
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
            kind = event.workflow_task_timed_out_event_attributes.timeout_type
            if kind == TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START:
                moved += 1
            else:
                lost.append(at)
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
            lost.append(at)
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            failure = event.activity_task_started_event_attributes.last_failure
            if failure.HasField("timeout_failure_info"):
                lost.append(at)
    return lost, moved


async def _client_within(conns: Connections, result: SoakResult, seconds: float) -> Client | None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            return await conns.client()
        except Exception:
            await conns.temporal_failed(now=True)
            await asyncio.sleep(1.0)
    result.notes.append("Temporal did not answer at the end.")
    return None


async def _status(client: Client, record: TransferRecord) -> str:
    try:
        handle = client.get_workflow_handle(transfer_id(record.spec.reference_id))
        status = (await handle.describe(rpc_timeout=timedelta(seconds=5))).status
    except Exception as err:
        record.message = f"describe failed: {err}"
        return "unknown"
    names = {
        WorkflowExecutionStatus.COMPLETED: "completed",
        WorkflowExecutionStatus.FAILED: "failed",
        WorkflowExecutionStatus.RUNNING: "running",
    }
    return names.get(status, status.name.lower()) if status else "unknown"
