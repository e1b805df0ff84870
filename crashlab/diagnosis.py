"""What a person needs to see when a test on the lab fails: each service's recent logs,
the `crashlab status` screen, and the history of every open workflow.

The pytest plugin adds these to a failed test's report; any harness can call
`diagnose(lab)`. Every part is read on its own, with a deadline, so a lab that is
half broken (which is often why the test failed) still yields the rest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

from crashlab import status
from crashlab.stack import Stack
from crashlab.temporal import connect_temporal, within

LOG_LINES = 40
# Open workflows shown, and the last events of each.
WORKFLOWS = 10
EVENTS = 30
CALL_TIMEOUT = 5.0


def diagnose(stack: Stack) -> list[tuple[str, str]]:
    """(title, text) sections: the status screen, open workflows' histories, the logs."""
    parts: list[tuple[str, Callable[[], str]]] = [
        ("status", lambda: status_screen(stack)),
        ("open workflows", lambda: asyncio.run(open_histories(stack))),
    ]
    sections = [(title, _safely(read)) for title, read in parts]
    return sections + logs(stack)


def status_screen(stack: Stack) -> str:
    return "\n".join(status.render(asyncio.run(status.collect(stack))))


def logs(stack: Stack) -> list[tuple[str, str]]:
    """Each service's last lines, a section each, in the order the lab lists them."""
    try:
        services = sorted({c.service for c in stack.containers()})
    except Exception as err:
        return [("logs", f"(could not list the lab's containers: {err})")]
    out = []
    for service in services:
        found = stack.compose(
            "logs", "--no-color", "--timestamps", "--tail", str(LOG_LINES), service, check=False
        )
        out.append((f"{service} logs", (found.stdout + found.stderr).strip() or "(no output)"))
    return out


async def open_histories(stack: Stack) -> str:
    client = await connect_temporal(stack.temporal_address, call_timeout=CALL_TIMEOUT)
    listing = client.list_workflows('ExecutionStatus="Running"', limit=WORKFLOWS)
    found = await within(_take(listing), CALL_TIMEOUT)
    if not found:
        return "No workflow is open."
    blocks = []
    for workflow_id, run_id, kind in found:
        events = await within(_events(client, workflow_id, run_id), CALL_TIMEOUT)
        shown = events[-EVENTS:]
        head = f"{kind} {workflow_id} ({len(events)} events"
        head += f", the last {len(shown)})" if len(shown) < len(events) else ")"
        blocks.append("\n".join([head, *(f"  {describe(e)}" for e in shown)]))
    return "\n\n".join(blocks)


async def _take(listing: object) -> list[tuple[str, str, str]]:
    return [(w.id, w.run_id, w.workflow_type) async for w in listing]  # type: ignore[attr-defined]


async def _events(client: Client, workflow_id: str, run_id: str) -> list[HistoryEvent]:
    history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    return list(history.events)


def describe(event: HistoryEvent) -> str:
    """One line per event: number, time, kind, and what a person looks for in it."""
    kind = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
    when = event.event_time.ToDatetime().strftime("%H:%M:%S.%f")[:-3]
    detail = ""
    if event.HasField("activity_task_scheduled_event_attributes"):
        detail = event.activity_task_scheduled_event_attributes.activity_type.name
    elif event.HasField("activity_task_started_event_attributes"):
        started = event.activity_task_started_event_attributes
        detail = f"attempt {started.attempt}"
        if started.HasField("last_failure"):
            detail += f", after: {started.last_failure.message}"
    elif event.HasField("activity_task_failed_event_attributes"):
        detail = event.activity_task_failed_event_attributes.failure.message
    elif event.HasField("workflow_task_failed_event_attributes"):
        detail = event.workflow_task_failed_event_attributes.failure.message
    elif event.HasField("activity_task_timed_out_event_attributes"):
        detail = event.activity_task_timed_out_event_attributes.failure.message
    return f"{event.event_id:>4} {when} {kind}" + (f": {_one_line(detail)}" if detail else "")


def _one_line(text: str, width: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _safely(read: Callable[[], str]) -> str:
    try:
        return read()
    except Exception as err:
        return f"(could not read it: {type(err).__name__}: {err})"
