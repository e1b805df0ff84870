"""What the panel shows: the services, the open transfers and where each one is, the
levers on now, and the timeline of levers pulled and undone (by the panel, or seen
coming and going when pulled elsewhere: `make kill`, the soak)."""

from __future__ import annotations

import argparse
import asyncio
import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from temporalio.client import Client

from crashlab.levers import (
    CATALOGUE,
    CLIENTS,
    DIRECTIONS,
    FAULT_MODES,
    FAULT_OPERATIONS,
    SERVERS,
    LabNow,
    Lever,
    ServiceLever,
)
from crashlab.stack import Stack, StackError
from crashlab.status import open_workflows, service_states
from crashlab.temporal import TEMPORAL_SILENT, Unreachable, connect_temporal
from worker.shared import MONEY_TRANSFER_WORKFLOW

CALL_TIMEOUT = 3.0
TIMELINE_LENGTH = 200


@dataclass
class Event:
    at: str  # ISO time, UTC
    what: str  # "pulled", "undone", "on", "off", "refused"
    lever: str  # the lever, described


@dataclass
class Timeline:
    """The levers pulled and undone, latest last. The panel records its own pulls; a lever
    that appears or goes away without the panel is recorded when the page next looks."""

    events: list[Event] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, what: str, lever: str) -> None:
        with self.lock:
            self.events.append(Event(datetime.now(UTC).isoformat(timespec="seconds"), what, lever))
            del self.events[:-TIMELINE_LENGTH]
            if what == "pulled":
                self.seen.add(lever)
            elif what == "undone":
                self.seen.discard(lever)

    def observe(self, on: list[str]) -> None:
        """The levers on now, as the page's last look found them."""
        with self.lock:
            came, went = set(on) - self.seen, self.seen - set(on)
        for lever in sorted(came):
            self.record("on", lever)
        for lever in sorted(went):
            self.record("off", lever)
        with self.lock:
            self.seen = set(on)


@dataclass
class Transfer:
    workflow_id: str
    step: str  # the activity it waits on (withdraw, deposit, refund), or what else it does
    attempt: int
    last_failure: str | None
    where: list[str]


class Temporal:
    """One client for the panel's life, made again when Temporal moved or went away."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.client: Client | None = None

    async def transfers(self) -> list[Transfer]:
        if self.client is None:
            self.client = await connect_temporal(
                self.stack.temporal_address, call_timeout=CALL_TIMEOUT
            )
        try:
            found = await open_workflows(self.client, call_timeout=CALL_TIMEOUT)
        except Unreachable:
            self.client = None
            raise
        now = datetime.now(UTC)
        return [_transfer(wf, now) for wf in found if wf.workflow_type == MONEY_TRANSFER_WORKFLOW]


def _transfer(wf: Any, now: datetime) -> Transfer:
    pending = wf.pending_activities[0] if wf.pending_activities else None
    if pending is not None:
        step, attempt, failure = pending.activity_type, pending.attempt, pending.last_failure
    else:
        step, attempt, failure = "workflow task", wf.workflow_task_attempt or 1, None
        failure = wf.workflow_task_failure
    return Transfer(wf.workflow_id, step, attempt, failure, wf.where(now))


# The CLI's options the panel leaves out: a lever pulled here holds until it is undone here,
# and acts on every container of its service.
CLI_ONLY = ("seconds", "hold", "which")


def form_fields(kind: type[Lever]) -> list[dict[str, Any]]:
    """The fields of a lever's form, from its CLI arguments: a choice, a checkbox or a
    value each (empty: a command of commands, such as `fault`, which needs a form of its
    own on the page)."""
    parser = argparse.ArgumentParser(add_help=False)
    kind.add_arguments(parser)
    fields: list[dict[str, Any]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return []
        if action.dest in CLI_ONLY:
            continue
        field: dict[str, Any] = {"name": action.dest, "label": action.dest.replace("_", " ")}
        if action.metavar and not action.option_strings:
            field["label"] = str(action.metavar).lower()
        if action.choices:
            field["choices"] = [str(c) for c in action.choices]
        elif isinstance(action, argparse._StoreTrueAction):
            field["type"] = "checkbox"
        else:
            numeric = isinstance(action.default, int | float)
            field["type"] = "number" if numeric else "text"
            field["value"] = action.default
        fields.append(field)
    return fields


# What the page's buttons and forms offer, from the catalogue (crashlab/levers.py).
CATALOGUE_SHOWN: dict[str, Any] = {
    "summaries": {kind.command: kind.summary for kind in CATALOGUE},
    # A button on each service's row for these, and the undo button's word.
    "service_levers": [kind.command for kind in CATALOGUE if issubclass(kind, ServiceLever)],
    "undo_labels": {kind.command: kind.undo_command.capitalize() for kind in CATALOGUE},
    # The others' forms: the page makes one for each lever it has none of its own for.
    "forms": {
        kind.command: form_fields(kind) for kind in CATALOGUE if not issubclass(kind, ServiceLever)
    },
    "fault_modes": {mode.value: text for mode, text in FAULT_MODES.items()},
    "operations": list(FAULT_OPERATIONS),
    "link_clients": list(CLIENTS),
    "link_servers": list(SERVERS),
    "directions": list(DIRECTIONS),
}


def levers_on(stack: Stack) -> list[Lever]:
    # The page asks every second: a frozen bank must not hold each look for seconds.
    lab = LabNow(stack, bank_timeout=1.0)
    return [lever for kind in CATALOGUE for lever in kind.on_now(lab)]


async def state(stack: Stack, temporal: Temporal, timeline: Timeline) -> dict[str, Any]:
    """The whole page's data; each part that does not answer says so, the rest shows."""
    out: dict[str, Any] = {"project": stack.project, "errors": {}, "catalogue": CATALOGUE_SHOWN}
    try:
        services = await asyncio.to_thread(service_states, stack)
        out["services"] = [
            {"service": s.service, "name": s.name, "state": s.state, "label": s.label}
            for s in services
        ]
        on = await asyncio.to_thread(levers_on, stack)
        out["levers"] = [
            {"kind": type(lever).command, "describe": lever.describe(), "undo": lever.undo_hint()}
            for lever in on
        ]
        timeline.observe([lever.describe() for lever in on])
    except StackError as err:
        out["errors"]["docker"] = str(err)
    try:
        out["transfers"] = [asdict(t) for t in await temporal.transfers()]
    except (Unreachable, StackError) as err:
        out["errors"]["temporal"] = str(err) or TEMPORAL_SILENT
    with timeline.lock:
        out["timeline"] = [asdict(e) for e in timeline.events]
    return out
